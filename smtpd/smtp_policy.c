/*
 * smtp_policy.c - every accept/refuse decision of postroom-smtpd.  No
 * I/O and no state: see smtp_policy.h.
 *
 * Which refusals count as errors: every refusal the client could have
 * avoided (syntax, sequence, a policy it broke, a recipient that does not
 * exist).  Not counted are replies that report the server's own trouble
 * or a mailbox's state (451 4.3.0, 454 4.7.0, 452 4.2.2), and the 452
 * 4.5.3 of RFC 5321 4.5.3.1.10, which asks the client to send the other
 * recipients in a later transaction.  Counted although accepted: junk
 * commands past limits.junk_max.  The counter's limit is [smtp]
 * hard_error_limit (limits.bad_cmd_max); past half of it each counted
 * error waits SMTP_POLICY_ERROR_DELAY_MS, the client's time, not ours.
 */
#include "smtp_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"
#include "spf.h"

static void
smtp_policy_vset(struct smtp_verdict *v, int code, const char *enh,
    bool error, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void
smtp_policy_vset(struct smtp_verdict *v, int code, const char *enh,
    bool error, const char *fmt, va_list ap)
{
	v->code = code;
	v->enh = enh;
	v->error = error;
	v->close = false;
	v->mark = false;
	v->check = NULL;
	vsnprintf(v->text, sizeof(v->text), fmt, ap);
}

/* A refusal that does not count as an error: the server's own trouble
 * or a mailbox's state. */
static void
smtp_policy_defer(struct smtp_verdict *v, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
smtp_policy_defer(struct smtp_verdict *v, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_policy_vset(v, code, enh, false, fmt, ap);
	va_end(ap);
}

void
smtp_policy_reject(struct smtp_verdict *v_r, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_policy_vset(v_r, code, enh, true, fmt, ap);
	va_end(ap);
}

static const char *
smtp_policy_str(const char *s)
{
	return s != NULL ? s : "";
}

static bool
smtp_policy_authed(const struct smtp_policy_facts *f)
{
	return f->auth_user != NULL && f->auth_user[0] != '\0';
}

static bool
smtp_policy_has_8bit(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* RFC 4954 4 / RFC 8314: no password travels in the clear, unless the
 * admin allowed it ([smtp] allow_plaintext_auth, loopback tests). */
static bool
smtp_policy_login_permitted(const struct smtp_policy_facts *f)
{
	return f->tls || f->plaintext_auth;
}

static void
smtp_policy_auth_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	if (f->status == 0)
		return;
	if (f->status == PR_EAGAIN) {
		/* Failed logins from this client or for this account, across
		 * connections, or no password-check capacity left: RFC 4954
		 * 6 "454 4.7.0 Temporary authentication failure", not an
		 * error of this session. */
		smtp_policy_defer(v, 454, "4.7.0", "Too many authentication "
		    "attempts, try again later");
		return;
	}
	if (f->status != PR_EAUTH) {
		smtp_policy_defer(v, 454, "4.7.0", "Temporary authentication "
		    "failure");
		return;
	}
	if (f->auth_fails + 1 >= f->limits->auth_fail_max) {
		smtp_policy_reject(v, 421, "4.7.0", "%s Too many failed "
		    "authentications, closing", smtp_policy_str(f->hostname));
		v->close = true;
		return;
	}
	/* RFC 4954 6 */
	smtp_policy_reject(v, 535, "5.7.8", "Authentication credentials "
	    "invalid");
}

/* RFC 6409 4.3 / RFC 8314: submission requires authentication. */
static void
smtp_policy_tx(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	if (f->kind == SMTP_LISTEN_MX || smtp_policy_authed(f))
		return;
	if (!smtp_policy_login_permitted(f))
		smtp_policy_reject(v, 530, "5.7.0", "Must issue a STARTTLS "
		    "command first");
	else
		smtp_policy_reject(v, 530, "5.7.0", "Authentication required");
}

static void
smtp_policy_mail(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	if (!f->smtputf8 && smtp_policy_has_8bit(f->sender)) {
		/* RFC 6531 3.7.4.1 */
		smtp_policy_reject(v, 553, "5.6.7", "Non-ASCII address needs "
		    "SMTPUTF8");
		return;
	}
	if (f->declared_size > f->limits->data_max) {
		/* RFC 1870 6.2 */
		smtp_policy_reject(v, 552, "5.3.4", "Message size exceeds "
		    "fixed maximum message size");
		return;
	}
	/* An authenticated user sends as an address they own: never the
	 * null sender (bounces are the server's job) nor someone else's. */
	if (smtp_policy_authed(f) && smtp_policy_str(f->sender)[0] == '\0')
		smtp_policy_reject(v, 553, "5.7.1", "Authenticated users may "
		    "not use the null sender");
}

static void
smtp_policy_mail_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	if (f->status == 0)
		return;
	if (f->status == SMTP_MAIL_HOSTED && !smtp_policy_authed(f)) {
		/* Mail from a domain hosted here comes from its users, who
		 * log in (RFC 6409 4.3); on port 25 such a sender is forged.
		 * The null sender and other domains' mail, forwarded or not,
		 * are not affected. */
		smtp_policy_reject(v, 550, "5.7.1", "<%s>: Sender address "
		    "rejected: authentication required for this domain",
		    smtp_policy_str(f->sender));
		return;
	}
	if (f->status == SMTP_MAIL_RATE) {
		/* RFC 3463 3.8: X.7.0, a security or policy status; 4xx, as
		 * the next hour takes it. */
		smtp_policy_defer(v, 452, "4.7.0", "Message rate limit of %s "
		    "exceeded, try again later", smtp_policy_str(f->auth_user));
		return;
	}
	if (f->status == PR_EPERM)
		smtp_policy_reject(v, 553, "5.7.1", "<%s>: Sender address not "
		    "owned by user %s", smtp_policy_str(f->sender),
		    smtp_policy_str(f->auth_user));
	else
		smtp_policy_defer(v, 451, "4.3.0", "Temporary lookup failure");
}

/*
 * RFC 7208 8: "fail" is refused (RFC 7372 3.2: 5.7.23), with the
 * domain's own explanation when it gave one (6.2); "temperror" is
 * deferred (5.7.24's temporary twin, 4.7.24), never refused for good,
 * as a DNS failure passes; the others are accepted and recorded for
 * Authentication-Results.  A check that could not be made (status < 0)
 * accepts: our trouble is no reason to refuse mail.
 */
static void
smtp_policy_spf_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	const char *exp = smtp_policy_str(f->spf_explanation);

	if (f->status < 0 || !f->spf_checked)
		return;
	if (f->spf_result == SPF_FAIL) {
		if (exp[0] != '\0')
			smtp_policy_reject(v, 550, "5.7.23", "SPF fail: %s",
			    exp);
		else
			smtp_policy_reject(v, 550, "5.7.23", "<%s>: SPF fail: "
			    "the sender's domain does not allow this host to "
			    "send its mail", smtp_policy_str(f->sender));
		v->check = "spf";
		return;
	}
	if (f->spf_result == SPF_TEMPERROR) {
		smtp_policy_defer(v, 451, "4.7.24", "<%s>: SPF temperror: DNS "
		    "lookup failed, try again later",
		    smtp_policy_str(f->sender));
		v->check = "spf";
	}
}

/*
 * A client listed by a DNS block list (RFC 5782) is refused before the
 * greeting, 554 (RFC 5321 3.1) with 5.7.1 and the list's own reason, as
 * Postfix's postscreen does: nothing of it is ever stored.  A list that
 * did not answer lists nobody.
 */
static void
smtp_policy_connect(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	const char *zone = smtp_policy_str(f->dnsbl_zone);
	const char *why = smtp_policy_str(f->dnsbl_reason);

	if (zone[0] == '\0')
		return;
	smtp_policy_reject(v, 554, "5.7.1", "Service unavailable; client "
	    "[%s] blocked using %s%s%s", smtp_policy_str(f->peer), zone,
	    why[0] != '\0' ? ": " : "", why);
	v->check = "dnsbl";
	v->close = true;
}

/*
 * End of data on the MX listener.  RFC 7489 6.6.1: a message without
 * exactly one From: mailbox cannot be evaluated and is refused.  A DMARC
 * fail applies the sender's policy (6.3, 6.6.4 with pct= already
 * weighed by dmarc_check): reject is 550 5.7.1 (7.3 and RFC 7372 3.1
 * leave the enhanced code to us; 5.7.1 is "delivery not authorized"),
 * quarantine marks the message for the mail client, a POP3 user's only
 * junk folder.  A fail that a DNS failure may have caused (a temperror
 * of SPF or of a DKIM key) is deferred, never refused for good.  With
 * dmarc_policy = report nothing is refused or marked.  Our own trouble
 * (status < 0) accepts.
 */
static void
smtp_policy_verify_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	const char *dom = smtp_policy_str(f->dmarc_domain);

	if (f->status < 0 || f->dmarc_report)
		return;
	if (f->from_status != DMARC_FROM_OK) {
		smtp_policy_reject(v, 550, "5.7.1", "Message must have exactly "
		    "one From: address (RFC 7489 6.6.1): %s",
		    f->from_status == DMARC_FROM_NONE ? "none found" :
		    f->from_status == DMARC_FROM_MULTIPLE ? "several found" :
		    "it does not parse");
		v->check = "from";
		return;
	}
	if (!f->dmarc_checked || f->dmarc_result != DMARC_FAIL)
		return;
	if (f->dmarc_apply == DMARC_POLICY_REJECT) {
		if (f->dmarc_temp) {
			smtp_policy_defer(v, 451, "4.7.1", "DMARC check of %s "
			    "failed for now (DNS), try again later", dom);
		} else {
			smtp_policy_reject(v, 550, "5.7.1", "Message refused: "
			    "the DMARC policy of %s rejects mail that fails "
			    "authentication", dom);
		}
		v->check = "dmarc";
		return;
	}
	if (f->dmarc_apply == DMARC_POLICY_QUARANTINE) {
		v->mark = true;
		snprintf(v->text, sizeof(v->text), "DMARC policy of %s: "
		    "quarantine (authentication failed)", dom);
		v->check = "dmarc";
	}
}

static void
smtp_policy_rcpt(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	if (!f->smtputf8 && smtp_policy_has_8bit(f->rcpt)) {
		smtp_policy_reject(v, 553, "5.6.7", "Non-ASCII address needs "
		    "SMTPUTF8");
		return;
	}
	if (f->n_rcpt >= f->limits->rcpt_max)
		/* RFC 5321 4.5.3.1.10 */
		smtp_policy_defer(v, 452, "4.5.3", "Too many recipients");
}

static void
smtp_policy_rcpt_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	const char *rcpt = smtp_policy_str(f->rcpt);

	switch (f->status) {
	case SMTP_RCPT_LOCAL:
		return;
	case SMTP_RCPT_REMOTE:
		/* No open relay: only authenticated users send to domains
		 * we do not host. */
		if (!smtp_policy_authed(f))
			smtp_policy_reject(v, 554, "5.7.1", "<%s>: Relay "
			    "access denied", rcpt);
		return;
	case SMTP_RCPT_UNKNOWN:
		smtp_policy_reject(v, 550, "5.1.1", "<%s>: Recipient address "
		    "rejected: User unknown", rcpt);
		return;
	case SMTP_RCPT_GREYLISTED:
		/* RFC 6647 2.1: a temporary refusal that a real MTA retries;
		 * not the client's error. */
		smtp_policy_defer(v, 451, "4.7.1", "<%s>: Greylisted, try "
		    "again later", rcpt);
		v->check = "greylist";
		return;
	case PR_EQUOTA:
		smtp_policy_defer(v, 452, "4.2.2", "<%s>: Mailbox full", rcpt);
		return;
	case PR_ETOOBIG:
		smtp_policy_reject(v, 552, "5.2.2", "<%s>: Message exceeds the "
		    "mailbox quota", rcpt);
		return;
	case PR_ENOSPC:
		smtp_policy_defer(v, 452, "4.5.3", "Too many recipients");
		return;
	default:
		smtp_policy_defer(v, 451, "4.3.0", "<%s>: Temporary lookup "
		    "failure", rcpt);
		return;
	}
}

/* RFC 3463 3.4: X.3.1 "Mail system full", the disk, not a mailbox. */
static void
smtp_policy_full(struct smtp_verdict *v)
{
	smtp_policy_defer(v, 452, "4.3.1", "Insufficient system storage: "
	    "mail system full, try again later");
}

static void
smtp_policy_message(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	if (f->spool_failed && f->spool_full)
		smtp_policy_full(v);
	else if (f->spool_failed)
		smtp_policy_defer(v, 451, "4.3.0", "Local error in "
		    "processing");
	else if (f->too_big)
		smtp_policy_reject(v, 552, "5.3.4", "Message too big for "
		    "system");
	else if (f->bare_eol)
		/* RFC 5321 2.3.8: CR and LF only as CRLF.  Refusing instead
		 * of repairing is what stops SMTP smuggling. */
		smtp_policy_reject(v, 550, "5.6.0", "Message contains bare CR "
		    "or LF; refused");
	else if (f->long_line)
		smtp_policy_reject(v, 550, "5.6.0", "Message has a line longer "
		    "than %zu octets", f->limits->text_line_max);
}

/*
 * A submission's header From: and Sender: name who wrote and who sent the
 * message (RFC 5322 3.6.2); a DKIM signature vouches for the From: domain
 * (RFC 6376 3.5, RFC 7489 3.1).  So each address there must be one the
 * user may send as, like the envelope sender.
 */
static void
smtp_policy_from(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	if (!smtp_policy_authed(f))
		return;
	if (f->from_bad)
		smtp_policy_reject(v, 550, "5.7.1", "Message header From: or "
		    "Sender: could not be read; refused");
}

static void
smtp_policy_from_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	if (f->status == 0)
		return;
	if (f->status == PR_EPERM)
		smtp_policy_reject(v, 550, "5.7.1", "<%s>: Header address not "
		    "owned by user %s", smtp_policy_str(f->from_addr),
		    smtp_policy_str(f->auth_user));
	else
		smtp_policy_defer(v, 451, "4.3.0", "Temporary lookup failure");
}

/* Commands that move no mail, outside a transaction: an anonymous client
 * repeating them holds a session for nothing.  Past the limit each one
 * still gets its reply but counts as an error (Postfix's
 * smtpd_junk_command_limit). */
static void
smtp_policy_junk(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	if (smtp_policy_authed(f) || f->junk <= f->limits->junk_max)
		return;
	v->error = true;
}

/*
 * The content filters' refusal (docs/MILTER.md): the filter's own reply
 * when it gave one (checked by the milter core: 4xx or 5xx, one line),
 * else 550 5.7.1 or 451 4.7.1 (RFC 3463 3.8, "delivery not authorized",
 * the codes Sendmail and Postfix give for a milter's reject and
 * tempfail).  A filter that failed with on_failure = tempfail defers: the
 * client keeps the message and retries, nothing is lost.  Not counted
 * as a session error (the client did nothing wrong in the protocol),
 * but for a command refused for good.
 */
static void
smtp_policy_milter(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	const char *text = f->milter_text != NULL ? f->milter_text : "";
	const char *enh = f->milter_enh != NULL ? f->milter_enh : "";
	bool temp = f->milter != SMTP_MILTER_REJECT;
	int code = f->milter_code;
	/* What the refusal is about: a filter answers each command. */
	const char *what = f->milter_step == SMTP_MILTER_MAIL ? "Sender" :
	    f->milter_step == SMTP_MILTER_RCPT ? "Recipient" : "Message";

	if (f->milter == SMTP_MILTER_FAILED) {
		smtp_policy_defer(v, 451, "4.7.1", "Content filter "
		    "unavailable, try again later");
	} else if (code == 0) {
		if (temp)
			smtp_policy_defer(v, 451, "4.7.1", "%s%s", text[0] ?
			    text : what, text[0] ? "" : " deferred by a "
			    "content filter, try again later");
		else
			smtp_policy_defer(v, 550, "5.7.1", "%s%s", text[0] ?
			    text : what, text[0] ? "" : " rejected by a "
			    "content filter");
	} else {
		/* Without the filter's own enhanced code, the class of its
		 * reply code's (RFC 2034 3: every reply has one).  The
		 * filter's lives in the core's transaction, which outlasts
		 * the reply. */
		if (enh[0] == '\0')
			enh = code >= 500 ? "5.7.1" : "4.7.1";
		smtp_policy_defer(v, code, enh, "%s%s", text[0] ? text : what,
		    text[0] ? "" : temp ? " deferred by a content filter" :
		    " rejected by a content filter");
		/* RFC 5321 3.8: a 421 says the channel closes, so it does
		 * (as Sendmail and Postfix do for a filter's 421). */
		if (code == 421)
			v->close = true;
	}
	/* A command the filter refuses for good (MAIL, RCPT, DATA) counts
	 * as an error, as an unknown user does: a client probing senders
	 * or addresses through a filter still meets [smtp]
	 * hard_error_limit (docs/MILTER.md 1).  Deferrals, the filter's
	 * failure and the verdict on a whole message do not. */
	if (!temp && f->milter == SMTP_MILTER_REJECT && f->milter_step != 0)
		v->error = true;
	v->check = "milter";
}

/*
 * ETRN, RFC 1985: a client may make the relay work for a domain when it
 * authenticated or its address is in [smtp] etrn_networks (a backup MX's
 * primary, coming back online).  Anyone else gets 459, counted: the
 * command moves no mail of theirs.
 */
static void
smtp_policy_etrn(const struct smtp_policy_facts *f, struct smtp_verdict *v)
{
	if (smtp_policy_authed(f) || f->etrn_network)
		return;
	smtp_policy_reject(v, 459, "4.7.1", "Node %s not allowed: ETRN "
	    "needs authentication or an allowed network", f->etrn_node);
}

/* RFC 1985 5: 458 when the queue cannot be started (too many requests
 * from this client, or a store error); a 25x follows otherwise. */
static void
smtp_policy_etrn_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	if (f->status == PR_EAGAIN)
		smtp_policy_defer(v, 458, "4.7.0", "Unable to queue messages "
		    "for node %s: more than %d ETRN a minute, try later",
		    f->etrn_node, SMTP_POLICY_ETRN_PER_MINUTE);
	else if (f->status < 0)
		smtp_policy_defer(v, 458, "4.3.0", "Unable to queue messages "
		    "for node %s", f->etrn_node);
}

static void
smtp_policy_deliver_done(const struct smtp_policy_facts *f,
    struct smtp_verdict *v)
{
	if (f->milter != SMTP_MILTER_NONE) {
		smtp_policy_milter(f, v);
		return;
	}
	switch (f->status) {
	case 0:
		return;
	case PR_EQUOTA:
		smtp_policy_defer(v, 452, "4.2.2", "Mailbox full");
		return;
	case PR_ETOOBIG:
		smtp_policy_reject(v, 552, "5.2.2", "Message exceeds the "
		    "mailbox quota");
		return;
	case PR_EFULL:
		smtp_policy_full(v);
		return;
	default:
		smtp_policy_defer(v, 451, "4.3.0", "Local error in "
		    "processing");
		return;
	}
}

void
smtp_policy_check(enum smtp_policy_point pt,
    const struct smtp_policy_facts *f, struct smtp_verdict *v_r)
{
	memset(v_r, 0, sizeof(*v_r));
	switch (pt) {
	case SMTP_POLICY_STARTTLS:
		if (!f->tls_offered)
			smtp_policy_defer(v_r, 454, "4.7.0", "TLS not "
			    "available");
		break;
	case SMTP_POLICY_AUTH:
		if (!smtp_policy_login_permitted(f))
			/* RFC 4954 6 */
			smtp_policy_reject(v_r, 538, "5.7.11", "Encryption "
			    "required for requested authentication "
			    "mechanism");
		break;
	case SMTP_POLICY_AUTH_DONE:
		smtp_policy_auth_done(f, v_r);
		break;
	case SMTP_POLICY_TX:
		smtp_policy_tx(f, v_r);
		break;
	case SMTP_POLICY_MAIL:
		smtp_policy_mail(f, v_r);
		break;
	case SMTP_POLICY_MAIL_DONE:
		smtp_policy_mail_done(f, v_r);
		break;
	case SMTP_POLICY_RCPT:
		smtp_policy_rcpt(f, v_r);
		break;
	case SMTP_POLICY_RCPT_DONE:
		smtp_policy_rcpt_done(f, v_r);
		break;
	case SMTP_POLICY_MESSAGE:
		smtp_policy_message(f, v_r);
		break;
	case SMTP_POLICY_DELIVER_DONE:
		smtp_policy_deliver_done(f, v_r);
		break;
	case SMTP_POLICY_JUNK:
		smtp_policy_junk(f, v_r);
		break;
	case SMTP_POLICY_FROM:
		smtp_policy_from(f, v_r);
		break;
	case SMTP_POLICY_FROM_DONE:
		smtp_policy_from_done(f, v_r);
		break;
	case SMTP_POLICY_SPF_DONE:
		smtp_policy_spf_done(f, v_r);
		break;
	case SMTP_POLICY_CONNECT:
		smtp_policy_connect(f, v_r);
		break;
	case SMTP_POLICY_VERIFY_DONE:
		smtp_policy_verify_done(f, v_r);
		break;
	case SMTP_POLICY_ETRN:
		smtp_policy_etrn(f, v_r);
		break;
	case SMTP_POLICY_ETRN_DONE:
		smtp_policy_etrn_done(f, v_r);
		break;
	case SMTP_POLICY_MILTER_DONE:
		/* A filter's answer to MAIL, RCPT or DATA (RFC 5321 3.3: the
		 * reply of that command); an error of our own lets it on,
		 * the end of the data has the last word. */
		if (f->milter != SMTP_MILTER_NONE)
			smtp_policy_milter(f, v_r);
		break;
	}
}

bool
smtp_policy_count(const struct smtp_policy_facts *f, unsigned *errors,
    const struct smtp_verdict *v, struct smtp_verdict *v_r)
{
	if (!v->error || v->close)
		return false;
	/* The error limit: one rule for every kind of error
	 * (docs/ARCHITECTURE.md, "policy"). */
	if (++*errors < f->limits->bad_cmd_max)
		return false;
	smtp_policy_reject(v_r, 421, "4.7.0", "%s Too many errors, closing",
	    smtp_policy_str(f->hostname));
	v_r->close = true;
	return true;
}

unsigned
smtp_policy_error_delay(const struct smtp_policy_facts *f, unsigned errors)
{
	return errors > f->limits->bad_cmd_max / 2 ?
	    SMTP_POLICY_ERROR_DELAY_MS : 0;
}
