/*
 * cmd_trace.c - `postroom trace ID | <message-id> | ADDRESS`: a message's
 * whole route, from the trace the daemons keep in the store
 * (postroom(8), [server] trace_days in postroom.conf(5)).
 *
 * One event per line, oldest first:
 *   TIME (UTC) <sp> ID <sp> EVENT <sp> DETAILS (key=value)
 * For an ADDRESS, the newest CMD_TRACE_MSGS_MAX messages from or to it,
 * one after the other.  Exit 1 when nothing is found.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Messages shown for an address at most: the recent ones. */
#define CMD_TRACE_MSGS_MAX 20

/* Prints s with control characters as '?': HELO names and remote
 * replies come from peers, and the output goes to a terminal. */
static void
cmd_trace_puts(const char *s)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int
cmd_trace_print(void *ctx, const struct store_trace_event *ev)
{
	char when[32];
	time_t t = (time_t)ev->at;
	struct tm tm;

	(void)ctx;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s %s %s ", when, ev->msgid, ev->event);
	cmd_trace_puts(ev->info);
	putchar('\n');
	return 0;
}

int
cmd_trace(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	int r;

	if (argc != 2 || argv[1][0] == '\0')
		return CLI_USAGE;
	pr_err_clear(&err);
	r = store_trace_find(cli_store(cli), argv[1], CMD_TRACE_MSGS_MAX,
	    cmd_trace_print, NULL, &err);
	if (r < 0)
		return cli_fail("%s", err.msg);
	if (fflush(stdout) != 0)
		return cli_fail("cannot write the trace");
	if (r == 0)
		return cli_fail("%s: no trace found (kept %u days)", argv[1],
		    cli->cfg.server.trace_days);
	return CLI_OK;
}
