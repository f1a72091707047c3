/*
 * test_dns.c - common/dns.c against a DNS server of its own on loopback.
 *
 * The server answers from a small table and, unlike a recursive
 * resolver, never follows a CNAME itself, so the module has to ask for
 * the target (RFC 1034 3.6.2).  Its answers have a TTL of 60 s, and
 * NXDOMAIN comes without SOA: the first are kept (dns_cache.h), the
 * second not.  The .c file is included to check the list of queries in
 * flight (STYLE.md H.25).
 */
#include "../../common/dns.c"

#include "tap.h"

struct test_dns_zone {
	const char *name;
	unsigned type;       /* DNS_TYPE_CNAME or RESOLVER_A */
	const char *cname;   /* the target of a CNAME */
	uint8_t a[4];
};

/* One CNAME per answer: alias -> target, the loop l1 <-> l2, and the
 * loop c1 -> c2 -> ... -> c9 -> c1, longer than DNS_CNAME_MAX. */
static const struct test_dns_zone test_dns_zone[] = {
	{ "alias.test", DNS_TYPE_CNAME, "target.test", { 0 } },
	{ "target.test", RESOLVER_A, NULL, { 192, 0, 2, 1 } },
	{ "l1.test", DNS_TYPE_CNAME, "l2.test", { 0 } },
	{ "l2.test", DNS_TYPE_CNAME, "l1.test", { 0 } },
	{ "c1.test", DNS_TYPE_CNAME, "c2.test", { 0 } },
	{ "c2.test", DNS_TYPE_CNAME, "c3.test", { 0 } },
	{ "c3.test", DNS_TYPE_CNAME, "c4.test", { 0 } },
	{ "c4.test", DNS_TYPE_CNAME, "c5.test", { 0 } },
	{ "c5.test", DNS_TYPE_CNAME, "c6.test", { 0 } },
	{ "c6.test", DNS_TYPE_CNAME, "c7.test", { 0 } },
	{ "c7.test", DNS_TYPE_CNAME, "c8.test", { 0 } },
	{ "c8.test", DNS_TYPE_CNAME, "c9.test", { 0 } },
	{ "c9.test", DNS_TYPE_CNAME, "c1.test", { 0 } },
};

struct test_dns_server {
	uv_udp_t udp;
	unsigned port;
	unsigned queries;
	unsigned delay_ms;   /* before each answer */
	char buf[512];
};

/* One answer on its way, sent after the server's delay. */
struct test_dns_reply {
	uv_timer_t timer;
	uv_udp_send_t req;
	struct test_dns_server *s;
	struct sockaddr_storage to;
	uint8_t m[512];
	size_t len;
};

struct test_dns_result {
	bool done;
	struct resolver_answer ans;
	struct resolver_rr rr;
};

static size_t
test_dns_put_name(uint8_t *out, const char *name)
{
	size_t o = 0;

	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t l = dot != NULL ? (size_t)(dot - name) : strlen(name);

		out[o++] = (uint8_t)l;
		memcpy(out + o, name, l);
		o += l;
		name += l + (dot != NULL);
	}
	out[o++] = 0;
	return o;
}

static void
test_dns_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct test_dns_server *s = h->data;

	(void)size;
	*buf = uv_buf_init(s->buf, sizeof(s->buf));
}

static void
test_dns_reply_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
test_dns_send_cb(uv_udp_send_t *req, int status)
{
	struct test_dns_reply *x = req->data;

	(void)status;
	uv_close((uv_handle_t *)&x->timer, test_dns_reply_closed);
}

static void
test_dns_reply_cb(uv_timer_t *t)
{
	struct test_dns_reply *x = t->data;
	uv_buf_t out = uv_buf_init((char *)x->m, (unsigned)x->len);

	x->req.data = x;
	if (uv_udp_send(&x->req, &x->s->udp, &out, 1,
	    (const struct sockaddr *)&x->to, test_dns_send_cb) < 0)
		uv_close((uv_handle_t *)&x->timer, test_dns_reply_closed);
}

static void
test_dns_recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
    const struct sockaddr *from, unsigned flags)
{
	struct test_dns_server *s = udp->data;
	const uint8_t *q = (const uint8_t *)buf->base;
	struct test_dns_reply *x;
	char name[256];
	size_t off = 12, qend, o, i;
	uint8_t *m;

	(void)flags;
	if (nread < 12 || from == NULL)
		return;
	if (!dns_read_name(q, (size_t)nread, &off, name, sizeof(name)) ||
	    off + 4 > (size_t)nread)
		return;
	qend = off + 4;
	s->queries++;
	x = xcalloc(1, sizeof(*x));
	x->s = s;
	memcpy(&x->to, from, from->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	m = x->m;
	memcpy(m, q, qend);
	m[2] = 0x81;    /* QR, RD */
	m[3] = 0x80;    /* RA, NOERROR */
	m[6] = m[7] = m[8] = m[9] = m[10] = m[11] = 0;
	o = qend;
	for (i = 0; i < sizeof(test_dns_zone) / sizeof(test_dns_zone[0]);
	    i++) {
		const struct test_dns_zone *z = &test_dns_zone[i];

		if (strcasecmp(z->name, name) != 0)
			continue;
		m[7] = 1;
		o += test_dns_put_name(m + o, z->name);
		m[o++] = 0;
		m[o++] = (uint8_t)z->type;
		m[o++] = 0;
		m[o++] = DNS_CLASS_IN;
		memcpy(m + o, "\0\0\0\x3c", 4);   /* TTL 60 */
		o += 4;
		if (z->type == DNS_TYPE_CNAME) {
			size_t l = test_dns_put_name(m + o + 2, z->cname);

			m[o++] = 0;
			m[o++] = (uint8_t)l;
			o += l;
		} else {
			m[o++] = 0;
			m[o++] = 4;
			memcpy(m + o, z->a, 4);
			o += 4;
		}
		break;
	}
	if (m[7] == 0)
		m[3] |= 3;      /* NXDOMAIN */
	x->len = o;
	uv_timer_init(udp->loop, &x->timer);
	x->timer.data = x;
	uv_timer_start(&x->timer, test_dns_reply_cb, s->delay_ms, 0);
}

/* The loop under test: an answer from the cache comes from a timer, and
 * UV_RUN_ONCE would then go on to wait for I/O that never comes. */
static uv_loop_t *test_dns_loop;

static void
test_dns_cb(void *data, const struct resolver_answer *ans)
{
	struct test_dns_result *res = data;

	res->done = true;
	uv_stop(test_dns_loop);
	res->ans = *ans;
	if (ans->n > 0)
		res->rr = ans->rr[0];
}

static void
test_dns_run(uv_loop_t *loop, struct test_dns_result *res)
{
	while (!res->done && uv_run(loop, UV_RUN_ONCE) != 0)
		;
}

static unsigned
test_dns_in_flight(const struct dns *d)
{
	const struct dns_query *q;
	unsigned n = 0;

	/* Bounded, so that a list that loops on itself fails the test
	 * instead of hanging it. */
	for (q = d->queries; q != NULL && n < 100; q = q->next)
		n++;
	return n;
}

/* Two UDP sockets on loopback that take queries and never read them;
 * csv gets "127.0.0.1:P1,127.0.0.1:P2". */
static void
test_dns_silent_pair(uv_loop_t *loop, uv_udp_t u[2], char *csv,
    size_t csvsz)
{
	unsigned port[2];
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	int i, sslen;

	for (i = 0; i < 2; i++) {
		uv_udp_init(loop, &u[i]);
		uv_ip4_addr("127.0.0.1", 0, &sin);
		uv_udp_bind(&u[i], (const struct sockaddr *)&sin, 0);
		sslen = sizeof(ss);
		uv_udp_getsockname(&u[i], (struct sockaddr *)&ss, &sslen);
		port[i] = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	snprintf(csv, csvsz, "127.0.0.1:%u,127.0.0.1:%u", port[0], port[1]);
}

static void
test_dns_closed_cb(void *data)
{
	*(bool *)data = true;
}

int
main(void)
{
	uv_loop_t loop;
	struct test_dns_server srv;
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct pr_err err;
	struct dns *d;
	struct test_dns_result res;
	uv_udp_t silent[2];
	uint64_t t0, ms;
	char server[64];
	bool closed = false;

	uv_loop_init(&loop);
	test_dns_loop = &loop;
	memset(&srv, 0, sizeof(srv));
	uv_udp_init(&loop, &srv.udp);
	srv.udp.data = &srv;
	uv_ip4_addr("127.0.0.1", 0, &sin);
	uv_udp_bind(&srv.udp, (const struct sockaddr *)&sin, 0);
	uv_udp_getsockname(&srv.udp, (struct sockaddr *)&ss, &sslen);
	srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_udp_recv_start(&srv.udp, test_dns_alloc_cb, test_dns_recv_cb);
	snprintf(server, sizeof(server), "127.0.0.1:%u", srv.port);

	TAP_EQ_INT(dns_new(&loop, server, 3000, &d, &err), 0, "dns_new");

	/* An answer that stops at a CNAME: the target is asked for next,
	 * by the same query, which stays in the list once only. */
	memset(&res, 0, sizeof(res));
	TAP_EQ_INT(resolver_query(dns_resolver(d), "alias.test", RESOLVER_A,
	    test_dns_cb, &res), 0, "query alias.test");
	test_dns_run(&loop, &res);
	TAP_OK(res.done, "alias.test answered");
	TAP_EQ_INT(res.ans.rcode, RESOLVER_NOERROR, "alias.test NOERROR");
	TAP_EQ_INT(res.ans.n, 1, "alias.test: one A record, the target's");
	TAP_OK(res.ans.n == 1 && memcmp(res.rr.u.a, "\xc0\x00\x02\x01", 4) ==
	    0, "alias.test: 192.0.2.1");
	TAP_EQ_INT(srv.queries, 2, "two questions: the alias, the target");
	TAP_OK(d->queries == NULL, "no query left in flight");

	/* Asked again within the TTL: both links from the cache, answered
	 * from the loop all the same. */
	memset(&res, 0, sizeof(res));
	srv.queries = 0;
	TAP_EQ_INT(resolver_query(dns_resolver(d), "ALIAS.test", RESOLVER_A,
	    test_dns_cb, &res), 0, "query ALIAS.test again");
	TAP_OK(!res.done, "not answered within resolver_query()");
	test_dns_run(&loop, &res);
	TAP_EQ_INT(res.ans.rcode, RESOLVER_NOERROR, "cached: NOERROR");
	TAP_OK(res.ans.n == 1 && memcmp(res.rr.u.a, "\xc0\x00\x02\x01", 4) ==
	    0, "cached: 192.0.2.1");
	TAP_OK(res.ans.n == 1 && res.rr.ttl <= 60,
	    "cached: the TTL left (%u)", (unsigned)res.rr.ttl);
	TAP_EQ_INT(srv.queries, 0, "cached: no question to the server");
	TAP_OK(d->queries == NULL, "cached: no query left in flight");

	/* A cached answer whose caller cancels is not handed on. */
	memset(&res, 0, sizeof(res));
	TAP_EQ_INT(resolver_query(dns_resolver(d), "target.test", RESOLVER_A,
	    test_dns_cb, &res), 0, "query target.test, then cancel");
	resolver_cancel(dns_resolver(d), &res);
	while (d->hits != NULL && uv_run(&loop, UV_RUN_NOWAIT) != 0)
		;
	TAP_OK(!res.done && d->hits == NULL, "cancelled: no callback");

	/* NXDOMAIN without SOA is not kept (RFC 2308 5). */
	srv.queries = 0;
	memset(&res, 0, sizeof(res));
	resolver_query(dns_resolver(d), "none.test", RESOLVER_A, test_dns_cb,
	    &res);
	test_dns_run(&loop, &res);
	memset(&res, 0, sizeof(res));
	resolver_query(dns_resolver(d), "none.test", RESOLVER_A, test_dns_cb,
	    &res);
	test_dns_run(&loop, &res);
	TAP_EQ_INT(res.ans.rcode, RESOLVER_NXDOMAIN, "none.test NXDOMAIN");
	TAP_EQ_INT(srv.queries, 2, "NXDOMAIN without SOA: asked each time");

	/* A loop of CNAMEs over several answers ends at DNS_CNAME_MAX. */
	memset(&res, 0, sizeof(res));
	srv.queries = 0;
	TAP_EQ_INT(resolver_query(dns_resolver(d), "c1.test", RESOLVER_A,
	    test_dns_cb, &res), 0, "query c1.test");
	TAP_EQ_INT(test_dns_in_flight(d), 1, "one query in flight");
	test_dns_run(&loop, &res);
	TAP_OK(res.done, "c1.test answered");
	TAP_EQ_INT(res.ans.rcode, RESOLVER_SERVFAIL, "a CNAME loop fails");
	TAP_EQ_INT(srv.queries, DNS_CNAME_MAX + 1,
	    "one question per CNAME followed, then no more");
	TAP_EQ_INT(test_dns_in_flight(d), 0, "no query left in flight");

	/* So does a loop through answers from the cache. */
	memset(&res, 0, sizeof(res));
	srv.queries = 0;
	resolver_query(dns_resolver(d), "l1.test", RESOLVER_A, test_dns_cb,
	    &res);
	test_dns_run(&loop, &res);
	TAP_EQ_INT(res.ans.rcode, RESOLVER_SERVFAIL,
	    "a CNAME loop over cached links fails");
	TAP_EQ_INT(srv.queries, 2, "each link asked once, then cached");
	TAP_EQ_INT(test_dns_in_flight(d), 0, "no query left in flight");

	dns_close(d, test_dns_closed_cb, &closed);
	while (!closed && uv_run(&loop, UV_RUN_ONCE) != 0)
		;
	TAP_OK(closed, "dns_close completes");

	/* A zone whose server is slow with each link of a long chain does
	 * not hold the lookup longer than its timeout. */
	TAP_EQ_INT(dns_new(&loop, server, 300, &d, &err), 0,
	    "dns_new, 300 ms");
	memset(&res, 0, sizeof(res));
	srv.queries = 0;
	srv.delay_ms = 60;
	TAP_EQ_INT(resolver_query(dns_resolver(d), "c1.test", RESOLVER_A,
	    test_dns_cb, &res), 0, "query c1.test, slowly answered");
	test_dns_run(&loop, &res);
	TAP_EQ_INT(res.ans.rcode, RESOLVER_TIMEOUT,
	    "a chain slower than the timeout times out");
	TAP_OK(srv.queries <= DNS_CNAME_MAX,
	    "no more links asked for past the timeout (%u questions)",
	    srv.queries);
	TAP_EQ_INT(test_dns_in_flight(d), 0, "no query left in flight");
	closed = false;
	dns_close(d, test_dns_closed_cb, &closed);
	while (!closed && uv_run(&loop, UV_RUN_ONCE) != 0)
		;
	TAP_OK(closed, "dns_close completes");

	/* Two servers that never answer: c-ares gives each its own
	 * retransmissions, but the caller hears within the one timeout. */
	test_dns_silent_pair(&loop, silent, server, sizeof(server));
	TAP_EQ_INT(dns_new(&loop, "127.0.0.1:53", 400, &d, &err), 0,
	    "dns_new, 400 ms");
	TAP_EQ_INT(ares_set_servers_ports_csv(d->channel, server),
	    ARES_SUCCESS, "two silent servers: %s", server);
	memset(&res, 0, sizeof(res));
	t0 = uv_hrtime();
	TAP_EQ_INT(resolver_query(dns_resolver(d), "target.test", RESOLVER_A,
	    test_dns_cb, &res), 0, "query target.test, never answered");
	test_dns_run(&loop, &res);
	ms = (uv_hrtime() - t0) / 1000000;
	TAP_EQ_INT(res.ans.rcode, RESOLVER_TIMEOUT, "no answer: timeout");
	TAP_OK(ms >= 350 && ms < 650,
	    "answered after the one timeout, not one per server (%llu ms)",
	    (unsigned long long)ms);
	TAP_EQ_INT(test_dns_in_flight(d), 0, "the caller waits for nothing");
	closed = false;
	dns_close(d, test_dns_closed_cb, &closed);
	uv_close((uv_handle_t *)&silent[0], NULL);
	uv_close((uv_handle_t *)&silent[1], NULL);
	uv_close((uv_handle_t *)&srv.udp, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	TAP_OK(closed, "dns_close completes");
	TAP_EQ_INT(uv_loop_close(&loop), 0, "no handle left open");
	return tap_done();
}
