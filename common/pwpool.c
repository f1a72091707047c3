/*
 * pwpool.c - password-hashing threads: one queue per client key, keys
 * served round-robin, a done-list back to the loop.
 *
 * Keys that have queued jobs form a ring.  A thread takes the key at the
 * head of the ring, runs that key's oldest job, and puts the key back at
 * the tail if it still has jobs: each client with work waiting gets one
 * turn per round, however many jobs it queued.  There are two rings:
 * jobs marked low (clients that failed recently) are served only while
 * no other client waits, so that a flood from many addresses, each of
 * which has failed before, does not take its share from a client with a
 * clean record.  A key lives while it has
 * jobs queued or running (that is what its share counts), so the table
 * of keys is bounded by the queue bound plus the threads.
 */
#include "pwpool.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

struct pwpool_key {
	struct pwpool_key *next;        /* all keys */
	struct pwpool_key *ring_next;   /* keys with queued jobs */
	struct pwpool_job *head, **tail;
	unsigned n;                     /* jobs queued or running */
	bool in_ring;
	bool low;
	char key[PWPOOL_KEY_MAX];
};

struct pwpool {
	uv_loop_t *loop;
	uv_thread_t *threads;
	unsigned n_threads;
	unsigned queue_max, per_key_max;
	uv_mutex_t mu;
	uv_cond_t cond;
	uv_async_t async;
	/* Under mu: */
	struct pwpool_key *keys;
	struct pwpool_key *ring[2], **ring_tail[2];   /* normal, low */
	struct pwpool_job *done, **done_tail;
	unsigned queued;
	unsigned exited;
	bool stopping;
	/* Loop thread only. */
	bool joined;
};

/* Under mu. */
static struct pwpool_key *
pwpool_key_find(struct pwpool *pp, const char *key, bool low)
{
	struct pwpool_key *k;

	for (k = pp->keys; k != NULL; k = k->next)
		if (k->low == low && strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

/* Under mu: the key leaves the table once nothing of it is left. */
static void
pwpool_key_put(struct pwpool *pp, struct pwpool_key *k)
{
	struct pwpool_key **kp;

	if (--k->n > 0)
		return;
	for (kp = &pp->keys; *kp != k; kp = &(*kp)->next)
		;
	*kp = k->next;
	free(k);
}

/* Under mu. */
static void
pwpool_ring_push(struct pwpool *pp, struct pwpool_key *k)
{
	k->ring_next = NULL;
	k->in_ring = true;
	*pp->ring_tail[k->low] = k;
	pp->ring_tail[k->low] = &k->ring_next;
}

/* Under mu, with a ring not empty: the next job, round-robin, the low
 * ring only when the other is empty. */
static struct pwpool_job *
pwpool_take(struct pwpool *pp)
{
	int r = pp->ring[0] != NULL ? 0 : 1;
	struct pwpool_key *k = pp->ring[r];
	struct pwpool_job *j = k->head;

	if ((pp->ring[r] = k->ring_next) == NULL)
		pp->ring_tail[r] = &pp->ring[r];
	k->in_ring = false;
	if ((k->head = j->next) == NULL)
		k->tail = &k->head;
	else
		pwpool_ring_push(pp, k);
	j->next = NULL;
	pp->queued--;
	return j;
}

static void
pwpool_main(void *arg)
{
	struct pwpool *pp = arg;
	struct pwpool_job *j;

	uv_mutex_lock(&pp->mu);
	for (;;) {
		while (pp->ring[0] == NULL && pp->ring[1] == NULL &&
		    !pp->stopping)
			uv_cond_wait(&pp->cond, &pp->mu);
		if (pp->ring[0] == NULL && pp->ring[1] == NULL)
			break;
		j = pwpool_take(pp);
		uv_mutex_unlock(&pp->mu);

		j->run(j);

		uv_mutex_lock(&pp->mu);
		pwpool_key_put(pp, j->k);
		j->k = NULL;
		*pp->done_tail = j;
		pp->done_tail = &j->next;
		uv_async_send(&pp->async);
	}
	pp->exited++;
	uv_mutex_unlock(&pp->mu);
	uv_async_send(&pp->async);
}

static void
pwpool_closed_cb(uv_handle_t *h)
{
	struct pwpool *pp = h->data;

	uv_cond_destroy(&pp->cond);
	uv_mutex_destroy(&pp->mu);
	free(pp->threads);
	free(pp);
}

/* Loop thread: the done callbacks, in the order the jobs finished. */
static void
pwpool_async_cb(uv_async_t *a)
{
	struct pwpool *pp = a->data;
	struct pwpool_job *j, *next;
	bool all_exited;
	unsigned i;

	uv_mutex_lock(&pp->mu);
	j = pp->done;
	pp->done = NULL;
	pp->done_tail = &pp->done;
	/* Read with the list: once every thread exited, it is the last. */
	all_exited = pp->exited == pp->n_threads;
	uv_mutex_unlock(&pp->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		j->done(j);
	}
	if (all_exited && !pp->joined) {
		pp->joined = true;
		for (i = 0; i < pp->n_threads; i++)
			uv_thread_join(&pp->threads[i]);
		uv_close((uv_handle_t *)&pp->async, pwpool_closed_cb);
	}
}

int
pwpool_new(uv_loop_t *loop, unsigned threads, unsigned queue_max,
    unsigned per_key_max, struct pwpool **pp_r, struct pr_err *err)
{
	struct pwpool *pp = xcalloc(1, sizeof(*pp));
	unsigned i;
	int r;

	*pp_r = NULL;
	pp->loop = loop;
	pp->n_threads = threads > 0 ? threads : 1;
	pp->queue_max = queue_max;
	pp->per_key_max = per_key_max > 0 ? per_key_max : UINT_MAX;
	pp->ring_tail[0] = &pp->ring[0];
	pp->ring_tail[1] = &pp->ring[1];
	pp->done_tail = &pp->done;
	pp->threads = xcalloc(pp->n_threads, sizeof(*pp->threads));
	if (uv_mutex_init(&pp->mu) < 0 || uv_cond_init(&pp->cond) < 0)
		fatal("password pool: cannot create a mutex");
	if ((r = uv_async_init(loop, &pp->async, pwpool_async_cb)) < 0)
		fatal("password pool: uv_async_init: %s", uv_strerror(r));
	pp->async.data = pp;
	for (i = 0; i < pp->n_threads; i++) {
		if ((r = uv_thread_create(&pp->threads[i], pwpool_main,
		    pp)) < 0)
			break;
	}
	if (i < pp->n_threads) {
		/* The threads that did start exit on stopping; the async
		 * callback joins them and frees the pool. */
		pp->n_threads = i;
		uv_mutex_lock(&pp->mu);
		pp->stopping = true;
		uv_cond_broadcast(&pp->cond);
		uv_mutex_unlock(&pp->mu);
		if (i == 0)
			uv_close((uv_handle_t *)&pp->async, pwpool_closed_cb);
		return pr_err_set(err, PR_EIO, "cannot start the password "
		    "threads: %s", uv_strerror(r));
	}
	*pp_r = pp;
	return 0;
}

int
pwpool_submit(struct pwpool *pp, struct pwpool_job *job)
{
	struct pwpool_key *k;

	job->next = NULL;
	job->key[PWPOOL_KEY_MAX - 1] = '\0';
	uv_mutex_lock(&pp->mu);
	if (pp->stopping) {
		uv_mutex_unlock(&pp->mu);
		fatal("password pool: job submitted after stop");
	}
	k = pwpool_key_find(pp, job->key, job->low);
	if (pp->queued >= pp->queue_max ||
	    (k != NULL && k->n >= pp->per_key_max)) {
		uv_mutex_unlock(&pp->mu);
		return PR_EAGAIN;
	}
	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		memcpy(k->key, job->key, sizeof(k->key));
		k->low = job->low;
		k->tail = &k->head;
		k->next = pp->keys;
		pp->keys = k;
	}
	k->n++;
	job->k = k;
	*k->tail = job;
	k->tail = &job->next;
	if (!k->in_ring)
		pwpool_ring_push(pp, k);
	pp->queued++;
	uv_cond_signal(&pp->cond);
	uv_mutex_unlock(&pp->mu);
	return 0;
}

unsigned
pwpool_queued(const struct pwpool *pp)
{
	unsigned n;

	uv_mutex_lock((uv_mutex_t *)&pp->mu);
	n = pp->queued;
	uv_mutex_unlock((uv_mutex_t *)&pp->mu);
	return n;
}

void
pwpool_stop(struct pwpool **ppp)
{
	struct pwpool *pp = *ppp;

	if (pp == NULL)
		return;
	*ppp = NULL;
	uv_mutex_lock(&pp->mu);
	pp->stopping = true;
	uv_cond_broadcast(&pp->cond);
	uv_mutex_unlock(&pp->mu);
}
