/*
 * cmd_dns.c - `postroom dns DOMAIN`: every record to publish for a hosted
 * domain, in zone-file syntax: MX, SPF, DKIM (every key that is not
 * retired: a pending key's record has to be out before it signs, an
 * active key's while it signs), DMARC, and the service records with
 * which mail clients find the servers from an address alone (RFC 6186,
 * RFC 8314 5.1).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "cli_util.h"
#include "dkim_keyfile.h"

/*
 * RFC 6186 3.1 and 3.2 (RFC 8314 5.1 adds _submissions): one SRV record
 * per service with the configured port, implicit TLS preferred (a lower
 * priority, RFC 8314 5.1); a service that is off is published as not
 * available, target "." (RFC 6186 3.4), so clients do not try it.
 */
static void
cmd_dns_srv(const struct cli *cli, const char *domain)
{
	const struct {
		const char *name;
		const struct cfg_listen_list *l;
		unsigned prio;
		bool implicit;
	} srv[] = {
		{ "_submissions", &cli->cfg.smtp.submissions, 0, true },
		{ "_submission", &cli->cfg.smtp.submission, 10, false },
		{ "_pop3s", &cli->cfg.pop3.pop3s, 0, true },
		{ "_pop3", &cli->cfg.pop3.listen, 10, false },
	};
	unsigned port;
	size_t i;

	printf("; Mail clients find the servers from the address alone "
	    "(RFC 6186):\n");
	for (i = 0; i < sizeof(srv) / sizeof(srv[0]); i++) {
		port = cli_listen_port(srv[i].l);
		/* 465 and 995 speak TLS only: off without a certificate. */
		if (port == 0 || (srv[i].implicit &&
		    cli->cfg.tls.cert[0] == '\0'))
			printf("%s._tcp.%s. IN SRV 0 0 0 .\n", srv[i].name,
			    domain);
		else
			printf("%s._tcp.%s. IN SRV %u 1 %u %s.\n", srv[i].name,
			    domain, srv[i].prio, port,
			    cli->cfg.server.hostname);
	}
}

/*
 * RFC 8460 3: reports about mail to the domain go to tlsrpt@ it when
 * that address exists, else to postmaster@ (which always does, RFC 5321
 * 4.5.1).  RFC 8461 3.1: the policy's TXT record with the id of the
 * policy `postroom mta-sts` wrote last, or of the one it would write.
 */
static int
cmd_dns_tls(struct cli *cli, const char *domain)
{
	char rua[ADDR_MAX], id[33];
	struct pr_err err = { 0 };
	struct buf pol;
	int kind, saved;

	snprintf(rua, sizeof(rua), "tlsrpt@%s", domain);
	kind = store_resolve(cli_store(cli), rua, cli_resolve_ignore, NULL,
	    &err);
	if (kind != STORE_RESOLVE_LOCAL)
		snprintf(rua, sizeof(rua), "postmaster@%s", domain);
	printf("; TLS reports from other servers (RFC 8460):\n");
	printf("_smtp._tls.%s. IN TXT \"v=TLSRPTv1; rua=mailto:%s\"\n", domain,
	    rua);
	buf_init(&pol, 4096);
	if ((saved = cmd_mta_sts_saved(cli, domain, &pol)) < 0) {
		buf_fini(&pol);
		return cli_fail("the MTA-STS policy of %s: cannot read it",
		    domain);
	}
	if (saved == 0 && cmd_mta_sts_policy(cli, false, 604800, &pol) < 0) {
		buf_fini(&pol);
		return cli_fail("[server] hostname is too long");
	}
	cmd_mta_sts_id(pol.p, pol.len, id);
	buf_fini(&pol);
	printf("; MTA-STS (RFC 8461): serve the policy of `postroom mta-sts "
	    "%s -o FILE`\n; at https://mta-sts.%s/.well-known/mta-sts.txt "
	    "with a certificate for that name,\n; e.g. mta-sts.%s. IN CNAME "
	    "%s. (a web server there)\n", domain, domain, domain,
	    cli->cfg.server.hostname);
	printf("_mta-sts.%s. IN TXT \"v=STSv1; id=%s\"\n", domain, id);
	if (saved == 0)
		printf("; (no policy written yet: the id is that of `postroom "
		    "mta-sts %s`)\n", domain);
	return CLI_OK;
}

int
cmd_dns(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	const char *host = cli->cfg.server.hostname;
	struct dkim_keyfile_info info[DKIM_KEYFILE_MAX];
	struct dkim_key *k = NULL;
	struct pr_err err;
	struct buf rec;
	int i, n, r, shown = 0;

	if (argc != 2 || argv[1][0] == '-')
		return CLI_USAGE;
	if ((r = cli_hosted_domain(cli, argv[1], domain)) != CLI_OK)
		return r;

	printf("; DNS records to publish for %s\n", domain);
	printf("; %s must have an A and/or AAAA record pointing at this "
	    "server, and the\n; reverse DNS (PTR) of those addresses "
	    "should name %s.\n\n", host, host);
	/* RFC 5321 5.1: where mail for the domain goes. */
	printf("%s. IN MX 10 %s.\n", domain, host);
	/* RFC 7208: only the MX hosts send mail for the domain. */
	printf("%s. IN TXT \"v=spf1 mx -all\"\n", domain);
	pr_err_clear(&err);
	n = dkim_keyfile_list(cli->cfg.server.data_dir, domain, info,
	    DKIM_KEYFILE_MAX, &err);
	if (n < 0)
		return cli_fail("DKIM keys of %s: %s", domain, err.msg);
	for (i = 0; i < n; i++) {
		if (info[i].state == DKIM_KEYFILE_RETIRED)
			continue;
		if (dkim_keyfile_load_one(cli->cfg.server.data_dir, domain,
		    info[i].selector, &k, &err) < 0)
			return cli_fail("DKIM key of %s: %s", domain, err.msg);
		printf("; DKIM key %s (%s)\n", info[i].selector,
		    dkim_keyfile_state_name(info[i].state));
		buf_init(&rec, 16384);
		if (dkim_key_record(k, &rec) == 0)
			printf("%.*s", (int)rec.len, (char *)rec.p);
		buf_fini(&rec);
		dkim_key_free(&k);
		shown++;
	}
	if (shown == 0)
		printf("; no DKIM key yet: create one with `postroom dkim "
		    "keygen %s`\n", domain);
	/* RFC 7489: start with quarantine; add rua=mailto:... for reports
	 * to an address that exists. */
	printf("_dmarc.%s. IN TXT \"v=DMARC1; p=quarantine\"\n", domain);
	cmd_dns_srv(cli, domain);
	return cmd_dns_tls(cli, domain);
}
