/*
 * store_tlspol.c - the relay's outbound TLS memory (store.h): cached
 * MTA-STS policies (RFC 8461 5.1) and the domains that gave verified
 * TLS before (docs/OUTBOUND_TLS.md).
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void
store_tlspol_text(sqlite3_stmt *s, int col, char *out, size_t outsz)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	snprintf(out, outsz, "%s", t != NULL ? (const char *)t : "");
}

int
store_sts_get(struct store *st, const char *domain, struct store_sts *p,
    struct pr_err *err)
{
	const unsigned char *t;
	sqlite3_stmt *s;
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = store__row(st, STORE_Q_STS_GET,
	    "SELECT id, mode, policy, fetched, expires FROM sts_policy"
	    " WHERE domain = lower(?1)", &s,
	    "cannot read an MTA-STS policy", err, "t", domain)) <= 0)
		return r;
	store_tlspol_text(s, 0, p->id, sizeof(p->id));
	store_tlspol_text(s, 1, p->mode, sizeof(p->mode));
	t = sqlite3_column_text(s, 2);
	p->policy = strdup(t != NULL ? (const char *)t : "");
	p->fetched = sqlite3_column_int64(s, 3);
	p->expires = sqlite3_column_int64(s, 4);
	sqlite3_reset(s);
	if (p->policy == NULL)
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	return 1;
}

int
store_sts_put(struct store *st, const char *domain, const struct store_sts *p,
    struct pr_err *err)
{
	return store__run(st, STORE_Q_STS_PUT,
	    "INSERT INTO sts_policy (domain, id, mode, policy, fetched,"
	    " expires) VALUES (lower(?1), ?2, ?3, ?4, ?5, ?6)"
	    " ON CONFLICT (domain) DO UPDATE SET id = ?2, mode = ?3,"
	    " policy = ?4, fetched = ?5, expires = ?6",
	    "cannot cache an MTA-STS policy", err, "ttttii", domain, p->id,
	    p->mode, p->policy != NULL ? p->policy : "", p->fetched,
	    p->expires);
}

int
store_tls_seen_get(struct store *st, const char *domain, int64_t now,
    int64_t keep, int64_t *last_r, char *mx, size_t mxsz,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	if ((r = store__run(st, STORE_Q_TLS_SEEN_PRUNE,
	    "DELETE FROM tls_seen WHERE last <= ?1 - ?2",
	    "cannot forget old TLS memory", err, "ii", now, keep)) < 0)
		return r;
	if ((r = store__row(st, STORE_Q_TLS_SEEN_GET,
	    "SELECT last, mx FROM tls_seen WHERE domain = lower(?1)", &s,
	    "cannot read the TLS memory", err, "t", domain)) <= 0)
		return r;
	*last_r = sqlite3_column_int64(s, 0);
	if (mx != NULL)
		store_tlspol_text(s, 1, mx, mxsz);
	sqlite3_reset(s);
	return 1;
}

int
store_tls_seen_put(struct store *st, const char *domain, const char *mx,
    int64_t now, struct pr_err *err)
{
	return store__run(st, STORE_Q_TLS_SEEN_PUT,
	    "INSERT INTO tls_seen (domain, mx, first, last)"
	    " VALUES (lower(?1), ?2, ?3, ?3)"
	    " ON CONFLICT (domain) DO UPDATE SET mx = ?2, last = ?3",
	    "cannot record the TLS memory", err, "tti", domain, mx, now);
}

int
store_tls_forget(struct store *st, const char *domain, struct pr_err *err)
{
	int r, n;

	if ((r = store__run(st, STORE_Q_TLS_FORGET_STS,
	    "DELETE FROM sts_policy WHERE domain = lower(?1)",
	    "cannot forget an MTA-STS policy", err, "t", domain)) < 0)
		return r;
	n = sqlite3_changes(st->db);
	if ((r = store__run(st, STORE_Q_TLS_FORGET_SEEN,
	    "DELETE FROM tls_seen WHERE domain = lower(?1)",
	    "cannot forget the TLS memory", err, "t", domain)) < 0)
		return r;
	return n + sqlite3_changes(st->db);
}
