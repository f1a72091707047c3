/*
 * store_logins.c - logins: a login name and a password's tag resolved to
 * the one credential to check; app passwords and devices.
 *
 * A user may hold any number of app passwords, and every login must still
 * cost one argon2id check, not one per password (docs/ARCHITECTURE.md
 * 3.2).  So generated passwords carry a tag in clear, a unique lookup key:
 * the lookup picks the credential by (name, tag) and returns its hash
 * alone.  A password without the generated shape, or whose tag belongs
 * to nobody of that name, is checked against the user's own password.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

/* An hour: the window of a device's rate. */
#define STORE_LOGIN_RATE_WINDOW 3600

bool
store_login_tag(const char *password, char tag_r[STORE_LOGIN_TAG_LEN + 1])
{
	size_t i;

	tag_r[0] = '\0';
	if (password == NULL || strlen(password) != STORE_LOGIN_PASSWORD_LEN ||
	    password[STORE_LOGIN_TAG_LEN] != '-')
		return false;
	for (i = 0; i < STORE_LOGIN_PASSWORD_LEN; i++)
		if (i != STORE_LOGIN_TAG_LEN &&
		    strchr(STORE_LOGIN_ALPHABET, password[i]) == NULL)
			return false;
	memcpy(tag_r, password, STORE_LOGIN_TAG_LEN);
	tag_r[STORE_LOGIN_TAG_LEN] = '\0';
	return true;
}

/* Copies the hash of column col of s into l; PR_EIO if it is unusable. */
static int
store_login_hash(sqlite3_stmt *s, int col, struct store_login *l,
    struct pr_err *err)
{
	const char *h = (const char *)sqlite3_column_text(s, col);

	if (h == NULL || strlen(h) >= STORE_HASH_MAX)
		return pr_err_set(err, PR_EIO, "bad password hash for %s",
		    l->name);
	memcpy(l->hash, h, strlen(h) + 1);
	return 0;
}

static void
store_login_text(char *out, size_t outsz, sqlite3_stmt *s, int col)
{
	const char *t = (const char *)sqlite3_column_text(s, col);

	snprintf(out, outsz, "%s", t != NULL ? t : "");
}

/* A device named name that holds tag: 1 (l filled in), 0, or <0. */
static int
store_login_device(struct store *st, const char *name, const char *tag,
    struct store_login *l, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	if ((r = store__row(st, STORE_Q_LOGIN_DEVICE,
	    "SELECT id, from_addr, rate, hash FROM devices"
	    " WHERE name = ?1 AND tag = ?2", &s, "cannot look up device",
	    err, "tt", name, tag)) <= 0)
		return r;
	l->kind = STORE_LOGIN_DEVICE;
	l->cred_id = sqlite3_column_int64(s, 0);
	store_login_text(l->from, sizeof(l->from), s, 1);
	l->rate = (unsigned)sqlite3_column_int64(s, 2);
	snprintf(l->label, sizeof(l->label), "%s", name);
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->account, sizeof(l->account), "device/%s", name);
	r = store_login_hash(s, 3, l, err);
	sqlite3_reset(s);
	return r < 0 ? r : 1;
}

/* An app password of user l->user_id (address addr) that holds tag: 1,
 * 0 or <0.  By the user's id, found already: no second lookup of the
 * address. */
static int
store_login_app(struct store *st, const char *addr, const char *tag,
    struct store_login *l, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	if ((r = store__row(st, STORE_Q_LOGIN_APP,
	    "SELECT id, label, hash FROM app_passwords"
	    " WHERE tag = ?1 AND user_id = ?2", &s,
	    "cannot look up app password", err, "ti", tag, l->user_id)) <= 0)
		return r;
	l->kind = STORE_LOGIN_APP;
	l->cred_id = sqlite3_column_int64(s, 0);
	store_login_text(l->label, sizeof(l->label), s, 1);
	snprintf(l->account, sizeof(l->account), "app/%s/%s", l->label,
	    addr);
	r = store_login_hash(s, 2, l, err);
	sqlite3_reset(s);
	return r < 0 ? r : 1;
}

int
store_login_lookup(struct store *st, const char *name, const char *tag,
    const char *default_domain, struct store_login *l_r, struct pr_err *err)
{
	char low[ADDR_MAX], addr[ADDR_MAX];
	bool tagged = tag != NULL && strlen(tag) == STORE_LOGIN_TAG_LEN;
	sqlite3_stmt *s;
	int r;

	memset(l_r, 0, sizeof(*l_r));
	snprintf(low, sizeof(low), "%s", name != NULL ? name : "");
	addr_lower(low);
	snprintf(l_r->name, sizeof(l_r->name), "%s", low);
	snprintf(l_r->account, sizeof(l_r->account), "%s", low);
	if (strchr(low, '@') == NULL) {
		if (tagged && low[0] != '\0' &&
		    (r = store_login_device(st, low, tag, l_r, err)) != 0)
			return r < 0 ? r : 0;
		/* RFC 5321 2.4: the domain part compares without case; the
		 * local part as the store keeps it, in lower case. */
		if (default_domain == NULL || default_domain[0] == '\0' ||
		    low[0] == '\0' ||
		    strlen(low) + 1 + strlen(default_domain) >= ADDR_MAX)
			return 0;
		snprintf(addr, sizeof(addr), "%s@%s", low, default_domain);
		addr_lower(addr);
	} else {
		memcpy(addr, low, sizeof(addr));
	}
	/* Anything that is not an address is simply an unknown login. */
	if (store__lower_addr(addr, addr, NULL) == NULL)
		return 0;
	snprintf(l_r->name, sizeof(l_r->name), "%s", addr);
	snprintf(l_r->account, sizeof(l_r->account), "%s", addr);
	if ((r = store__row(st, STORE_Q_USER_AUTH,
	    "SELECT id, hash FROM users WHERE address = ?1", &s,
	    "cannot look up user", err, "t", addr)) < 0)
		return r;
	if (r == 0)
		return 0;
	l_r->user_id = sqlite3_column_int64(s, 0);
	r = store_login_hash(s, 1, l_r, err);
	sqlite3_reset(s);
	if (r < 0) {
		l_r->user_id = 0;
		return r;
	}
	l_r->kind = STORE_LOGIN_USER;
	if (tagged && (r = store_login_app(st, addr, tag, l_r, err)) < 0) {
		sodium_memzero(l_r->hash, sizeof(l_r->hash));
		l_r->kind = STORE_LOGIN_NONE;
		l_r->user_id = 0;
		return r;
	}
	return 0;
}

/* --- Generated passwords ---------------------------------------------- */

/* 1 if some credential holds tag, 0, or <0. */
static int
store_login_tag_used(struct store *st, const char *tag, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	if ((r = store__row(st, STORE_Q_LOGIN_TAG_APP,
	    "SELECT 1 FROM app_passwords WHERE tag = ?1", &s,
	    "cannot look up a tag", err, "t", tag)) != 0) {
		if (r > 0)
			sqlite3_reset(s);
		return r;
	}
	if ((r = store__row(st, STORE_Q_LOGIN_TAG_DEVICE,
	    "SELECT 1 FROM devices WHERE tag = ?1", &s,
	    "cannot look up a tag", err, "t", tag)) > 0)
		sqlite3_reset(s);
	return r;
}

int
store_login_generate(struct store *st,
    char pw_r[STORE_LOGIN_PASSWORD_LEN + 1], struct pr_err *err)
{
	const char *a = STORE_LOGIN_ALPHABET;
	char tag[STORE_LOGIN_TAG_LEN + 1];
	size_t i;
	int r, tries;

	if (sodium_init() < 0)
		return pr_err_set(err, PR_EIO, "cannot initialise libsodium");
	/* 40 bits of tag: a collision is rare, and is simply drawn again. */
	for (tries = 0; tries < 16; tries++) {
		for (i = 0; i < STORE_LOGIN_PASSWORD_LEN; i++)
			pw_r[i] = a[randombytes_uniform(32)];
		pw_r[STORE_LOGIN_TAG_LEN] = '-';
		pw_r[STORE_LOGIN_PASSWORD_LEN] = '\0';
		memcpy(tag, pw_r, STORE_LOGIN_TAG_LEN);
		tag[STORE_LOGIN_TAG_LEN] = '\0';
		if ((r = store_login_tag_used(st, tag, err)) <= 0) {
			if (r < 0)
				sodium_memzero(pw_r,
				    STORE_LOGIN_PASSWORD_LEN + 1);
			return r;
		}
	}
	sodium_memzero(pw_r, STORE_LOGIN_PASSWORD_LEN + 1);
	return pr_err_set(err, PR_EIO, "cannot draw an unused password tag");
}

/* --- App passwords ----------------------------------------------------- */

/* A label or device name into out, lower case. */
static int
store_login_label(const char *in, char out[STORE_LOGIN_LABEL_MAX + 1],
    const char *what, struct pr_err *err)
{
	size_t i, len = in != NULL ? strlen(in) : 0;

	if (len == 0 || len > STORE_LOGIN_LABEL_MAX)
		return pr_err_set(err, PR_EINVAL, "invalid %s: 1 to %d "
		    "letters, digits, '.', '_' or '-'", what,
		    STORE_LOGIN_LABEL_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return pr_err_set(err, PR_EINVAL, "invalid %s: %s "
			    "(letters, digits, '.', '_' or '-')", what, in);
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return 0;
}

static int
store_login_password_ok(const char *pw, char tag_r[STORE_LOGIN_TAG_LEN + 1],
    struct pr_err *err)
{
	if (!store_login_tag(pw, tag_r))
		return pr_err_set(err, PR_EINVAL, "not a generated password");
	return 0;
}

int
store_app_password_add(struct store *st, const char *address,
    const char *label, const char *pw, struct pr_err *err)
{
	char addr[ADDR_MAX], lab[STORE_LOGIN_LABEL_MAX + 1];
	char tag[STORE_LOGIN_TAG_LEN + 1], hash[STORE_HASH_MAX];
	int64_t user_id = 0;
	int r;

	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if ((r = store_login_label(label, lab, "label", err)) < 0 ||
	    (r = store_login_password_ok(pw, tag, err)) < 0)
		return r;
	if ((r = store__user_id(st, addr, &user_id, err)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user: %s", addr);
	if (store_password_hash(pw, hash) < 0)
		return pr_err_set(err, PR_ENOMEM,
		    "cannot hash the password: out of memory");
	r = store__run(st, STORE_Q_APP_ADD,
	    "INSERT INTO app_passwords (user_id, label, tag, hash, created)"
	    " SELECT id, ?2, ?3, ?4, ?5 FROM users WHERE address = ?1",
	    "cannot add app password", err, "tttti", addr, lab, tag, hash,
	    (int64_t)time(NULL));
	sodium_memzero(hash, sizeof(hash));
	if (r < 0 && sqlite3_extended_errcode(st->db) ==
	    SQLITE_CONSTRAINT_UNIQUE)
		return pr_err_set(err, PR_EEXIST, "%s already has an app "
		    "password labelled %s", addr, lab);
	if (r == 0 && sqlite3_changes(st->db) == 0)
		return pr_err_set(err, PR_ENOENT, "no such user: %s", addr);
	return r;
}

int
store_app_password_del(struct store *st, const char *address,
    const char *label, struct pr_err *err)
{
	char addr[ADDR_MAX], lab[STORE_LOGIN_LABEL_MAX + 1];
	int r;

	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if ((r = store_login_label(label, lab, "label", err)) < 0)
		return r;
	return store__changed(st, store__run(st, STORE_Q_APP_DEL,
	    "DELETE FROM app_passwords WHERE label = ?2"
	    " AND user_id = (SELECT id FROM users WHERE address = ?1)",
	    "cannot delete app password", err, "tt", addr, lab), err,
	    "%s has no app password labelled %s", addr, lab);
}

struct store_login_app_row {
	int64_t created;
};

static void
store_login_app_row(sqlite3_stmt *s, void *elem)
{
	struct store_login_app_row *a = elem;

	a->created = sqlite3_column_int64(s, 1);
}

int
store_app_password_list(struct store *st, const char *address,
    int (*cb)(void *ctx, const char *label, int64_t created), void *ctx,
    struct pr_err *err)
{
	struct store_login_app_row *rows = NULL;
	struct store_strv labels = { 0 };
	char addr[ADDR_MAX];
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int r;

	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if ((r = store__user_id(st, addr, NULL, err)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user: %s", addr);
	s = store__bind(st, STORE_Q_APP_LIST,
	    "SELECT a.label, a.created FROM app_passwords a"
	    " JOIN users u ON u.id = a.user_id WHERE u.address = ?1"
	    " ORDER BY a.label", "cannot list app passwords", err, "t", addr);
	r = store__collect(st, s, &rows, &n, &cap, sizeof(*rows),
	    store_login_app_row, &labels, 0, "cannot list app passwords",
	    err);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = cb(ctx, labels.v[i], rows[i].created);
	free(rows);
	store__strv_fini(&labels);
	return r;
}

/* --- Devices ----------------------------------------------------------- */

int
store_device_add(struct store *st, const char *name, const char *from,
    unsigned rate, const char *pw, struct pr_err *err)
{
	char nm[STORE_LOGIN_LABEL_MAX + 1], addr[ADDR_MAX];
	char tag[STORE_LOGIN_TAG_LEN + 1], hash[STORE_HASH_MAX];
	size_t len = from != NULL ? strlen(from) : 0;
	int r;

	if ((r = store_login_label(name, nm, "device name", err)) < 0)
		return r;
	if (len == 0 || addr_parse_mailbox(from, len, true, addr) < 0)
		return pr_err_set(err, PR_EINVAL, "invalid address: %s",
		    from != NULL ? from : "");
	addr_lower(addr);
	if ((r = store__hosted(st, addr_domain(addr), NULL, err)) < 0 ||
	    (r = store_login_password_ok(pw, tag, err)) < 0)
		return r;
	if (store_password_hash(pw, hash) < 0)
		return pr_err_set(err, PR_ENOMEM,
		    "cannot hash the password: out of memory");
	r = store__run(st, STORE_Q_DEVICE_ADD,
	    "INSERT INTO devices (name, from_addr, rate, tag, hash, created)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "cannot add device", err,
	    "ttitti", nm, addr, (int64_t)rate, tag, hash, (int64_t)time(NULL));
	sodium_memzero(hash, sizeof(hash));
	if (r < 0 && sqlite3_extended_errcode(st->db) ==
	    SQLITE_CONSTRAINT_UNIQUE)
		return pr_err_set(err, PR_EEXIST, "device %s already exists",
		    nm);
	return r;
}

int
store_device_del(struct store *st, const char *name, struct pr_err *err)
{
	char nm[STORE_LOGIN_LABEL_MAX + 1];
	int r;

	if ((r = store_login_label(name, nm, "device name", err)) < 0)
		return r;
	return store__changed(st, store__run(st, STORE_Q_DEVICE_DEL,
	    "DELETE FROM devices WHERE name = ?1", "cannot delete device",
	    err, "t", nm), err, "no such device: %s", nm);
}

struct store_login_dev_row {
	int64_t rate, created;
};

static void
store_login_dev_row(sqlite3_stmt *s, void *elem)
{
	struct store_login_dev_row *d = elem;

	d->rate = sqlite3_column_int64(s, 2);
	d->created = sqlite3_column_int64(s, 3);
}

int
store_device_list(struct store *st,
    int (*cb)(void *ctx, const struct store_device *d), void *ctx,
    struct pr_err *err)
{
	struct store_login_dev_row *rows = NULL;
	struct store_strv texts = { 0 };
	struct store_device d;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int r;

	/* Two text columns per row: name and from_addr, collected as
	 * name || ' ' || from_addr (neither holds a space). */
	s = store__bind(st, STORE_Q_DEVICE_LIST,
	    "SELECT name || ' ' || from_addr, 0, rate, created FROM devices"
	    " ORDER BY name", "cannot list devices", err, "");
	r = store__collect(st, s, &rows, &n, &cap, sizeof(*rows),
	    store_login_dev_row, &texts, 0, "cannot list devices", err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		char *sp = strchr(texts.v[i], ' ');

		if (sp == NULL)
			continue;
		*sp = '\0';
		d.name = texts.v[i];
		d.from = sp + 1;
		d.rate = (unsigned)rows[i].rate;
		d.created = rows[i].created;
		r = cb(ctx, &d);
	}
	free(rows);
	store__strv_fini(&texts);
	return r;
}

int
store_device_sent(struct store *st, int64_t cred_id, int64_t since,
    unsigned *n_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	*n_r = 0;
	if ((r = store__row(st, STORE_Q_DEVICE_SENT,
	    "SELECT count(*) FROM device_sends"
	    " WHERE device_id = ?1 AND at > ?2", &s,
	    "cannot count a device's messages", err, "ii", cred_id,
	    since)) <= 0)
		return r;
	*n_r = (unsigned)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

int
store__device_count(struct store *st, int64_t id, int64_t now,
    struct pr_err *err)
{
	int r;

	/* A device deleted meanwhile (the row's foreign key) fails the
	 * insert; its message is accepted all the same. */
	r = store__run(st, STORE_Q_DEVICE_PRUNE,
	    "DELETE FROM device_sends WHERE device_id = ?1 AND at <= ?2",
	    "cannot forget a device's old messages", err, "ii", id,
	    now - STORE_LOGIN_RATE_WINDOW);
	if (r == 0)
		r = store__run(st, STORE_Q_DEVICE_COUNT,
		    "INSERT INTO device_sends (device_id, at)"
		    " SELECT id, ?2 FROM devices WHERE id = ?1",
		    "cannot count a device's message", err, "ii", id, now);
	return r;
}
