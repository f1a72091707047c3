/*
 * test_addr_list.c - RFC 5322 3.4 address lists: display names, quoted
 * strings and comments are never taken for addresses; groups give their
 * members; the obsolete forms of RFC 5322 4.4 that real mail has.
 */
#include <string.h>

#include "addr_list.h"
#include "err.h"
#include "tap.h"

struct list_case {
	const char *in;
	int want_r;
	const char *want; /* the addresses, joined with " " */
};

static const struct list_case list_cases[] = {
	{ "alice@a.test", 0, "alice@a.test" },
	{ " Alice <Alice@A.Test> ", 0, "Alice@a.test" },
	{ "\"ceo@b.test <ceo@b.test>\" <alice@a.test>", 0, "alice@a.test" },
	{ "(ceo@b.test <x@b.test>) alice@a.test", 0, "alice@a.test" },
	{ "alice@a.test (Boss <ceo@b.test>)", 0, "alice@a.test" },
	{ "Alice (nested (ceo@b.test) comment) <alice@a.test>", 0,
	    "alice@a.test" },
	{ "\"a\\\"<x@b.test>\" <alice@a.test>", 0, "alice@a.test" },
	{ "\"john doe\"@a.test", 0, "\"john doe\"@a.test" },
	{ "a@a.test, B <b@b.test>,, c@c.test", 0,
	    "a@a.test b@b.test c@c.test" },
	{ "Team: a@a.test, \"B\" <b@b.test>; , c@c.test", 0,
	    "a@a.test b@b.test c@c.test" },
	{ "undisclosed-recipients:;", 0, "" },
	{ "", 0, "" },
	{ "<@relay.test,@r2.test:alice@a.test>", 0, "alice@a.test" },
	{ "alice@[192.0.2.1]", 0, "alice@[192.0.2.1]" },
	{ "alice @ a.test", 0, "alice@a.test" },
	/* Refused: not one mailbox a reader could agree on. */
	{ "\"unterminated <ceo@b.test>", PR_EINVAL, NULL },
	{ "(unterminated ceo@b.test", PR_EINVAL, NULL },
	{ "nobody", PR_EINVAL, NULL },
	{ "John Smith@a.test", PR_EINVAL, NULL },
	{ "<alice@a.test", PR_EINVAL, NULL },
	{ "a@a.test b@b.test", PR_EINVAL, NULL },
	{ "Outer: Inner: a@a.test;;", PR_EINVAL, NULL },
	{ "a@", PR_EINVAL, NULL },
	{ "a@a.test;", PR_EINVAL, NULL },
};

int
main(void)
{
	char out[4][ADDR_MAX];
	char joined[4 * ADDR_MAX];
	size_t i, k, n;
	int r;

	for (i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
		const struct list_case *c = &list_cases[i];

		n = 0;
		r = addr_list_parse(c->in, strlen(c->in), out, 4, &n);
		TAP_EQ_INT(r, c->want_r, "list %zu: %s", i, c->in);
		if (c->want == NULL || r != 0)
			continue;
		joined[0] = '\0';
		for (k = 0; k < n; k++) {
			if (k > 0)
				strcat(joined, " ");
			strcat(joined, out[k]);
		}
		TAP_EQ_STR(joined, c->want, "list %zu: addresses", i);
	}
	{
		const char *five = "a@a.test, b@a.test, c@a.test, d@a.test, "
		    "e@a.test";

		r = addr_list_parse(five, strlen(five), out, 4, &n);
	}
	TAP_EQ_INT(r, PR_ENOSPC, "more mailboxes than max: PR_ENOSPC");
	return tap_done();
}
