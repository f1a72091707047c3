/* cmd_alias.c - `postroom alias add|del|list`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"

static int
cmd_alias_print(void *ctx, const char *alias, const char *targets)
{
	(void)ctx;
	printf("%s\t%s\n", alias, targets);
	return 0;
}

/* "@domain" (catch-all) or a full address, lower-cased. */
static int
cmd_alias_name(const char *arg, char out[ADDR_MAX])
{
	if (arg[0] == '@') {
		if (!addr_domain_valid(arg + 1, strlen(arg + 1), true))
			return cli_fail("invalid catch-all '%s'", arg), -1;
		snprintf(out, ADDR_MAX, "%s", arg);
		addr_lower(out);
		return 0;
	}
	return cli_address(arg, out);
}

int
cmd_alias(struct cli *cli, int argc, char **argv)
{
	char alias[ADDR_MAX];
	struct pr_err err;
	int r;

	pr_err_clear(&err);
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		r = store_alias_list(cli_store(cli), cmd_alias_print, NULL,
		    &err);
		return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
	}
	if (argc == 4 && strcmp(argv[1], "add") == 0) {
		if (cmd_alias_name(argv[2], alias) < 0)
			return CLI_ERR;
		/* The store validates every target and refuses loops. */
		r = store_alias_add(cli_store(cli), alias, argv[3], &err);
	} else if (argc == 3 && strcmp(argv[1], "del") == 0) {
		if (cmd_alias_name(argv[2], alias) < 0)
			return CLI_ERR;
		r = store_alias_del(cli_store(cli), alias, &err);
	} else {
		return CLI_USAGE;
	}
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}
