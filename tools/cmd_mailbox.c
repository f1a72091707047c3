/*
 * cmd_mailbox.c - `postroom mailbox list ADDRESS`.
 *
 * One line per message, no header line, so scripts can count lines:
 *   NUMBER <tab> UIDL <tab> SIZE <tab> RECEIVED (UTC) <tab> SENDER
 * NUMBER is the POP3 message number a fresh session would show.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_util.h"

static int
cmd_mailbox_print(void *ctx, const struct store_entry *e, const char *sender)
{
	unsigned *n = ctx;
	char when[32];
	time_t t = (time_t)e->received;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%u\t%s\t%" PRId64 "\t%s\t<%s>\n", ++*n, e->uidl, e->size, when,
	    sender);
	return 0;
}

int
cmd_mailbox(struct cli *cli, int argc, char **argv)
{
	char addr[ADDR_MAX];
	struct pr_err err;
	unsigned n = 0;

	if (argc != 3 || strcmp(argv[1], "list") != 0)
		return CLI_USAGE;
	if (cli_address(argv[2], addr) < 0)
		return CLI_ERR;
	pr_err_clear(&err);
	if (store_mailbox_list(cli_store(cli), addr, cmd_mailbox_print, &n,
	    &err) < 0)
		return cli_fail("%s", err.msg);
	return CLI_OK;
}
