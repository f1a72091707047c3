/*
 * relay_body.c - streaming a queued message's body to the remote server
 * (see relay_int.h).
 *
 * After the 354 (relay_client's BODY event) the body is read from the
 * store in RELAY_CHUNK pieces on the store worker and dot-stuffed on the
 * way (RFC 5321 4.5.2), the DKIM-Signature field first.  At most about
 * one chunk is in flight to the socket: the next read starts when the
 * connection's write queue drains below it, so a slow server holds one
 * chunk of memory, not the message.
 */
#include "relay_int.h"

#include <stdio.h>

#include "xmalloc.h"

static void
relay_dlv_body_run(struct relay_work *w, struct store *st)
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
		r = net_conn_write(d->conn, d->wire.p, d->wire.len);
	buf_reset(&d->wire);
	return r;
}

static void
relay_dlv_body_done(struct relay_work *w)
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
		net_conn_close(d->conn, false);
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
		/* A reply may be here already (an early 5xx). */
		relay_dlv_feed(d);
		relay_dlv_unref(d);
		return;
	}
	d->off += d->chunk_n;
	if (relay_stuff_feed(&d->stuff, d->chunk, (size_t)d->chunk_n,
	    &d->wire) < 0 || relay_dlv_send_wire(d) < 0) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "cannot send the message to %s", d->peer);
		net_conn_close(d->conn, false);
		relay_dlv_unref(d);
		return;
	}
	relay_dlv_timer_start(d, relay_dlv_timeout_cb,
	    relay_client_timeout_ms(&d->client));
	/* Keep at most about one chunk in flight to the socket. */
	if (net_conn_write_pending(d->conn) < RELAY_CHUNK)
		relay_dlv_read_next(d);
	relay_dlv_unref(d);
}

void
relay_dlv_read_next(struct relay_dlv *d)
{
	if (d->reading || d->body_eof || d->ended)
		return;
	d->reading = true;
	d->refs++;
	relay_worker_submit(d->r->worker, &d->bwork, relay_dlv_body_run,
	    relay_dlv_body_done);
}

void
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

