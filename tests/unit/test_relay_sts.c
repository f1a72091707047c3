/*
 * test_relay_sts.c - MTA-STS without I/O (smtpd/relay/relay_sts_policy.c):
 * the _mta-sts TXT record (RFC 8461 3.1), the policy file (3.2) and MX
 * matching with the leftmost-label wildcard (4.1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "relay_sts_policy.h"
#include "tap.h"

static int
txt1(const char *rec, char id[STS_ID_MAX + 1])
{
	const char *recs[1] = { rec };
	size_t lens[1] = { strlen(rec) };
	const char *why;

	return sts_txt_parse(recs, lens, 1, id, &why);
}

static void
test_txt(void)
{
	char id[STS_ID_MAX + 1];
	const char *recs[3];
	size_t lens[3];
	const char *why = NULL;
	char big[64];

	TAP_EQ_INT(txt1("v=STSv1; id=20160831085700Z;", id), 0, "txt: RFC example");
	TAP_EQ_STR(id, "20160831085700Z", "txt: its id");
	TAP_EQ_INT(txt1("v=STSv1;id=abc", id), 0, "txt: no spaces, no final ;");
	TAP_EQ_STR(id, "abc", "txt: id abc");
	TAP_EQ_INT(txt1("v=STSv1; ext=1; id=x1 ; ", id), 0,
	    "txt: extension field, trailing space");
	TAP_EQ_STR(id, "x1", "txt: id after an extension");
	TAP_EQ_INT(txt1("v=STSv1; id=a; id=b", id), 0, "txt: two ids");
	TAP_EQ_STR(id, "a", "txt: the first id counts");
	TAP_EQ_INT(txt1("v=STSv1;", id), PR_EINVAL, "txt: no id");
	TAP_EQ_INT(txt1("v=STSv1; id=", id), PR_EINVAL, "txt: empty id");
	TAP_EQ_INT(txt1("v=STSv1; id=a-b", id), PR_EINVAL, "txt: id not alnum");
	memset(big, 'a', 33);
	strcpy(big + 33, "");
	{
		char rec[80];

		snprintf(rec, sizeof(rec), "v=STSv1; id=%s", big);
		TAP_EQ_INT(txt1(rec, id), PR_EINVAL, "txt: 33-char id");
		big[32] = '\0';
		snprintf(rec, sizeof(rec), "v=STSv1; id=%s", big);
		TAP_EQ_INT(txt1(rec, id), 0, "txt: 32-char id");
	}
	TAP_EQ_INT(txt1("id=abc; v=STSv1", id), PR_EINVAL, "txt: v not first");
	TAP_EQ_INT(txt1("v=STSv2; id=abc", id), PR_EINVAL, "txt: other version");
	TAP_EQ_INT(txt1("v=STSv1; id=abc; junk", id), PR_EINVAL,
	    "txt: field without =");

	recs[0] = "v=spf1 -all";
	recs[1] = "v=STSv1; id=one";
	lens[0] = strlen(recs[0]);
	lens[1] = strlen(recs[1]);
	TAP_EQ_INT(sts_txt_parse(recs, lens, 2, id, &why), 0,
	    "txt: other records are discarded");
	TAP_EQ_STR(id, "one", "txt: the STS record's id");
	recs[2] = "v=STSv1; id=two";
	lens[2] = strlen(recs[2]);
	TAP_EQ_INT(sts_txt_parse(recs, lens, 3, id, &why), PR_EINVAL,
	    "txt: two STS records = no policy");
	TAP_EQ_INT(sts_txt_parse(recs, lens, 1, id, &why), PR_EINVAL,
	    "txt: no STS record");
	recs[0] = "v=STSv10; id=x";
	lens[0] = strlen(recs[0]);
	TAP_EQ_INT(sts_txt_parse(recs, lens, 1, id, &why), PR_EINVAL,
	    "txt: v=STSv10 is not ours");
}

static int
pol(const char *text, struct sts_policy *p)
{
	char why[128];

	return sts_policy_parse(text, strlen(text), p, why, sizeof(why));
}

static void
test_policy(void)
{
	struct sts_policy p;
	char *big;

	TAP_EQ_INT(pol("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	    "mx: *.example.net\r\nmx: backupmx.example.com\r\n"
	    "max_age: 604800\r\n", &p), 0, "policy: RFC 8461 3.2 example");
	TAP_EQ_INT(p.mode, STS_MODE_ENFORCE, "policy: enforce");
	TAP_EQ_INT(p.max_age, 604800, "policy: max_age");
	TAP_EQ_INT(p.n_mx, 3, "policy: three mx");
	TAP_EQ_STR(p.mx[1], "*.example.net", "policy: wildcard kept");
	TAP_EQ_INT(pol("version: STSv1\nmode: testing\nmx: MX.Example.ORG.\n"
	    "max_age: 86400", &p), 0, "policy: LF lines, no final newline");
	TAP_EQ_INT(p.mode, STS_MODE_TESTING, "policy: testing");
	TAP_EQ_STR(p.mx[0], "mx.example.org", "policy: mx lower case, no dot");
	TAP_EQ_INT(pol("version: STSv1\nmode: none\nmax_age: 1\n", &p), 0,
	    "policy: none needs no mx");
	TAP_EQ_INT(p.mode, STS_MODE_NONE, "policy: none");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: 99999999999\n"
	    "mx: a.b\n", &p), PR_EINVAL, "policy: max_age of 11 digits");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: 9999999999\n"
	    "mx: a.b\n", &p), 0, "policy: max_age of 10 digits");
	TAP_EQ_INT(p.max_age, STS_MAX_AGE_MAX, "policy: max_age capped");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: -1\nmx: a.b\n",
	    &p), PR_EINVAL, "policy: negative max_age");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: 10\n", &p),
	    PR_EINVAL, "policy: enforce without mx");
	TAP_EQ_INT(pol("mode: enforce\nmax_age: 10\nmx: a.b\n", &p),
	    PR_EINVAL, "policy: no version");
	TAP_EQ_INT(pol("version: STSv2\nmode: enforce\nmax_age: 10\nmx: a.b\n",
	    &p), PR_EINVAL, "policy: version STSv2");
	TAP_EQ_INT(pol("version: STSv1\nmode: strict\nmax_age: 10\nmx: a.b\n",
	    &p), PR_EINVAL, "policy: unknown mode");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmode: none\n"
	    "max_age: 10\nmx: a.b\nfoo: bar\n", &p), 0,
	    "policy: first mode counts, unknown key ignored");
	TAP_EQ_INT(p.mode, STS_MODE_ENFORCE, "policy: still enforce");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: 10\n"
	    "mx: a.*.b\n", &p), PR_EINVAL, "policy: inner wildcard");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: 10\n"
	    "mx: *\n", &p), PR_EINVAL, "policy: bare wildcard");
	TAP_EQ_INT(pol("version: STSv1\nmode: enforce\nmax_age: 10\nmx: a.b\n"
	    "<html>\n", &p), PR_EINVAL, "policy: a line that is no field");
	TAP_EQ_INT(pol("", &p), PR_EINVAL, "policy: empty");
	{
		static const char nul[] = "version: STSv1\nmode: none\n"
		    "x: a\0b\nmax_age: 1\n";
		char why[64];

		TAP_EQ_INT(sts_policy_parse(nul, sizeof(nul) - 1, &p, why,
		    sizeof(why)), PR_EINVAL, "policy: a NUL octet");
	}
	big = malloc(STS_POLICY_MAX + 2);
	memset(big, '\n', STS_POLICY_MAX + 1);
	TAP_EQ_INT(sts_policy_parse(big, STS_POLICY_MAX + 1, &p, big,
	    16) == PR_EINVAL, 1, "policy: larger than 64 KiB");
	free(big);
}

static void
test_match(void)
{
	struct sts_policy p;

	pol("version: STSv1\nmode: enforce\nmax_age: 10\n"
	    "mx: mail.example.com\nmx: *.example.net\n", &p);
	TAP_OK(sts_mx_match(&p, "mail.example.com"), "match: exact");
	TAP_OK(sts_mx_match(&p, "MAIL.example.COM."), "match: case, dot");
	TAP_OK(!sts_mx_match(&p, "mx.example.com"), "match: other host");
	TAP_OK(sts_mx_match(&p, "mx1.example.net"), "match: wildcard");
	TAP_OK(!sts_mx_match(&p, "example.net"), "match: wildcard needs a label");
	TAP_OK(!sts_mx_match(&p, "a.b.example.net"),
	    "match: wildcard is one label only (4.1)");
	TAP_OK(!sts_mx_match(&p, "xexample.net"), "match: no suffix trick");
	TAP_OK(!sts_mx_match(&p, ""), "match: empty host");
}

int
main(void)
{
	test_txt();
	test_policy();
	test_match();
	return tap_done();
}
