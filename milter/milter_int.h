/*
 * milter_int.h - helpers shared by the files of milter/.
 */
#ifndef POSTROOM_MILTER_INT_H
#define POSTROOM_MILTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The end of the header field starting at h[pos] within h[0..len): past
 * its last continuation line (RFC 5322 2.2.3). */
size_t milter_field_end(const uint8_t *h, size_t len, size_t pos);

/*
 * An RFC 3463 enhanced status code "c.s.d" at the start of s[0..len),
 * followed by a space or the end, whose class c is cls.  Copies it to
 * out (when not NULL) and sets *skip to the octets it and its space
 * take.  Returns false when there is none.
 */
bool milter_enh(const char *s, size_t len, char cls, char *out,
    size_t outsz, size_t *skip);

#endif
