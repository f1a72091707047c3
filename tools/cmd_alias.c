/* cmd_alias.c - `postroom alias add|del|list`. */
#include <stdbool.h>
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

/* --force: the target is added, but nothing receives its mail yet. */
static void
cmd_alias_unknown(void *ctx, const char *target)
{
	(void)ctx;
	fprintf(stderr, "postroom: warning: %s is no user or alias (yet): "
	    "its mail is refused until it is\n", target);
}

static int
cmd_alias_add(struct cli *cli, int argc, char **argv)
{
	char alias[ADDR_MAX];
	const char *targets = NULL;
	struct pr_err err;
	unsigned flags = 0;
	int i, r;

	if (argc < 3)
		return CLI_USAGE;
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--append") == 0)
			flags |= STORE_ALIAS_APPEND;
		else if (strcmp(argv[i], "--force") == 0)
			flags |= STORE_ALIAS_FORCE;
		else if (argv[i][0] == '-' || targets != NULL)
			return CLI_USAGE;
		else
			targets = argv[i];
	}
	if (targets == NULL)
		return CLI_USAGE;
	if (cmd_alias_name(argv[2], alias) < 0)
		return CLI_ERR;
	pr_err_clear(&err);
	/* The store validates every target and refuses loops. */
	r = store_alias_set(cli_store(cli), alias, targets, flags,
	    cmd_alias_unknown, NULL, &err);
	if (r == PR_EEXIST && !(flags & STORE_ALIAS_APPEND) &&
	    strncmp(err.msg, "alias ", 6) == 0)
		return cli_fail("%s (--append adds targets to it)", err.msg);
	if (r == PR_ENOENT && strncmp(err.msg, "no such user or alias",
	    21) == 0)
		return cli_fail("%s (--force adds it anyway)", err.msg);
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
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
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return cmd_alias_add(cli, argc, argv);
	if (argc == 3 && strcmp(argv[1], "del") == 0) {
		if (cmd_alias_name(argv[2], alias) < 0)
			return CLI_ERR;
		r = store_alias_del(cli_store(cli), alias, &err);
	} else {
		return CLI_USAGE;
	}
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}
