/*
 * domain.h - one form for a domain name: the IDNA2008 A-label form.
 *
 * A hosted domain may be typed, sent or found in a header as a U-label
 * (exämple.org) or as its A-label (xn--exmple-cua.org); both are one
 * domain (RFC 5890 2.3.2.1).  Every place that compares or looks up a
 * domain (the CLI, RCPT, the MX lookup, the DKIM d= domain) passes it
 * through domain_normalize first, and the store keeps that form: A-labels
 * are what DNS holds and what a non-SMTPUTF8 peer can be given (RFC 6531
 * 3.2), and lower-case ASCII compares with strcmp.
 */
#ifndef POSTROOM_DOMAIN_H
#define POSTROOM_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Writes the normal form of the domain d[0..len) into out (outsz octets,
 * ADDR_DOMAIN_MAX + 1 is always enough): UTS #46 mapping (non-transitional)
 * and IDNA2008 conversion to A-labels with libidn2, then lower case; the
 * result must be a valid LDH name (addr_domain_valid).  An address
 * literal ("[192.0.2.1]", "[IPv6:...]", RFC 5321 4.1.3) is copied as it
 * is.  Returns 0, or PR_EINVAL for a name that is not valid (or does not
 * fit).
 */
int domain_normalize(const char *d, size_t len, char *out, size_t outsz);

/* True when d (no brackets) is an IPv4 or IPv6 address, or a dotted name
 * whose last label is all digits: no top-level domain is (RFC 3696 2), so
 * it is an address someone typed for a domain. */
bool domain_is_ip(const char *d);

#endif
