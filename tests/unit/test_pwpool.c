/*
 * test_pwpool.c - the password pool: round-robin between client keys,
 * the per-key share and the queue bound answered at once, done callbacks
 * on the loop, and a stop that runs what was queued.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "pwpool.h"
#include "tap.h"

struct t_job {
	struct pwpool_job pj;
	int id;
	int order;                /* position among the jobs run */
};

static uv_mutex_t t_mu;
static uv_sem_t t_gate;       /* holds the one thread in its first job */
static int t_ran, t_done;
static int t_first_hold = 1;

static void
t_run(struct pwpool_job *pj)
{
	struct t_job *j = (struct t_job *)pj;

	uv_mutex_lock(&t_mu);
	j->order = t_ran++;
	uv_mutex_unlock(&t_mu);
	if (j->order == 0 && t_first_hold)
		uv_sem_wait(&t_gate);
}

static void
t_done_cb(struct pwpool_job *pj)
{
	(void)pj;
	t_done++;
}

static void
t_init(struct t_job *j, int id, const char *key)
{
	memset(j, 0, sizeof(*j));
	j->id = id;
	j->pj.run = t_run;
	j->pj.done = t_done_cb;
	snprintf(j->pj.key, sizeof(j->pj.key), "%s", key);
}

/* Waits until the pool's one thread has taken the job that holds it. */
static void
t_wait_held(void)
{
	int r;

	for (;;) {
		uv_mutex_lock(&t_mu);
		r = t_ran;
		uv_mutex_unlock(&t_mu);
		if (r > 0)
			return;
		uv_sleep(1);
	}
}

int
main(void)
{
	uv_loop_t *loop = uv_default_loop();
	struct pwpool *pp;
	struct pr_err err;
	struct t_job a[6], b, c[3], hold, late;
	int i, refused = 0;

	uv_mutex_init(&t_mu);
	uv_sem_init(&t_gate, 0);
	TAP_EQ_INT(pwpool_new(loop, 1, 8, 4, &pp, &err), 0, "new");

	/* The one thread is held in "hold"; then client A queues more than
	 * its share, B one job, C three. */
	t_init(&hold, 100, "hold");
	TAP_EQ_INT(pwpool_submit(pp, &hold.pj), 0, "a job that holds the "
	    "thread");
	t_wait_held();
	for (i = 0; i < 6; i++) {
		t_init(&a[i], i, "192.0.2.1");
		if (pwpool_submit(pp, &a[i].pj) == PR_EAGAIN)
			refused++;
	}
	TAP_EQ_INT(refused, 2, "a client past its share of 4 is refused "
	    "at once");
	t_init(&b, 10, "192.0.2.2");
	TAP_EQ_INT(pwpool_submit(pp, &b.pj), 0, "another client is let in");
	for (i = 0; i < 3; i++) {
		t_init(&c[i], 20 + i, "192.0.2.3");
		TAP_EQ_INT(pwpool_submit(pp, &c[i].pj), 0, "third client, "
		    "job %d", i);
	}
	TAP_EQ_INT(pwpool_queued(pp), 8, "8 queued: the bound");
	t_init(&late, 101, "192.0.2.9");
	TAP_EQ_INT(pwpool_submit(pp, &late.pj), PR_EAGAIN, "past the queue "
	    "bound: refused at once");

	uv_sem_post(&t_gate);
	while (t_done < 9)
		uv_run(loop, UV_RUN_ONCE);
	TAP_EQ_INT(t_done, 9, "every accepted job ran and came back");
	/* Round-robin: A, B, C, A, C, A, C, A. */
	TAP_OK(a[0].order == 1 && b.order == 2 && c[0].order == 3 &&
	    a[1].order == 4 && c[1].order == 5 && a[2].order == 6 &&
	    c[2].order == 7 && a[3].order == 8,
	    "one turn per client and round (a0 %d, b %d, c0 %d, a1 %d)",
	    a[0].order, b.order, c[0].order, a[1].order);

	/* A client that failed recently goes after the others. */
	t_first_hold = 1;
	t_ran = 0;
	t_init(&hold, 102, "hold");
	pwpool_submit(pp, &hold.pj);
	t_wait_held();
	t_init(&a[0], 40, "192.0.2.1");
	a[0].pj.low = true;
	t_init(&a[1], 41, "192.0.2.1");
	a[1].pj.low = true;
	t_init(&b, 42, "192.0.2.2");
	TAP_EQ_INT(pwpool_submit(pp, &a[0].pj), 0, "low job");
	TAP_EQ_INT(pwpool_submit(pp, &a[1].pj), 0, "another low job");
	TAP_EQ_INT(pwpool_submit(pp, &b.pj), 0, "a normal job after them");
	uv_sem_post(&t_gate);
	while (t_done < 13)
		uv_run(loop, UV_RUN_ONCE);
	TAP_OK(b.order == 1 && a[0].order == 2 && a[1].order == 3,
	    "the normal job runs first (b %d, low %d %d)", b.order,
	    a[0].order, a[1].order);

	/* Stop with work queued: it still runs. */
	t_first_hold = 0;
	t_ran = 0;
	for (i = 0; i < 3; i++) {
		t_init(&c[i], 30 + i, "192.0.2.3");
		pwpool_submit(pp, &c[i].pj);
	}
	pwpool_stop(&pp);
	TAP_OK(pp == NULL, "stop clears the pointer");
	uv_run(loop, UV_RUN_DEFAULT);
	TAP_EQ_INT(t_done, 16, "queued jobs run during the stop");
	TAP_EQ_INT(uv_loop_close(loop), 0, "nothing left on the loop");
	return tap_done();
}
