/* relay_dsn.c - RFC 3464 delivery status notifications. */
#include "relay_dsn.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"

void
relay_dsn_date(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	/* RFC 5322 3.3, in UTC so no time zone database is needed. */
	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(out, outsz, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	strftime(out, outsz, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

size_t
relay_dsn_enhanced(const char *s)
{
	size_t i = 0, part, digits;

	for (part = 0; part < 3; part++) {
		digits = 0;
		while (isdigit((unsigned char)s[i]) && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || (part == 0 && digits != 1) || digits > 3)
			return 0;
		if (part < 2) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	return (s[i] == '\0' || s[i] == ' ') ? i : 0;
}

void
relay_dsn_status(const char *reply, bool expired, char *out)
{
	size_t n;

	if (isdigit((unsigned char)reply[0]) && isdigit((unsigned char)reply[1])
	    && isdigit((unsigned char)reply[2]) &&
	    (reply[3] == ' ' || reply[3] == '\0') &&
	    (reply[0] == '4' || reply[0] == '5')) {
		/* RFC 3463 2 / RFC 2034: the class of the enhanced code
		 * matches the class of the basic one. */
		if (reply[3] == ' ' && (n = relay_dsn_enhanced(reply + 4)) > 0
		    && reply[4] == reply[0] && n < 16) {
			memcpy(out, reply + 4, n);
			out[n] = '\0';
			return;
		}
		snprintf(out, 16, "%c.0.0", reply[0]);
		return;
	}
	/* Our own reason (DNS, connection): expiry is X.4.7, "delivery
	 * time expired"; other permanent reasons say what they are in
	 * their text and default to 5.0.0. */
	snprintf(out, 16, "%s", expired ? "4.4.7" : "5.0.0");
}

size_t
relay_dsn_head_len(const uint8_t *head, size_t len)
{
	size_t i;

	if (len >= 2 && head[0] == '\r' && head[1] == '\n')
		return 2;
	for (i = 0; i + 3 < len; i++)
		if (head[i] == '\r' && head[i + 1] == '\n' &&
		    head[i + 2] == '\r' && head[i + 3] == '\n')
			return i + 4;
	return len;
}

/* A reply or reason goes into a header field and a text part: keep it on
 * one line of printable ASCII. */
static void
relay_dsn_clean(const char *in, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; in[i] != '\0' && o + 1 < outsz; i++) {
		unsigned char ch = (unsigned char)in[i];

		out[o++] = (ch < 0x20 || ch > 0x7e) ? ' ' : (char)ch;
	}
	out[o] = '\0';
}

static int
relay_dsn_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s & 0x80)
			return 0;
	return 1;
}

int
relay_dsn_build(const struct relay_dsn *d, struct buf *out)
{
	char date[64], adate[64], status[16], reply[600];
	char boundary[128];
	const struct relay_dsn_rcpt *r;
	size_t i, hl;
	int e = 0;

	relay_dsn_date(d->now, date, sizeof(date));
	relay_dsn_date(d->arrival, adate, sizeof(adate));
	snprintf(boundary, sizeof(boundary), "%s/%s", d->unique,
	    d->hostname);

	/* Auto-Submitted: RFC 3834 5, so responders do not answer it. */
	e |= buf_printf(out,
	    "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
	    "To: <%s>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s.dsn@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n"
	    "--%s\r\n"
	    "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "This is the mail system at host %s.\r\n"
	    "\r\n"
	    "I'm sorry to have to inform you that your message could not\r\n"
	    "be delivered to one or more recipients. Its header is attached\r\n"
	    "below.\r\n"
	    "\r\n"
	    "%s"
	    "The mail system\r\n"
	    "\r\n",
	    d->hostname, d->sender, date, d->unique, d->hostname, boundary,
	    boundary, d->hostname,
	    d->expired ? "The message could not be delivered within the time "
	    "limit of this server.\r\n\r\n" : "");
	for (i = 0; i < d->n_rcpts; i++) {
		r = &d->rcpts[i];
		relay_dsn_clean(r->reply, reply, sizeof(reply));
		if (r->remote_mta != NULL)
			e |= buf_printf(out, "<%s>: host %s said: %s\r\n",
			    r->address, r->remote_mta, reply);
		else
			e |= buf_printf(out, "<%s>: %s\r\n", r->address,
			    reply);
	}
	/* RFC 3464 2.2: per-message fields, then one block per
	 * recipient. */
	e |= buf_printf(out,
	    "\r\n"
	    "--%s\r\n"
	    "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; %s\r\n"
	    "X-Postroom-Queue-ID: %s\r\n"
	    "Arrival-Date: %s\r\n",
	    boundary, d->hostname, d->queue_id, adate);
	for (i = 0; i < d->n_rcpts; i++) {
		r = &d->rcpts[i];
		relay_dsn_clean(r->reply, reply, sizeof(reply));
		if (r->status != NULL && r->status[0] != '\0')
			snprintf(status, sizeof(status), "%s", r->status);
		else
			relay_dsn_status(r->reply, d->expired, status);
		relay_dsn_date(r->last_attempt, date, sizeof(date));
		/* RFC 6533 3: a UTF-8 address has the "utf-8" type. */
		e |= buf_printf(out,
		    "\r\n"
		    "Final-Recipient: %s; %s\r\n"
		    "Action: failed\r\n"
		    "Status: %s\r\n",
		    relay_dsn_ascii(r->address) ? "rfc822" : "utf-8",
		    r->address, status);
		if (r->remote_mta != NULL)
			e |= buf_printf(out,
			    "Remote-MTA: dns; %s\r\n"
			    "Diagnostic-Code: smtp; %s\r\n",
			    r->remote_mta, reply);
		else if (isdigit((unsigned char)reply[0]))
			e |= buf_printf(out, "Diagnostic-Code: smtp; %s\r\n",
			    reply);
		else
			e |= buf_printf(out,
			    "Diagnostic-Code: X-Postroom; %s\r\n", reply);
		e |= buf_printf(out, "Last-Attempt-Date: %s\r\n", date);
	}
	hl = relay_dsn_head_len(d->orig_head, d->orig_head_len);
	if (hl > RELAY_DSN_HEAD_MAX) {
		/* Cut at a line end so the part stays well-formed. */
		hl = RELAY_DSN_HEAD_MAX;
		while (hl > 0 && d->orig_head[hl - 1] != '\n')
			hl--;
	}
	/* Raw UTF-8 in the returned header (RFC 6532) is 8bit content. */
	for (i = 0; i < hl && !(d->orig_head[i] & 0x80); i++)
		;
	e |= buf_printf(out,
	    "\r\n"
	    "--%s\r\n"
	    "Content-Description: Undelivered Message Headers\r\n"
	    "Content-Type: text/rfc822-headers\r\n"
	    "%s"
	    "\r\n", boundary,
	    i < hl ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	/* The blank line that ends the original header is not part of
	 * the returned header fields. */
	while (hl >= 2 && d->orig_head[hl - 1] == '\n' &&
	    d->orig_head[hl - 2] == '\r' &&
	    (hl == 2 || d->orig_head[hl - 3] == '\n'))
		hl -= 2;
	e |= buf_append(out, d->orig_head, hl);
	if (hl > 0 && d->orig_head[hl - 1] != '\n')
		e |= buf_puts(out, "\r\n");
	e |= buf_printf(out, "\r\n--%s--\r\n", boundary);
	return e != 0 ? PR_ENOSPC : 0;
}
