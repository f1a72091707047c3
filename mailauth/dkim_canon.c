/*
 * dkim_canon.c - DKIM header canonicalisation (RFC 6376 3.4.1, 3.4.2).
 */
#include "dkim_canon.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "err.h"

const char *
dkim_canon_name(enum dkim_canon c)
{
	return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

static int
dkim_canon_word(const char *s, size_t len, enum dkim_canon *c_r)
{
	if (len == 6 && strncmp(s, "simple", 6) == 0)
		*c_r = DKIM_CANON_SIMPLE;
	else if (len == 7 && strncmp(s, "relaxed", 7) == 0)
		*c_r = DKIM_CANON_RELAXED;
	else
		return PR_EINVAL;
	return 0;
}

int
dkim_canon_parse(const char *s, size_t len, enum dkim_canon *hdr_r,
    enum dkim_canon *body_r)
{
	const char *slash = memchr(s, '/', len);
	size_t hlen = slash != NULL ? (size_t)(slash - s) : len;

	if (dkim_canon_word(s, hlen, hdr_r) < 0)
		return PR_EINVAL;
	/* RFC 6376 3.5: "If only one algorithm is named, that algorithm is
	 * used for the header and "simple" is used for the body." */
	if (slash == NULL) {
		*body_r = DKIM_CANON_SIMPLE;
		return 0;
	}
	return dkim_canon_word(slash + 1, len - hlen - 1, body_r);
}

/* RFC 6376 3.4.2: lower-case name, unfold, WSP runs to one SP, no WSP at
 * the end of the value or around the colon. */
static int
dkim_canon_relaxed(const uint8_t *f, size_t len, struct buf *out)
{
	size_t i = 0, start;
	bool wsp = false, any = false;
	int r;

	if ((r = buf_reserve(out, len + 3)) < 0)
		return r;
	while (i < len && f[i] != ':')
		i++;
	start = i;
	/* The name, without WSP before the colon. */
	while (start > 0 && (f[start - 1] == ' ' || f[start - 1] == '\t'))
		start--;
	for (size_t j = 0; j < start; j++)
		out->p[out->len++] = (uint8_t)tolower(f[j]);
	out->p[out->len++] = ':';
	for (i++; i < len; i++) {
		uint8_t ch = f[i];

		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == ' ' || ch == '\t') {
			wsp = true;
			continue;
		}
		if (wsp && any)
			out->p[out->len++] = ' ';
		wsp = false;
		any = true;
		out->p[out->len++] = ch;
	}
	out->p[out->len++] = '\r';
	out->p[out->len++] = '\n';
	return 0;
}

int
dkim_canon_header(enum dkim_canon c, const uint8_t *f, size_t len,
    struct buf *out)
{
	int r;

	if (c == DKIM_CANON_RELAXED)
		return dkim_canon_relaxed(f, len, out);
	/* RFC 6376 3.4.1: "The "simple" header canonicalization algorithm
	 * does not change header fields in any way." */
	if ((r = buf_reserve(out, len + 2)) < 0)
		return r;
	memcpy(out->p + out->len, f, len);
	out->len += len;
	out->p[out->len++] = '\r';
	out->p[out->len++] = '\n';
	return 0;
}
