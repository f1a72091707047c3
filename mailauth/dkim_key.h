/*
 * dkim_key.h - DKIM signing keys (RFC 6376 3.3, RFC 8463) with OpenSSL:
 * RSA-SHA256 (2048 bits made, 1024 the least accepted, RFC 8301 3.2) and
 * Ed25519-SHA256, and the public-key record to publish in DNS (RFC 6376
 * 3.6.1).  Where keys live on disk is dkim_keyfile.h's business.
 */
#ifndef POSTROOM_DKIM_KEY_H
#define POSTROOM_DKIM_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

#define DKIM_KEY_SELECTOR_MAX 64
#define DKIM_KEY_RSA_BITS 2048

enum dkim_key_alg {
	DKIM_KEY_RSA_SHA256 = 1,
	DKIM_KEY_ED25519_SHA256 = 2,
};

/* A private key with the domain (d=) and selector (s=) it signs for. */
struct dkim_key;

/*
 * Generates a new key in memory: Ed25519 when ed25519 is true, else RSA
 * of DKIM_KEY_RSA_BITS.  domain is lower-cased.  Returns 0 and the key
 * in *k_r (the caller frees it with dkim_key_free), or an error with err
 * set.
 */
int dkim_key_generate(const char *domain, const char *selector, bool ed25519,
    struct dkim_key **k_r, struct pr_err *err);

/* Makes a key from a PEM private key pem[0..len) (PKCS#8 or the
 * traditional RSA form).  Refuses other key types and RSA under 1024
 * bits with PR_EINVAL.  Returns 0 and the key in *k_r, or an error with
 * err set. */
int dkim_key_from_pem(const char *domain, const char *selector,
    const char *pem, size_t len, struct dkim_key **k_r, struct pr_err *err);

/* Appends the private key as PEM (PKCS#8) to out, for a key file.  The
 * caller wipes out when done.  Returns 0, or an error with err set. */
int dkim_key_to_pem(const struct dkim_key *k, struct buf *out,
    struct pr_err *err);

/* Frees the key and sets *k to NULL; NULL is a no-op. */
void dkim_key_free(struct dkim_key **k);

/* The key's domain (lower case), selector and algorithm; the strings are
 * valid as long as the key. */
const char *dkim_key_domain(const struct dkim_key *k);
const char *dkim_key_selector(const struct dkim_key *k);
enum dkim_key_alg dkim_key_alg(const struct dkim_key *k);

/* The a= tag value: "rsa-sha256" or "ed25519-sha256". */
const char *dkim_key_alg_name(enum dkim_key_alg alg);

/*
 * Signs data[0..len) (the canonical header data, RFC 6376 3.7): RSA
 * PKCS#1 v1.5 over SHA-256, or Ed25519 over the SHA-256 hash of the data
 * (RFC 8463 3).  Appends the signature, base64, to b64_out.  Returns 0,
 * or an error with err set.
 */
int dkim_key_sign(const struct dkim_key *k, const uint8_t *data, size_t len,
    struct buf *b64_out, struct pr_err *err);

/* Appends the DNS TXT record data for the key ("v=DKIM1; k=rsa; p=...",
 * RFC 6376 3.6.1; "k=ed25519" with the raw key, RFC 8463 4.2) to out, as
 * one string (callers split it into 255-octet chunks).  Returns 0,
 * PR_ENOSPC / PR_ENOMEM from the buffer, or PR_ETLS. */
int dkim_key_txt(const struct dkim_key *k, struct buf *out);

/* Appends the zone-file line publishing the key:
 *   <selector>._domainkey.<domain>. IN TXT ( "v=DKIM1; k=rsa; "
 *   	"p=..." "..." )
 * with the data split into strings of at most 255 octets (RFC 1035
 * 3.3.14, RFC 6376 3.6.2.2).  Returns as dkim_key_txt(). */
int dkim_key_record(const struct dkim_key *k, struct buf *out);

/*
 * True if txt[0..len) (a TXT record's strings concatenated, RFC 6376
 * 3.6.2.2) is a key record (RFC 6376 3.6.1) for k as the verifier reads
 * it (dkim_verify_parse_key()): a record it refuses (a syntax error, a
 * repeated tag, h= without sha256, ...) matches nothing; else its k=
 * (default "rsa") names k's key type and its p= holds k's public key
 * (whitespace inside ignored, 3.2).  For checking that a record is
 * published before the key signs.
 */
bool dkim_key_txt_match(const struct dkim_key *k, const char *txt,
    size_t len);

/* True if name is usable as a selector or a domain in a file path:
 * 1 to max letters, digits, '-', '_' and '.', not starting with '.'. */
bool dkim_key_name_ok(const char *name, size_t max);

/* Appends in[0..len) as base64 (RFC 4648 4) to out; for dkim_*.c. */
int dkim__b64(const uint8_t *in, size_t len, struct buf *out);

#endif
