/*
 * pop3_store.c - the store thread: a FIFO of jobs run against one store
 * connection, with completions posted back to the loop by uv_async.
 */
#include "pop3_store.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

struct pop3_store {
	uv_async_t async;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	struct pop3_job *queued, **queue_tail;
	struct pop3_job *done, **done_tail;
	struct store *st;
	bool stop;
};

static void
pop3_store_run(struct pop3_store *q, struct pop3_job *j)
{
	struct pr_err uerr;

	pr_err_clear(&j->err);
	switch (j->type) {
	case POP3_JOB_AUTH_INFO:
		j->status = store_user_auth_info(q->st, j->address, &j->user_id,
		    j->hash, &j->err);
		break;
	case POP3_JOB_OPEN:
		j->entries = NULL;
		j->n_entries = 0;
		j->status = store_maildrop_lock(q->st, j->user_id, &j->err);
		if (j->status < 0)
			break;
		/* The listing is the snapshot the session shows: mail that
		 * arrives later is not part of it (RFC 1939 8). */
		j->status = store_maildrop_list(q->st, j->user_id, &j->entries,
		    &j->n_entries, &j->err);
		if (j->status < 0)
			store_maildrop_unlock(q->st, j->user_id, &uerr);
		break;
	case POP3_JOB_READ: {
		struct store_body *b = NULL;
		int64_t size;

		/* A store_body is just (row, size): opening it per chunk
		 * is a cached statement and keeps no state between jobs. */
		j->status = store_body_open(q->st, j->user_id, j->entry_id, &b,
		    &size, &j->err);
		if (j->status < 0)
			break;
		j->nread = store_body_read(b, j->offset, j->buf, j->len);
		store_body_close(&b);
		if (j->nread < 0)
			j->status = pr_err_set(&j->err, (int)j->nread,
			    "cannot read message: %s",
			    pr_strerror((int)j->nread));
		break;
	}
	case POP3_JOB_COMMIT:
		j->status = store_maildrop_delete(q->st, j->user_id, j->ids,
		    j->n_ids, &j->err);
		if (store_maildrop_unlock(q->st, j->user_id, &uerr) < 0)
			log_warn(NULL, "unlock maildrop %lld: %s",
			    (long long)j->user_id, uerr.msg);
		break;
	case POP3_JOB_UNLOCK:
		j->status = store_maildrop_unlock(q->st, j->user_id, &j->err);
		break;
	}
}

static void
pop3_store_thread(void *arg)
{
	struct pop3_store *q = arg;
	struct pop3_job *j;

	uv_mutex_lock(&q->mu);
	for (;;) {
		while (q->queued == NULL && !q->stop)
			uv_cond_wait(&q->cond, &q->mu);
		if (q->queued == NULL)
			break;
		j = q->queued;
		if ((q->queued = j->next) == NULL)
			q->queue_tail = &q->queued;
		uv_mutex_unlock(&q->mu);

		pop3_store_run(q, j);

		uv_mutex_lock(&q->mu);
		j->next = NULL;
		*q->done_tail = j;
		q->done_tail = &j->next;
		uv_async_send(&q->async);
	}
	uv_mutex_unlock(&q->mu);
}

/* Loop thread: runs the completions in the order the jobs ran. */
static void
pop3_store_async_cb(uv_async_t *a)
{
	struct pop3_store *q = a->data;
	struct pop3_job *j, *next;

	uv_mutex_lock(&q->mu);
	j = q->done;
	q->done = NULL;
	q->done_tail = &q->done;
	uv_mutex_unlock(&q->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		j->done_cb(j);
	}
}

static void
pop3_store_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

int
pop3_store_start(uv_loop_t *loop, struct store *st, struct pop3_store **q_r)
{
	struct pop3_store *q = xcalloc(1, sizeof(*q));
	int r;

	q->st = st;
	q->queue_tail = &q->queued;
	q->done_tail = &q->done;
	if ((r = uv_mutex_init(&q->mu)) < 0) {
		free(q);
		return PR_EIO;
	}
	if ((r = uv_cond_init(&q->cond)) < 0) {
		uv_mutex_destroy(&q->mu);
		free(q);
		return PR_EIO;
	}
	uv_async_init(loop, &q->async, pop3_store_async_cb);
	q->async.data = q;
	if ((r = uv_thread_create(&q->thread, pop3_store_thread, q)) < 0) {
		uv_cond_destroy(&q->cond);
		uv_mutex_destroy(&q->mu);
		/* q is freed once the async handle is closed. */
		uv_close((uv_handle_t *)&q->async, pop3_store_closed_cb);
		return PR_EIO;
	}
	*q_r = q;
	return 0;
}

void
pop3_store_submit(struct pop3_store *q, struct pop3_job *job)
{
	job->next = NULL;
	uv_mutex_lock(&q->mu);
	*q->queue_tail = job;
	q->queue_tail = &job->next;
	uv_cond_signal(&q->cond);
	uv_mutex_unlock(&q->mu);
}

void
pop3_store_stop(struct pop3_store **qp)
{
	struct pop3_store *q = *qp;

	if (q == NULL)
		return;
	uv_mutex_lock(&q->mu);
	q->stop = true;
	uv_cond_signal(&q->cond);
	uv_mutex_unlock(&q->mu);
	uv_thread_join(&q->thread);
	/* Completions of the last jobs (unlocks of sessions that just went
	 * away) still run, so their owners can free themselves. */
	pop3_store_async_cb(&q->async);
	store_close(&q->st);
	uv_cond_destroy(&q->cond);
	uv_mutex_destroy(&q->mu);
	uv_close((uv_handle_t *)&q->async, pop3_store_closed_cb);
	*qp = NULL;
}
