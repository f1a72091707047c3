/*
 * store_deliver.c - delivery (group commit), maildrops and body streaming.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- Delivery ---------------------------------------------------------- */

/*
 * Line ends as stored.  A message is stored with CRLF line ends and ends
 * with CRLF (RFC 5322 2.3: CR and LF appear only together), so that the
 * size POP3 announces is the octet count it sends (RFC 1939 11: sizes
 * count each line end as two octets, not counting the dot-stuffing):
 * a lone LF or lone CR becomes CRLF, and a non-empty message without a
 * final line end gets one.  smtpd only ever hands over CRLF text; the
 * conversion is for messages that come in through the store API.
 */
struct store_crlf {
	bool cr;        /* the previous octet was a CR, not yet written */
	bool eol;       /* the last octet written ended a line */
	int64_t n;      /* octets written (or counted) so far */
};

/* Converts len octets of in into out (NULL: only counts).  out must have
 * room for 2 * len + 2 octets.  Returns the octets written. */
static size_t
store_crlf_feed(struct store_crlf *c, const uint8_t *in, size_t len,
    uint8_t *out)
{
	size_t o = 0;

#define STORE_CRLF_PUT(ch) do {						\
	if (out != NULL)						\
		out[o] = (ch);						\
	o++;								\
} while (0)
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = in[i];

		if (c->cr && ch != '\n') {
			/* A lone CR ends a line too. */
			STORE_CRLF_PUT('\r');
			STORE_CRLF_PUT('\n');
			c->cr = false;
			c->eol = true;
		}
		if (ch == '\r') {
			c->cr = true;
			continue;
		}
		if (ch == '\n') {
			STORE_CRLF_PUT('\r');
			STORE_CRLF_PUT('\n');
			c->cr = false;
			c->eol = true;
			continue;
		}
		STORE_CRLF_PUT(ch);
		c->eol = false;
	}
	c->n += (int64_t)o;
	return o;
}

/* Ends the conversion: the pending CR, or the missing final CRLF of a
 * non-empty message.  out has room for 2 octets (NULL: only counts). */
static size_t
store_crlf_end(struct store_crlf *c, uint8_t *out)
{
	size_t o = 0;

	if (c->cr || (c->n > 0 && !c->eol)) {
		STORE_CRLF_PUT('\r');
		STORE_CRLF_PUT('\n');
	}
#undef STORE_CRLF_PUT
	c->cr = false;
	c->eol = true;
	c->n += (int64_t)o;
	return o;
}

/* Reads up to n octets of the spool file at offset off into buf. */
static ssize_t
store_spool_read(int fd, uint8_t *buf, size_t n, off_t off,
    size_t len, struct pr_err *err)
{
	ssize_t got;

	while ((got = pread(fd, buf, n, off)) < 0 && errno == EINTR)
		;
	if (got < 0)
		return pr_err_set(err, PR_EIO,
		    "cannot read the spooled message: %s", strerror(errno));
	if (got == 0)
		return pr_err_set(err, PR_EIO,
		    "the spooled message is shorter than %zu octets", len);
	return got;
}

/* The stored size of head + body after store_crlf conversion. */
static int
store_crlf_size(struct store *st, const struct store_msg *m, int64_t *size_r,
    struct pr_err *err)
{
	struct store_crlf c = { 0 };
	size_t done = 0, n;
	ssize_t got;

	store_crlf_feed(&c, m->head, m->head_len, NULL);
	if (m->body_fd < 0) {
		store_crlf_feed(&c, m->body, m->body_len, NULL);
	} else {
		if (st->chunk == NULL &&
		    (st->chunk = malloc(STORE_CHUNK)) == NULL)
			return pr_err_set(err, PR_ENOMEM, "out of memory");
		while (done < m->body_len) {
			n = m->body_len - done < STORE_CHUNK ?
			    m->body_len - done : STORE_CHUNK;
			if ((got = store_spool_read(m->body_fd, st->chunk, n,
			    (off_t)done, m->body_len, err)) < 0)
				return (int)got;
			store_crlf_feed(&c, st->chunk, (size_t)got, NULL);
			done += (size_t)got;
		}
	}
	store_crlf_end(&c, NULL);
	*size_r = c.n;
	return 0;
}

/* Writes len octets from mem, or from fd at offset 0 when fd >= 0, into
 * blob at *off, STORE_CHUNK at a time; with c, converted by store_crlf
 * (conv holds 2 * STORE_CHUNK + 2 octets).  Advances *off. */
static int
store_blob_fill(struct store *st, sqlite3_blob *blob, int *off,
    const uint8_t *mem, int fd, size_t len, struct store_crlf *c,
    uint8_t *conv, struct pr_err *err)
{
	const uint8_t *src;
	size_t done = 0, n, w;
	ssize_t got;
	int rc;

	if (fd >= 0 && st->chunk == NULL &&
	    (st->chunk = malloc(STORE_CHUNK)) == NULL)
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	while (done < len) {
		n = len - done < STORE_CHUNK ? len - done : STORE_CHUNK;
		if (fd >= 0) {
			if ((got = store_spool_read(fd, st->chunk, n,
			    (off_t)done, len, err)) < 0)
				return (int)got;
			n = (size_t)got;
			src = st->chunk;
		} else {
			src = mem + done;
		}
		w = n;
		if (c != NULL) {
			w = store_crlf_feed(c, src, n, conv);
			src = conv;
		}
		/* The size was counted before: a file that changed under
		 * us must not write past the blob. */
		if (w > (size_t)(sqlite3_blob_bytes(blob) - *off))
			return pr_err_set(err, PR_EIO,
			    "the spooled message changed while stored");
		rc = w > 0 ? sqlite3_blob_write(blob, src, (int)w, *off) :
		    SQLITE_OK;
		if (rc != SQLITE_OK)
			return store__fail(st, err, "cannot store message");
		*off += (int)w;
		done += n;
	}
	return 0;
}

int
store_user_address(struct store *st, int64_t user_id, char *out,
    size_t outsz, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	if ((r = store__row(st, STORE_Q_USER_ADDRESS,
	    "SELECT address FROM users WHERE id = ?1", &s,
	    "cannot look up a user", err, "i", user_id)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user id %lld", (long long)user_id);
	snprintf(out, outsz, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return 0;
}

/* Checks a user's quota for a message of size octets. */
static int
store_deliver_quota(struct store *st, int64_t user_id, int64_t size,
    struct pr_err *err)
{
	char addr[ADDR_MAX];
	int64_t used, quota;
	int r;

	if ((r = store_mailbox_usage(st, user_id, &used, NULL, &quota,
	    err)) < 0)
		return r;
	if (quota == 0 || (size <= quota && used + size <= quota))
		return 0;
	/* The log and the bounce say whose mailbox it is. */
	if (store_user_address(st, user_id, addr, sizeof(addr), NULL) < 0)
		snprintf(addr, sizeof(addr), "user %lld", (long long)user_id);
	/* RFC 3463: 5.2.2 for a message the mailbox can never take, 4.2.2
	 * for one that fits once the user makes room. */
	if (size > quota)
		return pr_err_set(err, PR_ETOOBIG,
		    "message of %lld octets exceeds the mailbox quota of %s "
		    "(%lld octets)", (long long)size, addr, (long long)quota);
	return pr_err_set(err, PR_EQUOTA,
	    "mailbox of %s is full (%lld of %lld octets used)", addr,
	    (long long)used, (long long)quota);
}

/* Inserts the body row and writes head + body into it, size octets
 * after conversion (store_crlf), which raw_size octets need when they
 * differ. */
static int
store_deliver_body(struct store *st, struct store_msg *m, int64_t size,
    int64_t raw_size, int64_t now, int64_t *body_id_r, struct pr_err *err)
{
	struct store_crlf c = { 0 }, *cp = NULL;
	sqlite3_blob *blob = NULL;
	uint8_t *conv = NULL;
	int r, off = 0;

	/* Space first, content after through the incremental blob API. */
	if ((r = store__run(st, STORE_Q_BODY_ADD,
	    "INSERT INTO bodies (msgid, sender, size, created, data)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)", "cannot store message", err,
	    "ttiiz", m->id, m->sender != NULL ? m->sender : "", size, now,
	    size)) < 0)
		return r;
	*body_id_r = sqlite3_last_insert_rowid(st->db);
	if (size == 0)
		return 0;

	/* Conversion only adds octets: the same size means none needed. */
	if (size != raw_size) {
		if ((conv = malloc(2 * STORE_CHUNK + 2)) == NULL)
			return pr_err_set(err, PR_ENOMEM, "out of memory");
		cp = &c;
	}
	if (sqlite3_blob_open(st->db, "main", "bodies", "data", *body_id_r, 1,
	    &blob) != SQLITE_OK) {
		r = store__fail(st, err, "cannot store message");
		sqlite3_blob_close(blob);
		free(conv);
		return r;
	}
	r = store_blob_fill(st, blob, &off, m->head, -1, m->head_len, cp,
	    conv, err);
	if (r == 0)
		r = store_blob_fill(st, blob, &off, m->body, m->body_fd,
		    m->body_len, cp, conv, err);
	if (r == 0 && cp != NULL) {
		size_t w = store_crlf_end(cp, conv);

		if (w > (size_t)(sqlite3_blob_bytes(blob) - off))
			r = pr_err_set(err, PR_EIO,
			    "the spooled message changed while stored");
		else if (w > 0 && sqlite3_blob_write(blob, conv, (int)w,
		    off) != SQLITE_OK)
			r = store__fail(st, err, "cannot store message");
		else
			off += (int)w;
	}
	if (r == 0 && off != sqlite3_blob_bytes(blob))
		r = pr_err_set(err, PR_EIO,
		    "the spooled message changed while stored");
	if (sqlite3_blob_close(blob) != SQLITE_OK && r == 0)
		r = store__fail(st, err, "cannot store message");
	free(conv);
	return r;
}

static int
store_deliver_entry(struct store *st, int64_t user_id, int64_t body_id,
    int64_t size, int64_t now, struct pr_err *err)
{
	char uidl[33];
	struct timespec ts;
	uint64_t ms;

	/* RFC 1939 7: a UIDL is unique in the maildrop and persistent.
	 * 32 hex digits: the arrival in milliseconds (48 bits) and 80
	 * random bits, unique everywhere with no counter to keep.  The time
	 * first puts new entries next to each other in the uidl index, so a
	 * delivery dirties the index page the last one did, not a random
	 * page of an index of millions (bench/results, "big store"). */
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	snprintf(uidl, sizeof(uidl), "%012" PRIx64,
	    ms & UINT64_C(0xffffffffffff));
	store__random_hex(uidl + 12, 10);
	return store__run(st, STORE_Q_ENTRY_ADD,
	    "INSERT INTO mailbox (user_id, body_id, size, uidl, received)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)", "cannot store message", err,
	    "iiiti", user_id, body_id, size, uidl, now);
}

static int
store_deliver_queue(struct store *st, struct store_msg *m, int64_t body_id,
    int64_t now, struct pr_err *err)
{
	int64_t qid;
	int r;

	if ((r = store__run(st, STORE_Q_QUEUE_ADD,
	    "INSERT INTO queue (msgid, body_id, sender, created, next_attempt,"
	    " dsn_ret, dsn_envid) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
	    "cannot queue message", err, "titiit", m->id, body_id,
	    m->sender != NULL ? m->sender : "", now, (int64_t)m->dsn_ret,
	    m->dsn_envid != NULL ? m->dsn_envid : "")) < 0)
		return r;
	qid = sqlite3_last_insert_rowid(st->db);

	for (size_t i = 0; i < m->n_remote; i++) {
		bool dup = false;

		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(m->remote[i], m->remote[j]) == 0;
		if (dup)
			continue;
		if ((r = store__run(st, STORE_Q_QRCPT_ADD,
		    "INSERT INTO queue_rcpt (queue_id, address, notify, orcpt)"
		    " VALUES (?1, ?2, ?3, ?4)", "cannot queue message", err,
		    "itit", qid, m->remote[i], (int64_t)(m->remote_notify ?
		    m->remote_notify[i] : 0), m->remote_orcpt != NULL &&
		    m->remote_orcpt[i] != NULL ? m->remote_orcpt[i] : "")) < 0)
			return r;
	}
	return 0;
}

/* The quota of every local recipient: all or nothing, or per recipient
 * with m->user_status (see store_deliver). */
static int
store_deliver_quotas(struct store *st, struct store_msg *m, int64_t size)
{
	struct pr_err first;
	size_t taken = 0;
	bool quota = false;
	int r;

	pr_err_clear(&first);
	for (size_t i = 0; i < m->n_users; i++) {
		if (m->user_status != NULL)
			m->user_status[i] = 0;
		r = store_deliver_quota(st, m->users[i], size, &m->err);
		if (r == 0) {
			taken++;
			continue;
		}
		if (m->user_status == NULL ||
		    (r != PR_EQUOTA && r != PR_ETOOBIG))
			return r;
		m->user_status[i] = r;
		/* A temporary refusal wins: the client may try again. */
		if (first.code == 0 || (r == PR_EQUOTA && !quota))
			first = m->err;
		quota = quota || r == PR_EQUOTA;
	}
	if (taken == 0 && m->n_remote == 0 && first.code != 0) {
		m->err = first;
		return first.code;
	}
	pr_err_clear(&m->err);
	return 0;
}

/* One message, inside the open transaction. */
/* A caller-chosen id (already written into a Received field) is kept
 * when it has the store's form: STORE_ID_LEN lower-case hex digits. */
static bool
store_deliver_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < STORE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return id[STORE_ID_LEN] == '\0';
}

/* A local submission is delivered once whatever happens between the
 * commit and the unlink of its spool file (docs/ARCHITECTURE.md 5.4). */
static int
store_deliver_key(struct store *st, struct store_msg *m, int64_t now)
{
	int r;

	if ((r = store__run(st, STORE_Q_SUBMIT_PRUNE,
	    "DELETE FROM submissions WHERE created < ?1",
	    "cannot prune submissions", &m->err, "i",
	    now - 7 * 24 * 3600)) < 0)
		return r;
	if ((r = store__run(st, STORE_Q_SUBMIT_ADD,
	    "INSERT OR IGNORE INTO submissions (name, msgid, created)"
	    " VALUES (?1, ?2, ?3)", "cannot record the submission", &m->err,
	    "tti", m->key, m->id, now)) < 0)
		return r;
	if (sqlite3_changes(st->db) == 0)
		return pr_err_set(&m->err, PR_EEXIST,
		    "submission %s was delivered before", m->key);
	return 0;
}

int
store__deliver_one(struct store *st, struct store_msg *m, int64_t now)
{
	struct pr_err *err = &m->err;
	int64_t size = 0, raw_size, body_id = 0;
	int r;

	if (m->n_users == 0 && m->n_remote == 0)
		return pr_err_set(err, PR_EINVAL, "message has no recipients");
	if ((m->n_users > 0 && m->users == NULL) ||
	    (m->n_remote > 0 && m->remote == NULL) ||
	    (m->head_len > 0 && m->head == NULL) ||
	    (m->body_len > 0 && m->body == NULL && m->body_fd < 0))
		return pr_err_set(err, PR_EINVAL, "malformed message");
	/* RFC 5321 4.5.3.1.3: a path is at most 256 octets. */
	if (m->sender != NULL && strlen(m->sender) >= ADDR_MAX)
		return pr_err_set(err, PR_EINVAL, "sender address too long");
	for (size_t i = 0; i < m->n_remote; i++)
		if (m->remote[i] == NULL || strlen(m->remote[i]) >= ADDR_MAX ||
		    strchr(m->remote[i], '@') == NULL)
			return pr_err_set(err, PR_EINVAL,
			    "invalid remote recipient");
	/* The blob API addresses octets with an int. */
	if (m->head_len > (size_t)INT_MAX ||
	    m->body_len > (size_t)INT_MAX - m->head_len ||
	    (int64_t)(m->head_len + m->body_len) >
	    sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1))
		return pr_err_set(err, PR_ETOOBIG,
		    "message too big for the store");
	raw_size = (int64_t)(m->head_len + m->body_len);
	if ((r = store_crlf_size(st, m, &size, err)) < 0)
		return r;
	if (size > sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1) ||
	    size > INT_MAX)
		return pr_err_set(err, PR_ETOOBIG,
		    "message too big for the store");

	if (m->held == NULL && (r = store_deliver_quotas(st, m, size)) < 0)
		return r;

	if (!store_deliver_id_valid(m->id))
		store__random_hex(m->id, STORE_ID_LEN / 2);
	if (m->key != NULL && (r = store_deliver_key(st, m, now)) < 0)
		return r;
	if ((r = store_deliver_body(st, m, size, raw_size, now, &body_id,
	    err)) < 0)
		return r;
	if (m->held != NULL)
		return store__held_add(st, m, body_id, now, err);
	for (size_t i = 0; i < m->n_users; i++) {
		if (!store__msg_user_takes(m, i))
			continue;
		if ((r = store_deliver_entry(st, m->users[i], body_id, size,
		    now, err)) < 0)
			return r;
	}
	if (m->n_remote > 0 &&
	    (r = store_deliver_queue(st, m, body_id, now, err)) < 0)
		return r;
	/* A device's message counts towards its hourly rate in the same
	 * transaction that accepts it, so a crash neither loses nor
	 * doubles a count (store_logins.c). */
	if (m->device_id > 0 &&
	    (r = store__device_count(st, m->device_id, now, err)) < 0)
		return r;
	/* The trace commits with what it tells (store_trace.c). */
	return store__trace_msg(st, m, now, size);
}

struct store_deliver_batch {
	struct store_msg *const *msgs;
	int64_t now;
};

static int
store_deliver_item(struct store *st, void *ctx, size_t i, struct pr_err *err)
{
	const struct store_deliver_batch *b = ctx;
	struct store_msg *m = b->msgs[i];

	/* Old trace rows go with the first message of a group, a bounded
	 * batch on a commit that is made anyway. */
	if (i == 0 && store__trace_expire(st, b->now, err) < 0)
		return m->status = store__errcode(err);
	if ((m->status = store__deliver_one(st, m, b->now)) < 0) {
		m->id[0] = '\0';
		*err = m->err;
	}
	return m->status;
}

int
store_deliver(struct store *st, struct store_msg *const *msgs, size_t n)
{
	struct store_deliver_batch b = { msgs, (int64_t)time(NULL) };
	struct pr_err err;
	int r;

	pr_err_clear(&err);
	for (size_t i = 0; i < n; i++) {
		msgs[i]->status = 0;
		pr_err_clear(&msgs[i]->err);
	}
	if (n == 0)
		return 0;
	/* Each message in its own savepoint: a message that fails (over
	 * quota, unreadable spool file) takes back only its own rows; the
	 * others commit with the group. */
	if ((r = store__each(st, n, store_deliver_item, &b, &err)) == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		msgs[i]->status = r;
		msgs[i]->err = err;
		msgs[i]->id[0] = '\0';
	}
	return r;
}

/* --- Maildrop locks ---------------------------------------------------- */

/* The start time of process pid (clock ticks after boot, field 22 of
 * /proc/<pid>/stat), 0 when unknown, -1 for a zombie.  With the pid it
 * names one process for good: pids are reused, start times are not. */
static int64_t
store_proc_start(pid_t pid)
{
	char path[64], stat[1024];
	const char *p, *q;
	long long start = 0;
	ssize_t len;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	len = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	stat[len] = '\0';
	/* The command name (field 2) is in parentheses and may hold spaces
	 * and parentheses itself: count fields after the last ')'. */
	if ((p = strrchr(stat, ')')) == NULL)
		return 0;
	q = p + 1;
	for (field = 2; *p != '\0' && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || sscanf(p, "%lld", &start) != 1)
		return 0;
	/* A zombie (killed, not yet reaped) or dead process holds nothing:
	 * field 3, the state, follows ") ". */
	if (q[0] == ' ' && (q[1] == 'Z' || q[1] == 'X'))
		return -1;
	return start;
}

static void
store_drop_user_row(sqlite3_stmt *s, void *elem)
{
	*(int64_t *)elem = sqlite3_column_int64(s, 0);
}

/* True when the lock holder (pid, pid_start) still runs. */
static bool
store_lock_alive(pid_t pid, int64_t pid_start)
{
	int64_t now_start;

	if (pid <= 0)
		return false;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	/* The pid exists (kill may also fail with EPERM for another user's
	 * process).  If it started at another time, it is someone else. */
	now_start = store_proc_start(pid);
	if (now_start < 0)
		return false;
	if (pid_start != 0 && now_start != 0 && now_start != pid_start)
		return false;
	return true;
}

int
store_maildrop_lock(struct store *st, int64_t user_id, struct pr_err *err)
{
	pid_t me = getpid();
	sqlite3_stmt *s;
	int64_t pid = 0, pid_start = 0;
	int r, held;

	if ((r = store__begin(st, err)) < 0)
		return r;
	if ((held = store__row(st, STORE_Q_LOCK_GET,
	    "SELECT pid, pid_start FROM maildrop_locks WHERE user_id = ?1",
	    &s, "cannot lock maildrop", err, "i", user_id)) < 0)
		return store__end(st, held, err);
	if (held) {
		pid = sqlite3_column_int64(s, 0);
		pid_start = sqlite3_column_int64(s, 1);
		sqlite3_reset(s);
	}
	/* RFC 1939 8: one session per maildrop, our own included. */
	if (held && (pid == me || store_lock_alive((pid_t)pid, pid_start)))
		return store__end(st, pr_err_set(err, PR_EBUSY,
		    "maildrop is locked by process %lld", (long long)pid), err);
	/* No lock, or a dead process's: take it. */
	if ((r = store__run(st, STORE_Q_LOCK_SET,
	    "INSERT OR REPLACE INTO maildrop_locks"
	    " (user_id, pid, pid_start, since) VALUES (?1, ?2, ?3, ?4)",
	    "cannot lock maildrop", err, "iiii", user_id, (int64_t)me,
	    store_proc_start(me), (int64_t)time(NULL))) < 0 &&
	    sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
		r = pr_err_set(err, PR_ENOENT, "no such user id %lld",
		    (long long)user_id);
	if ((r = store__end(st, r, err)) < 0)
		return r;
	/* A QUIT whose session died after it committed its deletions
	 * (store_maildrop_end) is finished before anything is listed. */
	if ((r = store__drop_finish(st, user_id, err)) < 0)
		store_maildrop_unlock(st, user_id, NULL);
	return r;
}

int
store_maildrop_unlock(struct store *st, int64_t user_id, struct pr_err *err)
{
	/* Only our own lock: after a takeover the row is someone else's. */
	return store__run(st, STORE_Q_LOCK_DEL,
	    "DELETE FROM maildrop_locks WHERE user_id = ?1 AND pid = ?2",
	    "cannot unlock maildrop", err, "ii", user_id, (int64_t)getpid());
}

int
store_maildrop_unlock_all(struct store *st, struct pr_err *err)
{
	int64_t *users = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int r;

	if ((r = store__run(st, STORE_Q_LOCK_DEL_PID,
	    "DELETE FROM maildrop_locks WHERE pid = ?1",
	    "cannot unlock maildrops", err, "i", (int64_t)getpid())) < 0)
		return r;
	/* Deletions that sessions of a process that died committed. */
	s = store__bind(st, STORE_Q_DROP_PLAN_USERS,
	    "SELECT DISTINCT user_id FROM maildrop_deletions",
	    "cannot delete messages",
	    err, "");
	if ((r = store__collect(st, s, &users, &n, &cap, sizeof(*users),
	    store_drop_user_row, NULL, 0, "cannot delete messages", err)) < 0) {
		free(users);
		return r;
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = store__drop_finish(st, users[i], err);
	free(users);
	return r;
}

/* --- Maildrop contents ------------------------------------------------- */

static void
store_entry_row(sqlite3_stmt *s, void *elem)
{
	struct store_entry *e = elem;
	const char *uidl = (const char *)sqlite3_column_text(s, 3);

	e->id = sqlite3_column_int64(s, 0);
	e->size = sqlite3_column_int64(s, 1);
	e->received = sqlite3_column_int64(s, 2);
	snprintf(e->uidl, sizeof(e->uidl), "%s", uidl != NULL ? uidl : "");
}

int
store_maildrop_list(struct store *st, int64_t user_id,
    struct store_entry **entries_r, size_t *n_r, struct pr_err *err)
{
	struct store_entry *v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int r;

	*entries_r = NULL;
	*n_r = 0;
	s = store__bind(st, STORE_Q_DROP_LIST,
	    "SELECT id, size, received, uidl FROM mailbox"
	    " WHERE user_id = ?1 ORDER BY id", "cannot list maildrop", err,
	    "i", user_id);
	if ((r = store__collect(st, s, &v, &n, &cap, sizeof(*v),
	    store_entry_row, NULL, 0, "cannot list maildrop", err)) < 0) {
		free(v);
		return r;
	}
	*entries_r = v;
	*n_r = n;
	return 0;
}

int
store_maildrop_scan(struct store *st, int64_t user_id,
    int (*cb)(void *ctx, const struct store_entry *e), void *ctx,
    size_t *hint_r, struct pr_err *err)
{
	struct store_entry e;
	sqlite3_stmt *s;
	int64_t used, count = 0, quota;
	int r = 0, rc;

	if (hint_r != NULL) {
		*hint_r = 0;
		if (store_mailbox_usage(st, user_id, &used, &count, &quota,
		    NULL) == 0 && count > 0)
			*hint_r = (size_t)count;
	}
	if ((s = store__bind(st, STORE_Q_DROP_LIST,
	    "SELECT id, size, received, uidl FROM mailbox"
	    " WHERE user_id = ?1 ORDER BY id", "cannot list maildrop", err,
	    "i", user_id)) == NULL)
		return store__errcode(err);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_entry_row(s, &e);
		if ((r = cb(ctx, &e)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store__fail(st, err, "cannot list maildrop");
	sqlite3_reset(s);
	return r;
}

int
store_maildrop_delete(struct store *st, int64_t user_id,
    const int64_t *ids, size_t n, struct pr_err *err)
{
	struct store_maildrop_end e = { .dele = ids, .n_dele = n };

	return store_maildrop_end(st, user_id, &e, err);
}

/*
 * A QUIT that deletes more than STORE_DROP_CHUNK messages goes in
 * bounded transactions (docs/ARCHITECTURE.md, "Big maildrops"): SQLite
 * has one writer, and 50,000 deletions in one transaction would hold
 * every delivery to every other mailbox for seconds.  The deletion is
 * recorded in rows of STORE_DROP_CHUNK ids; a transaction deletes rows
 * of it for about STORE_DROP_SLICE_MS, then the writer pauses for
 * STORE_DROP_PAUSE_US, longer than a waiting writer's poll
 * (STORE_BUSY_POLL_US), so that a delivery gets in.  Every commit costs
 * a WAL sync, so slices much shorter make the QUIT itself slow.
 */
#define STORE_DROP_CHUNK 512
#define STORE_DROP_SLICE_MS 100
#define STORE_DROP_PAUSE_US 3000

static int64_t
store_drop_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One recorded chunk of user_id's deletion, in the open transaction: 1
 * when more rows are left after it, 0 when it was the last (or there is
 * none), or a negative error. */
static int
store_drop_chunk(struct store *st, int64_t user_id, int64_t now,
    struct pr_err *err)
{
	int64_t ids[STORE_DROP_CHUNK], row;
	char info[512];
	const unsigned char *blob;
	sqlite3_stmt *s;
	size_t k, n;
	int r, found;

	if ((found = store__row(st, STORE_Q_DROP_PLAN_GET,
	    "SELECT id, ids, info, (SELECT count(*) FROM maildrop_deletions"
	    " WHERE user_id = ?1) FROM maildrop_deletions WHERE user_id = ?1"
	    " ORDER BY id LIMIT 1", &s, "cannot delete messages", err, "i",
	    user_id)) <= 0)
		return found;
	row = sqlite3_column_int64(s, 0);
	blob = sqlite3_column_blob(s, 1);
	n = (size_t)sqlite3_column_bytes(s, 1) / 8;
	if (n > STORE_DROP_CHUNK)
		n = STORE_DROP_CHUNK;
	for (k = 0; k < n; k++) {
		uint64_t v = 0;

		for (int j = 7; j >= 0; j--)
			v = v << 8 | blob[8 * k + (size_t)j];
		ids[k] = (int64_t)v;
	}
	snprintf(info, sizeof(info), "%s",
	    (const char *)sqlite3_column_text(s, 2));
	found = sqlite3_column_int(s, 3);
	sqlite3_reset(s);
	r = 0;
	/* The user_id term keeps a session to its own maildrop; an id
	 * already gone (user deleted meanwhile) is no error. */
	for (size_t i = 0; i < n && r == 0; i++) {
		if ((r = store__trace_pop3(st, user_id, ids[i], now, "deleted",
		    info[0] != '\0' ? info : NULL, err)) < 0)
			break;
		r = store__run(st, STORE_Q_DROP_DEL,
		    "DELETE FROM mailbox WHERE id = ?1 AND user_id = ?2",
		    "cannot delete messages", err, "ii", ids[i], user_id);
	}
	if (r == 0)
		r = store__run(st, STORE_Q_DROP_PLAN_DEL,
		    "DELETE FROM maildrop_deletions WHERE id = ?1",
		    "cannot delete messages", err, "i", row);
	if (r < 0)
		return r;
	return found > 1 ? 1 : 0;
}

/* One slice of user_id's recorded deletion (store.h): the record stays
 * on an error, so nothing is lost or done twice. */
int
store_maildrop_drop_step(struct store *st, int64_t user_id,
    struct pr_err *err)
{
	int64_t now = (int64_t)time(NULL), start = store_drop_ms();
	sqlite3_stmt *s;
	int r, more;

	/* Almost always none at a login, and none once a session's own
	 * record was finished by someone else: a read, not a write
	 * transaction. */
	if ((r = store__row(st, STORE_Q_DROP_PLAN_HAS,
	    "SELECT 1 FROM maildrop_deletions WHERE user_id = ?1", &s,
	    "cannot delete messages", err, "i", user_id)) <= 0)
		return r;
	sqlite3_reset(s);
	if ((r = store__begin(st, err)) < 0)
		return r;
	while ((more = store_drop_chunk(st, user_id, now, err)) > 0 &&
	    store_drop_ms() - start < STORE_DROP_SLICE_MS)
		;
	if (more < 0)
		return store__end(st, more, err);
	if (more == 0 && (r = store__trace_expire(st, now, err)) < 0)
		return store__end(st, r, err);
	if ((r = store__end(st, 0, err)) < 0)
		return r;
	/* A delivery waiting for the write lock gets in before the next
	 * slice. */
	if (more > 0)
		usleep(STORE_DROP_PAUSE_US);
	return more;
}

int
store__drop_finish(struct store *st, int64_t user_id, struct pr_err *err)
{
	int r;

	while ((r = store_maildrop_drop_step(st, user_id, err)) > 0)
		;
	return r;
}

/* Traces the session's retrievals, in the open transaction. */
static int
store_drop_retrieved(struct store *st, int64_t user_id,
    const struct store_maildrop_end *e, int64_t now, struct pr_err *err)
{
	int r = 0;

	for (size_t i = 0; i < e->n_retr && r == 0; i++)
		r = store__trace_pop3(st, user_id, e->retr[i],
		    e->retr_at != NULL ? e->retr_at[i] : now, "retrieved",
		    e->info, err);
	return r;
}

/* Records the deletion of e->dele[] (and traces the retrievals) in one
 * commit, a row per chunk: from then on the QUIT is as good as done. */
static int
store_drop_plan(struct store *st, int64_t user_id,
    const struct store_maildrop_end *e, int64_t now, struct pr_err *err)
{
	unsigned char blob[STORE_DROP_CHUNK * 8];
	int r;

	if ((r = store__begin(st, err)) < 0)
		return r;
	r = store_drop_retrieved(st, user_id, e, now, err);
	/* No earlier record of this user exists: taking the lock finished
	 * it (store_maildrop_lock). */
	for (size_t i = 0; i < e->n_dele && r == 0; i += STORE_DROP_CHUNK) {
		size_t n = e->n_dele - i < STORE_DROP_CHUNK ?
		    e->n_dele - i : STORE_DROP_CHUNK;

		for (size_t k = 0; k < n; k++) {
			uint64_t v = (uint64_t)e->dele[i + k];

			for (int j = 0; j < 8; j++, v >>= 8)
				blob[8 * k + (size_t)j] =
				    (unsigned char)(v & 0xff);
		}
		r = store__run(st, STORE_Q_DROP_PLAN,
		    "INSERT INTO maildrop_deletions (user_id, ids, info)"
		    " VALUES (?1, ?2, ?3)", "cannot delete messages", err,
		    "iBt", user_id, (const char *)blob, (int)(8 * n),
		    e->info != NULL ? e->info : "");
	}
	return store__end(st, r, err);
}

int
store_maildrop_end(struct store *st, int64_t user_id,
    const struct store_maildrop_end *e, struct pr_err *err)
{
	int64_t now = (int64_t)time(NULL);
	int r;

	if (e->n_dele == 0 && !e->unlock &&
	    (e->n_retr == 0 || !store__trace_on()))
		return 0;
	/* RFC 1939 6 asks that the deletions be all or nothing: a big one
	 * is all once its record committed.  Whoever takes the maildrop
	 * lock next, after the session released it or after a crash,
	 * finishes the record first (store_maildrop_lock), so no session
	 * ever sees a part of it. */
	if (e->n_dele > STORE_DROP_CHUNK) {
		if ((r = store_drop_plan(st, user_id, e, now, err)) < 0)
			return r;
		if (!e->record_only &&
		    (r = store__drop_finish(st, user_id, err)) < 0)
			return r;
		if (e->unlock && (r = store_maildrop_unlock(st, user_id,
		    err)) < 0)
			return r;
		return e->record_only ? 1 : 0;
	}
	if ((r = store__begin(st, err)) < 0)
		return r;
	r = store_drop_retrieved(st, user_id, e, now, err);
	/* The user_id term keeps a session to its own maildrop; an id
	 * already gone (user deleted meanwhile) is no error. */
	for (size_t i = 0; i < e->n_dele && r == 0; i++) {
		if ((r = store__trace_pop3(st, user_id, e->dele[i], now,
		    "deleted", e->info, err)) < 0)
			break;
		r = store__run(st, STORE_Q_DROP_DEL,
		    "DELETE FROM mailbox WHERE id = ?1 AND user_id = ?2",
		    "cannot delete messages", err, "ii", e->dele[i], user_id);
	}
	if (r == 0 && e->n_dele > 0)
		r = store__trace_expire(st, now, err);
	if (r == 0 && e->unlock)
		r = store__run(st, STORE_Q_LOCK_DEL,
		    "DELETE FROM maildrop_locks WHERE user_id = ?1 AND pid = ?2",
		    "cannot unlock maildrop", err, "ii", user_id,
		    (int64_t)getpid());
	return store__end(st, r, err);
}

/* --- Body streaming ---------------------------------------------------- */

int
store__body_new(struct store *st, int found, sqlite3_stmt *s,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err)
{
	struct store_body *b = NULL;

	*b_r = NULL;
	if (size_r != NULL)
		*size_r = 0;
	if (found <= 0)
		return found;
	if ((b = calloc(1, sizeof(*b))) != NULL) {
		b->st = st;
		b->rowid = sqlite3_column_int64(s, 0);
		b->size = sqlite3_column_int64(s, 1);
		*b_r = b;
		if (size_r != NULL)
			*size_r = b->size;
	}
	sqlite3_reset(s);
	return b != NULL ? 1 : pr_err_set(err, PR_ENOMEM, "out of memory");
}

int
store_body_open(struct store *st, int64_t user_id, int64_t entry_id,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err)
{
	sqlite3_stmt *s;
	int r;

	r = store__row(st, STORE_Q_ENTRY_BODY,
	    "SELECT body_id, size FROM mailbox WHERE id = ?1 AND user_id = ?2",
	    &s, "cannot open message", err, "ii", entry_id, user_id);
	if ((r = store__body_new(st, r, s, b_r, size_r, err)) == 0)
		return pr_err_set(err, PR_ENOENT, "no such message");
	return r < 0 ? r : 0;
}

ssize_t
store_body_read(struct store_body *b, int64_t offset, uint8_t *buf,
    size_t len)
{
	sqlite3_blob *blob = NULL;
	int64_t avail;
	int rc, n;

	if (offset < 0)
		return PR_EINVAL;
	if (offset >= b->size || len == 0)
		return 0;
	avail = b->size - offset;
	n = (int)(len < (size_t)avail ? len : (size_t)avail);
	if (n > STORE_CHUNK * 16)
		n = STORE_CHUNK * 16;
	/* Opened per read, see struct store_body. */
	rc = sqlite3_blob_open(b->st->db, "main", "bodies", "data", b->rowid,
	    0, &blob);
	if (rc != SQLITE_OK) {
		sqlite3_blob_close(blob);
		/* "no such rowid": the message was deleted meanwhile. */
		return rc == SQLITE_ERROR ? PR_ENOENT : store__code(rc);
	}
	if (offset + n > sqlite3_blob_bytes(blob)) {
		sqlite3_blob_close(blob);
		return PR_EIO;
	}
	rc = sqlite3_blob_read(blob, buf, n, (int)offset);
	sqlite3_blob_close(blob);
	if (rc != SQLITE_OK)
		return store__code(rc);
	return n;
}

void
store_body_close(struct store_body **bp)
{
	free(*bp);
	*bp = NULL;
}

int
store_mailbox_list(struct store *st, const char *address,
    int (*cb)(void *ctx, const struct store_entry *e, const char *sender),
    void *ctx, struct pr_err *err)
{
	struct store_entry *v = NULL;
	struct store_strv senders = { 0 };
	size_t n = 0, cap = 0;
	char addr[ADDR_MAX];
	sqlite3_stmt *s;
	int64_t uid;
	int r;

	if (store__lower_addr(address, addr, err) == NULL)
		return PR_EINVAL;
	if ((r = store__user_id(st, addr, &uid, err)) <= 0)
		return r < 0 ? r : pr_err_set(err, PR_ENOENT,
		    "no such user: %s", addr);
	/* A QUIT's committed deletions are done before they are shown. */
	if ((r = store__drop_finish(st, uid, err)) < 0)
		return r;
	s = store__bind(st, STORE_Q_MAILBOX_LIST,
	    "SELECT m.id, m.size, m.received, m.uidl, b.sender"
	    " FROM mailbox m JOIN bodies b ON b.id = m.body_id"
	    " WHERE m.user_id = ?1 ORDER BY m.id", "cannot list mailbox", err,
	    "i", uid);
	r = store__collect(st, s, &v, &n, &cap, sizeof(*v), store_entry_row,
	    &senders, 4, "cannot list mailbox", err);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = cb(ctx, &v[i], senders.v[i]);
	free(v);
	store__strv_fini(&senders);
	return r;
}
