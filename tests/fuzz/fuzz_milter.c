/*
 * fuzz_milter.c - libFuzzer target for the milter client core
 * (milter/milter_conv.c, milter_head.c).
 *
 * The filter is untrusted: the input is what it sends.  Byte 0 seeds how
 * its bytes are cut into reads and whether the message is long enough
 * for several body chunks and whether an abandoned message comes
 * first; the rest is the filter's byte stream, fed whenever the core
 * waits for it.  The session's steps run as smtpd/smtp_milter.c drives
 * them; at the end the header changes are applied to the message, as
 * delivery would.
 *
 * Besides the sanitizers the target checks the core's contracts: it
 * consumes no more than it was given, its packets are well framed with
 * a body chunk of at most 65535 octets, a reply code is 4xx or 5xx and
 * its text has no line break, and a new header is CRLF lines only.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_milter -dict=tests/fuzz/milter.dict \
 *	    tests/fuzz/corpus_milter
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "milter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* The steps of a session: a message abandoned (seed & 16) by RSET or
 * (seed & 32) a new EHLO, then one to its end. */
static const enum milter_cmd fuzz_steps[] = { MILTER_CMD_CONNECT,
    MILTER_CMD_HELO, MILTER_CMD_MAIL, MILTER_CMD_RCPT, MILTER_CMD_ABORT,
    MILTER_CMD_MAIL, MILTER_CMD_RCPT, MILTER_CMD_RCPT, MILTER_CMD_DATA,
    MILTER_CMD_MESSAGE };
static const char fuzz_head[] = "From: a@b.test\r\nSubject: s\r\n"
    "X-Fold: one\r\n two\r\n\r\n";

static struct buf fuzz_big;

/* The MTA's packets are framed, body chunks bounded. */
static void
fuzz_check_out(const struct buf *out)
{
	size_t pos = 0;

	while (pos < out->len) {
		uint32_t l;

		FUZZ_CHECK(pos + 5 <= out->len);
		l = (uint32_t)out->p[pos] << 24 | (uint32_t)out->p[pos + 1] <<
		    16 | (uint32_t)out->p[pos + 2] << 8 | out->p[pos + 3];
		FUZZ_CHECK(l >= 1 && pos + 4 + l <= out->len);
		if (out->p[pos + 4] == 'B')
			FUZZ_CHECK(l - 1 <= MILTER_CHUNK_MAX);
		pos += 4 + l;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_env e;
	struct milter_conv *c;
	const struct milter_result *res;
	struct buf msg, nh;
	size_t off = 0, moff = 0, hl, body, i;
	unsigned seed;

	if (size < 1)
		return 0;
	seed = data[0];
	data++;
	size--;
	memset(&e, 0, sizeof(e));
	e.hostname = "mx.test";
	e.client_addr = "192.0.2.1";
	e.family = 4;
	e.helo = "h.test";
	e.queue_id = "q1";
	e.sender = "s@z.test";
	e.auth_authen = seed & 1 ? "u@z.test" : NULL;
	e.auth_type = "PLAIN";
	e.body_max = 100000;
	/* The message: the header, then 20 octets of body or 140000 (three
	 * chunks), built once. */
	if (fuzz_big.len == 0) {
		buf_init(&fuzz_big, 1 << 20);
		buf_append(&fuzz_big, fuzz_head, strlen(fuzz_head));
		for (i = 0; i < 140000u; i++)
			buf_append(&fuzz_big, i % 40 == 39 ? "\r\n" : "x",
			    i % 40 == 39 ? 2 : 1);
	}
	msg = fuzz_big;
	if (!(seed & 2))
		msg.len = strlen(fuzz_head) + 20;
	if (milter_conv_new(&e, &c) != 0)
		return 0;
	for (i = 0;;) {
		enum milter_event ev;

		fuzz_check_out(milter_conv_out(c));
		buf_reset(milter_conv_out(c));
		ev = milter_conv_event(c);
		if (ev == MILTER_EV_DONE) {
			if (milter_conv_failed(c) ||
			    i == sizeof(fuzz_steps) / sizeof(fuzz_steps[0]))
				break;
			if (i == 2 && !(seed & 16))
				i = 5;
			/* seed & 32: the abandoned message ends with a new
			 * EHLO instead (RFC 5321 4.1.4). */
			milter_conv_step(c, i == 4 && (seed & 32) ?
			    MILTER_CMD_HELO : fuzz_steps[i], i == 6 ?
			    "b@y.test" : fuzz_steps[i] == MILTER_CMD_RCPT ?
			    "a@x.test" : NULL);
			i++;
			continue;
		}
		if (ev == MILTER_EV_DATA) {
			size_t n = msg.len - moff;

			if (n > MILTER_CHUNK_MAX)
				n = MILTER_CHUNK_MAX;
			milter_conv_data(c, msg.p + moff, n,
			    moff + n == msg.len);
			moff += n;
			continue;
		}
		if (off >= size) {
			milter_conv_fail(c, "end of input");
			continue;
		}
		{
			size_t n = size - off, used;

			/* Reads of 1, 7 or all octets. */
			if (seed & 4)
				n = n < 1 ? n : 1;
			else if (seed & 8)
				n = n < 7 ? n : 7;
			used = milter_conv_feed(c, data + off, n);
			FUZZ_CHECK(used <= n);
			if (used == 0 && milter_conv_event(c) ==
			    MILTER_EV_NONE)
				milter_conv_fail(c, "stuck");
			off += used;
		}
	}
	milter_conv_quit(c);
	fuzz_check_out(milter_conv_out(c));
	res = milter_conv_result(c);
	if (res->verdict == MILTER_REJECT || res->verdict ==
	    MILTER_TEMPFAIL) {
		FUZZ_CHECK(res->code == 0 || (res->code >= 400 &&
		    res->code < 600));
		for (i = 0; res->text[i] != '\0'; i++)
			FUZZ_CHECK(res->text[i] >= 0x20 && res->text[i] < 0x7f);
	}
	if (res->body_replaced)
		FUZZ_CHECK(res->body.len <= e.body_max);
	hl = milter_head_len(msg.p, msg.len, &body);
	buf_init(&nh, 4 << 20);
	if (milter_head_apply(msg.p, hl, res->edits, res->n_edits,
	    res->leadspc, &nh) == 0) {
		for (i = 0; i < nh.len; i++)
			if (nh.p[i] == '\n')
				FUZZ_CHECK(i > 0 && nh.p[i - 1] == '\r');
			else if (nh.p[i] == '\r')
				FUZZ_CHECK(i + 1 < nh.len &&
				    nh.p[i + 1] == '\n');
		FUZZ_CHECK(nh.len == 0 || nh.p[nh.len - 1] == '\n');
	}
	buf_fini(&nh);
	milter_conv_free(&c);
	return 0;
}
