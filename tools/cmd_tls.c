/*
 * cmd_tls.c - postroom tls forget DOMAIN: the relay forgets what it
 * remembers of a recipient domain's TLS, its cached MTA-STS policy
 * (RFC 8461 5.1) and its downgrade memory (docs/OUTBOUND_TLS.md), for
 * a domain that moved its mail to hosts without TLS on purpose.
 */
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "cli.h"
#include "domain.h"
#include "store.h"

int
cmd_tls(struct cli *cli, int argc, char **argv)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	struct pr_err err;
	int n;

	if (argc != 3 || strcmp(argv[1], "forget") != 0)
		return CLI_USAGE;
	if (domain_normalize(argv[2], strlen(argv[2]), dom, sizeof(dom)) < 0)
		return cli_fail("tls forget: not a domain name: %s", argv[2]);
	if ((n = store_tls_forget(cli_store(cli), dom, &err)) < 0)
		return cli_fail("tls forget: %s", err.msg);
	if (n == 0)
		return cli_fail("tls forget: nothing remembered of %s", dom);
	printf("forgot the TLS policy and memory of %s\n", dom);
	return CLI_OK;
}
