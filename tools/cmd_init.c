/* cmd_init.c - `postroom init` and `postroom check`. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "maildrop.h"

int
cmd_init(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	char dir[1024];

	(void)argv;
	if (argc != 1)
		return CLI_USAGE;
	pr_err_clear(&err);
	/* Idempotent: on an existing database this applies migrations. */
	if (store_open(cli->cfg.server.data_dir, STORE_OPEN_CREATE, &cli->st,
	    &err) < 0)
		return cli_fail("%s", err.msg);
	printf("database %s/mail.db ready (schema version %d)\n",
	    cli->cfg.server.data_dir, store_schema_version(cli->st));
	/* So that postroom-sendmail can keep mail before smtpd ever ran
	 * (docs/ARCHITECTURE.md 5.4); the package makes it first, with
	 * its group. */
	maildrop_dir(&cli->cfg, dir, sizeof(dir));
	if (maildrop_dir_ensure(dir, geteuid(), getegid(), &err) < 0)
		return cli_fail("%s", err.msg);
	return CLI_OK;
}

static int
cmd_check_count(void *ctx, const char *domain)
{
	(void)domain;
	(*(int *)ctx)++;
	return 0;
}

static int
cmd_check_file(const char *what, const char *path)
{
	if (path[0] == '\0')
		return 0;
	if (access(path, R_OK) != 0) {
		cli_fail("%s %s is not readable", what, path);
		return -1;
	}
	return 0;
}

/* RFC 8314 3.3: port 465 speaks TLS from the first byte, 587 and 25
 * start in plaintext; the other combination never gets to a greeting. */
static void
cmd_check_smarthost_tls(const struct cfg *cfg)
{
	struct cfg_listen_list l;
	bool implicit = cfg->relay.smarthost_tls == CFG_SMARTHOST_IMPLICIT;

	if (cfg->relay.smarthost[0] == '\0' ||
	    cfg_parse_listen(cfg->relay.smarthost, &l) < 0 || l.n != 1)
		return;
	if (!implicit && strcmp(l.a[0].port, "465") == 0)
		printf("warning: [relay] smarthost port 465 is implicit TLS: "
		    "set smarthost_tls = implicit\n");
	else if (implicit && (strcmp(l.a[0].port, "587") == 0 ||
	    strcmp(l.a[0].port, "25") == 0))
		printf("warning: [relay] smarthost port %s uses STARTTLS: "
		    "set smarthost_tls = starttls\n", l.a[0].port);
}

static int
cmd_check_target(void *ctx, int64_t user_id, const char *remote)
{
	(void)ctx;
	(void)user_id;
	(void)remote;
	return 0;
}

/* RFC 5321 4.5.1: mail to postmaster@ (and RFC 2142 5 abuse@) of every
 * hosted domain must reach a person: [server] postmaster should name a
 * local user or alias. */
static void
cmd_check_postmaster(struct cli *cli, struct store *st)
{
	const char *pm = cli->cfg.server.postmaster;
	struct pr_err err;
	int kind;

	if (pm[0] == '\0') {
		printf("warning: no [server] postmaster: postmaster@ and "
		    "abuse@ reach only domains with such a user or alias\n");
		return;
	}
	pr_err_clear(&err);
	kind = store_resolve(st, pm, cmd_check_target, NULL, &err);
	if (kind != STORE_RESOLVE_LOCAL)
		printf("warning: [server] postmaster %s is no local user or "
		    "alias\n", pm);
}

int
cmd_check(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	struct store *st;
	int domains = 0, failed = 0;

	(void)argv;
	if (argc != 1)
		return CLI_USAGE;
	/* The config already parsed (unknown keys are fatal in main). */
	printf("config %s: ok\n", cli->cfg.path);
	if (cli->cfg.tls.cert[0] == '\0')
		printf("warning: no [tls] cert: STARTTLS, 465 and 995 are off\n");
	if (cmd_check_file("[tls] cert", cli->cfg.tls.cert) < 0 ||
	    cmd_check_file("[tls] key", cli->cfg.tls.key) < 0 ||
	    cmd_check_file("[relay] smarthost_password_file",
	    cli->cfg.relay.smarthost_password_file) < 0 ||
	    cmd_check_file("[relay] smarthost_ca",
	    cli->cfg.relay.smarthost_ca) < 0 ||
	    cmd_check_file("[relay] ca_file", cli->cfg.relay.ca_file) < 0)
		failed = 1;
	cmd_check_smarthost_tls(&cli->cfg);
	if (cli->cfg.smtp.allow_plaintext_auth || cli->cfg.pop3.allow_plaintext_auth)
		printf("warning: allow_plaintext_auth is on: passwords may "
		    "cross the network unencrypted\n");
	st = cli_store(cli);
	pr_err_clear(&err);
	if (store_check(st, &err) < 0)
		return cli_fail("database: %s", err.msg);
	store_domain_list(st, cmd_check_count, &domains, &err);
	printf("database %s/mail.db: ok (schema version %d, %d domains)\n",
	    cli->cfg.server.data_dir, store_schema_version(st), domains);
	cmd_check_postmaster(cli, st);
	return failed ? CLI_ERR : CLI_OK;
}
