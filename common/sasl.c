/* sasl.c - SASL PLAIN/LOGIN decoding over libsodium's base64. */
#include "sasl.h"

#include <string.h>

#include <sodium.h>

#include "err.h"

#define SASL_B64 sodium_base64_VARIANT_ORIGINAL

int
sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz,
    size_t *outlen)
{
	const char *end;

	if (sodium_base642bin(out, outsz, in, len, NULL, outlen, &end,
	    SASL_B64) != 0)
		return PR_EINVAL;
	if (end != in + len)
		return PR_EINVAL;
	return 0;
}

size_t
sasl_b64_encoded_len(size_t len)
{
	return sodium_base64_ENCODED_LEN(len, SASL_B64);
}

int
sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
	if (outsz < sasl_b64_encoded_len(len))
		return PR_ENOSPC;
	sodium_bin2base64(out, outsz, in, len, SASL_B64);
	return 0;
}

int
sasl_plain_decode(const char *b64, size_t len, char *user, char *pass)
{
	unsigned char raw[SASL_USER_MAX * 2 + SASL_PASS_MAX + 2];
	size_t n, zlen, ulen, plen;
	const unsigned char *z, *u, *p, *nul;

	/* RFC 4954 4: "=" is an empty initial response. */
	if (len == 1 && b64[0] == '=')
		return PR_EINVAL;
	/* A decode that fails half-way has written part of a password. */
	if (sasl_b64_decode(b64, len, raw, sizeof(raw), &n) < 0)
		goto bad;
	/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
	z = raw;
	if ((nul = memchr(z, 0, n)) == NULL)
		goto bad;
	zlen = (size_t)(nul - z);
	u = nul + 1;
	if ((nul = memchr(u, 0, n - (size_t)(u - raw))) == NULL)
		goto bad;
	ulen = (size_t)(nul - u);
	p = nul + 1;
	plen = n - (size_t)(p - raw);
	if (memchr(p, 0, plen) != NULL || ulen == 0 || ulen >= SASL_USER_MAX ||
	    plen >= SASL_PASS_MAX)
		goto bad;
	/* No proxy authorisation: authzid must be empty or the authcid. */
	if (zlen != 0 && (zlen != ulen || memcmp(z, u, ulen) != 0))
		goto bad;
	memcpy(user, u, ulen);
	user[ulen] = '\0';
	memcpy(pass, p, plen);
	pass[plen] = '\0';
	sodium_memzero(raw, sizeof(raw));
	return 0;
bad:
	sodium_memzero(raw, sizeof(raw));
	return PR_EINVAL;
}

int
sasl_login_decode(const char *b64, size_t len, char *out, size_t outsz)
{
	size_t n;

	if (outsz == 0)
		return PR_EINVAL;
	/* On any failure out may hold part of a password: wipe it. */
	if (sasl_b64_decode(b64, len, (unsigned char *)out, outsz - 1,
	    &n) < 0 || memchr(out, 0, n) != NULL) {
		sodium_memzero(out, outsz);
		return PR_EINVAL;
	}
	out[n] = '\0';
	return 0;
}
