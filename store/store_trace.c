/*
 * store_trace.c - the trace of each message: its events (received,
 * delivered, queued, relay attempts, bounces, POP3 retrieval and
 * deletion) as rows of the trace table, for `postroom trace`
 * (postroom(8)).
 *
 * Every event is written inside the transaction that commits what it
 * tells (a delivery, a settled attempt, a POP3 QUIT), so it costs no
 * fsync of its own and a trace never shows what did not happen.  Rows
 * older than [server] trace_days go in bounded batches on the same
 * commits, by the index on their time.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msgid.h"

/* Rows expired per commit at most: a long pause in traffic leaves many
 * rows to go, and one commit must not delete them all at once (it would
 * hold the write lock); the next commits take the rest. */
#define STORE_TRACE_EXPIRE_BATCH 200

/* How much of a message's start is searched for its Message-ID. */
#define STORE_TRACE_HEAD_SCAN (16 * 1024)

static atomic_uint store_trace_days = 30;

void
store_trace_set_days(unsigned days)
{
	atomic_store(&store_trace_days, days);
}

bool
store__trace_on(void)
{
	return atomic_load(&store_trace_days) > 0;
}

int
store__trace_add(struct store *st, const char *msgid, int64_t at,
    const char *event, const char *addr, const char *mid, const char *info,
    struct pr_err *err)
{
	char lower[ADDR_MAX];
	size_t i;

	if (!store__trace_on())
		return 0;
	if (addr != NULL && addr[0] != '\0') {
		for (i = 0; addr[i] != '\0' && i + 1 < sizeof(lower); i++)
			lower[i] = (char)tolower((unsigned char)addr[i]);
		lower[i] = '\0';
		addr = lower;
	} else
		addr = NULL;
	return store__run(st, STORE_Q_TRACE_ADD,
	    "INSERT INTO trace (msgid, at, event, addr, mid, info)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "cannot write the trace", err,
	    "titttt", msgid, at, event, addr, mid, info != NULL ? info : "");
}

int
store__trace_expire(struct store *st, int64_t now, struct pr_err *err)
{
	unsigned days = atomic_load(&store_trace_days);

	if (days == 0)
		return 0;
	return store__run(st, STORE_Q_TRACE_EXPIRE,
	    "DELETE FROM trace WHERE id IN (SELECT id FROM trace"
	    " WHERE at < ?1 ORDER BY at LIMIT ?2)",
	    "cannot expire the trace", err, "ii",
	    now - (int64_t)days * 86400, (int64_t)STORE_TRACE_EXPIRE_BATCH);
}

/* The Message-ID of m: in the fields prepended (a submission's own) or
 * in the first STORE_TRACE_HEAD_SCAN octets of the message. */
static void
store_trace_mid(const struct store_msg *m, char out[MSGID_MAX])
{
	uint8_t *buf;
	ssize_t got;
	size_t n;

	if (m->head_len > 0 && msgid_find(m->head, m->head_len, out))
		return;
	if (m->body_fd < 0) {
		msgid_find(m->body, m->body_len < STORE_TRACE_HEAD_SCAN ?
		    m->body_len : STORE_TRACE_HEAD_SCAN, out);
		return;
	}
	out[0] = '\0';
	n = m->body_len < STORE_TRACE_HEAD_SCAN ? m->body_len :
	    STORE_TRACE_HEAD_SCAN;
	if ((buf = malloc(n + 1)) == NULL)
		return;
	got = pread(m->body_fd, buf, n, 0);
	if (got > 0)
		msgid_find(buf, (size_t)got, out);
	free(buf);
}

int
store__trace_msg(struct store *st, const struct store_msg *m, int64_t now,
    int64_t size)
{
	struct pr_err *err = (struct pr_err *)&m->err;
	char mid[MSGID_MAX], info[STORE_TRACE_INFO_MAX + 64];
	const char *event = m->trace_event != NULL ? m->trace_event :
	    "received";
	int r;

	if (!store__trace_on())
		return 0;
	store_trace_mid(m, mid);
	snprintf(info, sizeof(info), "from=<%s> size=%lld%s%s%s%s",
	    m->sender != NULL ? m->sender : "", (long long)size,
	    mid[0] != '\0' ? " message-id=" : "", mid,
	    m->trace_info != NULL && m->trace_info[0] != '\0' ? " " : "",
	    m->trace_info != NULL ? m->trace_info : "");
	if ((r = store__trace_add(st, m->id, now, event, m->sender,
	    mid[0] != '\0' ? mid : NULL, info, err)) < 0)
		return r;
	for (size_t i = 0; i < m->n_users; i++) {
		if (!store__msg_user_takes(m, i))
			continue;
		/* The mailbox after alias expansion: the user's address. */
		if ((r = store__run(st, STORE_Q_TRACE_DELIVERED,
		    "INSERT INTO trace (msgid, at, event, addr, info)"
		    " SELECT ?1, ?2, 'delivered', address, 'mailbox=' ||"
		    " address FROM users WHERE id = ?3",
		    "cannot write the trace", err, "tii", m->id, now,
		    m->users[i])) < 0)
			return r;
	}
	for (size_t i = 0; i < m->n_remote; i++) {
		snprintf(info, sizeof(info), "rcpt=<%s>", m->remote[i]);
		if ((r = store__trace_add(st, m->id, now, "queued",
		    m->remote[i], NULL, info, err)) < 0)
			return r;
	}
	return 0;
}

int
store__trace_rcpt(struct store *st, const char *msgid, int64_t now,
    const char *event, int64_t rcpt_id, const char *info, struct pr_err *err)
{
	if (!store__trace_on())
		return 0;
	return store__run(st, STORE_Q_TRACE_RCPT,
	    "INSERT INTO trace (msgid, at, event, addr, info)"
	    " SELECT ?1, ?2, ?3, lower(address), 'rcpt=<' || address || '>'"
	    " || CASE WHEN ?5 <> '' THEN ' ' || ?5 ELSE '' END"
	    " FROM queue_rcpt WHERE id = ?4", "cannot write the trace", err,
	    "titit", msgid, now, event, rcpt_id, info != NULL ? info : "");
}

int
store__trace_pop3(struct store *st, int64_t user_id, int64_t entry_id,
    int64_t at, const char *event, const char *info, struct pr_err *err)
{
	if (!store__trace_on())
		return 0;
	return store__run(st, STORE_Q_TRACE_POP3,
	    "INSERT INTO trace (msgid, at, event, addr, info)"
	    " SELECT b.msgid, ?3, ?4, u.address, 'mailbox=' || u.address"
	    " || CASE WHEN ?5 <> '' THEN ' ' || ?5 ELSE '' END"
	    " FROM mailbox m JOIN bodies b ON b.id = m.body_id"
	    " JOIN users u ON u.id = m.user_id"
	    " WHERE m.id = ?1 AND m.user_id = ?2", "cannot write the trace",
	    err, "iiitt", entry_id, user_id, at, event,
	    info != NULL ? info : "");
}

/* --- Lookup ------------------------------------------------------------ */

static bool
store_trace_is_id(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return i == STORE_ID_LEN;
}

int
store_trace_find(struct store *st, const char *what, size_t max_msgs,
    int (*cb)(void *ctx, const struct store_trace_event *ev), void *ctx,
    struct pr_err *err)
{
	struct store_strv ids = { 0 };
	char key[ADDR_MAX];
	sqlite3_stmt *s;
	size_t i;
	int r, rc;

	if (what == NULL || what[0] == '\0' || strlen(what) >= sizeof(key))
		return pr_err_set(err, PR_EINVAL, "nothing to trace");
	for (i = 0; what[i] != '\0'; i++)
		key[i] = (char)tolower((unsigned char)what[i]);
	key[i] = '\0';
	if (store_trace_is_id(key))
		r = store__texts(st, STORE_Q_TRACE_BY_ID,
		    "SELECT DISTINCT msgid FROM trace WHERE msgid = ?1",
		    "cannot read the trace", err, &ids, 0, "t", key);
	else if (what[0] == '<')
		/* RFC 5322 3.6.4: compared as given (id-left may be
		 * case-sensitive). */
		r = store__texts(st, STORE_Q_TRACE_BY_MID,
		    "SELECT msgid FROM trace WHERE mid = ?1"
		    " GROUP BY msgid ORDER BY max(id) DESC LIMIT ?2",
		    "cannot read the trace", err, &ids, 0, "ti", what,
		    (int64_t)max_msgs);
	else if (strchr(key, '@') != NULL)
		r = store__texts(st, STORE_Q_TRACE_BY_ADDR,
		    "SELECT msgid FROM trace WHERE addr = ?1"
		    " GROUP BY msgid ORDER BY max(id) DESC LIMIT ?2",
		    "cannot read the trace", err, &ids, 0, "ti", key,
		    (int64_t)max_msgs);
	else {
		return pr_err_set(err, PR_EINVAL,
		    "%s: not an id, a <message-id> or an address", what);
	}
	if (r < 0)
		goto out;
	/* Oldest message first, so that the newest ends the output. */
	for (i = ids.n; i-- > 0 && r == 0;) {
		s = store__bind(st, STORE_Q_TRACE_EVENTS,
		    "SELECT at, msgid, event, coalesce(addr, ''), info"
		    " FROM trace WHERE msgid = ?1 ORDER BY id",
		    "cannot read the trace", err, "t", ids.v[i]);
		if (s == NULL) {
			r = store__errcode(err);
			break;
		}
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct store_trace_event ev;

			ev.at = sqlite3_column_int64(s, 0);
			ev.msgid = (const char *)sqlite3_column_text(s, 1);
			ev.event = (const char *)sqlite3_column_text(s, 2);
			ev.addr = (const char *)sqlite3_column_text(s, 3);
			ev.info = (const char *)sqlite3_column_text(s, 4);
			if ((r = cb(ctx, &ev)) != 0) {
				sqlite3_reset(s);
				goto out;
			}
		}
		r = store__done(st, s, rc, "cannot read the trace", err);
	}
	if (r == 0)
		r = (int)ids.n;
out:
	store__strv_fini(&ids);
	return r;
}
