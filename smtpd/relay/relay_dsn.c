/* relay_dsn.c - RFC 3464 delivery status notifications. */
#include "relay_dsn.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dsn.h"
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

/* What the report says about its gravest action. */
static const struct relay_dsn_kind {
	const char *subject;
	const char *intro;
} relay_dsn_kinds[] = {
	[RELAY_DSN_FAILED] = { "Undelivered Mail Returned to Sender",
	    "I'm sorry to have to inform you that your message could not\r\n"
	    "be delivered to one or more recipients." },
	[RELAY_DSN_DELAYED] = { "Delayed Mail (still being retried)",
	    "Your message could not be delivered yet to one or more\r\n"
	    "recipients. It is still being retried; you do not need to\r\n"
	    "send it again." },
	[RELAY_DSN_DELIVERED] = { "Successful Mail Delivery Report",
	    "Your message was successfully delivered to the destination(s)\r\n"
	    "listed below." },
	[RELAY_DSN_RELAYED] = { "Successful Mail Delivery Report",
	    "Your message was successfully delivered to the destination(s)\r\n"
	    "listed below." },
};

static const char *const relay_dsn_actions[] = {
	[RELAY_DSN_FAILED] = "failed",
	[RELAY_DSN_DELAYED] = "delayed",
	[RELAY_DSN_DELIVERED] = "delivered",
	[RELAY_DSN_RELAYED] = "relayed",
};

static int
relay_dsn_action(const struct relay_dsn_rcpt *r)
{
	return r->action >= RELAY_DSN_FAILED && r->action <= RELAY_DSN_RELAYED
	    ? r->action : RELAY_DSN_FAILED;
}

/* The human-readable line of one recipient. */
static int
relay_dsn_text_rcpt(struct buf *out, const struct relay_dsn_rcpt *r)
{
	char reply[600];

	relay_dsn_clean(r->reply != NULL ? r->reply : "", reply,
	    sizeof(reply));
	switch (relay_dsn_action(r)) {
	case RELAY_DSN_DELIVERED:
		return buf_printf(out, "<%s>: delivered to mailbox\r\n",
		    r->address);
	case RELAY_DSN_RELAYED:
		return buf_printf(out, "<%s>: delivery via %s: %s\r\n",
		    r->address, r->remote_mta != NULL ? r->remote_mta :
		    "a server without delivery notifications", reply);
	default:
		if (r->remote_mta != NULL)
			return buf_printf(out, "<%s>: host %s said: %s\r\n",
			    r->address, r->remote_mta, reply);
		return buf_printf(out, "<%s>: %s\r\n", r->address, reply);
	}
}

/* The per-recipient fields (RFC 3464 2.3) of one recipient. */
static int
relay_dsn_fields_rcpt(const struct relay_dsn *d, struct buf *out,
    const struct relay_dsn_rcpt *r)
{
	char date[64], status[16], reply[600];
	int action = relay_dsn_action(r), e = 0;

	relay_dsn_clean(r->reply != NULL ? r->reply : "", reply,
	    sizeof(reply));
	if (r->status != NULL && r->status[0] != '\0')
		snprintf(status, sizeof(status), "%s", r->status);
	else if (action == RELAY_DSN_DELIVERED ||
	    action == RELAY_DSN_RELAYED)
		snprintf(status, sizeof(status), "2.0.0");
	else
		relay_dsn_status(reply, d->expired, status);
	/* A delay is not final: its status stays of class 4. */
	if (action == RELAY_DSN_DELAYED)
		status[0] = '4';
	e |= buf_puts(out, "\r\n");
	/* RFC 3464 2.3.1: the ORCPT as given, addr-type first. */
	if (r->orcpt != NULL && r->orcpt[0] != '\0')
		e |= buf_printf(out, "Original-Recipient: %s\r\n", r->orcpt);
	/* RFC 6533 3: a UTF-8 address has the "utf-8" type. */
	e |= buf_printf(out,
	    "Final-Recipient: %s; %s\r\n"
	    "Action: %s\r\n"
	    "Status: %s\r\n",
	    relay_dsn_ascii(r->address) ? "rfc822" : "utf-8", r->address,
	    relay_dsn_actions[action], status);
	if (r->remote_mta != NULL)
		e |= buf_printf(out, "Remote-MTA: dns; %s\r\n",
		    r->remote_mta);
	if (reply[0] == '\0')
		;
	else if (r->remote_mta != NULL || isdigit((unsigned char)reply[0]))
		e |= buf_printf(out, "Diagnostic-Code: smtp; %s\r\n", reply);
	else
		e |= buf_printf(out, "Diagnostic-Code: X-Postroom; %s\r\n",
		    reply);
	relay_dsn_date(r->last_attempt, date, sizeof(date));
	e |= buf_printf(out, "Last-Attempt-Date: %s\r\n", date);
	return e;
}

/* Whether the machine-readable part must be the RFC 6533 kind: the
 * message was SMTPUTF8, or an address in the report is UTF-8. */
static bool
relay_dsn_global(const struct relay_dsn *d)
{
	size_t i;

	if (d->utf8 || !relay_dsn_ascii(d->sender) ||
	    (d->envid != NULL && !relay_dsn_ascii(d->envid)))
		return true;
	for (i = 0; i < d->n_rcpts; i++)
		if (!relay_dsn_ascii(d->rcpts[i].address) ||
		    (d->rcpts[i].orcpt != NULL &&
		    !relay_dsn_ascii(d->rcpts[i].orcpt)))
			return true;
	return false;
}

/* The third part: the original header, or the whole message. */
static int
relay_dsn_returned(const struct relay_dsn *d, struct buf *out,
    const char *boundary, bool global)
{
	size_t i, hl;
	bool eight;
	int e = 0;

	hl = d->full ? d->orig_head_len :
	    relay_dsn_head_len(d->orig_head, d->orig_head_len);
	if (!d->full && hl > RELAY_DSN_HEAD_MAX) {
		/* Cut at a line end so the part stays well-formed. */
		hl = RELAY_DSN_HEAD_MAX;
		while (hl > 0 && d->orig_head[hl - 1] != '\n')
			hl--;
	}
	/* Raw UTF-8 (RFC 6532) or 8-bit content is 8bit. */
	for (i = 0; i < hl && !(d->orig_head[i] & 0x80); i++)
		;
	eight = i < hl;
	if (d->full)
		/* RFC 6533 6.3 message/global for an 8-bit header. */
		e |= buf_printf(out,
		    "\r\n"
		    "--%s\r\n"
		    "Content-Description: Undelivered Message\r\n"
		    "Content-Type: %s\r\n"
		    "%s"
		    "\r\n", boundary,
		    global && eight ? "message/global" : "message/rfc822",
		    eight ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	else
		/* RFC 6533 6.4 message/global-headers. */
		e |= buf_printf(out,
		    "\r\n"
		    "--%s\r\n"
		    "Content-Description: Message Headers\r\n"
		    "Content-Type: %s\r\n"
		    "%s"
		    "\r\n", boundary,
		    global && eight ? "message/global-headers" :
		    "text/rfc822-headers",
		    eight ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	/* The blank line that ends the original header is not part of
	 * the returned header fields. */
	while (!d->full && hl >= 2 && d->orig_head[hl - 1] == '\n' &&
	    d->orig_head[hl - 2] == '\r' &&
	    (hl == 2 || d->orig_head[hl - 3] == '\n'))
		hl -= 2;
	e |= buf_append(out, d->orig_head, hl);
	if (hl > 0 && d->orig_head[hl - 1] != '\n')
		e |= buf_puts(out, "\r\n");
	e |= buf_printf(out, "\r\n--%s--\r\n", boundary);
	return e;
}

int
relay_dsn_build(const struct relay_dsn *d, struct buf *out)
{
	char date[64], adate[64], boundary[128], envid[DSN_ENVID_MAX + 1];
	const struct relay_dsn_kind *k;
	size_t i;
	int e = 0, worst = RELAY_DSN_RELAYED;
	bool global = relay_dsn_global(d);

	for (i = 0; i < d->n_rcpts; i++)
		if (relay_dsn_action(&d->rcpts[i]) < worst)
			worst = relay_dsn_action(&d->rcpts[i]);
	k = &relay_dsn_kinds[worst];
	relay_dsn_date(d->now, date, sizeof(date));
	relay_dsn_date(d->arrival, adate, sizeof(adate));
	snprintf(boundary, sizeof(boundary), "%s/%s", d->unique,
	    d->hostname);

	/* Auto-Submitted: RFC 3834 5, so responders do not answer it. */
	e |= buf_printf(out,
	    "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
	    "To: <%s>\r\n"
	    "Subject: %s\r\n"
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
	    "Content-Type: text/plain; charset=%s\r\n"
	    "%s"
	    "\r\n"
	    "This is the mail system at host %s.\r\n"
	    "\r\n"
	    "%s%s\r\n"
	    "\r\n"
	    "%s"
	    "The mail system\r\n"
	    "\r\n",
	    d->hostname, d->sender, k->subject, date, d->unique, d->hostname,
	    boundary, boundary, global ? "utf-8" : "us-ascii",
	    global ? "Content-Transfer-Encoding: 8bit\r\n" : "",
	    d->hostname, k->intro, worst == RELAY_DSN_FAILED ?
	    (d->full ? " It is attached below." :
	    " Its header is attached below.") : "",
	    d->expired ? "The message could not be delivered within the time "
	    "limit of this server.\r\n\r\n" : "");
	for (i = 0; i < d->n_rcpts; i++)
		e |= relay_dsn_text_rcpt(out, &d->rcpts[i]);
	/* RFC 3464 2.2: per-message fields, then one block per
	 * recipient; RFC 6533 3 the global kind for UTF-8 addresses. */
	e |= buf_printf(out,
	    "\r\n"
	    "--%s\r\n"
	    "Content-Description: Delivery report\r\n"
	    "Content-Type: message/%sdelivery-status\r\n"
	    "%s"
	    "\r\n", boundary, global ? "global-" : "",
	    global ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (d->envid != NULL && d->envid[0] != '\0') {
		relay_dsn_clean(d->envid, envid, sizeof(envid));
		e |= buf_printf(out, "Original-Envelope-Id: %s\r\n", envid);
	}
	e |= buf_printf(out,
	    "Reporting-MTA: dns; %s\r\n"
	    "Arrival-Date: %s\r\n"
	    "X-Postroom-Queue-ID: %s\r\n",
	    d->hostname, adate, d->queue_id);
	for (i = 0; i < d->n_rcpts; i++)
		e |= relay_dsn_fields_rcpt(d, out, &d->rcpts[i]);
	e |= relay_dsn_returned(d, out, boundary, global);
	return e != 0 ? PR_ENOSPC : 0;
}
