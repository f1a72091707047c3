/* smtp_proto.c - the SMTP server protocol core (sans-I/O). */
#include "smtp_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "err.h"
#include "sasl.h"

/* Replies are held until the glue writes them; past this much the core
 * stops reading commands so that a pipelining client cannot make the
 * output grow without bound. */
#define SMTP_PROTO_OUT_HIGH (16 * 1024)
#define SMTP_PROTO_OUT_MAX (256 * 1024)
#define SMTP_PROTO_HELO_MAX 255
#define SMTP_PROTO_CMDLOG_MAX (ADDR_MAX + 32)

enum smtp_proto_auth_mech { SMTP_AUTH_PLAIN = 1, SMTP_AUTH_LOGIN };

struct smtp_proto {
	struct smtp_proto_conf conf;
	enum smtp_state state;
	struct buf out;
	struct buf line;        /* a partial command line */
	struct smtp_event ev;
	bool closing;
	bool draining;          /* smtp_proto_shutdown() was called */
	bool esmtp;             /* EHLO (not HELO) */
	bool tls;
	bool authed;
	char helo[SMTP_PROTO_HELO_MAX + 1];
	char auth_user[ADDR_MAX];
	char tls_desc[128];
	char cmdlog[SMTP_PROTO_CMDLOG_MAX + 1]; /* current command, for logs */
	unsigned auth_fails, bad_cmds, messages, rejects;

	/* AUTH exchange in progress. */
	enum smtp_proto_auth_mech auth_mech;
	int auth_step;
	char *secret;           /* sodium_malloc: user, then password */

	/* Transaction. */
	struct smtp_tx tx;
	size_t users_cap, remote_cap;
	size_t users_mark, remote_mark; /* rollback point of a RCPT */
	char rcpt[ADDR_MAX];            /* RCPT being resolved */
	char queued_id[64];
	struct buf body;                /* message octets not yet spooled */
	struct smtp_data data;
	bool data_started;
	bool spool_failed;

	/* BDAT chunk being read. */
	uint64_t chunk_left;
	bool chunk_last;
	int chunk_reject;               /* reply code if discarding, or 0 */
	const char *chunk_reject_text;
	enum smtp_state chunk_prev;
};

#define SMTP_SECRET_PASS(p) ((p)->secret + SASL_USER_MAX)

static void smtp_proto_reply(struct smtp_proto *p, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void smtp_proto_log(struct smtp_proto *p, int level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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
	l->auth_fail_max = 3;
	l->mem_max = 128 * 1024;
}

static void
smtp_proto_log(struct smtp_proto *p, int level, const char *fmt, ...)
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

/* The one place where the state changes (STYLE B.5). */
static void
smtp_proto_enter(struct smtp_proto *p, enum smtp_state st)
{
	if (p->state == st)
		return;
	smtp_proto_log(p, 0, "state %s -> %s", smtp_proto_state_names[p->state],
	    smtp_proto_state_names[st]);
	p->state = st;
}

static void
smtp_proto_close(struct smtp_proto *p)
{
	p->closing = true;
	smtp_proto_enter(p, SMTP_S_QUIT);
}

/*
 * Queues one reply line.  RFC 2034 4: the enhanced code follows the basic
 * one on every 2xx/4xx/5xx reply except the greeting and EHLO/HELO (enh
 * NULL then).  An out-of-memory here is not recoverable for the session,
 * so it closes.
 */
static void
smtp_proto_reply(struct smtp_proto *p, int code, const char *enh,
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
	if (r < 0)
		smtp_proto_close(p);
	if (code >= 400) {
		p->rejects++;
		smtp_proto_log(p, 1, "reject: %s: %d %s %s", p->cmdlog, code,
		    enh ? enh : "", text);
	}
}

/* A client error (bad syntax, wrong sequence): counted, and past
 * bad_cmd_max the session ends (STYLE C.11, chasquid). */
static void
smtp_proto_bad(struct smtp_proto *p)
{
	if (++p->bad_cmds < p->conf.limits.bad_cmd_max || p->closing)
		return;
	smtp_proto_reply(p, 421, "4.7.0", "%s Too many errors, closing",
	    p->conf.hostname);
	smtp_proto_close(p);
}

static void
smtp_proto_secret_wipe(struct smtp_proto *p)
{
	if (p->secret != NULL) {
		sodium_free(p->secret); /* sodium_free wipes the pages */
		p->secret = NULL;
	}
	p->ev.user = p->ev.pass = NULL;
}

/* --- Transaction ------------------------------------------------------- */

static void
smtp_proto_tx_reset(struct smtp_proto *p)
{
	size_t i;

	for (i = 0; i < p->tx.n_remote; i++)
		free(p->tx.remote[i]);
	free(p->tx.remote);
	free(p->tx.users);
	memset(&p->tx, 0, sizeof(p->tx));
	p->users_cap = p->remote_cap = 0;
	p->users_mark = p->remote_mark = 0;
	/* Give back what a big message made us hold (idle sessions stay
	 * small). */
	buf_fini(&p->body);
	p->data_started = false;
	p->spool_failed = false;
	p->queued_id[0] = '\0';
}

static void
smtp_proto_tx_rollback(struct smtp_proto *p)
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

			if (nu == NULL)
				return PR_ENOMEM;
			p->tx.users = nu;
			p->users_cap = ncap;
		}
		p->tx.users[p->tx.n_users++] = user_id;
	} else {
		char *copy;

		if (p->tx.n_remote == p->remote_cap) {
			size_t ncap = p->remote_cap ? p->remote_cap * 2 : 8;
			char **nr = realloc(p->tx.remote, ncap * sizeof(*nr));

			if (nr == NULL)
				return PR_ENOMEM;
			p->tx.remote = nr;
			p->remote_cap = ncap;
		}
		if ((copy = strdup(remote)) == NULL)
			return PR_ENOMEM;
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
	*p_r = p;
	return 0;
}

void
smtp_proto_free(struct smtp_proto **pp)
{
	struct smtp_proto *p = *pp;

	if (p == NULL)
		return;
	smtp_proto_secret_wipe(p);
	smtp_proto_tx_reset(p);
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
	smtp_proto_reply(p, 220, NULL, "%s ESMTP postroom", p->conf.hostname);
}

void
smtp_proto_refuse(struct smtp_proto *p, int code, const char *enh,
    const char *text)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "connect");
	smtp_proto_reply(p, code, enh, "%s", text);
	smtp_proto_close(p);
}

void
smtp_proto_timeout(struct smtp_proto *p)
{
	if (p->closing)
		return;
	snprintf(p->cmdlog, sizeof(p->cmdlog), "timeout");
	smtp_proto_reply(p, 421, "4.4.2", "%s Error: timeout exceeded",
	    p->conf.hostname);
	smtp_proto_close(p);
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
	smtp_proto_reply(p, 421, "4.3.2", "%s Service shutting down",
	    p->conf.hostname);
	smtp_proto_close(p);
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

const char *
smtp_proto_helo(const struct smtp_proto *p)
{
	return p->helo;
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
	smtp_proto_secret_wipe(p);
	smtp_proto_tx_reset(p);
	buf_reset(&p->line);
	p->helo[0] = '\0';
	p->esmtp = false;
	p->authed = false;
	p->auth_user[0] = '\0';
	smtp_proto_enter(p, SMTP_S_GREETING);
	smtp_proto_drain_check(p);
}

/* --- Argument parsing -------------------------------------------------- */

/* EHLO/HELO argument: a domain or an address literal (RFC 5321 4.1.1.1).
 * Only characters that are safe in the Received field are let through;
 * underscores are tolerated because many client machine names have them. */
static bool
smtp_proto_helo_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > SMTP_PROTO_HELO_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    (c != '\0' && strchr("-._:[]", c) != NULL)))
			return false;
	}
	return true;
}

static bool
smtp_proto_has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Parses a decimal uint64 of s[0..len).  Returns 0 or PR_EINVAL. */
static int
smtp_proto_parse_u64(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return PR_EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return PR_EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return PR_EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

/* Matches "FROM:" / "TO:" case-insensitively, then optional spaces (a
 * common client habit RFC 5321 does not allow, tolerated as Postfix
 * does).  Returns the rest or NULL. */
static const char *
smtp_proto_keyword(const char *arg, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(arg, kw, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

/* --- Commands ---------------------------------------------------------- */

#define SMTP_ST(s) (1u << (s))
#define SMTP_ST_SESSION (SMTP_ST(SMTP_S_READY) | SMTP_ST(SMTP_S_MAIL) | \
	SMTP_ST(SMTP_S_RCPT) | SMTP_ST(SMTP_S_BDAT))
#define SMTP_ST_ANY (SMTP_ST(SMTP_S_GREETING) | SMTP_ST_SESSION)

static void
smtp_proto_cmd_ehlo(struct smtp_proto *p, const char *arg, bool esmtp)
{
	size_t len = strlen(arg);
	struct buf *o = &p->out;
	int r = 0;

	if (!smtp_proto_helo_valid(arg, len)) {
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		smtp_proto_bad(p);
		return;
	}
	/* RFC 5321 4.1.4: EHLO in a transaction resets it. */
	smtp_proto_tx_reset(p);
	memcpy(p->helo, arg, len + 1);
	p->esmtp = esmtp;
	smtp_proto_enter(p, SMTP_S_READY);
	if (!esmtp) {
		smtp_proto_reply(p, 250, NULL, "%s", p->conf.hostname);
		return;
	}
	r |= buf_printf(o, "250-%s\r\n", p->conf.hostname);
	r |= buf_puts(o, "250-PIPELINING\r\n");
	r |= buf_printf(o, "250-SIZE %llu\r\n",
	    (unsigned long long)p->conf.limits.data_max);
	r |= buf_puts(o, "250-8BITMIME\r\n");
	r |= buf_puts(o, "250-ENHANCEDSTATUSCODES\r\n");
	if (p->conf.starttls && !p->tls)
		r |= buf_puts(o, "250-STARTTLS\r\n");
	/* RFC 4954 4 / RFC 8314: no AUTH over plaintext unless allowed. */
	if (p->tls || p->conf.allow_plaintext_auth)
		r |= buf_puts(o, "250-AUTH PLAIN LOGIN\r\n");
	r |= buf_puts(o, "250-SMTPUTF8\r\n");
	r |= buf_puts(o, "250 CHUNKING\r\n");
	if (r != 0)
		smtp_proto_close(p);
}

static void
smtp_proto_mail_accept(struct smtp_proto *p)
{
	smtp_proto_enter(p, SMTP_S_MAIL);
	smtp_proto_reply(p, 250, "2.1.0", "Ok");
}

static void
smtp_proto_cmd_mail(struct smtp_proto *p, const char *arg)
{
	const char *s, *kv;
	size_t used, klen;
	uint64_t size;
	bool utf8 = false, body8 = false;
	uint64_t declared = 0;

	if (p->state == SMTP_S_GREETING) {
		smtp_proto_reply(p, 503, "5.5.1", "Send EHLO/HELO first");
		smtp_proto_bad(p);
		return;
	}
	if (p->state != SMTP_S_READY) {
		smtp_proto_reply(p, 503, "5.5.1", "Nested MAIL command");
		smtp_proto_bad(p);
		return;
	}
	/* RFC 6409 4.3 / RFC 8314: submission requires authentication. */
	if (p->conf.kind != SMTP_LISTEN_MX && !p->authed) {
		if (!p->tls && !p->conf.allow_plaintext_auth)
			smtp_proto_reply(p, 530, "5.7.0",
			    "Must issue a STARTTLS command first");
		else
			smtp_proto_reply(p, 530, "5.7.0",
			    "Authentication required");
		return;
	}
	if ((s = smtp_proto_keyword(arg, "FROM:")) == NULL ||
	    addr_parse_path(s, strlen(s), true, true, p->tx.sender,
	    &used) < 0) {
		p->tx.sender[0] = '\0';
		smtp_proto_reply(p, 501, "5.1.7",
		    "Syntax: MAIL FROM:<address>");
		smtp_proto_bad(p);
		return;
	}
	/* RFC 5321 4.1.1.2: Mail-parameters, space separated. */
	for (s += used; *s != '\0'; s += klen) {
		if (*s != ' ') {
			smtp_proto_reply(p, 501, "5.5.4", "Syntax error in "
			    "parameters");
			smtp_proto_bad(p);
			return;
		}
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		klen = strcspn(s, " ");
		kv = memchr(s, '=', klen);
		if (!p->esmtp) {
			smtp_proto_reply(p, 555, "5.5.4",
			    "Parameters need EHLO");
			smtp_proto_bad(p);
			return;
		}
		if (kv != NULL && kv - s == 4 &&
		    strncasecmp(s, "SIZE", 4) == 0) {
			/* RFC 1870 6 */
			if (smtp_proto_parse_u64(kv + 1, klen - 5, &size) < 0) {
				smtp_proto_reply(p, 501, "5.5.4",
				    "Syntax: SIZE=octets");
				smtp_proto_bad(p);
				return;
			}
			declared = size;
		} else if (kv != NULL && kv - s == 4 &&
		    strncasecmp(s, "BODY", 4) == 0) {
			/* RFC 6152 2 */
			if (klen == 9 && strncasecmp(kv + 1, "7BIT", 4) == 0) {
				body8 = false;
			} else if (klen == 13 &&
			    strncasecmp(kv + 1, "8BITMIME", 8) == 0) {
				body8 = true;
			} else {
				smtp_proto_reply(p, 555, "5.5.4",
				    "Unsupported BODY type");
				smtp_proto_bad(p);
				return;
			}
		} else if (kv == NULL && klen == 8 &&
		    strncasecmp(s, "SMTPUTF8", 8) == 0) {
			utf8 = true; /* RFC 6531 3.4 */
		} else if (kv != NULL && kv - s == 4 &&
		    strncasecmp(s, "AUTH", 4) == 0) {
			/* RFC 4954 5: accepted; we do not trust another
			 * server's word about who authenticated. */
		} else {
			smtp_proto_reply(p, 555, "5.5.4",
			    "Unsupported MAIL parameter");
			smtp_proto_bad(p);
			return;
		}
	}
	if (!utf8 && smtp_proto_has_8bit(p->tx.sender)) {
		/* RFC 6531 3.7.4.1 */
		smtp_proto_reply(p, 553, "5.6.7",
		    "Non-ASCII address needs SMTPUTF8");
		return;
	}
	if (declared > p->conf.limits.data_max) {
		/* RFC 1870 6.2 */
		smtp_proto_reply(p, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
		return;
	}
	p->tx.declared_size = declared;
	p->tx.smtputf8 = utf8;
	p->tx.body_8bit = body8;
	if (!p->authed) {
		smtp_proto_mail_accept(p);
		return;
	}
	/* An authenticated user sends as an address they own: never the
	 * null sender (bounces are the server's job) nor someone else's. */
	if (p->tx.sender[0] == '\0') {
		smtp_proto_reply(p, 553, "5.7.1",
		    "Authenticated users may not use the null sender");
		return;
	}
	p->ev.type = SMTP_EV_MAIL;
	p->ev.addr = p->tx.sender;
}

static void
smtp_proto_cmd_rcpt(struct smtp_proto *p, const char *arg)
{
	const char *s;
	size_t used;

	if (p->state == SMTP_S_GREETING || p->state == SMTP_S_READY) {
		smtp_proto_reply(p, 503, "5.5.1", "Need MAIL before RCPT");
		smtp_proto_bad(p);
		return;
	}
	if (p->state == SMTP_S_BDAT) {
		smtp_proto_reply(p, 503, "5.5.1", "RCPT not allowed after "
		    "BDAT");
		smtp_proto_bad(p);
		return;
	}
	if ((s = smtp_proto_keyword(arg, "TO:")) == NULL) {
		smtp_proto_reply(p, 501, "5.1.3", "Syntax: RCPT TO:<address>");
		smtp_proto_bad(p);
		return;
	}
	/* RFC 5321 4.5.1: <Postmaster> without a domain must be accepted. */
	if (strncasecmp(s, "<postmaster>", 12) == 0) {
		snprintf(p->rcpt, sizeof(p->rcpt), "postmaster@%s",
		    p->conf.hostname);
		used = 12;
	} else if (addr_parse_path(s, strlen(s), false, true, p->rcpt,
	    &used) < 0) {
		smtp_proto_reply(p, 501, "5.1.3", "Syntax: RCPT TO:<address>");
		smtp_proto_bad(p);
		return;
	}
	s += used;
	while (*s == ' ')
		s++;
	if (*s != '\0') {
		smtp_proto_reply(p, 555, "5.5.4", "Unsupported RCPT parameter");
		smtp_proto_bad(p);
		return;
	}
	if (!p->tx.smtputf8 && smtp_proto_has_8bit(p->rcpt)) {
		smtp_proto_reply(p, 553, "5.6.7",
		    "Non-ASCII address needs SMTPUTF8");
		return;
	}
	if (p->tx.n_rcpt >= p->conf.limits.rcpt_max) {
		/* RFC 5321 4.5.3.1.10 */
		smtp_proto_reply(p, 452, "4.5.3", "Too many recipients");
		return;
	}
	p->users_mark = p->tx.n_users;
	p->remote_mark = p->tx.n_remote;
	p->ev.type = SMTP_EV_RCPT;
	p->ev.addr = p->rcpt;
}

static void
smtp_proto_data_begin(struct smtp_proto *p, enum smtp_data_mode mode)
{
	smtp_data_init(&p->data, mode, p->conf.limits.data_max,
	    p->conf.limits.text_line_max);
	buf_init(&p->body, p->conf.limits.mem_max);
	p->data_started = true;
}

static void
smtp_proto_cmd_data(struct smtp_proto *p, const char *arg)
{
	if (p->state == SMTP_S_MAIL) {
		smtp_proto_reply(p, 554, "5.5.1", "No valid recipients");
		return;
	}
	if (p->state == SMTP_S_BDAT) {
		/* RFC 3030 2 */
		smtp_proto_reply(p, 503, "5.5.1", "DATA not allowed after "
		    "BDAT");
		smtp_proto_bad(p);
		return;
	}
	if (p->state != SMTP_S_RCPT) {
		smtp_proto_reply(p, 503, "5.5.1", "Need MAIL and RCPT before "
		    "DATA");
		smtp_proto_bad(p);
		return;
	}
	if (*arg != '\0') {
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: DATA");
		smtp_proto_bad(p);
		return;
	}
	smtp_proto_data_begin(p, SMTP_DATA_DOT);
	smtp_proto_enter(p, SMTP_S_DATA);
	smtp_proto_reply(p, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void smtp_proto_chunk_end(struct smtp_proto *p);

static void
smtp_proto_cmd_bdat(struct smtp_proto *p, const char *arg)
{
	size_t n = strcspn(arg, " ");
	const char *rest = arg + n;
	uint64_t size;

	while (*rest == ' ')
		rest++;
	if (smtp_proto_parse_u64(arg, n, &size) < 0 ||
	    (*rest != '\0' && strcasecmp(rest, "LAST") != 0)) {
		/* Without a size we cannot find the end of the chunk: what
		 * follows could be taken for commands.  Close. */
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: BDAT size [LAST]; "
		    "closing");
		smtp_proto_close(p);
		return;
	}
	p->chunk_left = size;
	p->chunk_last = *rest != '\0';
	p->chunk_prev = p->state;
	p->chunk_reject = 0;
	/* RFC 3030 2: a refused BDAT still has its octets read. */
	if (p->state == SMTP_S_MAIL) {
		p->chunk_reject = 554;
		p->chunk_reject_text = "No valid recipients";
	} else if (p->state != SMTP_S_RCPT && p->state != SMTP_S_BDAT) {
		p->chunk_reject = 503;
		p->chunk_reject_text = "Need MAIL and RCPT before BDAT";
	} else if (p->state == SMTP_S_RCPT) {
		smtp_proto_data_begin(p, SMTP_DATA_CHUNK);
	}
	smtp_proto_enter(p, SMTP_S_CHUNK);
	if (size == 0)
		smtp_proto_chunk_end(p);
}

static void
smtp_proto_cmd_rset(struct smtp_proto *p, const char *arg)
{
	if (*arg != '\0') {
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: RSET");
		smtp_proto_bad(p);
		return;
	}
	smtp_proto_tx_reset(p);
	if (p->state != SMTP_S_GREETING)
		smtp_proto_enter(p, SMTP_S_READY);
	smtp_proto_reply(p, 250, "2.0.0", "Ok");
}

static void
smtp_proto_cmd_noop(struct smtp_proto *p, const char *arg)
{
	/* RFC 5321 4.1.1.9: a parameter is allowed and ignored. */
	smtp_proto_reply(p, 250, "2.0.0", "Ok");
}

static void
smtp_proto_cmd_quit(struct smtp_proto *p, const char *arg)
{
	if (*arg != '\0') {
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: QUIT");
		smtp_proto_bad(p);
		return;
	}
	smtp_proto_reply(p, 221, "2.0.0", "%s closing connection",
	    p->conf.hostname);
	smtp_proto_close(p);
}

static void
smtp_proto_cmd_help(struct smtp_proto *p, const char *arg)
{
	smtp_proto_reply(p, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT "
	    "DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
}

static void
smtp_proto_cmd_vrfy(struct smtp_proto *p, const char *arg)
{
	if (*arg == '\0') {
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: VRFY address");
		smtp_proto_bad(p);
		return;
	}
	/* RFC 5321 3.5.3: 252 lets us not confirm who exists. */
	smtp_proto_reply(p, 252, "2.5.0", "Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void
smtp_proto_cmd_expn(struct smtp_proto *p, const char *arg)
{
	/* RFC 5321 3.5.2: a list's members are nobody else's business. */
	smtp_proto_reply(p, 502, "5.5.1", "EXPN not available");
}

static void
smtp_proto_cmd_starttls(struct smtp_proto *p, const char *arg)
{
	if (*arg != '\0') {
		smtp_proto_reply(p, 501, "5.5.4", "Syntax: STARTTLS");
		smtp_proto_bad(p);
		return;
	}
	if (p->tls) {
		smtp_proto_reply(p, 503, "5.5.1", "TLS already active");
		smtp_proto_bad(p);
		return;
	}
	if (!p->conf.starttls) {
		smtp_proto_reply(p, 454, "4.7.0", "TLS not available");
		return;
	}
	if (p->state != SMTP_S_GREETING && p->state != SMTP_S_READY) {
		smtp_proto_reply(p, 503, "5.5.1", "STARTTLS not allowed in a "
		    "mail transaction");
		smtp_proto_bad(p);
		return;
	}
	smtp_proto_reply(p, 220, "2.0.0", "Ready to start TLS");
	p->ev.type = SMTP_EV_STARTTLS;
	/* RFC 3207 5: nothing the client sent before the handshake may be
	 * acted on after it (CVE-2011-0411). */
	buf_reset(&p->line);
}

static int
smtp_proto_secret_alloc(struct smtp_proto *p)
{
	if (p->secret == NULL &&
	    (p->secret = sodium_malloc(SASL_USER_MAX + SASL_PASS_MAX)) == NULL)
		return PR_ENOMEM;
	sodium_memzero(p->secret, SASL_USER_MAX + SASL_PASS_MAX);
	return 0;
}

/* The credentials are complete: hand them to the glue. */
static void
smtp_proto_auth_verify(struct smtp_proto *p)
{
	char canon[ADDR_MAX];

	/* Canonical form (domain in lower case) when it is an address at
	 * all; otherwise the store simply will not find it. */
	if (addr_parse_mailbox(p->secret, strlen(p->secret), true,
	    canon) == 0)
		memcpy(p->secret, canon, strlen(canon) + 1);
	smtp_proto_enter(p, SMTP_S_READY);
	p->ev.type = SMTP_EV_AUTH;
	p->ev.user = p->secret;
	p->ev.pass = SMTP_SECRET_PASS(p);
}

static void
smtp_proto_auth_abort(struct smtp_proto *p, int code, const char *enh,
    const char *text)
{
	smtp_proto_secret_wipe(p);
	if (p->state == SMTP_S_AUTH)
		smtp_proto_enter(p, SMTP_S_READY);
	smtp_proto_reply(p, code, enh, "%s", text);
	if (code >= 500)
		smtp_proto_bad(p);
}

/* One SASL response: initial response or a line after a 334. */
static void
smtp_proto_auth_step(struct smtp_proto *p, const char *resp, size_t len)
{
	int r;

	if (p->auth_mech == SMTP_AUTH_PLAIN) {
		r = sasl_plain_decode(resp, len, p->secret,
		    SMTP_SECRET_PASS(p));
		if (r < 0) {
			smtp_proto_auth_abort(p, 501, "5.5.2",
			    "Invalid PLAIN response");
			return;
		}
		smtp_proto_auth_verify(p);
		return;
	}
	/* LOGIN: username, then password, each in base64. */
	if (p->auth_step == 0) {
		r = sasl_login_decode(resp, len, p->secret, SASL_USER_MAX);
		if (r < 0) {
			smtp_proto_auth_abort(p, 501, "5.5.2",
			    "Invalid LOGIN response");
			return;
		}
		p->auth_step = 1;
		smtp_proto_enter(p, SMTP_S_AUTH);
		smtp_proto_reply(p, 334, NULL, "UGFzc3dvcmQ6"); /* Password: */
		return;
	}
	r = sasl_login_decode(resp, len, SMTP_SECRET_PASS(p), SASL_PASS_MAX);
	if (r < 0) {
		smtp_proto_auth_abort(p, 501, "5.5.2",
		    "Invalid LOGIN response");
		return;
	}
	smtp_proto_auth_verify(p);
}

static void
smtp_proto_cmd_auth(struct smtp_proto *p, const char *arg)
{
	size_t n = strcspn(arg, " ");
	const char *ir = arg + n;

	if (p->state == SMTP_S_GREETING) {
		smtp_proto_reply(p, 503, "5.5.1", "Send EHLO first");
		smtp_proto_bad(p);
		return;
	}
	if (p->state != SMTP_S_READY) {
		smtp_proto_reply(p, 503, "5.5.1", "AUTH not allowed in a mail "
		    "transaction");
		smtp_proto_bad(p);
		return;
	}
	if (p->authed) {
		smtp_proto_reply(p, 503, "5.5.1", "Already authenticated");
		smtp_proto_bad(p);
		return;
	}
	if (!p->tls && !p->conf.allow_plaintext_auth) {
		/* RFC 4954 6 */
		smtp_proto_reply(p, 538, "5.7.11", "Encryption required for "
		    "requested authentication mechanism");
		return;
	}
	if (n == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
		p->auth_mech = SMTP_AUTH_PLAIN;
	} else if (n == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
		p->auth_mech = SMTP_AUTH_LOGIN;
	} else {
		smtp_proto_reply(p, 504, "5.5.4", "Unrecognized authentication "
		    "type");
		smtp_proto_bad(p);
		return;
	}
	if (smtp_proto_secret_alloc(p) < 0) {
		smtp_proto_reply(p, 454, "4.7.0", "Temporary authentication "
		    "failure");
		return;
	}
	p->auth_step = 0;
	if (*ir == ' ') {
		while (*ir == ' ')
			ir++;
		/* RFC 4954 4: SASL-IR; "=" is an empty response. */
		if (strcmp(ir, "*") == 0) {
			smtp_proto_auth_abort(p, 501, "5.0.0",
			    "Authentication cancelled");
			return;
		}
		if (*ir != '\0') {
			smtp_proto_auth_step(p, ir, strlen(ir));
			return;
		}
	}
	smtp_proto_enter(p, SMTP_S_AUTH);
	if (p->auth_mech == SMTP_AUTH_PLAIN)
		smtp_proto_reply(p, 334, NULL, "%s", "");
	else
		smtp_proto_reply(p, 334, NULL, "VXNlcm5hbWU6"); /* Username: */
}

/* A line while in SMTP_S_AUTH: the client's SASL response. */
static void
smtp_proto_auth_line(struct smtp_proto *p, const char *line, size_t len)
{
	/* RFC 4954 4: "*" cancels the exchange. */
	if (len == 1 && line[0] == '*') {
		smtp_proto_auth_abort(p, 501, "5.0.0",
		    "Authentication cancelled");
		return;
	}
	smtp_proto_auth_step(p, line, len);
}

struct smtp_proto_cmd {
	const char *name;
	unsigned states; /* where the verb may appear at all */
	void (*fn)(struct smtp_proto *p, const char *arg);
};

static void
smtp_proto_cmd_ehlo_fn(struct smtp_proto *p, const char *arg)
{
	smtp_proto_cmd_ehlo(p, arg, true);
}

static void
smtp_proto_cmd_helo_fn(struct smtp_proto *p, const char *arg)
{
	smtp_proto_cmd_ehlo(p, arg, false);
}

/*
 * The verbs.  The state masks only say where a verb is meaningful at all;
 * between BDAT chunks (RFC 3030 2) just BDAT, RSET, NOOP and QUIT are.
 * Finer sequencing (503 with a precise reason) is in each handler.
 */
static const struct smtp_proto_cmd smtp_proto_cmds[] = {
	{ "EHLO", SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT), smtp_proto_cmd_ehlo_fn },
	{ "HELO", SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT), smtp_proto_cmd_helo_fn },
	{ "MAIL", SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT), smtp_proto_cmd_mail },
	{ "RCPT", SMTP_ST_ANY, smtp_proto_cmd_rcpt },
	{ "DATA", SMTP_ST_ANY, smtp_proto_cmd_data },
	{ "BDAT", SMTP_ST_ANY, smtp_proto_cmd_bdat },
	{ "RSET", SMTP_ST_ANY, smtp_proto_cmd_rset },
	{ "NOOP", SMTP_ST_ANY, smtp_proto_cmd_noop },
	{ "QUIT", SMTP_ST_ANY, smtp_proto_cmd_quit },
	{ "HELP", SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT), smtp_proto_cmd_help },
	{ "VRFY", SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT), smtp_proto_cmd_vrfy },
	{ "EXPN", SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT), smtp_proto_cmd_expn },
	{ "STARTTLS", SMTP_ST_ANY, smtp_proto_cmd_starttls },
	{ "AUTH", SMTP_ST_ANY, smtp_proto_cmd_auth },
};

/* Cross-protocol requests (an HTTP client pointed at port 25, or a web
 * page making the browser talk to us): refuse and close, as Postfix's
 * smtpd_forbidden_commands does. */
static const char *const smtp_proto_forbidden[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE",
};

static void
smtp_proto_line(struct smtp_proto *p, char *line, size_t len)
{
	size_t vlen, i;
	const char *arg;

	if (p->state == SMTP_S_AUTH) {
		snprintf(p->cmdlog, sizeof(p->cmdlog), "AUTH response");
		smtp_proto_auth_line(p, line, len);
		return;
	}
	vlen = strcspn(line, " ");
	arg = line + vlen;
	if (*arg == ' ')
		arg++;
	if (vlen >= 4 && strncasecmp(line, "AUTH", 4) == 0)
		snprintf(p->cmdlog, sizeof(p->cmdlog), "%.*s", (int)
		    (strcspn(arg, " ") + (size_t)(arg - line)), line);
	else
		snprintf(p->cmdlog, sizeof(p->cmdlog), "%s", line);
	if (memchr(line, '\0', len) != NULL) {
		smtp_proto_reply(p, 500, "5.5.2", "NUL in command line");
		smtp_proto_bad(p);
		return;
	}
	for (i = 0; i < sizeof(smtp_proto_cmds) / sizeof(smtp_proto_cmds[0]);
	    i++) {
		const struct smtp_proto_cmd *c = &smtp_proto_cmds[i];

		if (strlen(c->name) != vlen ||
		    strncasecmp(c->name, line, vlen) != 0)
			continue;
		if (!(c->states & SMTP_ST(p->state))) {
			smtp_proto_reply(p, 503, "5.5.1", "Bad sequence of "
			    "commands");
			smtp_proto_bad(p);
			return;
		}
		c->fn(p, arg);
		return;
	}
	for (i = 0; i < sizeof(smtp_proto_forbidden) /
	    sizeof(smtp_proto_forbidden[0]); i++) {
		if (strlen(smtp_proto_forbidden[i]) == vlen &&
		    strncasecmp(smtp_proto_forbidden[i], line, vlen) == 0) {
			smtp_proto_reply(p, 421, "4.7.0", "%s This is an SMTP "
			    "server; closing", p->conf.hostname);
			smtp_proto_close(p);
			return;
		}
	}
	smtp_proto_reply(p, 500, "5.5.2", "Command unrecognized");
	smtp_proto_bad(p);
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

	/* STYLE C.10: the bound is checked before the newline arrives. */
	if (p->line.len + n > smtp_proto_line_limit(p, in, n)) {
		snprintf(p->cmdlog, sizeof(p->cmdlog), "(long line)");
		smtp_proto_reply(p, 500, "5.5.2", "Line too long");
		smtp_proto_close(p);
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
	smtp_proto_line(p, (char *)p->line.p, llen);
	/* The line may have held a password (AUTH). */
	if (p->line.p != NULL) {
		sodium_memzero(p->line.p, p->line.len);
		buf_reset(&p->line);
		buf_shrink(&p->line, 0);
	}
	return (ssize_t)n;
}

/* --- Message data ------------------------------------------------------ */

static void
smtp_proto_tx_end(struct smtp_proto *p)
{
	smtp_proto_tx_reset(p);
	smtp_proto_enter(p, SMTP_S_READY);
	smtp_proto_drain_check(p);
}

/* The message is complete (DATA end or BDAT LAST): deliver or refuse. */
static void
smtp_proto_data_end(struct smtp_proto *p)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "end of data");
	if (p->spool_failed) {
		smtp_proto_reply(p, 451, "4.3.0", "Local error in processing");
	} else if (p->data.too_big) {
		smtp_proto_reply(p, 552, "5.3.4", "Message too big for system");
	} else if (p->data.bare_eol) {
		/* RFC 5321 2.3.8: CR and LF only as CRLF.  Refusing instead of
		 * repairing is what stops SMTP smuggling. */
		smtp_proto_reply(p, 550, "5.6.0", "Message contains bare CR "
		    "or LF; refused");
	} else if (p->data.long_line) {
		smtp_proto_reply(p, 550, "5.6.0", "Message has a line longer "
		    "than %zu octets", p->conf.limits.text_line_max);
	} else {
		p->tx.size = p->data.size;
		p->tx.has_msgid = p->data.has_msgid;
		p->tx.has_date = p->data.has_date;
		p->ev.type = SMTP_EV_DELIVER;
		p->ev.data = p->body.p;
		p->ev.len = p->body.len;
		return;
	}
	smtp_proto_tx_end(p);
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

static void
smtp_proto_chunk_end(struct smtp_proto *p)
{
	int r;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "BDAT");
	if (p->chunk_reject != 0) {
		smtp_proto_enter(p, p->chunk_prev);
		smtp_proto_reply(p, p->chunk_reject, "5.5.1", "%s",
		    p->chunk_reject_text);
		smtp_proto_bad(p);
		return;
	}
	if (p->data.too_big || p->spool_failed) {
		/* RFC 3030 2: a failed chunk ends the transaction. */
		if (p->spool_failed)
			smtp_proto_reply(p, 451, "4.3.0", "Local error in "
			    "processing");
		else
			smtp_proto_reply(p, 552, "5.3.4", "Message too big "
			    "for system");
		smtp_proto_tx_end(p);
		return;
	}
	if (!p->chunk_last) {
		smtp_proto_enter(p, SMTP_S_BDAT);
		smtp_proto_reply(p, 250, "2.0.0", "%llu octets received",
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

	if (p->chunk_reject == 0) {
		if ((r = smtp_data_feed(&p->data, in, n, &used,
		    &p->body)) < 0)
			return r;
	}
	p->chunk_left -= used;
	if (used < n)
		smtp_proto_spool(p);
	else if (p->chunk_left == 0)
		smtp_proto_chunk_end(p);
	return (ssize_t)used;
}

ssize_t
smtp_proto_feed(struct smtp_proto *p, const uint8_t *in, size_t len)
{
	size_t off = 0;
	ssize_t n;

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
	/* After STARTTLS (RFC 3207 5) or once closing, the rest is void. */
	if (p->closing || p->ev.type == SMTP_EV_STARTTLS)
		return (ssize_t)len;
	return (ssize_t)off;
}

/* --- Completions ------------------------------------------------------- */

static void
smtp_proto_complete_auth(struct smtp_proto *p, int status)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "AUTH");
	if (status == 0) {
		snprintf(p->auth_user, sizeof(p->auth_user), "%s", p->ev.user);
		p->authed = true;
		smtp_proto_secret_wipe(p);
		smtp_proto_log(p, 0, "authenticated as %s", p->auth_user);
		smtp_proto_reply(p, 235, "2.7.0", "Authentication successful");
		return;
	}
	smtp_proto_secret_wipe(p);
	if (status != PR_EAUTH) {
		smtp_proto_reply(p, 454, "4.7.0", "Temporary authentication "
		    "failure");
		return;
	}
	if (++p->auth_fails >= p->conf.limits.auth_fail_max) {
		smtp_proto_reply(p, 421, "4.7.0", "%s Too many failed "
		    "authentications, closing", p->conf.hostname);
		smtp_proto_close(p);
		return;
	}
	/* RFC 4954 6 */
	smtp_proto_reply(p, 535, "5.7.8", "Authentication credentials "
	    "invalid");
}

static void
smtp_proto_complete_rcpt(struct smtp_proto *p, int status)
{
	int r;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "RCPT TO:<%s>", p->rcpt);
	if (status == SMTP_RCPT_REMOTE) {
		smtp_proto_tx_rollback(p);
		if (!p->authed) {
			/* No open relay: only authenticated users send to
			 * domains we do not host. */
			smtp_proto_reply(p, 554, "5.7.1", "<%s>: Relay access "
			    "denied", p->rcpt);
			return;
		}
		if ((r = smtp_proto_rcpt_target(p, 0, p->rcpt)) < 0)
			status = r;
		else
			status = SMTP_RCPT_LOCAL;
	}
	switch (status) {
	case SMTP_RCPT_LOCAL:
		if (p->tx.n_rcpt++ == 0)
			memcpy(p->tx.first_rcpt, p->rcpt, sizeof(p->rcpt));
		smtp_proto_enter(p, SMTP_S_RCPT);
		smtp_proto_reply(p, 250, "2.1.5", "Ok");
		return;
	case SMTP_RCPT_UNKNOWN:
		smtp_proto_reply(p, 550, "5.1.1", "<%s>: Recipient address "
		    "rejected: User unknown", p->rcpt);
		break;
	case PR_EQUOTA:
		smtp_proto_reply(p, 452, "4.2.2", "<%s>: Mailbox full",
		    p->rcpt);
		break;
	case PR_ETOOBIG:
		smtp_proto_reply(p, 552, "5.2.2", "<%s>: Message exceeds the "
		    "mailbox quota", p->rcpt);
		break;
	case PR_ENOSPC:
		smtp_proto_reply(p, 452, "4.5.3", "Too many recipients");
		break;
	default:
		smtp_proto_reply(p, 451, "4.3.0", "<%s>: Temporary lookup "
		    "failure", p->rcpt);
		break;
	}
	smtp_proto_tx_rollback(p);
}

static void
smtp_proto_complete_deliver(struct smtp_proto *p, int status)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "end of data");
	switch (status) {
	case 0:
		p->messages++;
		smtp_proto_reply(p, 250, "2.0.0", "Ok: queued as %s",
		    p->queued_id);
		break;
	case PR_EQUOTA:
		smtp_proto_reply(p, 452, "4.2.2", "Mailbox full");
		break;
	case PR_ETOOBIG:
		smtp_proto_reply(p, 552, "5.2.2", "Message exceeds the "
		    "mailbox quota");
		break;
	default:
		smtp_proto_reply(p, 451, "4.3.0", "Local error in processing");
		break;
	}
	smtp_proto_tx_end(p);
}

void
smtp_proto_complete(struct smtp_proto *p, int status)
{
	enum smtp_event_type type = p->ev.type;

	if (type == SMTP_EV_NONE || type == SMTP_EV_STARTTLS)
		return;
	/* Handlers below may read ev (user, addr) but see no event. */
	p->ev.type = SMTP_EV_NONE;
	switch (type) {
	case SMTP_EV_AUTH:
		smtp_proto_complete_auth(p, status);
		break;
	case SMTP_EV_MAIL:
		snprintf(p->cmdlog, sizeof(p->cmdlog), "MAIL FROM:<%s>",
		    p->tx.sender);
		if (status == 0)
			smtp_proto_mail_accept(p);
		else if (status == PR_EPERM)
			smtp_proto_reply(p, 553, "5.7.1", "<%s>: Sender "
			    "address not owned by user %s", p->tx.sender,
			    p->auth_user);
		else
			smtp_proto_reply(p, 451, "4.3.0", "Temporary lookup "
			    "failure");
		break;
	case SMTP_EV_RCPT:
		smtp_proto_complete_rcpt(p, status);
		break;
	case SMTP_EV_SPOOL:
		if (status == 0) {
			p->tx.spooled = true;
		} else {
			/* Keep reading to the end of the message, then 451. */
			p->spool_failed = true;
			smtp_data_discard(&p->data);
		}
		buf_reset(&p->body);
		break;
	case SMTP_EV_DELIVER:
		smtp_proto_complete_deliver(p, status);
		break;
	default:
		break;
	}
	p->ev.addr = NULL;
	p->ev.data = NULL;
	p->ev.len = 0;
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
