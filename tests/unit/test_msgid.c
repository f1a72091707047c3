/*
 * test_msgid.c - the Message-ID finder (common/msgid.c, RFC 5322 3.6.4):
 * a table of headers, each also cut at every offset (a message read only
 * in part finds its token or nothing), and the length bound at
 * MSGID_MAX - 1 and MSGID_MAX.
 */
#include <string.h>

#include "msgid.h"
#include "tap.h"

static const struct {
	const char *in, *want; /* want "" = not found */
} cases[] = {
	{ "Message-ID: <a@b>\r\n\r\n", "<a@b>" },
	{ "From: x\r\nmessage-id:<A.B@C.D>\r\n", "<A.B@C.D>" },
	{ "MESSAGE-ID : <x@y>\n", "<x@y>" },
	{ "Message-ID:\r\n\t<folded@example.org>\r\n", "<folded@example.org>" },
	{ "Message-ID: (comment) <c@d> (more)\r\n", "<c@d>" },
	{ "Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n", "<first@x>" },
	{ "Subject: x\r\n\r\nMessage-ID: <in@body>\r\n", "" },
	{ "\r\nMessage-ID: <after@empty>\r\n", "" },
	{ "Message-IDs: <a@b>\r\n", "" },
	{ "X-Message-ID: <a@b>\r\n", "" },
	{ "Message-ID: <no-at>\r\n", "" },
	{ "Message-ID: <@right>\r\n", "" },
	{ "Message-ID: <left@>\r\n", "" },
	{ "Message-ID: <sp ace@x>\r\n", "" },
	{ "Message-ID: <unclosed@x\r\n", "" },
	{ "Message-ID: <a@b", "" },
	{ "Message-ID: <a@b>", "<a@b>" },
	{ "Message-ID: <bad\r\n", "" },
	{ "Message-ID:", "" },
	{ "", "" },
};

int
main(void)
{
	char out[MSGID_MAX], big[MSGID_MAX + 64];
	size_t i, cut, len;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = strlen(cases[i].in);
		TAP_EQ_INT(msgid_find((const uint8_t *)cases[i].in, len, out),
		    cases[i].want[0] != '\0', "case %zu: found or not", i);
		TAP_EQ_STR(out, cases[i].want, "case %zu: token", i);
		for (cut = 0; cut < len; cut++)
			if (msgid_find((const uint8_t *)cases[i].in, cut,
			    out) == 1 && strcmp(out, cases[i].want) != 0)
				break;
		TAP_OK(cut == len, "case %zu: every start finds it or nothing",
		    i);
	}
	/* "<" + local + "@x>" of exactly MSGID_MAX - 1 octets fits. */
	for (len = MSGID_MAX - 1; len <= MSGID_MAX; len++) {
		size_t pre = strlen("Message-ID: "), local = len - 4;

		memcpy(big, "Message-ID: <", pre + 1);
		memset(big + pre + 1, 'a', local);
		memcpy(big + pre + 1 + local, "@x>\r\n", 5);
		TAP_EQ_INT(msgid_find((const uint8_t *)big, pre + len + 2, out),
		    len < MSGID_MAX, "a token of %zu octets: %s", len,
		    len < MSGID_MAX ? "kept" : "too long");
	}
	return tap_done();
}
