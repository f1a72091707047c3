/*
 * dkim_key.c - DKIM keys with OpenSSL (RFC 6376 3.3, 3.6.1; RFC 8463).
 */
#include "dkim_key.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim_verify.h"

struct dkim_key {
	char domain[256];
	char selector[DKIM_KEY_SELECTOR_MAX + 1];
	enum dkim_key_alg alg;
	EVP_PKEY *pkey;
};

bool
dkim_key_name_ok(const char *name, size_t max)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > max || name[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.')
			return false;
	}
	return true;
}

static int
dkim_key_ssl_err(struct pr_err *err, const char *what)
{
	char ebuf[200];
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	else
		snprintf(ebuf, sizeof(ebuf), "unknown error");
	ERR_clear_error();
	return pr_err_set(err, PR_ETLS, "%s: %s", what, ebuf);
}

/* Takes pkey (freed on failure too) into a new key. */
static int
dkim_key_wrap(const char *domain, const char *selector, EVP_PKEY *pkey,
    struct dkim_key **k_r, struct pr_err *err)
{
	struct dkim_key *k;
	int id = EVP_PKEY_get_base_id(pkey);

	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return pr_err_set(err, PR_EINVAL,
		    "DKIM key for %s is neither RSA nor Ed25519", domain);
	}
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey) < 1024) {
		/* RFC 8301 3.2: verifiers reject keys under 1024 bits. */
		EVP_PKEY_free(pkey);
		return pr_err_set(err, PR_EINVAL,
		    "DKIM key for %s is shorter than 1024 bits", domain);
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		EVP_PKEY_free(pkey);
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	}
	snprintf(k->domain, sizeof(k->domain), "%s", domain);
	snprintf(k->selector, sizeof(k->selector), "%s", selector);
	for (char *p = k->domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	k->alg = id == EVP_PKEY_RSA ? DKIM_KEY_RSA_SHA256 :
	    DKIM_KEY_ED25519_SHA256;
	k->pkey = pkey;
	*k_r = k;
	return 0;
}

int
dkim_key_generate(const char *domain, const char *selector, bool ed25519,
    struct dkim_key **k_r, struct pr_err *err)
{
	EVP_PKEY *pkey;

	if (ed25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		    (size_t)DKIM_KEY_RSA_BITS);
	if (pkey == NULL)
		return dkim_key_ssl_err(err, "key generation");
	return dkim_key_wrap(domain, selector, pkey, k_r, err);
}

int
dkim_key_from_pem(const char *domain, const char *selector,
    const char *pem, size_t len, struct dkim_key **k_r, struct pr_err *err)
{
	EVP_PKEY *pkey;
	BIO *bio;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return dkim_key_ssl_err(err, "BIO_new_mem_buf");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return dkim_key_ssl_err(err, "DKIM private key");
	return dkim_key_wrap(domain, selector, pkey, k_r, err);
}

int
dkim_key_to_pem(const struct dkim_key *k, struct buf *out,
    struct pr_err *err)
{
	BIO *bio;
	char *pem;
	long n;
	int r;

	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL,
	    0, NULL, NULL)) {
		BIO_free(bio);
		return dkim_key_ssl_err(err, "PEM_write_bio_PrivateKey");
	}
	n = BIO_get_mem_data(bio, &pem);
	r = buf_append(out, pem, (size_t)n);
	OPENSSL_cleanse(pem, (size_t)n);
	BIO_free(bio);
	if (r < 0)
		return pr_err_set(err, r, "DKIM key too large");
	return 0;
}

void
dkim_key_free(struct dkim_key **k)
{
	if (*k == NULL)
		return;
	EVP_PKEY_free((*k)->pkey);
	free(*k);
	*k = NULL;
}

const char *
dkim_key_domain(const struct dkim_key *k)
{
	return k->domain;
}

const char *
dkim_key_selector(const struct dkim_key *k)
{
	return k->selector;
}

enum dkim_key_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

const char *
dkim_key_alg_name(enum dkim_key_alg alg)
{
	return alg == DKIM_KEY_ED25519_SHA256 ? "ed25519-sha256" :
	    "rsa-sha256";
}

int
dkim__b64(const uint8_t *in, size_t len, struct buf *out)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	int r;

	if ((r = buf_reserve(out, need)) < 0)
		return r;
	out->len += (size_t)EVP_EncodeBlock(out->p + out->len, in, (int)len);
	return 0;
}

int
dkim_key_sign(const struct dkim_key *k, const uint8_t *data, size_t len,
    struct buf *b64_out, struct pr_err *err)
{
	unsigned char hash[32], *sig = NULL;
	EVP_MD_CTX *ctx;
	size_t siglen = 0;
	int r = 0;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	if (k->alg == DKIM_KEY_RSA_SHA256) {
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
		    k->pkey) != 1 ||
		    EVP_DigestSign(ctx, NULL, &siglen, data, len) != 1 ||
		    (sig = OPENSSL_malloc(siglen)) == NULL ||
		    EVP_DigestSign(ctx, sig, &siglen, data, len) != 1)
			r = dkim_key_ssl_err(err, "DKIM RSA signing");
	} else {
		/* RFC 8463 3: Ed25519 (pure, RFC 8032) over the SHA-256
		 * hash of the data. */
		siglen = 64;
		if (EVP_Digest(data, len, hash, NULL, EVP_sha256(),
		    NULL) != 1 ||
		    EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
		    (sig = OPENSSL_malloc(siglen)) == NULL ||
		    EVP_DigestSign(ctx, sig, &siglen, hash,
		    sizeof(hash)) != 1)
			r = dkim_key_ssl_err(err, "DKIM Ed25519 signing");
	}
	if (r == 0 && (r = dkim__b64(sig, siglen, b64_out)) < 0)
		pr_err_set(err, r, "DKIM signature too large");
	OPENSSL_free(sig);
	EVP_MD_CTX_free(ctx);
	return r;
}

int
dkim_key_txt(const struct dkim_key *k, struct buf *out)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	int n, r;

	if (k->alg == DKIM_KEY_ED25519_SHA256) {
		/* RFC 8463 4.2: the raw 32-octet public key. */
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen) != 1)
			return PR_ETLS;
		if ((r = buf_puts(out, "v=DKIM1; k=ed25519; p=")) < 0)
			return r;
		return dkim__b64(raw, rawlen, out);
	}
	/* RFC 6376 3.6.1: the DER SubjectPublicKeyInfo, base64. */
	n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0)
		return PR_ETLS;
	r = buf_puts(out, "v=DKIM1; k=rsa; p=");
	if (r == 0)
		r = dkim__b64(der, (size_t)n, out);
	OPENSSL_free(der);
	return r;
}

int
dkim_key_record(const struct dkim_key *k, struct buf *out)
{
	struct buf txt;
	size_t i, n, head;
	int r;

	buf_init(&txt, 8192);
	if ((r = dkim_key_txt(k, &txt)) < 0)
		goto out;
	r = buf_printf(out, "%s._domainkey.%s. IN TXT (", k->selector,
	    k->domain);
	/* The tags in one string, the key in pieces short enough for any
	 * DNS provider's web form. */
	head = (size_t)((const uint8_t *)memchr(txt.p, 'p', txt.len) - txt.p);
	if (r == 0)
		r = buf_printf(out, " \"%.*s\"", (int)head, (char *)txt.p);
	for (i = head; r == 0 && i < txt.len; i += n) {
		n = txt.len - i < 250 ? txt.len - i : 250;
		r = buf_printf(out, "\n\t\"%.*s\"", (int)n, (char *)txt.p + i);
	}
	if (r == 0)
		r = buf_puts(out, " )\n");
out:
	buf_fini(&txt);
	return r;
}

bool
dkim_key_txt_match(const struct dkim_key *k, const char *txt, size_t len)
{
	struct dkim_verify_key pub;
	const char *why;
	bool ok;

	/* The record as a verifier reads it (dkim_verify.c, RFC 6376
	 * 3.6.1, RFC 8463 4.2): a record that no verifier takes does not
	 * publish the key, whatever its p= says. */
	if (dkim_verify_parse_key((const uint8_t *)txt, len, &pub, &why) !=
	    DKIM_VERIFY_PASS)
		return false;
	ok = pub.ed25519 == (k->alg == DKIM_KEY_ED25519_SHA256) &&
	    EVP_PKEY_eq(pub.pkey, k->pkey) == 1;
	dkim_verify_key_fini(&pub);
	return ok;
}
