/*
 * cmd_check_message.c - postroom check-message [--ip IP] [--helo NAME]
 * [--from ADDR] [FILE]: what postroom-smtpd would decide about a
 * message on its MX listener, for an admin asked why one was refused.
 *
 * The same checks as smtpd, with the DNS of [dns] resolver and the
 * [inbound] keys: SPF (RFC 7208) of --from, or of the HELO identity for
 * the null sender, when --ip is given; DKIM (RFC 6376, RFC 8463) of the
 * message; the From: count and DMARC (RFC 7489); iprev (RFC 8601 3) of
 * --ip.  The same policy (smtpd/smtp_policy.c) decides.  Prints the
 * Authentication-Results field smtpd would add, the X-Spam-Flag and
 * X-Spam-Reason fields of a marked message, then one line: "accept", or
 * the reply smtpd would give ("550 5.7.1 ...").  The message is read
 * from FILE or stdin; lines ending in a bare LF (a file saved by a mail
 * client) are read as CRLF.  Any verdict is exit status 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "authres.h"
#include "cli.h"
#include "cli_util.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "dns.h"
#include "iprev.h"
#include "smtp_head.h"
#include "smtp_policy.h"
#include "spf.h"

/* Octets fed to the header filter at a time. */
#define CMD_CM_CHUNK 65536

struct cmd_cm {
	struct cli *cli;
	struct dns *dns;
	struct resolver *rsv;
	const char *ip, *helo, *from;
	struct buf msg;
	unsigned wait;                /* checks in flight */
	bool dmarc_started;
	/* SPF. */
	struct spf_check *spf;
	bool spf_checked;
	enum spf_result spf_result;
	bool spf_helo;
	char spf_identity[512];
	char spf_exp[SPF_EXPLANATION_MAX + 1];
	/* iprev. */
	struct iprev *iprev;
	const char *iprev_word;
	/* DKIM and DMARC. */
	struct dkim_verify *dkim;
	struct dkim_verify_result res[DKIM_VERIFY_REPORT_MAX];
	size_t nres;
	enum dmarc_from from_status;
	char from_domain[256];
	struct dmarc *dmarc;
	bool dmarc_done;
	struct dmarc_verdict dv;
};

static void cmd_cm_dmarc(struct cmd_cm *c);

/* One check is over; the last one lets the loop end. */
static void
cmd_cm_settle(struct cmd_cm *c)
{
	if (--c->wait > 0)
		return;
	if (!c->dmarc_started) {
		cmd_cm_dmarc(c);
		if (c->wait > 0)
			return;
	}
	/* Their lookups go through the resolver: free them first. */
	spf_check_free(&c->spf);
	iprev_free(&c->iprev);
	dkim_verify_free(&c->dkim);
	dmarc_free(&c->dmarc);
	dns_close(c->dns, NULL, NULL);
}

static void
cmd_cm_spf_keep(struct cmd_cm *c, const struct spf_outcome *o)
{
	c->spf_checked = true;
	c->spf_result = o->result;
	c->spf_helo = o->identity == SPF_ID_HELO;
	snprintf(c->spf_identity, sizeof(c->spf_identity), "%s", o->sender);
	snprintf(c->spf_exp, sizeof(c->spf_exp), "%s", o->explanation != NULL ?
	    o->explanation : "");
}

static void
cmd_cm_spf_cb(void *data, const struct spf_outcome *o)
{
	struct cmd_cm *c = data;

	cmd_cm_spf_keep(c, o);
	cmd_cm_settle(c);
}

static void
cmd_cm_iprev_cb(void *data, enum iprev_result r, const char *name)
{
	struct cmd_cm *c = data;

	c->iprev_word = iprev_result_str(r);
	cmd_cm_settle(c);
}

static void
cmd_cm_dkim_cb(void *data, const struct dkim_verify_result *res, size_t n)
{
	struct cmd_cm *c = data;

	if (n > DKIM_VERIFY_REPORT_MAX)
		n = DKIM_VERIFY_REPORT_MAX;
	if (n > 0) /* res may be NULL then (C11 7.24.1p2) */
		memcpy(c->res, res, n * sizeof(*res));
	c->nres = n;
	cmd_cm_settle(c);
}

static void
cmd_cm_dmarc_cb(void *data, const struct dmarc_verdict *v)
{
	struct cmd_cm *c = data;

	c->dv = *v;
	c->dmarc_done = true;
	cmd_cm_settle(c);
}

/* SPF and DKIM are in: the From: domain, then DMARC (which aligns
 * them). */
static void
cmd_cm_dmarc(struct cmd_cm *c)
{
	const struct cfg *cfg = &c->cli->cfg;
	struct dmarc_input in;
	struct smtp_head h;
	struct buf out;
	const char *at;
	size_t off, n;
	int r = 0;

	c->dmarc_started = true;
	c->from_status = DMARC_FROM_OK;
	if (!cfg->inbound.dmarc)
		return;
	/* The From: fields as smtpd's header filter keeps them: a field
	 * beyond its bound makes the From: count bad there, so here too.
	 * What the filter passes on is not needed, only room for it. */
	smtp_head_init(&h, cfg->server.hostname);
	buf_init(&out, CMD_CM_CHUNK + SMTP_HEAD_FIELD_MAX + 16);
	for (off = 0; off < c->msg.len && !h.body && r == 0; off += n) {
		n = c->msg.len - off < CMD_CM_CHUNK ? c->msg.len - off :
		    CMD_CM_CHUNK;
		buf_reset(&out);
		r = smtp_head_feed(&h, c->msg.p + off, n, &out);
	}
	buf_reset(&out);
	if (r == 0 && !h.body)
		r = smtp_head_finish(&h, &out);
	c->from_status = dmarc_from_domain(h.from.p, h.from.len,
	    c->from_domain, sizeof(c->from_domain));
	if (r < 0 || h.from_overflow)
		c->from_status = DMARC_FROM_BAD;
	buf_fini(&out);
	smtp_head_fini(&h);
	if (c->from_status != DMARC_FROM_OK)
		return;
	memset(&in, 0, sizeof(in));
	in.from_domain = c->from_domain;
	in.spf_pass = c->spf_checked && c->spf_result == SPF_PASS;
	at = strrchr(c->spf_identity, '@');
	in.spf_domain = at != NULL ? at + 1 : c->spf_identity;
	in.dkim = c->res;
	in.ndkim = cfg->inbound.dkim ? c->nres : 0;
	if (dmarc_new(c->rsv, NULL, NULL, &c->dmarc) == 0 &&
	    dmarc_check(c->dmarc, &in, cmd_cm_dmarc_cb, c) == 0)
		c->wait++;
}

/* The message, CRLF line ends (a bare LF becomes CRLF), at most
 * max_message_size octets.  Returns 0 or a CLI_ERR already reported. */
static int
cmd_cm_read(struct cmd_cm *c, FILE *f, uint64_t max)
{
	int ch, prev = 0;

	while ((ch = getc(f)) != EOF) {
		if (ch == '\n' && prev != '\r' && buf_append(&c->msg, "\r",
		    1) < 0)
			break;
		if (buf_append(&c->msg, &(uint8_t){ (uint8_t)ch }, 1) < 0)
			break;
		prev = ch;
	}
	if (ch != EOF)
		return cli_fail("the message is larger than max_message_size "
		    "(%llu octets)", (unsigned long long)max);
	if (ferror(f))
		return cli_fail("reading the message: %s", strerror(errno));
	return 0;
}

/* The field smtpd adds (smtpd/smtp_session.c builds the same). */
static int
cmd_cm_authres(struct cmd_cm *c, struct buf *out)
{
	const struct cfg *cfg = &c->cli->cfg;
	struct authres a;

	authres_begin(&a, out, cfg->server.hostname);
	if (c->spf_checked)
		authres_add_spf(&a, spf_result_str(c->spf_result),
		    c->spf_helo ? NULL : c->spf_identity, c->helo);
	if (cfg->inbound.dkim)
		authres_add_dkim_all(&a, c->res, c->nres);
	if (cfg->inbound.dmarc && c->from_status == DMARC_FROM_OK &&
	    c->dmarc_done)
		authres_add_dmarc(&a, &c->dv);
	if (c->ip[0] != '\0')
		authres_add_iprev(&a, c->iprev_word, c->ip);
	return authres_finish(&a);
}

/* The policy's verdict, at MAIL (SPF) and at the end of data. */
static void
cmd_cm_decide(struct cmd_cm *c, struct smtp_verdict *v)
{
	struct smtp_policy_facts f;
	struct smtp_limits lim;
	size_t i;

	smtp_limits_default(&lim);
	memset(&f, 0, sizeof(f));
	f.hostname = c->cli->cfg.server.hostname;
	f.limits = &lim;
	f.kind = SMTP_LISTEN_MX;
	f.sender = c->from;
	f.peer = c->ip;
	f.spf_checked = c->spf_checked;
	f.spf_result = (int)c->spf_result;
	f.spf_explanation = c->spf_exp;
	smtp_policy_check(SMTP_POLICY_SPF_DONE, &f, v);
	if (v->code != 0)
		return;
	f.from_status = (int)c->from_status;
	f.dmarc_checked = c->dmarc_done;
	f.dmarc_result = (int)c->dv.result;
	f.dmarc_apply = (int)c->dv.apply;
	f.dmarc_domain = c->from_domain;
	f.dmarc_report = c->cli->cfg.inbound.dmarc_policy == CFG_DMARC_REPORT;
	f.dmarc_temp = c->spf_checked && c->spf_result == SPF_TEMPERROR;
	for (i = 0; i < c->nres; i++)
		if (c->res[i].res == DKIM_VERIFY_TEMPERROR)
			f.dmarc_temp = true;
	smtp_policy_check(SMTP_POLICY_VERIFY_DONE, &f, v);
}

static int
cmd_cm_usage(void)
{
	return cli_usage("check-message [--ip IP] [--helo NAME] "
	    "[--from ADDR] [FILE]");
}

int
cmd_check_message(struct cli *cli, int argc, char **argv)
{
	const struct cfg *cfg = &cli->cfg;
	struct cmd_cm c;
	struct dkim_verify_limits lim;
	struct spf_request req;
	struct smtp_verdict v;
	struct buf ar;
	const char *file = NULL;
	uv_loop_t loop;
	FILE *f = stdin;
	int i, r;

	memset(&c, 0, sizeof(c));
	c.cli = cli;
	c.ip = c.helo = c.from = "";
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ip") == 0 && i + 1 < argc)
			c.ip = argv[++i];
		else if (strcmp(argv[i], "--helo") == 0 && i + 1 < argc)
			c.helo = argv[++i];
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			c.from = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return cmd_cm_usage();
		else if (file == NULL)
			file = argv[i];
		else
			return cmd_cm_usage();
	}
	if (file != NULL && strcmp(file, "-") != 0 &&
	    (f = fopen(file, "rb")) == NULL)
		return cli_fail("%s: %s", file, strerror(errno));
	buf_init(&c.msg, cfg->smtp.max_message_size + 1);
	r = cmd_cm_read(&c, f, cfg->smtp.max_message_size);
	if (f != stdin)
		fclose(f);
	if (r != 0) {
		buf_fini(&c.msg);
		return r;
	}
	if (cli_dns_open(cli, &loop, &c.dns) != CLI_OK) {
		buf_fini(&c.msg);
		return CLI_ERR;
	}
	c.rsv = dns_resolver(c.dns);
	/* One count for the start, so no check can end the run early. */
	c.wait = 1;
	if (c.ip[0] != '\0') {
		memset(&req, 0, sizeof(req));
		req.ip = c.ip;
		req.sender = c.from;
		req.helo = c.helo;
		req.receiver = cfg->server.hostname;
		req.now = (uint64_t)time(NULL);
		r = cfg->inbound.spf ? spf_check_new(c.rsv, &req, cmd_cm_spf_cb,
		    &c, &c.spf) : 1;
		if (r < 0 || iprev_new(c.rsv, c.ip, cmd_cm_iprev_cb, &c,
		    &c.iprev) < 0) {
			spf_check_free(&c.spf);
			dns_close(c.dns, NULL, NULL);
			uv_run(&loop, UV_RUN_DEFAULT);
			uv_loop_close(&loop);
			buf_fini(&c.msg);
			return cli_fail("not an IP address: %s", c.ip);
		}
		if (r == 0)
			c.wait++;
		else if (cfg->inbound.spf)
			cmd_cm_spf_keep(&c, spf_check_outcome(c.spf));
		c.wait++;
	}
	if (cfg->inbound.dkim || cfg->inbound.dmarc) {
		memset(&lim, 0, sizeof(lim));
		lim.max_sigs = DKIM_VERIFY_SIGS;
		lim.now = (int64_t)time(NULL);
		if (dkim_verify_new(c.rsv, &lim, &c.dkim) < 0)
			return cli_fail("out of memory");
		dkim_verify_feed(c.dkim, c.msg.p, c.msg.len);
		c.wait++;
		if (dkim_verify_end(c.dkim, cmd_cm_dkim_cb, &c) < 0)
			c.wait--;
	}
	cmd_cm_settle(&c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);

	buf_init(&ar, 16384);
	if (cmd_cm_authres(&c, &ar) < 0) {
		buf_fini(&ar);
		buf_fini(&c.msg);
		return cli_fail("the Authentication-Results field does not fit");
	}
	/* On a terminal, lines end in LF. */
	for (i = 0; i < (int)ar.len; i++)
		if (ar.p[i] != '\r')
			putchar(ar.p[i]);
	cmd_cm_decide(&c, &v);
	if (v.mark)
		printf("X-Spam-Flag: YES\nX-Spam-Reason: %s\n", v.text);
	if (v.code != 0)
		printf("%d %s %s\n", v.code, v.enh != NULL ? v.enh : "", v.text);
	else
		printf("accept\n");
	buf_fini(&ar);
	buf_fini(&c.msg);
	return CLI_OK;
}
