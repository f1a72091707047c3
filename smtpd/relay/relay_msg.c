/*
 * relay_msg.c - one queue entry being worked on (see relay_int.h).
 *
 * A message is read once on the store thread before anything is sent:
 * the header (kept for a bounce, and to find the From: domain), whether
 * the body has 8-bit octets, and its DKIM signature (RFC 6376) when a
 * hosted domain signs it.  Then it is split into one delivery per
 * destination domain (through a smarthost, one for everything), and each
 * delivery records its recipients' outcomes here.  When the last delivery
 * is gone the attempt settles (relay_settle.c) and the message is freed.
 */
#include "relay_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "dkim_field.h"
#include "domain.h"
#include "dkim_keyfile.h"
#include "dkim_signer.h"
#include "relay_dsn.h"
#include "xmalloc.h"

/* --- Recipient outcomes ------------------------------------------------ */

void
relay_msg_rcpt_set(struct relay_msg_rcpt *rc, int status, const char *reply,
    const char *mta, const char *code)
{
	rc->status = status;
	snprintf(rc->reply, sizeof(rc->reply), "%s", reply);
	snprintf(rc->mta, sizeof(rc->mta), "%s", mta != NULL ? mta : "");
	snprintf(rc->code, sizeof(rc->code), "%s", code != NULL ? code : "");
	rc->when = relay_now();
}

const char *
relay_msg_dsn(const char *reply, int status, char out[16])
{
	size_t n;

	/* RFC 3463 2: class.subject.detail after the reply code, of the
	 * reply's class, e.g. "250 2.0.0 Ok"; without one, the class alone
	 * says enough. */
	if (strlen(reply) > 4 && reply[3] == ' ' && reply[4] == reply[0] &&
	    (n = relay_dsn_enhanced(reply + 4)) > 0 && n < 16) {
		snprintf(out, 16, "%.*s", (int)n, reply + 4);
		return out;
	}
	snprintf(out, 16, "%s", status == RELAY_RCPT_OK ? "2.0.0" :
	    status == RELAY_RCPT_PERM ? "5.0.0" : "4.0.0");
	return out;
}

const char *
relay_msg_status_word(int status)
{
	switch (status) {
	case RELAY_RCPT_OK:
		return "sent";
	case RELAY_RCPT_PERM:
		return "bounced";
	case RELAY_RCPT_TEMP:
		return "deferred";
	default:
		return "pending";
	}
}

/* --- Preparation ------------------------------------------------------- */

/* Reads the message once on the store thread: the header (kept for a
 * bounce and to find the From: domain), the DKIM signature and whether
 * it has 8-bit octets. */
static void
relay_msg_prepare_run(struct relay_work *w, struct store *st)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	const struct cfg *cfg = m->r->cfg;
	struct dkim_signer *signer[RELAY_DKIM_KEYS_MAX];
	struct dkim_key *key[RELAY_DKIM_KEYS_MAX];
	struct store_body *b = NULL;
	size_t nkeys = 0, k;
	char domain[RELAY_HOST_MAX];
	char dnorm[2][ADDR_DOMAIN_MAX + 1];
	const char *cand[2];
	uint8_t *chunk;
	int64_t off;
	ssize_t n;
	size_t i;
	int r;

	m->prep_status = store_queue_body_open(st, m->job.id, &b, NULL,
	    &m->prep_err);
	if (m->prep_status < 0)
		return;
	chunk = xmalloc(RELAY_CHUNK);
	/* The header, as much of it as a bounce returns. */
	m->head = xmalloc(RELAY_DSN_HEAD_MAX);
	while (m->head_len < RELAY_DSN_HEAD_MAX) {
		n = store_body_read(b, (int64_t)m->head_len,
		    m->head + m->head_len, RELAY_DSN_HEAD_MAX - m->head_len);
		if (n < 0)
			goto readfail;
		if (n == 0)
			break;
		m->head_len += (size_t)n;
		if (memmem(m->head, m->head_len, "\r\n\r\n", 4) != NULL ||
		    memcmp(m->head, "\r\n", m->head_len < 2 ? m->head_len :
		    2) == 0)
			break;
	}

	/* RFC 5321 4.4: Return-Path belongs to the final delivery; a relay
	 * "SHOULD NOT send a message that already contains" one, so a
	 * Return-Path field at the top (the store keeps the one added for
	 * local copies) is left out of what goes on the wire. */
	while (m->head_len - m->skip >= 12 &&
	    strncasecmp((char *)m->head + m->skip, "Return-Path:", 12) == 0) {
		size_t e = m->skip;

		for (;;) {
			uint8_t *nl = memchr(m->head + e, '\n',
			    m->head_len - e);

			if (nl == NULL) {
				e = m->head_len;
				break;
			}
			e = (size_t)(nl - m->head) + 1;
			if (e >= m->head_len ||
			    (m->head[e] != ' ' && m->head[e] != '\t'))
				break;
		}
		m->skip = e;
	}
	memmove(m->head, m->head + m->skip, m->head_len - m->skip);
	m->head_len -= m->skip;

	/* DKIM: the From: domain if we host it and have a key, else the
	 * envelope sender's (RFC 6376 leaves d= to the signer; the From:
	 * domain is what DMARC aligns with).  One signature per active key
	 * of that domain: with an RSA and an Ed25519 key, receivers that
	 * know only RSA still find a signature they can check (RFC 6376 4,
	 * RFC 8463 A.3 signs its example both ways). */
	cand[0] = dkim_field_from_domain(m->head, m->head_len, domain,
	    sizeof(domain)) == 0 ? domain : NULL;
	cand[1] = m->job.sender[0] ? addr_domain(m->job.sender) : NULL;
	for (i = 0; i < 2 && nkeys == 0; i++) {
		struct pr_err kerr;

		/* d= is the A-label form the key was made for (RFC 6376
		 * 3.5: d= holds A-labels), whichever form the header or the
		 * envelope used. */
		if (cand[i] == NULL || domain_normalize(cand[i],
		    strlen(cand[i]), dnorm[i], sizeof(dnorm[i])) < 0)
			continue;
		cand[i] = dnorm[i];
		if (store_domain_exists(st, cand[i]) != 1)
			continue;
		r = dkim_keyfile_load_active(cfg->server.data_dir, cand[i],
		    key, RELAY_DKIM_KEYS_MAX, &kerr);
		if (r < 0)
			log_warn(m->sid, "relay msgid=%s DKIM key of %s: %s",
			    m->job.msgid, cand[i], kerr.msg);
		else
			nkeys = (size_t)r;
	}
	for (k = 0; k < nkeys; k++)
		if (dkim_signer_new(key[k], &signer[k]) < 0)
			signer[k] = NULL;

	for (off = (int64_t)m->skip;; off += n) {
		n = store_body_read(b, off, chunk, RELAY_CHUNK);
		if (n < 0)
			goto readfail;
		if (n == 0)
			break;
		if (!m->body_8bit && relay_data_has_8bit(chunk, (size_t)n))
			m->body_8bit = true;
		for (k = 0; k < nkeys; k++) {
			if (signer[k] == NULL ||
			    dkim_signer_feed(signer[k], chunk, (size_t)n) == 0)
				continue;
			log_warn(m->sid, "relay msgid=%s DKIM signing with "
			    "s=%s failed: header too large", m->job.msgid,
			    dkim_key_selector(key[k]));
			dkim_signer_free(&signer[k]);
		}
	}
	for (k = 0; k < nkeys; k++) {
		struct pr_err serr;
		size_t before = m->dkim.len;

		if (signer[k] == NULL)
			continue;
		if (dkim_signer_finish(signer[k], relay_now(), &m->dkim,
		    &serr) < 0) {
			m->dkim.len = before;
			log_warn(m->sid, "relay msgid=%s DKIM signing with "
			    "s=%s failed: %s", m->job.msgid,
			    dkim_key_selector(key[k]), serr.msg);
			continue;
		}
		snprintf(m->dkim_domain, sizeof(m->dkim_domain), "%s",
		    dkim_key_domain(key[k]));
		m->dkim_count++;
	}
	goto out;
readfail:
	m->prep_status = (int)n;
	pr_err_set(&m->prep_err, (int)n, "cannot read the queued message: %s",
	    pr_strerror((int)n));
out:
	for (k = 0; k < nkeys; k++) {
		dkim_signer_free(&signer[k]);
		dkim_key_free(&key[k]);
	}
	store_body_close(&b);
	free(chunk);
}

static void
relay_msg_prepare_done(struct relay_work *w)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	struct relay *r = m->r;
	struct relay_dlv *d;
	const char *dom, *dj;
	bool *used;
	size_t i, j, n;

	if (r->stopping || m->prep_status == PR_ENOENT) {
		/* Stopping, or deleted from the queue meanwhile. */
		relay_msg_free(m);
		return;
	}
	if (m->prep_status < 0) {
		log_err(m->sid, "relay msgid=%s status=failed reason=\"%s\"",
		    m->job.msgid, m->prep_err.msg);
		for (i = 0; i < m->job.n_rcpts; i++)
			relay_msg_rcpt_set(&m->rcpts[i], RELAY_RCPT_TEMP,
			    m->prep_err.msg, NULL, "4.3.0");
		relay_settle_submit(m);
		return;
	}
	if (m->dkim.len > 0)
		log_debug(m->sid, "relay msgid=%s dkim=%s signatures=%u",
		    m->job.msgid, m->dkim_domain, m->dkim_count);
	/* One delivery per destination domain with all its recipients;
	 * through a smarthost, one for everything. */
	used = xcalloc(m->job.n_rcpts, sizeof(*used));
	m->n_dlv++;    /* held while the deliveries are created */
	for (i = 0; i < m->job.n_rcpts; i++) {
		if (used[i])
			continue;
		dom = addr_domain(m->job.rcpts[i].address);
		if (dom == NULL)
			dom = "";
		n = 0;
		for (j = i; j < m->job.n_rcpts; j++) {
			dj = addr_domain(m->job.rcpts[j].address);
			if (!used[j] && (r->smarthost ||
			    strcasecmp(dj != NULL ? dj : "", dom) == 0))
				n++;
		}
		d = relay_dlv_new(m, dom, n);
		for (j = i; j < m->job.n_rcpts; j++) {
			dj = addr_domain(m->job.rcpts[j].address);
			if (!used[j] && (r->smarthost ||
			    strcasecmp(dj != NULL ? dj : "", dom) == 0)) {
				used[j] = true;
				d->idx[d->n++] = j;
			}
		}
		relay_sched_enqueue(r, d);
	}
	free(used);
	if (--m->n_dlv == 0) {
		relay_settle_submit(m);
		return;
	}
	relay_sched_pump(r);
}

/* --- Life cycle -------------------------------------------------------- */

bool
relay_msg_in_flight(const struct relay *r, int64_t id)
{
	const struct relay_msg *m;

	for (m = r->msgs; m != NULL; m = m->next)
		if (m->job.id == id)
			return true;
	return false;
}

void
relay_msg_trace(struct relay_msg *m, const char *fmt, ...)
{
	va_list ap;
	size_t len = m->trace.len;

	if (len > 0 && buf_append(&m->trace, " ", 1) < 0)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(&m->trace, fmt, ap) < 0)
		m->trace.len = len;
	va_end(ap);
}

void
relay_msg_start(struct relay *r, struct store_queue_job *job)
{
	struct relay_msg *m = xcalloc(1, sizeof(*m));
	size_t i;

	m->r = r;
	m->job = *job;
	/* The rcpts array moves to the message. */
	job->rcpts = NULL;
	job->n_rcpts = 0;
	m->rcpts = xcalloc(m->job.n_rcpts ? m->job.n_rcpts : 1,
	    sizeof(*m->rcpts));
	log_new_sid(m->sid);
	buf_init(&m->dkim, 64 * 1024);
	buf_init(&m->trace, STORE_TRACE_INFO_MAX - 1);
	m->smtputf8 = relay_data_str_8bit(m->job.sender);
	for (i = 0; i < m->job.n_rcpts; i++)
		if (relay_data_str_8bit(m->job.rcpts[i].address))
			m->smtputf8 = true;
	m->next = r->msgs;
	if (r->msgs != NULL)
		r->msgs->prev = m;
	r->msgs = m;
	r->n_msgs++;
	log_info(m->sid, "relay msgid=%s from=<%s> size=%lld nrcpt=%zu "
	    "attempt=%d", m->job.msgid, m->job.sender, (long long)m->job.size,
	    m->job.n_rcpts, m->job.attempts + 1);
	relay_worker_submit(r->worker, &m->work, relay_msg_prepare_run,
	    relay_msg_prepare_done);
}

void
relay_msg_free(struct relay_msg *m)
{
	struct relay *r = m->r;

	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		r->msgs = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	r->n_msgs--;
	buf_fini(&m->dkim);
	buf_fini(&m->trace);
	free(m->head);
	free(m->rcpts);
	free(m->job.rcpts);
	free(m);
	if (r->stopping)
		relay__check_stopped(r);
	else
		relay_sched_msg_gone(r);
}
