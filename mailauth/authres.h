/*
 * authres.h - the Authentication-Results header field (RFC 8601): the
 * one smtpd prepends to a message it accepts on the MX listener, and the
 * test for incoming ones that claim to be ours (RFC 8601 5).
 *
 *   Authentication-Results: mx.example.org;
 *   	spf=pass smtp.mailfrom=alice@example.com;
 *   	dkim=pass header.d=example.com header.s=sel header.b=AbCdEfGh;
 *   	dmarc=pass header.from=example.com;
 *   	iprev=pass policy.iprev=192.0.2.1
 *
 * Each resinfo starts a line of its own, folded further before a
 * property that would pass 78 columns (RFC 5322 2.1.1).  Values that
 * are not a token (RFC 2045 5.1) or local-part@domain are sent as a
 * quoted-string (RFC 8601 2.2).
 *
 * Pure: no I/O; output goes into a caller's bounded buffer.
 */
#ifndef POSTROOM_AUTHRES_H
#define POSTROOM_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dkim_verify.h"
#include "dmarc.h"

/* One property: ptype.property=value (RFC 8601 2.2). */
struct authres_prop {
	const char *ptype;      /* "smtp", "header", "policy" */
	const char *property;   /* "mailfrom", "d", "iprev" */
	const char *value;
};

/* A field being built into out. */
struct authres {
	struct buf *out;
	size_t start;           /* out->len at authres_begin() */
	size_t col;             /* the column of the current line */
	unsigned n;             /* resinfos so far */
	int err;                /* the first error, 0 if none */
};

/*
 * Starts the field "Authentication-Results: AUTHSERV-ID" in out, the
 * authserv-id being the server's hostname (RFC 8601 2.5).  Errors are
 * kept in a->err and reported by authres_finish().
 */
void authres_begin(struct authres *a, struct buf *out,
    const char *authserv_id);

/*
 * Adds the resinfo "; METHOD=RESULT [reason=REASON] PROPS..." (RFC 8601
 * 2.2): reason may be NULL, props[0..nprops) with NULL or empty values
 * are left out.
 */
void authres_add(struct authres *a, const char *method, const char *result,
    const char *reason, const struct authres_prop *props, size_t nprops);

/* spf=RESULT smtp.mailfrom=SENDER, or smtp.helo=HELO when sender is NULL
 * or "" (the null sender: RFC 7208 2.4, RFC 8601 2.7.2). */
void authres_add_spf(struct authres *a, const char *result,
    const char *sender, const char *helo);

/* dkim=RESULT header.d= header.s= header.b= (RFC 8601 2.7.1, RFC 6008
 * 2), with the verifier's reason for a result other than pass. */
void authres_add_dkim(struct authres *a, const struct dkim_verify_result *r);

/* One dkim= per result of res[0..n), or "dkim=none" when n is 0 (an
 * unsigned message, RFC 8601 2.7.1). */
void authres_add_dkim_all(struct authres *a,
    const struct dkim_verify_result *res, size_t n);

/* dmarc=RESULT header.from=DOMAIN (RFC 7489 11.2), with the policy
 * applied as a comment-free reason for a fail. */
void authres_add_dmarc(struct authres *a, const struct dmarc_verdict *v);

/* iprev=RESULT policy.iprev=IP (RFC 8601 2.7.3, 3). */
void authres_add_iprev(struct authres *a, const char *result,
    const char *ip);

/*
 * Ends the field with CRLF; without any resinfo it says "none" (RFC 8601
 * 2.2 no-result).  Returns 0, or the first error (PR_ENOSPC / PR_ENOMEM
 * from the buffer), and then out is as it was before authres_begin().
 */
int authres_finish(struct authres *a);

/*
 * True if the header field f[0..len) (name, colon and value, folding
 * kept, no final CRLF) is an Authentication-Results field whose
 * authserv-id is authserv_id (compared without case, RFC 8601 2.5), after
 * any CFWS: such a field did not come from us and must be removed before
 * the message is stored (RFC 8601 5).
 */
bool authres_is_ours(const uint8_t *f, size_t len, const char *authserv_id);

#endif
