/*
 * pop3_store.c - the POP3 job types: what each one does on the store
 * worker's thread.
 */
#include "pop3_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

/* Worker thread: the job's store calls, on the worker's connection. */
/*
 * A write the way out of a full disk needs (the lock of a login, the
 * deletions of QUIT) that failed for want of room: the store's reserve
 * gives room back and the job runs once more (store_reserve.c).
 */
static bool
pop3_store_make_room(struct pop3_job *j, struct store *st)
{
	int64_t n;

	if (j->status != PR_EFULL || (n = store_reserve_release(st)) <= 0)
		return false;
	log_warn(NULL, "disk full: released the reserve (%lld octets) so "
	    "that users can delete mail", (long long)n);
	return true;
}

static void pop3_store_run_once(struct pop3_job *j, struct store *st);

/* store_maildrop_scan: one entry into the snapshot. */
static int
pop3_store_entry(void *ctx, const struct store_entry *e)
{
	struct pop3_job *j = ctx;
	struct pop3_msg *m;

	if (j->n_msgs == j->cap_msgs) {
		size_t cap = j->cap_msgs ? j->cap_msgs * 2 : 64;

		/* Mail that came since the counter was read can make it
		 * grow once more. */
		if (j->cap_msgs == 0 && j->hint_msgs > 0)
			cap = j->hint_msgs + 16;
		if (cap > SIZE_MAX / sizeof(*j->msgs))
			return PR_ENOMEM;
		j->msgs = xrealloc(j->msgs, cap * sizeof(*j->msgs));
		j->cap_msgs = cap;
	}
	m = &j->msgs[j->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->id = e->id;
	m->size = e->size;
	snprintf(m->uidl, sizeof(m->uidl), "%s", e->uidl);
	j->octets += e->size;
	return 0;
}

static void
pop3_store_run(struct store_job *sj, struct store *st)
{
	struct pop3_job *j = STORE_CONTAINER(sj, struct pop3_job, job);
	struct pr_err rerr;

	pop3_store_run_once(j, st);
	if (pop3_store_make_room(j, st))
		pop3_store_run_once(j, st);
	/* Deleted mail may have made room: the reserve comes back. */
	if ((j->type == POP3_JOB_COMMIT && j->status == 0 && j->n_ids > 0 &&
	    !j->drop_left) || (j->type == POP3_JOB_DROP_STEP && j->status == 0))
		(void)store_reserve_ensure(st, &rerr);
}

static void
pop3_store_run_once(struct pop3_job *j, struct store *st)
{
	struct pr_err uerr;

	pr_err_clear(&j->err);
	switch (j->type) {
	case POP3_JOB_AUTH_INFO:
		j->status = store_login_lookup(st, j->address, j->tag,
		    j->default_domain, &j->login, &j->err);
		if (j->status == 0 && j->login.kind == STORE_LOGIN_NONE)
			j->status = pr_err_set(&j->err, PR_ENOENT,
			    "no such login");
		j->user_id = j->login.user_id;
		pr_err_clear(&j->throttle_err);
		/* App passwords and devices count as accounts of their
		 * own (store.h, "Logins"). */
		j->throttle_status = store_throttle_get(st, j->ip_key,
		    j->login.account, j->now, j->window, &j->throttle,
		    &j->throttle_err);
		break;
	case POP3_JOB_OPEN: {
		free(j->msgs);
		j->msgs = NULL;
		j->n_msgs = j->cap_msgs = 0;
		j->octets = 0;
		j->status = store_maildrop_lock(st, j->user_id, &j->err);
		if (j->status < 0)
			break;
		/* The listing is the snapshot the session shows: mail that
		 * arrives later is not part of it (RFC 1939 8).  Sized by the
		 * user's counter, so that it is one allocation. */
		j->status = store_maildrop_scan(st, j->user_id,
		    pop3_store_entry, j, &j->hint_msgs, &j->err);
		if (j->status < 0) {
			free(j->msgs);
			j->msgs = NULL;
			j->n_msgs = 0;
			store_maildrop_unlock(st, j->user_id, &uerr);
		}
		break;
	}
	case POP3_JOB_READ: {
		struct store_body *b = NULL;
		int64_t size;

		/* A store_body is just (row, size): opening it per chunk
		 * is a cached statement and keeps no state between jobs. */
		j->status = store_body_open(st, j->user_id, j->entry_id, &b,
		    &size, &j->err);
		if (j->status < 0)
			break;
		j->nread = store_body_read(b, j->offset, j->buf, j->len);
		store_body_close(&b);
		if (j->nread < 0)
			j->status = pr_err_set(&j->err, (int)j->nread,
			    "cannot read message: %s",
			    pr_strerror((int)j->nread));
		break;
	}
	case POP3_JOB_COMMIT: {
		/* RFC 1939 6: the deletions and their trace, one commit; a
		 * big one is a committed record, finished in slices by
		 * POP3_JOB_DROP_STEP jobs, so that the +OK and the other
		 * sessions' jobs do not wait for it. */
		struct store_maildrop_end e = { .retr = j->retr,
		    .retr_at = j->retr_at, .n_retr = j->n_retr,
		    .dele = j->ids, .n_dele = j->n_ids, .info = j->trace,
		    .record_only = true };

		uint64_t start = metrics_now_us();

		j->status = store_maildrop_end(st, j->user_id, &e, &j->err);
		j->drop_left = j->status == 1;
		if (j->drop_left)
			j->status = 0;
		metrics_observe_us(METRICS_STORE_COMMIT,
		    metrics_now_us() - start);
		if (store_maildrop_unlock(st, j->user_id, &uerr) < 0)
			log_warn(NULL, "unlock maildrop %lld: %s",
			    (long long)j->user_id, uerr.msg);
		break;
	}
	case POP3_JOB_DROP_STEP:
		j->status = store_maildrop_drop_step(st, j->user_id, &j->err);
		break;
	case POP3_JOB_UNLOCK: {
		/* A dropped session deletes nothing; what it retrieved is
		 * traced with the unlock. */
		struct store_maildrop_end e = { .retr = j->retr,
		    .retr_at = j->retr_at, .n_retr = j->n_retr,
		    .info = j->trace, .unlock = true };

		if (store_maildrop_end(st, j->user_id, &e, &j->err) < 0)
			j->status = store_maildrop_unlock(st, j->user_id,
			    &j->err);
		else
			j->status = 0;
		break;
	}
	}
}

/* Loop thread. */
static void
pop3_store_done(struct store_job *sj)
{
	struct pop3_job *j = STORE_CONTAINER(sj, struct pop3_job, job);

	j->done_cb(j);
}

void
pop3_store_submit(struct store_worker *wk, struct pop3_job *job)
{
	job->job.run = pop3_store_run;
	job->job.batch = NULL;
	job->job.done = pop3_store_done;
	job->job.bytes = 0;
	store_worker_submit(wk, &job->job);
}

/* --- A big QUIT's deletion, in the background -------------------------- */

/* Tries of a slice that failed (each waited out the busy timeout). */
#define POP3_DROP_TRIES 3

struct pop3_drop {
	struct pop3_job job;
	struct pop3_drop *next, **prevp;  /* on the server's list */
	struct pop3_drop_wait *waiters;
	struct store_worker **wkp;
	const bool *stopping;
	size_t n;
	unsigned fails;
	uint64_t start_us;
	char sid[LOG_SID_LEN + 1];
	char user[256];
};

static void
pop3_drop_done(struct pop3_job *job)
{
	struct pop3_drop *d = job->data;
	struct pop3_drop_wait *w, *next;
	char uq[LOG_VALUE_MAX];
	const char *u;
	unsigned long long ms;

	/* POP3_DROP_TRIES failures in a row end the chain; a slice that
	 * worked starts the count again. */
	if (job->status >= 0)
		d->fails = 0;
	else if (++d->fails < POP3_DROP_TRIES && !*d->stopping)
		job->status = 1;
	if (job->status > 0 && !*d->stopping && *d->wkp != NULL) {
		pop3_store_submit(*d->wkp, &d->job);
		return;
	}
	ms = (unsigned long long)((metrics_now_us() - d->start_us) / 1000);
	u = log_value(d->user, uq, sizeof(uq));
	if (job->status == 0)
		log_info(d->sid, "deletion finished user=%s deleted=%zu ms=%llu",
		    u, d->n, ms);
	else if (job->status < 0)
		log_err(d->sid, "deletion interrupted user=%s ms=%llu "
		    "reason=\"%s\"; the rest is deleted at the next login",
		    u, ms, job->err.msg);
	else
		log_info(d->sid, "deletion interrupted user=%s ms=%llu "
		    "reason=stopping; the rest is deleted at the next start",
		    u, ms);
	if ((*d->prevp = d->next) != NULL)
		d->next->prevp = d->prevp;
	for (w = d->waiters; w != NULL; w = next) {
		next = w->next;
		w->cb(w);
	}
	free(d);
}

void
pop3_store_drop_start(struct store_worker **wkp, const bool *stopping,
    struct pop3_drop **drops, int64_t user_id, size_t n, const char *sid,
    const char *user)
{
	struct pop3_drop *d;

	if (*stopping || *wkp == NULL) {
		char uq[LOG_VALUE_MAX];

		log_info(sid, "deletion deferred user=%s reason=stopping; it "
		    "is finished at the next start",
		    log_value(user, uq, sizeof(uq)));
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->wkp = wkp;
	d->stopping = stopping;
	d->n = n;
	d->start_us = metrics_now_us();
	snprintf(d->sid, sizeof(d->sid), "%s", sid);
	snprintf(d->user, sizeof(d->user), "%s", user);
	if ((d->next = *drops) != NULL)
		d->next->prevp = &d->next;
	d->prevp = drops;
	*drops = d;
	d->job.type = POP3_JOB_DROP_STEP;
	d->job.user_id = user_id;
	d->job.data = d;
	d->job.done_cb = pop3_drop_done;
	pop3_store_submit(*wkp, &d->job);
}

bool
pop3_store_drop_wait(struct pop3_drop *drops, int64_t user_id,
    struct pop3_drop_wait *w)
{
	for (; drops != NULL; drops = drops->next)
		if (drops->job.user_id == user_id) {
			w->next = drops->waiters;
			drops->waiters = w;
			return true;
		}
	return false;
}
