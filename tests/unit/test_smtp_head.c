/*
 * test_smtp_head.c - the header filter of incoming messages: our own
 * Authentication-Results fields removed (RFC 8601 5), the others and the
 * body untouched, the From: fields kept; whole, one octet at a time and
 * split at every offset.  Then the bound on one field.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp_head.h"
#include "tap.h"

#define ID "mx.example.test"

struct head_case {
	const char *name;
	const char *in;
	const char *want;
	const char *from;   /* the From: fields kept */
	unsigned removed;
};

static const struct head_case head_cases[] = {
	{ "nothing to remove",
	    "From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n",
	    "From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n",
	    "From: a@b.test\r\n", 0 },
	{ "ours removed, folded",
	    "Authentication-Results: mx.example.test;\r\n\tdkim=pass\r\n"
	    "From: a@b.test\r\n\r\nbody\r\n",
	    "From: a@b.test\r\n\r\nbody\r\n", "From: a@b.test\r\n", 1 },
	{ "ours in another case, with a comment",
	    "authentication-results: (x) MX.Example.Test; spf=pass\r\n"
	    "Subject: y\r\n\r\n",
	    "Subject: y\r\n\r\n", "", 1 },
	{ "another server's kept",
	    "Authentication-Results: mx.other.test; spf=pass\r\n\r\nb\r\n",
	    "Authentication-Results: mx.other.test; spf=pass\r\n\r\nb\r\n",
	    "", 0 },
	{ "a look-alike id kept",
	    "Authentication-Results: mx.example.test.evil; spf=pass\r\n\r\n",
	    "Authentication-Results: mx.example.test.evil; spf=pass\r\n\r\n",
	    "", 0 },
	{ "in the body it stays",
	    "Subject: z\r\n\r\nAuthentication-Results: mx.example.test; "
	    "x=y\r\n",
	    "Subject: z\r\n\r\nAuthentication-Results: mx.example.test; "
	    "x=y\r\n", "", 0 },
	{ "two From: fields kept for DMARC",
	    "From: a@b.test\r\nFrom: c@d.test\r\n\r\n",
	    "From: a@b.test\r\nFrom: c@d.test\r\n\r\n",
	    "From: a@b.test\r\nFrom: c@d.test\r\n", 0 },
	{ "no body, last field ours",
	    "Subject: q\r\nAuthentication-Results: mx.example.test; none\r\n",
	    "Subject: q\r\n", "", 1 },
	{ "empty message", "", "", "", 0 },
};

static void
head_run(const struct head_case *c, size_t step, size_t split,
    const char *how)
{
	struct smtp_head h;
	struct buf out;
	size_t len = strlen(c->in), off = 0, n;
	int r = 0;

	smtp_head_init(&h, ID);
	buf_init(&out, 1 << 20);
	while (off < len && r == 0) {
		n = step > 0 ? step : off < split ? split - off : len - off;
		if (n > len - off)
			n = len - off;
		r = smtp_head_feed(&h, (const uint8_t *)c->in + off, n, &out);
		off += n;
	}
	if (r == 0)
		r = smtp_head_finish(&h, &out);
	TAP_OK(r == 0 && out.len == strlen(c->want) && (out.len == 0 ||
	    memcmp(out.p, c->want, out.len) == 0), "%s (%s)", c->name, how);
	TAP_OK(h.from.len == strlen(c->from) && (h.from.len == 0 ||
	    memcmp(h.from.p, c->from, h.from.len) == 0), "%s: From: kept (%s)",
	    c->name, how);
	TAP_EQ_INT(h.removed, c->removed, "%s: removed (%s)", c->name, how);
	buf_fini(&out);
	smtp_head_fini(&h);
}

static void
test_cases(void)
{
	size_t i, sp;

	for (i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		head_run(&head_cases[i], 0, strlen(head_cases[i].in), "whole");
		head_run(&head_cases[i], 1, 0, "trickle");
		for (sp = 1; sp < strlen(head_cases[i].in); sp++)
			head_run(&head_cases[i], 0, sp, "split");
	}
}

/* A field over SMTP_HEAD_FIELD_MAX is decided on its start: ours is
 * still removed whole, another passes whole; a long From: cannot be
 * evaluated. */
static void
test_bound(void)
{
	struct smtp_head h;
	struct buf in, out;
	size_t i;

	buf_init(&in, 1 << 20);
	buf_init(&out, 1 << 20);
	buf_printf(&in, "Authentication-Results: " ID "; spf=pass");
	for (i = 0; i < SMTP_HEAD_FIELD_MAX; i++)
		buf_printf(&in, "\r\n\tx=%zu", i);
	buf_printf(&in, "\r\nSubject: s\r\n\r\nbody\r\n");
	smtp_head_init(&h, ID);
	TAP_OK(smtp_head_feed(&h, in.p, in.len, &out) == 0 &&
	    smtp_head_finish(&h, &out) == 0, "long field: fed");
	TAP_OK(out.len == 20 && memcmp(out.p, "Subject: s\r\n\r\nbody\r\n",
	    20) == 0, "long field of ours: removed whole");
	TAP_OK(h.field.cap <= SMTP_HEAD_FIELD_MAX, "long field: held "
	    "no more than the bound");
	smtp_head_fini(&h);

	buf_reset(&in);
	buf_reset(&out);
	buf_printf(&in, "From: a@b.test");
	for (i = 0; i < SMTP_HEAD_FIELD_MAX; i++)
		buf_printf(&in, ",\r\n c%zu@d.test", i);
	buf_printf(&in, "\r\n\r\n");
	smtp_head_init(&h, ID);
	TAP_OK(smtp_head_feed(&h, in.p, in.len, &out) == 0 &&
	    smtp_head_finish(&h, &out) == 0, "long From: fed");
	TAP_OK(out.len == in.len && memcmp(out.p, in.p, in.len) == 0,
	    "long From: passed whole");
	TAP_OK(h.from_overflow, "long From: cannot be evaluated");
	smtp_head_fini(&h);
	buf_fini(&in);
	buf_fini(&out);
}

/* The bound itself: a From: field of SMTP_HEAD_FIELD_MAX octets (its
 * CRLF included) is held and kept whole, one octet more is not; fed
 * whole and one octet at a time. */
static void
test_bound_edge(void)
{
	struct smtp_head h;
	struct buf in, out;
	size_t extra, step, off, n;

	buf_init(&in, 1 << 20);
	buf_init(&out, 1 << 20);
	for (extra = 0; extra < 2; extra++) {
		for (step = 0; step < 2; step++) {
			buf_reset(&in);
			buf_reset(&out);
			buf_printf(&in, "From: a@b.test (");
			while (in.len < SMTP_HEAD_FIELD_MAX + extra - 3)
				buf_append(&in, "c", 1);
			buf_printf(&in, ")\r\n\r\nbody\r\n");
			smtp_head_init(&h, ID);
			for (off = 0; off < in.len; off += n) {
				n = step ? 1 : in.len;
				if (smtp_head_feed(&h, in.p + off, n, &out) < 0)
					break;
			}
			TAP_OK(off == in.len && smtp_head_finish(&h, &out) ==
			    0 && out.len == in.len && memcmp(out.p, in.p,
			    in.len) == 0, "From: of max%s octets: passed (%s)",
			    extra ? "+1" : "", step ? "trickle" : "whole");
			if (extra)
				TAP_OK(h.from_overflow && h.from.len == 0,
				    "From: of max+1 octets: not kept (%s)",
				    step ? "trickle" : "whole");
			else
				TAP_OK(!h.from_overflow && h.from.len ==
				    SMTP_HEAD_FIELD_MAX, "From: of max octets: "
				    "kept (%s)", step ? "trickle" : "whole");
			smtp_head_fini(&h);
		}
	}
	buf_fini(&in);
	buf_fini(&out);
}

int
main(void)
{
	test_cases();
	test_bound();
	test_bound_edge();
	return tap_done();
}
