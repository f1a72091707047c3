/*
 * relay_dane.c - DANE for SMTP (RFC 7672) in a delivery (see
 * relay_dane.h and docs/OUTBOUND_TLS.md).
 *
 * The DNSSEC status of every answer is the AD bit of the validating
 * resolver (common/dns.c, RFC 4035 3.2.3): DANE is only as good as the
 * path to that resolver, which should be a local one (docs/OUTBOUND_TLS.md).
 */
#include "relay_int.h"
#include "relay_dane.h"
#include "relay_tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resolver.h"
#include "xmalloc.h"

static unsigned
relay_dane_port(const struct relay_target *t)
{
	return ntohs(t->addr.ss_family == AF_INET6 ?
	    ((const struct sockaddr_in6 *)&t->addr)->sin6_port :
	    ((const struct sockaddr_in *)&t->addr)->sin_port);
}

static const char *
relay_dane_rcode_str(enum resolver_rcode rc)
{
	switch (rc) {
	case RESOLVER_TIMEOUT:
		/* c-ares 1.18 reports a SERVFAIL from the only server as
		 * no answer too (common/dns.c). */
		return "SERVFAIL or no answer";
	case RESOLVER_FORMERR:
		return "FORMERR";
	case RESOLVER_REFUSED:
		return "REFUSED";
	default:
		return "SERVFAIL";
	}
}

static const char *
relay_dane_state_word(enum relay_dane_state st)
{
	switch (st) {
	case RELAY_DANE_USABLE:
		return "usable";
	case RELAY_DANE_TLS_ONLY:
		return "unusable";
	case RELAY_DANE_FAILED:
		return "failed";
	default:
		return "none";
	}
}

/* Makes name h's TLSA base domain and asks at _PORT._tcp.name. */
static void
relay_dane_base(struct relay_dane_host *h, const char *name)
{
	char tmp[sizeof(h->base)];

	snprintf(tmp, sizeof(tmp), "%s", name);
	memcpy(h->base, tmp, sizeof(tmp));
	snprintf(h->qname, sizeof(h->qname), "_%u._tcp.%s", h->port, tmp);
}

/* The records of a validated TLSA answer into h: the usable ones first,
 * so that a long RRset of unusable records cannot push them out of the
 * RELAY_DANE_RR_MAX kept; every record goes into the policy string. */
static void
relay_dane_keep(struct relay_dane_host *h, const struct resolver_answer *ans)
{
	struct buf pol;
	char line[2 * TLSA_DATA_MAX + 16];
	size_t i, seen = 0, usable = 0;
	int pass;

	buf_init(&pol, 256);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < ans->n; i++) {
			const struct resolver_rr *a = &ans->rr[i];
			struct tlsa_rr rr;
			uint8_t *data = NULL;

			if (a->type != RESOLVER_TLSA)
				continue;
			rr.usage = a->u.tlsa.usage;
			rr.selector = a->u.tlsa.selector;
			rr.mtype = a->u.tlsa.mtype;
			rr.data = a->u.tlsa.data;
			rr.len = a->u.tlsa.len;
			if (tlsa_usable(&rr) != (pass == 0))
				continue;
			seen++;
			if (pass == 0)
				usable++;
			tlsa_format(&rr, line, sizeof(line));
			if (pol.len > 0)
				(void)buf_append(&pol, "\n", 1);
			(void)buf_append(&pol, line, strlen(line));
			if (h->n == RELAY_DANE_RR_MAX)
				continue;
			if (rr.len > 0) {
				data = xmalloc(rr.len);
				memcpy(data, rr.data, rr.len);
			}
			rr.data = data;
			h->rr[h->n++] = rr;
		}
	}
	(void)buf_append(&pol, "", 1);
	h->policy = xstrdup((const char *)pol.p);
	buf_fini(&pol);
	/* RFC 7672 2.2 and 3.1.3: validated records that are all unusable
	 * still say the server does TLS; it is then required but not
	 * authenticated. */
	h->state = usable > 0 ? RELAY_DANE_USABLE : seen > 0 ?
	    RELAY_DANE_TLS_ONLY : RELAY_DANE_NONE;
}

static void
relay_dane_note(struct relay_dlv *d, const struct relay_dane_host *h,
    const char *ip, enum relay_tlsrpt_result res, const char *detail)
{
	struct relay_tlsrpt_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.policy_domain = d->domain;
	ev.policy_type = RELAY_TLSRPT_POLICY_TLSA;
	ev.policy_string = h->policy;
	ev.mx_host = h->host;
	ev.receiving_ip = ip;
	if (d->conn != NULL)
		ev.sending_ip = net_conn_local(d->conn);
	ev.result = res;
	ev.detail = detail;
	relay_tlsrpt_note(d->r, &ev);
}

static void
relay_dane_tlsa_cb(void *data, const struct resolver_answer *ans)
{
	struct relay_dane_host *h = data;
	struct relay_dane *dn = h->dn;
	struct relay_dlv *d = dn->d;

	if (h->at_canon && (ans->rcode == RESOLVER_NXDOMAIN ||
	    ans->rcode == RESOLVER_NOERROR) && (ans->n == 0 ||
	    !ans->secure) && !d->r->stopping) {
		/* RFC 7672 2.2.3: nothing at the expanded name (a denial,
		 * or an insecure answer); the name the MX record gave is
		 * asked next, and is the base.  A failed lookup is not
		 * nothing: it may hide records (2.1.1), and the host is
		 * not used (below). */
		h->at_canon = false;
		relay_dane_base(h, h->host);
		if (resolver_query(relay_dns_resolver(d->r->dns), h->qname,
		    RESOLVER_TLSA, relay_dane_tlsa_cb, h) == 0)
			return;
	}
	if (ans->rcode != RESOLVER_NOERROR && ans->rcode != RESOLVER_NXDOMAIN) {
		/* SERVFAIL is what a validating resolver says of a bogus
		 * answer (RFC 4035 5.5); a lookup that fails may hide
		 * records, so the host is not used (RFC 7672 2.1.1). */
		h->state = RELAY_DANE_FAILED;
		snprintf(h->error, sizeof(h->error), "TLS policy dane: "
		    "TLSA lookup for %s failed (%s)", h->qname,
		    relay_dane_rcode_str(ans->rcode));
	} else if (!ans->secure) {
		/* RFC 7672 2.2: an insecure TLSA RRset is no policy. */
		h->state = RELAY_DANE_NONE;
	} else {
		/* Records, or an authenticated denial (RFC 7672 2.2: no
		 * DANE for this host). */
		relay_dane_keep(h, ans);
	}
	log_info(d->sid, "relay msgid=%s dane host=%s tlsa=%s secure=%s "
	    "records=%zu", d->m->job.msgid, h->host,
	    relay_dane_state_word(h->state), ans->secure ? "yes" : "no",
	    h->n);
	if (h->state == RELAY_DANE_FAILED)
		relay_dane_note(d, h, NULL, RELAY_TLSRPT_DNSSEC_INVALID,
		    relay_dane_rcode_str(ans->rcode));
	if (--dn->pending > 0)
		return;
	relay_dlv_next_target(d);
	relay_dlv_unref(d);     /* the lookups' reference */
}

static struct relay_dane_host *
relay_dane_find(struct relay_dane *dn, const char *host)
{
	size_t i;

	if (dn == NULL)
		return NULL;
	for (i = 0; i < dn->n; i++)
		if (strcasecmp(dn->h[i].host, host) == 0)
			return &dn->h[i];
	return NULL;
}

/* The reason for a TLSA name the resolver refused; the name is copied
 * first, since both fields live in h (snprintf must not overlap). */
static void
relay_dane_bad_name(struct relay_dane_host *h)
{
	char q[sizeof(h->qname)];

	memcpy(q, h->qname, sizeof(q));
	snprintf(h->error, sizeof(h->error), "TLS policy dane: bad TLSA "
	    "query name %s", q);
}

bool
relay_dane_prepare(struct relay_dlv *d)
{
	struct relay_dane *dn;
	struct relay_dane_host *h;
	size_t i;

	if (d->dane != NULL || !d->r->cfg->relay.dane || d->r->smarthost)
		return false;
	dn = xcalloc(1, sizeof(*dn));
	dn->d = d;
	d->dane = dn;
	for (i = 0; i < d->route.n && dn->n < RELAY_MX_MAX; i++) {
		const struct relay_target *t = &d->route.t[i];

		if (!t->secure || relay_dane_find(dn, t->host) != NULL)
			continue;
		h = &dn->h[dn->n++];
		h->dn = dn;
		h->port = relay_dane_port(t);
		snprintf(h->host, sizeof(h->host), "%s", t->host);
		/* RFC 7672 2.2.3: _PORT._tcp.HOST, the port connected to,
		 * at the end of the host's (secure) CNAME chain first. */
		h->at_canon = t->canon[0] != '\0';
		relay_dane_base(h, h->at_canon ? t->canon : t->host);
	}
	if (dn->n == 0)
		return false;
	/* Counted before any is asked: answers never come from within
	 * resolver_query() (resolver.h), but a refused one is counted
	 * down here. */
	dn->pending = dn->n;
	d->refs++;
	for (i = 0; i < dn->n; i++) {
		h = &dn->h[i];
		if (resolver_query(relay_dns_resolver(d->r->dns), h->qname,
		    RESOLVER_TLSA, relay_dane_tlsa_cb, h) < 0) {
			h->state = RELAY_DANE_FAILED;
			relay_dane_bad_name(h);
			dn->pending--;
		}
	}
	if (dn->pending == 0) {
		/* Nothing asked: go on from the loop's current call. */
		d->refs--;
		return false;
	}
	return true;
}

bool
relay_dane_target(struct relay_dlv *d, const struct relay_target *t)
{
	struct relay_dane_host *h = t->secure ?
	    relay_dane_find(d->dane, t->host) : NULL;

	d->dane_host = NULL;
	d->params.tls_required = d->r->smarthost;
	if (h == NULL || h->state == RELAY_DANE_NONE)
		return true;
	if (h->state == RELAY_DANE_FAILED) {
		snprintf(d->last_error, sizeof(d->last_error), "%s", h->error);
		log_info(d->sid, "relay msgid=%s host=%s status=skipped "
		    "reason=\"%s\"", d->m->job.msgid, d->peer, h->error);
		relay_msg_trace(d->m, "dane=failed host=%s", h->host);
		return false;
	}
	d->dane_host = h;
	d->params.tls_required = true;
	return true;
}

bool
relay_dane_active(const struct relay_dlv *d)
{
	return d->dane_host != NULL &&
	    d->dane_host->state == RELAY_DANE_USABLE;
}

int
relay_dane_starttls(struct relay_dlv *d)
{
	const struct relay_dane_host *h = d->dane_host;
	struct net_tls_dane spec;

	if (h->state != RELAY_DANE_USABLE)
		return net_conn_starttls_client(d->conn, d->r->tls, h->host,
		    false);
	spec.base = h->base;
	spec.mx_host = h->host;
	spec.rr = h->rr;
	spec.n = h->n;
	return net_conn_starttls_client_dane(d->conn, d->r->tls, &spec);
}

/* The address of the current target, for TLS-RPT's receiving-ip. */
static void
relay_dane_ip(const struct relay_dlv *d, char *out, size_t outsz)
{
	if (d->target < d->route.n)
		relay_dns_addr_str(&d->route.t[d->target], out, outsz);
	else
		snprintf(out, outsz, "?");
}

void
relay_dane_tls_done(struct relay_dlv *d, bool ok, char *why, size_t whysz)
{
	const struct relay_dane_host *h = d->dane_host;
	char ip[64], match[2 * TLSA_DATA_MAX + 16], tmp[RELAY_REPLY_MAX];

	relay_dane_ip(d, ip, sizeof(ip));
	if (!ok) {
		snprintf(tmp, sizeof(tmp), "%s", why);
		snprintf(why, whysz, "TLS policy dane: %s %s (TLSA %s)",
		    d->peer, tmp, h->qname);
		relay_dane_note(d, h, ip, RELAY_TLSRPT_VALIDATION_FAILURE,
		    tmp);
		return;
	}
	if (h->state == RELAY_DANE_USABLE &&
	    net_conn_tls_dane_match(d->conn, match, sizeof(match))) {
		/* Long full-certificate records are cut in the trace. */
		relay_msg_trace(d->m, "dane=verified tlsa=\"%.80s\"", match);
	} else {
		relay_msg_trace(d->m, "dane=tls-only");
	}
	relay_dane_note(d, h, ip, RELAY_TLSRPT_SUCCESS, NULL);
}

void
relay_dane_session_end(struct relay_dlv *d)
{
	const struct relay_dane_host *h = d->dane_host;
	char ip[64];

	if (h == NULL || d->client.tls_active ||
	    strstr(d->client.error, "offers no STARTTLS") == NULL)
		return;
	/* RFC 7672 2.2: TLSA records oblige the server to STARTTLS. */
	snprintf(d->client.error, sizeof(d->client.error), "TLS policy dane: "
	    "%s offers no STARTTLS, but TLSA records exist at %s", d->peer,
	    h->qname);
	relay_dane_ip(d, ip, sizeof(ip));
	relay_dane_note(d, h, ip, RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED, NULL);
}

void
relay_dane_free(struct relay_dane *dn)
{
	size_t i, j;

	if (dn == NULL)
		return;
	for (i = 0; i < dn->n; i++) {
		for (j = 0; j < dn->h[i].n; j++)
			free((void *)dn->h[i].rr[j].data);
		free(dn->h[i].policy);
	}
	free(dn);
}
