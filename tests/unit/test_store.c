/*
 * test_store.c - the store's schema, domains, users, passwords, aliases,
 * recipient resolution and sender ownership.
 */
#include "test_store_util.c"

#include <time.h>

/* --- Opening and the schema ------------------------------------------- */

/* A write waits for another process's write lock (store_busy_cb)
 * instead of failing: a child holds it for 300 ms. */
static void
test_open_busy(struct store *st)
{
	struct pr_err err = { 0 };
	struct timespec a, b;
	int fds[2], r;
	pid_t pid;
	char c;

	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		TAP_OK(0, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		sqlite3 *db = t_raw();

		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK)
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		usleep(300 * 1000);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
		_exit(0);
	}
	close(fds[1]);
	r = (int)read(fds[0], &c, 1);
	close(fds[0]);
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (r == 1)
		r = store_domain_add(st, "busy.test", &err);
	else
		r = PR_EIO;
	clock_gettime(CLOCK_MONOTONIC, &b);
	waitpid(pid, NULL, 0);
	TAP_EQ_INT(r, 0, "a write waits for another writer's lock (%s)",
	    err.msg);
	TAP_OK((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) /
	    1000000 >= 100, "... until that writer is done");
	(void)store_domain_del(st, "busy.test", &err);
}

static void
test_open(void)
{
	struct store *st = NULL;
	struct pr_err err = { 0 };
	struct stat sb;
	int r;

	r = store_open(t_data, 0, &st, &err);
	TAP_EQ_INT(r, PR_ENOENT, "open without create: ENOENT");
	TAP_OK(st == NULL, "open without create: no store");
	TAP_OK(strstr(err.msg, "postroom init") != NULL &&
	    strstr(err.msg, t_db) != NULL,
	    "open without create: message names the file and the fix (%s)",
	    err.msg);
	TAP_OK(stat(t_data, &sb) < 0, "open without create: no data_dir");

	r = store_open(t_data, STORE_OPEN_CREATE, &st, &err);
	TAP_EQ_INT(r, 0, "open with create");
	TAP_OK(stat(t_data, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	    (sb.st_mode & 0777) == 0750, "data_dir created with mode 0750");
	TAP_OK(stat(t_db, &sb) == 0 && (sb.st_mode & 0600) == 0600 &&
	    (sb.st_mode & 0037) == 0, "mail.db: owner rw, no access for "
	    "others (mode %o)", (unsigned)(sb.st_mode & 0777));
	TAP_EQ_INT(store_schema_version(st), store__n_migrations,
	    "schema at the newest version");
	TAP_EQ_INT(t_int("SELECT count(*) FROM pragma_journal_mode "
	    "WHERE journal_mode = 'wal'"), 1, "journal mode is WAL");
	TAP_EQ_INT(t_st_int(st, "PRAGMA synchronous"), 2,
	    "synchronous = FULL");
	TAP_EQ_INT(t_st_int(st, "PRAGMA foreign_keys"), 1,
	    "foreign keys enforced");
	test_open_busy(st);
	TAP_EQ_INT(store_check(st, &err), 0, "fresh database passes check");
	store_close(&st);
	TAP_OK(st == NULL, "store_close clears the pointer");
	store_close(&st);

	r = store_open(t_data, 0, &st, &err);
	TAP_EQ_INT(r, 0, "reopen without create");
	TAP_EQ_INT(store_schema_version(st), store__n_migrations,
	    "reopen keeps the version");
	store_close(&st);
}

static void
test_version_refused(void)
{
	struct store *st = NULL;
	struct pr_err err = { 0 };
	char sql[64];
	int r;

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    store__n_migrations + 1);
	t_exec(sql);
	r = store_open(t_data, 0, &st, &err);
	TAP_EQ_INT(r, PR_EVERSION, "newer schema refused");
	TAP_OK(st == NULL, "newer schema: no store");
	TAP_OK(strstr(err.msg, "newer") != NULL, "newer schema: clear "
	    "message (%s)", err.msg);
	r = store_open(t_data, STORE_OPEN_CREATE, &st, &err);
	TAP_EQ_INT(r, PR_EVERSION, "newer schema refused with create too");
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    store__n_migrations);
	t_exec(sql);
	r = store_open(t_data, 0, &st, &err);
	TAP_EQ_INT(r, 0, "known schema opens again");
	store_close(&st);
}

static void
test_not_a_database(void)
{
	char dir[400], path[420];
	struct store *st = NULL;
	struct pr_err err = { 0 };
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/junk", t_dir);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/mail.db", dir);
	f = fopen(path, "w");
	fputs("this is not an SQLite database, not even close to one....\n"
	    "........................................................\n", f);
	fclose(f);
	TAP_EQ_INT(store_open(dir, 0, &st, &err), PR_EIO,
	    "a file that is no database: EIO");
	TAP_OK(strstr(err.msg, path) != NULL, "... message names the file "
	    "(%s)", err.msg);
}

/* --- Domains ------------------------------------------------------------ */

static int
t_collect_domain(void *ctx, const char *d)
{
	char *out = ctx;

	strcat(out, d);
	strcat(out, ";");
	return 0;
}

static int
t_stop_cb(void *ctx, const char *d)
{
	(void)d;
	return ++*(int *)ctx == 2 ? 42 : 0;
}

static void
test_domains(struct store *st)
{
	struct pr_err err = { 0 };
	char list[512] = "";
	int n = 0;

	TAP_EQ_INT(store_domain_add(st, "example.org", &err), 0,
	    "domain add");
	TAP_EQ_INT(store_domain_add(st, "Example.NET", &err), 0,
	    "domain add (mixed case)");
	TAP_EQ_INT(store_domain_add(st, "a.example", &err), 0,
	    "domain add (third)");
	T_FAILS_CLEAN(st, store_domain_add(st, "EXAMPLE.org", &err),
	    PR_EEXIST, "duplicate domain (other case)");
	TAP_EQ_STR(err.msg, "domain example.org already exists",
	    "duplicate domain message");
	T_FAILS_CLEAN(st, store_domain_add(st, "bad domain", &err),
	    PR_EINVAL, "invalid domain");
	T_FAILS_CLEAN(st, store_domain_add(st, "-x.org", &err), PR_EINVAL,
	    "invalid domain (leading hyphen)");
	T_FAILS_CLEAN(st, store_domain_add(st, "", &err), PR_EINVAL,
	    "empty domain");
	TAP_EQ_INT(store_domain_exists(st, "EXAMPLE.net"), 1,
	    "domain exists, case-insensitive");
	TAP_EQ_INT(store_domain_exists(st, "example.com"), 0,
	    "domain does not exist");
	TAP_EQ_INT(store_domain_list(st, t_collect_domain, list, &err), 0,
	    "domain list");
	TAP_EQ_STR(list, "a.example;example.net;example.org;",
	    "domains in name order, lower case");
	TAP_EQ_INT(store_domain_list(st, t_stop_cb, &n, &err), 42,
	    "non-zero callback return stops the walk and is returned");
	TAP_EQ_INT(n, 2, "walk stopped after the second domain");

	T_FAILS_CLEAN(st, store_domain_del(st, "nothere.org", &err),
	    PR_ENOENT, "delete unknown domain");
	TAP_EQ_STR(err.msg, "domain nothere.org is not hosted here",
	    "delete unknown domain message");
	TAP_EQ_INT(store_domain_del(st, "A.example", &err), 0,
	    "delete domain");
	TAP_EQ_INT(store_domain_exists(st, "a.example"), 0,
	    "deleted domain is gone");
	TAP_OK(store__idle(st), "idle after domain operations");
}

/* --- Users and passwords ----------------------------------------------- */

static int
t_collect_user(void *ctx, const struct store_user *u)
{
	char *out = ctx;

	strcat(out, u->address);
	strcat(out, ";");
	return 0;
}

static void
test_passwords(void)
{
	char hash[STORE_HASH_MAX], hash2[STORE_HASH_MAX];
	char longpw[STORE_PASSWORD_MAX + 2];

	TAP_EQ_INT(store_password_hash("correct horse", hash), 0,
	    "hash a password");
	TAP_OK(strncmp(hash, "$argon2id$", 10) == 0, "hash is argon2id");
	TAP_OK(strlen(hash) < STORE_HASH_MAX, "hash fits STORE_HASH_MAX");
	TAP_EQ_INT(store_password_hash("correct horse", hash2), 0,
	    "hash again");
	TAP_OK(strcmp(hash, hash2) != 0, "hashes are salted");
	TAP_EQ_INT(store_password_verify(hash, "correct horse"), 0,
	    "right password verifies");
	TAP_EQ_INT(store_password_verify(hash, "correct horsE"), PR_EAUTH,
	    "wrong password fails");
	TAP_EQ_INT(store_password_verify(hash, ""), PR_EAUTH,
	    "empty password fails");
	TAP_EQ_INT(store_password_verify(hash, NULL), PR_EAUTH,
	    "NULL password fails");
	TAP_EQ_INT(store_password_verify(NULL, "correct horse"), PR_EAUTH,
	    "NULL hash (unknown user) fails");
	TAP_EQ_INT(store_password_verify("", ""), PR_EAUTH,
	    "empty hash fails");
	TAP_EQ_INT(store_password_verify("garbage", "x"), PR_EAUTH,
	    "malformed hash fails");
	TAP_EQ_INT(store_password_hash("", hash), PR_EINVAL,
	    "empty password cannot be hashed");

	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	TAP_EQ_INT(store_password_hash(longpw, hash), PR_EINVAL,
	    "password over STORE_PASSWORD_MAX refused");
	longpw[STORE_PASSWORD_MAX] = '\0';
	longpw[0] = 'q';
	TAP_EQ_INT(store_password_hash(longpw, hash), 0,
	    "password of STORE_PASSWORD_MAX bytes hashed");
	TAP_EQ_INT(store_password_verify(hash, longpw), 0,
	    "long password verifies");
	longpw[STORE_PASSWORD_MAX - 1] = 'x';
	TAP_EQ_INT(store_password_verify(hash, longpw), PR_EAUTH,
	    "long password differing in its last byte fails");
}

static void
test_users(struct store *st)
{
	struct pr_err err = { 0 };
	struct store_user u;
	char list[512] = "", hash[STORE_HASH_MAX], big[4097];
	int64_t id, id2, bytes, count, quota;

	TAP_EQ_INT(store_user_add(st, "Alice@Example.ORG", "pw-alice", 1000,
	    &err), 0, "user add");
	T_FAILS_CLEAN(st, store_user_add(st, "alice@example.org", "x", 0,
	    &err), PR_EEXIST, "duplicate user");
	TAP_EQ_STR(err.msg, "user alice@example.org already exists",
	    "duplicate user message");
	T_FAILS_CLEAN(st, store_user_add(st, "bob@nothosted.org", "x", 0,
	    &err), PR_ENOENT, "user in a domain not hosted");
	TAP_EQ_STR(err.msg, "domain nothosted.org is not hosted here",
	    "not hosted message");
	T_FAILS_CLEAN(st, store_user_add(st, "bob@example.org", "", 0, &err),
	    PR_EINVAL, "empty password");
	T_FAILS_CLEAN(st, store_user_add(st, "bob@example.org", NULL, 0,
	    &err), PR_EINVAL, "NULL password");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	T_FAILS_CLEAN(st, store_user_add(st, "bob@example.org", big, 0,
	    &err), PR_EINVAL, "4 KiB password refused");
	TAP_OK(strstr(err.msg, "longer than") != NULL,
	    "long password message (%s)", err.msg);
	T_FAILS_CLEAN(st, store_user_add(st, "not an address", "x", 0, &err),
	    PR_EINVAL, "invalid address");
	T_FAILS_CLEAN(st, store_user_add(st, "bob@", "x", 0, &err),
	    PR_EINVAL, "address without domain");
	T_FAILS_CLEAN(st, store_user_add(st, "bob@example.org", "x", -1,
	    &err), PR_EINVAL, "negative quota");

	TAP_EQ_INT(store_user_add(st, "bob@example.org", "pw-bob", 0, &err),
	    0, "second user");
	TAP_EQ_INT(store_user_add(st, "carol@example.net", "pw-carol", 0,
	    &err), 0, "user in another domain");

	TAP_EQ_INT(store_user_get(st, "ALICE@example.org", &u, &err), 0,
	    "user get, case-insensitive");
	TAP_EQ_STR(u.address, "alice@example.org", "stored in lower case");
	TAP_EQ_INT(u.quota, 1000, "quota");
	TAP_EQ_INT(u.used, 0, "used");
	TAP_EQ_INT(u.messages, 0, "messages");
	TAP_OK(u.created > 1600000000, "created time");
	TAP_OK(u.id > 0, "id");
	id = u.id;
	TAP_EQ_INT(store_user_get(st, "nobody@example.org", &u, &err),
	    PR_ENOENT, "user get unknown");

	TAP_EQ_INT(store_user_list(st, NULL, t_collect_user, list, &err), 0,
	    "user list");
	TAP_EQ_STR(list, "alice@example.org;bob@example.org;"
	    "carol@example.net;", "all users in address order");
	list[0] = '\0';
	TAP_EQ_INT(store_user_list(st, "example.NET", t_collect_user, list,
	    &err), 0, "user list of a domain");
	TAP_EQ_STR(list, "carol@example.net;", "users of one domain");
	TAP_EQ_INT(store_user_list(st, "nothosted.org", t_collect_user, list,
	    &err), PR_ENOENT, "user list of a domain not hosted");

	TAP_EQ_INT(store_user_verify(st, "alice@example.org", "pw-alice",
	    &id2, &err), 0, "verify right password");
	TAP_EQ_INT(id2, id, "verify gives the user id");
	TAP_EQ_INT(store_user_verify(st, "alice@example.org", "pw-bob", &id2,
	    &err), PR_EAUTH, "verify wrong password");
	TAP_EQ_INT(id2, 0, "no id on failure");
	TAP_EQ_INT(store_user_verify(st, "nobody@example.org", "pw-alice",
	    &id2, &err), PR_EAUTH, "verify unknown user: EAUTH too");
	TAP_EQ_INT(store_user_verify(st, "garbage", "pw", &id2, &err),
	    PR_EAUTH, "verify garbage address: EAUTH");
	TAP_EQ_INT(store_user_auth_info(st, "Bob@example.org", &id2, hash,
	    &err), 0, "auth info");
	TAP_OK(id2 > 0 && strncmp(hash, "$argon2id$", 10) == 0,
	    "auth info gives id and hash");
	TAP_EQ_INT(store_password_verify(hash, "pw-bob"), 0,
	    "auth info hash verifies off-line");
	TAP_EQ_INT(store_user_auth_info(st, "nobody@example.org", &id2, hash,
	    &err), PR_ENOENT, "auth info unknown");
	TAP_OK(id2 == 0 && hash[0] == '\0', "auth info unknown: 0 and \"\"");

	TAP_EQ_INT(store_user_passwd(st, "alice@example.org", "new-pw", &err),
	    0, "change password");
	TAP_EQ_INT(store_user_verify(st, "alice@example.org", "new-pw", &id2,
	    &err), 0, "new password verifies");
	TAP_EQ_INT(store_user_verify(st, "alice@example.org", "pw-alice",
	    &id2, &err), PR_EAUTH, "old password no longer");
	T_FAILS_CLEAN(st, store_user_passwd(st, "nobody@example.org", "x",
	    &err), PR_ENOENT, "passwd unknown user");
	T_FAILS_CLEAN(st, store_user_passwd(st, "alice@example.org", "",
	    &err), PR_EINVAL, "passwd empty password");

	TAP_EQ_INT(store_user_set_quota(st, "alice@example.org", 5000, &err),
	    0, "set quota");
	TAP_EQ_INT(store_mailbox_usage(st, id, &bytes, &count, &quota, &err),
	    0, "mailbox usage");
	TAP_OK(bytes == 0 && count == 0 && quota == 5000,
	    "usage: empty, new quota");
	T_FAILS_CLEAN(st, store_user_set_quota(st, "alice@example.org", -5,
	    &err), PR_EINVAL, "negative quota refused");
	T_FAILS_CLEAN(st, store_user_set_quota(st, "nobody@example.org", 5,
	    &err), PR_ENOENT, "quota of unknown user");
	TAP_EQ_INT(store_mailbox_usage(st, 999999, &bytes, &count, &quota,
	    &err), PR_ENOENT, "usage of unknown user id");

	T_FAILS_CLEAN(st, store_domain_del(st, "example.net", &err), PR_EBUSY,
	    "domain with users cannot be deleted");
	TAP_OK(strstr(err.msg, "1 user") != NULL, "domain busy message (%s)",
	    err.msg);
	TAP_EQ_INT(store_user_del(st, "carol@example.net", &err), 0,
	    "user del");
	T_FAILS_CLEAN(st, store_user_del(st, "carol@example.net", &err),
	    PR_ENOENT, "user del again");
	TAP_EQ_STR(err.msg, "no such user: carol@example.net",
	    "user del message");
	TAP_EQ_INT(store_user_add(st, "carol@example.net", "pw-carol", 0,
	    &err), 0, "user added back");
	TAP_OK(store__idle(st), "idle after user operations");
}

/* --- Aliases ------------------------------------------------------------ */

struct t_res {
	int64_t users[16];
	char remote[16][ADDR_MAX];
	size_t n_users, n_remote;
};

static int
t_res_cb(void *ctx, int64_t user_id, const char *remote)
{
	struct t_res *res = ctx;

	if (remote == NULL) {
		if (user_id <= 0 || res->n_users == 16)
			return PR_EINVAL;
		res->users[res->n_users++] = user_id;
	} else {
		if (user_id != 0 || res->n_remote == 16)
			return PR_EINVAL;
		snprintf(res->remote[res->n_remote++], ADDR_MAX, "%s", remote);
	}
	return 0;
}

static int
t_resolve(struct store *st, const char *addr, struct t_res *res)
{
	struct pr_err err = { 0 };
	int r;

	memset(res, 0, sizeof(*res));
	r = store_resolve(st, addr, t_res_cb, res, &err);
	if (r < 0)
		printf("# resolve %s: %s\n", addr, err.msg);
	return r;
}

/* addr resolves to exactly one local user: two checks, named what and
 * user_what. */
static void
t_resolve_user(struct store *st, const char *addr, int64_t user,
    const char *what, const char *user_what)
{
	struct t_res res;

	TAP_EQ_INT(t_resolve(st, addr, &res), STORE_RESOLVE_LOCAL, "%s", what);
	TAP_OK(res.n_users == 1 && res.users[0] == user, "%s", user_what);
}

/* addr resolves as want, with n_users local and n_remote remote
 * targets. */
static void
t_resolve_n(struct store *st, const char *addr, int want, size_t n_users,
    size_t n_remote, const char *what, const char *n_what)
{
	struct t_res res;

	TAP_EQ_INT(t_resolve(st, addr, &res), want, "%s", what);
	TAP_OK(res.n_users == n_users && res.n_remote == n_remote, "%s",
	    n_what);
}

static bool
t_res_has(const struct t_res *res, int64_t id)
{
	for (size_t i = 0; i < res->n_users; i++)
		if (res->users[i] == id)
			return true;
	return false;
}

static int
t_collect_alias(void *ctx, const char *alias, const char *targets)
{
	char *out = ctx;

	strcat(out, alias);
	strcat(out, "=");
	strcat(out, targets);
	strcat(out, ";");
	return 0;
}

static void
test_aliases(struct store *st)
{
	struct pr_err err = { 0 };
	char list[1024] = "";

	TAP_EQ_INT(store_alias_add(st, "Sales@example.org",
	    "alice@example.org, BOB@example.org", &err), 0, "alias add");
	TAP_EQ_INT(store_alias_add(st, "sales@example.org",
	    "Ext.User@Remote.Example", &err), 0,
	    "alias extended with a remote target");
	TAP_EQ_INT(store_alias_add(st, "sales@example.org",
	    "alice@example.org", &err), 0, "existing target again: no-op");
	TAP_EQ_INT(store_alias_add(st, "team@example.org",
	    "sales@example.org,carol@example.net", &err), 0,
	    "alias of an alias");
	TAP_EQ_INT(store_alias_add(st, "postmaster@example.net",
	    "alice@example.org", &err), 0, "alias in another domain");
	TAP_EQ_INT(store_alias_list(st, t_collect_alias, list, &err), 0,
	    "alias list");
	TAP_EQ_STR(list, "postmaster@example.net=alice@example.org;"
	    "sales@example.org=alice@example.org,bob@example.org,"
	    "Ext.User@remote.example;"
	    "team@example.org=sales@example.org,carol@example.net;",
	    "aliases in name order, targets in order added, remote local "
	    "part keeps its case");

	T_FAILS_CLEAN(st, store_alias_add(st, "x@nothosted.org",
	    "alice@example.org", &err), PR_ENOENT, "alias not hosted");
	TAP_EQ_STR(err.msg, "domain nothosted.org is not hosted here",
	    "alias not hosted message");
	T_FAILS_CLEAN(st, store_alias_add(st, "alice@example.org",
	    "bob@example.org", &err), PR_EEXIST, "alias that is a user");
	T_FAILS_CLEAN(st, store_user_add(st, "sales@example.org", "x", 0,
	    &err), PR_EEXIST, "user that is an alias");
	T_FAILS_CLEAN(st, store_alias_add(st, "new@example.org",
	    "alice@example.org,ghost@example.org", &err), PR_ENOENT,
	    "unknown local target (after a good one)");
	TAP_EQ_STR(err.msg, "no such user or alias: ghost@example.org",
	    "unknown target message");
	T_FAILS_CLEAN(st, store_alias_add(st, "new@example.org",
	    "alice@example.org,not an address", &err), PR_EINVAL,
	    "invalid target");
	T_FAILS_CLEAN(st, store_alias_add(st, "new@example.org", " , ",
	    &err), PR_EINVAL, "no targets");
	T_FAILS_CLEAN(st, store_alias_add(st, "bad alias@example.org",
	    "alice@example.org", &err), PR_EINVAL, "invalid alias");
	T_FAILS_CLEAN(st, store_alias_add(st, "@bad domain",
	    "alice@example.org", &err), PR_EINVAL, "invalid catch-all");
	T_FAILS_CLEAN(st, store_alias_add(st, "new@example.org",
	    "new@example.org", &err), PR_ELOOP, "alias to itself");
	T_FAILS_CLEAN(st, store_alias_add(st, "sales@example.org",
	    "team@example.org", &err), PR_ELOOP, "two-alias loop");
	TAP_EQ_STR(err.msg, "alias loop: sales@example.org -> "
	    "team@example.org -> sales@example.org", "loop message");
	T_FAILS_CLEAN(st, store_alias_add(st, "sales@example.org",
	    "TEAM+x@example.org", &err), PR_ELOOP,
	    "loop through a +tag address");

	/* Catch-all. */
	TAP_EQ_INT(store_alias_add(st, "@example.net", "bob@example.org",
	    &err), 0, "catch-all");
	TAP_EQ_INT(store_alias_add(st, "x@example.org", "anything@example.net",
	    &err), 0, "target covered by a catch-all is known");
	T_FAILS_CLEAN(st, store_alias_add(st, "@example.net",
	    "whatever@example.net", &err), PR_ELOOP,
	    "catch-all to an address it covers");
	TAP_EQ_STR(err.msg, "alias loop: @example.net -> whatever@example.net "
	    "-> @example.net", "catch-all loop message");

	T_FAILS_CLEAN(st, store_alias_del(st, "nothing@example.org", &err),
	    PR_ENOENT, "delete unknown alias");
	TAP_EQ_INT(store_alias_del(st, "X@example.org", &err), 0,
	    "delete alias");
	TAP_OK(store__idle(st), "idle after alias operations");
}

static void
test_resolve(struct store *st)
{
	struct pr_err err = { 0 };
	struct t_res res;
	int64_t alice = t_user_id(st, "alice@example.org");
	int64_t bob = t_user_id(st, "bob@example.org");
	int64_t carol = t_user_id(st, "carol@example.net");
	char addr[64], tgt[64];

	TAP_EQ_INT(t_resolve(st, "alice@example.org", &res),
	    STORE_RESOLVE_LOCAL, "resolve user");
	TAP_OK(res.n_users == 1 && res.users[0] == alice && res.n_remote == 0,
	    "resolve user: the user");
	t_resolve_user(st, "ALICE@EXAMPLE.ORG", alice,
	    "resolve is case-insensitive", "... same user");
	t_resolve_user(st, "alice+lists@example.org", alice, "resolve +tag",
	    "... to the user");
	t_resolve_n(st, "sales+q3@example.org", STORE_RESOLVE_LOCAL, 2, 1,
	    "resolve alias+tag", "... to the alias");

	TAP_EQ_INT(t_resolve(st, "team@example.org", &res),
	    STORE_RESOLVE_LOCAL, "resolve nested alias");
	TAP_OK(res.n_users == 3 && t_res_has(&res, alice) &&
	    t_res_has(&res, bob) && t_res_has(&res, carol),
	    "nested alias: three users");
	TAP_OK(res.n_remote == 1 &&
	    strcmp(res.remote[0], "Ext.User@remote.example") == 0,
	    "nested alias: the remote target, as written");

	t_resolve_n(st, "nobody@example.org", STORE_RESOLVE_UNKNOWN, 0, 0,
	    "unknown user of a hosted domain", "... no callback");
	TAP_EQ_INT(t_resolve(st, "nobody+x@example.org", &res),
	    STORE_RESOLVE_UNKNOWN, "unknown +tag");
	t_resolve_n(st, "someone@remote.example", STORE_RESOLVE_REMOTE, 0, 0,
	    "remote domain", "... no callback");
	t_resolve_user(st, "random@example.net", bob, "catch-all",
	    "catch-all target");
	t_resolve_user(st, "carol@example.net", carol,
	    "user wins over the catch-all", "... the user");
	t_resolve_user(st, "postmaster@example.net", alice,
	    "alias wins over the catch-all", "... the alias");
	TAP_EQ_INT(store_resolve(st, "no-at-sign", t_res_cb, &res, &err),
	    PR_EINVAL, "resolve malformed address");

	/* Duplicates: dup -> alice, sales (alice, bob, remote), team. */
	TAP_EQ_INT(store_alias_add(st, "dup@example.org",
	    "alice@example.org,sales@example.org,team@example.org,"
	    "alice+x@example.org", &err), 0, "alias with overlapping targets");
	TAP_EQ_INT(t_resolve(st, "dup@example.org", &res),
	    STORE_RESOLVE_LOCAL, "resolve overlapping alias");
	TAP_OK(res.n_users == 3 && res.n_remote == 1,
	    "duplicates removed (%zu users, %zu remote)", res.n_users,
	    res.n_remote);

	/* A dangling target (user deleted) is skipped; an alias left with
	 * nothing is unknown. */
	TAP_EQ_INT(store_user_add(st, "temp@example.org", "pw", 0, &err), 0,
	    "temporary user");
	TAP_EQ_INT(store_alias_add(st, "only-temp@example.org",
	    "temp@example.org", &err), 0, "alias to it");
	TAP_EQ_INT(store_user_del(st, "temp@example.org", &err), 0,
	    "temporary user deleted");
	TAP_EQ_INT(t_resolve(st, "only-temp@example.org", &res),
	    STORE_RESOLVE_UNKNOWN, "alias to nothing is unknown");

	/* Depth: a chain alias add refuses past STORE_RESOLVE_DEPTH ... */
	snprintf(tgt, sizeof(tgt), "alice@example.org");
	for (int i = 1; i <= STORE_RESOLVE_DEPTH; i++) {
		snprintf(addr, sizeof(addr), "chain%d@example.org", i);
		if (store_alias_add(st, addr, tgt, &err) < 0)
			break;
		snprintf(tgt, sizeof(tgt), "%s", addr);
	}
	TAP_EQ_INT(t_resolve(st, tgt, &res), STORE_RESOLVE_LOCAL,
	    "chain of %d aliases resolves", STORE_RESOLVE_DEPTH);
	TAP_OK(res.n_users == 1 && res.users[0] == alice, "... to the user");
	snprintf(addr, sizeof(addr), "chain%d@example.org",
	    STORE_RESOLVE_DEPTH + 1);
	T_FAILS_CLEAN(st, store_alias_add(st, addr, tgt, &err), PR_ELOOP,
	    "alias nesting past the depth bound refused");
	TAP_OK(strstr(err.msg, "deeper") != NULL, "depth message (%s)",
	    err.msg);
	/* ... and resolution stops there too when the chain got in
	 * behind the store's back. */
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "INSERT INTO aliases (domain_id, "
		    "alias, target) SELECT domain_id, '%s', '%s' FROM aliases "
		    "LIMIT 1", addr, tgt);
		t_exec(sql);
	}
	TAP_EQ_INT(store_resolve(st, addr, t_res_cb, &res, &err), PR_ELOOP,
	    "resolution past the depth bound is an error");
	TAP_EQ_INT(store_alias_del(st, addr, &err), 0, "deep alias removed");

	/* A loop made behind the store's back ends, and resolves to what
	 * it reaches. */
	t_exec("INSERT INTO aliases (domain_id, alias, target) SELECT "
	    "domain_id, 'team@example.org', 'dup@example.org' FROM aliases "
	    "LIMIT 1");
	TAP_EQ_INT(t_resolve(st, "team@example.org", &res),
	    STORE_RESOLVE_LOCAL, "a loop in the data terminates");
	TAP_OK(res.n_users == 3 && res.n_remote == 1, "... with the targets");
	t_exec("DELETE FROM aliases WHERE alias = 'team@example.org' AND "
	    "target = 'dup@example.org'");

	/* Width: STORE_RESOLVE_MAX. */
	t_exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
	    "FROM n WHERE i <= 1000) INSERT INTO aliases (domain_id, alias, "
	    "target) SELECT (SELECT id FROM domains WHERE name = "
	    "'example.org'), 'wide@example.org', 'r' || i || '@remote.example' "
	    "FROM n");
	TAP_EQ_INT(store_resolve(st, "wide@example.org", t_res_cb, &res,
	    &err), PR_ENOSPC, "expansion past STORE_RESOLVE_MAX refused");
	T_FAILS_CLEAN(st, store_alias_add(st, "wider@example.org",
	    "wide@example.org", &err), PR_ENOSPC,
	    "alias add past STORE_RESOLVE_MAX refused");
	TAP_EQ_INT(store_alias_del(st, "wide@example.org", &err), 0,
	    "wide alias removed");
	TAP_OK(store__idle(st), "idle after resolution");
}

static void
test_sender_allowed(struct store *st)
{
	static const struct {
		const char *user;   /* NULL: an id no user has */
		const char *sender;
		int want;
		const char *name;
	} cases[] = {
		{ "alice@example.org", "alice@example.org", 1, "own address" },
		{ "alice@example.org", "Alice@Example.Org", 1,
		    "own address, other case" },
		{ "alice@example.org", "alice+news@example.org", 1, "own +tag" },
		{ "alice@example.org", "alicex@example.org", 0,
		    "a longer local part is not own" },
		{ "alice@example.org", "ali+ce@example.org", 0,
		    "a prefix with a tag is not own" },
		{ "alice@example.org", "bob@example.org", 0,
		    "another user's address" },
		{ "alice@example.org", "sales@example.org", 1,
		    "alias that delivers to the user" },
		{ "alice@example.org", "sales+x@example.org", 1,
		    "alias+tag that delivers to the user" },
		{ "carol@example.net", "team@example.org", 1,
		    "nested alias that delivers to the user" },
		{ "carol@example.net", "sales@example.org", 0,
		    "alias that does not deliver to the user" },
		{ "bob@example.org", "random@example.net", 0,
		    "catch-all gives no right to send" },
		{ "alice@example.org", "alice@remote.example", 0,
		    "remote address" },
		{ NULL, "alice@example.org", 0, "unknown user id" },
		{ "alice@example.org", "", 0, "null sender" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t id = cases[i].user != NULL ?
		    t_user_id(st, cases[i].user) : 999999;

		TAP_EQ_INT(store_sender_allowed(st, id, cases[i].sender),
		    cases[i].want, "%s", cases[i].name);
	}
	TAP_OK(store__idle(st), "idle after sender checks");
}

static void
test_check(struct store *st)
{
	struct pr_err err = { 0 };

	TAP_EQ_INT(store_check(st, &err), 0, "check passes (%s)", err.msg);
	t_exec("UPDATE users SET used = used + 1 WHERE address = "
	    "'bob@example.org'");
	TAP_EQ_INT(store_check(st, &err), PR_EIO, "check finds bad counters");
	TAP_OK(strstr(err.msg, "bob@example.org") != NULL,
	    "check message names the user (%s)", err.msg);
	t_exec("UPDATE users SET used = used - 1 WHERE address = "
	    "'bob@example.org'");
	t_exec("PRAGMA foreign_keys = OFF; INSERT INTO aliases (domain_id, "
	    "alias, target) VALUES (4242, 'z@z.org', 'a@b.org')");
	TAP_EQ_INT(store_check(st, &err), PR_EIO, "check finds a dangling "
	    "reference");
	TAP_OK(strstr(err.msg, "aliases") != NULL, "... message (%s)",
	    err.msg);
	t_exec("DELETE FROM aliases WHERE domain_id = 4242");
	TAP_EQ_INT(store_check(st, &err), 0, "check passes again");
	TAP_OK(store__idle(st), "idle after check");
}

/* --- Login throttling ------------------------------------------------- */

static void
test_throttle(struct store *st)
{
	struct store_throttle t;
	struct pr_err err = { 0 };
	const int64_t w = 900;
	int i;

	TAP_EQ_INT(store_throttle_get(st, "192.0.2.1", "alice@example.org",
	    1000, w, &t, &err), 0, "throttle: read of nothing");
	TAP_OK(t.ip_failures == 0 && t.account_failures == 0,
	    "throttle: no failures yet");
	for (i = 0; i < 3; i++)
		TAP_EQ_INT(store_throttle_fail(st, "192.0.2.1",
		    "Alice@Example.ORG", 1000 + i, w, &t, &err), 0,
		    "throttle: failure %d counted", i + 1);
	TAP_OK(t.ip_failures == 3 && t.account_failures == 3,
	    "throttle: fail returns the new counts (%u, %u)", t.ip_failures,
	    t.account_failures);
	store_throttle_fail(st, "192.0.2.2", "alice@example.org", 1010, w, &t,
	    &err);
	TAP_OK(t.ip_failures == 1 && t.account_failures == 4,
	    "throttle: another client, the same account (%u, %u)",
	    t.ip_failures, t.account_failures);
	store_throttle_get(st, "192.0.2.1", "bob@example.org", 1100, w, &t,
	    &err);
	TAP_OK(t.ip_failures == 3 && t.account_failures == 0,
	    "throttle: counts per client and per account (%u, %u)",
	    t.ip_failures, t.account_failures);
	/* The window runs from the first failure: at 1000 + w it is over. */
	store_throttle_get(st, "192.0.2.1", "alice@example.org", 1000 + w - 1,
	    w, &t, &err);
	TAP_EQ_INT(t.ip_failures, 3, "throttle: still counted inside the "
	    "window");
	store_throttle_get(st, "192.0.2.1", "alice@example.org", 1000 + w, w,
	    &t, &err);
	TAP_EQ_INT(t.ip_failures, 0, "throttle: forgotten after the window");
	store_throttle_fail(st, "192.0.2.1", NULL, 1000 + w, w, &t, &err);
	TAP_OK(t.ip_failures == 1 && t.account_failures == 0,
	    "throttle: a failure after the window starts a new one");
	TAP_EQ_INT(t_st_int(st, "SELECT count(*) FROM auth_failures WHERE "
	    "name = '192.0.2.2'"), 1, "throttle: the other client's row "
	    "is still inside its window");
	store_throttle_fail(st, "192.0.2.1", NULL, 1010 + w, w, &t, &err);
	TAP_EQ_INT(t_st_int(st, "SELECT count(*) FROM auth_failures WHERE "
	    "name = '192.0.2.2' OR name = 'alice@example.org'"), 0,
	    "throttle: expired rows are pruned");
	store_throttle_fail(st, "192.0.2.9", "carol@example.org", 5000, w, &t,
	    &err);
	TAP_EQ_INT(store_throttle_clear(st, "CAROL@example.org", &err), 0,
	    "throttle: clear");
	store_throttle_get(st, "192.0.2.9", "carol@example.org", 5001, w, &t,
	    &err);
	TAP_OK(t.ip_failures == 1 && t.account_failures == 0,
	    "throttle: a correct password clears the account, not the "
	    "client");
	TAP_OK(store__idle(st), "throttle: no statement left open");
}

/* --- What the admin CLI does -------------------------------------------- */

struct t_changes {
	char text[512];
};

static void
t_unknown_cb(void *ctx, const char *target)
{
	struct t_changes *c = ctx;

	strcat(c->text, target);
	strcat(c->text, ";");
}

static void
t_alias_cb(void *ctx, const char *alias, bool deleted)
{
	struct t_changes *c = ctx;

	strcat(c->text, alias);
	strcat(c->text, deleted ? " deleted;" : " changed;");
}

static void
test_admin(struct store *st)
{
	struct t_changes c;
	struct pr_err err;
	char list[2048] = "";
	int64_t ann;

	TAP_EQ_INT(store_domain_add(st, "adm.example", &err), 0, "domain");
	/* RFC 5890 2.3.2.1: one domain, whichever form is typed. */
	TAP_EQ_INT(store_domain_add(st, "b\xc3\xbc" "cher.example", &err), 0,
	    "U-label domain");
	T_FAILS_CLEAN(st, store_domain_add(st, "xn--bcher-kva.example", &err),
	    PR_EEXIST, "its A-label is the same domain");
	TAP_EQ_INT(store_domain_exists(st, "xn--bcher-kva.example"), 1,
	    "stored as the A-label");
	TAP_EQ_INT(store_domain_exists(st, "B\xc3\x9c" "CHER.example"), 1,
	    "found by an upper-case U-label");
	T_FAILS_CLEAN(st, store_domain_add(st, "192.168.1.1", &err), PR_EINVAL,
	    "an IPv4 address is no domain");
	T_FAILS_CLEAN(st, store_domain_add(st, "[192.168.1.1]", &err),
	    PR_EINVAL, "nor an address literal");
	ann = t_add_user(st, "ann@b\xc3\xbc" "cher.example", 0);
	TAP_OK(ann > 0, "user of the U-label domain");
	TAP_EQ_INT(t_user_id(st, "ann@xn--bcher-kva.example"), ann,
	    "is the user of the A-label domain");

	t_add_user(st, "bo@adm.example", 0);
	t_add_user(st, "cy@adm.example", 0);
	TAP_EQ_INT(store_alias_set(st, "team@adm.example",
	    "bo@adm.example,cy@adm.example", 0, NULL, NULL, &err), 0,
	    "alias set");
	T_FAILS_CLEAN(st, store_alias_set(st, "team@adm.example",
	    "ann@xn--bcher-kva.example", 0, NULL, NULL, &err), PR_EEXIST,
	    "an existing alias without APPEND");
	TAP_EQ_INT(store_alias_set(st, "team@adm.example",
	    "ann@b\xc3\xbc" "cher.example", STORE_ALIAS_APPEND, NULL, NULL,
	    &err), 0, "APPEND adds a target");
	T_FAILS_CLEAN(st, store_alias_set(st, "x@adm.example",
	    "nobody@adm.example", 0, NULL, NULL, &err), PR_ENOENT,
	    "an unknown local target");
	TAP_EQ_INT(store_alias_set(st, "@adm.example", "bo@adm.example", 0,
	    NULL, NULL, &err), 0, "catch-all");
	T_FAILS_CLEAN(st, store_alias_set(st, "x@adm.example",
	    "nobody@adm.example", 0, NULL, NULL, &err), PR_ENOENT,
	    "a catch-all does not make a target known");
	memset(&c, 0, sizeof(c));
	TAP_EQ_INT(store_alias_set(st, "x@adm.example",
	    "nobody@adm.example,bo+tag@adm.example", STORE_ALIAS_FORCE,
	    t_unknown_cb, &c, &err), 0, "FORCE adds an unknown target");
	TAP_EQ_STR(c.text, "nobody@adm.example;", "and reports only it");
	TAP_EQ_INT(store_alias_set(st, "solo@adm.example", "bo+x@adm.example",
	    0, NULL, NULL, &err), 0, "alias to a +tag form");
	TAP_EQ_INT(store_alias_set(st, "mix@adm.example", "bo@adm.example",
	    0, NULL, NULL, &err), 0, "alias to one user");
	TAP_EQ_INT(store_alias_set(st, "far@adm.example",
	    "cy@adm.example,bo@adm.example,cy@elsewhere.example", 0, NULL,
	    NULL, &err), 0, "alias with a remote target");

	/* Deleting bo takes bo and bo+... out of every alias and deletes the
	 * aliases left empty, in one transaction. */
	memset(&c, 0, sizeof(c));
	TAP_EQ_INT(store_user_del_report(st, "BO@adm.example", t_alias_cb, &c,
	    &err), 0, "user del");
	TAP_EQ_STR(c.text, "@adm.example deleted;far@adm.example changed;"
	    "mix@adm.example deleted;solo@adm.example deleted;"
	    "team@adm.example changed;x@adm.example changed;",
	    "aliases told");
	store_alias_list(st, t_collect_alias, list, &err);
	TAP_OK(strstr(list, "bo@adm") == NULL && strstr(list, "bo+") == NULL,
	    "no alias names bo any more");
	TAP_OK(strstr(list, "team@adm.example=cy@adm.example,"
	    "ann@xn--bcher-kva.example;") != NULL, "team keeps the others");
	TAP_OK(strstr(list, "far@adm.example=cy@adm.example,"
	    "cy@elsewhere.example;") != NULL, "far keeps the others");

	/* domain del counts aliases, not their targets. */
	T_FAILS_CLEAN(st, store_domain_del(st, "adm.example", &err), PR_EBUSY,
	    "domain with an alias");
	TAP_OK(strstr(err.msg, "3 aliases") != NULL, "counted by alias (%s)",
	    err.msg);
}

int
main(void)
{
	struct store *st;

	t_setup("store");
	test_open();
	test_version_refused();
	test_not_a_database();
	st = t_open();
	test_domains(st);
	test_passwords();
	test_users(st);
	test_aliases(st);
	test_resolve(st);
	test_sender_allowed(st);
	test_admin(st);
	test_check(st);
	test_throttle(st);
	t_check_plans(st);
	store_close(&st);
	return tap_done();
}
