/*
 * test_store_util.c - helpers shared by the store's unit tests, included
 * (not linked) by each test_store*.c.
 *
 * Every test program works in its own temporary directory, removed at the
 * end, and looks at the database behind the store's back through a second
 * raw SQLite connection to check what the API alone cannot show (bodies
 * stored once, rows gone, nothing changed after an error).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "../lib/tap.h"
#include "store.h"
#include "store_int.h"

/* Not every test program uses every helper. */
#define T_UNUSED __attribute__((unused))

static char t_dir[256];     /* the test's temporary directory */
static char t_data[300];    /* its data_dir */
static char t_db[320];      /* data_dir/mail.db */

static int
t_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
t_cleanup(void)
{
	if (t_dir[0] != '\0')
		nftw(t_dir, t_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates the temporary directory; data_dir is "<tmp>/data" (not created:
 * STORE_OPEN_CREATE does that). */
static void
t_setup(const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t_dir, sizeof(t_dir), "%s/postroom-%s-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp", name);
	if (mkdtemp(t_dir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(t_data, sizeof(t_data), "%s/data", t_dir);
	snprintf(t_db, sizeof(t_db), "%s/mail.db", t_data);
	atexit(t_cleanup);
}

/* Opens (creating) the store or bails out. */
T_UNUSED static struct store *
t_open(void)
{
	struct store *st = NULL;
	struct pr_err err = { 0 };

	if (store_open(t_data, STORE_OPEN_CREATE, &st, &err) < 0) {
		printf("Bail out! store_open: %s\n", err.msg);
		exit(1);
	}
	return st;
}

/* A raw connection to the same file. */
T_UNUSED static sqlite3 *
t_raw(void)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(t_db, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		printf("Bail out! raw open: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	sqlite3_busy_timeout(db, 10000);
	return db;
}

/* The first column of the first row of sql as an integer (-1 on error). */
T_UNUSED static int64_t
t_int(const char *sql)
{
	sqlite3 *db = t_raw();
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	} else {
		printf("# t_int: %s: %s\n", sql, sqlite3_errmsg(db));
	}
	sqlite3_close(db);
	return v;
}

/* The first column of sql run on the store's own connection. */
T_UNUSED static int64_t
t_st_int(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	return v;
}

/* Every statement the store cached with a WHERE clause (the per-message
 * and per-login lookups) must find its rows through an index: a full
 * table scan is fine for the small test data and fatal for a real
 * mailbox.  Whole-table listings (no WHERE) may scan. */
T_UNUSED static void
t_check_plans(struct store *st)
{
	sqlite3_stmt *s = NULL, *plan;
	char sql[2048];
	int checked = 0, bad = 0;

	while ((s = sqlite3_next_stmt(st->db, s)) != NULL) {
		const char *q = sqlite3_sql(s);

		if (q == NULL || strstr(q, " WHERE ") == NULL)
			continue;
		snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", q);
		if (sqlite3_prepare_v2(st->db, sql, -1, &plan, NULL) !=
		    SQLITE_OK)
			continue;
		checked++;
		while (sqlite3_step(plan) == SQLITE_ROW) {
			const char *d =
			    (const char *)sqlite3_column_text(plan, 3);

			if (d != NULL && strncmp(d, "SCAN ", 5) == 0 &&
			    strcmp(d, "SCAN CONSTANT ROW") != 0) {
				printf("# full scan: %s: %s\n", d, q);
				bad++;
			}
		}
		sqlite3_finalize(plan);
	}
	TAP_OK(checked > 5 && bad == 0, "%d cached lookups, all through an "
	    "index", checked);
}

/* Runs sql on a raw connection; 0 or the SQLite error code. */
T_UNUSED static int
t_exec(const char *sql)
{
	sqlite3 *db = t_raw();
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		printf("# t_exec: %s: %s\n", sql, msg != NULL ? msg : "?");
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc;
}

/* A digest of every row of every table: equal digests mean an unchanged
 * database.  The caller frees it. */
T_UNUSED static char *
t_dump(void)
{
	static const char *const tables[] = {
		"domains", "users", "aliases", "bodies", "mailbox",
		"maildrop_locks", "queue", "queue_rcpt",
	};
	sqlite3 *db = t_raw();
	unsigned char h[crypto_generichash_BYTES];
	crypto_generichash_state gs;
	char sql[128], *hex;

	crypto_generichash_init(&gs, NULL, 0, sizeof(h));
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		sqlite3_stmt *s;

		snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY rowid",
		    tables[i]);
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
			continue;
		crypto_generichash_update(&gs, (const unsigned char *)sql,
		    strlen(sql));
		while (sqlite3_step(s) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(s); c++) {
				const void *p = sqlite3_column_blob(s, c);
				int n = sqlite3_column_bytes(s, c);

				if (p != NULL)
					crypto_generichash_update(&gs, p,
					    (unsigned long long)n);
				crypto_generichash_update(&gs,
				    (const unsigned char *)"|", 1);
			}
			crypto_generichash_update(&gs,
			    (const unsigned char *)"\n", 1);
		}
		sqlite3_finalize(s);
	}
	crypto_generichash_final(&gs, h, sizeof(h));
	sqlite3_close(db);
	hex = malloc(2 * sizeof(h) + 1);
	sodium_bin2hex(hex, 2 * sizeof(h) + 1, h, sizeof(h));
	return hex;
}

/* Checks that a call failed with want, left the database as it was, and
 * left the connection idle. */
#define T_FAILS_CLEAN(st, call, want, name) do { \
	char *t_before = t_dump(), *t_after; \
	int t_r = (call); \
	t_after = t_dump(); \
	TAP_EQ_INT(t_r, (want), "%s: error code", (name)); \
	TAP_EQ_STR(t_after, t_before, "%s: database unchanged", (name)); \
	TAP_OK(store__idle(st), "%s: connection idle", (name)); \
	free(t_before); \
	free(t_after); \
} while (0)

T_UNUSED static int64_t
t_user_id(struct store *st, const char *address)
{
	struct store_user u;
	struct pr_err err = { 0 };

	if (store_user_get(st, address, &u, &err) < 0)
		return -1;
	return u.id;
}

/* Adds a user or bails out. */
T_UNUSED static int64_t
t_add_user(struct store *st, const char *address, int64_t quota)
{
	struct pr_err err = { 0 };

	if (store_user_add(st, address, "secret", quota, &err) < 0) {
		printf("Bail out! user add %s: %s\n", address, err.msg);
		exit(1);
	}
	return t_user_id(st, address);
}

/* Delivers one in-memory message; returns its status, id in id_r. */
T_UNUSED static int
t_deliver(struct store *st, const int64_t *users, size_t n_users,
    const char *const *remote, size_t n_remote, const char *head,
    const char *body, char *id_r)
{
	struct store_msg m = {
		.sender = "sender@remote.example",
		.users = users, .n_users = n_users,
		.remote = remote, .n_remote = n_remote,
		.head = (const uint8_t *)head, .head_len = strlen(head),
		.body = (const uint8_t *)body, .body_len = strlen(body),
		.body_fd = -1,
	};
	struct store_msg *mp = &m;
	int r;

	if ((r = store_deliver(st, &mp, 1)) < 0)
		return r;
	if (id_r != NULL)
		memcpy(id_r, m.id, sizeof(m.id));
	return m.status;
}
