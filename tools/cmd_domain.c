/* cmd_domain.c - `postroom domain add|del|list`. */
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "cli.h"
#include "cli_util.h"

static int
cmd_domain_print(void *ctx, const char *domain)
{
	(void)ctx;
	printf("%s\n", domain);
	return 0;
}

int
cmd_domain(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	char domain[ADDR_DOMAIN_MAX + 1];
	int r;

	pr_err_clear(&err);
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		r = store_domain_list(cli_store(cli), cmd_domain_print, NULL,
		    &err);
		return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
	}
	if (argc != 3 ||
	    (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "del") != 0))
		return CLI_USAGE;
	if (cli_domain(argv[2], domain) < 0)
		return CLI_ERR;
	if (strcmp(argv[1], "add") == 0)
		r = store_domain_add(cli_store(cli), domain, &err);
	else
		r = store_domain_del(cli_store(cli), domain, &err);
	if (r < 0)
		return cli_fail("%s", err.msg);
	return CLI_OK;
}
