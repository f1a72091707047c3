/*
 * xtext.h - the xtext encoding of DSN parameters (RFC 3461 4), pure.
 *
 * ENVID= and ORCPT= carry their values as xtext: printable ASCII from
 * "!" to "~" except "+" and "=", which stand for themselves, and "+XX"
 * (two upper-case hex digits) for any other octet.  The decoded values
 * end up in header fields of reports (RFC 3464 2.2.1, 2.3.1), so the
 * decoder refuses control characters: a CR or LF there would start a
 * field of the sender's choosing.
 */
#ifndef POSTROOM_XTEXT_H
#define POSTROOM_XTEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Decodes in[0..len) into out (outsz bytes, NUL-terminated).  With utf8,
 * octets of 0x80 and above stand for themselves (RFC 6533 3, the
 * utf-8-addr-unitext of an SMTPUTF8 ORCPT).  Returns the decoded length,
 * PR_EINVAL for malformed xtext or a decoded control character or NUL,
 * PR_ENOSPC when it does not fit.
 */
int xtext_decode(const char *in, size_t len, bool utf8, char *out,
    size_t outsz);

/*
 * Encodes the NUL-terminated in as xtext into out (outsz bytes,
 * NUL-terminated); with utf8, octets of 0x80 and above stay as they are
 * (RFC 6533 3, for a server that took SMTPUTF8).  Returns the length or
 * PR_ENOSPC.
 */
int xtext_encode(const char *in, bool utf8, char *out, size_t outsz);

#endif
