/*
 * test_dmarc.c - DMARC (mailauth/dmarc.c): the From: domain, the
 * organisational domain through libpsl, record parsing, alignment,
 * discovery with the table resolver, sp=, pct= with a fixed random
 * source.
 */
#include <stdio.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"
#include "resolver_table.h"
#include "tap.h"

static void
test_org_domain(void)
{
	static const struct {
		const char *in, *want;
	} c[] = {
		{ "a.b.example.co.uk", "example.co.uk" },
		{ "example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },
		{ "mail.example.com", "example.com" },
		{ "Mail.Example.COM.", "example.com" },
		{ "example.com", "example.com" },
		{ "x.y.city.kawasaki.jp", "city.kawasaki.jp" },
		{ "deep.sub.example.test", "example.test" },
		{ "com", "com" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		TAP_EQ_INT(dmarc_org_domain(c[i].in, out, sizeof(out)), 0,
		    "org of %s", c[i].in);
		TAP_EQ_STR(out, c[i].want, "org of %s", c[i].in);
	}
	TAP_EQ_INT(dmarc_org_domain("", out, sizeof(out)), PR_EINVAL,
	    "org of empty");
}

static void
test_aligned(void)
{
	static const struct {
		const char *a, *b;
		bool strict, want;
	} c[] = {
		{ "example.com", "example.com", true, true },
		{ "EXAMPLE.com", "example.COM", true, true },
		{ "mail.example.com", "example.com", true, false },
		{ "mail.example.com", "example.com", false, true },
		{ "a.example.co.uk", "b.example.co.uk", false, true },
		{ "example.co.uk", "other.co.uk", false, false },
		{ "example.com", "example.net", false, false },
		{ "notexample.com", "example.com", false, false },
		{ "", "example.com", false, false },
	};
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		TAP_EQ_INT(dmarc_aligned(c[i].a, c[i].b, c[i].strict),
		    c[i].want, "%s ~ %s %s", c[i].a, c[i].b,
		    c[i].strict ? "strict" : "relaxed");
}

static void
test_record(void)
{
	static const struct {
		const char *rec;
		int want;
		enum dmarc_policy p, sp;
		bool sdkim, sspf;
		unsigned pct;
	} c[] = {
		{ "v=DMARC1; p=reject", 0, DMARC_POLICY_REJECT,
		    DMARC_POLICY_REJECT, false, false, 100 },
		{ "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=r;pct=20;", 0,
		    DMARC_POLICY_QUARANTINE, DMARC_POLICY_NONE, true, false,
		    20 },
		{ "v = DMARC1 ; p = none ; rua=mailto:a@b.test; fo=1; x=y", 0,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, false, false, 100 },
		{ "V=dmarc1; P=Reject; ASPF=s", 0, DMARC_POLICY_REJECT,
		    DMARC_POLICY_REJECT, false, true, 100 },
		{ "v=DMARC1; p=reject; pct=0", 0, DMARC_POLICY_REJECT,
		    DMARC_POLICY_REJECT, false, false, 0 },
		{ "v=DMARC1; p=bogus; rua=mailto:a@b.test", 0,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, false, false, 100 },
		{ "v=DMARC1; p=reject; sp=bogus; rua=mailto:a@b.test", 0,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, false, false, 100 },
		{ "v=DMARC1; p=bogus", PR_EINVAL, 0, 0, false, false, 0 },
		{ "v=DMARC1", PR_EINVAL, 0, 0, false, false, 0 },
		{ "v=DMARC1; p=reject; pct=101", PR_EINVAL,
		    0, 0, false, false, 0 },
		{ "v=DMARC1; p=reject; pct=x", PR_EINVAL,
		    0, 0, false, false, 0 },
		{ "v=DMARC1; p=reject; adkim=q", PR_EINVAL,
		    0, 0, false, false, 0 },
		{ "v=DMARC1; p=reject; p=none", PR_EINVAL,
		    0, 0, false, false, 0 },
		{ "p=reject; v=DMARC1", PR_ENOENT, 0, 0, false, false, 0 },
		{ "v=DMARC2; p=reject", PR_ENOENT, 0, 0, false, false, 0 },
		{ "v=spf1 -all", PR_ENOENT, 0, 0, false, false, 0 },
		{ "", PR_ENOENT, 0, 0, false, false, 0 },
	};
	struct dmarc_record r;
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		memset(&r, 0xff, sizeof(r));
		TAP_EQ_INT(dmarc_record_parse(c[i].rec, strlen(c[i].rec), &r),
		    c[i].want, "record \"%s\"", c[i].rec);
		if (c[i].want != 0)
			continue;
		TAP_OK(r.p == c[i].p && r.sp == c[i].sp &&
		    r.strict_dkim == c[i].sdkim && r.strict_spf == c[i].sspf &&
		    r.pct == c[i].pct, "record \"%s\": values", c[i].rec);
	}
}

static void
test_from(void)
{
	static const struct {
		const char *head;
		enum dmarc_from want;
		const char *dom;
	} c[] = {
		{ "From: Alice <alice@Example.COM>\r\nTo: b@b.test\r\n",
		    DMARC_FROM_OK, "example.com" },
		{ "To: b@b.test\r\nfrom:\r\n"
		    " \"A @ evil.test\" <a@good.test>\r\n",
		    DMARC_FROM_OK, "good.test" },
		{ "From: a@a.test, b@a.test\r\n", DMARC_FROM_MULTIPLE, "" },
		{ "From: a@a.test, b@b.test\r\n", DMARC_FROM_MULTIPLE, "" },
		{ "From: a@a.test\r\nFrom: a@a.test\r\n", DMARC_FROM_MULTIPLE,
		    "" },
		{ "From: undisclosed:;\r\n", DMARC_FROM_MULTIPLE, "" },
		{ "To: b@b.test\r\n", DMARC_FROM_NONE, "" },
		{ "From: not an address\r\n", DMARC_FROM_BAD, "" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		TAP_EQ_STR(dmarc_from_name(dmarc_from_domain(
		    (const uint8_t *)c[i].head, strlen(c[i].head), out,
		    sizeof(out))), dmarc_from_name(c[i].want), "from %zu", i);
		TAP_EQ_STR(out, c[i].dom, "from %zu: domain", i);
	}
}

static const struct resolver_table_entry zone[] = {
	{ "_dmarc.reject.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=reject" },
	{ "_dmarc.reject.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=spf1 -all" },
	{ "_dmarc.quar.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=quarantine; pct=0" },
	{ "_dmarc.example.co.uk", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=reject; sp=quarantine" },
	{ "_dmarc.own.example.co.uk", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=none" },
	{ "_dmarc.strict.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=reject; aspf=s; adkim=s" },
	{ "_dmarc.down.test", RESOLVER_TXT, RESOLVER_SERVFAIL, NULL },
	{ "_dmarc.slow.test", RESOLVER_TXT, RESOLVER_TIMEOUT, NULL },
	{ "_dmarc.two.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=reject" },
	{ "_dmarc.two.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=none" },
	{ "_dmarc.bad.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=bogus" },
	{ "_dmarc.pct.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "\"v=DMARC1; \" \"p=reject; pct=50\"" },
	{ "_dmarc.all.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "v=DMARC1; p=reject; pct=100" },
};

struct got {
	int calls;
	struct dmarc_verdict v;
};

static void
got_cb(void *data, const struct dmarc_verdict *v)
{
	struct got *g = data;

	g->calls++;
	g->v = *v;
}

static unsigned
fixed_rand(void *data)
{
	return *(const unsigned *)data;
}

static void
test_check(void)
{
	static const struct {
		const char *from;
		bool spf_pass;
		const char *spf_domain;
		const char *dkim_d;       /* a passing signature's d= */
		const char *dkim_fail_d;  /* a failing one's */
		unsigned rnd;
		enum dmarc_result want;
		enum dmarc_policy apply, published;
		const char *policy_domain;
	} c[] = {
		/* p=reject at the From: domain. */
		{ "reject.test", false, NULL, NULL, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "reject.test" },
		{ "reject.test", true, "reject.test", NULL, NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, DMARC_POLICY_REJECT,
		    "reject.test" },
		{ "reject.test", true, "bounce.reject.test", NULL, NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, DMARC_POLICY_REJECT,
		    "reject.test" },
		{ "reject.test", false, NULL, "reject.test", NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, DMARC_POLICY_REJECT,
		    "reject.test" },
		{ "reject.test", false, "reject.test", "other.test",
		    "reject.test", 0, DMARC_FAIL, DMARC_POLICY_REJECT,
		    DMARC_POLICY_REJECT, "reject.test" },
		{ "REJECT.test", true, "evil.test", NULL, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "reject.test" },
		/* Strict alignment. */
		{ "strict.test", true, "mail.strict.test", "mail.strict.test",
		    NULL, 0, DMARC_FAIL, DMARC_POLICY_REJECT,
		    DMARC_POLICY_REJECT, "strict.test" },
		{ "strict.test", false, NULL, "strict.test", NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, DMARC_POLICY_REJECT,
		    "strict.test" },
		/* The organisational domain's record, sp= for a subdomain;
		 * a subdomain with a record of its own uses its p=. */
		{ "a.b.example.co.uk", false, NULL, NULL, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE,
		    "example.co.uk" },
		{ "example.co.uk", false, NULL, NULL, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_REJECT, DMARC_POLICY_REJECT,
		    "example.co.uk" },
		{ "a.b.example.co.uk", false, NULL, "example.co.uk", NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, DMARC_POLICY_QUARANTINE,
		    "example.co.uk" },
		{ "own.example.co.uk", false, NULL, NULL, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE,
		    "own.example.co.uk" },
		/* pct=: 0 spares every message, 100 none, 50 by the draw. */
		{ "quar.test", false, NULL, NULL, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_NONE, DMARC_POLICY_QUARANTINE, "quar.test" },
		{ "all.test", false, NULL, NULL, NULL, 99, DMARC_FAIL,
		    DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "all.test" },
		{ "pct.test", false, NULL, NULL, NULL, 49, DMARC_FAIL,
		    DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "pct.test" },
		{ "pct.test", false, NULL, NULL, NULL, 50, DMARC_FAIL,
		    DMARC_POLICY_QUARANTINE, DMARC_POLICY_REJECT, "pct.test" },
		/* No record, DNS failures, broken records. */
		{ "nothing.test", false, NULL, NULL, NULL, 0, DMARC_NONE,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
		{ "sub.nothing.test", true, "sub.nothing.test", NULL, NULL, 0,
		    DMARC_NONE, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
		{ "down.test", false, NULL, NULL, NULL, 0, DMARC_TEMPERROR,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
		{ "slow.test", false, NULL, NULL, NULL, 0, DMARC_TEMPERROR,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
		{ "x.down.test", false, NULL, NULL, NULL, 0, DMARC_TEMPERROR,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
		{ "two.test", false, NULL, NULL, NULL, 0, DMARC_NONE,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
		{ "bad.test", false, NULL, NULL, NULL, 0, DMARC_NONE,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, "" },
	};
	struct resolver_table *t;
	struct dmarc *d;
	struct got g;
	size_t i, asked;

	resolver_table_new(zone, sizeof(zone) / sizeof(zone[0]), &t);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct dkim_verify_result dk[2];
		struct dmarc_input in = {
			.from_domain = c[i].from,
			.spf_pass = c[i].spf_pass,
			.spf_domain = c[i].spf_domain,
			.dkim = dk,
		};
		unsigned rnd = c[i].rnd;

		memset(dk, 0, sizeof(dk));
		if (c[i].dkim_fail_d != NULL) {
			dk[in.ndkim].res = DKIM_VERIFY_FAIL;
			snprintf(dk[in.ndkim++].d, sizeof(dk[0].d), "%s",
			    c[i].dkim_fail_d);
		}
		if (c[i].dkim_d != NULL) {
			dk[in.ndkim].res = DKIM_VERIFY_PASS;
			snprintf(dk[in.ndkim++].d, sizeof(dk[0].d), "%s",
			    c[i].dkim_d);
		}
		memset(&g, 0, sizeof(g));
		dmarc_new(resolver_table_resolver(t), fixed_rand, &rnd, &d);
		TAP_EQ_INT(dmarc_check(d, &in, got_cb, &g), 0, "check %zu (%s)",
		    i, c[i].from);
		TAP_EQ_INT(g.calls, 0, "check %zu: not within the call", i);
		resolver_table_run(t);
		TAP_EQ_INT(g.calls, 1, "check %zu: one callback", i);
		TAP_EQ_STR(dmarc_result_name(g.v.result),
		    dmarc_result_name(c[i].want), "check %zu (%s): result", i,
		    c[i].from);
		TAP_EQ_STR(dmarc_policy_name(g.v.apply),
		    dmarc_policy_name(c[i].apply), "check %zu (%s): apply", i,
		    c[i].from);
		if (c[i].want == DMARC_PASS || c[i].want == DMARC_FAIL)
			TAP_EQ_STR(dmarc_policy_name(g.v.published),
			    dmarc_policy_name(c[i].published),
			    "check %zu: published", i);
		TAP_EQ_STR(g.v.policy_domain, c[i].policy_domain,
		    "check %zu: policy domain", i);
		dmarc_free(&d);
	}

	/* The flags behind a verdict. */
	{
		unsigned rnd = 70;
		struct dkim_verify_result dk = { .res = DKIM_VERIFY_PASS,
		    .d = "pct.test" };
		struct dmarc_input in = { .from_domain = "Pct.Test",
		    .spf_pass = true, .spf_domain = "pct.test", .dkim = &dk,
		    .ndkim = 1 };

		dmarc_new(resolver_table_resolver(t), fixed_rand, &rnd, &d);
		dmarc_check(d, &in, got_cb, &g);
		TAP_EQ_INT(dmarc_check(d, &in, got_cb, &g), PR_EINVAL,
		    "check twice");
		resolver_table_run(t);
		TAP_OK(g.v.spf_aligned && g.v.dkim_aligned &&
		    !g.v.sampled_out, "both aligned");
		TAP_EQ_STR(g.v.from_domain, "pct.test", "from lower-cased");
		dmarc_free(&d);
		/* A testing key's pass counts as unsigned. */
		in.spf_pass = false;
		dk.testing = true;
		dmarc_new(resolver_table_resolver(t), fixed_rand, &rnd, &d);
		dmarc_check(d, &in, got_cb, &g);
		resolver_table_run(t);
		TAP_OK(g.v.result == DMARC_FAIL && !g.v.dkim_aligned,
		    "t=y pass does not align");
		dmarc_free(&d);
		in.spf_pass = false;
		in.ndkim = 0;
		dmarc_new(resolver_table_resolver(t), fixed_rand, &rnd, &d);
		dmarc_check(d, &in, got_cb, &g);
		resolver_table_run(t);
		TAP_OK(g.v.sampled_out && g.v.apply ==
		    DMARC_POLICY_QUARANTINE, "sampled out: next policy down");
		dmarc_free(&d);

		/* Freed while asking: no callback. */
		memset(&g, 0, sizeof(g));
		dmarc_new(resolver_table_resolver(t), NULL, NULL, &d);
		asked = resolver_table_asked(t);
		dmarc_check(d, &in, got_cb, &g);
		TAP_EQ_INT(resolver_table_asked(t), asked + 1, "one query");
		dmarc_free(&d);
		resolver_table_run(t);
		TAP_EQ_INT(g.calls, 0, "freed: no callback");
		in.from_domain = "";
		dmarc_new(resolver_table_resolver(t), NULL, NULL, &d);
		TAP_EQ_INT(dmarc_check(d, &in, got_cb, &g), PR_EINVAL,
		    "empty From: domain");
		dmarc_free(&d);
	}
	resolver_table_free(&t);
}

int
main(void)
{
	test_org_domain();
	test_aligned();
	test_record();
	test_from();
	test_check();
	return tap_done();
}
