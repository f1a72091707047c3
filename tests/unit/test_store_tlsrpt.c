/*
 * test_store_tlsrpt.c - the counts of SMTP TLS Reporting (RFC 8460,
 * store_tlsrpt.c): batches summed by key, one day listed, old days
 * pruned, the sent mark, and a report queued to a hosted mailbox and a
 * remote address from the null reverse-path.
 */
#include "test_store_util.c"

struct t_rows {
	char text[4096];
	int64_t total;
};

static int
t_row_cb(void *ctx, const struct store_tlsrpt_count *c)
{
	struct t_rows *t = ctx;
	size_t len = strlen(t->text);

	snprintf(t->text + len, sizeof(t->text) - len,
	    "%lld %s %s [%s] %s %s %s %s %lld\n", (long long)c->day,
	    c->domain, c->policy_type, c->policy_string, c->result,
	    c->mx_host, c->receiving_ip, c->reason, (long long)c->count);
	t->total += c->count;
	return 0;
}

int
main(void)
{
	const struct store_tlsrpt_count batch1[] = {
		{ 20000, "b.test", "no-policy-found", "", "success", "", "",
		    "", "", 3 },
		{ 20000, "b.test", "no-policy-found", "",
		    "certificate-not-trusted", "mx.b.test", "127.0.0.3", "",
		    "self-signed certificate", 2 },
		{ 20000, "a.test", "sts", "version: STSv1\nmode: enforce",
		    "success", "", "", "", "", 1 },
		{ 19990, "old.test", "no-policy-found", "", "success", "", "",
		    "", "", 7 },
	};
	const struct store_tlsrpt_count batch2[] = {
		{ 20000, "b.test", "no-policy-found", "", "success", "", "",
		    "", "", 4 },
		{ 20000, "b.test", "no-policy-found", "",
		    "certificate-not-trusted", "mx.b.test", "127.0.0.3", "",
		    "self-signed certificate", 1 },
		{ 20001, "b.test", "no-policy-found", "", "success", NULL,
		    NULL, NULL, NULL, 1 },
	};
	const char *rcpts[] = { "reports@example.org", "tlsrpt@far.test",
	    "nobody@example.org" };
	static const char msg[] = "From: x@example.org\r\nSubject: r\r\n\r\n"
	    "report\r\n";
	struct pr_err err = { 0 };
	struct t_rows t;
	char id[STORE_ID_LEN + 1];
	int64_t at;
	struct store *st;

	t_setup("store-tlsrpt");
	st = t_open();
	TAP_EQ_INT(store_tlsrpt_add(st, batch1, 4, &err), 0, "first batch");
	TAP_EQ_INT(store_tlsrpt_add(st, batch2, 3, &err), 0, "second batch");
	TAP_EQ_INT(store_tlsrpt_add(st, batch2, 0, &err), 0, "empty batch");
	memset(&t, 0, sizeof(t));
	TAP_EQ_INT(store_tlsrpt_list(st, 20000, t_row_cb, &t, &err), 3,
	    "three keys on day 20000");
	TAP_EQ_STR(t.text,
	    "20000 a.test sts [version: STSv1\nmode: enforce] success    1\n"
	    "20000 b.test no-policy-found [] success    7\n"
	    "20000 b.test no-policy-found [] certificate-not-trusted "
	    "mx.b.test 127.0.0.3 self-signed certificate 3\n",
	    "summed by key, domains in order, successes first");
	memset(&t, 0, sizeof(t));
	TAP_EQ_INT(store_tlsrpt_list(st, -1, t_row_cb, &t, &err), 5,
	    "all days");
	TAP_EQ_INT(t.total, 19, "every count is there");
	memset(&t, 0, sizeof(t));
	TAP_EQ_INT(store_tlsrpt_list(st, 12345, t_row_cb, &t, &err), 0,
	    "a day without counts");

	TAP_EQ_INT(store_tlsrpt_sent_get(st, 20000, &at, &err), 0, "sent?");
	TAP_EQ_INT(at, 0, "not sent yet");
	TAP_EQ_INT(store_tlsrpt_sent_set(st, 20000, 1728000123, &err), 0,
	    "mark sent");
	TAP_EQ_INT(store_tlsrpt_sent_get(st, 20000, &at, &err), 0, "sent?");
	TAP_EQ_INT(at, 1728000123, "sent then");
	TAP_EQ_INT(store_tlsrpt_sent_set(st, 19980, 5, &err), 0, "old mark");

	TAP_EQ_INT(store_tlsrpt_prune(st, 19995, &err), 1,
	    "one old row pruned");
	TAP_EQ_INT(t_int("SELECT count(*) FROM tlsrpt_sent"), 1,
	    "old sent mark pruned");
	TAP_EQ_INT(t_int("SELECT count(*) FROM tlsrpt"), 4, "the rest stays");

	store_domain_add(st, "example.org", &err);
	t_add_user(st, "reports@example.org", 0);
	TAP_EQ_INT(store_tlsrpt_queue(st, rcpts, 3, (const uint8_t *)msg,
	    strlen(msg), "tlsrpt/20000/example.org", id, &err), 0,
	    "report queued");
	TAP_EQ_INT(strlen(id), STORE_ID_LEN, "its id");
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox"), 1,
	    "in the hosted mailbox");
	TAP_EQ_INT(t_int("SELECT count(*) FROM queue_rcpt WHERE address ="
	    " 'tlsrpt@far.test'"), 1, "queued for the remote address");
	TAP_EQ_INT(t_int("SELECT count(*) FROM queue WHERE sender = ''"), 1,
	    "from the null reverse-path");
	TAP_EQ_INT(store_tlsrpt_queue(st, rcpts, 3, (const uint8_t *)msg,
	    strlen(msg), "tlsrpt/20000/example.org", id, &err), PR_EEXIST,
	    "the same key again: queued before");
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox"), 1,
	    "... and nothing added");
	TAP_EQ_INT(store_tlsrpt_queue(st, rcpts + 2, 1, (const uint8_t *)msg,
	    strlen(msg), NULL, id, &err), PR_ENOENT, "nobody takes it");
	t_check_plans(st);
	store_close(&st);
	return tap_done();
}
