/*
 * cmd_spf.c - postroom spf IP SENDER [HELO]: the SPF result (RFC 7208
 * 2.6) smtpd would find for a client, with the DNS of [dns] resolver.
 *
 * Line 1 is the result word; for a fail with an exp= explanation (RFC
 * 7208 6.2), line 2 is "explanation: TEXT".  SENDER "" is the null
 * sender, checked as postmaster@HELO (RFC 7208 2.4).  Any result is
 * exit status 0: the check worked, whatever it found.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cli.h"
#include "cli_util.h"
#include "dns.h"
#include "spf.h"

struct cmd_spf_run {
	struct dns *dns;
	bool done;
	enum spf_result result;
	char explanation[SPF_EXPLANATION_MAX + 1];
};

static void
cmd_spf_keep(struct cmd_spf_run *run, const struct spf_outcome *o)
{
	run->done = true;
	run->result = o->result;
	snprintf(run->explanation, sizeof(run->explanation), "%s",
	    o->explanation != NULL ? o->explanation : "");
}

static void
cmd_spf_cb(void *data, const struct spf_outcome *o)
{
	struct cmd_spf_run *run = data;

	cmd_spf_keep(run, o);
	dns_close(run->dns, NULL, NULL);
}

int
cmd_spf(struct cli *cli, int argc, char **argv)
{
	struct cmd_spf_run run;
	struct spf_request req;
	struct spf_check *c = NULL;
	uv_loop_t loop;
	int r;

	if (argc < 3 || argc > 4)
		return CLI_USAGE;
	memset(&run, 0, sizeof(run));
	memset(&req, 0, sizeof(req));
	req.ip = argv[1];
	req.sender = argv[2];
	req.helo = argc > 3 ? argv[3] : "";
	req.receiver = cli->cfg.server.hostname;
	req.now = (uint64_t)time(NULL);
	if (cli_dns_open(cli, &loop, &run.dns) != CLI_OK)
		return CLI_ERR;
	r = spf_check_new(dns_resolver(run.dns), &req, cmd_spf_cb, &run, &c);
	if (r < 0) {
		dns_close(run.dns, NULL, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return cli_fail("not an IP address: %s", argv[1]);
	}
	if (r == 1) {
		cmd_spf_keep(&run, spf_check_outcome(c));
		dns_close(run.dns, NULL, NULL);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	spf_check_free(&c);
	uv_loop_close(&loop);
	if (!run.done)
		return cli_fail("the SPF check did not finish");
	printf("%s\n", spf_result_str(run.result));
	if (run.result == SPF_FAIL && run.explanation[0] != '\0')
		printf("explanation: %s\n", run.explanation);
	return CLI_OK;
}
