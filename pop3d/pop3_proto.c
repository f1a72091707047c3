/*
 * pop3_proto.c - the POP3 protocol core.  No I/O: see pop3_proto.h.
 *
 * RFC 1939 (POP3), RFC 2449 (CAPA, response codes), RFC 2595 (STLS),
 * RFC 3206 (AUTH, SYS response codes), RFC 5034 (SASL AUTH).
 */
#include "pop3_proto.h"

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

enum pop3_listing {
	POP3_LISTING_NONE,
	POP3_LISTING_LIST,
	POP3_LISTING_UIDL,
};

/* Output filter of one RETR/TOP response. */
struct pop3_body {
	bool active;       /* between the BODY event and body_end */
	bool started;      /* body_begin(0) was called */
	bool in_header;    /* TOP: the blank line was not seen yet */
	bool done;         /* TOP: enough lines; ignore the rest */
	bool bol;          /* the next byte starts a line */
	bool prev_cr;      /* the last byte seen was CR */
	long top;          /* body lines wanted, -1 = all */
	long lines;        /* body lines sent so far */
	uint64_t col;      /* bytes since the start of the line */
};

struct pop3_proto {
	struct pop3_config cfg;
	char hostname[256];
	enum pop3_state state;

	struct buf in;       /* the current partial command line */
	bool discarding;     /* dropping an over-long line up to its LF */
	struct buf out;
	bool out_failed;     /* the output could not be queued (ENOMEM) */

	unsigned bad_cmds;
	unsigned auth_fails;
	bool tls_active;

	/* AUTHORIZATION */
	char user[SASL_USER_MAX];
	bool have_user;      /* USER was the previous command */
	bool sasl_wait;      /* "+ " sent, the next line is the response */
	char *secret;        /* SASL_PASS_MAX bytes of sodium_malloc */

	struct pop3_event ev; /* ev.type != POP3_EV_NONE: pending */

	/* TRANSACTION: the snapshot taken at login (RFC 1939 5 numbers
	 * messages from 1 in this order; later arrivals are not shown). */
	struct pop3_msg *msgs;
	size_t n_msgs;
	size_t live;         /* messages not marked deleted ... */
	int64_t live_octets; /* ... and their octets (STAT, LIST, RSET) */
	char login[SASL_USER_MAX];
	int64_t *del_ids;

	enum pop3_listing listing;
	size_t list_pos;     /* next message index of the listing */

	struct pop3_body body;

	unsigned retrieved;
	uint64_t octets;
	unsigned deleted;
};

struct pop3_cmd {
	const char *name;
	unsigned states;     /* bit (1 << state) per state it is valid in */
	void (*fn)(struct pop3_proto *p, char *args);
};

#define POP3_IN_AUTH (1u << POP3_S_AUTHORIZATION)
#define POP3_IN_TRANS (1u << POP3_S_TRANSACTION)

void
pop3_proto_limits_default(struct pop3_limits *l)
{
	l->line_max = POP3_LINE_MAX;
	l->sasl_line_max = POP3_SASL_LINE_MAX;
	l->bad_cmd_max = POP3_BAD_CMD_MAX;
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

static void
pop3_proto_vreply(struct pop3_proto *p, const char *fmt, va_list ap)
{
	if (buf_vprintf(&p->out, fmt, ap) < 0 ||
	    buf_append(&p->out, "\r\n", 2) < 0)
		p->out_failed = true;
}

/* Queues one response line; CRLF is appended. */
static void
pop3_proto_reply(struct pop3_proto *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
pop3_proto_reply(struct pop3_proto *p, const char *fmt, ...)
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
		p->out_failed = true;
}

/* Every state change goes through here, so that CLOSED always comes with
 * its CLOSE event and nothing after it is read. */
static void
pop3_proto_enter(struct pop3_proto *p, enum pop3_state st)
{
	p->state = st;
	if (st == POP3_S_CLOSED) {
		memset(&p->ev, 0, sizeof(p->ev));
		p->ev.type = POP3_EV_CLOSE;
		p->listing = POP3_LISTING_NONE;
		p->body.active = false;
	}
}

static void
pop3_proto_set_event(struct pop3_proto *p, enum pop3_event_type type)
{
	memset(&p->ev, 0, sizeof(p->ev));
	p->ev.type = type;
}

static void
pop3_proto_clear_event(struct pop3_proto *p)
{
	if (p->ev.type != POP3_EV_CLOSE)
		memset(&p->ev, 0, sizeof(p->ev));
}

/*
 * A command the client should not have sent.  After bad_cmd_max of them
 * the session is closed (DESIGN 7): a confused or hostile peer does not
 * get to loop forever.
 */
static void
pop3_proto_bad(struct pop3_proto *p, const char *text)
{
	if (++p->bad_cmds >= p->cfg.limits.bad_cmd_max) {
		pop3_proto_reply(p, "-ERR Too many invalid commands, "
		    "closing connection");
		pop3_proto_enter(p, POP3_S_CLOSED);
		return;
	}
	pop3_proto_reply(p, "-ERR %s", text);
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

static void
pop3_proto_wipe_secret(struct pop3_proto *p)
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
	p->tls_active = cfg->tls_active;
	/* The longest line plus the NUL the parser appends. */
	buf_init(&p->in, (p->cfg.limits.sasl_line_max > p->cfg.limits.line_max ?
	    p->cfg.limits.sasl_line_max : p->cfg.limits.line_max) + 1);
	buf_init(&p->out, POP3_OUT_MAX);
	p->state = POP3_S_AUTHORIZATION;
	/* RFC 1939 4: the greeting.  No APOP timestamp: we keep no
	 * plaintext passwords to compute the digest with. */
	pop3_proto_reply(p, "+OK %s POP3 server ready", p->hostname);
	if (p->out_failed) {
		pop3_proto_free(&p);
		return PR_ENOMEM;
	}
	*p_r = p;
	return 0;
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

bool
pop3_proto_next_event(struct pop3_proto *p, struct pop3_event *ev)
{
	if (p->ev.type == POP3_EV_NONE)
		return false;
	*ev = p->ev;
	return true;
}

bool
pop3_proto_busy(const struct pop3_proto *p)
{
	return p->ev.type != POP3_EV_NONE;
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

/* --- Argument helpers -------------------------------------------------- */

/* Splits off the next space-separated word of *s (NUL-terminating it) and
 * advances *s; returns NULL when no word is left. */
static char *
pop3_proto_word(char **s)
{
	char *w = *s, *e;

	while (*w == ' ')
		w++;
	if (*w == '\0')
		return NULL;
	e = w;
	while (*e != '\0' && *e != ' ')
		e++;
	if (*e != '\0')
		*e++ = '\0';
	*s = e;
	return w;
}

/* True when nothing but spaces is left in s. */
static bool
pop3_proto_no_more(const char *s)
{
	while (*s == ' ')
		s++;
	return *s == '\0';
}

/* Parses a decimal number of at most 9 digits (no sign, no spaces), so it
 * fits every integer type used here.  Returns 0 or -1. */
static int
pop3_proto_number(const char *s, unsigned long *v_r)
{
	unsigned long v = 0;
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 9)
			return -1;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (n == 0)
		return -1;
	*v_r = v;
	return 0;
}

/*
 * Resolves a message-number argument (RFC 1939 5: 1-based, deleted
 * messages may not be referred to).  On failure the reply is queued and
 * -1 returned; otherwise *i_r is the 0-based index.
 */
static int
pop3_proto_msgno(struct pop3_proto *p, const char *arg, size_t *i_r)
{
	unsigned long n;

	if (pop3_proto_number(arg, &n) < 0) {
		pop3_proto_bad(p, "Invalid message number");
		return -1;
	}
	if (n == 0 || n > p->n_msgs) {
		pop3_proto_reply(p, "-ERR No such message, only %zu messages "
		    "in maildrop", p->n_msgs);
		return -1;
	}
	if (p->msgs[n - 1].deleted) {
		pop3_proto_reply(p, "-ERR Message %lu already deleted", n);
		return -1;
	}
	*i_r = n - 1;
	return 0;
}

/* Recounts the messages not marked deleted (login, RSET); DELE keeps the
 * counts current, so STAT and LIST cost nothing per message. */
static void
pop3_proto_recount(struct pop3_proto *p)
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

/* USER/PASS and AUTH PLAIN send the password in the clear: refused
 * before TLS unless the admin allowed it (RFC 2595 2.1). */
static bool
pop3_proto_login_permitted(const struct pop3_proto *p)
{
	return p->tls_active || p->cfg.allow_plaintext_auth;
}

static bool
pop3_proto_stls_offered(const struct pop3_proto *p)
{
	return p->cfg.tls_available && !p->tls_active;
}

static void
pop3_proto_refuse_plaintext(struct pop3_proto *p)
{
	if (pop3_proto_stls_offered(p))
		pop3_proto_bad(p, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connection; use STLS");
	else
		pop3_proto_bad(p, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connection");
}

static int
pop3_proto_secret(struct pop3_proto *p)
{
	if (p->secret == NULL &&
	    (p->secret = sodium_malloc(SASL_PASS_MAX)) == NULL)
		return PR_ENOMEM;
	return 0;
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
			pop3_proto_reply(p, "%zu %" PRId64, p->list_pos,
			    m->size);
		else
			pop3_proto_reply(p, "%zu %s", p->list_pos, m->uidl);
	}
	if (p->list_pos < p->n_msgs) {
		if (p->ev.type == POP3_EV_NONE)
			pop3_proto_set_event(p, POP3_EV_MORE);
		return;
	}
	pop3_proto_reply(p, ".");
	p->listing = POP3_LISTING_NONE;
	if (p->ev.type == POP3_EV_MORE)
		pop3_proto_clear_event(p);
}

void
pop3_proto_more(struct pop3_proto *p)
{
	if (p->ev.type != POP3_EV_MORE || p->listing == POP3_LISTING_NONE)
		return;
	pop3_proto_listing_step(p);
}

static void
pop3_proto_listing_start(struct pop3_proto *p, enum pop3_listing kind)
{
	p->listing = kind;
	p->list_pos = 0;
	pop3_proto_listing_step(p);
}

/* --- Commands: AUTHORIZATION ------------------------------------------- */

/* RFC 2449 5: CAPA is valid in both states and must list the same
 * capabilities of the AUTHORIZATION state in both. */
static void
pop3_proto_cmd_capa(struct pop3_proto *p, char *args)
{
	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "CAPA takes no argument");
		return;
	}
	pop3_proto_reply(p, "+OK Capability list follows");
	pop3_proto_reply(p, "TOP");
	/* Without TLS (and unless allowed), logging in is refused, so the
	 * login methods are not advertised (as Dovecot does); after STLS the
	 * client asks again (RFC 2595 4) and sees them. */
	if (pop3_proto_login_permitted(p)) {
		pop3_proto_reply(p, "USER");
		pop3_proto_reply(p, "SASL PLAIN");
	}
	pop3_proto_reply(p, "UIDL");
	pop3_proto_reply(p, "RESP-CODES");
	pop3_proto_reply(p, "AUTH-RESP-CODE");
	pop3_proto_reply(p, "PIPELINING");
	if (pop3_proto_stls_offered(p))
		pop3_proto_reply(p, "STLS");
	pop3_proto_reply(p, "IMPLEMENTATION postroom");
	pop3_proto_reply(p, ".");
}

/* RFC 2595 4: STLS, AUTHORIZATION state only. */
static void
pop3_proto_cmd_stls(struct pop3_proto *p, char *args)
{
	if (p->tls_active) {
		pop3_proto_bad(p, "TLS already active");
		return;
	}
	if (!p->cfg.tls_available) {
		pop3_proto_bad(p, "STLS not available");
		return;
	}
	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "STLS takes no argument");
		return;
	}
	pop3_proto_reply(p, "+OK Begin TLS negotiation");
	pop3_proto_set_event(p, POP3_EV_STLS);
}

/* RFC 1939 7: USER name. */
static void
pop3_proto_cmd_user(struct pop3_proto *p, char *args)
{
	char *name;

	if (!pop3_proto_login_permitted(p)) {
		pop3_proto_refuse_plaintext(p);
		return;
	}
	if ((name = pop3_proto_word(&args)) == NULL ||
	    !pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "USER takes one argument: the address");
		return;
	}
	/* A command line (255 octets) cannot exceed SASL_USER_MAX. */
	snprintf(p->user, sizeof(p->user), "%s", name);
	p->have_user = true;
	/* The reply is the same whether the user exists or not. */
	pop3_proto_reply(p, "+OK Send your password");
}

static void
pop3_proto_start_auth(struct pop3_proto *p, bool sasl)
{
	pop3_proto_set_event(p, POP3_EV_AUTH);
	p->ev.user = p->user;
	p->ev.pass = p->secret;
	p->ev.sasl = sasl;
}

/* RFC 1939 7: PASS string, only right after a successful USER.  The
 * argument is the rest of the line, spaces included ("a POP3 server may
 * treat spaces in the argument as part of the password"). */
static void
pop3_proto_cmd_pass(struct pop3_proto *p, char *args)
{
	bool had_user = p->have_user;
	size_t n;

	p->have_user = false;
	if (!pop3_proto_login_permitted(p)) {
		pop3_proto_refuse_plaintext(p);
		return;
	}
	if (!had_user) {
		pop3_proto_bad(p, "No user name given: send USER first");
		return;
	}
	if (*args == '\0') {
		pop3_proto_bad(p, "PASS takes one argument: the password");
		return;
	}
	n = strlen(args);
	if (n >= SASL_PASS_MAX) {
		pop3_proto_bad(p, "Password too long");
		return;
	}
	if (pop3_proto_secret(p) < 0) {
		p->out_failed = true;
		return;
	}
	memcpy(p->secret, args, n + 1);
	pop3_proto_start_auth(p, false);
}

/* Decodes a PLAIN response (RFC 4616) and starts the verification. */
static void
pop3_proto_sasl_plain(struct pop3_proto *p, const char *b64, size_t len)
{
	if (pop3_proto_secret(p) < 0) {
		p->out_failed = true;
		return;
	}
	if (sasl_plain_decode(b64, len, p->user, p->secret) < 0) {
		pop3_proto_wipe_secret(p);
		pop3_proto_bad(p, "[AUTH] Malformed SASL PLAIN response");
		return;
	}
	pop3_proto_start_auth(p, true);
}

/* RFC 5034 4: AUTH mechanism [initial-response]. */
static void
pop3_proto_cmd_auth(struct pop3_proto *p, char *args)
{
	char *mech, *ir;

	if (!pop3_proto_login_permitted(p)) {
		pop3_proto_refuse_plaintext(p);
		return;
	}
	if ((mech = pop3_proto_word(&args)) == NULL) {
		/* RFC 1734 listing form, still used by some clients. */
		pop3_proto_reply(p, "+OK Supported mechanisms follow");
		pop3_proto_reply(p, "PLAIN");
		pop3_proto_reply(p, ".");
		return;
	}
	if (strcasecmp(mech, "PLAIN") != 0) {
		pop3_proto_bad(p, "Unsupported authentication mechanism");
		return;
	}
	ir = pop3_proto_word(&args);
	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "AUTH PLAIN takes at most one argument");
		return;
	}
	if (ir == NULL) {
		/* RFC 5034 4: no initial response: an empty challenge. */
		pop3_proto_reply(p, "+ ");
		p->sasl_wait = true;
		return;
	}
	pop3_proto_sasl_plain(p, ir, strlen(ir));
}

/* The client's line after "+ " (RFC 5034 4). */
static void
pop3_proto_sasl_response(struct pop3_proto *p, char *line, size_t len)
{
	p->sasl_wait = false;
	/* "A client ... issues a line with a single '*' ... the server MUST
	 * reject the AUTH command by sending an -ERR reply." */
	if (len == 1 && line[0] == '*') {
		pop3_proto_reply(p, "-ERR [AUTH] Authentication cancelled");
		return;
	}
	pop3_proto_sasl_plain(p, line, len);
}

/* --- Commands: TRANSACTION --------------------------------------------- */

/* RFC 1939 5: STAT, deleted messages not counted. */
static void
pop3_proto_cmd_stat(struct pop3_proto *p, char *args)
{
	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "STAT takes no argument");
		return;
	}
	pop3_proto_reply(p, "+OK %zu %" PRId64, p->live, p->live_octets);
}

/* RFC 1939 5: LIST [msg]; RFC 1939 7: UIDL [msg].  Same shape. */
static void
pop3_proto_list_or_uidl(struct pop3_proto *p, char *args,
    enum pop3_listing kind)
{
	char *arg;
	size_t i;

	arg = pop3_proto_word(&args);
	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "Too many arguments");
		return;
	}
	if (arg == NULL) {
		if (kind == POP3_LISTING_LIST) {
			pop3_proto_reply(p, "+OK %zu messages (%" PRId64
			    " octets)", p->live, p->live_octets);
		} else {
			pop3_proto_reply(p, "+OK Unique-ID listing follows");
		}
		pop3_proto_listing_start(p, kind);
		return;
	}
	if (pop3_proto_msgno(p, arg, &i) < 0)
		return;
	if (kind == POP3_LISTING_LIST)
		pop3_proto_reply(p, "+OK %zu %" PRId64, i + 1, p->msgs[i].size);
	else
		pop3_proto_reply(p, "+OK %zu %s", i + 1, p->msgs[i].uidl);
}

static void
pop3_proto_cmd_list(struct pop3_proto *p, char *args)
{
	pop3_proto_list_or_uidl(p, args, POP3_LISTING_LIST);
}

static void
pop3_proto_cmd_uidl(struct pop3_proto *p, char *args)
{
	pop3_proto_list_or_uidl(p, args, POP3_LISTING_UIDL);
}

static void
pop3_proto_start_body(struct pop3_proto *p, size_t i, long top)
{
	pop3_proto_set_event(p, POP3_EV_BODY);
	p->ev.msgno = (unsigned)(i + 1);
	p->ev.msg_id = p->msgs[i].id;
	p->ev.size = p->msgs[i].size;
	p->ev.top_lines = top;
	memset(&p->body, 0, sizeof(p->body));
	p->body.active = true;
	p->body.top = top;
	p->body.in_header = top >= 0;
	p->body.bol = true;
}

/* RFC 1939 5: RETR msg. */
static void
pop3_proto_cmd_retr(struct pop3_proto *p, char *args)
{
	char *arg;
	size_t i;

	if ((arg = pop3_proto_word(&args)) == NULL ||
	    !pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "RETR takes one argument: a message number");
		return;
	}
	if (pop3_proto_msgno(p, arg, &i) < 0)
		return;
	pop3_proto_start_body(p, i, -1);
}

/* RFC 1939 7: TOP msg n: the header, the blank line, n body lines. */
static void
pop3_proto_cmd_top(struct pop3_proto *p, char *args)
{
	char *arg, *lines;
	unsigned long n;
	size_t i;

	if ((arg = pop3_proto_word(&args)) == NULL ||
	    (lines = pop3_proto_word(&args)) == NULL ||
	    !pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "TOP takes two arguments: a message number "
		    "and a line count");
		return;
	}
	if (pop3_proto_number(lines, &n) < 0) {
		pop3_proto_bad(p, "Invalid line count");
		return;
	}
	if (pop3_proto_msgno(p, arg, &i) < 0)
		return;
	pop3_proto_start_body(p, i, (long)n);
}

/* RFC 1939 5: DELE only marks; the UPDATE state removes. */
static void
pop3_proto_cmd_dele(struct pop3_proto *p, char *args)
{
	char *arg;
	size_t i;

	if ((arg = pop3_proto_word(&args)) == NULL ||
	    !pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "DELE takes one argument: a message number");
		return;
	}
	if (pop3_proto_msgno(p, arg, &i) < 0)
		return;
	p->msgs[i].deleted = true;
	p->live--;
	p->live_octets -= p->msgs[i].size;
	pop3_proto_reply(p, "+OK Message %zu deleted", i + 1);
}

static void
pop3_proto_cmd_noop(struct pop3_proto *p, char *args)
{
	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "NOOP takes no argument");
		return;
	}
	pop3_proto_reply(p, "+OK");
}

/* RFC 1939 5: RSET unmarks every message. */
static void
pop3_proto_cmd_rset(struct pop3_proto *p, char *args)
{
	size_t i;

	if (!pop3_proto_no_more(args)) {
		pop3_proto_bad(p, "RSET takes no argument");
		return;
	}
	for (i = 0; i < p->n_msgs; i++)
		p->msgs[i].deleted = false;
	pop3_proto_recount(p);
	pop3_proto_reply(p, "+OK Maildrop has %zu messages (%" PRId64
	    " octets)", p->live, p->live_octets);
}

/*
 * QUIT.  In AUTHORIZATION: sign off (RFC 1939 4).  In TRANSACTION: enter
 * UPDATE and ask the glue to remove the marked messages in one
 * transaction; +OK is sent only after it committed (RFC 1939 6).
 */
static void
pop3_proto_cmd_quit(struct pop3_proto *p, char *args)
{
	size_t i, n = 0;

	if (p->state == POP3_S_AUTHORIZATION) {
		pop3_proto_reply(p, "+OK %s POP3 server signing off",
		    p->hostname);
		pop3_proto_enter(p, POP3_S_CLOSED);
		return;
	}
	if (p->n_msgs > 0 &&
	    (p->del_ids = calloc(p->n_msgs, sizeof(*p->del_ids))) == NULL) {
		p->out_failed = true;
		return;
	}
	for (i = 0; i < p->n_msgs; i++)
		if (p->msgs[i].deleted)
			p->del_ids[n++] = p->msgs[i].id;
	pop3_proto_enter(p, POP3_S_UPDATE);
	pop3_proto_set_event(p, POP3_EV_COMMIT);
	p->ev.ids = p->del_ids;
	p->ev.n_ids = n;
}

static const struct pop3_cmd pop3_proto_cmds[] = {
	{ "CAPA", POP3_IN_AUTH | POP3_IN_TRANS, pop3_proto_cmd_capa },
	{ "QUIT", POP3_IN_AUTH | POP3_IN_TRANS, pop3_proto_cmd_quit },
	{ "USER", POP3_IN_AUTH, pop3_proto_cmd_user },
	{ "PASS", POP3_IN_AUTH, pop3_proto_cmd_pass },
	{ "AUTH", POP3_IN_AUTH, pop3_proto_cmd_auth },
	{ "STLS", POP3_IN_AUTH, pop3_proto_cmd_stls },
	{ "STAT", POP3_IN_TRANS, pop3_proto_cmd_stat },
	{ "LIST", POP3_IN_TRANS, pop3_proto_cmd_list },
	{ "RETR", POP3_IN_TRANS, pop3_proto_cmd_retr },
	{ "DELE", POP3_IN_TRANS, pop3_proto_cmd_dele },
	{ "NOOP", POP3_IN_TRANS, pop3_proto_cmd_noop },
	{ "RSET", POP3_IN_TRANS, pop3_proto_cmd_rset },
	{ "TOP", POP3_IN_TRANS, pop3_proto_cmd_top },
	{ "UIDL", POP3_IN_TRANS, pop3_proto_cmd_uidl },
};

/* Executes one command line (terminator removed, NUL-terminated). */
static void
pop3_proto_line(struct pop3_proto *p, char *line, size_t len)
{
	const struct pop3_cmd *cmd = NULL;
	char *args;
	size_t i, kwlen;

	if (memchr(line, '\0', len) != NULL) {
		p->sasl_wait = false;
		p->have_user = false;
		pop3_proto_bad(p, "NUL character in command");
		return;
	}
	if (p->sasl_wait) {
		pop3_proto_sasl_response(p, line, len);
		return;
	}
	/* RFC 1939 3: a keyword, then arguments separated by a space. */
	kwlen = strcspn(line, " ");
	args = line + kwlen;
	if (*args == ' ')
		*args++ = '\0';
	for (i = 0; i < sizeof(pop3_proto_cmds) / sizeof(pop3_proto_cmds[0]);
	    i++) {
		/* RFC 1939 3: keywords are case-insensitive. */
		if (strcasecmp(line, pop3_proto_cmds[i].name) == 0) {
			cmd = &pop3_proto_cmds[i];
			break;
		}
	}
	if (cmd == NULL) {
		p->have_user = false;
		pop3_proto_bad(p, kwlen == 0 ? "Empty command" :
		    "Unknown command");
		return;
	}
	if ((cmd->states & (1u << p->state)) == 0) {
		p->have_user = false;
		pop3_proto_bad(p, p->state == POP3_S_AUTHORIZATION ?
		    "Command not valid before login" :
		    "Command not valid in this state");
		return;
	}
	/* RFC 1939 7: PASS must immediately follow USER. */
	if (cmd->fn != pop3_proto_cmd_pass)
		p->have_user = false;
	cmd->fn(p, args);
}

/* An over-long line: refused, and the session goes on (counted as a bad
 * command).  A SASL exchange in progress is abandoned. */
static void
pop3_proto_too_long(struct pop3_proto *p)
{
	p->sasl_wait = false;
	p->have_user = false;
	pop3_proto_bad(p, "Line too long");
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
			/* DESIGN 7: checked before the LF arrives, so an
			 * endless line costs no memory. */
			sodium_memzero(p->in.p, p->in.len);
			buf_reset(&p->in);
			p->discarding = lf == NULL;
			used += chunk;
			pop3_proto_too_long(p);
			continue;
		}
		if (buf_reserve(&p->in, chunk + 1) < 0) {
			p->out_failed = true;
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
		pop3_proto_line(p, (char *)p->in.p, n);
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
pop3_proto_tls_done(struct pop3_proto *p, int status)
{
	if (p->ev.type != POP3_EV_STLS)
		return;
	pop3_proto_clear_event(p);
	if (status != 0) {
		pop3_proto_enter(p, POP3_S_CLOSED);
		return;
	}
	/* RFC 2595 4: the session restarts from scratch under TLS; nothing
	 * the client sent before the handshake may survive it (the glue's
	 * buffer is discarded too, CVE-2011-0411). */
	p->tls_active = true;
	p->have_user = false;
	p->sasl_wait = false;
	p->discarding = false;
	sodium_memzero(p->user, sizeof(p->user));
	if (p->in.p != NULL)
		sodium_memzero(p->in.p, p->in.len);
	buf_reset(&p->in);
}

void
pop3_proto_auth_done(struct pop3_proto *p, int status,
    struct pop3_msg *msgs, size_t n)
{
	size_t i;

	if (p->ev.type != POP3_EV_AUTH) {
		free(msgs);
		return;
	}
	pop3_proto_wipe_secret(p);
	pop3_proto_clear_event(p);
	switch (status) {
	case 0:
		break;
	case PR_EAUTH:
		/* RFC 3206 4: [AUTH].  The same words whether the user
		 * exists or the password is wrong. */
		pop3_proto_reply(p, "-ERR [AUTH] Invalid credentials");
		if (++p->auth_fails >= p->cfg.limits.auth_fail_max)
			pop3_proto_enter(p, POP3_S_CLOSED);
		free(msgs);
		return;
	case PR_EBUSY:
		/* RFC 2449 8.1.2: another session holds the maildrop. */
		pop3_proto_reply(p, "-ERR [IN-USE] Mailbox is locked by "
		    "another POP3 session");
		free(msgs);
		return;
	default:
		pop3_proto_reply(p, "-ERR [%s] Cannot open the maildrop, try "
		    "again later", pop3_proto_sys_code(status));
		free(msgs);
		return;
	}
	free(p->msgs);
	p->msgs = n > 0 ? msgs : NULL;
	p->n_msgs = n > 0 ? n : 0;
	if (n == 0)
		free(msgs);
	for (i = 0; i < p->n_msgs; i++) {
		p->msgs[i].deleted = false;
		p->msgs[i].uidl[POP3_UIDL_MAX] = '\0';
	}
	snprintf(p->login, sizeof(p->login), "%s", p->user);
	pop3_proto_recount(p);
	pop3_proto_enter(p, POP3_S_TRANSACTION);
	pop3_proto_reply(p, "+OK Logged in, %zu messages (%" PRId64 " octets)",
	    p->live, p->live_octets);
}

void
pop3_proto_body_begin(struct pop3_proto *p, int status)
{
	if (p->ev.type != POP3_EV_BODY || p->body.started)
		return;
	if (status != 0) {
		pop3_proto_reply(p, "-ERR [%s] Cannot read message %u",
		    pop3_proto_sys_code(status), p->ev.msgno);
		p->body.active = false;
		pop3_proto_clear_event(p);
		return;
	}
	p->body.started = true;
	if (p->body.top < 0)
		pop3_proto_reply(p, "+OK %" PRId64 " octets", p->ev.size);
	else
		pop3_proto_reply(p, "+OK Top of message %u follows",
		    p->ev.msgno);
}

bool
pop3_proto_body_wanted(const struct pop3_proto *p)
{
	return p->body.active && p->body.started && !p->body.done;
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
	while (used < len && !b->done && p->out.len < POP3_OUT_HIGH) {
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

void
pop3_proto_body_end(struct pop3_proto *p, int status)
{
	if (p->ev.type != POP3_EV_BODY)
		return;
	if (status != 0 || !p->body.started) {
		/* Part of a multi-line response is out already; the only
		 * honest thing left is to drop the connection (RFC 1939 6:
		 * nothing gets deleted). */
		pop3_proto_enter(p, POP3_S_CLOSED);
		return;
	}
	/* RFC 1939 3: the terminating line "." follows a CRLF. */
	if (!p->body.bol)
		pop3_proto_out_raw(p, "\r\n", 2);
	pop3_proto_out_raw(p, ".\r\n", 3);
	if (p->body.top < 0)
		p->retrieved++;
	p->body.active = false;
	pop3_proto_clear_event(p);
}

void
pop3_proto_commit_done(struct pop3_proto *p, int status)
{
	if (p->ev.type != POP3_EV_COMMIT)
		return;
	pop3_proto_clear_event(p);
	if (status == 0) {
		p->deleted = (unsigned)(p->n_msgs - p->live);
		pop3_proto_reply(p, "+OK %s POP3 server signing off (%u "
		    "messages deleted)", p->hostname, p->deleted);
	} else {
		/* RFC 1939 6: "-ERR some deleted messages not removed". */
		pop3_proto_reply(p, "-ERR [%s] Some deleted messages not "
		    "removed", pop3_proto_sys_code(status));
	}
	pop3_proto_enter(p, POP3_S_CLOSED);
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
		pop3_proto_reply(p, "-ERR [SYS/TEMP] Server shutting down");
	pop3_proto_enter(p, POP3_S_CLOSED);
}
