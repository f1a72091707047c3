/*
 * dkim_body.h - the DKIM body hash (RFC 6376 3.4.3, 3.4.4, 3.7) as a
 * streaming hasher: the body is fed in chunks of any size, split
 * anywhere, and canonicalised on the fly, so neither a signer nor a
 * verifier holds a whole message in memory.
 *
 * The hash is SHA-256, the only one left (RFC 8301 3.1 retires SHA-1).
 */
#ifndef POSTROOM_DKIM_BODY_H
#define POSTROOM_DKIM_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "dkim_canon.h"

#define DKIM_BODY_HASH_LEN 32

/* No l= tag: the whole canonical body is hashed. */
#define DKIM_BODY_NO_LIMIT UINT64_MAX

struct dkim_body;

/*
 * Starts a body hash with algorithm c over at most limit octets of the
 * canonical body (the l= tag, RFC 6376 3.5), or all of it with
 * DKIM_BODY_NO_LIMIT.  Returns 0 and the hasher in *b_r, or PR_ENOMEM.
 */
int dkim_body_new(enum dkim_canon c, uint64_t limit, struct dkim_body **b_r);

/*
 * Feeds body octets p[0..len): everything after the empty line that ends
 * the header section.  Lines end in CRLF; a bare LF is taken as CRLF
 * (the message in network normal form, RFC 6376 5.3), a bare CR is
 * content.  Returns 0, or PR_ETLS when the digest fails (the hasher
 * stays failed).
 */
int dkim_body_feed(struct dkim_body *b, const uint8_t *p, size_t len);

/*
 * Ends the body: a last line without CRLF still counts, trailing empty
 * lines do not, and an empty body is "" in relaxed and CRLF in simple
 * (RFC 6376 3.4.3, 3.4.4).  Writes the hash to hash_r and, when len_r is
 * not NULL, the length of the whole canonical body, so that a verifier
 * can tell a body shorter than l= (RFC 6376 3.5: the signature fails)
 * from one with content that l= leaves out (8.2).  Returns 0 or
 * PR_ETLS.  The hasher is finished afterwards: only dkim_body_free()
 * may follow.
 */
int dkim_body_finish(struct dkim_body *b, uint8_t hash_r[DKIM_BODY_HASH_LEN],
    uint64_t *len_r);

/* Frees the hasher and sets *b to NULL; NULL is a no-op. */
void dkim_body_free(struct dkim_body **b);

#endif
