/*
 * smtp_head.h - the header section of an incoming message, filtered on
 * its way to the spool: Authentication-Results fields that carry our
 * authserv-id are removed (RFC 8601 5), and the From: fields are kept
 * for DMARC (RFC 7489 6.6.1).
 *
 * Streaming and bounded: the filter is fed the message (dot-stuffing
 * undone) in chunks of any size, holds at most one header field of
 * SMTP_HEAD_FIELD_MAX octets, and passes the body through untouched.
 * A field longer than the bound is decided on its first
 * SMTP_HEAD_FIELD_MAX octets, where the authserv-id of an
 * Authentication-Results field is.  Sans-I/O.
 */
#ifndef POSTROOM_SMTP_HEAD_H
#define POSTROOM_SMTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Octets of one header field held while it is decided. */
#define SMTP_HEAD_FIELD_MAX 8192
/* Octets of From: fields kept (several fields or mailboxes are
 * refused anyway). */
#define SMTP_HEAD_FROM_MAX 8192

enum smtp_head_mode {
	SMTP_HEAD_HOLD = 0,  /* the current field is held */
	SMTP_HEAD_PASS,      /* ... passed on as it comes (too long) */
	SMTP_HEAD_DROP,      /* ... dropped (one of ours, too long) */
};

struct smtp_head {
	const char *authserv_id;   /* borrowed, outlives the filter */
	bool body;                 /* the header section has ended */
	bool bol;                  /* at the start of a line */
	enum smtp_head_mode mode;
	struct buf field;          /* the current field, CRLFs kept */
	bool field_from;           /* ... is a From: field */
	struct buf from;           /* every From: field, CRLFs kept */
	bool from_overflow;        /* a From: field did not fit */
	unsigned removed;          /* our fields removed */
};

/* Starts a filter for authserv_id.  Never fails (memory is taken as it
 * is needed, bounded). */
void smtp_head_init(struct smtp_head *h, const char *authserv_id);
void smtp_head_fini(struct smtp_head *h);

/*
 * Feeds in[0..len) and appends what goes on to the spool to out.
 * Returns 0, or PR_ENOSPC / PR_ENOMEM when out could not take it.
 */
int smtp_head_feed(struct smtp_head *h, const uint8_t *in, size_t len,
    struct buf *out);

/* The message has ended: a field still held goes out (or not).
 * Returns 0, PR_ENOSPC or PR_ENOMEM. */
int smtp_head_finish(struct smtp_head *h, struct buf *out);

#endif
