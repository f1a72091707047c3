/*
 * test_milter.c - the milter client core against a scripted filter:
 * negotiation (skipped and no-reply steps), every reply and change, the
 * bounds on what a filter sends; the filter's bytes whole and one octet
 * at a time.  Then the header edits (milter_head_apply).
 */
#include <stdlib.h>
#include <string.h>

#include "milter.h"
#include "tap.h"

/* A filter script: what it negotiates and what it answers to each
 * command octet of the MTA ('C', 'H', 'M', 'R', 'T', 'L', 'N', 'B',
 * 'E'); a command without an entry gets SMFIR_CONTINUE, except the
 * MTA-only 'D', 'A' and 'Q'. */
struct script {
	uint32_t actions, proto;
	char cmd[8];           /* answered with reply[i] */
	const char *reply[8];  /* "x" packets: see pkt() */
	size_t reply_len[8];
	/* Seen from the MTA. */
	char seen[256];
	size_t n_seen;
	unsigned n_body;
	char macros[1024];
};

static void
pkt(struct buf *b, char cmd, const void *d, size_t n)
{
	uint8_t h[5];
	uint32_t l = (uint32_t)n + 1;

	h[0] = (uint8_t)(l >> 24);
	h[1] = (uint8_t)(l >> 16);
	h[2] = (uint8_t)(l >> 8);
	h[3] = (uint8_t)l;
	h[4] = (uint8_t)cmd;
	buf_append(b, h, 5);
	buf_append(b, d, n);
}

static void
be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Answers the MTA's packets in out[0..len); appends replies to rb. */
static void
script_answer(struct script *s, const uint8_t *out, size_t len,
    struct buf *rb)
{
	size_t pos = 0, i;

	while (pos + 5 <= len) {
		uint32_t l = (uint32_t)out[pos] << 24 |
		    (uint32_t)out[pos + 1] << 16 | (uint32_t)out[pos + 2] << 8 |
		    out[pos + 3];
		char cmd = (char)out[pos + 4];
		const uint8_t *d = out + pos + 5;
		bool answered = false;

		if (s->n_seen + 1 < sizeof(s->seen))
			s->seen[s->n_seen++] = cmd;
		if (cmd == 'B')
			s->n_body++;
		if (cmd == 'D') {
			size_t k;

			size_t ml = strlen(s->macros);

			for (k = 1; k < l - 1 && ml + 2 < sizeof(s->macros);
			    k++)
				s->macros[ml++] = d[k] ? (char)d[k] : '|';
			s->macros[ml] = '\0';
		}
		if (cmd == 'O') {
			uint8_t o[12];

			be32(o, 6);
			be32(o + 4, s->actions);
			be32(o + 8, s->proto);
			pkt(rb, 'O', o, 12);
			answered = true;
		}
		for (i = 0; !answered && i < 8 && s->cmd[i]; i++)
			if (s->cmd[i] == cmd) {
				buf_append(rb, s->reply[i], s->reply_len[i]);
				answered = true;
			}
		if (!answered && cmd != 'D' && cmd != 'Q' && cmd != 'A' &&
		    !((cmd == 'C' &&
		    (s->proto & 0x1000)) || (cmd == 'H' && (s->proto &
		    0x2000)) || (cmd == 'M' && (s->proto & 0x4000)) ||
		    (cmd == 'R' && (s->proto & 0x8000)) || (cmd == 'T' &&
		    (s->proto & 0x10000)) || (cmd == 'L' && (s->proto &
		    0x80)) || (cmd == 'N' && (s->proto & 0x40000)) ||
		    (cmd == 'B' && (s->proto & 0x80000))))
			pkt(rb, 'c', NULL, 0);
		pos += 4 + l;
	}
}

static const char *rcpts[] = { "a@x.test", "b@y.test" };

static struct milter_env
env_default(void)
{
	struct milter_env e;

	memset(&e, 0, sizeof(e));
	e.hostname = "mx.test";
	e.daemon_name = "postroom";
	e.client_addr = "192.0.2.1";
	e.client_port = 4242;
	e.family = 4;
	e.helo = "client.test";
	e.queue_id = "abc123";
	e.sender = "s@z.test";
	e.body_max = 1 << 20;
	return e;
}

/* The filter's side of one step: answers what the MTA sent and feeds
 * the replies until the step is answered; msg[*off..msg_len) is what is
 * left of the message; bytewise feeds one octet at a time. */
static void
pump(struct milter_conv *c, struct script *s, struct buf *rb,
    const char *msg, size_t msg_len, size_t *off, bool bytewise)
{
	size_t guard = 0;

	for (;;) {
		struct buf *out = milter_conv_out(c);

		script_answer(s, out->p, out->len, rb);
		buf_reset(out);
		if (milter_conv_event(c) == MILTER_EV_DONE || guard++ > 100000)
			return;
		if (milter_conv_event(c) == MILTER_EV_DATA) {
			size_t n = msg_len - *off;

			if (n > 65535)
				n = 65535;
			milter_conv_data(c, (const uint8_t *)msg + *off, n,
			    *off + n == msg_len);
			*off += n;
			continue;
		}
		if (rb->len == 0)
			return;
		if (bytewise) {
			size_t i = 0;

			while (i < rb->len && milter_conv_event(c) ==
			    MILTER_EV_NONE && milter_conv_out(c)->len == 0)
				i += milter_conv_feed(c, rb->p + i, 1);
			buf_consume(rb, i);
		} else {
			buf_consume(rb, milter_conv_feed(c, rb->p, rb->len));
		}
	}
}

/* Runs a session of one message over msg as smtpd/smtp_milter.c does,
 * step by step, to the first step refused; then QUIT.  Returns the
 * conversation, the result being that of its last step. */
static struct milter_conv *
run(const struct milter_env *e, struct script *s, const char *msg,
    size_t msg_len, bool bytewise)
{
	static const enum milter_cmd steps[] = { MILTER_CMD_CONNECT,
	    MILTER_CMD_HELO, MILTER_CMD_MAIL, MILTER_CMD_RCPT,
	    MILTER_CMD_RCPT, MILTER_CMD_DATA, MILTER_CMD_MESSAGE };
	struct milter_conv *c;
	struct buf rb;
	size_t off = 0, i;

	buf_init(&rb, 1 << 24);
	if (milter_conv_new(e, &c) != 0)
		return NULL;
	pump(c, s, &rb, msg, msg_len, &off, bytewise);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		enum milter_verdict v;

		if (milter_conv_event(c) != MILTER_EV_DONE)
			break;
		milter_conv_step(c, steps[i], i == 3 ? rcpts[0] : i == 4 ?
		    rcpts[1] : NULL);
		pump(c, s, &rb, msg, msg_len, &off, bytewise);
		v = milter_conv_result(c)->verdict;
		if (v == MILTER_REJECT || v == MILTER_TEMPFAIL ||
		    v == MILTER_FAILED)
			break;
	}
	if (milter_conv_event(c) == MILTER_EV_DONE)
		milter_conv_quit(c);
	script_answer(s, milter_conv_out(c)->p, milter_conv_out(c)->len, &rb);
	buf_reset(milter_conv_out(c));
	buf_fini(&rb);
	return c;
}

static void
reply(struct script *s, int i, char on, const struct buf *b)
{
	s->cmd[i] = on;
	s->reply[i] = (const char *)b->p;
	s->reply_len[i] = b->len;
}

static const char MSG[] = "From: a@b.test\r\nSubject: hi\r\n"
    "X-Fold: one\r\n two\r\n\r\nbody line\r\n";

static void
test_continue_all(bool bytewise)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;

	memset(&s, 0, sizeof(s));
	c = run(&e, &s, MSG, strlen(MSG), bytewise);
	TAP_OK(c != NULL && milter_conv_event(c) == MILTER_EV_DONE,
	    "continue: done (bytewise %d)", bytewise);
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_CONTINUE,
	    "continue: verdict");
	/* HELO has no macros here (no TLS). */
	s.seen[s.n_seen] = '\0';
	TAP_EQ_STR(s.seen, "ODCHDMDRDRDTLLLNBDEQ",
	    "continue: the steps in order");
	TAP_OK(strstr(s.macros, "{client_addr}|192.0.2.1") != NULL &&
	    strstr(s.macros, "j|mx.test") != NULL &&
	    strstr(s.macros, "{rcpt_addr}|b@y.test") != NULL &&
	    strstr(s.macros, "i|abc123") != NULL,
	    "continue: macros %s", s.macros);
	milter_conv_free(&c);
}

static void
test_skips(void)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;

	memset(&s, 0, sizeof(s));
	/* No connect, helo, rcpt, body; no reply to headers and mail. */
	s.proto = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NORCPT |
	    SMFIP_NOBODY | SMFIP_NR_HDR | SMFIP_NR_MAIL | SMFIP_NODATA;
	c = run(&e, &s, MSG, strlen(MSG), false);
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_CONTINUE,
	    "skips: verdict");
	s.seen[s.n_seen] = '\0';
	TAP_EQ_STR(s.seen, "ODMLLLNDEQ", "skips: only what was asked");
	milter_conv_free(&c);
}

static void
test_verdict(char on, char r, enum milter_verdict want, const char *name)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;
	struct buf b;

	memset(&s, 0, sizeof(s));
	buf_init(&b, 1024);
	pkt(&b, r, NULL, 0);
	reply(&s, 0, on, &b);
	c = run(&e, &s, MSG, strlen(MSG), false);
	TAP_EQ_INT(milter_conv_result(c)->verdict, want, "%s", name);
	s.seen[s.n_seen] = '\0';
	TAP_OK(want == MILTER_FAILED || s.seen[s.n_seen - 1] == 'Q',
	    "%s: QUIT last (%s)", name, s.seen);
	milter_conv_free(&c);
	buf_fini(&b);
}

static void
test_replycode(const char *code, enum milter_verdict want, int wcode,
    const char *wenh, const char *wtext)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;
	const struct milter_result *res;
	struct buf b;

	memset(&s, 0, sizeof(s));
	buf_init(&b, 4096);
	pkt(&b, 'y', code, strlen(code) + 1);
	reply(&s, 0, 'E', &b);
	c = run(&e, &s, MSG, strlen(MSG), false);
	res = milter_conv_result(c);
	TAP_EQ_INT(res->verdict, want, "replycode %.9s: verdict", code);
	if (want != MILTER_FAILED) {
		TAP_EQ_INT(res->code, wcode, "replycode: code");
		TAP_EQ_STR(res->enh, wenh, "replycode: enh");
		TAP_EQ_STR(res->text, wtext, "replycode: text");
	}
	milter_conv_free(&c);
	buf_fini(&b);
}

static void
test_changes(bool bytewise)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;
	const struct milter_result *res;
	struct buf b, out;
	uint8_t d[64];
	size_t hl, body;

	memset(&s, 0, sizeof(s));
	s.actions = 0x1ff;
	buf_init(&b, 1 << 20);
	pkt(&b, 'p', NULL, 0);
	pkt(&b, 'h', "X-Spam\0yes", 11);
	be32(d, 0);
	memcpy(d + 4, "X-Top\0first", 12);
	pkt(&b, 'i', d, 16);
	be32(d, 1);
	memcpy(d + 4, "Subject\0changed", 16);
	pkt(&b, 'm', d, 20);
	be32(d, 1);
	memcpy(d + 4, "X-Fold\0", 8);
	pkt(&b, 'm', d, 12);
	pkt(&b, 'e', "<new@z.test>", 13);
	pkt(&b, '+', "<c@w.test>", 11);
	pkt(&b, '-', "<a@x.test>", 11);
	pkt(&b, 'b', "new ", 4);
	pkt(&b, 'b', "body\r\n", 6);
	pkt(&b, 'q', "looks bad", 10);
	pkt(&b, 'a', NULL, 0);
	reply(&s, 0, 'E', &b);
	c = run(&e, &s, MSG, strlen(MSG), bytewise);
	res = milter_conv_result(c);
	TAP_EQ_INT(res->verdict, MILTER_ACCEPT, "changes: accept (%d)",
	    bytewise);
	TAP_EQ_INT(res->n_edits, 7, "changes: edits");
	TAP_OK(res->body_replaced && res->body.len == 10 &&
	    memcmp(res->body.p, "new body\r\n", 10) == 0, "changes: body");
	TAP_OK(res->quarantine, "changes: quarantine");
	TAP_EQ_STR(res->quarantine_reason, "looks bad", "changes: reason");
	TAP_OK(milter_conv_packets(c) >= 12, "changes: packets counted");
	buf_init(&out, 1 << 16);
	hl = milter_head_len((const uint8_t *)MSG, strlen(MSG), &body);
	TAP_OK(milter_head_apply((const uint8_t *)MSG, hl, res->edits,
	    res->n_edits, res->leadspc, &out) == 0, "changes: applied");
	buf_append(&out, "", 1);
	TAP_EQ_STR((const char *)out.p, "X-Top: first\r\nFrom: a@b.test\r\n"
	    "Subject: changed\r\nX-Spam: yes\r\n", "changes: new header");
	TAP_EQ_INT(res->edits[4].kind, MILTER_CHGFROM, "changes: chgfrom");
	TAP_EQ_STR(res->edits[4].value, "<new@z.test>", "changes: from");
	buf_fini(&out);
	milter_conv_free(&c);
	buf_fini(&b);
}

/* Changes the filter did not negotiate, or at the wrong step. */
static void
test_bad(const char *name, uint32_t actions, char on, char cmd,
    const void *d, size_t n)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;
	struct buf b;

	memset(&s, 0, sizeof(s));
	s.actions = actions;
	buf_init(&b, 1 << 20);
	pkt(&b, cmd, d, n);
	pkt(&b, 'c', NULL, 0);
	reply(&s, 0, on, &b);
	c = run(&e, &s, MSG, strlen(MSG), false);
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_FAILED, "bad: %s",
	    name);
	milter_conv_free(&c);
	buf_fini(&b);
}

static void
test_bounds(void)
{
	struct milter_env e = env_default();
	struct milter_conv *c;
	uint8_t big[5] = { 0x10, 0, 0, 0, 'c' }, zero[4] = { 0, 0, 0, 0 };
	uint8_t o[17] = { 0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0, 0, 0x80,
	    0, 0, 0 };

	milter_conv_new(&e, &c);
	milter_conv_feed(c, big, sizeof(big));
	TAP_EQ_INT(milter_conv_event(c), MILTER_EV_DONE, "bounds: 256 MiB");
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_FAILED,
	    "bounds: failed");
	milter_conv_free(&c);
	milter_conv_new(&e, &c);
	milter_conv_feed(c, zero, sizeof(zero));
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_FAILED,
	    "bounds: zero length");
	milter_conv_free(&c);
	/* A protocol bit never offered. */
	milter_conv_new(&e, &c);
	milter_conv_feed(c, o, sizeof(o));
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_FAILED,
	    "bounds: option not offered");
	milter_conv_free(&c);
	/* A timeout. */
	milter_conv_new(&e, &c);
	milter_conv_fail(c, "timed out");
	TAP_EQ_INT(milter_conv_event(c), MILTER_EV_DONE, "fail: done");
	TAP_EQ_STR(milter_conv_result(c)->error, "timed out", "fail: why");
	milter_conv_free(&c);
}

/* A long body goes in chunks of at most 65535 octets. */
static void
test_chunks(void)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;
	size_t n = 200000, hl = strlen("Subject: x\r\n\r\n");
	char *msg = malloc(n);

	memset(msg, 'a', n);
	memcpy(msg, "Subject: x\r\n\r\n", hl);
	memset(&s, 0, sizeof(s));
	c = run(&e, &s, msg, n, false);
	TAP_EQ_INT(milter_conv_result(c)->verdict, MILTER_CONTINUE,
	    "chunks: verdict");
	TAP_EQ_INT(s.n_body, (n - hl + 65534) / 65535, "chunks: count");
	milter_conv_free(&c);
	free(msg);
}

/* One step of a session and its answer. */
static enum milter_verdict
step(struct milter_conv *c, struct script *s, struct buf *rb,
    enum milter_cmd cmd, const char *arg)
{
	size_t off = 0;

	milter_conv_step(c, cmd, arg);
	pump(c, s, rb, MSG, strlen(MSG), &off, false);
	return milter_conv_result(c)->verdict;
}

/* QUIT, and what the filter saw of the session. */
static const char *
quit_seen(struct milter_conv *c, struct script *s, struct buf *rb)
{
	milter_conv_quit(c);
	script_answer(s, milter_conv_out(c)->p, milter_conv_out(c)->len, rb);
	s->seen[s->n_seen] = '\0';
	return s->seen;
}

/* A new conversation, negotiated, through CONNECT and HELO. */
static struct milter_conv *
greeted(const struct milter_env *e, struct script *s, struct buf *rb)
{
	struct milter_conv *c;
	size_t off = 0;

	milter_conv_new(e, &c);
	pump(c, s, rb, MSG, strlen(MSG), &off, false);
	step(c, s, rb, MILTER_CMD_CONNECT, NULL);
	step(c, s, rb, MILTER_CMD_HELO, NULL);
	return c;
}

/* One conversation serves the session: two messages and one abandoned
 * between them (SMFIC_ABORT at the next MAIL and at an explicit
 * abort); a refusal at connect refuses every MAIL; an accept at HELO
 * lets all through unasked. */
static void
test_session(void)
{
	struct milter_env e = env_default();
	struct script s;
	struct milter_conv *c;
	struct buf rb, b;

	buf_init(&rb, 1 << 20);
	memset(&s, 0, sizeof(s));
	c = greeted(&e, &s, &rb);
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	step(c, &s, &rb, MILTER_CMD_RCPT, "a@x.test");
	step(c, &s, &rb, MILTER_CMD_DATA, NULL);
	TAP_EQ_INT(step(c, &s, &rb, MILTER_CMD_MESSAGE, NULL),
	    MILTER_CONTINUE, "session: first message");
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	step(c, &s, &rb, MILTER_CMD_RCPT, "a@x.test");
	step(c, &s, &rb, MILTER_CMD_ABORT, NULL);
	step(c, &s, &rb, MILTER_CMD_ABORT, NULL);
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	step(c, &s, &rb, MILTER_CMD_RCPT, "b@y.test");
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	step(c, &s, &rb, MILTER_CMD_RCPT, "b@y.test");
	TAP_EQ_INT(step(c, &s, &rb, MILTER_CMD_MESSAGE, NULL),
	    MILTER_CONTINUE, "session: last message");
	TAP_EQ_STR(quit_seen(c, &s, &rb),
	    "ODCHDMDRDTLLLNBDEDMDRADMDRADMDRDTLLLNBDEQ",
	    "session: one abort each, DATA once per message");
	milter_conv_free(&c);

	/* EHLO within a transaction ends it (RFC 5321 4.1.4): SMFIC_ABORT
	 * before the new SMFIC_HELO; a second EHLO outside one, none. */
	memset(&s, 0, sizeof(s));
	c = greeted(&e, &s, &rb);
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	step(c, &s, &rb, MILTER_CMD_RCPT, "a@x.test");
	TAP_EQ_INT(step(c, &s, &rb, MILTER_CMD_HELO, NULL), MILTER_CONTINUE,
	    "helo in a transaction: answered");
	step(c, &s, &rb, MILTER_CMD_HELO, NULL);
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	TAP_EQ_STR(quit_seen(c, &s, &rb), "ODCHDMDRAHHDMAQ",
	    "helo in a transaction: ABORT first, once");
	milter_conv_free(&c);

	/* Refused at connect: every MAIL, nothing more asked. */
	memset(&s, 0, sizeof(s));
	buf_init(&b, 1024);
	pkt(&b, 'y', "554 5.7.1 go away", 18);
	reply(&s, 0, 'C', &b);
	c = greeted(&e, &s, &rb);
	TAP_EQ_INT(step(c, &s, &rb, MILTER_CMD_MAIL, NULL), MILTER_REJECT,
	    "connect refused: MAIL refused");
	TAP_EQ_INT(milter_conv_result(c)->code, 554, "connect refused: code");
	TAP_EQ_STR(milter_conv_result(c)->text, "go away",
	    "connect refused: text");
	TAP_EQ_INT(step(c, &s, &rb, MILTER_CMD_MAIL, NULL), MILTER_REJECT,
	    "connect refused: the next MAIL too");
	TAP_EQ_STR(quit_seen(c, &s, &rb), "ODCQ",
	    "connect refused: nothing more sent");
	milter_conv_free(&c);
	buf_fini(&b);

	/* Accepted at HELO: the session goes through unasked. */
	memset(&s, 0, sizeof(s));
	buf_init(&b, 1024);
	pkt(&b, 'a', NULL, 0);
	reply(&s, 0, 'H', &b);
	c = greeted(&e, &s, &rb);
	step(c, &s, &rb, MILTER_CMD_MAIL, NULL);
	step(c, &s, &rb, MILTER_CMD_RCPT, "a@x.test");
	TAP_EQ_INT(step(c, &s, &rb, MILTER_CMD_MESSAGE, NULL), MILTER_ACCEPT,
	    "accept at HELO: message accepted");
	TAP_EQ_STR(quit_seen(c, &s, &rb), "ODCHQ",
	    "accept at HELO: nothing more sent");
	milter_conv_free(&c);
	buf_fini(&b);
	buf_fini(&rb);
}

/* The wait for a packet: the step's timeout, cut by the deadline. */
static void
test_wait(void)
{
	TAP_EQ_INT(milter_wait_ms(5000, 0, 123456), 5000, "wait: no deadline");
	TAP_EQ_INT(milter_wait_ms(5000, 600000, 1000), 5000,
	    "wait: the step's timeout first");
	TAP_EQ_INT(milter_wait_ms(5000, 600000, 598000), 2000,
	    "wait: cut to the deadline");
	TAP_EQ_INT(milter_wait_ms(5000, 600000, 600000), 0,
	    "wait: deadline reached");
	TAP_EQ_INT(milter_wait_ms(5000, 600000, 700000), 0,
	    "wait: deadline passed");
}

int
main(void)
{
	uint8_t d[40];

	test_continue_all(false);
	test_continue_all(true);
	test_skips();
	test_verdict('C', 'r', MILTER_REJECT, "reject at connect");
	test_verdict('R', 't', MILTER_TEMPFAIL, "tempfail at rcpt");
	test_verdict('E', 'd', MILTER_DISCARD, "discard at eom");
	test_verdict('M', 'a', MILTER_ACCEPT, "accept at mail");
	test_verdict('H', 'x', MILTER_FAILED, "garbage reply");
	test_verdict('L', 'h', MILTER_FAILED, "change before eom");
	test_replycode("550 5.7.1 Spam detected", MILTER_REJECT, 550,
	    "5.7.1", "Spam detected");
	test_replycode("451 4.7.1 Try later", MILTER_TEMPFAIL, 451, "4.7.1",
	    "Try later");
	test_replycode("554-5.7.1 one\r\n554 5.7.1 two", MILTER_REJECT, 554,
	    "5.7.1", "one two");
	test_replycode("550 Spam", MILTER_REJECT, 550, "", "Spam");
	test_replycode("550 4.7.1 wrong class", MILTER_REJECT, 550, "",
	    "wrong class");
	test_replycode("451-5.7.1 wrong\r\n451 4.7.1 class", MILTER_TEMPFAIL,
	    451, "", "wrong class");
	test_replycode("250 2.0.0 ok", MILTER_FAILED, 0, "", "");
	test_replycode("550 5.7.1 a\nb", MILTER_FAILED, 0, "", "");
	test_replycode("550-5.7.1 a\r\n551 5.7.1 b", MILTER_FAILED, 0, "",
	    "");
	test_changes(false);
	test_changes(true);
	test_bad("addheader not negotiated", 0, 'E', 'h', "X\0y", 4);
	test_bad("header name with colon", 0x1ff, 'E', 'h', "X:\0y", 5);
	test_bad("header value with bare CR", 0x1ff, 'E', 'h', "X\0y\rz", 6);
	test_bad("chgfrom unterminated", 0x1ff, 'E', 'e', "<a@b>", 5);
	test_bad("insheader short", 0x1ff, 'E', 'i', "ab", 2);
	memset(d, 0, sizeof(d));
	test_bad("skip not negotiated", 0x1ff, 'B', 's', NULL, 0);
	test_bounds();
	test_chunks();
	test_session();
	test_wait();
	return tap_done();
}
