/*
 * cmd_dkim.c - `postroom dkim keygen DOMAIN [--selector S] [--ed25519]`.
 *
 * Creates the signing key of a hosted domain under <data_dir>/dkim/ and
 * prints the TXT record to publish.  The relay signs with the newest key
 * from then on, so the record should be published first (or a new
 * selector used while the old record stays).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "cli_util.h"
#include "dkim_keyfile.h"

int
cmd_dkim(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	const char *selector = NULL, *dom = NULL;
	struct dkim_key *k = NULL;
	struct pr_err err;
	struct buf rec;
	bool ed25519 = false;
	int i, r;

	if (argc < 3 || strcmp(argv[1], "keygen") != 0)
		return CLI_USAGE;
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--ed25519") == 0)
			ed25519 = true;
		else if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc)
			selector = argv[++i];
		else if (strncmp(argv[i], "--selector=", 11) == 0)
			selector = argv[i] + 11;
		else if (argv[i][0] == '-' || dom != NULL)
			return CLI_USAGE;
		else
			dom = argv[i];
	}
	if (dom == NULL)
		return CLI_USAGE;
	if (cli_domain(dom, domain) < 0)
		return CLI_ERR;
	if (selector != NULL &&
	    !dkim_key_name_ok(selector, DKIM_KEY_SELECTOR_MAX))
		return cli_fail("invalid selector '%s' (letters, digits, '-', "
		    "'_' and '.')", selector);
	r = store_domain_exists(cli_store(cli), domain);
	if (r < 0)
		return cli_fail("cannot read the domains");
	if (r == 0)
		return cli_fail("domain %s is not hosted here (add it with "
		    "`postroom domain add %s`)", domain, domain);
	pr_err_clear(&err);
	/* Run by root, the CLI already works as [server] user, so the key
	 * belongs to the daemons' user and stays private to it. */
	if (dkim_keyfile_create(cli->cfg.server.data_dir, domain, selector,
	    ed25519, (gid_t)-1, &k, &err) < 0)
		return cli_fail("%s", err.msg);
	buf_init(&rec, 16384);
	if (dkim_key_record(k, &rec) < 0) {
		buf_fini(&rec);
		dkim_key_free(&k);
		return cli_fail("cannot format the DNS record");
	}
	printf("Created %s DKIM key for %s, selector %s, in %s/dkim/%s/.\n"
	    "Publish this TXT record; outbound mail from %s is signed with "
	    "it from now on:\n\n%.*s",
	    ed25519 ? "an Ed25519" : "a 2048-bit RSA", domain,
	    dkim_key_selector(k), cli->cfg.server.data_dir, domain,
	    domain, (int)rec.len, (char *)rec.p);
	buf_fini(&rec);
	dkim_key_free(&k);
	return CLI_OK;
}
