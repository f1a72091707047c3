/*
 * store_int.h - internals shared by the store/ source files.
 *
 * Not a public header: only the store's sources and its own unit tests
 * include it.  It is the only header besides store.h that sees SQLite.
 */
#ifndef POSTROOM_STORE_INT_H
#define POSTROOM_STORE_INT_H

#include <sqlite3.h>

#include "addr.h"
#include "store.h"

/*
 * Every statement the store runs more than once is prepared on first use
 * and kept for the life of the connection (STORE_Q_*).  The SQL text sits
 * next to the code that runs it.
 */
enum store_q {
	STORE_Q_BEGIN,
	STORE_Q_BEGIN_READ,
	STORE_Q_COMMIT,
	STORE_Q_ROLLBACK,
	STORE_Q_SAVEPOINT,
	STORE_Q_RELEASE,
	STORE_Q_ROLLBACK_TO,

	STORE_Q_DOMAIN_ID,
	STORE_Q_DOMAIN_ADD,
	STORE_Q_DOMAIN_DEL,
	STORE_Q_DOMAIN_INUSE,
	STORE_Q_DOMAIN_LIST,

	STORE_Q_USER_ID,
	STORE_Q_USER_ADD,
	STORE_Q_USER_DEL,
	STORE_Q_USER_PASSWD,
	STORE_Q_USER_QUOTA,
	STORE_Q_USER_GET,
	STORE_Q_USER_LIST,
	STORE_Q_USER_LIST_DOMAIN,
	STORE_Q_USER_AUTH,
	STORE_Q_USER_ADDRESS,
	STORE_Q_USER_USAGE,

	STORE_Q_ALIAS_TARGETS,
	STORE_Q_ALIAS_EXISTS,
	STORE_Q_ALIAS_ADD,
	STORE_Q_ALIAS_DEL,
	STORE_Q_ALIAS_LIST,
	STORE_Q_ALIAS_OF_TARGET,
	STORE_Q_ALIAS_DEL_TARGET,

	STORE_Q_BODY_ADD,
	STORE_Q_ENTRY_ADD,
	STORE_Q_QUEUE_ADD,
	STORE_Q_QRCPT_ADD,

	STORE_Q_LOCK_GET,
	STORE_Q_LOCK_SET,
	STORE_Q_LOCK_DEL,
	STORE_Q_LOCK_DEL_PID,

	STORE_Q_DROP_LIST,
	STORE_Q_DROP_DEL,
	STORE_Q_DROP_PLAN,
	STORE_Q_DROP_PLAN_GET,
	STORE_Q_DROP_PLAN_DEL,
	STORE_Q_DROP_PLAN_USERS,
	STORE_Q_DROP_PLAN_HAS,
	STORE_Q_ENTRY_BODY,
	STORE_Q_MAILBOX_LIST,

	STORE_Q_QUEUE_LIST,
	STORE_Q_QRCPT_LIST,
	STORE_Q_QUEUE_DEL,
	STORE_Q_QUEUE_DEL_MSG,
	STORE_Q_QUEUE_FLUSH,
	STORE_Q_QUEUE_DUE,
	STORE_Q_QUEUE_NEXT,
	STORE_Q_QUEUE_STATS,
	STORE_Q_QUEUE_BODY,
	STORE_Q_QRCPT_QUEUE,
	STORE_Q_QRCPT_DEL,
	STORE_Q_QUEUE_DEL_DONE,
	STORE_Q_QUEUE_RETRY,
	STORE_Q_QUEUE_EXISTS,
	STORE_Q_QRCPT_DEL_OF,
	STORE_Q_QUEUE_CLAIM,
	STORE_Q_QUEUE_UNCLAIM,
	STORE_Q_QUEUE_UNCLAIM_ALL,
	STORE_Q_QUEUE_DSN,
	STORE_Q_QRCPT_DUE,
	STORE_Q_QUEUE_WARNED,
	STORE_Q_QUEUE_FLUSH_DOM,
	STORE_Q_QUEUE_COUNT_DOM,
	STORE_Q_QUEUE_FLUSH_DOMS,
	STORE_Q_QUEUE_COUNT_DOMS,
	STORE_Q_QRCPT_DEFER,
	STORE_Q_QRCPT_STATE,
	STORE_Q_QUEUE_FLUSH_MARK,
	STORE_Q_QUEUE_FLUSHED,

	STORE_Q_THROTTLE_GET,
	STORE_Q_THROTTLE_FAIL,
	STORE_Q_THROTTLE_PRUNE,
	STORE_Q_THROTTLE_CLEAR,

	STORE_Q_LOGIN_APP,
	STORE_Q_LOGIN_DEVICE,
	STORE_Q_LOGIN_TAG_APP,
	STORE_Q_LOGIN_TAG_DEVICE,
	STORE_Q_APP_ADD,
	STORE_Q_APP_DEL,
	STORE_Q_APP_LIST,
	STORE_Q_DEVICE_ADD,
	STORE_Q_DEVICE_DEL,
	STORE_Q_DEVICE_LIST,
	STORE_Q_DEVICE_SENT,
	STORE_Q_DEVICE_COUNT,
	STORE_Q_DEVICE_PRUNE,
	STORE_Q_SUBMIT_ADD,
	STORE_Q_SUBMIT_PRUNE,
	STORE_Q_GREY_PRUNE,
	STORE_Q_GREY_PRUNE_DOM,
	STORE_Q_GREY_DOMAIN,
	STORE_Q_GREY_GET,
	STORE_Q_GREY_NEW,
	STORE_Q_GREY_PASS,
	STORE_Q_GREY_SEEN,
	STORE_Q_GREY_DOM_PASS,
	STORE_Q_GREY_EVICT,
	STORE_Q_GREY_EVICT_PASSED,
	STORE_Q_HELD_ADD,
	STORE_Q_HELD_RCPT_ADD,
	STORE_Q_HELD_LIST,
	STORE_Q_HELD_RCPT_LIST,
	STORE_Q_HELD_FIND,
	STORE_Q_HELD_DEL,
	STORE_Q_HELD_TO_MAILBOX,
	STORE_Q_HELD_TO_QUEUE,
	STORE_Q_HELD_TO_QRCPT,

	STORE_Q_TRACE_ADD,
	STORE_Q_TRACE_EXPIRE,
	STORE_Q_TRACE_DELIVERED,
	STORE_Q_TRACE_RCPT,
	STORE_Q_TRACE_POP3,
	STORE_Q_TRACE_BY_ID,
	STORE_Q_TRACE_BY_MID,
	STORE_Q_TRACE_BY_ADDR,
	STORE_Q_TRACE_EVENTS,

	STORE_Q_STS_GET,
	STORE_Q_STS_PUT,
	STORE_Q_TLS_SEEN_PRUNE,
	STORE_Q_TLS_SEEN_GET,
	STORE_Q_TLS_SEEN_PUT,
	STORE_Q_TLS_FORGET_STS,
	STORE_Q_TLS_FORGET_SEEN,
	STORE_Q_TLSRPT_ADD,
	STORE_Q_TLSRPT_LIST,
	STORE_Q_TLSRPT_PRUNE,
	STORE_Q_TLSRPT_SENT_GET,
	STORE_Q_TLSRPT_SENT_SET,
	STORE_Q_TLSRPT_SENT_PRUNE,
	STORE_Q_TLSRPT_UNSENT,
	STORE_Q_TLSRPT_DOMAIN_SENT,
	STORE_Q_TLSRPT_DOMAIN_PRUNE,
	STORE_Q_TLSRPT_KEY,

	STORE_Q__COUNT
};

/* The domain of a queued recipient's address, as the queue_rcpt_domain
 * index has it: the text after the first "@", in lower case.  Queries
 * that look recipients up by domain use this very expression, so that
 * SQLite can use the index (an address whose quoted local part holds an
 * "@" is not found by domain; it keeps its normal schedule). */
#define STORE_QRCPT_DOMAIN_EXPR \
	"lower(substr(address, instr(address, '@') + 1))"

/* Bodies move between a spool file and the database in pieces this big, so
 * a big message never sits whole in memory. */
#define STORE_CHUNK (64 * 1024)

struct store {
	sqlite3 *db;
	char *path;                          /* <data_dir>/mail.db */
	sqlite3_stmt *stmts[STORE_Q__COUNT];
	char addr[ADDR_MAX];                 /* store_user_get's u->address */
	uint8_t *chunk;                      /* STORE_CHUNK bytes, or NULL */
};

/*
 * An open body: which blob to read and how long it is.  The blob handle is
 * opened for each read and closed before returning, because an open handle
 * pins a read snapshot of the whole connection: the same connection could
 * not commit a write after another process committed, and the WAL could
 * not be checkpointed past it while a slow client downloads.
 */
struct store_body {
	struct store *st;
	int64_t rowid; /* bodies.id */
	int64_t size;
};

/* Opens the body of the (body_id, size) row of s, for a store__row()
 * result found: 1 (row in s, which is then reset) gives 1 and *b_r, 0 and
 * errors are returned as they are (*b_r NULL). */
int store__body_new(struct store *st, int found, sqlite3_stmt *s,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err);

/* The schema as forward migrations: store__migrations[i] takes a database
 * from user_version i to i + 1, so the newest version is
 * store__n_migrations. */
extern const char *const store__migrations[];
extern const int store__n_migrations;

/* Returns the cached statement id, preparing it from sql on first use,
 * reset and with its bindings cleared; NULL on error (err set). */
sqlite3_stmt *store__stmt(struct store *st, enum store_q id, const char *sql,
    struct pr_err *err);

/*
 * The statement idiom of the store, in one place: the cached statement id
 * (prepared from sql on first use), its parameters ?1, ?2, ... bound from
 * the arguments as fmt says, one letter each:
 *
 *	'i'  an int64_t
 *	't'  a NUL-terminated const char * (NULL binds SQL NULL)
 *	'T'  a const char * and an int length
 *	'B'  a const void * and an int length: a blob
 *	'z'  an int64_t: a zero-filled blob of that many octets
 *
 * Bound text is not copied: it must stay valid until the statement is
 * reset.  On failure err is set from what ("<what>: <sqlite message>").
 */

/* Binds and returns the statement, ready for a sqlite3_step() loop that
 * the caller ends with store__done(); NULL on error (err set). */
sqlite3_stmt *store__bind(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, const char *fmt, ...);

/* Binds, steps once and resets: for statements that return no row.
 * Returns 0 or an error; sqlite3_changes() and
 * sqlite3_last_insert_rowid() still tell about the step afterwards, and
 * after an error sqlite3_extended_errcode() says which. */
int store__run(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, const char *fmt, ...);

/* Binds and steps once.  Returns 1 with the row in *s_r (the caller reads
 * its columns, then calls sqlite3_reset(*s_r) so that no read snapshot
 * stays open), 0 if there is no row, or an error; reset in both cases. */
int store__row(struct store *st, enum store_q id, const char *sql,
    sqlite3_stmt **s_r, const char *what, struct pr_err *err,
    const char *fmt, ...);

/* Ends a step loop over s whose last sqlite3_step() returned rc: resets s
 * and returns 0 for SQLITE_DONE, PR_ENOMEM for SQLITE_NOMEM or
 * SQLITE_ROW (a loop that stops on a row stopped because the caller ran
 * out of memory), or the error with err set from what. */
int store__done(struct store *st, sqlite3_stmt *s, int rc, const char *what,
    struct pr_err *err);

struct store_strv;

/* Collects column col (text) of every row into sv: store__bind, a step
 * loop, store__done.  Returns 0 or an error. */
int store__texts(struct store *st, enum store_q id, const char *sql,
    const char *what, struct pr_err *err, struct store_strv *sv, int col,
    const char *fmt, ...);

/* Steps s (from store__bind) to its end: with vp not NULL each row
 * appends an element of size octets to the malloc'd array *vp (*n_r
 * elements so far, *cap_r allocated), filled in by row(s, element), and
 * with sv not NULL the text of column col to sv.  Ends with
 * store__done(what).  A NULL s (a failed store__bind) returns the error
 * left in err. */
int store__collect(struct store *st, sqlite3_stmt *s, void *vp, size_t *n_r,
    size_t *cap_r, size_t size, void (*row)(sqlite3_stmt *s, void *elem),
    struct store_strv *sv, int col, const char *what, struct pr_err *err);

/* For r, the result of a store__run() on the row named by the message
 * fmt: PR_ENOENT with that message if the statement changed no row, r
 * otherwise. */
int store__changed(struct store *st, int r, struct pr_err *err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Ends the write transaction of a call that got r so far: commits for
 * r >= 0 (and returns the commit's result), rolls back and returns r
 * otherwise. */
int store__end(struct store *st, int r, struct pr_err *err);

/*
 * Runs one(st, ctx, i, item_err) for each i in [0, n) inside one write
 * transaction, each call in a savepoint of its own: a call that fails
 * (returns < 0) takes back only its own rows, and the others commit
 * together with one fsync.  Keeping a call's status is the call's job.
 * Returns 0, or the error that left nothing committed (BEGIN, a
 * savepoint, a call after which SQLite gave up the whole transaction
 * (disk full, I/O error), COMMIT) with err set.
 */
int store__each(struct store *st, size_t n,
    int (*one)(struct store *st, void *ctx, size_t i, struct pr_err *err),
    void *ctx, struct pr_err *err);

/* Makes room for element n of the malloc'd array *vp (a pointer to the
 * array pointer) of *cap elements of size octets each: the first
 * allocation holds first elements, later ones double.  Returns 0 or
 * PR_ENOMEM (the array is then unchanged). */
int store__grow(void *vp, size_t *cap, size_t n, size_t size, size_t first);

/* The code a failed call left in err (PR_EIO if err is NULL). */
static inline int
store__errcode(const struct pr_err *err)
{
	return err != NULL && err->code < 0 ? err->code : PR_EIO;
}

/* store_deliver.c: deletes the rest of user_id's recorded QUIT
 * deletion (store_maildrop_end) in bounded transactions; 0 when none is
 * left, or an error (what is left stays recorded). */
int store__drop_finish(struct store *st, int64_t user_id,
    struct pr_err *err);

/* Maps a SQLite result code to a PR_E* code. */
int store__code(int rc);

/* Sets err from the connection's last error: "<what>: <sqlite message>".
 * Returns the PR_E* code. */
int store__fail(struct store *st, struct pr_err *err, const char *what);

/* Runs one of the cached no-row statements (BEGIN, COMMIT, ...). */
int store__exec(struct store *st, enum store_q id, const char *sql,
    struct pr_err *err);

/* BEGIN IMMEDIATE: a write transaction that waits (busy timeout) for the
 * write lock up front, so it never fails half-way on a lock upgrade. */
int store__begin(struct store *st, struct pr_err *err);
/* COMMIT; on failure the transaction is rolled back. */
int store__commit(struct store *st, struct pr_err *err);
/* ROLLBACK if a transaction is open; keeps err as it is. */
void store__rollback(struct store *st);

/* Copies address into out (ADDR_MAX bytes) in lower case.  Returns a
 * pointer to the domain part in out, or NULL (err set, PR_EINVAL) when
 * there is no "local@domain" shape. */
const char *store__lower_addr(const char *address, char *out,
    struct pr_err *err);

/* Looks up a hosted domain: 1 and *id_r, 0 if not hosted, <0 on error. */
int store__domain_id(struct store *st, const char *domain, int64_t *id_r,
    struct pr_err *err);
/* The same, for a domain that must be hosted: 0 and *id_r, PR_ENOENT
 * ("domain ... is not hosted here") or another error. */
int store__hosted(struct store *st, const char *domain, int64_t *id_r,
    struct pr_err *err);
/* Looks up a user by lower-case address: 1 and *id_r, 0, or <0. */
int store__user_id(struct store *st, const char *address, int64_t *id_r,
    struct pr_err *err);
/* 1 if an alias (lower-case, "@domain" for a catch-all) exists, 0, <0. */
int store__alias_exists(struct store *st, const char *alias,
    struct pr_err *err);

/* Takes user address (lower case; domain points into it) and its +tag
 * forms out of the aliases' targets, deleting aliases left empty, inside
 * the caller's transaction (store_alias.c).  alias_cb may be NULL. */
int store__alias_drop_target(struct store *st, const char *address,
    const char *domain, void (*alias_cb)(void *ctx, const char *alias,
    bool deleted), void *ctx, struct pr_err *err);

/* Delivers one message inside the caller's open transaction, as
 * store_deliver does for each of its messages (the caller holds the
 * savepoint).  Returns 0 or the message's failure, with m->err set. */
int store__deliver_one(struct store *st, struct store_msg *m, int64_t now);
/* store_queue.c: a "queued as" id (STORE_ID_LEN hex digits, any case)
 * into id (STORE_ID_LEN + 1) in lower case, or PR_EINVAL (err set). */
int store__msgid(const char *msgid, char *id, struct pr_err *err);
/* store_held.c: holds message m, its body body_id (of size octets)
 * stored, for its resolved recipients (store_msg.held). */
int store__held_add(struct store *st, struct store_msg *m, int64_t body_id,
    int64_t now, struct pr_err *err);

/* True when local recipient users[i] of m gets a mailbox entry: it is
 * not a repeat of an earlier one, and not skipped for its quota. */
static inline bool
store__msg_user_takes(const struct store_msg *m, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (m->users[i] == m->users[j])
			return false;
	return m->user_status == NULL || m->user_status[i] == 0;
}

/* Counts one message sent by device id at now, inside the caller's
 * transaction, and forgets its sends older than an hour. */
int store__device_count(struct store *st, int64_t id, int64_t now,
    struct pr_err *err);

/* Fills out with 2 * n lower-case hex characters of randomness + NUL. */
void store__random_hex(char *out, size_t n);

/* A list of strings collected from a query, so that callbacks run after
 * the statement is reset and may call into the store themselves, and so
 * that a recursive walk never reuses a statement it is still stepping. */
struct store_strv {
	char **v;
	size_t n, cap;
};

/* Appends a copy of s (NULL as "").  Returns 0 or PR_ENOMEM. */
int store__strv_push(struct store_strv *sv, const char *s);
/* True if sv holds a string equal to s. */
bool store__strv_has(const struct store_strv *sv, const char *s);
void store__strv_fini(struct store_strv *sv);

/* --- Trace (store_trace.c) --------------------------------------------- */

/* False when [server] trace_days is 0: nothing is written. */
bool store__trace_on(void);
/* Adds one event inside the caller's transaction; addr (NULL: none) is
 * stored in lower case, mid is the Message-ID (NULL: none). */
int store__trace_add(struct store *st, const char *msgid, int64_t at,
    const char *event, const char *addr, const char *mid, const char *info,
    struct pr_err *err);
/* Deletes at most a batch of events older than trace_days. */
int store__trace_expire(struct store *st, int64_t now, struct pr_err *err);
/* The events of a delivery of m (committed as size octets): its
 * received (or m->trace_event) event, one delivered per mailbox, one
 * queued per remote recipient.  Errors go to m->err. */
int store__trace_msg(struct store *st, const struct store_msg *m,
    int64_t now, int64_t size);
/* An event about queue recipient rcpt_id (before it leaves the queue). */
int store__trace_rcpt(struct store *st, const char *msgid, int64_t now,
    const char *event, int64_t rcpt_id, const char *info,
    struct pr_err *err);
/* An event about mailbox entry entry_id of user_id (before a deletion). */
int store__trace_pop3(struct store *st, int64_t user_id, int64_t entry_id,
    int64_t at, const char *event, const char *info, struct pr_err *err);

/* True when no statement of the connection is in progress, i.e. no read
 * snapshot is held between calls (used by the unit tests). */
bool store__idle(struct store *st);

#endif
