/*
 * test_relay_tlsrpt.c - the relay's TLS result counts (relay_tlsrpt.c)
 * on a real loop and store worker: results of every policy type as the
 * MTA-STS and DANE code note them, keyed as RFC 8460 4.4 reports them
 * (successes without detail, TLSA successes per MX host), flushed to the
 * store when counting stops, including a result noted while the flush
 * is in flight; the cap on distinct keys.
 */
#include "test_store_util.c"

#include "dns.h"
#include "relay_int.h"
#include "relay_tlsrpt.h"
#include "store_worker.h"

struct t_rows {
	char text[8192];
	int n;
};

static int
t_row_cb(void *ctx, const struct store_tlsrpt_count *c)
{
	struct t_rows *t = ctx;
	size_t len = strlen(t->text);

	if (len + 600 < sizeof(t->text))
		snprintf(t->text + len, sizeof(t->text) - len,
		    "%s %s [%s] %s %s %s %s %s %lld\n", c->domain,
		    c->policy_type, c->policy_string, c->result, c->mx_host,
		    c->receiving_ip, c->sending_ip, c->reason,
		    (long long)c->count);
	t->n++;
	return 0;
}

static void
t_note(struct relay *r, const char *domain, enum relay_tlsrpt_policy type,
    const char *policy, const char *mx, const char *ip,
    enum relay_tlsrpt_result res, const char *detail, int times)
{
	/* Our own address: reported with failures only. */
	struct relay_tlsrpt_event ev = { .policy_domain = domain,
	    .policy_type = type, .policy_string = policy, .mx_host = mx,
	    .receiving_ip = ip, .sending_ip = "198.51.100.25", .result = res,
	    .detail = detail };

	while (times-- > 0)
		relay_tlsrpt_note(r, &ev);
}

static void
t_stop(uv_loop_t *loop, struct relay *r)
{
	relay_tlsrpt_stop(r);
	while (relay_tlsrpt_busy(r))
		uv_run(loop, UV_RUN_ONCE);
	relay_tlsrpt_free(r);
}

int
main(void)
{
	static const char sts[] = "version: STSv1\nmode: enforce\n"
	    "mx: mx.a.test\nmax_age: 86400";
	struct store_worker *wk = NULL;
	struct pr_err err = { 0 };
	struct dns *dns = NULL;
	struct t_rows rows;
	struct store *st;
	struct relay r;
	struct cfg cfg;
	uv_loop_t loop;
	int64_t today;
	char mx[32];
	int i;

	log_set_level(LOG_LVL_WARN);
	t_setup("relay-tlsrpt");
	st = t_open();
	uv_loop_init(&loop);
	if (store_worker_new(&loop, t_data, 0, &wk, &err) < 0 ||
	    dns_new(&loop, "127.0.0.1:9", 1000, &dns, &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.server.hostname, sizeof(cfg.server.hostname),
	    "mx.z.test");
	memset(&r, 0, sizeof(r));
	r.loop = &loop;
	r.cfg = &cfg;
	r.worker = wk;

	today = time(NULL) / 86400;
	relay_tlsrpt_start(&r, dns);
	t_note(&r, "b.test", RELAY_TLSRPT_POLICY_NONE, NULL, "mx1.b.test",
	    "192.0.2.1", RELAY_TLSRPT_SUCCESS, NULL, 2);
	t_note(&r, "b.test", RELAY_TLSRPT_POLICY_NONE, NULL, "mx2.b.test",
	    "192.0.2.2", RELAY_TLSRPT_SUCCESS, NULL, 1);
	t_note(&r, "b.test", RELAY_TLSRPT_POLICY_NONE, NULL, "mx1.b.test",
	    "192.0.2.1", RELAY_TLSRPT_CERTIFICATE_NOT_TRUSTED,
	    "self-signed certificate", 2);
	t_note(&r, "a.test", RELAY_TLSRPT_POLICY_STS, sts, "mx.a.test",
	    "192.0.2.9", RELAY_TLSRPT_SUCCESS, NULL, 1);
	t_note(&r, "a.test", RELAY_TLSRPT_POLICY_STS, sts, NULL, NULL,
	    RELAY_TLSRPT_STS_POLICY_FETCH_ERROR, "HTTP 404", 1);
	t_note(&r, "c.test", RELAY_TLSRPT_POLICY_TLSA, "3 1 1 abcd",
	    "mx1.c.test", "192.0.2.5", RELAY_TLSRPT_SUCCESS, NULL, 2);
	t_note(&r, "c.test", RELAY_TLSRPT_POLICY_TLSA, "3 1 1 abcd",
	    "mx2.c.test", "192.0.2.6", RELAY_TLSRPT_SUCCESS, NULL, 1);
	t_note(&r, NULL, RELAY_TLSRPT_POLICY_NONE, NULL, "mx.x.test", NULL,
	    RELAY_TLSRPT_SUCCESS, NULL, 1);
	t_note(&r, "", RELAY_TLSRPT_POLICY_NONE, NULL, "mx.x.test", NULL,
	    RELAY_TLSRPT_SUCCESS, NULL, 1);
	memset(&rows, 0, sizeof(rows));
	store_tlsrpt_list(st, today, t_row_cb, &rows, &err);
	TAP_EQ_INT(rows.n, 0, "nothing in the store before the flush");

	relay_tlsrpt_stop(&r);
	/* A session that ends while the first flush is in flight. */
	t_note(&r, "b.test", RELAY_TLSRPT_POLICY_NONE, NULL, "mx3.b.test",
	    "192.0.2.3", RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED, NULL, 1);
	while (relay_tlsrpt_busy(&r))
		uv_run(&loop, UV_RUN_ONCE);
	relay_tlsrpt_free(&r);
	memset(&rows, 0, sizeof(rows));
	TAP_EQ_INT(store_tlsrpt_list(st, today, t_row_cb, &rows, &err), 7,
	    "seven keys in the store after the stop");
	TAP_EQ_STR(rows.text,
	    "a.test sts [version: STSv1\nmode: enforce\nmx: mx.a.test\n"
	    "max_age: 86400] success     1\n"
	    "a.test sts [version: STSv1\nmode: enforce\nmx: mx.a.test\n"
	    "max_age: 86400] sts-policy-fetch-error   198.51.100.25 HTTP 404 1\n"
	    "b.test no-policy-found [] success     3\n"
	    "b.test no-policy-found [] certificate-not-trusted mx1.b.test "
	    "192.0.2.1 198.51.100.25 self-signed certificate 2\n"
	    "b.test no-policy-found [] starttls-not-supported mx3.b.test "
	    "192.0.2.3 198.51.100.25  1\n"
	    "c.test tlsa [3 1 1 abcd] success mx1.c.test    2\n"
	    "c.test tlsa [3 1 1 abcd] success mx2.c.test    1\n",
	    "counted by key; successes without detail but TLSA's MX host, "
	    "failures with our address (sending-mta-ip)");

	/* The cap: keys beyond it are not kept, the rest still are. */
	relay_tlsrpt_start(&r, dns);
	for (i = 0; i < 4096 + 10; i++) {
		snprintf(mx, sizeof(mx), "mx%d.d.test", i);
		t_note(&r, "d.test", RELAY_TLSRPT_POLICY_NONE, NULL, mx,
		    "192.0.2.7", RELAY_TLSRPT_VALIDATION_FAILURE, NULL, 1);
	}
	t_note(&r, "d.test", RELAY_TLSRPT_POLICY_NONE, NULL, "mx0.d.test",
	    "192.0.2.7", RELAY_TLSRPT_VALIDATION_FAILURE, NULL, 1);
	t_stop(&loop, &r);
	TAP_EQ_INT(t_int("SELECT count(*) FROM tlsrpt WHERE domain = 'd.test'"),
	    4096, "at most 4096 keys kept");
	TAP_EQ_INT(t_int("SELECT count FROM tlsrpt WHERE domain = 'd.test'"
	    " AND mx_host = 'mx0.d.test'"), 2, "a kept key still counts");

	/* Counts add up across flushes. */
	relay_tlsrpt_start(&r, dns);
	t_note(&r, "b.test", RELAY_TLSRPT_POLICY_NONE, NULL, "mx1.b.test",
	    "192.0.2.1", RELAY_TLSRPT_SUCCESS, NULL, 4);
	t_stop(&loop, &r);
	TAP_EQ_INT(t_int("SELECT count FROM tlsrpt WHERE domain = 'b.test'"
	    " AND result = 'success'"), 7, "added to the stored count");

	store_worker_stop(&wk, NULL, NULL);
	dns_close(dns, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	store_close(&st);
	return tap_done();
}
