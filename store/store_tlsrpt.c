/*
 * store_tlsrpt.c - the counts of SMTP TLS Reporting (RFC 8460) and the
 * reports' own queueing (see store.h).
 *
 * The relay adds its counts in batches (one transaction a minute or
 * so), so a busy relay costs one fsync a minute here, not one per
 * session.  The daily report reads one day back, and days older than a
 * few are pruned by the same run.
 */
#include "store_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Recipients of one report at most (the rua list, RFC 8460 3). */
#define STORE_TLSRPT_RCPTS_MAX 16

static const char *
store_tlsrpt_s(const char *s)
{
	return s != NULL ? s : "";
}

int
store_tlsrpt_add(struct store *st, const struct store_tlsrpt_count *v,
    size_t n, struct pr_err *err)
{
	size_t i;
	int r;

	if (n == 0)
		return 0;
	if ((r = store__begin(st, err)) < 0)
		return r;
	for (i = 0; i < n && r >= 0; i++) {
		const struct store_tlsrpt_count *c = &v[i];

		r = store__run(st, STORE_Q_TLSRPT_ADD,
		    "INSERT INTO tlsrpt (day, domain, policy_type,"
		    " policy_string, result, mx_host, receiving_ip,"
		    " sending_ip, reason, count)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
		    " ON CONFLICT (day, domain, policy_type, policy_string, result,"
		    " mx_host, receiving_ip, sending_ip, reason)"
		    " DO UPDATE SET count = count + excluded.count",
		    "cannot add TLS report counts", err, "itttttttti",
		    c->day, store_tlsrpt_s(c->domain),
		    store_tlsrpt_s(c->policy_type),
		    store_tlsrpt_s(c->policy_string),
		    store_tlsrpt_s(c->result), store_tlsrpt_s(c->mx_host),
		    store_tlsrpt_s(c->receiving_ip),
		    store_tlsrpt_s(c->sending_ip), store_tlsrpt_s(c->reason),
		    c->count);
	}
	return store__end(st, r, err);
}

/* The rows of statement s, bound, to cb. */
static int
store_tlsrpt_rows(struct store *st, sqlite3_stmt *s,
    int (*cb)(void *ctx, const struct store_tlsrpt_count *c), void *ctx,
    struct pr_err *err)
{
	struct store_tlsrpt_count c;
	int r = 0, rc, n = 0;

	if (s == NULL)
		return store__errcode(err);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		c.day = sqlite3_column_int64(s, 0);
		c.domain = (const char *)sqlite3_column_text(s, 1);
		c.policy_type = (const char *)sqlite3_column_text(s, 2);
		c.policy_string = (const char *)sqlite3_column_text(s, 3);
		c.result = (const char *)sqlite3_column_text(s, 4);
		c.mx_host = (const char *)sqlite3_column_text(s, 5);
		c.receiving_ip = (const char *)sqlite3_column_text(s, 6);
		c.sending_ip = (const char *)sqlite3_column_text(s, 7);
		c.reason = (const char *)sqlite3_column_text(s, 8);
		c.count = sqlite3_column_int64(s, 9);
		if (c.domain == NULL || c.policy_type == NULL ||
		    c.policy_string == NULL || c.result == NULL ||
		    c.mx_host == NULL || c.receiving_ip == NULL ||
		    c.sending_ip == NULL || c.reason == NULL) {
			sqlite3_reset(s);
			return pr_err_set(err, PR_ENOMEM, "out of memory");
		}
		n++;
		if ((r = cb(ctx, &c)) != 0) {
			sqlite3_reset(s);
			return r;
		}
	}
	if ((r = store__done(st, s, rc, "cannot read TLS report counts",
	    err)) < 0)
		return r;
	return n;
}

int
store_tlsrpt_list(struct store *st, int64_t day,
    int (*cb)(void *ctx, const struct store_tlsrpt_count *c), void *ctx,
    struct pr_err *err)
{
	return store_tlsrpt_rows(st, store__bind(st, STORE_Q_TLSRPT_LIST,
	    "SELECT day, domain, policy_type, policy_string, result, mx_host,"
	    " receiving_ip, sending_ip, reason, count FROM tlsrpt"
	    " WHERE day BETWEEN ?1 AND ?2"
	    " ORDER BY day, domain, policy_type, policy_string,"
	    " result <> 'success', result, mx_host, receiving_ip, sending_ip,"
	    " reason",
	    "cannot read TLS report counts", err, "ii", day < 0 ? 0 : day,
	    day < 0 ? INT64_MAX : day), cb, ctx, err);
}

int
store_tlsrpt_list_unsent(struct store *st, int64_t day,
    int (*cb)(void *ctx, const struct store_tlsrpt_count *c), void *ctx,
    struct pr_err *err)
{
	return store_tlsrpt_rows(st, store__bind(st, STORE_Q_TLSRPT_UNSENT,
	    "SELECT day, domain, policy_type, policy_string, result, mx_host,"
	    " receiving_ip, sending_ip, reason, count FROM tlsrpt t"
	    " WHERE day = ?1 AND NOT EXISTS (SELECT 1 FROM tlsrpt_domain_sent"
	    " d WHERE d.day = t.day AND d.domain = t.domain)"
	    " ORDER BY day, domain, policy_type, policy_string,"
	    " result <> 'success', result, mx_host, receiving_ip, sending_ip,"
	    " reason",
	    "cannot read TLS report counts", err, "i", day), cb, ctx, err);
}

int
store_tlsrpt_domain_sent_set(struct store *st, int64_t day,
    const char *domain, int64_t at, struct pr_err *err)
{
	return store__run(st, STORE_Q_TLSRPT_DOMAIN_SENT,
	    "INSERT OR REPLACE INTO tlsrpt_domain_sent (day, domain, at)"
	    " VALUES (?1, ?2, ?3)", "cannot write TLS report state", err,
	    "iti", day, domain, at);
}

int
store_tlsrpt_prune(struct store *st, int64_t day, struct pr_err *err)
{
	int r, n;

	if ((r = store__begin(st, err)) < 0)
		return r;
	r = store__run(st, STORE_Q_TLSRPT_PRUNE,
	    "DELETE FROM tlsrpt WHERE day < ?1",
	    "cannot prune TLS report counts", err, "i", day);
	n = sqlite3_changes(st->db);
	if (r >= 0)
		r = store__run(st, STORE_Q_TLSRPT_SENT_PRUNE,
		    "DELETE FROM tlsrpt_sent WHERE day < ?1",
		    "cannot prune TLS report counts", err, "i", day);
	if (r >= 0)
		r = store__run(st, STORE_Q_TLSRPT_DOMAIN_PRUNE,
		    "DELETE FROM tlsrpt_domain_sent WHERE day < ?1",
		    "cannot prune TLS report counts", err, "i", day);
	if ((r = store__end(st, r, err)) < 0)
		return r;
	return n;
}

int
store_tlsrpt_sent_get(struct store *st, int64_t day, int64_t *at_r,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*at_r = 0;
	r = store__row(st, STORE_Q_TLSRPT_SENT_GET,
	    "SELECT at FROM tlsrpt_sent WHERE day = ?1", &s,
	    "cannot read TLS report state", err, "i", day);
	if (r == 1) {
		*at_r = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		r = 0;
	}
	return r;
}

int
store_tlsrpt_sent_set(struct store *st, int64_t day, int64_t at,
    struct pr_err *err)
{
	return store__run(st, STORE_Q_TLSRPT_SENT_SET,
	    "INSERT OR REPLACE INTO tlsrpt_sent (day, at) VALUES (?1, ?2)",
	    "cannot write TLS report state", err, "ii", day, at);
}

struct store_tlsrpt_users {
	int64_t v[STORE_TLSRPT_RCPTS_MAX];
	size_t n;
};

static int
store_tlsrpt_user_cb(void *ctx, int64_t user_id, const char *remote)
{
	struct store_tlsrpt_users *u = ctx;
	size_t i;

	(void)remote;
	if (user_id <= 0)
		return 0;
	for (i = 0; i < u->n; i++)
		if (u->v[i] == user_id)
			return 0;
	if (u->n < STORE_TLSRPT_RCPTS_MAX)
		u->v[u->n++] = user_id;
	return 0;
}

/* 1 when key was delivered before (store_deliver_key), 0 when not, or
 * an error. */
static int
store_tlsrpt_key_seen(struct store *st, const char *key)
{
	struct pr_err err;
	sqlite3_stmt *s;
	int r;

	pr_err_clear(&err);
	if ((r = store__row(st, STORE_Q_TLSRPT_KEY,
	    "SELECT 1 FROM submissions WHERE name = ?1", &s,
	    "cannot read TLS report state", &err, "t", key)) == 1)
		sqlite3_reset(s);
	return r;
}

int
store_tlsrpt_queue(struct store *st, const char *const *rcpts, size_t n,
    const uint8_t *msg, size_t len, const char *key,
    char id_r[STORE_ID_LEN + 1], struct pr_err *err)
{
	struct store_tlsrpt_users users = { .n = 0 };
	const char *remote[STORE_TLSRPT_RCPTS_MAX];
	struct store_msg m, *mp = &m;
	size_t i, n_remote = 0;
	int kind, r;

	id_r[0] = '\0';
	for (i = 0; i < n && i < STORE_TLSRPT_RCPTS_MAX; i++) {
		kind = store_resolve(st, rcpts[i], store_tlsrpt_user_cb,
		    &users, err);
		if (kind < 0)
			return kind;
		if (kind == STORE_RESOLVE_REMOTE)
			remote[n_remote++] = rcpts[i];
	}
	if (users.n == 0 && n_remote == 0)
		return pr_err_set(err, PR_ENOENT,
		    "no recipient of the report exists");
	memset(&m, 0, sizeof(m));
	m.sender = "";
	m.users = users.v;
	m.n_users = users.n;
	m.remote = remote;
	m.n_remote = n_remote;
	m.body = msg;
	m.body_len = len;
	m.body_fd = -1;
	m.trace_info = "tlsrpt=report";
	m.key = key;
	if ((r = store_deliver(st, &mp, 1)) < 0) {
		*err = m.err;
		return r;
	}
	if (m.status < 0) {
		*err = m.err;
		/* PR_EEXIST means this key only: another unique column
		 * (a UIDL) would be a plain failure, tried again. */
		if (m.status == PR_EEXIST && (key == NULL ||
		    store_tlsrpt_key_seen(st, key) != 1))
			return pr_err_set(err, PR_EIO, "%s", m.err.msg);
		return m.status;
	}
	memcpy(id_r, m.id, sizeof(m.id));
	return 0;
}

int
store_tlsrpt_host_domain(struct store *st, const char *host,
    char out[ADDR_DOMAIN_MAX + 1], struct pr_err *err)
{
	const char *p;
	int r;

	for (p = host; p != NULL && *p != '\0';
	    p = (p = strchr(p, '.')) != NULL ? p + 1 : NULL) {
		/* Not a bare top-level label. */
		if (strchr(p, '.') == NULL)
			break;
		if ((r = store_domain_exists(st, p)) < 0)
			return pr_err_set(err, r, "cannot read the domains");
		if (r > 0) {
			snprintf(out, ADDR_DOMAIN_MAX + 1, "%s", p);
			return 1;
		}
	}
	snprintf(out, ADDR_DOMAIN_MAX + 1, "%s", host);
	return 0;
}
