/*
 * smtp_proto.c - the SMTP server protocol core (sans-I/O): life cycle,
 * command framing, message data, completions and trace fields.  The
 * commands themselves are in smtp_cmd.c, their decisions in
 * smtp_policy.c.
 */
#include "smtp_proto_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "addr_list.h"
#include "err.h"
#include "sasl.h"

static const char *const smtp_proto_state_names[] = {
	[SMTP_S_GREETING] = "GREETING", [SMTP_S_READY] = "READY",
	[SMTP_S_MAIL] = "MAIL", [SMTP_S_RCPT] = "RCPT",
	[SMTP_S_DATA] = "DATA", [SMTP_S_BDAT] = "BDAT",
	[SMTP_S_CHUNK] = "CHUNK", [SMTP_S_AUTH] = "AUTH",
	[SMTP_S_QUIT] = "QUIT",
};

void
smtp_limits_default(struct smtp_limits *l)
{
	l->line_max = 1000;
	l->auth_line_max = 12288;
	l->text_line_max = SMTP_DATA_LINE_MAX;
	l->data_max = 25u * 1024 * 1024;
	l->rcpt_max = 100;
	l->targets_max = 1000;
	l->bad_cmd_max = 20;
	l->junk_max = 100;
	l->auth_fail_max = 3;
	l->mem_max = 128 * 1024;
}

void
smtp_proto__log(struct smtp_proto *p, int level, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (p->conf.log_cb == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	p->conf.log_cb(p->conf.log_data, level, text);
}

/* The one place where the state changes, logged. */
void
smtp_proto__enter(struct smtp_proto *p, enum smtp_state st)
{
	if (p->state == st)
		return;
	smtp_proto__log(p, 0, "state %s -> %s",
	    smtp_proto_state_names[p->state], smtp_proto_state_names[st]);
	p->state = st;
}

void
smtp_proto__close(struct smtp_proto *p)
{
	p->closing = true;
	smtp_proto__enter(p, SMTP_S_QUIT);
}

/*
 * Queues one reply line.  RFC 2034 4: the enhanced code follows the basic
 * one on every 2xx/4xx/5xx reply except the greeting and EHLO/HELO (enh
 * NULL then).  An out-of-memory here is not recoverable for the session,
 * so it closes, and smtp_proto_feed() reports PR_ENOMEM.
 */
void
smtp_proto__reply(struct smtp_proto *p, int code, const char *enh,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (enh != NULL)
		r = buf_printf(&p->out, "%d %s %s\r\n", code, enh, text);
	else
		r = buf_printf(&p->out, "%d %s\r\n", code, text);
	if (r < 0) {
		p->out_failed = true;
		smtp_proto__close(p);
	}
	if (code >= 400) {
		p->rejects++;
		/* docs/LOGGING.md 3.3: the glue puts client= first. */
		smtp_proto__log(p, 1, "reject command=\"%s\" code=%d dsn=%s "
		    "reply=\"%s\"", p->cmdlog, code, enh ? enh : "-", text);
	}
}

void
smtp_proto__verdict(struct smtp_proto *p, const struct smtp_verdict *v)
{
	struct smtp_policy_facts f;
	struct smtp_verdict limit;
	unsigned delay;

	if (v->check != NULL && v->code != 0)
		/* One line per refusal by a check, grep-able by key; the
		 * glue puts client= first (docs/LOGGING.md 3.3). */
		smtp_proto__log(p, 2, "reject check=%s code=%d dsn=%s "
		    "reason=\"%s\"", v->check, v->code, v->enh ? v->enh : "-",
		    v->text);
	else if (v->code >= 400)
		/* Refusals of the other rules (relaying, unknown users,
		 * sender ownership): the glue counts them by their
		 * enhanced status code (docs/LOGGING.md 6). */
		smtp_proto__log(p, 0, "refused dsn=%s", v->enh ? v->enh :
		    "-");
	if (v->code == 0 && !v->error)
		return;
	if (v->code != 0)
		smtp_proto__reply(p, v->code, v->enh, "%s", v->text);
	if (v->close) {
		smtp_proto__close(p);
		return;
	}
	smtp_proto__facts(p, &f);
	if (smtp_policy_count(&f, &p->errors, v, &limit)) {
		if (!p->closing)
			smtp_proto__verdict(p, &limit);
		return;
	}
	/* The wait is the glue's (a timer): no clock here.  Only one event
	 * is ever pending, and a refusal raises no other. */
	delay = v->error ? smtp_policy_error_delay(&f, p->errors) : 0;
	if (delay > 0 && p->ev.type == SMTP_EV_NONE && !p->closing) {
		p->ev.type = SMTP_EV_DELAY;
		p->ev.delay_ms = delay;
	}
}

void
smtp_proto__reject(struct smtp_proto *p, int code, const char *enh,
    const char *fmt, ...)
{
	struct smtp_verdict v;
	va_list ap;

	va_start(ap, fmt);
	smtp_policy_reject(&v, code, enh, "%s", "");
	vsnprintf(v.text, sizeof(v.text), fmt, ap);
	va_end(ap);
	smtp_proto__verdict(p, &v);
}

void
smtp_proto__facts(const struct smtp_proto *p, struct smtp_policy_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->hostname = p->conf.hostname;
	f->limits = &p->conf.limits;
	f->kind = p->conf.kind;
	f->tls = p->tls;
	f->tls_offered = p->conf.starttls;
	f->plaintext_auth = p->conf.allow_plaintext_auth;
	f->auth_user = p->authed ? p->auth_user : "";
	f->auth_fails = p->auth_fails;
	f->junk = p->junk;
	f->sender = p->tx.sender;
	f->smtputf8 = p->tx.smtputf8;
	f->declared_size = p->tx.declared_size;
	f->rcpt = p->rcpt;
	f->n_rcpt = p->tx.n_rcpt;
	f->spool_failed = p->spool_failed;
	f->spool_full = p->spool_full;
	f->too_big = p->data.too_big;
	f->bare_eol = p->data.bare_eol;
	f->long_line = p->data.long_line;
	f->spf_checked = p->tx.spf_checked;
	f->spf_result = p->tx.spf_result;
	f->spf_explanation = p->tx.spf_explanation;
}

void
smtp_proto_spf_result(struct smtp_proto *p, int result, bool helo,
    const char *identity, const char *explanation)
{
	p->tx.spf_checked = true;
	p->tx.spf_result = result;
	p->tx.spf_helo = helo;
	snprintf(p->tx.spf_identity, sizeof(p->tx.spf_identity), "%s",
	    identity != NULL ? identity : "");
	snprintf(p->tx.spf_explanation, sizeof(p->tx.spf_explanation), "%s",
	    explanation != NULL ? explanation : "");
}

void
smtp_proto_milter_reply(struct smtp_proto *p,
    const struct smtp_milter_reply *r)
{
	p->milter = *r;
}

void
smtp_proto_verify_result(struct smtp_proto *p, const struct smtp_verify *r)
{
	p->verify = *r;
	snprintf(p->verify_domain, sizeof(p->verify_domain), "%s",
	    r->domain != NULL ? r->domain : "");
	p->verify.domain = p->verify_domain;
}

bool
smtp_proto__decide(struct smtp_proto *p, enum smtp_policy_point pt,
    const struct smtp_policy_facts *f)
{
	struct smtp_verdict v;

	smtp_policy_check(pt, f, &v);
	smtp_proto__verdict(p, &v);
	return v.code == 0;
}

bool
smtp_proto__check(struct smtp_proto *p, enum smtp_policy_point pt,
    int status)
{
	struct smtp_policy_facts f;

	smtp_proto__facts(p, &f);
	f.status = status;
	return smtp_proto__decide(p, pt, &f);
}

void
smtp_proto__secret_wipe(struct smtp_proto *p)
{
	if (p->secret != NULL) {
		sodium_free(p->secret); /* sodium_free wipes the pages */
		p->secret = NULL;
	}
	p->ev.user = p->ev.pass = NULL;
}

/* --- Transaction ------------------------------------------------------- */

void
smtp_proto__tx_reset(struct smtp_proto *p)
{
	size_t i;

	for (i = 0; i < p->tx.n_remote; i++)
		free(p->tx.remote[i]);
	free(p->tx.remote);
	memset(&p->milter, 0, sizeof(p->milter));
	free(p->tx.users);
	free(p->tx.remote_rcpt);
	free(p->tx.users_rcpt);
	free(p->tx.rcpts);
	memset(&p->tx, 0, sizeof(p->tx));
	p->users_cap = p->remote_cap = 0;
	p->users_mark = p->remote_mark = 0;
	/* Give back what a big message made us hold (idle sessions stay
	 * small). */
	buf_fini(&p->body);
	p->data_started = false;
	p->spool_failed = false;
	p->spool_full = false;
	p->queued_id[0] = '\0';
	memset(&p->verify, 0, sizeof(p->verify));
	p->verify_domain[0] = '\0';
	buf_fini(&p->from_hdr);
	free(p->from);
	p->from = NULL;
	p->n_from = p->from_pos = 0;
}

void
smtp_proto__tx_rollback(struct smtp_proto *p)
{
	while (p->tx.n_remote > p->remote_mark)
		free(p->tx.remote[--p->tx.n_remote]);
	p->tx.n_users = p->users_mark;
}

int
smtp_proto_rcpt_target(struct smtp_proto *p, int64_t user_id,
    const char *remote)
{
	size_t i;

	if (p->ev.type != SMTP_EV_RCPT && p->ev.type != SMTP_EV_NONE)
		return PR_EINVAL;
	if (remote == NULL) {
		for (i = 0; i < p->tx.n_users; i++)
			if (p->tx.users[i] == user_id)
				return 0;
	} else {
		for (i = 0; i < p->tx.n_remote; i++)
			if (strcasecmp(p->tx.remote[i], remote) == 0)
				return 0;
	}
	if (p->tx.n_users + p->tx.n_remote >= p->conf.limits.targets_max)
		return PR_ENOSPC;
	if (remote == NULL) {
		if (p->tx.n_users == p->users_cap) {
			size_t ncap = p->users_cap ? p->users_cap * 2 : 8;
			int64_t *nu = realloc(p->tx.users, ncap * sizeof(*nu));
			unsigned *ni;

			if (nu == NULL)
				return PR_ENOMEM;
			p->tx.users = nu;
			ni = realloc(p->tx.users_rcpt, ncap * sizeof(*ni));
			if (ni == NULL)
				return PR_ENOMEM;
			p->tx.users_rcpt = ni;
			p->users_cap = ncap;
		}
		p->tx.users_rcpt[p->tx.n_users] = p->tx.n_rcpt;
		p->tx.users[p->tx.n_users++] = user_id;
	} else {
		char *copy;

		if (p->tx.n_remote == p->remote_cap) {
			size_t ncap = p->remote_cap ? p->remote_cap * 2 : 8;
			char **nr = realloc(p->tx.remote, ncap * sizeof(*nr));
			unsigned *ni;

			if (nr == NULL)
				return PR_ENOMEM;
			p->tx.remote = nr;
			ni = realloc(p->tx.remote_rcpt, ncap * sizeof(*ni));
			if (ni == NULL)
				return PR_ENOMEM;
			p->tx.remote_rcpt = ni;
			p->remote_cap = ncap;
		}
		if ((copy = strdup(remote)) == NULL)
			return PR_ENOMEM;
		p->tx.remote_rcpt[p->tx.n_remote] = p->tx.n_rcpt;
		p->tx.remote[p->tx.n_remote++] = copy;
	}
	return 0;
}

void
smtp_proto_queued_as(struct smtp_proto *p, const char *id)
{
	snprintf(p->queued_id, sizeof(p->queued_id), "%s", id);
}

/* --- Lifecycle --------------------------------------------------------- */

int
smtp_proto_new(const struct smtp_proto_conf *conf, struct smtp_proto **p_r)
{
	struct smtp_proto *p;

	/* sodium_malloc() needs it; idempotent and thread-safe. */
	if (sodium_init() < 0)
		return PR_ENOMEM;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return PR_ENOMEM;
	p->conf = *conf;
	if (p->conf.hostname == NULL)
		p->conf.hostname = "localhost";
	p->state = SMTP_S_GREETING;
	p->tls = conf->kind == SMTP_LISTEN_SUBMISSIONS;
	buf_init(&p->out, SMTP_PROTO_OUT_MAX);
	buf_init(&p->line, p->conf.limits.auth_line_max + 1);
	buf_init(&p->body, p->conf.limits.mem_max);
	buf_init(&p->from_hdr, SMTP_PROTO_FROM_HDR_MAX);
	*p_r = p;
	return 0;
}

void
smtp_proto_free(struct smtp_proto **pp)
{
	struct smtp_proto *p = *pp;

	if (p == NULL)
		return;
	smtp_proto__secret_wipe(p);
	smtp_proto__tx_reset(p);
	if (p->line.p != NULL)
		sodium_memzero(p->line.p, p->line.cap);
	buf_fini(&p->line);
	buf_fini(&p->out);
	free(p);
	*pp = NULL;
}

void
smtp_proto_greet(struct smtp_proto *p)
{
	/* RFC 5321 4.3.1; RFC 2034 4: no enhanced code in the greeting. */
	smtp_proto__reply(p, 220, NULL, "%s ESMTP postroom", p->conf.hostname);
}

void
smtp_proto_refuse(struct smtp_proto *p, int code, const char *enh,
    const char *text)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "connect");
	smtp_proto__reply(p, code, enh, "%s", text);
	smtp_proto__close(p);
}

void
smtp_proto_timeout(struct smtp_proto *p)
{
	if (p->closing)
		return;
	snprintf(p->cmdlog, sizeof(p->cmdlog), "timeout");
	smtp_proto__reply(p, 421, "4.4.2", "%s Error: timeout exceeded",
	    p->conf.hostname);
	smtp_proto__close(p);
}

void
smtp_proto_too_slow(struct smtp_proto *p)
{
	if (p->closing)
		return;
	snprintf(p->cmdlog, sizeof(p->cmdlog), "too slow");
	/* RFC 5321 4.5.3.2.5 lets a server time a transfer out; 4.4.2 is
	 * RFC 3463's "bad connection". */
	smtp_proto__reply(p, 421, "4.4.2", "%s Error: data rate too low, "
	    "closing", p->conf.hostname);
	smtp_proto__close(p);
}

bool
smtp_proto_in_transfer(const struct smtp_proto *p)
{
	return p->state == SMTP_S_DATA || p->state == SMTP_S_BDAT ||
	    p->state == SMTP_S_CHUNK;
}

bool
smtp_proto_verifies(const struct smtp_proto *p)
{
	/* An authenticated submission carries no A-R of ours. */
	return p->conf.verify && !p->authed && p->conf.kind == SMTP_LISTEN_MX;
}

/* True while a message is being received or an event is outstanding:
 * a draining daemon lets those finish. */
static bool
smtp_proto_busy(const struct smtp_proto *p)
{
	return p->ev.type != SMTP_EV_NONE || p->state == SMTP_S_DATA ||
	    p->state == SMTP_S_CHUNK;
}

static void
smtp_proto_drain_check(struct smtp_proto *p)
{
	if (!p->draining || p->closing || smtp_proto_busy(p))
		return;
	snprintf(p->cmdlog, sizeof(p->cmdlog), "shutdown");
	smtp_proto__reply(p, 421, "4.3.2", "%s Service shutting down",
	    p->conf.hostname);
	smtp_proto__close(p);
}

void
smtp_proto_shutdown(struct smtp_proto *p)
{
	p->draining = true;
	smtp_proto_drain_check(p);
}

bool
smtp_proto_closing(const struct smtp_proto *p)
{
	return p->closing;
}

bool
smtp_proto_line_pending(const struct smtp_proto *p)
{
	return p->line.len > 0 && p->state != SMTP_S_DATA &&
	    p->state != SMTP_S_CHUNK && !p->closing;
}

struct buf *
smtp_proto_out(struct smtp_proto *p)
{
	return &p->out;
}

const struct smtp_event *
smtp_proto_event(struct smtp_proto *p)
{
	return p->ev.type == SMTP_EV_NONE ? NULL : &p->ev;
}

enum smtp_state
smtp_proto_state(const struct smtp_proto *p)
{
	return p->state;
}

const char *
smtp_proto_auth_user(const struct smtp_proto *p)
{
	return p->auth_user;
}

void
smtp_proto_auth_name(struct smtp_proto *p, const char *name)
{
	if (p->ev.type == SMTP_EV_AUTH && !p->authed)
		snprintf(p->auth_user, sizeof(p->auth_user), "%s", name);
}

const char *
smtp_proto_helo(const struct smtp_proto *p)
{
	return p->helo;
}

const char *
smtp_proto_auth_mech(const struct smtp_proto *p)
{
	return p->authed && p->auth_mech_name != NULL ? p->auth_mech_name :
	    "";
}

unsigned
smtp_proto_auth_failures(const struct smtp_proto *p)
{
	return p->auth_fails;
}

unsigned
smtp_proto_messages(const struct smtp_proto *p)
{
	return p->messages;
}

unsigned
smtp_proto_rejects(const struct smtp_proto *p)
{
	return p->rejects;
}

const struct smtp_tx *
smtp_proto_tx(const struct smtp_proto *p)
{
	return &p->tx;
}

void
smtp_proto_tls_started(struct smtp_proto *p, const char *desc)
{
	snprintf(p->tls_desc, sizeof(p->tls_desc), "%s", desc ? desc : "");
	p->tls = true;
	if (p->ev.type == SMTP_EV_STARTTLS)
		p->ev.type = SMTP_EV_NONE;
	/* RFC 3207 4.2: discard all knowledge obtained from the client
	 * before TLS; it must send EHLO again. */
	smtp_proto__secret_wipe(p);
	smtp_proto__tx_reset(p);
	buf_reset(&p->line);
	p->helo[0] = '\0';
	p->esmtp = false;
	p->authed = false;
	p->auth_user[0] = '\0';
	smtp_proto__enter(p, SMTP_S_GREETING);
	smtp_proto_drain_check(p);
}

/* The bound for the line being read: AUTH lines may be longer. */
static size_t
smtp_proto_line_limit(const struct smtp_proto *p, const uint8_t *in,
    size_t n)
{
	char head[5];
	size_t have = p->line.len < 5 ? p->line.len : 5;

	if (p->state == SMTP_S_AUTH)
		return p->conf.limits.auth_line_max;
	memcpy(head, p->line.p ? p->line.p : (const uint8_t *)"", have);
	if (have < 5) {
		size_t more = n < 5 - have ? n : 5 - have;

		memcpy(head + have, in, more);
		have += more;
	}
	if (have == 5 && strncasecmp(head, "AUTH ", 5) == 0)
		return p->conf.limits.auth_line_max;
	return p->conf.limits.line_max;
}

static ssize_t
smtp_proto_feed_line(struct smtp_proto *p, const uint8_t *in, size_t len)
{
	const uint8_t *lf = memchr(in, '\n', len);
	size_t n = lf != NULL ? (size_t)(lf - in) + 1 : len;
	size_t llen;
	int r;

	/* Checked before the newline arrives, so an endless line costs
	 * no memory (RFC 5321 4.5.3.1.4). */
	if (p->line.len + n > smtp_proto_line_limit(p, in, n)) {
		struct smtp_verdict v;

		snprintf(p->cmdlog, sizeof(p->cmdlog), "(long line)");
		/* What follows would be read as commands: close. */
		smtp_policy_reject(&v, 500, "5.5.2", "Line too long");
		v.close = true;
		smtp_proto__verdict(p, &v);
		buf_reset(&p->line);
		return (ssize_t)len;
	}
	if ((r = buf_append(&p->line, in, n)) < 0)
		return r;
	if (lf == NULL)
		return (ssize_t)n;
	/* Commands end with LF; a CR before it is dropped.  (Only the
	 * message data is strict about CRLF, where it matters.) */
	llen = p->line.len - 1;
	if (llen > 0 && p->line.p[llen - 1] == '\r')
		llen--;
	p->line.p[llen] = '\0';
	smtp_cmd__line(p, (char *)p->line.p, llen);
	/* The line may have held a password (AUTH). */
	if (p->line.p != NULL) {
		sodium_memzero(p->line.p, p->line.len);
		buf_reset(&p->line);
		buf_shrink(&p->line, 0);
	}
	return (ssize_t)n;
}

/* --- Message data ------------------------------------------------------ */

void
smtp_proto__data_begin(struct smtp_proto *p, enum smtp_data_mode mode)
{
	smtp_data_init(&p->data, mode, p->conf.limits.data_max,
	    p->conf.limits.text_line_max);
	buf_init(&p->body, p->conf.limits.mem_max);
	buf_fini(&p->from_hdr);
	buf_init(&p->from_hdr, SMTP_PROTO_FROM_HDR_MAX);
	/* Only a submission's header addresses are checked. */
	p->data.fields = p->authed ? &p->from_hdr : NULL;
	p->data_started = true;
}

static void
smtp_proto_tx_end(struct smtp_proto *p)
{
	smtp_proto__tx_reset(p);
	smtp_proto__enter(p, SMTP_S_READY);
	smtp_proto_drain_check(p);
}

/* The next header address to ask about, or the delivery. */
static void
smtp_proto_from_next(struct smtp_proto *p)
{
	if (p->from_pos < p->n_from) {
		p->ev.type = SMTP_EV_FROM;
		p->ev.addr = p->from[p->from_pos];
		return;
	}
	/* RFC 8601 5, RFC 7489 6.6: the MX listener's messages are checked
	 * before they are delivered. */
	p->ev.type = smtp_proto_verifies(p) ? SMTP_EV_VERIFY :
	    SMTP_EV_DELIVER;
	p->ev.data = p->body.p;
	p->ev.len = p->body.len;
}

static void
smtp_proto_complete_verify(struct smtp_proto *p, int status)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "end of data");
	smtp_proto__facts(p, &f);
	f.status = status;
	f.from_status = p->verify.from_status;
	f.dmarc_checked = p->verify.dmarc_checked;
	f.dmarc_result = p->verify.dmarc_result;
	f.dmarc_apply = p->verify.dmarc_apply;
	f.dmarc_temp = p->verify.dmarc_temp;
	f.dmarc_report = p->conf.dmarc_report;
	f.dmarc_domain = p->verify.domain;
	smtp_policy_check(SMTP_POLICY_VERIFY_DONE, &f, &v);
	if (v.code != 0) {
		smtp_proto__verdict(p, &v);
		smtp_proto_tx_end(p);
		return;
	}
	if (v.mark) {
		snprintf(p->tx.spam_reason, sizeof(p->tx.spam_reason), "%s",
		    v.text);
		smtp_proto__log(p, 1, "marked check=%s reason=\"%s\"",
		    v.check != NULL ? v.check : "-", v.text);
	}
	p->ev.type = SMTP_EV_DELIVER;
	p->ev.data = p->body.p;
	p->ev.len = p->body.len;
}

/* The addresses of the header From: and Sender: fields (RFC 5322 3.4
 * address-list).  Returns false when they could not all be read. */
static bool
smtp_proto_from_parse(struct smtp_proto *p)
{
	size_t n = 0;

	if (p->data.fields_overflow)
		return false;
	if (p->from_hdr.len == 0)
		return true;
	p->from = calloc(SMTP_PROTO_FROM_MAX, sizeof(*p->from));
	if (p->from == NULL || addr_list_parse((const char *)p->from_hdr.p,
	    p->from_hdr.len, p->from, SMTP_PROTO_FROM_MAX, &n) < 0)
		return false;
	p->n_from = (unsigned)n;
	return true;
}

/* The message is complete (DATA end or BDAT LAST): deliver or refuse. */
static void
smtp_proto_data_end(struct smtp_proto *p)
{
	struct smtp_policy_facts f;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "end of data");
	if (!smtp_proto__check(p, SMTP_POLICY_MESSAGE, 0)) {
		smtp_proto_tx_end(p);
		return;
	}
	p->tx.size = p->data.size;
	p->tx.has_msgid = p->data.has_msgid;
	p->tx.has_date = p->data.has_date;
	smtp_proto__facts(p, &f);
	f.from_bad = p->authed && !smtp_proto_from_parse(p);
	f.n_from = p->n_from;
	if (!smtp_proto__decide(p, SMTP_POLICY_FROM, &f)) {
		smtp_proto_tx_end(p);
		return;
	}
	p->from_pos = 0;
	smtp_proto_from_next(p);
}

static void
smtp_proto_complete_from(struct smtp_proto *p, int status)
{
	struct smtp_policy_facts f;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "end of data");
	smtp_proto__facts(p, &f);
	f.status = status;
	f.from_addr = p->from[p->from_pos];
	if (!smtp_proto__decide(p, SMTP_POLICY_FROM_DONE, &f)) {
		smtp_proto_tx_end(p);
		return;
	}
	p->from_pos++;
	smtp_proto_from_next(p);
}

/* The message buffer is full: hand it to the glue for the spool. */
static void
smtp_proto_spool(struct smtp_proto *p)
{
	p->ev.type = SMTP_EV_SPOOL;
	p->ev.data = p->body.p;
	p->ev.len = p->body.len;
}

static ssize_t
smtp_proto_feed_data(struct smtp_proto *p, const uint8_t *in, size_t len)
{
	size_t used;
	int r;

	r = smtp_data_feed(&p->data, in, len, &used, &p->body);
	if (r < 0)
		return r;
	if (r == 1)
		smtp_proto_data_end(p);
	else if (used < len)
		smtp_proto_spool(p);
	return (ssize_t)used;
}

void
smtp_proto__chunk_end(struct smtp_proto *p)
{
	int r;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "BDAT");
	if (p->chunk_verdict.code != 0) {
		smtp_proto__enter(p, p->chunk_prev);
		smtp_proto__verdict(p, &p->chunk_verdict);
		return;
	}
	if (p->data.too_big || p->spool_failed) {
		struct smtp_policy_facts f;

		/* RFC 3030 2: a failed chunk ends the transaction.  The
		 * line checks wait for the end of the message. */
		smtp_proto__facts(p, &f);
		f.bare_eol = f.long_line = false;
		smtp_proto__decide(p, SMTP_POLICY_MESSAGE, &f);
		smtp_proto_tx_end(p);
		return;
	}
	if (!p->chunk_last) {
		smtp_proto__enter(p, SMTP_S_BDAT);
		smtp_proto__reply(p, 250, "2.0.0", "%llu octets received",
		    (unsigned long long)p->data.size);
		return;
	}
	/* The last line may lack its CRLF; make room for it. */
	p->body.max = p->conf.limits.mem_max + 2;
	if ((r = smtp_data_finish(&p->data, &p->body)) < 0)
		p->spool_failed = true;
	smtp_proto_data_end(p);
}

static ssize_t
smtp_proto_feed_chunk(struct smtp_proto *p, const uint8_t *in, size_t len)
{
	size_t n = len < p->chunk_left ? len : (size_t)p->chunk_left;
	size_t used = n;
	int r;

	if (p->chunk_verdict.code == 0) {
		if ((r = smtp_data_feed(&p->data, in, n, &used,
		    &p->body)) < 0)
			return r;
	}
	p->chunk_left -= used;
	if (used < n)
		smtp_proto_spool(p);
	else if (p->chunk_left == 0)
		smtp_proto__chunk_end(p);
	return (ssize_t)used;
}

ssize_t
smtp_proto_feed(struct smtp_proto *p, const uint8_t *in, size_t len)
{
	size_t off = 0;
	ssize_t n;

	if (p->out_failed)
		return PR_ENOMEM;
	if (p->closing)
		return (ssize_t)len;
	while (off < len && p->ev.type == SMTP_EV_NONE && !p->closing) {
		switch (p->state) {
		case SMTP_S_DATA:
			n = smtp_proto_feed_data(p, in + off, len - off);
			break;
		case SMTP_S_CHUNK:
			n = smtp_proto_feed_chunk(p, in + off, len - off);
			break;
		default:
			if (p->out.len >= SMTP_PROTO_OUT_HIGH)
				return (ssize_t)off;
			n = smtp_proto_feed_line(p, in + off, len - off);
			break;
		}
		if (n < 0)
			return n;
		off += (size_t)n;
	}
	if (p->out_failed)
		return PR_ENOMEM;
	/* After STARTTLS (RFC 3207 5) or once closing, the rest is void. */
	if (p->closing || p->ev.type == SMTP_EV_STARTTLS)
		return (ssize_t)len;
	return (ssize_t)off;
}

/* --- Completions ------------------------------------------------------- */

static void
smtp_proto_complete_deliver(struct smtp_proto *p, int status)
{
	struct smtp_policy_facts f;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "end of data");
	smtp_proto__facts(p, &f);
	f.status = status;
	f.milter = p->milter.outcome;
	f.milter_code = p->milter.code;
	f.milter_enh = p->milter.enh;
	f.milter_text = p->milter.text;
	if (smtp_proto__decide(p, SMTP_POLICY_DELIVER_DONE, &f)) {
		p->messages++;
		/* A session that moves mail is no junk: an MTA that sends RSET
		 * between the messages of a cached connection is not limited. */
		p->junk = 0;
		smtp_proto__reply(p, 250, "2.0.0", "Ok: queued as %s",
		    p->queued_id);
	}
	smtp_proto_tx_end(p);
}

void
smtp_proto_complete(struct smtp_proto *p, int status)
{
	enum smtp_event_type type = p->ev.type;

	if (type == SMTP_EV_NONE)
		return;
	if (type == SMTP_EV_STARTTLS) {
		/* Success is smtp_proto_tls_started(); after "220 Ready to
		 * start TLS" nothing can be said in the clear. */
		if (status != 0) {
			p->ev.type = SMTP_EV_NONE;
			smtp_proto__close(p);
		}
		return;
	}
	/* Handlers below may read ev (user, addr) but see no event. */
	p->ev.type = SMTP_EV_NONE;
	switch (type) {
	case SMTP_EV_AUTH:
		smtp_cmd__auth_done(p, status);
		break;
	case SMTP_EV_MAIL:
		smtp_cmd__mail_done(p, status);
		break;
	case SMTP_EV_SPF:
		smtp_cmd__spf_done(p, status);
		break;
	case SMTP_EV_RCPT:
		smtp_cmd__rcpt_done(p, status);
		break;
	case SMTP_EV_SPOOL:
		if (status == 0) {
			p->tx.spooled = true;
		} else {
			/* Keep reading to the end of the message, then 451. */
			p->spool_failed = true;
			p->spool_full = status == PR_EFULL;
			smtp_data_discard(&p->data);
		}
		buf_reset(&p->body);
		break;
	case SMTP_EV_FROM:
		smtp_proto_complete_from(p, status);
		break;
	case SMTP_EV_VERIFY:
		smtp_proto_complete_verify(p, status);
		break;
	case SMTP_EV_DELIVER:
		smtp_proto_complete_deliver(p, status);
		break;
	case SMTP_EV_ETRN:
		smtp_cmd__etrn_done(p, status);
		break;
	case SMTP_EV_MILTER:
		smtp_cmd__milter_done(p, status);
		break;
	case SMTP_EV_DELAY:
		break;
	default:
		break;
	}
	if (p->ev.type == SMTP_EV_NONE) {
		p->ev.addr = NULL;
		p->ev.data = NULL;
		p->ev.len = 0;
	}
	smtp_proto_drain_check(p);
}

/* --- Trace fields ------------------------------------------------------ */

int
smtp_proto_trace(const struct smtp_proto *p, const struct smtp_trace *t,
    struct buf *out)
{
	const char *with;
	const char *v6 = strchr(t->peer_ip, ':') != NULL ? "IPv6:" : "";
	int r = 0;

	/* RFC 3848 2 and RFC 6531 3.7.3: how the message came in. */
	if (!p->esmtp)
		with = "SMTP";
	else if (p->tx.smtputf8)
		with = p->tls ? (p->authed ? "UTF8SMTPSA" : "UTF8SMTPS") :
		    (p->authed ? "UTF8SMTPA" : "UTF8SMTP");
	else
		with = p->tls ? (p->authed ? "ESMTPSA" : "ESMTPS") :
		    (p->authed ? "ESMTPA" : "ESMTP");

	/* RFC 5321 4.4: the final delivery adds Return-Path. */
	r |= buf_printf(out, "Return-Path: <%s>\r\n", p->tx.sender);
	if (t->authres != NULL)
		r |= buf_printf(out, "%s", t->authres);
	if (p->tx.spam_reason[0] != '\0')
		r |= buf_printf(out, "X-Spam-Flag: YES\r\nX-Spam-Reason: %s\r\n",
		    p->tx.spam_reason);
	/* Received: from <EHLO name> (address-literal) ... by ... with ... id
	 * ... [for ...] ; date.  No reverse DNS: the literal is the truth. */
	r |= buf_printf(out, "Received: from %s ([%s%s])\r\n", p->helo, v6,
	    t->peer_ip);
	if (p->tls && p->tls_desc[0] != '\0') {
		size_t vl = strcspn(p->tls_desc, " ");
		const char *cipher = p->tls_desc + vl;

		while (*cipher == ' ')
			cipher++;
		r |= buf_printf(out, "\t(using %.*s with cipher %s)\r\n",
		    (int)vl, p->tls_desc, cipher);
	}
	if (p->authed)
		r |= buf_printf(out, "\t(authenticated as %s)\r\n",
		    p->auth_user);
	r |= buf_printf(out, "\tby %s (postroom) with %s id %s",
	    p->conf.hostname, with, t->id);
	/* RFC 5321 7.2: "for" names a recipient only when there is one. */
	if (p->tx.n_rcpt == 1)
		r |= buf_printf(out, "\r\n\tfor <%s>", p->tx.first_rcpt);
	r |= buf_printf(out, "; %s\r\n", t->date);
	if (p->authed) {
		/* RFC 6409 8.2, 8.3: a submission server may add these; an
		 * authenticated client is a submission on any port. */
		if (!p->tx.has_date)
			r |= buf_printf(out, "Date: %s\r\n", t->date);
		if (!p->tx.has_msgid && t->msgid != NULL)
			r |= buf_printf(out, "Message-ID: %s\r\n", t->msgid);
	}
	return r != 0 ? PR_ENOSPC : 0;
}
