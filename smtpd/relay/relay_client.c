/*
 * relay_client.c - the SMTP client protocol, sans I/O (see relay_client.h).
 *
 * The client answers each complete reply by appending the next command(s)
 * to `out` and, when the glue must act, by raising an event.  Decisions
 * about recipients follow RFC 5321: a 2xx to RCPT only means "will try",
 * the final dot decides; a 4xx is temporary, a 5xx permanent, per
 * recipient.
 */
#include "relay_client_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "dsn.h"
#include "err.h"
#include "xtext.h"

#define RELAY_CLIENT_OUT_MAX (256 * 1024)

static const char *const relay_client_state_names[] = {
	[RELAY_CLIENT_S_GREETING] = "GREETING",
	[RELAY_CLIENT_S_EHLO] = "EHLO",
	[RELAY_CLIENT_S_HELO] = "HELO",
	[RELAY_CLIENT_S_STARTTLS] = "STARTTLS",
	[RELAY_CLIENT_S_TLS] = "TLS",
	[RELAY_CLIENT_S_AUTH] = "AUTH",
	[RELAY_CLIENT_S_AUTH_PLAIN] = "AUTH-PLAIN",
	[RELAY_CLIENT_S_AUTH_USER] = "AUTH-USER",
	[RELAY_CLIENT_S_AUTH_PASS] = "AUTH-PASS",
	[RELAY_CLIENT_S_MAIL] = "MAIL",
	[RELAY_CLIENT_S_RCPT] = "RCPT",
	[RELAY_CLIENT_S_DATA] = "DATA",
	[RELAY_CLIENT_S_BODY] = "BODY",
	[RELAY_CLIENT_S_DOT] = "DOT",
	[RELAY_CLIENT_S_QUIT] = "QUIT",
	[RELAY_CLIENT_S_CLOSED] = "CLOSED",
	[RELAY_CLIENT_S_IDLE] = "IDLE",
	[RELAY_CLIENT_S_RSET] = "RSET",
};

const char *
relay_client_state_name(enum relay_client_state st)
{
	if ((size_t)st >= sizeof(relay_client_state_names) /
	    sizeof(relay_client_state_names[0]))
		return "?";
	return relay_client_state_names[st];
}

/* The message a session carries next, its recipients undecided. */
static void
relay_client_set_rcpts(struct relay_client *c,
    const struct relay_client_params *params,
    struct relay_client_rcpt *rcpts, size_t n_rcpts)
{
	size_t i;

	c->params = params;
	c->rcpts = rcpts;
	c->n_rcpts = n_rcpts;
	for (i = 0; i < n_rcpts; i++) {
		rcpts[i].status = RELAY_RCPT_PENDING;
		rcpts[i].reply[0] = '\0';
	}
}

int
relay_client_init(struct relay_client *c,
    const struct relay_client_params *params,
    struct relay_client_rcpt *rcpts, size_t n_rcpts)
{
	memset(c, 0, sizeof(*c));
	if (n_rcpts == 0)
		return PR_EINVAL;
	c->state = RELAY_CLIENT_S_GREETING;
	relay_client_set_rcpts(c, params, rcpts, n_rcpts);
	buf_init(&c->out, RELAY_CLIENT_OUT_MAX);
	if (params->tls_implicit) {
		/* RFC 8314 3.3: the handshake comes first, the greeting
		 * inside TLS. */
		c->state = RELAY_CLIENT_S_TLS;
		c->event = RELAY_CLIENT_EV_STARTTLS;
	}
	return 0;
}

void
relay_client_fini(struct relay_client *c)
{
	relay_client_sent(c);
	buf_fini(&c->out);
}

void
relay_client_sent(struct relay_client *c)
{
	if (c->out.p != NULL)
		sodium_memzero(c->out.p, c->out.cap);
	buf_reset(&c->out);
}

enum relay_client_event
relay_client_next_event(struct relay_client *c)
{
	enum relay_client_event ev = c->event;

	c->event = RELAY_CLIENT_EV_NONE;
	if (ev == RELAY_CLIENT_EV_NONE && c->state == RELAY_CLIENT_S_CLOSED)
		ev = RELAY_CLIENT_EV_CLOSE;
	return ev;
}

void
relay_client_enter(struct relay_client *c, enum relay_client_state st)
{
	c->state = st;
}

/* Commands are short and out is bounded far above what one session
 * queues (a MAIL, RELAY rcpts and a DATA), so a full buffer would be a
 * bug; the session then ends as if the connection had failed. */
void
relay_client_cmd(struct relay_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void
relay_client_cmd(struct relay_client *c, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	if (r == 0)
		r = buf_puts(&c->out, "\r\n");
	if (r < 0)
		relay_client_abort(c, "internal error: command buffer full");
}

/* Ends the transaction: every recipient has a status now (PENDING ones,
 * which can only remain after an internal inconsistency, are retried). */
static void
relay_client_decide(struct relay_client *c, enum relay_client_result res)
{
	size_t i;

	if (c->result != RELAY_CLIENT_R_NONE)
		return;
	c->result = res;
	if (res == RELAY_CLIENT_R_DONE) {
		for (i = 0; i < c->n_rcpts; i++) {
			if (c->rcpts[i].status != RELAY_RCPT_PENDING)
				continue;
			c->rcpts[i].status = RELAY_RCPT_TEMP;
			snprintf(c->rcpts[i].reply, RELAY_REPLY_MAX, "%s",
			    c->error[0] ? c->error : "no answer");
		}
	}
	c->event = RELAY_CLIENT_EV_DONE;
}

/* Decides the session and says goodbye politely, or, when the session
 * is to be kept and the transaction ended in the protocol, waits idle
 * for the next message. */
void
relay_client_quit(struct relay_client *c, enum relay_client_result res)
{
	relay_client_decide(c, res);
	if (c->reuse && res == RELAY_CLIENT_R_DONE &&
	    (c->state == RELAY_CLIENT_S_MAIL ||
	    c->state == RELAY_CLIENT_S_RCPT ||
	    c->state == RELAY_CLIENT_S_DATA ||
	    c->state == RELAY_CLIENT_S_DOT)) {
		relay_client_enter(c, RELAY_CLIENT_S_IDLE);
		return;
	}
	relay_client_cmd(c, "QUIT");
	relay_client_enter(c, RELAY_CLIENT_S_QUIT);
}

int
relay_client_next(struct relay_client *c,
    const struct relay_client_params *params,
    struct relay_client_rcpt *rcpts, size_t n_rcpts)
{
	if (c->state != RELAY_CLIENT_S_IDLE || n_rcpts == 0)
		return PR_EINVAL;
	relay_client_set_rcpts(c, params, rcpts, n_rcpts);
	c->event = RELAY_CLIENT_EV_NONE;
	c->result = RELAY_CLIENT_R_NONE;
	c->error[0] = '\0';
	c->reuse_failed = false;
	/* RFC 5321 4.1.1.5: a clean slate, and a check that the session
	 * still stands before the envelope goes out. */
	relay_client_cmd(c, "RSET");
	relay_client_enter(c, RELAY_CLIENT_S_RSET);
	return 0;
}

void
relay_client_idle_quit(struct relay_client *c)
{
	if (c->state != RELAY_CLIENT_S_IDLE)
		return;
	relay_client_cmd(c, "QUIT");
	relay_client_enter(c, RELAY_CLIENT_S_QUIT);
}

/* Sets the status of every recipient still PENDING. */
static void
relay_client_set_pending(struct relay_client *c, int status,
    const char *reply)
{
	size_t i;

	for (i = 0; i < c->n_rcpts; i++) {
		if (c->rcpts[i].status != RELAY_RCPT_PENDING)
			continue;
		c->rcpts[i].status = status;
		snprintf(c->rcpts[i].reply, RELAY_REPLY_MAX, "%s", reply);
	}
}

static int
relay_client_status_of(int code)
{
	return code >= 500 ? RELAY_RCPT_PERM : RELAY_RCPT_TEMP;
}

void
relay_client_abort(struct relay_client *c, const char *why)
{
	size_t i;

	if (c->state == RELAY_CLIENT_S_CLOSED)
		return;
	if (c->state == RELAY_CLIENT_S_RSET)
		c->reuse_failed = true;
	if (c->result == RELAY_CLIENT_R_NONE) {
		snprintf(c->error, sizeof(c->error), "%s", why);
		if (c->state == RELAY_CLIENT_S_DOT) {
			/* RFC 5321 6.1: the server may have taken the
			 * message; retrying risks a duplicate, never a
			 * loss. */
			for (i = 0; i < c->n_rcpts; i++) {
				if (c->rcpts[i].status != RELAY_RCPT_PENDING)
					continue;
				c->rcpts[i].status = RELAY_RCPT_TEMP;
				snprintf(c->rcpts[i].reply, RELAY_REPLY_MAX,
				    "%s", why);
			}
			relay_client_decide(c, RELAY_CLIENT_R_DONE);
		} else {
			relay_client_decide(c, RELAY_CLIENT_R_NEXT_HOST);
		}
	}
	relay_client_enter(c, RELAY_CLIENT_S_CLOSED);
}

static void relay_client_after_ehlo(struct relay_client *c);

static void
relay_client_ehlo(struct relay_client *c)
{
	memset(&c->ext, 0, sizeof(c->ext));
	c->server_name[0] = '\0';
	relay_client_cmd(c, "EHLO %s", c->params->helo);
	relay_client_enter(c, RELAY_CLIENT_S_EHLO);
}

static bool
relay_client_needs_tls(const struct relay_client *c)
{
	return c->params->tls_required ||
	    (c->params->auth_user != NULL && c->params->auth_user[0] != '\0');
}

/* RFC 3461 4.1, 4.2: the recipient's DSN parameters, for a server that
 * offers DSN (5.2.2.2: to others they are not passed on). */
static void
relay_client_rcpt_cmd(struct relay_client *c, size_t i)
{
	const struct relay_client_rcpt *r = &c->rcpts[i];
	char params[64 + 2 * DSN_ORCPT_MAX], *o = params;
	const char *semi;
	size_t left = sizeof(params);
	int n;

	params[0] = '\0';
	if (c->ext.dsn && r->notify != 0) {
		n = snprintf(o, left, " NOTIFY=%s%s%s%s",
		    r->notify & DSN_NOTIFY_NEVER ? "NEVER" : "",
		    r->notify & DSN_NOTIFY_SUCCESS ? "SUCCESS" : "",
		    (r->notify & DSN_NOTIFY_SUCCESS) &&
		    (r->notify & (DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)) ?
		    "," : "",
		    (r->notify & DSN_NOTIFY_FAILURE) &&
		    (r->notify & DSN_NOTIFY_DELAY) ? "FAILURE,DELAY" :
		    r->notify & DSN_NOTIFY_FAILURE ? "FAILURE" :
		    r->notify & DSN_NOTIFY_DELAY ? "DELAY" : "");
		o += n;
		left -= (size_t)n;
	}
	if (c->ext.dsn && r->orcpt != NULL &&
	    (semi = strchr(r->orcpt, ';')) != NULL &&
	    (size_t)(semi - r->orcpt) + 9 < left) {
		n = snprintf(o, left, " ORCPT=%.*s;", (int)(semi - r->orcpt),
		    r->orcpt);
		if (xtext_encode(semi + 1, c->params->smtputf8, o + n,
		    left - (size_t)n) < 0)
			*o = '\0';
	}
	relay_client_cmd(c, "RCPT TO:<%s>%s", r->address, params);
}

void
relay_client_mail(struct relay_client *c)
{
	const struct relay_client_params *p = c->params;
	char params[160 + DSN_ENVID_MAX * 3];
	size_t i;
	int n = 0;

	/* RFC 6531 3.4: without SMTPUTF8 at the server a UTF-8 envelope
	 * cannot be delivered; that is permanent for this message. */
	if (p->smtputf8 && !c->ext.smtputf8) {
		snprintf(c->error, sizeof(c->error),
		    "553 5.6.7 %s does not support SMTPUTF8, which the "
		    "addresses of this message need",
		    c->server_name[0] ? c->server_name : "server");
		relay_client_set_pending(c, RELAY_RCPT_PERM, c->error);
		relay_client_quit(c, RELAY_CLIENT_R_DONE);
		return;
	}
	/* RFC 1870 6: do not send what the server announced it refuses. */
	if (c->ext.size && c->ext.size_max > 0 && p->size > c->ext.size_max) {
		snprintf(c->error, sizeof(c->error),
		    "552 5.3.4 message size %llu exceeds the fixed limit %llu "
		    "of %s", (unsigned long long)p->size,
		    (unsigned long long)c->ext.size_max,
		    c->server_name[0] ? c->server_name : "server");
		relay_client_set_pending(c, RELAY_RCPT_PERM, c->error);
		relay_client_quit(c, RELAY_CLIENT_R_DONE);
		return;
	}
	params[0] = '\0';
	if (c->ext.size)
		n += snprintf(params + n, sizeof(params) - n, " SIZE=%llu",
		    (unsigned long long)p->size);
	/* A message with 8-bit octets to a server without 8BITMIME is sent
	 * as it is, like Postfix does: refusing would bounce mail that the
	 * server most likely accepts (RFC 6152 3 leaves the choice to the
	 * client between downgrading and returning it). */
	if (p->body_8bit && c->ext.eightbitmime)
		n += snprintf(params + n, sizeof(params) - n,
		    " BODY=8BITMIME");
	if (p->smtputf8)
		n += snprintf(params + n, sizeof(params) - n, " SMTPUTF8");
	/* RFC 3461 4.3, 4.4: passed on to a server that offers DSN. */
	if (c->ext.dsn && p->dsn_ret != DSN_RET_NONE)
		n += snprintf(params + n, sizeof(params) - n, " RET=%s",
		    p->dsn_ret == DSN_RET_FULL ? "FULL" : "HDRS");
	if (c->ext.dsn && p->dsn_envid != NULL && p->dsn_envid[0] != '\0') {
		n += snprintf(params + n, sizeof(params) - n, " ENVID=");
		if (xtext_encode(p->dsn_envid, false, params + n,
		    sizeof(params) - (size_t)n) < 0)
			params[n - 7] = '\0';
	}
	relay_client_cmd(c, "MAIL FROM:<%s>%s", p->sender, params);
	c->mail_ok = false;
	c->n_accepted = 0;
	c->next_rcpt_reply = 0;
	c->data_sent = false;
	if (c->ext.pipelining) {
		/* RFC 2920 3.1: MAIL, every RCPT and DATA in one go. */
		for (i = 0; i < c->n_rcpts; i++)
			relay_client_rcpt_cmd(c, i);
		relay_client_cmd(c, "DATA");
		c->data_sent = true;
	}
	relay_client_enter(c, RELAY_CLIENT_S_MAIL);
}

static void
relay_client_after_ehlo(struct relay_client *c)
{
	const struct relay_client_params *p = c->params;

	/* A loop: the MX host is this server (RFC 5321 5.1, as Postfix
	 * detects it by the name in the greeting). */
	if (c->server_name[0] != '\0' &&
	    strcasecmp(c->server_name, p->helo) == 0) {
		snprintf(c->error, sizeof(c->error),
		    "554 5.4.6 mail loops back to myself (%s)",
		    c->server_name);
		relay_client_set_pending(c, RELAY_RCPT_PERM, c->error);
		relay_client_quit(c, RELAY_CLIENT_R_DONE);
		return;
	}
	/* Opportunistic STARTTLS, RFC 3207: whenever offered. */
	if (!c->tls_active && c->ext.starttls && p->tls_possible) {
		relay_client_cmd(c, "STARTTLS");
		relay_client_enter(c, RELAY_CLIENT_S_STARTTLS);
		return;
	}
	if (!c->tls_active && relay_client_needs_tls(c)) {
		snprintf(c->error, sizeof(c->error),
		    "%s offers no STARTTLS; TLS is required%s",
		    c->server_name[0] ? c->server_name : "server",
		    p->auth_user != NULL && p->auth_user[0] != '\0' ?
		    " before AUTH" : "");
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
		return;
	}
	if (p->auth_user != NULL && p->auth_user[0] != '\0') {
		relay_client__auth_start(c);
		return;
	}
	relay_client_mail(c);
}

/* The server refused STARTTLS (non-220): opportunistic TLS goes on in
 * plaintext, unless TLS is required (then after_ehlo gives up). */
static void
relay_client_no_tls(struct relay_client *c)
{
	c->ext.starttls = false;
	relay_client_after_ehlo(c);
}

void
relay_client_tls_done(struct relay_client *c, bool ok)
{
	if (c->state != RELAY_CLIENT_S_TLS)
		return;
	if (!ok) {
		relay_client_abort(c, "TLS handshake failed");
		return;
	}
	c->tls_active = true;
	if (c->params->tls_implicit) {
		/* RFC 8314 3.3: now the server greets us. */
		relay_client_enter(c, RELAY_CLIENT_S_GREETING);
		return;
	}
	/* RFC 3207 4.2: forget what we knew and ask again. */
	relay_client_ehlo(c);
}

void
relay_client_body_done(struct relay_client *c)
{
	if (c->state == RELAY_CLIENT_S_BODY)
		relay_client_enter(c, RELAY_CLIENT_S_DOT);
}

uint64_t
relay_client_timeout_ms(const struct relay_client *c)
{
	/* RFC 5321 4.5.3.2: initial 220 5 min, MAIL 5, RCPT 5, DATA
	 * initiation 2, data block 3, DATA termination 10.  EHLO, STARTTLS
	 * and AUTH get 5 min like MAIL (Postfix smtp_helo_timeout). */
	switch (c->state) {
	case RELAY_CLIENT_S_DATA:
		/* Pipelined, the DATA reply comes after the RCPT ones. */
		return 2 * 60 * 1000;
	case RELAY_CLIENT_S_BODY:
		return 3 * 60 * 1000;
	case RELAY_CLIENT_S_DOT:
		return 10 * 60 * 1000;
	case RELAY_CLIENT_S_QUIT:
		return 60 * 1000;
	default:
		return 5 * 60 * 1000;
	}
}

/* After every RCPT has its reply (and, pipelined, DATA was sent). */
static void
relay_client_rcpts_answered(struct relay_client *c)
{
	if (c->data_sent) {
		relay_client_enter(c, RELAY_CLIENT_S_DATA);
		return;
	}
	if (c->n_accepted == 0) {
		relay_client_quit(c, RELAY_CLIENT_R_DONE);
		return;
	}
	relay_client_cmd(c, "DATA");
	c->data_sent = true;
	relay_client_enter(c, RELAY_CLIENT_S_DATA);
}

void
relay_client__reply(struct relay_client *c, int code, const char *reply)
{
	struct relay_client_rcpt *r;
	int klass = code / 100;

	/* RFC 5321 3.8: 421 means the server is closing the channel,
	 * whatever command it answers. */
	if (code == 421 && c->state != RELAY_CLIENT_S_QUIT) {
		relay_client_abort(c, reply);
		return;
	}
	switch (c->state) {
	case RELAY_CLIENT_S_GREETING:
		if (klass == 2) {
			relay_client_ehlo(c);
			return;
		}
		snprintf(c->error, sizeof(c->error), "%s", reply);
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
		return;
	case RELAY_CLIENT_S_EHLO:
		if (klass == 2) {
			relay_client_after_ehlo(c);
			return;
		}
		/* After STARTTLS an EHLO refusal ends it: HELO would
		 * lose what TLS was for.  Implicit TLS has no such
		 * plaintext EHLO to compare with. */
		if ((!c->tls_active || c->params->tls_implicit) &&
		    !c->helo_fallback) {
			/* RFC 5321 3.2: an old server; try HELO. */
			c->helo_fallback = true;
			memset(&c->ext, 0, sizeof(c->ext));
			relay_client_cmd(c, "HELO %s", c->params->helo);
			relay_client_enter(c, RELAY_CLIENT_S_HELO);
			return;
		}
		snprintf(c->error, sizeof(c->error), "%s", reply);
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
		return;
	case RELAY_CLIENT_S_HELO:
		if (klass == 2) {
			relay_client_after_ehlo(c);
			return;
		}
		snprintf(c->error, sizeof(c->error), "%s", reply);
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
		return;
	case RELAY_CLIENT_S_STARTTLS:
		if (code == 220) {
			relay_client_enter(c, RELAY_CLIENT_S_TLS);
			c->event = RELAY_CLIENT_EV_STARTTLS;
			return;
		}
		relay_client_no_tls(c);
		return;
	case RELAY_CLIENT_S_AUTH:
	case RELAY_CLIENT_S_AUTH_PLAIN:
	case RELAY_CLIENT_S_AUTH_USER:
	case RELAY_CLIENT_S_AUTH_PASS:
		if (relay_client__auth_reply(c, code, reply))
			return;
		break;
	case RELAY_CLIENT_S_MAIL:
		if (klass == 2) {
			c->mail_ok = true;
		} else {
			/* The whole transaction fails with this reply;
			 * pipelined RCPT and DATA replies still follow. */
			relay_client_set_pending(c,
			    relay_client_status_of(code), reply);
		}
		if (c->ext.pipelining) {
			relay_client_enter(c, RELAY_CLIENT_S_RCPT);
		} else if (c->mail_ok) {
			relay_client_rcpt_cmd(c, 0);
			relay_client_enter(c, RELAY_CLIENT_S_RCPT);
		} else {
			relay_client_quit(c, RELAY_CLIENT_R_DONE);
		}
		return;
	case RELAY_CLIENT_S_RCPT:
		r = &c->rcpts[c->next_rcpt_reply++];
		if (c->mail_ok) {
			if (klass == 2) {
				c->n_accepted++;
			} else {
				r->status = relay_client_status_of(code);
				snprintf(r->reply, RELAY_REPLY_MAX, "%s",
				    reply);
			}
		}
		if (c->next_rcpt_reply < c->n_rcpts) {
			if (!c->ext.pipelining)
				relay_client_rcpt_cmd(c, c->next_rcpt_reply);
			return;
		}
		relay_client_rcpts_answered(c);
		return;
	case RELAY_CLIENT_S_DATA:
		if (code == 354) {
			if (c->mail_ok && c->n_accepted > 0) {
				relay_client_enter(c, RELAY_CLIENT_S_BODY);
				c->event = RELAY_CLIENT_EV_BODY;
				return;
			}
			/* RFC 2920 3.1: pipelined DATA was accepted
			 * although no recipient was; end it empty. */
			relay_client_cmd(c, ".");
			relay_client_decide(c, RELAY_CLIENT_R_DONE);
			relay_client_enter(c, RELAY_CLIENT_S_DOT);
			return;
		}
		if (c->mail_ok && c->n_accepted > 0)
			relay_client_set_pending(c,
			    relay_client_status_of(code), reply);
		relay_client_quit(c, RELAY_CLIENT_R_DONE);
		return;
	case RELAY_CLIENT_S_DOT:
		if (c->result != RELAY_CLIENT_R_NONE) {
			/* The empty message after a pipelined DATA. */
			relay_client_quit(c, RELAY_CLIENT_R_DONE);
			return;
		}
		relay_client_set_pending(c,
		    klass == 2 ? RELAY_RCPT_OK : relay_client_status_of(code),
		    reply);
		relay_client_quit(c, RELAY_CLIENT_R_DONE);
		return;
	case RELAY_CLIENT_S_QUIT:
		relay_client_enter(c, RELAY_CLIENT_S_CLOSED);
		return;
	case RELAY_CLIENT_S_RSET:
		if (klass == 2) {
			relay_client_mail(c);
			return;
		}
		c->reuse_failed = true;
		snprintf(c->error, sizeof(c->error), "%s", reply);
		c->reuse = false;
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
		return;
	case RELAY_CLIENT_S_IDLE:
		/* Between transactions nothing is asked: a server that
		 * speaks now is closing (a 421 is handled above). */
		relay_client_abort(c, reply);
		return;
	case RELAY_CLIENT_S_TLS:
	case RELAY_CLIENT_S_BODY:
	case RELAY_CLIENT_S_CLOSED:
		/* A reply nothing asked for. */
		relay_client_abort(c, "unexpected reply from server");
		return;
	}
	/* AUTH failed: with a smarthost this is a configuration problem;
	 * the message waits in the queue until it is fixed. */
	snprintf(c->error, sizeof(c->error), "authentication failed: %s",
	    reply);
	relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
}
