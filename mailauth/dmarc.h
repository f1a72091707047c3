/*
 * dmarc.h - DMARC (RFC 7489): the author domain, policy record
 * discovery through the resolver, identifier alignment of SPF and DKIM,
 * and the policy to apply.
 *
 * The organisational domain (RFC 7489 3.2) comes from the public suffix
 * list of libpsl (Debian's publicsuffix package, or libpsl's built-in
 * copy).  Pure apart from the DNS: the random source for pct= is
 * injected, so tests decide the sample.
 */
#ifndef POSTROOM_DMARC_H
#define POSTROOM_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim_verify.h"
#include "resolver.h"

/* --- The author domain (RFC 7489 3.1, 6.6.1) ----------------------------- */

enum dmarc_from {
	DMARC_FROM_OK = 0,
	DMARC_FROM_NONE,       /* no From: field */
	DMARC_FROM_MULTIPLE,   /* several From: fields, or one with several
	                        * mailboxes or none (6.6.1: refuse) */
	DMARC_FROM_BAD,        /* a From: that does not parse as a mailbox */
};

/* A short reason for a dmarc_from value other than DMARC_FROM_OK, for a
 * reply text or a log line. */
const char *dmarc_from_name(enum dmarc_from f);

/*
 * The RFC5322.From domain of the header section head[0..len) (fields
 * with their CRLFs), lower-cased into out (outsz bytes).  RFC 7489
 * 6.6.1: a message must have exactly one From: field naming exactly one
 * mailbox to be evaluated; anything else is a distinct result that the
 * caller refuses.  Returns DMARC_FROM_OK with out set, or another value
 * (out is then "").
 */
enum dmarc_from dmarc_from_domain(const uint8_t *head, size_t len, char *out,
    size_t outsz);

/*
 * The organisational domain of domain (RFC 7489 3.2): the public suffix
 * plus one label, lower-cased into out (outsz bytes); a name that is
 * itself a public suffix is its own.  Returns 0, or PR_EINVAL for an
 * empty or over-long name.
 */
int dmarc_org_domain(const char *domain, char *out, size_t outsz);

/* --- Records (RFC 7489 6.3) ------------------------------------------- */

enum dmarc_policy {
	DMARC_POLICY_NONE = 0,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};

/* "none", "quarantine", "reject". */
const char *dmarc_policy_name(enum dmarc_policy p);

struct dmarc_record {
	enum dmarc_policy p, sp;   /* sp = p when sp= is absent */
	bool strict_dkim;          /* adkim=s */
	bool strict_spf;           /* aspf=s */
	unsigned pct;              /* 0..100, default 100 */
};

/*
 * Parses the TXT record s[0..len).  Returns 0, PR_ENOENT when it is not
 * a DMARC record (v=DMARC1 is not its first tag: 6.6.3 discards it), or
 * PR_EINVAL when it is one but broken (a tag-list syntax error, p=
 * missing or unknown, a bad sp=, adkim=, aspf= or pct=) and has no
 * rua= to fall back on; with a rua= it is read as p=none (6.6.3 step 6).
 * Unknown tags are ignored (6.3).
 */
int dmarc_record_parse(const char *s, size_t len, struct dmarc_record *rec_r);

/* --- Evaluation (RFC 7489 4.2, 6.6) ----------------------------------- */

/* RFC 8601 2.7.7 words for the dmarc method. */
enum dmarc_result {
	DMARC_NONE = 0,         /* no policy record */
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,        /* the record lookup failed for now */
	DMARC_PERMERROR,        /* not given by dmarc_check(): RFC 7489
	                         * 6.6.3 applies no DMARC (none) to broken
	                         * or repeated records; for callers only */
};

const char *dmarc_result_name(enum dmarc_result r);

struct dmarc_input {
	const char *from_domain;     /* from dmarc_from_domain() */
	/* The SPF result for the identity it checked (RFC 7489 3.1.2: the
	 * MAIL FROM domain, or the HELO name for a null sender), only
	 * "pass" aligns. */
	bool spf_pass;
	const char *spf_domain;      /* NULL or "" when none */
	/* The verifier's results: each pass (not with a t=y testing key)
	 * is a DKIM identifier to align. */
	const struct dkim_verify_result *dkim;
	size_t ndkim;
};

struct dmarc_verdict {
	enum dmarc_result result;
	/* What to do with the message: the published policy (p=, or sp=
	 * for a subdomain under an organisational record) when it failed,
	 * lowered one step when pct= left it out of the sample (6.6.4);
	 * DMARC_POLICY_NONE otherwise. */
	enum dmarc_policy apply;
	enum dmarc_policy published;   /* p= or sp=, as found */
	bool sampled_out;              /* pct= spared it */
	bool spf_aligned, dkim_aligned;
	char from_domain[256];         /* header.from */
	char policy_domain[256];       /* where the record was, or "" */
	const char *reason;            /* static text, for logs */
};

/* Called once with the verdict, valid during the call only.  The
 * callback may free the evaluation. */
typedef void (*dmarc_cb)(void *data, const struct dmarc_verdict *v);

/* A source of random numbers in [0, 100) for pct= (6.6.4). */
typedef unsigned (*dmarc_rand_fn)(void *data);

struct dmarc;

/* Starts an evaluation over r (borrowed until dmarc_free()).  rnd may
 * be NULL for libsodium's randombytes_uniform(). */
int dmarc_new(struct resolver *r, dmarc_rand_fn rnd, void *rnd_data,
    struct dmarc **d_r);

/*
 * Evaluates in (copied; its strings and results are read during the
 * call only).  Looks up _dmarc.FROM and, when that has no record, the
 * organisational domain's (6.6.3).  Returns 0, and then cb runs exactly
 * once, later, from a resolver callback; or PR_EINVAL (called twice, or
 * an empty from_domain) / PR_ENOMEM, and then cb never runs.
 */
int dmarc_check(struct dmarc *d, const struct dmarc_input *in, dmarc_cb cb,
    void *data);

/* Frees d, cancelling its lookups (cb does not run then), and sets *d
 * to NULL; NULL is a no-op. */
void dmarc_free(struct dmarc **d);

/*
 * True if a and b are aligned (RFC 7489 3.1.1, 3.1.2): the same name
 * (strict), or the same organisational domain (relaxed);
 * case-insensitive.
 */
bool dmarc_aligned(const char *a, const char *b, bool strict);

#endif
