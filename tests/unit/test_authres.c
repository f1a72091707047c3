/*
 * test_authres.c - the Authentication-Results field (mailauth/authres.c):
 * its exact text, quoting, folding at 78 columns, and the test for
 * incoming fields that carry our authserv-id (RFC 8601 5).
 */
#include <stdio.h>
#include <string.h>

#include "authres.h"
#include "buf.h"
#include "err.h"
#include "tap.h"

static const char *
str(struct buf *b)
{
	static char s[4096];

	snprintf(s, sizeof(s), "%.*s", (int)b->len, (const char *)b->p);
	return s;
}

/* True if no line of s[0..len) is longer than max (CRLF excluded) and
 * every line break is CRLF followed by WSP, except the last. */
static bool
folded_ok(const char *s, size_t max)
{
	const char *p = s, *e;

	while ((e = strstr(p, "\r\n")) != NULL) {
		if ((size_t)(e - p) > max)
			return false;
		if (e[2] != '\0' && e[2] != '\t' && e[2] != ' ')
			return false;
		p = e + 2;
	}
	return *p == '\0';
}

static void
test_build(void)
{
	struct dkim_verify_result dk[2];
	struct dmarc_verdict dv;
	struct authres a;
	struct buf b;

	buf_init(&b, 8192);
	memset(dk, 0, sizeof(dk));
	dk[0].res = DKIM_VERIFY_PASS;
	strcpy(dk[0].d, "example.com");
	strcpy(dk[0].s, "sel");
	strcpy(dk[0].b, "AbCd+/Ef");
	dk[1].res = DKIM_VERIFY_FAIL;
	strcpy(dk[1].d, "other.test");
	strcpy(dk[1].s, "s2");
	dk[1].reason = "body hash mismatch";
	memset(&dv, 0, sizeof(dv));
	dv.result = DMARC_PASS;
	strcpy(dv.from_domain, "example.com");

	authres_begin(&a, &b, "mx.example.org");
	authres_add_spf(&a, "pass", "alice@example.com", "mail.example.com");
	authres_add_dkim(&a, &dk[0]);
	authres_add_dkim(&a, &dk[1]);
	authres_add_dmarc(&a, &dv);
	authres_add_iprev(&a, "pass", "192.0.2.1");
	TAP_EQ_INT(authres_finish(&a), 0, "built");
	TAP_EQ_STR(str(&b),
	    "Authentication-Results: mx.example.org;\r\n"
	    "\tspf=pass smtp.mailfrom=alice@example.com;\r\n"
	    "\tdkim=pass header.d=example.com header.s=sel "
	    "header.b=\"AbCd+/Ef\";\r\n"
	    "\tdkim=fail reason=\"body hash mismatch\" header.d=other.test "
	    "header.s=s2;\r\n"
	    "\tdmarc=pass header.from=example.com;\r\n"
	    "\tiprev=pass policy.iprev=192.0.2.1\r\n", "the whole field");

	/* Null sender: the HELO identity; IPv6 and odd addresses quoted. */
	buf_reset(&b);
	dv.result = DMARC_FAIL;
	dv.published = DMARC_POLICY_REJECT;
	authres_begin(&a, &b, "mx.example.org");
	authres_add_spf(&a, "none", "", "helo.example.net");
	authres_add_dmarc(&a, &dv);
	authres_add_iprev(&a, "fail", "2001:db8::1");
	authres_add_spf(&a, "pass", "\"odd \\\"one\"@example.com", NULL);
	TAP_EQ_INT(authres_finish(&a), 0, "built 2");
	TAP_EQ_STR(str(&b),
	    "Authentication-Results: mx.example.org;\r\n"
	    "\tspf=none smtp.helo=helo.example.net;\r\n"
	    "\tdmarc=fail reason=\"p=reject\" header.from=example.com;\r\n"
	    "\tiprev=fail policy.iprev=\"2001:db8::1\";\r\n"
	    "\tspf=pass smtp.mailfrom="
	    "\"\\\"odd \\\\\\\"one\\\"@example.com\"\r\n",
	    "quoting");

	/* An unsigned message. */
	buf_reset(&b);
	authres_begin(&a, &b, "mx.example.org");
	authres_add_dkim_all(&a, dk, 0);
	authres_add_dkim_all(&a, dk, 1);
	TAP_EQ_INT(authres_finish(&a), 0, "built dkim_all");
	TAP_EQ_STR(str(&b), "Authentication-Results: mx.example.org;\r\n"
	    "\tdkim=none;\r\n"
	    "\tdkim=pass header.d=example.com header.s=sel "
	    "header.b=\"AbCd+/Ef\"\r\n", "dkim=none, then one per result");

	/* No results at all. */
	buf_reset(&b);
	authres_begin(&a, &b, "mx.example.org");
	TAP_EQ_INT(authres_finish(&a), 0, "built 3");
	TAP_EQ_STR(str(&b), "Authentication-Results: mx.example.org; none\r\n",
	    "no-result");

	/* Long values fold before a property, never inside one. */
	buf_reset(&b);
	memset(&dk[0], 0, sizeof(dk[0]));
	dk[0].res = DKIM_VERIFY_PASS;
	strcpy(dk[0].d, "a-rather-long-subdomain.of-an-organisation."
	    "example.com");
	strcpy(dk[0].s, "selector-2024-with-a-long-name");
	strcpy(dk[0].b, "abcdefgh");
	authres_begin(&a, &b, "mx.example.org");
	authres_add_dkim(&a, &dk[0]);
	TAP_EQ_INT(authres_finish(&a), 0, "built 4");
	TAP_OK(folded_ok(str(&b), 78), "folded within 78 columns");
	TAP_EQ_STR(str(&b),
	    "Authentication-Results: mx.example.org;\r\n"
	    "\tdkim=pass header.d=a-rather-long-subdomain.of-an-organisation."
	    "example.com\r\n"
	    "\theader.s=selector-2024-with-a-long-name header.b=abcdefgh\r\n",
	    "folded text");

	/* A buffer too small leaves it as it was. */
	buf_fini(&b);
	buf_init(&b, 40);
	buf_puts(&b, "X: y\r\n");
	authres_begin(&a, &b, "mx.example.org");
	authres_add_spf(&a, "pass", "alice@example.com", NULL);
	TAP_EQ_INT(authres_finish(&a), PR_ENOSPC, "too small");
	TAP_EQ_STR(str(&b), "X: y\r\n", "too small: unchanged");
	buf_fini(&b);
}

static void
test_ours(void)
{
	static const struct {
		const char *f;
		bool want;
	} c[] = {
		{ "Authentication-Results: mx.example.org; spf=pass", true },
		{ "authentication-results: MX.Example.ORG; dkim=pass", true },
		{ "Authentication-Results:mx.example.org;none", true },
		{ "Authentication-Results: mx.example.org 1; none", true },
		{ "Authentication-Results: mx.example.org", true },
		{ "Authentication-Results: mx.example.org.; none", true },
		{ "Authentication-Results : mx.example.org; none", true },
		{ "Authentication-Results: (forged (nested) comment)\r\n"
		    "\tmx.example.org; spf=pass", true },
		{ "Authentication-Results:\r\n mx.example.org;\r\n spf=pass",
		    true },
		{ "Authentication-Results: \"mx.example.org\"; spf=pass",
		    true },
		{ "Authentication-Results: (a \\) b) mx.example.org; x=y",
		    true },
		{ "Authentication-Results: mx.example.org.evil; spf=pass",
		    false },
		{ "Authentication-Results: evil.mx.example.org; spf=pass",
		    false },
		{ "Authentication-Results: other.example; spf=pass", false },
		{ "Authentication-Results: (mx.example.org) other; spf=pass",
		    false },
		{ "Authentication-Results: (unclosed mx.example.org", false },
		{ "Authentication-Results: ; spf=pass", false },
		{ "Authentication-Results-Original: mx.example.org; none",
		    false },
		{ "X-Authentication-Results: mx.example.org; none", false },
		{ "ARC-Authentication-Results: i=1; mx.example.org; none",
		    false },
		{ "Subject: mx.example.org", false },
	};
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		TAP_EQ_INT(authres_is_ours((const uint8_t *)c[i].f,
		    strlen(c[i].f), "mx.example.org"), c[i].want,
		    "ours: %s", c[i].f);
}

int
main(void)
{
	test_build();
	test_ours();
	return tap_done();
}
