/*
 * dkim_field.c - header fields of a message (RFC 5322 2.2) and the From:
 * domain (RFC 7489 3.1).
 */
#include "dkim_field.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

size_t
dkim_field_split(const uint8_t *head, size_t len, struct dkim_field *f,
    size_t max)
{
	size_t i = 0, n = 0, end, k;

	while (i < len && n < max) {
		/* RFC 5322 2.2.3: a field runs to the CRLF not followed by
		 * WSP. */
		end = i;
		for (;;) {
			while (end < len && head[end] != '\n')
				end++;
			if (end + 1 < len &&
			    (head[end + 1] == ' ' || head[end + 1] == '\t')) {
				end++;
				continue;
			}
			break;
		}
		f[n].off = i;
		f[n].len = end - i;
		if (f[n].len > 0 && head[i + f[n].len - 1] == '\r')
			f[n].len--;
		f[n].name_len = 0;
		while (f[n].name_len < f[n].len &&
		    head[i + f[n].name_len] != ':' &&
		    head[i + f[n].name_len] != ' ' &&
		    head[i + f[n].name_len] != '\t')
			f[n].name_len++;
		/* RFC 5322 2.2: a name, then the colon (with WSP before it
		 * in the obsolete syntax, 4.5); "From x" is no field. */
		for (k = f[n].name_len; k < f[n].len &&
		    (head[i + k] == ' ' || head[i + k] == '\t'); k++)
			;
		if (f[n].name_len > 0 && k < f[n].len && head[i + k] == ':')
			n++;
		i = end + 1;
	}
	return n;
}

bool
dkim_field_is(const uint8_t *head, const struct dkim_field *f,
    const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n &&
	    strncasecmp((const char *)head + f->off, name, n) == 0;
}

int
dkim_field_from_domain(const uint8_t *head, size_t len, char *out,
    size_t outsz)
{
	struct dkim_field *f;
	const char *v, *end, *lt, *at, *p;
	char val[1024];
	size_t nf, i, n, o;
	int r = PR_ENOENT;

	f = calloc(DKIM_FIELD_MAX, sizeof(*f));
	if (f == NULL)
		return PR_ENOMEM;
	nf = dkim_field_split(head, len, f, DKIM_FIELD_MAX);
	for (i = 0; i < nf; i++) {
		if (!dkim_field_is(head, &f[i], "from"))
			continue;
		v = memchr(head + f[i].off, ':', f[i].len);
		if (v == NULL)
			break;
		n = f[i].len - (size_t)(v + 1 - (const char *)head - f[i].off);
		if (n >= sizeof(val))
			n = sizeof(val) - 1;
		memcpy(val, v + 1, n);
		val[n] = '\0';
		/* "Name <local@domain>" or a bare "local@domain". */
		lt = strchr(val, '<');
		p = lt != NULL ? lt + 1 : val;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		end = p + strcspn(p, lt != NULL ? ">" : ",;() \t\r\n");
		at = NULL;
		for (const char *q = p; q < end; q++)
			if (*q == '@')
				at = q;
		if (at == NULL)
			break;
		n = (size_t)(end - at - 1);
		if (n == 0 || n >= outsz)
			break;
		for (o = 0; o < n; o++)
			out[o] = (char)tolower((unsigned char)at[1 + o]);
		out[n] = '\0';
		r = 0;
		break;
	}
	free(f);
	return r;
}
