/*
 * test_dkim_keycache.c - mailauth/dkim_keycache.c on a clock the test
 * sets: keys kept for their record's TTL, the bound, references that
 * outlive an entry, and the verifier that looks a key up once per TTL
 * and gives the same results from the cache.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "dkim_key.h"
#include "dkim_keycache.h"
#include "dkim_signer.h"
#include "dkim_verify.h"
#include "err.h"
#include "resolver_table.h"
#include "tap.h"

static uint64_t now_ms = 1000000;

static uint64_t
test_clock(void)
{
	return now_ms;
}

static const char msg[] =
    "From: Alice <alice@kc.test>\r\n"
    "To: bob@example.test\r\n"
    "Subject: cached key\r\n"
    "\r\n"
    "The same signer, message after message.\r\n";

/* A key's record text (NUL-terminated) and its parsed public key. */
static bool
make_key(const char *sel, bool ed, struct dkim_key **k, char *txt,
    size_t txtsz, struct dkim_verify_key *pub)
{
	struct pr_err err;
	struct buf b;
	const char *why;
	bool ok;

	if (dkim_key_generate("kc.test", sel, ed, k, &err) < 0)
		return false;
	buf_init(&b, 8192);
	ok = dkim_key_txt(*k, &b) == 0 && b.len < txtsz;
	if (ok) {
		memcpy(txt, b.p, b.len);
		txt[b.len] = '\0';
		ok = dkim_verify_parse_key((const uint8_t *)txt, b.len, pub,
		    &why) == DKIM_VERIFY_PASS;
	}
	buf_fini(&b);
	return ok;
}

static void
test_cache(void)
{
	struct dkim_keycache *c;
	struct dkim_verify_key pub[3], got;
	struct dkim_key *k[3] = { NULL, NULL, NULL };
	char txt[3][2048];
	int i;

	c = dkim_keycache_new(2, test_clock);
	if (!TAP_OK(c != NULL, "dkim_keycache_new"))
		return;
	for (i = 0; i < 3; i++)
		if (!TAP_OK(make_key(i == 2 ? "e" : i ? "r1" : "r0", i == 2,
		    &k[i], txt[i], sizeof(txt[i]), &pub[i]), "key %d", i))
			return;
	dkim_keycache_put(c, "r0._domainkey.kc.test", &pub[0], 300);
	TAP_EQ_INT(dkim_keycache_count(c), 1, "one key kept");
	TAP_OK(dkim_keycache_get(c, "R0._DomainKey.KC.test", &got) &&
	    got.pkey == pub[0].pkey && !got.ed25519 && got.bits == 2048,
	    "found by another case (RFC 4343), the same key");
	dkim_verify_key_fini(&got);
	TAP_OK(!dkim_keycache_get(c, "r1._domainkey.kc.test", &got),
	    "another selector: not found");

	/* The cache holds its own reference: the caller's goes, the key
	 * stays usable. */
	dkim_verify_key_fini(&pub[0]);
	now_ms += 299999;
	TAP_OK(dkim_keycache_get(c, "r0._domainkey.kc.test", &got) &&
	    EVP_PKEY_get_bits(got.pkey) == 2048,
	    "the caller's reference released: still there before the TTL");
	now_ms += 1;
	TAP_OK(!dkim_keycache_get(c, "r0._domainkey.kc.test", &pub[0]),
	    "gone once the TTL is over");
	TAP_EQ_INT(dkim_keycache_count(c), 0, "and dropped");
	TAP_EQ_INT(EVP_PKEY_get_bits(got.pkey), 2048,
	    "a key handed out outlives its entry");
	dkim_verify_key_fini(&got);

	dkim_keycache_put(c, "r1._domainkey.kc.test", &pub[1], 0);
	TAP_EQ_INT(dkim_keycache_count(c), 0, "TTL 0: not kept");
	dkim_keycache_put(c, "r1._domainkey.kc.test", &pub[1], 10u * 86400);
	now_ms += (uint64_t)DKIM_KEYCACHE_TTL_MAX * 1000;
	TAP_OK(!dkim_keycache_get(c, "r1._domainkey.kc.test", &got),
	    "a TTL of ten days is held to DKIM_KEYCACHE_TTL_MAX");

	/* The bound: two keys; a third pushes out the least recently
	 * used. */
	dkim_keycache_put(c, "a._domainkey.kc.test", &pub[1], 600);
	dkim_keycache_put(c, "b._domainkey.kc.test", &pub[2], 600);
	TAP_OK(dkim_keycache_get(c, "a._domainkey.kc.test", &got),
	    "a used again");
	dkim_verify_key_fini(&got);
	dkim_keycache_put(c, "c._domainkey.kc.test", &pub[2], 600);
	TAP_EQ_INT(dkim_keycache_count(c), 2, "a third key: still two");
	TAP_OK(!dkim_keycache_get(c, "b._domainkey.kc.test", &got),
	    "the least recently used (b) went");
	TAP_OK(dkim_keycache_get(c, "a._domainkey.kc.test", &got) &&
	    got.pkey == pub[1].pkey, "a stayed");
	dkim_verify_key_fini(&got);
	TAP_OK(dkim_keycache_get(c, "c._domainkey.kc.test", &got) &&
	    got.ed25519, "c is the Ed25519 key");
	dkim_verify_key_fini(&got);
	dkim_keycache_put(c, "A._domainkey.kc.test", &pub[2], 600);
	TAP_EQ_INT(dkim_keycache_count(c), 2, "the same name again replaces");
	TAP_OK(dkim_keycache_get(c, "a._domainkey.kc.test", &got) &&
	    got.ed25519, "with the new key");
	dkim_verify_key_fini(&got);
	dkim_keycache_free(&c);
	TAP_OK(c == NULL, "freed");
	TAP_EQ_INT(EVP_PKEY_get_bits(pub[1].pkey), 2048,
	    "the caller's keys outlive the cache");
	for (i = 1; i < 3; i++)
		dkim_verify_key_fini(&pub[i]);
	for (i = 0; i < 3; i++)
		dkim_key_free(&k[i]);
}

struct outcome {
	int calls;
	char words[64];
};

static void
outcome_cb(void *data, const struct dkim_verify_result *res, size_t n)
{
	struct outcome *o = data;
	size_t i;

	o->calls++;
	o->words[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(o->words, " ");
		strcat(o->words, dkim_verify_res_name(res[i].res));
	}
}

/* Verifies m[0..len) with the table zone and the cache c; returns the
 * number of DNS questions it asked. */
static size_t
verify(const struct resolver_table_entry *zone, size_t nzone,
    struct dkim_keycache *c, const char *m, size_t len, struct outcome *o)
{
	struct dkim_verify_limits lim;
	struct resolver_table *t;
	struct dkim_verify *v;
	size_t asked;

	memset(o, 0, sizeof(*o));
	memset(&lim, 0, sizeof(lim));
	lim.keys = c;
	if (resolver_table_new(zone, nzone, &t) < 0)
		return 99;
	if (dkim_verify_new(resolver_table_resolver(t), &lim, &v) < 0 ||
	    dkim_verify_feed(v, (const uint8_t *)m, len) < 0 ||
	    dkim_verify_end(v, outcome_cb, o) < 0) {
		resolver_table_free(&t);
		return 99;
	}
	resolver_table_run(t);
	dkim_verify_free(&v);
	asked = resolver_table_asked(t);
	resolver_table_free(&t);
	return asked;
}

static void
test_verifier(void)
{
	struct resolver_table_entry zone[1];
	struct dkim_verify_key pub;
	struct dkim_signer *s;
	struct dkim_keycache *c;
	struct dkim_key *k = NULL;
	struct outcome o;
	struct pr_err err;
	struct buf out;
	char txt[2048], zonetxt[2200];
	size_t i, o2;

	if (!TAP_OK(make_key("v", false, &k, txt, sizeof(txt), &pub),
	    "verifier key"))
		return;
	dkim_verify_key_fini(&pub);
	zone[0].name = "v._domainkey.kc.test";
	zone[0].type = RESOLVER_TXT;
	zone[0].rcode = RESOLVER_NOERROR;
	/* Character-strings of at most 255 octets (RFC 1035 3.3.14). */
	for (i = 0, o2 = 0; txt[i] != '\0'; i++) {
		if (i % 200 == 0)
			o2 += (size_t)sprintf(zonetxt + o2, "%s\"",
			    i > 0 ? "\" " : "");
		zonetxt[o2++] = txt[i];
	}
	strcpy(zonetxt + o2, "\"");
	zone[0].data = zonetxt;
	buf_init(&out, 1 << 16);
	if (dkim_signer_new(k, &s) < 0)
		return;
	dkim_signer_feed(s, (const uint8_t *)msg, sizeof(msg) - 1);
	TAP_EQ_INT(dkim_signer_finish(s, 1700000000, &out, &err), 0, "signed");
	dkim_signer_free(&s);
	buf_append(&out, msg, sizeof(msg) - 1);

	c = dkim_keycache_new(0, test_clock);
	TAP_EQ_INT(verify(zone, 1, c, (const char *)out.p, out.len, &o), 1,
	    "first message: the key is looked up");
	TAP_EQ_STR(o.words, "pass", "and passes");
	TAP_EQ_INT(dkim_keycache_count(c), 1, "the key is kept");
	/* The table's records have a TTL of 300 s. */
	now_ms += 299000;
	TAP_EQ_INT(verify(zone, 1, c, (const char *)out.p, out.len, &o), 0,
	    "within the TTL: no lookup");
	TAP_OK(o.calls == 1 && strcmp(o.words, "pass") == 0,
	    "and the same result");
	out.p[out.len - 5] ^= 1;
	verify(zone, 1, c, (const char *)out.p, out.len, &o);
	TAP_OK(o.calls == 1 && strcmp(o.words, "fail") == 0,
	    "a changed body still fails with the cached key");
	out.p[out.len - 5] ^= 1;
	now_ms += 1000;
	TAP_EQ_INT(verify(zone, 1, c, (const char *)out.p, out.len, &o), 1,
	    "past the TTL: looked up again");
	TAP_OK(o.calls == 1 && strcmp(o.words, "pass") == 0, "and passes");
	TAP_EQ_INT(verify(zone, 1, NULL, (const char *)out.p, out.len, &o), 1,
	    "without a cache: looked up each time");
	dkim_keycache_free(&c);
	buf_fini(&out);
	dkim_key_free(&k);
}

int
main(void)
{
	test_cache();
	test_verifier();
	return tap_done();
}
