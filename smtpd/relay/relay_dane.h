/*
 * relay_dane.h - DANE for SMTP (RFC 7672) in a delivery (relay_dlv.c).
 *
 * After the route lookup, each MX host whose MX RRset and addresses were
 * DNSSEC-validated (relay_target.secure) gets a TLSA lookup at
 * _PORT._tcp.HOST through the validating resolver.  Its answer decides
 * how the host is used:
 *
 *   validated records, some usable   TLS required, the certificate
 *                                    verified against them (DANE-EE,
 *                                    DANE-TA), nothing else
 *   validated records, none usable   TLS required, unauthenticated
 *                                    (RFC 7672 2.2, 3.1.3)
 *   validated denial, or insecure    no DANE: as without (opportunistic
 *                                    TLS, or MTA-STS)
 *   lookup failure (SERVFAIL, bogus, timeout)
 *                                    the host is not used (2.1.1)
 *
 * Every failure under DANE leaves a reason that starts "TLS policy dane: "
 * (status 4.7.5), and every session under a TLSA policy is noted for
 * TLS-RPT (relay_tlsrpt.h).
 */
#ifndef POSTROOM_RELAY_DANE_H
#define POSTROOM_RELAY_DANE_H

#include <stdbool.h>
#include <stddef.h>

#include "relay_client.h"
#include "relay_dns.h"
#include "relay_mx.h"
#include "tlsa.h"

/* TLSA records kept per host at most (more are dropped). */
#define RELAY_DANE_RR_MAX 8

enum relay_dane_state {
	RELAY_DANE_NONE = 0,
	RELAY_DANE_USABLE,
	RELAY_DANE_TLS_ONLY,
	RELAY_DANE_FAILED,
};

struct relay_dane_host {
	char host[RELAY_HOST_MAX];
	char qname[RELAY_HOST_MAX + 16];   /* "_25._tcp.mx.example.net" */
	/* The TLSA base domain (RFC 7672 2.2.3): the end of the host's
	 * CNAME chain when TLSA records are there, else the host. */
	char base[RELAY_HOST_MAX];
	unsigned port;
	bool at_canon;                     /* qname is below base's alias */
	enum relay_dane_state state;
	char error[RELAY_REPLY_MAX];       /* for RELAY_DANE_FAILED */
	size_t n;
	struct tlsa_rr rr[RELAY_DANE_RR_MAX]; /* data owned */
	char *policy;      /* the records in presentation form, '\n'-separated */
	struct relay_dane *dn;
};

/* The TLSA answers of one delivery's route. */
struct relay_dane {
	struct relay_dlv *d;
	size_t n, pending;
	struct relay_dane_host h[RELAY_MX_MAX];
};

struct relay_dlv;

/* Before the first target: starts the TLSA lookups of d's route if
 * [relay] dane is on and some target is secure, and returns true;
 * relay_dlv_next_target() runs again when they are answered.  False
 * when there is nothing to look up (or it was done). */
bool relay_dane_prepare(struct relay_dlv *d);

/* Before connecting to target t: sets d's DANE policy for it (d->dane_host
 * and whether TLS is required).  Returns false when t must be skipped
 * (its TLSA lookup failed); the reason is then d->last_error. */
bool relay_dane_target(struct relay_dlv *d, const struct relay_target *t);

/* True when the current target is under DANE (records found). */
bool relay_dane_active(const struct relay_dlv *d);

/* The STARTTLS handshake under the current target's DANE policy
 * (common/net.h net_conn_starttls_client_dane).  Returns as it does. */
int relay_dane_starttls(struct relay_dlv *d);

/* The handshake under DANE ended: ok, or failed with why (rewritten
 * into "TLS policy dane: ..." in why[0..whysz)).  Logs, traces and
 * notes the result for TLS-RPT. */
void relay_dane_tls_done(struct relay_dlv *d, bool ok, char *why,
    size_t whysz);

/* The session of the current target ended before TLS: if DANE required
 * it and the host offered no STARTTLS, the client's error becomes the
 * DANE reason and the result is noted for TLS-RPT. */
void relay_dane_session_end(struct relay_dlv *d);

void relay_dane_free(struct relay_dane *dn);

#endif
