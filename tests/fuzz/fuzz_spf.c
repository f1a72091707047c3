/*
 * fuzz_spf.c - libFuzzer target for SPF evaluation (mailauth/spf.c):
 * record parsing, macro expansion, the include/redirect stack, the
 * lookup limits and explanations, over DNS answers an attacker writes.
 *
 * Byte 0 picks the client (IPv4, IPv6, IPv4-mapped) and whether the
 * sender is the null one; the rest, split at newlines, are the TXT
 * records of every name asked for (so every include, redirect and exp=
 * finds them).  A, AAAA, MX and PTR queries get one record each, of a
 * name under the same zone.  The check must call back exactly once, and
 * never from within spf_check_new(); a check freed half way must not
 * call back at all.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_spf -dict=tests/fuzz/spf.dict \
 *	    tests/fuzz/corpus_spf
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "resolver.h"
#include "spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define FUZZ_QUEUE_MAX 64
#define FUZZ_TXT_MAX 16

struct fuzz_query {
	enum resolver_type type;
	resolver_cb cb;
	void *data;
	bool cancelled;
};

struct fuzz_resolver {
	struct resolver r;
	struct fuzz_query q[FUZZ_QUEUE_MAX];
	size_t head, n, asked;
	const uint8_t *txt[FUZZ_TXT_MAX];
	size_t txt_len[FUZZ_TXT_MAX], ntxt;
};

static int
fuzz_query_op(struct resolver *r, const char *name, enum resolver_type type,
    resolver_cb cb, void *data)
{
	struct fuzz_resolver *f = (struct fuzz_resolver *)r;
	struct fuzz_query *q;

	FUZZ_CHECK(name != NULL && strlen(name) <= 253);
	if (f->n == FUZZ_QUEUE_MAX)
		return PR_ENOMEM;
	q = &f->q[f->n++];
	q->type = type;
	q->cb = cb;
	q->data = data;
	q->cancelled = false;
	f->asked++;
	return 0;
}

static void
fuzz_cancel_op(struct resolver *r, void *data)
{
	struct fuzz_resolver *f = (struct fuzz_resolver *)r;
	size_t i;

	for (i = f->head; i < f->n; i++)
		if (f->q[i].data == data)
			f->q[i].cancelled = true;
}

static const struct resolver_ops fuzz_ops = { fuzz_query_op,
    fuzz_cancel_op };

/* Answers the next query; false when none is left. */
static bool
fuzz_answer_one(struct fuzz_resolver *f)
{
	struct resolver_rr rr[FUZZ_TXT_MAX];
	const uint8_t *s[FUZZ_TXT_MAX];
	size_t len[FUZZ_TXT_MAX], i, n = 0;
	struct resolver_answer ans;
	struct fuzz_query q;

	if (f->head == f->n)
		return false;
	q = f->q[f->head++];
	if (q.cancelled)
		return true;
	memset(rr, 0, sizeof(rr));
	switch (q.type) {
	case RESOLVER_TXT:
		for (i = 0; i < f->ntxt; i++) {
			s[i] = f->txt[i];
			len[i] = f->txt_len[i];
			rr[n].type = RESOLVER_TXT;
			rr[n].u.txt.n = 1;
			rr[n].u.txt.s = &s[i];
			rr[n].u.txt.len = &len[i];
			n++;
		}
		break;
	case RESOLVER_A:
		rr[0].type = RESOLVER_A;
		memcpy(rr[0].u.a, "\xc0\x00\x02\x01", 4);
		n = 1;
		break;
	case RESOLVER_AAAA:
		rr[0].type = RESOLVER_AAAA;
		memcpy(rr[0].u.aaaa, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\1",
		    16);
		n = 1;
		break;
	case RESOLVER_MX:
		rr[0].type = RESOLVER_MX;
		rr[0].u.mx.pref = 10;
		rr[0].u.mx.host = "mx.fuzz.test";
		n = 1;
		break;
	case RESOLVER_PTR:
		rr[0].type = RESOLVER_PTR;
		rr[0].u.ptr = "host.fuzz.test";
		n = 1;
		break;
	}
	ans.rcode = n > 0 ? RESOLVER_NOERROR : RESOLVER_NXDOMAIN;
	ans.n = n;
	ans.rr = rr;
	q.cb(q.data, &ans);
	return true;
}

static void
fuzz_cb(void *data, const struct spf_outcome *o)
{
	int *calls = data;

	FUZZ_CHECK(spf_result_str(o->result) != NULL);
	FUZZ_CHECK(o->explanation == NULL || o->result == SPF_FAIL);
	(*calls)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ips[] = { "192.0.2.1", "2001:db8::1",
	    "::ffff:192.0.2.1", "198.51.100.9" };
	struct fuzz_resolver f;
	struct spf_request req;
	struct spf_check *c = NULL;
	size_t i, st;
	int calls = 0, r;

	if (size < 1)
		return 0;
	memset(&f, 0, sizeof(f));
	f.r.ops = &fuzz_ops;
	for (i = st = 1; i <= size && f.ntxt < FUZZ_TXT_MAX; i++) {
		if (i == size || data[i] == '\n') {
			f.txt[f.ntxt] = data + st;
			f.txt_len[f.ntxt] = i - st;
			f.ntxt++;
			st = i + 1;
		}
	}
	memset(&req, 0, sizeof(req));
	req.ip = ips[data[0] & 3];
	req.sender = data[0] & 4 ? "" : "Some.One@fuzz.test";
	req.helo = "helo.fuzz.test";
	req.receiver = "mx.example.org";
	req.now = 1700000000;
	r = spf_check_new(&f.r, &req, fuzz_cb, &calls, &c);
	FUZZ_CHECK(r == 0 || r == 1);
	FUZZ_CHECK(calls == 0);
	if (r == 1) {
		FUZZ_CHECK(spf_check_outcome(c) != NULL);
	} else if (data[0] & 8) {
		/* Freed after a few answers: never called back then. */
		for (i = 0; i < (size_t)(data[0] >> 4) && calls == 0; i++)
			if (!fuzz_answer_one(&f))
				break;
		if (calls == 0) {
			spf_check_free(&c);
			while (fuzz_answer_one(&f))
				;
			FUZZ_CHECK(calls == 0);
			return 0;
		}
	} else {
		while (fuzz_answer_one(&f))
			;
		FUZZ_CHECK(calls == 1);
		/* RFC 7208 4.6.4: ten terms, each with up to ten names,
		 * plus the records, the PTR search and exp=. */
		FUZZ_CHECK(f.asked <= 11 + 10 * SPF_NAMES_MAX + 12);
	}
	spf_check_free(&c);
	return 0;
}
