/*
 * dns_cache.c - DNS answers kept for their TTL (RFC 1035 3.2.1, RFC 2308).
 *
 * A hash table of questions, chained, and a list in the order of use:
 * a hit moves to the front, a full cache drops from the back.
 */
#include "dns_cache.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lru.h"

#define DNS_CACHE_TYPE_SOA 6

struct dns_cache_ent {
	char name[256];
	unsigned type;
	uint32_t hash;
	uint64_t stored_ms, expires_ms;
	uint8_t *m;
	size_t len;
	struct dns_cache_ent *chain;        /* same bucket */
	struct lru_node use;
};

struct dns_cache {
	struct dns_cache_ent **bucket;
	size_t nbucket;                     /* a power of two */
	size_t n, max;
	struct lru use;                     /* newest first */
};

struct dns_cache *
dns_cache_new(size_t max)
{
	struct dns_cache *c;

	if (max == 0)
		max = DNS_CACHE_ENTRIES;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->max = max;
	for (c->nbucket = 16; c->nbucket < max; c->nbucket *= 2)
		;
	c->bucket = calloc(c->nbucket, sizeof(*c->bucket));
	if (c->bucket == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void
dns_cache_free(struct dns_cache *c)
{
	struct dns_cache_ent *e;

	if (c == NULL)
		return;
	while ((e = LRU_ENTRY(c->use.head, struct dns_cache_ent, use)) !=
	    NULL) {
		lru_unlink(&c->use, &e->use);
		free(e->m);
		free(e);
	}
	free(c->bucket);
	free(c);
}

size_t
dns_cache_count(const struct dns_cache *c)
{
	return c->n;
}

/* FNV-1a over the name without regard to case (RFC 4343), and the
 * type. */
static uint32_t
dns_cache_hash(const char *name, unsigned type)
{
	uint32_t h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (uint8_t)tolower((unsigned char)*name)) * 16777619u;
	return (h ^ type) * 16777619u;
}

/* ---------------------------------------------------------------------
 * TTLs (RFC 1035 4.1, RFC 2308 5)
 */

static uint32_t
dns_cache_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Moves *off past the name there (labels, or a compression pointer,
 * RFC 1035 4.1.4); false if it runs past len. */
static bool
dns_cache_skip_name(const uint8_t *m, size_t len, size_t *off)
{
	size_t p = *off;

	for (;;) {
		if (p >= len)
			return false;
		if ((m[p] & 0xc0) == 0xc0) {
			if (p + 2 > len)
				return false;
			*off = p + 2;
			return true;
		}
		if (m[p] & 0xc0)
			return false;
		if (m[p] == 0) {
			*off = p + 1;
			return true;
		}
		p += 1 + m[p];
	}
}

/* The record at *off: type, TTL, rdata offset and length; *off moves
 * past it. */
static bool
dns_cache_rr(const uint8_t *m, size_t len, size_t *off, unsigned *type,
    uint32_t *ttl, size_t *rdata, size_t *rdlen)
{
	size_t o = *off;

	if (!dns_cache_skip_name(m, len, &o) || o + 10 > len)
		return false;
	*type = (unsigned)(m[o] << 8 | m[o + 1]);
	*ttl = dns_cache_u32(m + o + 4);
	*rdlen = (size_t)(m[o + 8] << 8 | m[o + 9]);
	*rdata = o + 10;
	if (*rdata + *rdlen > len)
		return false;
	*off = *rdata + *rdlen;
	return true;
}

bool
dns_cache_ttl(const uint8_t *m, size_t len, uint32_t *ttl_r)
{
	size_t off = 12, i, qd, an, ns, rdata, rdlen, o;
	unsigned rcode, type;
	uint32_t ttl, best = UINT32_MAX, minimum;

	/* A reply (QR), whole (not TC: RFC 2181 9). */
	if (len < 12 || !(m[2] & 0x80) || (m[2] & 0x02))
		return false;
	rcode = m[3] & 0x0f;
	if (rcode != 0 && rcode != 3)
		return false;
	qd = (size_t)(m[4] << 8 | m[5]);
	an = (size_t)(m[6] << 8 | m[7]);
	ns = (size_t)(m[8] << 8 | m[9]);
	for (i = 0; i < qd; i++) {
		if (!dns_cache_skip_name(m, len, &off) || off + 4 > len)
			return false;
		off += 4;
	}
	if (rcode == 0 && an > 0) {
		for (i = 0; i < an; i++) {
			if (!dns_cache_rr(m, len, &off, &type, &ttl, &rdata,
			    &rdlen))
				return false;
			if (ttl < best)
				best = ttl;
		}
		/* RFC 2181 8: a TTL with the top bit set counts as 0. */
		if (best == 0 || best > INT32_MAX)
			return false;
		*ttl_r = best > DNS_CACHE_TTL_MAX ? DNS_CACHE_TTL_MAX : best;
		return true;
	}
	/* NXDOMAIN (which may follow CNAMEs) or NODATA: the SOA of the
	 * authority section says for how long (RFC 2308 3, 5). */
	for (i = 0; i < an; i++)
		if (!dns_cache_rr(m, len, &off, &type, &ttl, &rdata, &rdlen))
			return false;
	for (i = 0; i < ns; i++) {
		if (!dns_cache_rr(m, len, &off, &type, &ttl, &rdata, &rdlen))
			return false;
		if (type != DNS_CACHE_TYPE_SOA)
			continue;
		/* RFC 1035 3.3.13: MNAME RNAME SERIAL REFRESH RETRY EXPIRE
		 * MINIMUM. */
		o = rdata;
		if (!dns_cache_skip_name(m, rdata + rdlen, &o) ||
		    !dns_cache_skip_name(m, rdata + rdlen, &o) ||
		    o + 20 != rdata + rdlen)
			return false;
		minimum = dns_cache_u32(m + o + 16);
		if (minimum < ttl)
			ttl = minimum;
		if (ttl == 0 || ttl > INT32_MAX)
			return false;
		*ttl_r = ttl > DNS_CACHE_NEG_TTL_MAX ? DNS_CACHE_NEG_TTL_MAX :
		    ttl;
		return true;
	}
	return false;
}

/* ---------------------------------------------------------------------
 * The table
 */

static void
dns_cache_drop(struct dns_cache *c, struct dns_cache_ent *e)
{
	struct dns_cache_ent **pp;

	for (pp = &c->bucket[e->hash & (c->nbucket - 1)]; *pp != e;
	    pp = &(*pp)->chain)
		;
	*pp = e->chain;
	lru_unlink(&c->use, &e->use);
	free(e->m);
	free(e);
	c->n--;
}

static struct dns_cache_ent *
dns_cache_find(struct dns_cache *c, const char *name, unsigned type,
    uint32_t h)
{
	struct dns_cache_ent *e;

	for (e = c->bucket[h & (c->nbucket - 1)]; e != NULL; e = e->chain)
		if (e->hash == h && e->type == type &&
		    strcasecmp(e->name, name) == 0)
			return e;
	return NULL;
}

bool
dns_cache_put(struct dns_cache *c, const char *name, unsigned type,
    const uint8_t *m, size_t len, uint64_t now_ms)
{
	struct dns_cache_ent *e;
	uint32_t ttl, h;

	if (strlen(name) >= sizeof(e->name) || len > DNS_CACHE_ANSWER_MAX ||
	    !dns_cache_ttl(m, len, &ttl))
		return false;
	h = dns_cache_hash(name, type);
	if ((e = dns_cache_find(c, name, type, h)) != NULL)
		dns_cache_drop(c, e);
	if (c->n >= c->max)
		dns_cache_drop(c, LRU_ENTRY(c->use.tail, struct dns_cache_ent,
		    use));
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return false;
	e->m = malloc(len);
	if (e->m == NULL) {
		free(e);
		return false;
	}
	memcpy(e->m, m, len);
	e->len = len;
	strcpy(e->name, name);
	e->type = type;
	e->hash = h;
	e->stored_ms = now_ms;
	e->expires_ms = now_ms + (uint64_t)ttl * 1000;
	e->chain = c->bucket[h & (c->nbucket - 1)];
	c->bucket[h & (c->nbucket - 1)] = e;
	lru_push(&c->use, &e->use);
	c->n++;
	return true;
}

uint8_t *
dns_cache_get(struct dns_cache *c, const char *name, unsigned type,
    uint64_t now_ms, size_t *len_r, uint32_t *age_r)
{
	struct dns_cache_ent *e;
	uint8_t *copy;

	e = dns_cache_find(c, name, type, dns_cache_hash(name, type));
	if (e == NULL)
		return NULL;
	if (now_ms >= e->expires_ms) {
		dns_cache_drop(c, e);
		return NULL;
	}
	if ((copy = malloc(e->len)) == NULL)
		return NULL;
	memcpy(copy, e->m, e->len);
	*len_r = e->len;
	*age_r = (uint32_t)((now_ms - e->stored_ms) / 1000);
	lru_touch(&c->use, &e->use);
	return copy;
}
