/*
 * test_store_worker.c - the store worker: submission order, batches
 * bounded by count and by bytes, done callbacks on the loop thread, and
 * the one stop path (idle, with jobs queued, after a done that submitted
 * another job).
 *
 * A "gate" job holds the worker thread until the test has queued what it
 * wants grouped, so the batches formed are deterministic.
 */
#include "test_store_util.c"

#include <uv.h>

#include "store_worker.h"

#define T_JOBS 600

struct t_job {
	struct store_job job;
	int seq;                   /* submission order */
	int ran;                   /* run order, from 1 */
	int group;                 /* which group it ran in, from 1 */
	size_t group_n;            /* size of that group */
	bool done_on_loop;
	bool has_store;
	struct t_job *then;        /* submitted by this job's done */
};

static uv_thread_t t_loop_thread;
static uv_sem_t t_gate;
static int t_ran, t_groups, t_done, t_done_order_ok, t_stopped, t_last_ran;
static struct store_worker *t_wk;
static bool t_stop_in_done;

static void
t_run(struct store_job *job, struct store *st)
{
	struct t_job *t = STORE_CONTAINER(job, struct t_job, job);

	t->ran = ++t_ran;
	t->group = ++t_groups;
	t->group_n = 1;
	t->has_store = st != NULL && store_schema_version(st) > 0;
}

static void
t_batch(struct store_job *const *jobs, size_t n, struct store *st)
{
	size_t i;

	t_groups++;
	for (i = 0; i < n; i++) {
		struct t_job *t = STORE_CONTAINER(jobs[i], struct t_job, job);

		t->ran = ++t_ran;
		t->group = t_groups;
		t->group_n = n;
		t->has_store = st != NULL;
	}
}

/* Holds the worker thread until the test posts t_gate. */
static void
t_gate_run(struct store_job *job, struct store *st)
{
	(void)job;
	(void)st;
	uv_sem_wait(&t_gate);
	t_ran++;
	t_groups++;
}

static void
t_done_cb(struct store_job *job)
{
	struct t_job *t = STORE_CONTAINER(job, struct t_job, job);
	uv_thread_t self = uv_thread_self();

	t->done_on_loop = uv_thread_equal(&self, &t_loop_thread);
	if (t->ran > t_last_ran)
		t_done_order_ok++;
	t_last_ran = t->ran;
	t_done++;
	if (t->then != NULL)
		store_worker_submit(t_wk, &t->then->job);
	else if (t_stop_in_done)
		store_worker_stop(&t_wk, NULL, NULL);
}

static void
t_stopped_cb(void *data)
{
	int *n = data;

	(*n)++;
	t_stopped++;
}

static void
t_reset(void)
{
	t_ran = t_groups = t_done = t_done_order_ok = t_stopped = 0;
	t_last_ran = 0;
	t_stop_in_done = false;
}

static struct store_worker *
t_new(uv_loop_t *loop)
{
	struct store_worker *wk = NULL;
	struct pr_err err = { 0 };

	if (store_worker_new(loop, t_data, STORE_OPEN_CREATE, &wk, &err) < 0) {
		printf("Bail out! store_worker_new: %s\n", err.msg);
		exit(1);
	}
	return wk;
}

static void
t_init(struct t_job *t, int seq, bool batch, size_t bytes)
{
	memset(t, 0, sizeof(*t));
	t->seq = seq;
	t->job.run = batch ? NULL : t_run;
	t->job.batch = batch ? t_batch : NULL;
	t->job.done = t_done_cb;
	t->job.bytes = bytes;
}

static struct store_job t_gate_job = { .run = t_gate_run };

static void
t_gate_done(struct store_job *job)
{
	(void)job;
	t_done++;
	t_done_order_ok++;
}

/* Jobs of both kinds, interleaved: they run and complete in order, and
 * the batch jobs between two plain ones form one group. */
static void
test_order(uv_loop_t *loop)
{
	static struct t_job jobs[T_JOBS];
	int i, in_order = 0, on_loop = 0, store_ok = 0, grouped = 0;
	int stopped = 0;

	t_reset();
	t_wk = t_new(loop);
	t_gate_job.done = t_gate_done;
	store_worker_submit(t_wk, &t_gate_job);
	for (i = 0; i < T_JOBS; i++) {
		/* Every tenth job has no batch hook: it splits the run. */
		t_init(&jobs[i], i, i % 10 != 0, 100);
		store_worker_submit(t_wk, &jobs[i].job);
	}
	uv_sem_post(&t_gate);
	store_worker_stop(&t_wk, t_stopped_cb, &stopped);
	TAP_OK(t_wk == NULL, "stop clears the caller's pointer");
	uv_run(loop, UV_RUN_DEFAULT);
	for (i = 0; i < T_JOBS; i++) {
		in_order += jobs[i].ran == i + 2;
		on_loop += jobs[i].done_on_loop;
		store_ok += jobs[i].has_store;
		/* Jobs 1..9 of each ten share one group. */
		if (i % 10 != 0)
			grouped += jobs[i].group_n == 9 &&
			    jobs[i].group == jobs[i - i % 10 + 1].group;
		else
			grouped += jobs[i].group_n == 1;
	}
	TAP_EQ_INT(in_order, T_JOBS, "jobs ran in submission order");
	TAP_EQ_INT(t_done, T_JOBS + 1, "every done ran");
	TAP_EQ_INT(t_done_order_ok, T_JOBS + 1, "dones ran in order");
	TAP_EQ_INT(on_loop, T_JOBS, "every done ran on the loop thread");
	TAP_EQ_INT(store_ok, T_JOBS, "jobs got the worker's store");
	TAP_EQ_INT(grouped, T_JOBS, "only neighbours with one hook batch");
	TAP_EQ_INT(stopped, 1, "stopped_cb ran once");
}

/* 600 small batch jobs queued at once: groups of 256, 256, 88. */
static void
test_batch_count(uv_loop_t *loop)
{
	static struct t_job jobs[T_JOBS];
	int i, stopped = 0;

	t_reset();
	t_wk = t_new(loop);
	store_worker_submit(t_wk, &t_gate_job);
	for (i = 0; i < T_JOBS; i++) {
		t_init(&jobs[i], i, true, 1024);
		store_worker_submit(t_wk, &jobs[i].job);
	}
	uv_sem_post(&t_gate);
	store_worker_stop(&t_wk, t_stopped_cb, &stopped);
	uv_run(loop, UV_RUN_DEFAULT);
	TAP_EQ_INT(jobs[0].group_n, STORE_WORKER_BATCH_MAX,
	    "the first group is %d jobs", STORE_WORKER_BATCH_MAX);
	TAP_EQ_INT(jobs[255].group, jobs[0].group, "job 255 in the first");
	TAP_EQ_INT(jobs[256].group, jobs[0].group + 1, "job 256 starts the "
	    "second");
	TAP_EQ_INT(jobs[256].group_n, STORE_WORKER_BATCH_MAX,
	    "the second is full too");
	TAP_EQ_INT(jobs[512].group_n, T_JOBS - 2 * STORE_WORKER_BATCH_MAX,
	    "the rest is the third");
	TAP_EQ_INT(t_groups, 4, "gate + three groups");
	TAP_EQ_INT(t_done, T_JOBS + 1, "every done ran");
	TAP_EQ_INT(stopped, 1, "stopped");
}

/* Byte-bounded groups: 20+20 MiB exceeds the bound, a 40 MiB job runs
 * alone, small ones fill up to the bound exactly. */
static void
test_batch_bytes(uv_loop_t *loop)
{
	static const size_t mib = 1024 * 1024;
	static const size_t sizes[] = {
		20 * mib, 20 * mib, 40 * mib, 1 * mib, 1 * mib,
		16 * mib, 14 * mib, 2 * mib, 1,
	};
	/* Group (1-based after the gate) each job must land in. */
	static const int want[] = { 1, 2, 3, 4, 4, 4, 4, 5, 5 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	static struct t_job jobs[N];
	int i, stopped = 0, ok = 0;

	t_reset();
	t_wk = t_new(loop);
	store_worker_submit(t_wk, &t_gate_job);
	for (i = 0; i < N; i++) {
		t_init(&jobs[i], i, true, sizes[i]);
		store_worker_submit(t_wk, &jobs[i].job);
	}
	uv_sem_post(&t_gate);
	store_worker_stop(&t_wk, t_stopped_cb, &stopped);
	uv_run(loop, UV_RUN_DEFAULT);
	for (i = 0; i < N; i++) {
		if (jobs[i].group - 1 == want[i])
			ok++;
		else
			printf("# job %d (%zu bytes) in group %d, want %d\n",
			    i, sizes[i], jobs[i].group - 1, want[i]);
	}
	TAP_EQ_INT(ok, N, "groups bounded by %u bytes",
	    STORE_WORKER_BATCH_BYTES);
	TAP_EQ_INT(jobs[2].group_n, 1, "a job over the bound runs alone");
	TAP_EQ_INT(jobs[3].group_n, 4, "1+1+16+14 MiB is one group");
	TAP_EQ_INT(t_done, N + 1, "every done ran");
	TAP_EQ_INT(stopped, 1, "stopped");
}

/* Stop while the thread is busy and jobs are queued behind it: they all
 * run and their dones come before stopped_cb. */
static void
test_stop_queued(uv_loop_t *loop)
{
	static struct t_job jobs[50];
	int i, stopped = 0, ran = 0;

	t_reset();
	t_wk = t_new(loop);
	store_worker_submit(t_wk, &t_gate_job);
	for (i = 0; i < 50; i++) {
		t_init(&jobs[i], i, i % 2, 0);
		store_worker_submit(t_wk, &jobs[i].job);
	}
	store_worker_stop(&t_wk, t_stopped_cb, &stopped);
	TAP_EQ_INT(t_done, 0, "stop returns before any done");
	TAP_EQ_INT(stopped, 0, "stopped_cb not from inside stop");
	uv_sem_post(&t_gate);
	uv_run(loop, UV_RUN_DEFAULT);
	for (i = 0; i < 50; i++)
		ran += jobs[i].ran > 0 && jobs[i].done_on_loop;
	TAP_EQ_INT(ran, 50, "queued jobs ran after stop");
	TAP_EQ_INT(t_done, 51, "and their dones");
	TAP_EQ_INT(stopped, 1, "then stopped_cb");
}

/* Stop with nothing ever submitted. */
static void
test_stop_idle(uv_loop_t *loop)
{
	struct store_worker *nothing = NULL;
	int stopped = 0;

	t_reset();
	t_wk = t_new(loop);
	/* Let the thread reach its wait first. */
	uv_sleep(20);
	store_worker_stop(&t_wk, t_stopped_cb, &stopped);
	uv_run(loop, UV_RUN_DEFAULT);
	TAP_EQ_INT(stopped, 1, "an idle worker stops");
	store_worker_stop(&nothing, t_stopped_cb, &stopped);
	TAP_EQ_INT(stopped, 1, "stopping NULL is a no-op");
}

/* A done that submits the next job (a chain), and the last done stops
 * the worker from inside its callback. */
static void
test_done_submits(uv_loop_t *loop)
{
	static struct t_job jobs[5];
	int i, ran = 0;

	t_reset();
	t_wk = t_new(loop);
	for (i = 0; i < 5; i++)
		t_init(&jobs[i], i, i == 2, 0);
	for (i = 0; i < 4; i++)
		jobs[i].then = &jobs[i + 1];
	t_stop_in_done = true;
	store_worker_submit(t_wk, &jobs[0].job);
	uv_run(loop, UV_RUN_DEFAULT);
	for (i = 0; i < 5; i++)
		ran += jobs[i].ran == i + 1 && jobs[i].done_on_loop;
	TAP_EQ_INT(ran, 5, "each done submitted the next; all ran in order");
	TAP_OK(t_wk == NULL, "the last done stopped the worker");
	TAP_EQ_INT(uv_loop_alive(loop), 0, "nothing left on the loop");
}

/* Submitting after stop is fatal (in a child process, on its own loop;
 * the last test, as the child's exit removes the test directory). */
static void
test_submit_after_stop(void)
{
	static struct t_job j;
	struct store_worker *wk;
	int status = 0;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct store_worker *keep;
		uv_loop_t child;

		(void)!freopen("/dev/null", "w", stderr);
		if (uv_loop_init(&child) != 0)
			_exit(0);
		wk = t_new(&child);
		keep = wk;
		store_worker_stop(&wk, NULL, NULL);
		t_init(&j, 0, false, 0);
		store_worker_submit(keep, &j.job);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "a submission after stop is fatal");
}

int
main(void)
{
	uv_loop_t loop;

	t_setup("worker");
	t_loop_thread = uv_thread_self();
	if (uv_loop_init(&loop) != 0 || uv_sem_init(&t_gate, 0) != 0) {
		printf("Bail out! uv_loop_init\n");
		return 1;
	}
	test_order(&loop);
	test_batch_count(&loop);
	test_batch_bytes(&loop);
	test_stop_queued(&loop);
	test_stop_idle(&loop);
	test_done_submits(&loop);
	TAP_EQ_INT(uv_loop_close(&loop), 0, "every handle was closed");
	test_submit_after_stop();
	uv_sem_destroy(&t_gate);
	return tap_done();
}
