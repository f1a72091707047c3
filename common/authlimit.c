/* authlimit.c - client keys and the throttling decision (authlimit.h). */
#include "authlimit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

char *
authlimit_key(const char *ip, char out[AUTHLIMIT_KEY_MAX])
{
	struct in6_addr a;
	char net[INET6_ADDRSTRLEN];

	if (strchr(ip, ':') == NULL || inet_pton(AF_INET6, ip, &a) != 1) {
		snprintf(out, AUTHLIMIT_KEY_MAX, "%s", ip);
		return out;
	}
	/* One subscriber, one /64 (RFC 6177 3): its 2^64 addresses are one
	 * client, or a single host could open unlimited connections. */
	memset(a.s6_addr + 8, 0, 8);
	inet_ntop(AF_INET6, &a, net, sizeof(net));
	snprintf(out, AUTHLIMIT_KEY_MAX, "%s/64", net);
	return out;
}

enum authlimit_verdict
authlimit_decide(unsigned client_failures, unsigned account_failures,
    uint64_t *delay_ms_r)
{
	unsigned n = client_failures > account_failures ? client_failures :
	    account_failures;
	uint64_t d;

	*delay_ms_r = 0;
	if (client_failures >= AUTHLIMIT_CLIENT_MAX ||
	    (account_failures >= AUTHLIMIT_ACCOUNT_MAX && client_failures > 0))
		return AUTHLIMIT_REFUSE;
	if (n <= AUTHLIMIT_DELAY_FREE)
		return AUTHLIMIT_CHECK;
	n -= AUTHLIMIT_DELAY_FREE + 1;
	d = n >= 16 ? AUTHLIMIT_DELAY_MAX_MS :
	    (uint64_t)AUTHLIMIT_DELAY_MS << n;
	*delay_ms_r = d > AUTHLIMIT_DELAY_MAX_MS ? AUTHLIMIT_DELAY_MAX_MS : d;
	return AUTHLIMIT_CHECK;
}
