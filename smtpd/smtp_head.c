/* smtp_head.c - the header filter of incoming messages: smtp_head.h. */
#include "smtp_head.h"

#include <string.h>
#include <strings.h>

#include "authres.h"
#include "err.h"

void
smtp_head_init(struct smtp_head *h, const char *authserv_id)
{
	memset(h, 0, sizeof(*h));
	h->authserv_id = authserv_id;
	h->bol = true;
	buf_init(&h->field, SMTP_HEAD_FIELD_MAX);
	buf_init(&h->from, SMTP_HEAD_FROM_MAX);
}

void
smtp_head_fini(struct smtp_head *h)
{
	buf_fini(&h->field);
	buf_fini(&h->from);
}

/* RFC 5322 3.6.2 (and the obsolete WSP before the colon, 4.5). */
static bool
smtp_head_is_from(const struct buf *f)
{
	size_t i = 4;

	if (f->len < 5 || strncasecmp((const char *)f->p, "from", 4) != 0)
		return false;
	while (i < f->len && (f->p[i] == ' ' || f->p[i] == '\t'))
		i++;
	return i < f->len && f->p[i] == ':';
}

/* The field without its final CRLF, for authres_is_ours(). */
static bool
smtp_head_ours(const struct smtp_head *h)
{
	size_t n = h->field.len;

	while (n > 0 && (h->field.p[n - 1] == '\n' || h->field.p[n - 1] ==
	    '\r'))
		n--;
	return authres_is_ours(h->field.p, n, h->authserv_id);
}

/* The held field is complete, or too long to hold: decide. */
static int
smtp_head_decide(struct smtp_head *h, struct buf *out, bool complete)
{
	int r = 0;

	if (h->mode != SMTP_HEAD_HOLD)
		return 0;
	h->field_from = smtp_head_is_from(&h->field);
	if (h->field_from && (!complete ||
	    buf_append(&h->from, h->field.p, h->field.len) < 0))
		h->from_overflow = true;
	if (smtp_head_ours(h)) {
		h->removed++;
		h->mode = SMTP_HEAD_DROP;
	} else {
		r = buf_append(out, h->field.p, h->field.len);
		h->mode = SMTP_HEAD_PASS;
	}
	buf_reset(&h->field);
	return r;
}

/* The current field has ended (the next line starts a new one). */
static int
smtp_head_field_end(struct smtp_head *h, struct buf *out)
{
	int r = 0;

	if (h->field.len > 0 || h->mode != SMTP_HEAD_HOLD)
		r = smtp_head_decide(h, out, true);
	h->mode = SMTP_HEAD_HOLD;
	buf_reset(&h->field);
	return r;
}

int
smtp_head_feed(struct smtp_head *h, const uint8_t *in, size_t len,
    struct buf *out)
{
	const uint8_t *nl;
	size_t i = 0, n, room;
	int r;

	/* A line (or the part of it in this input) at a time. */
	while (i < len && !h->body) {
		if (h->bol && in[i] != ' ' && in[i] != '\t') {
			/* A new line that is no continuation (RFC 5322
			 * 2.2.3): the field before it is complete. */
			if ((r = smtp_head_field_end(h, out)) < 0)
				return r;
		}
		nl = memchr(in + i, '\n', len - i);
		n = nl != NULL ? (size_t)(nl - in) + 1 - i : len - i;
		h->bol = nl != NULL;
		if (h->mode == SMTP_HEAD_HOLD) {
			room = SMTP_HEAD_FIELD_MAX - h->field.len;
			if (n > room) {
				/* Too long to hold: decided on its start, the
				 * rest passed or dropped as it comes. */
				if ((r = buf_append(&h->field, in + i,
				    room)) < 0 ||
				    (r = smtp_head_decide(h, out, false)) < 0)
					return r;
				i += room;
				n -= room;
			} else {
				if ((r = buf_append(&h->field, in + i, n)) < 0)
					return r;
				i += n;
				n = 0;
				/* RFC 5322 2.1: an empty line ends the header
				 * section. */
				if (h->bol && ((h->field.len == 2 &&
				    h->field.p[0] == '\r') || h->field.len == 1)) {
					r = buf_append(out, h->field.p,
					    h->field.len);
					buf_reset(&h->field);
					h->body = true;
					if (r < 0)
						return r;
				}
			}
		}
		if (h->mode == SMTP_HEAD_PASS &&
		    (r = buf_append(out, in + i, n)) < 0)
			return r;
		i += n;
	}
	if (i < len)
		return buf_append(out, in + i, len - i);
	return 0;
}

int
smtp_head_finish(struct smtp_head *h, struct buf *out)
{
	if (h->body)
		return 0;
	return smtp_head_field_end(h, out);
}
