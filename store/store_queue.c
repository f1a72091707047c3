/*
 * store_queue.c - the outbound queue: administration and the runner side.
 *
 * A queue entry is one message (its body shared with any local copies)
 * with the remote recipients still to be delivered.  A recipient leaves
 * when it is delivered or fails for good; the entry leaves with its last
 * recipient, and the body with its last reference (trigger queue_delete).
 */
#include "store_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The (id, address) rows of queue entry qid's pending recipients. */
#define STORE_QRCPT_LIST_SQL \
	"SELECT id, address FROM queue_rcpt WHERE queue_id = ?1 ORDER BY id"
#define STORE_QRCPT_WHAT "cannot read queue recipients"

/* A queue entry as collected for store_queue_list. */
struct store_qentry {
	struct store_queue_item item;
	struct store_strv strs;  /* msgid, sender, last_error */
	struct store_strv rcpts;
	struct store_strv replies;
	int *attempts;
};

static void
store_qentries_free(struct store_qentry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		store__strv_fini(&v[i].strs);
		store__strv_fini(&v[i].rcpts);
		store__strv_fini(&v[i].replies);
		free(v[i].attempts);
	}
	free(v);
}

/* Entry e's pending recipients with their own state. */
static int
store_qentry_rcpts(struct store *st, struct store_qentry *e,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	size_t cap = 0;
	int rc;

	if ((s = store__bind(st, STORE_Q_QRCPT_STATE,
	    "SELECT address, attempts, last_reply FROM queue_rcpt"
	    " WHERE queue_id = ?1 ORDER BY id", STORE_QRCPT_WHAT, err, "i",
	    e->item.id)) == NULL)
		return store__errcode(err);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (store__grow(&e->attempts, &cap, e->rcpts.n,
		    sizeof(*e->attempts), 8) < 0)
			break;
		e->attempts[e->rcpts.n] = sqlite3_column_int(s, 1);
		if (store__strv_push(&e->rcpts,
		    (const char *)sqlite3_column_text(s, 0)) < 0 ||
		    store__strv_push(&e->replies,
		    (const char *)sqlite3_column_text(s, 2)) < 0)
			break;
	}
	return store__done(st, s, rc, STORE_QRCPT_WHAT, err);
}

int
store_queue_list(struct store *st,
    int (*cb)(void *ctx, const struct store_queue_item *q), void *ctx,
    struct pr_err *err)
{
	struct store_qentry *v = NULL, *e;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int r, rc;

	/* One snapshot for the entries and their recipients; the callbacks
	 * run after it ends. */
	if ((r = store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		return r;
	if ((s = store__bind(st, STORE_Q_QUEUE_LIST,
	    "SELECT id, msgid, sender, created, next_attempt, attempts,"
	    " last_error FROM queue ORDER BY id", "cannot list the queue", err,
	    "")) == NULL) {
		r = store__errcode(err);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (store__grow(&v, &cap, n, sizeof(*v), 16) < 0)
			break;
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
		    (const char *)sqlite3_column_text(s, 6)) < 0)
			break;
	}
	if ((r = store__done(st, s, rc, "cannot list the queue", err)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((r = store_qentry_rcpts(st, &v[i], err)) < 0)
			goto out;
		v[i].item.msgid = v[i].strs.v[0];
		v[i].item.sender = v[i].strs.v[1];
		v[i].item.last_error = v[i].strs.v[2];
		v[i].item.n_rcpts = v[i].rcpts.n;
		v[i].item.rcpts = (const char *const *)v[i].rcpts.v;
		v[i].item.rcpt_attempts = v[i].attempts;
		v[i].item.rcpt_replies = (const char *const *)v[i].replies.v;
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
	/* Recipients go by ON DELETE CASCADE, the body by trigger. */
	return store__changed(st, store__run(st, STORE_Q_QUEUE_DEL,
	    "DELETE FROM queue WHERE id = ?1", "cannot delete queue entry",
	    err, "i", id), err, "no queue entry %lld", (long long)id);
}

int
store__msgid(const char *msgid, char *id, struct pr_err *err)
{
	size_t i;

	for (i = 0; msgid[i] != '\0' && i < STORE_ID_LEN; i++) {
		if (!isxdigit((unsigned char)msgid[i]))
			break;
		id[i] = (char)tolower((unsigned char)msgid[i]);
	}
	if (i != STORE_ID_LEN || msgid[i] != '\0')
		return pr_err_set(err, PR_EINVAL, "bad queue id '%s' (%d hex "
		    "digits, as in \"queued as\")", msgid, STORE_ID_LEN);
	id[i] = '\0';
	return 0;
}

int
store_queue_del_msg(struct store *st, const char *msgid, struct pr_err *err)
{
	char id[STORE_ID_LEN + 1];
	int r;

	if ((r = store__msgid(msgid, id, err)) < 0)
		return r;
	/* Recipients go by ON DELETE CASCADE, the body by trigger. */
	return store__changed(st, store__run(st, STORE_Q_QUEUE_DEL_MSG,
	    "DELETE FROM queue WHERE msgid = ?1", "cannot delete queue entry",
	    err, "t", id), err, "no queue entry %s", id);
}

/* Inside a flush's transaction: the runner learns of it (one row). */
static int
store_queue_flush_mark(struct store *st, int64_t now, struct pr_err *err)
{
	return store__run(st, STORE_Q_QUEUE_FLUSH_MARK,
	    "UPDATE queue_flush SET at = ?1 WHERE id = 0",
	    "cannot flush the queue", err, "i", now);
}

int
store_queue_flushed(struct store *st, int64_t *at_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*at_r = 0;
	if ((r = store__row(st, STORE_Q_QUEUE_FLUSHED,
	    "SELECT at FROM queue_flush WHERE id = 0", &s,
	    "cannot read the queue", err, "")) == 1) {
		*at_r = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	return r < 0 ? r : 0;
}

int
store_queue_flush(struct store *st, struct pr_err *err)
{
	int64_t now = (int64_t)time(NULL);
	int r;

	if ((r = store__begin(st, err)) < 0)
		return r;
	if ((r = store_queue_flush_mark(st, now, err)) == 0)
		r = store__run(st, STORE_Q_QUEUE_FLUSH,
		    "UPDATE queue SET next_attempt = ?1 WHERE next_attempt > ?1",
		    "cannot flush the queue", err, "i", now);
	return store__end(st, r, err);
}

/* The entries with a recipient in domain ?1 (by the queue_rcpt_domain
 * index), and in its subdomains too (a scan of the recipients: nothing
 * indexes a suffix; ETRN is rate-limited, smtp_policy.c). */
#define STORE_QRCPT_OF_DOMAIN \
	"SELECT queue_id FROM queue_rcpt WHERE " STORE_QRCPT_DOMAIN_EXPR \
	" = ?1"
#define STORE_QRCPT_OF_DOMAINS STORE_QRCPT_OF_DOMAIN \
	" OR substr(" STORE_QRCPT_DOMAIN_EXPR ", -length(?1) - 1) = '.' || ?1"

int
store_queue_flush_domain(struct store *st, const char *domain,
    bool subdomains, size_t *n_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*n_r = 0;
	if ((r = store__begin(st, err)) < 0)
		return r;
	if (subdomains)
		r = store__row(st, STORE_Q_QUEUE_COUNT_DOMS,
		    "SELECT count(DISTINCT queue_id) FROM ("
		    STORE_QRCPT_OF_DOMAINS ")", &s, "cannot read the queue",
		    err, "t", domain);
	else
		r = store__row(st, STORE_Q_QUEUE_COUNT_DOM,
		    "SELECT count(DISTINCT queue_id) FROM ("
		    STORE_QRCPT_OF_DOMAIN ")", &s, "cannot read the queue",
		    err, "t", domain);
	if (r == 1) {
		*n_r = (size_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	if (r >= 0 && *n_r > 0 && subdomains)
		r = store__run(st, STORE_Q_QUEUE_FLUSH_DOMS,
		    "UPDATE queue SET next_attempt = ?2 WHERE next_attempt > ?2"
		    " AND id IN (" STORE_QRCPT_OF_DOMAINS ")",
		    "cannot flush the queue", err, "ti", domain,
		    (int64_t)time(NULL));
	else if (r >= 0 && *n_r > 0)
		r = store__run(st, STORE_Q_QUEUE_FLUSH_DOM,
		    "UPDATE queue SET next_attempt = ?2 WHERE next_attempt > ?2"
		    " AND id IN (" STORE_QRCPT_OF_DOMAIN ")",
		    "cannot flush the queue", err, "ti", domain,
		    (int64_t)time(NULL));
	if (r >= 0 && *n_r == 0) {
		/* Nothing written: no commit, no fsync. */
		store__rollback(st);
		return 0;
	}
	if (r >= 0)
		r = store_queue_flush_mark(st, (int64_t)time(NULL), err);
	return store__end(st, r < 0 ? r : 0, err);
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

/* Fills job's recipients and its DSN parameters (RFC 3461), reading
 * inside the caller's snapshot. */
static int
store_queue_job_rcpts(struct store *st, struct store_queue_job *job,
    struct pr_err *err)
{
	struct store_queue_rcpt *v = NULL;
	sqlite3_stmt *s;
	size_t cap = 0, n = 0;
	int rc, r;

	r = store__row(st, STORE_Q_QUEUE_DSN,
	    "SELECT dsn_ret, dsn_envid, delay_warned FROM queue WHERE id = ?1",
	    &s, "cannot read the queue", err, "i", job->id);
	if (r < 0)
		return r;
	if (r == 1) {
		job->dsn_ret = sqlite3_column_int(s, 0);
		snprintf(job->dsn_envid, sizeof(job->dsn_envid), "%s",
		    (const char *)sqlite3_column_text(s, 1));
		job->delay_warned = sqlite3_column_int(s, 2) != 0;
		sqlite3_reset(s);
	}
	if ((s = store__bind(st, STORE_Q_QRCPT_DUE,
	    "SELECT id, address, notify, orcpt FROM queue_rcpt"
	    " WHERE queue_id = ?1 ORDER BY id", STORE_QRCPT_WHAT, err, "i",
	    job->id)) == NULL)
		return store__errcode(err);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (store__grow(&v, &cap, n, sizeof(*v), 8) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		v[n].id = sqlite3_column_int64(s, 0);
		snprintf(v[n].address, sizeof(v[n].address), "%s",
		    (const char *)sqlite3_column_text(s, 1));
		v[n].notify = (unsigned)sqlite3_column_int(s, 2);
		snprintf(v[n].orcpt, sizeof(v[n].orcpt), "%s",
		    (const char *)sqlite3_column_text(s, 3));
		n++;
	}
	if ((r = store__done(st, s, rc, STORE_QRCPT_WHAT, err)) < 0) {
		free(v);
		return r;
	}
	job->rcpts = v;
	job->n_rcpts = n;
	return 0;
}

int
store_queue_due(struct store *st, int64_t now, size_t max,
    struct store_queue_job **jobs_r, size_t *n_r, struct pr_err *err)
{
	struct store_queue_job *jobs = NULL, *j;
	sqlite3_stmt *s;
	size_t n = 0, won = 0;
	int r, rc = SQLITE_DONE;

	*jobs_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	if (max > 10000)
		max = 10000;
	if ((jobs = calloc(max, sizeof(*jobs))) == NULL)
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	/* A write transaction from the start: the entries read are claimed
	 * before any other connection can read them as unclaimed. */
	if ((r = store__begin(st, err)) < 0)
		goto fail;
	/* Most overdue first: next_attempt order, queue_next index. */
	if ((s = store__bind(st, STORE_Q_QUEUE_DUE,
	    "SELECT q.id, q.msgid, q.sender, q.created, q.attempts, b.size"
	    " FROM queue q JOIN bodies b ON b.id = q.body_id"
	    " WHERE q.next_attempt <= ?1 AND q.claimed_until <= ?1"
	    " ORDER BY q.next_attempt, q.id LIMIT ?2",
	    "cannot read the queue", err, "ii", now, (int64_t)max)) == NULL) {
		r = store__errcode(err);
		goto fail;
	}
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
	/* A full batch ends on its last row (the LIMIT keeps it whole). */
	if ((r = store__done(st, s, n < max ? rc : SQLITE_DONE,
	    "cannot read the queue", err)) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		/* The claim only succeeds on an entry nobody holds: the
		 * condition, not just the transaction, makes it exclusive. */
		if ((r = store__run(st, STORE_Q_QUEUE_CLAIM,
		    "UPDATE queue SET claimed_until = ?2"
		    " WHERE id = ?1 AND claimed_until <= ?3",
		    "cannot claim a queue entry", err, "iii", jobs[i].id,
		    now + STORE_QUEUE_LEASE, now)) < 0)
			goto fail;
		if (sqlite3_changes(st->db) == 0)
			continue;
		if (won != i)
			jobs[won] = jobs[i];
		won++;
	}
	n = won;
	for (size_t i = 0; i < n; i++)
		if ((r = store_queue_job_rcpts(st, &jobs[i], err)) < 0)
			goto fail;
	if (n == 0) {
		/* Nothing written: no commit, no fsync. */
		store__rollback(st);
		free(jobs);
		jobs = NULL;
	} else if ((r = store__commit(st, err)) < 0) {
		goto fail;
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
store_queue_unclaim(struct store *st, int64_t id, struct pr_err *err)
{
	return store__run(st, STORE_Q_QUEUE_UNCLAIM,
	    "UPDATE queue SET claimed_until = 0 WHERE id = ?1",
	    "cannot release a queue entry", err, "i", id);
}

int
store_queue_unclaim_all(struct store *st, struct pr_err *err)
{
	return store__run(st, STORE_Q_QUEUE_UNCLAIM_ALL,
	    "UPDATE queue SET claimed_until = 0 WHERE claimed_until > 0",
	    "cannot release the queue's claims", err, "");
}

int
store_queue_next_due(struct store *st, int64_t *when_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*when_r = 0;
	/* An aggregate always has its one row. */
	if ((r = store__row(st, STORE_Q_QUEUE_NEXT,
	    "SELECT min(next_attempt) FROM queue", &s, "cannot read the queue",
	    err, "")) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_EIO,
		    "cannot read the queue");
	if (sqlite3_column_type(s, 0) != SQLITE_NULL)
		*when_r = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

int
store_queue_stats(struct store *st, int64_t *n_r, int64_t *oldest_r,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*n_r = *oldest_r = 0;
	if ((r = store__row(st, STORE_Q_QUEUE_STATS,
	    "SELECT count(*), min(created) FROM queue", &s,
	    "cannot read the queue", err, "")) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_EIO,
		    "cannot read the queue");
	*n_r = sqlite3_column_int64(s, 0);
	if (sqlite3_column_type(s, 1) != SQLITE_NULL)
		*oldest_r = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	return 0;
}

int
store_queue_body_open(struct store *st, int64_t queue_id,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	r = store__row(st, STORE_Q_QUEUE_BODY,
	    "SELECT q.body_id, b.size FROM queue q"
	    " JOIN bodies b ON b.id = q.body_id WHERE q.id = ?1", &s,
	    "cannot open queued message", err, "i", queue_id);
	if ((r = store__body_new(st, r, s, b_r, size_r, err)) == 0)
		return pr_err_set(err, PR_ENOENT, "no queue entry %lld",
		    (long long)queue_id);
	return r < 0 ? r : 0;
}
