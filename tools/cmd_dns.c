/* cmd_dns.c - postroom dns DOMAIN: the records to publish. */
#include "cli.h"

#define DNS_USAGE "dns DOMAIN"

int
cmd_dns(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argv;
	if (argc != 2)
		return cli_usage(DNS_USAGE);
	return cli_fail("dns: not available yet");
}
