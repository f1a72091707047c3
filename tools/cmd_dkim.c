/*
 * cmd_dkim.c - the DKIM keys of the hosted domains:
 *
 *   postroom dkim keygen DOMAIN [--selector S] [--ed25519]
 *   postroom dkim list [DOMAIN]
 *   postroom dkim activate DOMAIN SELECTOR [--force]
 *   postroom dkim retire DOMAIN SELECTOR
 *
 * A new key is pending: keygen prints its record, and the key signs only
 * once `activate` has found that record in DNS, so that no receiver sees
 * a signature it cannot check (RFC 6376 6.1.2: a missing key record makes
 * the signature fail).  The states are kept by dkim_keyfile.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <uv.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "cli_util.h"
#include "dkim_keyfile.h"
#include "dns.h"

static int
cmd_dkim_keygen(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	const char *selector = NULL, *dom = NULL;
	struct dkim_key *k = NULL;
	struct pr_err err;
	struct buf rec;
	bool ed25519 = false;
	int i, r;

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
	if ((r = cli_hosted_domain(cli, dom, domain)) != CLI_OK)
		return r;
	if (selector != NULL &&
	    !dkim_key_name_ok(selector, DKIM_KEY_SELECTOR_MAX))
		return cli_fail("invalid selector '%s' (letters, digits, '-', "
		    "'_' and '.')", selector);
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
	    "It is pending: publish this TXT record, then start signing "
	    "with\n`postroom dkim activate %s %s`:\n\n%.*s",
	    ed25519 ? "an Ed25519" : "a 2048-bit RSA", domain,
	    dkim_key_selector(k), cli->cfg.server.data_dir, domain,
	    domain, dkim_key_selector(k), (int)rec.len, (char *)rec.p);
	buf_fini(&rec);
	dkim_key_free(&k);
	return CLI_OK;
}

/* Prints one line per key of domain: DOMAIN SELECTOR ALGORITHM STATE
 * CREATED. */
static int
cmd_dkim_list_domain(struct cli *cli, const char *domain)
{
	struct dkim_keyfile_info info[DKIM_KEYFILE_MAX];
	struct dkim_key *k;
	struct pr_err err;
	char day[16];
	struct tm tm;
	time_t t;
	int i, n;

	n = dkim_keyfile_list(cli->cfg.server.data_dir, domain, info,
	    DKIM_KEYFILE_MAX, &err);
	if (n < 0)
		return cli_fail("DKIM keys of %s: %s", domain, err.msg);
	for (i = 0; i < n; i++) {
		const char *alg = "unreadable";

		k = NULL;
		if (dkim_keyfile_load_one(cli->cfg.server.data_dir, domain,
		    info[i].selector, &k, &err) == 0)
			alg = dkim_key_alg_name(dkim_key_alg(k));
		t = (time_t)info[i].created;
		gmtime_r(&t, &tm);
		strftime(day, sizeof(day), "%Y-%m-%d", &tm);
		printf("%s %s %s %s %s\n", domain, info[i].selector, alg,
		    dkim_keyfile_state_name(info[i].state), day);
		dkim_key_free(&k);
	}
	return CLI_OK;
}

static int
cmd_dkim_list(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	char (*names)[256];
	struct pr_err err;
	int i, n, r;

	if (argc > 3 || (argc == 3 && argv[2][0] == '-'))
		return CLI_USAGE;
	if (argc == 3) {
		if ((r = cli_hosted_domain(cli, argv[2], domain)) != CLI_OK)
			return r;
		return cmd_dkim_list_domain(cli, domain);
	}
	names = calloc(1024, sizeof(*names));
	if (names == NULL)
		return cli_fail("out of memory");
	n = dkim_keyfile_domains(cli->cfg.server.data_dir, names, 1024, &err);
	if (n < 0) {
		free(names);
		return cli_fail("%s", err.msg);
	}
	for (i = 0, r = CLI_OK; i < n && r == CLI_OK; i++)
		r = cmd_dkim_list_domain(cli, names[i]);
	free(names);
	return r;
}

/* --- The published record ----------------------------------------------- */

struct cmd_dkim_lookup {
	const struct dkim_key *key;
	struct dns *dns;
	bool done;
	enum resolver_rcode rcode;
	size_t records;  /* TXT records seen */
	bool match;      /* one of them holds the key */
};

static void
cmd_dkim_txt_cb(void *data, const struct resolver_answer *ans)
{
	struct cmd_dkim_lookup *l = data;
	struct buf rec;
	size_t i;

	l->done = true;
	l->rcode = ans->rcode;
	l->records = ans->n;
	/* RFC 6376 3.6.2.2: the strings of one record are concatenated. */
	buf_init(&rec, DNS_TXT_STRINGS_MAX * 255);
	for (i = 0; i < ans->n && !l->match; i++) {
		buf_reset(&rec);
		(void)cli_txt_join(&ans->rr[i].u.txt, &rec);
		l->match = dkim_key_txt_match(l->key, (const char *)rec.p,
		    rec.len);
	}
	buf_fini(&rec);
	dns_close(l->dns, NULL, NULL);
}

/*
 * Looks up the TXT record at SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.2.1)
 * through [dns] resolver (common/dns.c, as smtpd and the relay do) and
 * compares it with k.  Returns CLI_OK when a record holds the key, else
 * the exit status after saying what was found.
 */
static int
cmd_dkim_check_dns(struct cli *cli, const struct dkim_key *k)
{
	struct cmd_dkim_lookup l = { .key = k, .rcode = RESOLVER_TIMEOUT };
	uv_loop_t loop;
	char name[400];

	snprintf(name, sizeof(name), "%s._domainkey.%s", dkim_key_selector(k),
	    dkim_key_domain(k));
	if (cli_dns_open(cli, &loop, &l.dns) != CLI_OK)
		return CLI_ERR;
	if (resolver_query(dns_resolver(l.dns), name, RESOLVER_TXT,
	    cmd_dkim_txt_cb, &l) < 0) {
		dns_close(l.dns, NULL, NULL);
		l.rcode = RESOLVER_FORMERR;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (l.match)
		return CLI_OK;
	if (l.rcode != RESOLVER_NOERROR && l.rcode != RESOLVER_NXDOMAIN)
		return cli_fail("cannot look up the TXT record at %s: %s "
		    "(--force activates without the check)", name,
		    l.rcode == RESOLVER_TIMEOUT ? "no answer in time" :
		    l.rcode == RESOLVER_REFUSED ? "refused" :
		    "server failure");
	if (l.records == 0)
		return cli_fail("no TXT record at %s yet: publish the record "
		    "that `postroom dns %s` prints, wait for it to show, "
		    "then activate (--force skips the check)", name,
		    dkim_key_domain(k));
	return cli_fail("the TXT record at %s does not hold this key (an "
	    "old record?): publish the one `postroom dns %s` prints "
	    "(--force skips the check)", name, dkim_key_domain(k));
}

/* activate and retire: argv[2] DOMAIN, argv[3] SELECTOR. */
static int
cmd_dkim_state(struct cli *cli, int argc, char **argv,
    enum dkim_keyfile_state to)
{
	struct dkim_keyfile_info info[DKIM_KEYFILE_MAX];
	char domain[ADDR_DOMAIN_MAX + 1];
	const char *dom = NULL, *sel = NULL;
	struct dkim_key *k = NULL;
	struct pr_err err;
	bool force = false;
	int i, n, r, active = 0;

	for (i = 2; i < argc; i++) {
		if (to == DKIM_KEYFILE_ACTIVE && strcmp(argv[i], "--force") == 0)
			force = true;
		else if (argv[i][0] == '-')
			return CLI_USAGE;
		else if (dom == NULL)
			dom = argv[i];
		else if (sel == NULL)
			sel = argv[i];
		else
			return CLI_USAGE;
	}
	if (sel == NULL)
		return CLI_USAGE;
	if ((r = cli_hosted_domain(cli, dom, domain)) != CLI_OK)
		return r;
	if (!dkim_key_name_ok(sel, DKIM_KEY_SELECTOR_MAX))
		return cli_fail("invalid selector '%s'", sel);
	pr_err_clear(&err);
	r = dkim_keyfile_load_one(cli->cfg.server.data_dir, domain, sel, &k,
	    &err);
	if (r == PR_ENOENT)
		return cli_fail("%s has no DKIM key with selector '%s' (see "
		    "`postroom dkim list %s`)", domain, sel, domain);
	if (r < 0)
		return cli_fail("%s", err.msg);
	if (to == DKIM_KEYFILE_ACTIVE && !force &&
	    (r = cmd_dkim_check_dns(cli, k)) != CLI_OK) {
		dkim_key_free(&k);
		return r;
	}
	dkim_key_free(&k);
	if (dkim_keyfile_set_state(cli->cfg.server.data_dir, domain, sel, to,
	    (gid_t)-1, &err) < 0)
		return cli_fail("%s", err.msg);
	if (to == DKIM_KEYFILE_ACTIVE) {
		printf("Key %s of %s is active: outbound mail from %s is "
		    "signed with it.\n", sel, domain, domain);
		return CLI_OK;
	}
	n = dkim_keyfile_list(cli->cfg.server.data_dir, domain, info,
	    DKIM_KEYFILE_MAX, &err);
	for (i = 0; i < n; i++)
		active += info[i].state == DKIM_KEYFILE_ACTIVE;
	printf("Key %s of %s is retired: it signs no more; its record can "
	    "be removed from DNS once mail signed with it is delivered.\n",
	    sel, domain);
	if (n >= 0 && active == 0)
		printf("%s has no active key left: its mail goes out "
		    "unsigned.\n", domain);
	return CLI_OK;
}

int
cmd_dkim(struct cli *cli, int argc, char **argv)
{
	int r = CLI_USAGE;

	if (argc < 2)
		return CLI_USAGE;
	if (strcmp(argv[1], "keygen") == 0)
		r = cmd_dkim_keygen(cli, argc, argv);
	else if (strcmp(argv[1], "list") == 0)
		r = cmd_dkim_list(cli, argc, argv);
	else if (strcmp(argv[1], "activate") == 0)
		r = cmd_dkim_state(cli, argc, argv, DKIM_KEYFILE_ACTIVE);
	else if (strcmp(argv[1], "retire") == 0)
		r = cmd_dkim_state(cli, argc, argv, DKIM_KEYFILE_RETIRED);
	return r;
}
