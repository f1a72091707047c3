/*
 * relay_tlsrpt.h - what the relay learned about TLS to a policy domain,
 * for SMTP TLS Reporting (RFC 8460).
 *
 * Every outbound session to an MX host of a recipient domain ends in one
 * result: the TLS session it got under the domain's policy (MTA-STS,
 * RFC 8461; DANE, RFC 7672; or none found), or the reason it got none.
 * The delivery code notes it here once per session (and once per policy
 * failure that stopped it before any session, such as an MTA-STS policy
 * that could not be fetched); this module counts results per day and
 * policy, and sends each policy domain that publishes a `_smtp._tls` rua
 * its daily aggregate report (RFC 8460 4 and 5).
 */
#ifndef POSTROOM_RELAY_TLSRPT_H
#define POSTROOM_RELAY_TLSRPT_H

struct relay;

/* RFC 8460 4.4 policy-type. */
enum relay_tlsrpt_policy {
	RELAY_TLSRPT_POLICY_NONE = 0,   /* "no-policy-found" */
	RELAY_TLSRPT_POLICY_STS,        /* "sts" */
	RELAY_TLSRPT_POLICY_TLSA,       /* "tlsa" */
};

/* RFC 8460 4.3 result types; SUCCESS counts a successful session. */
enum relay_tlsrpt_result {
	RELAY_TLSRPT_SUCCESS = 0,
	/* 4.3.1 negotiation failures */
	RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED,
	RELAY_TLSRPT_CERTIFICATE_HOST_MISMATCH,
	RELAY_TLSRPT_CERTIFICATE_EXPIRED,
	RELAY_TLSRPT_CERTIFICATE_NOT_TRUSTED,
	RELAY_TLSRPT_VALIDATION_FAILURE,
	/* 4.3.2 policy failures */
	RELAY_TLSRPT_TLSA_INVALID,
	RELAY_TLSRPT_DNSSEC_INVALID,
	RELAY_TLSRPT_DANE_REQUIRED,
	RELAY_TLSRPT_STS_POLICY_FETCH_ERROR,
	RELAY_TLSRPT_STS_POLICY_INVALID,
	RELAY_TLSRPT_STS_WEBPKI_INVALID,
};

struct relay_tlsrpt_event {
	const char *policy_domain;      /* the recipient domain (A-label) */
	enum relay_tlsrpt_policy policy_type;
	/* The policy as RFC 8460 4.4 policy-string wants it, its lines
	 * separated by '\n': the MTA-STS policy file's lines, or the TLSA
	 * records in presentation form.  NULL for no policy. */
	const char *policy_string;
	const char *mx_host;            /* receiving-mx-hostname, or NULL */
	const char *receiving_ip;       /* receiving-ip, or NULL */
	const char *sending_ip;         /* sending-mta-ip, or NULL */
	enum relay_tlsrpt_result result;
	const char *detail;             /* failure-reason-code, or NULL */
};

/* The RFC 8460 4.3 name of a result ("starttls-not-supported", ...);
 * "success" for RELAY_TLSRPT_SUCCESS. */
const char *relay_tlsrpt_result_name(enum relay_tlsrpt_result res);

/* The RFC 8460 4.4 name of a policy type. */
const char *relay_tlsrpt_policy_name(enum relay_tlsrpt_policy type);

/* Notes one result.  Runs on the loop; copies what it keeps; never
 * blocks and never fails the delivery. */
void relay_tlsrpt_note(struct relay *r, const struct relay_tlsrpt_event *ev);

#endif
