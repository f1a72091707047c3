/*
 * doctor.h - `postroom doctor DOMAIN`, shared by its parts:
 *
 *   cmd_doctor.c     the DNS, certificate and store checks, the report
 *   doctor_probe.c   the listeners and the open-relay self-test, on the
 *                    one libuv loop with the one TLS layer (common/net.c)
 *   doctor_tls.c     the MTA-STS policy and the TLSA records of the
 *                    domain (what senders to us check, RFC 8461, 7672)
 *   doctor_parse.c   pure parsers of what the network sends: MTA-STS
 *                    and TLS-RPT records, SMTP and POP3 replies
 *
 * Every check prints one line "ok|warn|fail  CHECK: detail", a warn or
 * fail line ending in "; fix: ..." (the record to publish, the command to
 * run).  The command exits 1 when a check failed (docs/DOCTOR.md).
 */
#ifndef POSTROOM_DOCTOR_H
#define POSTROOM_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "resolver.h"

struct cli;

enum doctor_level {
	DOCTOR_OK = 0,
	DOCTOR_WARN,
	DOCTOR_FAIL,
};

/* One run of the checks. */
struct doctor {
	struct cli *cli;
	uv_loop_t loop;
	struct dns *dns;
	const char *domain;
	const char *host;          /* [server] hostname */
	unsigned fails, warns;
};

/* Prints one check's line and counts it; fix (NULL for none) is what to
 * do about a warn or fail. */
void doctor_report(struct doctor *d, enum doctor_level lv, const char *check,
    const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Runs d's loop until *done is true or nothing is left to run. */
void doctor_wait(struct doctor *d, const bool *done);

/* --- cmd_doctor.c: DNS, one question at a time ------------------------- */

/* Records kept per answer (more are not looked at: a domain has a few
 * MX hosts and addresses, and one record of each TXT kind). */
#define DOCTOR_RR_MAX 16

struct doctor_rr {
	unsigned pref;       /* MX */
	uint8_t usage, selector, mtype;    /* TLSA */
	/* MX/PTR name, A/AAAA as text, TXT joined (NUL-terminated); TLSA
	 * the association data (len octets) */
	char *text;
	size_t len;
};

struct doctor_ans {
	bool done;
	enum resolver_rcode rcode;
	bool secure;         /* validated (the AD bit, common/dns.c) */
	size_t n;
	struct doctor_rr rr[DOCTOR_RR_MAX];
};

/* Asks for type at name with [dns] resolver and waits for the answer
 * into a (doctor_ans_free after). */
void doctor_query(struct doctor *d, const char *name, enum resolver_type type,
    struct doctor_ans *a);
void doctor_ans_free(struct doctor_ans *a);
/* True for an answer that says something (records, or that there are
 * none); false for a lookup that failed. */
bool doctor_ans_ok(const struct doctor_ans *a);
const char *doctor_rcode_str(enum resolver_rcode rc);

/* --- doctor_tls.c: our outbound-TLS records ----------------------------- */

/* "mta-sts policy": when _mta-sts.DOMAIN holds a valid record, the
 * policy fetched as senders fetch it (relay_sts_fetch.h), parsed
 * (RFC 8461 3.2) and naming every MX host of the domain (4.1). */
void doctor_sts_policy(struct doctor *d);

/* "dane": when the resolver validates, the TLSA records at
 * _25._tcp.HOSTNAME match [tls] cert (RFC 7672 3.1). */
void doctor_dane(struct doctor *d);

/*
 * Connects to each configured listener ([smtp] listen, submission,
 * submissions, [pop3] listen, pop3s), reads its greeting and sees
 * STARTTLS/STLS offered (and working) or the implicit TLS handshake;
 * then, on the first [smtp] listen address, asks to relay to a domain
 * not hosted here, which must be refused (RFC 5321 3.6.2, 7.1).  All
 * at once, each bounded by DOCTOR_PROBE_TIMEOUT_MS; reports one line
 * per listener and one for the relay test.
 */
void doctor_probe_all(struct doctor *d);

#define DOCTOR_PROBE_TIMEOUT_MS 20000

/* --- doctor_parse.c: pure ---------------------------------------------- */

/* The foreign domain the open-relay test asks to send to (RFC 2606 2:
 * .invalid is never a real domain, so nothing can ever be delivered). */
#define DOCTOR_RELAY_RCPT "relay-test@doctor.example.invalid"

/*
 * Checks one TXT record at _mta-sts.DOMAIN (RFC 8461 3.1): "v=STSv1"
 * first, an "id" of 1 to 32 letters and digits.  Returns 0, PR_ENOENT
 * when it is not an MTA-STS record at all (3.1: discarded), PR_EINVAL
 * with why (a static text) when it is one but broken.
 */
int doctor_sts_record(const char *s, size_t len, const char **why);

/*
 * Checks one TXT record at _smtp._tls.DOMAIN (RFC 8460 3): "v=TLSRPTv1"
 * first, a "rua" of comma-separated mailto: or https: URIs.  Returns as
 * doctor_sts_record().
 */
int doctor_tlsrpt_record(const char *s, size_t len, const char **why);

/* Reply lines kept at most, and the longest line (RFC 5321 4.5.3.1.5:
 * 512 octets; POP3 RFC 2449 4: 512 for a response, capability lines
 * shorter). */
#define DOCTOR_REPLY_LINE_MAX 1000
#define DOCTOR_REPLY_LINES_MAX 64

enum doctor_reply_kind {
	DOCTOR_REPLY_SMTP,       /* "250-..." lines up to "250 ..." */
	DOCTOR_REPLY_POP3,       /* one "+OK"/"-ERR" line */
	DOCTOR_REPLY_POP3_MULTI, /* "+OK" then lines up to "." (CAPA) */
};

/* A reply being read: feed input, then look at code, text and ext. */
struct doctor_reply {
	enum doctor_reply_kind kind;
	int code;           /* SMTP: 200..599; POP3: 1 +OK, 0 -ERR */
	char first[DOCTOR_REPLY_LINE_MAX + 1]; /* the first line, no CRLF */
	bool starttls;      /* SMTP: EHLO keyword STARTTLS (RFC 3207 4) */
	bool stls;          /* POP3: CAPA line STLS (RFC 2595 4) */
	size_t lines;
	char line[DOCTOR_REPLY_LINE_MAX + 1];
	size_t len;         /* of line so far */
};

void doctor_reply_init(struct doctor_reply *r, enum doctor_reply_kind kind);

/*
 * Feeds p[0..len) to r; *used_r is how much was taken.  Returns 1 when
 * the reply is complete (input after it is left unused), 0 when more is
 * needed, PR_EINVAL for a reply that breaks the syntax or a bound (the
 * text in r->first says which).
 */
int doctor_reply_feed(struct doctor_reply *r, const uint8_t *p, size_t len,
    size_t *used_r);

#endif
