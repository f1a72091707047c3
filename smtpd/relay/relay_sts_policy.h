/*
 * relay_sts_policy.h - MTA-STS (RFC 8461) without I/O: the _mta-sts TXT
 * record (3.1), the policy file (3.2) and MX host matching (4.1).
 *
 * The glue (relay_sts.c) fetches and caches; this parses what it got,
 * bounded, from untrusted input: the TXT record from DNS and the policy
 * from an HTTPS server of the recipient domain.
 */
#ifndef POSTROOM_RELAY_STS_POLICY_H
#define POSTROOM_RELAY_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay_mx.h"

/* RFC 8461 3.3: a policy body of more than 64 KiB is refused. */
#define STS_POLICY_MAX (64 * 1024)
/* RFC 8461 3.1: id = 1*32(ALPHA / DIGIT). */
#define STS_ID_MAX 32
/* RFC 8461 3.2: max_age = 1*10DIGIT, at most 31557600 (about a year). */
#define STS_MAX_AGE_MAX 31557600
/* mx lines kept per policy; more make the policy invalid. */
#define STS_MX_MAX 32

enum sts_mode {
	STS_MODE_NONE = 0,
	STS_MODE_TESTING,
	STS_MODE_ENFORCE,
};

struct sts_policy {
	enum sts_mode mode;
	int64_t max_age;
	size_t n_mx;
	/* Lower case, without a trailing dot; "*.example.net" for a
	 * wildcard (4.1). */
	char mx[STS_MX_MAX][RELAY_HOST_MAX];
};

/*
 * The records of a TXT answer at _mta-sts.DOMAIN, each already joined
 * from its character-strings (recs[i], lens[i]), into id (NUL-terminated,
 * STS_ID_MAX + 1 octets).  RFC 8461 3.1: records that do not begin with
 * "v=STSv1;" are not ours; of the rest exactly one must be there and
 * valid.  Returns 0 with id set, or PR_EINVAL (no policy) with why (a
 * short text, static) in *why_r.
 */
int sts_txt_parse(const char *const *recs, const size_t *lens, size_t n,
    char id[STS_ID_MAX + 1], const char **why_r);

/*
 * Parses a policy file (RFC 8461 3.2) of len octets (not NUL-terminated,
 * at most STS_POLICY_MAX) into p.  Lines end in LF or CRLF; the first
 * of each key counts (mx may repeat); unknown keys are ignored.  version
 * must be STSv1, mode one of enforce, testing, none, max_age a number up
 * to STS_MAX_AGE_MAX, and enforce and testing need an mx.  Returns 0, or
 * PR_EINVAL with a reason in why (whysz octets).
 */
int sts_policy_parse(const char *text, size_t len, struct sts_policy *p,
    char *why, size_t whysz);

/* True if host (an MX host name, any case, a trailing dot allowed)
 * matches one of p's mx patterns: equal, or for "*.d" one label more
 * than d (RFC 8461 4.1: the wildcard stands for the leftmost label
 * only). */
bool sts_mx_match(const struct sts_policy *p, const char *host);

/* "enforce", "testing", "none". */
const char *sts_mode_name(enum sts_mode mode);

#endif
