/*
 * msgid.c - the Message-ID field of a header (RFC 5322 3.6.4).
 */
#include "msgid.h"

#include <string.h>
#include <strings.h>

/* The value of a field that starts at p[i] (after "Message-ID:") up to
 * the end of the field: continuation lines start with WSP (RFC 5322
 * 2.2.3).  Returns the index past the field. */
static size_t
msgid_value_end(const uint8_t *p, size_t len, size_t i)
{
	while (i < len) {
		if (p[i] == '\n') {
			if (i + 1 < len && (p[i + 1] == ' ' || p[i + 1] == '\t')) {
				i++;
				continue;
			}
			return i;
		}
		i++;
	}
	return len;
}

/* The msg-id token in v[0..n): the first '<' up to its '>', with no
 * white space, control or second '<' inside and an '@' that is neither
 * first nor last (RFC 5322 3.6.4: id-left "@" id-right). */
static int
msgid_token(const uint8_t *v, size_t n, char out[MSGID_MAX])
{
	const uint8_t *lt = memchr(v, '<', n);
	size_t k, at = 0;

	if (lt == NULL)
		return 0;
	for (k = 1; lt + k < v + n; k++) {
		uint8_t c = lt[k];

		if (c == '>')
			break;
		if (c <= ' ' || c == 0x7f || c == '<')
			return 0;
		if (c == '@')
			at = k;
	}
	if (lt + k >= v + n || at <= 1 || at + 1 >= k || k + 1 >= MSGID_MAX)
		return 0;
	memcpy(out, lt, k + 1);
	out[k + 1] = '\0';
	return 1;
}

int
msgid_find(const uint8_t *p, size_t len, char out[MSGID_MAX])
{
	static const char name[] = "message-id";
	size_t i = 0;

	out[0] = '\0';
	while (i < len) {
		size_t end, nl;

		/* An empty line ends the header (RFC 5322 2.1). */
		if (p[i] == '\n' || (p[i] == '\r' && i + 1 < len &&
		    p[i + 1] == '\n'))
			return 0;
		end = msgid_value_end(p, len, i);
		nl = end < len ? end + 1 : len;
		if (end - i > sizeof(name) &&
		    strncasecmp((const char *)p + i, name,
		    sizeof(name) - 1) == 0) {
			size_t j = i + sizeof(name) - 1;

			while (j < end && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j < end && p[j] == ':')
				return msgid_token(p + j + 1, end - j - 1, out);
		}
		i = nl;
	}
	return 0;
}
