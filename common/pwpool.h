/*
 * pwpool.h - a small, bounded thread pool of its own for password
 * hashing, fair between clients.
 *
 * argon2id is CPU- and memory-heavy by design.  In libuv's default pool it
 * would share four threads with spool writes and every other
 * uv_queue_work user, so a login flood would stall everybody's DATA and
 * downloads (docs/ARCHITECTURE.md 3.2).  This pool has its own threads
 * (one or two: a password check must not take the whole machine), a
 * bounded queue, and one queue per client key served round-robin: fifty
 * guesses from one address take turns with one login from another, they
 * don't queue in front of it.  Clients that failed recently go after all
 * others (low), so many addresses that keep guessing don't take turns
 * in front of a client with a clean record either.  A job past the bound
 * is refused at once, so the caller can answer "try again later" instead
 * of holding the connection.  A client's share can be bounded too; the
 * daemons leave it to max_connections_per_ip, since a session has one
 * check in flight at most.
 *
 * Jobs are submitted on the loop thread; run runs on a pool thread; done
 * runs on the loop thread afterwards.  The pool knows nothing of what a
 * job does (no store, no SQLite): the daemon's job calls the store's
 * password check.  A struct pwpool is used from the loop thread only.
 */
#ifndef POSTROOM_PWPOOL_H
#define POSTROOM_PWPOOL_H

#include <stdbool.h>
#include <uv.h>

#include "err.h"

#define PWPOOL_KEY_MAX 64
/* The daemons' bounds: threads, and queued jobs in all.  256 checks of
 * ~0.2 s on two threads are a wait of ~25 s for the last one, which a
 * client still sits out; past that it hears "try again later" at once. */
#define PWPOOL_THREADS 2
#define PWPOOL_QUEUE_MAX 256

struct pwpool;
struct pwpool_key;

/*
 * Embedded in the submitter's own struct and owned by it: it stays alive
 * and unchanged from pwpool_submit() until done has run.
 */
struct pwpool_job {
	void (*run)(struct pwpool_job *job);   /* on a pool thread */
	void (*done)(struct pwpool_job *job);  /* on the loop thread */
	char key[PWPOOL_KEY_MAX];              /* the client, for fairness */
	bool low;    /* the client failed recently: after all others */
	/* Private. */
	struct pwpool_job *next;
	struct pwpool_key *k;
};

/* Starts threads (1 or more) with the given bounds: queue_max jobs
 * queued in all, per_key_max jobs queued or running per key (0: no
 * bound of its own).  Returns 0, or an error with err set and nothing
 * left to stop. */
int pwpool_new(uv_loop_t *loop, unsigned threads, unsigned queue_max,
    unsigned per_key_max, struct pwpool **pp_r, struct pr_err *err);

/*
 * Queues job (run, done and key set).  Returns 0, or PR_EAGAIN when the
 * queue or the key's share is full; then done is never called.  Never
 * calls back from inside.
 */
int pwpool_submit(struct pwpool *pp, struct pwpool_job *job);

/* Jobs queued now (not counting those running), for the logs. */
unsigned pwpool_queued(const struct pwpool *pp);

/*
 * Stops the pool: queued jobs still run and their done callbacks run on
 * the loop; then the threads are joined and the pool is freed once the
 * loop has closed its handle.  Nothing may be submitted after this call.
 * Sets *ppp NULL; a NULL *ppp is a no-op.
 */
void pwpool_stop(struct pwpool **ppp);

#endif
