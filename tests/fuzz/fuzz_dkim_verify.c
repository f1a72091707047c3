/*
 * fuzz_dkim_verify.c - libFuzzer target for what a sender or a DNS
 * zone controls on the inbound side: DKIM-Signature fields and key
 * records (mailauth/dkim_verify.c, dkim_tag.c), DMARC records and the
 * From: domain (dmarc.c), and incoming Authentication-Results fields
 * (authres.c).
 *
 * Byte 0 picks the parser; the rest is its input.  The last choice runs
 * the streaming verifier: the input up to the first NUL is the message,
 * fed once whole and once in chunks seeded by byte 1, and what follows
 * the NUL is the key record every lookup gets.  The two runs must give
 * the same results, and every result must name a known RFC 8601 word
 * with NUL-terminated strings.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_dkim_verify -dict=tests/fuzz/dkim_verify.dict \
 *	    tests/fuzz/corpus_dkim_verify
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "buf.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "err.h"
#include "resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define FUZZ_Q_MAX 32

/* A resolver that keeps the queries and answers them all, later, with
 * one TXT record. */
struct fuzz_resolver {
	struct resolver r;
	resolver_cb cb[FUZZ_Q_MAX];
	void *data[FUZZ_Q_MAX];
	size_t n;
};

static int
fuzz_query(struct resolver *r, const char *name, enum resolver_type type,
    resolver_cb cb, void *data)
{
	struct fuzz_resolver *f = (struct fuzz_resolver *)r;

	FUZZ_CHECK(type == RESOLVER_TXT && strlen(name) > 0);
	if (f->n == FUZZ_Q_MAX || strlen(name) > 253)
		return PR_EINVAL;
	f->cb[f->n] = cb;
	f->data[f->n++] = data;
	return 0;
}

static void
fuzz_cancel(struct resolver *r, void *data)
{
	struct fuzz_resolver *f = (struct fuzz_resolver *)r;
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->data[i] == data)
			f->cb[i] = NULL;
}

static const struct resolver_ops fuzz_ops = { fuzz_query, fuzz_cancel };

static void
fuzz_answer(struct fuzz_resolver *f, const uint8_t *txt, size_t len)
{
	const uint8_t *s[16];
	size_t l[16], k = 0, i;
	struct resolver_rr rr;
	struct resolver_answer ans = { RESOLVER_NOERROR, 1, &rr, false, NULL };

	/* Character-strings of at most 255 octets (RFC 1035 3.3.14). */
	for (i = 0; i < len && k < 16; i += 255, k++) {
		s[k] = txt + i;
		l[k] = len - i < 255 ? len - i : 255;
	}
	memset(&rr, 0, sizeof(rr));
	rr.type = RESOLVER_TXT;
	rr.u.txt.n = k;
	rr.u.txt.s = s;
	rr.u.txt.len = l;
	for (i = 0; i < f->n; i++) {
		resolver_cb cb = f->cb[i];

		f->cb[i] = NULL;
		if (cb != NULL)
			cb(f->data[i], &ans);
	}
	f->n = 0;
}

struct fuzz_out {
	int calls;
	size_t n;
	char words[DKIM_VERIFY_REPORT_MAX][16];
};

static void
fuzz_done(void *data, const struct dkim_verify_result *res, size_t n)
{
	struct fuzz_out *o = data;
	size_t i;

	o->calls++;
	FUZZ_CHECK(n <= DKIM_VERIFY_REPORT_MAX);
	o->n = n;
	for (i = 0; i < n; i++) {
		FUZZ_CHECK(memchr(res[i].d, '\0', sizeof(res[i].d)) != NULL);
		FUZZ_CHECK(memchr(res[i].s, '\0', sizeof(res[i].s)) != NULL);
		FUZZ_CHECK(memchr(res[i].b, '\0', sizeof(res[i].b)) != NULL);
		FUZZ_CHECK((res[i].res == DKIM_VERIFY_PASS) ==
		    (res[i].reason == NULL));
		strcpy(o->words[i], dkim_verify_res_name(res[i].res));
	}
}

static void
fuzz_verify(const uint8_t *msg, size_t len, const uint8_t *key,
    size_t klen, uint32_t seed, struct fuzz_out *o)
{
	struct dkim_verify_limits lim = { .now = 1700000000 };
	struct fuzz_resolver f = { .r = { &fuzz_ops } };
	struct dkim_verify *v;
	size_t off, n;

	memset(o, 0, sizeof(*o));
	FUZZ_CHECK(dkim_verify_new(&f.r, &lim, &v) == 0);
	for (off = 0; off < len; off += n) {
		n = len - off;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 61;
			if (n > len - off)
				n = len - off;
		}
		FUZZ_CHECK(dkim_verify_feed(v, msg + off, n) == 0);
	}
	FUZZ_CHECK(dkim_verify_end(v, fuzz_done, o) == 0);
	fuzz_answer(&f, key, klen);
	FUZZ_CHECK(o->calls == 1);
	dkim_verify_free(&v);
	FUZZ_CHECK(v == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_verify_sig sig;
	struct dkim_verify_key key;
	struct dmarc_record rec;
	struct fuzz_out a, b;
	const uint8_t *nul;
	const char *why;
	char dom[256];
	size_t i;

	if (size < 2)
		return 0;
	switch (data[0] % 5) {
	case 0:
		if (dkim_verify_parse_sig(data + 1, size - 1, &sig, &why) ==
		    DKIM_VERIFY_PASS) {
			FUZZ_CHECK(sig.d[0] != '\0' && sig.s[0] != '\0');
			FUZZ_CHECK(sig.b_raw_off <= sig.b_raw_end &&
			    sig.b_raw_end <= size - 1);
		} else {
			FUZZ_CHECK(why != NULL);
		}
		break;
	case 1:
		if (dkim_verify_parse_key(data + 1, size - 1, &key, &why) ==
		    DKIM_VERIFY_PASS) {
			FUZZ_CHECK(key.pkey != NULL);
			dkim_verify_key_fini(&key);
		}
		break;
	case 2:
		if (dmarc_record_parse((const char *)data + 1, size - 1,
		    &rec) == 0)
			FUZZ_CHECK(rec.pct <= 100 &&
			    rec.p <= DMARC_POLICY_REJECT &&
			    rec.sp <= DMARC_POLICY_REJECT);
		break;
	case 3:
		(void)authres_is_ours(data + 1, size - 1, "mx.example.org");
		if (dmarc_from_domain(data + 1, size - 1, dom, sizeof(dom)) ==
		    DMARC_FROM_OK) {
			FUZZ_CHECK(dom[0] != '\0');
			FUZZ_CHECK(dmarc_org_domain(dom, dom, sizeof(dom)) == 0);
		}
		break;
	default:
		nul = memchr(data + 2, '\0', size - 2);
		if (nul == NULL)
			nul = data + size;
		fuzz_verify(data + 2, (size_t)(nul - data - 2),
		    nul < data + size ? nul + 1 : nul,
		    nul < data + size ? (size_t)(data + size - nul - 1) : 0,
		    0, &a);
		fuzz_verify(data + 2, (size_t)(nul - data - 2),
		    nul < data + size ? nul + 1 : nul,
		    nul < data + size ? (size_t)(data + size - nul - 1) : 0,
		    data[1] | 1u, &b);
		FUZZ_CHECK(a.n == b.n);
		for (i = 0; i < a.n; i++)
			FUZZ_CHECK(strcmp(a.words[i], b.words[i]) == 0);
		break;
	}
	return 0;
}
