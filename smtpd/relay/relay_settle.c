/*
 * relay_settle.c - the end of an attempt at a queue entry (see
 * relay_int.h).
 *
 * Once every delivery of a message ended, its recipients' outcomes are
 * settled on the store thread: recipients deferred past [relay]
 * max_queue_time expire and fail; the failed ones get one non-delivery
 * report (RFC 3464, relay_dsn.h) to the sender, from the null sender
 * (RFC 5321 4.5.5) so that it never bounces back; the deferred ones are
 * retried with backoff (relay_policy.h).  All of it, the delivered
 * recipients included, is one store call and one transaction
 * (store_queue_settle), so a crash leaves the attempt whole or not at
 * all: a bounce is never stored twice, and a recipient the remote took
 * is at worst sent again.
 */
#include "relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "metrics.h"
#include "relay_dsn.h"
#include "relay_policy.h"
#include "xmalloc.h"

#define RELAY_BOUNCE_TARGETS_MAX 100

/* A bounce ready for the store: the report and where it goes. */
struct relay_settle_bounce {
	int64_t users[RELAY_BOUNCE_TARGETS_MAX]; /* local mailboxes */
	size_t n_users;
	char *remote[RELAY_BOUNCE_TARGETS_MAX];  /* the sender, remote */
	size_t n_remote;
	struct buf out;                          /* the report */
	struct store_msg local, rmt;
	struct store_msg *msgs[2];
	size_t n_msgs;
	char trace[64];                          /* its trace: "for=ID" */
};

static void
relay_settle_bounce_fini(struct relay_settle_bounce *b)
{
	size_t i;

	for (i = 0; i < b->n_remote; i++)
		free(b->remote[i]);
	buf_fini(&b->out);
}

static int
relay_settle_bounce_resolve_cb(void *ctx, int64_t user_id, const char *remote)
{
	struct relay_settle_bounce *b = ctx;

	if (remote == NULL && b->n_users < RELAY_BOUNCE_TARGETS_MAX)
		b->users[b->n_users++] = user_id;
	else if (remote != NULL && b->n_remote < RELAY_BOUNCE_TARGETS_MAX)
		b->remote[b->n_remote++] = xstrdup(remote);
	return 0;
}

/* One recipient of the report: its index in m->job.rcpts and the
 * action reported (enum relay_dsn_action). */
struct relay_settle_note {
	size_t idx;
	int action;
};

/* RET=FULL (RFC 3461 4.3): the whole message into *buf when it is at
 * most RELAY_DSN_FULL_MAX octets; false (the header is returned
 * instead) when it is bigger or cannot be read. */
static bool
relay_settle_full(struct relay_msg *m, struct store *st, uint8_t **buf_r,
    size_t *len_r)
{
	struct store_body *b = NULL;
	struct pr_err err;
	int64_t size = 0;
	uint8_t *buf;
	size_t len = 0;
	ssize_t n;

	if (store_queue_body_open(st, m->job.id, &b, &size, &err) < 0)
		return false;
	if (size < 0 || size > RELAY_DSN_FULL_MAX) {
		store_body_close(&b);
		return false;
	}
	buf = xmalloc((size_t)size + 1);
	while (len < (size_t)size && (n = store_body_read(b, (int64_t)len,
	    buf + len, (size_t)size - len)) > 0)
		len += (size_t)n;
	store_body_close(&b);
	if (len != (size_t)size) {
		free(buf);
		return false;
	}
	/* The Return-Path of the stored copy is not part of what the
	 * sender sent. */
	if (m->skip > 0 && m->skip <= len) {
		memmove(buf, buf + m->skip, len - m->skip);
		len -= m->skip;
	}
	*buf_r = buf;
	*len_r = len;
	return true;
}

/*
 * Builds the report for the recipients in notes[0..n) and finds the
 * sender: their mailbox when local, the queue when remote.  Returns 0
 * with b->msgs[0..n_msgs) to store (none: the report is deliberately
 * dropped), or a negative error to try again later.
 */
static int
relay_settle_bounce_prepare(struct relay_msg *m, struct store *st,
    const struct relay_settle_note *notes, size_t n, bool expired,
    struct relay_settle_bounce *b)
{
	const struct cfg *cfg = m->r->cfg;
	static const char rp[] = "Return-Path: <>\r\n";
	struct relay_dsn_rcpt *dr;
	struct relay_dsn dsn;
	unsigned char rnd[8];
	char unique[40];
	struct pr_err err;
	uint8_t *full = NULL;
	size_t i, full_len = 0;
	bool failed = false;
	int kind, r;

	snprintf(b->trace, sizeof(b->trace), "for=%s%s", m->job.msgid,
	    expired ? " expired=yes" : "");
	dr = xcalloc(n, sizeof(*dr));
	for (i = 0; i < n; i++) {
		struct relay_msg_rcpt *rc = &m->rcpts[notes[i].idx];

		dr[i].address = m->job.rcpts[notes[i].idx].address;
		dr[i].action = notes[i].action;
		dr[i].orcpt = m->job.rcpts[notes[i].idx].orcpt;
		dr[i].reply = rc->reply;
		dr[i].remote_mta = rc->mta[0] ? rc->mta : NULL;
		dr[i].status = rc->code[0] ? rc->code : NULL;
		dr[i].last_attempt = rc->when;
		failed = failed || notes[i].action == RELAY_DSN_FAILED;
	}
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(unique, sizeof(unique), rnd, sizeof(rnd));
	memset(&dsn, 0, sizeof(dsn));
	dsn.hostname = cfg->server.hostname;
	dsn.sender = m->job.sender;
	dsn.queue_id = m->job.msgid;
	dsn.arrival = m->job.created;
	dsn.now = relay_now();
	dsn.unique = unique;
	dsn.expired = expired;
	dsn.rcpts = dr;
	dsn.n_rcpts = n;
	dsn.envid = m->job.dsn_envid;
	dsn.utf8 = m->smtputf8;
	dsn.orig_head = m->head;
	dsn.orig_head_len = m->head_len;
	/* RFC 3461 4.3: RET applies to reports of failure. */
	if (failed && m->job.dsn_ret == DSN_RET_FULL &&
	    relay_settle_full(m, st, &full, &full_len)) {
		dsn.full = true;
		dsn.orig_head = full;
		dsn.orig_head_len = full_len;
	}
	r = relay_dsn_build(&dsn, &b->out);
	free(full);
	free(dr);
	if (r < 0) {
		log_err(m->sid, "relay msgid=%s cannot build the bounce: %s",
		    m->job.msgid, pr_strerror(r));
		return r;
	}
	kind = store_resolve(st, m->job.sender,
	    relay_settle_bounce_resolve_cb, b, &err);
	if (kind < 0) {
		log_err(m->sid, "relay msgid=%s bounce to <%s>: %s", m->job.msgid,
		    m->job.sender, err.msg);
		return kind;
	}
	if (kind == STORE_RESOLVE_UNKNOWN) {
		log_warn(m->sid, "relay msgid=%s bounce to <%s> dropped: no such "
		    "local address", m->job.msgid, m->job.sender);
		return 0;
	}
	if (kind == STORE_RESOLVE_REMOTE && b->n_remote == 0)
		b->remote[b->n_remote++] = xstrdup(m->job.sender);
	if (b->n_users > 0) {
		b->local.sender = "";
		b->local.users = b->users;
		b->local.n_users = b->n_users;
		/* RFC 5321 4.4: the final delivery adds Return-Path. */
		b->local.head = (const uint8_t *)rp;
		b->local.head_len = sizeof(rp) - 1;
		b->local.body = b->out.p;
		b->local.body_len = b->out.len;
		b->local.body_fd = -1;
		b->local.trace_event = "dsn";
		b->local.trace_info = b->trace;
		b->msgs[b->n_msgs++] = &b->local;
	}
	if (b->n_remote > 0) {
		b->rmt.sender = "";
		b->rmt.remote = (const char *const *)b->remote;
		b->rmt.n_remote = b->n_remote;
		b->rmt.body = b->out.p;
		b->rmt.body_len = b->out.len;
		b->rmt.body_fd = -1;
		b->rmt.trace_event = "dsn";
		b->rmt.trace_info = b->trace;
		b->msgs[b->n_msgs++] = &b->rmt;
	}
	return 0;
}

/* Logs what became of each copy of a bounce that was settled. */
static void
relay_settle_bounce_log(struct relay_msg *m,
    const struct relay_settle_bounce *b)
{
	const struct store_msg *bm;
	size_t i;

	for (i = 0; i < b->n_msgs; i++) {
		bm = b->msgs[i];
		if (bm->status == 0) {
			log_info(m->sid, "relay msgid=%s bounce=%s to=<%s> "
			    "status=queued", m->job.msgid, bm->id,
			    m->job.sender);
			if (bm == &b->rmt)
				m->bounce_queued = true;
		} else if (bm->status == PR_EQUOTA ||
		    bm->status == PR_ETOOBIG) {
			/* The sender's mailbox is full: keeping the failed
			 * recipients would only repeat this. */
			log_warn(m->sid, "relay msgid=%s bounce to <%s> dropped: "
			    "%s", m->job.msgid, m->job.sender, bm->err.msg);
		} else {
			log_err(m->sid, "relay msgid=%s bounce to <%s>: %s",
			    m->job.msgid, m->job.sender, bm->err.msg);
		}
	}
}

/* The recipients' outcomes as what `postroom queue list` shows for the
 * first deferred one ("" if none), and how many are deferred. */
static size_t
relay_settle_deferred(const struct relay_msg *m, char *why, size_t len)
{
	size_t i, n = 0;

	why[0] = '\0';
	for (i = 0; i < m->job.n_rcpts; i++) {
		if (m->rcpts[i].status != RELAY_RCPT_TEMP)
			continue;
		if (n++ > 0)
			continue;
		if (m->rcpts[i].mta[0] != '\0')
			snprintf(why, len, "<%s>: host %s said: %s",
			    m->job.rcpts[i].address, m->rcpts[i].mta,
			    m->rcpts[i].reply);
		else
			snprintf(why, len, "<%s>: %s",
			    m->job.rcpts[i].address, m->rcpts[i].reply);
	}
	return n;
}

void
relay_queue_gauges(struct store *st)
{
	int64_t n, oldest;
	struct pr_err err;

	if (store_queue_stats(st, &n, &oldest, &err) == 0) {
		metrics_set(METRICS_QUEUE_LENGTH, n);
		metrics_set(METRICS_QUEUE_OLDEST, oldest);
	}
}

/* Each recipient's outcome of a settled attempt, counted. */
static void
relay_settle_count(const struct relay_msg *m)
{
	static const char *const words[] = {
		[RELAY_RCPT_OK] = "sent", [RELAY_RCPT_TEMP] = "deferred",
		[RELAY_RCPT_PERM] = "bounced",
	};

	for (size_t i = 0; i < m->job.n_rcpts; i++) {
		int st = m->rcpts[i].status;

		if (st >= 0 && (size_t)st < sizeof(words) / sizeof(words[0]) &&
		    words[st] != NULL)
			metrics_inc(METRICS_RELAY_RCPTS, words[st]);
	}
}

/* Recipient i's outcome for the trace, in info[i]. */
static char *
relay_settle_info(struct relay_msg *m, size_t i,
    char (*info)[RELAY_REPLY_MAX + RELAY_HOST_MAX + 32])
{
	const struct relay_msg_rcpt *rc = &m->rcpts[i];

	snprintf(info[i], sizeof(info[i]), "mta=%s reply=\"%s\"",
	    rc->mta[0] != '\0' ? rc->mta : "none", rc->reply);
	return info[i];
}

/* On the store thread: outcomes into one store_queue_settle call. */
static void
relay_settle_run(struct relay_work *w, struct store *st)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	const struct cfg *cfg = m->r->cfg;
	char why[RELAY_REPLY_MAX + 2 * RELAY_HOST_MAX + 32];
	struct relay_settle_bounce b;
	struct relay_settle_note *notes;
	struct store_settle s;
	struct pr_err err;
	size_t n_perm = 0, n_notes = 0, n_temp, i;
	int64_t *done, *failed, *deferred = NULL, now = relay_now(), next = 0;
	int64_t warn_at;
	const char **replies = NULL;
	char (*info)[RELAY_REPLY_MAX + RELAY_HOST_MAX + 32];
	char **done_info, **failed_info;
	uint64_t start;
	bool expired = false;
	int r;

	memset(&b, 0, sizeof(b));
	memset(&s, 0, sizeof(s));
	buf_init(&b.out, 4 * 1024 * 1024);
	notes = xcalloc(m->job.n_rcpts + 1, sizeof(*notes));
	done = xcalloc(m->job.n_rcpts + 1, sizeof(*done));
	failed = xcalloc(m->job.n_rcpts + 1, sizeof(*failed));
	info = xcalloc(m->job.n_rcpts + 1, sizeof(*info));
	done_info = xcalloc(m->job.n_rcpts + 1, sizeof(*done_info));
	failed_info = xcalloc(m->job.n_rcpts + 1, sizeof(*failed_info));
	s.queue_id = m->job.id;
	s.done = done;
	s.failed = failed;
	s.done_info = (const char *const *)done_info;
	s.failed_info = (const char *const *)failed_info;
	for (i = 0; i < m->job.n_rcpts; i++)
		if (m->rcpts[i].status == RELAY_RCPT_OK) {
			done_info[s.n_done] = relay_settle_info(m, i, info);
			done[s.n_done++] = m->job.rcpts[i].id;
		}
	if (m->settle_delivered_only) {
		if (s.n_done > 0 && store_queue_settle(st, &s, &err) < 0 &&
		    err.code != PR_ENOENT)
			log_err(m->sid, "relay msgid=%s cannot take delivered "
			    "recipients off the queue (they will be sent "
			    "again): %s", m->job.msgid, err.msg);
		goto out;
	}

	n_temp = relay_settle_deferred(m, why, sizeof(why));
	if (n_temp > 0)
		relay_msg_trace(m, "deferred=\"%s\"", why);
	if (buf_append(&m->trace, "", 1) == 0) {
		m->trace.len--;
		s.trace_info = (const char *)m->trace.p;
	}
	if (n_temp > 0 && relay_policy_defer(now, m->job.created,
	    m->job.attempts + 1, cfg->relay.max_queue_time, &next) == 1) {
		/* Given up after max_queue_time: the deferred recipients
		 * bounce with their last error. */
		expired = true;
		for (i = 0; i < m->job.n_rcpts; i++) {
			if (m->rcpts[i].status != RELAY_RCPT_TEMP)
				continue;
			m->rcpts[i].status = RELAY_RCPT_PERM;
			log_info(m->sid, "relay msgid=%s to=<%s> "
			    "status=expired dsn=4.4.7 reply=\"%s\"",
			    m->job.msgid, m->job.rcpts[i].address,
			    m->rcpts[i].reply);
		}
		n_temp = 0;
	}
	/* Also when nothing is deferred: the failed recipients stay and
	 * are tried again then if their bounce cannot be stored. */
	if (next == 0)
		next = now + relay_backoff(m->job.attempts + 1);
	warn_at = m->job.created + (int64_t)cfg->relay.delay_warning;
	if (n_temp > 0 && cfg->relay.delay_warning > 0 &&
	    !m->job.delay_warned) {
		if (now >= warn_at)
			s.delay_warned = true;
		else if (next > warn_at)
			/* The warning is due before the next try would be:
			 * try again then (RFC 3464 2.3.3 "delayed"). */
			next = warn_at;
	}
	s.next_attempt = next;
	s.last_error = why;
	/* Each deferred recipient keeps its own last reply, for `postroom
	 * queue list` (the entry's last_error is the first of them). */
	deferred = xcalloc(m->job.n_rcpts + 1, sizeof(*deferred));
	replies = xcalloc(m->job.n_rcpts + 1, sizeof(*replies));
	for (i = 0; i < m->job.n_rcpts; i++) {
		if (m->rcpts[i].status != RELAY_RCPT_TEMP)
			continue;
		deferred[s.n_deferred] = m->job.rcpts[i].id;
		replies[s.n_deferred++] = m->rcpts[i].reply;
	}
	s.deferred = deferred;
	s.deferred_reply = replies;

	for (i = 0; i < m->job.n_rcpts; i++) {
		const struct relay_msg_rcpt *rc = &m->rcpts[i];
		unsigned notify = m->job.rcpts[i].notify;
		int action = -1;

		if (rc->status == RELAY_RCPT_PERM) {
			failed_info[n_perm] = relay_settle_info(m, i, info);
			failed[n_perm++] = m->job.rcpts[i].id;
			/* RFC 3461 4.1: NOTIFY without FAILURE, NEVER
			 * included, asks for no report of it. */
			if (DSN_WANTS_FAILURE(notify))
				action = RELAY_DSN_FAILED;
			else
				log_info(m->sid, "relay msgid=%s to=<%s> "
				    "bounce=none reason=\"NOTIFY=%s\"",
				    m->job.msgid, m->job.rcpts[i].address,
				    notify & DSN_NOTIFY_NEVER ? "NEVER" :
				    "without FAILURE");
		} else if (rc->status == RELAY_RCPT_OK && rc->no_dsn &&
		    DSN_WANTS_SUCCESS(notify)) {
			/* RFC 3461 5.2.2.2 */
			action = RELAY_DSN_RELAYED;
		} else if (rc->status == RELAY_RCPT_TEMP && s.delay_warned &&
		    DSN_WANTS_DELAY(notify)) {
			action = RELAY_DSN_DELAYED;
		}
		if (action >= 0) {
			notes[n_notes].idx = i;
			notes[n_notes++].action = action;
		}
	}

	if (n_notes > 0 && m->job.sender[0] == '\0') {
		log_info(m->sid, "relay msgid=%s bounce=none "
		    "reason=\"no bounce for a message from the null "
		    "sender\"", m->job.msgid);
	} else if (n_notes > 0) {
		r = relay_settle_bounce_prepare(m, st, notes, n_notes,
		    expired, &b);
		if (r == 0) {
			s.bounce = b.msgs;
			s.n_bounce = b.n_msgs;
		} else {
			/* The report could not be made: keep the failed
			 * recipients and try again later. */
			n_perm = 0;
			s.delay_warned = false;
			n_temp++;
			s.last_error = "bounce could not be stored";
		}
	}
	s.n_failed = n_perm;

	pr_err_clear(&err);
	start = metrics_now_us();
	r = store_queue_settle(st, &s, &err);
	metrics_observe_us(METRICS_STORE_COMMIT, metrics_now_us() - start);
	if (r < 0) {
		/* PR_ENOENT: deleted with `postroom queue del` meanwhile. */
		if (err.code != PR_ENOENT)
			log_err(m->sid, "relay msgid=%s cannot settle the "
			    "attempt (it will be made again): %s",
			    m->job.msgid, err.msg);
		goto out;
	}
	relay_settle_bounce_log(m, &b);
	relay_settle_count(m);
	relay_queue_gauges(st);
	if (s.failed_kept)
		n_temp++;
	if (n_temp > 0) {
		m->retry_at = next;
		snprintf(m->settle_log, sizeof(m->settle_log),
		    "%zu recipient%s deferred, next attempt in %llds "
		    "(attempt %d failed)", n_temp, n_temp == 1 ? "" : "s",
		    (long long)(next - now), m->job.attempts + 1);
	}
out:
	relay_settle_bounce_fini(&b);
	free(notes);
	free(done);
	free(failed);
	free(info);
	free(done_info);
	free(failed_info);
	free(deferred);
	free(replies);
}

static void
relay_settle_done(struct relay_work *w)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	struct relay *r = m->r;

	if (m->settle_log[0] != '\0')
		log_info(m->sid, "relay msgid=%s %s", m->job.msgid,
		    m->settle_log);
	if (m->bounce_queued)
		relay_sched_kick(r);
	else if (m->retry_at > 0)
		relay_sched_retry_at(r, m->retry_at);
	relay_msg_free(m);
}

void
relay_settle_submit(struct relay_msg *m)
{
	size_t i;

	if (m->r->stopping) {
		/* Only what the remote hosts took leaves; the rest stays
		 * queued as it was, for the next run. */
		for (i = 0; i < m->job.n_rcpts; i++)
			if (m->rcpts[i].status == RELAY_RCPT_OK)
				break;
		if (i == m->job.n_rcpts) {
			relay_msg_free(m);
			return;
		}
		m->settle_delivered_only = true;
	}
	relay_worker_submit(m->r->worker, &m->work, relay_settle_run,
	    relay_settle_done);
}
