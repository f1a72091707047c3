/*
 * relay_dlv.c - one destination domain of one message (see relay_int.h).
 *
 * A delivery looks up its route (the domain's MX hosts, or the
 * smarthost), then connects to the route's addresses in order, running an
 * SMTP client session (relay_client.h, sans-I/O) over each connection
 * (common/net.h, client role: TCP, STARTTLS) until one host decides for every
 * recipient: RFC 5321 5.1, try the next MX on a 4xx or a connection
 * failure.  The body is streamed from the store in RELAY_CHUNK pieces,
 * dot-stuffed on the way, the DKIM-Signature field first.
 *
 * TLS to MX hosts is opportunistic (RFC 7435): used when offered, its
 * certificate logged as Verified or Untrusted, and a failed handshake
 * makes the host be tried once more in plaintext.  The smarthost gets
 * verified TLS or nothing (RFC 8314 3.3 and 5.1): STARTTLS or implicit
 * TLS ([relay] smarthost_tls), the chain and the configured name checked
 * (relay_tls.c), AUTH only inside such a session, and any failure defers
 * the message with the reason instead of going on in plaintext.
 *
 * A delivery only records verdicts into its message (m->rcpts); what
 * leaves the queue is decided once every delivery of the message ended
 * (relay_settle.c).  It holds references for its timer, its connection,
 * the route lookup and store work in flight, and is freed with the last.
 */
#include "relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define RELAY_CONNECT_TIMEOUT_MS (30 * 1000)
#define RELAY_TLS_TIMEOUT_MS (5 * 60 * 1000)

static void relay_dlv_next_target(struct relay_dlv *d);
static void relay_dlv_process(struct relay_dlv *d);

/* --- References and the end -------------------------------------------- */

static void
relay_dlv_free(struct relay_dlv *d)
{
	struct relay_msg *m = d->m;

	if (d->started) {
		if (d->prev != NULL)
			d->prev->next = d->next;
		else
			d->r->dlvs = d->next;
		if (d->next != NULL)
			d->next->prev = d->prev;
	}
	if (d->client_live)
		relay_client_fini(&d->client);
	store_body_close(&d->body);
	buf_fini(&d->wire);
	free(d->chunk);
	free(d->idx);
	free(d->crcpts);
	free(d->cmap);
	relay_dest_unref(d->r, d->dest);
	free(d);
	if (--m->n_dlv == 0)
		relay_settle_submit(m);
}

void
relay_dlv_unref(struct relay_dlv *d)
{
	if (--d->refs == 0 && d->ended)
		relay_dlv_free(d);
}

static void
relay_dlv_timer_closed(uv_handle_t *h)
{
	struct relay_dlv *d = h->data;

	relay_dlv_unref(d);
}

void
relay_dlv_timer_start(struct relay_dlv *d, void (*cb)(uv_timer_t *),
    uint64_t ms)
{
	if (d->timer_live)
		uv_timer_start(&d->timer, cb, ms, 0);
}

void
relay_dlv_end(struct relay_dlv *d)
{
	struct relay_msg *m = d->m;
	struct relay *r = d->r;
	size_t i;

	if (d->ended)
		return;
	d->ended = true;
	for (i = 0; i < d->n; i++) {
		struct relay_msg_rcpt *rc = &m->rcpts[d->idx[i]];

		if (rc->status != RELAY_RCPT_PENDING)
			continue;
		relay_msg_rcpt_set(rc, RELAY_RCPT_TEMP, d->last_error[0] ?
		    d->last_error : "delivery interrupted", NULL, "4.4.1");
		if (!r->stopping)
			log_info(d->sid, "relay msgid=%s to=<%s> "
			    "status=deferred dsn=4.4.1 reply=\"%s\"",
			    m->job.msgid, m->job.rcpts[d->idx[i]].address,
			    rc->reply);
	}
	if (d->started) {
		r->n_active--;
		d->dest->n_conns--;
	}
	if (d->timer_live) {
		d->timer_live = false;
		uv_timer_stop(&d->timer);
		uv_close((uv_handle_t *)&d->timer, relay_dlv_timer_closed);
	} else if (!d->started) {
		/* Never started: the only reference is the one taken at
		 * creation (a started delivery's belongs to its timer). */
		relay_dlv_unref(d);
	}
	relay_sched_pump(r);
}

/* --- Verdicts and timeouts --------------------------------------------- */

/* Takes the client's verdicts into the message.  Delivered recipients
 * leave the queue when the attempt settles: RFC 5321 6.1, the remote took
 * responsibility with its reply to the final dot; a crash before the
 * settle sends them again, the price of never losing one. */
static void
relay_dlv_record(struct relay_dlv *d)
{
	struct relay_msg *m = d->m;
	const char *host = d->route.n > d->target ?
	    d->route.t[d->target].host : "";
	char dsn[16];
	size_t i;

	if (d->client.result == RELAY_CLIENT_R_NEXT_HOST) {
		snprintf(d->last_error, sizeof(d->last_error), "%s: %s",
		    d->peer, d->client.error);
		relay_msg_trace(m, "error=\"%s\"", d->client.error);
	}
	for (i = 0; i < d->n_c; i++) {
		struct relay_client_rcpt *c = &d->crcpts[i];
		size_t k = d->idx[d->cmap[i]];
		struct relay_msg_rcpt *rc = &m->rcpts[k];

		if (c->status == RELAY_RCPT_PENDING)
			continue;
		relay_msg_rcpt_set(rc, c->status, c->reply, host, NULL);
		/* RFC 3461 5.2.2.2: past a server without DSN we can only
		 * say that it was relayed. */
		rc->no_dsn = !d->client.ext.dsn;
		log_info(d->sid, "relay msgid=%s to=<%s> relay=%s status=%s "
		    "dsn=%s reply=\"%s\"", m->job.msgid, c->address, d->peer,
		    relay_msg_status_word(c->status),
		    relay_msg_dsn(c->reply, c->status, dsn), c->reply);
		if (c->status == RELAY_RCPT_TEMP)
			snprintf(d->last_error, sizeof(d->last_error),
			    "host %s said: %s", d->peer, c->reply);
	}
}

/* Takes the client's pending events without sending anything (the
 * connection is failing): only a decision is recorded. */
static void
relay_dlv_settle(struct relay_dlv *d)
{
	enum relay_client_event ev;

	relay_client_sent(&d->client);
	while ((ev = relay_client_next_event(&d->client)) !=
	    RELAY_CLIENT_EV_NONE && ev != RELAY_CLIENT_EV_CLOSE)
		if (ev == RELAY_CLIENT_EV_DONE)
			relay_dlv_record(d);
}

void
relay_dlv_timeout_cb(uv_timer_t *t)
{
	struct relay_dlv *d = t->data;
	char why[RELAY_REPLY_MAX];

	if (d->conn == NULL)
		return;
	if (!d->client_live) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect to %s: timed out", d->peer);
		net_conn_close(d->conn, false);
		return;
	}
	snprintf(why, sizeof(why), "timeout in state %s",
	    relay_client_state_name(d->client.state));
	log_info(d->sid, "relay host=%s status=failed reason=\"%s\"",
	    d->peer, why);
	relay_client_abort(&d->client, why);
	relay_dlv_process(d);
}

/* --- Connection callbacks ---------------------------------------------- */

/* The transaction is over and the session stands: the session goes to
 * the pool for the next message to this destination (relay_pool.c) and
 * the delivery ends. */
static void
relay_dlv_release(struct relay_dlv *d)
{
	d->sess_msgs++;
	relay_pool_park(d);
	relay_dlv_end(d);
	relay_dlv_unref(d);     /* the connection's reference */
}

/* The recipients a session carries: those still without an answer. */
static void
relay_dlv_session_rcpts(struct relay_dlv *d)
{
	struct relay_msg *m = d->m;
	size_t i, k;

	d->n_c = 0;
	for (i = 0; i < d->n; i++) {
		k = d->idx[i];
		if (m->rcpts[k].status != RELAY_RCPT_PENDING)
			continue;
		d->crcpts[d->n_c].address = m->job.rcpts[k].address;
		d->crcpts[d->n_c].notify = m->job.rcpts[k].notify;
		d->crcpts[d->n_c].orcpt = m->job.rcpts[k].orcpt;
		d->cmap[d->n_c++] = i;
	}
	d->params.tls_possible = !d->plaintext_only;
}

/* Sends the client's output and acts on its events. */
static void
relay_dlv_process(struct relay_dlv *d)
{
	enum relay_client_event ev;
	char why[RELAY_REPLY_MAX];
	const struct net_tls *tls;
	const char *host;
	int r;

	for (;;) {
		if (d->client.out.len > 0 && d->conn != NULL)
			(void)net_conn_write(d->conn, d->client.out.p,
			    d->client.out.len);
		relay_client_sent(&d->client);
		ev = relay_client_next_event(&d->client);
		switch (ev) {
		case RELAY_CLIENT_EV_NONE:
			relay_dlv_timer_start(d, relay_dlv_timeout_cb,
			    relay_client_timeout_ms(&d->client));
			return;
		case RELAY_CLIENT_EV_STARTTLS:
			host = d->route.t[d->target].host;
			tls = d->tls_verify ? d->r->smart_tls : d->r->tls;
			relay_dlv_timer_start(d, relay_dlv_timeout_cb,
			    RELAY_TLS_TIMEOUT_MS);
			if ((r = net_conn_starttls_client(d->conn, tls, host,
			    d->tls_verify)) < 0 &&
			    d->client.state == RELAY_CLIENT_S_TLS) {
				d->tls_failed = true;
				snprintf(why, sizeof(why), "TLS failed: %s",
				    *net_conn_tls_error(d->conn) ?
				    net_conn_tls_error(d->conn) :
				    pr_strerror(r));
				log_info(d->sid, "relay msgid=%s host=%s "
				    "status=failed reason=\"%s\"",
				    d->m->job.msgid, d->peer, why);
				relay_client_abort(&d->client, why);
				continue;
			}
			return;
		case RELAY_CLIENT_EV_BODY:
			relay_dlv_body_start(d);
			return;
		case RELAY_CLIENT_EV_DONE:
			if (d->sess_msgs == 0 && d->client.mail_ok &&
			    !d->client.tls_active && !d->plaintext_only)
				relay_tlsrpt_note_plain(d);
			relay_dlv_record(d);
			if (d->client.state == RELAY_CLIENT_S_IDLE) {
				relay_dlv_release(d);
				return;
			}
			continue;
		case RELAY_CLIENT_EV_CLOSE:
			/* After QUIT: its line goes out first. */
			if (d->conn != NULL)
				net_conn_close(d->conn, true);
			return;
		}
	}
}

static void
relay_dlv_connect_cb(struct net_conn *c, int status)
{
	struct relay_dlv *d = net_conn_data(c);
	struct relay_msg *m = d->m;

	if (status < 0) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect to %s: %s", d->peer, uv_strerror(status));
		relay_msg_trace(m, "error=\"%s\"", uv_strerror(status));
		log_info(d->sid, "relay msgid=%s status=failed "
		    "reason=\"%s\"", m->job.msgid, d->last_error);
		return;
	}
	log_debug(d->sid, "relay msgid=%s connected host=%s", m->job.msgid,
	    d->peer);
	relay_dlv_session_rcpts(d);
	relay_client_init(&d->client, &d->params, d->crcpts, d->n_c);
	/* Kept for the next message to the destination (relay_pool.c). */
	d->client.reuse = true;
	d->sess_msgs = 0;
	d->client_live = true;
	relay_dlv_timer_start(d, relay_dlv_timeout_cb,
	    relay_client_timeout_ms(&d->client));
	/* Implicit TLS: the client asks for the handshake at once. */
	relay_dlv_process(d);
}

/*
 * Feeds buffered replies to the client and acts on them, for as long as
 * it takes some: the client stops at each event (the 354, a recipient's
 * result), and what a pipelining server sent after it is already here,
 * waiting for no further packet.
 */
void
relay_dlv_feed(struct relay_dlv *d)
{
	const uint8_t *p;
	size_t len;
	long used;

	/* The session may leave d for the pool, and d end, on the way. */
	d->refs++;
	while (d->client_live && d->conn != NULL &&
	    !net_conn_closing(d->conn)) {
		net_conn_input(d->conn, &p, &len);
		if (len == 0)
			break;
		used = relay_client_feed(&d->client, p, len);
		if (used > 0)
			net_conn_consume(d->conn, (size_t)used);
		if (!d->greeted && d->client.state != RELAY_CLIENT_S_GREETING &&
		    d->client.state != RELAY_CLIENT_S_QUIT &&
		    d->client.state != RELAY_CLIENT_S_CLOSED) {
			/* It greeted us: alive, whatever comes next. */
			d->greeted = true;
			relay_host_ok(d->r, d->hostkey);
		}
		relay_dlv_process(d);
		if (used <= 0)
			break;
	}
	relay_dlv_unref(d);
}

static void
relay_dlv_input_cb(struct net_conn *c)
{
	relay_dlv_feed(net_conn_data(c));
}

static void
relay_dlv_tls_cb(struct net_conn *c, int status)
{
	struct relay_dlv *d = net_conn_data(c);
	char why[RELAY_REPLY_MAX];

	if (!d->client_live || d->client.state != RELAY_CLIENT_S_TLS)
		return;
	if (status < 0) {
		/* The reason goes to the log and, as the last error, to the
		 * queue entry: "certificate verification failed: ...". */
		d->tls_failed = true;
		relay_tlsrpt_note_session(d, false);
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		    *net_conn_tls_error(c) ? net_conn_tls_error(c) :
		    "unknown error");
		log_info(d->sid, "relay msgid=%s host=%s status=failed "
		    "reason=\"%s\"", d->m->job.msgid, d->peer, why);
		relay_msg_trace(d->m, "tls=failed reason=\"%s\"", why);
		relay_client_abort(&d->client, why);
		relay_dlv_settle(d);
		return;
	}
	if (d->tls_verify && !net_conn_tls_verified(c)) {
		/* The handshake insisted on it; never AUTH without. */
		snprintf(why, sizeof(why), "TLS certificate not verified: %s",
		    net_conn_tls_verify_error(c));
		log_info(d->sid, "relay msgid=%s host=%s status=failed "
		    "reason=\"%s\"", d->m->job.msgid, d->peer, why);
		relay_client_abort(&d->client, why);
		relay_dlv_settle(d);
		net_conn_close(c, false);
		return;
	}
	relay_msg_trace(d->m, "tls=\"%s\" verify=%s%s%s%s",
	    net_conn_tls_desc(c),
	    net_conn_tls_verified(c) ? "ok" : "untrusted",
	    net_conn_tls_verified(c) ? "" : " verify_error=\"",
	    net_conn_tls_verified(c) ? "" : net_conn_tls_verify_error(c),
	    net_conn_tls_verified(c) ? "" : "\"");
	log_info(d->sid, "relay msgid=%s TLS connection established to %s: %s "
	    "(%s%s%s)", d->m->job.msgid, d->peer, net_conn_tls_desc(c),
	    net_conn_tls_verified(c) ? "Verified" : "Untrusted",
	    net_conn_tls_verified(c) ? "" : ": ",
	    net_conn_tls_verify_error(c));
	relay_tlsrpt_note_session(d, true);
	relay_client_tls_done(&d->client, true);
	relay_dlv_process(d);
}

static void
relay_dlv_drain_cb(struct net_conn *c)
{
	struct relay_dlv *d = net_conn_data(c);

	if (d->streaming && !d->body_eof && d->client_live &&
	    d->client.state == RELAY_CLIENT_S_BODY)
		relay_dlv_read_next(d);
}

static void
relay_dlv_error_cb(struct net_conn *c, int status)
{
	struct relay_dlv *d = net_conn_data(c);
	char msg[RELAY_REPLY_MAX];
	const char *why;

	if (!d->client_live)
		return;
	if (status == UV_EOF)
		why = "connection closed by the server";
	else if (status == UV_EPROTO)
		why = *net_conn_tls_error(c) ? net_conn_tls_error(c) :
		    "TLS error";
	else
		why = uv_strerror(status);
	/* A peer that breaks the connection in the middle of the handshake
	 * failed TLS as much as one that sends garbage: opportunistic TLS
	 * then tries the host again in plaintext (relay_dlv_close_cb). */
	if (d->client.state == RELAY_CLIENT_S_TLS)
		d->tls_failed = true;
	snprintf(msg, sizeof(msg), "lost connection with %s in state %s: %s",
	    d->peer, relay_client_state_name(d->client.state), why);
	if (d->client.state != RELAY_CLIENT_S_QUIT &&
	    d->client.state != RELAY_CLIENT_S_CLOSED)
		log_info(d->sid, "relay msgid=%s status=failed "
		    "reason=\"%s\"", d->m->job.msgid, msg);
	relay_client_abort(&d->client, msg);
	/* The connection is closing: only record, send nothing. */
	relay_dlv_settle(d);
}

static void
relay_dlv_close_cb(struct net_conn *c)
{
	struct relay_dlv *d = net_conn_data(c);
	bool next, again = false;

	d->conn = NULL;
	d->streaming = false;
	if (d->client_live) {
		/* Anything the client did not decide is decided now. */
		relay_client_abort(&d->client, d->last_error[0] ?
		    d->last_error : "connection closed");
		relay_dlv_settle(d);
		next = d->client.result == RELAY_CLIENT_R_NEXT_HOST;
		again = d->client.reuse_failed;
		relay_client_fini(&d->client);
		d->client_live = false;
	} else {
		next = true;    /* the connection itself failed */
	}
	if (!d->greeted && next && !d->r->stopping && !d->local_error)
		relay_host_failed(d->r, d->hostkey, d->last_error[0] ?
		    d->last_error : "connection failed");
	if (d->r->stopping || d->local_error || !next) {
		relay_dlv_end(d);
	} else if (again) {
		/* A kept session that did not last until this message: the
		 * same host on a new connection. */
		log_debug(d->sid, "relay msgid=%s kept session with %s "
		    "gone; connecting again", d->m->job.msgid, d->peer);
		relay_dlv_next_target(d);
	} else {
		if (d->tls_failed && !d->plaintext_only && !d->tls_verify) {
			/* Opportunistic TLS failed: this host once more in
			 * plaintext, like Postfix's smtp_tls_security_level
			 * "may". */
			log_info(d->sid, "relay msgid=%s TLS failed with %s; "
			    "trying again without TLS", d->m->job.msgid,
			    d->peer);
			d->plaintext_only = true;
		} else {
			d->plaintext_only = false;
			d->target++;
		}
		d->tls_failed = false;
		relay_dlv_next_target(d);
	}
	relay_dlv_unref(d);
}

static const struct net_conn_ops relay_dlv_conn_ops = {
	.connect_cb = relay_dlv_connect_cb,
	.input_cb = relay_dlv_input_cb,
	.tls_cb = relay_dlv_tls_cb,
	.drain_cb = relay_dlv_drain_cb,
	.error_cb = relay_dlv_error_cb,
	.close_cb = relay_dlv_close_cb,
};

/* --- Route and targets ------------------------------------------------- */

static bool
relay_dlv_has_pending(const struct relay_dlv *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->m->rcpts[d->idx[i]].status == RELAY_RCPT_PENDING)
			return true;
	return false;
}

/* Connects to the next address of the route, or ends the delivery. */
static void
relay_dlv_next_target(struct relay_dlv *d)
{
	struct relay_target *t;
	char addr[64];
	unsigned port;
	int r;

	const char *why;
	int64_t until;

	while (!d->r->stopping && relay_dlv_has_pending(d) &&
	    d->target < d->route.n) {
		t = &d->route.t[d->target];
		relay_dns_addr_str(t, addr, sizeof(addr));
		port = ntohs(t->addr.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&t->addr)->sin6_port :
		    ((struct sockaddr_in *)&t->addr)->sin_port);
		snprintf(d->peer, sizeof(d->peer), "%s[%s]:%u", t->host, addr,
		    port);
		snprintf(d->hostkey, sizeof(d->hostkey), "%s:%u", addr, port);
		d->greeted = false;
		if ((until = relay_host_backed_off(d->r, d->hostkey,
		    &why)) > 0) {
			/* RFC 5321 4.5.4.1: a host that just failed is not
			 * tried again at once; the next one is.  Its error
			 * stays the reason. */
			snprintf(d->last_error, sizeof(d->last_error),
			    "%s (not tried again for %llds)", why,
			    (long long)(until - relay_now()));
			log_info(d->sid, "relay msgid=%s host=%s "
			    "status=skipped reason=\"%s\"", d->m->job.msgid,
			    d->peer, d->last_error);
			d->target++;
			continue;
		}
		relay_msg_trace(d->m, "tried=%s", d->peer);
		r = net_connect(d->r->loop, (struct sockaddr *)&t->addr,
		    &relay_dlv_conn_ops, d, &d->conn);
		if (r == 0) {
			d->refs++;
			relay_dlv_timer_start(d, relay_dlv_timeout_cb,
			    RELAY_CONNECT_TIMEOUT_MS);
			return;
		}
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect to %s: %s", d->peer, uv_strerror(r));
		d->target++;
	}
	relay_dlv_end(d);
}

static void
relay_dlv_route_cb(void *data, const struct relay_route *rt)
{
	struct relay_dlv *d = data;
	struct relay_msg *m = d->m;
	size_t i;
	int st;

	if (rt->status == RELAY_ROUTE_OK) {
		char addr[64];

		relay_msg_trace(m, "domain=%s", d->domain);
		/* RFC 5321 5.1: the hosts in the order they are tried. */
		for (i = 0; i < rt->n; i++) {
			relay_dns_addr_str(&rt->t[i], addr, sizeof(addr));
			relay_msg_trace(m, "mx=%u:%s[%s]", rt->t[i].pref,
			    rt->t[i].host, addr);
		}
		d->route = *rt;
		d->target = 0;
		relay_dlv_next_target(d);
	} else if (rt->status == RELAY_ROUTE_CANCELLED || d->r->stopping) {
		snprintf(d->last_error, sizeof(d->last_error), "%s",
		    rt->error);
		relay_dlv_end(d);
	} else {
		relay_msg_trace(m, "domain=%s dns=\"%s\"", d->domain,
		    rt->error);
		st = rt->status == RELAY_ROUTE_PERM ? RELAY_RCPT_PERM :
		    RELAY_RCPT_TEMP;
		for (i = 0; i < d->n; i++) {
			relay_msg_rcpt_set(&m->rcpts[d->idx[i]], st, rt->error,
			    NULL, rt->status_code);
			log_info(d->sid, "relay msgid=%s to=<%s> status=%s "
			    "dsn=%s reply=\"%s\"", m->job.msgid,
			    m->job.rcpts[d->idx[i]].address,
			    relay_msg_status_word(st), rt->status_code,
			    rt->error);
		}
		snprintf(d->last_error, sizeof(d->last_error), "%s",
		    rt->error);
		relay_dlv_end(d);
	}
	relay_dlv_unref(d);
}

/* --- Start, creation, abort -------------------------------------------- */

void
relay_dlv_start(struct relay_dlv *d)
{
	struct relay *r = d->r;

	d->started = true;
	r->n_active++;
	d->dest->n_conns++;
	d->next = r->dlvs;
	if (r->dlvs != NULL)
		r->dlvs->prev = d;
	r->dlvs = d;
	uv_timer_init(r->loop, &d->timer);
	d->timer.data = d;
	d->timer_live = true;
	/* The creation reference now belongs to the timer. */
	if (relay_pool_take(r, d))
		return;
	d->refs++;     /* the route lookup */
	if (r->smarthost)
		relay_dns_host(r->dns, r->smart_host, r->smart_port,
		    relay_dlv_route_cb, d);
	else
		relay_dns_route(r->dns, d->domain, r->cfg->relay.mx_port,
		    relay_dlv_route_cb, d);
}

struct relay_dlv *
relay_dlv_new(struct relay_msg *m, const char *domain, size_t n)
{
	struct relay *r = m->r;
	struct relay_dlv *d = xcalloc(1, sizeof(*d));

	d->r = r;
	d->m = m;
	snprintf(d->domain, sizeof(d->domain), "%s", domain);
	/* With a smarthost all mail has one destination. */
	d->dest = relay_dest_ref(r, r->smarthost ? "[smarthost]" : domain);
	log_new_sid(d->sid);
	d->idx = xcalloc(n, sizeof(*d->idx));
	d->crcpts = xcalloc(n, sizeof(*d->crcpts));
	d->cmap = xcalloc(n, sizeof(*d->cmap));
	buf_init(&d->wire, 2 * RELAY_CHUNK + 1024 + 2 * m->dkim.len);
	d->params.helo = r->cfg->server.hostname;
	d->params.sender = m->job.sender;
	d->params.size = (uint64_t)m->job.size - m->skip + m->dkim.len;
	d->params.body_8bit = m->body_8bit;
	d->params.smtputf8 = m->smtputf8;
	d->params.dsn_ret = m->job.dsn_ret;
	d->params.dsn_envid = m->job.dsn_envid;
	d->params.tls_possible = true;
	if (r->smarthost) {
		/* RFC 8314 5.1: a submission server is verified, and mail
		 * and credentials go to it inside TLS or not at all. */
		d->tls_verify = true;
		d->params.tls_required = true;
		d->params.tls_implicit = r->smart_implicit;
	}
	if (r->smarthost && r->smart_user != NULL) {
		d->params.auth_user = r->smart_user;
		d->params.auth_pass = r->smart_pass;
	}
	d->refs = 1;
	m->n_dlv++;
	return d;
}

void
relay_dlv_abort(struct relay_dlv *d)
{
	if (d->conn != NULL)
		net_conn_close(d->conn, false);
}

void
relay_dlv_adopt(struct relay_dlv *d, struct relay_idle *ki)
{
	d->conn = ki->conn;
	net_conn_set_data(d->conn, d);
	net_conn_set_ops(d->conn, &relay_dlv_conn_ops);
	d->refs++;     /* the connection */
	d->client = ki->client;
	d->client_live = true;
	d->route = ki->route;
	d->target = ki->target;
	snprintf(d->peer, sizeof(d->peer), "%s", ki->peer);
	d->plaintext_only = ki->plaintext_only;
	d->sess_msgs = ki->msgs;
	d->greeted = true;
	d->hostkey[0] = '\0';
	relay_dlv_session_rcpts(d);
	log_debug(d->sid, "relay msgid=%s reusing session with %s (message "
	    "%u)", d->m->job.msgid, d->peer, d->sess_msgs + 1);
	if (relay_client_next(&d->client, &d->params, d->crcpts,
	    d->n_c) < 0) {
		relay_client_abort(&d->client, "internal error: session not "
		    "idle");
		net_conn_close(d->conn, false);
		return;
	}
	relay_dlv_process(d);
}
