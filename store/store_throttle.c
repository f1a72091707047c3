/*
 * store_throttle.c - failed logins counted across connections, daemons
 * and restarts.
 *
 * A counter per client and one per account, each a row (scope, name) with
 * the time of the first failure of its window and the failures since.  A
 * failure past the window starts a new one.  The daemons decide what a
 * count means (delays, refusals); the store only keeps the counts, so a
 * backend other than SQLite keeps the same contract (docs/ARCHITECTURE.md
 * 3.6).
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

enum store_throttle_scope {
	STORE_THROTTLE_IP = 0,
	STORE_THROTTLE_ACCOUNT = 1,
};

/* Account names compare in lower case; longer ones are cut, not refused:
 * a name nobody has is still a guess to count. */
static const char *
store_throttle_name(const char *in, char out[ADDR_MAX])
{
	if (in == NULL || *in == '\0')
		return NULL;
	snprintf(out, ADDR_MAX, "%s", in);
	addr_lower(out);
	return out;
}

static int
store_throttle_read(struct store *st, int scope, const char *name,
    int64_t now, int64_t window, unsigned *n_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*n_r = 0;
	if (name == NULL)
		return 0;
	if ((r = store__row(st, STORE_Q_THROTTLE_GET,
	    "SELECT failures FROM auth_failures"
	    " WHERE scope = ?1 AND name = ?2 AND since > ?3 - ?4", &s,
	    "cannot read login failures", err, "itii", (int64_t)scope, name,
	    now, window)) <= 0)
		return r;
	*n_r = (unsigned)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

int
store_throttle_get(struct store *st, const char *ip_key, const char *account,
    int64_t now, int64_t window, struct store_throttle *t_r,
    struct pr_err *err)
{
	char acct[ADDR_MAX], ip[ADDR_MAX];
	int r;

	memset(t_r, 0, sizeof(*t_r));
	if ((r = store_throttle_read(st, STORE_THROTTLE_IP,
	    store_throttle_name(ip_key, ip), now, window, &t_r->ip_failures,
	    err)) < 0 ||
	    (r = store_throttle_read(st, STORE_THROTTLE_ACCOUNT,
	    store_throttle_name(account, acct), now, window,
	    &t_r->account_failures, err)) < 0)
		memset(t_r, 0, sizeof(*t_r));
	return r;
}

/* One more failure for (scope, name), inside the caller's transaction. */
static int
store_throttle_count(struct store *st, int scope, const char *name,
    int64_t now, int64_t window, unsigned *n_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*n_r = 0;
	if (name == NULL)
		return 0;
	/* In SET every column names the row as it was, so both CASEs see
	 * the old since. */
	if ((r = store__row(st, STORE_Q_THROTTLE_FAIL,
	    "INSERT INTO auth_failures (scope, name, since, failures)"
	    " VALUES (?1, ?2, ?3, 1)"
	    " ON CONFLICT (scope, name) DO UPDATE SET"
	    "  failures = CASE WHEN since <= ?3 - ?4 THEN 1"
	    "             ELSE failures + 1 END,"
	    "  since = CASE WHEN since <= ?3 - ?4 THEN ?3 ELSE since END"
	    " RETURNING failures", &s, "cannot count a login failure", err,
	    "itii", (int64_t)scope, name, now, window)) < 0)
		return r;
	if (r == 1) {
		*n_r = (unsigned)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	return 0;
}

/* One failure (ip_key set) or success, inside the caller's transaction. */
static int
store_throttle_one(struct store *st, struct store_throttle_update *u,
    int64_t window, struct pr_err *err)
{
	char acct[ADDR_MAX], ip[ADDR_MAX];
	const char *name = store_throttle_name(u->account, acct);
	int r;

	memset(&u->counts, 0, sizeof(u->counts));
	if (u->ip_key == NULL)
		return name == NULL ? 0 : store__run(st,
		    STORE_Q_THROTTLE_CLEAR,
		    "DELETE FROM auth_failures WHERE scope = ?1 AND name = ?2",
		    "cannot clear login failures", err, "it",
		    (int64_t)STORE_THROTTLE_ACCOUNT, name);
	/* Expired rows go here, where the table grows: a guesser that
	 * walks through many names leaves nothing behind for longer than
	 * the window. */
	r = store__run(st, STORE_Q_THROTTLE_PRUNE,
	    "DELETE FROM auth_failures WHERE since <= ?1 - ?2",
	    "cannot forget old login failures", err, "ii", u->now, window);
	if (r == 0)
		r = store_throttle_count(st, STORE_THROTTLE_IP,
		    store_throttle_name(u->ip_key, ip), u->now, window,
		    &u->counts.ip_failures, err);
	if (r == 0)
		r = store_throttle_count(st, STORE_THROTTLE_ACCOUNT, name,
		    u->now, window, &u->counts.account_failures, err);
	return r;
}

struct store_throttle_batch {
	struct store_throttle_update *u;
	int64_t window;
};

static int
store_throttle_item(struct store *st, void *ctx, size_t i,
    struct pr_err *err)
{
	struct store_throttle_batch *b = ctx;

	return b->u[i].status = store_throttle_one(st, &b->u[i], b->window,
	    err);
}

int
store_throttle_update(struct store *st, struct store_throttle_update *u,
    size_t n, int64_t window, struct pr_err *err)
{
	struct store_throttle_batch b = { u, window };
	int r;

	/* Each update in a savepoint: one that fails does not undo the
	 * others. */
	if ((r = store__each(st, n, store_throttle_item, &b, err)) < 0)
		for (size_t i = 0; i < n; i++)
			u[i].status = r;
	return r;
}

int
store_throttle_fail(struct store *st, const char *ip_key, const char *account,
    int64_t now, int64_t window, struct store_throttle *t_r,
    struct pr_err *err)
{
	struct store_throttle_update u = { ip_key, account, now, { 0, 0 },
	    0 };
	int r;

	r = store_throttle_update(st, &u, 1, window, err);
	if (r == 0 && (r = u.status) < 0)
		pr_err_set(err, r, "cannot count a login failure: %s",
		    pr_strerror(r));
	*t_r = u.counts;
	return r;
}

int
store_throttle_clear(struct store *st, const char *account,
    struct pr_err *err)
{
	struct store_throttle_update u = { NULL, account, 0, { 0, 0 }, 0 };
	int r;

	r = store_throttle_update(st, &u, 1, 0, err);
	if (r == 0 && (r = u.status) < 0)
		pr_err_set(err, r, "cannot clear login failures: %s",
		    pr_strerror(r));
	return r;
}
