/*
 * sasl.h - SASL PLAIN (RFC 4616) and LOGIN decoding, base64 (RFC 4648).
 *
 * Base64 comes from libsodium.  Decoded passwords land in caller-provided
 * buffers; callers keep those in sodium_malloc() memory and wipe them.
 */
#ifndef POSTROOM_SASL_H
#define POSTROOM_SASL_H

#include <stddef.h>

#define SASL_USER_MAX 256
#define SASL_PASS_MAX 1024

/* Decodes base64 text (len octets, no whitespace) into out (outsz bytes).
 * Sets *outlen.  Returns 0 or PR_EINVAL (bad base64 or too long). */
int sasl_b64_decode(const char *in, size_t len, unsigned char *out,
    size_t outsz, size_t *outlen);

/* Encodes in[0..len) as base64 into out, NUL-terminated; outsz must be at
 * least sasl_b64_encoded_len(len).  Returns 0 or PR_ENOSPC. */
int sasl_b64_encode(const unsigned char *in, size_t len, char *out,
    size_t outsz);
size_t sasl_b64_encoded_len(size_t len);

/*
 * Decodes a PLAIN response ("=" means empty, RFC 4954 4) given as base64:
 * [authzid] NUL authcid NUL passwd.  An authzid different from authcid is
 * refused (we do not support proxy authorisation).  user gets the authcid
 * (SASL_USER_MAX bytes), pass the password (SASL_PASS_MAX bytes), both
 * NUL-terminated; a NUL inside either is refused.  Returns 0 or PR_EINVAL.
 */
int sasl_plain_decode(const char *b64, size_t len, char *user, char *pass);

/* Decodes one base64 LOGIN step (username or password) into out (outsz
 * bytes, NUL-terminated; embedded NULs refused).  Returns 0 or PR_EINVAL
 * (out then holds only zeros: no part of a password stays behind). */
int sasl_login_decode(const char *b64, size_t len, char *out, size_t outsz);

#endif
