/*
 * pop3_cmd.c - the POP3 command table (RFC 1939, 2449, 2595, 5034): each
 * command is parsed into typed arguments, checked (sequencing, the
 * login policy, the message it names), then proceeds (the reply, the
 * state change or the event).
 */
#include "pop3_proto_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "err.h"

#define POP3_IN_AUTH (1u << POP3_S_AUTHORIZATION)
#define POP3_IN_TRANS (1u << POP3_S_TRANSACTION)

/* Typed arguments; each parse step fills the fields of its verb. */
struct pop3_args {
	const char *verb;    /* for error texts */
	char *rest;          /* the argument text (PASS takes it whole) */
	char *word;          /* USER name, AUTH mechanism; NULL = none */
	char *ir;            /* AUTH initial response; NULL = none */
	bool has_msg;        /* a message number was given */
	unsigned long msgno; /* ... 1-based, as given */
	unsigned long lines; /* TOP */
	size_t msg;          /* check: the message's 0-based index */
};

/*
 * One command.  The steps run in this order; a NULL step is skipped:
 *
 *	gate     checks that need no arguments: the login policy and the
 *	         sequence (PASS right after USER).
 *	parse    typed arguments, or a bad command.
 *	check    the message an argument names exists and is not deleted.
 *	proceed  the reply, the state change or the event.
 *
 * gate, parse and check queue their refusal and return false to stop.
 */
struct pop3_cmd {
	const char *name;
	unsigned states;     /* bit (1 << state) per state it is valid in */
	bool (*gate)(struct pop3_proto *p);
	bool (*parse)(struct pop3_proto *p, struct pop3_args *a);
	bool (*check)(struct pop3_proto *p, struct pop3_args *a);
	void (*proceed)(struct pop3_proto *p, const struct pop3_args *a);
};

/* --- Parse steps ------------------------------------------------------- */

/* Splits off the next space-separated word of *s (NUL-terminating it) and
 * advances *s; returns NULL when no word is left. */
static char *
pop3_cmd_word(char **s)
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
pop3_cmd_no_more(const char *s)
{
	while (*s == ' ')
		s++;
	return *s == '\0';
}

/* Parses a decimal number of at most 9 digits (no sign, no spaces), so it
 * fits every integer type used here.  Returns 0 or -1. */
static int
pop3_cmd_number(const char *s, unsigned long *v_r)
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

/* RFC 1939 5: a message-number is a decimal number. */
static bool
pop3_cmd_msgno(struct pop3_proto *p, const char *w, struct pop3_args *a)
{
	if (pop3_cmd_number(w, &a->msgno) < 0) {
		pop3_proto__bad(p, "Invalid message number");
		return false;
	}
	a->has_msg = true;
	return true;
}

static bool
pop3_cmd_parse_none(struct pop3_proto *p, struct pop3_args *a)
{
	char text[64];

	if (pop3_cmd_no_more(a->rest))
		return true;
	snprintf(text, sizeof(text), "%s takes no argument", a->verb);
	pop3_proto__bad(p, text);
	return false;
}

/* RFC 1939 7: USER name. */
static bool
pop3_cmd_parse_user(struct pop3_proto *p, struct pop3_args *a)
{
	if ((a->word = pop3_cmd_word(&a->rest)) == NULL ||
	    !pop3_cmd_no_more(a->rest)) {
		pop3_proto__bad(p, "USER takes one argument: the address");
		return false;
	}
	return true;
}

/* RFC 1939 7: PASS string.  The argument is the rest of the line, spaces
 * included ("a POP3 server may treat spaces in the argument as part of
 * the password"). */
static bool
pop3_cmd_parse_pass(struct pop3_proto *p, struct pop3_args *a)
{
	if (*a->rest == '\0') {
		pop3_proto__bad(p, "PASS takes one argument: the password");
		return false;
	}
	if (strlen(a->rest) >= SASL_PASS_MAX) {
		pop3_proto__bad(p, "Password too long");
		return false;
	}
	return true;
}

/* RFC 5034 4: AUTH [mechanism [initial-response]]. */
static bool
pop3_cmd_parse_auth(struct pop3_proto *p, struct pop3_args *a)
{
	if ((a->word = pop3_cmd_word(&a->rest)) == NULL)
		return true; /* RFC 1734 listing form */
	if (strcasecmp(a->word, "PLAIN") != 0) {
		pop3_proto__bad(p, "Unsupported authentication mechanism");
		return false;
	}
	a->ir = pop3_cmd_word(&a->rest);
	if (!pop3_cmd_no_more(a->rest)) {
		pop3_proto__bad(p, "AUTH PLAIN takes at most one argument");
		return false;
	}
	return true;
}

/* LIST [msg], UIDL [msg]. */
static bool
pop3_cmd_parse_optmsg(struct pop3_proto *p, struct pop3_args *a)
{
	char *w = pop3_cmd_word(&a->rest);

	if (!pop3_cmd_no_more(a->rest)) {
		pop3_proto__bad(p, "Too many arguments");
		return false;
	}
	return w == NULL || pop3_cmd_msgno(p, w, a);
}

/* RETR msg, DELE msg. */
static bool
pop3_cmd_parse_msg(struct pop3_proto *p, struct pop3_args *a)
{
	char text[64];
	char *w;

	if ((w = pop3_cmd_word(&a->rest)) == NULL ||
	    !pop3_cmd_no_more(a->rest)) {
		snprintf(text, sizeof(text), "%s takes one argument: a "
		    "message number", a->verb);
		pop3_proto__bad(p, text);
		return false;
	}
	return pop3_cmd_msgno(p, w, a);
}

/* RFC 1939 7: TOP msg n. */
static bool
pop3_cmd_parse_top(struct pop3_proto *p, struct pop3_args *a)
{
	char *w, *lines;

	if ((w = pop3_cmd_word(&a->rest)) == NULL ||
	    (lines = pop3_cmd_word(&a->rest)) == NULL ||
	    !pop3_cmd_no_more(a->rest)) {
		pop3_proto__bad(p, "TOP takes two arguments: a message number "
		    "and a line count");
		return false;
	}
	if (pop3_cmd_number(lines, &a->lines) < 0) {
		pop3_proto__bad(p, "Invalid line count");
		return false;
	}
	return pop3_cmd_msgno(p, w, a);
}

/* --- Gate and check steps ---------------------------------------------- */

/* USER/PASS and AUTH PLAIN send the password in the clear: refused
 * before TLS unless the admin allowed it (RFC 2595 2.1). */
static bool
pop3_cmd_login_permitted(const struct pop3_proto *p)
{
	return p->tls_active || p->cfg.allow_plaintext_auth;
}

static bool
pop3_cmd_stls_offered(const struct pop3_proto *p)
{
	return p->cfg.tls_available && !p->tls_active;
}

static bool
pop3_cmd_login_gate(struct pop3_proto *p)
{
	if (pop3_cmd_login_permitted(p))
		return true;
	if (pop3_cmd_stls_offered(p))
		pop3_proto__bad(p, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connection; use STLS");
	else
		pop3_proto__bad(p, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connection");
	return false;
}

/* RFC 1939 7: PASS only right after a successful USER. */
static bool
pop3_cmd_pass_gate(struct pop3_proto *p)
{
	if (!pop3_cmd_login_gate(p))
		return false;
	if (!p->prev_user) {
		pop3_proto__bad(p, "No user name given: send USER first");
		return false;
	}
	return true;
}

/* RFC 2595 4: STLS only where TLS can start. */
static bool
pop3_cmd_stls_gate(struct pop3_proto *p)
{
	if (p->tls_active) {
		pop3_proto__bad(p, "TLS already active");
		return false;
	}
	if (!p->cfg.tls_available) {
		pop3_proto__bad(p, "STLS not available");
		return false;
	}
	return true;
}

/* RFC 1939 5: messages are numbered from 1; deleted ones may not be
 * referred to.  These are answers, not bad commands. */
static bool
pop3_cmd_msg_check(struct pop3_proto *p, struct pop3_args *a)
{
	if (!a->has_msg)
		return true;
	if (a->msgno == 0 || a->msgno > p->n_msgs) {
		pop3_proto__reply(p, "-ERR No such message, only %zu messages "
		    "in maildrop", p->n_msgs);
		return false;
	}
	if (p->msgs[a->msgno - 1].deleted) {
		pop3_proto__reply(p, "-ERR Message %lu already deleted",
		    a->msgno);
		return false;
	}
	a->msg = a->msgno - 1;
	return true;
}

/* --- AUTHORIZATION ----------------------------------------------------- */

/* RFC 2449 5: CAPA is valid in both states and must list the same
 * capabilities of the AUTHORIZATION state in both. */
static void
pop3_cmd_capa_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	(void)a;
	pop3_proto__reply(p, "+OK Capability list follows");
	pop3_proto__reply(p, "TOP");
	/* Without TLS (and unless allowed), logging in is refused, so the
	 * login methods are not advertised (as Dovecot does); after STLS the
	 * client asks again (RFC 2595 4) and sees them. */
	if (pop3_cmd_login_permitted(p)) {
		pop3_proto__reply(p, "USER");
		pop3_proto__reply(p, "SASL PLAIN");
	}
	pop3_proto__reply(p, "UIDL");
	pop3_proto__reply(p, "RESP-CODES");
	pop3_proto__reply(p, "AUTH-RESP-CODE");
	pop3_proto__reply(p, "PIPELINING");
	if (pop3_cmd_stls_offered(p))
		pop3_proto__reply(p, "STLS");
	pop3_proto__reply(p, "IMPLEMENTATION postroom");
	pop3_proto__reply(p, ".");
}

static void
pop3_cmd_stls_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	(void)a;
	pop3_proto__reply(p, "+OK Begin TLS negotiation");
	pop3_proto__set_event(p, POP3_EV_STLS);
}

static void
pop3_cmd_user_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	/* A command line (255 octets) cannot exceed SASL_USER_MAX. */
	snprintf(p->user, sizeof(p->user), "%s", a->word);
	p->have_user = true;
	/* The reply is the same whether the user exists or not. */
	pop3_proto__reply(p, "+OK Send your password");
}

static int
pop3_cmd_secret(struct pop3_proto *p)
{
	if (p->secret == NULL &&
	    (p->secret = sodium_malloc(SASL_PASS_MAX)) == NULL) {
		p->out_failed = true;
		pop3_proto__enter(p, POP3_S_CLOSED);
		return PR_ENOMEM;
	}
	return 0;
}

static void
pop3_cmd_start_auth(struct pop3_proto *p, bool sasl)
{
	pop3_proto__set_event(p, POP3_EV_AUTH);
	p->ev.user = p->user;
	p->ev.pass = p->secret;
	p->ev.sasl = sasl;
}

static void
pop3_cmd_pass_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	if (pop3_cmd_secret(p) < 0)
		return;
	memcpy(p->secret, a->rest, strlen(a->rest) + 1);
	pop3_cmd_start_auth(p, false);
}

/* Decodes a PLAIN response (RFC 4616) and starts the verification. */
static void
pop3_cmd_sasl_plain(struct pop3_proto *p, const char *b64, size_t len)
{
	if (pop3_cmd_secret(p) < 0)
		return;
	if (sasl_plain_decode(b64, len, p->user, p->secret) < 0) {
		pop3_proto__wipe_secret(p);
		pop3_proto__bad(p, "[AUTH] Malformed SASL PLAIN response");
		return;
	}
	pop3_cmd_start_auth(p, true);
}

static void
pop3_cmd_auth_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	if (a->word == NULL) {
		/* RFC 1734 listing form, still used by some clients. */
		pop3_proto__reply(p, "+OK Supported mechanisms follow");
		pop3_proto__reply(p, "PLAIN");
		pop3_proto__reply(p, ".");
		return;
	}
	if (a->ir == NULL) {
		/* RFC 5034 4: no initial response: an empty challenge. */
		pop3_proto__reply(p, "+ ");
		p->sasl_wait = true;
		return;
	}
	pop3_cmd_sasl_plain(p, a->ir, strlen(a->ir));
}

/* The client's line after "+ " (RFC 5034 4). */
static void
pop3_cmd_sasl_response(struct pop3_proto *p, char *line, size_t len)
{
	p->sasl_wait = false;
	/* "A client ... issues a line with a single '*' ... the server MUST
	 * reject the AUTH command by sending an -ERR reply." */
	if (len == 1 && line[0] == '*') {
		pop3_proto__reply(p, "-ERR [AUTH] Authentication cancelled");
		return;
	}
	pop3_cmd_sasl_plain(p, line, len);
}

/* --- TRANSACTION ------------------------------------------------------- */

/* RFC 1939 5: STAT, deleted messages not counted. */
static void
pop3_cmd_stat_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	(void)a;
	pop3_proto__reply(p, "+OK %zu %" PRId64, p->live, p->live_octets);
}

/* RFC 1939 5: LIST [msg]. */
static void
pop3_cmd_list_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	if (a->has_msg) {
		pop3_proto__reply(p, "+OK %zu %" PRId64, a->msg + 1,
		    p->msgs[a->msg].size);
		return;
	}
	pop3_proto__reply(p, "+OK %zu messages (%" PRId64 " octets)",
	    p->live, p->live_octets);
	pop3_proto__listing_start(p, POP3_LISTING_LIST);
}

/* RFC 1939 7: UIDL [msg]. */
static void
pop3_cmd_uidl_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	if (a->has_msg) {
		pop3_proto__reply(p, "+OK %zu %s", a->msg + 1,
		    p->msgs[a->msg].uidl);
		return;
	}
	pop3_proto__reply(p, "+OK Unique-ID listing follows");
	pop3_proto__listing_start(p, POP3_LISTING_UIDL);
}

static void
pop3_cmd_start_body(struct pop3_proto *p, size_t i, long top)
{
	pop3_proto__set_event(p, POP3_EV_BODY);
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
pop3_cmd_retr_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	pop3_cmd_start_body(p, a->msg, -1);
}

/* RFC 1939 7: TOP msg n: the header, the blank line, n body lines. */
static void
pop3_cmd_top_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	pop3_cmd_start_body(p, a->msg, (long)a->lines);
}

/* RFC 1939 5: DELE only marks; the UPDATE state removes. */
static void
pop3_cmd_dele_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	p->msgs[a->msg].deleted = true;
	p->live--;
	p->live_octets -= p->msgs[a->msg].size;
	pop3_proto__reply(p, "+OK Message %zu deleted", a->msg + 1);
}

static void
pop3_cmd_noop_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	(void)a;
	pop3_proto__reply(p, "+OK");
}

/* RFC 1939 5: RSET unmarks every message. */
static void
pop3_cmd_rset_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	size_t i;

	(void)a;
	for (i = 0; i < p->n_msgs; i++)
		p->msgs[i].deleted = false;
	pop3_proto__recount(p);
	pop3_proto__reply(p, "+OK Maildrop has %zu messages (%" PRId64
	    " octets)", p->live, p->live_octets);
}

/*
 * QUIT.  In AUTHORIZATION: sign off (RFC 1939 4).  In TRANSACTION: enter
 * UPDATE and ask the glue to remove the marked messages in one
 * transaction; +OK is sent only after it committed (RFC 1939 6).
 */
static void
pop3_cmd_quit_proceed(struct pop3_proto *p, const struct pop3_args *a)
{
	size_t i, n = 0;

	(void)a;
	if (p->state == POP3_S_AUTHORIZATION) {
		pop3_proto__reply(p, "+OK %s POP3 server signing off",
		    p->hostname);
		pop3_proto__enter(p, POP3_S_CLOSED);
		return;
	}
	if (p->n_msgs > 0 &&
	    (p->del_ids = calloc(p->n_msgs, sizeof(*p->del_ids))) == NULL) {
		p->out_failed = true;
		pop3_proto__enter(p, POP3_S_CLOSED);
		return;
	}
	for (i = 0; i < p->n_msgs; i++)
		if (p->msgs[i].deleted)
			p->del_ids[n++] = p->msgs[i].id;
	pop3_proto__enter(p, POP3_S_UPDATE);
	pop3_proto__set_event(p, POP3_EV_COMMIT);
	p->ev.ids = p->del_ids;
	p->ev.n_ids = n;
}

/* --- The table --------------------------------------------------------- */

#define POP3_IN_BOTH (POP3_IN_AUTH | POP3_IN_TRANS)

static const struct pop3_cmd pop3_cmds[] = {
	{ "CAPA", POP3_IN_BOTH, NULL, pop3_cmd_parse_none, NULL,
	    pop3_cmd_capa_proceed },
	{ "QUIT", POP3_IN_BOTH, NULL, NULL, NULL, pop3_cmd_quit_proceed },
	{ "USER", POP3_IN_AUTH, pop3_cmd_login_gate, pop3_cmd_parse_user,
	    NULL, pop3_cmd_user_proceed },
	{ "PASS", POP3_IN_AUTH, pop3_cmd_pass_gate, pop3_cmd_parse_pass,
	    NULL, pop3_cmd_pass_proceed },
	{ "AUTH", POP3_IN_AUTH, pop3_cmd_login_gate, pop3_cmd_parse_auth,
	    NULL, pop3_cmd_auth_proceed },
	{ "STLS", POP3_IN_AUTH, pop3_cmd_stls_gate, pop3_cmd_parse_none,
	    NULL, pop3_cmd_stls_proceed },
	{ "STAT", POP3_IN_TRANS, NULL, pop3_cmd_parse_none, NULL,
	    pop3_cmd_stat_proceed },
	{ "LIST", POP3_IN_TRANS, NULL, pop3_cmd_parse_optmsg,
	    pop3_cmd_msg_check, pop3_cmd_list_proceed },
	{ "RETR", POP3_IN_TRANS, NULL, pop3_cmd_parse_msg, pop3_cmd_msg_check,
	    pop3_cmd_retr_proceed },
	{ "DELE", POP3_IN_TRANS, NULL, pop3_cmd_parse_msg, pop3_cmd_msg_check,
	    pop3_cmd_dele_proceed },
	{ "NOOP", POP3_IN_TRANS, NULL, pop3_cmd_parse_none, NULL,
	    pop3_cmd_noop_proceed },
	{ "RSET", POP3_IN_TRANS, NULL, pop3_cmd_parse_none, NULL,
	    pop3_cmd_rset_proceed },
	{ "TOP", POP3_IN_TRANS, NULL, pop3_cmd_parse_top, pop3_cmd_msg_check,
	    pop3_cmd_top_proceed },
	{ "UIDL", POP3_IN_TRANS, NULL, pop3_cmd_parse_optmsg,
	    pop3_cmd_msg_check, pop3_cmd_uidl_proceed },
};

static void
pop3_cmd_run(struct pop3_proto *p, const struct pop3_cmd *c, char *args)
{
	struct pop3_args a;

	/* RFC 1939 7: PASS must immediately follow USER. */
	p->prev_user = p->have_user;
	p->have_user = false;
	if (c->gate != NULL && !c->gate(p))
		return;
	memset(&a, 0, sizeof(a));
	a.verb = c->name;
	a.rest = args;
	if (c->parse != NULL && !c->parse(p, &a))
		return;
	if (c->check != NULL && !c->check(p, &a))
		return;
	c->proceed(p, &a);
}

/*
 * CAPA and USER before a login: valid, but a client that repeats them and
 * never logs in holds a session for nothing.  Past limits.junk_max the
 * session closes.  A logged-in user (TRANSACTION) is not limited.
 * Returns false when the session was closed.
 */
static bool
pop3_cmd_junk(struct pop3_proto *p, const struct pop3_cmd *c)
{
	if (p->state != POP3_S_AUTHORIZATION || (strcmp(c->name, "CAPA") != 0 &&
	    strcmp(c->name, "USER") != 0))
		return true;
	if (++p->junk <= p->cfg.limits.junk_max)
		return true;
	pop3_cmd__forget(p);
	pop3_proto__reply(p, "-ERR Too many commands without logging in, "
	    "closing connection");
	pop3_proto__enter(p, POP3_S_CLOSED);
	return false;
}

void
pop3_cmd__forget(struct pop3_proto *p)
{
	p->sasl_wait = false;
	p->have_user = false;
}

void
pop3_cmd__line(struct pop3_proto *p, char *line, size_t len)
{
	const struct pop3_cmd *cmd = NULL;
	char *args;
	size_t i, kwlen;

	if (memchr(line, '\0', len) != NULL) {
		pop3_cmd__forget(p);
		pop3_proto__bad(p, "NUL character in command");
		return;
	}
	if (p->sasl_wait) {
		pop3_cmd_sasl_response(p, line, len);
		return;
	}
	/* RFC 1939 3: a keyword, then arguments separated by a space. */
	kwlen = strcspn(line, " ");
	args = line + kwlen;
	if (*args == ' ')
		*args++ = '\0';
	for (i = 0; i < sizeof(pop3_cmds) / sizeof(pop3_cmds[0]); i++) {
		/* RFC 1939 3: keywords are case-insensitive. */
		if (strcasecmp(line, pop3_cmds[i].name) == 0) {
			cmd = &pop3_cmds[i];
			break;
		}
	}
	if (cmd == NULL) {
		p->have_user = false;
		pop3_proto__bad(p, kwlen == 0 ? "Empty command" :
		    "Unknown command");
		return;
	}
	if ((cmd->states & (1u << p->state)) == 0) {
		p->have_user = false;
		pop3_proto__bad(p, p->state == POP3_S_AUTHORIZATION ?
		    "Command not valid before login" :
		    "Command not valid in this state");
		return;
	}
	if (!pop3_cmd_junk(p, cmd))
		return;
	pop3_cmd_run(p, cmd, args);
}
