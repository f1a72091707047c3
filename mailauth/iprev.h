/*
 * iprev.h - the "iprev" check of RFC 8601 3: the client's address is
 * looked up in the reverse tree (PTR, RFC 1035 3.5 and RFC 3596 2.5),
 * each name found forward (A or AAAA), and one of them must lead back
 * to the address.  DNS through the resolver interface, like SPF.
 */
#ifndef POSTROOM_IPREV_H
#define POSTROOM_IPREV_H

#include <stddef.h>

#include "resolver.h"

/* PTR names looked up forward at most (RFC 7208 5.5 bounds the same
 * walk at 10; a client rarely has more than one). */
#define IPREV_NAMES_MAX 4

/* RFC 8601 2.7.3. */
enum iprev_result {
	IPREV_PASS = 0,     /* a name leads back to the address */
	IPREV_FAIL,         /* no PTR, or none leads back */
	IPREV_TEMPERROR,    /* a lookup failed for now and none passed */
};

/* "pass", "fail", "temperror". */
const char *iprev_result_str(enum iprev_result r);

/* The reversed name of ip under suffix ("in-addr.arpa", "ip6.arpa" or a
 * DNS block list's zone, RFC 5782 2.1 and 2.4) into out.  Returns 0, or
 * PR_EINVAL for an address that does not parse or a name too long. */
int iprev_revname(const char *ip, const char *suffix, char *out,
    size_t outsz);

/* Called once with the result and the confirmed name ("" if none),
 * valid during the call.  The callback may free the check. */
typedef void (*iprev_cb)(void *data, enum iprev_result r, const char *name);

struct iprev;

/*
 * Starts the check of ip over r (borrowed until iprev_free()).  Returns
 * 0, and then cb runs exactly once, later, from a resolver callback; or
 * PR_EINVAL (not an address) / PR_ENOMEM, and then cb never runs.
 */
int iprev_new(struct resolver *r, const char *ip, iprev_cb cb, void *data,
    struct iprev **x_r);

/* Frees x, cancelling its lookups (cb does not run then), and sets *x to
 * NULL; NULL is a no-op. */
void iprev_free(struct iprev **x);

#endif
