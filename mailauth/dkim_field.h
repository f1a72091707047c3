/*
 * dkim_field.h - the header section of a message as a list of fields
 * (RFC 5322 2.2), for DKIM signing and verification (RFC 6376 3.7, 5.4).
 *
 * Pure: no I/O, no allocation beyond what the caller passes in.
 */
#ifndef POSTROOM_DKIM_FIELD_H
#define POSTROOM_DKIM_FIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header fields looked at, at most; a header section with more is cut
 * there (RFC 5322 sets no limit, so one is needed here). */
#define DKIM_FIELD_MAX 1000
/* Mailboxes of a From: field read, at most (RFC 5322 3.6.2). */
#define DKIM_FIELD_FROM_MAX 32

/* One field of a header section, as offsets into it. */
struct dkim_field {
	size_t off, len;   /* raw field, folding kept, without the final CRLF */
	size_t name_len;   /* the name, before optional WSP and ':' */
};

/*
 * Splits the header section head[0..len) (fields with their CRLFs, the
 * empty line not included) into at most max fields in f.  A field runs
 * to the line end that is not followed by WSP (RFC 5322 2.2.3); a line
 * without a colon is skipped.  Returns the number of fields found.
 */
size_t dkim_field_split(const uint8_t *head, size_t len,
    struct dkim_field *f, size_t max);

/* True if field f of head is named name (case-insensitive, RFC 5322
 * 1.2.2). */
bool dkim_field_is(const uint8_t *head, const struct dkim_field *f,
    const char *name);

/*
 * Finds the domain of the addresses in the (first) From: field of the
 * header section head[0..len), an RFC 5322 3.4 address-list, lower-cased,
 * into out (outsz bytes).  This is the author domain that DMARC aligns
 * with (RFC 7489 3.1).  Returns 0, PR_ENOENT when there is no From:
 * field, it does not parse, or its mailboxes are in different domains,
 * or PR_ENOMEM.
 */
int dkim_field_from_domain(const uint8_t *head, size_t len, char *out,
    size_t outsz);

#endif
