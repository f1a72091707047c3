/* test_addr.c - RFC 5321 mailbox/path syntax, RFC 6531 UTF-8. */
#include <stdbool.h>
#include <string.h>

#include "addr.h"
#include "err.h"
#include "tap.h"

struct mbox_case {
	const char *in;
	bool utf8;
	const char *want; /* NULL = invalid */
};

static const struct mbox_case mbox_cases[] = {
	{ "alice@example.org", false, "alice@example.org" },
	{ "Alice@Example.ORG", false, "Alice@example.org" },
	{ "a.b+tag@sub.example.org", false, "a.b+tag@sub.example.org" },
	{ "!#$%&'*+-/=?^_`{|}~@x.org", false, "!#$%&'*+-/=?^_`{|}~@x.org" },
	{ "\"john doe\"@example.org", false, "\"john doe\"@example.org" },
	{ "\"a@b\"@example.org", false, "\"a@b\"@example.org" },
	{ "\"quote\\\"d\"@example.org", false, "\"quote\\\"d\"@example.org" },
	{ "user@[192.0.2.1]", false, "user@[192.0.2.1]" },
	{ "user@[IPv6:2001:db8::1]", false, "user@[IPv6:2001:db8::1]" },
	{ "user@localhost", false, "user@localhost" },
	{ "x@a-b.c", false, "x@a-b.c" },
	{ "", false, NULL },
	{ "alice", false, NULL },
	{ "@example.org", false, NULL },
	{ "alice@", false, NULL },
	{ "a..b@example.org", false, NULL },
	{ ".a@example.org", false, NULL },
	{ "a.@example.org", false, NULL },
	{ "a b@example.org", false, NULL },
	{ "a@exa mple.org", false, NULL },
	{ "a@-example.org", false, NULL },
	{ "a@example-.org", false, NULL },
	{ "a@example..org", false, NULL },
	{ "a@[300.1.1.1]", false, NULL },
	{ "a@[IPv6:zz::1]", false, NULL },
	{ "\"unterminated@example.org", false, NULL },
	{ "a\x01@example.org", false, NULL },
	{ "a@b@example.org", false, NULL },
	{ "j\xc3\xb6rg@example.org", false, NULL },
	{ "j\xc3\xb6rg@example.org", true, "j\xc3\xb6rg@example.org" },
	{ "x@b\xc3\xbc" "cher.example", true, "x@b\xc3\xbc" "cher.example" },
	{ "x@b\xc3\xbc" "cher.example", false, NULL },
	{ "x@xn--bcher-kva.example", false, "x@xn--bcher-kva.example" },
	{ "bad\xc3@example.org", true, NULL },         /* truncated UTF-8 */
	{ "bad\xc0\xaf@example.org", true, NULL },     /* overlong */
	{ "bad\xed\xa0\x80@example.org", true, NULL }, /* surrogate */
};

struct path_case {
	const char *in;
	bool allow_null;
	const char *want;
	size_t consumed;
};

static const struct path_case path_cases[] = {
	{ "<alice@example.org>", false, "alice@example.org", 19 },
	{ "<alice@example.org> SIZE=100", false, "alice@example.org", 19 },
	{ "<>", true, "", 2 },
	{ "<>", false, NULL, 0 },
	{ "<@relay.org,@r2.org:bob@example.org>", false, "bob@example.org", 36 },
	{ "<@relay.org:bob@example.org>", false, "bob@example.org", 28 },
	{ "<\"a>b\"@example.org>", false, "\"a>b\"@example.org", 19 },
	{ "alice@example.org", false, NULL, 0 },
	{ "<alice@example.org", false, NULL, 0 },
	{ "<@:bob@example.org>", false, NULL, 0 },
	{ "<", false, NULL, 0 },
};

int
main(void)
{
	char out[ADDR_MAX];
	char longlocal[80], longdom[300];
	size_t i, consumed;
	int r;

	for (i = 0; i < sizeof(mbox_cases) / sizeof(mbox_cases[0]); i++) {
		const struct mbox_case *c = &mbox_cases[i];

		r = addr_parse_mailbox(c->in, strlen(c->in), c->utf8, out);
		if (c->want == NULL)
			TAP_EQ_INT(r, PR_EINVAL, "mailbox %zu invalid", i);
		else {
			TAP_EQ_INT(r, 0, "mailbox %zu valid", i);
			TAP_EQ_STR(r == 0 ? out : "", c->want,
			    "mailbox %zu canonical", i);
		}
	}
	for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];

		consumed = 0;
		r = addr_parse_path(c->in, strlen(c->in), c->allow_null, false,
		    out, &consumed);
		if (c->want == NULL)
			TAP_EQ_INT(r, PR_EINVAL, "path %zu invalid", i);
		else {
			TAP_EQ_INT(r, 0, "path %zu valid", i);
			TAP_EQ_STR(r == 0 ? out : "", c->want, "path %zu mailbox",
			    i);
			TAP_EQ_INT(consumed, c->consumed, "path %zu consumed", i);
		}
	}

	/* RFC 5321 4.5.3.1.1: local part 64 octets at most. */
	memset(longlocal, 'a', 64);
	strcpy(longlocal + 64, "@x.org");
	TAP_EQ_INT(addr_parse_mailbox(longlocal, strlen(longlocal), false, out),
	    0, "local part of 64 octets");
	memset(longlocal, 'a', 65);
	strcpy(longlocal + 65, "@x.org");
	TAP_EQ_INT(addr_parse_mailbox(longlocal, strlen(longlocal), false, out),
	    PR_EINVAL, "local part of 65 octets");
	/* Labels of 63 octets; label of 64 refused. */
	strcpy(longdom, "a@");
	memset(longdom + 2, 'b', 63);
	strcpy(longdom + 65, ".org");
	TAP_EQ_INT(addr_parse_mailbox(longdom, strlen(longdom), false, out), 0,
	    "label of 63 octets");
	memset(longdom + 2, 'b', 64);
	strcpy(longdom + 66, ".org");
	TAP_EQ_INT(addr_parse_mailbox(longdom, strlen(longdom), false, out),
	    PR_EINVAL, "label of 64 octets");
	/* Whole address too long for the buffer. */
	memset(longdom, 'c', sizeof(longdom) - 1);
	longdom[sizeof(longdom) - 1] = '\0';
	longdom[10] = '@';
	TAP_EQ_INT(addr_parse_mailbox(longdom, strlen(longdom), false, out),
	    PR_EINVAL, "address over 255 octets");

	TAP_EQ_STR(addr_domain("a@b.org"), "b.org", "addr_domain");
	TAP_OK(addr_domain("nodomain") == NULL, "addr_domain without @");
	return tap_done();
}
