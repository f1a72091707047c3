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
 */
#include "net.h"

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
#include "xmalloc.h"

struct net_tls {
	SSL_CTX *ctx;
};

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
	    handshaking : 1, tls_failed : 1, eof : 1, timeout_held : 1;
	char peer[INET6_ADDRSTRLEN];
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

/* A TLS handshake must be over within this long after it started (or the
 * idle timeout, if shorter).  Input does not extend it: a peer that
 * trickles a ClientHello byte by byte is cut off all the same. */
#define NET_HANDSHAKE_MAX_MS 60000
/* Memory BIOs larger than this are replaced by fresh ones once empty. */
#define NET_BIO_KEEP 4096
/* How long close(flush) waits for a peer that does not read. */
#define NET_FLUSH_MAX_MS 30000

static void net_conn_update_reading(struct net_conn *c);
static void net_conn_do_close(struct net_conn *c);
static void net_timer_cb(uv_timer_t *t);
static void net_conn_fail(struct net_conn *c, int status);

/* --- TLS context ------------------------------------------------------- */

static void
net_tls_errstr(struct pr_err *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];

	ERR_error_string_n(e, buf, sizeof(buf));
	pr_err_set(err, PR_ETLS, "%s: %s", what, e ? buf : "unknown error");
	ERR_clear_error();
}

static SSL_CTX *
net_tls_ctx_load(const char *cert, const char *key, struct pr_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	static const unsigned char sid_ctx[] = "postroom";

	if (ctx == NULL) {
		net_tls_errstr(err, "SSL_CTX_new");
		return NULL;
	}
	/* TLS 1.2 or newer only (DESIGN.md), no compression (CRIME), no
	 * renegotiation: nothing a mail client needs. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Give back the 34 KiB of record buffers while a session idles. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		char what[1100];

		snprintf(what, sizeof(what), "certificate %s", cert);
		net_tls_errstr(err, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char what[1100];

		snprintf(what, sizeof(what), "private key %s", key);
		net_tls_errstr(err, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
net_tls_new(const char *cert, const char *key, struct net_tls **tls_r,
    struct pr_err *err)
{
	SSL_CTX *ctx = net_tls_ctx_load(cert, key, err);
	struct net_tls *t;

	if (ctx == NULL)
		return PR_ETLS;
	t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	*tls_r = t;
	return 0;
}

int
net_tls_reload(struct net_tls *tls, const char *cert, const char *key,
    struct pr_err *err)
{
	SSL_CTX *ctx = net_tls_ctx_load(cert, key, err);

	if (ctx == NULL)
		return PR_ETLS;
	/* Live SSL objects hold their own reference to the old context. */
	SSL_CTX_free(tls->ctx);
	tls->ctx = ctx;
	return 0;
}

void
net_tls_free(struct net_tls **tls)
{
	if (*tls == NULL)
		return;
	SSL_CTX_free((*tls)->ctx);
	free(*tls);
	*tls = NULL;
}

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
	return c->l->starttls;
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

/*
 * A memory BIO keeps the largest buffer it ever grew to (and BIO_reset
 * clears all of it).  Once one is empty and big, a fresh BIO replaces it,
 * so a TLS session that once moved a message idles without record-sized
 * buffers.  Returns the BIO to use from now on.
 */
static BIO *
net_bio_trim(BIO *b)
{
	BUF_MEM *bm = NULL;
	BIO *nb;

	if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &bm) != 1 ||
	    bm == NULL || bm->max <= NET_BIO_KEEP ||
	    (nb = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	BIO_set_mem_eof_return(nb, -1);
	return nb;
}

static void
net_conn_tls_trim(struct net_conn *c)
{
	BIO *b;

	if ((b = net_bio_trim(c->rbio)) != NULL) {
		SSL_set0_rbio(c->ssl, b); /* frees the old one */
		c->rbio = b;
	}
	if ((b = net_bio_trim(c->wbio)) != NULL) {
		SSL_set0_wbio(c->ssl, b);
		c->wbio = b;
	}
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
net_conn_tls_done(struct net_conn *c)
{
	snprintf(c->tls_desc, sizeof(c->tls_desc), "%s %s",
	    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	c->handshaking = 0;
	/* The handshake deadline is over; idling is measured again. */
	net_conn_arm_timer(c, c->timeout_ms);
	if (c->ops->tls_cb)
		c->ops->tls_cb(c, 0);
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

				/* The session logs it, with its id. */
				if (err != 0)
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
				return UV_EPROTO;
			}
			return net_conn_flush_tls(c);
		}
		net_conn_flush_tls(c);
		net_conn_tls_done(c);
		if (c->closing)
			return 0;
	}
	while (c->in.len < c->in.max) {
		size_t room = c->in.max - c->in.len;

		if (room > 16384)
			room = 16384;
		if (buf_reserve(&c->in, room) < 0)
			break;
		n = SSL_read(c->ssl, c->in.p + c->in.len, (int)room);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		ERR_clear_error();
		net_conn_flush_tls(c);
		/* close_notify or a broken record: end of input. */
		return e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO;
	}
	/* Room reserved for a record that did not come is given back. */
	if (c->in.len == 0)
		buf_shrink(&c->in, 0);
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
	if (!c->closing && !c->paused && !c->handshaking && c->in.len > 0 &&
	    c->ops->input_cb)
		c->ops->input_cb(c);
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
			if (c->handshaking && c->ops->tls_cb)
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
	bool want = !c->closing && !c->paused && !c->eof &&
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

int
net_conn_starttls(struct net_conn *c)
{
	struct net_tls *t = c->l->starttls ? c->l->starttls :
	    c->l->implicit_tls;

	if (c->ssl != NULL || t == NULL || c->closing)
		return PR_EINVAL;
	/* RFC 3207 5, RFC 2595 3: anything the client sent before the
	 * handshake is dropped, never executed inside TLS. */
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
	SSL_set_accept_state(c->ssl);
	c->handshaking = 1;
	/* Whatever partial input the session was timing is gone too. */
	c->timeout_held = 0;
	net_conn_arm_timer(c, c->timeout_ms != 0 &&
	    c->timeout_ms < NET_HANDSHAKE_MAX_MS ? c->timeout_ms :
	    NET_HANDSHAKE_MAX_MS);
	net_conn_update_reading(c);
	return 0;
}

/* --- Timer and close --------------------------------------------------- */

static void
net_timer_cb(uv_timer_t *t)
{
	struct net_conn *c = t->data;

	if (c->closing)
		return;
	if (c->ops->timeout_cb)
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
	free(c);
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

static void
net_connection_cb(uv_stream_t *server, int status)
{
	struct net_listener *l = server->data;
	struct net_conn *c;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (status < 0) {
		log_warn(NULL, "accept on %s: %s", l->name, uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->l = l;
	buf_init(&c->in, NET_INPUT_MAX);
	uv_tcp_init(server->loop, &c->tcp);
	uv_timer_init(server->loop, &c->timer);
	uv_idle_init(server->loop, &c->kick);
	c->tcp.data = c->timer.data = c->kick.data = c;
	c->handles = 3;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		net_conn_do_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			uv_ip6_name(s6, c->peer, sizeof(c->peer));
			/* Report v4-mapped peers as plain IPv4. */
			if (strncmp(c->peer, "::ffff:", 7) == 0 &&
			    strchr(c->peer + 7, '.') != NULL)
				memmove(c->peer, c->peer + 7,
				    strlen(c->peer + 7) + 1);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, c->peer,
			    sizeof(c->peer));
		}
	} else {
		strcpy(c->peer, "unknown");
	}
	len = sizeof(ss);
	if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		c->local_port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	l->cb(l, c);
	if (c->closing)
		return;
	if (c->ops == NULL)
		fatal("net: accept callback set no ops");
	if (l->implicit_tls != NULL) {
		struct net_tls *saved = l->starttls;

		/* RFC 8314: the handshake starts at once on 465/995. */
		l->starttls = l->implicit_tls;
		net_conn_starttls(c);
		l->starttls = saved;
	}
	net_conn_update_reading(c);
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
