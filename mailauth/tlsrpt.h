/*
 * tlsrpt.h - SMTP TLS Reporting (RFC 8460): the daily aggregate report
 * of one policy domain, as JSON (4.4), gzip'd and wrapped in its
 * message (5.3); the domain's reporting policy (3); and the lookups of
 * those policies for a day's domains.
 *
 * Sans I/O: the builders write into buffers, the lookups go through the
 * resolver interface (resolver.h).  The relay's daily run and `postroom
 * tlsrpt send` (postroom(8)) use the same code; they read the counts
 * from the store and queue the messages themselves.
 */
#ifndef POSTROOM_TLSRPT_H
#define POSTROOM_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "resolver.h"

/* rua mailto: addresses of one policy at most (RFC 8460 3 sets none). */
#define TLSRPT_RUA_MAX 8
/* A report's JSON, and its message, at most (gzip'd JSON in base64). */
#define TLSRPT_JSON_MAX (4 * 1024 * 1024)
#define TLSRPT_MSG_MAX (8 * 1024 * 1024)
/* Policy domains reported on per day at most. */
#define TLSRPT_DOMAINS_MAX 10000

/* One count of a policy domain's day (store_tlsrpt_count without the
 * day and domain); "" where a field does not apply. */
struct tlsrpt_row {
	const char *policy_type;     /* "sts", "tlsa", "no-policy-found" */
	const char *policy_string;   /* its lines separated by '\n' */
	const char *result;          /* "success" or an RFC 8460 4.3 type */
	const char *mx_host;
	const char *receiving_ip;
	const char *sending_ip;
	const char *reason;          /* failure-reason-code */
	int64_t count;
};

/* Who reports on what (RFC 8460 4.4 and 5.3). */
struct tlsrpt_info {
	const char *org;             /* organization-name */
	const char *submitter;       /* TLS-Report-Submitter: our domain */
	const char *contact;         /* contact-info: an address */
	const char *from;            /* From: of the message */
	const char *domain;          /* policy-domain */
	const char *report_id;       /* report-id, unique per report */
	const char *unique_id;       /* the file name's unique-id:
	                                letters and digits */
	int64_t day;                 /* UTC day: days since 1970-01-01 */
};

/*
 * Appends the JSON report (RFC 8460 4.4) of info->domain's rows to out:
 * one policies[] element per policy (rows with the same policy type and
 * string, which must be adjacent), its summary counts and one
 * failure-details[] element per failure row.  Returns 0, PR_EINVAL for
 * no rows, or PR_ENOSPC from out.
 */
int tlsrpt_json(const struct tlsrpt_info *info, const struct tlsrpt_row *rows,
    size_t n, struct buf *out);

/* Appends in[0..len) gzip'd (RFC 1952, through zlib) to out.  Returns 0,
 * PR_ENOSPC from out or PR_EIO. */
int tlsrpt_gzip(const uint8_t *in, size_t len, struct buf *out);

/*
 * Appends the report's message (RFC 8460 5.3) to out, CRLF lines: the
 * header (From, To: the n addresses of to, Date from now, Subject
 * "Report Domain: ... Submitter: ... Report-ID: <...>", TLS-Report-Domain,
 * TLS-Report-Submitter, Message-ID, multipart/report;
 * report-type="tlsrpt"), a text/plain part and the gzip'd JSON as
 * application/tlsrpt+gzip in base64, named as 5.3.1 says.  Returns 0,
 * PR_EINVAL or PR_ENOSPC.
 */
int tlsrpt_mime(const struct tlsrpt_info *info, const char *const *to,
    size_t n, const uint8_t *gz, size_t gz_len, int64_t now,
    struct buf *out);

/* The report file's name (RFC 8460 5.3.1), e.g.
 * "mail.example.org!b.test!1728000000!1728086399!20241004.json.gz", into
 * out.  Returns 0 or PR_ENOSPC. */
int tlsrpt_filename(const struct tlsrpt_info *info, char *out, size_t outsz);

/*
 * Parses a TXT record of _smtp._tls.DOMAIN (RFC 8460 3): "v=TLSRPTv1"
 * first, then "rua=" with comma-separated URIs.  The mailto: addresses
 * (RFC 6068, %-escapes decoded, any "?..." dropped) go to rua_r, at most
 * TLSRPT_RUA_MAX; https: URIs are counted in *n_https_r (reports are
 * not POSTed: RFC 8460 3 lets a sender use either).  Returns the number
 * of addresses, 0 for a record without a usable mailto:, or PR_EINVAL
 * for a record that is not TLSRPTv1.
 */
int tlsrpt_record_parse(const char *rec, size_t len,
    char rua_r[TLSRPT_RUA_MAX][ADDR_MAX], size_t *n_https_r);

/* --- The lookups of one day's policy domains --------------------------- */

/* One policy domain's reporting policy, once looked up. */
struct tlsrpt_dest {
	char domain[ADDR_DOMAIN_MAX + 1];
	int status;                  /* 0 found, PR_ENOENT none (no record,
	                                no mailto:), PR_EAGAIN DNS failed,
	                                PR_EINVAL several or bad records */
	char rua[TLSRPT_RUA_MAX][ADDR_MAX];
	size_t n_rua;
};

struct tlsrpt_lookup;

/*
 * Looks up _smtp._tls.DOMAIN (TXT) for each of the n domains, at most
 * TLSRPT_DOMAINS_MAX, a few at a time, on res; then done_cb(data, dests,
 * n) once with dests parallel to domains (valid during the call): from
 * a resolver answer, or from within this call when no lookup could be
 * started (n == 0, names that are not domain names).  Returns 0 with
 * *l_r set before any callback, or PR_ENOMEM (done_cb never runs).
 * tlsrpt_lookup_free after done_cb (from it too), or before it to
 * cancel the lookups.
 */
int tlsrpt_lookup_new(struct resolver *res, const char *const *domains,
    size_t n, void (*done_cb)(void *data, const struct tlsrpt_dest *dests,
    size_t n), void *data, struct tlsrpt_lookup **l_r);
void tlsrpt_lookup_free(struct tlsrpt_lookup **lp);

/* Days since 1970-01-01 of unix time t, and back: "2024-10-04" into out
 * (11 octets); tlsrpt_day_parse returns PR_EINVAL for anything but a
 * valid YYYY-MM-DD. */
int64_t tlsrpt_day_of(int64_t t);
void tlsrpt_day_format(int64_t day, char out[11]);
int tlsrpt_day_parse(const char *s, int64_t *day_r);

/* --- One day's reports ------------------------------------------------- */

/* Counts of one day kept at most (the relay's keys per day are bounded
 * too: relay_tlsrpt.c). */
#define TLSRPT_ROWS_MAX 100000

/* A day's counts of every policy domain, copied in from the store in
 * the store's order (by domain, then policy). */
struct tlsrpt_day {
	int64_t day;
	struct tlsrpt_day_row {
		char *domain;
		struct tlsrpt_row row;   /* its strings owned */
	} *rows;
	size_t n, cap;
	const char **domains;        /* distinct, in order; into rows */
	size_t n_domains;
};

/* Who sends the reports. */
struct tlsrpt_sender {
	const char *org;             /* organization-name */
	const char *submitter;       /* our domain or host name */
	const char *contact;         /* contact-info */
	const char *from;            /* From: address */
};

/* Who sends the reports, with room for its strings: organization-name
 * and submitter our host name ([server] hostname), From:
 * noreply-tlsrpt@ the hosted domain the host name is in (so that the
 * relay DKIM-signs it, RFC 8460 5.3) or the host name itself, and the
 * contact [server] postmaster, else postmaster@ that domain. */
struct tlsrpt_sender_buf {
	struct tlsrpt_sender who;
	char from[ADDR_MAX], contact[ADDR_MAX];
};
void tlsrpt_sender_fill(struct tlsrpt_sender_buf *b, const char *hostname,
    const char *from_domain, const char *postmaster);

/* One built report, ready to queue. */
struct tlsrpt_msg {
	const char *domain;          /* into the day */
	char report_id[ADDR_MAX + 64];
	char rcpt[TLSRPT_RUA_MAX][ADDR_MAX];
	const char *rcptv[TLSRPT_RUA_MAX]; /* into rcpt */
	size_t n_rcpt;
	struct buf msg;
	size_t json_len;
};

void tlsrpt_day_init(struct tlsrpt_day *d, int64_t day);
void tlsrpt_day_fini(struct tlsrpt_day *d);
/* Copies one count of domain in (rows of one domain adjacent, those of
 * one policy adjacent within it).  Returns 0, PR_ENOSPC past
 * TLSRPT_ROWS_MAX or PR_ENOMEM. */
int tlsrpt_day_add(struct tlsrpt_day *d, const char *domain,
    const struct tlsrpt_row *row);

/*
 * Builds the report of every domain of d whose dest (parallel to
 * d->domains, from tlsrpt_lookup) has mailto: addresses: its JSON,
 * gzip'd, in its message from who at now (each report's domain points
 * into d, which must outlive them); nonce (letters and digits)
 * makes the report-ids of this run unique.  *msgs_r is a malloc'd array
 * of *n_r reports (tlsrpt_msgs_free).  A domain whose report cannot be
 * built (too big) is left out and counted in *failed_r.  Returns 0 or
 * PR_ENOMEM.
 */
int tlsrpt_day_build(const struct tlsrpt_day *d,
    const struct tlsrpt_dest *dests, const struct tlsrpt_sender *who,
    int64_t now, const char *nonce, struct tlsrpt_msg **msgs_r,
    size_t *n_r, size_t *failed_r);
void tlsrpt_msgs_free(struct tlsrpt_msg **msgs, size_t n);

#endif
