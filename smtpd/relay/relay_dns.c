/*
 * relay_dns.c - MX/A/AAAA lookups with c-ares on libuv.
 *
 * The resolver is the daemon's common/dns.c (one for the relay and the
 * inbound checks, [dns] in postroom.conf(5)).  The MX query goes through
 * its resolver.h interface, so its answer is read and bounded by the one
 * parser there; the addresses of each host come from ares_getaddrinfo()
 * on the same channel, which knows /etc/hosts and address literals.
 */
#include "relay_dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <sodium.h>

#include "dns.h"
#include "addr.h"
#include "domain.h"
#include "log.h"
#include "xmalloc.h"

struct relay_dns {
	uv_loop_t *loop;
	struct dns *dns;          /* the daemon's, borrowed */
	ares_channel channel;     /* dns_channel(dns) */
	size_t lookups;           /* in flight */
	bool closing;
	void (*done_cb)(void *data);
	void *done_data;
};

/* One route lookup: the MX query, then one address lookup per host. */
struct relay_dns_lookup {
	struct relay_dns *d;
	relay_dns_cb cb;
	void *data;
	char domain[RELAY_HOST_MAX];
	unsigned port;
	size_t n_mx;
	struct relay_mx mx[RELAY_MX_MAX];
	/* Per MX host: the addresses found, filled in by the callbacks. */
	struct relay_dns_hostres {
		struct relay_dns_lookup *l;
		size_t n;
		struct relay_target t[RELAY_TARGETS_MAX];
		int status;       /* ARES_* */
		bool done;
		/* The A and AAAA answers of the resolver, for their AD bit
		 * (asked only when the MX answer had it). */
		struct relay_dns_probe {
			struct relay_dns_hostres *h;
			bool secure;
		} probe[2];
		char canon[RELAY_HOST_MAX]; /* the A answer's owner name */
	} hosts[RELAY_MX_MAX];
	bool mx_secure;   /* the MX answer was DNSSEC-validated */
	size_t pending;
	bool implicit;    /* no MX: the domain is its own MX */
	bool cancelled;
	bool from_api;    /* started by relay_dns_host: report later */
};

static void
relay_dns_schedule(struct relay_dns *d)
{
	if (!d->closing)
		dns_kick(d->dns);
}

struct relay_dns *
relay_dns_new(uv_loop_t *loop, struct dns *dns)
{
	struct relay_dns *d = xcalloc(1, sizeof(*d));

	d->loop = loop;
	d->dns = dns;
	d->channel = dns_channel(dns);
	return d;
}

/* Frees d once it is closing and no lookup is left. */
static void
relay_dns_maybe_done(struct relay_dns *d)
{
	if (!d->closing || d->lookups > 0)
		return;
	if (d->done_cb != NULL)
		d->done_cb(d->done_data);
	free(d);
}

void
relay_dns_close(struct relay_dns *d, void (*done_cb)(void *data), void *data)
{
	if (d->closing)
		return;
	d->done_cb = done_cb;
	d->done_data = data;
	d->closing = true;
	relay_dns_maybe_done(d);
}

struct resolver *
relay_dns_resolver(struct relay_dns *d)
{
	return dns_resolver(d->dns);
}

void
relay_dns_addr_str(const struct relay_target *t, char *out, size_t outsz)
{
	const void *a;

	if (t->addr.ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)&t->addr)->sin6_addr;
	else
		a = &((const struct sockaddr_in *)&t->addr)->sin_addr;
	if (inet_ntop(t->addr.ss_family, a, out, (socklen_t)outsz) == NULL)
		snprintf(out, outsz, "?");
}

static bool
relay_dns_temporary(int status)
{
	return status != ARES_SUCCESS && status != ARES_ENOTFOUND &&
	    status != ARES_ENODATA && status != ARES_ENONAME &&
	    status != ARES_EBADNAME;
}

static bool
relay_dns_cancelled(int status)
{
	return status == ARES_EDESTRUCTION || status == ARES_ECANCELLED;
}

static uint32_t
relay_dns_rand(void *ctx, uint32_t n)
{
	(void)ctx;
	return randombytes_uniform(n);
}

/* Reports a route from the loop rather than from inside the call. */
struct relay_dns_deferred {
	uv_timer_t timer;
	relay_dns_cb cb;
	void *data;
	struct relay_route rt;
};

static void
relay_dns_deferred_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
relay_dns_deferred_cb(uv_timer_t *t)
{
	struct relay_dns_deferred *x = t->data;

	x->cb(x->data, &x->rt);
	uv_close((uv_handle_t *)&x->timer, relay_dns_deferred_closed);
}

static void
relay_dns_report_route_later(struct relay_dns *d, relay_dns_cb cb,
    void *data, const struct relay_route *rt)
{
	struct relay_dns_deferred *x = xcalloc(1, sizeof(*x));

	x->cb = cb;
	x->data = data;
	x->rt = *rt;
	uv_timer_init(d->loop, &x->timer);
	x->timer.data = x;
	uv_timer_start(&x->timer, relay_dns_deferred_cb, 0, 0);
}

static void
relay_dns_report_later(struct relay_dns *d, relay_dns_cb cb, void *data,
    enum relay_route_status st, const char *error)
{
	struct relay_route rt;

	memset(&rt, 0, sizeof(rt));
	rt.status = st;
	snprintf(rt.error, sizeof(rt.error), "%s", error);
	relay_dns_report_route_later(d, cb, data, &rt);
}

static void relay_dns_lookup_free(struct relay_dns_lookup *l);

/* All lookups answered: build the route and report it. */
static void
relay_dns_finish(struct relay_dns_lookup *l)
{
	struct relay_route rt;
	size_t i, j;
	bool temp = false;
	int last = ARES_SUCCESS;

	memset(&rt, 0, sizeof(rt));
	for (i = 0; i < l->n_mx; i++) {
		struct relay_dns_hostres *h = &l->hosts[i];

		if (relay_dns_cancelled(h->status))
			l->cancelled = true;
		if (h->status != ARES_SUCCESS) {
			if (relay_dns_temporary(h->status))
				temp = true;
			last = h->status;
		}
		for (j = 0; j < h->n && rt.n < RELAY_TARGETS_MAX; j++) {
			rt.t[rt.n] = h->t[j];
			rt.t[rt.n].secure = l->mx_secure && !l->from_api &&
			    h->probe[0].secure && h->probe[1].secure;
			if (rt.t[rt.n].secure && strcasecmp(h->canon,
			    l->mx[i].host) != 0)
				snprintf(rt.t[rt.n].canon,
				    sizeof(rt.t[rt.n].canon), "%s", h->canon);
			rt.n++;
		}
	}
	if (l->cancelled || l->d->closing) {
		rt.status = RELAY_ROUTE_CANCELLED;
		snprintf(rt.error, sizeof(rt.error), "shutting down");
	} else if (rt.n > 0) {
		rt.status = RELAY_ROUTE_OK;
	} else if (temp) {
		/* RFC 5321 5.1: a DNS failure is a temporary condition. */
		rt.status = RELAY_ROUTE_TEMP;
		snprintf(rt.status_code, sizeof(rt.status_code), "4.4.3");
		snprintf(rt.error, sizeof(rt.error),
		    "Host or domain name lookup failed for %s: %s",
		    l->n_mx == 1 ? l->mx[0].host : l->domain,
		    ares_strerror(last));
	} else {
		rt.status = RELAY_ROUTE_PERM;
		snprintf(rt.status_code, sizeof(rt.status_code), "5.4.4");
		snprintf(rt.error, sizeof(rt.error),
		    l->implicit ? "Host or domain name not found: no MX and no "
		    "address for %s (%s)" : "No address for the MX hosts of "
		    "%s (%s)", l->domain, ares_strerror(last));
	}
	if (l->from_api)
		relay_dns_report_route_later(l->d, l->cb, l->data, &rt);
	else
		l->cb(l->data, &rt);
	relay_dns_lookup_free(l);
}

static void
relay_dns_addr_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *res)
{
	struct relay_dns_hostres *h = arg;
	struct relay_dns_lookup *l = h->l;
	struct ares_addrinfo_node *n;
	size_t i = (size_t)(h - l->hosts);

	(void)timeouts;
	h->status = status;
	h->done = true;
	if (status == ARES_SUCCESS && res != NULL) {
		for (n = res->nodes; n != NULL && h->n < RELAY_TARGETS_MAX;
		    n = n->ai_next) {
			struct relay_target *t = &h->t[h->n];

			if ((n->ai_family != AF_INET &&
			    n->ai_family != AF_INET6) ||
			    n->ai_addrlen > sizeof(t->addr))
				continue;
			memcpy(&t->addr, n->ai_addr, n->ai_addrlen);
			t->addrlen = n->ai_addrlen;
			if (n->ai_family == AF_INET)
				((struct sockaddr_in *)&t->addr)->sin_port =
				    htons((uint16_t)l->port);
			else
				((struct sockaddr_in6 *)&t->addr)->sin6_port =
				    htons((uint16_t)l->port);
			snprintf(t->host, sizeof(t->host), "%s",
			    l->mx[i].host);
			t->pref = l->mx[i].pref;
			h->n++;
		}
		if (h->n == 0)
			h->status = ARES_ENODATA;
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	if (--l->pending == 0)
		relay_dns_finish(l);
}

/* The resolver's A or AAAA answer for a host of a secure MX RRset: only
 * its AD bit counts (RFC 7672 2.2.2); the addresses come from
 * ares_getaddrinfo on the same channel. */
static void
relay_dns_probe_cb(void *data, const struct resolver_answer *ans)
{
	struct relay_dns_probe *p = data;
	struct relay_dns_lookup *l = p->h->l;

	p->secure = ans->secure && (ans->rcode == RESOLVER_NOERROR ||
	    ans->rcode == RESOLVER_NXDOMAIN);
	if (p == &p->h->probe[0] && ans->name != NULL && ans->n > 0)
		snprintf(p->h->canon, sizeof(p->h->canon), "%s", ans->name);
	if (--l->pending == 0)
		relay_dns_finish(l);
}

/* Starts the address lookups of every host in l->mx. */
static void
relay_dns_resolve_hosts(struct relay_dns_lookup *l)
{
	struct ares_addrinfo_hints hints;
	struct relay_dns *d = l->d;
	size_t i, n = l->n_mx;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* One extra count held while starting: a callback that runs right
	 * away (an address literal) cannot finish the lookup under us. */
	l->pending = n + 1;
	for (i = 0; i < n; i++) {
		struct relay_dns_hostres *h = &l->hosts[i];
		unsigned k;

		h->l = l;
		for (k = 0; l->mx_secure && k < 2; k++) {
			h->probe[k].h = h;
			l->pending++;
			if (resolver_query(dns_resolver(d->dns), l->mx[i].host,
			    k == 0 ? RESOLVER_A : RESOLVER_AAAA,
			    relay_dns_probe_cb, &h->probe[k]) < 0)
				l->pending--;
		}
		ares_getaddrinfo(d->channel, l->mx[i].host, NULL, &hints,
		    relay_dns_addr_cb, h);
	}
	if (--l->pending == 0)
		relay_dns_finish(l);
	relay_dns_schedule(d);
}

/* What a failed MX query says, for the delivery's status text. */
static const char *
relay_dns_rcode_str(enum resolver_rcode rc)
{
	switch (rc) {
	case RESOLVER_TIMEOUT:
		return "no answer from the DNS servers";
	case RESOLVER_FORMERR:
		return "format error (FORMERR)";
	case RESOLVER_REFUSED:
		return "query refused (REFUSED)";
	default:
		return "server failure (SERVFAIL)";
	}
}

/* The answer of common/dns.c to the MX query: its records are those of
 * the domain, or of the end of its CNAME chain, and at most
 * DNS_ANSWER_MAX. */
static void
relay_dns_mx_cb(void *data, const struct resolver_answer *ans)
{
	struct relay_dns_lookup *l = data;
	struct relay_route rt;
	size_t i;

	memset(&rt, 0, sizeof(rt));
	if (l->d->closing) {
		rt.status = RELAY_ROUTE_CANCELLED;
		snprintf(rt.error, sizeof(rt.error), "shutting down");
		goto report;
	}
	if (ans->rcode == RESOLVER_NXDOMAIN) {
		/* NXDOMAIN: the domain does not exist. */
		rt.status = RELAY_ROUTE_PERM;
		snprintf(rt.status_code, sizeof(rt.status_code), "5.4.4");
		snprintf(rt.error, sizeof(rt.error),
		    "Host or domain name not found: %s (NXDOMAIN)",
		    l->domain);
		goto report;
	}
	if (ans->rcode != RESOLVER_NOERROR) {
		rt.status = RELAY_ROUTE_TEMP;
		snprintf(rt.status_code, sizeof(rt.status_code), "4.4.3");
		snprintf(rt.error, sizeof(rt.error),
		    "MX lookup for %s failed: %s", l->domain,
		    relay_dns_rcode_str(ans->rcode));
		goto report;
	}
	/* RFC 7672 2.2.1: DANE only below a validated MX RRset (or its
	 * validated denial, for the implicit MX). */
	l->mx_secure = ans->secure;
	for (i = 0; i < ans->n && l->n_mx < RELAY_MX_MAX; i++) {
		if (ans->rr[i].type != RESOLVER_MX)
			continue;
		l->mx[l->n_mx].pref = ans->rr[i].u.mx.pref;
		snprintf(l->mx[l->n_mx].host, RELAY_HOST_MAX, "%s",
		    ans->rr[i].u.mx.host);
		l->n_mx++;
	}
	if (l->n_mx == 0) {
		/* RFC 5321 5.1: no MX, the domain itself is the MX. */
		l->implicit = true;
		l->n_mx = 1;
		l->mx[0].pref = 0;
		snprintf(l->mx[0].host, RELAY_HOST_MAX, "%s", l->domain);
		relay_dns_resolve_hosts(l);
		return;
	}
	if (relay_mx_is_null(l->mx, l->n_mx)) {
		/* RFC 7505 4.1: do not try; bounce at once. */
		rt.status = RELAY_ROUTE_PERM;
		snprintf(rt.status_code, sizeof(rt.status_code), "5.1.10");
		snprintf(rt.error, sizeof(rt.error),
		    "Domain %s does not accept mail (null MX, RFC 7505)",
		    l->domain);
		goto report;
	}
	relay_mx_sort(l->mx, l->n_mx, relay_dns_rand, NULL);
	relay_dns_resolve_hosts(l);
	return;
report:
	l->cb(l->data, &rt);
	relay_dns_lookup_free(l);
}

static struct relay_dns_lookup *
relay_dns_lookup_new(struct relay_dns *d, const char *name, unsigned port,
    relay_dns_cb cb, void *data)
{
	struct relay_dns_lookup *l = xcalloc(1, sizeof(*l));

	l->d = d;
	l->cb = cb;
	l->data = data;
	l->port = port;
	snprintf(l->domain, sizeof(l->domain), "%s", name);
	d->lookups++;
	return l;
}

static void
relay_dns_lookup_free(struct relay_dns_lookup *l)
{
	struct relay_dns *d = l->d;

	free(l);
	d->lookups--;
	relay_dns_maybe_done(d);
}

void
relay_dns_route(struct relay_dns *d, const char *domain, unsigned port,
    relay_dns_cb cb, void *data)
{
	struct relay_dns_lookup *l;
	char err[300], name[ADDR_DOMAIN_MAX + 1];

	if (d->closing) {
		relay_dns_report_later(d, cb, data, RELAY_ROUTE_CANCELLED,
		    "shutting down");
		return;
	}
	if (domain[0] == '[') {
		/* An address literal (RFC 5321 4.1.3) names the host. */
		size_t n = strlen(domain);
		char lit[RELAY_HOST_MAX];

		if (n < 3 || domain[n - 1] != ']' || n - 2 >= sizeof(lit)) {
			snprintf(err, sizeof(err), "bad address literal %s",
			    domain);
			relay_dns_report_later(d, cb, data, RELAY_ROUTE_PERM,
			    err);
			return;
		}
		memcpy(lit, domain + 1, n - 2);
		lit[n - 2] = '\0';
		if (strncasecmp(lit, "IPv6:", 5) == 0)
			memmove(lit, lit + 5, strlen(lit + 5) + 1);
		relay_dns_host(d, lit, port, cb, data);
		return;
	}
	/* DNS holds A-labels (RFC 5890 2.3.2.1): a recipient domain in
	 * U-labels (SMTPUTF8, RFC 6531) is looked up in its A-label form. */
	if (domain_normalize(domain, strlen(domain), name, sizeof(name)) < 0) {
		snprintf(err, sizeof(err), "bad domain name %s", domain);
		relay_dns_report_later(d, cb, data, RELAY_ROUTE_PERM, err);
		return;
	}
	l = relay_dns_lookup_new(d, name, port, cb, data);
	/* common/dns.c answers from the loop, never from within the call. */
	if (resolver_query(dns_resolver(d->dns), name, RESOLVER_MX,
	    relay_dns_mx_cb, l) < 0) {
		relay_dns_lookup_free(l);
		snprintf(err, sizeof(err), "bad domain name %s", domain);
		relay_dns_report_later(d, cb, data, RELAY_ROUTE_PERM, err);
	}
}

void
relay_dns_host(struct relay_dns *d, const char *host, unsigned port,
    relay_dns_cb cb, void *data)
{
	struct relay_dns_lookup *l;

	if (d->closing) {
		relay_dns_report_later(d, cb, data, RELAY_ROUTE_CANCELLED,
		    "shutting down");
		return;
	}
	l = relay_dns_lookup_new(d, host, port, cb, data);
	l->from_api = true;
	l->implicit = true;
	l->n_mx = 1;
	snprintf(l->mx[0].host, RELAY_HOST_MAX, "%s", host);
	relay_dns_resolve_hosts(l);
}
