/*
 * relay_tlsrpt.c - TLS results per policy domain (see relay_tlsrpt.h).
 *
 * For now each result is one log line (docs/LOGGING.md): failures at
 * info, successes at debug.
 */
#include "relay_int.h"
#include "relay_tlsrpt.h"

static const char *const relay_tlsrpt_results[] = {
	[RELAY_TLSRPT_SUCCESS] = "success",
	[RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[RELAY_TLSRPT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
	[RELAY_TLSRPT_CERTIFICATE_EXPIRED] = "certificate-expired",
	[RELAY_TLSRPT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
	[RELAY_TLSRPT_VALIDATION_FAILURE] = "validation-failure",
	[RELAY_TLSRPT_TLSA_INVALID] = "tlsa-invalid",
	[RELAY_TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
	[RELAY_TLSRPT_DANE_REQUIRED] = "dane-required",
	[RELAY_TLSRPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	[RELAY_TLSRPT_STS_POLICY_INVALID] = "sts-policy-invalid",
	[RELAY_TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

const char *
relay_tlsrpt_result_name(enum relay_tlsrpt_result res)
{
	if ((unsigned)res >= sizeof(relay_tlsrpt_results) /
	    sizeof(relay_tlsrpt_results[0]))
		return "validation-failure";
	return relay_tlsrpt_results[res];
}

const char *
relay_tlsrpt_policy_name(enum relay_tlsrpt_policy type)
{
	switch (type) {
	case RELAY_TLSRPT_POLICY_STS:
		return "sts";
	case RELAY_TLSRPT_POLICY_TLSA:
		return "tlsa";
	default:
		return "no-policy-found";
	}
}

void
relay_tlsrpt_note(struct relay *r, const struct relay_tlsrpt_event *ev)
{
	enum log_level lvl = ev->result == RELAY_TLSRPT_SUCCESS ?
	    LOG_LVL_DEBUG : LOG_LVL_INFO;

	(void)r;
	log_msg(lvl, NULL, "tlsrpt domain=%s policy=%s result=%s mx=%s ip=%s%s%s",
	    ev->policy_domain, relay_tlsrpt_policy_name(ev->policy_type),
	    relay_tlsrpt_result_name(ev->result),
	    ev->mx_host != NULL ? ev->mx_host : "-",
	    ev->receiving_ip != NULL ? ev->receiving_ip : "-",
	    ev->detail != NULL ? " detail=" : "",
	    ev->detail != NULL ? ev->detail : "");
}
