/*
 * relay_dsn.h - delivery status notifications, sans I/O: bounces, delay
 * warnings and success reports, built from stored data only.
 *
 * RFC 3464 / RFC 6522: a multipart/report; report-type=delivery-status
 * message with a human-readable part, the machine-readable
 * message/delivery-status part (message/global-delivery-status when an
 * address in it is UTF-8, RFC 6533 3) and the original message's header
 * (text/rfc822-headers; message/global-headers for a UTF-8 one) or, for
 * a failure with RET=FULL (RFC 3461 4.3), the whole message, sent from
 * MAILER-DAEMON with a null envelope sender (RFC 5321 4.5.5) so that it
 * can never cause another report.  One report may carry recipients of
 * different actions (RFC 3464 2.3.3); its subject names the gravest.
 */
#ifndef POSTROOM_RELAY_DSN_H
#define POSTROOM_RELAY_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The original header returned at most (the rest is cut at a line). */
#define RELAY_DSN_HEAD_MAX (64 * 1024)

/* The whole message is returned (RET=FULL) up to this size; a bigger
 * one is returned as its header. */
#define RELAY_DSN_FULL_MAX (1024 * 1024)

/* RFC 3464 2.3.3 Action values, gravest first. */
enum relay_dsn_action {
	RELAY_DSN_FAILED = 0,
	RELAY_DSN_DELAYED,
	RELAY_DSN_DELIVERED,
	RELAY_DSN_RELAYED,      /* to a host without DSN (RFC 3461 5.2.2.2) */
};

struct relay_dsn_rcpt {
	const char *address;    /* the recipient reported on */
	int action;             /* enum relay_dsn_action */
	const char *orcpt;      /* ORCPT= "addr-type;address", NULL or "" =
	                           none (RFC 3464 2.3.1) */
	const char *reply;      /* the remote's reply ("550 5.1.1 ...") or
	                           our own reason when remote_mta is NULL;
	                           NULL for a delivered one */
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
	const char *envid;       /* ENVID=, NULL or "" = none (RFC 3464
	                            2.2.1) */
	bool utf8;               /* SMTPUTF8 message: global types */
	bool full;               /* orig_head is the whole message, to be
	                            returned as it is (RET=FULL) */
	const struct relay_dsn_rcpt *rcpts;
	size_t n_rcpts;
	const uint8_t *orig_head; /* the original header section (or the
	                             whole message with full) */
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
