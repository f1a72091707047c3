/*
 * resolver.h - the DNS that mailauth/ sees: one asynchronous query for a
 * name and a type, answered through a callback with the rcode and the
 * records.  DKIM key records (RFC 6376 3.6.2), SPF (RFC 7208 4, 5) and
 * DMARC (RFC 7489 6.1) need nothing more.
 *
 * An interface, not an implementation: the daemon backs it with c-ares
 * on its libuv loop, unit tests with a table (tests/lib/resolver_table.h),
 * so mailauth/ itself never touches a socket or a loop.
 */
#ifndef POSTROOM_RESOLVER_H
#define POSTROOM_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Record types asked for (RFC 1035 3.2.2, RFC 3596 2.1). */
enum resolver_type {
	RESOLVER_A = 1,
	RESOLVER_PTR = 12,
	RESOLVER_MX = 15,
	RESOLVER_TXT = 16,
	RESOLVER_AAAA = 28,
	RESOLVER_TLSA = 52,     /* RFC 6698 7.1 */
};

/*
 * The outcome of a query: an RCODE of RFC 1035 4.1.1, or RESOLVER_TIMEOUT
 * when no server answered in time.  SPF maps SERVFAIL and a timeout to
 * temperror (RFC 7208 2.6.6), NXDOMAIN and an empty NOERROR answer to
 * "no record" (4.3, 4.4).
 */
enum resolver_rcode {
	RESOLVER_TIMEOUT = -1,
	RESOLVER_NOERROR = 0,
	RESOLVER_FORMERR = 1,
	RESOLVER_SERVFAIL = 2,
	RESOLVER_NXDOMAIN = 3,
	RESOLVER_REFUSED = 5,
};

/* A TXT record: one or more character-strings (RFC 1035 3.3.14), each
 * up to 255 octets and not NUL-terminated.  DKIM and SPF concatenate
 * them without a separator (RFC 6376 3.6.2.2, RFC 7208 3.3). */
struct resolver_txt {
	size_t n;
	const uint8_t *const *s;
	const size_t *len;
};

/* One answer record; the member that type names is set. */
struct resolver_rr {
	enum resolver_type type;
	uint32_t ttl;
	union {
		uint8_t a[4];           /* RESOLVER_A, network order */
		uint8_t aaaa[16];       /* RESOLVER_AAAA */
		struct {
			uint16_t pref;
			const char *host;   /* no trailing dot; "" = "." */
		} mx;                   /* RESOLVER_MX (RFC 7505: "" null MX) */
		const char *ptr;        /* RESOLVER_PTR, no trailing dot */
		struct resolver_txt txt; /* RESOLVER_TXT */
		struct {
			uint8_t usage, selector, mtype;
			const uint8_t *data; /* certificate association data */
			size_t len;
		} tlsa;                 /* RESOLVER_TLSA (RFC 6698 2.1) */
	} u;
};

/* A query's answer: records of the type asked for only (CNAMEs already
 * followed), in the order the server gave them.  n is 0 unless rcode is
 * RESOLVER_NOERROR.
 *
 * secure: the validating resolver set the AD bit (RFC 4035 3.2.3) on
 * the answer and on every answer of the CNAME chain followed to it, so
 * the records, or their authenticated denial (NXDOMAIN, NODATA), are
 * DNSSEC-validated.  The query asks for it with AD (RFC 6840 5.7); the
 * resolver is trusted to have validated (RFC 6840 5.8: a local one).
 * name: where the records were found, the end of the CNAME chain from
 * the name asked for (RFC 7672 2.2.3 looks there first); NULL when
 * unknown (read it as the name asked for). */
struct resolver_answer {
	enum resolver_rcode rcode;
	size_t n;
	const struct resolver_rr *rr;
	bool secure;
	const char *name;
};

/* Called once per query with its answer, which (and every pointer in
 * it) is valid during the call only. */
typedef void (*resolver_cb)(void *data, const struct resolver_answer *ans);

struct resolver;

/* What an implementation provides; see resolver_query() and
 * resolver_cancel() for the contract. */
struct resolver_ops {
	int (*query)(struct resolver *r, const char *name,
	    enum resolver_type type, resolver_cb cb, void *data);
	void (*cancel)(struct resolver *r, void *data);
};

/* Implementations embed this first in their own struct. */
struct resolver {
	const struct resolver_ops *ops;
};

/*
 * Asks for the records of type at name (without a trailing dot;
 * case-insensitive, RFC 4343).  Returns 0, and then cb runs exactly once
 * with data, later: never from within this call, so a caller may start
 * several queries before any answer comes.  Returns PR_EINVAL (a name
 * that is not a domain name, RFC 1035 2.3.4) or PR_ENOMEM, and then cb
 * never runs.
 */
static inline int
resolver_query(struct resolver *r, const char *name, enum resolver_type type,
    resolver_cb cb, void *data)
{
	return r->ops->query(r, name, type, cb, data);
}

/* Forgets the queries in flight that were made with data: their
 * callbacks never run.  For a caller that goes away (a session that
 * ends) before its answers come. */
static inline void
resolver_cancel(struct resolver *r, void *data)
{
	r->ops->cancel(r, data);
}

#endif
