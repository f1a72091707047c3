/*
 * store_worker.c - one thread, one store connection, jobs in order, and
 * the done-list that brings them back to the loop.
 *
 * The thread takes a group from the head of the queue (one job, or the
 * run of jobs sharing a batch hook, within the count and byte bounds),
 * runs it with the mutex released, and appends the group to the done-list
 * in the same order; one uv_async wakes the loop, which runs the done
 * callbacks.  Stopping is the same path: the thread works off the queue,
 * marks itself exited under the mutex after its last group, and the loop
 * joins it once it has taken that last done-list.
 */
#include "store_worker.h"

#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "xmalloc.h"

struct store_worker {
	uv_loop_t *loop;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	uv_async_t async;
	struct store *st;          /* the worker thread's */
	/* Under mu: */
	struct store_job *queue, **queue_tail;
	struct store_job *done, **done_tail;
	bool stopping;             /* no more jobs will come */
	bool exited;               /* the thread ran its last group */
	/* Loop thread only: */
	void (*stopped_cb)(void *data);
	void *stopped_data;
	/* Worker thread only: the group being run. */
	struct store_job *group[STORE_WORKER_BATCH_MAX];
};

/*
 * Under mu, with the queue not empty: unlinks the group at its head into
 * wk->group and returns its size.  Only jobs next to each other join, so
 * the order of submission is kept across groups.
 */
static size_t
store_worker_take(struct store_worker *wk)
{
	struct store_job *head = wk->queue, *j;
	size_t n = 0, bytes = head->bytes;

	wk->group[n++] = head;
	for (j = head->next; j != NULL && head->batch != NULL &&
	    j->batch == head->batch && n < STORE_WORKER_BATCH_MAX &&
	    bytes <= STORE_WORKER_BATCH_BYTES &&
	    j->bytes <= STORE_WORKER_BATCH_BYTES - bytes; j = j->next) {
		wk->group[n++] = j;
		bytes += j->bytes;
	}
	wk->group[n - 1]->next = NULL;
	if ((wk->queue = j) == NULL)
		wk->queue_tail = &wk->queue;
	return n;
}

static void
store_worker_main(void *arg)
{
	struct store_worker *wk = arg;
	struct store_job *first;
	size_t n;

	uv_mutex_lock(&wk->mu);
	for (;;) {
		while (wk->queue == NULL && !wk->stopping)
			uv_cond_wait(&wk->cond, &wk->mu);
		if (wk->queue == NULL)
			break;
		n = store_worker_take(wk);
		first = wk->group[0];
		uv_mutex_unlock(&wk->mu);

		if (first->batch != NULL)
			first->batch(wk->group, n, wk->st);
		else
			first->run(first, wk->st);

		uv_mutex_lock(&wk->mu);
		/* The group is still linked in order through next. */
		*wk->done_tail = first;
		wk->done_tail = &wk->group[n - 1]->next;
		uv_async_send(&wk->async);
	}
	wk->exited = true;
	uv_mutex_unlock(&wk->mu);
	uv_async_send(&wk->async);
}

static void
store_worker_closed_cb(uv_handle_t *h)
{
	struct store_worker *wk = h->data;
	void (*cb)(void *) = wk->stopped_cb;
	void *data = wk->stopped_data;

	uv_cond_destroy(&wk->cond);
	uv_mutex_destroy(&wk->mu);
	free(wk);
	if (cb != NULL)
		cb(data);
}

/* Loop thread: the done callbacks, in the order the jobs ran. */
static void
store_worker_async_cb(uv_async_t *a)
{
	struct store_worker *wk = a->data;
	struct store_job *j, *next;
	bool exited;

	uv_mutex_lock(&wk->mu);
	j = wk->done;
	wk->done = NULL;
	wk->done_tail = &wk->done;
	/* Read together with the list: once exited is set, this list is
	 * the last one. */
	exited = wk->exited;
	uv_mutex_unlock(&wk->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		j->done(j);
	}
	if (exited) {
		/* The thread has returned or is about to: no wait. */
		uv_thread_join(&wk->thread);
		store_close(&wk->st);
		uv_close((uv_handle_t *)&wk->async, store_worker_closed_cb);
	}
}

int
store_worker_new(uv_loop_t *loop, const char *data_dir, unsigned flags,
    struct store_worker **wk_r, struct pr_err *err)
{
	struct store_worker *wk = xcalloc(1, sizeof(*wk));
	int r;

	wk->loop = loop;
	wk->queue_tail = &wk->queue;
	wk->done_tail = &wk->done;
	if ((r = store_open(data_dir, flags, &wk->st, err)) < 0) {
		free(wk);
		return r;
	}
	if (uv_mutex_init(&wk->mu) < 0 || uv_cond_init(&wk->cond) < 0)
		fatal("store worker: cannot create a mutex");
	if ((r = uv_async_init(loop, &wk->async, store_worker_async_cb)) < 0)
		fatal("store worker: uv_async_init: %s", uv_strerror(r));
	wk->async.data = wk;
	if ((r = uv_thread_create(&wk->thread, store_worker_main, wk)) < 0) {
		store_close(&wk->st);
		/* wk is freed once the loop has closed the handle. */
		uv_close((uv_handle_t *)&wk->async, store_worker_closed_cb);
		return pr_err_set(err, PR_EIO, "cannot start the store "
		    "thread: %s", uv_strerror(r));
	}
	*wk_r = wk;
	return 0;
}

void
store_worker_submit(struct store_worker *wk, struct store_job *job)
{
	job->next = NULL;
	uv_mutex_lock(&wk->mu);
	if (wk->stopping) {
		uv_mutex_unlock(&wk->mu);
		fatal("store worker: job submitted after stop");
	}
	*wk->queue_tail = job;
	wk->queue_tail = &job->next;
	uv_cond_signal(&wk->cond);
	uv_mutex_unlock(&wk->mu);
}

void
store_worker_stop(struct store_worker **wkp, void (*stopped_cb)(void *data),
    void *data)
{
	struct store_worker *wk = *wkp;

	if (wk == NULL)
		return;
	*wkp = NULL;
	wk->stopped_cb = stopped_cb;
	wk->stopped_data = data;
	uv_mutex_lock(&wk->mu);
	wk->stopping = true;
	uv_cond_signal(&wk->cond);
	uv_mutex_unlock(&wk->mu);
}

static void
store_worker_release_run(struct store_job *job, struct store *st)
{
	(void)job;
	store_release_memory(st);
}

static void
store_worker_release_done(struct store_job *job)
{
	free(job);
}

void
store_worker_release_memory(struct store_worker *wk)
{
	struct store_job *job = xcalloc(1, sizeof(*job));

	job->run = store_worker_release_run;
	job->done = store_worker_release_done;
	store_worker_submit(wk, job);
}
