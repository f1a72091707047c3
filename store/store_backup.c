/*
 * store_backup.c - online snapshots of the database, checks of a snapshot
 * and the store's own invariants (postroom verify).
 *
 * A snapshot is taken with SQLite's online backup API in one step: the
 * step holds one read transaction on the source, so the copy is the
 * database as of one commit, while the daemons go on writing (WAL lets
 * readers and the writer work at once).  The copy is switched to a
 * rollback journal so that it is one self-contained file
 * (docs/BACKUP.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

/* How long a busy source or destination is retried (milliseconds). */
#define STORE_BACKUP_BUSY_MS 60000

static int
store_backup_fail(sqlite3 *db, struct pr_err *err, const char *what)
{
	return pr_err_set(err, PR_EIO, "%s: %s", what,
	    db != NULL ? sqlite3_errmsg(db) : "out of memory");
}

/* One integer from a query on db; PR_EIO with err on failure. */
static int
store_backup_int(sqlite3 *db, const char *sql, int64_t *v_r,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_backup_fail(db, err, sql);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_backup_fail(db, err, sql);
	return 0;
}

/* The counts of a snapshot, read in one read transaction of db. */
static int
store_backup_counts(sqlite3 *db, struct store_counts *c, struct pr_err *err)
{
	static const struct {
		const char *sql;
		size_t off;
	} q[] = {
		{ "SELECT count(*) FROM domains",
		    offsetof(struct store_counts, domains) },
		{ "SELECT count(*) FROM users",
		    offsetof(struct store_counts, users) },
		{ "SELECT count(*) FROM aliases",
		    offsetof(struct store_counts, aliases) },
		{ "SELECT count(*) FROM bodies",
		    offsetof(struct store_counts, bodies) },
		{ "SELECT count(*) FROM mailbox",
		    offsetof(struct store_counts, mailbox) },
		{ "SELECT count(*) FROM queue",
		    offsetof(struct store_counts, queue) },
		{ "SELECT count(*) FROM queue_rcpt",
		    offsetof(struct store_counts, queue_rcpt) },
	};
	int64_t v;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = store_backup_int(db, "PRAGMA user_version", &v, err)) < 0)
		return r;
	c->schema = (int)v;
	if (c->schema > store__n_migrations)
		return pr_err_set(err, PR_EVERSION, "the database has schema "
		    "version %d, newer than this postroom knows (%d); upgrade "
		    "postroom", c->schema, store__n_migrations);
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		if ((r = store_backup_int(db, q[i].sql, &v, err)) < 0)
			return r;
		*(int64_t *)(void *)((char *)c + q[i].off) = v;
	}
	return 0;
}

/* PRAGMA integrity_check on db: 0, or PR_EIO with its first complaint. */
static int
store_backup_integrity(sqlite3 *db, struct pr_err *err)
{
	sqlite3_stmt *s;
	const char *v;
	int rc, r = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) !=
	    SQLITE_OK)
		return store_backup_fail(db, err, "integrity_check");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		v = (const char *)sqlite3_column_text(s, 0);
		if (v == NULL || strcmp(v, "ok") != 0)
			r = pr_err_set(err, PR_EIO, "integrity check failed: "
			    "%s", v != NULL ? v : "?");
	} else {
		r = store_backup_fail(db, err, "integrity_check");
	}
	sqlite3_finalize(s);
	return r;
}

static void
store_backup_pause(void)
{
	struct timespec ts = { 0, 50 * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
store_backup(struct store *st, const char *path, struct store_counts *c_r,
    struct pr_err *err)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	int fd, rc, r, waited = 0;

	/* O_EXCL: the caller names a fresh file; 0600, it holds password
	 * hashes and mail. */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) < 0)
		return pr_err_set(err, PR_EIO, "cannot create %s: %s", path,
		    strerror(errno));
	close(fd);
	if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		r = store_backup_fail(dst, err, path);
		goto out;
	}
	if ((b = sqlite3_backup_init(dst, "main", st->db, "main")) == NULL) {
		r = store_backup_fail(dst, err, "backup");
		goto out;
	}
	/* -1: every page in one step, under one read transaction of the
	 * source.  A step in pieces would restart whenever another process
	 * commits, which under load may be never. */
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
	    rc == SQLITE_LOCKED) {
		if (waited >= STORE_BACKUP_BUSY_MS)
			break;
		store_backup_pause();
		waited += 50;
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		r = pr_err_set(err, PR_EIO, "backup of %s: %s", st->path,
		    sqlite3_errstr(rc));
		goto out;
	}
	/* The copy carries the source's WAL mode in its header; one file
	 * with no -wal beside it is what goes into an archive. */
	if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL,
	    NULL) != SQLITE_OK) {
		r = store_backup_fail(dst, err, path);
		goto out;
	}
	if ((r = store_backup_integrity(dst, err)) < 0)
		goto out;
	r = store_backup_counts(dst, c_r, err);
out:
	sqlite3_close(dst);
	if (r < 0)
		unlink(path);
	return r;
}

int
store_snapshot_check(const char *path, struct store_counts *c_r,
    struct pr_err *err)
{
	sqlite3 *db = NULL;
	int r;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		r = store_backup_fail(db, err, path);
		goto out;
	}
	if ((r = store_backup_integrity(db, err)) < 0)
		goto out;
	r = store_backup_counts(db, c_r, err);
out:
	sqlite3_close(db);
	return r;
}

/*
 * The invariants of docs/BACKUP.md 3, one query each: a row is one
 * problem, described by its first column.  repair is the statement that
 * puts every row of the check right, NULL where no repair is safe.  Each
 * repair only removes what refers to nothing, or recomputes a counter
 * from the rows it counts; none removes a message that can still be read.
 */
static const struct {
	const char *check;
	const char *repair;
} store_verify_checks[] = {
	/* Counters kept by the mailbox triggers (quota checks read them). */
	{ "SELECT printf('user %s: counters say %d octets in %d messages,"
	  " the mailbox holds %d in %d', address, used, messages,"
	  " (SELECT coalesce(sum(size), 0) FROM mailbox WHERE user_id = u.id),"
	  " (SELECT count(*) FROM mailbox WHERE user_id = u.id))"
	  " FROM users u"
	  " WHERE used <> (SELECT coalesce(sum(size), 0) FROM mailbox"
	  " WHERE user_id = u.id) OR messages <> (SELECT count(*)"
	  " FROM mailbox WHERE user_id = u.id)",
	  "UPDATE users SET"
	  " used = (SELECT coalesce(sum(size), 0) FROM mailbox"
	  " WHERE user_id = users.id),"
	  " messages = (SELECT count(*) FROM mailbox"
	  " WHERE user_id = users.id)"
	  " WHERE used <> (SELECT coalesce(sum(size), 0) FROM mailbox"
	  " WHERE user_id = users.id) OR messages <> (SELECT count(*)"
	  " FROM mailbox WHERE user_id = users.id)" },
	/* Mailbox rows of a user that is gone: nobody can read them. */
	{ "SELECT printf('mailbox row %d (%s) belongs to deleted user %d',"
	  " id, uidl, user_id) FROM mailbox m"
	  " WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = m.user_id)",
	  "DELETE FROM mailbox"
	  " WHERE NOT EXISTS (SELECT 1 FROM users"
	  " WHERE id = mailbox.user_id)" },
	/* Mailbox rows whose body is gone: RETR could only fail. */
	{ "SELECT printf('mailbox row %d (%s) refers to missing body %d',"
	  " id, uidl, body_id) FROM mailbox m"
	  " WHERE NOT EXISTS (SELECT 1 FROM bodies WHERE id = m.body_id)",
	  "DELETE FROM mailbox"
	  " WHERE NOT EXISTS (SELECT 1 FROM bodies"
	  " WHERE id = mailbox.body_id)" },
	/* A body nothing refers to: the reference counting of the triggers
	 * missed it; it is space, not mail. */
	{ "SELECT printf('body %d (%s) is referenced by no mailbox and no"
	  " queue entry', id, msgid) FROM bodies b"
	  " WHERE NOT EXISTS (SELECT 1 FROM mailbox WHERE body_id = b.id)"
	  " AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = b.id)",
	  "DELETE FROM bodies"
	  " WHERE NOT EXISTS (SELECT 1 FROM mailbox WHERE body_id = bodies.id)"
	  " AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = bodies.id)" },
	/* A queue entry without a body has nothing to send, but its
	 * senders expect a bounce: the admin decides (postroom queue del). */
	{ "SELECT printf('queue entry %s refers to missing body %d"
	  " (remove it with postroom queue del %s)', msgid, body_id, msgid)"
	  " FROM queue q"
	  " WHERE NOT EXISTS (SELECT 1 FROM bodies WHERE id = q.body_id)",
	  NULL },
	/* A queue entry with no recipient left is finished. */
	{ "SELECT printf('queue entry %s has no recipients', msgid)"
	  " FROM queue q"
	  " WHERE NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE queue_id = q.id)",
	  "DELETE FROM queue"
	  " WHERE NOT EXISTS (SELECT 1 FROM queue_rcpt"
	  " WHERE queue_id = queue.id)" },
	/* Recipients of a queue entry that is gone. */
	{ "SELECT printf('queue recipient %d (%s) belongs to missing queue"
	  " entry %d', id, address, queue_id) FROM queue_rcpt r"
	  " WHERE NOT EXISTS (SELECT 1 FROM queue WHERE id = r.queue_id)",
	  "DELETE FROM queue_rcpt"
	  " WHERE NOT EXISTS (SELECT 1 FROM queue"
	  " WHERE id = queue_rcpt.queue_id)" },
	/* Users and aliases of a domain that is gone: the admin decides
	 * whether the domain comes back. */
	{ "SELECT printf('user %s belongs to missing domain %d', address,"
	  " domain_id) FROM users u"
	  " WHERE NOT EXISTS (SELECT 1 FROM domains WHERE id = u.domain_id)",
	  NULL },
	{ "SELECT printf('alias %s -> %s belongs to missing domain %d',"
	  " alias, target, domain_id) FROM aliases a"
	  " WHERE NOT EXISTS (SELECT 1 FROM domains WHERE id = a.domain_id)",
	  NULL },
	/* A stored size that is not the body's length breaks LIST and
	 * quota sums; the body is the truth, but which mailbox sizes
	 * depend on it is not known here. */
	{ "SELECT printf('body %d (%s) says %d octets, holds %d', id, msgid,"
	  " size, length(data)) FROM bodies WHERE size <> length(data)",
	  NULL },
	/* The greylisting bounds of store.h read these counters. */
	{ "SELECT printf('greylist counters say %d pending and %d passed,"
	  " the table holds %d and %d', pending, passed,"
	  " (SELECT count(*) FROM greylist WHERE passed = 0),"
	  " (SELECT count(*) FROM greylist WHERE passed > 0))"
	  " FROM greylist_size"
	  " WHERE pending <> (SELECT count(*) FROM greylist WHERE passed = 0)"
	  " OR passed <> (SELECT count(*) FROM greylist WHERE passed > 0)",
	  "UPDATE greylist_size SET"
	  " pending = (SELECT count(*) FROM greylist WHERE passed = 0),"
	  " passed = (SELECT count(*) FROM greylist WHERE passed > 0)" },
};

/* Runs one check, reporting each row through cb; its rows in *n_r. */
static int
store_verify_one(struct store *st, const char *sql, bool repaired,
    store_verify_cb cb, void *arg, long *n_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	const char *v;
	int rc;

	*n_r = 0;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store__fail(st, err, "verify");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = (const char *)sqlite3_column_text(s, 0);
		cb(arg, v != NULL ? v : "?", repaired);
		(*n_r)++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store__fail(st, err, "verify");
	return 0;
}

/* integrity_check, and foreign_key_check for the tables the checks
 * above do not cover: every line a problem, none repairable here. */
static int
store_verify_sqlite(struct store *st, store_verify_cb cb, void *arg,
    long *n1, long *n2, struct pr_err *err)
{
	int r;

	if ((r = store_verify_one(st, "SELECT 'integrity check: ' ||"
	    " integrity_check FROM pragma_integrity_check"
	    " WHERE integrity_check <> 'ok'", false, cb, arg, n1, err)) < 0)
		return r;
	if ((r = store_verify_one(st, "SELECT printf('foreign key: %s row %d"
	    " refers to a missing %s row', \"table\", rowid, parent)"
	    " FROM pragma_foreign_key_check WHERE \"table\" NOT IN"
	    " ('mailbox', 'queue', 'queue_rcpt', 'users', 'aliases')", false,
	    cb, arg, n2, err)) < 0)
		return r;
	return 0;
}

int
store_verify(struct store *st, bool repair, store_verify_cb cb, void *arg,
    struct pr_err *err)
{
	const size_t nchecks =
	    sizeof(store_verify_checks) / sizeof(store_verify_checks[0]);
	long n, nfk, left = 0;
	int r;

	/* The SQLite checks first: on a damaged file (integrity_check)
	 * the others mean little, and nothing is repaired on it. */
	if ((r = store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		return r;
	r = store_verify_sqlite(st, cb, arg, &n, &nfk, err);
	store__rollback(st);
	if (r < 0)
		return r;
	if (n > 0)
		repair = false;
	left += n + nfk;

	/* Checks and repairs in one write transaction: what is repaired is
	 * exactly what was reported, with no commit of a daemon between. */
	if ((r = repair ? store__begin(st, err) :
	    store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		return r;
	for (size_t i = 0; i < nchecks; i++) {
		const char *fix = repair ? store_verify_checks[i].repair : NULL;

		if ((r = store_verify_one(st, store_verify_checks[i].check,
		    fix != NULL, cb, arg, &n, err)) < 0)
			goto fail;
		if (n > 0 && fix != NULL) {
			if (sqlite3_exec(st->db, fix, NULL, NULL, NULL) !=
			    SQLITE_OK) {
				r = store__fail(st, err, "repair");
				goto fail;
			}
		} else {
			left += n;
		}
	}
	if (repair) {
		if ((r = store__commit(st, err)) < 0)
			return r;
	} else {
		store__rollback(st);
	}
	return left > INT_MAX ? INT_MAX : (int)left;

fail:
	store__rollback(st);
	return r;
}
