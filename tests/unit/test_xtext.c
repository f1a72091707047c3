/* test_xtext.c - RFC 3461 4 xtext, decoded and encoded (common/xtext.c). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "tap.h"
#include "xtext.h"

static const struct {
	const char *in;
	bool utf8;
	size_t outsz;
	int want;            /* length or PR_E* */
	const char *out;
} cases[] = {
	{ "abc", false, 16, 3, "abc" },
	{ "a+2Bb+3Dc", false, 16, 5, "a+b=c" },
	{ "+2B", false, 16, 1, "+" },
	{ "", false, 16, 0, "" },
	{ "a+2b", false, 16, PR_EINVAL, NULL },     /* lower-case hex */
	{ "a+2", false, 16, PR_EINVAL, NULL },      /* cut short */
	{ "a+", false, 16, PR_EINVAL, NULL },
	{ "a=b", false, 16, PR_EINVAL, NULL },      /* "=" must be encoded */
	{ "a b", false, 16, PR_EINVAL, NULL },      /* space */
	{ "a+0D+0A", false, 16, PR_EINVAL, NULL },  /* CR LF decoded */
	{ "a+00", false, 16, PR_EINVAL, NULL },     /* NUL decoded */
	{ "a+7F", false, 16, PR_EINVAL, NULL },     /* DEL decoded */
	{ "caf\xc3\xa9", false, 16, PR_EINVAL, NULL },
	{ "caf\xc3\xa9", true, 16, 5, "caf\xc3\xa9" },
	{ "abcd", false, 5, 4, "abcd" },            /* at the limit */
	{ "abcde", false, 5, PR_ENOSPC, NULL },     /* one past it */
	{ "+41+42", false, 3, 2, "AB" },
};

int
main(void)
{
	char out[64], enc[64], dec[64];
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = xtext_decode(cases[i].in, strlen(cases[i].in),
		    cases[i].utf8, out, cases[i].outsz);
		TAP_EQ_INT(r, cases[i].want, "decode case %zu", i);
		if (cases[i].out != NULL && r >= 0)
			TAP_EQ_STR(out, cases[i].out, "decoded case %zu", i);
	}
	/* Encoding is the inverse of decoding. */
	TAP_EQ_INT(xtext_encode("a+b=c d\x01", false, enc, sizeof(enc)), 16,
	    "encode");
	TAP_EQ_STR(enc, "a+2Bb+3Dc+20d+01", "specials and controls as +XX");
	TAP_EQ_INT(xtext_decode(enc, strlen(enc), false, dec, sizeof(dec)),
	    PR_EINVAL, "a control character does not decode back");
	TAP_EQ_INT(xtext_encode("r\xc3\xa9s", false, enc, sizeof(enc)), 8,
	    "UTF-8 without utf8: +XX");
	TAP_EQ_STR(enc, "r+C3+A9s", "UTF-8 octets encoded");
	TAP_EQ_INT(xtext_decode(enc, strlen(enc), false, dec, sizeof(dec)),
	    4, "... and decoded back");
	TAP_EQ_STR(dec, "r\xc3\xa9s", "round trip");
	TAP_EQ_INT(xtext_encode("r\xc3\xa9s", true, enc, sizeof(enc)), 4,
	    "UTF-8 with utf8 stays");
	TAP_EQ_INT(xtext_encode("abc", false, enc, 4), 3, "encode at the limit");
	TAP_EQ_INT(xtext_encode("abcd", false, enc, 4), PR_ENOSPC,
	    "encode one past it");
	TAP_EQ_INT(xtext_encode("+", false, enc, 3), PR_ENOSPC,
	    "an escape does not fit");
	return tap_done();
}
