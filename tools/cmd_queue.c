/* cmd_queue.c - postroom queue list [--held] | flush [DOMAIN] | del ID |
 * release ID */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "cli.h"
#include "cli_util.h"

/* UTC with its zone, as `mailbox list` prints times. */
static void
cmd_queue_fmt_time(int64_t t, char *out, size_t outsz)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		snprintf(out, outsz, "-");
		return;
	}
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A deferral by an outbound TLS policy says so ("TLS policy mta-sts:
 * ...", docs/OUTBOUND_TLS.md): its name on a line of its own. */
static void
cmd_queue_tls_policy(const char *err)
{
	static const char pre[] = "TLS policy ";
	size_t n;

	/* The last error is "<rcpt>: reason". */
	if ((err = strstr(err, pre)) == NULL)
		return;
	err += sizeof(pre) - 1;
	n = strcspn(err, ": ");
	if (n > 0 && err[n] == ':')
		printf("    tls policy: %.*s\n", (int)n, err);
}

/* The message id first: it is what `queue del` takes, the "queued as" of
 * the SMTP reply and the id in the logs. */
static int
cmd_queue_list_cb(void *ctx, const struct store_queue_item *q)
{
	size_t *count = ctx;
	char created[32], next[32];
	size_t i;

	cmd_queue_fmt_time(q->created, created, sizeof(created));
	cmd_queue_fmt_time(q->next_attempt, next, sizeof(next));
	printf("%s  from=<%s>  created=%s  attempts=%d  next=%s\n", q->msgid,
	    q->sender, created, q->attempts, next);
	/* One line per recipient with its own state: how often it was
	 * tried, when next (an entry's recipients share the schedule) and
	 * the reply it got last.  A recipient's DSN request (RFC 3461
	 * NOTIFY=) belongs after the address, as notify=SUCCESS,FAILURE. */
	for (i = 0; i < q->n_rcpts; i++) {
		printf("    to=<%s>  tries=%d  next=%s", q->rcpts[i],
		    q->rcpt_attempts != NULL ? q->rcpt_attempts[i] : 0, next);
		if (q->rcpt_replies != NULL && q->rcpt_replies[i][0] != '\0')
			printf("  reply=\"%s\"", q->rcpt_replies[i]);
		printf("\n");
	}
	if (q->last_error != NULL && q->last_error[0] != '\0') {
		printf("    last error: %s\n", q->last_error);
		cmd_queue_tls_policy(q->last_error);
	}
	(*count)++;
	return 0;
}

/* A message a content filter quarantined (docs/MILTER.md). */
static int
cmd_queue_held_cb(void *ctx, const struct store_held_item *h)
{
	size_t *count = ctx;
	char created[32];
	size_t i;

	cmd_queue_fmt_time(h->created, created, sizeof(created));
	printf("%s  from=<%s>  created=%s  size=%" PRId64 "  held\n",
	    h->msgid, h->sender, created, h->size);
	for (i = 0; i < h->n_rcpts; i++)
		printf("    to=<%s>\n", h->rcpts[i]);
	if (h->reason[0] != '\0')
		printf("    reason: %s\n", h->reason);
	(*count)++;
	return 0;
}

/* What ETRN does for a client (RFC 1985), for the admin: the entries for
 * domain (and its subdomains with "@domain") are due now; the running
 * smtpd sees them at its next look at the queue (postroom(8)). */
static int
cmd_queue_flush_domain(struct cli *cli, const char *arg)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	bool sub = arg[0] == '@';
	struct pr_err err;
	size_t n;

	pr_err_clear(&err);
	if (cli_domain(sub ? arg + 1 : arg, dom) < 0)
		return CLI_ERR;
	if (store_queue_flush_domain(cli_store(cli), dom, sub, &n, &err) < 0)
		return cli_fail("queue flush: %s", err.msg);
	printf("%zu queued message%s for %s%s\n", n, n == 1 ? "" : "s",
	    sub ? "@" : "", dom);
	return CLI_OK;
}

int
cmd_queue(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	size_t count = 0;

	pr_err_clear(&err);
	if (argc < 2)
		return CLI_USAGE;
	if (strcmp(argv[1], "list") == 0 && argc == 3 &&
	    strcmp(argv[2], "--held") == 0) {
		if (store_held_list(cli_store(cli), cmd_queue_held_cb, &count,
		    &err) < 0)
			return cli_fail("queue list: %s", err.msg);
		if (count == 0)
			printf("no held messages\n");
		return CLI_OK;
	}
	if (strcmp(argv[1], "release") == 0) {
		if (argc != 3)
			return CLI_USAGE;
		if (store_held_release(cli_store(cli), argv[2], NULL,
		    &err) < 0)
			return cli_fail("queue release: %s", err.msg);
		return CLI_OK;
	}
	if (strcmp(argv[1], "list") == 0) {
		if (argc != 2)
			return CLI_USAGE;
		if (store_queue_list(cli_store(cli), cmd_queue_list_cb, &count,
		    &err) < 0)
			return cli_fail("queue list: %s", err.msg);
		if (count == 0)
			printf("queue is empty\n");
		return CLI_OK;
	}
	if (strcmp(argv[1], "flush") == 0) {
		if (argc > 3)
			return CLI_USAGE;
		if (argc == 3)
			return cmd_queue_flush_domain(cli, argv[2]);
		if (store_queue_flush(cli_store(cli), &err) < 0)
			return cli_fail("queue flush: %s", err.msg);
		return CLI_OK;
	}
	if (strcmp(argv[1], "del") == 0) {
		if (argc != 3)
			return CLI_USAGE;
		/* A queued message, or else a held one. */
		if (store_queue_del_msg(cli_store(cli), argv[2], &err) == 0)
			return CLI_OK;
		if (err.code == PR_ENOENT) {
			pr_err_clear(&err);
			if (store_held_del(cli_store(cli), argv[2], &err) == 0)
				return CLI_OK;
			if (err.code == PR_ENOENT)
				return cli_fail("queue del: no queue entry %s "
				    "(and no held message)", argv[2]);
		}
		return cli_fail("queue del: %s", err.msg);
	}
	return CLI_USAGE;
}
