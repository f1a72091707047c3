/*
 * fuzz_dkim_sign.c - libFuzzer target for DKIM signing input
 * (mailauth/dkim_signer.c, dkim_canon.c, dkim_body.c, dkim_field.c).
 *
 * The message to sign is whatever a client submitted.  Byte 0 picks the
 * header and body canonicalisation, byte 1 seeds how the message is cut
 * into chunks; the rest is the message.  It is signed twice with the
 * same Ed25519 key and time, once whole and once in arbitrary chunks:
 * Ed25519 is deterministic (RFC 8032 5.1.6), so the two DKIM-Signature
 * fields must be identical octet for octet, which checks the streaming
 * header/body split and the streaming body hash against the one-piece
 * path.  The field is checked for shape (RFC 6376 3.5: folded lines,
 * CRLF, the tags in order).  The body hasher runs alone the same way
 * with an l= limit, the header section's fields through both
 * canonicalisations (relaxed is idempotent, RFC 6376 3.4.2), and the
 * From: domain extraction.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_dkim_sign -dict=tests/fuzz/dkim_sign.dict \
 *	    tests/fuzz/corpus_dkim_sign
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dkim_body.h"
#include "dkim_canon.h"
#include "dkim_field.h"
#include "dkim_key.h"
#include "dkim_signer.h"
#include "err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static struct dkim_key *fuzz_key;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pr_err err;

	(void)argc;
	(void)argv;
	FUZZ_CHECK(dkim_key_generate("example.test", "fuzz", true, &fuzz_key,
	    &err) == 0);
	return 0;
}

static uint32_t
fuzz_rand(uint32_t *rng)
{
	*rng = *rng * 1103515245u + 12345u;
	return *rng >> 16;
}

/* Signs msg[0..len), fed in chunks when rng is not NULL.  Returns the
 * result of finish; the field is in out. */
static int
fuzz_sign(enum dkim_canon hc, enum dkim_canon bc, const uint8_t *msg,
    size_t len, uint32_t *rng, struct buf *out)
{
	struct dkim_signer *s;
	struct pr_err err;
	size_t off = 0, n;
	int r, fr = 0;
	bool fed = false;

	FUZZ_CHECK(dkim_signer_new(fuzz_key, &s) == 0);
	FUZZ_CHECK(dkim_signer_set_canon(s, hc, bc) == 0);
	while (off < len || (off == 0 && rng == NULL)) {
		n = len - off;
		if (rng != NULL) {
			n = fuzz_rand(rng) % 67;
			if (n > len - off)
				n = len - off;
		}
		r = dkim_signer_feed(s, msg + off, n);
		FUZZ_CHECK(r == 0 || r == PR_ENOSPC);
		if (r < 0 && fr == 0)
			fr = r;
		off += n;
		fed = true;
		if (rng == NULL)
			break;
	}
	/* A feed after the first one may not change the canonicalisation. */
	FUZZ_CHECK(dkim_signer_set_canon(s, hc, bc) == (fed ? PR_EINVAL : 0));
	r = dkim_signer_finish(s, 1700000000, out, &err);
	if (fr < 0)
		FUZZ_CHECK(r == PR_ENOSPC);
	FUZZ_CHECK(dkim_signer_finish(s, 1700000000, out, &err) ==
	    PR_EINVAL);
	dkim_signer_free(&s);
	FUZZ_CHECK(s == NULL);
	return r;
}

/* RFC 6376 3.5, 5.4: the field as made here; lines folded before 78
 * columns with a TAB, CRLF at the end. */
static void
fuzz_check_field(const struct buf *f)
{
	static const char *const tags[] = { "v=1;", " a=ed25519-sha256;",
	    " c=", "d=example.test;", " s=fuzz;", " t=1700000000;", "h=",
	    "bh=", "b=" };
	const uint8_t *p = f->p, *end = f->p + f->len, *lf;
	size_t i, col;

	FUZZ_CHECK(f->len > 16 && memcmp(p, "DKIM-Signature: ", 16) == 0);
	FUZZ_CHECK(end[-2] == '\r' && end[-1] == '\n');
	for (; p < end; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(lf != NULL && lf > p && lf[-1] == '\r');
		col = (size_t)(lf - p) - 1;
		FUZZ_CHECK(col <= 78);
		if (p != f->p)
			FUZZ_CHECK(p[0] == '\t');
		for (i = 0; i < col; i++)
			FUZZ_CHECK(p[i] >= 0x20 ? p[i] < 0x7f : p[i] == '\t');
	}
	p = f->p;
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		p = memmem(p, (size_t)(end - p), tags[i], strlen(tags[i]));
		FUZZ_CHECK(p != NULL);
	}
	/* h= always names from (RFC 6376 5.4), first. */
	FUZZ_CHECK(memmem(f->p, f->len, "h=from", 6) != NULL);
}

static void
fuzz_body(enum dkim_canon c, const uint8_t *b, size_t len, uint64_t limit,
    uint32_t *rng)
{
	uint8_t h1[DKIM_BODY_HASH_LEN], h2[DKIM_BODY_HASH_LEN];
	struct dkim_body *b1, *b2;
	uint64_t l1, l2;
	size_t off, n;

	FUZZ_CHECK(dkim_body_new(c, limit, &b1) == 0);
	FUZZ_CHECK(dkim_body_new(c, limit, &b2) == 0);
	FUZZ_CHECK(dkim_body_feed(b1, b, len) == 0);
	for (off = 0; off < len; off += n) {
		n = 1 + fuzz_rand(rng) % 13;
		if (n > len - off)
			n = len - off;
		FUZZ_CHECK(dkim_body_feed(b2, b + off, n) == 0);
	}
	FUZZ_CHECK(dkim_body_finish(b1, h1, &l1) == 0);
	FUZZ_CHECK(dkim_body_finish(b2, h2, &l2) == 0);
	FUZZ_CHECK(memcmp(h1, h2, sizeof(h1)) == 0 && l1 == l2);
	/* The canonical body never grows by more than CRLF per octet
	 * (a bare LF becomes CRLF) plus a final CRLF. */
	FUZZ_CHECK(l1 <= 2 * (uint64_t)len + 2);
	dkim_body_free(&b1);
	dkim_body_free(&b2);
	FUZZ_CHECK(b1 == NULL && b2 == NULL);
}

static void
fuzz_fields(const uint8_t *head, size_t len)
{
	static struct dkim_field f[DKIM_FIELD_MAX];
	struct buf a, b;
	char dom[256];
	size_t nf, i, k;
	int r;

	nf = dkim_field_split(head, len, f, DKIM_FIELD_MAX);
	FUZZ_CHECK(nf <= DKIM_FIELD_MAX);
	buf_init(&a, 1 << 20);
	buf_init(&b, 1 << 20);
	for (i = 0; i < nf; i++) {
		FUZZ_CHECK(f[i].off + f[i].len <= len);
		FUZZ_CHECK(f[i].name_len <= f[i].len);
		FUZZ_CHECK(memchr(head + f[i].off, ':', f[i].len) != NULL);
		buf_reset(&a);
		FUZZ_CHECK(dkim_canon_header(DKIM_CANON_SIMPLE,
		    head + f[i].off, f[i].len, &a) == 0);
		FUZZ_CHECK(a.len == f[i].len + 2);
		buf_reset(&a);
		FUZZ_CHECK(dkim_canon_header(DKIM_CANON_RELAXED,
		    head + f[i].off, f[i].len, &a) == 0);
		FUZZ_CHECK(a.len >= 3 && a.p[a.len - 2] == '\r' &&
		    a.p[a.len - 1] == '\n');
		/* Lower-case name, a colon, no WSP at either end. */
		for (k = 0; k < a.len && a.p[k] != ':'; k++)
			FUZZ_CHECK(!isupper(a.p[k]));
		FUZZ_CHECK(k < a.len);
		if (a.len > 3)
			FUZZ_CHECK(a.p[a.len - 3] != ' ' &&
			    a.p[a.len - 3] != '\t');
		buf_reset(&b);
		FUZZ_CHECK(dkim_canon_header(DKIM_CANON_RELAXED, a.p,
		    a.len - 2, &b) == 0);
		FUZZ_CHECK(b.len == a.len && memcmp(a.p, b.p, a.len) == 0);
	}
	buf_fini(&a);
	buf_fini(&b);
	r = dkim_field_from_domain(head, len, dom, sizeof(dom));
	FUZZ_CHECK(r == 0 || r == PR_ENOENT);
	if (r == 0) {
		FUZZ_CHECK(dom[0] != '\0' && strlen(dom) < sizeof(dom));
		for (k = 0; dom[k] != '\0'; k++)
			FUZZ_CHECK(!isupper((unsigned char)dom[k]));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum dkim_canon hc, bc;
	struct buf whole, chunked;
	const uint8_t *msg, *sep;
	size_t len, hl;
	uint32_t rng;
	int r1, r2;

	if (size < 2)
		return 0;
	hc = data[0] & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	bc = data[0] & 2 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	rng = data[1];
	msg = data + 2;
	len = size - 2;

	buf_init(&whole, 1 << 16);
	buf_init(&chunked, 1 << 16);
	r1 = fuzz_sign(hc, bc, msg, len, NULL, &whole);
	r2 = fuzz_sign(hc, bc, msg, len, &rng, &chunked);
	FUZZ_CHECK(r1 == r2);
	if (r1 == 0) {
		fuzz_check_field(&whole);
		FUZZ_CHECK(whole.len == chunked.len &&
		    memcmp(whole.p, chunked.p, whole.len) == 0);
	}
	buf_fini(&whole);
	buf_fini(&chunked);

	sep = memmem(msg, len, "\r\n\r\n", 4);
	hl = sep != NULL ? (size_t)(sep - msg) + 2 : len;
	fuzz_fields(msg, hl);
	fuzz_body(bc, msg + hl, len - hl, data[0] & 4 ? DKIM_BODY_NO_LIMIT :
	    (uint64_t)(data[0] >> 3) * 7, &rng);
	return 0;
}
