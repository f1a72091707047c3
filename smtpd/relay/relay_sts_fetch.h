/*
 * relay_sts_fetch.h - the HTTPS fetch of an MTA-STS policy (RFC 8461
 * 3.3), shared by the relay (relay_sts.c) and `postroom doctor`.
 *
 * One blocking libcurl transfer of
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, bounded: 10 seconds
 * to connect, 30 in all, at most STS_POLICY_MAX octets, no redirect
 * followed, no proxy, only https.  The certificate must verify for
 * mta-sts.DOMAIN against ca_file (or the system store).  The relay runs
 * it on libuv's thread pool; the CLI on its own thread.
 */
#ifndef POSTROOM_RELAY_STS_FETCH_H
#define POSTROOM_RELAY_STS_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct sts_fetch {
	/* In. */
	const char *domain;         /* the policy domain, lower case */
	/* The address of mta-sts.DOMAIN as the caller's resolver found it
	 * ("192.0.2.1", "[2001:db8::1]"): libcurl connects there and
	 * resolves nothing itself. */
	const char *addr;
	const char *ca_file;        /* "" or NULL: the system store */
	const int *cancel;          /* atomic, may be NULL: nonzero ends it */

	/* Out. */
	char *body;                 /* STS_POLICY_MAX + 1 octets, caller's */
	size_t body_len;
	bool body_over;
	bool webpki;                /* the failure was the certificate's */
	char err[256];              /* "" when a 200 text/plain body came */
};

/* Once per process, before any fetch (curl_global_init). */
int sts_fetch_global_init(void);

/* Runs f (see above).  Returns 0 with f->err "" and the body in
 * f->body[0..f->body_len), NUL-terminated; else PR_EIO with the reason
 * in f->err. */
int sts_fetch_run(struct sts_fetch *f);

#endif
