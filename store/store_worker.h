/*
 * store_worker.h - the one store worker of a daemon: a queue of jobs, a
 * thread with its own store connection, and a done-list back to the loop.
 *
 * Blocking store work (commits, lock waits, big blob reads) never runs on
 * the event loop (docs/ARCHITECTURE.md, "one store worker per daemon").  A
 * job is submitted on the loop thread; its run (or its batch hook) runs on
 * the worker thread with the worker's store connection; its done then
 * runs on the loop thread.  Jobs run in submission order, and their done
 * callbacks run in the same order.
 *
 * Batching (group commit): jobs that name the same batch hook and are
 * queued next to each other are handed to that hook together, so that it
 * can run them in one transaction with one fsync.  A group holds at most
 * STORE_WORKER_BATCH_MAX jobs and, unless it is a single job, at most
 * STORE_WORKER_BATCH_BYTES of job bytes: one big message commits alone
 * instead of making every other sender wait for its write, and no
 * transaction holds SQLite's write lock long enough for another process
 * (a POP3 QUIT) to run out of its busy timeout.
 *
 * A struct store_worker is used from the loop thread only.
 */
#ifndef POSTROOM_STORE_WORKER_H
#define POSTROOM_STORE_WORKER_H

#include <stddef.h>
#include <uv.h>

#include "err.h"
#include "store.h"

/* Most jobs handed to one batch hook call. */
#define STORE_WORKER_BATCH_MAX 256
/* Most job bytes (message bodies) in one group of two or more jobs. */
#define STORE_WORKER_BATCH_BYTES (32u * 1024 * 1024)

/* The struct that embeds a member, from a pointer to the member. */
#define STORE_CONTAINER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct store_job;
struct store_worker;

/* On the worker thread.  st is the worker's connection, borrowed for the
 * call. */
typedef void (*store_job_run_cb)(struct store_job *job, struct store *st);
/* On the worker thread: jobs[0..n) (1 <= n <= STORE_WORKER_BATCH_MAX),
 * consecutive in the queue, all with this hook.  jobs is valid during the
 * call only. */
typedef void (*store_job_batch_cb)(struct store_job *const *jobs, size_t n,
    struct store *st);
/* On the loop thread, once run or batch has returned for this job.  It may
 * submit further jobs, unless the worker is stopping. */
typedef void (*store_job_done_cb)(struct store_job *job);

/*
 * A job is embedded in the submitter's own struct (STORE_CONTAINER gets it
 * back) and owned by the submitter, which keeps it alive and unchanged
 * from submission until done has run.  Set run or batch (batch wins),
 * done, and bytes (what counts against STORE_WORKER_BATCH_BYTES; 0 for
 * jobs without a batch hook).
 */
struct store_job {
	store_job_run_cb run;
	store_job_batch_cb batch;
	store_job_done_cb done;
	size_t bytes;
	struct store_job *next;    /* the worker's while queued */
};

/*
 * Opens the store of data_dir (store_open flags) for the worker thread and
 * starts the thread.  Returns 0, or an error with err set and nothing left
 * to stop.
 */
int store_worker_new(uv_loop_t *loop, const char *data_dir, unsigned flags,
    struct store_worker **wk_r, struct pr_err *err);

/*
 * Queues job (its run, batch and done set); never fails and never calls
 * back from inside.  Submitting to a stopping worker is a programming
 * error and fatal.
 */
void store_worker_submit(struct store_worker *wk, struct store_job *job);

/*
 * Stops the worker: the jobs still queued run (in batches, as usual), the
 * done of every job runs on the loop, the thread is joined and the store
 * closed; then the worker is freed and stopped_cb (if not NULL) runs on
 * the loop.  Nothing may be submitted after this call, not even by the
 * done callbacks it still runs.  Sets *wkp NULL; a NULL *wkp is a no-op
 * (stopped_cb is then not called).
 */
/* Queues a job that runs store_release_memory on the worker's own
 * connection (for a daemon gone idle, daemon_trim). */
void store_worker_release_memory(struct store_worker *wk);

void store_worker_stop(struct store_worker **wkp,
    void (*stopped_cb)(void *data), void *data);

#endif
