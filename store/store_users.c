/*
 * store_users.c - domains, users and passwords.
 */
#include "store_int.h"

#include "domain.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

/* --- Domains ----------------------------------------------------------- */

/* Validates a domain name into out (its normal form, domain.h; ADDR_MAX
 * bytes). */
static int
store_domain_canon(const char *domain, char *out, struct pr_err *err)
{
	size_t len = domain != NULL ? strlen(domain) : 0;

	if (len == 0 || domain[0] == '[' ||
	    domain_normalize(domain, len, out, ADDR_MAX) < 0)
		return pr_err_set(err, PR_EINVAL, "invalid domain name: %s",
		    domain != NULL ? domain : "");
	if (domain_is_ip(out))
		return pr_err_set(err, PR_EINVAL, "%s is an IP address, not a "
		    "domain name", domain);
	return 0;
}

int
store_domain_add(struct store *st, const char *domain, struct pr_err *err)
{
	char name[ADDR_MAX];
	int r;

	if ((r = store_domain_canon(domain, name, err)) < 0)
		return r;
	r = store__run(st, STORE_Q_DOMAIN_ADD,
	    "INSERT INTO domains (name, created) VALUES (?1, ?2)",
	    "cannot add domain", err, "ti", name, (int64_t)time(NULL));
	if (r < 0 && sqlite3_extended_errcode(st->db) ==
	    SQLITE_CONSTRAINT_UNIQUE)
		return pr_err_set(err, PR_EEXIST, "domain %s already exists",
		    name);
	return r;
}

int
store_domain_del(struct store *st, const char *domain, struct pr_err *err)
{
	char name[ADDR_MAX];
	sqlite3_stmt *s;
	int64_t id, users, aliases;
	int r;

	if ((r = store_domain_canon(domain, name, err)) < 0)
		return r;
	if ((r = store__begin(st, err)) < 0)
		return r;
	if ((r = store__hosted(st, name, &id, err)) < 0)
		goto out;
	if ((r = store__row(st, STORE_Q_DOMAIN_INUSE,
	    "SELECT (SELECT count(*) FROM users WHERE domain_id = ?1),"
	    " (SELECT count(DISTINCT alias) FROM aliases"
	    "  WHERE domain_id = ?1)", &s,
	    "cannot delete domain", err, "i", id)) <= 0) {
		if (r == 0)
			r = pr_err_set(err, PR_EIO, "cannot delete domain");
		goto out;
	}
	users = sqlite3_column_int64(s, 0);
	aliases = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	if (users > 0 || aliases > 0) {
		r = pr_err_set(err, PR_EBUSY,
		    "domain %s still has %lld user%s and %lld alias%s",
		    name, (long long)users, users == 1 ? "" : "s",
		    (long long)aliases, aliases == 1 ? "" : "es");
		goto out;
	}
	r = store__run(st, STORE_Q_DOMAIN_DEL,
	    "DELETE FROM domains WHERE id = ?1", "cannot delete domain", err,
	    "i", id);
out:
	return store__end(st, r, err);
}

int
store_domain_exists(struct store *st, const char *domain)
{
	char name[ADDR_MAX];
	size_t len = domain != NULL ? strlen(domain) : 0;

	if (len == 0 || domain_normalize(domain, len, name, sizeof(name)) < 0)
		return 0;
	return store__domain_id(st, name, NULL, NULL);
}

int
store_domain_list(struct store *st,
    int (*cb)(void *ctx, const char *domain), void *ctx, struct pr_err *err)
{
	struct store_strv names = { 0 };
	int r;

	r = store__texts(st, STORE_Q_DOMAIN_LIST,
	    "SELECT name FROM domains ORDER BY name", "cannot list domains",
	    err, &names, 0, "");
	for (size_t i = 0; r == 0 && i < names.n; i++)
		r = cb(ctx, names.v[i]);
	store__strv_fini(&names);
	return r;
}

/* --- Passwords --------------------------------------------------------- */

int
store_password_hash(const char *password, char hash_r[STORE_HASH_MAX])
{
	size_t len = password != NULL ? strlen(password) : 0;

	hash_r[0] = '\0';
	if (len == 0 || len > STORE_PASSWORD_MAX)
		return PR_EINVAL;
	if (sodium_init() < 0)
		return PR_EIO;
	/* argon2id with libsodium's interactive limits (64 MiB, 2 passes):
	 * about 0.1 s per login on current hardware. */
	if (crypto_pwhash_str(hash_r, password, len,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return PR_ENOMEM;
	return 0;
}

/*
 * Verified for unknown users so that a login costs the same argon2id work
 * whether or not the user exists.  The hash of a random password that was
 * thrown away, with the same (interactive) limits as real hashes; being a
 * constant, even the first unknown-user login costs exactly one run.
 */
static const char store_dummy_hash[STORE_HASH_MAX] =
    "$argon2id$v=19$m=65536,t=2,p=1$W4PhUMdi0D3FEDAOwhDHoA$"
    "oL8ZVSi9YRDZt+8fCclh4kMziwxUPm8mQhja7ZFvAB4";

int
store_password_verify(const char *hash, const char *password)
{
	const char *pw = password != NULL ? password : "";

	if (sodium_init() < 0)
		return PR_EAUTH;
	if (hash == NULL || *hash == '\0') {
		int r = crypto_pwhash_str_verify(store_dummy_hash, pw,
		    strlen(pw));

		(void)r;
		return PR_EAUTH;
	}
	if (crypto_pwhash_str_verify(hash, pw, strlen(pw)) != 0)
		return PR_EAUTH;
	return 0;
}

/* --- Users ------------------------------------------------------------- */

/* Canonical lower-case form of a user or alias address, its domain in
 * normal form (ADDR_MAX bytes). */
static int
store_addr_canon(const char *address, char *out, struct pr_err *err)
{
	size_t len = address != NULL ? strlen(address) : 0;
	char parsed[ADDR_MAX];

	if (len == 0 || addr_parse_mailbox(address, len, true, parsed) < 0 ||
	    store__lower_addr(parsed, out, NULL) == NULL)
		return pr_err_set(err, PR_EINVAL, "invalid address: %s",
		    address != NULL ? address : "");
	return 0;
}

static int
store_password_check(const char *password, struct pr_err *err)
{
	size_t len = password != NULL ? strlen(password) : 0;

	if (len == 0)
		return pr_err_set(err, PR_EINVAL, "the password is empty");
	if (len > STORE_PASSWORD_MAX)
		return pr_err_set(err, PR_EINVAL,
		    "the password is longer than %d bytes", STORE_PASSWORD_MAX);
	return 0;
}

/* Checks that address may become a new user: a hosted domain, not a user
 * or an alias yet.  Sets *domain_id_r. */
static int
store_user_check_new(struct store *st, const char *address,
    int64_t *domain_id_r, struct pr_err *err)
{
	const char *domain = addr_domain(address);
	int r;

	if ((r = store__hosted(st, domain, domain_id_r, err)) < 0)
		return r;
	if ((r = store__user_id(st, address, NULL, err)) != 0)
		return r < 0 ? r : pr_err_set(err, PR_EEXIST,
		    "user %s already exists", address);
	if ((r = store__alias_exists(st, address, err)) != 0)
		return r < 0 ? r : pr_err_set(err, PR_EEXIST,
		    "%s is an alias already", address);
	return 0;
}

int
store_user_add(struct store *st, const char *address, const char *password,
    int64_t quota, struct pr_err *err)
{
	char addr[ADDR_MAX], hash[STORE_HASH_MAX];
	int64_t domain_id;
	int r;

	if ((r = store_addr_canon(address, addr, err)) < 0 ||
	    (r = store_password_check(password, err)) < 0)
		return r;
	if (quota < 0)
		return pr_err_set(err, PR_EINVAL, "the quota is negative");
	/* Check before hashing for a quick answer, and again under the write
	 * lock, which is not held during the (slow) hashing. */
	if ((r = store_user_check_new(st, addr, &domain_id, err)) < 0)
		return r;
	if (store_password_hash(password, hash) < 0)
		return pr_err_set(err, PR_ENOMEM,
		    "cannot hash the password: out of memory");

	if ((r = store__begin(st, err)) < 0)
		goto out;
	if ((r = store_user_check_new(st, addr, &domain_id, err)) == 0)
		r = store__run(st, STORE_Q_USER_ADD,
		    "INSERT INTO users (domain_id, address, hash, quota,"
		    " created) VALUES (?1, ?2, ?3, ?4, ?5)", "cannot add user",
		    err, "ittii", domain_id, addr, hash, quota,
		    (int64_t)time(NULL));
	r = store__end(st, r, err);
out:
	sodium_memzero(hash, sizeof(hash));
	return r;
}

int
store_user_del_report(struct store *st, const char *address,
    void (*alias_cb)(void *ctx, const char *alias, bool deleted), void *ctx,
    struct pr_err *err)
{
	char addr[ADDR_MAX];
	const char *domain;
	int r;

	if ((domain = store__lower_addr(address, addr, err)) == NULL)
		return PR_EINVAL;
	if ((r = store__begin(st, err)) < 0)
		return r;
	/* The mailbox and lock rows go by ON DELETE CASCADE and
	 * unreferenced bodies by the mailbox_delete trigger; the aliases
	 * that named the user change in the same transaction, so no alias
	 * is ever left pointing at a user who is gone. */
	r = store__changed(st, store__run(st, STORE_Q_USER_DEL,
	    "DELETE FROM users WHERE address = ?1", "cannot delete user", err,
	    "t", addr), err, "no such user: %s", addr);
	if (r == 0)
		r = store__alias_drop_target(st, addr, domain, alias_cb, ctx,
		    err);
	return store__end(st, r, err);
}

int
store_user_del(struct store *st, const char *address, struct pr_err *err)
{
	return store_user_del_report(st, address, NULL, NULL, err);
}

int
store_user_passwd(struct store *st, const char *address,
    const char *password, struct pr_err *err)
{
	char addr[ADDR_MAX], hash[STORE_HASH_MAX];
	int r;

	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if ((r = store_password_check(password, err)) < 0)
		return r;
	if ((r = store__user_id(st, addr, NULL, err)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user: %s", addr);
	if (store_password_hash(password, hash) < 0)
		return pr_err_set(err, PR_ENOMEM,
		    "cannot hash the password: out of memory");
	r = store__changed(st, store__run(st, STORE_Q_USER_PASSWD,
	    "UPDATE users SET hash = ?2 WHERE address = ?1",
	    "cannot change the password", err, "tt", addr, hash), err,
	    "no such user: %s", addr);
	sodium_memzero(hash, sizeof(hash));
	return r;
}

int
store_user_set_quota(struct store *st, const char *address, int64_t quota,
    struct pr_err *err)
{
	char addr[ADDR_MAX];

	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if (quota < 0)
		return pr_err_set(err, PR_EINVAL, "the quota is negative");
	return store__changed(st, store__run(st, STORE_Q_USER_QUOTA,
	    "UPDATE users SET quota = ?2 WHERE address = ?1",
	    "cannot set the quota", err, "ti", addr, quota), err,
	    "no such user: %s", addr);
}

#define STORE_USER_COLS "id, address, quota, used, messages, created"

static void
store_user_row(sqlite3_stmt *s, void *elem)
{
	struct store_user *u = elem;

	u->id = sqlite3_column_int64(s, 0);
	u->address = (const char *)sqlite3_column_text(s, 1);
	u->quota = sqlite3_column_int64(s, 2);
	u->used = sqlite3_column_int64(s, 3);
	u->messages = sqlite3_column_int64(s, 4);
	u->created = sqlite3_column_int64(s, 5);
}

int
store_user_get(struct store *st, const char *address, struct store_user *u_r,
    struct pr_err *err)
{
	char addr[ADDR_MAX];
	sqlite3_stmt *s;
	int r;

	memset(u_r, 0, sizeof(*u_r));
	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if ((r = store__row(st, STORE_Q_USER_GET,
	    "SELECT " STORE_USER_COLS " FROM users WHERE address = ?1", &s,
	    "cannot look up user", err, "t", addr)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user: %s", addr);
	store_user_row(s, u_r);
	snprintf(st->addr, sizeof(st->addr), "%s",
	    u_r->address != NULL ? u_r->address : "");
	u_r->address = st->addr;
	sqlite3_reset(s);
	return 0;
}

int
store_user_list(struct store *st, const char *domain,
    int (*cb)(void *ctx, const struct store_user *u), void *ctx,
    struct pr_err *err)
{
	struct store_user *users = NULL;
	struct store_strv addrs = { 0 };
	size_t n = 0, cap = 0;
	char name[ADDR_MAX];
	sqlite3_stmt *s;
	int64_t domain_id = 0;
	int r;

	if (domain != NULL) {
		if ((r = store_domain_canon(domain, name, err)) < 0 ||
		    (r = store__hosted(st, name, &domain_id, err)) < 0)
			return r;
		s = store__bind(st, STORE_Q_USER_LIST_DOMAIN,
		    "SELECT " STORE_USER_COLS " FROM users"
		    " WHERE domain_id = ?1 ORDER BY address",
		    "cannot list users", err, "i", domain_id);
	} else {
		s = store__bind(st, STORE_Q_USER_LIST,
		    "SELECT " STORE_USER_COLS " FROM users ORDER BY address",
		    "cannot list users", err, "");
	}
	r = store__collect(st, s, &users, &n, &cap, sizeof(*users),
	    store_user_row, &addrs, 1, "cannot list users", err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		users[i].address = addrs.v[i];
		r = cb(ctx, &users[i]);
	}
	free(users);
	store__strv_fini(&addrs);
	return r;
}

int
store_user_auth_info(struct store *st, const char *address, int64_t *id_r,
    char hash_r[STORE_HASH_MAX], struct pr_err *err)
{
	char addr[ADDR_MAX];
	sqlite3_stmt *s;
	const char *h;
	int r;

	*id_r = 0;
	hash_r[0] = '\0';
	/* Anything that is not an address is simply an unknown user. */
	if (store__lower_addr(address, addr, NULL) == NULL)
		return pr_err_set(err, PR_ENOENT, "no such user");
	if ((r = store__row(st, STORE_Q_USER_AUTH,
	    "SELECT id, hash FROM users WHERE address = ?1", &s,
	    "cannot look up user", err, "t", addr)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user: %s", addr);
	h = (const char *)sqlite3_column_text(s, 1);
	if (h != NULL && strlen(h) < STORE_HASH_MAX) {
		*id_r = sqlite3_column_int64(s, 0);
		memcpy(hash_r, h, strlen(h) + 1);
	} else {
		r = pr_err_set(err, PR_EIO, "bad password hash for %s", addr);
	}
	sqlite3_reset(s);
	return r < 0 ? r : 0;
}

int
store_user_verify(struct store *st, const char *address,
    const char *password, int64_t *id_r, struct pr_err *err)
{
	char hash[STORE_HASH_MAX];
	int64_t id;
	int r;

	*id_r = 0;
	r = store_user_auth_info(st, address, &id, hash, err);
	if (r < 0 && r != PR_ENOENT)
		return r;
	if (store_password_verify(r == 0 ? hash : NULL, password) < 0)
		return pr_err_set(err, PR_EAUTH, "authentication failed");
	*id_r = id;
	pr_err_clear(err);
	return 0;
}

int
store_mailbox_usage(struct store *st, int64_t user_id, int64_t *bytes_r,
    int64_t *count_r, int64_t *quota_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	if ((r = store__row(st, STORE_Q_USER_USAGE,
	    "SELECT used, messages, quota FROM users WHERE id = ?1", &s,
	    "cannot read mailbox usage", err, "i", user_id)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user id %lld", (long long)user_id);
	if (bytes_r != NULL)
		*bytes_r = sqlite3_column_int64(s, 0);
	if (count_r != NULL)
		*count_r = sqlite3_column_int64(s, 1);
	if (quota_r != NULL)
		*quota_r = sqlite3_column_int64(s, 2);
	sqlite3_reset(s);
	return 0;
}
