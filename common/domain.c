/* domain.c - domain names in their one normal form (IDNA2008 A-labels). */
#include "domain.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "addr.h"
#include "err.h"

static bool
domain_ascii(const char *d, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)d[i] >= 0x80)
			return false;
	return true;
}

int
domain_normalize(const char *d, size_t len, char *out, size_t outsz)
{
	char in[ADDR_DOMAIN_MAX * 4 + 1];
	uint8_t *a = NULL;
	size_t n;
	int rc;

	if (len == 0 || memchr(d, '\0', len) != NULL)
		return PR_EINVAL;
	if (d[0] == '[') {
		/* Address literals are no names: kept as they are. */
		if (len >= outsz || d[len - 1] != ']')
			return PR_EINVAL;
		memcpy(out, d, len);
		out[len] = '\0';
		return 0;
	}
	if (len >= sizeof(in))
		return PR_EINVAL;
	memcpy(in, d, len);
	in[len] = '\0';
	/* A trailing dot (the root) is no part of a mail domain. */
	if (len > 1 && in[len - 1] == '.')
		in[--len] = '\0';
	addr_lower(in);
	if (domain_ascii(in, len) && strstr(in, "xn--") == NULL) {
		/* The common case needs no IDNA: LDH and lower case. */
		if (len >= outsz || !addr_domain_valid(in, len, false))
			return PR_EINVAL;
		memcpy(out, in, len + 1);
		return 0;
	}
	/* UTS #46 section 4 maps (case, width, NFC) before IDNA2008
	 * (RFC 5891 5.4) converts; A-labels are checked by decoding them
	 * again (the round trip of RFC 5891 5.4 for A-labels). */
	rc = idn2_lookup_u8((const uint8_t *)in, &a, IDN2_NFC_INPUT |
	    IDN2_NONTRANSITIONAL | IDN2_ALABEL_ROUNDTRIP);
	if (rc != IDN2_OK || a == NULL) {
		idn2_free(a);
		return PR_EINVAL;
	}
	n = strlen((char *)a);
	if (n == 0 || n >= outsz || n > ADDR_DOMAIN_MAX ||
	    !addr_domain_valid((char *)a, n, false)) {
		idn2_free(a);
		return PR_EINVAL;
	}
	memcpy(out, a, n + 1);
	idn2_free(a);
	addr_lower(out);
	return 0;
}

bool
domain_is_ip(const char *d)
{
	unsigned char buf[16];
	const char *last;
	size_t i;

	if (inet_pton(AF_INET, d, buf) == 1 || inet_pton(AF_INET6, d, buf) == 1)
		return true;
	last = strrchr(d, '.');
	last = last != NULL ? last + 1 : d;
	if (*last == '\0')
		return false;
	for (i = 0; last[i] != '\0'; i++)
		if (last[i] < '0' || last[i] > '9')
			return false;
	return true;
}
