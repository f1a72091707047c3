/*
 * smtp_cmd.c - the SMTP command table: each verb is parsed into typed
 * arguments (smtp_parse.c), checked (sequencing here, every other
 * decision in smtp_policy.c), then proceeds (state change, events,
 * the positive reply).
 */
#include "smtp_proto_int.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "err.h"
#include "sasl.h"

#define SMTP_ST(s) (1u << (s))
#define SMTP_ST_SESSION (SMTP_ST(SMTP_S_READY) | SMTP_ST(SMTP_S_MAIL) | \
	SMTP_ST(SMTP_S_RCPT) | SMTP_ST(SMTP_S_BDAT))
#define SMTP_ST_ANY (SMTP_ST(SMTP_S_GREETING) | SMTP_ST_SESSION)
#define SMTP_ST_NOT_BDAT (SMTP_ST_ANY & ~SMTP_ST(SMTP_S_BDAT))

/*
 * One verb.  The steps run in this order; a NULL step is skipped:
 *
 *	gate     checks that need no arguments: sequencing and the
 *	         session's policy.  A command out of order is refused
 *	         whatever its arguments (RFC 5321 4.1.4).
 *	parse    typed arguments, or a syntax error.
 *	check    sequencing and policy on the parsed arguments.
 *	proceed  the state change, the event or the positive reply.
 *
 * gate and check queue their refusal and return false to stop.
 */
struct smtp_cmd {
	const char *name;
	unsigned states; /* where the verb may appear at all */
	bool (*gate)(struct smtp_proto *p);
	bool (*parse)(const struct smtp_parse_ctx *c, struct smtp_args *a,
	    struct smtp_verdict *v_r);
	bool (*check)(struct smtp_proto *p, const struct smtp_args *a);
	void (*proceed)(struct smtp_proto *p, const struct smtp_args *a);
};

/* --- Content filters -------------------------------------------------- */

/* With content filters, the command's step goes to them before its
 * reply (SMTP_EV_MILTER; smtp_cmd__milter_done goes on).  Returns true
 * when it does. */
static bool
smtp_cmd_milter(struct smtp_proto *p, enum smtp_milter_step step,
    const char *addr)
{
	if (!p->conf.milter)
		return false;
	memset(&p->milter, 0, sizeof(p->milter));
	p->ev.type = SMTP_EV_MILTER;
	p->ev.milter_step = (int)step;
	p->ev.addr = addr;
	return true;
}

/* --- EHLO, HELO -------------------------------------------------------- */

static void
smtp_cmd_hello(struct smtp_proto *p, const struct smtp_args *a, bool esmtp)
{
	/* RFC 5321 4.1.4: EHLO in a transaction resets it. */
	smtp_proto__tx_reset(p);
	memcpy(p->helo, a->helo, sizeof(p->helo));
	p->esmtp = esmtp;
	smtp_proto__enter(p, SMTP_S_READY);
}

static void
smtp_cmd_ehlo_reply(struct smtp_proto *p)
{
	struct buf *o = &p->out;
	int r = 0;

	r |= buf_printf(o, "250-%s\r\n", p->conf.hostname);
	r |= buf_puts(o, "250-PIPELINING\r\n");
	r |= buf_printf(o, "250-SIZE %llu\r\n",
	    (unsigned long long)p->conf.limits.data_max);
	r |= buf_puts(o, "250-8BITMIME\r\n");
	r |= buf_puts(o, "250-ENHANCEDSTATUSCODES\r\n");
	r |= buf_puts(o, "250-DSN\r\n"); /* RFC 3461 4 */
	if (p->conf.starttls && !p->tls)
		r |= buf_puts(o, "250-STARTTLS\r\n");
	/* RFC 4954 4 / RFC 8314: no AUTH over plaintext unless allowed. */
	if (p->tls || p->conf.allow_plaintext_auth)
		r |= buf_puts(o, "250-AUTH PLAIN LOGIN\r\n");
	r |= buf_puts(o, "250-SMTPUTF8\r\n");
	if (p->conf.etrn)
		r |= buf_puts(o, "250-ETRN\r\n");
	r |= buf_puts(o, "250 CHUNKING\r\n");
	if (r != 0) {
		p->out_failed = true;
		smtp_proto__close(p);
	}
}

static void
smtp_cmd_ehlo_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	smtp_cmd_hello(p, a, true);
	if (!smtp_cmd_milter(p, SMTP_MILTER_HELO, NULL))
		smtp_cmd_ehlo_reply(p);
}

static void
smtp_cmd_helo_reply(struct smtp_proto *p)
{
	/* RFC 2034 4: no enhanced code in the HELO reply. */
	smtp_proto__reply(p, 250, NULL, "%s", p->conf.hostname);
}

static void
smtp_cmd_helo_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	smtp_cmd_hello(p, a, false);
	if (!smtp_cmd_milter(p, SMTP_MILTER_HELO, NULL))
		smtp_cmd_helo_reply(p);
}

/* --- MAIL -------------------------------------------------------------- */

static bool
smtp_cmd_mail_gate(struct smtp_proto *p)
{
	if (p->state == SMTP_S_GREETING) {
		smtp_proto__reject(p, 503, "5.5.1", "Send EHLO/HELO first");
		return false;
	}
	if (p->state != SMTP_S_READY) {
		smtp_proto__reject(p, 503, "5.5.1", "Nested MAIL command");
		return false;
	}
	return smtp_proto__check(p, SMTP_POLICY_TX, 0);
}

static bool
smtp_cmd_mail_check(struct smtp_proto *p, const struct smtp_args *a)
{
	struct smtp_policy_facts f;

	smtp_proto__facts(p, &f);
	f.sender = a->addr;
	f.smtputf8 = a->smtputf8;
	f.declared_size = a->size;
	return smtp_proto__decide(p, SMTP_POLICY_MAIL, &f);
}

static void
smtp_cmd_mail_ok(struct smtp_proto *p)
{
	smtp_proto__enter(p, SMTP_S_MAIL);
	smtp_proto__reply(p, 250, "2.1.0", "Ok");
}

/* Our checks passed: the filters' turn, then the reply. */
static void
smtp_cmd_mail_accept(struct smtp_proto *p)
{
	if (!smtp_cmd_milter(p, SMTP_MILTER_MAIL, p->tx.sender))
		smtp_cmd_mail_ok(p);
}

/* RFC 7208 2.2: mail from the Internet is checked with SPF at MAIL;
 * the session's own users are not (they log in). */
static void
smtp_cmd_mail_spf(struct smtp_proto *p)
{
	if (!p->authed && p->conf.kind == SMTP_LISTEN_MX && p->conf.spf) {
		p->ev.type = SMTP_EV_SPF;
		p->ev.addr = p->tx.sender;
		return;
	}
	smtp_cmd_mail_accept(p);
}

static void
smtp_cmd_mail_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	memcpy(p->tx.sender, a->addr, sizeof(p->tx.sender));
	p->tx.declared_size = a->size;
	p->tx.smtputf8 = a->smtputf8;
	p->tx.body_8bit = a->body_8bit;
	p->tx.dsn_ret = a->ret;
	memcpy(p->tx.dsn_envid, a->envid, sizeof(p->tx.dsn_envid));
	/* Whether the user owns the address, or an anonymous sender's
	 * domain is hosted here, is the store's to say. */
	if (!p->authed && (p->conf.kind != SMTP_LISTEN_MX ||
	    p->tx.sender[0] == '\0')) {
		smtp_cmd_mail_spf(p);
		return;
	}
	p->ev.type = SMTP_EV_MAIL;
	p->ev.addr = p->tx.sender;
}

void
smtp_cmd__mail_done(struct smtp_proto *p, int status)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "MAIL FROM:<%s>",
	    p->tx.sender);
	if (smtp_proto__check(p, SMTP_POLICY_MAIL_DONE, status))
		smtp_cmd_mail_spf(p);
}

void
smtp_cmd__spf_done(struct smtp_proto *p, int status)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "MAIL FROM:<%s>",
	    p->tx.sender);
	if (smtp_proto__check(p, SMTP_POLICY_SPF_DONE, status))
		smtp_cmd_mail_accept(p);
}

/* --- RCPT -------------------------------------------------------------- */

static bool
smtp_cmd_rcpt_gate(struct smtp_proto *p)
{
	if (p->state == SMTP_S_GREETING || p->state == SMTP_S_READY) {
		smtp_proto__reject(p, 503, "5.5.1", "Need MAIL before RCPT");
		return false;
	}
	if (p->state == SMTP_S_BDAT) {
		smtp_proto__reject(p, 503, "5.5.1", "RCPT not allowed after "
		    "BDAT");
		return false;
	}
	return true;
}

static bool
smtp_cmd_rcpt_check(struct smtp_proto *p, const struct smtp_args *a)
{
	struct smtp_policy_facts f;

	smtp_proto__facts(p, &f);
	f.rcpt = a->addr;
	return smtp_proto__decide(p, SMTP_POLICY_RCPT, &f);
}

static void
smtp_cmd_rcpt_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	memcpy(p->rcpt, a->addr, sizeof(p->rcpt));
	p->rcpt_notify = a->notify;
	memcpy(p->rcpt_orcpt, a->orcpt, sizeof(p->rcpt_orcpt));
	p->users_mark = p->tx.n_users;
	p->remote_mark = p->tx.n_remote;
	p->ev.type = SMTP_EV_RCPT;
	p->ev.addr = p->rcpt;
}

/* Keeps the RCPT with its DSN parameters as tx.rcpts[n_rcpt]. */
static int
smtp_cmd_rcpt_keep(struct smtp_proto *p)
{
	struct smtp_tx_rcpt *nr, *t;

	/* Grown one at a time: rcpt_max bounds it, and most messages have
	 * one or two. */
	nr = realloc(p->tx.rcpts, (p->tx.n_rcpt + 1) * sizeof(*nr));
	if (nr == NULL)
		return PR_ENOMEM;
	p->tx.rcpts = nr;
	t = &nr[p->tx.n_rcpt];
	memcpy(t->addr, p->rcpt, sizeof(t->addr));
	t->notify = p->rcpt_notify;
	memcpy(t->orcpt, p->rcpt_orcpt, sizeof(t->orcpt));
	return 0;
}

/* The recipient is accepted: kept with its DSN parameters. */
static void
smtp_cmd_rcpt_ok(struct smtp_proto *p)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	int r;

	if ((r = smtp_cmd_rcpt_keep(p)) < 0) {
		smtp_proto__tx_rollback(p);
		smtp_proto__facts(p, &f);
		f.status = r;
		smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &v);
		smtp_proto__verdict(p, &v);
		return;
	}
	if (p->tx.n_rcpt++ == 0)
		memcpy(p->tx.first_rcpt, p->rcpt, sizeof(p->rcpt));
	smtp_proto__enter(p, SMTP_S_RCPT);
	smtp_proto__reply(p, 250, "2.1.5", "Ok");
}

void
smtp_cmd__rcpt_done(struct smtp_proto *p, int status)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	int r;

	snprintf(p->cmdlog, sizeof(p->cmdlog), "RCPT TO:<%s>", p->rcpt);
	smtp_proto__facts(p, &f);
	f.status = status;
	smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &v);
	if (v.code == 0 && status == SMTP_RCPT_REMOTE) {
		/* Relayed: the address itself is the target. */
		smtp_proto__tx_rollback(p);
		if ((r = smtp_proto_rcpt_target(p, 0, p->rcpt)) < 0) {
			f.status = r;
			smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &v);
		}
	}
	if (v.code != 0) {
		smtp_proto__tx_rollback(p);
		smtp_proto__verdict(p, &v);
		return;
	}
	if (!smtp_cmd_milter(p, SMTP_MILTER_RCPT, p->rcpt))
		smtp_cmd_rcpt_ok(p);
}

/* --- DATA, BDAT -------------------------------------------------------- */

static bool
smtp_cmd_data_gate(struct smtp_proto *p)
{
	if (p->state == SMTP_S_MAIL) {
		smtp_proto__reject(p, 554, "5.5.1", "No valid recipients");
		return false;
	}
	if (p->state == SMTP_S_BDAT) {
		/* RFC 3030 2 */
		smtp_proto__reject(p, 503, "5.5.1", "DATA not allowed after "
		    "BDAT");
		return false;
	}
	if (p->state != SMTP_S_RCPT) {
		smtp_proto__reject(p, 503, "5.5.1", "Need MAIL and RCPT "
		    "before DATA");
		return false;
	}
	return true;
}

static void
smtp_cmd_data_ok(struct smtp_proto *p)
{
	smtp_proto__data_begin(p, SMTP_DATA_DOT);
	smtp_proto__enter(p, SMTP_S_DATA);
	smtp_proto__reply(p, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void
smtp_cmd_data_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	if (!smtp_cmd_milter(p, SMTP_MILTER_DATA, NULL))
		smtp_cmd_data_ok(p);
}

/* RFC 3030 2: a refused BDAT still has its octets read, so the refusal
 * is kept for the end of the chunk and the check lets it proceed. */
static bool
smtp_cmd_bdat_check(struct smtp_proto *p, const struct smtp_args *a)
{
	struct smtp_verdict *v = &p->chunk_verdict;

	(void)a;
	memset(v, 0, sizeof(*v));
	if (p->state == SMTP_S_MAIL)
		smtp_policy_reject(v, 554, "5.5.1", "No valid recipients");
	else if (p->state != SMTP_S_RCPT && p->state != SMTP_S_BDAT)
		smtp_policy_reject(v, 503, "5.5.1", "Need MAIL and RCPT "
		    "before BDAT");
	return true;
}

static void
smtp_cmd_bdat_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	p->chunk_left = a->size;
	p->chunk_last = a->last;
	p->chunk_prev = p->state;
	if (p->state == SMTP_S_RCPT && p->chunk_verdict.code == 0)
		smtp_proto__data_begin(p, SMTP_DATA_CHUNK);
	smtp_proto__enter(p, SMTP_S_CHUNK);
	if (a->size == 0)
		smtp_proto__chunk_end(p);
}

/* --- RSET, NOOP, QUIT, HELP, VRFY, EXPN -------------------------------- */

/* Commands that move no mail, outside a transaction, are counted; past
 * limits.junk_max the policy counts each as an error too (it still gets
 * its reply, unless the session ends). */
static bool
smtp_cmd_junk_gate(struct smtp_proto *p)
{
	if (p->state != SMTP_S_GREETING && p->state != SMTP_S_READY)
		return true;
	if (p->junk < UINT32_MAX)
		p->junk++;
	return smtp_proto__check(p, SMTP_POLICY_JUNK, 0) && !p->closing;
}

static void
smtp_cmd_rset_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	smtp_proto__tx_reset(p);
	if (p->state != SMTP_S_GREETING)
		smtp_proto__enter(p, SMTP_S_READY);
	/* The filters forget the message too (SMFIC_ABORT). */
	if (!smtp_cmd_milter(p, SMTP_MILTER_ABORT, NULL))
		smtp_proto__reply(p, 250, "2.0.0", "Ok");
}

/* RFC 5321 4.1.1.9: a parameter is allowed and ignored (no parse). */
static void
smtp_cmd_noop_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	smtp_proto__reply(p, 250, "2.0.0", "Ok");
}

static void
smtp_cmd_quit_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	smtp_proto__reply(p, 221, "2.0.0", "%s closing connection",
	    p->conf.hostname);
	smtp_proto__close(p);
}

static void
smtp_cmd_help_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	smtp_proto__reply(p, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT "
	    "DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH%s",
	    p->conf.etrn ? " ETRN" : "");
}

static void
smtp_cmd_vrfy_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	/* RFC 5321 3.5.3: 252 lets us not confirm who exists. */
	smtp_proto__reply(p, 252, "2.5.0", "Cannot VRFY user, but will "
	    "accept message and attempt delivery");
}

static bool
smtp_cmd_expn_check(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	/* RFC 5321 3.5.2: a list's members are nobody else's business. */
	smtp_proto__reject(p, 502, "5.5.1", "EXPN not available");
	return false;
}

/* --- STARTTLS ---------------------------------------------------------- */

static bool
smtp_cmd_starttls_check(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	if (p->tls) {
		smtp_proto__reject(p, 503, "5.5.1", "TLS already active");
		return false;
	}
	if (!smtp_proto__check(p, SMTP_POLICY_STARTTLS, 0))
		return false;
	if (p->state != SMTP_S_GREETING && p->state != SMTP_S_READY) {
		smtp_proto__reject(p, 503, "5.5.1", "STARTTLS not allowed in "
		    "a mail transaction");
		return false;
	}
	return true;
}

static void
smtp_cmd_starttls_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	(void)a;
	smtp_proto__reply(p, 220, "2.0.0", "Ready to start TLS");
	p->ev.type = SMTP_EV_STARTTLS;
	/* RFC 3207 5: nothing the client sent before the handshake may be
	 * acted on after it (CVE-2011-0411). */
	buf_reset(&p->line);
}

/* --- AUTH (RFC 4954) --------------------------------------------------- */

static int
smtp_cmd_secret_alloc(struct smtp_proto *p)
{
	if (p->secret == NULL &&
	    (p->secret = sodium_malloc(SASL_USER_MAX + SASL_PASS_MAX)) == NULL)
		return PR_ENOMEM;
	sodium_memzero(p->secret, SASL_USER_MAX + SASL_PASS_MAX);
	return 0;
}

/* The credentials are complete: hand them to the glue. */
static void
smtp_cmd_auth_verify(struct smtp_proto *p)
{
	char canon[ADDR_MAX];

	/* Canonical form (domain in lower case) when it is an address at
	 * all; otherwise the store simply will not find it. */
	if (addr_parse_mailbox(p->secret, strlen(p->secret), true,
	    canon) == 0)
		memcpy(p->secret, canon, strlen(canon) + 1);
	smtp_proto__enter(p, SMTP_S_READY);
	p->ev.type = SMTP_EV_AUTH;
	p->ev.user = p->secret;
	p->ev.pass = SMTP_SECRET_PASS(p);
}

/* The exchange ends without a password check: a syntax error. */
static void
smtp_cmd_auth_abort(struct smtp_proto *p, const char *enh, const char *text)
{
	smtp_proto__secret_wipe(p);
	if (p->state == SMTP_S_AUTH)
		smtp_proto__enter(p, SMTP_S_READY);
	smtp_proto__reject(p, 501, enh, "%s", text);
}

/* One SASL response: initial response or a line after a 334. */
static void
smtp_cmd_auth_step(struct smtp_proto *p, const char *resp, size_t len)
{
	if (p->auth_mech == SMTP_AUTH_PLAIN) {
		if (sasl_plain_decode(resp, len, p->secret,
		    SMTP_SECRET_PASS(p)) < 0)
			smtp_cmd_auth_abort(p, "5.5.2",
			    "Invalid PLAIN response");
		else
			smtp_cmd_auth_verify(p);
		return;
	}
	/* LOGIN: username, then password, each in base64. */
	if (p->auth_step == 0) {
		if (sasl_login_decode(resp, len, p->secret,
		    SASL_USER_MAX) < 0) {
			smtp_cmd_auth_abort(p, "5.5.2",
			    "Invalid LOGIN response");
			return;
		}
		p->auth_step = 1;
		smtp_proto__enter(p, SMTP_S_AUTH);
		smtp_proto__reply(p, 334, NULL, "UGFzc3dvcmQ6"); /* Password: */
		return;
	}
	if (sasl_login_decode(resp, len, SMTP_SECRET_PASS(p),
	    SASL_PASS_MAX) < 0)
		smtp_cmd_auth_abort(p, "5.5.2", "Invalid LOGIN response");
	else
		smtp_cmd_auth_verify(p);
}

static bool
smtp_cmd_auth_gate(struct smtp_proto *p)
{
	if (p->state == SMTP_S_GREETING) {
		smtp_proto__reject(p, 503, "5.5.1", "Send EHLO first");
		return false;
	}
	if (p->state != SMTP_S_READY) {
		smtp_proto__reject(p, 503, "5.5.1", "AUTH not allowed in a "
		    "mail transaction");
		return false;
	}
	if (p->authed) {
		smtp_proto__reject(p, 503, "5.5.1", "Already authenticated");
		return false;
	}
	return smtp_proto__check(p, SMTP_POLICY_AUTH, 0);
}

static void
smtp_cmd_auth_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	if (smtp_cmd_secret_alloc(p) < 0) {
		/* Our trouble, not a decision: RFC 4954 6. */
		smtp_proto__reply(p, 454, "4.7.0", "Temporary authentication "
		    "failure");
		return;
	}
	p->auth_mech = a->mech;
	p->auth_step = 0;
	if (a->ir != NULL) {
		smtp_cmd_auth_step(p, a->ir, strlen(a->ir));
		return;
	}
	smtp_proto__enter(p, SMTP_S_AUTH);
	if (p->auth_mech == SMTP_AUTH_PLAIN)
		smtp_proto__reply(p, 334, NULL, "%s", "");
	else
		smtp_proto__reply(p, 334, NULL, "VXNlcm5hbWU6"); /* Username: */
}

/* A line while in SMTP_S_AUTH: the client's SASL response. */
static void
smtp_cmd_auth_line(struct smtp_proto *p, const char *line, size_t len)
{
	/* RFC 4954 4: "*" cancels the exchange. */
	if (len == 1 && line[0] == '*')
		smtp_cmd_auth_abort(p, "5.0.0", "Authentication cancelled");
	else
		smtp_cmd_auth_step(p, line, len);
}

void
smtp_cmd__auth_done(struct smtp_proto *p, int status)
{
	snprintf(p->cmdlog, sizeof(p->cmdlog), "AUTH");
	if (smtp_proto__check(p, SMTP_POLICY_AUTH_DONE, status)) {
		/* The glue may have named the login (smtp_proto_auth_name). */
		if (p->auth_user[0] == '\0')
			snprintf(p->auth_user, sizeof(p->auth_user), "%s",
			    p->ev.user);
		p->authed = true;
		p->auth_mech_name = p->auth_mech == SMTP_AUTH_PLAIN ?
		    "PLAIN" : "LOGIN";
		smtp_proto__log(p, 0, "authenticated as %s", p->auth_user);
		smtp_proto__reply(p, 235, "2.7.0", "Authentication "
		    "successful");
	} else {
		p->auth_user[0] = '\0';
		if (status == PR_EAUTH)
			p->auth_fails++;
	}
	smtp_proto__secret_wipe(p);
}

/* --- ETRN (RFC 1985) -------------------------------------------------- */

static bool
smtp_cmd_etrn_gate(struct smtp_proto *p)
{
	if (!p->conf.etrn) {
		smtp_proto__reject(p, 502, "5.5.1", "ETRN not available");
		return false;
	}
	if (p->state == SMTP_S_GREETING) {
		smtp_proto__reject(p, 503, "5.5.1", "Send EHLO/HELO first");
		return false;
	}
	if (p->state != SMTP_S_READY) {
		smtp_proto__reject(p, 503, "5.5.1", "ETRN not allowed in a "
		    "mail transaction");
		return false;
	}
	return true;
}

static bool
smtp_cmd_etrn_check(struct smtp_proto *p, const struct smtp_args *a)
{
	struct smtp_policy_facts f;

	snprintf(p->etrn_node, sizeof(p->etrn_node), "%s%s",
	    a->etrn_sub ? "@" : a->etrn_queue ? "#" : "", a->addr);
	smtp_proto__facts(p, &f);
	f.etrn_node = p->etrn_node;
	f.etrn_network = p->conf.etrn_network;
	if (!smtp_proto__decide(p, SMTP_POLICY_ETRN, &f))
		return false;
	if (a->etrn_queue) {
		/* RFC 1985 5.3: named queues are optional; there are none. */
		smtp_proto__reply(p, 458, "4.3.0", "Unable to queue messages "
		    "for node %s: no such queue", p->etrn_node);
		return false;
	}
	return true;
}

static void
smtp_cmd_etrn_proceed(struct smtp_proto *p, const struct smtp_args *a)
{
	snprintf(p->etrn_node, sizeof(p->etrn_node), "%s", a->addr);
	p->etrn_sub = a->etrn_sub;
	p->ev.type = SMTP_EV_ETRN;
	p->ev.addr = p->etrn_node;
	p->ev.subdomains = a->etrn_sub;
}

void
smtp_cmd__etrn_done(struct smtp_proto *p, int status)
{
	struct smtp_policy_facts f;
	char node[ADDR_MAX + 2];

	snprintf(node, sizeof(node), "%s%s", p->etrn_sub ? "@" : "",
	    p->etrn_node);
	smtp_proto__facts(p, &f);
	f.status = status;
	f.etrn_node = node;
	f.etrn_network = p->conf.etrn_network;
	if (!smtp_proto__decide(p, SMTP_POLICY_ETRN_DONE, &f))
		return;
	smtp_proto__log(p, 1, "etrn node=%s entries=%d", node, status);
	/* RFC 1985 5: 251 nothing waiting, 253 with the count. */
	if (status == 0)
		smtp_proto__reply(p, 251, "2.0.0", "OK, no messages waiting "
		    "for node %s", node);
	else
		smtp_proto__reply(p, 253, "2.0.0", "OK, %d pending message%s "
		    "for node %s started", status, status == 1 ? "" : "s",
		    node);
}

/* --- Content filters' answers ----------------------------------------- */

void
smtp_cmd__milter_done(struct smtp_proto *p, int status)
{
	struct smtp_policy_facts f;
	int step = p->ev.milter_step;
	bool ok = true;

	if (step == SMTP_MILTER_MAIL || step == SMTP_MILTER_RCPT ||
	    step == SMTP_MILTER_DATA) {
		smtp_proto__facts(p, &f);
		f.status = status;
		f.milter = p->milter.outcome;
		f.milter_step = step;
		f.milter_code = p->milter.code;
		f.milter_enh = p->milter.enh;
		f.milter_text = p->milter.text;
		ok = smtp_proto__decide(p, SMTP_POLICY_MILTER_DONE, &f);
		memset(&p->milter, 0, sizeof(p->milter));
	}
	switch (step) {
	case SMTP_MILTER_HELO:
		/* A filter's refusal of the connection or the HELO is
		 * given at each MAIL (docs/MILTER.md). */
		if (p->esmtp)
			smtp_cmd_ehlo_reply(p);
		else
			smtp_cmd_helo_reply(p);
		break;
	case SMTP_MILTER_MAIL:
		if (ok)
			smtp_cmd_mail_ok(p);
		break;
	case SMTP_MILTER_RCPT:
		/* That recipient only; the others stay (RFC 5321 3.3). */
		if (ok)
			smtp_cmd_rcpt_ok(p);
		else
			smtp_proto__tx_rollback(p);
		break;
	case SMTP_MILTER_DATA:
		if (ok)
			smtp_cmd_data_ok(p);
		break;
	case SMTP_MILTER_ABORT:
		smtp_proto__reply(p, 250, "2.0.0", "Ok");
		break;
	}
}

/* --- The table --------------------------------------------------------- */

/*
 * The state masks only say where a verb is meaningful at all; between
 * BDAT chunks (RFC 3030 2) just BDAT, RSET, NOOP and QUIT are.  Finer
 * sequencing (503 with a precise reason) is in the gate and check steps.
 */
static const struct smtp_cmd smtp_cmds[] = {
	{ "EHLO", SMTP_ST_NOT_BDAT, NULL, smtp_parse_hello, NULL,
	    smtp_cmd_ehlo_proceed },
	{ "HELO", SMTP_ST_NOT_BDAT, NULL, smtp_parse_hello, NULL,
	    smtp_cmd_helo_proceed },
	{ "MAIL", SMTP_ST_NOT_BDAT, smtp_cmd_mail_gate, smtp_parse_mail,
	    smtp_cmd_mail_check, smtp_cmd_mail_proceed },
	{ "RCPT", SMTP_ST_ANY, smtp_cmd_rcpt_gate, smtp_parse_rcpt,
	    smtp_cmd_rcpt_check, smtp_cmd_rcpt_proceed },
	{ "DATA", SMTP_ST_ANY, smtp_cmd_data_gate, smtp_parse_none, NULL,
	    smtp_cmd_data_proceed },
	{ "BDAT", SMTP_ST_ANY, NULL, smtp_parse_bdat, smtp_cmd_bdat_check,
	    smtp_cmd_bdat_proceed },
	{ "RSET", SMTP_ST_ANY, smtp_cmd_junk_gate, smtp_parse_none, NULL,
	    smtp_cmd_rset_proceed },
	{ "NOOP", SMTP_ST_ANY, smtp_cmd_junk_gate, NULL, NULL,
	    smtp_cmd_noop_proceed },
	{ "QUIT", SMTP_ST_ANY, NULL, smtp_parse_none, NULL,
	    smtp_cmd_quit_proceed },
	{ "HELP", SMTP_ST_NOT_BDAT, smtp_cmd_junk_gate, NULL, NULL,
	    smtp_cmd_help_proceed },
	{ "VRFY", SMTP_ST_NOT_BDAT, smtp_cmd_junk_gate, smtp_parse_vrfy, NULL,
	    smtp_cmd_vrfy_proceed },
	{ "EXPN", SMTP_ST_NOT_BDAT, NULL, NULL, smtp_cmd_expn_check, NULL },
	{ "STARTTLS", SMTP_ST_ANY, NULL, smtp_parse_none,
	    smtp_cmd_starttls_check, smtp_cmd_starttls_proceed },
	{ "AUTH", SMTP_ST_ANY, smtp_cmd_auth_gate, smtp_parse_auth, NULL,
	    smtp_cmd_auth_proceed },
	{ "ETRN", SMTP_ST_NOT_BDAT, smtp_cmd_etrn_gate, smtp_parse_etrn,
	    smtp_cmd_etrn_check, smtp_cmd_etrn_proceed },
};

/* Cross-protocol requests (an HTTP client pointed at port 25, or a web
 * page making the browser talk to us): refuse and close, as Postfix's
 * smtpd_forbidden_commands does. */
static const char *const smtp_cmd_forbidden[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE",
};

static void
smtp_cmd_run(struct smtp_proto *p, const struct smtp_cmd *c, const char *arg)
{
	struct smtp_parse_ctx ctx = { p->conf.hostname, p->esmtp, c->name };
	struct smtp_args a;
	struct smtp_verdict v;

	if (!(c->states & SMTP_ST(p->state))) {
		smtp_proto__reject(p, 503, "5.5.1", "Bad sequence of commands");
		return;
	}
	if (c->gate != NULL && !c->gate(p))
		return;
	memset(&a, 0, sizeof(a));
	a.raw = arg;
	if (c->parse != NULL && !c->parse(&ctx, &a, &v)) {
		smtp_proto__verdict(p, &v);
		return;
	}
	if (c->check != NULL && !c->check(p, &a))
		return;
	if (c->proceed != NULL)
		c->proceed(p, &a);
}

/*
 * Names the command in the logs.  An AUTH line is cut after the
 * mechanism, so that no initial response (a password) is logged; a line
 * that is no command at all is not logged either: after a refused AUTH a
 * pipelining client's next lines are its SASL responses (RFC 4954 4),
 * base64 credentials that would read as an unknown verb.
 */
static void
smtp_cmd_log_name(struct smtp_proto *p, const struct smtp_cmd *c,
    const char *line, const char *arg)
{
	if (c == NULL)
		snprintf(p->cmdlog, sizeof(p->cmdlog), "(unknown command)");
	else if (strcmp(c->name, "AUTH") == 0)
		snprintf(p->cmdlog, sizeof(p->cmdlog), "%.*s", (int)
		    (strcspn(arg, " ") + (size_t)(arg - line)), line);
	else
		snprintf(p->cmdlog, sizeof(p->cmdlog), "%s", line);
}

static const struct smtp_cmd *
smtp_cmd_find(const char *line, size_t vlen)
{
	size_t i;

	for (i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++)
		if (strlen(smtp_cmds[i].name) == vlen &&
		    strncasecmp(smtp_cmds[i].name, line, vlen) == 0)
			return &smtp_cmds[i];
	return NULL;
}

void
smtp_cmd__line(struct smtp_proto *p, char *line, size_t len)
{
	const struct smtp_cmd *c;
	struct smtp_verdict v;
	size_t vlen, i;
	const char *arg;

	if (p->state == SMTP_S_AUTH) {
		snprintf(p->cmdlog, sizeof(p->cmdlog), "AUTH response");
		smtp_cmd_auth_line(p, line, len);
		return;
	}
	vlen = strcspn(line, " ");
	arg = line + vlen;
	if (*arg == ' ')
		arg++;
	c = smtp_cmd_find(line, vlen);
	smtp_cmd_log_name(p, c, line, arg);
	if (memchr(line, '\0', len) != NULL) {
		smtp_proto__reject(p, 500, "5.5.2", "NUL in command line");
		return;
	}
	if (c != NULL) {
		smtp_cmd_run(p, c, arg);
		return;
	}
	for (i = 0; i < sizeof(smtp_cmd_forbidden) /
	    sizeof(smtp_cmd_forbidden[0]); i++) {
		if (strlen(smtp_cmd_forbidden[i]) == vlen &&
		    strncasecmp(smtp_cmd_forbidden[i], line, vlen) == 0) {
			smtp_policy_reject(&v, 421, "4.7.0", "%s This is an "
			    "SMTP server; closing", p->conf.hostname);
			v.close = true;
			smtp_proto__verdict(p, &v);
			return;
		}
	}
	smtp_proto__reject(p, 500, "5.5.2", "Command unrecognized");
}
