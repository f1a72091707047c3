/*
 * relay_tls.c - the TLS client contexts of the relay (see relay_int.h).
 *
 * Two contexts.  MX hosts get STARTTLS when they offer it, unverified
 * (opportunistic, RFC 7435 3: an unverified session beats plaintext);
 * their trust anchors ([relay] ca_file or the system store) only tell
 * the log whether the peer was verified.  The smarthost is the one host
 * the relay authenticates to, so its certificate must verify against
 * [relay] smarthost_ca (a provider's private CA), else ca_file, else the
 * system store, for the name it is configured by (RFC 6125, RFC 8314
 * 3.3 and 5.1).  Versions, suites and the verification machinery are
 * common/tls.c's.
 */
#include "relay_int.h"

int
relay_tls_client_new(const struct cfg *cfg, struct net_tls **tls_r,
    struct pr_err *err)
{
	return net_tls_client_new(cfg->relay.ca_file, cfg->tls.ciphers, tls_r,
	    err);
}

int
relay_tls_smarthost_new(const struct cfg *cfg, struct net_tls **tls_r,
    struct pr_err *err)
{
	const char *ca = cfg->relay.smarthost_ca[0] != '\0' ?
	    cfg->relay.smarthost_ca : cfg->relay.ca_file;

	return net_tls_client_new(ca, cfg->tls.ciphers, tls_r, err);
}
