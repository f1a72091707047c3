/*
 * dns.c - resolver.h over c-ares on libuv.
 *
 * c-ares tells which sockets it wants watched (sock_state_cb); each gets
 * a uv_poll_t that calls ares_process_fd, and one timer drives c-ares'
 * own retransmissions and timeouts.  Queries are built here and sent
 * with ares_send(), answers parsed here: c-ares only carries bytes, so
 * every record type reaches the caller as the server gave it.  Answers
 * are kept for their TTL (dns_cache.h) and a question asked again within
 * it is answered from the loop without a query.  The relay asks the same
 * channel directly (dns_channel()), past the cache.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>

#include "dns_cache.h"
#include "tlsa.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

#define DNS_TYPE_CNAME 5
#define DNS_CLASS_IN 1
/* RFC 6891 6.2.5: a UDP payload size that avoids fragmentation. */
#define DNS_EDNS_SIZE 1232

struct dns_sock {
	uv_poll_t poll;
	ares_socket_t fd;
	struct dns *d;
	struct dns_sock *next;
};

struct dns_query {
	struct dns *d;
	resolver_cb cb;
	void *data;
	enum resolver_type type;
	char name[256];           /* the name asked for now (CNAME target) */
	unsigned cnames;          /* CNAMEs followed so far */
	uint64_t deadline;        /* uv_now: the caller's answer by then */
	bool cancelled;           /* no answer to the caller any more */
	bool insecure;            /* a link of the chain came without AD */
	bool linked;              /* in d->queries: the caller waits */
	int sync_rcode;           /* set when c-ares failed at once */
	struct dns_query *prev, *next;
	/* An answer from the cache, to be read from the loop. */
	uint8_t *hit;
	size_t hit_len;
	uint32_t hit_age;         /* seconds it has been kept */
	struct dns_query *hit_next;
};

struct dns {
	struct resolver res;      /* first: the resolver.h view */
	uv_loop_t *loop;
	ares_channel channel;
	unsigned timeout_ms;      /* per lookup, CNAMEs followed included */
	uv_timer_t timer;         /* c-ares timeouts */
	uv_timer_t later;         /* answers that must not come at once */
	struct dns_sock *socks;
	/* Queries whose callers wait, oldest first: a deadline is one
	 * timeout after the lookup began, so the list is in the order
	 * they pass.  A cancelled query leaves the list but stays with
	 * c-ares until its callback. */
	struct dns_query *queries, *queries_last;
	struct dns_query *deferred;
	struct dns_query *hits;   /* answered from the cache, in d->queries */
	struct dns_cache *cache;
	unsigned open_handles;
	bool closing, in_send;
	void (*done_cb)(void *data);
	void *done_data;
};

static void dns_schedule(struct dns *d);

/* ---------------------------------------------------------------------
 * c-ares on the loop
 */

static void
dns_maybe_done(struct dns *d)
{
	if (!d->closing || d->open_handles > 0)
		return;
	if (d->done_cb != NULL)
		d->done_cb(d->done_data);
	dns_cache_free(d->cache);
	free(d);
}

static void
dns_handle_closed(uv_handle_t *h)
{
	struct dns *d = h->data;

	d->open_handles--;
	dns_maybe_done(d);
}

static void
dns_poll_closed(uv_handle_t *h)
{
	struct dns_sock *s = h->data;
	struct dns *d = s->d;

	free(s);
	d->open_handles--;
	dns_maybe_done(d);
}

static void
dns_poll_cb(uv_poll_t *p, int status, int events)
{
	struct dns_sock *s = p->data;
	struct dns *d = s->d;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	/* On a poll error let c-ares find out by reading and writing. */
	if (status < 0 || (events & UV_READABLE))
		rfd = s->fd;
	if (status < 0 || (events & UV_WRITABLE))
		wfd = s->fd;
	ares_process_fd(d->channel, rfd, wfd);
	dns_schedule(d);
}

static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock *s, **pp;
	int events = (readable ? UV_READABLE : 0) |
	    (writable ? UV_WRITABLE : 0);

	for (pp = &d->socks; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	s = *pp;
	if (events == 0) {
		if (s == NULL)
			return;
		*pp = s->next;
		uv_poll_stop(&s->poll);
		uv_close((uv_handle_t *)&s->poll, dns_poll_closed);
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->d = d;
		if (uv_poll_init_socket(d->loop, &s->poll, fd) < 0) {
			log_err(NULL, "dns: cannot watch socket %d", (int)fd);
			free(s);
			return;
		}
		s->poll.data = s;
		d->open_handles++;
		s->next = d->socks;
		d->socks = s;
	}
	uv_poll_start(&s->poll, events, dns_poll_cb);
}

static void dns_unlink(struct dns_query *q);

/*
 * Answers RESOLVER_TIMEOUT to every caller whose lookup has run out of
 * time.  c-ares may still be at it (each of several servers gets the
 * full retransmission schedule); the query stays with c-ares, cancelled,
 * until it gives up.
 */
static void
dns_expire(struct dns *d)
{
	struct resolver_answer ans = { RESOLVER_TIMEOUT, 0, NULL, false,
	    NULL };
	uint64_t now = uv_now(d->loop);
	struct dns_query *q;

	while ((q = d->queries) != NULL && q->deadline <= now) {
		dns_unlink(q);
		q->cancelled = true;
		q->cb(q->data, &ans);
	}
}

static void
dns_timer_cb(uv_timer_t *t)
{
	struct dns *d = t->data;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_expire(d);
	dns_schedule(d);
}

/* Arms the timer for c-ares' next timeout or the next deadline of a
 * lookup, whichever comes first. */
static void
dns_schedule(struct dns *d)
{
	struct timeval tv, *tvp;
	struct dns_query *q;
	uint64_t ms = UINT64_MAX, now;

	if (d->closing)
		return;
	tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp != NULL)
		ms = (uint64_t)tvp->tv_sec * 1000 +
		    (uint64_t)tvp->tv_usec / 1000;
	if ((q = d->queries) != NULL) {
		now = uv_now(d->loop);
		if (q->deadline <= now)
			ms = 0;
		else if (q->deadline - now < ms)
			ms = q->deadline - now;
	}
	if (ms == UINT64_MAX) {
		uv_timer_stop(&d->timer);
		return;
	}
	uv_timer_start(&d->timer, dns_timer_cb, ms ? ms : 1, 0);
}

/* ---------------------------------------------------------------------
 * Messages (RFC 1035 4.1)
 */

/* Builds a query for name and type into buf (with an EDNS OPT record,
 * RFC 6891 6.1.2).  Returns its length, or 0 when name is not a domain
 * name (RFC 1035 2.3.4: labels of 1..63 octets, 255 in all). */
static size_t
dns_build_query(const char *name, unsigned type, uint8_t *buf, size_t bufsz)
{
	size_t o = 12, n = strlen(name), i, lab;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || bufsz < 12 + n + 2 + 4 + 11)
		return 0;
	memset(buf, 0, 12);
	buf[2] = 0x01;          /* RD */
	/* AD: tell us whether the answer is DNSSEC-validated (RFC 6840
	 * 5.7), without asking for the signatures themselves (DO). */
	buf[3] = 0x20;
	buf[5] = 1;             /* QDCOUNT */
	buf[11] = 1;            /* ARCOUNT: the OPT record */
	i = 0;
	for (;;) {
		for (lab = 0; i + lab < n && name[i + lab] != '.'; lab++)
			;
		if (lab == 0 || lab > 63)
			return 0;
		buf[o++] = (uint8_t)lab;
		memcpy(buf + o, name + i, lab);
		o += lab;
		i += lab;
		if (i >= n)
			break;
		i++;    /* the dot */
	}
	buf[o++] = 0;
	buf[o++] = (uint8_t)(type >> 8);
	buf[o++] = (uint8_t)type;
	buf[o++] = 0;
	buf[o++] = DNS_CLASS_IN;
	/* OPT: root name, type 41, class = UDP payload size. */
	buf[o++] = 0;
	buf[o++] = 0;
	buf[o++] = 41;
	buf[o++] = DNS_EDNS_SIZE >> 8;
	buf[o++] = DNS_EDNS_SIZE & 0xff;
	memset(buf + o, 0, 6);
	o += 6;
	return o;
}

/* Reads the name at *off (compression pointers followed, RFC 1035
 * 4.1.4) into out as dotted text, advancing *off past it. */
static bool
dns_read_name(const uint8_t *m, size_t len, size_t *off, char *out,
    size_t outsz)
{
	size_t p = *off, o = 0;
	unsigned jumps = 0;
	bool jumped = false;

	for (;;) {
		unsigned l;

		if (p >= len)
			return false;
		l = m[p];
		if ((l & 0xc0) == 0xc0) {
			if (p + 1 >= len || ++jumps > 64)
				return false;
			if (!jumped)
				*off = p + 2;
			jumped = true;
			p = ((l & 0x3f) << 8) | m[p + 1];
			continue;
		}
		if (l & 0xc0)
			return false;
		p++;
		if (l == 0)
			break;
		if (p + l > len || o + l + 2 > outsz)
			return false;
		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, m + p, l);
		o += l;
		p += l;
	}
	out[o] = '\0';
	if (!jumped)
		*off = p;
	return true;
}

struct dns_rrinfo {
	char owner[256];
	unsigned type;
	uint32_t ttl;
	size_t rdata, rdlen;
};

/* What one answer carries, owned by the parser for one callback. */
struct dns_parsed {
	struct resolver_rr rr[DNS_ANSWER_MAX];
	char names[DNS_ANSWER_MAX][256];
	const uint8_t *txt_s[DNS_ANSWER_MAX][DNS_TXT_STRINGS_MAX];
	size_t txt_len[DNS_ANSWER_MAX][DNS_TXT_STRINGS_MAX];
	size_t n;
	bool ad;                  /* the header's AD bit (RFC 4035 3.2.3) */
	char owner[256];          /* the end of the CNAME chain */
};

static enum resolver_rcode
dns_rcode(unsigned rc)
{
	switch (rc) {
	case 0:
		return RESOLVER_NOERROR;
	case 1:
		return RESOLVER_FORMERR;
	case 3:
		return RESOLVER_NXDOMAIN;
	case 5:
		return RESOLVER_REFUSED;
	default:
		return RESOLVER_SERVFAIL;
	}
}

/* Fills one record of p from the rdata of ri; false to skip it. */
static bool
dns_fill_rr(const uint8_t *m, size_t len, const struct dns_rrinfo *ri,
    struct dns_parsed *p)
{
	struct resolver_rr *rr = &p->rr[p->n];
	size_t off = ri->rdata, end = ri->rdata + ri->rdlen, k = 0;

	memset(rr, 0, sizeof(*rr));
	rr->ttl = ri->ttl;
	switch (ri->type) {
	case RESOLVER_A:
		if (ri->rdlen != 4)
			return false;
		memcpy(rr->u.a, m + off, 4);
		break;
	case RESOLVER_AAAA:
		if (ri->rdlen != 16)
			return false;
		memcpy(rr->u.aaaa, m + off, 16);
		break;
	case RESOLVER_MX:
		if (ri->rdlen < 3)
			return false;
		rr->u.mx.pref = (uint16_t)(m[off] << 8 | m[off + 1]);
		off += 2;
		if (!dns_read_name(m, len, &off, p->names[p->n], 256))
			return false;
		rr->u.mx.host = p->names[p->n];
		break;
	case RESOLVER_PTR:
		if (!dns_read_name(m, len, &off, p->names[p->n], 256))
			return false;
		rr->u.ptr = p->names[p->n];
		break;
	case RESOLVER_TLSA: {
		struct tlsa_rr t;

		if (!tlsa_parse(m + off, ri->rdlen, &t)) {
			/* A record that is too short or too long for us is
			 * still a validated record: kept without data, it is
			 * unusable (RFC 7672 2.2: TLS required, not
			 * authenticated), never dropped, which would read as
			 * no TLSA records at all. */
			t.usage = ri->rdlen >= 3 ? m[off] : 255;
			t.selector = ri->rdlen >= 3 ? m[off + 1] : 255;
			t.mtype = ri->rdlen >= 3 ? m[off + 2] : 255;
			t.data = NULL;
			t.len = 0;
		}
		rr->u.tlsa.usage = t.usage;
		rr->u.tlsa.selector = t.selector;
		rr->u.tlsa.mtype = t.mtype;
		rr->u.tlsa.data = t.data;
		rr->u.tlsa.len = t.len;
		break;
	}
	case RESOLVER_TXT:
		/* RFC 1035 3.3.14: one or more <character-string>s. */
		while (off < end) {
			size_t l = m[off++];

			if (off + l > end || k == DNS_TXT_STRINGS_MAX)
				return false;
			p->txt_s[p->n][k] = m + off;
			p->txt_len[p->n][k] = l;
			k++;
			off += l;
		}
		rr->u.txt.n = k;
		rr->u.txt.s = p->txt_s[p->n];
		rr->u.txt.len = p->txt_len[p->n];
		break;
	default:
		return false;
	}
	rr->type = (enum resolver_type)ri->type;
	p->n++;
	return true;
}

/*
 * Reads an answer to q.  Records of q's type owned by q's name, or by
 * the end of the CNAME chain from it, go into p.  Returns the rcode, and
 * sets follow to the end of the chain when the answer stops at a CNAME
 * with no records for its target (to be asked for next).
 */
static enum resolver_rcode
dns_parse_answer(struct dns_query *q, const uint8_t *m, size_t len,
    struct dns_parsed *p, char *follow, size_t followsz)
{
	struct dns_rrinfo *ri;
	char target[256], tmp[256];
	size_t off = 12, i, an, qd, nri = 0;
	enum resolver_rcode rc;
	bool moved = false, again;
	unsigned steps;

	follow[0] = '\0';
	p->n = 0;
	p->ad = false;
	snprintf(p->owner, sizeof(p->owner), "%s", q->name);
	if (len < 12)
		return RESOLVER_SERVFAIL;
	rc = dns_rcode(m[3] & 0x0f);
	p->ad = (m[3] & 0x20) != 0;
	qd = (size_t)(m[4] << 8 | m[5]);
	an = (size_t)(m[6] << 8 | m[7]);
	for (i = 0; i < qd; i++) {
		if (!dns_read_name(m, len, &off, tmp, sizeof(tmp)) ||
		    off + 4 > len)
			return RESOLVER_SERVFAIL;
		off += 4;
	}
	if (rc != RESOLVER_NOERROR || an == 0)
		return rc;
	if (an > 256)
		an = 256;
	ri = xcalloc(an, sizeof(*ri));
	for (i = 0; i < an; i++) {
		struct dns_rrinfo *r = &ri[nri];

		if (!dns_read_name(m, len, &off, r->owner, sizeof(r->owner)) ||
		    off + 10 > len)
			break;
		r->type = (unsigned)(m[off] << 8 | m[off + 1]);
		r->ttl = (uint32_t)m[off + 4] << 24 |
		    (uint32_t)m[off + 5] << 16 | (uint32_t)m[off + 6] << 8 |
		    m[off + 7];
		r->rdlen = (size_t)(m[off + 8] << 8 | m[off + 9]);
		off += 10;
		r->rdata = off;
		if (off + r->rdlen > len)
			break;
		off += r->rdlen;
		/* Only class IN (RFC 1035 3.2.4). */
		if ((m[r->rdata - 8] << 8 | m[r->rdata - 7]) == DNS_CLASS_IN)
			nri++;
	}
	/* Follow the CNAME chain from the name asked for (RFC 1034
	 * 4.3.2); names compare without regard to case (RFC 4343). */
	snprintf(target, sizeof(target), "%s", q->name);
	steps = 0;
	do {
		again = false;
		for (i = 0; i < nri; i++) {
			size_t o2 = ri[i].rdata;

			if (ri[i].type != DNS_TYPE_CNAME ||
			    strcasecmp(ri[i].owner, target) != 0)
				continue;
			if (q->type == DNS_TYPE_CNAME)
				break;
			if (!dns_read_name(m, len, &o2, tmp, sizeof(tmp)))
				break;
			if (++steps + q->cnames > DNS_CNAME_MAX) {
				free(ri);
				return RESOLVER_SERVFAIL;
			}
			snprintf(target, sizeof(target), "%s", tmp);
			moved = again = true;
			break;
		}
	} while (again);
	q->cnames += steps;
	snprintf(p->owner, sizeof(p->owner), "%s", target);
	for (i = 0; i < nri && p->n < DNS_ANSWER_MAX; i++)
		if (ri[i].type == (unsigned)q->type &&
		    strcasecmp(ri[i].owner, target) == 0)
			dns_fill_rr(m, len, &ri[i], p);
	free(ri);
	if (p->n == 0 && moved)
		snprintf(follow, followsz, "%s", target);
	return rc;
}

/* ---------------------------------------------------------------------
 * Queries
 */

static void
dns_unlink(struct dns_query *q)
{
	struct dns *d = q->d;

	if (!q->linked)
		return;
	q->linked = false;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		d->queries_last = q->prev;
	q->prev = q->next = NULL;
}

/* The result of a lookup as the metrics name it (docs/LOGGING.md 6). */
static const char *
dns_result_word(enum resolver_rcode rc)
{
	switch (rc) {
	case RESOLVER_NOERROR: return "ok";
	case RESOLVER_NXDOMAIN: return "nxdomain";
	case RESOLVER_TIMEOUT: return "timeout";
	case RESOLVER_REFUSED: return "refused";
	case RESOLVER_FORMERR: return "formerr";
	default: return "servfail";
	}
}

static void
dns_deliver(struct dns_query *q, enum resolver_rcode rc,
    const struct dns_parsed *p)
{
	struct resolver_answer ans;

	dns_unlink(q);
	metrics_inc(METRICS_DNS_LOOKUPS, dns_result_word(rc));
	if (!q->cancelled) {
		ans.rcode = rc;
		ans.n = rc == RESOLVER_NOERROR && p != NULL ? p->n : 0;
		ans.rr = p != NULL ? p->rr : NULL;
		/* Validated only if every link of the chain was. */
		ans.secure = p != NULL && p->ad && !q->insecure;
		ans.name = p != NULL ? p->owner : NULL;
		q->cb(q->data, &ans);
	}
	free(q);
}

static void dns_later_cb(uv_timer_t *t);
static bool dns_send(struct dns_query *q);
static void dns_answer(struct dns_query *q, const uint8_t *m, size_t len,
    uint32_t age);

static void
dns_ares_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query *q = arg;
	struct dns *d = q->d;
	enum resolver_rcode rc;

	(void)timeouts;
	if (d->in_send) {
		/* From within ares_send(): report from the loop instead. */
		q->sync_rcode = status == ARES_ENOMEM ? RESOLVER_SERVFAIL :
		    RESOLVER_TIMEOUT;
		dns_unlink(q);
		q->next = d->deferred;
		d->deferred = q;
		uv_timer_start(&d->later, dns_later_cb, 0, 0);
		return;
	}
	if (status != ARES_SUCCESS || abuf == NULL) {
		switch (status) {
		case ARES_ESERVFAIL:
		case ARES_EBADRESP:
		case ARES_ENOMEM:
			rc = RESOLVER_SERVFAIL;
			break;
		case ARES_EREFUSED:
			rc = RESOLVER_REFUSED;
			break;
		case ARES_EFORMERR:
			rc = RESOLVER_FORMERR;
			break;
		case ARES_ENOTFOUND:
			rc = RESOLVER_NXDOMAIN;
			break;
		default:
			/* ETIMEOUT, ECONNREFUSED, EDESTRUCTION: no server
			 * answered. */
			rc = RESOLVER_TIMEOUT;
		}
		dns_deliver(q, rc, NULL);
		return;
	}
	/* Kept under the name asked for, each link of a CNAME chain on
	 * its own, so that a hit is read as this answer is now. */
	dns_cache_put(d->cache, q->name, (unsigned)q->type, abuf,
	    (size_t)alen, uv_now(d->loop));
	dns_answer(q, abuf, (size_t)alen, 0);
}

/* Reads the answer m[0..len) to q, kept for age seconds, and hands it
 * on, or asks for the next link of a CNAME chain. */
static void
dns_answer(struct dns_query *q, const uint8_t *m, size_t len, uint32_t age)
{
	struct dns *d = q->d;
	struct dns_parsed *p;
	enum resolver_rcode rc;
	char follow[256];
	size_t i;

	p = xmalloc(sizeof(*p));
	rc = dns_parse_answer(q, m, len, p, follow, sizeof(follow));
	if (!p->ad)
		q->insecure = true;
	/* RFC 1035 6.1.2: what was kept for a while has that much less
	 * time to live. */
	for (i = 0; i < p->n; i++)
		p->rr[i].ttl = p->rr[i].ttl > age ? p->rr[i].ttl - age : 0;
	if (follow[0] != '\0' && !q->cancelled && !d->closing) {
		/* The chain ends in a name this answer has nothing for:
		 * ask for it (RFC 1034 3.6.2), q staying where it is in
		 * the list of queries in flight.  The server of the zone
		 * decides how slowly each link comes: past the lookup's
		 * deadline no more are asked for. */
		free(p);
		snprintf(q->name, sizeof(q->name), "%s", follow);
		if (uv_now(d->loop) >= q->deadline)
			dns_deliver(q, RESOLVER_TIMEOUT, NULL);
		else if (!dns_send(q))
			dns_deliver(q, RESOLVER_SERVFAIL, NULL);
		return;
	}
	dns_deliver(q, rc, p);
	free(p);
}

static void
dns_later_cb(uv_timer_t *t)
{
	struct dns *d = t->data;
	struct dns_query *q;
	uint8_t *m;

	while ((q = d->hits) != NULL) {
		d->hits = q->hit_next;
		m = q->hit;
		q->hit = NULL;
		dns_answer(q, m, q->hit_len, q->hit_age);
		free(m);
	}
	while ((q = d->deferred) != NULL) {
		struct resolver_answer ans;

		d->deferred = q->next;
		metrics_inc(METRICS_DNS_LOOKUPS, dns_result_word(
		    (enum resolver_rcode)q->sync_rcode));
		if (!q->cancelled) {
			memset(&ans, 0, sizeof(ans));
			ans.rcode = (enum resolver_rcode)q->sync_rcode;
			q->cb(q->data, &ans);
		}
		free(q);
	}
}

static void
dns_link(struct dns_query *q)
{
	struct dns *d = q->d;

	q->linked = true;
	q->next = NULL;
	q->prev = d->queries_last;
	if (d->queries_last != NULL)
		d->queries_last->next = q;
	else
		d->queries = q;
	d->queries_last = q;
}

/* Hands the query for q->name to c-ares; q is in d->queries already, so
 * that an answer from within ares_send() finds it there. */
static bool
dns_send(struct dns_query *q)
{
	struct dns *d = q->d;
	uint8_t buf[300];
	size_t len;

	len = dns_build_query(q->name, (unsigned)q->type, buf, sizeof(buf));
	if (len == 0)
		return false;
	q->hit = dns_cache_get(d->cache, q->name, (unsigned)q->type,
	    uv_now(d->loop), &q->hit_len, &q->hit_age);
	if (q->hit != NULL) {
		/* Answered from the loop, never from within the caller's
		 * resolver_query() (resolver.h). */
		q->hit_next = d->hits;
		d->hits = q;
		uv_timer_start(&d->later, dns_later_cb, 0, 0);
		return true;
	}
	d->in_send = true;
	ares_send(d->channel, buf, (int)len, dns_ares_cb, q);
	d->in_send = false;
	dns_schedule(d);
	return true;
}

static int
dns_query_op(struct resolver *r, const char *name, enum resolver_type type,
    resolver_cb cb, void *data)
{
	struct dns *d = (struct dns *)r;
	struct dns_query *q;
	uint8_t buf[300];

	if (dns_build_query(name, (unsigned)type, buf, sizeof(buf)) == 0)
		return PR_EINVAL;
	q = xcalloc(1, sizeof(*q));
	q->d = d;
	q->cb = cb;
	q->data = data;
	q->type = type;
	q->deadline = uv_now(d->loop) + d->timeout_ms;
	snprintf(q->name, sizeof(q->name), "%s", name);
	if (d->closing) {
		q->sync_rcode = RESOLVER_TIMEOUT;
		q->next = d->deferred;
		d->deferred = q;
		uv_timer_start(&d->later, dns_later_cb, 0, 0);
		return 0;
	}
	dns_link(q);
	if (!dns_send(q)) {
		dns_unlink(q);
		free(q);
		return PR_EINVAL;
	}
	return 0;
}

static void
dns_cancel_op(struct resolver *r, void *data)
{
	struct dns *d = (struct dns *)r;
	struct dns_query *q, *next;

	for (q = d->queries; q != NULL; q = next) {
		next = q->next;
		if (q->data == data) {
			q->cancelled = true;
			dns_unlink(q);
		}
	}
	for (q = d->deferred; q != NULL; q = q->next)
		if (q->data == data)
			q->cancelled = true;
}

static const struct resolver_ops dns_ops = {
	dns_query_op,
	dns_cancel_op,
};

/* ---------------------------------------------------------------------
 * Life cycle
 */

int
dns_parse_server(const char *s, char *host, size_t hostsz, unsigned *port_r)
{
	const char *colon, *end;
	unsigned long port = 53;
	char *ep;
	size_t hl;
	uint8_t a[16];

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return PR_EINVAL;
		hl = (size_t)(end - s - 1);
		if (hl >= hostsz)
			return PR_EINVAL;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (end[1] == ':') {
			port = strtoul(end + 2, &ep, 10);
			if (*ep != '\0' || end[2] == '\0')
				return PR_EINVAL;
		} else if (end[1] != '\0') {
			return PR_EINVAL;
		}
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL;    /* a bare IPv6 address */
		hl = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (hl >= hostsz)
			return PR_EINVAL;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (colon != NULL) {
			port = strtoul(colon + 1, &ep, 10);
			if (*ep != '\0' || colon[1] == '\0')
				return PR_EINVAL;
		}
	}
	if (port == 0 || port > 65535)
		return PR_EINVAL;
	if (inet_pton(AF_INET, host, a) != 1 &&
	    inet_pton(AF_INET6, host, a) != 1)
		return PR_EINVAL;
	*port_r = (unsigned)port;
	return 0;
}

int
dns_new(uv_loop_t *loop, const char *server, unsigned timeout_ms,
    struct dns **d_r, struct pr_err *err)
{
	static bool lib_init;
	struct ares_options opts;
	struct dns *d;
	char host[64], csv[96];
	unsigned port;
	int optmask, rc;

	if (!lib_init) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
			return pr_err_set(err, PR_EIO, "c-ares: %s",
			    ares_strerror(rc));
		lib_init = true;
	}
	if (server[0] != '\0' &&
	    dns_parse_server(server, host, sizeof(host), &port) < 0)
		return pr_err_set(err, PR_EINVAL,
		    "[dns] resolver: bad value '%s' (ip[:port])", server);
	d = xcalloc(1, sizeof(*d));
	if ((d->cache = dns_cache_new(DNS_CACHE_ENTRIES)) == NULL) {
		free(d);
		return pr_err_set(err, PR_ENOMEM, "dns: out of memory");
	}
	d->res.ops = &dns_ops;
	d->loop = loop;
	d->timeout_ms = timeout_ms;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = d;
	/* Mail domains are absolute: no search list (RFC 5321 5.1 leaves
	 * local aliases of domain names to the user agent).  A SERVFAIL or
	 * REFUSED answer is tried at the next server, then reported. */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
	opts.ndomains = 0;
	opts.domains = NULL;
	/* c-ares doubles the wait on each round: t + 2t = timeout with one
	 * server; with several, each gets that, and dns_expire() ends the
	 * lookup at its deadline. */
	opts.tries = 2;
	opts.timeout = (int)(timeout_ms / 3 > 0 ? timeout_ms / 3 : 1);
	/* /etc/hosts too, for the relay's host lookups, unless a server
	 * of our own is named. */
	opts.lookups = (char *)(server[0] != '\0' ? "b" : "fb");
	optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_DOMAINS |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
	if ((rc = ares_init_options(&d->channel, &opts, optmask)) !=
	    ARES_SUCCESS) {
		dns_cache_free(d->cache);
		free(d);
		return pr_err_set(err, PR_EIO, "c-ares: %s",
		    ares_strerror(rc));
	}
	if (server[0] != '\0') {
		snprintf(csv, sizeof(csv), strchr(host, ':') ? "[%s]:%u" :
		    "%s:%u", host, port);
		if ((rc = ares_set_servers_ports_csv(d->channel, csv)) !=
		    ARES_SUCCESS) {
			ares_destroy(d->channel);
			dns_cache_free(d->cache);
			free(d);
			return pr_err_set(err, PR_EINVAL,
			    "[dns] resolver '%s': %s", server,
			    ares_strerror(rc));
		}
	}
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	uv_timer_init(loop, &d->later);
	d->later.data = d;
	d->open_handles = 2;
	*d_r = d;
	return 0;
}

struct resolver *
dns_resolver(struct dns *d)
{
	return &d->res;
}

ares_channel
dns_channel(struct dns *d)
{
	return d->channel;
}

void
dns_kick(struct dns *d)
{
	dns_schedule(d);
}

/* Destroys the channel from the loop, not from inside one of c-ares'
 * callbacks, where a caller may well decide to close. */
static void
dns_destroy_cb(uv_timer_t *t)
{
	struct dns *d = t->data;
	struct dns_sock *s;

	/* ares_destroy answers every query with ARES_EDESTRUCTION and
	 * closes the sockets (sock_state_cb closes their polls). */
	ares_destroy(d->channel);
	dns_later_cb(&d->later);
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		uv_poll_stop(&s->poll);
		uv_close((uv_handle_t *)&s->poll, dns_poll_closed);
	}
	uv_close((uv_handle_t *)&d->timer, dns_handle_closed);
	uv_close((uv_handle_t *)&d->later, dns_handle_closed);
}

void
dns_close(struct dns *d, void (*done_cb)(void *data), void *data)
{
	if (d->closing)
		return;
	d->done_cb = done_cb;
	d->done_data = data;
	d->closing = true;
	uv_timer_start(&d->timer, dns_destroy_cb, 0, 0);
}
