/*
 * dns_cache.h - a small cache of DNS answers for common/dns.c, kept for
 * their TTL (RFC 1035 3.2.1, RFC 2181 8) and negative answers for the
 * SOA's bound (RFC 2308 5).
 *
 * The same sender domain, DKIM key, DMARC record and client address come
 * back message after message; the cache spares the DNS round trip for
 * each.  Answers are kept as the server sent them (the whole message,
 * RFC 1035 4.1), so that a hit is parsed exactly as a fresh answer is.
 * Failures (SERVFAIL, REFUSED, a timeout) are never kept: they are
 * asked again at once.  c-ares 1.18 (Debian 12) has no query cache of
 * its own (it came with 1.23).
 *
 * Not thread-safe: one loop uses one cache.  Time is passed in by the
 * caller (milliseconds of a monotonic clock), so tests set it.
 */
#ifndef POSTROOM_DNS_CACHE_H
#define POSTROOM_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Answers kept at most; the least recently used goes first. */
#define DNS_CACHE_ENTRIES 1024
/* An answer larger than this is not kept (a 2048-bit DKIM key record is
 * about 500 octets, an SPF record with its includes rarely 1 KiB): the
 * cache holds at most DNS_CACHE_ENTRIES * DNS_CACHE_ANSWER_MAX. */
#define DNS_CACHE_ANSWER_MAX 4096
/* A TTL is honoured up to a day (RFC 1035 leaves the bound to the
 * resolver; RFC 8767 4 suggests at most 7 days). */
#define DNS_CACHE_TTL_MAX 86400
/* A negative answer is kept for the SOA's MINIMUM and TTL, whichever is
 * less (RFC 2308 5), and at most this: RFC 2308 5 finds "one to three
 * hours" sensible; a newly published record should not wait longer. */
#define DNS_CACHE_NEG_TTL_MAX 3600

struct dns_cache;

/* Makes a cache of at most max answers (0: DNS_CACHE_ENTRIES).  Returns
 * NULL when out of memory. */
struct dns_cache *dns_cache_new(size_t max);

/* Frees c and everything in it; NULL is a no-op. */
void dns_cache_free(struct dns_cache *c);

/*
 * How long the answer m[0..len) may be kept, in seconds: for a NOERROR
 * answer with records, the least TTL among the answer section's records
 * (a CNAME's included); for NXDOMAIN or an empty NOERROR answer
 * (NODATA), the SOA of the authority section, min(TTL, MINIMUM) (RFC
 * 2308 5), at most DNS_CACHE_NEG_TTL_MAX.  Returns false when the
 * answer is not to be kept: a failure rcode, a truncated (TC) or
 * malformed message, a negative answer without SOA (RFC 2308 5: "SHOULD
 * NOT be cached"), or a TTL of 0 (RFC 1035 3.2.1: not to be cached).
 */
bool dns_cache_ttl(const uint8_t *m, size_t len, uint32_t *ttl_r);

/*
 * Keeps a copy of the answer m[0..len) to the question (name, type) at
 * time now_ms, for dns_cache_ttl()'s time (at most DNS_CACHE_TTL_MAX).
 * An answer for the same question is replaced.  Returns true if it was
 * kept.
 */
bool dns_cache_put(struct dns_cache *c, const char *name, unsigned type,
    const uint8_t *m, size_t len, uint64_t now_ms);

/*
 * Looks up (name, type), case-insensitively (RFC 4343), at now_ms.
 * Returns a copy of the answer (malloc'ed, the caller frees it), its
 * length in *len_r and in *age_r the seconds since it was kept (for the
 * TTLs the caller reports, RFC 1035 6.1.2); NULL when there is none or
 * it has expired (and then it is dropped).
 */
uint8_t *dns_cache_get(struct dns_cache *c, const char *name, unsigned type,
    uint64_t now_ms, size_t *len_r, uint32_t *age_r);

/* Answers kept now. */
size_t dns_cache_count(const struct dns_cache *c);

#endif
