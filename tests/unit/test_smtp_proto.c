/*
 * test_smtp_proto.c - the SMTP core's API beyond what dialogs show: the
 * events and their contents, the trace header fields, shutdown and
 * timeouts, output backpressure, and the secret handling of AUTH.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "smtp_proto.h"
#include "tap.h"

static struct smtp_proto *
proto_new(enum smtp_listen_kind kind)
{
	struct smtp_proto_conf conf;
	struct smtp_proto *p;

	memset(&conf, 0, sizeof(conf));
	conf.hostname = "mx.example.test";
	conf.kind = kind;
	conf.starttls = true;
	conf.allow_plaintext_auth = true;
	smtp_limits_default(&conf.limits);
	if (smtp_proto_new(&conf, &p) < 0)
		abort();
	smtp_proto_greet(p);
	return p;
}

/* Feeds s whole; returns the reply text produced (static, reset).  An
 * anonymous sender's domain lookup (SMTP_EV_MAIL) answers "not hosted"
 * and feeding goes on. */
static const char *
feed(struct smtp_proto *p, const char *s)
{
	static char out[65536];
	struct buf *o;
	const struct smtp_event *ev;
	size_t len = strlen(s);
	ssize_t n;

	for (;;) {
		n = smtp_proto_feed(p, (const uint8_t *)s, len);
		if (n < 0)
			return "ERROR";
		s += n;
		len -= (size_t)n;
		ev = smtp_proto_event(p);
		if (ev == NULL || ev->type != SMTP_EV_MAIL ||
		    smtp_proto_auth_user(p)[0] != '\0')
			break;
		smtp_proto_complete(p, 0);
	}
	o = smtp_proto_out(p);
	snprintf(out, sizeof(out), "%.*s", (int)o->len, (const char *)o->p);
	buf_reset(o);
	return out;
}

static void
test_trace(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_SUBMISSION);
	const struct smtp_event *ev;
	struct smtp_trace t = { "192.0.2.7", "abc.1",
	    "Mon, 23 Nov 2026 13:35:56 +0000", "<x.abc.1@mx.example.test>", NULL };
	struct buf h;

	feed(p, "EHLO client.example\r\n");
	smtp_proto_tls_started(p, "TLSv1.3 TLS_AES_256_GCM_SHA384");
	feed(p, "EHLO client.example\r\n"
	    "AUTH PLAIN AGFsaWNlQEVYQU1QTEUudGVzdABzZWNyZXQ=\r\n");
	ev = smtp_proto_event(p);
	TAP_OK(ev != NULL && ev->type == SMTP_EV_AUTH, "AUTH event");
	/* The domain comes out canonical (lower case). */
	TAP_EQ_STR(ev ? ev->user : NULL, "alice@example.test", "AUTH user");
	TAP_EQ_STR(ev ? ev->pass : NULL, "secret", "AUTH password");
	smtp_proto_complete(p, 0);
	TAP_EQ_STR(smtp_proto_auth_user(p), "alice@example.test", "auth user");
	TAP_OK(smtp_proto_event(p) == NULL, "no event after completion");
	feed(p, "MAIL FROM:<alice@example.test>\r\n");
	ev = smtp_proto_event(p);
	TAP_OK(ev != NULL && ev->type == SMTP_EV_MAIL, "MAIL event when "
	    "authenticated");
	smtp_proto_complete(p, 0);
	feed(p, "RCPT TO:<bob@example.test>\r\n");
	TAP_OK(smtp_proto_rcpt_target(p, 2, NULL) == 0, "target");
	TAP_OK(smtp_proto_rcpt_target(p, 2, NULL) == 0, "duplicate target");
	smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	feed(p, "DATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n");
	ev = smtp_proto_event(p);
	TAP_OK(ev != NULL && ev->type == SMTP_EV_DELIVER, "DELIVER event");
	TAP_EQ_INT(smtp_proto_tx(p)->n_users, 1, "duplicates removed");
	TAP_EQ_INT(smtp_proto_tx(p)->size, 21, "message size");
	TAP_EQ_INT(ev ? ev->len : 0, 21, "message in memory");
	buf_init(&h, 4096);
	TAP_EQ_INT(smtp_proto_trace(p, &t, &h), 0, "trace");
	buf_append(&h, "", 1);
	TAP_EQ_STR((const char *)h.p,
	    "Return-Path: <alice@example.test>\r\n"
	    "Received: from client.example ([192.0.2.7])\r\n"
	    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
	    "\t(authenticated as alice@example.test)\r\n"
	    "\tby mx.example.test (postroom) with ESMTPSA id abc.1\r\n"
	    "\tfor <bob@example.test>; Mon, 23 Nov 2026 13:35:56 +0000\r\n"
	    "Date: Mon, 23 Nov 2026 13:35:56 +0000\r\n"
	    "Message-ID: <x.abc.1@mx.example.test>\r\n",
	    "trace fields of an authenticated TLS submission");
	smtp_proto_queued_as(p, "00000000000000aa");
	smtp_proto_complete(p, 0);
	TAP_EQ_STR(feed(p, ""), "250 2.0.0 Ok: queued as 00000000000000aa\r\n",
	    "queued as");
	TAP_EQ_INT(smtp_proto_messages(p), 1, "message count");
	TAP_EQ_INT(smtp_proto_state(p), SMTP_S_READY, "ready again");
	buf_fini(&h);
	smtp_proto_free(&p);
	TAP_OK(p == NULL, "free sets NULL");
}

static void
test_trace_mx(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_MX);
	struct smtp_trace t = { "2001:db8::1", "id.2", "DATE", "<m@x>", NULL };
	struct buf h;

	feed(p, "EHLO mta.remote.test\r\nMAIL FROM:<a@remote.test> SMTPUTF8\r\n"
	    "RCPT TO:<alice@example.test>\r\n");
	smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	feed(p, "RCPT TO:<bob@example.test>\r\n");
	smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	feed(p, "DATA\r\nMessage-ID: <given@x>\r\nDate: given\r\n\r\nx\r\n"
	    ".\r\n");
	TAP_OK(smtp_proto_tx(p)->has_msgid && smtp_proto_tx(p)->has_date,
	    "header fields found");
	buf_init(&h, 4096);
	smtp_proto_trace(p, &t, &h);
	buf_append(&h, "", 1);
	/* Two recipients: no "for"; IPv6 literal; SMTPUTF8 keyword; no
	 * Date/Message-ID added on the MX. */
	TAP_EQ_STR((const char *)h.p,
	    "Return-Path: <a@remote.test>\r\n"
	    "Received: from mta.remote.test ([IPv6:2001:db8::1])\r\n"
	    "\tby mx.example.test (postroom) with UTF8SMTP id id.2; DATE\r\n",
	    "trace fields on the MX");
	buf_fini(&h);
	smtp_proto_free(&p);
}

static void
test_shutdown(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_MX);

	feed(p, "EHLO x\r\n");
	smtp_proto_shutdown(p);
	TAP_OK(smtp_proto_closing(p), "idle session closes on shutdown");
	TAP_EQ_STR(feed(p, "NOOP\r\n"),
	    "421 4.3.2 mx.example.test Service shutting down\r\n",
	    "421 4.3.2 on shutdown");
	smtp_proto_free(&p);

	p = proto_new(SMTP_LISTEN_MX);
	feed(p, "EHLO x\r\nMAIL FROM:<a@remote.test>\r\n"
	    "RCPT TO:<alice@example.test>\r\n");
	smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	feed(p, "DATA\r\nhalf a mess");
	smtp_proto_shutdown(p);
	TAP_OK(!smtp_proto_closing(p), "a message in flight is finished");
	feed(p, "age\r\n.\r\n");
	smtp_proto_queued_as(p, "0000000000000001");
	smtp_proto_complete(p, 0);
	TAP_EQ_STR(feed(p, ""), "250 2.0.0 Ok: queued as 0000000000000001\r\n"
	    "421 4.3.2 mx.example.test Service shutting down\r\n",
	    "then its reply, then 421");
	TAP_OK(smtp_proto_closing(p), "then closing");
	smtp_proto_free(&p);
}

static void
test_timeout_refuse(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_MX);

	feed(p, "");
	smtp_proto_timeout(p);
	TAP_EQ_STR(feed(p, ""), "421 4.4.2 mx.example.test Error: timeout "
	    "exceeded\r\n", "timeout reply");
	TAP_OK(smtp_proto_closing(p), "timeout closes");
	TAP_EQ_INT(smtp_proto_feed(p, (const uint8_t *)"NOOP\r\n", 6), 6,
	    "input after close is swallowed");
	TAP_EQ_STR(feed(p, ""), "", "and not answered");
	smtp_proto_free(&p);

	p = proto_new(SMTP_LISTEN_MX);
	buf_reset(smtp_proto_out(p));
	smtp_proto_refuse(p, 421, "4.7.0", "Too many connections from your "
	    "address");
	TAP_EQ_STR(feed(p, ""), "421 4.7.0 Too many connections from your "
	    "address\r\n", "refusal");
	smtp_proto_free(&p);
}

/* min_data_rate: the glue measures, the core only answers. */
static void
test_too_slow(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_MX);
	const struct smtp_event *ev;
	const char *out;

	feed(p, "EHLO x\r\n");
	TAP_OK(!smtp_proto_in_transfer(p), "no transfer before DATA");
	feed(p, "MAIL FROM:<a@b.c>\r\n");
	if ((ev = smtp_proto_event(p)) != NULL)
		smtp_proto_complete(p, 0);
	feed(p, "RCPT TO:<c@example.test>\r\n");
	if ((ev = smtp_proto_event(p)) != NULL && ev->type == SMTP_EV_RCPT) {
		smtp_proto_rcpt_target(p, 2, NULL);
		smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	}
	buf_reset(smtp_proto_out(p));
	out = feed(p, "DATA\r\nSubject: slow\r\n");
	TAP_OK(strncmp(out, "354", 3) == 0, "DATA: 354 (%s)", out);
	TAP_OK(smtp_proto_in_transfer(p), "in transfer after the 354");
	smtp_proto_too_slow(p);
	TAP_EQ_STR(feed(p, ""), "421 4.4.2 mx.example.test Error: data rate "
	    "too low, closing\r\n", "too slow: 421 4.4.2");
	TAP_OK(smtp_proto_closing(p) && !smtp_proto_in_transfer(p),
	    "too slow closes and ends the transfer");
	TAP_EQ_STR(feed(p, "more body\r\n.\r\n"), "", "the rest of the "
	    "message is not answered");
	TAP_OK(smtp_proto_event(p) == NULL, "and not delivered");
	smtp_proto_free(&p);
}

static void
test_backpressure(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_MX);
	static char in[64 * 1024];
	size_t i;
	ssize_t n;

	for (i = 0; i + 6 <= sizeof(in); i += 6)
		memcpy(in + i, "NOOP\r\n", 6);
	n = smtp_proto_feed(p, (const uint8_t *)in, i);
	TAP_OK(n > 0 && (size_t)n < i, "a flood of pipelined commands is "
	    "taken in part (%zd of %zu)", n, i);
	TAP_OK(smtp_proto_out(p)->len < 20 * 1024, "output stays bounded");
	smtp_proto_free(&p);
}

static void
test_starttls_drop(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_SUBMISSION);
	const char *in = "EHLO x\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<a@b.c>\r\n";
	ssize_t n;

	feed(p, "");
	n = smtp_proto_feed(p, (const uint8_t *)in, strlen(in));
	TAP_EQ_INT(n, strlen(in), "everything after STARTTLS is consumed");
	TAP_OK(smtp_proto_event(p) != NULL &&
	    smtp_proto_event(p)->type == SMTP_EV_STARTTLS, "STARTTLS event");
	TAP_OK(strstr(feed(p, ""), "RSET") == NULL, "no reply to the rest");
	smtp_proto_tls_started(p, "TLSv1.3 X");
	TAP_EQ_INT(smtp_proto_state(p), SMTP_S_GREETING, "EHLO needed again");
	TAP_EQ_STR(smtp_proto_helo(p), "", "EHLO name forgotten");
	smtp_proto_free(&p);

	/* A failed handshake is completed with its error: closed. */
	p = proto_new(SMTP_LISTEN_SUBMISSION);
	feed(p, "EHLO x\r\nSTARTTLS\r\n");
	smtp_proto_complete(p, PR_ETLS);
	TAP_OK(smtp_proto_event(p) == NULL && smtp_proto_closing(p),
	    "failed handshake closes");
	TAP_EQ_STR(feed(p, ""), "", "and says nothing in the clear");
	smtp_proto_free(&p);
}

static void
test_spool_events(void)
{
	struct smtp_proto_conf conf;
	struct smtp_proto *p;
	const struct smtp_event *ev;
	int spools = 0;
	size_t total = 0;
	static char msg[4096 + 8];

	memset(&conf, 0, sizeof(conf));
	conf.hostname = "h";
	conf.kind = SMTP_LISTEN_MX;
	smtp_limits_default(&conf.limits);
	conf.limits.mem_max = 1024;
	smtp_proto_new(&conf, &p);
	feed(p, "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<c@d.e>\r\n");
	smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	feed(p, "DATA\r\n");
	memset(msg, 'x', 4096);
	for (int i = 1; i < 4096; i += 100)
		memcpy(msg + i, "\r\n", 2);
	memcpy(msg + 4096, "\r\n.\r\n", 6);
	{
		const char *q = msg;
		size_t left = strlen(msg);

		while (left > 0) {
			ssize_t n = smtp_proto_feed(p,
			    (const uint8_t *)q, left);

			q += n;
			left -= (size_t)n;
			if ((ev = smtp_proto_event(p)) == NULL)
				continue;
			if (ev->type == SMTP_EV_SPOOL) {
				spools++;
				total += ev->len;
				TAP_OK(ev->len <= 1024, "spool piece bounded");
				smtp_proto_complete(p, 0);
			}
		}
	}
	ev = smtp_proto_event(p);
	TAP_OK(ev != NULL && ev->type == SMTP_EV_DELIVER, "delivered");
	TAP_OK(spools >= 3, "spooled in %d pieces", spools);
	TAP_OK(smtp_proto_tx(p)->spooled, "tx marked spooled");
	TAP_EQ_INT(total + (ev ? ev->len : 0), smtp_proto_tx(p)->size,
	    "pieces add up to the size");
	smtp_proto_free(&p);
}

/* The glue times a whole command line (slowloris): it asks the core
 * whether one has begun. */
static void
test_line_pending(void)
{
	struct smtp_proto *p = proto_new(SMTP_LISTEN_MX);

	feed(p, "");
	TAP_OK(!smtp_proto_line_pending(p), "no line at first");
	feed(p, "EH");
	TAP_OK(smtp_proto_line_pending(p), "a partial command line");
	TAP_EQ_STR(feed(p, "LO x\r\n"), "250-mx.example.test\r\n"
	    "250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-STARTTLS\r\n"
	    "250-AUTH PLAIN LOGIN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
	    "the line completes");
	TAP_OK(!smtp_proto_line_pending(p), "none after its end");
	feed(p, "AUTH LOGIN\r\nYWxp");
	TAP_OK(smtp_proto_line_pending(p), "a partial SASL response");
	feed(p, "Y2U=\r\n*\r\n");
	TAP_OK(!smtp_proto_line_pending(p), "none after it");
	feed(p, "MAIL FROM:<a@b.c>\r\nRCPT TO:<c@d.e>\r\n");
	smtp_proto_complete(p, SMTP_RCPT_LOCAL);
	feed(p, "DATA\r\nSubject: x\r\n\r\npartial text");
	TAP_OK(!smtp_proto_line_pending(p), "message text is not a command "
	    "line");
	smtp_proto_free(&p);
}

static char log_text[16384];

static void
log_collect(void *data, int level, const char *text)
{
	size_t n = strlen(log_text);

	(void)data;
	(void)level;
	snprintf(log_text + n, sizeof(log_text) - n, "%s\n", text);
}

/* After a refused AUTH a pipelining client's next lines are its SASL
 * responses: base64 credentials, never to be logged, whatever path the
 * refusal took (RFC 4954 4). */
static void
test_log_no_secrets(void)
{
	static const char *const secrets[] = {
		"AGFsaWNlQGV4YW1wbGUudGVzdABzM2NyM3Q=", /* \0alice@..\0s3cr3t */
		"YWxpY2VAZXhhbXBsZS50ZXN0",             /* alice@example.test */
		"czNjcjN0",                             /* s3cr3t */
		"s3cr3t",
	};
	static const struct {
		enum smtp_listen_kind kind;
		bool plaintext;
		const char *in;
	} cases[] = {
		/* AUTH before TLS. */
		{ SMTP_LISTEN_SUBMISSION, false, "EHLO x\r\nAUTH PLAIN\r\n"
		    "AGFsaWNlQGV4YW1wbGUudGVzdABzM2NyM3Q=\r\nAUTH LOGIN\r\n"
		    "YWxpY2VAZXhhbXBsZS50ZXN0\r\nczNjcjN0\r\n" },
		/* AUTH in a transaction, and before EHLO. */
		{ SMTP_LISTEN_MX, true, "AUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS50ZXN0"
		    "\r\nczNjcjN0\r\nEHLO x\r\nMAIL FROM:<>\r\nAUTH PLAIN\r\n"
		    "AGFsaWNlQGV4YW1wbGUudGVzdABzM2NyM3Q=\r\n" },
		/* Cancelled, bad base64. */
		{ SMTP_LISTEN_MX, true, "EHLO x\r\nAUTH LOGIN\r\n*\r\n"
		    "czNjcjN0\r\nAUTH PLAIN\r\n!!s3cr3t\r\n"
		    "AGFsaWNlQGV4YW1wbGUudGVzdABzM2NyM3Q=\r\n" },
	};
	struct smtp_proto_conf conf;
	struct smtp_proto *p;
	size_t i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&conf, 0, sizeof(conf));
		conf.hostname = "mx.example.test";
		conf.kind = cases[i].kind;
		conf.allow_plaintext_auth = cases[i].plaintext;
		conf.log_cb = log_collect;
		smtp_limits_default(&conf.limits);
		log_text[0] = '\0';
		if (smtp_proto_new(&conf, &p) < 0)
			abort();
		smtp_proto_greet(p);
		feed(p, cases[i].in);
		TAP_OK(strstr(log_text, "reject command=") != NULL, "case %zu: "
		    "refusals logged", i);
		for (k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++)
			TAP_OK(strstr(log_text, secrets[k]) == NULL,
			    "case %zu: no \"%s\" in the log", i, secrets[k]);
		smtp_proto_free(&p);
	}
}

int
main(void)
{
	test_trace();
	test_trace_mx();
	test_shutdown();
	test_timeout_refuse();
	test_too_slow();
	test_backpressure();
	test_starttls_drop();
	test_spool_events();
	test_line_pending();
	test_log_no_secrets();
	return tap_done();
}
