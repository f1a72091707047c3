/*
 * test_resolver_table.c - the table-backed resolver that mailauth's
 * unit tests use: answers, failures, the "never from within the query"
 * rule of resolver_query(), cancellation and queries from callbacks.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "resolver.h"
#include "resolver_table.h"
#include "tap.h"

static const struct resolver_table_entry zone[] = {
	{ "a.test", RESOLVER_TXT, RESOLVER_NOERROR, "v=spf1 mx -all" },
	{ "a.test", RESOLVER_TXT, RESOLVER_NOERROR, "other" },
	{ "a.test", RESOLVER_MX, RESOLVER_NOERROR, "20 mx2.a.test" },
	{ "a.test", RESOLVER_MX, RESOLVER_NOERROR, "10 mx1.a.test." },
	{ "sel._domainkey.a.test", RESOLVER_TXT, RESOLVER_NOERROR,
	    "\"v=DKIM1; k=ed25519; \" \"p=abc\\\"d\"" },
	{ "mx1.a.test", RESOLVER_A, RESOLVER_NOERROR, "192.0.2.1" },
	{ "mx1.a.test", RESOLVER_AAAA, RESOLVER_NOERROR, "2001:db8::1" },
	{ "null.test", RESOLVER_MX, RESOLVER_NOERROR, "0 ." },
	{ "1.2.0.192.in-addr.arpa", RESOLVER_PTR, RESOLVER_NOERROR,
	    "mx1.a.test." },
	{ "down.test", RESOLVER_TXT, RESOLVER_SERVFAIL, NULL },
	{ "slow.test", RESOLVER_TXT, RESOLVER_TIMEOUT, NULL },
};

struct got {
	int calls;
	enum resolver_rcode rcode;
	size_t n;
	char text[1024];  /* the records, flattened */
	struct resolver *chain; /* asks for mx1.a.test A when set */
	struct got *next;
};

static void __attribute__((format(printf, 2, 3)))
got_add(struct got *g, const char *fmt, ...)
{
	size_t o = strlen(g->text);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->text + o, sizeof(g->text) - o, fmt, ap);
	va_end(ap);
}

static void
got_cb(void *data, const struct resolver_answer *ans)
{
	struct got *g = data;
	const struct resolver_rr *rr;
	size_t i, j;

	g->calls++;
	g->rcode = ans->rcode;
	g->n = ans->n;
	g->text[0] = '\0';
	for (i = 0; i < ans->n; i++) {
		rr = &ans->rr[i];
		if (rr->type == RESOLVER_TXT) {
			for (j = 0; j < rr->u.txt.n; j++)
				got_add(g, "[%.*s]", (int)rr->u.txt.len[j],
				    (const char *)rr->u.txt.s[j]);
		} else if (rr->type == RESOLVER_MX) {
			got_add(g, "[%u %s]", rr->u.mx.pref, rr->u.mx.host);
		} else if (rr->type == RESOLVER_A) {
			got_add(g, "[%u.%u.%u.%u]", rr->u.a[0], rr->u.a[1],
			    rr->u.a[2], rr->u.a[3]);
		} else if (rr->type == RESOLVER_AAAA) {
			got_add(g, "[%02x%02x..%02x]", rr->u.aaaa[0],
			    rr->u.aaaa[1], rr->u.aaaa[15]);
		} else {
			got_add(g, "[%s]", rr->u.ptr);
		}
	}
	if (g->chain != NULL)
		resolver_query(g->chain, "mx1.a.test", RESOLVER_A, got_cb,
		    g->next);
}

int
main(void)
{
	static const struct {
		const char *name;
		enum resolver_type type;
		enum resolver_rcode rcode;
		size_t n;
		const char *text;
	} cases[] = {
		{ "a.test", RESOLVER_TXT, RESOLVER_NOERROR, 2,
		    "[v=spf1 mx -all][other]" },
		{ "A.TEST.", RESOLVER_TXT, RESOLVER_NOERROR, 2,
		    "[v=spf1 mx -all][other]" },
		{ "a.test", RESOLVER_MX, RESOLVER_NOERROR, 2,
		    "[20 mx2.a.test][10 mx1.a.test]" },
		{ "sel._domainkey.a.test", RESOLVER_TXT, RESOLVER_NOERROR, 1,
		    "[v=DKIM1; k=ed25519; ][p=abc\"d]" },
		{ "mx1.a.test", RESOLVER_A, RESOLVER_NOERROR, 1,
		    "[192.0.2.1]" },
		{ "mx1.a.test", RESOLVER_AAAA, RESOLVER_NOERROR, 1,
		    "[2001..01]" },
		{ "null.test", RESOLVER_MX, RESOLVER_NOERROR, 1, "[0 ]" },
		{ "1.2.0.192.in-addr.arpa", RESOLVER_PTR, RESOLVER_NOERROR, 1,
		    "[mx1.a.test]" },
		{ "mx1.a.test", RESOLVER_TXT, RESOLVER_NOERROR, 0, "" },
		{ "nowhere.test", RESOLVER_TXT, RESOLVER_NXDOMAIN, 0, "" },
		{ "down.test", RESOLVER_TXT, RESOLVER_SERVFAIL, 0, "" },
		{ "slow.test", RESOLVER_TXT, RESOLVER_TIMEOUT, 0, "" },
	};
	struct got g[sizeof(cases) / sizeof(cases[0])], c1, c2, cancelled;
	struct resolver_table *t = NULL;
	struct resolver *r;
	size_t i;
	bool early = false;

	memset(g, 0, sizeof(g));
	TAP_EQ_INT(resolver_table_new(zone, sizeof(zone) / sizeof(zone[0]),
	    &t), 0, "new");
	r = resolver_table_resolver(t);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TAP_EQ_INT(resolver_query(r, cases[i].name, cases[i].type,
		    got_cb, &g[i]), 0, "query %s type %d", cases[i].name,
		    cases[i].type);
		if (g[i].calls != 0)
			early = true;
	}
	TAP_OK(!early, "no callback from within resolver_query()");
	TAP_EQ_INT(resolver_table_run(t), sizeof(cases) / sizeof(cases[0]),
	    "run answers every query");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TAP_EQ_INT(g[i].calls, 1, "%s/%d: one callback", cases[i].name,
		    cases[i].type);
		TAP_EQ_INT(g[i].rcode, cases[i].rcode, "%s/%d: rcode",
		    cases[i].name, cases[i].type);
		TAP_EQ_INT(g[i].n, cases[i].n, "%s/%d: records",
		    cases[i].name, cases[i].type);
		TAP_EQ_STR(g[i].text, cases[i].text, "%s/%d: data",
		    cases[i].name, cases[i].type);
	}

	/* Refused queries never call back. */
	memset(&c1, 0, sizeof(c1));
	TAP_EQ_INT(resolver_query(r, "", RESOLVER_TXT, got_cb, &c1),
	    PR_EINVAL, "empty name refused");
	TAP_EQ_INT(resolver_query(r, "a..test", RESOLVER_TXT, got_cb, &c1),
	    PR_EINVAL, "empty label refused");
	TAP_EQ_INT(resolver_table_run(t), 0, "nothing to run");
	TAP_EQ_INT(c1.calls, 0, "refused: no callback");

	/* Cancel, and a query made from a callback. */
	memset(&c1, 0, sizeof(c1));
	memset(&c2, 0, sizeof(c2));
	memset(&cancelled, 0, sizeof(cancelled));
	c1.chain = r;
	c1.next = &c2;
	resolver_query(r, "a.test", RESOLVER_MX, got_cb, &cancelled);
	resolver_query(r, "a.test", RESOLVER_TXT, got_cb, &c1);
	resolver_query(r, "a.test", RESOLVER_TXT, got_cb, &cancelled);
	resolver_cancel(r, &cancelled);
	TAP_EQ_INT(resolver_table_run(t), 2, "run: chained, not cancelled");
	TAP_EQ_INT(cancelled.calls, 0, "cancelled: no callback");
	TAP_EQ_INT(c1.calls, 1, "chain: first answer");
	TAP_EQ_STR(c2.text, "[192.0.2.1]", "chain: query from a callback");
	TAP_EQ_INT(resolver_table_asked(t), sizeof(cases) / sizeof(cases[0]) +
	    4, "asked counts every accepted query");
	resolver_table_free(&t);
	TAP_OK(t == NULL, "free sets NULL");
	return tap_done();
}
