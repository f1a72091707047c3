/*
 * relay_worker.h - the relay's store thread.
 *
 * The relay never touches SQLite on the loop thread: every store call
 * (queue scans, recipient done, retries, body reads, bounces) runs on one
 * dedicated thread with its own store connection, in submission order,
 * and its completion is posted back to the loop.
 */
#ifndef POSTROOM_RELAY_WORKER_H
#define POSTROOM_RELAY_WORKER_H

#include <stddef.h>
#include <uv.h>

#include "err.h"
#include "store.h"

struct relay_work;

/* The struct that embeds a relay_work (or any member), from the member. */
#define RELAY_CONTAINER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* run: on the store thread, with the thread's store connection.
 * done: then on the loop thread.  Both borrow w, which the submitter
 * owns and must keep alive until done has run. */
typedef void (*relay_work_run_cb)(struct relay_work *w, struct store *st);
typedef void (*relay_work_done_cb)(struct relay_work *w);

struct relay_work {
	relay_work_run_cb run;
	relay_work_done_cb done;
	struct relay_work *next;   /* owned by the worker while queued */
};

struct relay_worker;

/* Opens the store of data_dir and starts the thread.  Returns 0 or an
 * error with err set. */
int relay_worker_new(uv_loop_t *loop, const char *data_dir,
    struct relay_worker **w_r, struct pr_err *err);

/* Queues w (run, then done).  Never fails; never calls back from
 * inside. */
void relay_worker_submit(struct relay_worker *wk, struct relay_work *w,
    relay_work_run_cb run, relay_work_done_cb done);

/* Works off everything queued (each done still runs), stops the thread,
 * closes the store and frees the worker; stopped_cb then runs on the
 * loop.  Nothing may be submitted after this. */
void relay_worker_stop(struct relay_worker *wk,
    void (*stopped_cb)(void *data), void *data);

#endif
