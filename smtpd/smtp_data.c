/* smtp_data.c - the DATA/BDAT message reader (sans-I/O). */
#include "smtp_data.h"

#include <string.h>

#include "err.h"

enum {
	SMTP_DATA_S_BOL,   /* at the start of a line (after CRLF) */
	SMTP_DATA_S_TEXT,  /* inside a line */
	SMTP_DATA_S_CR,    /* after a CR inside a line */
	SMTP_DATA_S_DOT,   /* DOT mode: "." at the start of a line */
	SMTP_DATA_S_DOTCR, /* DOT mode: "." CR at the start of a line */
};

/* Header scan positions besides 0..sizeof(hdr). */
#define SMTP_DATA_HDR_BOL 0xfe
#define SMTP_DATA_HDR_SKIP 0xff

void
smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode,
    uint64_t size_max, size_t line_max)
{
	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->st = SMTP_DATA_S_BOL;
	d->size_max = size_max;
	d->line_max = line_max;
	d->in_header = true;
	d->hdr_len = SMTP_DATA_HDR_BOL;
}

bool
smtp_data_ok(const struct smtp_data *d)
{
	return !d->bare_eol && !d->long_line && !d->too_big && !d->discard;
}

void
smtp_data_discard(struct smtp_data *d)
{
	d->discard = true;
}

/*
 * Watches the message octets for the header fields a submission server
 * adds when missing (RFC 6409 8.2, 8.3).  Constant memory: only the first
 * octets of each field name are kept, and the scan stops at the empty line
 * that ends the header section (RFC 5322 2.1).
 */
static void
smtp_data_field_put(struct smtp_data *d, const void *c, size_t n)
{
	if (!d->fields_overflow && buf_append(d->fields, c, n) < 0)
		d->fields_overflow = true;
}

static void
smtp_data_scan(struct smtp_data *d, uint8_t c)
{
	if (!d->in_header)
		return;
	if (c == '\n') {
		d->hdr_len = SMTP_DATA_HDR_BOL;
		return;
	}
	if (d->hdr_len == SMTP_DATA_HDR_BOL) {
		if (c == ' ' || c == '\t') {
			/* RFC 5322 2.2.3: a folded continuation line;
			 * unfolding removes only the CRLF. */
			if (d->in_field)
				smtp_data_field_put(d, &c, 1);
			d->hdr_len = SMTP_DATA_HDR_SKIP;
			return;
		}
		d->in_field = false;
		if (c == '\r') {
			/* An empty line: the body starts. */
			d->in_header = false;
			return;
		}
		d->hdr_len = 0;
	}
	if (d->hdr_len == SMTP_DATA_HDR_SKIP) {
		if (d->in_field && c != '\r')
			smtp_data_field_put(d, &c, 1);
		return;
	}
	if (c == ':') {
		if (d->hdr_len == 10 && memcmp(d->hdr, "message-id", 10) == 0)
			d->has_msgid = true;
		else if (d->hdr_len == 4 && memcmp(d->hdr, "date", 4) == 0)
			d->has_date = true;
		else if (d->fields != NULL && ((d->hdr_len == 4 &&
		    memcmp(d->hdr, "from", 4) == 0) || (d->hdr_len == 6 &&
		    memcmp(d->hdr, "sender", 6) == 0))) {
			/* A second field (RFC 5322 3.6 allows one) is
			 * checked as well. */
			if (d->fields->len > 0)
				smtp_data_field_put(d, ",", 1);
			d->in_field = true;
		}
		d->hdr_len = SMTP_DATA_HDR_SKIP;
		return;
	}
	/* RFC 5322 4.5: obsolete syntax allows WSP before the colon, and
	 * other readers of the field (DKIM, MUAs) take "From :" as From. */
	if (c == ' ' || c == '\t')
		return;
	if (d->hdr_len >= sizeof(d->hdr)) {
		d->hdr_len = SMTP_DATA_HDR_SKIP;
		return;
	}
	d->hdr[d->hdr_len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

/*
 * The run of text octets (neither CR nor LF) at the start of in[0..len),
 * inside a line of the body: counted, and copied to out while the message
 * is deliverable (at most *room octets then).  Returns the octets taken.
 */
static size_t
smtp_data_text_run(struct smtp_data *d, const uint8_t *in, size_t len,
    size_t *room, struct buf *out)
{
	bool ok = smtp_data_ok(d);
	const uint8_t *p;
	size_t k;

	if (ok && len > *room)
		len = *room;
	if ((p = memchr(in, '\r', len)) != NULL)
		len = (size_t)(p - in);
	if ((p = memchr(in, '\n', len)) != NULL)
		len = (size_t)(p - in);
	k = len;
	if ((d->line_len += k) > d->line_max)
		d->long_line = true;
	if ((d->size += k) > d->size_max)
		d->too_big = true;
	if (ok && smtp_data_ok(d)) {
		memcpy(out->p + out->len, in, k);
		out->len += k;
		*room -= k;
	}
	return k;
}

int
smtp_data_feed(struct smtp_data *d, const uint8_t *in, size_t len,
    size_t *consumed_r, struct buf *out)
{
	size_t i, room = 0;
	int r;

	if (smtp_data_ok(d)) {
		room = out->max - out->len;
		if (room > len)
			room = len;
		if (room > 0 && (r = buf_reserve(out, room)) < 0)
			return r;
	}
	for (i = 0; i < len; i++) {
		uint8_t c;
		bool emit = true;

		/* Stop before an octet that might need a byte of room. */
		if (smtp_data_ok(d) && room == 0)
			break;
		/* Inside a line of the body everything up to the next CR or
		 * LF is text: take it in one piece, not octet by octet. */
		if (d->st == SMTP_DATA_S_TEXT && !d->in_header) {
			size_t k = smtp_data_text_run(d, in + i, len - i, &room,
			    out);

			if ((i += k) == len)
				break;
			if (smtp_data_ok(d) && room == 0)
				break;
		}
		c = in[i];
		if (d->st == SMTP_DATA_S_BOL)
			d->line_len = 0;
		/* RFC 5321 4.5.3.1.6: the limit does not count the leading
		 * dot duplicated for transparency. */
		if (!(d->st == SMTP_DATA_S_BOL && d->mode == SMTP_DATA_DOT &&
		    c == '.') && ++d->line_len > d->line_max)
			d->long_line = true;

		switch (d->st) {
		case SMTP_DATA_S_BOL:
			if (d->mode == SMTP_DATA_DOT && c == '.') {
				d->st = SMTP_DATA_S_DOT;
				emit = false;
				break;
			}
			/* FALLTHROUGH */
		case SMTP_DATA_S_TEXT:
			if (c == '\r') {
				d->st = SMTP_DATA_S_CR;
			} else {
				/* A bare LF ends nothing: we stay inside the
				 * line, so no "." after it is special. */
				if (c == '\n')
					d->bare_eol = true;
				d->st = SMTP_DATA_S_TEXT;
			}
			break;
		case SMTP_DATA_S_CR:
			if (c == '\n') {
				d->st = SMTP_DATA_S_BOL;
			} else {
				d->bare_eol = true;
				if (c != '\r')
					d->st = SMTP_DATA_S_TEXT;
			}
			break;
		case SMTP_DATA_S_DOT:
			/* RFC 5321 4.5.2: a line's first "." is deleted. */
			if (c == '\r') {
				d->st = SMTP_DATA_S_DOTCR;
				emit = false;
			} else {
				if (c == '\n')
					d->bare_eol = true;
				d->st = SMTP_DATA_S_TEXT;
			}
			break;
		case SMTP_DATA_S_DOTCR:
			if (c == '\n') {
				/* RFC 5321 4.1.1.4: CRLF "." CRLF, and only
				 * that, ends the mail data. */
				*consumed_r = i + 1;
				return 1;
			}
			/* "." CR x: a bare CR.  What was held back no longer
			 * matters: the message will be refused. */
			d->bare_eol = true;
			d->st = c == '\r' ? SMTP_DATA_S_CR : SMTP_DATA_S_TEXT;
			emit = false;
			break;
		}
		if (!emit)
			continue;
		smtp_data_scan(d, c);
		if (++d->size > d->size_max)
			d->too_big = true;
		if (smtp_data_ok(d)) {
			out->p[out->len++] = c;
			room--;
		}
	}
	*consumed_r = i;
	return 0;
}

int
smtp_data_finish(struct smtp_data *d, struct buf *out)
{
	int r;

	if (d->st == SMTP_DATA_S_CR)
		d->bare_eol = true;
	if (d->st != SMTP_DATA_S_TEXT || !smtp_data_ok(d))
		return 0;
	if (d->size + 2 > d->size_max) {
		d->too_big = true;
		return 0;
	}
	if ((r = buf_append(out, "\r\n", 2)) < 0)
		return r;
	d->size += 2;
	d->st = SMTP_DATA_S_BOL;
	return 0;
}
