/*
 * test_dns_cache.c - common/dns_cache.c: TTLs of positive answers (RFC
 * 1035 3.2.1), negative answers by the SOA (RFC 2308 5), what is never
 * kept, expiry on a clock the test sets, and the bound on entries.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"
#include "tap.h"

#define T_A 1
#define T_CNAME 5
#define T_SOA 6
#define T_TXT 16

/* A reply under construction. */
struct msg {
	uint8_t m[8192];
	size_t len;
};

static void
put16(struct msg *w, unsigned v)
{
	w->m[w->len++] = (uint8_t)(v >> 8);
	w->m[w->len++] = (uint8_t)v;
}

static void
put32(struct msg *w, uint32_t v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

static void
put_name(struct msg *w, const char *name)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t l = dot != NULL ? (size_t)(dot - name) : strlen(name);

		w->m[w->len++] = (uint8_t)l;
		memcpy(w->m + w->len, name, l);
		w->len += l;
		name += l + (dot != NULL);
	}
	w->m[w->len++] = 0;
}

/* Header and question: rcode, the section counts, flags (0x80 QR). */
static void
start(struct msg *w, unsigned flags, unsigned rcode, unsigned an,
    unsigned ns, const char *qname, unsigned qtype)
{
	memset(w, 0, sizeof(*w));
	put16(w, 0x1234);
	w->m[w->len++] = (uint8_t)flags;
	w->m[w->len++] = (uint8_t)(0x80 | rcode);
	put16(w, 1);
	put16(w, an);
	put16(w, ns);
	put16(w, 0);
	put_name(w, qname);
	put16(w, qtype);
	put16(w, 1);
}

static void
rr_a(struct msg *w, const char *owner, uint32_t ttl)
{
	put_name(w, owner);
	put16(w, T_A);
	put16(w, 1);
	put32(w, ttl);
	put16(w, 4);
	memcpy(w->m + w->len, "\xc0\x00\x02\x01", 4);
	w->len += 4;
}

static void
rr_cname(struct msg *w, const char *owner, uint32_t ttl, const char *to)
{
	size_t at;

	put_name(w, owner);
	put16(w, T_CNAME);
	put16(w, 1);
	put32(w, ttl);
	at = w->len;
	put16(w, 0);
	put_name(w, to);
	w->m[at] = (uint8_t)((w->len - at - 2) >> 8);
	w->m[at + 1] = (uint8_t)(w->len - at - 2);
}

/* An SOA with a compression pointer to the question's name for MNAME,
 * as servers write it. */
static void
rr_soa(struct msg *w, const char *owner, uint32_t ttl, uint32_t minimum)
{
	size_t at;

	put_name(w, owner);
	put16(w, T_SOA);
	put16(w, 1);
	put32(w, ttl);
	at = w->len;
	put16(w, 0);
	put16(w, 0xc00c);
	put_name(w, "hostmaster.example.test");
	put32(w, 2026120201);
	put32(w, 3600);
	put32(w, 600);
	put32(w, 86400);
	put32(w, minimum);
	w->m[at] = (uint8_t)((w->len - at - 2) >> 8);
	w->m[at + 1] = (uint8_t)(w->len - at - 2);
}

static uint32_t
ttl_of(const struct msg *w)
{
	uint32_t ttl = 0;

	return dns_cache_ttl(w->m, w->len, &ttl) ? ttl : 0;
}

static void
test_ttl(void)
{
	struct msg w;

	start(&w, 0x81, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 60);
	TAP_EQ_INT(ttl_of(&w), 60, "one A record: its TTL");

	start(&w, 0x81, 0, 2, 0, "alias.test", T_A);
	rr_cname(&w, "alias.test", 30, "a.test");
	rr_a(&w, "a.test", 600);
	TAP_EQ_INT(ttl_of(&w), 30, "a CNAME and its target: the least TTL");

	start(&w, 0x81, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 0);
	TAP_EQ_INT(ttl_of(&w), 0, "TTL 0 is not kept (RFC 1035 3.2.1)");

	start(&w, 0x81, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 0x80000000u);
	TAP_EQ_INT(ttl_of(&w), 0, "a TTL with the top bit set counts as 0 "
	    "(RFC 2181 8)");

	start(&w, 0x81, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 30 * 86400);
	TAP_EQ_INT(ttl_of(&w), DNS_CACHE_TTL_MAX, "a month: held to a day");

	start(&w, 0x81, 3, 0, 1, "no.test", T_TXT);
	rr_soa(&w, "test", 600, 300);
	TAP_EQ_INT(ttl_of(&w), 300, "NXDOMAIN: the SOA MINIMUM when less "
	    "(RFC 2308 5)");

	start(&w, 0x81, 3, 0, 1, "no.test", T_TXT);
	rr_soa(&w, "test", 120, 300);
	TAP_EQ_INT(ttl_of(&w), 120, "NXDOMAIN: the SOA's TTL when less");

	start(&w, 0x81, 3, 0, 1, "no.test", T_TXT);
	rr_soa(&w, "test", 86400, 86400);
	TAP_EQ_INT(ttl_of(&w), DNS_CACHE_NEG_TTL_MAX,
	    "NXDOMAIN: a day of SOA MINIMUM held to the bound");

	start(&w, 0x81, 0, 0, 1, "a.test", T_TXT);
	rr_soa(&w, "test", 600, 60);
	TAP_EQ_INT(ttl_of(&w), 60, "NODATA: kept for the SOA too");

	start(&w, 0x81, 3, 1, 1, "alias.test", T_TXT);
	rr_cname(&w, "alias.test", 600, "gone.test");
	rr_soa(&w, "test", 600, 90);
	TAP_EQ_INT(ttl_of(&w), 90, "NXDOMAIN after a CNAME: the SOA's time");

	start(&w, 0x81, 3, 0, 0, "no.test", T_TXT);
	TAP_EQ_INT(ttl_of(&w), 0, "NXDOMAIN without SOA is not kept "
	    "(RFC 2308 5)");

	start(&w, 0x81, 2, 0, 0, "a.test", T_TXT);
	TAP_EQ_INT(ttl_of(&w), 0, "SERVFAIL is not kept");

	start(&w, 0x81, 5, 0, 0, "a.test", T_TXT);
	TAP_EQ_INT(ttl_of(&w), 0, "REFUSED is not kept");

	start(&w, 0x83, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 60);
	TAP_EQ_INT(ttl_of(&w), 0, "a truncated (TC) answer is not kept");

	start(&w, 0x01, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 60);
	TAP_EQ_INT(ttl_of(&w), 0, "a query (no QR) is not kept");

	start(&w, 0x81, 0, 2, 0, "a.test", T_A);
	rr_a(&w, "a.test", 60);
	TAP_EQ_INT(ttl_of(&w), 0, "a record count past the message: not kept");

	start(&w, 0x81, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 60);
	w.len -= 2;
	TAP_EQ_INT(ttl_of(&w), 0, "rdata cut short: not kept");
}

static void
test_table(void)
{
	struct dns_cache *c;
	struct msg w, big;
	uint8_t *m;
	size_t len;
	uint32_t age;
	char name[32];
	int i;

	c = dns_cache_new(4);
	if (!TAP_OK(c != NULL, "dns_cache_new"))
		return;
	start(&w, 0x81, 0, 1, 0, "a.test", T_A);
	rr_a(&w, "a.test", 60);
	TAP_OK(dns_cache_put(c, "a.test", T_A, w.m, w.len, 1000),
	    "an A answer is kept");
	m = dns_cache_get(c, "A.Test", T_A, 1000 + 59999, &len, &age);
	TAP_OK(m != NULL && len == w.len && memcmp(m, w.m, len) == 0,
	    "found by another case (RFC 4343), as it was given");
	TAP_EQ_INT(age, 59, "kept for 59 s");
	free(m);
	TAP_OK(dns_cache_get(c, "a.test", T_TXT, 2000, &len, &age) == NULL,
	    "another type is another question");
	TAP_OK(dns_cache_get(c, "a.test", T_A, 1000 + 60000, &len, &age) ==
	    NULL, "gone when its TTL is over");
	TAP_EQ_INT(dns_cache_count(c), 0, "and dropped");

	start(&w, 0x81, 3, 0, 1, "no.test", T_TXT);
	rr_soa(&w, "test", 600, 30);
	TAP_OK(dns_cache_put(c, "no.test", T_TXT, w.m, w.len, 0),
	    "NXDOMAIN with SOA is kept");
	m = dns_cache_get(c, "no.test", T_TXT, 29999, &len, &age);
	TAP_OK(m != NULL && (m[3] & 0x0f) == 3, "NXDOMAIN answered from "
	    "the cache within the SOA MINIMUM");
	free(m);
	TAP_OK(dns_cache_get(c, "no.test", T_TXT, 30000, &len, &age) == NULL,
	    "NXDOMAIN gone after it");

	start(&w, 0x81, 2, 0, 0, "down.test", T_TXT);
	TAP_OK(!dns_cache_put(c, "down.test", T_TXT, w.m, w.len, 0),
	    "SERVFAIL is not kept");
	TAP_OK(dns_cache_get(c, "down.test", T_TXT, 1, &len, &age) == NULL,
	    "so it is asked again");

	memset(&big, 0, sizeof(big));
	start(&big, 0x81, 0, 1, 0, "big.test", T_A);
	rr_a(&big, "big.test", 60);
	big.len = DNS_CACHE_ANSWER_MAX + 1;
	TAP_OK(!dns_cache_put(c, "big.test", T_A, big.m, big.len, 0),
	    "an answer over DNS_CACHE_ANSWER_MAX is not kept");

	/* The bound: four answers; a fifth pushes out the one least
	 * recently used. */
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		start(&w, 0x81, 0, 1, 0, name, T_A);
		rr_a(&w, name, 600);
		dns_cache_put(c, name, T_A, w.m, w.len, 0);
	}
	TAP_EQ_INT(dns_cache_count(c), 4, "four kept");
	m = dns_cache_get(c, "n0.test", T_A, 10, &len, &age);
	TAP_OK(m != NULL, "n0 used again");
	free(m);
	start(&w, 0x81, 0, 1, 0, "n4.test", T_A);
	rr_a(&w, "n4.test", 600);
	dns_cache_put(c, "n4.test", T_A, w.m, w.len, 20);
	TAP_EQ_INT(dns_cache_count(c), 4, "a fifth: still four");
	m = dns_cache_get(c, "n1.test", T_A, 30, &len, &age);
	TAP_OK(m == NULL, "the least recently used (n1) went");
	free(m);
	m = dns_cache_get(c, "n0.test", T_A, 30, &len, &age);
	TAP_OK(m != NULL, "n0, used since, stayed");
	free(m);
	start(&w, 0x81, 0, 1, 0, "n0.test", T_A);
	rr_a(&w, "n0.test", 5);
	dns_cache_put(c, "N0.test", T_A, w.m, w.len, 100);
	TAP_EQ_INT(dns_cache_count(c), 4, "the same question again replaces");
	TAP_OK(dns_cache_get(c, "n0.test", T_A, 5100, &len, &age) == NULL,
	    "with the new answer's TTL");
	dns_cache_free(c);
}

int
main(void)
{
	test_ttl();
	test_table();
	return tap_done();
}
