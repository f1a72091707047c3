/* cmd_init.c - `postroom init` and `postroom check`. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "cli.h"
#include "cli_util.h"
#include "maildrop.h"
#include "domain.h"
#include "net.h"

/* The TLS pair as the daemons load it, before they drop privileges:
 * cmd_check_prepare runs as the CLI was started, like the daemons. */
static struct {
	bool loaded;
	struct net_tls *tls;
	struct pr_err err;
} cmd_check_tls;

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

/* Counts the domains and warns about one stored before names had one
 * form (domain.h): lookups normalise, so it would receive nothing. */
static int
cmd_check_count(void *ctx, const char *domain)
{
	char norm[ADDR_DOMAIN_MAX + 1];

	(*(int *)ctx)++;
	if (domain_normalize(domain, strlen(domain), norm, sizeof(norm)) < 0)
		printf("warning: domain %s is not a valid domain name: delete "
		    "it\n", domain);
	else if (strcmp(norm, domain) != 0)
		printf("warning: domain %s is stored as typed, not as %s: "
		    "mail for it is not found; add %s and move its users\n",
		    domain, norm, norm);
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
	kind = store_resolve(st, pm, cli_resolve_ignore, NULL, &err);
	if (kind != STORE_RESOLVE_LOCAL)
		printf("warning: [server] postmaster %s is no local user or "
		    "alias\n", pm);
}

void
cmd_check_prepare(struct cli *cli)
{
	const struct cfg *cfg = &cli->cfg;

	if (cfg->tls.cert[0] == '\0' || access(cfg->tls.cert, R_OK) != 0 ||
	    access(cfg->tls.key, R_OK) != 0)
		return;
	pr_err_clear(&cmd_check_tls.err);
	cmd_check_tls.loaded = true;
	if (net_tls_new(cfg->tls.cert, cfg->tls.key, cfg->tls.ciphers,
	    &cmd_check_tls.tls, &cmd_check_tls.err) < 0)
		cmd_check_tls.tls = NULL;
}

const struct net_tls *
cmd_check_tls_ctx(const char **why_r)
{
	*why_r = NULL;
	if (!cmd_check_tls.loaded)
		return NULL;
	if (cmd_check_tls.tls == NULL)
		*why_r = cmd_check_tls.err.msg;
	return cmd_check_tls.tls;
}

void
cmd_check_date(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		snprintf(out, 32, "%" PRId64, t);
	else
		strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * The certificate and key load as postroom-smtpd and postroom-pop3d load
 * them (one function, common/tls.c): what makes the daemons refuse to
 * start fails here too.  An expired certificate fails: every client that
 * checks refuses it.  Expiry soon and a certificate that does not name
 * [server] hostname, which clients connect to by the MX record (RFC 7817
 * 3), are warnings.
 */
static int
cmd_check_tls_pair(const struct cfg *cfg)
{
	struct net_tls_cert_info info;
	int64_t now = (int64_t)time(NULL);
	char when[32];

	if (!cmd_check_tls.loaded)
		return 0;
	if (cmd_check_tls.tls == NULL)
		return cli_fail("[tls] %s", cmd_check_tls.err.msg), -1;
	if (net_tls_cert_info(cmd_check_tls.tls, cfg->server.hostname,
	    &info) < 0)
		return cli_fail("[tls] cert %s: no certificate", cfg->tls.cert),
		    -1;
	cmd_check_date(info.not_after, when);
	if (info.not_after <= now)
		return cli_fail("[tls] cert %s expired on %s", cfg->tls.cert,
		    when), -1;
	if (info.not_before > now) {
		char from[32];

		cmd_check_date(info.not_before, from);
		printf("warning: [tls] cert %s is not valid before %s\n",
		    cfg->tls.cert, from);
	}
	if (info.not_after - now < CLI_CERT_EXPIRY_WARN)
		printf("warning: [tls] cert %s expires on %s, in %" PRId64
		    " days: renew it\n", cfg->tls.cert, when,
		    (info.not_after - now) / 86400);
	if (!info.names_host)
		printf("warning: [tls] cert %s does not name %s ([server] "
		    "hostname): clients that check the name refuse it\n",
		    cfg->tls.cert, cfg->server.hostname);
	printf("tls %s: ok (valid until %s)\n", cfg->tls.cert, when);
	return 0;
}

/* RFC 5321 2.3.5: the name a server gives in its greeting, in EHLO and
 * in the MX record is a fully-qualified domain name. */
static void
cmd_check_hostname(const struct cfg *cfg)
{
	const char *h = cfg->server.hostname;
	char norm[ADDR_DOMAIN_MAX + 1];

	if (domain_normalize(h, strlen(h), norm, sizeof(norm)) < 0 ||
	    domain_is_ip(norm))
		printf("warning: [server] hostname '%s' is not a domain name: "
		    "set it to the name of the MX record\n", h);
	else if (strchr(norm, '.') == NULL)
		printf("warning: [server] hostname '%s' is not a "
		    "fully-qualified domain name (`postroom dns` would "
		    "publish \"MX 10 %s.\"): set it to the name of the MX "
		    "record\n", h, norm);
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
	    cmd_check_file("[relay] ca_file", cli->cfg.relay.ca_file) < 0 ||
	    cmd_check_tls_pair(&cli->cfg) < 0)
		failed = 1;
	net_tls_free(&cmd_check_tls.tls);
	cmd_check_hostname(&cli->cfg);
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
