/*
 * cmd_doctor.c - `postroom doctor DOMAIN`: live checks of what makes mail
 * for a hosted domain work, one line each (doctor.h, docs/DOCTOR.md):
 *
 *   mx           the domain's MX names [server] hostname (RFC 5321 5.1)
 *   address      the hostname's A/AAAA are addresses of this host
 *   rdns         each address's PTR leads back (FCrDNS, RFC 8601 3)
 *   spf          SPF authorises each address (RFC 7208)
 *   dkim         each active key's record is published (RFC 6376 3.6.2)
 *   dmarc        a DMARC record exists and parses (RFC 7489 6.1)
 *   mta-sts      when published, the TXT record parses (RFC 8461 3.1)
 *   tls-rpt      when published, the TXT record parses (RFC 8460 3)
 *   mta-sts policy, dane   our outbound-TLS records (doctor_tls.c)
 *   certificate  [tls] cert is valid, not near expiry, names the host
 *   listeners    and the open-relay self-test (doctor_probe.c)
 *   postmaster   postmaster@DOMAIN reaches a mailbox (RFC 5321 4.5.1)
 *
 * DNS goes through common/dns.c with [dns] resolver and timeout, as the
 * daemons ask, one question at a time on the CLI's own loop.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "cli_util.h"
#include "dkim_keyfile.h"
#include "dmarc.h"
#include "dns.h"
#include "doctor.h"
#include "iprev.h"
#include "net.h"
#include "spf.h"

/* The host's addresses looked at, at most. */
#define DOCTOR_ADDR_MAX 16

/* The hostname's addresses, and which of them are this host's. */
struct doctor_addrs {
	size_t n;
	char a[DOCTOR_ADDR_MAX][INET6_ADDRSTRLEN];
	bool local[DOCTOR_ADDR_MAX];
	size_t nlocal;
	/* An address of an interface that is neither loopback nor
	 * link-local, for the fix of a missing A/AAAA; "" if none. */
	char iface[INET6_ADDRSTRLEN];
};

static const char *const doctor_level_word[] = { "ok", "warn", "fail" };

void
doctor_report(struct doctor *d, enum doctor_level lv, const char *check,
    const char *fix, const char *fmt, ...)
{
	va_list ap;

	printf("%s  %s: ", doctor_level_word[lv], check);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (lv != DOCTOR_OK && fix != NULL && fix[0] != '\0')
		printf("; fix: %s", fix);
	putchar('\n');
	fflush(stdout);
	if (lv == DOCTOR_FAIL)
		d->fails++;
	else if (lv == DOCTOR_WARN)
		d->warns++;
}

void
doctor_wait(struct doctor *d, const bool *done)
{
	while (!*done && uv_run(&d->loop, UV_RUN_ONCE) != 0)
		;
}

/* --- DNS, one question at a time --------------------------------------- */

static void
doctor_ans_cb(void *data, const struct resolver_answer *ans)
{
	struct doctor_ans *a = data;
	const struct resolver_rr *rr;
	struct buf b;
	char t[INET6_ADDRSTRLEN];
	const char *s;
	size_t i;

	a->done = true;
	a->rcode = ans->rcode;
	a->secure = ans->secure;
	for (i = 0; i < ans->n && a->n < DOCTOR_RR_MAX; i++) {
		rr = &ans->rr[i];
		s = NULL;
		switch (rr->type) {
		case RESOLVER_A:
			s = inet_ntop(AF_INET, rr->u.a, t, sizeof(t));
			break;
		case RESOLVER_AAAA:
			s = inet_ntop(AF_INET6, rr->u.aaaa, t, sizeof(t));
			break;
		case RESOLVER_MX:
			s = rr->u.mx.host;
			a->rr[a->n].pref = rr->u.mx.pref;
			break;
		case RESOLVER_PTR:
			s = rr->u.ptr;
			break;
		case RESOLVER_TXT:
			buf_init(&b, DNS_TXT_STRINGS_MAX * 255 + 1);
			if (cli_txt_join(&rr->u.txt, &b) == 0 &&
			    buf_append(&b, "", 1) == 0 &&
			    (a->rr[a->n].text = strdup((char *)b.p)) != NULL)
				a->rr[a->n++].len = b.len - 1;
			buf_fini(&b);
			continue;
		case RESOLVER_TLSA:
			/* The data as it came (len 0: a record that did not
			 * parse, common/dns.c). */
			a->rr[a->n].usage = rr->u.tlsa.usage;
			a->rr[a->n].selector = rr->u.tlsa.selector;
			a->rr[a->n].mtype = rr->u.tlsa.mtype;
			a->rr[a->n].text = malloc(rr->u.tlsa.len + 1);
			if (a->rr[a->n].text == NULL)
				continue;
			if (rr->u.tlsa.len > 0)
				memcpy(a->rr[a->n].text, rr->u.tlsa.data,
				    rr->u.tlsa.len);
			a->rr[a->n++].len = rr->u.tlsa.len;
			continue;
		}
		if (s != NULL && (a->rr[a->n].text = strdup(s)) != NULL)
			a->rr[a->n++].len = strlen(s);
	}
}

void
doctor_ans_free(struct doctor_ans *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->rr[i].text);
	a->n = 0;
}

void
doctor_query(struct doctor *d, const char *name, enum resolver_type type,
    struct doctor_ans *a)
{
	memset(a, 0, sizeof(*a));
	a->rcode = RESOLVER_TIMEOUT;
	if (resolver_query(dns_resolver(d->dns), name, type, doctor_ans_cb,
	    a) < 0) {
		a->rcode = RESOLVER_FORMERR;
		return;
	}
	doctor_wait(d, &a->done);
	if (!a->done)
		resolver_cancel(dns_resolver(d->dns), a);
}

const char *
doctor_rcode_str(enum resolver_rcode rc)
{
	switch (rc) {
	case RESOLVER_TIMEOUT:
		return "no answer in time";
	case RESOLVER_SERVFAIL:
		return "server failure";
	case RESOLVER_REFUSED:
		return "refused";
	case RESOLVER_FORMERR:
		return "not a valid query";
	default:
		return "lookup failed";
	}
}

bool
doctor_ans_ok(const struct doctor_ans *a)
{
	return a->rcode == RESOLVER_NOERROR || a->rcode == RESOLVER_NXDOMAIN;
}

/* --- mx ---------------------------------------------------------------- */

static void
doctor_mx(struct doctor *d)
{
	struct doctor_ans a;
	char fix[600], list[512];
	size_t i, len = 0;
	unsigned best = 65536, ours = 65536;

	snprintf(fix, sizeof(fix), "publish %s. IN MX 10 %s.", d->domain,
	    d->host);
	doctor_query(d, d->domain, RESOLVER_MX, &a);
	if (!doctor_ans_ok(&a)) {
		doctor_report(d, DOCTOR_FAIL, "mx", "check the domain's name "
		    "servers", "cannot look up the MX records of %s: %s",
		    d->domain, doctor_rcode_str(a.rcode));
		return;
	}
	list[0] = '\0';
	for (i = 0; i < a.n; i++) {
		if (a.rr[i].text[0] == '\0') {
			doctor_report(d, DOCTOR_FAIL, "mx", fix, "%s has a "
			    "null MX (RFC 7505): it accepts no mail; remove "
			    "it", d->domain);
			doctor_ans_free(&a);
			return;
		}
		if (a.rr[i].pref < best)
			best = a.rr[i].pref;
		if (strcasecmp(a.rr[i].text, d->host) == 0 &&
		    a.rr[i].pref < ours)
			ours = a.rr[i].pref;
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len,
			    "%s%u %s", i > 0 ? ", " : "", a.rr[i].pref,
			    a.rr[i].text);
	}
	if (a.n == 0)
		doctor_report(d, DOCTOR_FAIL, "mx", fix, "%s has no MX record",
		    d->domain);
	else if (ours == 65536)
		doctor_report(d, DOCTOR_FAIL, "mx", fix, "%s MX %s: none is "
		    "%s ([server] hostname)", d->domain, list, d->host);
	else if (ours > best)
		doctor_report(d, DOCTOR_WARN, "mx", fix, "%s MX %s: mail goes "
		    "to a host of lower preference before %s", d->domain,
		    list, d->host);
	else
		doctor_report(d, DOCTOR_OK, "mx", NULL, "%s MX %s", d->domain,
		    list);
	doctor_ans_free(&a);
}

/* --- address ----------------------------------------------------------- */

/* Compares the text address s with a socket address. */
static bool
doctor_addr_is(const char *s, const struct sockaddr *sa)
{
	uint8_t bin[16];

	if (sa->sa_family == AF_INET && inet_pton(AF_INET, s, bin) == 1)
		return memcmp(bin, &((const struct sockaddr_in *)sa)->sin_addr,
		    4) == 0;
	if (sa->sa_family == AF_INET6 && inet_pton(AF_INET6, s, bin) == 1)
		return memcmp(bin,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, 16) == 0;
	return false;
}

/* Marks which of h's addresses an interface of this host has
 * (getifaddrs(3)), and finds one to suggest. */
static void
doctor_addrs_local(struct doctor_addrs *h)
{
	struct ifaddrs *ifs, *i;
	const struct in6_addr *a6;
	const void *bin;
	size_t j;

	if (getifaddrs(&ifs) != 0)
		return;
	for (i = ifs; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6))
			continue;
		for (j = 0; j < h->n; j++)
			if (!h->local[j] && doctor_addr_is(h->a[j],
			    i->ifa_addr)) {
				h->local[j] = true;
				h->nlocal++;
			}
		if (h->iface[0] != '\0')
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			bin = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
			if (((const uint8_t *)bin)[0] == 127 ||
			    (((const uint8_t *)bin)[0] == 169 &&
			    ((const uint8_t *)bin)[1] == 254))
				continue;
			inet_ntop(AF_INET, bin, h->iface, sizeof(h->iface));
		} else {
			a6 = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
			if (IN6_IS_ADDR_LOOPBACK(a6) ||
			    IN6_IS_ADDR_LINKLOCAL(a6))
				continue;
			inet_ntop(AF_INET6, a6, h->iface, sizeof(h->iface));
		}
	}
	freeifaddrs(ifs);
}

static void
doctor_address(struct doctor *d, struct doctor_addrs *h)
{
	static const enum resolver_type types[] = { RESOLVER_A,
	    RESOLVER_AAAA };
	struct doctor_ans a;
	char fix[600], list[512], other[512];
	size_t i, j, len = 0, olen = 0;
	bool failed = false;

	memset(h, 0, sizeof(*h));
	for (j = 0; j < 2; j++) {
		doctor_query(d, d->host, types[j], &a);
		failed |= !doctor_ans_ok(&a);
		for (i = 0; i < a.n && h->n < DOCTOR_ADDR_MAX; i++)
			snprintf(h->a[h->n++], sizeof(h->a[0]), "%s",
			    a.rr[i].text);
		doctor_ans_free(&a);
	}
	doctor_addrs_local(h);
	snprintf(fix, sizeof(fix), "publish %s. IN %s %s", d->host,
	    strchr(h->iface, ':') != NULL ? "AAAA" : "A",
	    h->iface[0] != '\0' ? h->iface : "<this host's address>");
	if (h->n == 0) {
		doctor_report(d, DOCTOR_FAIL, "address", fix, "%s has no A or "
		    "AAAA record%s", d->host, failed ? " (a lookup failed)" :
		    "");
		return;
	}
	list[0] = other[0] = '\0';
	for (i = 0; i < h->n; i++) {
		if (h->local[i] && len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len,
			    "%s%s", len > 0 ? " " : "", h->a[i]);
		else if (!h->local[i] && olen < sizeof(other))
			olen += (size_t)snprintf(other + olen,
			    sizeof(other) - olen, "%s%s", olen > 0 ? " " : "",
			    h->a[i]);
	}
	if (h->nlocal == 0)
		doctor_report(d, DOCTOR_FAIL, "address", fix, "%s has %s, no "
		    "address of this host (right only behind NAT that "
		    "forwards them here)", d->host, other);
	else if (h->nlocal < h->n)
		doctor_report(d, DOCTOR_WARN, "address", "remove the others, "
		    "or forward them to this host", "%s has %s of this host "
		    "and %s of none of its interfaces", d->host, list, other);
	else
		doctor_report(d, DOCTOR_OK, "address", NULL, "%s has %s, "
		    "addresses of this host", d->host, list);
}

/* The addresses mail leaves from: the hostname's addresses of this host,
 * or all of them when none is (behind NAT). */
static bool
doctor_addr_used(const struct doctor_addrs *h, size_t i)
{
	return h->local[i] || h->nlocal == 0;
}

/* --- rdns -------------------------------------------------------------- */

struct doctor_iprev {
	bool done;
	enum iprev_result r;
	char name[ADDR_DOMAIN_MAX + 1];
};

static void
doctor_iprev_cb(void *data, enum iprev_result r, const char *name)
{
	struct doctor_iprev *x = data;

	x->done = true;
	x->r = r;
	snprintf(x->name, sizeof(x->name), "%s", name);
}

/* Says what the PTR record holds when it does not lead back. */
static void
doctor_rdns_fail(struct doctor *d, const char *ip, const char *rev,
    const char *fix)
{
	struct doctor_ans a;

	doctor_query(d, rev, RESOLVER_PTR, &a);
	if (a.n == 0)
		doctor_report(d, DOCTOR_FAIL, "rdns", fix, "%s has no PTR "
		    "record (many receivers refuse such a sender)", ip);
	else
		doctor_report(d, DOCTOR_FAIL, "rdns", fix, "%s PTR %s, whose "
		    "A/AAAA do not lead back to %s (many receivers refuse "
		    "such a sender)", ip, a.rr[0].text, ip);
	doctor_ans_free(&a);
}

static void
doctor_rdns(struct doctor *d, const struct doctor_addrs *h)
{
	struct doctor_iprev x;
	struct iprev *ip;
	char fix[600], rev[128];
	size_t i;

	for (i = 0; i < h->n; i++) {
		if (!doctor_addr_used(h, i))
			continue;
		memset(&x, 0, sizeof(x));
		if (iprev_revname(h->a[i], strchr(h->a[i], ':') != NULL ?
		    "ip6.arpa" : "in-addr.arpa", rev, sizeof(rev)) < 0 ||
		    iprev_new(dns_resolver(d->dns), h->a[i], doctor_iprev_cb,
		    &x, &ip) < 0)
			continue;
		doctor_wait(d, &x.done);
		iprev_free(&ip);
		/* Only the address's owner (the provider) can set it. */
		snprintf(fix, sizeof(fix), "have the owner of %s publish "
		    "%s. IN PTR %s.", h->a[i], rev, d->host);
		if (!x.done || x.r == IPREV_TEMPERROR)
			doctor_report(d, DOCTOR_WARN, "rdns", "try again later",
			    "%s: the reverse lookup failed for now", h->a[i]);
		else if (x.r == IPREV_FAIL)
			doctor_rdns_fail(d, h->a[i], rev, fix);
		else if (strcasecmp(x.name, d->host) != 0)
			doctor_report(d, DOCTOR_WARN, "rdns", fix, "%s PTR %s, "
			    "not %s (the name in EHLO)", h->a[i], x.name,
			    d->host);
		else
			doctor_report(d, DOCTOR_OK, "rdns", NULL, "%s PTR %s, "
			    "and back", h->a[i], x.name);
	}
}

/* --- spf --------------------------------------------------------------- */

struct doctor_spf {
	bool done;
	enum spf_result r;
	char reason[128];
};

static void
doctor_spf_keep(struct doctor_spf *s, const struct spf_outcome *o)
{
	s->done = true;
	s->r = o->result;
	snprintf(s->reason, sizeof(s->reason), "%s",
	    o->reason != NULL ? o->reason : "");
}

static void
doctor_spf_cb(void *data, const struct spf_outcome *o)
{
	doctor_spf_keep(data, o);
}

/* What `postroom spf IP postmaster@DOMAIN HOST` says for each address
 * mail leaves from (RFC 7208 2.4: MAIL FROM of the domain). */
static void
doctor_spf(struct doctor *d, const struct doctor_addrs *h)
{
	struct doctor_spf s;
	struct spf_request req;
	struct spf_check *c;
	char sender[ADDR_MAX], fix[600];
	size_t i;
	int r;

	snprintf(sender, sizeof(sender), "postmaster@%s", d->domain);
	snprintf(fix, sizeof(fix), "publish %s. IN TXT \"v=spf1 mx -all\"",
	    d->domain);
	for (i = 0; i < h->n; i++) {
		if (!doctor_addr_used(h, i))
			continue;
		memset(&s, 0, sizeof(s));
		memset(&req, 0, sizeof(req));
		req.ip = h->a[i];
		req.sender = sender;
		req.helo = d->host;
		req.receiver = d->host;
		req.now = (uint64_t)time(NULL);
		c = NULL;
		r = spf_check_new(dns_resolver(d->dns), &req, doctor_spf_cb,
		    &s, &c);
		if (r == 1)
			doctor_spf_keep(&s, spf_check_outcome(c));
		else if (r == 0)
			doctor_wait(d, &s.done);
		spf_check_free(&c);
		if (!s.done)
			continue;
		if (s.r == SPF_PASS)
			doctor_report(d, DOCTOR_OK, "spf", NULL, "%s may send "
			    "for %s (pass, %s)", h->a[i], d->domain, s.reason);
		else if (s.r == SPF_TEMPERROR)
			doctor_report(d, DOCTOR_WARN, "spf", "try again later",
			    "%s for %s: temperror (%s)", h->a[i], d->domain,
			    s.reason);
		else if (s.r == SPF_NONE)
			doctor_report(d, DOCTOR_FAIL, "spf", fix, "%s has no "
			    "SPF record", d->domain);
		else
			doctor_report(d, DOCTOR_FAIL, "spf", fix, "%s may not "
			    "send for %s (%s, %s)", h->a[i], d->domain,
			    spf_result_str(s.r), s.reason);
	}
}

/* --- dkim -------------------------------------------------------------- */

static void
doctor_dkim_key(struct doctor *d, const struct dkim_key *k)
{
	struct doctor_ans a;
	struct buf txt;
	char name[400], check[100], *fix;
	size_t i;
	bool match = false;

	snprintf(name, sizeof(name), "%s._domainkey.%s", dkim_key_selector(k),
	    d->domain);
	snprintf(check, sizeof(check), "dkim %s", dkim_key_selector(k));
	buf_init(&txt, 16384);
	buf_printf(&txt, "publish %s. IN TXT \"", name);
	(void)dkim_key_txt(k, &txt);
	buf_printf(&txt, "\" (as `postroom dns %s` splits it)", d->domain);
	buf_append(&txt, "", 1);
	fix = (char *)txt.p;
	doctor_query(d, name, RESOLVER_TXT, &a);
	for (i = 0; i < a.n && !match; i++)
		match = dkim_key_txt_match(k, a.rr[i].text, a.rr[i].len);
	if (match)
		doctor_report(d, DOCTOR_OK, check, NULL, "%s holds the active "
		    "%s key", name, dkim_key_alg_name(dkim_key_alg(k)));
	else if (!doctor_ans_ok(&a))
		doctor_report(d, DOCTOR_FAIL, check, "check the domain's name "
		    "servers", "cannot look up %s: %s", name,
		    doctor_rcode_str(a.rcode));
	else if (a.n == 0)
		doctor_report(d, DOCTOR_FAIL, check, fix, "no TXT record at "
		    "%s: receivers cannot verify the signatures", name);
	else
		doctor_report(d, DOCTOR_FAIL, check, fix, "the TXT record at "
		    "%s does not hold the active key: signatures fail", name);
	doctor_ans_free(&a);
	buf_fini(&txt);
}

static void
doctor_dkim(struct doctor *d)
{
	struct dkim_key *keys[DKIM_KEYFILE_MAX];
	struct pr_err err;
	char fix[600];
	int i, n;

	pr_err_clear(&err);
	n = dkim_keyfile_load_active(d->cli->cfg.server.data_dir, d->domain,
	    keys, DKIM_KEYFILE_MAX, &err);
	if (n < 0) {
		doctor_report(d, DOCTOR_FAIL, "dkim",
		    "see `postroom dkim list`",
		    "the keys of %s: %s", d->domain, err.msg);
		return;
	}
	if (n == 0) {
		snprintf(fix, sizeof(fix), "`postroom dkim keygen %s`, publish "
		    "the record, then `postroom dkim activate %s SELECTOR`",
		    d->domain, d->domain);
		doctor_report(d, DOCTOR_WARN, "dkim", fix, "%s has no active "
		    "DKIM key: its mail goes out unsigned", d->domain);
		return;
	}
	for (i = 0; i < n; i++) {
		doctor_dkim_key(d, keys[i]);
		dkim_key_free(&keys[i]);
	}
}

/* --- dmarc ------------------------------------------------------------- */

/* Looks for the DMARC record at _dmarc.name (RFC 7489 6.1).  Returns
 * the number of DMARC records (with *rec the first that parses, *broken
 * set when one does not), or -1 when the lookup failed. */
static int
doctor_dmarc_at(struct doctor *d, const char *name, struct dmarc_record *rec,
    bool *broken, enum resolver_rcode *rc)
{
	struct dmarc_record r1;
	struct doctor_ans a;
	char q[300];
	size_t i;
	int n = 0, st;

	snprintf(q, sizeof(q), "_dmarc.%s", name);
	doctor_query(d, q, RESOLVER_TXT, &a);
	*rc = a.rcode;
	*broken = false;
	if (!doctor_ans_ok(&a))
		return -1;
	for (i = 0; i < a.n; i++) {
		st = dmarc_record_parse(a.rr[i].text, a.rr[i].len, &r1);
		if (st == PR_ENOENT)
			continue;
		if (n++ == 0 && st == 0)
			*rec = r1;
		if (st < 0)
			*broken = true;
	}
	doctor_ans_free(&a);
	return n;
}

static void
doctor_dmarc(struct doctor *d)
{
	struct dmarc_record rec;
	enum resolver_rcode rc;
	char fix[600], org[256];
	bool broken;
	int n;

	snprintf(fix, sizeof(fix), "publish _dmarc.%s. IN TXT \"v=DMARC1; "
	    "p=quarantine\"", d->domain);
	n = doctor_dmarc_at(d, d->domain, &rec, &broken, &rc);
	if (n < 0) {
		doctor_report(d, DOCTOR_FAIL, "dmarc", "check the domain's "
		    "name servers", "cannot look up _dmarc.%s: %s", d->domain,
		    doctor_rcode_str(rc));
		return;
	}
	/* RFC 7489 6.6.3: without a record of its own, a subdomain has
	 * its organisational domain's. */
	if (n == 0 && dmarc_org_domain(d->domain, org, sizeof(org)) == 0 &&
	    strcmp(org, d->domain) != 0 &&
	    (n = doctor_dmarc_at(d, org, &rec, &broken, &rc)) == 1 &&
	    !broken) {
		doctor_report(d, DOCTOR_OK, "dmarc", NULL, "no record at "
		    "_dmarc.%s; that of %s applies: p=%s", d->domain, org,
		    dmarc_policy_name(rec.sp));
		return;
	}
	if (n <= 0)
		doctor_report(d, DOCTOR_FAIL, "dmarc", fix, "no DMARC record "
		    "at _dmarc.%s", d->domain);
	else if (n > 1)
		doctor_report(d, DOCTOR_FAIL, "dmarc", fix, "%d DMARC records "
		    "at _dmarc.%s: receivers apply none (RFC 7489 6.6.3); "
		    "keep one", n, d->domain);
	else if (broken)
		doctor_report(d, DOCTOR_FAIL, "dmarc", fix, "the record at "
		    "_dmarc.%s does not parse (p= missing or a bad tag)",
		    d->domain);
	else
		doctor_report(d, DOCTOR_OK, "dmarc", NULL, "_dmarc.%s: p=%s%s",
		    d->domain, dmarc_policy_name(rec.p),
		    rec.p == DMARC_POLICY_NONE ? " (reports only)" : "");
}

/* --- mta-sts, tls-rpt -------------------------------------------------- */

/*
 * The optional TXT records of MTA-STS (RFC 8461 3.1) and TLS reporting
 * (RFC 8460 3): not published is fine; published, there must be exactly
 * one and it must parse, else senders ignore it.
 */
static void
doctor_txt_policy(struct doctor *d, const char *check, const char *label,
    int (*parse)(const char *, size_t, const char **), const char *example)
{
	struct doctor_ans a;
	const char *why = NULL, *w;
	char name[300], fix[600];
	size_t i, good = 0;
	int n = 0;

	snprintf(name, sizeof(name), "%s.%s", label, d->domain);
	snprintf(fix, sizeof(fix), "publish one record: %s. IN TXT \"%s\"",
	    name, example);
	doctor_query(d, name, RESOLVER_TXT, &a);
	if (!doctor_ans_ok(&a)) {
		doctor_report(d, DOCTOR_WARN, check, "check the domain's name "
		    "servers", "cannot look up %s: %s", name,
		    doctor_rcode_str(a.rcode));
		return;
	}
	for (i = 0; i < a.n; i++) {
		w = NULL;
		switch (parse(a.rr[i].text, a.rr[i].len, &w)) {
		case 0:
			n++;
			good = i;
			break;
		case PR_ENOENT:
			break;
		default:
			n++;
			why = w;
			break;
		}
	}
	if (n == 0)
		doctor_report(d, DOCTOR_OK, check, NULL, "not published at %s "
		    "(optional)", name);
	else if (n > 1)
		doctor_report(d, DOCTOR_FAIL, check, fix, "%d records at %s: "
		    "senders ignore them all", n, name);
	else if (why != NULL)
		doctor_report(d, DOCTOR_FAIL, check, fix, "the record at %s is "
		    "broken: %s", name, why);
	else
		doctor_report(d, DOCTOR_OK, check, NULL, "%s: \"%s\"", name,
		    a.rr[good].text);
	doctor_ans_free(&a);
}

/* --- certificate ------------------------------------------------------- */

/* The certificate as the daemons load it (cmd_check_prepare, common/
 * tls.c): clients refuse an expired one and one that does not name the
 * host they connect to (RFC 7817 3: the MX host name). */
static void
doctor_cert(struct doctor *d)
{
	const struct cfg *cfg = &d->cli->cfg;
	const struct net_tls *tls;
	struct net_tls_cert_info info;
	int64_t now = (int64_t)time(NULL), left;
	char when[32], fix[600];
	const char *why;

	snprintf(fix, sizeof(fix), "get a certificate for %s (e.g. from "
	    "Let's Encrypt) and set [tls] cert and key", d->host);
	if (cfg->tls.cert[0] == '\0') {
		doctor_report(d, DOCTOR_FAIL, "certificate", fix, "no [tls] "
		    "cert: no STARTTLS, 465 or 995");
		return;
	}
	tls = cmd_check_tls_ctx(&why);
	if (tls == NULL || net_tls_cert_info(tls, d->host, &info) < 0) {
		doctor_report(d, DOCTOR_FAIL, "certificate", fix, "[tls] cert "
		    "%s: %s", cfg->tls.cert, why != NULL ? why :
		    "not readable");
		return;
	}
	cmd_check_date(info.not_after, when);
	left = (info.not_after - now) / 86400;
	if (info.not_after <= now)
		doctor_report(d, DOCTOR_FAIL, "certificate", fix, "%s expired "
		    "on %s", cfg->tls.cert, when);
	else if (info.not_before > now)
		doctor_report(d, DOCTOR_FAIL, "certificate", fix, "%s is not "
		    "valid yet", cfg->tls.cert);
	else if (!info.names_host)
		doctor_report(d, DOCTOR_FAIL, "certificate", fix, "%s does not "
		    "name %s ([server] hostname)", cfg->tls.cert, d->host);
	else if (info.not_after - now < CLI_CERT_EXPIRY_WARN)
		doctor_report(d, DOCTOR_WARN, "certificate", "renew it (is "
		    "the renewal job running?)", "%s expires on %s, in %lld "
		    "days", cfg->tls.cert, when, (long long)left);
	else
		doctor_report(d, DOCTOR_OK, "certificate", NULL, "%s names %s, "
		    "valid until %s (%lld days)", cfg->tls.cert, d->host,
		    when, (long long)left);
}

/* --- postmaster -------------------------------------------------------- */

/* RFC 5321 4.5.1: postmaster@ every domain must reach someone; smtpd
 * takes the domain's own user or alias, then [server] postmaster. */
static void
doctor_postmaster(struct doctor *d)
{
	const char *pm = d->cli->cfg.server.postmaster;
	struct store *st = cli_store(d->cli);
	char addr[ADDR_MAX], fix[600];
	struct pr_err err;
	int kind;

	snprintf(addr, sizeof(addr), "postmaster@%s", d->domain);
	snprintf(fix, sizeof(fix), "set [server] postmaster to a user here, "
	    "or `postroom alias add %s USER@%s`", addr, d->domain);
	pr_err_clear(&err);
	kind = store_resolve(st, addr, cli_resolve_ignore, NULL, &err);
	if (kind == STORE_RESOLVE_LOCAL) {
		doctor_report(d, DOCTOR_OK, "postmaster", NULL, "%s is a user "
		    "or alias here", addr);
		return;
	}
	if (kind < 0) {
		doctor_report(d, DOCTOR_FAIL, "postmaster", fix, "%s: %s",
		    addr, err.msg);
		return;
	}
	if (pm[0] == '\0') {
		doctor_report(d, DOCTOR_FAIL, "postmaster", fix, "%s reaches "
		    "nobody: no such user or alias and no [server] postmaster",
		    addr);
		return;
	}
	kind = store_resolve(st, pm, cli_resolve_ignore, NULL, &err);
	if (kind == STORE_RESOLVE_LOCAL)
		doctor_report(d, DOCTOR_OK, "postmaster", NULL, "%s goes to "
		    "[server] postmaster %s", addr, pm);
	else
		doctor_report(d, DOCTOR_FAIL, "postmaster", fix, "%s goes to "
		    "[server] postmaster %s, which is no user or alias here",
		    addr, pm);
}

/* --- the command ------------------------------------------------------- */

int
cmd_doctor(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], rpt[300];
	struct doctor_addrs h;
	struct doctor d;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return CLI_USAGE;
	if ((r = cli_hosted_domain(cli, argv[1], domain)) != CLI_OK)
		return r;
	memset(&d, 0, sizeof(d));
	d.cli = cli;
	d.domain = domain;
	d.host = cli->cfg.server.hostname;
	if (cli_dns_open(cli, &d.loop, &d.dns) != CLI_OK)
		return CLI_ERR;
	doctor_mx(&d);
	doctor_address(&d, &h);
	doctor_rdns(&d, &h);
	doctor_spf(&d, &h);
	doctor_dkim(&d);
	doctor_dmarc(&d);
	doctor_txt_policy(&d, "mta-sts", "_mta-sts", doctor_sts_record,
	    "v=STSv1; id=2026010101");
	snprintf(rpt, sizeof(rpt), "v=TLSRPTv1; rua=mailto:postmaster@%s",
	    domain);
	doctor_txt_policy(&d, "tls-rpt", "_smtp._tls", doctor_tlsrpt_record,
	    rpt);
	doctor_sts_policy(&d);
	doctor_cert(&d);
	doctor_dane(&d);
	doctor_probe_all(&d);
	doctor_postmaster(&d);
	dns_close(d.dns, NULL, NULL);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	uv_loop_close(&d.loop);
	if (d.fails > 0)
		return cli_fail("%s: %u check%s failed, %u warning%s", domain,
		    d.fails, d.fails == 1 ? "" : "s", d.warns,
		    d.warns == 1 ? "" : "s");
	return CLI_OK;
}
