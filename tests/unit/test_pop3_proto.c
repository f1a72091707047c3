/*
 * test_pop3_proto.c - unit tests of the POP3 core that do not fit the
 * dialog format: the body filter against a reference implementation under
 * every kind of chunking, a 20,000-message listing, backpressure, limits,
 * the wiping of credentials, shutdown, the event and completion calls.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pop3_proto.h"
#include "tap.h"

/* --- Helpers ------------------------------------------------------------ */

static struct pop3_config
cfg_plain(void)
{
	struct pop3_config c;

	memset(&c, 0, sizeof(c));
	c.hostname = "pop.example.test";
	c.tls_available = true;
	c.allow_plaintext_auth = true;
	pop3_proto_limits_default(&c.limits);
	return c;
}

/* Moves the core's output to acc (or drops it with acc NULL). */
static void
drain(struct pop3_proto *p, struct buf *acc)
{
	struct buf *o = pop3_proto_out(p);

	if (acc != NULL && buf_append(acc, o->p, o->len) < 0)
		abort();
	buf_reset(o);
}

static ssize_t
feed_str(struct pop3_proto *p, const char *s)
{
	return pop3_proto_feed(p, (const uint8_t *)s, strlen(s));
}

/* A copy of the pending event, if any. */
static bool
next_event(struct pop3_proto *p, struct pop3_event *ev)
{
	const struct pop3_event *e = pop3_proto_event(p);

	if (e == NULL)
		return false;
	*ev = *e;
	return true;
}

/* Answers an AUTH event: the snapshot (taken over) on success. */
static void
auth_done(struct pop3_proto *p, int status, struct pop3_msg *msgs, size_t n)
{
	if (status == 0)
		pop3_proto_maildrop(p, msgs, n);
	else
		free(msgs);
	pop3_proto_complete(p, status);
}

/* Logs in with a snapshot of n messages of the given sizes. */
static struct pop3_proto *
login(const struct pop3_config *c, const struct pop3_msg *msgs, size_t n)
{
	struct pop3_proto *p;
	struct pop3_event ev;
	struct pop3_msg *copy;

	if (pop3_proto_new(c, &p) < 0)
		abort();
	pop3_proto_greet(p);
	drain(p, NULL);
	feed_str(p, "USER u@example.test\r\nPASS pw\r\n");
	if (!next_event(p, &ev) || ev.type != POP3_EV_AUTH)
		abort();
	/* The core takes over a malloc'd snapshot. */
	copy = n > 0 ? malloc(n * sizeof(*copy)) : NULL;
	if (n > 0 && copy == NULL)
		abort();
	if (n > 0)
		memcpy(copy, msgs, n * sizeof(*copy));
	auth_done(p, 0, copy, n);
	drain(p, NULL);
	return p;
}

/* The reference: RFC 1939 dot-stuffing and TOP, byte by byte. */
static void
ref_body(const uint8_t *m, size_t n, long top, struct buf *out)
{
	size_t i, col = 0;
	bool in_header = top >= 0, prev_cr = false;
	long lines = 0;

	for (i = 0; i < n; i++) {
		if (col == 0 && m[i] == '.')
			buf_append(out, ".", 1);
		buf_append(out, &m[i], 1);
		if (m[i] == '\n') {
			bool blank = col == 0 || (col == 1 && prev_cr);

			col = 0;
			prev_cr = false;
			if (top < 0)
				continue;
			if (in_header) {
				if (blank) {
					in_header = false;
					if (top == 0)
						break;
				}
			} else if (++lines >= top) {
				break;
			}
			continue;
		}
		prev_cr = m[i] == '\r';
		col++;
	}
	if (out->len > 0 && out->p[out->len - 1] != '\n')
		buf_append(out, "\r\n", 2);
	buf_append(out, ".\r\n", 3);
}

static uint32_t rng_state = 12345;

static uint32_t
rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* A random message made of pieces that stress the filter. */
static size_t
random_message(uint8_t *m, size_t max)
{
	static const char *const pieces[] = {
		"\r\n", ".", "..", "a", "Subject: x", "\n", "\r", ". \r\n",
		".\r\n", "\r\n\r\n", "body text", "\r\n.\r\n", "From: y",
	};
	size_t n = 0, k, len;

	len = rng() % max;
	while (n < len) {
		const char *s = pieces[rng() % (sizeof(pieces) /
		    sizeof(pieces[0]))];

		k = strlen(s);
		if (n + k > max)
			break;
		memcpy(m + n, s, k);
		n += k;
	}
	return n;
}

/* Runs RETR (top < 0) or TOP on message m, fed in chunks of the given
 * size (0 = random sizes); returns the bytes after the +OK line. */
static int
run_body(const uint8_t *m, size_t n, long top, size_t chunk, struct buf *got)
{
	struct pop3_msg msg;
	struct pop3_config c = cfg_plain();
	struct pop3_proto *p;
	struct pop3_event ev;
	char cmd[64];
	size_t off = 0, k;
	ssize_t r;
	uint8_t *crlf;
	struct buf all;

	memset(&msg, 0, sizeof(msg));
	msg.id = 7;
	msg.size = (int64_t)n;
	snprintf(msg.uidl, sizeof(msg.uidl), "u7");
	p = login(&c, &msg, 1);
	if (top < 0)
		snprintf(cmd, sizeof(cmd), "RETR 1\r\n");
	else
		snprintf(cmd, sizeof(cmd), "TOP 1 %ld\r\n", top);
	feed_str(p, cmd);
	if (!next_event(p, &ev) || ev.type != POP3_EV_BODY ||
	    ev.msg_id != 7 || ev.top_lines != top) {
		pop3_proto_free(&p);
		return -1;
	}
	buf_init(&all, 1 << 24);
	pop3_proto_body_feed(p, (const uint8_t *)"", 0);
	drain(p, &all);
	while (off < n && pop3_proto_body_wanted(p)) {
		k = chunk != 0 ? chunk : 1 + rng() % 97;
		if (k > n - off)
			k = n - off;
		r = pop3_proto_body_feed(p, m + off, k);
		drain(p, &all);
		if (r <= 0) {
			pop3_proto_free(&p);
			buf_fini(&all);
			return -1;
		}
		off += (size_t)r;
	}
	pop3_proto_complete(p, 0);
	drain(p, &all);
	if (pop3_proto_event(p) != NULL) {
		pop3_proto_free(&p);
		buf_fini(&all);
		return -1;
	}
	pop3_proto_free(&p);
	crlf = memmem(all.p, all.len, "\r\n", 2);
	if (crlf == NULL || memcmp(all.p, "+OK ", 4) != 0) {
		buf_fini(&all);
		return -1;
	}
	buf_append(got, crlf + 2, all.len - (size_t)(crlf + 2 - all.p));
	buf_fini(&all);
	return 0;
}

/* --- Tests --------------------------------------------------------------- */

static void
test_body_filter(void)
{
	static uint8_t m[4096];
	static const long tops[] = { -1, 0, 1, 2, 5, 1000 };
	struct buf want, got;
	size_t n, t, chunk;
	int i, bad = 0, runs = 0;

	for (i = 0; i < 300; i++) {
		n = random_message(m, sizeof(m));
		for (t = 0; t < sizeof(tops) / sizeof(tops[0]); t++) {
			buf_init(&want, 1 << 20);
			ref_body(m, n, tops[t], &want);
			for (chunk = 0; chunk < 4; chunk++) {
				size_t sz = chunk == 0 ? 0 : chunk == 1 ? 1 :
				    chunk == 2 ? 2 : n + 1;

				buf_init(&got, 1 << 20);
				runs++;
				if (run_body(m, n, tops[t], sz, &got) < 0 ||
				    got.len != want.len ||
				    memcmp(got.p, want.p, want.len) != 0) {
					if (bad++ == 0)
						printf("# mismatch: message %d "
						    "top %ld chunk %zu\n", i,
						    tops[t], sz);
				}
				buf_fini(&got);
			}
			buf_fini(&want);
		}
	}
	TAP_OK(bad == 0, "body filter matches the reference (%d runs, "
	    "%d bad)", runs, bad);
}

/* A big message streams through a bounded output buffer. */
static void
test_big_message(void)
{
	const size_t size = 8u << 20, chunk = 64 * 1024;
	struct pop3_config c = cfg_plain();
	struct pop3_msg msg = { .id = 1, .size = (int64_t)size, .uidl = "big" };
	struct pop3_proto *p;
	struct pop3_event ev;
	uint8_t *m;
	size_t off = 0, k, maxout = 0, total = 0, i;
	ssize_t r;
	struct buf *o;
	int fails = 0;

	m = malloc(size);
	for (i = 0; i < size; i++)
		m[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' :
		    i % 80 == 0 ? '.' : 'x';
	p = login(&c, &msg, 1);
	feed_str(p, "RETR 1\r\n");
	TAP_OK(next_event(p, &ev) && ev.type == POP3_EV_BODY,
	    "RETR of a big message is a BODY event");
	pop3_proto_body_feed(p, (const uint8_t *)"", 0);
	o = pop3_proto_out(p);
	total += o->len;
	buf_reset(o);
	while (off < size) {
		k = size - off < chunk ? size - off : chunk;
		while (k > 0) {
			r = pop3_proto_body_feed(p, m + off, k);
			if (r <= 0) {
				fails++;
				break;
			}
			if (o->len > maxout)
				maxout = o->len;
			total += o->len;
			buf_reset(o);
			off += (size_t)r;
			k -= (size_t)r;
		}
		if (fails)
			break;
	}
	pop3_proto_complete(p, 0);
	total += o->len;
	buf_reset(o);
	TAP_OK(fails == 0, "8 MiB message fed in 64 KiB chunks");
	TAP_OK(maxout <= 2 * POP3_OUT_STEP + 2,
	    "output per step stays bounded (%zu)", maxout);
	/* Every line starts with a dot: one extra octet per line, plus the
	 * +OK line, a CRLF after the unterminated last line, and ".". */
	TAP_EQ_INT(total, strlen("+OK 8388608 octets\r\n") + size +
	    (size + 79) / 80 + (size % 80 != 0 ? 2 : 0) + 3,
	    "stuffed size is exact");
	pop3_proto_free(&p);
	free(m);
}

/* 20,000 messages list in bounded steps through POP3_EV_MORE. */
static void
test_big_listing(void)
{
	const size_t n = 20000;
	struct pop3_config c = cfg_plain();
	struct pop3_msg *msgs;
	struct pop3_proto *p;
	struct pop3_event ev;
	struct buf all;
	size_t i, lines = 0, maxout = 0, steps = 0;
	const char *cmds[] = { "LIST\r\n", "UIDL\r\n" };
	int j;

	msgs = calloc(n, sizeof(*msgs));
	for (i = 0; i < n; i++) {
		msgs[i].id = (int64_t)i + 100;
		msgs[i].size = (int64_t)(i % 5000) + 10;
		snprintf(msgs[i].uidl, sizeof(msgs[i].uidl),
		    "%032zx", i * 7919);
	}
	p = login(&c, msgs, n);
	free(msgs);
	feed_str(p, "DELE 5\r\n");
	drain(p, NULL);
	for (j = 0; j < 2; j++) {
		buf_init(&all, 8 << 20);
		TAP_EQ_INT(feed_str(p, cmds[j]), 6, "%.4s consumed", cmds[j]);
		steps = 0;
		maxout = pop3_proto_out(p)->len;
		drain(p, &all);
		while (next_event(p, &ev)) {
			if (ev.type != POP3_EV_MORE)
				break;
			pop3_proto_complete(p, 0);
			steps++;
			if (pop3_proto_out(p)->len > maxout)
				maxout = pop3_proto_out(p)->len;
			drain(p, &all);
		}
		TAP_OK(pop3_proto_event(p) == NULL, "%.4s listing completes",
		    cmds[j]);
		for (i = 0, lines = 0; i < all.len; i++)
			lines += all.p[i] == '\n';
		TAP_EQ_INT(lines, n - 1 + 2, "%.4s: +OK, 19999 lines, \".\"",
		    cmds[j]);
		TAP_OK(steps > 10, "%.4s took %zu steps", cmds[j], steps);
		TAP_OK(maxout < 2 * POP3_OUT_STEP, "%.4s step output bounded "
		    "(%zu)", cmds[j], maxout);
		TAP_OK(all.len > 5 && memcmp(all.p + all.len - 5, "\r\n.\r\n",
		    5) == 0, "%.4s ends with the terminator", cmds[j]);
		TAP_OK(memmem(all.p, all.len, "\r\n5 ", 4) == NULL &&
		    memmem(all.p, all.len, "\r\n6 ", 4) != NULL,
		    "%.4s skips the deleted message", cmds[j]);
		if (j == 0)
			TAP_OK(memmem(all.p, all.len, "\r\n20000 5009\r\n",
			    14) != NULL, "LIST has the last size");
		buf_fini(&all);
	}
	pop3_proto_free(&p);
}

/* A client that pipelines without reading does not grow the output. */
static void
test_backpressure(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_msg msg = { .id = 1, .size = 10, .uidl = "x" };
	struct pop3_proto *p;
	struct buf in;
	ssize_t r;
	size_t total = 0;
	int i, rounds = 0;

	buf_init(&in, 1 << 20);
	for (i = 0; i < 10000; i++)
		buf_puts(&in, "STAT\r\n");
	p = login(&c, &msg, 1);
	r = pop3_proto_feed(p, in.p, in.len);
	TAP_OK(r > 0 && (size_t)r < in.len,
	    "feed stops early when the output is full (%zd of %zu)", r, in.len);
	TAP_OK(pop3_proto_out(p)->len <= 2 * POP3_OUT_STEP + 64,
	    "output bounded (%zu)", pop3_proto_out(p)->len);
	TAP_OK(pop3_proto_event(p) == NULL,
	    "not busy: the caller just drains");
	while (r > 0) {
		total += (size_t)r;
		drain(p, NULL);
		rounds++;
		r = pop3_proto_feed(p, in.p + total, in.len - total);
	}
	TAP_EQ_INT(total, in.len, "all input consumed after %d drains",
	    rounds);
	pop3_proto_free(&p);
	buf_fini(&in);
}

/* Limits at max and max + 1, with non-default limits. */
static void
test_limits(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_proto *p;
	struct buf out;
	int i;

	c.limits.line_max = 10; /* "USER abc" + CRLF = 10 */
	c.limits.bad_cmd_max = 3;
	pop3_proto_new(&c, &p);
	pop3_proto_greet(p);
	drain(p, NULL);
	buf_init(&out, 1 << 16);
	feed_str(p, "USER abc\r\n");
	drain(p, &out);
	TAP_OK(out.len > 3 && memcmp(out.p, "+OK", 3) == 0,
	    "line of line_max octets accepted");
	buf_reset(&out);
	feed_str(p, "USER abcd\r\n");
	drain(p, &out);
	TAP_OK(out.len > 4 && memcmp(out.p, "-ERR Line too long", 18) == 0,
	    "line of line_max + 1 octets refused");
	buf_reset(&out);
	feed_str(p, "FOO\r\n");
	drain(p, NULL);
	/* Refused before the LF arrives: 11 octets without a line end. */
	feed_str(p, "XXXXXXXXXXX");
	drain(p, &out);
	TAP_OK(out.len > 4 && memcmp(out.p, "-ERR Too many", 13) == 0,
	    "third bad line (no LF yet) hits bad_cmd_max = 3");
	TAP_EQ_INT(pop3_proto_state(p), POP3_S_CLOSED, "closed");
	TAP_EQ_INT(feed_str(p, "QUIT\r\n"), 0, "nothing read after close");
	buf_fini(&out);
	pop3_proto_free(&p);

	/* auth_fail_max. */
	c = cfg_plain();
	c.limits.auth_fail_max = 2;
	pop3_proto_new(&c, &p);
	pop3_proto_greet(p);
	for (i = 0; i < 2; i++) {
		struct pop3_event ev;

		feed_str(p, "USER u\r\nPASS p\r\n");
		next_event(p, &ev);
		auth_done(p, PR_EAUTH, NULL, 0);
	}
	TAP_EQ_INT(pop3_proto_auth_failures(p), 2, "failures counted");
	TAP_EQ_INT(pop3_proto_state(p), POP3_S_CLOSED,
	    "closed after auth_fail_max");
	pop3_proto_free(&p);
}

/* Passwords are wiped once verified. */
static void
test_secret_wipe(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_proto *p;
	struct pop3_event ev, ev2;
	const char *pass;

	pop3_proto_new(&c, &p);
	pop3_proto_greet(p);
	feed_str(p, "USER u@example.test\r\nPASS hunter2 x\r\n");
	TAP_OK(next_event(p, &ev) && ev.type == POP3_EV_AUTH,
	    "PASS gives an AUTH event");
	TAP_EQ_STR(ev.user, "u@example.test", "event user");
	TAP_EQ_STR(ev.pass, "hunter2 x", "event password, spaces kept");
	TAP_OK(!ev.sasl, "USER/PASS is not SASL");
	TAP_OK(next_event(p, &ev2) && ev2.pass == ev.pass,
	    "the event stays current until completed");
	TAP_EQ_INT(feed_str(p, "NOOP\r\n"), 0, "busy: input not consumed");
	pass = ev.pass;
	auth_done(p, PR_EAUTH, NULL, 0);
	TAP_OK(pass[0] == '\0' && memcmp(pass, "\0\0\0\0\0\0\0\0\0", 9) == 0,
	    "password wiped after verification");
	TAP_OK(pop3_proto_event(p) == NULL, "no event after completion");
	/* A second completion of the same event is ignored. */
	auth_done(p, 0, NULL, 0);
	TAP_EQ_INT(pop3_proto_state(p), POP3_S_AUTHORIZATION,
	    "stray completion ignored");

	feed_str(p, "AUTH PLAIN AHUAc2VjcmV0\r\n");
	TAP_OK(next_event(p, &ev) && ev.type == POP3_EV_AUTH &&
	    ev.sasl, "AUTH PLAIN gives a SASL AUTH event");
	TAP_EQ_STR(ev.user, "u", "SASL user");
	TAP_EQ_STR(ev.pass, "secret", "SASL password");
	auth_done(p, PR_EIO, NULL, 0);
	TAP_OK(ev.pass[0] == '\0', "SASL password wiped");
	pop3_proto_free(&p);
}

static void
test_shutdown(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_msg msg = { .id = 1, .size = 10, .uidl = "x" };
	struct pop3_proto *p;
	struct buf out;

	buf_init(&out, 1 << 16);
	p = login(&c, &msg, 1);
	feed_str(p, "DELE 1\r\n");
	drain(p, NULL);
	pop3_proto_shutdown(p);
	drain(p, &out);
	TAP_OK(out.len > 0 && memcmp(out.p, "-ERR [SYS/TEMP] Server shutting "
	    "down\r\n", out.len) == 0, "idle session told about shutdown");
	TAP_OK(pop3_proto_closing(p) && pop3_proto_event(p) == NULL,
	    "shutdown closes without a COMMIT");
	pop3_proto_free(&p);

	buf_reset(&out);
	p = login(&c, &msg, 1);
	feed_str(p, "RETR 1\r\n");
	pop3_proto_body_feed(p, (const uint8_t *)"", 0);
	pop3_proto_body_feed(p, (const uint8_t *)"Subj", 4);
	drain(p, NULL);
	pop3_proto_shutdown(p);
	drain(p, &out);
	TAP_EQ_INT(out.len, 0, "no reply in the middle of a message");
	pop3_proto_complete(p, 0);
	drain(p, &out);
	TAP_EQ_INT(out.len, 0, "late completion after shutdown ignored");
	TAP_OK(pop3_proto_closing(p) && pop3_proto_event(p) == NULL,
	    "closed");
	pop3_proto_free(&p);
	buf_fini(&out);
}

/* A failed STLS handshake ends the session; a good one restarts it. */
static void
test_stls(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_proto *p;
	struct pop3_event ev;

	c.allow_plaintext_auth = false;
	pop3_proto_new(&c, &p);
	pop3_proto_greet(p);
	drain(p, NULL);
	TAP_EQ_INT(feed_str(p, "STLS\r\nCAPA\r\n"), 6,
	    "STLS consumed, the pipelined CAPA left to the caller");
	TAP_OK(next_event(p, &ev) && ev.type == POP3_EV_STLS,
	    "STLS event");
	pop3_proto_complete(p, PR_ETLS);
	TAP_OK(pop3_proto_closing(p) && pop3_proto_event(p) == NULL,
	    "handshake failure closes");
	pop3_proto_free(&p);

	pop3_proto_new(&c, &p);
	pop3_proto_greet(p);
	feed_str(p, "USER a\r\nSTLS\r\n");
	drain(p, NULL);
	pop3_proto_tls_started(p);
	TAP_OK(pop3_proto_event(p) == NULL, "TLS up, not busy");
	feed_str(p, "PASS x\r\n");
	TAP_OK(pop3_proto_event(p) == NULL,
	    "USER from before TLS forgotten");
	pop3_proto_free(&p);
}

static void
test_commit(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_msg msgs[3] = {
		{ .id = 11, .size = 1, .uidl = "a" },
		{ .id = 22, .size = 2, .uidl = "b" },
		{ .id = 33, .size = 3, .uidl = "c" },
	};
	struct pop3_proto *p;
	struct pop3_event ev;
	struct pop3_stats st;
	struct buf out;

	buf_init(&out, 1 << 16);
	p = login(&c, msgs, 3);
	feed_str(p, "DELE 3\r\nDELE 1\r\nQUIT\r\nNOOP\r\n");
	drain(p, NULL);
	TAP_OK(next_event(p, &ev) && ev.type == POP3_EV_COMMIT,
	    "QUIT gives COMMIT");
	TAP_EQ_INT(ev.n_ids, 2, "two ids");
	TAP_OK(ev.n_ids == 2 && ev.ids[0] == 11 && ev.ids[1] == 33,
	    "store ids in message order");
	TAP_EQ_INT(pop3_proto_state(p), POP3_S_UPDATE, "UPDATE state");
	pop3_proto_complete(p, PR_EIO);
	drain(p, &out);
	TAP_OK(out.len > 0 && strstr((char *)out.p, "-ERR [SYS/TEMP] Some "
	    "deleted messages not removed") == (char *)out.p,
	    "failed commit is -ERR (RFC 1939 6)");
	pop3_proto_stats(p, &st);
	TAP_EQ_INT(st.deleted, 0, "nothing counted as deleted");
	TAP_EQ_STR(st.user, "u@example.test", "stats user");
	pop3_proto_free(&p);

	p = login(&c, msgs, 3);
	feed_str(p, "RETR 2\r\n");
	pop3_proto_body_feed(p, (const uint8_t *)"", 0);
	pop3_proto_body_feed(p, (const uint8_t *)"b\n", 2);
	pop3_proto_complete(p, 0);
	feed_str(p, "DELE 2\r\nQUIT\r\n");
	next_event(p, &ev);
	pop3_proto_complete(p, 0);
	pop3_proto_stats(p, &st);
	TAP_EQ_INT(st.retrieved, 1, "one retrieved");
	TAP_EQ_INT(st.deleted, 1, "one deleted");
	TAP_EQ_INT(st.octets, 2, "octets sent");
	pop3_proto_free(&p);
	buf_fini(&out);
}

/* The event style shared with the SMTP core: greeting on demand, one
 * completion per event, closing as a state. */
static void
test_event_style(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_msg msgs[2] = {
		{ .id = 1, .size = 0, .uidl = "a" },
		{ .id = 2, .size = 5, .uidl = "b" },
	};
	struct pop3_msg *stray;
	struct pop3_proto *p;
	struct buf out;

	buf_init(&out, 1 << 16);
	pop3_proto_new(&c, &p);
	TAP_EQ_INT(pop3_proto_out(p)->len, 0, "nothing before the greeting");
	pop3_proto_greet(p);
	drain(p, &out);
	TAP_OK(out.len > 4 && memcmp(out.p, "+OK pop.example.test POP3 "
	    "server ready\r\n", out.len) == 0, "greeting on demand");
	stray = malloc(sizeof(*stray));
	TAP_EQ_INT(pop3_proto_maildrop(p, stray, 1), PR_EINVAL,
	    "a maildrop without an AUTH event is refused (and freed)");
	pop3_proto_complete(p, 0);
	TAP_EQ_INT(pop3_proto_state(p), POP3_S_AUTHORIZATION,
	    "a completion without an event is ignored");
	pop3_proto_free(&p);

	/* An empty message: the completion alone gives +OK and ".". */
	buf_reset(&out);
	p = login(&c, msgs, 2);
	feed_str(p, "RETR 1\r\n");
	pop3_proto_complete(p, 0);
	drain(p, &out);
	TAP_OK(out.len == 17 && memcmp(out.p, "+OK 0 octets\r\n.\r\n", 17)
	    == 0, "empty message: +OK and the end line");
	/* A read failure before any octet is an -ERR; the session goes on. */
	buf_reset(&out);
	feed_str(p, "RETR 2\r\n");
	pop3_proto_complete(p, PR_EIO);
	drain(p, &out);
	TAP_OK(out.len > 15 && memcmp(out.p, "-ERR [SYS/TEMP] Cannot read "
	    "message 2", 15) == 0, "failure before the body: -ERR");
	TAP_OK(!pop3_proto_closing(p), "and the session goes on");
	/* After some octets it can only close. */
	buf_reset(&out);
	feed_str(p, "RETR 2\r\n");
	pop3_proto_body_feed(p, (const uint8_t *)"ab", 2);
	pop3_proto_complete(p, PR_EIO);
	TAP_OK(pop3_proto_closing(p) && pop3_proto_event(p) == NULL,
	    "failure in the body closes");
	pop3_proto_free(&p);
	buf_fini(&out);
}

/* The glue times a whole command line, an over-long one being discarded
 * included (slowloris): it asks the core whether one has begun. */
static void
test_line_pending(void)
{
	struct pop3_config c = cfg_plain();
	struct pop3_proto *p;
	char longline[400];

	pop3_proto_new(&c, &p);
	pop3_proto_greet(p);
	drain(p, NULL);
	TAP_OK(!pop3_proto_line_pending(p), "no line at first");
	feed_str(p, "CA");
	TAP_OK(pop3_proto_line_pending(p), "a partial command line");
	feed_str(p, "PA\r\n");
	TAP_OK(!pop3_proto_line_pending(p), "none after its end");
	drain(p, NULL);
	memset(longline, 'q', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	feed_str(p, longline);
	TAP_OK(pop3_proto_line_pending(p), "an over-long line being "
	    "discarded");
	feed_str(p, "q");
	TAP_OK(pop3_proto_line_pending(p), "... still, octet by octet");
	feed_str(p, "\r\n");
	TAP_OK(!pop3_proto_line_pending(p), "none after its end");
	pop3_proto_free(&p);
}

int
main(void)
{
	test_body_filter();
	test_big_message();
	test_big_listing();
	test_backpressure();
	test_limits();
	test_secret_wipe();
	test_shutdown();
	test_stls();
	test_commit();
	test_event_style();
	test_line_pending();
	return tap_done();
}
