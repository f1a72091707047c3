/*
 * doctor_tls.c - what senders check before they send to us over TLS
 * (doctor.h): the MTA-STS policy of the domain (RFC 8461), fetched as
 * they fetch it (smtpd/relay/relay_sts_fetch.h) and parsed as our own
 * relay parses a policy (relay_sts_policy.h), and the TLSA records of
 * our MX host (RFC 7672) against [tls] cert.  docs/DOCTOR.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dns.h"
#include "doctor.h"
#include "net.h"
#include "relay_sts_fetch.h"
#include "relay_sts_policy.h"
#include "tlsa.h"

/* The TXT answer at _mta-sts.DOMAIN has one valid record (3.1). */
static bool
doctor_sts_txt(struct doctor *d, char id[STS_ID_MAX + 1])
{
	const char *recs[DOCTOR_RR_MAX], *why = NULL;
	size_t lens[DOCTOR_RR_MAX], i;
	struct doctor_ans a;
	char name[300];
	bool ok;

	snprintf(name, sizeof(name), "_mta-sts.%s", d->domain);
	doctor_query(d, name, RESOLVER_TXT, &a);
	for (i = 0; i < a.n; i++) {
		recs[i] = a.rr[i].text;
		lens[i] = a.rr[i].len;
	}
	/* Not published or broken: the mta-sts line said so. */
	ok = doctor_ans_ok(&a) && a.n > 0 &&
	    sts_txt_parse(recs, lens, a.n, id, &why) == 0;
	doctor_ans_free(&a);
	return ok;
}

/* The address of mta-sts.DOMAIN from [dns] resolver, as the relay pins
 * it for libcurl ("192.0.2.1", "[2001:db8::1]"). */
static bool
doctor_sts_addr(struct doctor *d, const char *host, char *out, size_t outsz)
{
	struct doctor_ans a;

	doctor_query(d, host, RESOLVER_A, &a);
	if (a.n > 0) {
		snprintf(out, outsz, "%s", a.rr[0].text);
		doctor_ans_free(&a);
		return true;
	}
	doctor_ans_free(&a);
	doctor_query(d, host, RESOLVER_AAAA, &a);
	if (a.n > 0) {
		snprintf(out, outsz, "[%s]", a.rr[0].text);
		doctor_ans_free(&a);
		return true;
	}
	doctor_ans_free(&a);
	return false;
}

/* The domain's MX hosts that the policy does not name (4.1), as a
 * comma-separated list in out; "" when all are named. */
static void
doctor_sts_unnamed(struct doctor *d, const struct sts_policy *p, char *out,
    size_t outsz)
{
	struct doctor_ans a;
	size_t i, o = 0;

	out[0] = '\0';
	doctor_query(d, d->domain, RESOLVER_MX, &a);
	for (i = 0; i < a.n; i++) {
		/* A null MX (RFC 7505) has no host to name. */
		if (a.rr[i].text[0] == '\0' || strcmp(a.rr[i].text, ".") == 0 ||
		    sts_mx_match(p, a.rr[i].text))
			continue;
		o += (size_t)snprintf(out + o, o < outsz ? outsz - o : 0,
		    "%s%s", o > 0 ? ", " : "", a.rr[i].text);
	}
	doctor_ans_free(&a);
}

void
doctor_sts_policy(struct doctor *d)
{
	const char *check = "mta-sts policy";
	struct sts_fetch f;
	struct sts_policy *p;
	char id[STS_ID_MAX + 1], host[300], addr[INET6_ADDRSTRLEN + 2];
	char url[400], fix[700], why[160], unnamed[600];

	if (!doctor_sts_txt(d, id))
		return;
	snprintf(host, sizeof(host), "mta-sts.%s", d->domain);
	snprintf(url, sizeof(url), "https://%s/.well-known/mta-sts.txt", host);
	snprintf(fix, sizeof(fix), "serve the policy at %s (status 200, "
	    "text/plain, no redirect) with a certificate valid for %s, e.g. "
	    "\"version: STSv1\\nmode: enforce\\nmx: %s\\nmax_age: 604800\\n\"",
	    url, host, d->host);
	if (!doctor_sts_addr(d, host, addr, sizeof(addr))) {
		doctor_report(d, DOCTOR_FAIL, check, fix, "%s has no address: "
		    "senders find no policy for the id %s", host, id);
		return;
	}
	memset(&f, 0, sizeof(f));
	f.domain = d->domain;
	f.addr = addr;
	f.ca_file = d->cli->cfg.relay.ca_file;
	f.body = malloc(STS_POLICY_MAX + 1);
	p = malloc(sizeof(*p));
	if (f.body == NULL || p == NULL) {
		doctor_report(d, DOCTOR_FAIL, check, NULL, "out of memory");
		goto out;
	}
	if (sts_fetch_global_init() < 0 || sts_fetch_run(&f) < 0) {
		doctor_report(d, DOCTOR_FAIL, check, fix, "%s: %s", url,
		    f.err[0] != '\0' ? f.err : "libcurl did not start");
		goto out;
	}
	if (sts_policy_parse(f.body, f.body_len, p, why, sizeof(why)) < 0) {
		doctor_report(d, DOCTOR_FAIL, check, fix, "%s is not a policy "
		    "(RFC 8461 3.2): %s", url, why);
		goto out;
	}
	if (p->mode == STS_MODE_NONE) {
		doctor_report(d, DOCTOR_WARN, check, "set \"mode: enforce\" "
		    "(or testing) in the policy and a new id in the TXT record",
		    "%s says mode none: senders drop the policy", url);
		goto out;
	}
	if (!sts_mx_match(p, d->host)) {
		snprintf(fix, sizeof(fix), "add \"mx: %s\" to the policy and "
		    "give the _mta-sts.%s TXT record a new id", d->host,
		    d->domain);
		doctor_report(d, p->mode == STS_MODE_ENFORCE ? DOCTOR_FAIL :
		    DOCTOR_WARN, check, fix, "%s does not name %s ([server] "
		    "hostname): senders that enforce it do not deliver here",
		    url, d->host);
		goto out;
	}
	doctor_sts_unnamed(d, p, unnamed, sizeof(unnamed));
	if (unnamed[0] != '\0') {
		snprintf(fix, sizeof(fix), "add an mx line for each to the "
		    "policy and give the TXT record a new id");
		doctor_report(d, p->mode == STS_MODE_ENFORCE ? DOCTOR_FAIL :
		    DOCTOR_WARN, check, fix, "%s does not name the MX host%s "
		    "%s: senders that enforce it skip %s", url,
		    strchr(unnamed, ',') != NULL ? "s" : "", unnamed,
		    strchr(unnamed, ',') != NULL ? "them" : "it");
		goto out;
	}
	if (p->mode == STS_MODE_TESTING)
		doctor_report(d, DOCTOR_WARN, check, "set \"mode: enforce\" "
		    "once the TLS reports are clean, with a new id in the TXT "
		    "record", "%s: mode testing, max_age %lld, names %s (id "
		    "%s): senders only report failures", url,
		    (long long)p->max_age, d->host, id);
	else
		doctor_report(d, DOCTOR_OK, check, NULL, "%s: mode enforce, "
		    "max_age %lld, names %s (id %s)", url,
		    (long long)p->max_age, d->host, id);
out:
	free(f.body);
	free(p);
}

void
doctor_dane(struct doctor *d)
{
	const char *check = "dane", *why = NULL;
	const struct net_tls *tls;
	struct doctor_ans a;
	struct tlsa_rr rr;
	char q[300], own[80] = "", fix[500], line[2 * TLSA_DATA_MAX + 16];
	size_t i, usable = 0;
	bool signed_zone;

	/* RFC 7672 3.1: TLSA for SMTP is at _25._tcp.MXHOST. */
	snprintf(q, sizeof(q), "_25._tcp.%s", d->host);
	tls = d->cli->cfg.tls.cert[0] != '\0' ? cmd_check_tls_ctx(&why) :
	    NULL;
	if (tls != NULL)
		(void)net_tls_tlsa_own(tls, own, sizeof(own));
	snprintf(fix, sizeof(fix), "publish %s. IN TLSA %s (and, before a "
	    "new key, its record too: RFC 7671 8.1)", q,
	    own[0] != '\0' ? own : "3 1 1 <SHA2-256 of the key>");
	/* A failed TLSA lookup only matters to senders when the zone is
	 * signed: the host's own address tells (RFC 7672 2.2.2). */
	doctor_query(d, d->host, RESOLVER_A, &a);
	signed_zone = a.secure;
	doctor_ans_free(&a);
	doctor_query(d, q, RESOLVER_TLSA, &a);
	if (!doctor_ans_ok(&a)) {
		doctor_report(d, signed_zone ? DOCTOR_FAIL : DOCTOR_WARN, check,
		    "check the zone's DNSSEC signatures (dig +dnssec)",
		    "cannot look up %s: %s: senders that use DANE defer "
		    "mail to us (RFC 7672 2.1.1)", q, doctor_rcode_str(a.rcode));
		goto out;
	}
	if (!a.secure) {
		if (a.n > 0)
			doctor_report(d, DOCTOR_WARN, check, "sign the zone "
			    "(DNSSEC) or remove the records", "TLSA records "
			    "at %s are not DNSSEC-validated: senders ignore "
			    "them (RFC 7672 2.2)", q);
		else
			doctor_report(d, DOCTOR_OK, check, NULL, "no validated "
			    "answer for %s (unsigned zone, or [dns] resolver "
			    "does not validate): not checked", q);
		goto out;
	}
	if (a.n == 0) {
		doctor_report(d, DOCTOR_OK, check, NULL, "no TLSA records at "
		    "%s (optional; for DANE publish %s)", q,
		    own[0] != '\0' ? own : "3 1 1 of [tls] cert");
		goto out;
	}
	if (tls == NULL) {
		doctor_report(d, DOCTOR_FAIL, check, "set [tls] cert and key",
		    "TLSA records at %s, but no usable [tls] cert%s%s: senders "
		    "that use DANE defer mail to us", q, why != NULL ? ": " :
		    "", why != NULL ? why : "");
		goto out;
	}
	for (i = 0; i < a.n; i++) {
		rr.usage = a.rr[i].usage;
		rr.selector = a.rr[i].selector;
		rr.mtype = a.rr[i].mtype;
		rr.data = (const uint8_t *)a.rr[i].text;
		rr.len = a.rr[i].len;
		if (!tlsa_usable(&rr))
			continue;
		usable++;
		if (net_tls_tlsa_match(tls, &rr)) {
			tlsa_format(&rr, line, sizeof(line));
			doctor_report(d, DOCTOR_OK, check, NULL, "%s: TLSA "
			    "%.80s matches %s (DNSSEC-validated)", q, line,
			    d->cli->cfg.tls.cert);
			goto out;
		}
	}
	if (usable == 0)
		doctor_report(d, DOCTOR_WARN, check, fix, "no usable TLSA record "
		    "at %s (only DANE-TA and DANE-EE count, RFC 7672 3.1.3): "
		    "senders require TLS but cannot authenticate it", q);
	else
		doctor_report(d, DOCTOR_FAIL, check, fix, "no TLSA record at %s "
		    "matches %s: senders that use DANE defer all mail to us",
		    q, d->cli->cfg.tls.cert);
out:
	doctor_ans_free(&a);
}
