/*
 * relay_conn.c - outgoing TCP with client-side TLS over memory BIOs.
 *
 *   socket --read--> [rbio] --SSL_read--> in (plaintext) --> owner
 *   owner --relay_conn_write--> SSL_write --> [wbio] --uv_write--> socket
 *
 * Without TLS the BIOs are skipped.
 */
#include "relay_conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "xmalloc.h"

struct relay_conn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	const struct relay_conn_ops *ops;
	void *data;
	struct buf in;
	SSL *ssl;
	BIO *rbio, *wbio;          /* owned by ssl */
	size_t write_pending;
	bool connected, closing, handshaking;
	char tls_desc[160];
};

struct relay_conn_wreq {
	uv_write_t req;
	struct relay_conn *c;
	size_t len;
	char data[];
};

#define RELAY_CONN_READ_CHUNK (64 * 1024)
static char relay_conn_readbuf[RELAY_CONN_READ_CHUNK];

static void relay_conn_fail(struct relay_conn *c, const char *why);

void *
relay_conn_data(const struct relay_conn *c)
{
	return c->data;
}

static void
relay_conn_closed(uv_handle_t *h)
{
	struct relay_conn *c = h->data;

	c->ops->close_cb(c);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	buf_fini(&c->in);
	free(c);
}

static void
relay_conn_closed_quiet(uv_handle_t *h)
{
	struct relay_conn *c = h->data;

	buf_fini(&c->in);
	free(c);
}

void
relay_conn_close(struct relay_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, relay_conn_closed);
}

static void
relay_conn_fail(struct relay_conn *c, const char *why)
{
	if (c->closing)
		return;
	c->ops->error_cb(c, why);
	relay_conn_close(c);
}

static void
relay_conn_write_cb(uv_write_t *req, int status)
{
	struct relay_conn_wreq *w = req->data;
	struct relay_conn *c = w->c;
	char why[128];

	c->write_pending -= w->len;
	free(w);
	if (c->closing)
		return;
	if (status < 0) {
		snprintf(why, sizeof(why), "write: %s", uv_strerror(status));
		relay_conn_fail(c, why);
		return;
	}
	if (c->write_pending == 0 && c->ops->drain_cb != NULL)
		c->ops->drain_cb(c);
}

/* Hands raw octets to libuv. */
static int
relay_conn_send_raw(struct relay_conn *c, const void *p, size_t len)
{
	struct relay_conn_wreq *w;
	uv_buf_t b;
	int r;

	if (len == 0)
		return 0;
	w = xmalloc(sizeof(*w) + len);
	w->c = c;
	w->len = len;
	w->req.data = w;
	memcpy(w->data, p, len);
	b = uv_buf_init(w->data, (unsigned)len);
	c->write_pending += len;
	if ((r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1,
	    relay_conn_write_cb)) < 0) {
		c->write_pending -= len;
		free(w);
		return r;
	}
	return 0;
}

/* Sends whatever OpenSSL left in the write BIO. */
static int
relay_conn_flush_tls(struct relay_conn *c)
{
	char *p;
	long n;
	int r;

	n = BIO_get_mem_data(c->wbio, &p);
	if (n <= 0)
		return 0;
	r = relay_conn_send_raw(c, p, (size_t)n);
	(void)BIO_reset(c->wbio);
	return r;
}

int
relay_conn_write(struct relay_conn *c, const void *p, size_t len)
{
	const char *s = p;
	int n;

	if (c->closing)
		return PR_EIO;
	if (c->ssl == NULL)
		return relay_conn_send_raw(c, p, len);
	if (c->handshaking)
		return PR_EAGAIN;
	while (len > 0) {
		n = SSL_write(c->ssl, s, len > INT32_MAX ? INT32_MAX :
		    (int)len);
		if (n <= 0)
			return PR_ETLS;
		s += n;
		len -= (size_t)n;
	}
	return relay_conn_flush_tls(c);
}

size_t
relay_conn_write_pending(const struct relay_conn *c)
{
	return c->write_pending;
}

void
relay_conn_input(struct relay_conn *c, const uint8_t **p, size_t *len)
{
	*p = c->in.p;
	*len = c->in.len;
}

void
relay_conn_consume(struct relay_conn *c, size_t n)
{
	buf_consume(&c->in, n);
}

bool
relay_conn_tls_active(const struct relay_conn *c)
{
	return c->ssl != NULL && !c->handshaking;
}

const char *
relay_conn_tls_desc(const struct relay_conn *c)
{
	return c->tls_desc;
}

static void
relay_conn_tls_describe(struct relay_conn *c)
{
	long v = SSL_get_verify_result(c->ssl);
	X509 *peer = SSL_get0_peer_certificate(c->ssl);

	snprintf(c->tls_desc, sizeof(c->tls_desc), "%s with cipher %s (%s%s%s)",
	    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
	    peer != NULL && v == X509_V_OK ? "Verified" : "Untrusted",
	    peer != NULL && v != X509_V_OK ? ": " : "",
	    peer != NULL && v != X509_V_OK ?
	    X509_verify_cert_error_string(v) : "");
}

/* Drives the handshake and decrypts what arrived.  Returns 0, or a
 * negative value when the connection failed (already reported). */
static int
relay_conn_tls_input(struct relay_conn *c)
{
	char why[200];
	size_t room;
	int n, e;

	if (c->handshaking) {
		n = SSL_do_handshake(c->ssl);
		if (relay_conn_flush_tls(c) < 0) {
			relay_conn_fail(c, "write failed during TLS handshake");
			return -1;
		}
		if (n != 1) {
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return 0;
			snprintf(why, sizeof(why), "TLS handshake: %s",
			    ERR_reason_error_string(ERR_peek_last_error()) ?
			    ERR_reason_error_string(ERR_peek_last_error()) :
			    "failed");
			ERR_clear_error();
			c->ops->tls_cb(c, PR_ETLS);
			relay_conn_fail(c, why);
			return -1;
		}
		c->handshaking = false;
		relay_conn_tls_describe(c);
		c->ops->tls_cb(c, 0);
		if (c->closing)
			return -1;
	}
	for (;;) {
		room = RELAY_CONN_INPUT_MAX - c->in.len;
		if (room == 0)
			break;
		if (buf_reserve(&c->in, room < 16384 ? room : 16384) < 0)
			break;
		room = c->in.cap - c->in.len;
		n = SSL_read(c->ssl, c->in.p + c->in.len, (int)room);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		ERR_clear_error();
		relay_conn_fail(c, e == SSL_ERROR_ZERO_RETURN ?
		    "connection closed by the server (TLS close)" :
		    "TLS error while reading");
		return -1;
	}
	/* TLS 1.3 session tickets and alerts may want to be answered. */
	if (relay_conn_flush_tls(c) < 0) {
		relay_conn_fail(c, "write failed");
		return -1;
	}
	return 0;
}

static void
relay_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	*b = uv_buf_init(relay_conn_readbuf, sizeof(relay_conn_readbuf));
}

static void
relay_conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct relay_conn *c = s->data;
	char why[128];

	if (c->closing)
		return;
	if (nread < 0) {
		if (nread == UV_EOF)
			snprintf(why, sizeof(why),
			    "connection closed by the server");
		else
			snprintf(why, sizeof(why), "read: %s",
			    uv_strerror((int)nread));
		if (c->handshaking)
			c->ops->tls_cb(c, PR_ETLS);
		relay_conn_fail(c, why);
		return;
	}
	if (nread == 0)
		return;
	if (c->ssl != NULL) {
		if (BIO_write(c->rbio, b->base, (int)nread) != (int)nread) {
			relay_conn_fail(c, "TLS buffer error");
			return;
		}
		if (relay_conn_tls_input(c) < 0)
			return;
	} else if (buf_append(&c->in, b->base, (size_t)nread) < 0) {
		relay_conn_fail(c, "server reply too long");
		return;
	}
	if (c->in.len >= RELAY_CONN_INPUT_MAX) {
		relay_conn_fail(c, "server reply too long");
		return;
	}
	if (c->in.len > 0 && !c->handshaking)
		c->ops->input_cb(c);
}

static void
relay_conn_connect_cb(uv_connect_t *req, int status)
{
	struct relay_conn *c = req->data;
	int r;

	if (c->closing)
		return;
	if (status < 0) {
		c->ops->connect_cb(c, status);
		relay_conn_close(c);
		return;
	}
	c->connected = true;
	if ((r = uv_read_start((uv_stream_t *)&c->tcp, relay_conn_alloc_cb,
	    relay_conn_read_cb)) < 0) {
		c->ops->connect_cb(c, r);
		relay_conn_close(c);
		return;
	}
	c->ops->connect_cb(c, 0);
}

int
relay_conn_new(uv_loop_t *loop, const struct sockaddr *addr,
    const struct relay_conn_ops *ops, void *data, struct relay_conn **c_r)
{
	struct relay_conn *c;
	int r;

	c = xcalloc(1, sizeof(*c));
	c->ops = ops;
	c->data = data;
	buf_init(&c->in, RELAY_CONN_INPUT_MAX);
	if ((r = uv_tcp_init(loop, &c->tcp)) < 0) {
		free(c);
		return r;
	}
	c->tcp.data = c;
	c->connect_req.data = c;
	if ((r = uv_tcp_connect(&c->connect_req, &c->tcp, addr,
	    relay_conn_connect_cb)) < 0) {
		/* The handle exists: close it without callbacks, as
		 * promised to the caller. */
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, relay_conn_closed_quiet);
		return r;
	}
	*c_r = c;
	return 0;
}

int
relay_conn_starttls(struct relay_conn *c, SSL_CTX *ctx, const char *sni)
{
	unsigned char tmp[16];

	if (c->ssl != NULL || c->closing)
		return PR_EINVAL;
	c->ssl = SSL_new(ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		return PR_ETLS;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_connect_state(c->ssl);
	/* SNI and the name check only make sense for a host name. */
	if (sni != NULL && inet_pton(AF_INET, sni, tmp) != 1 &&
	    inet_pton(AF_INET6, sni, tmp) != 1) {
		SSL_set_tlsext_host_name(c->ssl, sni);
		SSL_set1_host(c->ssl, sni);
	}
	/* RFC 3207 5: plaintext received before the handshake is not
	 * trusted afterwards. */
	buf_reset(&c->in);
	c->handshaking = true;
	return relay_conn_tls_input(c) < 0 ? PR_ETLS : 0;
}
