/*
 * net.c - libuv listeners and connections; OpenSSL over memory BIOs.
 *
 * Data path of a connection:
 *
 *   socket --read--> [rbio] --SSL_read--> in (plaintext) --> session
 *   session --net_conn_write--> SSL_write --> [wbio] --uv_write--> socket
 *
 * Without TLS the BIOs are skipped.  One static read buffer per process
 * serves every connection (libuv reads one socket at a time), so an idle
 * connection holds no read buffer at all.
 *
 * A connection is accepted by a listener (server role) or made with
 * net_connect (client role, the relay); both share everything below the
 * handshake's direction.  The contexts and their policy are in tls.c.
 */
#include "net.h"
#include "tls_bio.h"
#include "tls_int.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "tlsa.h"
#include "xmalloc.h"

struct net_listener {
	uv_tcp_t tcp;
	struct net_tls *implicit_tls;
	struct net_tls *starttls;
	int kind;
	net_accept_cb cb;
	void *data;
	char name[80];
};

struct net_conn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;  /* client role */
	uv_timer_t timer;
	uv_idle_t kick;            /* deferred input_cb after resume */
	struct net_listener *l;
	const struct net_conn_ops *ops;
	void *data;
	struct buf in;             /* plaintext input not yet consumed */
	SSL *ssl;
	BIO *rbio, *wbio;          /* owned by ssl */
	size_t write_pending;
	uint64_t timeout_ms;
	int handles;               /* open libuv handles */
	int local_port;
	unsigned paused : 1, reading : 1, closing : 1, close_after_flush : 1,
	    handshaking : 1, tls_failed : 1, eof : 1, timeout_held : 1,
	    client : 1, connecting : 1;
	char *refusal;             /* net_conn_refuse, sent after TLS */
	char peer[INET6_ADDRSTRLEN];
	char local[INET6_ADDRSTRLEN];
	/* "TLSv1.3 CIPHER" once the handshake is done; the reason instead
	 * when it failed (tls_failed). */
	char tls_desc[96];
};

struct net_write {
	uv_write_t req;
	struct net_conn *c;
	size_t len;
	char data[];
};

#define NET_READ_CHUNK (64 * 1024)
static char net_readbuf[NET_READ_CHUNK];

/* Connections of this process: open now, and made since start. */
static unsigned net_live;
static uint64_t net_made;

/* A TLS handshake must be over within this long after it started (or the
 * idle timeout, if shorter).  Input does not extend it: a peer that
 * trickles a ClientHello byte by byte is cut off all the same. */
#define NET_HANDSHAKE_MAX_MS 60000
/* A refused connection on an implicit-TLS port gets this long for the
 * handshake that carries its refusal (net_conn_refuse). */
#define NET_REFUSAL_MAX_MS 10000
/* How long close(flush) waits for a peer that does not read. */
#define NET_FLUSH_MAX_MS 30000

static void net_conn_update_reading(struct net_conn *c);
static void net_conn_do_close(struct net_conn *c);
static void net_timer_cb(uv_timer_t *t);
static void net_conn_fail(struct net_conn *c, int status);

/* --- Connection accessors ---------------------------------------------- */

void
net_conn_set_data(struct net_conn *c, void *data)
{
	c->data = data;
}

void *
net_conn_data(const struct net_conn *c)
{
	return c->data;
}

void
net_conn_set_ops(struct net_conn *c, const struct net_conn_ops *ops)
{
	c->ops = ops;
}

const char *
net_conn_peer(const struct net_conn *c)
{
	return c->peer;
}

const char *
net_conn_local(const struct net_conn *c)
{
	return c->local;
}

int
net_conn_local_port(const struct net_conn *c)
{
	return c->local_port;
}

struct net_listener *
net_conn_listener(const struct net_conn *c)
{
	return c->l;
}

struct net_tls *
net_conn_starttls_ctx(const struct net_conn *c)
{
	return c->l != NULL ? c->l->starttls : NULL;
}

int
net_listener_kind(const struct net_listener *l)
{
	return l->kind;
}

void *
net_listener_data(const struct net_listener *l)
{
	return l->data;
}

bool
net_conn_tls_active(const struct net_conn *c)
{
	return c->ssl != NULL && !c->handshaking && !c->tls_failed;
}

const char *
net_conn_tls_desc(const struct net_conn *c)
{
	return c->tls_failed ? "" : c->tls_desc;
}

const char *
net_conn_tls_error(const struct net_conn *c)
{
	return c->tls_failed ? c->tls_desc : "";
}

bool
net_conn_closing(const struct net_conn *c)
{
	return c->closing;
}

size_t
net_conn_write_pending(const struct net_conn *c)
{
	return c->write_pending;
}

void
net_conn_input(struct net_conn *c, const uint8_t **data, size_t *len)
{
	*data = c->in.p;
	*len = c->in.len;
}

void
net_conn_consume(struct net_conn *c, size_t n)
{
	buf_consume(&c->in, n);
	/* An idle connection keeps no input storage. */
	if (c->in.len == 0)
		buf_shrink(&c->in, 0);
	net_conn_update_reading(c);
}

/* --- Writing ----------------------------------------------------------- */

static void
net_write_cb(uv_write_t *req, int status)
{
	struct net_write *w = (struct net_write *)req;
	struct net_conn *c = w->c;

	c->write_pending -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		/* libuv writes nothing more on this stream after an error, so
		 * a flush in progress cannot finish either: close now. */
		if (!c->closing) {
			log_debug(NULL, "write to %s failed: %s", c->peer,
			    uv_strerror(status));
			if (c->ops->error_cb)
				c->ops->error_cb(c, status);
		}
		net_conn_do_close(c);
		return;
	}
	if (c->write_pending == 0) {
		if (c->close_after_flush)
			net_conn_do_close(c);
		else if (!c->closing && c->ops->drain_cb)
			c->ops->drain_cb(c);
	}
}

/* Queues raw bytes (ciphertext or plaintext) on the socket. */
static int
net_conn_send_raw(struct net_conn *c, const void *data, size_t len)
{
	struct net_write *w;
	uv_buf_t b;
	int r;

	if (len == 0)
		return 0;
	/* Fast path: nothing queued, the kernel takes it all, no copy. */
	if (c->write_pending == 0) {
		b = uv_buf_init((char *)data, (unsigned)len);
		r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (r > 0) {
			data = (const char *)data + r;
			len -= (size_t)r;
			if (len == 0)
				return 0;
		}
	}
	w = xmalloc(sizeof(*w) + len);
	w->c = c;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, net_write_cb);
	if (r < 0) {
		free(w);
		return r;
	}
	c->write_pending += len;
	return 0;
}

/* Idle BIOs give back their record-sized buffers (tls_bio_trim). */
static void
net_conn_tls_trim(struct net_conn *c)
{
	tls_bio_trim(c->ssl, &c->rbio, &c->wbio);
}

/* Moves whatever OpenSSL produced into the socket. */
static int
net_conn_flush_tls(struct net_conn *c)
{
	char *p;
	long n;
	int r = 0;

	n = BIO_get_mem_data(c->wbio, &p);
	if (n > 0) {
		r = net_conn_send_raw(c, p, (size_t)n);
		(void)BIO_reset(c->wbio);
	}
	net_conn_tls_trim(c);
	return r;
}

int
net_conn_write(struct net_conn *c, const void *data, size_t len)
{
	if (c->closing)
		return PR_EIO;
	if (c->ssl == NULL)
		return net_conn_send_raw(c, data, len) < 0 ? PR_EIO : 0;
	if (len > 0 && SSL_write(c->ssl, data, (int)len) <= 0) {
		ERR_clear_error();
		return PR_ETLS;
	}
	return net_conn_flush_tls(c) < 0 ? PR_EIO : 0;
}

/* --- Reading ----------------------------------------------------------- */

static void
net_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct net_conn *c = h->data;
	size_t room = sizeof(net_readbuf);

	(void)suggested;
	/* Plaintext goes straight to the bounded input buffer; never read
	 * more than it can take.  Ciphertext is bounded by the same check
	 * before SSL_read, and reading stops while the buffer is full. */
	if (c->ssl == NULL && c->in.max - c->in.len < room)
		room = c->in.max - c->in.len;
	*b = uv_buf_init(room ? net_readbuf : NULL, (unsigned)room);
}

static void
net_conn_arm_timer(struct net_conn *c, uint64_t ms)
{
	if (ms != 0)
		uv_timer_start(&c->timer, net_timer_cb, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

static void
net_conn_fail(struct net_conn *c, int status)
{
	if (c->closing)
		return;
	if (c->ops->error_cb)
		c->ops->error_cb(c, status);
	/* Whatever the session queued as a last reply still goes out. */
	net_conn_close(c, true);
}

static void
net_conn_send_refusal(struct net_conn *c)
{
	(void)net_conn_write(c, c->refusal, strlen(c->refusal));
	net_conn_close(c, true);
}

void
net_conn_refuse(struct net_conn *c, const char *line)
{
	size_t n = strlen(line);

	if (c->closing || c->refusal != NULL)
		return;
	c->refusal = xmalloc(n + 3);
	memcpy(c->refusal, line, n);
	memcpy(c->refusal + n, "\r\n", 3);
	/* Nothing the peer sends is read as a command any more. */
	buf_reset(&c->in);
	/* An implicit-TLS listener starts its handshake after the accept
	 * callback; the refusal waits for its end (net_conn_tls_done). */
	if (c->ssl != NULL && !c->handshaking)
		net_conn_send_refusal(c);
	else if (c->ssl == NULL && (c->l == NULL || c->l->implicit_tls == NULL))
		net_conn_send_refusal(c);
}

static void
net_conn_tls_done(struct net_conn *c)
{
	snprintf(c->tls_desc, sizeof(c->tls_desc), "%s %s",
	    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	metrics_inc(METRICS_TLS_HANDSHAKES, SSL_get_version(c->ssl));
	c->handshaking = 0;
	if (c->refusal != NULL) {
		net_conn_send_refusal(c);
		return;
	}
	/* The handshake deadline is over; idling is measured again. */
	net_conn_arm_timer(c, c->timeout_ms);
	if (c->ops->tls_cb)
		c->ops->tls_cb(c, 0);
}

/* True when OpenSSL holds input the session has not seen: decrypted
 * plaintext (SSL_pending) or ciphertext still in the read BIO. */
static bool
net_conn_tls_buffered(const struct net_conn *c)
{
	return tls_bio_buffered(c->ssl, c->rbio);
}

/* Runs the handshake and decrypts what fits into c->in.  Returns 0, UV_EOF
 * after a close_notify, UV_EPROTO for a TLS failure, or a write error. */
static int
net_conn_tls_pump(struct net_conn *c)
{
	int n, e;

	if (c->handshaking) {
		n = SSL_do_handshake(c->ssl);
		if (n != 1) {
			e = SSL_get_error(c->ssl, n);
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE) {
				unsigned long err = ERR_peek_error();

				long v = SSL_get_verify_result(c->ssl);

				/* The session logs it, with its id. */
				if (c->client && v != X509_V_OK)
					snprintf(c->tls_desc,
					    sizeof(c->tls_desc),
					    "certificate verification failed: "
					    "%s", X509_verify_cert_error_string(v));
				else if (err != 0)
					ERR_error_string_n(err, c->tls_desc,
					    sizeof(c->tls_desc));
				else
					snprintf(c->tls_desc,
					    sizeof(c->tls_desc), "%s",
					    e == SSL_ERROR_SYSCALL ?
					    "unexpected end of input" :
					    "protocol error");
				log_debug(NULL, "TLS handshake with %s failed: "
				    "%s", c->peer, c->tls_desc);
				ERR_clear_error();
				net_conn_flush_tls(c);
				c->tls_failed = 1;
				metrics_inc(METRICS_TLS_HANDSHAKES, "failed");
				return UV_EPROTO;
			}
			return net_conn_flush_tls(c);
		}
		net_conn_flush_tls(c);
		net_conn_tls_done(c);
		if (c->closing)
			return 0;
	}
	/* What does not fit into c->in waits inside OpenSSL. */
	if ((n = tls_bio_read(c->ssl, &c->in)) != 0) {
		net_conn_flush_tls(c);
		/* close_notify or a broken record: end of input. */
		return n > 0 ? UV_EOF : UV_EPROTO;
	}
	return net_conn_flush_tls(c);
}

/*
 * Hands buffered input to the session.  After the peer's end of input
 * (EOF or TLS close_notify) the session first gets everything that came
 * before it, including the results of commands it is still carrying out
 * while paused: a client may send its last commands and half-close.  Only
 * when it is no longer paused does the end of input close the connection.
 */
static void
net_conn_deliver(struct net_conn *c)
{
	size_t before;
	int r;

	for (;;) {
		if (c->refusal != NULL)
			buf_reset(&c->in);
		if (!c->closing && !c->paused && !c->handshaking &&
		    c->in.len > 0 && c->ops->input_cb)
			c->ops->input_cb(c);
		/*
		 * Records that did not fit into c->in (it was full) wait in
		 * OpenSSL, decrypted or not.  The peer sent them already
		 * and may send nothing more until it has its reply, so
		 * they are decrypted as soon as the session made room, not
		 * when the next packet happens to arrive.
		 */
		if (c->ssl == NULL || c->closing || c->paused ||
		    c->handshaking || c->eof || c->in.len >= c->in.max ||
		    !net_conn_tls_buffered(c))
			break;
		before = c->in.len;
		r = net_conn_tls_pump(c);
		if (r == UV_EOF) {
			c->eof = 1;
		} else if (r < 0) {
			net_conn_fail(c, r);
			return;
		}
		if (c->in.len == before)
			break;
	}
	if (c->eof && !c->closing && !c->paused) {
		net_conn_fail(c, UV_EOF);
		return;
	}
	net_conn_update_reading(c);
}

static void
net_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct net_conn *c = s->data;
	int r;

	if (nread == 0 || c->closing)
		return;
	if (nread == UV_EOF && !c->handshaking) {
		c->eof = 1;
		net_conn_deliver(c);
		return;
	}
	if (nread < 0) {
		/* A reset, or an EOF during a handshake (a port probe, most
		 * likely: error_cb says so, not tls_cb).  UV_ENOBUFS: input
		 * full while not paused, which the session contract rules
		 * out; treat it like an error. */
		net_conn_fail(c, (int)nread);
		return;
	}
	/* Input re-arms the idle timer, but neither during a handshake
	 * (which has its own deadline) nor while the session holds it. */
	if (c->timeout_ms && !c->handshaking && !c->timeout_held)
		uv_timer_start(&c->timer, net_timer_cb, c->timeout_ms, 0);
	if (c->ssl == NULL) {
		/* alloc_cb bounded nread to the free room. */
		if (buf_append(&c->in, b->base, (size_t)nread) < 0) {
			net_conn_fail(c, UV_ENOBUFS);
			return;
		}
	} else {
		if (BIO_write(c->rbio, b->base, (int)nread) != (int)nread) {
			net_conn_fail(c, UV_EPROTO);
			return;
		}
		r = net_conn_tls_pump(c);
		if (r == UV_EOF && !c->handshaking) {
			/* close_notify: what came before it still counts. */
			c->eof = 1;
		} else if (r < 0) {
			if (c->handshaking && c->ops->tls_cb &&
			    c->refusal == NULL)
				c->ops->tls_cb(c, PR_ETLS);
			net_conn_fail(c, r);
			return;
		}
	}
	net_conn_deliver(c);
}

static void
net_conn_update_reading(struct net_conn *c)
{
	bool want = !c->closing && !c->paused && !c->eof && !c->connecting &&
	    c->in.len < c->in.max;

	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, net_alloc_cb,
		    net_read_cb) == 0)
			c->reading = 1;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

void
net_conn_pause(struct net_conn *c)
{
	c->paused = 1;
	uv_idle_stop(&c->kick);
	net_conn_update_reading(c);
}

static void
net_kick_cb(uv_idle_t *h)
{
	struct net_conn *c = h->data;

	uv_idle_stop(h);
	/* Plaintext may be waiting inside OpenSSL when c->in was full. */
	if (c->ssl != NULL && !c->handshaking && !c->closing && !c->eof) {
		int r = net_conn_tls_pump(c);

		if (r == UV_EOF) {
			c->eof = 1;
		} else if (r < 0) {
			net_conn_fail(c, r);
			return;
		}
	}
	net_conn_deliver(c);
}

void
net_conn_resume(struct net_conn *c)
{
	if (c->closing)
		return;
	c->paused = 0;
	net_conn_update_reading(c);
	/* Deliver buffered input from the loop, not from inside the
	 * caller's stack (which is usually the session itself). */
	if (c->in.len > 0 || c->ssl != NULL || c->eof)
		uv_idle_start(&c->kick, net_kick_cb);
}

/* Starts a handshake of t's role on c (see tls_conn_setup, and
 * tls_conn_setup_dane when dane is not NULL). */
static int
net_conn_tls_start(struct net_conn *c, const struct net_tls *t,
    const char *host, bool verify, const struct net_tls_dane *dane)
{
	int r;

	if (c->ssl != NULL || t == NULL || c->closing)
		return PR_EINVAL;
	/* RFC 3207 5, RFC 2595 3: anything received before the handshake
	 * is dropped, never taken as if it came inside TLS. */
	buf_reset(&c->in);
	c->ssl = SSL_new(t->ctx);
	if (c->ssl == NULL)
		return PR_ENOMEM;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->rbio == NULL || c->wbio == NULL) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		return PR_ENOMEM;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	r = dane != NULL ? tls_conn_setup_dane(c->ssl, t, dane) :
	    tls_conn_setup(c->ssl, t, host, verify);
	if (r < 0) {
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
		return r;
	}
	c->handshaking = 1;
	/* Whatever partial input the session was timing is gone too. */
	c->timeout_held = 0;
	net_conn_arm_timer(c, c->refusal != NULL ? NET_REFUSAL_MAX_MS :
	    c->timeout_ms != 0 && c->timeout_ms < NET_HANDSHAKE_MAX_MS ?
	    c->timeout_ms : NET_HANDSHAKE_MAX_MS);
	net_conn_update_reading(c);
	return 0;
}

int
net_conn_starttls(struct net_conn *c)
{
	if (c->client || c->l == NULL)
		return PR_EINVAL;
	return net_conn_tls_start(c, c->l->starttls ? c->l->starttls :
	    c->l->implicit_tls, NULL, false, NULL);
}

/* The client side of a handshake, with or without DANE. */
static int
net_conn_tls_client(struct net_conn *c, const struct net_tls *tls,
    const char *host, bool verify, const struct net_tls_dane *dane)
{
	int r;

	if (!c->client || c->connecting || tls == NULL || !tls->client)
		return PR_EINVAL;
	if ((r = net_conn_tls_start(c, tls, host, verify, dane)) < 0)
		return r;
	/* The client speaks first: the ClientHello goes out now. */
	if ((r = net_conn_tls_pump(c)) < 0) {
		net_conn_fail(c, r);
		return PR_ETLS;
	}
	return 0;
}

int
net_conn_starttls_client(struct net_conn *c, const struct net_tls *tls,
    const char *host, bool verify)
{
	return net_conn_tls_client(c, tls, host, verify, NULL);
}

int
net_conn_starttls_client_dane(struct net_conn *c, const struct net_tls *tls,
    const struct net_tls_dane *dane)
{
	if (dane == NULL)
		return PR_EINVAL;
	return net_conn_tls_client(c, tls, dane->base, true, dane);
}

bool
net_conn_tls_dane_match(const struct net_conn *c, char *out, size_t outsz)
{
	struct tlsa_rr rr;
	uint8_t usage, selector, mtype;
	unsigned const char *data;
	size_t len;

	if (!net_conn_tls_verified(c) ||
	    SSL_get0_dane_tlsa(c->ssl, &usage, &selector, &mtype, &data,
	    &len) < 0)
		return false;
	rr.usage = usage;
	rr.selector = selector;
	rr.mtype = mtype;
	rr.data = data;
	rr.len = len;
	tlsa_format(&rr, out, outsz);
	return true;
}

bool
net_conn_tls_verified(const struct net_conn *c)
{
	return net_conn_tls_active(c) &&
	    SSL_get0_peer_certificate(c->ssl) != NULL &&
	    SSL_get_verify_result(c->ssl) == X509_V_OK;
}

bool
net_conn_tls_peer_names(const struct net_conn *c, char *subject,
    size_t subjectsz, char *issuer, size_t issuersz)
{
	X509 *x;

	if (!net_conn_tls_active(c) ||
	    (x = SSL_get0_peer_certificate(c->ssl)) == NULL)
		return false;
	if (X509_NAME_oneline(X509_get_subject_name(x), subject,
	    (int)subjectsz) == NULL ||
	    X509_NAME_oneline(X509_get_issuer_name(x), issuer,
	    (int)issuersz) == NULL)
		return false;
	return true;
}

const char *
net_conn_tls_verify_error(const struct net_conn *c)
{
	if (c->ssl == NULL || c->handshaking)
		return "";
	if (SSL_get0_peer_certificate(c->ssl) == NULL)
		return "no certificate";
	if (SSL_get_verify_result(c->ssl) == X509_V_OK)
		return "";
	return X509_verify_cert_error_string(SSL_get_verify_result(c->ssl));
}

enum net_tls_verify_kind
net_conn_tls_verify_kind(const struct net_conn *c)
{
	if (c->ssl == NULL)
		return NET_TLS_VERIFY_OK;
	switch (SSL_get_verify_result(c->ssl)) {
	case X509_V_OK:
		return NET_TLS_VERIFY_OK;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return NET_TLS_VERIFY_NAME;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return NET_TLS_VERIFY_EXPIRED;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return NET_TLS_VERIFY_UNTRUSTED;
	default:
		return NET_TLS_VERIFY_OTHER;
	}
}

/* --- Timer and close --------------------------------------------------- */

static void
net_timer_cb(uv_timer_t *t)
{
	struct net_conn *c = t->data;

	if (c->closing)
		return;
	/* A refused connection whose handshake did not finish in time:
	 * nothing of the session's is waiting for it. */
	if (c->ops->timeout_cb && c->refusal == NULL)
		c->ops->timeout_cb(c);
	else
		net_conn_close(c, false);
}

void
net_conn_set_timeout(struct net_conn *c, uint64_t ms)
{
	c->timeout_ms = ms;
	/* A handshake keeps its own deadline. */
	if (c->closing || c->handshaking)
		return;
	net_conn_arm_timer(c, ms);
}

void
net_conn_hold_timeout(struct net_conn *c, bool hold)
{
	if ((bool)c->timeout_held == hold)
		return;
	c->timeout_held = hold;
	/* Released: the wait for the next unit of input starts now. */
	if (!hold && !c->closing && !c->handshaking)
		net_conn_arm_timer(c, c->timeout_ms);
}

static void
net_handle_closed_cb(uv_handle_t *h)
{
	struct net_conn *c = h->data;

	if (--c->handles > 0)
		return;
	if (c->ops && c->ops->close_cb)
		c->ops->close_cb(c);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	buf_fini(&c->in);
	free(c->refusal);
	free(c);
	net_live--;
}

static void
net_conn_do_close(struct net_conn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	c->closing = 1;
	c->reading = 0;
	uv_close((uv_handle_t *)&c->tcp, net_handle_closed_cb);
	uv_close((uv_handle_t *)&c->timer, net_handle_closed_cb);
	uv_close((uv_handle_t *)&c->kick, net_handle_closed_cb);
}

static void
net_flush_timeout_cb(uv_timer_t *t)
{
	net_conn_do_close(t->data);
}

void
net_conn_close(struct net_conn *c, bool flush)
{
	if (c->closing) {
		if (!flush && !uv_is_closing((uv_handle_t *)&c->tcp))
			net_conn_do_close(c);
		return;
	}
	c->closing = 1;
	uv_idle_stop(&c->kick);
	uv_timer_stop(&c->timer);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
	if (flush && c->ssl != NULL && !c->handshaking && !c->tls_failed) {
		/* A clean TLS close lets the client tell truncation from
		 * the end of the session. */
		if (SSL_shutdown(c->ssl) < 0)
			ERR_clear_error();
		net_conn_flush_tls(c);
	}
	if (flush && c->write_pending > 0) {
		c->close_after_flush = 1;
		/* A peer that never reads cannot hold us forever. */
		uv_timer_start(&c->timer, net_flush_timeout_cb,
		    NET_FLUSH_MAX_MS, 0);
		return;
	}
	net_conn_do_close(c);
}

/* --- Listeners --------------------------------------------------------- */

/* A connection with its three handles initialised, not yet connected. */
static struct net_conn *
net_conn_alloc(uv_loop_t *loop)
{
	struct net_conn *c = xcalloc(1, sizeof(*c));

	buf_init(&c->in, NET_INPUT_MAX);
	uv_tcp_init(loop, &c->tcp);
	uv_timer_init(loop, &c->timer);
	uv_idle_init(loop, &c->kick);
	c->tcp.data = c->timer.data = c->kick.data = c;
	c->connect_req.data = c;
	c->handles = 3;
	net_live++;
	net_made++;
	return c;
}

void
net_conn_counts(unsigned *live_r, uint64_t *made_r)
{
	*live_r = net_live;
	*made_r = net_made;
}

/* "192.0.2.1" or "2001:db8::1"; v4-mapped IPv6 as plain IPv4. */
static void
net_addr_name(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET6) {
		uv_ip6_name((const struct sockaddr_in6 *)sa, out, len);
		if (strncmp(out, "::ffff:", 7) == 0 &&
		    strchr(out + 7, '.') != NULL)
			memmove(out, out + 7, strlen(out + 7) + 1);
	} else if (sa->sa_family == AF_INET) {
		uv_ip4_name((const struct sockaddr_in *)sa, out, len);
	} else {
		snprintf(out, len, "unknown");
	}
}

static void
net_conn_name(struct net_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (c->peer[0] == '\0') {
		if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss,
		    &len) == 0)
			net_addr_name((struct sockaddr *)&ss, c->peer,
			    sizeof(c->peer));
		else
			strcpy(c->peer, "unknown");
	}
	len = sizeof(ss);
	if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		c->local_port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
		net_addr_name((struct sockaddr *)&ss, c->local,
		    sizeof(c->local));
	}
}

static void
net_connection_cb(uv_stream_t *server, int status)
{
	struct net_listener *l = server->data;
	struct net_conn *c;

	if (status < 0) {
		log_warn(NULL, "accept on %s: %s", l->name, uv_strerror(status));
		return;
	}
	c = net_conn_alloc(server->loop);
	c->l = l;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		net_conn_do_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	net_conn_name(c);
	l->cb(l, c);
	if (c->closing)
		return;
	if (c->ops == NULL)
		fatal("net: accept callback set no ops");
	/* RFC 8314: the handshake starts at once on 465/995. */
	if (l->implicit_tls != NULL)
		net_conn_tls_start(c, l->implicit_tls, NULL, false, NULL);
	net_conn_update_reading(c);
}

/* --- Client connections ------------------------------------------------ */

static void
net_connect_cb(uv_connect_t *req, int status)
{
	struct net_conn *c = req->data;

	c->connecting = 0;
	if (c->closing)
		return;
	if (status < 0) {
		if (c->ops->connect_cb != NULL)
			c->ops->connect_cb(c, status);
		net_conn_do_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	net_conn_name(c);
	if (c->ops->connect_cb != NULL)
		c->ops->connect_cb(c, 0);
	if (!c->closing)
		net_conn_update_reading(c);
}

int
net_connect(uv_loop_t *loop, const struct sockaddr *addr,
    const struct net_conn_ops *ops, void *data, struct net_conn **c_r)
{
	struct net_conn *c = net_conn_alloc(loop);
	int r;

	c->client = 1;
	c->connecting = 1;
	c->data = data;
	net_addr_name(addr, c->peer, sizeof(c->peer));
	r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, net_connect_cb);
	if (r < 0) {
		/* No callback of the caller's: it learns from r. */
		c->ops = NULL;
		net_conn_do_close(c);
		return r;
	}
	c->ops = ops;
	*c_r = c;
	return 0;
}

int
net_listen(uv_loop_t *loop, const char *host, const char *port,
    struct net_tls *implicit_tls, struct net_tls *starttls, int kind,
    net_accept_cb cb, void *data, struct net_listener **l_r,
    struct pr_err *err)
{
	struct addrinfo hints, *ai = NULL;
	struct net_listener *l;
	unsigned flags = 0;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		return pr_err_set(err, PR_EINVAL, "listen %s:%s: %s", host, port,
		    gai_strerror(r));
	l = xcalloc(1, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s%s%s:%s",
	    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
	    port);
	l->implicit_tls = implicit_tls;
	l->starttls = starttls;
	l->kind = kind;
	l->cb = cb;
	l->data = data;
	uv_tcp_init(loop, &l->tcp);
	l->tcp.data = l;
	/* "0.0.0.0:25,[::]:25" binds two sockets: keep v6 to v6. */
	if (ai->ai_family == AF_INET6)
		flags = UV_TCP_IPV6ONLY;
	r = uv_tcp_bind(&l->tcp, ai->ai_addr, flags);
	freeaddrinfo(ai);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->tcp, 511, net_connection_cb);
	if (r < 0) {
		pr_err_set(err, PR_EIO, "listen %s: %s", l->name, uv_strerror(r));
		uv_close((uv_handle_t *)&l->tcp, (uv_close_cb)free);
		return r == UV_EAFNOSUPPORT || r == UV_EADDRNOTAVAIL ?
		    PR_EINVAL : PR_EIO;
	}
	*l_r = l;
	return 0;
}

bool
net_listen_optional(const char *host)
{
	return strcmp(host, "::") == 0;
}

void
net_listener_close(struct net_listener **l)
{
	if (*l == NULL)
		return;
	uv_close((uv_handle_t *)&(*l)->tcp, (uv_close_cb)free);
	*l = NULL;
}
