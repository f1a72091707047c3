/*
 * test_smtp_data.c - the DATA/BDAT reader, table-driven; every case runs
 * whole, trickled one octet at a time, and split at every offset, with a
 * roomy output buffer and with a tiny one that forces spooling.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "smtp_data.h"
#include "tap.h"

enum { WANT_OK = 0, WANT_BARE = 1, WANT_LONG = 2, WANT_BIG = 4 };

struct data_case {
	const char *name;
	enum smtp_data_mode mode;
	const char *in;
	size_t in_len;          /* 0 = strlen(in); else want_out is in less
	                           its final ".\r\n" */
	uint64_t size_max;      /* 0 = 1 MiB */
	size_t line_max;        /* 0 = 1000 */
	int want_end;           /* DOT: 1 if the end is in the input */
	size_t want_used;       /* DOT: octets up to the end (0 = all) */
	const char *want_out;   /* NULL: not compared (refused message) */
	int want_flags;
	int want_msgid, want_date;
};

static const struct data_case cases[] = {
	{ "empty message", SMTP_DATA_DOT, ".\r\n", 0, 0, 0, 1, 0, "", 0,
	    0, 0 },
	{ "one line", SMTP_DATA_DOT, "hello\r\n.\r\n", 0, 0, 0, 1, 0,
	    "hello\r\n", 0, 0, 0 },
	{ "dot-unstuffing", SMTP_DATA_DOT, "..a\r\n...\r\n.b\r\n.\r\n", 0, 0,
	    0, 1, 0, ".a\r\n..\r\nb\r\n", 0, 0, 0 },
	{ "stops at the end", SMTP_DATA_DOT, "a\r\n.\r\nMAIL FROM:<x>\r\n", 0,
	    0, 0, 1, 6, "a\r\n", 0, 0, 0 },
	{ "no end yet", SMTP_DATA_DOT, "a\r\n.", 0, 0, 0, 0, 0, "a\r\n", 0,
	    0, 0 },
	{ "LF.LF is not the end", SMTP_DATA_DOT, "a\n.\nb\r\n.\r\n", 0, 0, 0,
	    1, 0, NULL, WANT_BARE, 0, 0 },
	{ "CR.CR is not the end", SMTP_DATA_DOT, "a\r.\rb\r\n.\r\n", 0, 0, 0,
	    1, 0, NULL, WANT_BARE, 0, 0 },
	{ "CRLF.LF is not the end", SMTP_DATA_DOT, "a\r\n.\nb\r\n.\r\n", 0,
	    0, 0, 1, 0, NULL, WANT_BARE, 0, 0 },
	{ "LF.CRLF is not the end", SMTP_DATA_DOT, "a\n.\r\nb\r\n.\r\n", 0,
	    0, 0, 1, 0, NULL, WANT_BARE, 0, 0 },
	{ "CRLF.CR is not the end", SMTP_DATA_DOT, "a\r\n.\rx\r\n.\r\n", 0,
	    0, 0, 1, 0, NULL, WANT_BARE, 0, 0 },
	{ "bare LF only", SMTP_DATA_DOT, "a\nb\n.\n", 0, 0, 0, 0, 0, NULL,
	    WANT_BARE, 0, 0 },
	{ "CR CR LF", SMTP_DATA_DOT, "a\r\r\n.\r\n", 0, 0, 0, 1, 0, NULL,
	    WANT_BARE, 0, 0 },
	{ "NUL and 8-bit pass", SMTP_DATA_DOT, "a\0\xff\r\n.\r\n", 8, 0, 0,
	    1, 0, "a\0\xff\r\n", 0, 0, 0 },
	{ "line at max", SMTP_DATA_DOT, "12345678\r\n.\r\n", 0, 0, 10, 1, 0,
	    "12345678\r\n", 0, 0, 0 },
	{ "line at max+1", SMTP_DATA_DOT, "123456789\r\n.\r\n", 0, 0, 10, 1,
	    0, NULL, WANT_LONG, 0, 0 },
	/* RFC 5321 4.5.3.1.6: the transparency dot is not counted. */
	{ "stuffed line at max", SMTP_DATA_DOT, "..2345678\r\n.\r\n",
	    0, 0, 10, 1, 0, ".2345678\r\n", 0, 0, 0 },
	{ "stuffed line at max+1", SMTP_DATA_DOT, "..23456789\r\n.\r\n",
	    0, 0, 10, 1, 0, NULL, WANT_LONG, 0, 0 },
	{ "size at max", SMTP_DATA_DOT, "1234\r\n.\r\n", 0, 6, 0, 1, 0,
	    "1234\r\n", 0, 0, 0 },
	{ "size at max+1", SMTP_DATA_DOT, "12345\r\n.\r\n", 0, 6, 0, 1, 0,
	    NULL, WANT_BIG, 0, 0 },
	{ "header scan", SMTP_DATA_DOT, "Subject: x\r\nmessage-ID: <a@b>\r\n"
	    "DATE: now\r\n\r\nDate: body\r\n.\r\n", 0, 0, 0, 1, 0,
	    "Subject: x\r\nmessage-ID: <a@b>\r\nDATE: now\r\n\r\n"
	    "Date: body\r\n",
	    0, 1, 1 },
	{ "header scan stops at the body", SMTP_DATA_DOT, "Subject: x\r\n"
	    "\r\nDate: x\r\nMessage-ID: y\r\n.\r\n", 0, 0, 0, 1, 0, NULL, 0,
	    0, 0 },
	{ "folded lines are not fields", SMTP_DATA_DOT, "Subject: x\r\n"
	    " Date: no\r\n\r\n.\r\n", 0, 0, 0, 1, 0, NULL, 0, 0, 0 },
	/* After the header section, text runs are taken in one piece. */
	{ "body: text runs", SMTP_DATA_DOT, "S: x\r\n\r\nhello world\r\n"
	    "..stuffed\r\nlast line\r\n.\r\nNOOP\r\n", 0, 0, 0, 1, 46,
	    "S: x\r\n\r\nhello world\r\n.stuffed\r\nlast line\r\n", 0,
	    0, 0 },
	{ "body: line at max", SMTP_DATA_DOT, "S: x\r\n\r\n12345678\r\n"
	    ".\r\n", 0, 0, 10, 1, 0, "S: x\r\n\r\n12345678\r\n", 0, 0, 0 },
	{ "body: line at max+1", SMTP_DATA_DOT, "S: x\r\n\r\n123456789\r\n"
	    ".\r\n", 0, 0, 10, 1, 0, NULL, WANT_LONG, 0, 0 },
	{ "body: size at max", SMTP_DATA_DOT, "S: x\r\n\r\n1234\r\n.\r\n",
	    0, 14, 0, 1, 0, "S: x\r\n\r\n1234\r\n", 0, 0, 0 },
	{ "body: size at max+1", SMTP_DATA_DOT, "S: x\r\n\r\n12345\r\n"
	    ".\r\n", 0, 14, 0, 1, 0, NULL, WANT_BIG, 0, 0 },
	{ "body: bare LF in a run", SMTP_DATA_DOT, "S: x\r\n\r\nab\ncd\r\n"
	    ".\r\n", 0, 0, 0, 1, 0, NULL, WANT_BARE, 0, 0 },
	{ "body: bare CR in a run", SMTP_DATA_DOT, "S: x\r\n\r\nab\rcd\r\n"
	    ".\r\n", 0, 0, 0, 1, 0, NULL, WANT_BARE, 0, 0 },
	{ "body: smuggled end in a run", SMTP_DATA_DOT, "S: x\r\n\r\nab\n.\n"
	    "cd\r\n.\r\n", 0, 0, 0, 1, 0, NULL, WANT_BARE, 0, 0 },
	{ "body: NUL and 8-bit in a run", SMTP_DATA_DOT, "S: x\r\n\r\n"
	    "a\0\xff\xc3\xa9" "b\r\n.\r\n", 19, 0, 0, 1, 0,
	    "S: x\r\n\r\na\0\xff\xc3\xa9" "b\r\n", 0, 0, 0 },
	{ "chunk: body runs", SMTP_DATA_CHUNK, "S: x\r\n\r\n.a\r\nbc", 0, 0,
	    0, 0, 0, "S: x\r\n\r\n.a\r\nbc\r\n", 0, 0, 0 },
	{ "chunk: dots are data", SMTP_DATA_CHUNK, ".\r\n..\r\n", 0, 0, 0, 0,
	    0, ".\r\n..\r\n", 0, 0, 0 },
	{ "chunk: bare LF", SMTP_DATA_CHUNK, "a\nb\r\n", 0, 0, 0, 0, 0, NULL,
	    WANT_BARE, 0, 0 },
	{ "chunk: no final CRLF", SMTP_DATA_CHUNK, "abc", 0, 0, 0, 0, 0,
	    "abc\r\n", 0, 0, 0 },
	{ "chunk: final bare CR", SMTP_DATA_CHUNK, "abc\r", 0, 0, 0, 0, 0,
	    NULL, WANT_BARE, 0, 0 },
	{ "chunk: size with the added CRLF", SMTP_DATA_CHUNK, "abcd", 0, 5, 0,
	    0, 0, NULL, WANT_BIG, 0, 0 },
};

static int
data_flags(const struct smtp_data *d)
{
	return (d->bare_eol ? WANT_BARE : 0) | (d->long_line ? WANT_LONG : 0) |
	    (d->too_big ? WANT_BIG : 0);
}

/*
 * Runs one case.  piece: octets per feed (0 = all, or split at split);
 * outmax: output buffer bound (spooled to *all when full).
 */
static int
data_run(const struct data_case *c, size_t piece, size_t split,
    size_t outmax, char *why, size_t whysz)
{
	size_t len = c->in_len ? c->in_len : strlen(c->in);
	struct smtp_data d;
	struct buf out, all;
	size_t off = 0, used, total = 0;
	int r = 0, ok = 1;

	smtp_data_init(&d, c->mode, c->size_max ? c->size_max : 1 << 20,
	    c->line_max ? c->line_max : 1000);
	buf_init(&out, outmax);
	buf_init(&all, 1 << 20);
	while (off < len && r != 1) {
		size_t n = len - off;

		if (piece > 0 && n > piece)
			n = piece;
		if (split > 0 && off < split && n > split - off)
			n = split - off;
		r = smtp_data_feed(&d, (const uint8_t *)c->in + off, n, &used,
		    &out);
		if (r < 0) {
			snprintf(why, whysz, "feed error %d", r);
			ok = 0;
			break;
		}
		off += used;
		total += used;
		if (r != 1 && used < n) {
			/* Output full: "spool" it. */
			if (out.len == 0) {
				snprintf(why, whysz, "stuck at %zu", off);
				ok = 0;
				break;
			}
			buf_append(&all, out.p, out.len);
			buf_reset(&out);
		}
	}
	if (ok && c->mode == SMTP_DATA_CHUNK) {
		out.max += 2;
		if (smtp_data_finish(&d, &out) < 0) {
			snprintf(why, whysz, "finish failed");
			ok = 0;
		}
	}
	buf_append(&all, out.p, out.len);
	if (ok && (r == 1) != (c->want_end == 1)) {
		snprintf(why, whysz, "end %d, want %d", r, c->want_end);
		ok = 0;
	}
	if (ok && c->want_used && total != c->want_used) {
		snprintf(why, whysz, "used %zu, want %zu", total, c->want_used);
		ok = 0;
	}
	if (ok && data_flags(&d) != c->want_flags) {
		snprintf(why, whysz, "flags %d, want %d", data_flags(&d),
		    c->want_flags);
		ok = 0;
	}
	if (ok && c->want_flags == 0 && c->want_out != NULL) {
		size_t wl = c->in_len ? c->in_len - 3 : strlen(c->want_out);

		if (all.len != wl ||
		    (wl > 0 && memcmp(all.p, c->want_out, wl) != 0) ||
		    d.size != wl) {
			snprintf(why, whysz, "output %zu octets \"%.*s\"",
			    all.len, (int)all.len, (const char *)all.p);
			ok = 0;
		}
	}
	if (ok && (d.has_msgid != c->want_msgid ||
	    d.has_date != c->want_date)) {
		snprintf(why, whysz, "msgid %d date %d", d.has_msgid,
		    d.has_date);
		ok = 0;
	}
	buf_fini(&out);
	buf_fini(&all);
	return ok;
}

int
main(void)
{
	size_t i, k, len;
	char why[512];
	int ok;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct data_case *c = &cases[i];

		len = c->in_len ? c->in_len : strlen(c->in);
		why[0] = '\0';
		ok = data_run(c, 0, 0, 1 << 20, why, sizeof(why));
		TAP_OK(ok, "%s: whole", c->name);
		if (!ok)
			printf("#   %s\n", why);
		ok = data_run(c, 1, 0, 1 << 20, why, sizeof(why));
		TAP_OK(ok, "%s: trickle", c->name);
		if (!ok)
			printf("#   %s\n", why);
		ok = 1;
		for (k = 1; k < len && ok; k++)
			if (!(ok = data_run(c, 0, k, 1 << 20, why,
			    sizeof(why))))
				printf("#   split at %zu: %s\n", k, why);
		TAP_OK(ok, "%s: split at every offset", c->name);
		ok = data_run(c, 0, 0, 3, why, sizeof(why));
		TAP_OK(ok, "%s: through a 3-octet buffer", c->name);
		if (!ok)
			printf("#   %s\n", why);
	}

	/* A long message through a small buffer: spooled pieces add up. */
	{
		struct data_case big = { "1 MB", SMTP_DATA_DOT, NULL, 0,
		    2 << 20, 0, 1, 0, NULL, 0, 0, 0 };
		size_t n = 0;
		char *in = malloc(1100000), *want = malloc(1100000);
		size_t wn = 0;

		for (k = 0; n < 1000000; k++) {
			int l = snprintf(in + n, 100, "%s%zu line of text\r\n",
			    k % 7 == 0 ? "." : "", k);
			memcpy(want + wn, in + n + (k % 7 == 0), (size_t)l -
			    (k % 7 == 0));
			n += (size_t)l;
			wn += (size_t)l - (k % 7 == 0);
		}
		memcpy(in + n, ".\r\n", 4);
		want[wn] = '\0';
		big.in = in;
		big.want_out = want;
		ok = data_run(&big, 0, 0, 4096, why, sizeof(why));
		TAP_OK(ok, "1 MB through a 4 KiB buffer");
		if (!ok)
			printf("#   %s\n", why);
		ok = data_run(&big, 1000, 0, 128 * 1024, why, sizeof(why));
		TAP_OK(ok, "1 MB in 1000-octet pieces");
		free(in);
		free(want);
	}
	return tap_done();
}
