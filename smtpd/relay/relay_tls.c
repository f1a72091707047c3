/*
 * relay_tls.c - the TLS client context of the relay (see relay_int.h).
 *
 * One context for every outbound connection: STARTTLS to MX hosts
 * (opportunistic, RFC 7435) and to the smarthost.  Versions, suites and
 * the verification machinery are common/tls.c's; the relay only says
 * which trust anchors it uses.
 */
#include "relay_int.h"

int
relay_tls_client_new(const struct cfg *cfg, struct net_tls **tls_r,
    struct pr_err *err)
{
	return net_tls_client_new(NULL, cfg->tls.ciphers, tls_r, err);
}
