/*
 * test_dkim_canon.c - DKIM canonicalisation: the header algorithms
 * (RFC 6376 3.4.1, 3.4.2) and the streaming body hash (3.4.3, 3.4.4,
 * l= of 3.5), with the example of RFC 6376 3.4.5.  Every body case runs
 * whole, one octet per feed, and split at every offset.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "dkim_body.h"
#include "dkim_canon.h"
#include "dkim_field.h"
#include "err.h"
#include "tap.h"

/* RFC 6376 3.4.5: "A: <SP> X <CRLF> B <SP> : <SP> Y <HTAB><CRLF> <HTAB>
 * Z <SP><SP><CRLF> <CRLF> <SP> C <SP><CRLF> D <SP><HTAB><SP> E <CRLF>
 * <CRLF> <CRLF>" */
static const char rfc_head[] = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
static const char rfc_body[] = " C \r\nD \t E\r\n\r\n\r\n";

static const char rfc_head_relaxed[] = "a:X\r\nb:Y Z\r\n";
static const char rfc_head_simple[] = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
static const char rfc_body_relaxed[] = " C\r\nD E\r\n";
static const char rfc_body_simple[] = " C \r\nD \t E\r\n";

/* dkim_field.h: a line without a colon is skipped, also one with WSP in
 * it (found by fuzz_dkim_sign); WSP before the colon is still a field
 * (RFC 5322 4.5). */
static void
test_split_no_colon(void)
{
	static const char head[] = "From junk\r\nA\tb\r\n:c\r\n"
	    "B : Y\r\n";
	struct dkim_field f[16];
	size_t nf;

	nf = dkim_field_split((const uint8_t *)head, strlen(head), f, 16);
	TAP_EQ_INT(nf, 1, "lines without a colon or a name are no fields");
	TAP_EQ_INT(nf == 1 ? f[0].name_len : 0, 1, "\"B : Y\" is named B");
}

static void
test_header(enum dkim_canon c, const char *head, const char *want)
{
	struct dkim_field f[16];
	struct buf out;
	size_t nf, i;

	buf_init(&out, 4096);
	nf = dkim_field_split((const uint8_t *)head, strlen(head), f, 16);
	for (i = 0; i < nf; i++)
		dkim_canon_header(c, (const uint8_t *)head + f[i].off,
		    f[i].len, &out);
	buf_append(&out, "", 1);
	TAP_EQ_INT(nf, 2, "RFC 6376 3.4.5 %s: two fields",
	    dkim_canon_name(c));
	TAP_EQ_STR((char *)out.p, want, "RFC 6376 3.4.5 header, %s",
	    dkim_canon_name(c));
	buf_fini(&out);
}

/* Hashes body[0..len) with at most limit canonical octets, fed in
 * pieces of step octets after a first one of first octets. */
static int
body_hash(enum dkim_canon c, uint64_t limit, const char *body, size_t len,
    size_t first, size_t step, uint8_t *hash, uint64_t *total)
{
	struct dkim_body *b;
	size_t i = 0, n;
	int r;

	if (dkim_body_new(c, limit, &b) < 0)
		return -1;
	n = first < len ? first : len;
	r = dkim_body_feed(b, (const uint8_t *)body, n);
	for (i = n; r == 0 && i < len; i += n) {
		n = len - i < step ? len - i : step;
		r = dkim_body_feed(b, (const uint8_t *)body + i, n);
	}
	if (r == 0)
		r = dkim_body_finish(b, hash, total);
	dkim_body_free(&b);
	return r;
}

/* Checks that body canonicalises to want (its hash and length), fed
 * whole, trickled and split at every offset; l= limits included. */
static void
test_body(enum dkim_canon c, const char *name, const char *body,
    size_t len, const char *want)
{
	uint8_t got[DKIM_BODY_HASH_LEN], exp[DKIM_BODY_HASH_LEN];
	size_t wlen = strlen(want), off;
	uint64_t total = 0;
	bool ok;

	EVP_Digest(want, wlen, exp, NULL, EVP_sha256(), NULL);
	ok = body_hash(c, DKIM_BODY_NO_LIMIT, body, len, len, len, got,
	    &total) == 0 && memcmp(got, exp, sizeof(exp)) == 0;
	TAP_OK(ok, "%s, %s: whole", name, dkim_canon_name(c));
	TAP_EQ_INT(total, wlen, "%s, %s: canonical length", name,
	    dkim_canon_name(c));
	ok = body_hash(c, DKIM_BODY_NO_LIMIT, body, len, 1, 1, got,
	    NULL) == 0 && memcmp(got, exp, sizeof(exp)) == 0;
	TAP_OK(ok, "%s, %s: trickle", name, dkim_canon_name(c));
	ok = true;
	for (off = 0; off <= len; off++)
		if (body_hash(c, DKIM_BODY_NO_LIMIT, body, len, off, len, got,
		    NULL) != 0 || memcmp(got, exp, sizeof(exp)) != 0)
			ok = false;
	TAP_OK(ok, "%s, %s: split at every offset", name,
	    dkim_canon_name(c));

	/* RFC 6376 3.5 l=: the first l octets of the canonical body. */
	ok = true;
	for (off = 0; off <= wlen + 1; off++) {
		EVP_Digest(want, off < wlen ? off : wlen, exp, NULL,
		    EVP_sha256(), NULL);
		if (body_hash(c, off, body, len, 3, 2, got, &total) != 0 ||
		    memcmp(got, exp, sizeof(exp)) != 0 || total != wlen)
			ok = false;
	}
	TAP_OK(ok, "%s, %s: every l= limit", name, dkim_canon_name(c));
}

static void
test_bodies(void)
{
	static const struct {
		const char *name, *body, *relaxed, *simple;
	} cases[] = {
		{ "empty body", "", "", "\r\n" },
		{ "only empty lines", "\r\n\r\n\r\n", "", "\r\n" },
		{ "only WSP lines", " \r\n\t\r\n", "", " \r\n\t\r\n" },
		{ "no final CRLF", "a  b", "a b\r\n", "a  b\r\n" },
		{ "WSP at the end, no CRLF", "a \t", "a\r\n", "a \t\r\n" },
		{ "bare LF as CRLF", "x \n\ny\n\n", "x\r\n\r\ny\r\n",
		    "x \r\n\r\ny\r\n" },
		{ "bare CR is content", "a\rb\r\n", "a\rb\r\n", "a\rb\r\n" },
		{ "CR at the very end", "a\r", "a\r\r\n", "a\r\r\n" },
		{ "inner empty lines kept", "a\r\n\r\n \r\nb\r\n\r\n",
		    "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n \r\nb\r\n" },
		{ "leading WSP", "  x\r\n", " x\r\n", "  x\r\n" },
	};
	size_t i;

	test_body(DKIM_CANON_RELAXED, "RFC 6376 3.4.5 body", rfc_body,
	    strlen(rfc_body), rfc_body_relaxed);
	test_body(DKIM_CANON_SIMPLE, "RFC 6376 3.4.5 body", rfc_body,
	    strlen(rfc_body), rfc_body_simple);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_body(DKIM_CANON_RELAXED, cases[i].name, cases[i].body,
		    strlen(cases[i].body), cases[i].relaxed);
		test_body(DKIM_CANON_SIMPLE, cases[i].name, cases[i].body,
		    strlen(cases[i].body), cases[i].simple);
	}
}

static void
test_body_misuse(void)
{
	uint8_t h[DKIM_BODY_HASH_LEN];
	struct dkim_body *b = NULL;

	TAP_EQ_INT(dkim_body_new(DKIM_CANON_RELAXED, DKIM_BODY_NO_LIMIT, &b),
	    0, "body: new");
	TAP_EQ_INT(dkim_body_finish(b, h, NULL), 0, "body: finish");
	TAP_EQ_INT(dkim_body_feed(b, (const uint8_t *)"x", 1), PR_ETLS,
	    "body: feed after finish fails");
	dkim_body_free(&b);
	TAP_OK(b == NULL, "body: free sets NULL");
	dkim_body_free(&b);
}

static void
test_header_cases(void)
{
	static const struct {
		const char *field, *relaxed;
	} cases[] = {
		{ "Subject:   Lunch \t plans", "subject:Lunch plans" },
		{ "SUBJECT :x", "subject:x" },
		{ "To: a,\r\n\tb \r\n c", "to:a, b c" },
		{ "X-Empty:", "x-empty:" },
		{ "X-Empty:  \t ", "x-empty:" },
	};
	struct buf out;
	size_t i;

	buf_init(&out, 4096);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&out);
		dkim_canon_header(DKIM_CANON_RELAXED,
		    (const uint8_t *)cases[i].field, strlen(cases[i].field),
		    &out);
		TAP_OK(out.len >= 2 && memcmp(out.p + out.len - 2, "\r\n",
		    2) == 0, "relaxed %zu ends in CRLF", i);
		out.len -= 2;
		buf_append(&out, "", 1);
		TAP_EQ_STR((char *)out.p, cases[i].relaxed, "relaxed %zu", i);
		buf_reset(&out);
		dkim_canon_header(DKIM_CANON_SIMPLE,
		    (const uint8_t *)cases[i].field, strlen(cases[i].field),
		    &out);
		TAP_OK(out.len == strlen(cases[i].field) + 2 &&
		    memcmp(out.p, cases[i].field, out.len - 2) == 0,
		    "simple %zu unchanged", i);
	}
	/* A bounded buffer that is too small is an error, not an
	 * overflow. */
	buf_fini(&out);
	buf_init(&out, 8);
	TAP_EQ_INT(dkim_canon_header(DKIM_CANON_RELAXED,
	    (const uint8_t *)"Subject: long", 13, &out), PR_ENOSPC,
	    "relaxed: buffer max honoured");
	TAP_EQ_INT(dkim_canon_header(DKIM_CANON_SIMPLE,
	    (const uint8_t *)"Subject: long", 13, &out), PR_ENOSPC,
	    "simple: buffer max honoured");
	buf_fini(&out);
}

static void
test_parse(void)
{
	static const struct {
		const char *in;
		int r;
		enum dkim_canon h, b;
	} cases[] = {
		{ "relaxed/relaxed", 0, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED },
		{ "relaxed/simple", 0, DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE },
		{ "simple/relaxed", 0, DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED },
		{ "relaxed", 0, DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE },
		{ "simple", 0, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE },
		{ "relaxed/", PR_EINVAL, 0, 0 },
		{ "nowsp/simple", PR_EINVAL, 0, 0 },
		{ "", PR_EINVAL, 0, 0 },
	};
	enum dkim_canon h, b;
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		h = b = (enum dkim_canon)-1;
		r = dkim_canon_parse(cases[i].in, strlen(cases[i].in), &h, &b);
		TAP_EQ_INT(r, cases[i].r, "c=%s", cases[i].in);
		if (r == 0)
			TAP_OK(h == cases[i].h && b == cases[i].b,
			    "c=%s: algorithms", cases[i].in);
	}
}

int
main(void)
{
	test_header(DKIM_CANON_RELAXED, rfc_head, rfc_head_relaxed);
	test_header(DKIM_CANON_SIMPLE, rfc_head, rfc_head_simple);
	test_split_no_colon();
	test_header_cases();
	test_bodies();
	test_body_misuse();
	test_parse();
	return tap_done();
}
