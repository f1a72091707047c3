/* test_domain.c - the one normal form of a domain (IDNA2008 A-labels). */
#include <stdbool.h>
#include <string.h>

#include "addr.h"
#include "domain.h"
#include "err.h"
#include "tap.h"

struct domain_case {
	const char *in;
	const char *want; /* NULL = invalid */
};

static const struct domain_case domain_cases[] = {
	{ "example.org", "example.org" },
	{ "Example.ORG", "example.org" },
	{ "example.org.", "example.org" },
	/* RFC 5890 2.3.2.1: a U-label and its A-label are one name. */
	{ "ex\xc3\xa4mple.org", "xn--exmple-cua.org" },
	{ "xn--exmple-cua.org", "xn--exmple-cua.org" },
	{ "XN--EXMPLE-CUA.ORG", "xn--exmple-cua.org" },
	/* UTS #46 mapping: upper case U-labels fold. */
	{ "EX\xc3\x84MPLE.org", "xn--exmple-cua.org" },
	/* Non-transitional (IDNA2008): sharp s stays, not "ss". */
	{ "stra\xc3\x9f" "e.de", "xn--strae-oqa.de" },
	{ "[192.0.2.1]", "[192.0.2.1]" },
	{ "", NULL },
	{ "bad_domain!", NULL },
	{ "a..b", NULL },
	{ "-a.org", NULL },
	/* An A-label that does not decode is no name. */
	{ "xn--zz--.org", NULL },
	{ "xn--.org", NULL },
	{ "\xff\xfe.org", NULL },
};

int
main(void)
{
	char out[ADDR_DOMAIN_MAX + 1];
	size_t i;
	int r;

	for (i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]); i++) {
		const struct domain_case *c = &domain_cases[i];

		out[0] = '\0';
		r = domain_normalize(c->in, strlen(c->in), out, sizeof(out));
		if (c->want == NULL)
			TAP_EQ_INT(r, PR_EINVAL, "'%s' is refused", c->in);
		else {
			TAP_EQ_INT(r, 0, "'%s' is a domain", c->in);
			TAP_EQ_STR(out, c->want, "'%s' normal form", c->in);
		}
	}
	r = domain_normalize("example.org", 11, out, 5);
	TAP_EQ_INT(r, PR_EINVAL, "too small an output buffer is refused");

	TAP_OK(domain_is_ip("192.168.1.1"), "IPv4 address");
	TAP_OK(domain_is_ip("2001:db8::1"), "IPv6 address");
	TAP_OK(domain_is_ip("10.1.2"), "all-digit last label");
	TAP_OK(!domain_is_ip("example.org"), "a name");
	TAP_OK(!domain_is_ip("1.example"), "digits first");
	TAP_OK(!domain_is_ip("xn--exmple-cua.org"), "an A-label name");
	return tap_done();
}
