/* store_greylist_job.c - the greylisting job of a store worker. */
#include "store_greylist_job.h"

#include <string.h>

/* Worker thread: every request queued together, in one transaction. */
static void
store_greylist_job_batch(struct store_job *const *jobs, size_t n,
    struct store *st)
{
	struct store_greylist_req q[STORE_WORKER_BATCH_MAX];
	struct store_greylist_job *j;
	struct pr_err err;
	size_t i;

	for (i = 0; i < n; i++) {
		j = STORE_CONTAINER(jobs[i], struct store_greylist_job, job);
		q[i] = j->req;
		q[i].net = j->net;
		q[i].sender = j->sender;
		q[i].rcpt = j->rcpt;
		q[i].spf_domain = j->spf_domain;
	}
	pr_err_clear(&err);
	store_greylist_update(st, q, n, &err);
	for (i = 0; i < n; i++) {
		j = STORE_CONTAINER(jobs[i], struct store_greylist_job, job);
		j->req.status = q[i].status;
		j->req.result = q[i].result;
		j->req.wait = q[i].wait;
		pr_err_clear(&j->err);
		if (q[i].status < 0)
			pr_err_set(&j->err, q[i].status, "%s", err.msg[0] ?
			    err.msg : pr_strerror(q[i].status));
	}
}

static void
store_greylist_job_done(struct store_job *sj)
{
	struct store_greylist_job *j = STORE_CONTAINER(sj,
	    struct store_greylist_job, job);

	j->done_cb(j);
}

void
store_greylist_submit(struct store_worker *wk, struct store_greylist_job *j)
{
	j->job.run = NULL;
	j->job.batch = store_greylist_job_batch;
	j->job.done = store_greylist_job_done;
	j->job.bytes = 0;
	store_worker_submit(wk, &j->job);
}
