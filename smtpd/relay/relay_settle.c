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

/*
 * Builds the report for the failed recipients (indexes perm[0..n)) and
 * finds the sender: their mailbox when local, the queue when remote.
 * Returns 0 with b->msgs[0..n_msgs) to store (none: the bounce is
 * deliberately dropped), or a negative error to try again later.
 */
static int
relay_settle_bounce_prepare(struct relay_msg *m, struct store *st,
    const size_t *perm, size_t n, bool expired, struct relay_settle_bounce *b)
{
	const struct cfg *cfg = m->r->cfg;
	static const char rp[] = "Return-Path: <>\r\n";
	struct relay_dsn_rcpt *dr;
	struct relay_dsn dsn;
	unsigned char rnd[8];
	char unique[40];
	struct pr_err err;
	size_t i;
	int kind, r;

	dr = xcalloc(n, sizeof(*dr));
	for (i = 0; i < n; i++) {
		struct relay_msg_rcpt *rc = &m->rcpts[perm[i]];

		dr[i].address = m->job.rcpts[perm[i]].address;
		dr[i].reply = rc->reply;
		dr[i].remote_mta = rc->mta[0] ? rc->mta : NULL;
		dr[i].status = rc->code[0] ? rc->code : NULL;
		dr[i].last_attempt = rc->when;
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
	dsn.orig_head = m->head;
	dsn.orig_head_len = m->head_len;
	r = relay_dsn_build(&dsn, &b->out);
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
		b->msgs[b->n_msgs++] = &b->local;
	}
	if (b->n_remote > 0) {
		b->rmt.sender = "";
		b->rmt.remote = (const char *const *)b->remote;
		b->rmt.n_remote = b->n_remote;
		b->rmt.body = b->out.p;
		b->rmt.body_len = b->out.len;
		b->rmt.body_fd = -1;
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

/* On the store thread: outcomes into one store_queue_settle call. */
static void
relay_settle_run(struct relay_work *w, struct store *st)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	const struct cfg *cfg = m->r->cfg;
	char why[RELAY_REPLY_MAX + 2 * RELAY_HOST_MAX + 32];
	struct relay_settle_bounce b;
	struct store_settle s;
	struct pr_err err;
	size_t *perm, n_perm = 0, n_temp, i;
	int64_t *done, *failed, *deferred = NULL, now = relay_now(), next = 0;
	const char **replies = NULL;
	bool expired = false;
	int r;

	memset(&b, 0, sizeof(b));
	memset(&s, 0, sizeof(s));
	buf_init(&b.out, 4 * 1024 * 1024);
	perm = xcalloc(m->job.n_rcpts + 1, sizeof(*perm));
	done = xcalloc(m->job.n_rcpts + 1, sizeof(*done));
	failed = xcalloc(m->job.n_rcpts + 1, sizeof(*failed));
	s.queue_id = m->job.id;
	s.done = done;
	s.failed = failed;
	for (i = 0; i < m->job.n_rcpts; i++)
		if (m->rcpts[i].status == RELAY_RCPT_OK)
			done[s.n_done++] = m->job.rcpts[i].id;
	if (m->settle_delivered_only) {
		if (s.n_done > 0 && store_queue_settle(st, &s, &err) < 0 &&
		    err.code != PR_ENOENT)
			log_err(m->sid, "relay msgid=%s cannot take delivered "
			    "recipients off the queue (they will be sent "
			    "again): %s", m->job.msgid, err.msg);
		goto out;
	}

	n_temp = relay_settle_deferred(m, why, sizeof(why));
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
	for (i = 0; i < m->job.n_rcpts; i++)
		if (m->rcpts[i].status == RELAY_RCPT_PERM)
			perm[n_perm++] = i;
	/* Also when nothing is deferred: the failed recipients stay and
	 * are tried again then if their bounce cannot be stored. */
	if (next == 0)
		next = now + relay_backoff(m->job.attempts + 1);
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

	if (n_perm > 0) {
		r = 0;
		if (m->job.sender[0] != '\0')
			r = relay_settle_bounce_prepare(m, st, perm, n_perm,
			    expired, &b);
		else
			log_info(m->sid, "relay msgid=%s bounce=none "
			    "reason=\"no bounce for a message from the null "
			    "sender\"", m->job.msgid);
		if (r == 0) {
			for (i = 0; i < n_perm; i++)
				failed[s.n_failed++] =
				    m->job.rcpts[perm[i]].id;
			s.bounce = b.msgs;
			s.n_bounce = b.n_msgs;
		} else {
			/* The bounce could not be made: keep the failed
			 * recipients and try again later. */
			n_temp++;
			s.last_error = "bounce could not be stored";
		}
	}

	pr_err_clear(&err);
	if ((r = store_queue_settle(st, &s, &err)) < 0) {
		/* PR_ENOENT: deleted with `postroom queue del` meanwhile. */
		if (err.code != PR_ENOENT)
			log_err(m->sid, "relay msgid=%s cannot settle the "
			    "attempt (it will be made again): %s",
			    m->job.msgid, err.msg);
		goto out;
	}
	relay_settle_bounce_log(m, &b);
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
	free(perm);
	free(done);
	free(failed);
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
