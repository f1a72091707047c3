/*
 * milter_head.c - the header section: where it ends, its fields, and
 * the header changes a filter asked for (milter.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "milter.h"
#include "milter_int.h"

size_t
milter_head_len(const uint8_t *msg, size_t len, size_t *body_r)
{
	size_t pos = 0;

	/* The header ends at the first empty line (RFC 5322 2.1). */
	while (pos < len) {
		const uint8_t *lf = memchr(msg + pos, '\n', len - pos);

		if (lf == NULL)
			break;
		if ((size_t)(lf - msg) == pos ||
		    ((size_t)(lf - msg) == pos + 1 && msg[pos] == '\r')) {
			*body_r = (size_t)(lf - msg) + 1;
			return pos;
		}
		pos = (size_t)(lf - msg) + 1;
	}
	*body_r = len;
	return len;
}

size_t
milter_field_end(const uint8_t *h, size_t len, size_t pos)
{
	while (pos < len) {
		const uint8_t *lf = memchr(h + pos, '\n', len - pos);

		if (lf == NULL)
			return len;
		pos = (size_t)(lf - h) + 1;
		if (pos < len && h[pos] != ' ' && h[pos] != '\t')
			return pos;
	}
	return len;
}

size_t
milter_field_len(const uint8_t *h, size_t len)
{
	return milter_field_end(h, len, 0);
}

bool
milter_enh(const char *s, size_t len, char cls, char *out, size_t outsz,
    size_t *skip)
{
	size_t i = 0, part, digits;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return false;
	i = 2;
	for (part = 0; part < 2; part++) {
		digits = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 3) {
			i++;
			digits++;
		}
		if (digits == 0)
			return false;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return false;
	if (out != NULL) {
		if (i + 1 > outsz)
			return false;
		memcpy(out, s, i);
		out[i] = '\0';
	}
	*skip = i < len ? i + 1 : i;
	return true;
}

/* A field of the new header: the octets of an original one, or a name
 * and value from an edit. */
struct milter_field {
	const uint8_t *raw;
	size_t raw_len;
	const char *name, *value;
};

static bool
milter_field_is(const struct milter_field *f, const char *name)
{
	size_t n = strlen(name);

	if (f->raw == NULL)
		return strcasecmp(f->name, name) == 0;
	return f->raw_len > n && f->raw[n] == ':' &&
	    strncasecmp((const char *)f->raw, name, n) == 0;
}

/* Appends "name: value\r\n", LF line breaks as CRLF and folding white
 * space where the filter left none (RFC 5322 2.2.3). */
static int
milter_field_put(struct buf *out, const char *name, const char *value,
    bool leadspc)
{
	const char *v;
	int r;

	if ((r = buf_printf(out, "%s:%s", name, leadspc ? "" : " ")) < 0)
		return r;
	for (v = value; *v != '\0'; v++) {
		if (*v == '\r')
			continue;
		if (*v == '\n') {
			if ((r = buf_append(out, "\r\n", 2)) < 0)
				return r;
			if (v[1] != ' ' && v[1] != '\t' && v[1] != '\0' &&
			    (r = buf_append(out, "\t", 1)) < 0)
				return r;
			continue;
		}
		if ((r = buf_append(out, v, 1)) < 0)
			return r;
	}
	return buf_append(out, "\r\n", 2);
}

static int
milter_fields_insert(struct milter_field **fs, size_t *n, size_t *cap,
    size_t at, const struct milter_field *f)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		struct milter_field *p = realloc(*fs, nc * sizeof(*p));

		if (p == NULL)
			return PR_ENOMEM;
		*fs = p;
		*cap = nc;
	}
	if (at > *n)
		at = *n;
	memmove(*fs + at + 1, *fs + at, (*n - at) * sizeof(**fs));
	(*fs)[at] = *f;
	(*n)++;
	return 0;
}

int
milter_head_apply(const uint8_t *head, size_t len,
    const struct milter_edit *edits, size_t n_edits, bool leadspc,
    struct buf *out)
{
	struct milter_field *fs = NULL, f;
	size_t n = 0, cap = 0, pos = 0, i, j, seen;
	int r = 0;

	while (r == 0 && pos < len) {
		size_t end = milter_field_end(head, len, pos);

		memset(&f, 0, sizeof(f));
		f.raw = head + pos;
		f.raw_len = end - pos;
		r = milter_fields_insert(&fs, &n, &cap, n, &f);
		pos = end;
	}
	for (i = 0; r == 0 && i < n_edits; i++) {
		const struct milter_edit *e = &edits[i];

		memset(&f, 0, sizeof(f));
		f.name = e->name;
		f.value = e->value;
		switch (e->kind) {
		case MILTER_ADDHDR:
			r = milter_fields_insert(&fs, &n, &cap, n, &f);
			break;
		case MILTER_INSHDR:
			r = milter_fields_insert(&fs, &n, &cap, e->idx, &f);
			break;
		case MILTER_CHGHDR:
			/* The idx-th field of that name, 1-based (0 reads
			 * as 1); none such: a value is added. */
			seen = 0;
			for (j = 0; j < n; j++)
				if (milter_field_is(&fs[j], e->name) &&
				    ++seen >= (e->idx ? e->idx : 1))
					break;
			if (j < n && e->value[0] == '\0') {
				memmove(fs + j, fs + j + 1,
				    (n - j - 1) * sizeof(*fs));
				n--;
			} else if (j < n) {
				fs[j] = f;
			} else if (e->value[0] != '\0') {
				r = milter_fields_insert(&fs, &n, &cap, n,
				    &f);
			}
			break;
		default:
			break;
		}
	}
	for (i = 0; r == 0 && i < n; i++)
		r = fs[i].raw != NULL ? buf_append(out, fs[i].raw,
		    fs[i].raw_len) : milter_field_put(out, fs[i].name,
		    fs[i].value, leadspc);
	free(fs);
	return r;
}
