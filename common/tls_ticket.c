/*
 * tls_ticket.c - session ticket keys: generation, rotation and the
 * OpenSSL callback that encrypts and decrypts tickets with them.
 */
#include "tls_ticket.h"

#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>

static void
tls_ticket_key_fresh(struct tls_ticket_key *key, int64_t now)
{
	randombytes_buf(key->name, sizeof(key->name));
	randombytes_buf(key->aes, sizeof(key->aes));
	randombytes_buf(key->hmac, sizeof(key->hmac));
	key->born = now;
}

struct tls_ticket_keys *
tls_ticket_keys_new(int64_t now, int64_t period)
{
	struct tls_ticket_keys *k;

	if (sodium_init() < 0 || (k = sodium_malloc(sizeof(*k))) == NULL)
		return NULL;
	sodium_memzero(k, sizeof(*k));
	k->period = period > 0 ? period : TLS_TICKET_PERIOD_S;
	tls_ticket_key_fresh(&k->cur, now);
	return k;
}

void
tls_ticket_keys_free(struct tls_ticket_keys **k)
{
	if (*k == NULL)
		return;
	sodium_memzero(*k, sizeof(**k));
	sodium_free(*k);
	*k = NULL;
}

bool
tls_ticket_keys_rotate(struct tls_ticket_keys *k, int64_t now)
{
	int64_t age = now - k->cur.born;

	if (age < k->period)
		return false;
	if (age < 2 * k->period) {
		k->prev = k->cur;
		k->have_prev = true;
	} else {
		/* Idle for two periods: the current key is as old as a
		 * previous one may ever get. */
		sodium_memzero(&k->prev, sizeof(k->prev));
		k->have_prev = false;
	}
	tls_ticket_key_fresh(&k->cur, now);
	return true;
}

enum tls_ticket_match
tls_ticket_keys_find(struct tls_ticket_keys *k, const unsigned char *name,
    int64_t now, const struct tls_ticket_key **key_r)
{
	tls_ticket_keys_rotate(k, now);
	if (sodium_memcmp(name, k->cur.name, TLS_TICKET_NAME_LEN) == 0) {
		*key_r = &k->cur;
		return TLS_TICKET_CURRENT;
	}
	if (k->have_prev &&
	    sodium_memcmp(name, k->prev.name, TLS_TICKET_NAME_LEN) == 0) {
		*key_r = &k->prev;
		return TLS_TICKET_PREVIOUS;
	}
	*key_r = NULL;
	return TLS_TICKET_NONE;
}

static int64_t
tls_ticket_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static int
tls_ticket_set_hmac(EVP_MAC_CTX *hctx, const struct tls_ticket_key *key)
{
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	return EVP_MAC_init(hctx, key->hmac, sizeof(key->hmac), params);
}

/*
 * OpenSSL's ticket callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * RFC 5077 4's key_name, IV, AES-256-CBC and HMAC-SHA256, the format
 * OpenSSL then also uses for TLS 1.3's NewSessionTicket (RFC 8446
 * 4.6.1).  On encryption returns 1 or -1; on decryption 0 (unknown key:
 * full handshake), 1, or 2 (accepted; issue a fresh ticket).
 */
static int
tls_ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_ticket_keys *k =
	    SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const struct tls_ticket_key *key;
	enum tls_ticket_match m;
	int64_t now = tls_ticket_now();

	if (k == NULL)
		return -1;
	if (enc) {
		tls_ticket_keys_rotate(k, now);
		key = &k->cur;
		randombytes_buf(iv, 16);
		memcpy(name, key->name, TLS_TICKET_NAME_LEN);
		if (EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL,
		    key->aes, iv) != 1 || tls_ticket_set_hmac(hctx, key) != 1)
			return -1;
		return 1;
	}
	if ((m = tls_ticket_keys_find(k, name, now, &key)) == TLS_TICKET_NONE)
		return 0;
	if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key->aes,
	    iv) != 1 || tls_ticket_set_hmac(hctx, key) != 1)
		return -1;
	/* RFC 8446 C.4: TLS 1.3 clients "SHOULD NOT reuse a ticket for
	 * multiple connections", so a resumed 1.3 session gets a fresh one
	 * (OpenSSL sends none after a resumption unless asked), or the
	 * client's next connection is a full handshake again.  TLS 1.2
	 * renews only what the previous key encrypted (RFC 5077 3.3). */
	if (m == TLS_TICKET_PREVIOUS || SSL_version(ssl) >= TLS1_3_VERSION)
		return 2;
	return 1;
}

int
tls_ticket_install(SSL_CTX *ctx, struct tls_ticket_keys *k)
{
	/* Stateless only: no per-session memory in the daemon, and the
	 * same answer from every context that shares k. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* One ticket per full handshake (OpenSSL's default is two): mail
	 * clients resume one connection at a time. */
	if (SSL_CTX_set_num_tickets(ctx, 1) != 1)
		return 0;
	/* RFC 8446 4.6.1: the lifetime the client is told.  A ticket
	 * issued late in a key's period stays decryptable for one more. */
	SSL_CTX_set_timeout(ctx, (long)k->period);
	if (SSL_CTX_set_app_data(ctx, k) != 1)
		return 0;
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb) == 1;
}
