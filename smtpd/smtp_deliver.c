/* smtp_deliver.c - deliveries as store worker jobs (group commit). */
#include "smtp_deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "relay_dsn.h"
#include "xmalloc.h"

#define SMTP_DELIVER_BOUNCE_MAX 100 /* targets of one bounce */

/* Where a bounce goes: the sender's mailboxes, or the queue. */
struct smtp_deliver_bounce {
	int64_t users[SMTP_DELIVER_BOUNCE_MAX];
	size_t n_users;
	char *remote[SMTP_DELIVER_BOUNCE_MAX];
	size_t n_remote;
};

static int
smtp_deliver_bounce_cb(void *ctx, int64_t user_id, const char *remote)
{
	struct smtp_deliver_bounce *b = ctx;

	if (remote == NULL && b->n_users < SMTP_DELIVER_BOUNCE_MAX)
		b->users[b->n_users++] = user_id;
	else if (remote != NULL && b->n_remote < SMTP_DELIVER_BOUNCE_MAX)
		b->remote[b->n_remote++] = xstrdup(remote);
	return 0;
}

/* The original header section, for the bounce (RFC 3462 text/rfc822-
 * headers), or with full the whole message: read from memory or from
 * the spool file. */
static size_t
smtp_deliver_orig_head(const struct store_msg *m, uint8_t *buf, size_t max,
    bool full)
{
	size_t n = m->body_len < max ? m->body_len : max;
	ssize_t got;

	if (m->body_fd < 0) {
		memcpy(buf, m->body, n);
	} else {
		got = pread(m->body_fd, buf, n, 0);
		n = got > 0 ? (size_t)got : 0;
	}
	return full ? n : relay_dsn_head_len(buf, n);
}

/* The RCPT (RFC 3461 parameters) that local mailbox i came from, or
 * NULL when the delivery has none (a local submission). */
static const struct smtp_tx_rcpt *
smtp_deliver_rcpt(const struct smtp_deliver_job *dj, size_t i)
{
	if (dj->rcpts == NULL || dj->users_rcpt == NULL)
		return NULL;
	return &dj->rcpts[dj->users_rcpt[i]];
}

/* Whether the committed message needs a report: a mailbox refused it,
 * or a RCPT asked to hear of its delivery (RFC 3461 4.1 SUCCESS). */
static bool
smtp_deliver_reports(const struct smtp_deliver_job *dj)
{
	const struct store_msg *m = &dj->msg;
	const struct smtp_tx_rcpt *rc;

	for (size_t i = 0; m->status == 0 && m->user_status != NULL &&
	    i < m->n_users; i++) {
		rc = smtp_deliver_rcpt(dj, i);
		if (m->user_status[i] != 0 ||
		    (rc != NULL && DSN_WANTS_SUCCESS(rc->notify)))
			return true;
	}
	return false;
}

/*
 * Worker thread, after the commit: logs every local recipient whose
 * mailbox refused the message, and stores one report to the sender
 * (RFC 3464) for them, unless their NOTIFY asked for none (RFC 3461
 * 4.1; RFC 5321 6.1: once accepted, a message that cannot be delivered
 * is reported, not dropped), as Postfix does for a full Dovecot
 * mailbox, and for the mailboxes whose RCPT asked for SUCCESS
 * ("delivered", RFC 3464 2.3.3).  Reports come from the null sender
 * and are never answered themselves (RFC 5321 4.5.5).
 */
static void
smtp_deliver_bounce(struct store *st, struct smtp_deliver_job *dj)
{
	static const char rp[] = "Return-Path: <>\r\n";
	const struct store_msg *m = &dj->msg;
	const struct smtp_tx_rcpt *rc;
	struct relay_dsn_rcpt *dr;
	struct smtp_deliver_bounce b;
	struct store_msg out[2], *outp[2];
	struct relay_dsn dsn;
	struct pr_err err;
	struct buf rep;
	char (*addr)[ADDR_MAX], unique[40];
	unsigned char rnd[8];
	uint8_t *head;
	size_t n = 0, n_out = 0, n_refused = 0, i;
	bool full;
	int kind, r;

	dr = xcalloc(m->n_users, sizeof(*dr));
	addr = xcalloc(m->n_users, sizeof(*addr));
	for (i = 0; i < m->n_users; i++) {
		rc = smtp_deliver_rcpt(dj, i);
		if (m->user_status[i] == 0 &&
		    (rc == NULL || !DSN_WANTS_SUCCESS(rc->notify)))
			continue;
		if (store_user_address(st, m->users[i], addr[n],
		    sizeof(addr[n]), NULL) < 0)
			snprintf(addr[n], sizeof(addr[n]), "user %lld",
			    (long long)m->users[i]);
		dr[n].address = addr[n];
		dr[n].orcpt = rc != NULL ? rc->orcpt : NULL;
		dr[n].last_attempt = (int64_t)time(NULL);
		if (m->user_status[i] == 0) {
			dr[n].action = RELAY_DSN_DELIVERED;
			dr[n].status = "2.0.0";
			n++;
			continue;
		}
		n_refused++;
		log_info(dj->sid, "deliver msgid=%s to=<%s> relay=local "
		    "status=bounced dsn=5.2.2 reason=\"%s\"", m->id, addr[n],
		    m->user_status[i] == PR_ETOOBIG ?
		    "message exceeds the mailbox quota" : "mailbox full");
		if (rc != NULL && !DSN_WANTS_FAILURE(rc->notify)) {
			log_info(dj->sid, "deliver msgid=%s to=<%s> "
			    "bounce=none reason=\"NOTIFY=%s\"", m->id,
			    addr[n], rc->notify & DSN_NOTIFY_NEVER ? "NEVER" :
			    "without FAILURE");
			continue;
		}
		/* RFC 3463 3.3: X.2.2 mailbox full; the message is given up
		 * for this recipient, so the class is 5. */
		dr[n].action = RELAY_DSN_FAILED;
		dr[n].status = "5.2.2";
		dr[n].reply = m->user_status[i] == PR_ETOOBIG ?
		    "552 5.2.2 Message exceeds the mailbox quota" :
		    "552 5.2.2 Mailbox full";
		n++;
	}
	dj->n_refused = n_refused;
	memset(&b, 0, sizeof(b));
	buf_init(&rep, 4 * 1024 * 1024);
	if (n == 0)
		goto out;
	if (m->sender == NULL || m->sender[0] == '\0') {
		log_info(dj->sid, "deliver msgid=%s bounce=none reason=\"no "
		    "bounce for a message from the null sender\"", m->id);
		goto out;
	}
	/* RFC 3461 4.3: RET=FULL returns a refused message whole. */
	full = n_refused > 0 && m->dsn_ret == DSN_RET_FULL &&
	    m->body_len <= RELAY_DSN_FULL_MAX;
	head = xmalloc(full ? m->body_len + 1 : RELAY_DSN_HEAD_MAX);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(unique, sizeof(unique), rnd, sizeof(rnd));
	memset(&dsn, 0, sizeof(dsn));
	dsn.hostname = dj->hostname;
	dsn.sender = m->sender;
	dsn.queue_id = m->id;
	dsn.arrival = (int64_t)time(NULL);
	dsn.now = dsn.arrival;
	dsn.unique = unique;
	dsn.rcpts = dr;
	dsn.n_rcpts = n;
	dsn.envid = m->dsn_envid;
	dsn.utf8 = dj->smtputf8;
	dsn.orig_head = head;
	dsn.orig_head_len = smtp_deliver_orig_head(m, head, full ?
	    m->body_len : RELAY_DSN_HEAD_MAX, full);
	dsn.full = full && dsn.orig_head_len == m->body_len;
	r = relay_dsn_build(&dsn, &rep);
	free(head);
	if (r < 0) {
		log_err(dj->sid, "deliver msgid=%s bounce=failed "
		    "reason=\"cannot build the bounce: %s\"", m->id,
		    pr_strerror(r));
		goto out;
	}
	pr_err_clear(&err);
	kind = store_resolve(st, m->sender, smtp_deliver_bounce_cb, &b, &err);
	if (kind < 0 || kind == STORE_RESOLVE_UNKNOWN) {
		log_warn(dj->sid, "deliver msgid=%s bounce=dropped to=<%s> "
		    "reason=\"%s\"", m->id, m->sender,
		    kind < 0 ? err.msg : "no such local address");
		goto out;
	}
	if (kind == STORE_RESOLVE_REMOTE && b.n_remote == 0)
		b.remote[b.n_remote++] = xstrdup(m->sender);
	memset(out, 0, sizeof(out));
	if (b.n_users > 0) {
		out[n_out].users = b.users;
		out[n_out].n_users = b.n_users;
		/* RFC 5321 4.4: the final delivery adds Return-Path. */
		out[n_out].head = (const uint8_t *)rp;
		out[n_out].head_len = sizeof(rp) - 1;
		n_out++;
	}
	if (b.n_remote > 0) {
		out[n_out].remote = (const char *const *)b.remote;
		out[n_out].n_remote = b.n_remote;
		n_out++;
	}
	for (i = 0; i < n_out; i++) {
		out[i].sender = "";
		out[i].body = rep.p;
		out[i].body_len = rep.len;
		out[i].body_fd = -1;
		outp[i] = &out[i];
	}
	if (n_out > 0 && (r = store_deliver(st, outp, n_out)) < 0) {
		log_err(dj->sid, "deliver msgid=%s bounce=failed to=<%s> "
		    "reason=\"not stored: %s\"", m->id, m->sender,
		    out[0].err.msg);
		goto out;
	}
	for (i = 0; i < n_out; i++) {
		if (out[i].status == 0)
			log_info(dj->sid, "deliver msgid=%s bounce=%s "
			    "to=<%s> status=%s", m->id, out[i].id, m->sender,
			    out[i].n_users > 0 ? "sent relay=local" :
			    "queued");
		else
			log_warn(dj->sid, "deliver msgid=%s bounce=dropped "
			    "to=<%s> reason=\"%s\"", m->id, m->sender,
			    out[i].err.msg);
	}
out:
	for (i = 0; i < b.n_remote; i++)
		free(b.remote[i]);
	buf_fini(&rep);
	free(addr);
	free(dr);
}

/* Worker thread: one transaction, one fsync, for the whole group. */
static void
smtp_deliver_batch(struct store_job *const *jobs, size_t n,
    struct store *st)
{
	struct store_msg *msgs[STORE_WORKER_BATCH_MAX] = { 0 };
	uint64_t start;
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		msgs[i] = &STORE_CONTAINER(jobs[i], struct smtp_deliver_job,
		    job)->msg;
	start = metrics_now_us();
	r = store_deliver(st, msgs, n);
	metrics_observe_us(METRICS_STORE_COMMIT, metrics_now_us() - start);
	if (r < 0) {
		log_err(NULL, "delivery batch of %zu failed: %s", n,
		    msgs[0]->err.msg[0] ? msgs[0]->err.msg : pr_strerror(r));
		return;
	}
	log_debug(NULL, "committed a batch of %zu", n);
	for (i = 0; i < n; i++) {
		struct smtp_deliver_job *dj = STORE_CONTAINER(jobs[i],
		    struct smtp_deliver_job, job);
		uint64_t local = 0;

		for (size_t j = 0; msgs[i]->status == 0 &&
		    j < msgs[i]->n_users; j++)
			local += msgs[i]->user_status == NULL ||
			    msgs[i]->user_status[j] == 0;
		metrics_add(METRICS_LOCAL_DELIVERIES, NULL, local);
		if (smtp_deliver_reports(dj))
			smtp_deliver_bounce(st, dj);
	}
}

static void
smtp_deliver_done(struct store_job *job)
{
	struct smtp_deliver_job *dj = STORE_CONTAINER(job,
	    struct smtp_deliver_job, job);

	dj->done_cb(dj);
}

void
smtp_deliver_submit(struct store_worker *wk, struct smtp_deliver_job *job)
{
	job->job.run = NULL;
	job->job.batch = smtp_deliver_batch;
	job->job.done = smtp_deliver_done;
	job->job.bytes = job->msg.head_len + job->msg.body_len;
	store_worker_submit(wk, &job->job);
}
