/*
 * fuzz_relay_client.c - libFuzzer target for the relay's SMTP client
 * (smtpd/relay/relay_client.c, relay_client_reply.c, relay_data.c).
 *
 * The remote server is untrusted: the input is what it sends.  Byte 0
 * picks the session parameters (STARTTLS possible or required, AUTH for
 * a smarthost, SMTPUTF8, 8-bit body, null sender), byte 1 the number of
 * recipients, byte 2 seeds how the server's bytes are cut into reads and
 * how the glue answers events (handshake ok or failed, a connection lost
 * on the way); the rest is the server's byte stream.  The whole session
 * runs as relay_dlv.c drives it: unconsumed bytes are offered again with
 * the next read, input is dropped at STARTTLS (RFC 3207 5), the message
 * is streamed through relay_stuff at EV_BODY, and a lost connection
 * ends in relay_client_abort().
 *
 * Besides the sanitizers the target checks the client's contracts: it
 * consumes no more than it was given, its commands are CRLF lines of the
 * verbs it may send, credentials never go out before TLS, EV_DONE comes
 * once and leaves every recipient decided (R_DONE), the dot-stuffed body
 * ends with CRLF.CRLF and holds no bare LF.  The decided replies then go
 * into a bounce (relay_dsn_build), as relay_settle.c would.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_relay_client \
 *	    -dict=tests/fuzz/relay_client.dict tests/fuzz/corpus_relay_client
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "relay_client.h"
#include "relay_data.h"
#include "relay_dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define FUZZ_RCPTS_MAX 6

/* "alice@example.test" and "secret" in base64, as PLAIN and LOGIN send
 * them (RFC 4616 2, the LOGIN draft). */
#define FUZZ_B64_PLAIN "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="
#define FUZZ_B64_USER "YWxpY2VAZXhhbXBsZS50ZXN0"
#define FUZZ_B64_PASS "c2VjcmV0"

static const char *const fuzz_addrs[FUZZ_RCPTS_MAX] = {
	"bob@remote.test", "carol@remote.test", "d\xc3\xa9@remote.test",
	"eve@remote.test", "x@[192.0.2.7]", "\"a b\"@remote.test",
};

static const char fuzz_msg[] =
    "From: <alice@example.test>\r\n"
    "Subject: fuzz\r\n"
    "\r\n"
    ".leading dot\r\n"
    "bare lf\n"
    ".\r\n"
    "no final newline";

struct fuzz {
	struct relay_client c;
	struct relay_client_params p;
	struct relay_client_rcpt r[FUZZ_RCPTS_MAX];
	uint32_t rng;
	bool done_seen;
	bool closed;
};

static uint32_t
fuzz_rand(struct fuzz *f)
{
	f->rng = f->rng * 1103515245u + 12345u;
	return f->rng >> 16;
}

static bool
fuzz_starts(const uint8_t *line, size_t len, const char *verb)
{
	size_t n = strlen(verb);

	return len >= n && memcmp(line, verb, n) == 0 &&
	    (len == n || line[n] == ' ' || line[n] == ':');
}

/* Every line in out is a command the client may send, CRLF-terminated,
 * and a secret goes out only under TLS. */
static void
fuzz_check_out(struct fuzz *f)
{
	const struct buf *o = &f->c.out;
	static const char *const verbs[] = { "EHLO", "HELO", "STARTTLS",
	    "AUTH", "MAIL FROM", "RCPT TO", "DATA", "QUIT", "." };
	size_t i = 0, k, n;
	bool ok;

	while (i < o->len) {
		const uint8_t *line = o->p + i;
		const uint8_t *lf = memchr(line, '\n', o->len - i);

		FUZZ_CHECK(lf != NULL && lf > line && lf[-1] == '\r');
		n = (size_t)(lf - line) - 1;
		FUZZ_CHECK(memchr(line, '\r', n) == NULL);
		ok = false;
		for (k = 0; k < sizeof(verbs) / sizeof(verbs[0]) && !ok; k++)
			ok = fuzz_starts(line, n, verbs[k]);
		/* PLAIN without an initial response sends it alone after
		 * the 334 (RFC 4954 4); its TLS is checked below. */
		if ((n == strlen(FUZZ_B64_PLAIN) &&
		    memcmp(line, FUZZ_B64_PLAIN, n) == 0) ||
		    (n == strlen(FUZZ_B64_USER) &&
		    memcmp(line, FUZZ_B64_USER, n) == 0) ||
		    (n == strlen(FUZZ_B64_PASS) &&
		    memcmp(line, FUZZ_B64_PASS, n) == 0)) {
			FUZZ_CHECK(f->c.tls_active);
			ok = true;
		}
		FUZZ_CHECK(ok);
		if (fuzz_starts(line, n, "AUTH"))
			FUZZ_CHECK(f->c.tls_active);
		if (n >= strlen(FUZZ_B64_PLAIN) &&
		    memmem(line, n, FUZZ_B64_PLAIN,
		    strlen(FUZZ_B64_PLAIN)) != NULL)
			FUZZ_CHECK(f->c.tls_active);
		i += n + 2;
	}
}

/* Streams the message as relay_dlv.c does, in pieces, and checks the
 * transparency procedure's result (RFC 5321 4.5.2). */
static void
fuzz_body(struct fuzz *f, const uint8_t *extra, size_t extra_len)
{
	struct relay_stuff st;
	struct buf out;
	size_t off = 0, n, i;
	const uint8_t *src;
	size_t len;
	int pass;

	buf_init(&out, 1 << 20);
	relay_stuff_init(&st);
	for (pass = 0; pass < 2; pass++) {
		src = pass == 0 ? (const uint8_t *)fuzz_msg : extra;
		len = pass == 0 ? sizeof(fuzz_msg) - 1 : extra_len;
		for (off = 0; off < len; off += n) {
			n = 1 + fuzz_rand(f) % 97;
			if (n > len - off)
				n = len - off;
			FUZZ_CHECK(relay_stuff_feed(&st, src + off, n, &out) ==
			    0);
		}
	}
	FUZZ_CHECK(relay_stuff_end(&st, &out) == 0);
	FUZZ_CHECK(out.len >= 5 &&
	    memcmp(out.p + out.len - 5, "\r\n.\r\n", 5) == 0);
	for (i = 0; i < out.len; i++) {
		if (out.p[i] == '\n')
			FUZZ_CHECK(i > 0 && out.p[i - 1] == '\r');
		/* A lone "." line only at the very end. */
		if (out.p[i] == '.' && (i == 0 || out.p[i - 1] == '\n') &&
		    i + 3 <= out.len && out.p[i + 1] == '\r' &&
		    out.p[i + 2] == '\n')
			FUZZ_CHECK(i + 3 == out.len);
	}
	buf_fini(&out);
	relay_client_body_done(&f->c);
}

/* After EV_DONE: what the client decided, then the bounce of it. */
static void
fuzz_done(struct fuzz *f)
{
	struct relay_dsn_rcpt dr[FUZZ_RCPTS_MAX];
	struct relay_dsn d;
	struct buf out;
	size_t i, n = 0;

	FUZZ_CHECK(!f->done_seen);
	f->done_seen = true;
	FUZZ_CHECK(f->c.result == RELAY_CLIENT_R_DONE ||
	    f->c.result == RELAY_CLIENT_R_NEXT_HOST);
	for (i = 0; i < f->c.n_rcpts; i++) {
		FUZZ_CHECK(memchr(f->r[i].reply, '\0', RELAY_REPLY_MAX));
		if (f->c.result == RELAY_CLIENT_R_DONE)
			FUZZ_CHECK(f->r[i].status != RELAY_RCPT_PENDING);
		if (f->r[i].status != RELAY_RCPT_PERM)
			continue;
		memset(&dr[n], 0, sizeof(dr[n]));
		dr[n].action = RELAY_DSN_FAILED;
		dr[n].address = f->r[i].address;
		dr[n].reply = f->r[i].reply;
		dr[n].remote_mta = f->c.server_name[0] ? f->c.server_name :
		    NULL;
		dr[n].status = NULL;
		dr[n].last_attempt = 1700000000;
		n++;
	}
	FUZZ_CHECK(memchr(f->c.error, '\0', sizeof(f->c.error)));
	FUZZ_CHECK(memchr(f->c.server_name, '\0', sizeof(f->c.server_name)));
	if (n == 0)
		return;
	memset(&d, 0, sizeof(d));
	d.hostname = "mx.example.test";
	d.sender = "alice@example.test";
	d.queue_id = "0123456789abcdef";
	d.arrival = 1700000000;
	d.now = 1700000100;
	d.unique = "fuzz";
	d.rcpts = dr;
	d.n_rcpts = n;
	d.orig_head = (const uint8_t *)fuzz_msg;
	d.orig_head_len = sizeof(fuzz_msg) - 1;
	buf_init(&out, 1 << 20);
	FUZZ_CHECK(relay_dsn_build(&d, &out) == 0);
	buf_fini(&out);
}

/* Acts on the client's events as relay_dlv_process() does; returns true
 * when buffered input is to be dropped (a TLS handshake began). */
static bool
fuzz_process(struct fuzz *f, unsigned mode, const uint8_t *extra,
    size_t extra_len)
{
	enum relay_client_event ev;
	bool drop = false;
	int guard = 0;

	for (;;) {
		FUZZ_CHECK(++guard < 1000);
		fuzz_check_out(f);
		FUZZ_CHECK(f->c.out.len <= f->c.out.max);
		relay_client_sent(&f->c);
		FUZZ_CHECK(relay_client_timeout_ms(&f->c) > 0);
		FUZZ_CHECK(relay_client_state_name(f->c.state)[0] != '?');
		ev = relay_client_next_event(&f->c);
		switch (ev) {
		case RELAY_CLIENT_EV_NONE:
			return drop;
		case RELAY_CLIENT_EV_STARTTLS:
			FUZZ_CHECK(f->p.tls_possible);
			FUZZ_CHECK(f->c.state == RELAY_CLIENT_S_TLS);
			drop = true;
			relay_client_tls_done(&f->c,
			    (mode & 3) != 0 || fuzz_rand(f) % 4 != 0);
			continue;
		case RELAY_CLIENT_EV_BODY:
			FUZZ_CHECK(f->c.state == RELAY_CLIENT_S_BODY);
			if ((mode & 4) && fuzz_rand(f) % 4 == 0) {
				relay_client_abort(&f->c,
				    "fuzz: lost during the body");
				continue;
			}
			fuzz_body(f, extra, extra_len);
			continue;
		case RELAY_CLIENT_EV_DONE:
			fuzz_done(f);
			continue;
		case RELAY_CLIENT_EV_CLOSE:
			FUZZ_CHECK(f->c.state == RELAY_CLIENT_S_CLOSED);
			f->closed = true;
			return drop;
		}
		FUZZ_CHECK(0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz *f;
	const uint8_t *in;
	size_t len, off = 0, avail = 0, n, i;
	unsigned mode;
	long used;
	int guard = 0;

	if (size < 3)
		return 0;
	f = calloc(1, sizeof(*f));
	FUZZ_CHECK(f != NULL);
	f->p.helo = "mx.example.test";
	f->p.sender = data[0] & 1 ? "" : "alice@example.test";
	f->p.size = 1000u << (data[0] >> 5);
	f->p.body_8bit = data[0] & 2;
	f->p.smtputf8 = (data[0] & 4) != 0;
	f->p.tls_possible = (data[0] & 8) != 0;
	f->p.tls_required = (data[0] & 16) != 0;
	if ((data[0] & 24) == 24) {
		f->p.auth_user = "alice@example.test";
		f->p.auth_pass = "secret";
	}
	n = 1 + data[1] % FUZZ_RCPTS_MAX;
	for (i = 0; i < n; i++)
		f->r[i].address = fuzz_addrs[(i + data[1] / 8) %
		    FUZZ_RCPTS_MAX];
	mode = data[2];
	f->rng = data[2];
	FUZZ_CHECK(relay_client_init(&f->c, &f->p, f->r, n) == 0);
	in = data + 3;
	len = size - 3;
	/* The glue's input buffer holds in[off..off+avail); each read adds
	 * a piece, and what the client leaves is offered again. */
	while (!f->closed && off + avail < len) {
		FUZZ_CHECK(++guard < 1000000);
		n = 1 + fuzz_rand(f) % (mode & 8 ? 7 : 512);
		if (n > len - off - avail)
			n = len - off - avail;
		avail += n;
		if ((mode & 16) && fuzz_rand(f) % 64 == 0) {
			relay_client_abort(&f->c, "fuzz: connection reset");
			(void)fuzz_process(f, mode, in, len);
			break;
		}
		for (;;) {
			used = relay_client_feed(&f->c, in + off, avail);
			if (used < 0) {
				FUZZ_CHECK(used == PR_ENOSPC);
				FUZZ_CHECK(f->c.state ==
				    RELAY_CLIENT_S_CLOSED);
				(void)fuzz_process(f, mode, in, len);
				FUZZ_CHECK(f->closed);
				break;
			}
			FUZZ_CHECK((size_t)used <= avail);
			off += (size_t)used;
			avail -= (size_t)used;
			if (fuzz_process(f, mode, in, len)) {
				off += avail;
				avail = 0;
			}
			if (f->closed || used == 0 || avail == 0)
				break;
		}
		/* A partial line longer than the limit ends the session. */
		if (!f->closed)
			FUZZ_CHECK(avail <= RELAY_CLIENT_LINE_MAX);
	}
	if (!f->closed) {
		/* The server went away: the session is decided all the
		 * same. */
		relay_client_abort(&f->c, "fuzz: connection closed");
		(void)fuzz_process(f, mode, in, len);
		FUZZ_CHECK(f->closed && f->done_seen);
	}
	relay_client_fini(&f->c);
	free(f);
	return 0;
}
