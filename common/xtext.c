/* xtext.c - RFC 3461 4 xtext. */
#include "xtext.h"

#include "err.h"

static int
xtext_hex(char c)
{
	/* RFC 3461 4: "hexchar" uses upper-case digits only. */
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
xtext_decode(const char *in, size_t len, bool utf8, char *out, size_t outsz)
{
	size_t i, o = 0;
	int hi, lo;
	unsigned char c;

	if (outsz == 0)
		return PR_ENOSPC;
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (c == '+') {
			if (i + 2 >= len ||
			    (hi = xtext_hex(in[i + 1])) < 0 ||
			    (lo = xtext_hex(in[i + 2])) < 0)
				return PR_EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (c < 0x20 || c == 0x7f)
				return PR_EINVAL;
		} else if (c == '=' || c < '!' || (c > '~' && !utf8) ||
		    c == 0x7f) {
			return PR_EINVAL;
		}
		if (o + 1 >= outsz)
			return PR_ENOSPC;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

int
xtext_encode(const char *in, bool utf8, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	unsigned char c;

	for (; *in != '\0'; in++) {
		c = (unsigned char)*in;
		if ((c >= '!' && c <= '~' && c != '+' && c != '=') ||
		    (utf8 && c >= 0x80)) {
			if (o + 1 >= outsz)
				return PR_ENOSPC;
			out[o++] = (char)c;
			continue;
		}
		if (o + 3 >= outsz)
			return PR_ENOSPC;
		out[o++] = '+';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	if (o >= outsz)
		return PR_ENOSPC;
	out[o] = '\0';
	return (int)o;
}
