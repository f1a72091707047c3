/*
 * relay_data.h - the message as it goes on the wire, sans I/O.
 *
 * The store keeps messages with CRLF line ends and without dot-stuffing;
 * the SMTP client streams them in chunks through a relay_stuff, which
 * applies the transparency procedure of RFC 5321 4.5.2 and ends the data
 * with "<CRLF>.<CRLF>".
 */
#ifndef POSTROOM_RELAY_DATA_H
#define POSTROOM_RELAY_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct relay_stuff {
	bool bol;     /* at the beginning of a line */
	bool cr;      /* the last octet was CR */
};

void relay_stuff_init(struct relay_stuff *s);

/* Appends in[0..len) to out, dot-stuffed (a line starting with "." gets
 * another "."), with a bare LF turned into CRLF.  Chunks may split lines
 * anywhere.  Returns 0 or PR_ENOSPC/PR_ENOMEM (out may hold part of the
 * chunk then; the session is broken anyway). */
int relay_stuff_feed(struct relay_stuff *s, const uint8_t *in, size_t len,
    struct buf *out);

/* Ends the data: CRLF if the message did not end with one, then ".CRLF". */
int relay_stuff_end(struct relay_stuff *s, struct buf *out);

/* True if in[0..len) holds an octet above 127 (for BODY=8BITMIME). */
bool relay_data_has_8bit(const uint8_t *in, size_t len);

/* True if s holds an octet above 127 (an RFC 6531 UTF-8 address). */
bool relay_data_str_8bit(const char *s);

#endif
