/* relay_data.c - dot-stuffing on the way out (RFC 5321 4.5.2). */
#include "relay_data.h"

#include <string.h>

#include "err.h"

void
relay_stuff_init(struct relay_stuff *s)
{
	s->bol = true;
	s->cr = false;
}

int
relay_stuff_feed(struct relay_stuff *s, const uint8_t *in, size_t len,
    struct buf *out)
{
	size_t i;
	int r;

	/* Worst case every octet doubles (".\n" lines); reserve once. */
	if ((r = buf_reserve(out, len * 2)) < 0)
		return r;
	for (i = 0; i < len; i++) {
		uint8_t ch = in[i];

		if (s->bol && ch == '.') {
			/* RFC 5321 4.5.2: "." at the start of a line is
			 * doubled, so it cannot end the data early. */
			out->p[out->len++] = '.';
		}
		if (ch == '\n' && !s->cr)
			out->p[out->len++] = '\r';
		out->p[out->len++] = ch;
		s->bol = ch == '\n';
		s->cr = ch == '\r';
	}
	return 0;
}

int
relay_stuff_end(struct relay_stuff *s, struct buf *out)
{
	int r;

	if (!s->bol && (r = buf_puts(out, s->cr ? "\n" : "\r\n")) < 0)
		return r;
	s->bol = true;
	s->cr = false;
	return buf_puts(out, ".\r\n");
}

bool
relay_data_has_8bit(const uint8_t *in, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (in[i] & 0x80)
			return true;
	return false;
}

bool
relay_data_str_8bit(const char *s)
{
	return relay_data_has_8bit((const uint8_t *)s, strlen(s));
}
