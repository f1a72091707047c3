/*
 * dkim_field.c - header fields of a message (RFC 5322 2.2) and the From:
 * domain (RFC 7489 3.1).
 */
#include "dkim_field.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "addr_list.h"
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

/*
 * The value is an RFC 5322 3.4 address-list, read by addr_list_parse(): a
 * "<" or "@" in a display name, a quoted string or a comment names no
 * domain.  With several mailboxes (RFC 5322 3.6.2) they must share the
 * domain, or there is no one domain to sign for.
 */
int
dkim_field_from_domain(const uint8_t *head, size_t len, char *out,
    size_t outsz)
{
	struct dkim_field *f;
	char (*addrs)[ADDR_MAX] = NULL;
	const char *v, *dom;
	size_t nf, i, n, na;
	int r = PR_ENOENT;

	f = calloc(DKIM_FIELD_MAX, sizeof(*f));
	addrs = calloc(DKIM_FIELD_FROM_MAX, sizeof(*addrs));
	if (f == NULL || addrs == NULL) {
		free(f);
		free(addrs);
		return PR_ENOMEM;
	}
	nf = dkim_field_split(head, len, f, DKIM_FIELD_MAX);
	for (i = 0; i < nf; i++) {
		if (!dkim_field_is(head, &f[i], "from"))
			continue;
		v = memchr(head + f[i].off, ':', f[i].len);
		if (v == NULL)
			break;
		v++;
		n = f[i].len - (size_t)(v - (const char *)head - f[i].off);
		if (addr_list_parse(v, n, addrs, DKIM_FIELD_FROM_MAX,
		    &na) < 0 || na == 0)
			break;
		dom = addr_domain(addrs[0]);
		for (n = 1; n < na; n++)
			if (strcmp(addr_domain(addrs[n]), dom) != 0)
				break;
		/* Only a domain name can be a d= (RFC 6376 3.5): not a domain
		 * literal ("[192.0.2.1]", RFC 5321 4.1.3), nothing empty.
		 * Domains compare without case: lower case out. */
		if (n < na || !addr_domain_valid(dom, strlen(dom), true) ||
		    strlen(dom) >= outsz)
			break;
		for (n = 0; dom[n] != '\0'; n++)
			out[n] = (char)tolower((unsigned char)dom[n]);
		out[n] = '\0';
		r = 0;
		break;
	}
	free(addrs);
	free(f);
	return r;
}
