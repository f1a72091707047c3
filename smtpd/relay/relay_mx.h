/*
 * relay_mx.h - choosing where a domain's mail goes, sans I/O.
 *
 * RFC 5321 5.1: MX records are tried in order of preference, with the
 * order among equal preferences randomised so load spreads; a domain
 * without MX records is its own implicit MX.  RFC 7505: a "null MX"
 * (preference 0, exchange ".") says the domain accepts no mail.
 */
#ifndef POSTROOM_RELAY_MX_H
#define POSTROOM_RELAY_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_MX_MAX 16        /* MX hosts considered per domain */
#define RELAY_HOST_MAX 256

struct relay_mx {
	unsigned pref;
	char host[RELAY_HOST_MAX]; /* "" for the null MX "." */
};

/* A random number source: returns a uniformly random value below n. */
typedef uint32_t (*relay_mx_rand_fn)(void *ctx, uint32_t n);

/* Sorts mx[0..n) by preference, shuffling runs of equal preference with
 * rnd (Fisher-Yates), so the first entry is the one to try first. */
void relay_mx_sort(struct relay_mx *mx, size_t n, relay_mx_rand_fn rnd,
    void *ctx);

/* True if the set is a null MX (RFC 7505 3: a single record with
 * exchange "."; a "." among other records is treated the same, as the
 * domain says it takes no mail). */
bool relay_mx_is_null(const struct relay_mx *mx, size_t n);

/* Parses "host", "host:port", "[v6]:port" or "ip" into host (size
 * RELAY_HOST_MAX) and *port (left alone when the text has none).
 * Returns 0 or PR_EINVAL. */
int relay_mx_parse_hostport(const char *s, char *host, unsigned *port);

#endif
