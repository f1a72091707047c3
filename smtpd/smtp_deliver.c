/* smtp_deliver.c - the delivery writer thread (group commit). */
#include "smtp_deliver.h"

#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "xmalloc.h"

struct smtp_deliver {
	uv_loop_t *loop;
	uv_async_t async;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cv;
	struct store *st;          /* used by the writer thread only */
	/* Under mu: */
	struct smtp_deliver_job *queue, **queue_tail;
	struct smtp_deliver_job *done, **done_tail;
	bool stop;
	/* Loop thread only: */
	bool started, closed;
};

static void
smtp_deliver_thread(void *arg)
{
	struct smtp_deliver *d = arg;
	struct store_msg *msgs[SMTP_DELIVER_BATCH_MAX];
	struct smtp_deliver_job *batch, *j, **tail;
	size_t n;
	int r;

	uv_mutex_lock(&d->mu);
	for (;;) {
		while (d->queue == NULL && !d->stop)
			uv_cond_wait(&d->cv, &d->mu);
		if (d->queue == NULL)
			break;
		/* Take up to a batch from the head of the queue. */
		batch = d->queue;
		n = 0;
		tail = &d->queue;
		for (j = d->queue; j != NULL && n < SMTP_DELIVER_BATCH_MAX;
		    j = j->next) {
			msgs[n++] = &j->msg;
			tail = &j->next;
		}
		d->queue = *tail;
		*tail = NULL;
		if (d->queue == NULL)
			d->queue_tail = &d->queue;
		uv_mutex_unlock(&d->mu);

		/* One transaction, one fsync, for the whole batch. */
		r = store_deliver(d->st, msgs, n);
		if (r < 0)
			log_err(NULL, "delivery batch of %zu failed: %s", n,
			    msgs[0]->err.msg[0] ? msgs[0]->err.msg :
			    pr_strerror(r));
		else
			log_debug(NULL, "committed a batch of %zu", n);

		uv_mutex_lock(&d->mu);
		*d->done_tail = batch;
		for (j = batch; j->next != NULL; j = j->next)
			;
		d->done_tail = &j->next;
		uv_mutex_unlock(&d->mu);
		uv_async_send(&d->async);
		uv_mutex_lock(&d->mu);
	}
	uv_mutex_unlock(&d->mu);
}

/* Runs the done callbacks of finished jobs, on the loop thread. */
static void
smtp_deliver_reap(struct smtp_deliver *d)
{
	struct smtp_deliver_job *j, *next;

	uv_mutex_lock(&d->mu);
	j = d->done;
	d->done = NULL;
	d->done_tail = &d->done;
	uv_mutex_unlock(&d->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		j->done_cb(j);
	}
}

static void
smtp_deliver_async_cb(uv_async_t *h)
{
	smtp_deliver_reap(h->data);
}

int
smtp_deliver_new(uv_loop_t *loop, const char *data_dir,
    struct smtp_deliver **d_r, struct pr_err *err)
{
	struct smtp_deliver *d = xcalloc(1, sizeof(*d));
	int r;

	d->loop = loop;
	d->queue_tail = &d->queue;
	d->done_tail = &d->done;
	if ((r = store_open(data_dir, 0, &d->st, err)) < 0) {
		free(d);
		return r;
	}
	uv_mutex_init(&d->mu);
	uv_cond_init(&d->cv);
	uv_async_init(loop, &d->async, smtp_deliver_async_cb);
	d->async.data = d;
	if ((r = uv_thread_create(&d->thread, smtp_deliver_thread, d)) != 0) {
		pr_err_set(err, PR_EIO, "delivery thread: %s", uv_strerror(r));
		uv_close((uv_handle_t *)&d->async, NULL);
		store_close(&d->st);
		d->closed = true;
		*d_r = d;
		smtp_deliver_free(d_r);
		return PR_EIO;
	}
	d->started = true;
	*d_r = d;
	return 0;
}

void
smtp_deliver_submit(struct smtp_deliver *d, struct smtp_deliver_job *job)
{
	job->next = NULL;
	uv_mutex_lock(&d->mu);
	*d->queue_tail = job;
	d->queue_tail = &job->next;
	uv_cond_signal(&d->cv);
	uv_mutex_unlock(&d->mu);
}

void
smtp_deliver_stop(struct smtp_deliver *d)
{
	if (d->closed)
		return;
	if (d->started) {
		uv_mutex_lock(&d->mu);
		d->stop = true;
		uv_cond_signal(&d->cv);
		uv_mutex_unlock(&d->mu);
		uv_thread_join(&d->thread);
		d->started = false;
	}
	smtp_deliver_reap(d);
	uv_close((uv_handle_t *)&d->async, NULL);
	d->closed = true;
}

void
smtp_deliver_free(struct smtp_deliver **dp)
{
	struct smtp_deliver *d = *dp;

	if (d == NULL)
		return;
	store_close(&d->st);
	uv_cond_destroy(&d->cv);
	uv_mutex_destroy(&d->mu);
	free(d);
	*dp = NULL;
}
