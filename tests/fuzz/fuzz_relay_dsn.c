/*
 * fuzz_relay_dsn.c - libFuzzer target for the bounce builder
 * (smtpd/relay/relay_dsn.c).
 *
 * What a bounce carries comes from outside: the remote's reply texts,
 * the recipient addresses, the MX host names and the original message's
 * header.  Byte 0 picks flags (expired, our own status, a small output
 * buffer); the rest is split at NUL octets into the envelope sender and
 * up to four (address, reply, remote MTA) triples, and whatever follows
 * the last separator is the original header, NULs and all.  Addresses
 * and sender go through the SMTP address parser first, as they did on
 * their way into the queue; one that it refuses is replaced.
 *
 * Bits 3-4 of byte 0 pick each recipient's action (failed, delayed,
 * delivered, relayed, RFC 3464 2.3.3); the second reply field, read as
 * xtext (RFC 3461 4), is the ENVID, and each address is its own ORCPT.
 *
 * Checks: the build succeeds with an ample buffer (PR_ENOSPC with a
 * small one), the report up to the returned header is CRLF lines of
 * text without control octets (a reply cannot inject a header field or
 * a MIME part), it has its three parts and the closing boundary, the
 * returned header is at most RELAY_DSN_HEAD_MAX, and relay_dsn_status()
 * gives an RFC 3463 code of class 4 or 5 for every reply.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_relay_dsn tests/fuzz/corpus_relay_dsn
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "relay_dsn.h"
#include "xtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define FUZZ_RCPTS 4
#define FUZZ_FIELDS (1 + 3 * FUZZ_RCPTS)

/* RFC 3463 2: class "." subject "." detail, 1 and 1-3 and 1-3 digits. */
static void
fuzz_check_status(const char *s)
{
	size_t i = 0, part, d;

	FUZZ_CHECK(s[0] == '4' || s[0] == '5');
	for (part = 0; part < 3; part++) {
		for (d = 0; isdigit((unsigned char)s[i]); d++)
			i++;
		FUZZ_CHECK(d >= 1 && d <= (part == 0 ? 1u : 3u));
		if (part < 2)
			FUZZ_CHECK(s[i++] == '.');
	}
	FUZZ_CHECK(s[i] == '\0');
}

static size_t
fuzz_count(const uint8_t *p, size_t len, const char *needle)
{
	size_t n = 0, k = strlen(needle);
	const uint8_t *q = p, *end = p + len;

	while ((q = memmem(q, (size_t)(end - q), needle, k)) != NULL) {
		n++;
		q += k;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char field[FUZZ_FIELDS][1024];
	char addrs[FUZZ_RCPTS][ADDR_MAX], sender[ADDR_MAX], st[16];
	char orcpt[FUZZ_RCPTS][ADDR_MAX + 8], envid[101];
	struct relay_dsn_rcpt r[FUZZ_RCPTS];
	struct relay_dsn d;
	struct buf out;
	const uint8_t *p, *end, *nul, *head, *text_end;
	size_t nf = 0, n, i, hl;
	bool clean = true;
	int rc;

	if (size < 1)
		return 0;
	p = data + 1;
	end = data + size;
	while (nf < FUZZ_FIELDS && p < end &&
	    (nul = memchr(p, '\0', (size_t)(end - p))) != NULL) {
		n = (size_t)(nul - p);
		if (n >= sizeof(field[0]))
			n = sizeof(field[0]) - 1;
		memcpy(field[nf], p, n);
		field[nf++][n] = '\0';
		p = nul + 1;
	}
	head = p;
	for (i = nf; i < FUZZ_FIELDS; i++)
		field[i][0] = '\0';
	if (addr_parse_mailbox(field[0], strlen(field[0]), true, sender) < 0)
		strcpy(sender, "alice@example.test");
	memset(&d, 0, sizeof(d));
	d.hostname = "mx.example.test";
	d.sender = sender;
	d.queue_id = "0123456789abcdef";
	d.arrival = (int64_t)data[0] * 86400 * 365;
	d.now = d.arrival + 3600;
	d.unique = "k8Fz2QmV0pXr7LtY";
	d.expired = data[0] & 1;
	for (i = 0; i < FUZZ_RCPTS; i++) {
		const char *a = field[1 + 3 * i], *mta = field[3 + 3 * i];

		if (addr_parse_mailbox(a, strlen(a), true, addrs[i]) < 0)
			strcpy(addrs[i], "bob@remote.test");
		r[i].address = addrs[i];
		r[i].reply = field[2 + 3 * i];
		/* Host names come from DNS answers the resolver checked. */
		r[i].remote_mta = mta[0] != '\0' && addr_domain_valid(mta,
		    strlen(mta), false) ? mta : NULL;
		r[i].status = (data[0] & 2) && i == 0 ? "5.1.10" : NULL;
		r[i].last_attempt = d.now;
		r[i].action = (int)((((unsigned)data[0] >> 3) + i) % 4);
		snprintf(orcpt[i], sizeof(orcpt[i]), "rfc822;%s", addrs[i]);
		r[i].orcpt = orcpt[i];
		relay_dsn_status(r[i].reply, d.expired, st);
		fuzz_check_status(st);
	}
	if (xtext_decode(field[5], strlen(field[5]), false, envid,
	    sizeof(envid)) > 0)
		d.envid = envid;
	d.rcpts = r;
	d.n_rcpts = 1 + (data[0] >> 6);
	d.orig_head = head;
	d.orig_head_len = (size_t)(end - head);
	hl = relay_dsn_head_len(d.orig_head, d.orig_head_len);
	FUZZ_CHECK(hl <= d.orig_head_len);

	buf_init(&out, data[0] & 4 ? 2048 : 4 * 1024 * 1024);
	rc = relay_dsn_build(&d, &out);
	if (data[0] & 4) {
		FUZZ_CHECK(rc == 0 || rc == PR_ENOSPC);
		buf_fini(&out);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	/* Everything before the returned header is ours: text lines. */
	text_end = memmem(out.p, out.len,
	    "Content-Description: Message Headers\r\n",
	    strlen("Content-Description: Message Headers\r\n"));
	FUZZ_CHECK(text_end != NULL);
	for (p = out.p; p < text_end; p++) {
		if (*p == '\n')
			FUZZ_CHECK(p > out.p && p[-1] == '\r');
		else if (*p == '\r')
			FUZZ_CHECK(p + 1 < text_end && p[1] == '\n');
		else if (*p < 0x20 && *p != '\t')
			clean = false;
		else if (*p == 0x7f)
			clean = false;
	}
	FUZZ_CHECK(clean);
	/* The parts: notification, report, header, and the end. */
	if (memmem(head, d.orig_head_len, d.unique, strlen(d.unique)) ==
	    NULL) {
		FUZZ_CHECK(fuzz_count(out.p, out.len,
		    "\r\n--k8Fz2QmV0pXr7LtY/mx.example.test\r\n") == 3);
		FUZZ_CHECK(fuzz_count(out.p, out.len,
		    "\r\n--k8Fz2QmV0pXr7LtY/mx.example.test--\r\n") == 1);
	}
	FUZZ_CHECK(out.len >= 2 && out.p[out.len - 2] == '\r' &&
	    out.p[out.len - 1] == '\n');
	/* The returned header is bounded. */
	FUZZ_CHECK((size_t)(out.p + out.len - text_end) <=
	    RELAY_DSN_HEAD_MAX + 512);
	buf_fini(&out);
	return 0;
}
