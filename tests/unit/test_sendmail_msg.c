/*
 * test_sendmail_msg.c - what postroom-sendmail does to a message: the
 * recipients of -t (To, Cc, Bcc; bare names too), Bcc removed (RFC 5322
 * 3.6.3), From, Date and Message-ID added only when missing, folded
 * fields, a message without a header section.
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "sendmail_msg.h"
#include "tap.h"

struct msg_case {
	const char *name;
	const char *in;
	bool extract;
	const char *want;       /* the rewritten message */
	const char *want_rcpt;  /* recipients joined with " " */
};

static const struct msg_case msg_cases[] = {
	{ "fields added", "Subject: s\n\nbody\n", false,
	    "Subject: s\nFrom: F\nDate: D\nMessage-ID: M\n\nbody\n", "" },
	{ "present fields kept", "From: a@b.test\r\nDate: x\r\n"
	    "Message-ID: <1@b>\r\n\r\nbody\r\n", false,
	    "From: a@b.test\r\nDate: x\r\nMessage-ID: <1@b>\r\n\nbody\r\n",
	    "" },
	{ "-t and Bcc", "To: A <a@x.test>, b@x.test\nCc: \"C, D\" <c@x.test>"
	    " (note)\nBcc: e@x.test\nSubject: s\n\nhi\n", true,
	    "To: A <a@x.test>, b@x.test\nCc: \"C, D\" <c@x.test> (note)\n"
	    "Subject: s\nFrom: F\nDate: D\nMessage-ID: M\n\nhi\n",
	    "a@x.test b@x.test c@x.test e@x.test" },
	{ "folded Bcc removed whole", "Bcc: a@x.test,\n  b@x.test\n"
	    "To: root\n\nx\n", true,
	    "To: root\nFrom: F\nDate: D\nMessage-ID: M\n\nx\n",
	    "a@x.test b@x.test root" },
	{ "Bcc removed without -t", "bcc: a@x.test\nSubject: s\n\nx\n",
	    false, "Subject: s\nFrom: F\nDate: D\nMessage-ID: M\n\nx\n", "" },
	{ "group and bare names", "To: team: alice, bob@x.test;\n\nx\n", true,
	    "To: team: alice, bob@x.test;\nFrom: F\nDate: D\nMessage-ID: M\n"
	    "\nx\n", "alice bob@x.test" },
	{ "no header section", "just a body line\nsecond\n", false,
	    "From: F\nDate: D\nMessage-ID: M\n\njust a body line\nsecond\n",
	    "" },
	{ "header without body", "Subject: only", false,
	    "Subject: only\nFrom: F\nDate: D\nMessage-ID: M\n\n", "" },
	{ "empty message", "", false, "From: F\nDate: D\nMessage-ID: M\n\n",
	    "" },
	{ "To in the body is not read", "Subject: s\n\nTo: x@x.test\n", true,
	    "Subject: s\nFrom: F\nDate: D\nMessage-ID: M\n\nTo: x@x.test\n",
	    "" },
	{ "undisclosed recipients", "To: undisclosed-recipients:;\n"
	    "Bcc: z@x.test\n\nx\n", true,
	    "To: undisclosed-recipients:;\nFrom: F\nDate: D\nMessage-ID: M\n"
	    "\nx\n", "z@x.test" },
};

static char rcpts[4096];

static int
collect(void *ctx, const char *addr)
{
	(void)ctx;
	if (rcpts[0] != '\0')
		strcat(rcpts, " ");
	strcat(rcpts, addr);
	return 0;
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(msg_cases) / sizeof(msg_cases[0]);
	    i++) {
		const struct msg_case *c = &msg_cases[i];
		struct sendmail_msg_opts o = { c->extract, "F", "D", "M",
		    collect, NULL };
		struct buf out;
		int r;

		rcpts[0] = '\0';
		buf_init(&out, 65536);
		r = sendmail_msg_rewrite((const uint8_t *)c->in, strlen(c->in),
		    &o, &out);
		TAP_EQ_INT(r, 0, "%s: returns 0", c->name);
		TAP_OK(out.len == strlen(c->want) &&
		    memcmp(out.p, c->want, out.len) == 0,
		    "%s: message", c->name);
		if (out.len != strlen(c->want) ||
		    memcmp(out.p, c->want, out.len) != 0)
			printf("# got: %.*s\n", (int)out.len, out.p);
		TAP_OK(strcmp(rcpts, c->want_rcpt) == 0, "%s: recipients "
		    "(%s)", c->name, rcpts);
		buf_fini(&out);
	}
	{
		struct sendmail_msg_opts o = { false, "F", "D", "M", collect,
		    NULL };
		struct buf out;

		buf_init(&out, 8);
		TAP_EQ_INT(sendmail_msg_rewrite((const uint8_t *)"Subject: x\n"
		    "\nbody\n", 17, &o, &out), PR_ENOSPC,
		    "a full output buffer is PR_ENOSPC");
		buf_fini(&out);
	}
	return tap_done();
}
