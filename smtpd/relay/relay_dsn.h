/*
 * relay_dsn.h - delivery status notifications (bounces), sans I/O.
 *
 * RFC 3464 / RFC 6522: a multipart/report; report-type=delivery-status
 * message with a human-readable part, the machine-readable
 * message/delivery-status part and the original message's header
 * (text/rfc822-headers), sent from MAILER-DAEMON with a null envelope
 * sender (RFC 5321 4.5.5) so that it can never cause another bounce.
 */
#ifndef POSTROOM_RELAY_DSN_H
#define POSTROOM_RELAY_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The original header returned at most (the rest is cut at a line). */
#define RELAY_DSN_HEAD_MAX (64 * 1024)

struct relay_dsn_rcpt {
	const char *address;    /* the failed recipient */
	const char *reply;      /* the remote's reply ("550 5.1.1 ...") or
	                           our own reason when remote_mta is NULL */
	const char *remote_mta; /* host that gave the reply, or NULL */
	const char *status;     /* RFC 3463 status for our own reasons
	                           ("5.1.10"), NULL = from the reply */
	int64_t last_attempt;   /* unix time */
};

struct relay_dsn {
	const char *hostname;    /* reporting MTA ([server] hostname) */
	const char *sender;      /* the original envelope sender (To:) */
	const char *queue_id;    /* our message id, for the admin */
	int64_t arrival;         /* when the message was queued */
	int64_t now;             /* Date: of the report */
	const char *unique;      /* random token for Message-ID/boundary */
	bool expired;            /* given up after max_queue_time */
	const struct relay_dsn_rcpt *rcpts;
	size_t n_rcpts;
	const uint8_t *orig_head; /* the original header section */
	size_t orig_head_len;
};

/* Writes the complete report message (CRLF lines) to out.  Returns 0 or
 * PR_ENOSPC/PR_ENOMEM. */
int relay_dsn_build(const struct relay_dsn *d, struct buf *out);

/* The length of the RFC 3463 2 enhanced status code that s starts with
 * ("D.D{1,3}.D{1,3}" followed by a space or the end), or 0 when it
 * starts with none. */
size_t relay_dsn_enhanced(const char *s);

/* Extracts the RFC 3463 status ("5.1.1") for a reply: its enhanced code
 * when it has one of the right class, else X.0.0 from the basic code
 * (X.4.7 when the reply is not an SMTP reply and expired is set).  out
 * needs 16 bytes. */
void relay_dsn_status(const char *reply, bool expired, char *out);

/* Formats t as an RFC 5322 date-time in UTC.  out needs 40 bytes. */
void relay_dsn_date(int64_t t, char *out, size_t outsz);

/* Length of the header section in head[0..len): up to and including the
 * empty line, or len when there is none within len. */
size_t relay_dsn_head_len(const uint8_t *head, size_t len);

#endif
