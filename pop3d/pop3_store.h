/*
 * pop3_store.h - the store jobs of postroom-pop3d, run by the daemon's
 * store worker (store_worker.h).
 *
 * The store calls that can wait (lookups, maildrop locks, listings, reads
 * of big bodies, the commit at QUIT) run on the worker's thread with its
 * own store connection, so that the event loop never waits for a lock or
 * an fsync (docs/ARCHITECTURE.md).  Only the bodies of small messages are
 * read on the loop thread itself, from a second, read-only-use connection
 * (see POP3_INLINE_MAX in pop3_session.c): a WAL reader never waits for
 * the writer, and a thread hop costs more than such a read.  argon2id
 * verification is not done here: it runs in the password pool (pwpool.h),
 * so a burst of logins cannot delay the downloads of sessions already logged
 * in.  Login failures are counted by a store_throttle_job on the same
 * worker (store_throttle_job.h).
 *
 * A session owns a struct pop3_job, fills in the inputs, submits it and
 * gets done_cb on the loop thread once the job ran.  Jobs run in
 * submission order.
 */
#ifndef POSTROOM_POP3_STORE_H
#define POSTROOM_POP3_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "pop3_proto.h"
#include "store.h"
#include "store_worker.h"

enum pop3_job_type {
	/* address (a login name) and tag -> login (store_login_lookup with
	 * default_domain; status PR_ENOENT: no such login, login.kind
	 * NONE), user_id (login.user_id), and the login failures of ip_key
	 * and login.account in throttle (zero when they cannot be read;
	 * throttle_status says why). */
	POP3_JOB_AUTH_INFO,
	/* Lock user_id's maildrop and list it into msgs/n_msgs, the
	 * core's snapshot (malloc'd, for pop3_proto_maildrop, or NULL),
	 * filled row by row with no second copy.  On a listing failure the
	 * lock is released again.  status PR_EBUSY: locked by another
	 * session. */
	POP3_JOB_OPEN,
	/* Read up to len octets of entry_id at offset into buf; nread. */
	POP3_JOB_READ,
	/* Delete ids[0..n_ids) in one transaction, then unlock; status is
	 * that of the deletion (the lock is released either way).  A big
	 * deletion is only recorded in that transaction (drop_left): it is
	 * as good as done, and POP3_JOB_DROP_STEP finishes it. */
	POP3_JOB_COMMIT,
	/* One slice of user_id's recorded deletion (store_maildrop_drop_
	 * step): status 1 when more is left, 0 when it is done. */
	POP3_JOB_DROP_STEP,
	/* Release user_id's maildrop lock. */
	POP3_JOB_UNLOCK,
};

struct pop3_job;
typedef void (*pop3_job_cb)(struct pop3_job *job);

struct pop3_job {
	struct store_job job;       /* private */
	enum pop3_job_type type;
	pop3_job_cb done_cb;
	void *data;                 /* the caller's */
	/* in */
	char address[256];
	int64_t user_id;
	int64_t entry_id;
	int64_t offset;
	uint8_t *buf;
	size_t len;
	const int64_t *ids;         /* valid until done_cb */
	size_t n_ids;
	char ip_key[64];
	char tag[STORE_LOGIN_TAG_LEN + 1];
	char default_domain[256];   /* [server] default_domain */
	int64_t now, window;
	/* COMMIT, UNLOCK: the session's retrievals for the trace, valid
	 * until done_cb, and "client=IP user=LOGIN". */
	const int64_t *retr, *retr_at;
	size_t n_retr;
	char trace[384];
	/* out */
	int status;
	struct pr_err err;
	struct store_login login;   /* login.hash: wiped by the caller */
	struct store_throttle throttle;
	int throttle_status;
	struct pr_err throttle_err;
	struct pop3_msg *msgs;
	size_t n_msgs, cap_msgs, hint_msgs;
	int64_t octets;
	ssize_t nread;
	bool drop_left;             /* COMMIT: a recorded deletion to finish */
};

/* Queues job on wk; its done_cb runs later on the loop thread.  Never
 * fails. */
void pop3_store_submit(struct store_worker *wk, struct pop3_job *job);

/*
 * Finishes user_id's recorded deletion of n messages (a COMMIT with
 * drop_left) in the background, one POP3_JOB_DROP_STEP at a time on
 * *wkp, so that other sessions' jobs run between the slices; a failed
 * slice is tried again a few times.  Logs one line under sid when it is
 * done.  Once *stopping, no slice is queued any more: the daemon's next
 * start finishes the record.  The deletion is on *drops (the server's
 * list) while it runs.  wkp, stopping and drops are the server's and
 * outlive the worker.
 */
struct pop3_drop;
void pop3_store_drop_start(struct store_worker **wkp, const bool *stopping,
    struct pop3_drop **drops, int64_t user_id, size_t n, const char *sid,
    const char *user);

/* A login that waits for its user's background deletion: listing the
 * maildrop before it ends would make the store worker finish all of it
 * at once (store_maildrop_lock), and every other session wait. */
struct pop3_drop_wait {
	struct pop3_drop_wait *next;
	void (*cb)(struct pop3_drop_wait *w);
};
/* Puts w (cb set) behind user_id's background deletion on drops, if one
 * runs: true, and w->cb runs on the loop once it ended (finished,
 * failed or stopped).  false: none runs. */
bool pop3_store_drop_wait(struct pop3_drop *drops, int64_t user_id,
    struct pop3_drop_wait *w);

#endif
