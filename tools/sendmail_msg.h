/*
 * sendmail_msg.h - what postroom-sendmail does to a message before it
 * spools it: pure functions over bytes, so unit tests drive them.
 *
 * The header section (RFC 5322 2.2) is the lines up to the first empty
 * line; a line that is neither a field nor a continuation of one ends it
 * (the rest is body, after an inserted empty line).  Line ends stay as
 * the caller wrote them; the store turns them into CRLF.
 */
#ifndef POSTROOM_SENDMAIL_MSG_H
#define POSTROOM_SENDMAIL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * Calls cb once per entry of the comma-separated list[0..len), leniently:
 * display names, comments and group names are dropped, an angle-addr's
 * route (RFC 5322 4.4 obs-route) too, and what is left is passed on
 * as written, bare local names included (sendmail(8) recipients, and
 * header fields that common/addr_list.h refuses).  A non-zero return
 * from cb stops the walk and is returned; otherwise 0.
 */
int sendmail_msg_addrs(const char *list, size_t len,
    int (*cb)(void *ctx, const char *addr), void *ctx);

struct sendmail_msg_opts {
	bool extract;          /* -t: recipients from To, Cc and Bcc */
	const char *from;      /* a From: value to add when there is none */
	const char *date;      /* a Date: value to add when there is none */
	const char *msgid;     /* a Message-ID: value likewise */
	/* -t: called per recipient found; non-zero stops with that. */
	int (*rcpt_cb)(void *ctx, const char *addr);
	void *ctx;
};

/*
 * Writes the message in[0..len) to out: the header section without Bcc
 * fields (RFC 5322 3.6.3: blind copies must not show them), From, Date
 * and Message-ID added when missing (RFC 5322 3.6 requires the first
 * two), then the body.  Returns 0, the rcpt_cb result, or PR_ENOSPC when
 * out is full.
 */
int sendmail_msg_rewrite(const uint8_t *in, size_t len,
    const struct sendmail_msg_opts *o, struct buf *out);

#endif
