/*
 * dns.h - the daemons' DNS: c-ares on a libuv loop, behind the resolver
 * interface of mailauth/resolver.h (SPF, DKIM keys, DMARC, DNS block
 * lists).
 *
 * c-ares does the transport (UDP, TCP when an answer is truncated,
 * retransmission, the timeout); this module builds the queries, reads
 * the answers itself (RFC 1035 4.1), follows CNAME chains (RFC 1034
 * 3.6.2) and bounds what it hands on.
 */
#ifndef POSTROOM_DNS_H
#define POSTROOM_DNS_H

#include <ares.h>
#include <uv.h>

#include "err.h"
#include "resolver.h"

/* Records handed on per answer at most; the rest are dropped (an SPF
 * "mx" term looks at 10 at most, RFC 7208 4.6.4). */
#define DNS_ANSWER_MAX 64
/* Character-strings per TXT record at most (RFC 1035 3.3.14): 8 KiB,
 * four times a 2048-bit DKIM key; a record of more is dropped. */
#define DNS_TXT_STRINGS_MAX 32
/* CNAMEs followed per query at most (RFC 1034 3.6.2 leaves the bound to
 * the resolver; loops are cut by it). */
#define DNS_CNAME_MAX 8

struct dns;

/*
 * Makes a resolver on loop.  server is "" for the system's
 * (/etc/resolv.conf) or "ip", "ip:port", "[v6]:port" to ask only that
 * server ([dns] resolver, for tests); timeout_ms bounds each lookup
 * ([dns] timeout): its answer, or RESOLVER_TIMEOUT, comes within
 * timeout_ms of resolver_query(), however many servers c-ares tries and
 * however long a CNAME chain it follows.  Returns 0, or PR_EINVAL (bad
 * server) or PR_EIO with err set.
 */
int dns_new(uv_loop_t *loop, const char *server, unsigned timeout_ms,
    struct dns **d_r, struct pr_err *err);

/* The resolver.h view of d, valid until dns_close() completes.  Answers
 * come from the loop, never from within resolver_query(). */
struct resolver *dns_resolver(struct dns *d);

/* Closes d: queries still in flight are answered RESOLVER_TIMEOUT
 * (those cancelled are not), the handles close, then done_cb (if not
 * NULL) runs on the loop and d is freed. */
void dns_close(struct dns *d, void (*done_cb)(void *data), void *data);

/* The c-ares channel, for lookups this module does not make itself (the
 * relay's MX and address lookups).  After each request, dns_kick() so
 * that the loop watches what c-ares now waits for.  At dns_close() the
 * channel's callbacks run with ARES_EDESTRUCTION. */
ares_channel dns_channel(struct dns *d);
void dns_kick(struct dns *d);

/* Parses "ip", "ip:port", "[v6]:port", "v6" into host (no brackets) and
 * port (53 when not given).  Returns 0 or PR_EINVAL. */
int dns_parse_server(const char *s, char *host, size_t hostsz,
    unsigned *port_r);

#endif
