/*
 * dkim_keycache.h - DKIM public keys as decoded, kept for the TTL of
 * their key record (RFC 6376 3.6.2), so that the mail of one signer
 * costs one key decoding, not one per message.
 *
 * Keyed by the record's name, <selector>._domainkey.<domain> (RFC 6376
 * 3.6.2.1), without regard to case (RFC 4343).  Only keys that decoded
 * are kept; a missing or broken record is the DNS cache's business
 * (common/dns_cache.h keeps negative answers).  A key handed out holds a
 * reference of its own (EVP_PKEY_up_ref), so an entry that expires or
 * is pushed out while a verifier uses its key frees nothing in use.
 * The cache locks itself: any thread may verify with it.
 */
#ifndef POSTROOM_DKIM_KEYCACHE_H
#define POSTROOM_DKIM_KEYCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim_verify.h"

/* Keys kept at most (an RSA-2048 key is about 2 KiB decoded); the
 * least recently used goes first. */
#define DKIM_KEYCACHE_ENTRIES 256
/* A record's TTL is honoured up to a day. */
#define DKIM_KEYCACHE_TTL_MAX 86400

struct dkim_keycache;

/* Milliseconds of a clock that does not go back; tests pass their own. */
typedef uint64_t (*dkim_keycache_clock)(void);

/* Makes a cache of at most max keys (0: DKIM_KEYCACHE_ENTRIES) with
 * clock (NULL: CLOCK_MONOTONIC).  Returns NULL when out of memory. */
struct dkim_keycache *dkim_keycache_new(size_t max, dkim_keycache_clock clock);

/* Frees the cache and its references to the keys, and sets *c to NULL;
 * NULL is a no-op.  Keys handed out stay valid. */
void dkim_keycache_free(struct dkim_keycache **c);

/*
 * Looks up the key of the record name.  Returns true and the key in *k
 * (with a reference of its own: the caller releases it with
 * dkim_verify_key_fini()) while its TTL lasts; false when there is none
 * or it has expired (then it is dropped).
 */
bool dkim_keycache_get(struct dkim_keycache *c, const char *name,
    struct dkim_verify_key *k);

/* Keeps k (a reference of the cache's own; the caller keeps its own)
 * under name for ttl seconds (at most DKIM_KEYCACHE_TTL_MAX; 0 keeps
 * nothing, RFC 1035 3.2.1), replacing a key kept before. */
void dkim_keycache_put(struct dkim_keycache *c, const char *name,
    const struct dkim_verify_key *k, uint32_t ttl);

/* Keys kept now. */
size_t dkim_keycache_count(struct dkim_keycache *c);

#endif
