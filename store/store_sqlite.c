/*
 * store_sqlite.c - opening the database, migrations, the statement cache,
 * transactions, error mapping and the consistency check.
 */
#include "store_int.h"

#include "domain.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

/* How long a statement waits for another process's write lock.  A group
 * commit of many messages takes milliseconds; 10 s rides out a checkpoint
 * on a slow disk without making the caller hang for long. */
/* The database file's memory map (PRAGMA mmap_size), see store_open. */
#define STORE_MMAP_SIZE "268435456"
#define STORE_BUSY_TIMEOUT_MS 10000
/* A waiting writer tries again this often.  SQLite's own busy timeout
 * backs off to 100 ms between tries, so a writer that releases the lock
 * for a moment between bounded transactions (a big QUIT, see
 * store_maildrop_end) would keep a delivery waiting until it is done. */
#define STORE_BUSY_POLL_US 1000

/* sqlite3_busy_handler: retry every STORE_BUSY_POLL_US until the busy
 * timeout has passed. */
static int
store_busy_cb(void *arg, int tries)
{
	(void)arg;
	if ((long)tries * STORE_BUSY_POLL_US >= STORE_BUSY_TIMEOUT_MS * 1000L)
		return 0;
	usleep(STORE_BUSY_POLL_US);
	return 1;
}

int
store__code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return PR_EAGAIN;
	case SQLITE_FULL:
		return PR_EFULL;
	case SQLITE_NOMEM:
		return PR_ENOMEM;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE ||
		    rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return PR_EEXIST;
		return PR_EIO;
	default:
		return PR_EIO;
	}
}

int
store__fail(struct store *st, struct pr_err *err, const char *what)
{
	int rc = sqlite3_extended_errcode(st->db);

	return pr_err_set(err, store__code(rc), "%s: %s", what,
	    sqlite3_errmsg(st->db));
}

sqlite3_stmt *
store__stmt(struct store *st, enum store_q id, const char *sql,
    struct pr_err *err)
{
	sqlite3_stmt *s = st->stmts[id];

	if (s != NULL) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return s;
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s,
	    NULL) != SQLITE_OK) {
		store__fail(st, err, "cannot prepare a database statement");
		return NULL;
	}
	st->stmts[id] = s;
	return s;
}

static int
store_bindv(sqlite3_stmt *s, const char *fmt, va_list ap)
{
	const char *text;
	int i, len, rc = SQLITE_OK;

	for (i = 0; fmt[i] != '\0' && rc == SQLITE_OK; i++) {
		switch (fmt[i]) {
		case 'i':
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
			break;
		case 't':
			rc = sqlite3_bind_text(s, i + 1, va_arg(ap,
			    const char *), -1, SQLITE_STATIC);
			break;
		case 'T':
			text = va_arg(ap, const char *);
			len = va_arg(ap, int);
			rc = sqlite3_bind_text(s, i + 1, text, len,
			    SQLITE_STATIC);
			break;
		case 'B':
			text = va_arg(ap, const char *);
			len = va_arg(ap, int);
			rc = sqlite3_bind_blob(s, i + 1, text, len,
			    SQLITE_STATIC);
			break;
		case 'z':
			rc = sqlite3_bind_zeroblob64(s, i + 1,
			    (sqlite3_uint64)va_arg(ap, int64_t));
			break;
		default:
			rc = SQLITE_MISUSE;
			break;
		}
	}
	return rc;
}

/* In a variadic function whose last named parameter is fmt: s =
 * store_bind_va() with its arguments. */
#define STORE_BIND_ARGS(s, st, id, sql, what, err, fmt) do {		\
	va_list store_ap;						\
									\
	va_start(store_ap, fmt);					\
	(s) = store_bind_va(st, id, sql, what, err, fmt, store_ap);	\
	va_end(store_ap);						\
} while (0)

/* store__stmt + store_bindv; NULL with err set from what. */
static sqlite3_stmt *
store_bind_va(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, const char *fmt, va_list ap)
{
	sqlite3_stmt *s;

	if ((s = store__stmt(st, id, sql, err)) == NULL)
		return NULL;
	if (store_bindv(s, fmt, ap) != SQLITE_OK) {
		store__fail(st, err, what);
		sqlite3_clear_bindings(s);
		return NULL;
	}
	return s;
}

sqlite3_stmt *
store__bind(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, const char *fmt, ...)
{
	sqlite3_stmt *s;

	STORE_BIND_ARGS(s, st, id, sql, what, err, fmt);
	return s;
}

int
store__run(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, const char *fmt, ...)
{
	sqlite3_stmt *s;
	int rc;

	STORE_BIND_ARGS(s, st, id, sql, what, err, fmt);
	if (s == NULL)
		return store__errcode(err);
	rc = sqlite3_step(s);
	return store__done(st, s, rc == SQLITE_ROW ? SQLITE_DONE : rc, what,
	    err);
}

int
store__row(struct store *st, enum store_q id, const char *sql,
    sqlite3_stmt **s_r, const char *what, struct pr_err *err,
    const char *fmt, ...)
{
	sqlite3_stmt *s;
	int rc;

	*s_r = NULL;
	STORE_BIND_ARGS(s, st, id, sql, what, err, fmt);
	if (s == NULL)
		return store__errcode(err);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*s_r = s;
		return 1;
	}
	return store__done(st, s, rc, what, err);
}

int
store__done(struct store *st, sqlite3_stmt *s, int rc, const char *what,
    struct pr_err *err)
{
	int r = 0;

	/* The message is taken before the reset, which would keep the code
	 * but could reword it. */
	if (rc == SQLITE_NOMEM || rc == SQLITE_ROW)
		r = pr_err_set(err, PR_ENOMEM, "out of memory");
	else if (rc != SQLITE_DONE)
		r = store__fail(st, err, what);
	sqlite3_reset(s);
	/* No bound pointer outlives the statement's use (a password hash is
	 * wiped right after). */
	sqlite3_clear_bindings(s);
	return r;
}

int
store__texts(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, struct store_strv *sv, int col,
    const char *fmt, ...)
{
	sqlite3_stmt *s;

	STORE_BIND_ARGS(s, st, id, sql, what, err, fmt);
	return store__collect(st, s, NULL, NULL, NULL, 0, NULL, sv, col, what,
	    err);
}

int
store__collect(struct store *st, sqlite3_stmt *s, void *vp, size_t *n_r,
    size_t *cap_r, size_t size, void (*row)(sqlite3_stmt *s, void *elem),
    struct store_strv *sv, int col, const char *what, struct pr_err *err)
{
	char *v;
	int rc;

	if (s == NULL)
		return store__errcode(err);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    (vp == NULL || store__grow(vp, cap_r, *n_r, size, 16) == 0) &&
	    (sv == NULL || store__strv_push(sv,
	    (const char *)sqlite3_column_text(s, col)) == 0)) {
		if (vp == NULL)
			continue;
		memcpy(&v, vp, sizeof(v));
		row(s, v + (*n_r)++ * size);
	}
	return store__done(st, s, rc, what, err);
}

int
store__changed(struct store *st, int r, struct pr_err *err,
    const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;

	if (r < 0 || sqlite3_changes(st->db) > 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return pr_err_set(err, PR_ENOENT, "%s", msg);
}

int
store__end(struct store *st, int r, struct pr_err *err)
{
	if (r >= 0)
		return store__commit(st, err);
	store__rollback(st);
	return r;
}

int
store__each(struct store *st, size_t n,
    int (*one)(struct store *st, void *ctx, size_t i, struct pr_err *err),
    void *ctx, struct pr_err *err)
{
	struct pr_err ierr;
	int r;

	if ((r = store__begin(st, err)) < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		if ((r = store__exec(st, STORE_Q_SAVEPOINT,
		    "SAVEPOINT store_msg", err)) < 0)
			break;
		pr_err_clear(&ierr);
		if ((r = one(st, ctx, i, &ierr)) < 0 &&
		    sqlite3_get_autocommit(st->db)) {
			/* SQLite gave up the whole transaction (disk full,
			 * I/O error): nothing commits. */
			*err = ierr;
			break;
		}
		r = r < 0 ? store__exec(st, STORE_Q_ROLLBACK_TO,
		    "ROLLBACK TO store_msg", err) : 0;
		if (r == 0)
			r = store__exec(st, STORE_Q_RELEASE,
			    "RELEASE store_msg", err);
	}
	return store__end(st, r, err);
}

int
store__grow(void *vp, size_t *cap, size_t n, size_t size, size_t first)
{
	void *v, *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	memcpy(&v, vp, sizeof(v));
	ncap = *cap > 0 ? 2 * *cap : first;
	if (ncap <= n || ncap > SIZE_MAX / size ||
	    (nv = realloc(v, ncap * size)) == NULL)
		return PR_ENOMEM;
	memcpy(vp, &nv, sizeof(nv));
	*cap = ncap;
	return 0;
}

int
store__exec(struct store *st, enum store_q id, const char *sql,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store__stmt(st, id, sql, err)) == NULL)
		return store__errcode(err);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return pr_err_set(err, store__code(rc), "database: %s",
		    sqlite3_errstr(rc));
	return 0;
}

int
store__begin(struct store *st, struct pr_err *err)
{
	return store__exec(st, STORE_Q_BEGIN, "BEGIN IMMEDIATE", err);
}

int
store__commit(struct store *st, struct pr_err *err)
{
	int r;

	if ((r = store__exec(st, STORE_Q_COMMIT, "COMMIT", err)) < 0)
		store__rollback(st);
	return r;
}

void
store__rollback(struct store *st)
{
	/* SQLite rolls back by itself on some errors (SQLITE_FULL, IOERR,
	 * ...); a second ROLLBACK would only fail. */
	if (!sqlite3_get_autocommit(st->db))
		store__exec(st, STORE_Q_ROLLBACK, "ROLLBACK", NULL);
}

bool
store__idle(struct store *st)
{
	sqlite3_stmt *s = NULL;

	while ((s = sqlite3_next_stmt(st->db, s)) != NULL)
		if (sqlite3_stmt_busy(s))
			return false;
	return sqlite3_get_autocommit(st->db) != 0;
}

void
store__random_hex(char *out, size_t n)
{
	unsigned char raw[64];

	if (n > sizeof(raw))
		n = sizeof(raw);
	randombytes_buf(raw, n);
	sodium_bin2hex(out, 2 * n + 1, raw, n);
}

const char *
store__lower_addr(const char *address, char *out, struct pr_err *err)
{
	char dom[ADDR_MAX];
	size_t len, dlen;
	char *at;

	if (address == NULL || (len = strlen(address)) >= ADDR_MAX) {
		pr_err_set(err, PR_EINVAL, "address too long");
		return NULL;
	}
	memcpy(out, address, len + 1);
	addr_lower(out);
	at = strrchr(out, '@');
	if (at == NULL || at == out || at[1] == '\0') {
		pr_err_set(err, PR_EINVAL, "invalid address: %s", address);
		return NULL;
	}
	/* One form for the domain (domain.h), so that a U-label finds the
	 * A-label the domain was added as. */
	if (domain_normalize(at + 1, strlen(at + 1), dom, sizeof(dom)) < 0 ||
	    (size_t)(at + 1 - out) + (dlen = strlen(dom)) >= ADDR_MAX) {
		pr_err_set(err, PR_EINVAL, "invalid address: %s", address);
		return NULL;
	}
	memcpy(at + 1, dom, dlen + 1);
	return at + 1;
}

int
store__strv_push(struct store_strv *sv, const char *s)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? 2 * sv->cap : 16;
		char **v = realloc(sv->v, cap * sizeof(*v));

		if (v == NULL)
			return PR_ENOMEM;
		sv->v = v;
		sv->cap = cap;
	}
	if ((sv->v[sv->n] = strdup(s != NULL ? s : "")) == NULL)
		return PR_ENOMEM;
	sv->n++;
	return 0;
}

bool
store__strv_has(const struct store_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

void
store__strv_fini(struct store_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

/* Runs a cached one-parameter "SELECT id ..." lookup. */
static int
store_lookup_id(struct store *st, enum store_q q, const char *sql,
    const char *key, int64_t *id_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	r = store__row(st, q, sql, &s, "database lookup failed", err, "t",
	    key);
	if (r == 1) {
		if (id_r != NULL)
			*id_r = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	return r;
}

int
store__domain_id(struct store *st, const char *domain, int64_t *id_r,
    struct pr_err *err)
{
	return store_lookup_id(st, STORE_Q_DOMAIN_ID,
	    "SELECT id FROM domains WHERE name = ?1", domain, id_r, err);
}

int
store__hosted(struct store *st, const char *domain, int64_t *id_r,
    struct pr_err *err)
{
	int r;

	if ((r = store__domain_id(st, domain, id_r, err)) == 0)
		return pr_err_set(err, PR_ENOENT,
		    "domain %s is not hosted here", domain);
	return r < 0 ? r : 0;
}

int
store__user_id(struct store *st, const char *address, int64_t *id_r,
    struct pr_err *err)
{
	return store_lookup_id(st, STORE_Q_USER_ID,
	    "SELECT id FROM users WHERE address = ?1", address, id_r, err);
}

int
store__alias_exists(struct store *st, const char *alias, struct pr_err *err)
{
	return store_lookup_id(st, STORE_Q_ALIAS_EXISTS,
	    "SELECT 1 FROM aliases WHERE alias = ?1 LIMIT 1", alias, NULL,
	    err);
}

/* Creates dir and its missing parents; dir itself gets mode. */
static int
store_mkdirs(const char *dir, mode_t mode, struct pr_err *err)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	struct stat sb;

	if (len == 0 || len >= sizeof(path))
		return pr_err_set(err, PR_EINVAL, "invalid data_dir \"%s\"",
		    dir);
	memcpy(path, dir, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			int e = errno;

			return pr_err_set(err, PR_EIO, "cannot create %s: %s",
			    path, strerror(e));
		}
		*p = '/';
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return pr_err_set(err, PR_EIO, "cannot create %s: %s", path,
		    strerror(errno));
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return pr_err_set(err, PR_EIO, "%s is not a directory", path);
	return 0;
}

static int
store_pragma_int(struct store *st, const char *sql, int *v_r,
    struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store__fail(st, err, st->path);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store__fail(st, err, st->path);
	return 0;
}

/* Switches to WAL.  The mode is persistent in the file, so this writes
 * only the first time; later opens find "wal" and change nothing.  The
 * switch needs an exclusive lock, and SQLite gives up on it at once,
 * without the busy handler, when another connection is upgrading its own
 * lock at the same moment (a deadlock otherwise); store_open therefore
 * runs it under the setup lock, and retries a busy answer. */
static int
store_set_wal(struct store *st, struct pr_err *err)
{
	sqlite3_stmt *s;
	const char *mode;
	int rc, wal = 0;

	for (int pass = 0; pass < 2 && !wal; pass++) {
		if (sqlite3_prepare_v2(st->db, pass == 0 ?
		    "PRAGMA journal_mode" : "PRAGMA journal_mode = WAL", -1,
		    &s, NULL) != SQLITE_OK)
			return store__fail(st, err, st->path);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			mode = (const char *)sqlite3_column_text(s, 0);
			wal = mode != NULL && sqlite3_stricmp(mode, "wal") == 0;
		}
		sqlite3_finalize(s);
		if (rc != SQLITE_ROW)
			return store__fail(st, err, st->path);
	}
	if (!wal)
		return pr_err_set(err, PR_EIO,
		    "%s: cannot switch to WAL journal mode", st->path);
	return 0;
}

/*
 * Serialises the setup of store_open (creating the file, the WAL switch,
 * the migrations) between processes: the daemons and the CLI start at
 * the same time on a new data_dir.  The lock is a flock(2) on the data_dir
 * directory itself, so no extra file is needed, and it cannot disturb
 * SQLite's own fcntl(2) locks on mail.db (closing another descriptor of
 * mail.db would drop those).  Returns the directory's descriptor or -1;
 * a data_dir that cannot be locked (no read permission) is set up
 * unserialised, relying on the busy retries alone.
 */
static int
store_setup_lock(const char *data_dir)
{
	int fd;

	if ((fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
store_setup_unlock(int *fd)
{
	if (*fd >= 0) {
		/* Closing the last descriptor releases the flock. */
		close(*fd);
		*fd = -1;
	}
}

/* Sleeps ms milliseconds between setup attempts. */
static void
store_setup_pause(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
store_migrate(struct store *st, struct pr_err *err)
{
	char sql[64];
	char *msg = NULL;
	int v, r;

	if ((r = store_pragma_int(st, "PRAGMA user_version", &v, err)) < 0)
		return r;
	if (v > store__n_migrations)
		goto too_new;
	if (v == store__n_migrations)
		return 0;

	/* Re-read under the write lock: another process may be migrating
	 * the same file right now. */
	if ((r = store__begin(st, err)) < 0)
		return r;
	if ((r = store_pragma_int(st, "PRAGMA user_version", &v, err)) < 0)
		goto fail;
	if (v > store__n_migrations) {
		store__rollback(st);
		goto too_new;
	}
	for (int i = v; i < store__n_migrations; i++) {
		if (sqlite3_exec(st->db, store__migrations[i], NULL, NULL,
		    &msg) != SQLITE_OK) {
			r = pr_err_set(err, PR_EIO,
			    "%s: schema migration %d failed: %s", st->path,
			    i + 1, msg != NULL ? msg : "?");
			sqlite3_free(msg);
			goto fail;
		}
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    store__n_migrations);
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		r = store__fail(st, err, st->path);
		goto fail;
	}
	return store__commit(st, err);

fail:
	store__rollback(st);
	return r;

too_new:
	return pr_err_set(err, PR_EVERSION,
	    "%s has schema version %d, newer than this postroom knows (%d); "
	    "upgrade postroom", st->path, v, store__n_migrations);
}

int
store_open(const char *data_dir, unsigned flags, struct store **st_r,
    struct pr_err *err)
{
	struct store *st;
	struct stat sb;
	size_t len;
	int r, fd, lock_fd = -1;

	*st_r = NULL;
	if (sodium_init() < 0)
		return pr_err_set(err, PR_EIO, "libsodium: cannot initialise");
	if (data_dir == NULL || *data_dir == '\0')
		return pr_err_set(err, PR_EINVAL, "data_dir is not set");
	if ((flags & STORE_OPEN_CREATE) &&
	    (r = store_mkdirs(data_dir, 0750, err)) < 0)
		return r;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	len = strlen(data_dir) + sizeof("/mail.db");
	if ((st->path = malloc(len)) == NULL) {
		free(st);
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	}
	snprintf(st->path, len, "%s/mail.db", data_dir);

	lock_fd = store_setup_lock(data_dir);
	if (stat(st->path, &sb) < 0) {
		if (errno != ENOENT || !(flags & STORE_OPEN_CREATE)) {
			r = errno == ENOENT ?
			    pr_err_set(err, PR_ENOENT,
				"no database at %s (run `postroom init`)",
				st->path) :
			    pr_err_set(err, PR_EIO, "cannot open %s: %s",
				st->path, strerror(errno));
			goto fail;
		}
		/* Create the file ourselves to choose its mode: it holds
		 * password hashes and mail.  SQLite gives the -wal and -shm
		 * files the same mode. */
		fd = open(st->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			r = pr_err_set(err, PR_EIO, "cannot create %s: %s",
			    st->path, strerror(errno));
			goto fail;
		}
		close(fd);
	}

	if (sqlite3_open_v2(st->path, &st->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = pr_err_set(err, PR_EIO, "cannot open %s: %s", st->path,
		    st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	/* SQLite falls back to read-only when the file is not writable; the
	 * store always needs to write (migrations, locks), so say so now
	 * rather than at the first write. */
	if (sqlite3_db_readonly(st->db, "main") == 1) {
		r = pr_err_set(err, PR_EIO, "cannot open %s: not writable by "
		    "this user", st->path);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_handler(st->db, store_busy_cb, NULL);
	if (sqlite3_exec(st->db,
	    "PRAGMA foreign_keys = ON;"
	    "PRAGMA synchronous = FULL;"
	    "PRAGMA temp_store = MEMORY;"
	    /* Streaming a big body reopens its blob per chunk, which walks
	     * the overflow chain from the start: memory-mapped pages make
	     * that walk cheap (a 50 MB RETR: 19 s without, 0.7 s with). */
	    "PRAGMA mmap_size = " STORE_MMAP_SIZE ";", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		r = store__fail(st, err, st->path);
		goto fail;
	}
	/* A busy answer that outlived the busy handler, or came without
	 * it (see store_set_wal), is retried for as long as a statement
	 * would wait for a lock. */
	for (long waited = 0;; waited += 50) {
		if ((r = store_set_wal(st, err)) == 0 &&
		    (r = store_migrate(st, err)) == 0)
			break;
		if (r != PR_EAGAIN || waited >= STORE_BUSY_TIMEOUT_MS)
			goto fail;
		store_setup_pause(50);
	}
	store_setup_unlock(&lock_fd);
	*st_r = st;
	return 0;

fail:
	store_setup_unlock(&lock_fd);
	store_close(&st);
	return r;
}

void
store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	for (int i = 0; i < STORE_Q__COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	/* The last connection to close checkpoints and removes the WAL. */
	sqlite3_close(st->db);
	free(st->chunk);
	free(st->path);
	free(st);
	*stp = NULL;
}

int
store_schema_version(struct store *st)
{
	int v;

	if (store_pragma_int(st, "PRAGMA user_version", &v, NULL) < 0)
		return PR_EIO;
	return v;
}

/* Runs a one-off check query: a row is a problem, described by its first
 * column.  Returns 0, PR_EIO with err, or another error. */
static int
store_check_query(struct store *st, const char *sql, struct pr_err *err)
{
	sqlite3_stmt *s;
	int rc, r = 0;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store__fail(st, err, "check");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(s, 0);

		r = pr_err_set(err, PR_EIO, "%s", v != NULL ? v : "?");
	} else if (rc != SQLITE_DONE) {
		r = store__fail(st, err, "check");
	}
	sqlite3_finalize(s);
	return r;
}

int
store_check(struct store *st, struct pr_err *err)
{
	static const char *const checks[] = {
		"SELECT 'integrity check failed: ' || integrity_check"
		" FROM pragma_integrity_check"
		" WHERE integrity_check <> 'ok' LIMIT 1",
		"SELECT printf('foreign key check failed: %s row %d refers to"
		" a missing %s row', \"table\", rowid, parent)"
		" FROM pragma_foreign_key_check LIMIT 1",
		"SELECT 'mailbox usage counters of ' || address || ' are wrong'"
		" FROM users u"
		" WHERE used <> (SELECT coalesce(sum(size), 0) FROM mailbox"
		" WHERE user_id = u.id) OR messages <> (SELECT count(*)"
		" FROM mailbox WHERE user_id = u.id) LIMIT 1",
		"SELECT 'message body ' || msgid || ' is not referenced'"
		" FROM bodies b"
		" WHERE NOT EXISTS (SELECT 1 FROM mailbox WHERE body_id = b.id)"
		" AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = b.id)"
		" LIMIT 1",
		"SELECT 'queue entry ' || id || ' has no recipients'"
		" FROM queue q"
		" WHERE NOT EXISTS (SELECT 1 FROM queue_rcpt"
		" WHERE queue_id = q.id) LIMIT 1",
	};
	int r = 0;

	/* One read transaction: every check sees the same snapshot. */
	if ((r = store__exec(st, STORE_Q_BEGIN_READ, "BEGIN", err)) < 0)
		return r;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if ((r = store_check_query(st, checks[i], err)) < 0)
			break;
	store__rollback(st);
	return r;
}

void
store_release_memory(struct store *st)
{
	/* Setting mmap_size to 0 unmaps the file (pages read through the
	 * map stay in the kernel's page cache, but no longer count for
	 * this process); setting it back maps it anew, with no page
	 * touched yet.  Neither happens while a statement holds a page of
	 * the map, and nothing here fails a later statement. */
	(void)sqlite3_exec(st->db, "PRAGMA mmap_size = 0;"
	    "PRAGMA mmap_size = " STORE_MMAP_SIZE ";", NULL, NULL, NULL);
	(void)sqlite3_db_release_memory(st->db);
}
