/* test_sasl.c - SASL PLAIN/LOGIN decoding, base64. */
#include <string.h>

#include "err.h"
#include "sasl.h"
#include "tap.h"

static int
plain(const char *raw, size_t rawlen, char *user, char *pass)
{
	char b64[4096];

	sasl_b64_encode((const unsigned char *)raw, rawlen, b64, sizeof(b64));
	return sasl_plain_decode(b64, strlen(b64), user, pass);
}

int
main(void)
{
	char user[SASL_USER_MAX], pass[SASL_PASS_MAX], out[64];
	char longpw[SASL_PASS_MAX + 10];
	char b64[64];

	TAP_EQ_INT(plain("\0alice@x.org\0s3cret", 19, user, pass), 0,
	    "PLAIN without authzid");
	TAP_EQ_STR(user, "alice@x.org", "PLAIN user");
	TAP_EQ_STR(pass, "s3cret", "PLAIN password");
	TAP_EQ_INT(plain("alice@x.org\0alice@x.org\0pw", 26, user, pass), 0,
	    "PLAIN with authzid equal to authcid");
	TAP_EQ_INT(plain("bob@x.org\0alice@x.org\0pw", 24, user, pass),
	    PR_EINVAL, "PLAIN proxy authorisation refused");
	TAP_EQ_INT(plain("\0alice", 6, user, pass), PR_EINVAL,
	    "PLAIN missing second NUL");
	TAP_EQ_INT(plain("\0\0pw", 4, user, pass), PR_EINVAL,
	    "PLAIN empty authcid");
	TAP_EQ_INT(plain("\0a\0p\0w", 6, user, pass), PR_EINVAL,
	    "PLAIN NUL in password");
	TAP_EQ_INT(plain("\0a\0", 3, user, pass), 0, "PLAIN empty password");
	TAP_EQ_STR(pass, "", "PLAIN empty password decodes empty");
	TAP_EQ_INT(sasl_plain_decode("=", 1, user, pass), PR_EINVAL,
	    "PLAIN '=' (empty) refused");
	TAP_EQ_INT(sasl_plain_decode("!!!!", 4, user, pass), PR_EINVAL,
	    "PLAIN bad base64");
	memset(longpw, 'p', sizeof(longpw));
	longpw[0] = '\0';
	longpw[1] = 'u';
	longpw[2] = '\0';
	TAP_EQ_INT(plain(longpw, sizeof(longpw), user, pass), PR_EINVAL,
	    "PLAIN password over the limit");

	sasl_b64_encode((const unsigned char *)"alice", 5, b64, sizeof(b64));
	TAP_EQ_STR(b64, "YWxpY2U=", "base64 encode");
	TAP_EQ_INT(sasl_login_decode(b64, strlen(b64), out, sizeof(out)), 0,
	    "LOGIN decode");
	TAP_EQ_STR(out, "alice", "LOGIN value");
	TAP_EQ_INT(sasl_login_decode("YQBi", 4, out, sizeof(out)), PR_EINVAL,
	    "LOGIN with NUL refused");
	TAP_EQ_INT(sasl_login_decode("YWxpY2U", 7, out, sizeof(out)),
	    PR_EINVAL, "base64 missing padding refused");
	TAP_EQ_INT(sasl_login_decode("YWxpY2U=", 8, out, 4), PR_EINVAL,
	    "LOGIN longer than the buffer refused");

	/* A response that breaks off after a valid prefix leaves nothing of
	 * the decoded password behind. */
	memset(out, 'x', sizeof(out));
	TAP_EQ_INT(sasl_login_decode("c2VjcmV0cGFzc3dvcmQ=!", 21, out,
	    sizeof(out)), PR_EINVAL, "LOGIN with trailing garbage refused");
	TAP_OK(memmem(out, sizeof(out), "secret", 6) == NULL &&
	    out[0] == '\0', "nothing of the password left in the buffer");
	memset(out, 'x', sizeof(out));
	TAP_EQ_INT(sasl_login_decode("c2VjcmV0cGFzc3dvcmQ=", 20, out, 8),
	    PR_EINVAL, "LOGIN over the buffer refused");
	TAP_OK(memmem(out, 8, "secr", 4) == NULL,
	    "nothing of an over-long password left in the buffer");
	return tap_done();
}
