/*
 * test_spf.c - mailauth/spf.c over the table resolver: the contract of
 * spf_check_new() (a result without DNS, the callback never from within
 * the call, freeing a check that runs or from its callback), the
 * identities, the lookup limits of RFC 7208 4.6.4 as queries counted,
 * macros and explanations.  The whole openspf suite runs end to end in
 * tests/spf/.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "resolver.h"
#include "resolver_table.h"
#include "spf.h"
#include "tap.h"

static const struct resolver_table_entry zone[] = {
	{ "pass.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all" },
	{ "pass.test", RESOLVER_TXT, RESOLVER_NOERROR, "not spf" },
	{ "exp.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 -all exp=why.exp.test" },
	{ "why.exp.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "\"%{c} is not \" \"%{o}'s (%{l}, %{h}, %{v}, %{r})\"" },
	{ "helo.test", RESOLVER_TXT, RESOLVER_NOERROR, "v=spf1 a ~all" },
	{ "helo.test", RESOLVER_A, RESOLVER_NOERROR, "198.51.100.7" },
	/* Eleven terms that query DNS: the eleventh is one too many. */
	{ "many.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 a a a a a a a a a a a -all" },
	{ "many.test", RESOLVER_A, RESOLVER_NOERROR, "203.0.113.1" },
	{ "ten.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 a a a a a a a a a a -all" },
	{ "ten.test", RESOLVER_A, RESOLVER_NOERROR, "203.0.113.1" },
	{ "void.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test ?all" },
	{ "down.test", RESOLVER_TXT, RESOLVER_SERVFAIL, NULL },
	{ "inc.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 include:pass.test ~all" },
	{ "mx.test", RESOLVER_TXT, RESOLVER_NOERROR, "v=spf1 mx -all" },
	{ "mx.test", RESOLVER_MX, RESOLVER_NOERROR, "10 m1.mx.test" },
	{ "mx.test", RESOLVER_MX, RESOLVER_NOERROR, "20 m2.mx.test" },
	{ "m1.mx.test", RESOLVER_A, RESOLVER_NOERROR, "192.0.2.99" },
	{ "m2.mx.test", RESOLVER_A, RESOLVER_TIMEOUT, NULL },
	{ "m2.mx.test", RESOLVER_AAAA, RESOLVER_NOERROR, "2001:db8::99" },
	{ "two.test", RESOLVER_TXT, RESOLVER_NOERROR, "v=spf1 -all" },
	{ "two.test", RESOLVER_TXT, RESOLVER_NOERROR, "v=spf1 +all" },
};

struct got {
	int calls;
	enum spf_result result;
	enum spf_identity identity;
	char sender[256];
	char explanation[512];
	struct spf_check **free_me;
};

static void
got_cb(void *data, const struct spf_outcome *o)
{
	struct got *g = data;

	g->calls++;
	g->result = o->result;
	g->identity = o->identity;
	snprintf(g->sender, sizeof(g->sender), "%s", o->sender);
	snprintf(g->explanation, sizeof(g->explanation), "%s",
	    o->explanation != NULL ? o->explanation : "");
	if (g->free_me != NULL)
		spf_check_free(g->free_me);
}

/* Runs one check to its end; returns the result, or -1. */
static int
check(struct resolver_table *t, const char *ip, const char *sender,
    const char *helo, struct got *g)
{
	struct spf_request req = { ip, sender, helo, "mx.example.org", 0 };
	struct spf_check *c = NULL;
	int r;

	memset(g, 0, sizeof(*g));
	r = spf_check_new(resolver_table_resolver(t), &req, got_cb, g, &c);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (g->calls != 0)
			return -1;   /* called back from within the call */
		resolver_table_run(t);
		if (g->calls != 1)
			return -1;
	} else {
		const struct spf_outcome *o = spf_check_outcome(c);

		got_cb(g, o);
	}
	spf_check_free(&c);
	return (int)g->result;
}

/* One check each: client, MAIL FROM (HELO "h.test"), the result. */
static const struct {
	const char *ip, *sender;
	enum spf_result want;
	const char *name;
} cases[] = {
	{ "192.0.2.1", "a@void.test", SPF_PERMERROR,
	    "three void lookups: permerror" },
	{ "192.0.2.1", "a@down.test", SPF_TEMPERROR,
	    "SERVFAIL: temperror (RFC 7208 2.6.6)" },
	{ "192.0.2.1", "a@nowhere.test", SPF_NONE, "NXDOMAIN: none" },
	{ "192.0.2.1", "a@inc.test", SPF_PASS, "include: pass matches" },
	{ "198.51.100.1", "a@inc.test", SPF_SOFTFAIL,
	    "include: fail does not match" },
	{ "192.0.2.99", "a@mx.test", SPF_PASS,
	    "mx: one host's address matches" },
	{ "192.0.2.98", "a@mx.test", SPF_TEMPERROR,
	    "mx: no match and a lookup timed out: temperror" },
	{ "2001:db8::99", "a@mx.test", SPF_PASS,
	    "mx: AAAA for an IPv6 client" },
	{ "192.0.2.1", "a@two.test", SPF_PERMERROR,
	    "two records: permerror (RFC 7208 4.5)" },
};

int
main(void)
{
	struct resolver_table *t;
	struct spf_check *c = NULL;
	struct spf_request req = { "192.0.2.1", "a@pass.test", "h.test",
	    NULL, 0 };
	struct got g;
	size_t asked, i;
	int r;

	if (resolver_table_new(zone, sizeof(zone) / sizeof(zone[0]), &t) < 0)
		return 1;

	TAP_EQ_STR(spf_result_str(SPF_SOFTFAIL), "softfail", "result words");
	TAP_EQ_STR(spf_identity_str(SPF_ID_HELO), "smtp.helo",
	    "identity names (RFC 8601 2.7.2)");

	TAP_EQ_INT(check(t, "192.0.2.1", "a@pass.test", "h.test", &g),
	    SPF_PASS, "ip4 pass");
	TAP_OK(g.identity == SPF_ID_MAILFROM &&
	    strcmp(g.sender, "a@pass.test") == 0, "identity smtp.mailfrom");
	TAP_EQ_INT(check(t, "2001:db8:1::5", "a@pass.test", "h.test", &g),
	    SPF_PASS, "ip6 pass");
	TAP_EQ_INT(check(t, "::ffff:192.0.2.9", "a@pass.test", "h.test", &g),
	    SPF_PASS, "IPv4-mapped client is IPv4 (RFC 7208 5)");
	TAP_EQ_INT(check(t, "198.51.100.1", "a@pass.test", "h.test", &g),
	    SPF_FAIL, "fail");
	TAP_EQ_STR(g.explanation, "", "fail without exp=: no explanation");

	TAP_EQ_INT(check(t, "198.51.100.1", "Joe@exp.test", "h.test", &g),
	    SPF_FAIL, "fail with exp=");
	TAP_EQ_STR(g.explanation, "198.51.100.1 is not exp.test's (Joe, "
	    "h.test, in-addr, mx.example.org)",
	    "explanation: strings joined, macros expanded (RFC 7208 6.2, 7)");

	TAP_EQ_INT(check(t, "198.51.100.7", "", "helo.test", &g), SPF_PASS,
	    "null sender: HELO identity");
	TAP_OK(g.identity == SPF_ID_HELO &&
	    strcmp(g.sender, "postmaster@helo.test") == 0,
	    "identity smtp.helo, postmaster@HELO");
	TAP_EQ_INT(check(t, "198.51.100.8", "nodomain", "helo.test", &g),
	    SPF_SOFTFAIL, "a sender without a domain: HELO identity");

	/* RFC 7208 4.3: decided without DNS, no callback. */
	memset(&g, 0, sizeof(g));
	req.sender = "a@bad..test";
	asked = resolver_table_asked(t);
	r = spf_check_new(resolver_table_resolver(t), &req, got_cb, &g, &c);
	TAP_EQ_INT(r, 1, "malformed domain: decided at once");
	TAP_OK(c != NULL && spf_check_outcome(c) != NULL &&
	    spf_check_outcome(c)->result == SPF_NONE, "... as none");
	TAP_EQ_INT(g.calls, 0, "... without the callback");
	TAP_EQ_INT(resolver_table_asked(t) - asked, 0, "... and no query");
	spf_check_free(&c);
	TAP_OK(c == NULL, "spf_check_free sets NULL");

	req.ip = "not an address";
	r = spf_check_new(resolver_table_resolver(t), &req, got_cb, &g, &c);
	TAP_OK(r == PR_EINVAL && c == NULL, "bad client address: PR_EINVAL");
	req.ip = "192.0.2.1";

	/* RFC 7208 4.6.4: ten terms that query DNS pass, eleven are a
	 * permerror before the eleventh is asked. */
	asked = resolver_table_asked(t);
	TAP_EQ_INT(check(t, "192.0.2.1", "a@ten.test", "h.test", &g),
	    SPF_FAIL, "ten DNS-querying terms: evaluated");
	TAP_EQ_INT(resolver_table_asked(t) - asked, 11,
	    "... the record and ten A queries");
	asked = resolver_table_asked(t);
	TAP_EQ_INT(check(t, "192.0.2.1", "a@many.test", "h.test", &g),
	    SPF_PERMERROR, "eleven: permerror");
	TAP_EQ_INT(resolver_table_asked(t) - asked, 11,
	    "... the eleventh not asked");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TAP_EQ_INT(check(t, cases[i].ip, cases[i].sender, "h.test", &g),
		    cases[i].want, "%s", cases[i].name);

	/* Freed while it waits: no callback, nothing left behind. */
	memset(&g, 0, sizeof(g));
	req.sender = "a@mx.test";
	r = spf_check_new(resolver_table_resolver(t), &req, got_cb, &g, &c);
	TAP_EQ_INT(r, 0, "started");
	spf_check_free(&c);
	resolver_table_run(t);
	TAP_EQ_INT(g.calls, 0, "freed while it runs: never called back");

	/* Freed from its own callback. */
	memset(&g, 0, sizeof(g));
	req.sender = "a@pass.test";
	r = spf_check_new(resolver_table_resolver(t), &req, got_cb, &g, &c);
	g.free_me = &c;
	resolver_table_run(t);
	TAP_OK(g.calls == 1 && c == NULL, "freed from its callback");

	resolver_table_free(&t);
	return tap_done();
}
