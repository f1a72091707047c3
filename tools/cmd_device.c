/*
 * cmd_device.c - `postroom device add|list|del`.
 *
 * A device (a scanner, a NAS, a monitoring probe) gets a send-only SMTP
 * login of its own instead of a user's password: it may submit mail as
 * one address, at most a given number of messages an hour, and nothing
 * else (no POP3).  `add` prints the generated password once.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "cli_util.h"

/* "N/hour", "N/h" or "N", N >= 1. */
static int
cmd_device_parse_rate(const char *s, unsigned *rate_r)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (end == s || errno != 0 || v == 0 || v > UINT_MAX / 2 ||
	    (*end != '\0' && strcmp(end, "/hour") != 0 &&
	    strcmp(end, "/h") != 0))
		return cli_fail("invalid rate '%s' (messages per hour: N/hour)",
		    s);
	*rate_r = (unsigned)v;
	return 0;
}

static int
cmd_device_add(struct cli *cli, int argc, char **argv)
{
	char pw[STORE_LOGIN_PASSWORD_LEN + 1], from[ADDR_MAX] = "";
	unsigned rate = 0;
	struct pr_err err;
	int i, r;

	if (argc < 3)
		return CLI_USAGE;
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			if (cli_address(argv[++i], from) < 0)
				return CLI_ERR;
		} else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
			if (cmd_device_parse_rate(argv[++i], &rate) != 0)
				return CLI_ERR;
		} else {
			return CLI_USAGE;
		}
	}
	if (from[0] == '\0')
		return CLI_USAGE;
	pr_err_clear(&err);
	if ((r = store_login_generate(cli_store(cli), pw, &err)) == 0)
		r = store_device_add(cli->st, argv[2], from, rate, pw, &err);
	/* postroom(8): the one time the password is shown. */
	if (r == 0)
		printf("%s\n", pw);
	sodium_memzero(pw, sizeof(pw));
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}

static int
cmd_device_print(void *ctx, const struct store_device *d)
{
	(void)ctx;
	if (d->rate > 0)
		printf("%s\tfrom %s\t%u/hour\n", d->name, d->from, d->rate);
	else
		printf("%s\tfrom %s\tno rate limit\n", d->name, d->from);
	return 0;
}

int
cmd_device(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	int r;

	if (argc < 2)
		return CLI_USAGE;
	pr_err_clear(&err);
	if (strcmp(argv[1], "add") == 0)
		return cmd_device_add(cli, argc, argv);
	if (strcmp(argv[1], "list") == 0 && argc == 2)
		r = store_device_list(cli_store(cli), cmd_device_print, NULL,
		    &err);
	else if (strcmp(argv[1], "del") == 0 && argc == 3)
		r = store_device_del(cli_store(cli), argv[2], &err);
	else
		return CLI_USAGE;
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}
