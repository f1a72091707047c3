/*
 * test_iprev.c - iprev (RFC 8601 3) over the table resolver: reversed
 * names of IPv4 and IPv6 addresses (also the DNSBL names of RFC 5782),
 * and the results: pass, fail, temperror.
 */
#include <string.h>

#include "err.h"
#include "iprev.h"
#include "resolver_table.h"
#include "tap.h"

static const struct resolver_table_entry iprev_zone[] = {
	{ "9.2.0.192.in-addr.arpa", RESOLVER_PTR, 0, "mail.good.test" },
	{ "mail.good.test", RESOLVER_A, 0, "192.0.2.9" },
	{ "8.2.0.192.in-addr.arpa", RESOLVER_PTR, 0, "liar.test" },
	{ "8.2.0.192.in-addr.arpa", RESOLVER_PTR, 0, "good-too.test" },
	{ "liar.test", RESOLVER_A, 0, "198.51.100.1" },
	{ "good-too.test", RESOLVER_A, 0, "192.0.2.8" },
	{ "7.2.0.192.in-addr.arpa", RESOLVER_PTR, RESOLVER_TIMEOUT, NULL },
	{ "6.2.0.192.in-addr.arpa", RESOLVER_PTR, 0, "slow.test" },
	{ "slow.test", RESOLVER_A, RESOLVER_SERVFAIL, NULL },
	{ "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
	    "ip6.arpa", RESOLVER_PTR, 0, "v6.good.test" },
	{ "v6.good.test", RESOLVER_AAAA, 0, "2001:db8::1" },
};

struct iprev_got {
	int calls;
	enum iprev_result r;
	char name[256];
};

static void
iprev_test_cb(void *data, enum iprev_result r, const char *name)
{
	struct iprev_got *g = data;

	g->calls++;
	g->r = r;
	strncpy(g->name, name, sizeof(g->name) - 1);
}

static void
test_revname(void)
{
	char out[128];

	TAP_OK(iprev_revname("192.0.2.1", "in-addr.arpa", out,
	    sizeof(out)) == 0 && strcmp(out, "1.2.0.192.in-addr.arpa") == 0,
	    "IPv4 reversed: %s", out);
	TAP_OK(iprev_revname("2001:db8::1", "bl.test", out, sizeof(out)) ==
	    0 && strcmp(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "8.b.d.0.1.0.0.2.bl.test") == 0,
	    "IPv6 reversed under a DNSBL zone (RFC 5782 2.4): %s", out);
	TAP_EQ_INT(iprev_revname("not.an.ip", "x", out, sizeof(out)),
	    PR_EINVAL, "not an address");
	TAP_EQ_INT(iprev_revname("192.0.2.1", "in-addr.arpa", out, 10),
	    PR_EINVAL, "too long for the buffer");
}

static void
test_results(void)
{
	static const struct {
		const char *ip;
		enum iprev_result r;
		const char *name;
	} rows[] = {
		{ "192.0.2.9", IPREV_PASS, "mail.good.test" },
		{ "192.0.2.8", IPREV_PASS, "good-too.test" },
		{ "192.0.2.7", IPREV_TEMPERROR, "" },
		{ "192.0.2.6", IPREV_TEMPERROR, "" },
		{ "192.0.2.5", IPREV_FAIL, "" },
		{ "2001:db8::1", IPREV_PASS, "v6.good.test" },
	};
	struct resolver_table *t;
	struct iprev *x;
	struct iprev_got g;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		resolver_table_new(iprev_zone, sizeof(iprev_zone) /
		    sizeof(iprev_zone[0]), &t);
		memset(&g, 0, sizeof(g));
		TAP_EQ_INT(iprev_new(resolver_table_resolver(t), rows[i].ip,
		    iprev_test_cb, &g, &x), 0, "%s: started", rows[i].ip);
		TAP_EQ_INT(g.calls, 0, "%s: no callback within the call",
		    rows[i].ip);
		resolver_table_run(t);
		TAP_EQ_INT(g.calls, 1, "%s: one callback", rows[i].ip);
		TAP_EQ_STR(iprev_result_str(g.r), iprev_result_str(rows[i].r),
		    "%s: result", rows[i].ip);
		TAP_EQ_STR(g.name, rows[i].name, "%s: name", rows[i].ip);
		iprev_free(&x);
		TAP_OK(x == NULL, "%s: freed", rows[i].ip);
		resolver_table_free(&t);
	}
	resolver_table_new(iprev_zone, 1, &t);
	memset(&g, 0, sizeof(g));
	TAP_EQ_INT(iprev_new(resolver_table_resolver(t), "bogus",
	    iprev_test_cb, &g, &x), PR_EINVAL, "not an address: PR_EINVAL");
	TAP_OK(iprev_new(resolver_table_resolver(t), "192.0.2.9",
	    iprev_test_cb, &g, &x) == 0, "started, then freed");
	iprev_free(&x);
	resolver_table_run(t);
	TAP_EQ_INT(g.calls, 0, "freed before the answer: no callback");
	resolver_table_free(&t);
}

int
main(void)
{
	test_revname();
	test_results();
	return tap_done();
}
