/*
 * relay_sts.c - MTA-STS (RFC 8461) and the downgrade memory for one
 * delivery (see relay_sts.h, docs/OUTBOUND_TLS.md).
 *
 * Finding the policy: one store job reads the cached policy and the
 * memory of the domain; the TXT record _mta-sts.DOMAIN (3.1) comes from
 * the daemon's resolver (common/dns.c, [dns] resolver); when its id
 * differs from the cached one, or nothing unexpired is cached, the
 * policy is fetched from https://mta-sts.DOMAIN/.well-known/mta-sts.txt
 * (3.3) with libcurl, the host's address from our resolver pinned with
 * CURLOPT_RESOLVE.  The fetch is one blocking curl_easy_perform() on
 * libuv's thread pool: fetches are rare (one per domain per max_age)
 * and bounded in time and size, and a thread keeps libcurl's own
 * resolver and sockets off the loop without a second event machinery.
 * A new policy is cached through the store worker; a failed fetch or a
 * missing TXT record leaves an unexpired cached policy in effect (5.1).
 *
 * Applying it (4, 5): under enforce only MX hosts that match the policy
 * are used, each with STARTTLS and a certificate that verifies for the
 * MX host name against [relay] ca_file or the system store; a host that
 * fails is the next MX, and when none took the mail the reason of the
 * deferral says "TLS policy mta-sts: ".  Under testing delivery is
 * opportunistic and failures are only noted (relay_tlsrpt.h).
 *
 * The downgrade memory: a domain whose MX host gave us verified TLS is
 * remembered in the store; a later session to it in plaintext or with an
 * unverified certificate is logged ([relay] tls_memory = warn) or
 * refused like an enforced policy (enforce, "TLS policy tls-memory: ").
 */
#include "relay_int.h"
#include "relay_sts.h"
#include "relay_sts_fetch.h"
#include "relay_sts_policy.h"
#include "relay_tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "dns.h"
#include "xmalloc.h"

/* A verified session refreshes the memory once this long after the
 * last time it did. */
#define RELAY_TLS_MEMORY_REFRESH (24 * 3600)

struct relay_sts {
	struct relay_dlv *d;
	void (*done)(struct relay_dlv *d);
	struct relay_work work;
	char domain[RELAY_HOST_MAX];
	int64_t now;

	/* The store job's results. */
	int status;
	struct pr_err err;
	struct store_sts cached;
	bool cached_found;
	bool seen_found;
	int64_t seen_last;
	char seen_mx[RELAY_HOST_MAX];

	/* The lookup. */
	char txt_id[STS_ID_MAX + 1];
	bool txt_ok;
	char addr[INET6_ADDRSTRLEN + 2];
	bool tried_aaaa;
	uv_work_t fetch;
	struct sts_fetch fetch_job;
	int cancel;                 /* atomic: the runner stops */
	char ca_file[1024];
	char *body;
	size_t body_len;
	enum relay_tlsrpt_result fetch_res;
	char fetch_err[256];

	/* The policy in force. */
	enum sts_mode mode;
	struct sts_policy pol;
	char *text;                 /* '\n'-separated lines, for TLS-RPT */
	bool memory_put;            /* one memory write per delivery */

	/* The current session. */
	const char *pol_name;       /* "mta-sts", "tls-memory" or NULL */
	bool noted;
	char refused[RELAY_REPLY_MAX]; /* the policy's reason, or "" */
};

/* Cache writes and memory writes outlive the delivery. */
struct relay_sts_put {
	struct relay_work work;
	char domain[RELAY_HOST_MAX];
	char mx[RELAY_HOST_MAX];
	struct store_sts p;         /* p.policy NULL: a memory write */
	int64_t now;
};

int
relay_sts_global_init(void)
{
	return sts_fetch_global_init();
}

static void relay_sts_finish(struct relay_sts *s);

/* --- Store work -------------------------------------------------------- */

static void
relay_sts_get_run(struct relay_work *w, struct store *st)
{
	struct relay_sts *s = RELAY_CONTAINER(w, struct relay_sts, work);
	int r;

	r = store_sts_get(st, s->domain, &s->cached, &s->err);
	s->cached_found = r == 1;
	if (r >= 0)
		r = store_tls_seen_get(st, s->domain, s->now,
		    RELAY_TLS_MEMORY_KEEP, &s->seen_last, s->seen_mx,
		    sizeof(s->seen_mx), &s->err);
	s->seen_found = r == 1;
	s->status = r < 0 ? r : 0;
}

static void
relay_sts_put_run(struct relay_work *w, struct store *st)
{
	struct relay_sts_put *p = RELAY_CONTAINER(w, struct relay_sts_put, work);
	struct pr_err err;
	int r;

	if (p->p.policy != NULL)
		r = store_sts_put(st, p->domain, &p->p, &err);
	else
		r = store_tls_seen_put(st, p->domain, p->mx, p->now, &err);
	if (r < 0)
		log_err(NULL, "relay domain=%s TLS memory not written: %s",
		    p->domain, err.msg);
}

static void
relay_sts_put_done(struct relay_work *w)
{
	struct relay_sts_put *p = RELAY_CONTAINER(w, struct relay_sts_put, work);

	free(p->p.policy);
	free(p);
}

static void
relay_sts_put(struct relay *r, const char *domain, const char *mx,
    const struct store_sts *sp, int64_t now)
{
	struct relay_sts_put *p;

	if (r->stopping)
		return;
	p = xcalloc(1, sizeof(*p));
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	snprintf(p->mx, sizeof(p->mx), "%s", mx != NULL ? mx : "");
	if (sp != NULL) {
		p->p = *sp;
		p->p.policy = xstrdup(sp->policy);
	}
	p->now = now;
	relay_worker_submit(r->worker, &p->work, relay_sts_put_run,
	    relay_sts_put_done);
}

/* --- Notes for TLS-RPT -------------------------------------------------- */

static void
relay_sts_note(struct relay_sts *s, const char *mx,
    enum relay_tlsrpt_result res, const char *detail)
{
	struct relay_dlv *d = s->d;
	struct relay_tlsrpt_event ev;
	char ip[64] = "";

	memset(&ev, 0, sizeof(ev));
	ev.policy_domain = s->domain;
	if (s->mode != STS_MODE_NONE) {
		ev.policy_type = RELAY_TLSRPT_POLICY_STS;
		ev.policy_string = s->text;
	}
	ev.mx_host = mx;
	if (d->route.n > d->target && mx != NULL) {
		relay_dns_addr_str(&d->route.t[d->target], ip, sizeof(ip));
		ev.receiving_ip = ip;
	}
	if (d->conn != NULL)
		ev.sending_ip = net_conn_local(d->conn);
	ev.result = res;
	ev.detail = detail;
	relay_tlsrpt_note(d->r, &ev);
}

/* The RFC 8460 4.3.1 result for the session on d->conn that did not
 * verify (or whose handshake failed). */
static enum relay_tlsrpt_result
relay_sts_cert_result(const struct relay_dlv *d)
{
	switch (d->conn != NULL ? net_conn_tls_verify_kind(d->conn) :
	    NET_TLS_VERIFY_OTHER) {
	case NET_TLS_VERIFY_NAME:
		return RELAY_TLSRPT_CERTIFICATE_HOST_MISMATCH;
	case NET_TLS_VERIFY_EXPIRED:
		return RELAY_TLSRPT_CERTIFICATE_EXPIRED;
	case NET_TLS_VERIFY_UNTRUSTED:
		return RELAY_TLSRPT_CERTIFICATE_NOT_TRUSTED;
	default:
		return RELAY_TLSRPT_VALIDATION_FAILURE;
	}
}

/* --- The policy -------------------------------------------------------- */

/* Takes text as the policy in force (0), or says why not. */
static int
relay_sts_take(struct relay_sts *s, const char *text, size_t len,
    char *why, size_t whysz)
{
	size_t i, o = 0;

	if (sts_policy_parse(text, len, &s->pol, why, whysz) < 0)
		return PR_EINVAL;
	s->mode = s->pol.mode;
	free(s->text);
	s->text = xmalloc(len + 1);
	for (i = 0; i < len; i++)
		if (text[i] != '\r')
			s->text[o++] = text[i];
	while (o > 0 && s->text[o - 1] == '\n')
		o--;
	s->text[o] = '\0';
	return 0;
}

static bool
relay_sts_cache_usable(const struct relay_sts *s)
{
	return s->cached_found && s->cached.expires > s->now;
}

/* Falls back to the cached policy after a failed fetch (5.1), or to
 * none. */
static void
relay_sts_use_cache(struct relay_sts *s, const char *after)
{
	char why[128];

	if (relay_sts_cache_usable(s) &&
	    relay_sts_take(s, s->cached.policy, strlen(s->cached.policy), why,
	    sizeof(why)) == 0) {
		log_info(s->d->sid, "relay domain=%s mta-sts=%s id=%s "
		    "source=cache expires=%lld%s%s", s->domain,
		    sts_mode_name(s->mode), s->cached.id,
		    (long long)s->cached.expires, after != NULL ? " after=" :
		    "", after != NULL ? after : "");
		return;
	}
	s->mode = STS_MODE_NONE;
}

static void
relay_sts_fetch_run(uv_work_t *req)
{
	struct relay_sts *s = req->data;

	(void)sts_fetch_run(&s->fetch_job);
}

static void
relay_sts_fetch_done(uv_work_t *req, int status)
{
	struct relay_sts *s = req->data;
	struct store_sts sp;
	char why[160];

	if (status == 0) {
		s->body_len = s->fetch_job.body_len;
		s->fetch_res = s->fetch_job.webpki ?
		    RELAY_TLSRPT_STS_WEBPKI_INVALID :
		    RELAY_TLSRPT_STS_POLICY_FETCH_ERROR;
		snprintf(s->fetch_err, sizeof(s->fetch_err), "%s",
		    s->fetch_job.err);
	}
	if (status < 0 && s->fetch_err[0] == '\0')
		snprintf(s->fetch_err, sizeof(s->fetch_err), "%s",
		    uv_strerror(status));
	if (s->fetch_err[0] == '\0' && relay_sts_take(s, s->body,
	    s->body_len, why, sizeof(why)) < 0) {
		s->fetch_res = RELAY_TLSRPT_STS_POLICY_INVALID;
		snprintf(s->fetch_err, sizeof(s->fetch_err), "invalid policy: "
		    "%s", why);
	}
	if (s->fetch_err[0] != '\0') {
		log_info(s->d->sid, "relay domain=%s mta-sts fetch failed: "
		    "%s", s->domain, s->fetch_err);
		relay_sts_note(s, NULL, s->fetch_res, s->fetch_err);
		relay_sts_use_cache(s, "fetch-failed");
		relay_sts_finish(s);
		return;
	}
	log_info(s->d->sid, "relay domain=%s mta-sts=%s id=%s source=fetched "
	    "max_age=%lld mx=%zu", s->domain, sts_mode_name(s->mode),
	    s->txt_id, (long long)s->pol.max_age, s->pol.n_mx);
	memset(&sp, 0, sizeof(sp));
	snprintf(sp.id, sizeof(sp.id), "%s", s->txt_id);
	snprintf(sp.mode, sizeof(sp.mode), "%s", sts_mode_name(s->mode));
	s->body[s->body_len] = '\0';
	sp.policy = s->body;
	sp.fetched = s->now;
	sp.expires = s->now + s->pol.max_age;
	relay_sts_put(s->d->r, s->domain, NULL, &sp, s->now);
	relay_sts_finish(s);
}

static void
relay_sts_fetch_start(struct relay_sts *s)
{
	int r;

	snprintf(s->ca_file, sizeof(s->ca_file), "%s",
	    s->d->r->cfg->relay.ca_file);
	s->body = xmalloc(STS_POLICY_MAX + 1);
	s->body_len = 0;
	memset(&s->fetch_job, 0, sizeof(s->fetch_job));
	s->fetch_job.domain = s->domain;
	s->fetch_job.addr = s->addr;
	s->fetch_job.ca_file = s->ca_file;
	s->fetch_job.cancel = &s->cancel;
	s->fetch_job.body = s->body;
	s->fetch_res = RELAY_TLSRPT_STS_POLICY_FETCH_ERROR;
	s->fetch.data = s;
	if ((r = uv_queue_work(s->d->r->loop, &s->fetch, relay_sts_fetch_run,
	    relay_sts_fetch_done)) < 0) {
		snprintf(s->fetch_err, sizeof(s->fetch_err), "%s",
		    uv_strerror(r));
		relay_sts_fetch_done(&s->fetch, r);
	}
}

static void
relay_sts_addr_cb(void *data, const struct resolver_answer *ans)
{
	struct relay_sts *s = data;
	char name[RELAY_HOST_MAX + 16];

	if (ans->rcode == RESOLVER_NOERROR && ans->n > 0) {
		if (ans->rr[0].type == RESOLVER_A)
			inet_ntop(AF_INET, ans->rr[0].u.a, s->addr,
			    sizeof(s->addr));
		else {
			s->addr[0] = '[';
			inet_ntop(AF_INET6, ans->rr[0].u.aaaa, s->addr + 1,
			    sizeof(s->addr) - 2);
			strcat(s->addr, "]");
		}
		relay_sts_fetch_start(s);
		return;
	}
	snprintf(name, sizeof(name), "mta-sts.%s", s->domain);
	if (!s->tried_aaaa && !s->d->r->stopping &&
	    ans->rcode == RESOLVER_NOERROR) {
		s->tried_aaaa = true;
		if (resolver_query(dns_resolver(s->d->r->dnsd), name,
		    RESOLVER_AAAA, relay_sts_addr_cb, s) == 0)
			return;
	}
	snprintf(s->fetch_err, sizeof(s->fetch_err), "%s has no address",
	    name);
	log_info(s->d->sid, "relay domain=%s mta-sts fetch failed: %s",
	    s->domain, s->fetch_err);
	relay_sts_note(s, NULL, RELAY_TLSRPT_STS_POLICY_FETCH_ERROR,
	    s->fetch_err);
	relay_sts_use_cache(s, "fetch-failed");
	relay_sts_finish(s);
}

/* The TXT answer at _mta-sts.DOMAIN (3.1). */
static void
relay_sts_txt_cb(void *data, const struct resolver_answer *ans)
{
	struct relay_sts *s = data;
	const char *recs[DNS_ANSWER_MAX];
	size_t lens[DNS_ANSWER_MAX];
	char *joined[DNS_ANSWER_MAX];
	char name[RELAY_HOST_MAX + 16];
	const char *why = "no record";
	size_t i, k, n = 0, len;

	if (s->d->r->stopping) {
		relay_sts_finish(s);
		return;
	}
	for (i = 0; i < ans->n && n < DNS_ANSWER_MAX; i++) {
		const struct resolver_txt *t = &ans->rr[i].u.txt;
		char *o;

		if (ans->rr[i].type != RESOLVER_TXT)
			continue;
		for (len = 0, k = 0; k < t->n; k++)
			len += t->len[k];
		o = joined[n] = xmalloc(len + 1);
		for (k = 0; k < t->n; k++) {
			memcpy(o, t->s[k], t->len[k]);
			o += t->len[k];
		}
		*o = '\0';
		recs[n] = joined[n];
		lens[n++] = len;
	}
	s->txt_ok = n > 0 &&
	    sts_txt_parse(recs, lens, n, s->txt_id, &why) == 0;
	for (i = 0; i < n; i++)
		free(joined[i]);
	if (!s->txt_ok) {
		/* 5.1: without a (valid) record a cached policy that has
		 * not expired stays in effect. */
		log_debug(s->d->sid, "relay domain=%s mta-sts TXT: %s",
		    s->domain, ans->rcode == RESOLVER_NOERROR ? why :
		    ans->rcode == RESOLVER_NXDOMAIN ? "NXDOMAIN" :
		    "lookup failed");
		relay_sts_use_cache(s, NULL);
		relay_sts_finish(s);
		return;
	}
	if (relay_sts_cache_usable(s) && strcmp(s->cached.id, s->txt_id) == 0) {
		relay_sts_use_cache(s, NULL);
		relay_sts_finish(s);
		return;
	}
	/* 3.3: no policy cached, an expired one, or a new id: fetch. */
	snprintf(name, sizeof(name), "mta-sts.%s", s->domain);
	if (resolver_query(dns_resolver(s->d->r->dnsd), name, RESOLVER_A,
	    relay_sts_addr_cb, s) < 0) {
		relay_sts_use_cache(s, NULL);
		relay_sts_finish(s);
	}
}

static void
relay_sts_get_done(struct relay_work *w)
{
	struct relay_sts *s = RELAY_CONTAINER(w, struct relay_sts, work);
	struct relay *r = s->d->r;
	char name[RELAY_HOST_MAX + 16];

	if (s->status < 0)
		log_err(s->d->sid, "relay domain=%s TLS policy cache: %s",
		    s->domain, s->err.msg);
	if (!r->cfg->relay.mta_sts || r->stopping) {
		relay_sts_finish(s);
		return;
	}
	snprintf(name, sizeof(name), "_mta-sts.%s", s->domain);
	if (resolver_query(dns_resolver(r->dnsd), name, RESOLVER_TXT,
	    relay_sts_txt_cb, s) < 0) {
		relay_sts_use_cache(s, NULL);
		relay_sts_finish(s);
	}
}

static void
relay_sts_finish(struct relay_sts *s)
{
	struct relay_dlv *d = s->d;

	free(s->body);
	s->body = NULL;
	free(s->cached.policy);
	s->cached.policy = NULL;
	s->done(d);
}

void
relay_sts_start(struct relay_dlv *d, void (*done)(struct relay_dlv *d))
{
	struct relay_sts *s = xcalloc(1, sizeof(*s));
	char *p;

	s->d = d;
	s->done = done;
	s->now = relay_now();
	snprintf(s->domain, sizeof(s->domain), "%s", d->domain);
	/* The store and TLS-RPT key domains in lower case. */
	for (p = s->domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	d->sts = s;
	relay_worker_submit(d->r->worker, &s->work, relay_sts_get_run,
	    relay_sts_get_done);
}

/* --- Applying it ------------------------------------------------------- */

static bool
relay_sts_remembered(const struct relay_sts *s)
{
	return s->seen_found;
}

bool
relay_sts_target(struct relay_dlv *d, const struct relay_target *t)
{
	struct relay_sts *s = d->sts;

	if (s == NULL)
		return true;
	s->pol_name = NULL;
	s->noted = false;
	s->refused[0] = '\0';
	d->tls_verify = false;
	if (d->dane_host != NULL) {
		/* RFC 8461 2: a host with usable TLSA records is DANE's
		 * (relay_dane.c); the policy is not applied, nor noted. */
		s->noted = true;
		return true;
	}
	d->params.tls_required = false;
	if (s->mode != STS_MODE_NONE && !sts_mx_match(&s->pol, t->host)) {
		relay_sts_note(s, t->host, RELAY_TLSRPT_VALIDATION_FAILURE,
		    "mx-not-in-policy");
		if (s->mode == STS_MODE_ENFORCE) {
			/* RFC 8461 4.1: a host the policy does not name is
			 * not used. */
			snprintf(d->last_error, sizeof(d->last_error),
			    "TLS policy mta-sts: no MX host matches the "
			    "policy (%s)", t->host);
			log_info(d->sid, "relay msgid=%s host=%s "
			    "status=skipped reason=\"%s\"", d->m->job.msgid,
			    t->host, d->last_error);
			return false;
		}
	}
	if (s->mode == STS_MODE_ENFORCE)
		s->pol_name = "mta-sts";
	else if (relay_sts_remembered(s) &&
	    d->r->cfg->relay.tls_memory == CFG_TLS_MEMORY_ENFORCE)
		s->pol_name = "tls-memory";
	if (s->pol_name != NULL) {
		/* RFC 8461 5: STARTTLS, and a certificate that verifies for
		 * the MX host name (RFC 6125), or the next MX. */
		d->tls_verify = true;
		d->params.tls_required = true;
		d->plaintext_only = false;
	}
	return true;
}

static void
relay_sts_refuse(struct relay_dlv *d, const char *why)
{
	struct relay_sts *s = d->sts;

	snprintf(s->refused, sizeof(s->refused), "TLS policy %s: %s: %s",
	    s->pol_name, d->peer, why);
	snprintf(d->last_error, sizeof(d->last_error), "%s", s->refused);
	relay_msg_trace(d->m, "policy=%s", s->pol_name);
}

void
relay_sts_tls_failed(struct relay_dlv *d, const char *why)
{
	struct relay_sts *s = d->sts;

	if (s == NULL || s->noted)
		return;
	s->noted = true;
	relay_sts_note(s, d->route.t[d->target].host,
	    relay_sts_cert_result(d), why);
	if (s->pol_name != NULL)
		relay_sts_refuse(d, why);
}

void
relay_sts_next_host(struct relay_dlv *d)
{
	struct relay_sts *s = d->sts;

	if (s == NULL || s->pol_name == NULL)
		return;
	if (s->refused[0] != '\0') {
		snprintf(d->last_error, sizeof(d->last_error), "%s",
		    s->refused);
		return;
	}
	/* relay_client.c's words for a server without STARTTLS when TLS
	 * is required. */
	if (s->noted || d->client.tls_active ||
	    strstr(d->client.error, "offers no STARTTLS") == NULL)
		return;
	s->noted = true;
	relay_sts_note(s, d->route.t[d->target].host,
	    RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED, NULL);
	relay_sts_refuse(d, "STARTTLS not offered");
}

static void
relay_sts_downgrade(struct relay_dlv *d, const char *what)
{
	struct relay_sts *s = d->sts;

	log_warn(d->sid, "relay msgid=%s domain=%s host=%s TLS downgrade: %s; "
	    "verified TLS with %s before", d->m->job.msgid, s->domain,
	    d->peer, what, s->seen_mx);
}

void
relay_sts_tls_ok(struct relay_dlv *d)
{
	struct relay_sts *s = d->sts;
	const char *host;
	char why[160];

	if (s == NULL || s->noted)
		return;
	s->noted = true;
	host = d->route.t[d->target].host;
	if (net_conn_tls_verified(d->conn)) {
		relay_sts_note(s, host, RELAY_TLSRPT_SUCCESS, NULL);
		if (!s->memory_put && (!s->seen_found ||
		    s->now - s->seen_last >= RELAY_TLS_MEMORY_REFRESH)) {
			s->memory_put = true;
			relay_sts_put(d->r, s->domain, host, NULL, s->now);
		}
		return;
	}
	snprintf(why, sizeof(why), "certificate not verified: %s",
	    net_conn_tls_verify_error(d->conn));
	relay_sts_note(s, host,
	    relay_sts_cert_result(d), why);
	if (relay_sts_remembered(s))
		relay_sts_downgrade(d, why);
}

void
relay_sts_transaction(struct relay_dlv *d)
{
	struct relay_sts *s = d->sts;

	if (s == NULL || s->noted || d->conn == NULL ||
	    net_conn_tls_active(d->conn))
		return;
	s->noted = true;
	/* Plaintext after a failed handshake was our choice: the failure
	 * was noted with that session. */
	if (!d->plaintext_only)
		relay_sts_note(s, d->route.t[d->target].host,
		    RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED, NULL);
	if (relay_sts_remembered(s))
		relay_sts_downgrade(d, d->plaintext_only ?
		    "no TLS after a failed handshake" : "no TLS");
}

void
relay_sts_abort(struct relay_dlv *d)
{
	if (d->sts != NULL)
		__atomic_store_n(&d->sts->cancel, 1, __ATOMIC_RELAXED);
}

const char *
relay_sts_dsn(const struct relay_dlv *d)
{
	/* RFC 3463 3.8: X.7.5 "cryptographic failure". */
	return strncmp(d->last_error, "TLS policy ", 11) == 0 ? "4.7.5" :
	    "4.4.1";
}

void
relay_sts_free(struct relay_dlv *d)
{
	struct relay_sts *s = d->sts;

	if (s == NULL)
		return;
	free(s->text);
	free(s->body);
	free(s->cached.policy);
	free(s);
	d->sts = NULL;
}
