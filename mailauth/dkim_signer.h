/*
 * dkim_signer.h - a streaming DKIM signer (RFC 6376 3.5, 3.7, 5; RFC
 * 8463 for Ed25519).
 *
 * The whole message (header and body, CRLF lines) is fed in chunks of
 * any size; the body is hashed as it comes and only the header section
 * is kept.  finish() then gives the DKIM-Signature field to prepend.
 * Signatures are relaxed/relaxed unless dkim_signer_set_canon() says
 * otherwise; the fields signed are those RFC 6376 5.4.1 recommends, with
 * the ones that may occur once oversigned (8.15).
 */
#ifndef POSTROOM_DKIM_SIGNER_H
#define POSTROOM_DKIM_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dkim_canon.h"
#include "dkim_key.h"
#include "err.h"

/* Header section signed at most; a longer one is sent unsigned. */
#define DKIM_SIGNER_HEAD_MAX (1024 * 1024)

struct dkim_signer;

/* Starts a signature with key k, which is borrowed until
 * dkim_signer_free().  Returns 0 and the signer in *s_r, or PR_ENOMEM. */
int dkim_signer_new(const struct dkim_key *k, struct dkim_signer **s_r);

/* Chooses the header and body canonicalisation (the c= tag).  Only
 * before the first dkim_signer_feed(); returns 0, or PR_EINVAL after. */
int dkim_signer_set_canon(struct dkim_signer *s, enum dkim_canon hdr,
    enum dkim_canon body);

/* Feeds message octets p[0..len).  Returns 0, PR_ENOSPC when the header
 * section exceeds DKIM_SIGNER_HEAD_MAX, or PR_ENOMEM / PR_ETLS; after an
 * error the signer is unusable (finish fails too). */
int dkim_signer_feed(struct dkim_signer *s, const uint8_t *p, size_t len);

/* Appends "DKIM-Signature: ...\r\n" (folded at 76 columns), with t= set
 * to now (seconds since the epoch), to out.  A message without an empty
 * line is all header with an empty body.  Returns 0, or an error with
 * err set (out unchanged): PR_ENOSPC after a failed feed, PR_EINVAL when
 * called a second time. */
int dkim_signer_finish(struct dkim_signer *s, int64_t now, struct buf *out,
    struct pr_err *err);

/* Frees the signer and sets *s to NULL; NULL is a no-op. */
void dkim_signer_free(struct dkim_signer **s);

#endif
