/*
 * relay_conn.h - one outgoing TCP connection with client-side TLS as a
 * filter (OpenSSL over memory BIOs, the client twin of common/net.c).
 *
 * The owner reads plaintext with relay_conn_input()/relay_conn_consume()
 * and writes plaintext with relay_conn_write(); after
 * relay_conn_starttls() the same calls go through TLS.
 */
#ifndef POSTROOM_RELAY_CONN_H
#define POSTROOM_RELAY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include <openssl/ssl.h>

#include "err.h"

/* Reply bytes buffered at most; an SMTP server never needs more. */
#define RELAY_CONN_INPUT_MAX (64 * 1024)

struct relay_conn;

struct relay_conn_ops {
	/* The TCP connection is up (status 0) or failed (a UV_E* code;
	 * close_cb follows). */
	void (*connect_cb)(struct relay_conn *c, int status);
	/* New plaintext input is buffered. */
	void (*input_cb)(struct relay_conn *c);
	/* The TLS handshake finished: 0, or PR_ETLS (close_cb follows). */
	void (*tls_cb)(struct relay_conn *c, int status);
	/* Everything written so far has gone to the socket. */
	void (*drain_cb)(struct relay_conn *c);
	/* EOF, reset or a TLS error after connecting; why is for logs.
	 * close_cb follows. */
	void (*error_cb)(struct relay_conn *c, const char *why);
	/* Last call; the connection is freed after it returns. */
	void (*close_cb)(struct relay_conn *c);
};

/* Starts connecting to addr.  ops and data (the owner) are borrowed.
 * Returns 0 or a negative UV_E* code (then no callback is called). */
int relay_conn_new(uv_loop_t *loop, const struct sockaddr *addr,
    const struct relay_conn_ops *ops, void *data, struct relay_conn **c_r);

void *relay_conn_data(const struct relay_conn *c);

/* Buffered plaintext; *p is valid until the next call into the conn. */
void relay_conn_input(struct relay_conn *c, const uint8_t **p, size_t *len);
void relay_conn_consume(struct relay_conn *c, size_t n);

/* Queues plaintext (copied).  Returns 0 or a negative error. */
int relay_conn_write(struct relay_conn *c, const void *p, size_t len);
/* Octets handed to libuv and not yet written. */
size_t relay_conn_write_pending(const struct relay_conn *c);

/* Starts a client TLS handshake with ctx; sni (a host name, NULL for an
 * address) is sent as server name and checked against the certificate
 * for the log line (verification never stops an opportunistic
 * delivery).  Buffered plaintext input is dropped (RFC 3207 5: nothing
 * the server sent before TLS counts). */
int relay_conn_starttls(struct relay_conn *c, SSL_CTX *ctx, const char *sni);
bool relay_conn_tls_active(const struct relay_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" and whether the peer's certificate
 * verified ("Verified", "Untrusted"); valid while c lives. */
const char *relay_conn_tls_desc(const struct relay_conn *c);

/* Closes now (pending writes are dropped).  close_cb follows exactly
 * once.  Safe to call more than once. */
void relay_conn_close(struct relay_conn *c);

#endif
