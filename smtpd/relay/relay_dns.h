/*
 * relay_dns.h - where to deliver: MX and address lookups with c-ares on
 * the daemon's libuv loop (the channel of common/dns.h).
 */
#ifndef POSTROOM_RELAY_DNS_H
#define POSTROOM_RELAY_DNS_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "err.h"
#include "relay_mx.h"

/* Addresses tried per delivery at most (Postfix smtp_mx_address_limit
 * is 5; two per MX host of a typical pair is plenty). */
#define RELAY_TARGETS_MAX 10

struct relay_target {
	char host[RELAY_HOST_MAX];        /* MX host name or literal */
	struct sockaddr_storage addr;     /* port filled in */
	socklen_t addrlen;
	unsigned pref;
	/* The MX RRset (or, without MX, its authenticated denial) and the
	 * host's A and AAAA answers were DNSSEC-validated: the host may
	 * have DANE (RFC 7672 2.2.1, 2.2.2).  Never for a smarthost. */
	bool secure;
	/* For a secure host that is a CNAME alias: the end of its chain,
	 * where TLSA records are looked for first (RFC 7672 2.2.3); "" for
	 * none. */
	char canon[RELAY_HOST_MAX];
};

enum relay_route_status {
	RELAY_ROUTE_OK = 0,
	RELAY_ROUTE_TEMP,   /* DNS trouble: retry later */
	RELAY_ROUTE_PERM,   /* NXDOMAIN, null MX, no address: bounce */
	RELAY_ROUTE_CANCELLED, /* the resolver is shutting down */
};

struct relay_route {
	enum relay_route_status status;
	char error[256];    /* why, for TEMP and PERM */
	char status_code[16]; /* RFC 3463 status for TEMP and PERM */
	size_t n;
	struct relay_target t[RELAY_TARGETS_MAX]; /* in the order to try */
};

struct dns;
struct relay_dns;

/* Makes the relay's lookups on dns, the daemon's resolver (common/dns.h,
 * [dns] in postroom.conf(5)), which is borrowed: it stays open until
 * relay_dns_close()'s done_cb or is closed first (see there). */
struct relay_dns *relay_dns_new(uv_loop_t *loop, struct dns *dns);

/* Closes d: new lookups complete with RELAY_ROUTE_CANCELLED at once, and
 * those in flight when they are answered or when the daemon closes dns
 * (which answers them all, also RELAY_ROUTE_CANCELLED).  Then done_cb
 * runs, before this returns if nothing is in flight, and d is freed
 * after it returns. */
void relay_dns_close(struct relay_dns *d, void (*done_cb)(void *data),
    void *data);

typedef void (*relay_dns_cb)(void *data, const struct relay_route *rt);

/*
 * Finds the targets for mail to domain on port: its MX hosts by
 * preference (equal ones shuffled, RFC 5321 5.1) and their addresses, or
 * the domain itself when it has no MX (the implicit MX).  When the MX
 * answer is DNSSEC-validated, each host's A and AAAA answers are asked
 * for through the validating resolver too, to set its targets' secure.  A null MX (RFC
 * 7505) or NXDOMAIN is PERM, a DNS failure TEMP.  cb runs exactly once,
 * from the loop, never before this returns; rt is valid during cb only.
 */
void relay_dns_route(struct relay_dns *d, const char *domain, unsigned port,
    relay_dns_cb cb, void *data);

/* The addresses of one host (a smarthost), literal or name. */
void relay_dns_host(struct relay_dns *d, const char *host, unsigned port,
    relay_dns_cb cb, void *data);

/* The daemon's resolver (common/dns.c) behind d, for the relay's other
 * lookups (TLSA, relay_dane.c). */
struct resolver *relay_dns_resolver(struct relay_dns *d);

/* "127.0.0.1", "::1": the address of a target as text (out 64 bytes). */
void relay_dns_addr_str(const struct relay_target *t, char *out,
    size_t outsz);

#endif
