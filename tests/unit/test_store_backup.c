/*
 * test_store_backup.c - snapshots of the store (store_backup), checks of a
 * snapshot (store_snapshot_check) and the invariants of store_verify with
 * and without repair (docs/BACKUP.md 1.1, 3).
 */
#include "test_store_util.c"

struct t_problems {
	int found, repaired;
	char last[256];            /* the last problem left as it was */
};

static void
t_problem_cb(void *arg, const char *problem, bool repaired)
{
	struct t_problems *p = arg;

	if (repaired) {
		p->repaired++;
	} else {
		p->found++;
		snprintf(p->last, sizeof(p->last), "%s", problem);
	}
	printf("# %s: %s\n", repaired ? "repaired" : "problem", problem);
}

static int64_t
t_file_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &s, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return v;
}

static void
test_backup(struct store *st)
{
	struct store_counts c, c2;
	struct pr_err err = { 0 };
	char snap[400], copy[400];
	struct stat sb;
	FILE *f;
	int r;

	snprintf(snap, sizeof(snap), "%s/snap.db", t_dir);
	r = store_backup(st, snap, &c, &err);
	TAP_EQ_INT(r, 0, "store_backup (%s)", err.msg);
	TAP_OK(stat(snap, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	    "the snapshot is 0600");
	TAP_EQ_INT(c.schema, store__n_migrations, "counts: schema");
	TAP_OK(c.domains == 1 && c.users == 2 && c.bodies == 3 &&
	    c.mailbox == 3 && c.queue == 1 && c.queue_rcpt == 1,
	    "counts: 1 domain, 2 users, 3 bodies, 3 mailbox rows, 1 queue "
	    "entry");
	TAP_EQ_INT(t_file_int(snap, "SELECT count(*) FROM pragma_journal_mode"
	    " WHERE journal_mode = 'delete'"), 1,
	    "the snapshot is one file (rollback journal, not WAL)");
	TAP_OK(store_backup(st, snap, &c, &err) < 0 && stat(snap, &sb) == 0,
	    "an existing file is refused and kept");

	memset(&c2, 0, sizeof(c2));
	TAP_EQ_INT(store_snapshot_check(snap, &c2, &err), 0,
	    "store_snapshot_check of the snapshot");
	TAP_OK(memcmp(&c, &c2, sizeof(c)) == 0, "it counts the same");

	/* A damaged header: not a database. */
	snprintf(copy, sizeof(copy), "%s/copy.db", t_dir);
	if ((f = fopen(copy, "w")) != NULL) {
		fputs("this is not a SQLite file, just some text", f);
		fclose(f);
	}
	r = store_snapshot_check(copy, &c2, &err);
	TAP_OK(r == PR_EIO, "a file that is no database is refused (%s)",
	    err.msg);
	unlink(copy);

	/* A newer schema than this binary knows. */
	TAP_EQ_INT(store_backup(st, copy, &c, &err), 0, "a second snapshot");
	{
		sqlite3 *db = NULL;

		sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, NULL);
		sqlite3_exec(db, "PRAGMA user_version = 9999", NULL, NULL,
		    NULL);
		sqlite3_close(db);
	}
	r = store_snapshot_check(copy, &c2, &err);
	TAP_OK(r == PR_EVERSION && strstr(err.msg, "newer") != NULL,
	    "a newer schema is refused (%s)", err.msg);
}

static void
test_verify(struct store *st)
{
	struct t_problems p;
	struct pr_err err = { 0 };
	int64_t mailbox = t_int("SELECT count(*) FROM mailbox");
	int r;

	memset(&p, 0, sizeof(p));
	r = store_verify(st, false, t_problem_cb, &p, &err);
	TAP_OK(r == 0 && p.found == 0, "a store as the API left it is "
	    "clean (%d)", r);

	t_exec("UPDATE users SET used = used + 7 WHERE address ="
	    " 'bob@example.org';"
	    "INSERT INTO bodies (msgid, sender, size, created, data)"
	    " VALUES ('orphan', '', 3, 0, X'414243');"
	    "INSERT INTO mailbox (user_id, body_id, size, uidl, received)"
	    " SELECT 4242, body_id, 1, 'ghost', 0 FROM mailbox LIMIT 1;"
	    "INSERT INTO queue (msgid, body_id, sender, created, next_attempt)"
	    " SELECT 'norcpt', body_id, '', 0, 0 FROM mailbox LIMIT 1;"
	    "INSERT INTO queue (msgid, body_id, sender, created, next_attempt)"
	    " VALUES ('nobody', 31337, '', 0, 0);"
	    "INSERT INTO queue_rcpt (queue_id, address) SELECT id,"
	    " 'r@far.example' FROM queue WHERE msgid = 'nobody';"
	    "INSERT INTO queue_rcpt (queue_id, address) VALUES (777,"
	    " 'lost@far.example');");
	memset(&p, 0, sizeof(p));
	r = store_verify(st, false, t_problem_cb, &p, &err);
	TAP_EQ_INT(r, 6, "six problems found");
	TAP_OK(p.found == 6 && p.repaired == 0, "each reported once, none "
	    "repaired without --repair");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies WHERE msgid ="
	    " 'orphan'"), 1, "verify alone changes nothing");

	memset(&p, 0, sizeof(p));
	r = store_verify(st, true, t_problem_cb, &p, &err);
	TAP_EQ_INT(r, 1, "repair leaves one problem");
	TAP_EQ_INT(p.repaired, 5, "five repaired");
	TAP_OK(strstr(p.last, "nobody") != NULL, "the one left is the queue "
	    "entry without its body (%s)", p.last);
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox"), mailbox,
	    "every real mailbox row kept");
	TAP_EQ_INT(t_int("SELECT used FROM users WHERE address ="
	    " 'bob@example.org'"), t_int("SELECT sum(size) FROM mailbox m"
	    " JOIN users u ON u.id = m.user_id WHERE address ="
	    " 'bob@example.org'"), "bob's counter recomputed");

	t_exec("PRAGMA foreign_keys = ON;"
	    "DELETE FROM queue WHERE msgid = 'nobody'");
	memset(&p, 0, sizeof(p));
	TAP_EQ_INT(store_verify(st, false, t_problem_cb, &p, &err), 0,
	    "clean again");
}

int
main(void)
{
	struct store *st;
	struct pr_err err = { 0 };
	const char *remote[] = { "dave@far.example" };
	int64_t u[2];

	t_setup("store-backup");
	st = t_open();
	store_domain_add(st, "example.org", &err);
	u[0] = t_add_user(st, "alice@example.org", 0);
	u[1] = t_add_user(st, "bob@example.org", 0);
	t_deliver(st, u, 1, NULL, 0, "", "Subject: one\r\n\r\n1\r\n", NULL);
	t_deliver(st, u, 2, NULL, 0, "", "Subject: two\r\n\r\n2\r\n", NULL);
	t_deliver(st, NULL, 0, remote, 1, "", "Subject: out\r\n\r\n3\r\n",
	    NULL);

	test_backup(st);
	test_verify(st);
	store_close(&st);
	return tap_done();
}
