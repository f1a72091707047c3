/*
 * test_tls_ticket.c - ticket key rotation: which key a ticket name finds
 * at which time (tls_ticket.h), and that OpenSSL accepts the callback.
 */
#include <stdio.h>
#include <string.h>

#include "tls_ticket.h"
#include "tap.h"

#define P 100 /* a period, in the test's seconds */

int
main(void)
{
	struct tls_ticket_keys *k = tls_ticket_keys_new(1000, P);
	const struct tls_ticket_key *key;
	unsigned char first[TLS_TICKET_NAME_LEN];
	unsigned char second[TLS_TICKET_NAME_LEN];
	unsigned char unknown[TLS_TICKET_NAME_LEN] = { 0 };
	SSL_CTX *ctx;

	TAP_OK(k != NULL, "keys made");
	memcpy(first, k->cur.name, sizeof(first));
	TAP_OK(!k->have_prev, "no previous key at start");

	/* Within the first period: the current key, no rotation. */
	TAP_EQ_INT(tls_ticket_keys_find(k, first, 1000, &key),
	    TLS_TICKET_CURRENT, "found at birth");
	TAP_EQ_INT(tls_ticket_keys_find(k, first, 1000 + P - 1, &key),
	    TLS_TICKET_CURRENT, "found at period - 1");
	TAP_OK(key == &k->cur, "current key returned");
	TAP_EQ_INT(tls_ticket_keys_find(k, unknown, 1000, &key),
	    TLS_TICKET_NONE, "unknown name not found");
	TAP_OK(key == NULL, "no key for an unknown name");

	/* At one period: rotated; the old key decrypts, and asks for a
	 * renewal. */
	TAP_EQ_INT(tls_ticket_keys_find(k, first, 1000 + P, &key),
	    TLS_TICKET_PREVIOUS, "old key is the previous one at period");
	TAP_OK(key == &k->prev, "previous key returned");
	TAP_OK(memcmp(k->cur.name, first, sizeof(first)) != 0,
	    "a new current key");
	TAP_OK(memcmp(k->cur.aes, k->prev.aes, TLS_TICKET_KEY_LEN) != 0 &&
	    memcmp(k->cur.hmac, k->prev.hmac, TLS_TICKET_KEY_LEN) != 0,
	    "fresh key material");
	memcpy(second, k->cur.name, sizeof(second));
	TAP_OK(!tls_ticket_keys_rotate(k, 1000 + 2 * P - 1),
	    "no rotation before the next period");
	TAP_EQ_INT(tls_ticket_keys_find(k, first, 1000 + 2 * P - 1, &key),
	    TLS_TICKET_PREVIOUS, "previous still accepted at 2 periods - 1");

	/* At two periods: the first key is gone. */
	TAP_EQ_INT(tls_ticket_keys_find(k, first, 1000 + 2 * P, &key),
	    TLS_TICKET_NONE, "first key expired after two periods");
	TAP_EQ_INT(tls_ticket_keys_find(k, second, 1000 + 2 * P, &key),
	    TLS_TICKET_PREVIOUS, "second key is now the previous");

	/* A daemon idle for two periods or more: both keys replaced. */
	memcpy(second, k->cur.name, sizeof(second));
	TAP_OK(tls_ticket_keys_rotate(k, 1000 + 5 * P), "rotated after idle");
	TAP_OK(!k->have_prev, "no previous key after two idle periods");
	TAP_EQ_INT(tls_ticket_keys_find(k, second, 1000 + 5 * P, &key),
	    TLS_TICKET_NONE, "a key older than two periods never decrypts");

	/* OpenSSL takes the callback on a server context. */
	ctx = SSL_CTX_new(TLS_server_method());
	TAP_OK(ctx != NULL && tls_ticket_install(ctx, k) == 1,
	    "installed on a server context");
	TAP_EQ_INT(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF,
	    "no server-side session cache");
	TAP_EQ_INT(SSL_CTX_get_num_tickets(ctx), 1, "one ticket per handshake");
	SSL_CTX_free(ctx);

	tls_ticket_keys_free(&k);
	TAP_OK(k == NULL, "freed and cleared");
	return tap_done();
}
