/*
 * test_smtp_policy.c - the SMTP policy as a table: rows of facts at a
 * decision point -> the reply code, the enhanced status code, whether the
 * refusal counts as an error and whether it ends the session.  Then the
 * one error counter and its limit.
 */
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"
#include "smtp_policy.h"
#include "spf.h"
#include "tap.h"

#define MX SMTP_LISTEN_MX
#define SUB SMTP_LISTEN_SUBMISSION
#define SUBS SMTP_LISTEN_SUBMISSIONS

struct policy_row {
	const char *name;
	enum smtp_policy_point pt;
	/* Facts. */
	enum smtp_listen_kind kind;
	bool tls, plaintext;
	const char *user;          /* authenticated user, "" = none */
	const char *sender, *rcpt;
	bool utf8;
	uint64_t declared;
	unsigned n_rcpt, auth_fails;
	int status;
	/* message flags: 1 spool_failed, 2 too_big, 4 bare_eol, 8 long_line,
	 * 16 TLS offered, 32 header From:/Sender: unreadable */
	unsigned flags;
	/* Verdict. */
	int code;
	const char *enh;
	bool error, close;
};

static const struct policy_row policy_rows[] = {
	/* STARTTLS */
	{ "starttls offered", SMTP_POLICY_STARTTLS, MX, false, false, "",
	    "", "", false, 0, 0, 0, 0, 16, 0, NULL, false, false },
	{ "starttls without a certificate", SMTP_POLICY_STARTTLS, MX, false,
	    false, "", "", "", false, 0, 0, 0, 0, 0, 454, "4.7.0", false,
	    false },
	/* AUTH */
	{ "auth over TLS", SMTP_POLICY_AUTH, SUB, true, false, "", "", "",
	    false, 0, 0, 0, 0, 0, 0, NULL, false, false },
	{ "auth in the clear", SMTP_POLICY_AUTH, SUB, false, false, "", "",
	    "", false, 0, 0, 0, 0, 0, 538, "5.7.11", true, false },
	{ "auth in the clear, allowed", SMTP_POLICY_AUTH, MX, false, true,
	    "", "", "", false, 0, 0, 0, 0, 0, 0, NULL, false, false },
	{ "password right", SMTP_POLICY_AUTH_DONE, SUB, true, false, "", "",
	    "", false, 0, 0, 0, 0, 0, 0, NULL, false, false },
	{ "password wrong", SMTP_POLICY_AUTH_DONE, SUB, true, false, "", "",
	    "", false, 0, 0, 0, PR_EAUTH, 0, 535, "5.7.8", true, false },
	{ "password wrong the third time", SMTP_POLICY_AUTH_DONE, SUB, true,
	    false, "", "", "", false, 0, 0, 2, PR_EAUTH, 0, 421, "4.7.0",
	    true, true },
	{ "password check failed", SMTP_POLICY_AUTH_DONE, SUB, true, false,
	    "", "", "", false, 0, 0, 0, PR_EIO, 0, 454, "4.7.0", false,
	    false },
	{ "logins throttled", SMTP_POLICY_AUTH_DONE, SUB, true, false,
	    "", "", "", false, 0, 0, 2, PR_EAGAIN, 0, 454, "4.7.0", false,
	    false },
	/* May the session send mail at all? */
	{ "mx, anonymous", SMTP_POLICY_TX, MX, false, false, "", "", "",
	    false, 0, 0, 0, 0, 0, 0, NULL, false, false },
	{ "submission, no TLS", SMTP_POLICY_TX, SUB, false, false, "", "",
	    "", false, 0, 0, 0, 0, 0, 530, "5.7.0", true, false },
	{ "submission, TLS, anonymous", SMTP_POLICY_TX, SUB, true, false, "",
	    "", "", false, 0, 0, 0, 0, 0, 530, "5.7.0", true, false },
	{ "submissions, authenticated", SMTP_POLICY_TX, SUBS, true, false,
	    "alice@example.test", "", "", false, 0, 0, 0, 0, 0, 0, NULL,
	    false, false },
	/* MAIL */
	{ "sender ok", SMTP_POLICY_MAIL, MX, false, false, "",
	    "a@remote.test", "", false, 0, 0, 0, 0, 0, 0, NULL, false,
	    false },
	{ "null sender from the MX", SMTP_POLICY_MAIL, MX, false, false, "",
	    "", "", false, 0, 0, 0, 0, 0, 0, NULL, false, false },
	{ "null sender, authenticated", SMTP_POLICY_MAIL, SUB, true, false,
	    "alice@example.test", "", "", false, 0, 0, 0, 0, 0, 553, "5.7.1",
	    true, false },
	{ "8-bit sender without SMTPUTF8", SMTP_POLICY_MAIL, MX, false,
	    false, "", "j\xc3\xb6rg@remote.test", "", false, 0, 0, 0, 0, 0,
	    553, "5.6.7", true, false },
	{ "8-bit sender with SMTPUTF8", SMTP_POLICY_MAIL, MX, false, false,
	    "", "j\xc3\xb6rg@remote.test", "", true, 0, 0, 0, 0, 0, 0, NULL,
	    false, false },
	{ "SIZE at the limit", SMTP_POLICY_MAIL, MX, false, false, "",
	    "a@remote.test", "", false, 1000, 0, 0, 0, 0, 0, NULL, false,
	    false },
	{ "SIZE over the limit", SMTP_POLICY_MAIL, MX, false, false, "",
	    "a@remote.test", "", false, 1001, 0, 0, 0, 0, 552, "5.3.4", true,
	    false },
	{ "sender owned", SMTP_POLICY_MAIL_DONE, SUB, true, false,
	    "alice@example.test", "alice@example.test", "", false, 0, 0, 0, 0,
	    0, 0, NULL, false, false },
	{ "sender not owned", SMTP_POLICY_MAIL_DONE, SUB, true, false,
	    "alice@example.test", "bob@example.test", "", false, 0, 0, 0,
	    PR_EPERM, 0, 553, "5.7.1", true, false },
	{ "device past its rate", SMTP_POLICY_MAIL_DONE, SUB, true, false,
	    "scanner", "scanner@example.test", "", false, 0, 0, 0,
	    SMTP_MAIL_RATE, 0, 452, "4.7.0", false, false },
	{ "device, another sender", SMTP_POLICY_MAIL_DONE, SUB, true, false,
	    "scanner", "alice@example.test", "", false, 0, 0, 0, PR_EPERM, 0,
	    553, "5.7.1", true, false },
	{ "anonymous sender, hosted domain", SMTP_POLICY_MAIL_DONE, MX,
	    false, false, "", "bob@example.test", "", false, 0, 0, 0,
	    SMTP_MAIL_HOSTED, 0, 550, "5.7.1", true, false },
	{ "anonymous sender, other domain", SMTP_POLICY_MAIL_DONE, MX,
	    false, false, "", "a@remote.test", "", false, 0, 0, 0, 0, 0, 0,
	    NULL, false, false },
	{ "anonymous domain lookup failed", SMTP_POLICY_MAIL_DONE, MX, false,
	    false, "", "bob@example.test", "", false, 0, 0, 0, PR_EIO, 0, 451,
	    "4.3.0", false, false },
	/* Header From:/Sender: of a message (flags 32: could not be read) */
	{ "header addresses read", SMTP_POLICY_FROM, SUB, true, false,
	    "alice@example.test", "alice@example.test", "", false, 0, 1, 0,
	    0, 0, 0, NULL, false, false },
	{ "header addresses unreadable", SMTP_POLICY_FROM, SUB, true, false,
	    "alice@example.test", "alice@example.test", "", false, 0, 1, 0,
	    0, 32, 550, "5.7.1", true, false },
	{ "header addresses unreadable, anonymous", SMTP_POLICY_FROM, MX,
	    false, false, "", "a@remote.test", "", false, 0, 1, 0, 0, 32, 0,
	    NULL, false, false },
	{ "header address owned", SMTP_POLICY_FROM_DONE, SUB, true, false,
	    "alice@example.test", "alice@example.test", "", false, 0, 1, 0,
	    0, 0, 0, NULL, false, false },
	{ "header address not owned", SMTP_POLICY_FROM_DONE, SUB, true,
	    false, "alice@example.test", "alice@example.test", "", false, 0,
	    1, 0, PR_EPERM, 0, 550, "5.7.1", true, false },
	{ "header address lookup failed", SMTP_POLICY_FROM_DONE, SUB, true,
	    false, "alice@example.test", "alice@example.test", "", false, 0,
	    1, 0, PR_EIO, 0, 451, "4.3.0", false, false },
	{ "sender lookup failed", SMTP_POLICY_MAIL_DONE, SUB, true, false,
	    "alice@example.test", "alice@example.test", "", false, 0, 0, 0,
	    PR_EIO, 0, 451, "4.3.0", false, false },
	/* RCPT */
	{ "recipient ok", SMTP_POLICY_RCPT, MX, false, false, "", "",
	    "alice@example.test", false, 0, 1, 0, 0, 0, 0, NULL, false,
	    false },
	{ "last recipient of the limit", SMTP_POLICY_RCPT, MX, false, false,
	    "", "", "alice@example.test", false, 0, 2, 0, 0, 0, 0, NULL,
	    false, false },
	{ "one recipient too many", SMTP_POLICY_RCPT, MX, false, false, "",
	    "", "alice@example.test", false, 0, 3, 0, 0, 0, 452, "4.5.3",
	    false, false },
	{ "8-bit recipient without SMTPUTF8", SMTP_POLICY_RCPT, MX, false,
	    false, "", "", "j\xc3\xb6rg@example.test", false, 0, 0, 0, 0, 0,
	    553, "5.6.7", true, false },
	{ "local recipient", SMTP_POLICY_RCPT_DONE, MX, false, false, "", "",
	    "alice@example.test", false, 0, 0, 0, SMTP_RCPT_LOCAL, 0, 0, NULL,
	    false, false },
	{ "relay, anonymous", SMTP_POLICY_RCPT_DONE, MX, false, false, "",
	    "", "x@remote.test", false, 0, 0, 0, SMTP_RCPT_REMOTE, 0, 554,
	    "5.7.1", true, false },
	{ "relay, authenticated", SMTP_POLICY_RCPT_DONE, SUB, true, false,
	    "alice@example.test", "", "x@remote.test", false, 0, 0, 0,
	    SMTP_RCPT_REMOTE, 0, 0, NULL, false, false },
	{ "unknown user", SMTP_POLICY_RCPT_DONE, MX, false, false, "", "",
	    "nobody@example.test", false, 0, 0, 0, SMTP_RCPT_UNKNOWN, 0, 550,
	    "5.1.1", true, false },
	{ "mailbox full", SMTP_POLICY_RCPT_DONE, MX, false, false, "", "",
	    "full@example.test", false, 0, 0, 0, PR_EQUOTA, 0, 452, "4.2.2",
	    false, false },
	{ "message over quota", SMTP_POLICY_RCPT_DONE, MX, false, false, "",
	    "", "big@example.test", false, 0, 0, 0, PR_ETOOBIG, 0, 552,
	    "5.2.2", true, false },
	{ "too many targets", SMTP_POLICY_RCPT_DONE, MX, false, false, "",
	    "", "team@example.test", false, 0, 0, 0, PR_ENOSPC, 0, 452,
	    "4.5.3", false, false },
	{ "lookup failed", SMTP_POLICY_RCPT_DONE, MX, false, false, "", "",
	    "x@example.test", false, 0, 0, 0, PR_EIO, 0, 451, "4.3.0", false,
	    false },
	/* The message */
	{ "message ok", SMTP_POLICY_MESSAGE, MX, false, false, "", "", "",
	    false, 0, 1, 0, 0, 0, 0, NULL, false, false },
	{ "spool failed", SMTP_POLICY_MESSAGE, MX, false, false, "", "", "",
	    false, 0, 1, 0, 0, 1 | 2, 451, "4.3.0", false, false },
	{ "message too big", SMTP_POLICY_MESSAGE, MX, false, false, "", "",
	    "", false, 0, 1, 0, 0, 2 | 4, 552, "5.3.4", true, false },
	{ "bare LF", SMTP_POLICY_MESSAGE, MX, false, false, "", "", "",
	    false, 0, 1, 0, 0, 4 | 8, 550, "5.6.0", true, false },
	{ "long line", SMTP_POLICY_MESSAGE, MX, false, false, "", "", "",
	    false, 0, 1, 0, 0, 8, 550, "5.6.0", true, false },
	{ "delivered", SMTP_POLICY_DELIVER_DONE, MX, false, false, "", "",
	    "", false, 0, 1, 0, 0, 0, 0, NULL, false, false },
	{ "delivery over quota", SMTP_POLICY_DELIVER_DONE, MX, false, false,
	    "", "", "", false, 0, 1, 0, PR_EQUOTA, 0, 452, "4.2.2", false,
	    false },
	{ "delivery too big", SMTP_POLICY_DELIVER_DONE, MX, false, false,
	    "", "", "", false, 0, 1, 0, PR_ETOOBIG, 0, 552, "5.2.2", true,
	    false },
	{ "delivery failed", SMTP_POLICY_DELIVER_DONE, MX, false, false, "",
	    "", "", false, 0, 1, 0, PR_EIO, 0, 451, "4.3.0", false, false },
};

static struct smtp_limits policy_limits;

static void
policy_facts(const struct policy_row *r, struct smtp_policy_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->hostname = "mx.example.test";
	f->limits = &policy_limits;
	f->kind = r->kind;
	f->tls = r->tls;
	f->tls_offered = r->flags & 16;
	f->plaintext_auth = r->plaintext;
	f->auth_user = r->user;
	f->auth_fails = r->auth_fails;
	f->sender = r->sender;
	f->smtputf8 = r->utf8;
	f->declared_size = r->declared;
	f->rcpt = r->rcpt;
	f->n_rcpt = r->n_rcpt;
	f->spool_failed = r->flags & 1;
	f->too_big = r->flags & 2;
	f->bare_eol = r->flags & 4;
	f->long_line = r->flags & 8;
	f->from_bad = r->flags & 32;
	f->status = r->status;
}

static void
test_table(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	size_t i;

	for (i = 0; i < sizeof(policy_rows) / sizeof(policy_rows[0]); i++) {
		const struct policy_row *r = &policy_rows[i];

		policy_facts(r, &f);
		smtp_policy_check(r->pt, &f, &v);
		TAP_EQ_INT(v.code, r->code, "%s: code", r->name);
		if (r->code == 0)
			continue;
		TAP_EQ_STR(v.enh, r->enh, "%s: enhanced code", r->name);
		TAP_EQ_INT(v.error, r->error, "%s: counts as an error",
		    r->name);
		TAP_EQ_INT(v.close, r->close, "%s: closes", r->name);
		TAP_OK(v.text[0] != '\0', "%s: has a text", r->name);
	}
}

static void
test_texts(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;

	policy_facts(&policy_rows[0], &f);
	f.rcpt = "x@remote.test";
	f.status = SMTP_RCPT_REMOTE;
	smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &v);
	TAP_EQ_STR(v.text, "<x@remote.test>: Relay access denied",
	    "relay text names the recipient");
	f.auth_user = "alice@example.test";
	f.sender = "bob@example.test";
	f.status = PR_EPERM;
	smtp_policy_check(SMTP_POLICY_MAIL_DONE, &f, &v);
	TAP_EQ_STR(v.text, "<bob@example.test>: Sender address not owned by "
	    "user alice@example.test", "ownership text names both");
}

/* One counter for every counted refusal; the limit is reached at
 * bad_cmd_max, not before; uncounted and closing refusals leave it. */
static void
test_counter(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v, limit, defer;
	unsigned errors = 0, i;

	policy_facts(&policy_rows[0], &f);
	smtp_policy_reject(&v, 500, "5.5.2", "Command unrecognized");
	TAP_OK(v.error && !v.close, "a syntax error counts");
	f.status = SMTP_RCPT_REMOTE;
	f.rcpt = "x@remote.test";
	smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &defer);
	for (i = 1; i < policy_limits.bad_cmd_max; i++)
		TAP_OK(!smtp_policy_count(&f, &errors, i % 2 ? &v : &defer,
		    &limit), "error %u of %u: go on", i,
		    policy_limits.bad_cmd_max);
	TAP_EQ_INT(errors, policy_limits.bad_cmd_max - 1,
	    "syntax errors and policy refusals share the counter");
	f.status = PR_EQUOTA;
	smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &defer);
	TAP_OK(!smtp_policy_count(&f, &errors, &defer, &limit),
	    "mailbox full does not count");
	TAP_EQ_INT(errors, policy_limits.bad_cmd_max - 1, "counter unchanged");
	TAP_OK(smtp_policy_count(&f, &errors, &v, &limit),
	    "error %u ends the session", policy_limits.bad_cmd_max);
	TAP_EQ_INT(limit.code, 421, "with 421");
	TAP_EQ_STR(limit.enh, "4.7.0", "4.7.0");
	TAP_EQ_STR(limit.text, "mx.example.test Too many errors, closing",
	    "and the host name");
	TAP_OK(limit.close, "which closes");
}

/* Junk commands: free up to junk_max, then accepted but counted; never
 * counted for an authenticated user. */
static void
test_junk(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;

	policy_facts(&policy_rows[0], &f);
	f.junk = policy_limits.junk_max;
	smtp_policy_check(SMTP_POLICY_JUNK, &f, &v);
	TAP_OK(v.code == 0 && !v.error, "junk command %u of %u: free",
	    f.junk, policy_limits.junk_max);
	f.junk++;
	smtp_policy_check(SMTP_POLICY_JUNK, &f, &v);
	TAP_OK(v.code == 0 && v.error, "junk command %u: accepted, counted",
	    f.junk);
	f.auth_user = "alice@example.test";
	smtp_policy_check(SMTP_POLICY_JUNK, &f, &v);
	TAP_OK(v.code == 0 && !v.error, "authenticated: not junk");
}

/* ETRN (RFC 1985): authenticated users and etrn_networks may ask (459,
 * counted, for the others); the outcome's refusals are 458. */
static void
test_etrn(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;

	policy_facts(&policy_rows[0], &f);
	f.etrn_node = "example.net";
	smtp_policy_check(SMTP_POLICY_ETRN, &f, &v);
	TAP_OK(v.code == 459 && v.error && strcmp(v.enh, "4.7.1") == 0 &&
	    strstr(v.text, "Node example.net not allowed") != NULL,
	    "ETRN from an anonymous client: 459, counted (%s)", v.text);
	f.etrn_network = true;
	smtp_policy_check(SMTP_POLICY_ETRN, &f, &v);
	TAP_EQ_INT(v.code, 0, "from etrn_networks: allowed");
	f.etrn_network = false;
	f.auth_user = "alice@example.test";
	smtp_policy_check(SMTP_POLICY_ETRN, &f, &v);
	TAP_EQ_INT(v.code, 0, "authenticated: allowed");
	f.status = 3;
	smtp_policy_check(SMTP_POLICY_ETRN_DONE, &f, &v);
	TAP_EQ_INT(v.code, 0, "entries flushed: the 253 is the handler's");
	f.status = PR_EAGAIN;
	smtp_policy_check(SMTP_POLICY_ETRN_DONE, &f, &v);
	TAP_OK(v.code == 458 && !v.error && strcmp(v.enh, "4.7.0") == 0,
	    "too many ETRN: 458 4.7.0, not counted");
	f.status = PR_EIO;
	smtp_policy_check(SMTP_POLICY_ETRN_DONE, &f, &v);
	TAP_OK(v.code == 458 && strcmp(v.enh, "4.3.0") == 0,
	    "store error: 458 4.3.0");
}

/* Past half the error limit each counted error waits; the limit itself
 * ends the session. */
static void
test_delay(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v, limit;
	unsigned errors = 0;

	policy_facts(&policy_rows[0], &f);
	smtp_policy_reject(&v, 550, "5.1.1", "unknown");
	TAP_OK(!smtp_policy_count(&f, &errors, &v, &limit), "error 1");
	TAP_EQ_INT(smtp_policy_error_delay(&f, errors), 0, "error 1: no wait");
	TAP_OK(!smtp_policy_count(&f, &errors, &v, &limit), "error 2");
	TAP_EQ_INT(smtp_policy_error_delay(&f, errors), 0,
	    "error 2 (half the limit): no wait");
	TAP_OK(!smtp_policy_count(&f, &errors, &v, &limit), "error 3");
	TAP_EQ_INT(smtp_policy_error_delay(&f, errors),
	    SMTP_POLICY_ERROR_DELAY_MS, "error 3: waits");
	memset(&v, 0, sizeof(v));
	v.error = true;
	TAP_OK(smtp_policy_count(&f, &errors, &v, &limit),
	    "an accepted but counted command reaches the limit too");
	TAP_EQ_INT(limit.code, 421, "421");
}

/* SPF at MAIL (RFC 7208 8, RFC 7372 3.2): fail refused and counted,
 * temperror deferred and not counted, the rest accepted. */
static void
test_spf_done(void)
{
	static const struct {
		int result;
		int code;
		const char *enh;
		bool error;
	} rows[] = {
		{ SPF_PASS, 0, NULL, false },
		{ SPF_NONE, 0, NULL, false },
		{ SPF_NEUTRAL, 0, NULL, false },
		{ SPF_SOFTFAIL, 0, NULL, false },
		{ SPF_PERMERROR, 0, NULL, false },
		{ SPF_FAIL, 550, "5.7.23", true },
		{ SPF_TEMPERROR, 451, "4.7.24", false },
	};
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	size_t i;

	policy_facts(&policy_rows[0], &f);
	f.sender = "a@remote.test";
	f.spf_checked = true;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		f.spf_result = rows[i].result;
		smtp_policy_check(SMTP_POLICY_SPF_DONE, &f, &v);
		TAP_EQ_INT(v.code, rows[i].code, "spf result %d: code",
		    rows[i].result);
		TAP_OK((v.enh == NULL && rows[i].enh == NULL) ||
		    (v.enh != NULL && rows[i].enh != NULL &&
		    strcmp(v.enh, rows[i].enh) == 0), "spf result %d: %s",
		    rows[i].result, rows[i].enh ? rows[i].enh : "no code");
		TAP_EQ_INT(v.error, rows[i].error, "spf result %d: counted",
		    rows[i].result);
	}
	f.spf_result = SPF_FAIL;
	f.spf_explanation = "192.0.2.1 may not send for remote.test";
	smtp_policy_check(SMTP_POLICY_SPF_DONE, &f, &v);
	TAP_EQ_STR(v.text, "SPF fail: 192.0.2.1 may not send for remote.test",
	    "fail: the domain's explanation (RFC 7208 6.2)");
	f.status = PR_EIO;
	smtp_policy_check(SMTP_POLICY_SPF_DONE, &f, &v);
	TAP_EQ_INT(v.code, 0, "no check could be made: accepted");
}

/* End of data on the MX listener (RFC 7489 6.6.1, 6.3, 6.6.4): the
 * From: count, then the DMARC verdict against [inbound] dmarc_policy. */
static void
test_verify_done(void)
{
	static const struct {
		const char *name;
		int from;
		bool checked;
		int result, apply;
		bool temp, report;
		int status;
		/* Verdict. */
		int code;
		const char *enh;
		bool error, mark;
		const char *check;
	} rows[] = {
		{ "no From:", DMARC_FROM_NONE, false, 0, 0, false, false, 0,
		    550, "5.7.1", true, false, "from" },
		{ "two From: addresses", DMARC_FROM_MULTIPLE, false, 0, 0,
		    false, false, 0, 550, "5.7.1", true, false, "from" },
		{ "broken From:", DMARC_FROM_BAD, false, 0, 0, false, false, 0,
		    550, "5.7.1", true, false, "from" },
		{ "two From:, report only", DMARC_FROM_MULTIPLE, false, 0, 0,
		    false, true, 0, 0, NULL, false, false, NULL },
		{ "DMARC not checked", DMARC_FROM_OK, false, 0, 0, false,
		    false, 0, 0, NULL, false, false, NULL },
		{ "pass", DMARC_FROM_OK, true, DMARC_PASS, DMARC_POLICY_NONE,
		    false, false, 0, 0, NULL, false, false, NULL },
		{ "no record", DMARC_FROM_OK, true, DMARC_NONE,
		    DMARC_POLICY_NONE, false, false, 0, 0, NULL, false, false,
		    NULL },
		{ "temperror", DMARC_FROM_OK, true, DMARC_TEMPERROR,
		    DMARC_POLICY_NONE, false, false, 0, 0, NULL, false, false,
		    NULL },
		{ "fail, p=none", DMARC_FROM_OK, true, DMARC_FAIL,
		    DMARC_POLICY_NONE, false, false, 0, 0, NULL, false, false,
		    NULL },
		{ "fail, p=reject", DMARC_FROM_OK, true, DMARC_FAIL,
		    DMARC_POLICY_REJECT, false, false, 0, 550, "5.7.1", true,
		    false, "dmarc" },
		{ "fail, p=reject, a DNS failure", DMARC_FROM_OK, true,
		    DMARC_FAIL, DMARC_POLICY_REJECT, true, false, 0, 451,
		    "4.7.1", false, false, "dmarc" },
		{ "fail, p=reject, report only", DMARC_FROM_OK, true,
		    DMARC_FAIL, DMARC_POLICY_REJECT, false, true, 0, 0, NULL,
		    false, false, NULL },
		{ "fail, p=quarantine", DMARC_FROM_OK, true, DMARC_FAIL,
		    DMARC_POLICY_QUARANTINE, false, false, 0, 0, NULL, false,
		    true, "dmarc" },
		{ "fail, p=quarantine, report only", DMARC_FROM_OK, true,
		    DMARC_FAIL, DMARC_POLICY_QUARANTINE, false, true, 0, 0,
		    NULL, false, false, NULL },
		{ "no check could be made", DMARC_FROM_NONE, true, DMARC_FAIL,
		    DMARC_POLICY_REJECT, false, false, PR_EIO, 0, NULL, false,
		    false, NULL },
	};
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		policy_facts(&policy_rows[0], &f);
		f.from_status = rows[i].from;
		f.dmarc_checked = rows[i].checked;
		f.dmarc_result = rows[i].result;
		f.dmarc_apply = rows[i].apply;
		f.dmarc_temp = rows[i].temp;
		f.dmarc_report = rows[i].report;
		f.dmarc_domain = "bank.test";
		f.status = rows[i].status;
		smtp_policy_check(SMTP_POLICY_VERIFY_DONE, &f, &v);
		TAP_EQ_INT(v.code, rows[i].code, "%s: code", rows[i].name);
		TAP_OK((v.enh == NULL && rows[i].enh == NULL) ||
		    (v.enh != NULL && rows[i].enh != NULL &&
		    strcmp(v.enh, rows[i].enh) == 0), "%s: %s", rows[i].name,
		    rows[i].enh ? rows[i].enh : "no code");
		TAP_EQ_INT(v.error, rows[i].error, "%s: counted",
		    rows[i].name);
		TAP_EQ_INT(v.mark, rows[i].mark, "%s: marked", rows[i].name);
		TAP_OK((v.check == NULL && rows[i].check == NULL) ||
		    (v.check != NULL && rows[i].check != NULL &&
		    strcmp(v.check, rows[i].check) == 0), "%s: logged as %s",
		    rows[i].name, rows[i].check ? rows[i].check : "nothing");
	}
	policy_facts(&policy_rows[0], &f);
	f.dmarc_checked = true;
	f.dmarc_result = DMARC_FAIL;
	f.dmarc_apply = DMARC_POLICY_QUARANTINE;
	f.dmarc_domain = "bank.test";
	smtp_policy_check(SMTP_POLICY_VERIFY_DONE, &f, &v);
	TAP_OK(strstr(v.text, "bank.test") != NULL, "the mark names the "
	    "domain: %s", v.text);
}

/* DNSBL before the greeting (RFC 5782): a listed client gets 554 5.7.1
 * naming the zone and its reason, and the session ends. */
static void
test_connect(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;

	policy_facts(&policy_rows[0], &f);
	f.peer = "192.0.2.9";
	smtp_policy_check(SMTP_POLICY_CONNECT, &f, &v);
	TAP_EQ_INT(v.code, 0, "not listed: greeted");
	f.dnsbl_zone = "";
	smtp_policy_check(SMTP_POLICY_CONNECT, &f, &v);
	TAP_EQ_INT(v.code, 0, "empty zone: greeted");
	f.dnsbl_zone = "bl.test";
	f.dnsbl_reason = "listed for spam, see https://bl.test/";
	smtp_policy_check(SMTP_POLICY_CONNECT, &f, &v);
	TAP_EQ_INT(v.code, 554, "listed: 554");
	TAP_EQ_STR(v.enh, "5.7.1", "listed: 5.7.1");
	TAP_OK(v.close, "listed: the session ends");
	TAP_EQ_STR(v.text, "Service unavailable; client [192.0.2.9] blocked "
	    "using bl.test: listed for spam, see https://bl.test/",
	    "listed: zone and reason in the reply");
	TAP_EQ_STR(v.check, "dnsbl", "listed: logged as dnsbl");
	f.dnsbl_reason = NULL;
	smtp_policy_check(SMTP_POLICY_CONNECT, &f, &v);
	TAP_EQ_STR(v.text, "Service unavailable; client [192.0.2.9] blocked "
	    "using bl.test", "listed without TXT: the zone alone");
}

/* Greylisting (RFC 6647) at RCPT: 451 4.7.1, not counted, logged. */
static void
test_greylist(void)
{
	struct smtp_policy_facts f;
	struct smtp_verdict v;

	policy_facts(&policy_rows[0], &f);
	f.rcpt = "bob@example.test";
	f.status = SMTP_RCPT_GREYLISTED;
	smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &v);
	TAP_EQ_INT(v.code, 451, "greylisted: 451");
	TAP_EQ_STR(v.enh, "4.7.1", "greylisted: 4.7.1");
	TAP_OK(!v.error, "greylisted: not counted as an error");
	TAP_EQ_STR(v.check, "greylist", "greylisted: logged as greylist");
	f.status = SMTP_RCPT_LOCAL;
	smtp_policy_check(SMTP_POLICY_RCPT_DONE, &f, &v);
	TAP_OK(v.code == 0 && v.check == NULL, "passed: accepted");
}

/* The content filters' refusals at the end of data and at the commands
 * (docs/MILTER.md 1: the reply of that command). */
static void
test_milter(void)
{
	static const struct {
		const char *name;
		int milter, code;
		const char *enh, *text;
		int want;
		const char *wenh, *wtext;
		int step;  /* 0: at the end of data */
	} rows[] = {
		{ "milter reject at MAIL", SMTP_MILTER_REJECT, 0, "", "",
		    550, "5.7.1", "Sender rejected by a content filter",
		    SMTP_MILTER_MAIL },
		{ "milter tempfail at RCPT", SMTP_MILTER_TEMPFAIL, 0, "", "",
		    451, "4.7.1", "Recipient deferred by a content filter, try "
		    "again later", SMTP_MILTER_RCPT },
		{ "milter reply code at RCPT", SMTP_MILTER_REJECT, 553, "5.7.1",
		    "Not for you", 553, "5.7.1", "Not for you",
		    SMTP_MILTER_RCPT },
		{ "milter failed at MAIL", SMTP_MILTER_FAILED, 0, "", "", 451,
		    "4.7.1", "Content filter unavailable, try again later",
		    SMTP_MILTER_MAIL },
		{ "milter reject, default", SMTP_MILTER_REJECT, 0, "", "",
		    550, "5.7.1", "Message rejected by a content filter", 0 },
		{ "milter tempfail, default", SMTP_MILTER_TEMPFAIL, 0, "", "",
		    451, "4.7.1", "Message deferred by a content filter, try "
		    "again later", 0 },
		{ "milter failed", SMTP_MILTER_FAILED, 0, "", "", 451,
		    "4.7.1", "Content filter unavailable, try again later", 0 },
		{ "milter reply code", SMTP_MILTER_REJECT, 554, "5.7.1",
		    "Gtube pattern", 554, "5.7.1", "Gtube pattern", 0 },
		{ "milter reply without enh", SMTP_MILTER_REJECT, 550, "",
		    "Spam", 550, "5.7.1", "Spam", 0 },
		{ "milter 4xx without enh", SMTP_MILTER_TEMPFAIL, 450, "",
		    "", 450, "4.7.1", "Message deferred by a content filter",
		    0 },
	};
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(&f, 0, sizeof(f));
		f.limits = &policy_limits;
		f.kind = SMTP_LISTEN_MX;
		f.milter = rows[i].milter;
		f.milter_code = rows[i].code;
		f.milter_enh = rows[i].enh;
		f.milter_text = rows[i].text;
		f.milter_step = rows[i].step;
		smtp_policy_check(rows[i].step != 0 ?
		    SMTP_POLICY_MILTER_DONE : SMTP_POLICY_DELIVER_DONE, &f, &v);
		TAP_EQ_INT(v.code, rows[i].want, "%s: code", rows[i].name);
		TAP_EQ_STR(v.enh, rows[i].wenh, "%s: enh", rows[i].name);
		TAP_EQ_STR(v.text, rows[i].wtext, "%s: text", rows[i].name);
		TAP_OK(v.error == (rows[i].step != 0 &&
		    rows[i].milter == SMTP_MILTER_REJECT) && !v.close &&
		    v.check != NULL && strcmp(v.check, "milter") == 0,
		    "%s: counted only for a command refused for good, "
		    "check=milter", rows[i].name);
	}
	/* A filter's 421 closes the session (RFC 5321 3.8), at a command
	 * and at the end of data. */
	for (i = 0; i < 2; i++) {
		memset(&f, 0, sizeof(f));
		f.limits = &policy_limits;
		f.kind = SMTP_LISTEN_MX;
		f.milter = SMTP_MILTER_TEMPFAIL;
		f.milter_code = 421;
		f.milter_enh = "4.7.0";
		f.milter_text = "Go away";
		f.milter_step = i == 0 ? SMTP_MILTER_MAIL : 0;
		smtp_policy_check(i == 0 ? SMTP_POLICY_MILTER_DONE :
		    SMTP_POLICY_DELIVER_DONE, &f, &v);
		TAP_OK(v.code == 421 && v.close && !v.error,
		    "milter 421 %s: closes", i == 0 ? "at MAIL" : "at the end");
	}
}

int
main(void)
{
	smtp_limits_default(&policy_limits);
	policy_limits.data_max = 1000;
	policy_limits.rcpt_max = 3;
	policy_limits.bad_cmd_max = 4;
	test_table();
	test_texts();
	test_counter();
	test_junk();
	test_etrn();
	test_delay();
	test_spf_done();
	test_verify_done();
	test_connect();
	test_greylist();
	test_milter();
	return tap_done();
}
