/*
 * test_store_tlspol.c - the relay's outbound TLS memory in the store:
 * an MTA-STS policy is cached, replaced and read back across a reopen;
 * the downgrade memory remembers a domain, refreshes it, forgets it
 * after its keep time; postroom tls forget removes both; domains
 * compare without case.
 */
#include "test_store_util.c"

int
main(void)
{
	struct store *st;
	struct store_sts p, got;
	struct pr_err err = { 0 };
	char mx[256];
	int64_t last = 0, t0 = 1700000000;

	t_setup("store-tlspol");
	st = t_open();
	TAP_EQ_INT(store_sts_get(st, "b.test", &got, &err), 0,
	    "no policy cached at first");
	memset(&p, 0, sizeof(p));
	snprintf(p.id, sizeof(p.id), "id1");
	snprintf(p.mode, sizeof(p.mode), "enforce");
	p.policy = "version: STSv1\nmode: enforce\nmx: mx.b.test\n"
	    "max_age: 86400\n";
	p.fetched = t0;
	p.expires = t0 + 86400;
	TAP_EQ_INT(store_sts_put(st, "B.test", &p, &err), 0, "policy cached");
	TAP_EQ_INT(store_sts_get(st, "b.TEST", &got, &err), 1,
	    "policy found, without case");
	TAP_EQ_STR(got.id, "id1", "its id");
	TAP_EQ_STR(got.mode, "enforce", "its mode");
	TAP_EQ_STR(got.policy, p.policy, "its text");
	TAP_EQ_INT(got.expires, t0 + 86400, "its expiry");
	free(got.policy);
	snprintf(p.id, sizeof(p.id), "id2");
	p.expires = t0 + 100;
	TAP_EQ_INT(store_sts_put(st, "b.test", &p, &err), 0, "replaced");
	store_close(&st);
	st = t_open();
	TAP_EQ_INT(store_sts_get(st, "b.test", &got, &err), 1,
	    "still there after a reopen");
	TAP_EQ_STR(got.id, "id2", "the new id");
	TAP_EQ_INT(got.expires, t0 + 100, "the new expiry");
	free(got.policy);

	TAP_EQ_INT(store_tls_seen_get(st, "c.test", t0, 1000, &last, mx,
	    sizeof(mx), &err), 0, "c.test not remembered");
	TAP_EQ_INT(store_tls_seen_put(st, "C.test", "mx.c.test", t0, &err),
	    0, "c.test remembered");
	TAP_EQ_INT(store_tls_seen_get(st, "c.test", t0 + 10, 1000, &last, mx,
	    sizeof(mx), &err), 1, "c.test found");
	TAP_EQ_INT(last, t0, "with the time");
	TAP_EQ_STR(mx, "mx.c.test", "and the host");
	TAP_EQ_INT(store_tls_seen_put(st, "c.test", "mx2.c.test", t0 + 500,
	    &err), 0, "refreshed");
	TAP_EQ_INT(store_tls_seen_get(st, "c.test", t0 + 1400, 1000, &last,
	    mx, sizeof(mx), &err), 1, "kept within 1000 s of the refresh");
	TAP_EQ_STR(mx, "mx2.c.test", "the newer host");
	TAP_EQ_INT(store_tls_seen_get(st, "c.test", t0 + 1500, 1000, &last,
	    mx, sizeof(mx), &err), 0, "forgotten after the keep time");

	TAP_EQ_INT(store_tls_seen_put(st, "b.test", "mx.b.test", t0, &err), 0,
	    "b.test remembered too");
	TAP_EQ_INT(store_tls_forget(st, "B.TEST", &err), 2,
	    "forget: the policy and the memory");
	TAP_EQ_INT(store_sts_get(st, "b.test", &got, &err), 0,
	    "forget: no policy left");
	TAP_EQ_INT(store_tls_forget(st, "b.test", &err), 0,
	    "forget: nothing left to forget");
	store_close(&st);
	t_cleanup();
	return tap_done();
}
