/*
 * smtp_data.h - the message reader for DATA and BDAT (sans-I/O).
 *
 * A byte-at-a-time state machine that turns the octets a client sends after
 * DATA (or inside BDAT chunks) into the stored message.  It never blocks and
 * never allocates; the caller hands it an output buffer and spools the output
 * whenever it fills up.
 *
 * The reader is strict about line endings (RFC 5321 2.3.8): the only line
 * terminator is CRLF and the only end of DATA is CRLF "." CRLF.  A bare CR
 * or a bare LF does not end a line and never starts the end-of-data
 * sequence; it marks the message bad, and the reader keeps consuming until
 * the real end so that the caller can reject the whole message.  This is
 * what defeats SMTP smuggling ("\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n"):
 * there is exactly one way to end a message, the same one every RFC-abiding
 * MTA in front of us uses.
 *
 * Once a message is bad (bare CR/LF, a line over the limit) or too big, the
 * reader stops producing output: nothing of it will be delivered.
 */
#ifndef POSTROOM_SMTP_DATA_H
#define POSTROOM_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
#define SMTP_DATA_LINE_MAX 1000

enum smtp_data_mode {
	SMTP_DATA_DOT,   /* DATA: dot-stuffed, ends with CRLF.CRLF */
	SMTP_DATA_CHUNK, /* BDAT (RFC 3030): raw octets, framing by count */
};

struct smtp_data {
	enum smtp_data_mode mode;
	uint8_t st;         /* SMTP_DATA_S_* in smtp_data.c */
	bool bare_eol;      /* a bare CR or LF was seen */
	bool long_line;     /* a line exceeded line_max */
	bool too_big;       /* size exceeded size_max */
	bool discard;       /* the caller gave up on this message */
	uint64_t size;      /* octets of the message so far (unstuffed) */
	uint64_t size_max;
	size_t line_len;    /* octets of the current line so far */
	size_t line_max;
	/* Header section scan (RFC 5322 2.2): which fields are present. */
	bool in_header;
	bool has_msgid, has_date;
	uint8_t hdr_len;    /* octets of the current field name collected */
	char hdr[12];
	/* When not NULL (set after smtp_data_init), the unfolded values of
	 * the From: and Sender: fields are appended here, separated by
	 * ",", up to fields->max: RFC 5322 3.6.2 address lists, read
	 * whole.  fields_overflow: they did not fit. */
	struct buf *fields;
	bool fields_overflow;
	bool in_field;      /* inside a From: or Sender: value */
};

/* Starts reading a new message.  size_max bounds the (unstuffed) size;
 * line_max the octets of one line including CRLF. */
void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode,
    uint64_t size_max, size_t line_max);

/*
 * Reads in[0..len) and appends the message octets to out (dot-stuffing
 * undone, RFC 5321 4.5.2).  Stops early when out is full (out->max).
 * Sets *consumed_r to the input octets used.  Returns 1 when the end of
 * data (CRLF.CRLF, DOT mode only) was consumed, 0 when more input is needed
 * or out is full (compare *consumed_r with len), or PR_ENOMEM.
 */
int smtp_data_feed(struct smtp_data *d, const uint8_t *in, size_t len,
    size_t *consumed_r, struct buf *out);

/*
 * Ends a CHUNK-mode message (BDAT LAST).  A CR left pending at the end is a
 * bare CR; a last line without CRLF gets one appended so that every stored
 * message is made of CRLF lines.  Returns 0, PR_ENOSPC when out has no room
 * for the two octets (spool and call again) or PR_ENOMEM.
 */
int smtp_data_finish(struct smtp_data *d, struct buf *out);

/* Stops producing output for this message (the caller could not store it);
 * the reader still finds the end. */
void smtp_data_discard(struct smtp_data *d);

/* True when the message may be delivered (no bare CR/LF, no long line, not
 * too big, not discarded). */
bool smtp_data_ok(const struct smtp_data *d);

#endif
