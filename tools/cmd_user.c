/* cmd_user.c - `postroom user add|del|passwd|quota|list`. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"
#include "cli_util.h"

static int
cmd_user_parse_quota(const char *s, int64_t *q)
{
	uint64_t v;

	if (cfg_parse_size(s, &v) < 0 || v > INT64_MAX)
		return cli_fail("invalid quota '%s' (bytes, or with K/M/G)", s);
	*q = (int64_t)v;
	return 0;
}

static int
cmd_user_add(struct cli *cli, int argc, char **argv)
{
	char addr[ADDR_MAX];
	bool from_stdin = false;
	int64_t quota = 0;
	struct pr_err err;
	char *pw;
	int i, r;

	if (argc < 3)
		return CLI_USAGE;
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--password-stdin") == 0)
			from_stdin = true;
		else if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc) {
			if (cmd_user_parse_quota(argv[++i], &quota) != 0)
				return CLI_ERR;
		} else
			return CLI_USAGE;
	}
	if (cli_address(argv[2], addr) < 0)
		return CLI_ERR;
	/* Fail on a bad domain or duplicate before asking for a password. */
	cli_store(cli);
	if ((pw = cli_password_read(from_stdin)) == NULL)
		return CLI_ERR;
	pr_err_clear(&err);
	r = store_user_add(cli->st, addr, pw, quota, &err);
	cli_password_free(pw);
	if (r < 0)
		return cli_fail("%s", err.msg);
	return CLI_OK;
}

static int
cmd_user_print(void *ctx, const struct store_user *u)
{
	char used[16], quota[16];

	(void)ctx;
	cli_human_size(u->used, used);
	if (u->quota > 0)
		cli_human_size(u->quota, quota);
	else
		strcpy(quota, "unlimited");
	printf("%s\t%" PRId64 " message%s\t%s\tquota %s\n", u->address,
	    u->messages, u->messages == 1 ? "" : "s", used, quota);
	return 0;
}

/* user del: the admin hears what happened to the aliases that named the
 * user, on stdout (it is what was done, not an error). */
static void
cmd_user_del_alias(void *ctx, const char *alias, bool deleted)
{
	(void)ctx;
	if (deleted)
		printf("alias %s deleted (no targets left)\n", alias);
	else
		printf("alias %s: user removed from its targets\n", alias);
}

int
cmd_user(struct cli *cli, int argc, char **argv)
{
	char addr[ADDR_MAX];
	struct pr_err err;
	const char *verb;
	int r;

	if (argc < 2)
		return CLI_USAGE;
	verb = argv[1];
	pr_err_clear(&err);
	if (strcmp(verb, "add") == 0)
		return cmd_user_add(cli, argc, argv);
	if (strcmp(verb, "app-password") == 0)
		return cmd_app_password(cli, argc - 1, argv + 1);
	if (strcmp(verb, "list") == 0) {
		if (argc > 3)
			return CLI_USAGE;
		r = store_user_list(cli_store(cli), argc == 3 ? argv[2] : NULL,
		    cmd_user_print, NULL, &err);
		return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
	}
	if (strcmp(verb, "del") == 0 && argc == 3) {
		if (cli_address(argv[2], addr) < 0)
			return CLI_ERR;
		r = store_user_del_report(cli_store(cli), addr,
		    cmd_user_del_alias, NULL, &err);
	} else if (strcmp(verb, "passwd") == 0 && (argc == 3 || (argc == 4 &&
	    strcmp(argv[3], "--password-stdin") == 0))) {
		struct store_user u;
		char *pw;

		if (cli_address(argv[2], addr) < 0)
			return CLI_ERR;
		/* A missing user fails before the password is asked for. */
		if (store_user_get(cli_store(cli), addr, &u, &err) < 0)
			return cli_fail("%s", err.msg);
		if ((pw = cli_password_read(argc == 4)) == NULL)
			return CLI_ERR;
		r = store_user_passwd(cli->st, addr, pw, &err);
		cli_password_free(pw);
	} else if (strcmp(verb, "quota") == 0 && argc == 4) {
		int64_t quota = 0;

		if (cli_address(argv[2], addr) < 0 ||
		    cmd_user_parse_quota(argv[3], &quota) != 0)
			return CLI_ERR;
		r = store_user_set_quota(cli_store(cli), addr, quota, &err);
	} else {
		return CLI_USAGE;
	}
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}
