/*
 * store_held.c - messages a content filter quarantined (store.h,
 * docs/MILTER.md): held with their body and resolved recipients until
 * the admin releases or drops them.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

int
store__held_add(struct store *st, struct store_msg *m, int64_t body_id,
    int64_t now, struct pr_err *err)
{
	int64_t hid;
	size_t i;
	int r;

	if ((r = store__run(st, STORE_Q_HELD_ADD,
	    "INSERT INTO held (msgid, body_id, sender, created, reason)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)", "cannot hold message", err,
	    "titit", m->id, body_id, m->sender != NULL ? m->sender : "", now,
	    m->held)) < 0)
		return r;
	hid = sqlite3_last_insert_rowid(st->db);
	for (i = 0; i < m->n_users; i++)
		if ((r = store__run(st, STORE_Q_HELD_RCPT_ADD,
		    "INSERT INTO held_rcpt (held_id, user_id, address)"
		    " VALUES (?1, ?2, ?3)", "cannot hold message", err, "iit",
		    hid, m->users[i], "")) < 0)
			return r;
	for (i = 0; i < m->n_remote; i++)
		if ((r = store__run(st, STORE_Q_HELD_RCPT_ADD,
		    "INSERT INTO held_rcpt (held_id, user_id, address)"
		    " VALUES (?1, ?2, ?3)", "cannot hold message", err, "iit",
		    hid, (int64_t)0, m->remote[i])) < 0)
			return r;
	return 0;
}

struct store_held_row {
	int64_t id, created, size;
	struct store_strv strs;  /* msgid, sender, reason */
	struct store_strv rcpts;
	struct store_held_item item;
};

int
store_held_list(struct store *st,
    int (*cb)(void *ctx, const struct store_held_item *h), void *ctx,
    struct pr_err *err)
{
	struct store_held_row *v = NULL, *e;
	size_t n = 0, cap = 0, i, j;
	sqlite3_stmt *s;
	int r, rc;

	if ((r = store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		return r;
	if ((s = store__bind(st, STORE_Q_HELD_LIST,
	    "SELECT h.id, h.msgid, h.sender, h.created, b.size, h.reason"
	    " FROM held h JOIN bodies b ON b.id = h.body_id ORDER BY h.id",
	    "cannot list held messages", err, "")) == NULL) {
		r = store__errcode(err);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (store__grow(&v, &cap, n, sizeof(*v), 16) < 0)
			break;
		e = &v[n++];
		memset(e, 0, sizeof(*e));
		e->id = sqlite3_column_int64(s, 0);
		e->created = sqlite3_column_int64(s, 3);
		e->size = sqlite3_column_int64(s, 4);
		if (store__strv_push(&e->strs,
		    (const char *)sqlite3_column_text(s, 1)) < 0 ||
		    store__strv_push(&e->strs,
		    (const char *)sqlite3_column_text(s, 2)) < 0 ||
		    store__strv_push(&e->strs,
		    (const char *)sqlite3_column_text(s, 5)) < 0)
			break;
	}
	if ((r = store__done(st, s, rc, "cannot list held messages",
	    err)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		/* A local recipient by its mailbox's address. */
		if ((r = store__texts(st, STORE_Q_HELD_RCPT_LIST,
		    "SELECT CASE WHEN r.user_id = 0 THEN r.address"
		    " ELSE COALESCE(u.address, '(deleted)') END"
		    " FROM held_rcpt r LEFT JOIN users u ON u.id = r.user_id"
		    " WHERE r.held_id = ?1 ORDER BY r.id",
		    "cannot list held messages", err, &v[i].rcpts, 0, "i",
		    v[i].id)) < 0)
			goto out;
		v[i].item.msgid = v[i].strs.v[0];
		v[i].item.sender = v[i].strs.v[1];
		v[i].item.reason = v[i].strs.v[2];
		v[i].item.created = v[i].created;
		v[i].item.size = v[i].size;
		v[i].item.n_rcpts = v[i].rcpts.n;
		v[i].item.rcpts = (const char *const *)v[i].rcpts.v;
	}
	store__rollback(st);
	for (i = 0; r == 0 && i < n; i++)
		r = cb(ctx, &v[i].item);
out:
	store__rollback(st);
	for (i = 0; i < n; i++) {
		for (j = 0; j < v[i].strs.n; j++)
			free(v[i].strs.v[j]);
		free(v[i].strs.v);
		for (j = 0; j < v[i].rcpts.n; j++)
			free(v[i].rcpts.v[j]);
		free(v[i].rcpts.v);
	}
	free(v);
	return r;
}

/* Inside the caller's transaction: the held row of id. */
static int
store_held_find(struct store *st, const char *id, int64_t *hid_r,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	r = store__row(st, STORE_Q_HELD_FIND, "SELECT id FROM held"
	    " WHERE msgid = ?1", &s, "cannot find held message", err, "t", id);
	if (r == 1) {
		*hid_r = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return 0;
	}
	if (r == 0)
		return pr_err_set(err, PR_ENOENT, "no held message %s", id);
	return r;
}

int
store_held_release(struct store *st, const char *msgid, size_t *n_remote_r,
    struct pr_err *err)
{
	char id[STORE_ID_LEN + 1];
	int64_t hid = 0, now = (int64_t)time(NULL);
	size_t n_remote = 0;
	int r;

	if (n_remote_r != NULL)
		*n_remote_r = 0;
	if ((r = store__msgid(msgid, id, err)) < 0)
		return r;
	if ((r = store__begin(st, err)) < 0)
		return r;
	r = store_held_find(st, id, &hid, err);
	/* One mailbox entry per local recipient whose mailbox still
	 * exists, with a fresh UIDL (RFC 1939 7); the mailbox triggers
	 * count its size. */
	if (r == 0)
		r = store__run(st, STORE_Q_HELD_TO_MAILBOX,
		    "INSERT INTO mailbox (user_id, body_id, size, uidl,"
		    " received) SELECT DISTINCT r.user_id, h.body_id, b.size,"
		    " lower(hex(randomblob(16))), ?2 FROM held h"
		    " JOIN held_rcpt r ON r.held_id = h.id"
		    " JOIN bodies b ON b.id = h.body_id"
		    " JOIN users u ON u.id = r.user_id WHERE h.id = ?1",
		    "cannot release held message", err, "ii", hid, now);
	if (r == 0)
		r = store__run(st, STORE_Q_HELD_TO_QUEUE,
		    "INSERT INTO queue (msgid, body_id, sender, created,"
		    " next_attempt) SELECT msgid, body_id, sender, ?2, ?2"
		    " FROM held WHERE id = ?1 AND EXISTS (SELECT 1 FROM"
		    " held_rcpt WHERE held_id = ?1 AND user_id = 0)",
		    "cannot release held message", err, "ii", hid, now);
	if (r == 0 && sqlite3_changes(st->db) > 0) {
		int64_t qid = sqlite3_last_insert_rowid(st->db);

		r = store__run(st, STORE_Q_HELD_TO_QRCPT,
		    "INSERT INTO queue_rcpt (queue_id, address)"
		    " SELECT DISTINCT ?1, address FROM held_rcpt"
		    " WHERE held_id = ?2 AND user_id = 0",
		    "cannot release held message", err, "ii", qid, hid);
		n_remote = (size_t)sqlite3_changes(st->db);
	}
	/* The body stays: the new rows refer to it (held_delete). */
	if (r == 0)
		r = store__run(st, STORE_Q_HELD_DEL, "DELETE FROM held"
		    " WHERE id = ?1", "cannot release held message", err, "i",
		    hid);
	r = store__end(st, r, err);
	if (r == 0 && n_remote_r != NULL)
		*n_remote_r = n_remote;
	return r;
}

int
store_held_del(struct store *st, const char *msgid, struct pr_err *err)
{
	char id[STORE_ID_LEN + 1];
	int64_t hid = 0;
	int r;

	if ((r = store__msgid(msgid, id, err)) < 0)
		return r;
	if ((r = store__begin(st, err)) < 0)
		return r;
	r = store_held_find(st, id, &hid, err);
	if (r == 0)
		r = store__run(st, STORE_Q_HELD_DEL, "DELETE FROM held"
		    " WHERE id = ?1", "cannot delete held message", err, "i",
		    hid);
	return store__end(st, r, err);
}
