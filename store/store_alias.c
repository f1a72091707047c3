/*
 * store_alias.c - aliases, recipient resolution and sender ownership.
 *
 * An address of a hosted domain resolves, in this order, to: the user of
 * that exact address; the alias of that exact address; for local+tag, the
 * user or alias of local (subaddressing, RFC 5233 style); the domain's
 * catch-all alias "@domain".  Alias targets resolve the same way, up to
 * STORE_RESOLVE_DEPTH levels and STORE_RESOLVE_MAX final targets.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "domain.h"

/* One resolution walk. */
struct store_res {
	struct store *st;
	struct pr_err *err;
	int64_t *users;             /* distinct user ids, in order found */
	size_t n_users, cap_users;
	struct store_strv remote;   /* distinct remote addresses */
	struct store_strv seen;     /* alias keys expanded already */
	/* Loop detection for store_alias_add: reaching this alias key again
	 * is a loop; path[] holds the addresses that led there. */
	const char *stop;
	const char *path[STORE_RESOLVE_DEPTH + 2];
};

static void
store_res_fini(struct store_res *res)
{
	free(res->users);
	store__strv_fini(&res->remote);
	store__strv_fini(&res->seen);
}

static int
store_res_full(struct store_res *res)
{
	if (res->n_users + res->remote.n < STORE_RESOLVE_MAX)
		return 0;
	return pr_err_set(res->err, PR_ENOSPC,
	    "%s expands to more than %d addresses", res->path[0],
	    STORE_RESOLVE_MAX);
}

static int
store_res_add_user(struct store_res *res, int64_t id)
{
	int64_t *v;
	int r;

	for (size_t i = 0; i < res->n_users; i++)
		if (res->users[i] == id)
			return 0;
	if ((r = store_res_full(res)) < 0)
		return r;
	if (res->n_users == res->cap_users) {
		size_t cap = res->cap_users ? 2 * res->cap_users : 8;

		if ((v = realloc(res->users, cap * sizeof(*v))) == NULL)
			return pr_err_set(res->err, PR_ENOMEM, "out of memory");
		res->users = v;
		res->cap_users = cap;
	}
	res->users[res->n_users++] = id;
	return 0;
}

static int
store_res_add_remote(struct store_res *res, const char *addr)
{
	int r;

	if (store__strv_has(&res->remote, addr))
		return 0;
	if ((r = store_res_full(res)) < 0)
		return r;
	if (store__strv_push(&res->remote, addr) < 0)
		return pr_err_set(res->err, PR_ENOMEM, "out of memory");
	return 0;
}

/* Collects the targets of alias key into sv (in the order added). */
static int
store_alias_targets(struct store *st, const char *key,
    struct store_strv *sv, struct pr_err *err)
{
	return store__texts(st, STORE_Q_ALIAS_TARGETS,
	    "SELECT target FROM aliases WHERE alias = ?1 ORDER BY id",
	    "cannot read alias", err, sv, 0, "t", key);
}

/*
 * What an address of a hosted domain names directly: a user (*user_id_r)
 * or an alias (its key in key_r, ADDR_MAX bytes).  addr is lower case and
 * domain points into it.  Returns 1 for a user, 2 for an alias, 0 for
 * nothing, <0 on error.
 */
static int
store_res_lookup(struct store *st, const char *addr, const char *domain,
    bool catchall, int64_t *user_id_r, char *key_r, struct pr_err *err)
{
	const char *plus;
	int r;

	if ((r = store__user_id(st, addr, user_id_r, err)) != 0)
		return r;
	if ((r = store__alias_exists(st, addr, err)) != 0) {
		if (r > 0)
			snprintf(key_r, ADDR_MAX, "%s", addr);
		return r < 0 ? r : 2;
	}
	/* Subaddressing: "local+detail@domain" is delivered as
	 * "local@domain" (RFC 5233 3: the detail after the separator). */
	plus = memchr(addr, '+', (size_t)(domain - 1 - addr));
	if (plus != NULL && plus > addr) {
		snprintf(key_r, ADDR_MAX, "%.*s@%s", (int)(plus - addr), addr,
		    domain);
		if ((r = store__user_id(st, key_r, user_id_r, err)) != 0)
			return r;
		if ((r = store__alias_exists(st, key_r, err)) != 0)
			return r < 0 ? r : 2;
	}
	if (!catchall)
		return 0;
	snprintf(key_r, ADDR_MAX, "@%s", domain);
	if ((r = store__alias_exists(st, key_r, err)) != 0)
		return r < 0 ? r : 2;
	return 0;
}

static int store_res_expand(struct store_res *res, const char *key,
    int depth);

/* Formats the loop path for an error message. */
static int
store_res_loop(struct store_res *res, int depth, const char *key,
    const char *addr)
{
	char msg[1024];
	size_t off = 0;

	msg[0] = '\0';
	for (int i = 0; i <= depth && off < sizeof(msg); i++)
		off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s",
		    i ? " -> " : "", res->path[i]);
	if (strcmp(key, addr) != 0 && off < sizeof(msg))
		snprintf(msg + off, sizeof(msg) - off, " -> %s", key);
	return pr_err_set(res->err, PR_ELOOP, "alias loop: %s", msg);
}

/*
 * Resolves addr, a target found at alias nesting level depth (0 for the
 * address asked about).  Returns 1 when it named something, 0 when it is
 * an unknown address of a hosted domain, <0 on error.
 */
static int
store_res_addr(struct store_res *res, const char *addr, int depth)
{
	char lower[ADDR_MAX], key[ADDR_MAX];
	const char *domain;
	int64_t uid;
	int r;

	res->path[depth] = addr;
	if (strlen(addr) >= sizeof(lower))
		return 0;
	memcpy(lower, addr, strlen(addr) + 1);
	addr_lower(lower);
	domain = strrchr(lower, '@');
	if (domain == NULL || domain == lower)
		return 0;
	domain++;
	if ((r = store__domain_id(res->st, domain, NULL, res->err)) < 0)
		return r;
	if (r == 0)
		/* Remote: the local part keeps its case (RFC 5321 2.4). */
		return (r = store_res_add_remote(res, addr)) < 0 ? r : 1;

	r = store_res_lookup(res->st, lower, domain, true, &uid, key,
	    res->err);
	if (r == 1)
		return (r = store_res_add_user(res, uid)) < 0 ? r : 1;
	if (r != 2)
		return r;
	if (res->stop != NULL && strcmp(key, res->stop) == 0)
		return store_res_loop(res, depth, key, addr);
	return (r = store_res_expand(res, key, depth + 1)) < 0 ? r : 1;
}

/* Expands alias key, found at nesting level depth (1 = the alias of the
 * address asked about). */
static int
store_res_expand(struct store_res *res, const char *key, int depth)
{
	struct store_strv targets = { 0 };
	int r;

	if (depth > STORE_RESOLVE_DEPTH)
		return pr_err_set(res->err, PR_ELOOP,
		    "aliases of %s nest deeper than %d levels", res->path[0],
		    STORE_RESOLVE_DEPTH);
	/* Each alias is expanded once: duplicates add nothing, and an old
	 * loop (made by deleting a user an alias pointed to) ends here. */
	if (store__strv_has(&res->seen, key))
		return 0;
	if (store__strv_push(&res->seen, key) < 0)
		return pr_err_set(res->err, PR_ENOMEM, "out of memory");
	if ((r = store_alias_targets(res->st, key, &targets, res->err)) < 0)
		goto out;
	/* An unknown target (a user deleted since) is skipped. */
	for (size_t i = 0; i < targets.n; i++)
		if ((r = store_res_addr(res, targets.v[i], depth)) < 0)
			goto out;
	r = 0;
out:
	store__strv_fini(&targets);
	return r;
}

int
store_resolve(struct store *st, const char *address,
    int (*cb)(void *ctx, int64_t user_id, const char *remote), void *ctx,
    struct pr_err *err)
{
	struct store_res res = { .st = st, .err = err };
	char addr[ADDR_MAX];
	const char *domain;
	int r;

	if ((domain = store__lower_addr(address, addr, err)) == NULL)
		return PR_EINVAL;
	if ((r = store__domain_id(st, domain, NULL, err)) <= 0)
		return r < 0 ? r : STORE_RESOLVE_REMOTE;
	if ((r = store_res_addr(&res, addr, 0)) < 0)
		goto out;
	if (r == 0 || res.n_users + res.remote.n == 0) {
		r = STORE_RESOLVE_UNKNOWN;
		goto out;
	}
	r = STORE_RESOLVE_LOCAL;
	for (size_t i = 0; i < res.n_users; i++)
		if ((r = cb(ctx, res.users[i], NULL)) != 0)
			goto out;
	for (size_t i = 0; i < res.remote.n; i++)
		if ((r = cb(ctx, 0, res.remote.v[i])) != 0)
			goto out;
	r = STORE_RESOLVE_LOCAL;
out:
	store_res_fini(&res);
	return r;
}

int
store_sender_allowed(struct store *st, int64_t user_id, const char *address)
{
	struct store_res res = { .st = st };
	char addr[ADDR_MAX], own[ADDR_MAX], key[ADDR_MAX];
	const char *domain, *plus;
	sqlite3_stmt *s;
	int64_t uid;
	int r;

	if ((domain = store__lower_addr(address, addr, NULL)) == NULL)
		return 0;
	if ((r = store__row(st, STORE_Q_USER_ADDRESS,
	    "SELECT address FROM users WHERE id = ?1", &s,
	    "cannot look up user", NULL, "i", user_id)) <= 0)
		return r;
	snprintf(own, sizeof(own), "%s", sqlite3_column_text(s, 0));
	sqlite3_reset(s);

	if (strcmp(addr, own) == 0)
		return 1;
	plus = memchr(addr, '+', (size_t)(domain - 1 - addr));
	if (plus != NULL && plus > addr &&
	    strncmp(addr, own, (size_t)(plus - addr)) == 0 &&
	    own[plus - addr] == '@' &&
	    strcmp(own + (plus - addr) + 1, domain) == 0)
		return 1;

	/* An alias (or alias+tag) that delivers to the user.  Not the
	 * catch-all: receiving everything for a domain is no licence to
	 * send as anyone in it. */
	r = store_res_lookup(st, addr, domain, false, &uid, key, NULL);
	if (r != 2)
		return r < 0 ? r : 0;
	res.path[0] = addr;
	if ((r = store_res_expand(&res, key, 1)) == 0) {
		r = 0;
		for (size_t i = 0; i < res.n_users; i++)
			if (res.users[i] == user_id)
				r = 1;
	}
	store_res_fini(&res);
	return r;
}

/* --- Alias administration ---------------------------------------------- */

/* Canonical alias key of alias (lower case, "@domain" for a catch-all) in
 * key (ADDR_MAX bytes); *domain_r points into key. */
static int
store_alias_key(const char *alias, char *key, const char **domain_r,
    struct pr_err *err)
{
	size_t len = alias != NULL ? strlen(alias) : 0;

	char parsed[ADDR_MAX];

	if (len > 1 && alias[0] == '@') {
		key[0] = '@';
		if (len >= ADDR_MAX || !addr_domain_valid(alias + 1, len - 1,
		    true) || domain_normalize(alias + 1, len - 1, key + 1,
		    ADDR_MAX - 1) < 0)
			return pr_err_set(err, PR_EINVAL,
			    "invalid catch-all alias: %s", alias);
		*domain_r = key + 1;
		return 0;
	}
	if (len == 0 || addr_parse_mailbox(alias, len, true, parsed) < 0 ||
	    (*domain_r = store__lower_addr(parsed, key, NULL)) == NULL)
		return pr_err_set(err, PR_EINVAL, "invalid alias address: %s",
		    alias != NULL ? alias : "");
	return 0;
}

/* Parses one comma-separated target into out: lower case in a hosted
 * domain, the local part as written elsewhere. */
static int
store_alias_target(struct store *st, const char *t, size_t len, char *out,
    bool *hosted_r, struct pr_err *err)
{
	char lower[ADDR_MAX];
	const char *domain;
	int r;

	if (addr_parse_mailbox(t, len, true, out) < 0 ||
	    (domain = store__lower_addr(out, lower, NULL)) == NULL)
		return pr_err_set(err, PR_EINVAL, "invalid target address: "
		    "%.*s", (int)(len > 255 ? 255 : len), t);
	if ((r = store__domain_id(st, domain, NULL, err)) < 0)
		return r;
	*hosted_r = r > 0;
	if (*hosted_r)
		memcpy(out, lower, strlen(lower) + 1);
	return 0;
}

static int
store_alias_insert(struct store *st, int64_t domain_id, const char *key,
    const char *target, struct pr_err *err)
{
	return store__run(st, STORE_Q_ALIAS_ADD,
	    "INSERT OR IGNORE INTO aliases (domain_id, alias, target)"
	    " VALUES (?1, ?2, ?3)", "cannot add alias", err, "itt", domain_id,
	    key, target);
}

/* How store_alias_add_targets judges a local target. */
struct store_alias_mode {
	bool strict;   /* a catch-all does not make a target known */
	bool force;    /* unknown targets go to unknown_cb, not an error */
	void (*unknown_cb)(void *ctx, const char *target);
	void *ctx;
};

/* Adds the targets in list to alias key; run inside a transaction. */
static int
store_alias_add_targets(struct store *st, int64_t domain_id,
    const char *key, const char *list, const struct store_alias_mode *m,
    struct pr_err *err)
{
	char target[ADDR_MAX], tkey[ADDR_MAX];
	const char *p = list, *end, *domain;
	size_t n = 0, len;
	int64_t uid;
	bool hosted = false;
	int r;

	while (*p != '\0') {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len > 0) {
			if ((r = store_alias_target(st, p, len, target,
			    &hosted, err)) < 0)
				return r;
			if (strcmp(target, key) == 0)
				return pr_err_set(err, PR_ELOOP,
				    "alias loop: %s -> %s", key, target);
			if (hosted) {
				domain = strrchr(target, '@') + 1;
				r = store_res_lookup(st, target, domain,
				    !m->strict, &uid, tkey, err);
				if (r < 0)
					return r;
				if (r == 0 && !m->force)
					return pr_err_set(err, PR_ENOENT,
					    "no such user or alias: %s",
					    target);
				if (r == 0 && m->unknown_cb != NULL)
					m->unknown_cb(m->ctx, target);
			}
			if ((r = store_alias_insert(st, domain_id, key,
			    target, err)) < 0)
				return r;
			n++;
		}
		p = end != NULL ? end + 1 : p + len;
	}
	if (n == 0)
		return pr_err_set(err, PR_EINVAL, "no target given for %s",
		    key);
	return 0;
}

static int
store_alias_add_mode(struct store *st, const char *alias, const char *targets,
    bool append, const struct store_alias_mode *m, struct pr_err *err)
{
	struct store_res res = { .st = st, .err = err };
	char key[ADDR_MAX];
	const char *domain;
	int64_t domain_id;
	int r;

	if ((r = store_alias_key(alias, key, &domain, err)) < 0)
		return r;
	if (targets == NULL)
		targets = "";
	if ((r = store__begin(st, err)) < 0)
		return r;
	if ((r = store__hosted(st, domain, &domain_id, err)) < 0)
		goto out;
	if ((r = store__user_id(st, key, NULL, err)) != 0) {
		if (r > 0)
			r = pr_err_set(err, PR_EEXIST,
			    "%s is a user, it cannot be an alias", key);
		goto out;
	}
	if (!append && (r = store__alias_exists(st, key, err)) != 0) {
		if (r > 0)
			r = pr_err_set(err, PR_EEXIST,
			    "alias %s exists already", key);
		goto out;
	}
	if ((r = store_alias_add_targets(st, domain_id, key, targets, m,
	    err)) < 0)
		goto out;

	/* With the new rows in place, walk everything the alias reaches:
	 * meeting the alias again is a loop; too deep or too wide an
	 * expansion is refused now rather than at delivery time. */
	res.stop = key;
	res.path[0] = key;
	r = store_res_expand(&res, key, 1);
	store_res_fini(&res);
out:
	return store__end(st, r, err);
}

int
store_alias_add(struct store *st, const char *alias, const char *targets,
    struct pr_err *err)
{
	static const struct store_alias_mode lenient = { 0 };

	return store_alias_add_mode(st, alias, targets, true, &lenient, err);
}

int
store_alias_set(struct store *st, const char *alias, const char *targets,
    unsigned flags, void (*unknown_cb)(void *ctx, const char *target),
    void *ctx, struct pr_err *err)
{
	struct store_alias_mode m = {
		.strict = true,
		.force = (flags & STORE_ALIAS_FORCE) != 0,
		.unknown_cb = unknown_cb,
		.ctx = ctx,
	};

	return store_alias_add_mode(st, alias, targets,
	    (flags & STORE_ALIAS_APPEND) != 0, &m, err);
}

/*
 * Takes the user address (lower case, domain pointing into it) out of
 * every alias's targets, with its +tag forms (RFC 5233) unless such a
 * form is a user of its own; an alias left empty is deleted.  Inside the
 * caller's transaction; alias_cb (may be NULL) hears of each alias.
 */
int
store__alias_drop_target(struct store *st, const char *address,
    const char *domain, void (*alias_cb)(void *ctx, const char *alias,
    bool deleted), void *ctx, struct pr_err *err)
{
	struct store_strv aliases = { 0 }, targets = { 0 };
	size_t llen = (size_t)(domain - 1 - address);
	char lo[ADDR_MAX], hi[ADDR_MAX];
	sqlite3_stmt *s;
	const char *a, *t;
	bool changed = false;
	int rc, r;

	if (llen + 2 > sizeof(lo))
		return pr_err_set(err, PR_EINVAL, "invalid address: %s",
		    address);
	/* The address itself, and the range of "local+..." ('+' is 0x2b,
	 * ',' 0x2c): both through the target index; the domain of a +tag
	 * form is checked below. */
	memcpy(lo, address, llen);
	memcpy(hi, address, llen);
	lo[llen] = '+';
	hi[llen] = ',';
	lo[llen + 1] = hi[llen + 1] = '\0';
	if ((s = store__bind(st, STORE_Q_ALIAS_OF_TARGET,
	    "SELECT alias, target FROM aliases WHERE target = ?1"
	    " OR (target > ?2 AND target < ?3) ORDER BY alias, id",
	    "cannot read aliases", err, "ttt", address, lo, hi)) == NULL)
		return store__errcode(err);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		a = (const char *)sqlite3_column_text(s, 0);
		t = (const char *)sqlite3_column_text(s, 1);
		if (strcmp(t, address) != 0 &&
		    !(strncmp(t, address, llen) == 0 && t[llen] == '+' &&
		    strchr(t + llen, '@') != NULL &&
		    strcmp(strrchr(t, '@') + 1, domain) == 0))
			continue;
		if (store__strv_push(&aliases, a) < 0 ||
		    store__strv_push(&targets, t) < 0)
			break;
	}
	if ((r = store__done(st, s, rc, "cannot read aliases", err)) < 0)
		goto out;
	for (size_t i = 0; i < aliases.n; i++) {
		/* A +tag form that is a user itself stays. */
		r = 0;
		if (strcmp(targets.v[i], address) != 0 &&
		    (r = store__user_id(st, targets.v[i], NULL, err)) < 0)
			goto out;
		if (r == 0) {
			if ((r = store__run(st, STORE_Q_ALIAS_DEL_TARGET,
			    "DELETE FROM aliases WHERE alias = ?1 AND"
			    " target = ?2", "cannot change alias", err, "tt",
			    aliases.v[i], targets.v[i])) < 0)
				goto out;
			changed = true;
		}
		if (i + 1 < aliases.n &&
		    strcmp(aliases.v[i], aliases.v[i + 1]) == 0)
			continue;
		if (changed) {
			if ((r = store__alias_exists(st, aliases.v[i],
			    err)) < 0)
				goto out;
			if (alias_cb != NULL)
				alias_cb(ctx, aliases.v[i], r == 0);
		}
		changed = false;
	}
	r = 0;
out:
	store__strv_fini(&aliases);
	store__strv_fini(&targets);
	return r;
}

int
store_alias_del(struct store *st, const char *alias, struct pr_err *err)
{
	char key[ADDR_MAX];
	const char *domain;
	int r;

	if ((r = store_alias_key(alias, key, &domain, err)) < 0)
		return r;
	return store__changed(st, store__run(st, STORE_Q_ALIAS_DEL,
	    "DELETE FROM aliases WHERE alias = ?1", "cannot delete alias", err,
	    "t", key), err, "no such alias: %s", key);
}

int
store_alias_list(struct store *st,
    int (*cb)(void *ctx, const char *alias, const char *targets), void *ctx,
    struct pr_err *err)
{
	struct store_strv keys = { 0 }, lists = { 0 };
	struct buf line;
	sqlite3_stmt *s;
	const char *a, *t;
	int rc, r = 0;

	if ((s = store__bind(st, STORE_Q_ALIAS_LIST,
	    "SELECT alias, target FROM aliases ORDER BY alias, id",
	    "cannot list aliases", err, "")) == NULL)
		return store__errcode(err);
	/* Targets of one alias are joined with commas; the bound is the
	 * most STORE_RESOLVE_MAX addresses can take. */
	buf_init(&line, (size_t)STORE_RESOLVE_MAX * ADDR_MAX);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		a = (const char *)sqlite3_column_text(s, 0);
		t = (const char *)sqlite3_column_text(s, 1);
		if (keys.n == 0 || strcmp(keys.v[keys.n - 1], a) != 0) {
			if (keys.n > 0 && (buf_append(&line, "", 1) < 0 ||
			    store__strv_push(&lists, (char *)line.p) < 0))
				break;
			buf_reset(&line);
			if (store__strv_push(&keys, a) < 0)
				break;
		} else if (buf_append(&line, ",", 1) < 0) {
			break;
		}
		if (buf_puts(&line, t) < 0)
			break;
	}
	if (rc == SQLITE_DONE && keys.n > 0 &&
	    (buf_append(&line, "", 1) < 0 ||
	    store__strv_push(&lists, (char *)line.p) < 0))
		rc = SQLITE_NOMEM;
	r = store__done(st, s, rc, "cannot list aliases", err);
	for (size_t i = 0; r == 0 && i < keys.n; i++)
		r = cb(ctx, keys.v[i], lists.v[i]);
	buf_fini(&line);
	store__strv_fini(&keys);
	store__strv_fini(&lists);
	return r;
}
