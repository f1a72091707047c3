/*
 * msgid.h - the Message-ID of a message's header (RFC 5322 3.6.4), for
 * the trace of a message (postroom trace <message-id>).
 *
 * Pure: reads only the bytes given.
 */
#ifndef POSTROOM_MSGID_H
#define POSTROOM_MSGID_H

#include <stddef.h>
#include <stdint.h>

/* Longest Message-ID kept, brackets included; a longer one is cut off
 * and not found (RFC 5322 2.1.1: a line is at most 998 octets). */
#define MSGID_MAX 256

/*
 * Looks for the first Message-ID field in the header at p[0..len) (which
 * may be only the start of a message: the header ends at an empty line
 * or at len), unfolding it (RFC 5322 2.2.3).  On success writes the
 * "<id-left@id-right>" token, without comments or white space, into
 * out (MSGID_MAX octets) and returns 1; returns 0 when there is no such
 * field or it holds no well-formed token (then out is "").
 */
int msgid_find(const uint8_t *p, size_t len, char out[MSGID_MAX]);

#endif
