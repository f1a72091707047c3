/*
 * relay_tls.c - the TLS client context of the relay (see relay_int.h).
 *
 * One context for every outbound connection: STARTTLS to MX hosts
 * (opportunistic, RFC 7435) and to the smarthost.
 */
#include "relay_int.h"

#include <openssl/err.h>

SSL_CTX *
relay_tls_client_new(struct pr_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		pr_err_set(err, PR_ETLS, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Opportunistic TLS (RFC 7435): an unverifiable certificate does
	 * not stop delivery, but the result is logged, so the CA store is
	 * still loaded. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	return ctx;
}
