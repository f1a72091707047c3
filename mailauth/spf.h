/*
 * spf.h - Sender Policy Framework, RFC 7208: is this client allowed to
 * use this MAIL FROM (or HELO) domain?
 *
 * Sans-I/O: a check asks its questions through resolver.h and calls back
 * once with the result, so the daemon runs it on its loop (c-ares) and
 * the tests on a table or a private DNS server.  It reads no clock: the
 * time for the "t" macro (RFC 7208 7.3) comes in the request.
 *
 * Covered: record selection (4.5), every mechanism (5) and modifier (6),
 * macros (7), the limits of 4.6.4 (10 terms that cause DNS lookups, 10
 * MX or PTR names per term, 2 void lookups), exp= explanations (6.2),
 * IPv4, IPv6 and IPv4-mapped IPv6 clients (5), and the HELO identity
 * (2.3) for the null sender or a MAIL FROM without a domain.
 */
#ifndef POSTROOM_SPF_H
#define POSTROOM_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resolver.h"

/* RFC 7208 4.6.4: terms that cause DNS queries, and void lookups. */
#define SPF_LOOKUP_MAX 10
#define SPF_VOID_MAX 2
/* RFC 7208 4.6.4: names looked up per "mx" or "ptr" term at most. */
#define SPF_NAMES_MAX 10
/* An SPF record longer than this is a permerror: RFC 7208 3.4 keeps
 * records within a 512-octet DNS answer, so real ones are far shorter. */
#define SPF_RECORD_MAX 4096
/* An explanation longer than this is cut (RFC 7208 6.2 gives no bound;
 * it ends up in one SMTP reply line). */
#define SPF_EXPLANATION_MAX 400

/* The results of RFC 7208 2.6, named as the RFC names them. */
enum spf_result {
	SPF_NONE = 0,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

/* Which identity was checked (RFC 7208 2.3, 2.4), as Authentication-
 * Results names its property (RFC 8601 2.7.2: smtp.helo, smtp.mailfrom). */
enum spf_identity {
	SPF_ID_MAILFROM = 0,
	SPF_ID_HELO,
};

struct spf_request {
	/* The SMTP client's address as text: "192.0.2.1", "2001:db8::1";
	 * an IPv4-mapped IPv6 address counts as IPv4 (RFC 7208 5). */
	const char *ip;
	/* The MAIL FROM address without <>; "" is the null sender, whose
	 * check uses the HELO identity (RFC 7208 2.4), as does an address
	 * without an '@'. */
	const char *sender;
	/* The HELO/EHLO argument; "" or NULL when the client sent none. */
	const char *helo;
	/* This host's name, for the "r" macro; NULL or "" = "unknown". */
	const char *receiver;
	/* Seconds since the epoch, for the "t" macro. */
	uint64_t now;
};

/* What a check found.  Every pointer is valid during the callback only. */
struct spf_outcome {
	enum spf_result result;
	enum spf_identity identity;
	/* The identity checked: the MAIL FROM address, or postmaster@HELO
	 * (RFC 7208 2.4); and its domain, the <domain> of check_host(). */
	const char *sender;
	const char *domain;
	/* For SPF_FAIL only: the expanded exp= text of the record
	 * (RFC 7208 6.2), or NULL when it had none or it did not work. */
	const char *explanation;
	/* Why, in a few words, for logs ("matched -all", "2 SPF records"). */
	const char *reason;
};

typedef void (*spf_cb)(void *data, const struct spf_outcome *o);

struct spf_check;

/*
 * Starts a check of req (copied: nothing in it needs to outlive this
 * call) with the DNS of r, which must outlive the check.  *c_r is the
 * check, for spf_check_free().  Returns:
 *   0 - started: cb runs exactly once with data, later, never from
 *       within this call;
 *   1 - already decided without DNS (a malformed domain is "none",
 *       RFC 7208 4.3): cb never runs, spf_check_outcome() has it;
 *   PR_EINVAL (ip is not an address) or PR_ENOMEM: cb never runs and
 *       *c_r is NULL.
 */
int spf_check_new(struct resolver *r, const struct spf_request *req,
    spf_cb cb, void *data, struct spf_check **c_r);

/* The outcome of a finished check (valid until spf_check_free()), or
 * NULL while it runs. */
const struct spf_outcome *spf_check_outcome(const struct spf_check *c);

/* Frees a check, finished or not; a pending one never calls back.  May
 * be called from the callback.  Sets *c to NULL. */
void spf_check_free(struct spf_check **c);

/* "pass", "fail", ...: the result word of RFC 7208 2.6 (and 8601 2.7.2). */
const char *spf_result_str(enum spf_result r);

/* "smtp.mailfrom" or "smtp.helo" (RFC 8601 2.7.2). */
const char *spf_identity_str(enum spf_identity id);

#endif
