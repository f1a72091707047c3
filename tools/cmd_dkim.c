/* cmd_dkim.c - postroom dkim keygen DOMAIN [--selector S] [--ed25519] */
#include <string.h>

#include "cli.h"

#define DKIM_USAGE "dkim keygen DOMAIN [--selector S] [--ed25519]"

int
cmd_dkim(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc < 3 || strcmp(argv[1], "keygen") != 0)
		return cli_usage(DKIM_USAGE);
	return cli_fail("dkim keygen: not available yet");
}
