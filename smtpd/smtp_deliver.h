/*
 * smtp_deliver.h - the delivery writer: group commit on a dedicated thread.
 *
 * Sessions on the event loop hand finished messages to the writer, which
 * owns its own store connection.  Whenever it is idle it takes every job
 * queued so far and commits them with one store_deliver() call, i.e. one
 * SQLite transaction and one fsync for the whole batch (DESIGN 4).  While a
 * batch commits, new jobs queue up and form the next batch, so fifty
 * concurrent senders do not pay fifty fsyncs.  Results go back to the loop
 * thread with uv_async_send(); each job's done_cb runs there.
 */
#ifndef POSTROOM_SMTP_DELIVER_H
#define POSTROOM_SMTP_DELIVER_H

#include <stddef.h>
#include <uv.h>

#include "err.h"
#include "store.h"

/* Most messages committed in one transaction. */
#define SMTP_DELIVER_BATCH_MAX 256

struct smtp_deliver_job {
	struct store_msg msg;       /* in: what to deliver; out: status, id */
	/* Runs on the loop thread once msg.status and msg.id are set. */
	void (*done_cb)(struct smtp_deliver_job *job);
	void *data;
	struct smtp_deliver_job *next; /* private */
};

struct smtp_deliver;

/* Opens the writer's store connection on data_dir and starts the thread.
 * Returns 0 or an error with err set. */
int smtp_deliver_new(uv_loop_t *loop, const char *data_dir,
    struct smtp_deliver **d_r, struct pr_err *err);

/* Queues job (owned by the caller until done_cb).  Everything job->msg
 * points to must stay valid and unchanged until then.  Never fails. */
void smtp_deliver_submit(struct smtp_deliver *d, struct smtp_deliver_job *job);

/* On the loop thread: commits what is queued, joins the thread, runs the
 * remaining done_cb calls, and starts closing the loop handle.  Blocks for
 * at most one batch commit. */
void smtp_deliver_stop(struct smtp_deliver *d);

/* Frees a stopped writer once the loop has run (its handle is closed).
 * Sets *d NULL. */
void smtp_deliver_free(struct smtp_deliver **d);

#endif
