/*
 * store_queue.c - the outbound queue: administration and the runner side.
 *
 * A queue entry is one message (its body shared with any local copies)
 * with the remote recipients still to be delivered.  A recipient leaves
 * when it is delivered or fails for good; the entry leaves with its last
 * recipient, and the body with its last reference (trigger queue_delete).
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reads the pending recipients of queue entry qid into sv. */
static int
store_queue_rcpts(struct store *st, int64_t qid, struct store_strv *sv,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store__stmt(st, STORE_Q_QRCPT_LIST,
	    "SELECT id, address FROM queue_rcpt WHERE queue_id = ?1"
	    " ORDER BY id", err)) == NULL)
		return store__errcode(err);
	sqlite3_bind_int64(s, 1, qid);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (store__strv_push(sv,
		    (const char *)sqlite3_column_text(s, 1)) < 0) {
			sqlite3_reset(s);
			return pr_err_set(err, PR_ENOMEM, "out of memory");
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__fail(st, err, "cannot read queue recipients");
	return 0;
}

/* A queue entry as collected for store_queue_list. */
struct store_qentry {
	struct store_queue_item item;
	struct store_strv strs;  /* msgid, sender, last_error */
	struct store_strv rcpts;
};

static void
store_qentries_free(struct store_qentry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		store__strv_fini(&v[i].strs);
		store__strv_fini(&v[i].rcpts);
	}
	free(v);
}

int
store_queue_list(struct store *st,
    int (*cb)(void *ctx, const struct store_queue_item *q), void *ctx,
    struct pr_err *err)
{
	struct store_qentry *v = NULL, *nv, *e;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int r, rc;

	/* One snapshot for the entries and their recipients; the callbacks
	 * run after it ends. */
	if ((r = store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		return r;
	if ((s = store__stmt(st, STORE_Q_QUEUE_LIST,
	    "SELECT id, msgid, sender, created, next_attempt, attempts,"
	    " last_error FROM queue ORDER BY id", err)) == NULL) {
		r = store__errcode(err);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		e = &v[n++];
		memset(e, 0, sizeof(*e));
		e->item.id = sqlite3_column_int64(s, 0);
		e->item.created = sqlite3_column_int64(s, 3);
		e->item.next_attempt = sqlite3_column_int64(s, 4);
		e->item.attempts = sqlite3_column_int(s, 5);
		if (store__strv_push(&e->strs,
		    (const char *)sqlite3_column_text(s, 1)) < 0 ||
		    store__strv_push(&e->strs,
		    (const char *)sqlite3_column_text(s, 2)) < 0 ||
		    store__strv_push(&e->strs,
		    (const char *)sqlite3_column_text(s, 6)) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(s);
	if (rc == SQLITE_NOMEM) {
		r = pr_err_set(err, PR_ENOMEM, "out of memory");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = store__fail(st, err, "cannot list the queue");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((r = store_queue_rcpts(st, v[i].item.id, &v[i].rcpts,
		    err)) < 0)
			goto out;
		v[i].item.msgid = v[i].strs.v[0];
		v[i].item.sender = v[i].strs.v[1];
		v[i].item.last_error = v[i].strs.v[2];
		v[i].item.n_rcpts = v[i].rcpts.n;
		v[i].item.rcpts = (const char *const *)v[i].rcpts.v;
	}
	store__rollback(st);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = cb(ctx, &v[i].item);
out:
	store__rollback(st);
	store_qentries_free(v, n);
	return r;
}

int
store_queue_del(struct store *st, int64_t id, struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	/* Recipients go by ON DELETE CASCADE, the body by trigger. */
	if ((s = store__stmt(st, STORE_Q_QUEUE_DEL,
	    "DELETE FROM queue WHERE id = ?1", err)) == NULL)
		return store__errcode(err);
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__fail(st, err, "cannot delete queue entry");
	if (sqlite3_changes(st->db) == 0)
		return pr_err_set(err, PR_ENOENT, "no queue entry %lld",
		    (long long)id);
	return 0;
}

int
store_queue_flush(struct store *st, struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store__stmt(st, STORE_Q_QUEUE_FLUSH,
	    "UPDATE queue SET next_attempt = ?1 WHERE next_attempt > ?1",
	    err)) == NULL)
		return store__errcode(err);
	sqlite3_bind_int64(s, 1, (int64_t)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__fail(st, err, "cannot flush the queue");
	return 0;
}

void
store_queue_jobs_free(struct store_queue_job *jobs, size_t n)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(jobs[i].rcpts);
	free(jobs);
}

/* Fills job's recipients (reading inside the caller's snapshot). */
static int
store_queue_job_rcpts(struct store *st, struct store_queue_job *job,
    struct pr_err *err)
{
	struct store_strv sv = { 0 };
	int64_t *ids = NULL;
	sqlite3_stmt *s;
	size_t cap = 0;
	int rc, r = 0;

	/* Two passes would need a count query; collect ids as we go. */
	if ((s = store__stmt(st, STORE_Q_QRCPT_LIST,
	    "SELECT id, address FROM queue_rcpt WHERE queue_id = ?1"
	    " ORDER BY id", err)) == NULL)
		return store__errcode(err);
	sqlite3_bind_int64(s, 1, job->id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sv.n == cap) {
			int64_t *nids;

			cap = cap ? 2 * cap : 8;
			if ((nids = realloc(ids, cap * sizeof(*ids))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			ids = nids;
		}
		ids[sv.n] = sqlite3_column_int64(s, 0);
		if (store__strv_push(&sv,
		    (const char *)sqlite3_column_text(s, 1)) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(s);
	if (rc == SQLITE_NOMEM)
		r = pr_err_set(err, PR_ENOMEM, "out of memory");
	else if (rc != SQLITE_DONE)
		r = store__fail(st, err, "cannot read queue recipients");
	else if (sv.n > 0 &&
	    (job->rcpts = calloc(sv.n, sizeof(*job->rcpts))) == NULL)
		r = pr_err_set(err, PR_ENOMEM, "out of memory");
	if (r == 0) {
		job->n_rcpts = sv.n;
		for (size_t i = 0; i < sv.n; i++) {
			job->rcpts[i].id = ids[i];
			snprintf(job->rcpts[i].address,
			    sizeof(job->rcpts[i].address), "%s", sv.v[i]);
		}
	}
	free(ids);
	store__strv_fini(&sv);
	return r;
}

int
store_queue_due(struct store *st, int64_t now, size_t max,
    struct store_queue_job **jobs_r, size_t *n_r, struct pr_err *err)
{
	struct store_queue_job *jobs = NULL, *j;
	sqlite3_stmt *s;
	size_t n = 0;
	int r, rc;

	*jobs_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	if (max > 10000)
		max = 10000;
	if ((jobs = calloc(max, sizeof(*jobs))) == NULL)
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	if ((r = store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		goto fail;
	/* Most overdue first: next_attempt order, queue_next index. */
	if ((s = store__stmt(st, STORE_Q_QUEUE_DUE,
	    "SELECT q.id, q.msgid, q.sender, q.created, q.attempts, b.size"
	    " FROM queue q JOIN bodies b ON b.id = q.body_id"
	    " WHERE q.next_attempt <= ?1 ORDER BY q.next_attempt, q.id"
	    " LIMIT ?2", err)) == NULL) {
		r = store__errcode(err);
		goto fail;
	}
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int64(s, 2, (int64_t)max);
	while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		j = &jobs[n++];
		j->id = sqlite3_column_int64(s, 0);
		snprintf(j->msgid, sizeof(j->msgid), "%s",
		    (const char *)sqlite3_column_text(s, 1));
		snprintf(j->sender, sizeof(j->sender), "%s",
		    (const char *)sqlite3_column_text(s, 2));
		j->created = sqlite3_column_int64(s, 3);
		j->attempts = sqlite3_column_int(s, 4);
		j->size = sqlite3_column_int64(s, 5);
	}
	sqlite3_reset(s);
	if (n < max && rc != SQLITE_DONE) {
		r = store__fail(st, err, "cannot read the queue");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if ((r = store_queue_job_rcpts(st, &jobs[i], err)) < 0)
			goto fail;
	store__rollback(st);
	if (n == 0) {
		free(jobs);
		jobs = NULL;
	}
	*jobs_r = jobs;
	*n_r = n;
	return 0;

fail:
	store__rollback(st);
	store_queue_jobs_free(jobs, n);
	return r;
}

int
store_queue_next_due(struct store *st, int64_t *when_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	*when_r = 0;
	if ((s = store__stmt(st, STORE_Q_QUEUE_NEXT,
	    "SELECT min(next_attempt) FROM queue", err)) == NULL)
		return store__errcode(err);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) != SQLITE_NULL)
		*when_r = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return store__fail(st, err, "cannot read the queue");
	return 0;
}

int
store_queue_body_open(struct store *st, int64_t queue_id,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	struct store_body *b;
	int rc;

	*b_r = NULL;
	if (size_r != NULL)
		*size_r = 0;
	if ((s = store__stmt(st, STORE_Q_QUEUE_BODY,
	    "SELECT q.body_id, b.size FROM queue q"
	    " JOIN bodies b ON b.id = q.body_id WHERE q.id = ?1",
	    err)) == NULL)
		return store__errcode(err);
	sqlite3_bind_int64(s, 1, queue_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if ((b = calloc(1, sizeof(*b))) == NULL) {
			sqlite3_reset(s);
			return pr_err_set(err, PR_ENOMEM, "out of memory");
		}
		b->st = st;
		b->rowid = sqlite3_column_int64(s, 0);
		b->size = sqlite3_column_int64(s, 1);
		*b_r = b;
		if (size_r != NULL)
			*size_r = b->size;
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return pr_err_set(err, PR_ENOENT, "no queue entry %lld",
		    (long long)queue_id);
	if (rc != SQLITE_ROW)
		return store__fail(st, err, "cannot open queued message");
	return 0;
}
