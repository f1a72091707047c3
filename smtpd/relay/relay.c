/*
 * relay.c - the outbound queue runner (see relay.h).
 *
 * Objects:
 *   relay      the runner: scan timer, store thread, resolver, TLS context
 *   relay_msg  one queue entry being worked on: prepared once (DKIM
 *              signature, 8-bit scan, header kept for bounces), then one
 *              delivery per destination domain, then finished (bounce,
 *              retry) on the store thread
 *   relay_dlv  one destination domain of one message: route lookup, then
 *              SMTP sessions to its MX hosts in order until one decides
 *
 * Crash safety: a recipient leaves the queue (store_queue_rcpt_done) only
 * after the remote's 2xx to the final dot or after its bounce is stored,
 * so a crash at any point leads at worst to a second delivery.
 */
#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "addr.h"
#include "buf.h"
#include "log.h"
#include "relay_client.h"
#include "relay_conn.h"
#include "relay_data.h"
#include "relay_dkim.h"
#include "relay_dns.h"
#include "relay_dsn.h"
#include "relay_mx.h"
#include "relay_policy.h"
#include "relay_worker.h"
#include "sasl.h"
#include "store.h"
#include "xmalloc.h"

/* The queue is looked at this often even without a kick, so that
 * `postroom queue flush` (another process) is noticed. */
#define RELAY_POLL_MS (10 * 1000)
#define RELAY_MSGS_MAX 100      /* queue entries worked on at once */
#define RELAY_DLVS_MAX 20       /* deliveries (connections) at once */
#define RELAY_CHUNK (64 * 1024) /* body read and write unit */
#define RELAY_CONNECT_TIMEOUT_MS (30 * 1000)
#define RELAY_TLS_TIMEOUT_MS (5 * 60 * 1000)
#define RELAY_BOUNCE_TARGETS_MAX 100

struct relay_dlv;

struct relay_msg_rcpt {
	int status;                  /* enum relay_rcpt_status */
	char reply[RELAY_REPLY_MAX]; /* remote reply or our reason */
	char mta[RELAY_HOST_MAX];    /* host that replied, "" = ours */
	char code[16];               /* RFC 3463 status for our reasons */
	int64_t when;
};

struct relay_msg {
	struct relay *r;
	struct relay_msg *prev, *next;
	struct store_queue_job job;   /* owned, rcpts too */
	struct relay_msg_rcpt *rcpts;
	size_t n_dlv;                 /* deliveries not yet freed */
	struct relay_work work;       /* prepare, then finish */
	char sid[LOG_SID_LEN + 1];

	/* Prepared on the store thread. */
	int prep_status;
	struct pr_err prep_err;
	struct buf dkim;              /* DKIM-Signature field or empty */
	char dkim_domain[RELAY_HOST_MAX];
	bool body_8bit, smtputf8;
	uint8_t *head;                /* original header, for bounces */
	size_t head_len;
	size_t skip;                  /* leading Return-Path field not sent */

	/* Finished on the store thread. */
	bool bounce_queued;           /* a bounce went to the relay queue */
	int64_t retry_at;             /* next attempt, 0 = none */
	char finish_log[512];
};

struct relay_dlv {
	struct relay *r;
	struct relay_msg *m;
	struct relay_dlv *next_wait;
	struct relay_dlv *prev, *next;  /* r->dlvs: started deliveries */
	char domain[RELAY_HOST_MAX];
	char sid[LOG_SID_LEN + 1];
	size_t n;                     /* recipients of this domain */
	size_t *idx;                  /* their indexes in m->job.rcpts */
	struct relay_client_rcpt *crcpts;
	size_t *cmap;                 /* crcpts[i] is idx[cmap[i]] */
	size_t n_c;
	struct relay_client_params params;
	struct relay_client client;
	bool client_live;

	struct relay_route route;
	size_t target;
	bool plaintext_only;          /* TLS failed once on this target */
	bool tls_failed;
	bool local_error;             /* our side failed: do not go on */
	struct relay_conn *conn;
	uv_timer_t timer;
	bool timer_live;
	unsigned refs;                /* timer, conn, DNS, store work */
	bool started, ended;
	char last_error[RELAY_REPLY_MAX];
	char peer[RELAY_HOST_MAX + 80]; /* "mx.b.test[127.0.0.3]:25" */

	/* Body streaming. */
	struct relay_work bwork;
	struct store_body *body;
	uint8_t *chunk;
	ssize_t chunk_n;
	int64_t off;
	bool streaming, reading, body_eof;
	struct relay_stuff stuff;
	struct buf wire;

	/* Recipients delivered, to take off the queue. */
	struct relay_work dwork;
	int64_t *done_ids;
	size_t n_done;
	bool dwork_busy;
};

struct relay {
	uv_loop_t *loop;
	const struct cfg *cfg;
	bool enabled;
	struct store_worker *worker;  /* the daemon's, shared */
	struct relay_dns *dns;
	SSL_CTX *tls;
	uv_timer_t scan_timer;
	struct relay_work scan_work;
	struct store_queue_job *scan_jobs;
	size_t scan_n, scan_max;
	int64_t scan_next;
	int scan_status;
	struct pr_err scan_err;
	bool scanning, rescan, scan_capped;
	int64_t scan_by;              /* look again by then (0 = poll) */

	struct relay_msg *msgs;
	size_t n_msgs;
	struct relay_dlv *wait_head, **wait_tail;
	struct relay_dlv *dlvs;       /* started, not yet freed */
	size_t n_active;

	bool smarthost;
	char smart_host[RELAY_HOST_MAX];
	unsigned smart_port;
	char *smart_user, *smart_pass; /* sodium_malloc'd */

	bool stopping, dns_closed, timer_closed, worker_stopping;
	void (*done_cb)(void *data);
	void *done_data;
};

static void relay_scan_later(struct relay *r, uint64_t ms);
static void relay_scan_by(struct relay *r, int64_t when);
static void relay_pump(struct relay *r);
static void relay_msg_finish(struct relay_msg *m);
static void relay_dlv_next_target(struct relay_dlv *d);
static void relay_dlv_end(struct relay_dlv *d);
static void relay_dlv_unref(struct relay_dlv *d);
static void relay_dlv_process(struct relay_dlv *d);
static void relay_check_stopped(struct relay *r);

static int64_t
relay_now(void)
{
	return (int64_t)time(NULL);
}

/* --- Recipient outcomes ------------------------------------------------ */

static void
relay_rcpt_set(struct relay_msg_rcpt *rc, int status, const char *reply,
    const char *mta, const char *code)
{
	rc->status = status;
	snprintf(rc->reply, sizeof(rc->reply), "%s", reply);
	snprintf(rc->mta, sizeof(rc->mta), "%s", mta != NULL ? mta : "");
	snprintf(rc->code, sizeof(rc->code), "%s", code != NULL ? code : "");
	rc->when = relay_now();
}

static const char *
relay_status_word(int status)
{
	switch (status) {
	case RELAY_RCPT_OK:
		return "sent";
	case RELAY_RCPT_PERM:
		return "bounced";
	case RELAY_RCPT_TEMP:
		return "deferred";
	default:
		return "pending";
	}
}

/* --- Store work: recipients done -------------------------------------- */

static void
relay_done_run(struct relay_work *w, struct store *st)
{
	struct relay_dlv *d = RELAY_CONTAINER(w, struct relay_dlv, dwork);
	struct pr_err err;
	size_t i;

	for (i = 0; i < d->n_done; i++) {
		pr_err_clear(&err);
		/* PR_ENOENT: deleted with `postroom queue del` meanwhile. */
		if (store_queue_rcpt_done(st, d->done_ids[i], &err) < 0 &&
		    err.code != PR_ENOENT)
			log_err(d->sid, "relay: %s: cannot take recipient %lld "
			    "off the queue (it will be sent again): %s",
			    d->m->job.msgid, (long long)d->done_ids[i],
			    err.msg);
	}
}

static void
relay_done_done(struct relay_work *w)
{
	struct relay_dlv *d = RELAY_CONTAINER(w, struct relay_dlv, dwork);

	d->dwork_busy = false;
	d->n_done = 0;
	relay_dlv_unref(d);
}

/* --- Deliveries -------------------------------------------------------- */

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
	free(d->done_ids);
	free(d);
	if (--m->n_dlv == 0)
		relay_msg_finish(m);
}

static void
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

static void
relay_dlv_timer_start(struct relay_dlv *d, void (*cb)(uv_timer_t *),
    uint64_t ms)
{
	if (d->timer_live)
		uv_timer_start(&d->timer, cb, ms, 0);
}

/* The delivery is over: recipients without an answer are deferred with
 * the last error, the connection slot is given back. */
static void
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
		relay_rcpt_set(rc, RELAY_RCPT_TEMP, d->last_error[0] ?
		    d->last_error : "delivery interrupted", NULL, "4.4.1");
		if (!r->stopping)
			log_info(d->sid, "relay: %s: to=<%s> status=deferred "
			    "(%s)", m->job.msgid,
			    m->job.rcpts[d->idx[i]].address, rc->reply);
	}
	if (d->started)
		r->n_active--;
	if (d->timer_live) {
		d->timer_live = false;
		uv_timer_stop(&d->timer);
		uv_close((uv_handle_t *)&d->timer, relay_dlv_timer_closed);
	} else if (!d->started) {
		/* Never started: the only reference is the one taken at
		 * creation (a started delivery's belongs to its timer). */
		relay_dlv_unref(d);
	}
	relay_pump(r);
}

/* Takes the client's verdicts into the message; delivered recipients go
 * off the queue right away. */
static void
relay_dlv_record(struct relay_dlv *d)
{
	struct relay_msg *m = d->m;
	const char *host = d->route.n > d->target ?
	    d->route.t[d->target].host : "";
	size_t i;

	if (d->client.result == RELAY_CLIENT_R_NEXT_HOST)
		snprintf(d->last_error, sizeof(d->last_error), "%s: %s",
		    d->peer, d->client.error);
	for (i = 0; i < d->n_c; i++) {
		struct relay_client_rcpt *c = &d->crcpts[i];
		size_t k = d->idx[d->cmap[i]];
		struct relay_msg_rcpt *rc = &m->rcpts[k];

		if (c->status == RELAY_RCPT_PENDING)
			continue;
		relay_rcpt_set(rc, c->status, c->reply, host, NULL);
		log_info(d->sid, "relay: %s: to=<%s> relay=%s status=%s (%s)",
		    m->job.msgid, c->address, d->peer,
		    relay_status_word(c->status), c->reply);
		if (c->status == RELAY_RCPT_OK)
			d->done_ids[d->n_done++] = m->job.rcpts[k].id;
		if (c->status == RELAY_RCPT_TEMP)
			snprintf(d->last_error, sizeof(d->last_error),
			    "host %s said: %s", d->peer, c->reply);
	}
	/* Only a final-dot reply makes recipients OK, and it also ends the
	 * delivery, so this runs at most once per delivery. */
	if (d->n_done > 0 && !d->dwork_busy) {
		/* RFC 5321 6.1: the remote took responsibility; only now
		 * may the recipient leave our queue. */
		d->dwork_busy = true;
		d->refs++;
		relay_worker_submit(d->r->worker, &d->dwork, relay_done_run,
		    relay_done_done);
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

static void
relay_dlv_timeout_cb(uv_timer_t *t)
{
	struct relay_dlv *d = t->data;
	char why[RELAY_REPLY_MAX];

	if (d->conn == NULL)
		return;
	if (!d->client_live) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect to %s: timed out", d->peer);
		relay_conn_close(d->conn);
		return;
	}
	snprintf(why, sizeof(why), "timeout in state %s",
	    relay_client_state_name(d->client.state));
	log_info(d->sid, "relay: %s: %s", d->peer, why);
	relay_client_abort(&d->client, why);
	relay_dlv_process(d);
}

/* --- Body streaming ---------------------------------------------------- */

static void relay_dlv_read_next(struct relay_dlv *d);

static void
relay_body_run(struct relay_work *w, struct store *st)
{
	struct relay_dlv *d = RELAY_CONTAINER(w, struct relay_dlv, bwork);
	struct pr_err err;
	int64_t size;
	int r;

	if (d->body == NULL &&
	    (r = store_queue_body_open(st, d->m->job.id, &d->body, &size,
	    &err)) < 0) {
		d->chunk_n = r;
		return;
	}
	d->chunk_n = store_body_read(d->body, d->off, d->chunk, RELAY_CHUNK);
}

static int
relay_dlv_send_wire(struct relay_dlv *d)
{
	int r = 0;

	if (d->wire.len > 0)
		r = relay_conn_write(d->conn, d->wire.p, d->wire.len);
	buf_reset(&d->wire);
	return r;
}

static void
relay_body_done(struct relay_work *w)
{
	struct relay_dlv *d = RELAY_CONTAINER(w, struct relay_dlv, bwork);

	d->reading = false;
	if (d->ended || d->conn == NULL || !d->client_live ||
	    d->client.state != RELAY_CLIENT_S_BODY) {
		relay_dlv_unref(d);
		return;
	}
	if (d->chunk_n < 0) {
		log_err(d->sid, "relay: %s: cannot read the queued message: %s",
		    d->m->job.msgid, pr_strerror((int)d->chunk_n));
		snprintf(d->last_error, sizeof(d->last_error),
		    "cannot read the queued message (%s)",
		    pr_strerror((int)d->chunk_n));
		d->local_error = true;
		relay_conn_close(d->conn);
		relay_dlv_unref(d);
		return;
	}
	if (d->chunk_n == 0) {
		/* RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF. */
		d->body_eof = true;
		relay_stuff_end(&d->stuff, &d->wire);
		relay_dlv_send_wire(d);
		relay_client_body_done(&d->client);
		relay_dlv_timer_start(d, relay_dlv_timeout_cb,
		    relay_client_timeout_ms(&d->client));
		relay_dlv_unref(d);
		return;
	}
	d->off += d->chunk_n;
	if (relay_stuff_feed(&d->stuff, d->chunk, (size_t)d->chunk_n,
	    &d->wire) < 0 || relay_dlv_send_wire(d) < 0) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "cannot send the message to %s", d->peer);
		relay_conn_close(d->conn);
		relay_dlv_unref(d);
		return;
	}
	relay_dlv_timer_start(d, relay_dlv_timeout_cb,
	    relay_client_timeout_ms(&d->client));
	/* Keep at most about one chunk in flight to the socket. */
	if (relay_conn_write_pending(d->conn) < RELAY_CHUNK)
		relay_dlv_read_next(d);
	relay_dlv_unref(d);
}

static void
relay_dlv_read_next(struct relay_dlv *d)
{
	if (d->reading || d->body_eof || d->ended)
		return;
	d->reading = true;
	d->refs++;
	relay_worker_submit(d->r->worker, &d->bwork, relay_body_run,
	    relay_body_done);
}

static void
relay_dlv_body_start(struct relay_dlv *d)
{
	struct relay_msg *m = d->m;

	d->streaming = true;
	d->body_eof = false;
	d->off = (int64_t)m->skip;
	store_body_close(&d->body);
	if (d->chunk == NULL)
		d->chunk = xmalloc(RELAY_CHUNK);
	relay_stuff_init(&d->stuff);
	buf_reset(&d->wire);
	/* The DKIM-Signature field goes first, like any header field. */
	if (m->dkim.len > 0)
		relay_stuff_feed(&d->stuff, m->dkim.p, m->dkim.len, &d->wire);
	relay_dlv_send_wire(d);
	relay_dlv_timer_start(d, relay_dlv_timeout_cb,
	    relay_client_timeout_ms(&d->client));
	relay_dlv_read_next(d);
}

/* --- Connection callbacks ---------------------------------------------- */

/* Sends the client's output and acts on its events. */
static void
relay_dlv_process(struct relay_dlv *d)
{
	enum relay_client_event ev;
	const char *host;

	for (;;) {
		if (d->client.out.len > 0 && d->conn != NULL)
			(void)relay_conn_write(d->conn, d->client.out.p,
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
			relay_dlv_timer_start(d, relay_dlv_timeout_cb,
			    RELAY_TLS_TIMEOUT_MS);
			if (relay_conn_starttls(d->conn, d->r->tls, host) < 0 &&
			    d->client.state == RELAY_CLIENT_S_TLS) {
				d->tls_failed = true;
				relay_client_tls_done(&d->client, false);
				continue;
			}
			return;
		case RELAY_CLIENT_EV_BODY:
			relay_dlv_body_start(d);
			return;
		case RELAY_CLIENT_EV_DONE:
			relay_dlv_record(d);
			continue;
		case RELAY_CLIENT_EV_CLOSE:
			if (d->conn != NULL)
				relay_conn_close(d->conn);
			return;
		}
	}
}

static void
relay_dlv_connect_cb(struct relay_conn *c, int status)
{
	struct relay_dlv *d = relay_conn_data(c);
	struct relay_msg *m = d->m;
	size_t i, k;

	if (status < 0) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect to %s: %s", d->peer, uv_strerror(status));
		log_info(d->sid, "relay: %s: %s", m->job.msgid,
		    d->last_error);
		return;
	}
	log_debug(d->sid, "relay: %s: connected to %s", m->job.msgid, d->peer);
	/* This session carries the recipients still without an answer. */
	d->n_c = 0;
	for (i = 0; i < d->n; i++) {
		k = d->idx[i];
		if (m->rcpts[k].status != RELAY_RCPT_PENDING)
			continue;
		d->crcpts[d->n_c].address = m->job.rcpts[k].address;
		d->cmap[d->n_c++] = i;
	}
	d->params.tls_possible = !d->plaintext_only;
	relay_client_init(&d->client, &d->params, d->crcpts, d->n_c);
	d->client_live = true;
	relay_dlv_timer_start(d, relay_dlv_timeout_cb,
	    relay_client_timeout_ms(&d->client));
}

static void
relay_dlv_input_cb(struct relay_conn *c)
{
	struct relay_dlv *d = relay_conn_data(c);
	const uint8_t *p;
	size_t len;
	long used;

	if (!d->client_live)
		return;
	relay_conn_input(c, &p, &len);
	used = relay_client_feed(&d->client, p, len);
	if (used > 0)
		relay_conn_consume(c, (size_t)used);
	relay_dlv_process(d);
}

static void
relay_dlv_tls_cb(struct relay_conn *c, int status)
{
	struct relay_dlv *d = relay_conn_data(c);

	if (!d->client_live || d->client.state != RELAY_CLIENT_S_TLS)
		return;
	if (status < 0) {
		d->tls_failed = true;
		relay_client_tls_done(&d->client, false);
		relay_dlv_settle(d);
		return;
	}
	log_info(d->sid, "relay: %s: TLS connection established to %s: %s",
	    d->m->job.msgid, d->peer, relay_conn_tls_desc(c));
	relay_client_tls_done(&d->client, true);
	relay_dlv_process(d);
}

static void
relay_dlv_drain_cb(struct relay_conn *c)
{
	struct relay_dlv *d = relay_conn_data(c);

	if (d->streaming && !d->body_eof && d->client_live &&
	    d->client.state == RELAY_CLIENT_S_BODY)
		relay_dlv_read_next(d);
}

static void
relay_dlv_error_cb(struct relay_conn *c, const char *why)
{
	struct relay_dlv *d = relay_conn_data(c);
	char msg[RELAY_REPLY_MAX];

	if (!d->client_live)
		return;
	snprintf(msg, sizeof(msg), "lost connection with %s in state %s: %s",
	    d->peer, relay_client_state_name(d->client.state), why);
	if (d->client.state != RELAY_CLIENT_S_QUIT &&
	    d->client.state != RELAY_CLIENT_S_CLOSED)
		log_info(d->sid, "relay: %s: %s", d->m->job.msgid, msg);
	relay_client_abort(&d->client, msg);
	/* The connection is closing: only record, send nothing. */
	relay_dlv_settle(d);
}

static void
relay_dlv_close_cb(struct relay_conn *c)
{
	struct relay_dlv *d = relay_conn_data(c);
	bool next;

	d->conn = NULL;
	d->streaming = false;
	if (d->client_live) {
		/* Anything the client did not decide is decided now. */
		relay_client_abort(&d->client, d->last_error[0] ?
		    d->last_error : "connection closed");
		relay_dlv_settle(d);
		next = d->client.result == RELAY_CLIENT_R_NEXT_HOST;
		relay_client_fini(&d->client);
		d->client_live = false;
	} else {
		next = true;    /* the connection itself failed */
	}
	if (d->r->stopping || d->local_error || !next) {
		relay_dlv_end(d);
	} else {
		if (d->tls_failed && !d->plaintext_only) {
			/* Opportunistic TLS failed: this host once more in
			 * plaintext, like Postfix's smtp_tls_security_level
			 * "may". */
			log_info(d->sid, "relay: %s: TLS failed with %s; "
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

static const struct relay_conn_ops relay_dlv_conn_ops = {
	.connect_cb = relay_dlv_connect_cb,
	.input_cb = relay_dlv_input_cb,
	.tls_cb = relay_dlv_tls_cb,
	.drain_cb = relay_dlv_drain_cb,
	.error_cb = relay_dlv_error_cb,
	.close_cb = relay_dlv_close_cb,
};

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

	while (!d->r->stopping && relay_dlv_has_pending(d) &&
	    d->target < d->route.n) {
		t = &d->route.t[d->target];
		relay_dns_addr_str(t, addr, sizeof(addr));
		port = ntohs(t->addr.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&t->addr)->sin6_port :
		    ((struct sockaddr_in *)&t->addr)->sin_port);
		snprintf(d->peer, sizeof(d->peer), "%s[%s]:%u", t->host, addr,
		    port);
		r = relay_conn_new(d->r->loop, (struct sockaddr *)&t->addr,
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
		d->route = *rt;
		d->target = 0;
		relay_dlv_next_target(d);
	} else if (rt->status == RELAY_ROUTE_CANCELLED || d->r->stopping) {
		snprintf(d->last_error, sizeof(d->last_error), "%s",
		    rt->error);
		relay_dlv_end(d);
	} else {
		st = rt->status == RELAY_ROUTE_PERM ? RELAY_RCPT_PERM :
		    RELAY_RCPT_TEMP;
		for (i = 0; i < d->n; i++) {
			relay_rcpt_set(&m->rcpts[d->idx[i]], st, rt->error,
			    NULL, rt->status_code);
			log_info(d->sid, "relay: %s: to=<%s> status=%s (%s)",
			    m->job.msgid, m->job.rcpts[d->idx[i]].address,
			    relay_status_word(st), rt->error);
		}
		snprintf(d->last_error, sizeof(d->last_error), "%s",
		    rt->error);
		relay_dlv_end(d);
	}
	relay_dlv_unref(d);
}

static void
relay_dlv_start(struct relay_dlv *d)
{
	struct relay *r = d->r;

	d->started = true;
	r->n_active++;
	d->next = r->dlvs;
	if (r->dlvs != NULL)
		r->dlvs->prev = d;
	r->dlvs = d;
	uv_timer_init(r->loop, &d->timer);
	d->timer.data = d;
	d->timer_live = true;
	/* The creation reference now belongs to the timer. */
	d->refs++;     /* the route lookup */
	if (r->smarthost)
		relay_dns_host(r->dns, r->smart_host, r->smart_port,
		    relay_dlv_route_cb, d);
	else
		relay_dns_route(r->dns, d->domain, r->cfg->relay.mx_port,
		    relay_dlv_route_cb, d);
}

/* Starts waiting deliveries while there is room. */
static void
relay_pump(struct relay *r)
{
	struct relay_dlv *d;

	while (!r->stopping && r->n_active < RELAY_DLVS_MAX &&
	    (d = r->wait_head) != NULL) {
		r->wait_head = d->next_wait;
		if (r->wait_head == NULL)
			r->wait_tail = &r->wait_head;
		relay_dlv_start(d);
	}
}

static struct relay_dlv *
relay_dlv_new(struct relay_msg *m, const char *domain, size_t n)
{
	struct relay *r = m->r;
	struct relay_dlv *d = xcalloc(1, sizeof(*d));

	d->r = r;
	d->m = m;
	snprintf(d->domain, sizeof(d->domain), "%s", domain);
	log_new_sid(d->sid);
	d->idx = xcalloc(n, sizeof(*d->idx));
	d->crcpts = xcalloc(n, sizeof(*d->crcpts));
	d->cmap = xcalloc(n, sizeof(*d->cmap));
	d->done_ids = xcalloc(n, sizeof(*d->done_ids));
	buf_init(&d->wire, 2 * RELAY_CHUNK + 1024 + 2 * m->dkim.len);
	d->params.helo = r->cfg->server.hostname;
	d->params.sender = m->job.sender;
	d->params.size = (uint64_t)m->job.size - m->skip + m->dkim.len;
	d->params.body_8bit = m->body_8bit;
	d->params.smtputf8 = m->smtputf8;
	d->params.tls_possible = true;
	if (r->smarthost && r->smart_user != NULL) {
		d->params.auth_user = r->smart_user;
		d->params.auth_pass = r->smart_pass;
		d->params.tls_required = true;
	}
	d->refs = 1;
	m->n_dlv++;
	return d;
}

/* --- Messages ---------------------------------------------------------- */

static void
relay_msg_free(struct relay_msg *m)
{
	struct relay *r = m->r;

	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		r->msgs = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	r->n_msgs--;
	buf_fini(&m->dkim);
	free(m->head);
	free(m->rcpts);
	free(m->job.rcpts);
	free(m);
	if (r->stopping) {
		relay_check_stopped(r);
	} else if (r->scan_capped) {
		/* There is room again for entries the last scan left. */
		r->scan_capped = false;
		relay_kick(r);
	}
}

/* Reads the message once on the store thread: the header (kept for a
 * bounce and to find the From: domain), the DKIM signature and whether
 * it has 8-bit octets. */
static void
relay_prepare_run(struct relay_work *w, struct store *st)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	const struct cfg *cfg = m->r->cfg;
	struct relay_dkim_signer *signer = NULL;
	struct relay_dkim_key *key = NULL;
	struct store_body *b = NULL;
	char domain[RELAY_HOST_MAX];
	const char *cand[2];
	uint8_t *chunk;
	int64_t off;
	ssize_t n;
	size_t i;
	int r;

	m->prep_status = store_queue_body_open(st, m->job.id, &b, NULL,
	    &m->prep_err);
	if (m->prep_status < 0)
		return;
	chunk = xmalloc(RELAY_CHUNK);
	/* The header, as much of it as a bounce returns. */
	m->head = xmalloc(RELAY_DSN_HEAD_MAX);
	while (m->head_len < RELAY_DSN_HEAD_MAX) {
		n = store_body_read(b, (int64_t)m->head_len,
		    m->head + m->head_len, RELAY_DSN_HEAD_MAX - m->head_len);
		if (n < 0)
			goto readfail;
		if (n == 0)
			break;
		m->head_len += (size_t)n;
		if (memmem(m->head, m->head_len, "\r\n\r\n", 4) != NULL ||
		    memcmp(m->head, "\r\n", m->head_len < 2 ? m->head_len :
		    2) == 0)
			break;
	}

	/* RFC 5321 4.4: Return-Path belongs to the final delivery; a relay
	 * "SHOULD NOT send a message that already contains" one, so a
	 * Return-Path field at the top (the store keeps the one added for
	 * local copies) is left out of what goes on the wire. */
	while (m->head_len - m->skip >= 12 &&
	    strncasecmp((char *)m->head + m->skip, "Return-Path:", 12) == 0) {
		size_t e = m->skip;

		for (;;) {
			uint8_t *nl = memchr(m->head + e, '\n',
			    m->head_len - e);

			if (nl == NULL) {
				e = m->head_len;
				break;
			}
			e = (size_t)(nl - m->head) + 1;
			if (e >= m->head_len ||
			    (m->head[e] != ' ' && m->head[e] != '\t'))
				break;
		}
		m->skip = e;
	}
	memmove(m->head, m->head + m->skip, m->head_len - m->skip);
	m->head_len -= m->skip;

	/* DKIM: the From: domain if we host it and have a key, else the
	 * envelope sender's (RFC 6376 leaves d= to the signer; the From:
	 * domain is what DMARC aligns with). */
	cand[0] = relay_dkim_from_domain(m->head, m->head_len, domain,
	    sizeof(domain)) == 0 ? domain : NULL;
	cand[1] = m->job.sender[0] ? addr_domain(m->job.sender) : NULL;
	for (i = 0; i < 2 && key == NULL; i++) {
		struct pr_err kerr;

		if (cand[i] == NULL || store_domain_exists(st, cand[i]) != 1)
			continue;
		r = relay_dkim_key_load(cfg->server.data_dir, cand[i], &key,
		    &kerr);
		if (r < 0 && r != PR_ENOENT)
			log_warn(m->sid, "relay: %s: DKIM key of %s: %s",
			    m->job.msgid, cand[i], kerr.msg);
	}
	if (key != NULL && relay_dkim_signer_new(key, &signer) < 0)
		relay_dkim_key_free(&key);

	for (off = (int64_t)m->skip;; off += n) {
		n = store_body_read(b, off, chunk, RELAY_CHUNK);
		if (n < 0)
			goto readfail;
		if (n == 0)
			break;
		if (!m->body_8bit && relay_data_has_8bit(chunk, (size_t)n))
			m->body_8bit = true;
		if (signer != NULL &&
		    relay_dkim_signer_feed(signer, chunk, (size_t)n) < 0) {
			log_warn(m->sid, "relay: %s: header too large to "
			    "DKIM-sign; sending unsigned", m->job.msgid);
			relay_dkim_signer_free(&signer);
		}
	}
	if (signer != NULL) {
		struct pr_err serr;

		if (relay_dkim_signer_finish(signer, relay_now(), &m->dkim,
		    &serr) < 0) {
			buf_reset(&m->dkim);
			log_warn(m->sid, "relay: %s: DKIM signing failed: %s",
			    m->job.msgid, serr.msg);
		} else {
			snprintf(m->dkim_domain, sizeof(m->dkim_domain), "%s",
			    relay_dkim_key_domain(key));
		}
	}
	goto out;
readfail:
	m->prep_status = (int)n;
	pr_err_set(&m->prep_err, (int)n, "cannot read the queued message: %s",
	    pr_strerror((int)n));
out:
	relay_dkim_signer_free(&signer);
	relay_dkim_key_free(&key);
	store_body_close(&b);
	free(chunk);
}

static void
relay_prepare_done(struct relay_work *w)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	struct relay *r = m->r;
	struct relay_dlv *d;
	const char *dom, *dj;
	bool *used;
	size_t i, j, n;

	if (r->stopping || m->prep_status == PR_ENOENT) {
		/* Stopping, or deleted from the queue meanwhile. */
		relay_msg_free(m);
		return;
	}
	if (m->prep_status < 0) {
		log_err(m->sid, "relay: %s: %s", m->job.msgid,
		    m->prep_err.msg);
		for (i = 0; i < m->job.n_rcpts; i++)
			relay_rcpt_set(&m->rcpts[i], RELAY_RCPT_TEMP,
			    m->prep_err.msg, NULL, "4.3.0");
		relay_msg_finish(m);
		return;
	}
	if (m->dkim.len > 0)
		log_debug(m->sid, "relay: %s: DKIM-signed for %s",
		    m->job.msgid, m->dkim_domain);
	/* One delivery per destination domain with all its recipients;
	 * through a smarthost, one for everything. */
	used = xcalloc(m->job.n_rcpts, sizeof(*used));
	m->n_dlv++;    /* held while the deliveries are created */
	for (i = 0; i < m->job.n_rcpts; i++) {
		if (used[i])
			continue;
		dom = addr_domain(m->job.rcpts[i].address);
		if (dom == NULL)
			dom = "";
		n = 0;
		for (j = i; j < m->job.n_rcpts; j++) {
			dj = addr_domain(m->job.rcpts[j].address);
			if (!used[j] && (r->smarthost ||
			    strcasecmp(dj != NULL ? dj : "", dom) == 0))
				n++;
		}
		d = relay_dlv_new(m, dom, n);
		for (j = i; j < m->job.n_rcpts; j++) {
			dj = addr_domain(m->job.rcpts[j].address);
			if (!used[j] && (r->smarthost ||
			    strcasecmp(dj != NULL ? dj : "", dom) == 0)) {
				used[j] = true;
				d->idx[d->n++] = j;
			}
		}
		d->next_wait = NULL;
		*r->wait_tail = d;
		r->wait_tail = &d->next_wait;
	}
	free(used);
	if (--m->n_dlv == 0) {
		relay_msg_finish(m);
		return;
	}
	relay_pump(r);
}

/* Bounce targets of the original sender. */
struct relay_bounce_to {
	int64_t users[RELAY_BOUNCE_TARGETS_MAX];
	size_t n_users;
	char *remote[RELAY_BOUNCE_TARGETS_MAX];
	size_t n_remote;
};

static int
relay_bounce_resolve_cb(void *ctx, int64_t user_id, const char *remote)
{
	struct relay_bounce_to *t = ctx;

	if (remote == NULL && t->n_users < RELAY_BOUNCE_TARGETS_MAX)
		t->users[t->n_users++] = user_id;
	else if (remote != NULL && t->n_remote < RELAY_BOUNCE_TARGETS_MAX)
		t->remote[t->n_remote++] = xstrdup(remote);
	return 0;
}

/*
 * Delivers a DSN for the failed recipients (indexes perm[0..n)) to the
 * sender: into their mailbox when local, into the queue when remote
 * (RFC 5321 4.5.5: from the null sender, so it never bounces back).
 * Returns 0 when the bounce is stored or deliberately dropped (the
 * recipients may then leave the queue), or a negative error to try again.
 */
static int
relay_bounce(struct relay_msg *m, struct store *st, const size_t *perm,
    size_t n, bool expired)
{
	const struct cfg *cfg = m->r->cfg;
	struct relay_dsn_rcpt *dr;
	struct relay_bounce_to to;
	struct relay_dsn dsn;
	struct store_msg local, remote, *msgs[2];
	unsigned char rnd[8];
	char unique[40];
	struct pr_err err;
	struct buf out;
	size_t i, nm = 0;
	int kind, r = 0;

	memset(&to, 0, sizeof(to));
	dr = xcalloc(n, sizeof(*dr));
	for (i = 0; i < n; i++) {
		struct relay_msg_rcpt *rc = &m->rcpts[perm[i]];

		dr[i].address = m->job.rcpts[perm[i]].address;
		dr[i].reply = rc->reply;
		dr[i].remote_mta = rc->mta[0] ? rc->mta : NULL;
		dr[i].status = rc->code[0] ? rc->code : NULL;
		dr[i].last_attempt = rc->when;
	}
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(unique, sizeof(unique), rnd, sizeof(rnd));
	memset(&dsn, 0, sizeof(dsn));
	dsn.hostname = cfg->server.hostname;
	dsn.sender = m->job.sender;
	dsn.queue_id = m->job.msgid;
	dsn.arrival = m->job.created;
	dsn.now = relay_now();
	dsn.unique = unique;
	dsn.expired = expired;
	dsn.rcpts = dr;
	dsn.n_rcpts = n;
	dsn.orig_head = m->head;
	dsn.orig_head_len = m->head_len;
	buf_init(&out, 4 * 1024 * 1024);
	if ((r = relay_dsn_build(&dsn, &out)) < 0) {
		log_err(m->sid, "relay: %s: cannot build the bounce: %s",
		    m->job.msgid, pr_strerror(r));
		goto out;
	}
	kind = store_resolve(st, m->job.sender, relay_bounce_resolve_cb, &to,
	    &err);
	if (kind < 0) {
		r = kind;
		log_err(m->sid, "relay: %s: bounce to <%s>: %s", m->job.msgid,
		    m->job.sender, err.msg);
		goto out;
	}
	if (kind == STORE_RESOLVE_UNKNOWN) {
		log_warn(m->sid, "relay: %s: bounce to <%s> dropped: no such "
		    "local address", m->job.msgid, m->job.sender);
		goto out;
	}
	if (kind == STORE_RESOLVE_REMOTE && to.n_remote == 0)
		to.remote[to.n_remote++] = xstrdup(m->job.sender);
	memset(&local, 0, sizeof(local));
	memset(&remote, 0, sizeof(remote));
	if (to.n_users > 0) {
		static const char rp[] = "Return-Path: <>\r\n";

		local.sender = "";
		local.users = to.users;
		local.n_users = to.n_users;
		/* RFC 5321 4.4: the final delivery adds Return-Path. */
		local.head = (const uint8_t *)rp;
		local.head_len = sizeof(rp) - 1;
		local.body = out.p;
		local.body_len = out.len;
		local.body_fd = -1;
		msgs[nm++] = &local;
	}
	if (to.n_remote > 0) {
		remote.sender = "";
		remote.remote = (const char *const *)to.remote;
		remote.n_remote = to.n_remote;
		remote.body = out.p;
		remote.body_len = out.len;
		remote.body_fd = -1;
		msgs[nm++] = &remote;
	}
	if (nm == 0)
		goto out;
	if ((r = store_deliver(st, msgs, nm)) < 0) {
		log_err(m->sid, "relay: %s: cannot store the bounce: %s",
		    m->job.msgid, msgs[0]->err.msg);
		goto out;
	}
	for (i = 0; i < nm; i++) {
		if (msgs[i]->status == 0) {
			log_info(m->sid, "relay: %s: sender non-delivery "
			    "notification: %s to <%s>", m->job.msgid,
			    msgs[i]->id, m->job.sender);
			if (msgs[i] == &remote)
				m->bounce_queued = true;
		} else if (msgs[i]->status == PR_EQUOTA ||
		    msgs[i]->status == PR_ETOOBIG) {
			/* The sender's mailbox is full: keeping the failed
			 * recipients would only repeat this. */
			log_warn(m->sid, "relay: %s: bounce to <%s> dropped: "
			    "%s", m->job.msgid, m->job.sender,
			    msgs[i]->err.msg);
		} else {
			log_err(m->sid, "relay: %s: bounce to <%s>: %s",
			    m->job.msgid, m->job.sender, msgs[i]->err.msg);
			r = msgs[i]->status;
		}
	}
out:
	for (i = 0; i < to.n_remote; i++)
		free(to.remote[i]);
	buf_fini(&out);
	free(dr);
	return r;
}

/* Settles the entry on the store thread: bounces, then retries. */
static void
relay_finish_run(struct relay_work *w, struct store *st)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	const struct cfg *cfg = m->r->cfg;
	struct pr_err err;
	const char *last_error = NULL;
	char why[RELAY_REPLY_MAX + 2 * RELAY_HOST_MAX + 32];
	size_t *perm, n_perm = 0, n_temp = 0, i;
	int64_t now = relay_now(), next = 0;
	bool expired = false;
	int r;

	perm = xcalloc(m->job.n_rcpts, sizeof(*perm));
	for (i = 0; i < m->job.n_rcpts; i++) {
		if (m->rcpts[i].status == RELAY_RCPT_TEMP) {
			n_temp++;
			if (last_error != NULL)
				continue;
			/* What `postroom queue list` shows. */
			if (m->rcpts[i].mta[0] != '\0')
				snprintf(why, sizeof(why),
				    "<%s>: host %s said: %s",
				    m->job.rcpts[i].address,
				    m->rcpts[i].mta, m->rcpts[i].reply);
			else
				snprintf(why, sizeof(why), "<%s>: %s",
				    m->job.rcpts[i].address,
				    m->rcpts[i].reply);
			last_error = why;
		}
	}
	if (n_temp > 0 && relay_policy_defer(now, m->job.created,
	    m->job.attempts + 1, cfg->relay.max_queue_time, &next) == 1) {
		/* Given up after max_queue_time: the deferred recipients
		 * bounce with their last error. */
		expired = true;
		for (i = 0; i < m->job.n_rcpts; i++) {
			if (m->rcpts[i].status != RELAY_RCPT_TEMP)
				continue;
			m->rcpts[i].status = RELAY_RCPT_PERM;
			log_info(m->sid, "relay: %s: to=<%s> status=expired, "
			    "returned to sender (%s)", m->job.msgid,
			    m->job.rcpts[i].address, m->rcpts[i].reply);
		}
		n_temp = 0;
	}
	for (i = 0; i < m->job.n_rcpts; i++)
		if (m->rcpts[i].status == RELAY_RCPT_PERM)
			perm[n_perm++] = i;
	if (n_perm > 0) {
		r = 0;
		if (m->job.sender[0] != '\0')
			r = relay_bounce(m, st, perm, n_perm, expired);
		else
			log_info(m->sid, "relay: %s: no bounce for a "
			    "message from the null sender", m->job.msgid);
		if (r == 0) {
			for (i = 0; i < n_perm; i++) {
				pr_err_clear(&err);
				if (store_queue_rcpt_done(st,
				    m->job.rcpts[perm[i]].id, &err) < 0 &&
				    err.code != PR_ENOENT)
					log_err(m->sid, "relay: %s: %s",
					    m->job.msgid, err.msg);
			}
		} else {
			/* The bounce could not be stored: keep the
			 * recipients and try again later. */
			n_temp++;
			if (next == 0)
				next = now + relay_backoff(m->job.attempts + 1);
			last_error = "bounce could not be stored";
		}
	}
	if (n_temp > 0) {
		pr_err_clear(&err);
		if (store_queue_retry(st, m->job.id, next, last_error, &err) <
		    0 && err.code != PR_ENOENT)
			log_err(m->sid, "relay: %s: %s", m->job.msgid,
			    err.msg);
		m->retry_at = next;
		snprintf(m->finish_log, sizeof(m->finish_log),
		    "%zu recipient%s deferred, next attempt in %llds "
		    "(attempt %d failed)", n_temp, n_temp == 1 ? "" : "s",
		    (long long)(next - now), m->job.attempts + 1);
	}
	free(perm);
}

static void
relay_finish_done(struct relay_work *w)
{
	struct relay_msg *m = RELAY_CONTAINER(w, struct relay_msg, work);
	struct relay *r = m->r;

	if (m->finish_log[0] != '\0')
		log_info(m->sid, "relay: %s: %s", m->job.msgid,
		    m->finish_log);
	if (m->bounce_queued)
		relay_kick(r);
	else if (m->retry_at > 0)
		relay_scan_by(r, m->retry_at);
	relay_msg_free(m);
}

static void
relay_msg_finish(struct relay_msg *m)
{
	if (m->r->stopping) {
		relay_msg_free(m);
		return;
	}
	relay_worker_submit(m->r->worker, &m->work, relay_finish_run,
	    relay_finish_done);
}

static bool
relay_in_flight(const struct relay *r, int64_t id)
{
	const struct relay_msg *m;

	for (m = r->msgs; m != NULL; m = m->next)
		if (m->job.id == id)
			return true;
	return false;
}

static void
relay_msg_start(struct relay *r, struct store_queue_job *job)
{
	struct relay_msg *m = xcalloc(1, sizeof(*m));
	size_t i;

	m->r = r;
	m->job = *job;
	/* The rcpts array moves to the message. */
	job->rcpts = NULL;
	job->n_rcpts = 0;
	m->rcpts = xcalloc(m->job.n_rcpts ? m->job.n_rcpts : 1,
	    sizeof(*m->rcpts));
	log_new_sid(m->sid);
	buf_init(&m->dkim, 64 * 1024);
	m->smtputf8 = relay_data_str_8bit(m->job.sender);
	for (i = 0; i < m->job.n_rcpts; i++)
		if (relay_data_str_8bit(m->job.rcpts[i].address))
			m->smtputf8 = true;
	m->next = r->msgs;
	if (r->msgs != NULL)
		r->msgs->prev = m;
	r->msgs = m;
	r->n_msgs++;
	log_info(m->sid, "relay: %s: from=<%s> size=%lld nrcpt=%zu "
	    "attempt=%d", m->job.msgid, m->job.sender, (long long)m->job.size,
	    m->job.n_rcpts, m->job.attempts + 1);
	relay_worker_submit(r->worker, &m->work, relay_prepare_run,
	    relay_prepare_done);
}

/* --- Queue scan -------------------------------------------------------- */

static void
relay_scan_run(struct relay_work *w, struct store *st)
{
	struct relay *r = RELAY_CONTAINER(w, struct relay, scan_work);

	pr_err_clear(&r->scan_err);
	r->scan_jobs = NULL;
	r->scan_n = 0;
	r->scan_next = 0;
	r->scan_status = store_queue_due(st, relay_now(), r->scan_max,
	    &r->scan_jobs, &r->scan_n, &r->scan_err);
	if (r->scan_status == 0)
		r->scan_status = store_queue_next_due(st, &r->scan_next,
		    &r->scan_err);
}

static void
relay_scan_done(struct relay_work *w)
{
	struct relay *r = RELAY_CONTAINER(w, struct relay, scan_work);
	int64_t now = relay_now();
	uint64_t delay = RELAY_POLL_MS;
	size_t i;

	r->scanning = false;
	if (r->scan_status < 0)
		log_err(NULL, "relay: queue scan: %s", r->scan_err.msg);
	for (i = 0; i < r->scan_n; i++) {
		if (r->stopping || relay_in_flight(r, r->scan_jobs[i].id))
			continue;
		if (r->scan_jobs[i].n_rcpts == 0)
			continue;
		relay_msg_start(r, &r->scan_jobs[i]);
	}
	if (r->scan_jobs != NULL)
		store_queue_jobs_free(r->scan_jobs, r->scan_n);
	r->scan_jobs = NULL;
	if (r->scan_n >= r->scan_max)
		r->scan_capped = true;
	r->scan_n = 0;
	if (r->stopping) {
		relay_check_stopped(r);
		return;
	}
	if (r->rescan) {
		r->rescan = false;
		delay = 0;
	} else {
		if (r->scan_next > now &&
		    (uint64_t)(r->scan_next - now) * 1000 < delay)
			delay = (uint64_t)(r->scan_next - now) * 1000;
		if (r->scan_by > 0 && (r->scan_by <= now ||
		    (uint64_t)(r->scan_by - now) * 1000 < delay))
			delay = r->scan_by > now ?
			    (uint64_t)(r->scan_by - now) * 1000 : 0;
	}
	r->scan_by = 0;
	relay_scan_later(r, delay);
}

static void
relay_scan_cb(uv_timer_t *t)
{
	struct relay *r = t->data;

	if (r->stopping || r->scanning)
		return;
	if (r->n_msgs >= RELAY_MSGS_MAX) {
		/* Full: a finished message kicks the next scan. */
		r->scan_capped = true;
		relay_scan_later(r, RELAY_POLL_MS);
		return;
	}
	r->scanning = true;
	/* In-flight entries may come back among the due ones; ask for
	 * enough to fill the free slots anyway. */
	r->scan_max = RELAY_MSGS_MAX;
	relay_worker_submit(r->worker, &r->scan_work, relay_scan_run,
	    relay_scan_done);
}

static void
relay_scan_later(struct relay *r, uint64_t ms)
{
	if (!r->stopping)
		uv_timer_start(&r->scan_timer, relay_scan_cb, ms, 0);
}

/* Makes sure the queue is looked at again by when (unix time), e.g. the
 * next attempt of an entry that was just deferred. */
static void
relay_scan_by(struct relay *r, int64_t when)
{
	int64_t now = relay_now();
	uint64_t ms = when > now ? (uint64_t)(when - now) * 1000 : 0;

	if (r->stopping)
		return;
	if (r->scanning) {
		/* The scan in flight may have read the queue before this
		 * entry was deferred: its result is adjusted. */
		if (r->scan_by == 0 || when < r->scan_by)
			r->scan_by = when;
		return;
	}
	if (!uv_is_active((uv_handle_t *)&r->scan_timer) ||
	    uv_timer_get_due_in(&r->scan_timer) > ms)
		relay_scan_later(r, ms);
}

void
relay_kick(struct relay *r)
{
	if (r == NULL || !r->enabled || r->stopping)
		return;
	if (r->scanning) {
		r->rescan = true;
		return;
	}
	relay_scan_later(r, 0);
}

/* --- Life cycle -------------------------------------------------------- */

static int
relay_read_password(const char *path, char **pass_r, struct pr_err *err)
{
	char *pass;
	FILE *f;
	size_t n;

	f = fopen(path, "r");
	if (f == NULL)
		return pr_err_set(err, PR_EIO, "smarthost_password_file %s: %s",
		    path, strerror(errno));
	pass = sodium_malloc(SASL_PASS_MAX);
	if (pass == NULL) {
		fclose(f);
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	}
	if (fgets(pass, SASL_PASS_MAX, f) == NULL)
		pass[0] = '\0';
	fclose(f);
	n = strcspn(pass, "\r\n");
	pass[n] = '\0';
	if (n == 0) {
		sodium_free(pass);
		return pr_err_set(err, PR_EINVAL,
		    "smarthost_password_file %s is empty", path);
	}
	*pass_r = pass;
	return 0;
}

static SSL_CTX *
relay_tls_ctx(struct pr_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		pr_err_set(err, PR_ETLS, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Opportunistic TLS (RFC 7435): an unverifiable certificate does
	 * not stop delivery, but the result is logged, so the CA store is
	 * still loaded. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	return ctx;
}

static void
relay_free_cb(uv_handle_t *h)
{
	free(h->data);
}

int
relay_new(uv_loop_t *loop, const struct cfg *cfg, struct store_worker *wk,
    struct relay **r_r, struct pr_err *err)
{
	struct relay *r;
	int rc;

	r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->cfg = cfg;
	r->worker = wk;
	r->enabled = cfg->relay.enabled;
	r->wait_tail = &r->wait_head;
	uv_timer_init(loop, &r->scan_timer);
	r->scan_timer.data = r;
	if (!r->enabled) {
		r->dns_closed = true;
		*r_r = r;
		log_info(NULL, "relay: disabled");
		return 0;
	}
	if (cfg->relay.smarthost[0] != '\0') {
		r->smart_port = 25;
		if (relay_mx_parse_hostport(cfg->relay.smarthost, r->smart_host,
		    &r->smart_port) < 0) {
			rc = pr_err_set(err, PR_EINVAL, "[relay] smarthost: "
			    "bad value '%s' (host:port)", cfg->relay.smarthost);
			goto fail;
		}
		r->smarthost = true;
		if (cfg->relay.smarthost_user[0] != '\0') {
			if (cfg->relay.smarthost_password_file[0] == '\0') {
				rc = pr_err_set(err, PR_EINVAL, "[relay] "
				    "smarthost_user needs "
				    "smarthost_password_file");
				goto fail;
			}
			if ((rc = relay_read_password(
			    cfg->relay.smarthost_password_file,
			    &r->smart_pass, err)) < 0)
				goto fail;
			r->smart_user = xstrdup(cfg->relay.smarthost_user);
		}
	}
	if ((r->tls = relay_tls_ctx(err)) == NULL) {
		rc = PR_ETLS;
		goto fail;
	}
	if ((rc = relay_dns_new(loop, cfg->relay.resolver, &r->dns, err)) < 0)
		goto fail;
	if (r->smarthost)
		log_info(NULL, "relay: all mail through %s:%u%s",
		    r->smart_host, r->smart_port,
		    r->smart_user != NULL ? " with AUTH" : "");
	/* The first scan right away: entries left by the last run. */
	relay_scan_later(r, 0);
	*r_r = r;
	return 0;
fail:
	SSL_CTX_free(r->tls);
	free(r->smart_user);
	if (r->smart_pass != NULL)
		sodium_free(r->smart_pass);
	uv_close((uv_handle_t *)&r->scan_timer, relay_free_cb);
	return rc;
}

static void
relay_worker_stopped(void *data)
{
	struct relay *r = data;
	void (*cb)(void *) = r->done_cb;

	r->worker = NULL;
	r->done_cb = NULL;
	if (cb != NULL)
		cb(r->done_data);
}

/* Once nothing is in flight any more, the relay is done; the store
 * worker is the daemon's and stops after it. */
static void
relay_check_stopped(struct relay *r)
{
	if (!r->stopping || r->worker_stopping)
		return;
	if (r->n_msgs > 0 || !r->dns_closed || !r->timer_closed ||
	    r->scanning)
		return;
	r->worker_stopping = true;
	relay_worker_stopped(r);
}

static void
relay_dns_closed(void *data)
{
	struct relay *r = data;

	r->dns = NULL;
	r->dns_closed = true;
	relay_check_stopped(r);
}

static void
relay_timer_closed(uv_handle_t *h)
{
	struct relay *r = h->data;

	r->timer_closed = true;
	relay_check_stopped(r);
}

void
relay_stop(struct relay *r, void (*done_cb)(void *data), void *data)
{
	struct relay_dlv *d;

	if (r->stopping)
		return;
	r->stopping = true;
	r->done_cb = done_cb;
	r->done_data = data;
	uv_timer_stop(&r->scan_timer);
	uv_close((uv_handle_t *)&r->scan_timer, relay_timer_closed);
	/* Deliveries not started yet end at once; their entries stay
	 * queued for the next run. */
	while ((d = r->wait_head) != NULL) {
		r->wait_head = d->next_wait;
		relay_dlv_end(d);
	}
	r->wait_tail = &r->wait_head;
	/* Connections close; their close callbacks end the deliveries.
	 * Lookups in flight are cancelled by closing the resolver. */
	for (d = r->dlvs; d != NULL; d = d->next)
		if (d->conn != NULL)
			relay_conn_close(d->conn);
	if (r->dns != NULL)
		relay_dns_close(r->dns, relay_dns_closed, r);
	relay_check_stopped(r);
}

void
relay_free(struct relay **rp)
{
	struct relay *r = *rp;

	if (r == NULL)
		return;
	SSL_CTX_free(r->tls);
	free(r->smart_user);
	if (r->smart_pass != NULL)
		sodium_free(r->smart_pass);
	free(r);
	*rp = NULL;
}
