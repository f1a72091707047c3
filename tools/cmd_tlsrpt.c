/*
 * cmd_tlsrpt.c - `postroom tlsrpt list [DAY]` and `postroom tlsrpt send
 * [DAY]` (postroom(8), docs/OUTBOUND_TLS.md): the relay's TLS results
 * per policy domain, and the day's aggregate reports (RFC 8460) built
 * and queued now, as the relay's daily run does it (the same code:
 * mailauth/tlsrpt.h).  DAY is YYYY-MM-DD in UTC, default yesterday.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cli.h"
#include "cli_util.h"
#include "dns.h"
#include "tlsrpt.h"
#include "tlsrpt_store.h"

struct cmd_tlsrpt_run {
	struct cli *cli;
	struct tlsrpt_day day;
	struct dns *dns;
	struct tlsrpt_lookup *lookup;
	int64_t now;
	bool done;
	int status;
};

static int
cmd_tlsrpt_day_arg(int argc, char **argv, int64_t *day_r)
{
	*day_r = tlsrpt_day_of((int64_t)time(NULL)) - 1;
	if (argc < 3)
		return 0;
	if (tlsrpt_day_parse(argv[2], day_r) < 0)
		return cli_fail("not a day (YYYY-MM-DD): %s", argv[2]);
	return 0;
}

static int
cmd_tlsrpt_list_cb(void *ctx, const struct store_tlsrpt_count *c)
{
	char day[11];

	(void)ctx;
	tlsrpt_day_format(c->day, day);
	printf("%s %s %s %s %lld", day, c->domain, c->policy_type, c->result,
	    (long long)c->count);
	if (c->mx_host[0] != '\0')
		printf(" mx=%s", c->mx_host);
	if (c->receiving_ip[0] != '\0')
		printf(" ip=%s", c->receiving_ip);
	if (c->sending_ip[0] != '\0')
		printf(" sending_ip=%s", c->sending_ip);
	if (c->reason[0] != '\0')
		printf(" reason=\"%s\"", c->reason);
	printf("\n");
	return 0;
}

static void
cmd_tlsrpt_lookup_cb(void *data, const struct tlsrpt_dest *dests, size_t n)
{
	struct cmd_tlsrpt_run *run = data;
	struct store *st = cli_store(run->cli);
	const struct cfg *cfg = &run->cli->cfg;
	struct tlsrpt_sender_buf sb;
	struct tlsrpt_msg *msgs = NULL;
	char domain[ADDR_DOMAIN_MAX + 1], nonce[17], id[STORE_ID_LEN + 1];
	unsigned char rnd[8];
	struct pr_err err = { 0 };
	size_t i, k, n_msgs = 0, failed = 0;

	run->done = true;
	if (store_tlsrpt_host_domain(st, cfg->server.hostname, domain,
	    &err) < 0) {
		run->status = cli_fail("%s", err.msg);
		goto out;
	}
	tlsrpt_sender_fill(&sb, cfg->server.hostname, domain,
	    cfg->server.postmaster);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(nonce, sizeof(nonce), rnd, sizeof(rnd));
	if (tlsrpt_day_build(&run->day, dests, &sb.who, run->now, nonce,
	    &msgs, &n_msgs, &failed) < 0) {
		run->status = cli_fail("out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (dests[i].status == PR_EAGAIN) {
			printf("%s: _smtp._tls lookup failed; not reported\n",
			    dests[i].domain);
			run->status = CLI_ERR;
		} else if (dests[i].status == PR_EINVAL)
			printf("%s: not one TLSRPTv1 record; not reported\n",
			    dests[i].domain);
		else if (dests[i].status != 0)
			printf("%s: no _smtp._tls mailto: rua; not reported\n",
			    dests[i].domain);
	}
	if (failed > 0) {
		fprintf(stderr, "postroom: %zu reports too big to build\n",
		    failed);
		run->status = CLI_ERR;
	}
	for (i = 0; i < n_msgs; i++) {
		/* No key: a report sent by hand is sent again if asked. */
		if (store_tlsrpt_queue(st, msgs[i].rcptv, msgs[i].n_rcpt,
		    msgs[i].msg.p, msgs[i].msg.len, NULL, id, &err) < 0) {
			fprintf(stderr, "postroom: report for %s: %s\n",
			    msgs[i].domain, err.msg);
			run->status = CLI_ERR;
			continue;
		}
		/* The daemon's daily run does not send this one again,
		 * even if others of the day failed here. */
		if (store_tlsrpt_domain_sent_set(st, run->day.day,
		    msgs[i].domain, run->now, &err) < 0)
			run->status = cli_fail("%s", err.msg);
		printf("%s: report %s queued as %s to", msgs[i].domain,
		    msgs[i].report_id, id);
		for (k = 0; k < msgs[i].n_rcpt; k++)
			printf("%s%s", k > 0 ? "," : " ", msgs[i].rcpt[k]);
		printf("\n");
	}
	/* The daemon's daily run does not send this day again (a day with
	 * failures is left to it, for the domains not marked above). */
	if (run->status == CLI_OK && store_tlsrpt_sent_set(st, run->day.day,
	    run->now, &err) < 0)
		run->status = cli_fail("%s", err.msg);
out:
	tlsrpt_msgs_free(&msgs, n_msgs);
	tlsrpt_lookup_free(&run->lookup);
	dns_close(run->dns, NULL, NULL);
}

static int
cmd_tlsrpt_send(struct cli *cli, int64_t day)
{
	struct cmd_tlsrpt_run run;
	struct pr_err err = { 0 };
	char ds[11];
	uv_loop_t loop;
	int r;

	memset(&run, 0, sizeof(run));
	run.cli = cli;
	run.now = (int64_t)time(NULL);
	tlsrpt_day_init(&run.day, day);
	tlsrpt_day_format(day, ds);
	if ((r = store_tlsrpt_list(cli_store(cli), day, tlsrpt_store_day_cb,
	    &run.day, &err)) < 0) {
		tlsrpt_day_fini(&run.day);
		return r == PR_ENOSPC ? cli_fail("%s: too many counts", ds) :
		    cli_fail("%s", err.msg);
	}
	if (run.day.n_domains == 0) {
		tlsrpt_day_fini(&run.day);
		printf("%s: no TLS results to report\n", ds);
		return CLI_OK;
	}
	if (cli_dns_open(cli, &loop, &run.dns) != CLI_OK) {
		tlsrpt_day_fini(&run.day);
		return CLI_ERR;
	}
	if (tlsrpt_lookup_new(dns_resolver(run.dns), run.day.domains,
	    run.day.n_domains, cmd_tlsrpt_lookup_cb, &run, &run.lookup) < 0) {
		dns_close(run.dns, NULL, NULL);
		run.status = cli_fail("out of memory");
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	tlsrpt_lookup_free(&run.lookup);
	tlsrpt_day_fini(&run.day);
	if (!run.done && run.status == CLI_OK)
		return cli_fail("the _smtp._tls lookups did not finish");
	return run.status;
}

int
cmd_tlsrpt(struct cli *cli, int argc, char **argv)
{
	struct pr_err err = { 0 };
	int64_t day;
	int r;

	if (argc < 2 || argc > 3 || (argc == 3 && argv[2][0] == '-'))
		return CLI_USAGE;
	if (strcmp(argv[1], "list") == 0) {
		if (argc == 2)
			day = -1;
		else if ((r = cmd_tlsrpt_day_arg(argc, argv, &day)) != 0)
			return r;
		if ((r = store_tlsrpt_list(cli_store(cli), day,
		    cmd_tlsrpt_list_cb, NULL, &err)) < 0)
			return cli_fail("%s", err.msg);
		return CLI_OK;
	}
	if (strcmp(argv[1], "send") == 0) {
		if ((r = cmd_tlsrpt_day_arg(argc, argv, &day)) != 0)
			return r;
		return cmd_tlsrpt_send(cli, day);
	}
	return CLI_USAGE;
}
