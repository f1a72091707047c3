/*
 * cmd_app_password.c - `postroom user app-password add|list|del`.
 *
 * An app password is a generated password of one user, for one client
 * (a phone, a mail program), that can be revoked without changing the
 * user's own password.  `add` prints it once: the store keeps only its
 * argon2id hash and the clear tag that picks that hash at login
 * (store.h, "Logins").
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cli.h"
#include "cli_util.h"

static int
cmd_app_password_print(void *ctx, const char *label, int64_t created)
{
	time_t t = (time_t)created;
	struct tm tm;
	char when[32];

	(void)ctx;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)created);
	printf("%s\tcreated %s\n", label, when);
	return 0;
}

static int
cmd_app_password_add(struct cli *cli, const char *addr, const char *label)
{
	char pw[STORE_LOGIN_PASSWORD_LEN + 1];
	struct pr_err err;
	int r;

	pr_err_clear(&err);
	if ((r = store_login_generate(cli_store(cli), pw, &err)) == 0)
		r = store_app_password_add(cli->st, addr, label, pw, &err);
	/* postroom(8): the one time the password is shown. */
	if (r == 0)
		printf("%s\n", pw);
	sodium_memzero(pw, sizeof(pw));
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}

/* argv[0] is "app-password", argv[1] the verb. */
int
cmd_app_password(struct cli *cli, int argc, char **argv)
{
	char addr[ADDR_MAX];
	struct pr_err err;
	int r;

	if (argc < 3)
		return CLI_USAGE;
	if (cli_address(argv[2], addr) < 0)
		return CLI_ERR;
	pr_err_clear(&err);
	if (strcmp(argv[1], "add") == 0 && argc == 4)
		return cmd_app_password_add(cli, addr, argv[3]);
	if (strcmp(argv[1], "list") == 0 && argc == 3)
		r = store_app_password_list(cli_store(cli), addr,
		    cmd_app_password_print, NULL, &err);
	else if (strcmp(argv[1], "del") == 0 && argc == 4)
		r = store_app_password_del(cli_store(cli), addr, argv[3],
		    &err);
	else
		return CLI_USAGE;
	return r < 0 ? cli_fail("%s", err.msg) : CLI_OK;
}
