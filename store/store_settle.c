/*
 * store_settle.c - one attempt at an outbound queue entry, settled in one
 * transaction (store_queue_settle, see store.h).
 *
 * What an attempt decided leaves the queue together with what it produced:
 * the delivered recipients, the failed ones and the bounce that reports
 * them, the retry time.  Were the bounce and its recipients two commits, a
 * crash between them would leave the recipients queued, and the next
 * attempt would bounce them a second time (RFC 5321 6.1: one report per
 * failure; the duplicate lands in the sender's mailbox).
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* A remote reply kept as last_error is bounded: enough for a multi-line
 * SMTP reply, not a peer's whole essay. */
#define STORE_SETTLE_ERROR_MAX 1000

#define STORE_SETTLE_WHAT "cannot update the queue"

/* 1 if queue entry qid exists (its message id into msgid_r), 0 if not,
 * <0 on error. */
static int
store_settle_exists(struct store *st, int64_t qid,
    char msgid_r[STORE_ID_LEN + 1], struct pr_err *err)
{
	sqlite3_stmt *s;
	const char *id;
	int r;

	r = store__row(st, STORE_Q_QUEUE_EXISTS,
	    "SELECT msgid FROM queue WHERE id = ?1", &s,
	    "cannot read the queue", err, "i", qid);
	if (r == 1) {
		id = (const char *)sqlite3_column_text(s, 0);
		snprintf(msgid_r, STORE_ID_LEN + 1, "%s", id != NULL ? id : "");
		sqlite3_reset(s);
	}
	return r;
}

/* The trace of the attempt (store_trace.c), before its recipients
 * leave the queue: the attempt, then each recipient done or failed. */
static int
store_settle_trace(struct store *st, const struct store_settle *s,
    const char *msgid, int64_t now, struct pr_err *err)
{
	int r = 0;

	if (s->trace_info != NULL && (r = store__trace_add(st, msgid, now,
	    "attempt", NULL, NULL, s->trace_info, err)) < 0)
		return r;
	for (size_t i = 0; i < s->n_done && r == 0; i++)
		r = store__trace_rcpt(st, msgid, now, "relayed", s->done[i],
		    s->done_info != NULL ? s->done_info[i] : NULL, err);
	for (size_t i = 0; i < s->n_failed && r == 0 && !s->failed_kept; i++)
		r = store__trace_rcpt(st, msgid, now, "failed", s->failed[i],
		    s->failed_info != NULL ? s->failed_info[i] : NULL, err);
	return r;
}

/* Takes recipient rcpt_id of entry qid off the queue. */
static int
store_settle_rcpt(struct store *st, int64_t qid, int64_t rcpt_id,
    struct pr_err *err)
{
	return store__changed(st, store__run(st, STORE_Q_QRCPT_DEL_OF,
	    "DELETE FROM queue_rcpt WHERE id = ?1 AND queue_id = ?2",
	    STORE_SETTLE_WHAT, err, "ii", rcpt_id, qid), err,
	    "no recipient %lld in queue entry %lld", (long long)rcpt_id,
	    (long long)qid);
}

/*
 * Delivers the bounce messages inside the open transaction, each in its
 * own savepoint as store_deliver does.  *failed_r is set when one failed
 * for another reason than its quota: the caller then takes them all back.
 */
static int
store_settle_bounce(struct store *st, struct store_settle *s, int64_t now,
    bool *failed_r, struct pr_err *err)
{
	struct store_msg *m;
	int r;

	*failed_r = false;
	for (size_t i = 0; i < s->n_bounce; i++) {
		m = s->bounce[i];
		if ((r = store__exec(st, STORE_Q_SAVEPOINT,
		    "SAVEPOINT store_msg", err)) < 0)
			return r;
		if ((m->status = store__deliver_one(st, m, now)) == 0) {
			if ((r = store__exec(st, STORE_Q_RELEASE,
			    "RELEASE store_msg", err)) < 0)
				return r;
			continue;
		}
		m->id[0] = '\0';
		if (sqlite3_get_autocommit(st->db)) {
			/* SQLite gave up the whole transaction (disk full,
			 * I/O error): nothing commits. */
			*err = m->err;
			return m->status;
		}
		if ((r = store__exec(st, STORE_Q_ROLLBACK_TO,
		    "ROLLBACK TO store_msg", err)) < 0 ||
		    (r = store__exec(st, STORE_Q_RELEASE,
		    "RELEASE store_msg", err)) < 0)
			return r;
		if (m->status != PR_EQUOTA && m->status != PR_ETOOBIG) {
			*failed_r = true;
			return 0;
		}
	}
	return 0;
}

/* How much of an error text is kept (STORE_SETTLE_ERROR_MAX at most). */
static size_t
store_settle_error_len(const char *text)
{
	size_t len = strlen(text);

	return len > STORE_SETTLE_ERROR_MAX ? STORE_SETTLE_ERROR_MAX : len;
}

/* The entry after its recipients went: gone with the last one, else
 * rescheduled when asked to. */
static int
store_settle_entry(struct store *st, const struct store_settle *s,
    struct pr_err *err)
{
	const char *last_error;
	size_t len;
	int r;

	/* The body goes with its last reference (trigger queue_delete). */
	if ((r = store__run(st, STORE_Q_QUEUE_DEL_DONE,
	    "DELETE FROM queue WHERE id = ?1 AND NOT EXISTS"
	    " (SELECT 1 FROM queue_rcpt WHERE queue_id = ?1)",
	    STORE_SETTLE_WHAT, err, "i", s->queue_id)) < 0)
		return r;
	if (sqlite3_changes(st->db) > 0)
		return 0;
	/* The attempt is over: the entry is no longer claimed. */
	if (s->next_attempt <= 0)
		return store_queue_unclaim(st, s->queue_id, err);
	last_error = s->failed_kept ? "bounce could not be stored" :
	    s->last_error != NULL ? s->last_error : "";
	len = store_settle_error_len(last_error);
	if ((r = store__run(st, STORE_Q_QUEUE_RETRY,
	    "UPDATE queue SET next_attempt = ?2, attempts = attempts + 1,"
	    " last_error = ?3, claimed_until = 0 WHERE id = ?1",
	    STORE_SETTLE_WHAT, err, "iiT", s->queue_id, s->next_attempt,
	    last_error, (int)len)) < 0)
		return r;
	for (size_t i = 0; i < s->n_deferred; i++) {
		last_error = s->deferred_reply != NULL &&
		    s->deferred_reply[i] != NULL ? s->deferred_reply[i] : "";
		len = store_settle_error_len(last_error);
		if ((r = store__run(st, STORE_Q_QRCPT_DEFER,
		    "UPDATE queue_rcpt SET attempts = attempts + 1,"
		    " last_reply = ?3 WHERE id = ?1 AND queue_id = ?2",
		    STORE_SETTLE_WHAT, err, "iiT", s->deferred[i],
		    s->queue_id, last_error, (int)len)) < 0)
			return r;
	}
	return 0;
}

/* One try at the whole transaction; with s->failed_kept the failed
 * recipients and their bounce stay out of it. */
static int
store_settle_tx(struct store *st, struct store_settle *s, int64_t now,
    bool *bounce_failed_r, struct pr_err *err)
{
	char msgid[STORE_ID_LEN + 1] = "";
	int r;

	*bounce_failed_r = false;
	if ((r = store__begin(st, err)) < 0)
		return r;
	if ((r = store_settle_exists(st, s->queue_id, msgid, err)) <= 0) {
		if (r == 0)
			r = pr_err_set(err, PR_ENOENT, "no queue entry %lld",
			    (long long)s->queue_id);
		goto fail;
	}
	if ((r = store_settle_trace(st, s, msgid, now, err)) < 0 ||
	    (r = store__trace_expire(st, now, err)) < 0)
		goto fail;
	for (size_t i = 0; i < s->n_done; i++)
		if ((r = store_settle_rcpt(st, s->queue_id, s->done[i],
		    err)) < 0)
			goto fail;
	if (!s->failed_kept) {
		for (size_t i = 0; i < s->n_failed; i++)
			if ((r = store_settle_rcpt(st, s->queue_id,
			    s->failed[i], err)) < 0)
				goto fail;
		if ((r = store_settle_bounce(st, s, now, bounce_failed_r,
		    err)) < 0)
			goto fail;
		if (*bounce_failed_r) {
			store__rollback(st);
			return 0;
		}
		/* RFC 3464 2.3.3 "delayed": one warning per message, marked
		 * in the transaction that stores it. */
		if (s->delay_warned && (r = store__run(st,
		    STORE_Q_QUEUE_WARNED,
		    "UPDATE queue SET delay_warned = 1 WHERE id = ?1",
		    STORE_SETTLE_WHAT, err, "i", s->queue_id)) < 0)
			goto fail;
		for (size_t i = 0; i < s->n_bounce; i++) {
			char info[64];

			if (s->bounce[i]->status != 0)
				continue;
			snprintf(info, sizeof(info), "dsn=%s",
			    s->bounce[i]->id);
			if ((r = store__trace_add(st, msgid, now, "bounced",
			    NULL, NULL, info, err)) < 0)
				goto fail;
		}
	}
	if ((r = store_settle_entry(st, s, err)) < 0)
		goto fail;
	return store__commit(st, err);

fail:
	store__rollback(st);
	return r;
}

int
store_queue_settle(struct store *st, struct store_settle *s,
    struct pr_err *err)
{
	int64_t now = (int64_t)time(NULL);
	struct store_msg *bad = NULL;
	bool bounce_failed;
	int r;

	s->failed_kept = false;
	for (size_t i = 0; i < s->n_bounce; i++) {
		s->bounce[i]->status = 0;
		pr_err_clear(&s->bounce[i]->err);
	}
	r = store_settle_tx(st, s, now, &bounce_failed, err);
	if (r == 0 && bounce_failed) {
		/* Every bounce message was taken back with the first try:
		 * they all carry the failure that stopped it. */
		for (size_t i = 0; i < s->n_bounce && bad == NULL; i++)
			if (s->bounce[i]->status != 0 &&
			    s->bounce[i]->status != PR_EQUOTA &&
			    s->bounce[i]->status != PR_ETOOBIG)
				bad = s->bounce[i];
		for (size_t i = 0; i < s->n_bounce; i++) {
			if (s->bounce[i] == bad)
				continue;
			s->bounce[i]->status = bad->status;
			s->bounce[i]->err = bad->err;
			s->bounce[i]->id[0] = '\0';
		}
		s->failed_kept = true;
		r = store_settle_tx(st, s, now, &bounce_failed, err);
	}
	if (r < 0) {
		for (size_t i = 0; i < s->n_bounce; i++) {
			s->bounce[i]->status = r;
			s->bounce[i]->err = *err;
			s->bounce[i]->id[0] = '\0';
		}
	}
	return r;
}
