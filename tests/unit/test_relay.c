/*
 * test_relay.c - the relay's pure parts: MX ordering and null MX, the
 * retry schedule, dot-stuffing, DSN generation.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "relay_data.h"
#include "relay_dsn.h"
#include "relay_mx.h"
#include "relay_policy.h"
#include "tap.h"

/* A deterministic generator so that a failure can be replayed. */
static uint32_t
test_rand(void *ctx, uint32_t n)
{
	uint64_t *s = ctx;

	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((*s >> 33) % n);
}

static void
test_mx_sort(void)
{
	struct relay_mx mx[6];
	uint64_t seed = 42;
	int first_seen[3] = { 0, 0, 0 };
	int i, round;
	bool ordered = true, same_set = true;

	for (round = 0; round < 300; round++) {
		memset(mx, 0, sizeof(mx));
		mx[0].pref = 20; strcpy(mx[0].host, "c20");
		mx[1].pref = 10; strcpy(mx[1].host, "a10");
		mx[2].pref = 10; strcpy(mx[2].host, "b10");
		mx[3].pref = 30; strcpy(mx[3].host, "d30");
		mx[4].pref = 10; strcpy(mx[4].host, "e10");
		mx[5].pref = 5; strcpy(mx[5].host, "f5");
		relay_mx_sort(mx, 6, test_rand, &seed);
		for (i = 1; i < 6; i++)
			if (mx[i - 1].pref > mx[i].pref)
				ordered = false;
		if (strcmp(mx[0].host, "f5") != 0 ||
		    strcmp(mx[4].host, "c20") != 0 ||
		    strcmp(mx[5].host, "d30") != 0)
			same_set = false;
		/* Which of the three preference-10 hosts comes first. */
		if (strcmp(mx[1].host, "a10") == 0)
			first_seen[0]++;
		else if (strcmp(mx[1].host, "b10") == 0)
			first_seen[1]++;
		else if (strcmp(mx[1].host, "e10") == 0)
			first_seen[2]++;
	}
	TAP_OK(ordered, "MX sorted by preference");
	TAP_OK(same_set, "distinct preferences keep their place");
	/* RFC 5321 5.1: equal preferences in random order: each of the
	 * three must come first a fair share of 300 rounds. */
	for (i = 0; i < 3; i++)
		TAP_OK(first_seen[i] > 60 && first_seen[i] < 140,
		    "equal preference host %d first %d/300 times", i,
		    first_seen[i]);

	memset(mx, 0, sizeof(mx));
	mx[0].pref = 0;
	strcpy(mx[0].host, "");
	TAP_OK(relay_mx_is_null(mx, 1), "null MX (exchange \".\") detected");
	strcpy(mx[0].host, ".");
	TAP_OK(relay_mx_is_null(mx, 1), "null MX spelled \".\" detected");
	strcpy(mx[0].host, "mx.b.test");
	TAP_OK(!relay_mx_is_null(mx, 1), "ordinary MX is not null");
	TAP_OK(!relay_mx_is_null(mx, 0), "no MX is not null MX");
}

static void
test_hostport(void)
{
	char host[RELAY_HOST_MAX];
	unsigned port = 25;

	TAP_EQ_INT(relay_mx_parse_hostport("smtp.example.net:587", host,
	    &port), 0, "host:port parses");
	TAP_EQ_STR(host, "smtp.example.net", "host:port host");
	TAP_EQ_INT(port, 587, "host:port port");
	port = 25;
	TAP_EQ_INT(relay_mx_parse_hostport("127.0.0.53", host, &port), 0,
	    "ip parses");
	TAP_EQ_INT(port, 25, "no port keeps the default");
	TAP_EQ_INT(relay_mx_parse_hostport("[::1]:5353", host, &port), 0,
	    "[v6]:port parses");
	TAP_EQ_STR(host, "::1", "[v6]:port host");
	TAP_EQ_INT(port, 5353, "[v6]:port port");
	TAP_EQ_INT(relay_mx_parse_hostport("::1", host, &port), 0,
	    "bare v6 parses");
	TAP_EQ_STR(host, "::1", "bare v6 host");
	TAP_EQ_INT(relay_mx_parse_hostport("host:0", host, &port), PR_EINVAL,
	    "port 0 refused");
	TAP_EQ_INT(relay_mx_parse_hostport("host:65536", host, &port),
	    PR_EINVAL, "port 65536 refused");
	TAP_EQ_INT(relay_mx_parse_hostport("host:x", host, &port), PR_EINVAL,
	    "non-numeric port refused");
	TAP_EQ_INT(relay_mx_parse_hostport("", host, &port), PR_EINVAL,
	    "empty refused");
	TAP_EQ_INT(relay_mx_parse_hostport("[::1", host, &port), PR_EINVAL,
	    "unclosed bracket refused");
}

static void
test_backoff(void)
{
	int64_t next;

	TAP_EQ_INT(relay_backoff(1), 300, "1st retry after 5 min");
	TAP_EQ_INT(relay_backoff(2), 600, "2nd after 10 min");
	TAP_EQ_INT(relay_backoff(3), 1200, "3rd after 20 min");
	TAP_EQ_INT(relay_backoff(4), 2400, "4th after 40 min");
	TAP_EQ_INT(relay_backoff(5), 3600, "5th capped at 1 h");
	TAP_EQ_INT(relay_backoff(50), 3600, "50th still 1 h");
	TAP_EQ_INT(relay_backoff(0), 300, "0 treated as first");

	TAP_EQ_INT(relay_policy_defer(1000, 1000, 1, 5 * 86400, &next), 0,
	    "fresh entry not expired");
	TAP_EQ_INT(next, 1300, "next attempt = now + backoff");
	TAP_EQ_INT(relay_policy_defer(1000, 900, 1, 200, &next), 0,
	    "not yet expired");
	TAP_EQ_INT(next, 1100, "next attempt clipped to the expiry");
	TAP_EQ_INT(relay_policy_defer(1100, 900, 2, 200, &next), 1,
	    "expired at created + max_queue_time");
	TAP_EQ_INT(relay_policy_defer(5000, 900, 2, 200, &next), 1,
	    "expired long ago");
}

static void
stuff(const char *in, size_t chunk, struct buf *out)
{
	struct relay_stuff s;
	size_t len = strlen(in), i, n;

	relay_stuff_init(&s);
	for (i = 0; i < len; i += n) {
		n = len - i < chunk ? len - i : chunk;
		relay_stuff_feed(&s, (const uint8_t *)in + i, n, out);
	}
	relay_stuff_end(&s, out);
	buf_append(out, "", 1);
}

static void
test_stuff(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
		{ ".hidden\r\n", "..hidden\r\n.\r\n" },
		{ "x\r\n.\r\ny\r\n", "x\r\n..\r\ny\r\n.\r\n" },
		{ "x\r\n..\r\n", "x\r\n...\r\n.\r\n" },
		{ "no final crlf", "no final crlf\r\n.\r\n" },
		{ "ends with cr\r", "ends with cr\r\n.\r\n" },
		{ "bare\nlf\n.x\n", "bare\r\nlf\r\n..x\r\n.\r\n" },
		{ "", ".\r\n" },
		{ "a.b\r\n .c\r\n", "a.b\r\n .c\r\n.\r\n" },
	};
	struct buf out;
	size_t i, chunk;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Every chunk size: lines split at every offset. */
		for (chunk = 1; chunk <= 16; chunk++) {
			buf_init(&out, 4096);
			stuff(cases[i].in, chunk, &out);
			if (chunk == 1 || chunk == 16 ||
			    strcmp((char *)out.p, cases[i].want) != 0)
				TAP_EQ_STR((char *)out.p, cases[i].want,
				    "stuff case %zu, chunks of %zu", i, chunk);
			buf_fini(&out);
		}
	}
	TAP_OK(relay_data_has_8bit((const uint8_t *)"caf\xc3\xa9", 5),
	    "8-bit octets found");
	TAP_OK(!relay_data_has_8bit((const uint8_t *)"plain", 5),
	    "7-bit text has none");
}

static const char orig_head[] =
    "Received: from x by y\r\n"
    "From: Alice <alice@a.test>\r\n"
    "To: bob@b.test\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "body line that must not be returned\r\n";

static void
test_dsn(void)
{
	struct relay_dsn_rcpt rc[2] = {
		{ .address = "bob@b.test",
		  .reply = "550 5.1.1 <bob@b.test>: no such user",
		  .remote_mta = "mx.b.test", .last_attempt = 1700000100 },
		{ .address = "carol@c.test",
		  .reply = "Domain c.test does not accept mail (null MX)",
		  .status = "5.1.10", .last_attempt = 1700000100 },
	};
	struct relay_dsn d = {
		.hostname = "mx.a.test", .sender = "alice@a.test",
		.queue_id = "0123456789abcdef", .arrival = 1700000000,
		.now = 1700000200, .unique = "tok123",
		.rcpts = rc, .n_rcpts = 2,
		.orig_head = (const uint8_t *)orig_head,
		.orig_head_len = sizeof(orig_head) - 1,
	};
	struct buf out;
	char st[16];
	const char *s;

	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "DSN built");
	buf_append(&out, "", 1);
	s = (const char *)out.p;
	TAP_OK(strstr(s, "From: MAILER-DAEMON@mx.a.test") != NULL,
	    "from MAILER-DAEMON@hostname");
	TAP_OK(strstr(s, "To: <alice@a.test>\r\n") != NULL, "to the sender");
	TAP_OK(strstr(s, "Content-Type: multipart/report; "
	    "report-type=delivery-status;") != NULL, "multipart/report");
	TAP_OK(strstr(s, "Auto-Submitted: auto-replied\r\n") != NULL,
	    "Auto-Submitted");
	TAP_OK(strstr(s, "Content-Type: message/delivery-status\r\n") != NULL,
	    "delivery-status part");
	TAP_OK(strstr(s, "Reporting-MTA: dns; mx.a.test\r\n") != NULL,
	    "Reporting-MTA");
	TAP_OK(strstr(s, "Final-Recipient: rfc822; bob@b.test\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.b.test\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <bob@b.test>: no such user\r\n")
	    != NULL, "per-recipient block with the remote's reply");
	TAP_OK(strstr(s, "Final-Recipient: rfc822; carol@c.test\r\n"
	    "Action: failed\r\nStatus: 5.1.10\r\n"
	    "Diagnostic-Code: X-Postroom; Domain c.test") != NULL,
	    "local reason with its own status, X-Postroom diagnostic");
	TAP_OK(strstr(s, "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from x by y\r\n") != NULL, "original header returned");
	TAP_OK(strstr(s, "Subject: hello\r\n\r\n--tok123/mx.a.test--\r\n")
	    != NULL, "header part closed by the final boundary");
	TAP_OK(strstr(s, "must not be returned") == NULL,
	    "original body not returned");
	TAP_OK(strstr(s, "<bob@b.test>: host mx.b.test said: 550 5.1.1") !=
	    NULL, "human-readable part names host and reply");
	buf_fini(&out);

	/* Expiry: the reason is the last temporary error. */
	rc[0].reply = "connect to mx.b.test[127.0.0.3]:25: refused";
	rc[0].remote_mta = NULL;
	rc[0].status = NULL;
	d.n_rcpts = 1;
	d.expired = true;
	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "expiry DSN built");
	buf_append(&out, "", 1);
	s = (const char *)out.p;
	TAP_OK(strstr(s, "Status: 4.4.7\r\n") != NULL, "expired: 4.4.7");
	TAP_OK(strstr(s, "time limit") != NULL, "expired: says why");
	buf_fini(&out);

	relay_dsn_status("550 5.1.1 no", false, st);
	TAP_EQ_STR(st, "5.1.1", "enhanced code taken");
	relay_dsn_status("550 4.1.1 mismatched class", false, st);
	TAP_EQ_STR(st, "5.0.0", "enhanced code of the wrong class ignored");
	relay_dsn_status("452 too many", true, st);
	TAP_EQ_STR(st, "4.0.0", "basic code only");
	relay_dsn_status("554", false, st);
	TAP_EQ_STR(st, "5.0.0", "bare code");
	relay_dsn_status("550 5.7.26 dmarc", false, st);
	TAP_EQ_STR(st, "5.7.26", "two-digit detail");
	TAP_EQ_INT(relay_dsn_enhanced("2.0.0 Ok"), 5, "enhanced code length");
	TAP_EQ_INT(relay_dsn_enhanced("5.7.26"), 6, "enhanced code at the end");
	TAP_EQ_INT(relay_dsn_enhanced("5.7. x"), 0, "no detail: no code");
	TAP_EQ_INT(relay_dsn_enhanced("25.0.0 x"), 0, "two-digit class: none");
	TAP_EQ_INT(relay_dsn_enhanced("Ok"), 0, "text: no code");
	TAP_EQ_INT(relay_dsn_head_len((const uint8_t *)orig_head,
	    sizeof(orig_head) - 1), 85, "header length up to the empty line");
}

/* Reports of the other actions (RFC 3464 2.3.3), ENVID and ORCPT, RET=FULL
 * and the RFC 6533 types. */
static void
test_dsn_actions(void)
{
	static const char whole[] = "Subject: hi\r\n\r\nthe body\r\n";
	struct relay_dsn_rcpt rc[3] = {
		{ .address = "bob@b.test", .action = RELAY_DSN_DELIVERED,
		  .orcpt = "rfc822;Bob+old@b.test", .last_attempt = 1 },
		{ .address = "carol@c.test", .action = RELAY_DSN_RELAYED,
		  .remote_mta = "mx.c.test", .reply = "250 2.0.0 queued",
		  .last_attempt = 1 },
		{ .address = "dave@d.test", .action = RELAY_DSN_DELAYED,
		  .remote_mta = "mx.d.test", .reply = "451 4.3.2 later",
		  .last_attempt = 1 },
	};
	struct relay_dsn d = {
		.hostname = "mx.a.test", .sender = "alice@a.test",
		.queue_id = "0123456789abcdef", .arrival = 1, .now = 2,
		.unique = "u1", .envid = "env+1", .rcpts = rc, .n_rcpts = 2,
		.orig_head = (const uint8_t *)orig_head,
		.orig_head_len = sizeof(orig_head) - 1,
	};
	struct buf out;
	const char *s;

	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "success report built");
	buf_append(&out, "", 1);
	s = (const char *)out.p;
	TAP_OK(strstr(s, "Subject: Successful Mail Delivery Report\r\n"),
	    "success subject");
	TAP_OK(strstr(s, "Original-Envelope-Id: env+1\r\n"
	    "Reporting-MTA: dns; mx.a.test\r\n"), "ENVID first (RFC 3464 "
	    "2.2)");
	TAP_OK(strstr(s, "\r\n\r\nOriginal-Recipient: rfc822;Bob+old@b.test"
	    "\r\nFinal-Recipient: rfc822; bob@b.test\r\nAction: delivered"
	    "\r\nStatus: 2.0.0\r\n"), "delivered block with the ORCPT");
	TAP_OK(strstr(s, "Final-Recipient: rfc822; carol@c.test\r\n"
	    "Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; "
	    "mx.c.test\r\n"), "relayed block");
	TAP_OK(strstr(s, "Content-Type: message/delivery-status\r\n"),
	    "ASCII: message/delivery-status");
	buf_fini(&out);

	d.n_rcpts = 3;
	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "mixed report built");
	buf_append(&out, "", 1);
	s = (const char *)out.p;
	TAP_OK(strstr(s, "Subject: Delayed Mail (still being retried)\r\n"),
	    "the gravest action names the subject");
	TAP_OK(strstr(s, "Action: delayed\r\nStatus: 4.3.2\r\n"),
	    "delayed block keeps the 4.x.x status");
	buf_fini(&out);

	/* A delay for our own reason stays of class 4. */
	rc[2].reply = "connect to mx.d.test: refused";
	rc[2].remote_mta = NULL;
	d.rcpts = &rc[2];
	d.n_rcpts = 1;
	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "delay report built");
	buf_append(&out, "", 1);
	TAP_OK(strstr((const char *)out.p, "Status: 4.0.0\r\n"),
	    "our reason: 4.0.0");
	buf_fini(&out);

	/* RET=FULL: the whole message as message/rfc822. */
	rc[0].action = RELAY_DSN_FAILED;
	rc[0].reply = "550 5.1.1 no";
	d.rcpts = rc;
	d.full = true;
	d.orig_head = (const uint8_t *)whole;
	d.orig_head_len = sizeof(whole) - 1;
	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "full report built");
	buf_append(&out, "", 1);
	s = (const char *)out.p;
	TAP_OK(strstr(s, "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: hi\r\n\r\nthe body\r\n\r\n--u1/mx.a.test--\r\n"),
	    "the whole message returned");
	buf_fini(&out);

	/* RFC 6533: UTF-8 addresses make the global types. */
	rc[0].address = "j\xc3\xbcrgen@b.test";
	rc[0].orcpt = "utf-8;j\xc3\xbcrgen@b.test";
	d.full = false;
	d.orig_head = (const uint8_t *)"Subject: \xc3\xbc\r\n\r\n";
	d.orig_head_len = 17;
	buf_init(&out, 1 << 20);
	TAP_EQ_INT(relay_dsn_build(&d, &out), 0, "global report built");
	buf_append(&out, "", 1);
	s = (const char *)out.p;
	TAP_OK(strstr(s, "Content-Type: message/global-delivery-status\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"), "global delivery status");
	TAP_OK(strstr(s, "Final-Recipient: utf-8; j\xc3\xbcrgen@b.test\r\n"),
	    "utf-8 Final-Recipient");
	TAP_OK(strstr(s, "Content-Type: message/global-headers\r\n"),
	    "global headers");
	TAP_OK(strstr(s, "charset=utf-8"), "the text part in UTF-8");
	buf_fini(&out);

	/* Bounded: a report that does not fit is an error, never cut. */
	d.orig_head = (const uint8_t *)orig_head;
	d.orig_head_len = sizeof(orig_head) - 1;
	buf_init(&out, 512);
	TAP_EQ_INT(relay_dsn_build(&d, &out), PR_ENOSPC, "too small: ENOSPC");
	buf_fini(&out);
}

int
main(void)
{
	test_mx_sort();
	test_hostport();
	test_backoff();
	test_stuff();
	test_dsn();
	test_dsn_actions();
	return tap_done();
}
