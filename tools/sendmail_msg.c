/* sendmail_msg.c - header rewriting and address lists (sendmail_msg.h). */
#include "sendmail_msg.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "addr_list.h"
#include "err.h"

struct sendmail_msg_tok {
	char plain[ADDR_MAX];
	size_t n_plain;
	char angle[ADDR_MAX];
	size_t n_angle;
	bool has_angle;
	bool overflow;
};

static int
sendmail_msg_flush(struct sendmail_msg_tok *t,
    int (*cb)(void *ctx, const char *addr), void *ctx)
{
	const char *a;
	char *colon;
	int r = 0;

	if (t->has_angle) {
		t->angle[t->n_angle] = '\0';
		a = t->angle;
		/* obs-route: "<@relay,@relay:user@domain>". */
		if (a[0] == '@' && (colon = strchr(t->angle, ':')) != NULL)
			a = colon + 1;
	} else {
		t->plain[t->n_plain] = '\0';
		a = t->plain;
	}
	if (*a != '\0' && !t->overflow)
		r = cb(ctx, a);
	memset(t, 0, sizeof(*t));
	return r;
}

static void
sendmail_msg_put(struct sendmail_msg_tok *t, bool angle, char c)
{
	char *p = angle ? t->angle : t->plain;
	size_t *n = angle ? &t->n_angle : &t->n_plain;

	if (*n + 1 >= ADDR_MAX) {
		t->overflow = true;
		return;
	}
	p[(*n)++] = c;
}

int
sendmail_msg_addrs(const char *list, size_t len,
    int (*cb)(void *ctx, const char *addr), void *ctx)
{
	struct sendmail_msg_tok t;
	bool angle = false, quoted = false;
	int depth = 0, r;
	size_t i;
	char c;

	memset(&t, 0, sizeof(t));
	for (i = 0; i < len; i++) {
		c = list[i];
		if (depth > 0) {
			/* RFC 5322 3.2.2: comments nest, with quoted-pairs. */
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (quoted) {
			if (c == '\\' && i + 1 < len) {
				sendmail_msg_put(&t, angle, c);
				c = list[++i];
			} else if (c == '"')
				quoted = false;
			sendmail_msg_put(&t, angle, c);
			continue;
		}
		switch (c) {
		case '"':
			quoted = true;
			sendmail_msg_put(&t, angle, c);
			break;
		case '(':
			depth = 1;
			break;
		case '<':
			angle = true;
			t.has_angle = true;
			t.n_angle = 0;
			break;
		case '>':
			angle = false;
			break;
		case ':':
			if (angle) {
				sendmail_msg_put(&t, angle, c);
				break;
			}
			/* RFC 5322 3.4: "group: a, b;" - the name goes. */
			memset(&t, 0, sizeof(t));
			break;
		case ',':
		case ';':
			if (angle) {
				sendmail_msg_put(&t, angle, c);
				break;
			}
			if ((r = sendmail_msg_flush(&t, cb, ctx)) != 0)
				return r;
			break;
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			break;
		default:
			sendmail_msg_put(&t, angle, c);
		}
	}
	return sendmail_msg_flush(&t, cb, ctx);
}

#define SENDMAIL_MSG_FIELD_ADDRS 1000

/*
 * The recipients of one To, Cc or Bcc field value: the strict RFC 5322
 * parser of common/addr_list first; a value it refuses, most often a
 * bare local name ("To: root", as cron writes it, which sendmail(8)
 * has always accepted), goes through the lenient splitter above.
 */
static int
sendmail_msg_field(const uint8_t *v, size_t len,
    int (*cb)(void *ctx, const char *addr), void *ctx)
{
	char (*out)[ADDR_MAX];
	char *u;
	size_t n = 0, j = 0;
	int r = 0;

	/* RFC 5322 2.2.3: unfolding removes the CRLFs. */
	if ((u = malloc(len + 1)) == NULL)
		return PR_ENOMEM;
	for (size_t i = 0; i < len; i++)
		if (v[i] != '\r' && v[i] != '\n')
			u[j++] = (char)v[i];
	u[j] = '\0';
	out = malloc(SENDMAIL_MSG_FIELD_ADDRS * sizeof(*out));
	if (out == NULL) {
		free(u);
		return PR_ENOMEM;
	}
	if (addr_list_parse(u, j, out, SENDMAIL_MSG_FIELD_ADDRS, &n) == 0) {
		for (size_t i = 0; i < n && r == 0; i++)
			r = cb(ctx, out[i]);
	} else
		r = sendmail_msg_addrs(u, j, cb, ctx);
	free(out);
	free(u);
	return r;
}

/* Length of the field name of line[0..len) up to its colon, or 0 when
 * the line is not a field (RFC 5322 3.6.8: printable but colon). */
static size_t
sendmail_msg_name_len(const uint8_t *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (line[i] == ':')
			return i;
		if (line[i] < 33 || line[i] > 126)
			return 0;
	}
	return 0;
}

static bool
sendmail_msg_is(const uint8_t *line, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp((const char *)line, name,
	    n) == 0;
}

/* A complete field f[0..flen) whose name is namelen octets: its
 * recipients to rcpt_cb with -t, then the field itself to out unless it
 * is Bcc.  Returns 0, the rcpt_cb result or PR_ENOSPC. */
static int
sendmail_msg_field_end(const uint8_t *f, size_t flen, size_t namelen,
    const struct sendmail_msg_opts *o, struct buf *out)
{
	bool bcc = sendmail_msg_is(f, namelen, "Bcc");
	int r;

	if (o->extract && (bcc || sendmail_msg_is(f, namelen, "To") ||
	    sendmail_msg_is(f, namelen, "Cc")) &&
	    (r = sendmail_msg_field(f + namelen + 1, flen - namelen - 1,
	    o->rcpt_cb, o->ctx)) != 0)
		return r;
	if (!bcc && buf_append(out, f, flen) < 0)
		return PR_ENOSPC;
	return 0;
}

int
sendmail_msg_rewrite(const uint8_t *in, size_t len,
    const struct sendmail_msg_opts *o, struct buf *out)
{
	size_t off = 0, end, next, n, fstart = 0, flen = 0, namelen = 0;
	bool has_from = false, has_date = false, has_msgid = false;
	bool in_field = false;
	const uint8_t *nl;
	int r = 0;

	/* Pass 1: the header section, field by field.  A field ends where
	 * the next line does not start with SP or HTAB (RFC 5322 2.2.3). */
	while (off < len) {
		nl = memchr(in + off, '\n', len - off);
		next = nl != NULL ? (size_t)(nl - in) + 1 : len;
		end = next;
		if (end > off && in[end - 1] == '\n')
			end--;
		if (end > off && in[end - 1] == '\r')
			end--;
		if (in_field && end > off && (in[off] == ' ' ||
		    in[off] == '\t')) {
			flen = next - fstart;
			off = next;
			continue;
		}
		/* The field before this line is complete. */
		if (in_field) {
			if ((r = sendmail_msg_field_end(in + fstart, flen,
			    namelen, o, out)) != 0)
				return r;
			in_field = false;
		}
		if (end == off) {
			off = next;
			break;
		}
		if ((n = sendmail_msg_name_len(in + off, end - off)) == 0) {
			/* Not a field: the body starts here. */
			break;
		}
		has_from |= sendmail_msg_is(in + off, n, "From");
		has_date |= sendmail_msg_is(in + off, n, "Date");
		has_msgid |= sendmail_msg_is(in + off, n, "Message-ID");
		in_field = true;
		fstart = off;
		namelen = n;
		flen = next - off;
		off = next;
	}
	if (in_field) {
		if ((r = sendmail_msg_field_end(in + fstart, flen, namelen, o,
		    out)) != 0)
			return r;
		/* A last field without a line end. */
		if (in[fstart + flen - 1] != '\n' && buf_puts(out, "\n") < 0)
			return PR_ENOSPC;
	}
	if (!has_from && o->from != NULL)
		r |= buf_printf(out, "From: %s\n", o->from);
	if (!has_date && o->date != NULL)
		r |= buf_printf(out, "Date: %s\n", o->date);
	if (!has_msgid && o->msgid != NULL)
		r |= buf_printf(out, "Message-ID: %s\n", o->msgid);
	r |= buf_puts(out, "\n");
	if (r != 0 || buf_append(out, in + off, len - off) < 0)
		return PR_ENOSPC;
	return 0;
}
