/*
 * dkim_canon.h - DKIM header canonicalisation, "simple" and "relaxed"
 * (RFC 6376 3.4.1, 3.4.2).  The body algorithms are in dkim_body.h.
 *
 * Pure: no I/O; output goes into a caller's bounded buffer.
 */
#ifndef POSTROOM_DKIM_CANON_H
#define POSTROOM_DKIM_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 6376 3.4: the two canonicalisation algorithms, for the header and
 * the body alike. */
enum dkim_canon {
	DKIM_CANON_SIMPLE = 0,
	DKIM_CANON_RELAXED = 1,
};

/* The algorithm's name in a c= tag ("simple", "relaxed"). */
const char *dkim_canon_name(enum dkim_canon c);

/*
 * Parses a c= tag value (RFC 6376 3.5): "h" or "h/b", where a missing
 * body part means simple.  Returns 0 and the algorithms in *hdr_r and
 * *body_r, or PR_EINVAL for an unknown name.
 */
int dkim_canon_parse(const char *s, size_t len, enum dkim_canon *hdr_r,
    enum dkim_canon *body_r);

/*
 * Appends the canonical form of one header field f[0..len), given raw
 * with its folding but without its final CRLF, followed by CRLF, to out.
 * Simple (3.4.1) keeps the field as it is; relaxed (3.4.2) lower-cases
 * the name, unfolds, turns WSP runs into one SP and drops WSP at the end
 * of the value and around the colon (a field without one is taken as
 * all name and gets one).  Returns 0, or PR_ENOSPC / PR_ENOMEM from the
 * buffer, and then out is unchanged.
 */
int dkim_canon_header(enum dkim_canon c, const uint8_t *f, size_t len,
    struct buf *out);

#endif
