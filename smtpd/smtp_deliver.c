/* smtp_deliver.c - deliveries as store worker jobs (group commit). */
#include "smtp_deliver.h"

#include "log.h"

/* Worker thread: one transaction, one fsync, for the whole group. */
static void
smtp_deliver_batch(struct store_job *const *jobs, size_t n,
    struct store *st)
{
	struct store_msg *msgs[STORE_WORKER_BATCH_MAX];
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		msgs[i] = &STORE_CONTAINER(jobs[i], struct smtp_deliver_job,
		    job)->msg;
	r = store_deliver(st, msgs, n);
	if (r < 0)
		log_err(NULL, "delivery batch of %zu failed: %s", n,
		    msgs[0]->err.msg[0] ? msgs[0]->err.msg : pr_strerror(r));
	else
		log_debug(NULL, "committed a batch of %zu", n);
}

static void
smtp_deliver_done(struct store_job *job)
{
	struct smtp_deliver_job *dj = STORE_CONTAINER(job,
	    struct smtp_deliver_job, job);

	dj->done_cb(dj);
}

void
smtp_deliver_submit(struct store_worker *wk, struct smtp_deliver_job *job)
{
	job->job.run = NULL;
	job->job.batch = smtp_deliver_batch;
	job->job.done = smtp_deliver_done;
	job->job.bytes = job->msg.head_len + job->msg.body_len;
	store_worker_submit(wk, &job->job);
}
