/*
 * dkim_verify.h - a streaming DKIM verifier (RFC 6376 6, RFC 8463 for
 * Ed25519, RFC 8301 for what no longer passes).
 *
 * The message (header and body, CRLF lines; a bare LF counts as CRLF,
 * RFC 6376 5.3) is fed in chunks of any size as it arrives.  The header
 * section is kept (bounded); at its end the DKIM-Signature fields are
 * parsed and each body hash runs as the body streams by, with its own
 * canonicalisation and l= (dkim_body.h, shared with the signer), so the
 * body is never held.  dkim_verify_end() then looks the keys up through
 * the resolver (RFC 6376 3.6.2) and reports one result per signature in
 * the words of RFC 8601 2.7.1.
 *
 * Bounds: at most limits.max_sigs signatures are verified (DNS query and
 * cryptography); syntactically broken ones do not count, since they cost
 * neither.  Valid signatures past the bound are reported as "policy"
 * (reason "too many signatures") without a lookup; at most
 * DKIM_VERIFY_REPORT_MAX results are reported in all, and signatures
 * past that are skipped silently.
 */
#ifndef POSTROOM_DKIM_VERIFY_H
#define POSTROOM_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim_canon.h"
#include "resolver.h"

/* Signatures verified per message by default, and at most. */
#define DKIM_VERIFY_SIGS 5
#define DKIM_VERIFY_SIGS_MAX 16
/* Results reported per message, at most. */
#define DKIM_VERIFY_REPORT_MAX 16
/* Header section kept by default; signatures in a longer one are not
 * verified (one permerror result). */
#define DKIM_VERIFY_HEAD_MAX (1024 * 1024)
/* Octets of b= kept for header.b (RFC 6008 2: at least 8). */
#define DKIM_VERIFY_B_PREFIX 8
/* Signature octets accepted: RSA up to 8192 bits. */
#define DKIM_VERIFY_SIG_OCTETS 1024

/* RFC 8601 2.7.1, the dkim method's results. */
enum dkim_verify_res {
	DKIM_VERIFY_PASS = 0,
	DKIM_VERIFY_FAIL,       /* a hash or the signature does not match */
	DKIM_VERIFY_NEUTRAL,    /* a syntax error in the signature */
	DKIM_VERIFY_POLICY,     /* valid, but not acceptable: rsa-sha1 or an
	                         * RSA key under 1024 bits (RFC 8301), expired
	                         * (x=), t=s key and a subdomain in i=, or
	                         * past the signature bound */
	DKIM_VERIFY_TEMPERROR,  /* the key lookup failed for now */
	DKIM_VERIFY_PERMERROR,  /* no key, a broken, revoked or unsuitable
	                         * key record */
};

/* The RFC 8601 word for r ("pass", "fail", ...). */
const char *dkim_verify_res_name(enum dkim_verify_res r);

struct dkim_keycache;

struct dkim_verify_limits {
	unsigned max_sigs;   /* 0: DKIM_VERIFY_SIGS; capped at _SIGS_MAX */
	size_t head_max;     /* 0: DKIM_VERIFY_HEAD_MAX; at least 64 */
	int64_t now;         /* seconds since the epoch, for x= (RFC 6376
	                      * 3.5); 0 does not check expiry */
	/* Keys decoded before (dkim_keycache.h), borrowed until
	 * dkim_verify_free(): a key found there is not looked up; a key
	 * looked up goes there for its record's TTL.  NULL: none. */
	struct dkim_keycache *keys;
};

/* One signature's outcome.  Strings are NUL-terminated, possibly empty
 * (d= and s= are empty only when the signature could not be parsed that
 * far). */
struct dkim_verify_result {
	enum dkim_verify_res res;
	char d[256];                 /* d=, lower case */
	char s[256];                 /* s= */
	char i[256];                 /* i=, or "" */
	char a[32];                  /* a=, or "" */
	char b[DKIM_VERIFY_B_PREFIX + 1]; /* first octets of b= */
	bool testing;                /* the key has t=y (RFC 6376 3.6.1) */
	const char *reason;          /* static text, NULL for pass */
};

/* Called once with the results in header order (top first): res[0..n),
 * valid until dkim_verify_free().  n is 0 for a message without
 * signatures.  The callback may free the verifier. */
typedef void (*dkim_verify_cb)(void *data,
    const struct dkim_verify_result *res, size_t n);

struct dkim_verify;

/* Starts a verifier that asks r (borrowed until dkim_verify_free()) for
 * keys; limits may be NULL for the defaults and is copied.  Returns 0
 * and the verifier in *v_r, or PR_ENOMEM. */
int dkim_verify_new(struct resolver *r, const struct dkim_verify_limits *lim,
    struct dkim_verify **v_r);

/*
 * Feeds message octets p[0..len).  Returns 0, or PR_ENOMEM / PR_ETLS
 * (a digest failed), after which the verifier reports every signature
 * as temperror.  A header section over head_max is not an error here: it
 * is reported at the end.  PR_EINVAL after dkim_verify_end().
 */
int dkim_verify_feed(struct dkim_verify *v, const uint8_t *p, size_t len);

/*
 * Ends the message and starts the key lookups.  Returns 0, and then cb
 * runs exactly once with data: within this call when no lookup is
 * needed (no signatures, or none that reached one), else from the
 * resolver's callback of the last answer.  Returns PR_EINVAL when called
 * twice, and then cb never runs.
 */
int dkim_verify_end(struct dkim_verify *v, dkim_verify_cb cb, void *data);

/* Frees the verifier, cancelling its lookups in flight (cb does not run
 * then), and sets *v to NULL; NULL is a no-op. */
void dkim_verify_free(struct dkim_verify **v);

/* --- Parsers, exposed for the fuzz target and tests --------------------- */

enum dkim_verify_alg {
	DKIM_VERIFY_ALG_RSA_SHA256 = 1,
	DKIM_VERIFY_ALG_ED25519_SHA256,
	DKIM_VERIFY_ALG_RSA_SHA1,
};

/* A DKIM-Signature field's tags (RFC 6376 3.5). */
struct dkim_verify_sig {
	enum dkim_verify_alg alg;
	enum dkim_canon hcanon, bcanon;
	char d[256], s[256], i[256], a[32];
	char h[2048];               /* h=, FWS removed */
	uint8_t bh[32];
	size_t bh_len;
	uint8_t b[DKIM_VERIFY_SIG_OCTETS];
	size_t b_len;
	char b_prefix[DKIM_VERIFY_B_PREFIX + 1];
	uint64_t l;                 /* DKIM_BODY_NO_LIMIT without l= */
	int64_t t, x;               /* -1 when absent */
	size_t b_raw_off, b_raw_end; /* the b= value in the field */
};

/*
 * Parses the DKIM-Signature field f[0..len) (name, colon and value,
 * folding kept, no final CRLF) into *sig.  Returns DKIM_VERIFY_PASS when
 * it is well formed, else the result it gets (neutral for a syntax
 * error, a missing or unknown tag value, an i= outside d=, h= without
 * From; RFC 6376 6.1.1) with *why_r set to a static reason.  d=, s= and
 * the b= prefix are filled as far as they were read.
 */
enum dkim_verify_res dkim_verify_parse_sig(const uint8_t *f, size_t len,
    struct dkim_verify_sig *sig, const char **why_r);

/* A public-key record (RFC 6376 3.6.1, RFC 8463 4.2). */
struct dkim_verify_key {
	void *pkey;                 /* EVP_PKEY, owned */
	bool ed25519;               /* k=ed25519, else k=rsa */
	int bits;                   /* RSA modulus size */
	bool testing, strict;       /* t=y, t=s */
};

/*
 * Parses key record txt[0..len) into *k.  Returns DKIM_VERIFY_PASS and
 * a key that the caller releases with dkim_verify_key_fini(), or
 * DKIM_VERIFY_PERMERROR with *why_r set (and nothing to release): not
 * v=DKIM1 first, unknown k=, h= without sha256, s= without email or *,
 * an empty p= (revoked, 3.6.1), or a key that does not decode.
 */
enum dkim_verify_res dkim_verify_parse_key(const uint8_t *txt, size_t len,
    struct dkim_verify_key *k, const char **why_r);

void dkim_verify_key_fini(struct dkim_verify_key *k);

#endif
