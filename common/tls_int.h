/*
 * tls_int.h - what common/net.c needs of common/tls.c: the context behind
 * a struct net_tls and the per-connection set-up of its policy.
 */
#ifndef POSTROOM_TLS_INT_H
#define POSTROOM_TLS_INT_H

#include <arpa/inet.h>
#include <stdbool.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net.h"

struct tls_ticket_keys;

struct net_tls {
	SSL_CTX *ctx;
	/* Server role: the ticket keys of every context this one has been
	 * (net_tls_reload keeps them); see tls_ticket.h. */
	struct tls_ticket_keys *tickets;
	bool client;
};

/* Prepares a new SSL of t's context for its role.  For a client: SNI and
 * the host name check for host (a name; an IP literal is checked against
 * the certificate's IP addresses, with verify only); verify makes a
 * failed chain or name verification fail the handshake.  Returns 0,
 * PR_ETLS, or PR_EINVAL for verify without a host. */
int tls_conn_setup(SSL *ssl, const struct net_tls *t, const char *host,
    bool verify);

/* A client SSL of t's context set up for DANE (net.h struct
 * net_tls_dane) instead of tls_conn_setup.  Returns 0, PR_EINVAL (no
 * usable record) or PR_ETLS. */
int tls_conn_setup_dane(SSL *ssl, const struct net_tls *t,
    const struct net_tls_dane *dane);

#endif
