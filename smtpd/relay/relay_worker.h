/*
 * relay_worker.h - the relay's store work, as jobs of the daemon's store
 * worker (store_worker.h).
 *
 * The relay never touches SQLite on the loop thread: every store call
 * (queue scans, recipient done, retries, body reads, bounces) runs on the
 * store worker, in submission order with the daemon's deliveries, and its
 * completion is posted back to the loop.
 */
#ifndef POSTROOM_RELAY_WORKER_H
#define POSTROOM_RELAY_WORKER_H

#include <stddef.h>

#include "store.h"
#include "store_worker.h"

struct relay_work;

/* The struct that embeds a relay_work (or any member), from the member. */
#define RELAY_CONTAINER(p, type, member) STORE_CONTAINER(p, type, member)

/* run: on the store thread, with the worker's store connection.
 * done: then on the loop thread.  Both borrow w, which the submitter
 * owns and must keep alive until done has run. */
typedef void (*relay_work_run_cb)(struct relay_work *w, struct store *st);
typedef void (*relay_work_done_cb)(struct relay_work *w);

struct relay_work {
	struct store_job job;      /* owned by the worker while queued */
	relay_work_run_cb run;
	relay_work_done_cb done;
};

/* Queues w (run, then done) on wk.  Never fails; never calls back from
 * inside; fatal once wk is stopping. */
void relay_worker_submit(struct store_worker *wk, struct relay_work *w,
    relay_work_run_cb run, relay_work_done_cb done);

#endif
