/*
 * dkim_tag.h - the tag=value lists of DKIM signatures and key records
 * (RFC 6376 3.2), which DMARC records reuse (RFC 7489 6.3, 6.4).
 *
 * Pure: no I/O, no allocation; tags point into the caller's text.
 */
#ifndef POSTROOM_DKIM_TAG_H
#define POSTROOM_DKIM_TAG_H

#include <stdbool.h>
#include <stddef.h>

/* Tags read from one list, at most.  RFC 6376 defines 14 signature tags;
 * a list with more than this is refused rather than cut. */
#define DKIM_TAG_MAX 32

/* One tag-spec, as offsets into the list text s. */
struct dkim_tag {
	size_t name_off, name_len;
	size_t val_off, val_len;   /* the value, FWS around it dropped */
	size_t raw_off, raw_end;   /* after the "=" up to the ";" or end:
	                            * what RFC 6376 3.7 empties for b= */
};

/*
 * Parses the tag-list s[0..len) into at most max tags in t.  A tag-name
 * is ALPHA *(ALPHA / DIGIT / "_"); the value runs to the next ";" with
 * FWS (spaces, tabs, CR, LF) around it dropped; empty tag-specs (";;"
 * and a final ";") are skipped.  Returns the number of tags, or
 * PR_EINVAL for a syntax error or a tag named twice (RFC 6376 3.2:
 * "Tags with duplicate names MUST NOT occur"), or PR_ENOSPC for more
 * than max tags.
 */
int dkim_tag_parse(const char *s, size_t len, struct dkim_tag *t,
    size_t max);

/* The tag named name (case-sensitive, RFC 6376 3.2) among t[0..n), or
 * NULL. */
const struct dkim_tag *dkim_tag_find(const char *s, const struct dkim_tag *t,
    size_t n, const char *name);

/* True if the value of tag is exactly word (case-insensitive when nocase
 * is true). */
bool dkim_tag_is(const char *s, const struct dkim_tag *tag,
    const char *word, bool nocase);

#endif
