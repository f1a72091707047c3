/*
 * tls_ticket.h - the session ticket keys of one server daemon.
 *
 * Resumption (RFC 8446 2.2 and 4.6.1 for TLS 1.3, RFC 5077 for TLS 1.2)
 * is stateless: the server keeps no session cache, a client brings its
 * session back in a ticket the server encrypted to itself.  One set of
 * keys serves every context of a daemon (all its listeners, and the
 * contexts a SIGHUP reload makes), so a ticket from port 25 resumes on
 * 465 and after a reload.  The keys live in sodium_malloc memory, come
 * from libsodium's randomness at start, are never written anywhere and
 * are rotated every period: a ticket under the previous key is still
 * accepted (and renewed) for one more period, so no ticket older than
 * two periods opens a session.
 */
#ifndef POSTROOM_TLS_TICKET_H
#define POSTROOM_TLS_TICKET_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* How long one key encrypts new tickets. */
#define TLS_TICKET_PERIOD_S (12 * 3600)

#define TLS_TICKET_NAME_LEN 16 /* RFC 5077 4: key_name */
#define TLS_TICKET_KEY_LEN 32  /* AES-256-CBC and HMAC-SHA256 */

struct tls_ticket_key {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[TLS_TICKET_KEY_LEN];
	unsigned char hmac[TLS_TICKET_KEY_LEN];
	int64_t born;              /* when it became the current key */
};

struct tls_ticket_keys {
	struct tls_ticket_key cur, prev;
	bool have_prev;
	int64_t period;
};

/* Which key decrypts a ticket (tls_ticket_keys_find). */
enum tls_ticket_match {
	TLS_TICKET_NONE,           /* unknown or expired: full handshake */
	TLS_TICKET_CURRENT,
	TLS_TICKET_PREVIOUS,       /* accepted; the client gets a new one */
};

/* New keys, current from now (seconds on any monotonic clock), in
 * sodium_malloc memory.  period is TLS_TICKET_PERIOD_S but for tests.
 * Returns NULL when out of memory. */
struct tls_ticket_keys *tls_ticket_keys_new(int64_t now, int64_t period);
/* Wipes and frees *k, sets *k to NULL. */
void tls_ticket_keys_free(struct tls_ticket_keys **k);

/* Rotates if the current key is a period old at now: it becomes the
 * previous key and a fresh one the current.  After two periods without
 * a call both are replaced (the old one may no longer decrypt).  Returns
 * true when it rotated. */
bool tls_ticket_keys_rotate(struct tls_ticket_keys *k, int64_t now);

/* The key named name at now (rotating first), in *key_r; valid until the
 * next rotation. */
enum tls_ticket_match tls_ticket_keys_find(struct tls_ticket_keys *k,
    const unsigned char *name, int64_t now,
    const struct tls_ticket_key **key_r);

/* Makes ctx (a server context) issue and accept tickets under k, which
 * must outlive it, and keep no server-side session cache.  Returns 1, or
 * 0 on an OpenSSL error. */
int tls_ticket_install(SSL_CTX *ctx, struct tls_ticket_keys *k);

#endif
