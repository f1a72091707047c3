/* relay_worker.c - one thread, one store connection, FIFO work. */
#include "relay_worker.h"

#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "xmalloc.h"

struct relay_worker {
	uv_loop_t *loop;
	struct store *st;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	uv_async_t async;
	struct relay_work *queued, **queue_tail;   /* for the thread */
	struct relay_work *done, **done_tail;   /* for the loop */
	bool stopping;      /* no more work will come */
	bool exited;        /* the thread has finished */
	void (*stopped_cb)(void *data);
	void *stopped_data;
};

static void
relay_worker_main(void *arg)
{
	struct relay_worker *wk = arg;
	struct relay_work *w;

	uv_mutex_lock(&wk->mu);
	for (;;) {
		while (wk->queued == NULL && !wk->stopping)
			uv_cond_wait(&wk->cond, &wk->mu);
		if ((w = wk->queued) == NULL)
			break;
		wk->queued = w->next;
		if (wk->queued == NULL)
			wk->queue_tail = &wk->queued;
		uv_mutex_unlock(&wk->mu);

		w->run(w, wk->st);

		uv_mutex_lock(&wk->mu);
		w->next = NULL;
		*wk->done_tail = w;
		wk->done_tail = &w->next;
		uv_async_send(&wk->async);
	}
	wk->exited = true;
	uv_mutex_unlock(&wk->mu);
	uv_async_send(&wk->async);
}

static void
relay_worker_closed(uv_handle_t *h)
{
	struct relay_worker *wk = h->data;
	void (*cb)(void *) = wk->stopped_cb;
	void *data = wk->stopped_data;

	uv_mutex_destroy(&wk->mu);
	uv_cond_destroy(&wk->cond);
	free(wk);
	if (cb != NULL)
		cb(data);
}

static void
relay_worker_async_cb(uv_async_t *a)
{
	struct relay_worker *wk = a->data;
	struct relay_work *list, *w;
	bool exited;

	uv_mutex_lock(&wk->mu);
	list = wk->done;
	wk->done = NULL;
	wk->done_tail = &wk->done;
	exited = wk->exited;
	uv_mutex_unlock(&wk->mu);
	while ((w = list) != NULL) {
		list = w->next;
		w->done(w);
	}
	if (exited) {
		/* Every completion has been delivered: the thread is gone
		 * or about to return, so joining is immediate. */
		uv_thread_join(&wk->thread);
		store_close(&wk->st);
		uv_close((uv_handle_t *)&wk->async, relay_worker_closed);
	}
}

int
relay_worker_new(uv_loop_t *loop, const char *data_dir,
    struct relay_worker **w_r, struct pr_err *err)
{
	struct relay_worker *wk;
	int r;

	wk = xcalloc(1, sizeof(*wk));
	wk->loop = loop;
	if ((r = store_open(data_dir, 0, &wk->st, err)) < 0) {
		free(wk);
		return r;
	}
	wk->queue_tail = &wk->queued;
	wk->done_tail = &wk->done;
	if (uv_mutex_init(&wk->mu) < 0 || uv_cond_init(&wk->cond) < 0)
		fatal("relay: cannot create a mutex");
	uv_async_init(loop, &wk->async, relay_worker_async_cb);
	wk->async.data = wk;
	if ((r = uv_thread_create(&wk->thread, relay_worker_main, wk)) < 0) {
		store_close(&wk->st);
		/* wk is freed once the loop has closed the async handle. */
		uv_close((uv_handle_t *)&wk->async, relay_worker_closed);
		return pr_err_set(err, PR_EIO, "relay: cannot start the "
		    "store thread: %s", uv_strerror(r));
	}
	*w_r = wk;
	return 0;
}

void
relay_worker_submit(struct relay_worker *wk, struct relay_work *w,
    relay_work_run_cb run, relay_work_done_cb done)
{
	w->run = run;
	w->done = done;
	w->next = NULL;
	uv_mutex_lock(&wk->mu);
	if (wk->stopping) {
		uv_mutex_unlock(&wk->mu);
		fatal("relay: work submitted to a stopped store thread");
	}
	*wk->queue_tail = w;
	wk->queue_tail = &w->next;
	uv_cond_signal(&wk->cond);
	uv_mutex_unlock(&wk->mu);
}

void
relay_worker_stop(struct relay_worker *wk, void (*stopped_cb)(void *data),
    void *data)
{
	uv_mutex_lock(&wk->mu);
	wk->stopping = true;
	wk->stopped_cb = stopped_cb;
	wk->stopped_data = data;
	uv_cond_signal(&wk->cond);
	uv_mutex_unlock(&wk->mu);
}
