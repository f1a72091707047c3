/* store_throttle_job.c - the throttling job of a store worker. */
#include "store_throttle_job.h"

#include <string.h>

#include "authlimit.h"

/* Worker thread: every failure and success queued together, in one
 * transaction (store_throttle_update). */
static void
store_throttle_job_batch(struct store_job *const *jobs, size_t n,
    struct store *st)
{
	struct store_throttle_update u[STORE_WORKER_BATCH_MAX];
	struct store_throttle_job *j;
	struct pr_err err;
	size_t i;

	for (i = 0; i < n; i++) {
		j = STORE_CONTAINER(jobs[i], struct store_throttle_job, job);
		memset(&u[i], 0, sizeof(u[i]));
		u[i].ip_key = j->success ? NULL : j->ip_key;
		u[i].account = j->account;
		u[i].now = j->now;
	}
	pr_err_clear(&err);
	store_throttle_update(st, u, n, AUTHLIMIT_WINDOW, &err);
	for (i = 0; i < n; i++) {
		j = STORE_CONTAINER(jobs[i], struct store_throttle_job, job);
		pr_err_clear(&j->err);
		j->status = u[i].status;
		j->counts = u[i].counts;
		if (j->status < 0)
			pr_err_set(&j->err, j->status, "%s", err.msg[0] ?
			    err.msg : pr_strerror(j->status));
	}
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
	j->job.run = NULL;
	j->job.batch = store_throttle_job_batch;
	j->job.done = store_throttle_job_done;
	j->job.bytes = 0;
	store_worker_submit(wk, &j->job);
}
