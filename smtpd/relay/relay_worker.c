/* relay_worker.c - relay work items on the daemon's store worker. */
#include "relay_worker.h"

static void
relay_worker_run(struct store_job *job, struct store *st)
{
	struct relay_work *w = STORE_CONTAINER(job, struct relay_work, job);

	w->run(w, st);
}

static void
relay_worker_done(struct store_job *job)
{
	struct relay_work *w = STORE_CONTAINER(job, struct relay_work, job);

	w->done(w);
}

void
relay_worker_submit(struct store_worker *wk, struct relay_work *w,
    relay_work_run_cb run, relay_work_done_cb done)
{
	w->run = run;
	w->done = done;
	w->job.run = relay_worker_run;
	w->job.batch = NULL;
	w->job.done = relay_worker_done;
	w->job.bytes = 0;
	store_worker_submit(wk, &w->job);
}
