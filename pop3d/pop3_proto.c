/*
 * pop3_proto.c - the POP3 protocol core.  No I/O: see pop3_proto.h.
 *
 * RFC 1939 (POP3), RFC 2449 (CAPA, response codes), RFC 2595 (STLS),
 * RFC 3206 (AUTH, SYS response codes), RFC 5034 (SASL AUTH).
 */
#include "pop3_proto_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "err.h"
#include "sasl.h"

/* Output above this stops input processing until the glue has written it
 * (a client that pipelines without reading cannot grow our memory). */
#define POP3_OUT_HIGH (2 * POP3_OUT_STEP)
/* Hard bound of the output buffer: the high mark plus the largest single
 * step (a reply, a listing step, or one dot-stuffed body segment). */
#define POP3_OUT_MAX (256 * 1024)


void
pop3_proto_limits_default(struct pop3_limits *l)
{
	l->line_max = POP3_LINE_MAX;
	l->sasl_line_max = POP3_SASL_LINE_MAX;
	l->bad_cmd_max = POP3_BAD_CMD_MAX;
	l->junk_max = POP3_JUNK_MAX;
	l->auth_fail_max = POP3_AUTH_FAIL_MAX;
}

const char *
pop3_proto_state_name(enum pop3_state st)
{
	switch (st) {
	case POP3_S_AUTHORIZATION: return "AUTHORIZATION";
	case POP3_S_TRANSACTION: return "TRANSACTION";
	case POP3_S_UPDATE: return "UPDATE";
	case POP3_S_CLOSED: return "CLOSED";
	}
	return "?";
}

/* --- Output ------------------------------------------------------------ */

/* An output that cannot be queued leaves the dialog out of step: the
 * session closes, and pop3_proto_feed() reports PR_ENOMEM. */
static void
pop3_proto_out_failed(struct pop3_proto *p)
{
	p->out_failed = true;
	pop3_proto__enter(p, POP3_S_CLOSED);
}

static void
pop3_proto_vreply(struct pop3_proto *p, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
pop3_proto_vreply(struct pop3_proto *p, const char *fmt, va_list ap)
{
	if (buf_vprintf(&p->out, fmt, ap) < 0 ||
	    buf_append(&p->out, "\r\n", 2) < 0)
		pop3_proto_out_failed(p);
}

void
pop3_proto__reply(struct pop3_proto *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pop3_proto_vreply(p, fmt, ap);
	va_end(ap);
}

static void
pop3_proto_out_raw(struct pop3_proto *p, const void *data, size_t n)
{
	if (buf_append(&p->out, data, n) < 0)
		pop3_proto_out_failed(p);
}

/* Every state change goes through here, so that CLOSED always ends any
 * pending event and nothing after it is read. */
void
pop3_proto__enter(struct pop3_proto *p, enum pop3_state st)
{
	p->state = st;
	if (st == POP3_S_CLOSED) {
		memset(&p->ev, 0, sizeof(p->ev));
		p->listing = POP3_LISTING_NONE;
		p->body.active = false;
	}
}

void
pop3_proto__set_event(struct pop3_proto *p, enum pop3_event_type type)
{
	memset(&p->ev, 0, sizeof(p->ev));
	p->ev.type = type;
}

static void
pop3_proto_clear_event(struct pop3_proto *p)
{
	memset(&p->ev, 0, sizeof(p->ev));
}

/* After bad_cmd_max bad commands the session is closed: a confused or
 * hostile peer does not get to loop forever (docs/ARCHITECTURE.md). */
void
pop3_proto__bad(struct pop3_proto *p, const char *text)
{
	if (++p->bad_cmds >= p->cfg.limits.bad_cmd_max) {
		pop3_proto__reply(p, "-ERR Too many invalid commands, "
		    "closing connection");
		pop3_proto__enter(p, POP3_S_CLOSED);
		return;
	}
	pop3_proto__reply(p, "-ERR %s", text);
}

/* The RFC 2449 8 / RFC 3206 code for a failed store operation: SYS/TEMP
 * when a retry may work, SYS/PERM when it cannot. */
static const char *
pop3_proto_sys_code(int status)
{
	switch (status) {
	case PR_EVERSION:
	case PR_EPERM:
	case PR_EINVAL:
	case PR_ENOENT:
		return "SYS/PERM";
	}
	return "SYS/TEMP";
}

void
pop3_proto__wipe_secret(struct pop3_proto *p)
{
	if (p->secret != NULL)
		sodium_memzero(p->secret, SASL_PASS_MAX);
}

/* --- Life cycle -------------------------------------------------------- */

int
pop3_proto_new(const struct pop3_config *cfg, struct pop3_proto **p_r)
{
	struct pop3_proto *p;

	*p_r = NULL;
	/* sodium_malloc needs the library initialised; this is cheap and
	 * idempotent after the first call. */
	if (sodium_init() < 0)
		return PR_ENOMEM;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return PR_ENOMEM;
	p->cfg = *cfg;
	snprintf(p->hostname, sizeof(p->hostname), "%s",
	    cfg->hostname != NULL ? cfg->hostname : "localhost");
	p->cfg.hostname = p->hostname;
	if (p->cfg.limits.line_max == 0)
		pop3_proto_limits_default(&p->cfg.limits);
	if (p->cfg.limits.junk_max == 0)
		p->cfg.limits.junk_max = POP3_JUNK_MAX;
	p->tls_active = cfg->tls_active;
	/* The longest line plus the NUL the parser appends. */
	buf_init(&p->in, (p->cfg.limits.sasl_line_max > p->cfg.limits.line_max ?
	    p->cfg.limits.sasl_line_max : p->cfg.limits.line_max) + 1);
	buf_init(&p->out, POP3_OUT_MAX);
	p->state = POP3_S_AUTHORIZATION;
	*p_r = p;
	return 0;
}

void
pop3_proto_greet(struct pop3_proto *p)
{
	/* RFC 1939 4: the greeting.  No APOP timestamp: we keep no
	 * plaintext passwords to compute the digest with. */
	pop3_proto__reply(p, "+OK %s POP3 server ready", p->hostname);
}

void
pop3_proto_free(struct pop3_proto **pp)
{
	struct pop3_proto *p = *pp;

	if (p == NULL)
		return;
	if (p->in.p != NULL)
		sodium_memzero(p->in.p, p->in.cap);
	buf_fini(&p->in);
	buf_fini(&p->out);
	if (p->secret != NULL)
		sodium_free(p->secret);
	free(p->msgs);
	free(p->del_ids);
	sodium_memzero(p->user, sizeof(p->user));
	free(p);
	*pp = NULL;
}

struct buf *
pop3_proto_out(struct pop3_proto *p)
{
	return &p->out;
}

const struct pop3_event *
pop3_proto_event(struct pop3_proto *p)
{
	return p->ev.type == POP3_EV_NONE ? NULL : &p->ev;
}

bool
pop3_proto_closing(const struct pop3_proto *p)
{
	return p->state == POP3_S_CLOSED;
}

bool
pop3_proto_line_pending(const struct pop3_proto *p)
{
	return (p->in.len > 0 || p->discarding) && p->state != POP3_S_CLOSED;
}

enum pop3_state
pop3_proto_state(const struct pop3_proto *p)
{
	return p->state;
}

unsigned
pop3_proto_auth_failures(const struct pop3_proto *p)
{
	return p->auth_fails;
}

void
pop3_proto_stats(const struct pop3_proto *p, struct pop3_stats *st)
{
	st->retrieved = p->retrieved;
	st->octets = p->octets;
	st->deleted = p->deleted;
	st->user = p->login[0] != '\0' ? p->login : NULL;
}

/* Recounts the messages not marked deleted (login, RSET); DELE keeps the
 * counts current, so STAT and LIST cost nothing per message. */
void
pop3_proto__recount(struct pop3_proto *p)
{
	size_t i;

	p->live = 0;
	p->live_octets = 0;
	for (i = 0; i < p->n_msgs; i++) {
		if (!p->msgs[i].deleted) {
			p->live++;
			p->live_octets += p->msgs[i].size;
		}
	}
}

/* --- Listings (LIST, UIDL) --------------------------------------------- */

/* Queues listing lines up to about POP3_OUT_STEP bytes; ends the
 * response with "." when the last message is out. */
static void
pop3_proto_listing_step(struct pop3_proto *p)
{
	size_t start = p->out.len;
	const struct pop3_msg *m;

	while (p->list_pos < p->n_msgs && p->out.len - start < POP3_OUT_STEP &&
	    !p->out_failed) {
		m = &p->msgs[p->list_pos++];
		if (m->deleted)
			continue;
		if (p->listing == POP3_LISTING_LIST)
			pop3_proto__reply(p, "%zu %" PRId64, p->list_pos,
			    m->size);
		else
			pop3_proto__reply(p, "%zu %s", p->list_pos, m->uidl);
	}
	if (p->out_failed)
		return;
	if (p->list_pos < p->n_msgs) {
		pop3_proto__set_event(p, POP3_EV_MORE);
		return;
	}
	pop3_proto__reply(p, ".");
	p->listing = POP3_LISTING_NONE;
}

void
pop3_proto__listing_start(struct pop3_proto *p, enum pop3_listing kind)
{
	p->listing = kind;
	p->list_pos = 0;
	pop3_proto_listing_step(p);
}

/* An over-long line: refused, and the session goes on (counted as a bad
 * command).  A SASL exchange in progress is abandoned. */
static void
pop3_proto_too_long(struct pop3_proto *p)
{
	pop3_cmd__forget(p);
	pop3_proto__bad(p, "Line too long");
}

ssize_t
pop3_proto_feed(struct pop3_proto *p, const uint8_t *in, size_t len)
{
	size_t used = 0, chunk, limit, n;
	const uint8_t *lf;

	while (used < len && p->ev.type == POP3_EV_NONE &&
	    p->state != POP3_S_CLOSED && p->out.len < POP3_OUT_HIGH &&
	    !p->out_failed) {
		lf = memchr(in + used, '\n', len - used);
		chunk = lf != NULL ? (size_t)(lf - (in + used)) + 1 :
		    len - used;
		if (p->discarding) {
			/* The reply for this line went out when it grew
			 * too long; drop the rest of it. */
			used += chunk;
			if (lf != NULL)
				p->discarding = false;
			continue;
		}
		limit = p->sasl_wait ? p->cfg.limits.sasl_line_max :
		    p->cfg.limits.line_max;
		if (p->in.len + chunk > limit) {
			/* Checked before the LF arrives, so an endless
			 * line costs no memory (RFC 2449 4). */
			sodium_memzero(p->in.p, p->in.len);
			buf_reset(&p->in);
			p->discarding = lf == NULL;
			used += chunk;
			pop3_proto_too_long(p);
			continue;
		}
		if (buf_reserve(&p->in, chunk + 1) < 0) {
			pop3_proto_out_failed(p);
			break;
		}
		memcpy(p->in.p + p->in.len, in + used, chunk);
		p->in.len += chunk;
		used += chunk;
		if (lf == NULL)
			break;
		/* Accept CRLF and, leniently, a bare LF. */
		n = p->in.len - 1;
		if (n > 0 && p->in.p[n - 1] == '\r')
			n--;
		p->in.p[n] = '\0';
		pop3_cmd__line(p, (char *)p->in.p, n);
		/* The line may have held a password: wipe it. */
		sodium_memzero(p->in.p, p->in.len);
		buf_reset(&p->in);
	}
	if (p->out_failed)
		return PR_ENOMEM;
	return (ssize_t)used;
}

/* --- Completions ------------------------------------------------------- */

void
pop3_proto_tls_started(struct pop3_proto *p)
{
	if (p->ev.type != POP3_EV_STLS)
		return;
	pop3_proto_clear_event(p);
	/* RFC 2595 4: the session restarts from scratch under TLS; nothing
	 * the client sent before the handshake may survive it (the glue's
	 * buffer is discarded too, CVE-2011-0411). */
	p->tls_active = true;
	pop3_cmd__forget(p);
	p->discarding = false;
	sodium_memzero(p->user, sizeof(p->user));
	if (p->in.p != NULL)
		sodium_memzero(p->in.p, p->in.len);
	buf_reset(&p->in);
}

int
pop3_proto_maildrop(struct pop3_proto *p, struct pop3_msg *msgs, size_t n)
{
	size_t i;

	if (p->ev.type != POP3_EV_AUTH) {
		free(msgs);
		return PR_EINVAL;
	}
	free(p->msgs);
	p->msgs = n > 0 ? msgs : NULL;
	p->n_msgs = n;
	if (n == 0)
		free(msgs);
	for (i = 0; i < p->n_msgs; i++) {
		p->msgs[i].deleted = false;
		p->msgs[i].uidl[POP3_UIDL_HELD] = '\0';
	}
	return 0;
}

static void
pop3_proto_complete_auth(struct pop3_proto *p, int status)
{
	pop3_proto__wipe_secret(p);
	if (status != 0) {
		/* The snapshot of a login that failed is not kept. */
		free(p->msgs);
		p->msgs = NULL;
		p->n_msgs = 0;
	}
	switch (status) {
	case 0:
		break;
	case PR_EAUTH:
		/* RFC 3206 4: [AUTH].  The same words whether the user
		 * exists or the password is wrong. */
		pop3_proto__reply(p, "-ERR [AUTH] Invalid credentials");
		if (++p->auth_fails >= p->cfg.limits.auth_fail_max)
			pop3_proto__enter(p, POP3_S_CLOSED);
		return;
	case PR_EAGAIN:
		/* RFC 3206 4: [SYS/TEMP], the login throttle or no room
		 * for a password check; not a failure of this session. */
		pop3_proto__reply(p, "-ERR [SYS/TEMP] Too many login "
		    "attempts, try again later");
		return;
	case PR_EBUSY:
		/* RFC 2449 8.1.2: another session holds the maildrop. */
		pop3_proto__reply(p, "-ERR [IN-USE] Mailbox is locked by "
		    "another POP3 session");
		return;
	default:
		pop3_proto__reply(p, "-ERR [%s] Cannot open the maildrop, try "
		    "again later", pop3_proto_sys_code(status));
		return;
	}
	snprintf(p->login, sizeof(p->login), "%s", p->user);
	pop3_proto__recount(p);
	pop3_proto__enter(p, POP3_S_TRANSACTION);
	pop3_proto__reply(p, "+OK Logged in, %zu messages (%" PRId64 " octets)",
	    p->live, p->live_octets);
}

/* The "+OK" of RETR/TOP, before the first octet of the message. */
static void
pop3_proto_body_start(struct pop3_proto *p)
{
	if (p->body.started)
		return;
	p->body.started = true;
	if (p->body.top < 0)
		pop3_proto__reply(p, "+OK %" PRId64 " octets", p->ev.size);
	else
		pop3_proto__reply(p, "+OK Top of message %u follows",
		    p->ev.msgno);
}

bool
pop3_proto_body_wanted(const struct pop3_proto *p)
{
	return p->ev.type == POP3_EV_BODY && p->body.active && !p->body.done;
}

/* Accounts for one line end of a TOP response. */
static void
pop3_proto_body_eol(struct pop3_proto *p, bool blank)
{
	struct pop3_body *b = &p->body;

	if (b->top < 0)
		return;
	if (b->in_header) {
		if (blank) {
			b->in_header = false;
			if (b->top == 0)
				b->done = true;
		}
		return;
	}
	if (++b->lines >= b->top)
		b->done = true;
}

ssize_t
pop3_proto_body_feed(struct pop3_proto *p, const uint8_t *data, size_t len)
{
	struct pop3_body *b = &p->body;
	size_t used = 0, seg, room;
	const uint8_t *lf;
	bool blank;

	if (!pop3_proto_body_wanted(p))
		return (ssize_t)len;
	pop3_proto_body_start(p);
	while (used < len && !b->done && p->out.len < POP3_OUT_HIGH &&
	    !p->out_failed) {
		room = POP3_OUT_HIGH - p->out.len;
		/* RFC 1939 3: a line starting with "." is sent with one more
		 * "." so that it cannot end the response. */
		if (b->bol && data[used] == '.')
			pop3_proto_out_raw(p, ".", 1);
		lf = memchr(data + used, '\n', len - used);
		seg = lf != NULL ? (size_t)(lf - (data + used)) + 1 :
		    len - used;
		if (seg > room) {
			seg = room;
			lf = NULL;
		}
		pop3_proto_out_raw(p, data + used, seg);
		if (lf != NULL) {
			/* A blank line is "" or "\r" before the LF, the CR
			 * possibly from an earlier segment. */
			blank = b->col + seg == 1 ||
			    (b->col + seg == 2 && (seg == 2 ?
			    data[used] == '\r' : b->prev_cr));
			b->col = 0;
			b->bol = true;
			b->prev_cr = false;
			pop3_proto_body_eol(p, blank);
		} else {
			b->col += seg;
			b->bol = false;
			b->prev_cr = data[used + seg - 1] == '\r';
		}
		used += seg;
	}
	if (p->out_failed)
		return PR_ENOMEM;
	if (b->done)
		used = len;
	p->octets += used;
	return (ssize_t)used;
}

static void
pop3_proto_complete_body(struct pop3_proto *p, int status)
{
	if (status != 0 && !p->body.started) {
		pop3_proto__reply(p, "-ERR [%s] Cannot read message %u",
		    pop3_proto_sys_code(status), p->ev.msgno);
		p->body.active = false;
		pop3_proto_clear_event(p);
		return;
	}
	if (status != 0) {
		/* Part of a multi-line response is out already; the only
		 * honest thing left is to drop the connection (RFC 1939 6:
		 * nothing gets deleted). */
		pop3_proto__enter(p, POP3_S_CLOSED);
		return;
	}
	pop3_proto_body_start(p);
	/* RFC 1939 3: the terminating line "." follows a CRLF. */
	if (!p->body.bol)
		pop3_proto_out_raw(p, "\r\n", 2);
	pop3_proto_out_raw(p, ".\r\n", 3);
	if (p->body.top < 0)
		p->retrieved++;
	p->body.active = false;
	pop3_proto_clear_event(p);
}

static void
pop3_proto_complete_commit(struct pop3_proto *p, int status)
{
	if (status == 0) {
		p->deleted = (unsigned)(p->n_msgs - p->live);
		pop3_proto__reply(p, "+OK %s POP3 server signing off (%u "
		    "messages deleted)", p->hostname, p->deleted);
	} else {
		/* RFC 1939 6: "-ERR some deleted messages not removed". */
		pop3_proto__reply(p, "-ERR [%s] Some deleted messages not "
		    "removed", pop3_proto_sys_code(status));
	}
	pop3_proto__enter(p, POP3_S_CLOSED);
}

void
pop3_proto_complete(struct pop3_proto *p, int status)
{
	enum pop3_event_type type = p->ev.type;

	switch (type) {
	case POP3_EV_NONE:
		return;
	case POP3_EV_STLS:
		/* Success is pop3_proto_tls_started(). */
		if (status != 0)
			pop3_proto__enter(p, POP3_S_CLOSED);
		return;
	case POP3_EV_AUTH:
		pop3_proto_clear_event(p);
		pop3_proto_complete_auth(p, status);
		return;
	case POP3_EV_MORE:
		pop3_proto_clear_event(p);
		if (p->listing != POP3_LISTING_NONE)
			pop3_proto_listing_step(p);
		return;
	case POP3_EV_BODY:
		pop3_proto_complete_body(p, status);
		return;
	case POP3_EV_COMMIT:
		pop3_proto_clear_event(p);
		pop3_proto_complete_commit(p, status);
		return;
	}
}

void
pop3_proto_shutdown(struct pop3_proto *p)
{
	if (p->state == POP3_S_CLOSED)
		return;
	/* A line in the middle of a multi-line response would be taken as
	 * message data; then the connection just drops. */
	if (!(p->body.active && p->body.started) &&
	    p->listing == POP3_LISTING_NONE)
		pop3_proto__reply(p, "-ERR [SYS/TEMP] Server shutting down");
	pop3_proto__enter(p, POP3_S_CLOSED);
}
