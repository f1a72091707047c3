/* store_throttle_job.c - the throttling job of a store worker. */
#include "store_throttle_job.h"

static void
store_throttle_job_run(struct store_job *sj, struct store *st)
{
	struct store_throttle_job *j = STORE_CONTAINER(sj,
	    struct store_throttle_job, job);

	pr_err_clear(&j->err);
	if (j->success)
		j->status = store_throttle_clear(st, j->account, &j->err);
	else
		j->status = store_throttle_fail(st, j->ip_key, j->account,
		    j->now, j->window, &j->counts, &j->err);
}

static void
store_throttle_job_done(struct store_job *sj)
{
	struct store_throttle_job *j = STORE_CONTAINER(sj,
	    struct store_throttle_job, job);

	j->done_cb(j);
}

void
store_throttle_submit(struct store_worker *wk, struct store_throttle_job *j)
{
	j->job.run = store_throttle_job_run;
	j->job.batch = NULL;
	j->job.done = store_throttle_job_done;
	j->job.bytes = 0;
	store_worker_submit(wk, &j->job);
}
