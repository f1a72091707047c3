/* addr.c - RFC 5321 4.1.2 mailbox and path syntax (with RFC 6531 UTF-8). */
#include "addr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* Length of the well-formed UTF-8 sequence (2..4 octets) at s, or 0. */
static size_t
addr_utf8_len(const unsigned char *s, size_t len)
{
	size_t n, i;
	unsigned c = s[0];
	unsigned long cp;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (len < n)
		return 0;
	cp = c & (0xff >> (n + 1));
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

static bool
addr_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
addr_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

bool
addr_domain_valid(const char *d, size_t len, bool utf8)
{
	const unsigned char *s = (const unsigned char *)d;
	size_t i = 0, label = 0;
	unsigned char prev = '.';

	if (len == 0 || len > ADDR_DOMAIN_MAX)
		return false;
	while (i < len) {
		unsigned char c = s[i];

		if (c == '.') {
			/* RFC 5321 sub-domain: Let-dig [Ldh-str] */
			if (label == 0 || prev == '-')
				return false;
			label = 0;
			prev = c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t n;

			if (!utf8 || (n = addr_utf8_len(s + i, len - i)) == 0)
				return false;
			i += n;
			label += n;
			prev = 'a';
		} else if (addr_letdig(c)) {
			i++;
			label++;
			prev = c;
		} else if (c == '-') {
			if (label == 0)
				return false;
			i++;
			label++;
			prev = c;
		} else {
			return false;
		}
		if (label > 63)
			return false;
	}
	return label > 0 && prev != '-';
}

/* RFC 5321 4.1.3: "[" (IPv4 / "IPv6:" IPv6 / tag ":" dcontent) "]". */
static bool
addr_literal_valid(const char *d, size_t len)
{
	char tmp[ADDR_DOMAIN_MAX + 1];
	unsigned char a[16];
	size_t i;

	if (len < 3 || d[0] != '[' || d[len - 1] != ']' ||
	    len - 2 >= sizeof(tmp))
		return false;
	memcpy(tmp, d + 1, len - 2);
	tmp[len - 2] = '\0';
	if (strncasecmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, a) == 1;
	if (inet_pton(AF_INET, tmp, a) == 1)
		return true;
	/* General-address-literal: Standardized-tag ":" 1*dcontent */
	for (i = 0; tmp[i] != '\0' && tmp[i] != ':'; i++)
		if (!addr_letdig((unsigned char)tmp[i]) && tmp[i] != '-')
			return false;
	if (i == 0 || tmp[i] != ':' || tmp[i + 1] == '\0')
		return false;
	for (i++; tmp[i] != '\0'; i++) {
		unsigned char c = (unsigned char)tmp[i];

		if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\')
			return false;
	}
	return true;
}

/* Validates the local part s[0..len): Dot-string or Quoted-string. */
static bool
addr_local_valid(const char *lp, size_t len, bool utf8)
{
	const unsigned char *s = (const unsigned char *)lp;
	size_t i;

	if (len == 0 || len > ADDR_LOCAL_MAX)
		return false;
	if (s[0] == '"') {
		if (len < 2 || s[len - 1] != '"')
			return false;
		for (i = 1; i < len - 1; i++) {
			unsigned char c = s[i];

			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (i + 1 >= len - 1 || s[i + 1] < 32 ||
				    s[i + 1] > 126)
					return false;
				i++;
			} else if (c >= 0x80) {
				size_t n;

				if (!utf8 ||
				    (n = addr_utf8_len(s + i, len - 1 - i)) == 0)
					return false;
				i += n - 1;
			} else if (c < 32 || c > 126 || c == '"') {
				return false;
			}
		}
		return true;
	}
	/* Dot-string = Atom *("." Atom): no empty atoms. */
	if (s[0] == '.' || s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (c >= 0x80) {
			size_t n;

			if (!utf8 || (n = addr_utf8_len(s + i, len - i)) == 0)
				return false;
			i += n - 1;
		} else if (!addr_atext(c)) {
			return false;
		}
	}
	return true;
}

int
addr_parse_mailbox(const char *s, size_t len, bool utf8, char *out)
{
	size_t at, i, llen, dlen;
	bool quoted = len > 0 && s[0] == '"';

	if (len == 0 || len >= ADDR_MAX)
		return PR_EINVAL;
	/* The '@' that separates is the last one outside the quotes. */
	at = len;
	if (quoted) {
		for (i = 1; i < len; i++) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				break;
		}
		if (i + 1 < len && s[i + 1] == '@')
			at = i + 1;
	} else {
		const char *p = memchr(s, '@', len);

		if (p != NULL)
			at = (size_t)(p - s);
	}
	if (at == len || at == 0)
		return PR_EINVAL;
	llen = at;
	dlen = len - at - 1;
	if (!addr_local_valid(s, llen, utf8))
		return PR_EINVAL;
	if (dlen > 0 && s[at + 1] == '[') {
		if (!addr_literal_valid(s + at + 1, dlen))
			return PR_EINVAL;
	} else if (!addr_domain_valid(s + at + 1, dlen, utf8)) {
		return PR_EINVAL;
	}
	memcpy(out, s, len);
	out[len] = '\0';
	if (out[at + 1] != '[')
		addr_lower(out + at + 1);
	return 0;
}

int
addr_parse_path(const char *s, size_t len, bool allow_null, bool utf8,
    char *out, size_t *consumed)
{
	size_t i, start, end;
	bool inq = false;

	if (len < 2 || s[0] != '<')
		return PR_EINVAL;
	if (s[1] == '>') {
		if (!allow_null)
			return PR_EINVAL;
		out[0] = '\0';
		*consumed = 2;
		return 0;
	}
	start = 1;
	/* RFC 5321 4.1.2: A-d-l ":" — a source route is parsed and ignored
	 * (Appendix C: "SHOULD" be accepted, MUST NOT be used). */
	if (s[1] == '@') {
		const char *colon = memchr(s, ':', len);
		const char *gt = memchr(s, '>', len);
		size_t p = 1;

		if (colon == NULL || (gt != NULL && gt < colon))
			return PR_EINVAL;
		while (p < (size_t)(colon - s)) {
			size_t q = p + 1;

			if (s[p] != '@')
				return PR_EINVAL;
			while (q < (size_t)(colon - s) && s[q] != ',')
				q++;
			if (!addr_domain_valid(s + p + 1, q - p - 1, utf8))
				return PR_EINVAL;
			p = q < (size_t)(colon - s) ? q + 1 : q;
		}
		start = (size_t)(colon - s) + 1;
	}
	for (i = start; i < len; i++) {
		if (inq && s[i] == '\\') {
			i++;
			continue;
		}
		if (s[i] == '"')
			inq = !inq;
		else if (!inq && s[i] == '>')
			break;
	}
	if (i >= len)
		return PR_EINVAL;
	end = i;
	if (addr_parse_mailbox(s + start, end - start, utf8, out) < 0)
		return PR_EINVAL;
	*consumed = end + 1;
	return 0;
}

const char *
addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : NULL;
}

void
addr_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}
