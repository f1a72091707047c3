/*
 * addr.h - RFC 5321 mailbox and path syntax.
 *
 * Addresses are handled in a canonical form: the local part as written
 * (quoted local parts keep their quotes), '@', and the domain in lower case.
 * Hosted-domain lookups lower-case the local part too (see store.h).
 */
#ifndef POSTROOM_ADDR_H
#define POSTROOM_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.1-3: local part 64, domain 255, path 256 octets. */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_MAX 256 /* buffer size for a canonical address incl. NUL */

/*
 * Parses a Mailbox (RFC 5321 4.1.2: Local-part "@" ( Domain / address-literal ))
 * from s[0..len) in full.  With utf8, UTF-8 is allowed in both parts
 * (RFC 6531).  Writes the canonical form to out (ADDR_MAX bytes).
 * Returns 0 or PR_EINVAL.
 */
int addr_parse_mailbox(const char *s, size_t len, bool utf8, char *out);

/*
 * Parses a Reverse-path or Forward-path at the start of s: "<" [A-d-l ":"]
 * Mailbox ">" (the source route is accepted and ignored, RFC 5321 4.1.1.3
 * and Appendix C).  With allow_null, "<>" yields an empty out.  Sets
 * *consumed to the octets up to and including ">".  Returns 0 or PR_EINVAL.
 */
int addr_parse_path(const char *s, size_t len, bool allow_null, bool utf8,
    char *out, size_t *consumed);

/* Validates a domain name (letters, digits, hyphens, dots; 1..255 octets;
 * labels up to 63; no leading/trailing hyphen; UTF-8 labels allowed when
 * utf8).  Returns true when valid. */
bool addr_domain_valid(const char *d, size_t len, bool utf8);

/* Returns a pointer to the domain part of a canonical address (after the
 * last '@'), or NULL. */
const char *addr_domain(const char *addr);

/* Lower-cases ASCII letters of s in place. */
void addr_lower(char *s);

#endif
