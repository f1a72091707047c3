/*
 * net.h - libuv listeners and connections with TLS as a filter.
 *
 * A net_conn is one accepted TCP connection.  When TLS is active, OpenSSL
 * runs over memory BIOs between the socket and the session, so implicit TLS
 * (465, 995) and STARTTLS/STLS share one code path: the session only ever
 * sees plaintext through net_conn_input() and writes plaintext with
 * net_conn_write().
 *
 * Input is buffered in the connection (bounded).  The session reads it with
 * net_conn_input(), tells how much it used with net_conn_consume(), and
 * calls net_conn_pause() while it waits for an asynchronous result, which
 * stops reading from the socket (backpressure for pipelined clients).
 */
#ifndef POSTROOM_NET_H
#define POSTROOM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "err.h"

/* --- TLS contexts (tls.c) ---------------------------------------------- */

/*
 * One context per role and configuration: TLS 1.2 or newer, no
 * compression or renegotiation, and for TLS 1.2 the suites of ciphers
 * (OpenSSL's cipher list syntax; NULL or "" for the default: forward
 * secrecy with AEAD only).
 */
#define NET_TLS_CIPHERS_DEFAULT "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

struct net_tls;

/* Server: loads a certificate chain and key (PEM).  Returns 0 or PR_ETLS
 * with the reason in err. */
int net_tls_new(const char *cert, const char *key, const char *ciphers,
    struct net_tls **tls_r, struct pr_err *err);

/* Replaces the certificate and key (SIGHUP).  On failure the old ones stay
 * in use.  Connections already established keep their session. */
int net_tls_reload(struct net_tls *tls, const char *cert, const char *key,
    const char *ciphers, struct pr_err *err);

/* Client: trusts the CA certificates of ca_file (PEM), or the system store
 * when it is NULL or "".  Whether a connection insists on a verified peer
 * is its own choice (net_conn_starttls_client). */
int net_tls_client_new(const char *ca_file, const char *ciphers,
    struct net_tls **tls_r, struct pr_err *err);

void net_tls_free(struct net_tls **tls);

/* What `postroom check` tells about a server context's certificate. */
struct net_tls_cert_info {
	int64_t not_before, not_after; /* unix time */
	bool names_host;               /* the certificate names host */
};

/* The leaf certificate of server context tls (net_tls_new): its validity
 * and whether it names host (RFC 6125 6.4, as X509_check_host matches:
 * subjectAltName DNS names, wildcards in the left-most label).  Returns 0,
 * or PR_EINVAL for a client context or one without a certificate. */
int net_tls_cert_info(const struct net_tls *tls, const char *host,
    struct net_tls_cert_info *info_r);

struct tlsa_rr;

/* Whether TLSA record rr (RFC 6698 2.1) matches server context tls's own
 * certificate chain as a DANE client would see it (RFC 7672 3.1): DANE-EE
 * (3) the leaf, DANE-TA (2) a certificate sent above it; selector 0 the
 * certificate, 1 its SubjectPublicKeyInfo; matching type 0, SHA2-256 or
 * SHA2-512.  False for an unusable record (tlsa_usable) or a client
 * context. */
bool net_tls_tlsa_match(const struct net_tls *tls, const struct tlsa_rr *rr);

/* The record "3 1 1 HEX" for server context tls's leaf certificate (its
 * key's SHA2-256: RFC 7671 5.1 recommends DANE-EE(3) SPKI(1)
 * SHA2-256(1)) into out (outsz octets, 72 suffice).  Returns 0 or
 * PR_EINVAL. */
int net_tls_tlsa_own(const struct net_tls *tls, char *out, size_t outsz);

/* --- Connections ------------------------------------------------------- */

struct net_conn;

struct net_conn_ops {
	/* Client role only: the TCP connection is up (status 0) or failed
	 * (a UV_E* code; close_cb follows). */
	void (*connect_cb)(struct net_conn *c, int status);
	/* New plaintext input is buffered (see net_conn_input).  Not called
	 * while paused. */
	void (*input_cb)(struct net_conn *c);
	/* A TLS handshake finished: status 0, or PR_ETLS when it failed
	 * (net_conn_tls_error tells why; the connection then closes and
	 * close_cb follows).  A peer that resets or closes during the
	 * handshake gets error_cb instead. */
	void (*tls_cb)(struct net_conn *c, int status);
	/* The write queue dropped to zero bytes (net_conn_write_pending). */
	void (*drain_cb)(struct net_conn *c);
	/* The idle timer set with net_conn_set_timeout expired. */
	void (*timeout_cb)(struct net_conn *c);
	/* The peer closed or an error occurred (EOF, reset, TLS error,
	 * input buffer overflow while not paused).  The connection is
	 * closing (with a flush); close_cb follows.  An EOF or close_notify
	 * comes only after input_cb has seen all the input before it and
	 * the session is not paused: a client that sends its last commands
	 * and half-closes still gets their replies. */
	void (*error_cb)(struct net_conn *c, int uv_status);
	/* (uv_status is a libuv code: UV_EOF, UV_ECONNRESET, ..., and
	 * UV_EPROTO for a TLS failure.) */
	/* Last call: the handles are closed.  The session frees itself here;
	 * c is freed by net after this returns. */
	void (*close_cb)(struct net_conn *c);
};

/* Session pointer, owned by the caller. */
void net_conn_set_data(struct net_conn *c, void *data);
void *net_conn_data(const struct net_conn *c);

/* Peer address as text ("192.0.2.1", "2001:db8::1"); valid for the life of
 * the connection. */
const char *net_conn_peer(const struct net_conn *c);
/* Our own address of the connection as text, "" if unknown; valid for
 * the life of the connection. */
const char *net_conn_local(const struct net_conn *c);
/* Local port the connection arrived on. */
int net_conn_local_port(const struct net_conn *c);

/* Buffered plaintext input.  *data is valid until the next call into
 * net for this connection. */
void net_conn_input(struct net_conn *c, const uint8_t **data, size_t *len);
void net_conn_consume(struct net_conn *c, size_t n);

/* Stops / restarts delivering input (and reading the socket).  Resume
 * calls input_cb from the loop (not recursively) if input is buffered. */
void net_conn_pause(struct net_conn *c);
void net_conn_resume(struct net_conn *c);

/* Queues plaintext for the peer (encrypted first when TLS is on).  The
 * data is copied.  Returns 0 or a negative error (connection closing). */
int net_conn_write(struct net_conn *c, const void *data, size_t len);
/* Bytes queued and not yet written to the socket. */
size_t net_conn_write_pending(const struct net_conn *c);

/* Starts a server-side TLS handshake now (STARTTLS/STLS, after the session
 * queued its "ready" reply).  Plaintext input buffered so far is discarded:
 * RFC 3207 5 / CVE-2011-0411, commands pipelined before TLS must not be
 * executed after it.  tls_cb reports the result. */
int net_conn_starttls(struct net_conn *c);
bool net_conn_tls_active(const struct net_conn *c);

/* Client role: connects to addr; ops->connect_cb reports the result.  ops
 * and data are the caller's.  Returns 0, or a negative UV_E* code and then
 * calls no callback. */
int net_connect(uv_loop_t *loop, const struct sockaddr *addr,
    const struct net_conn_ops *ops, void *data, struct net_conn **c_r);

/* Client role: starts a TLS handshake with a context of
 * net_tls_client_new (STARTTLS, or at once for implicit TLS).  host, a
 * name, is sent as SNI and checked against the certificate (RFC 6125;
 * an IP literal, with verify, against its IP addresses);
 * with verify, a certificate that does not verify fails the handshake
 * (tls_cb with PR_ETLS, net_conn_tls_error says why); without, the
 * session goes on and net_conn_tls_verified tells.  Input buffered so far
 * is discarded (RFC 3207 5).  Returns 0 or a negative error. */
int net_conn_starttls_client(struct net_conn *c, const struct net_tls *tls,
    const char *host, bool verify);
/*
 * DANE for SMTP (RFC 7672): the DNSSEC-validated TLSA records of an MX
 * host, which alone decide whether its certificate is accepted.  base is
 * the TLSA base domain (RFC 7672 2.2.3), sent as SNI (8.1); for DANE-TA
 * the certificate must name it or mx_host (3.2.3), while DANE-EE checks
 * no name at all (3.1.1).  The records are those tlsa_usable() accepts
 * (common/tlsa.h); the others are skipped here too.
 */
struct tlsa_rr;
struct net_tls_dane {
	const char *base;
	const char *mx_host;
	const struct tlsa_rr *rr;
	size_t n;
};

/* As net_conn_starttls_client with verify, but the certificate is
 * verified against dane's records instead of the trust anchors of tls
 * (RFC 7672 3): a chain that matches none fails the handshake (tls_cb
 * with PR_ETLS, net_conn_tls_error says why).  Returns 0, PR_EINVAL (no
 * usable record, or not a client connection) or another negative
 * error. */
int net_conn_starttls_client_dane(struct net_conn *c,
    const struct net_tls *tls, const struct net_tls_dane *dane);
/* After a DANE handshake: which record matched, in presentation form
 * ("3 1 1 <hex>", RFC 6698 2.2) into out; false when DANE did not
 * verify this session. */
bool net_conn_tls_dane_match(const struct net_conn *c, char *out,
    size_t outsz);

/* After the handshake: the peer's chain and name verified. */
bool net_conn_tls_verified(const struct net_conn *c);
/* Why not ("" when verified); valid while c. */
const char *net_conn_tls_verify_error(const struct net_conn *c);
/* The kind of verification failure (RFC 8460 4.3.1 reports it), also
 * after a handshake that failed on it: OK when the chain and name
 * verified or verification said nothing. */
enum net_tls_verify_kind {
	NET_TLS_VERIFY_OK = 0,
	NET_TLS_VERIFY_NAME,        /* not issued for the name asked */
	NET_TLS_VERIFY_EXPIRED,
	NET_TLS_VERIFY_UNTRUSTED,   /* no chain to a trust anchor */
	NET_TLS_VERIFY_OTHER,
};
enum net_tls_verify_kind net_conn_tls_verify_kind(const struct net_conn *c);
/* The subject and issuer of the certificate the peer presented, one line
 * each (OpenSSL's X509_NAME_oneline form, "/C=../CN=.."), cut to fit.
 * Returns false when TLS is not active or the peer sent none (the SMTP
 * listeners do not ask clients for one). */
bool net_conn_tls_peer_names(const struct net_conn *c, char *subject,
    size_t subjectsz, char *issuer, size_t issuersz);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" (empty when no TLS); valid while c. */
const char *net_conn_tls_desc(const struct net_conn *c);
/* Why the handshake failed (after tls_cb reported PR_ETLS), for the
 * session's log; empty otherwise.  Valid while c. */
const char *net_conn_tls_error(const struct net_conn *c);

/* (Re)arms the idle timer: timeout_cb fires after ms without input.  Input
 * re-arms it automatically.  0 disables.  A TLS handshake has a deadline
 * of its own instead (the same ms, at most 60 s, from its start, not
 * extended by input); after it the idle timer runs again. */
void net_conn_set_timeout(struct net_conn *c, uint64_t ms);

/* While held, input does not re-arm the idle timer, so a unit of input
 * that the peer trickles (a command line, byte by byte) must be complete
 * within one timeout of its start (RFC 5321 4.5.3.2.7 "awaiting the next
 * command").  Releasing re-arms the timer: the next wait starts then. */
void net_conn_hold_timeout(struct net_conn *c, bool hold);

/*
 * Refuses the connection with one line (no CRLF; "421 4.7.0 Too many
 * connections ..."), the only thing it will say, then closes.  Input is
 * discarded.  On an implicit-TLS port (465, 995) the line goes out after
 * the handshake, inside TLS: such a client can't read plaintext (RFC 8314
 * 3.3); a handshake deadline of 10 s bounds what this costs.  The
 * session's tls_cb and timeout_cb are not called for a refused
 * connection.
 */
void net_conn_refuse(struct net_conn *c, const char *line);

/* Closes after the queued output has been written (flush) or at once.
 * close_cb follows exactly once.  Safe to call more than once. */
void net_conn_close(struct net_conn *c, bool flush);
bool net_conn_closing(const struct net_conn *c);

/* --- Listeners --------------------------------------------------------- */

struct net_listener;

/* Called for each accepted connection.  The callback sets ops and data by
 * net_conn_set_ops/net_conn_set_data before returning.  For an implicit
 * TLS listener the handshake starts right after, and tls_cb reports it. */
typedef void (*net_accept_cb)(struct net_listener *l, struct net_conn *c);

void net_conn_set_ops(struct net_conn *c, const struct net_conn_ops *ops);

/*
 * Binds host:port (IPv4 or IPv6 literal, or a name) and starts listening.
 * tls != NULL makes it an implicit-TLS listener (RFC 8314).  kind is an
 * opaque value for the daemon (e.g. SMTP_LISTEN_SUBMISSION), returned by
 * net_listener_kind.  Returns 0 or a negative error with err set.
 */
int net_listen(uv_loop_t *loop, const char *host, const char *port,
    struct net_tls *implicit_tls, struct net_tls *starttls, int kind,
    net_accept_cb cb, void *data, struct net_listener **l_r,
    struct pr_err *err);

int net_listener_kind(const struct net_listener *l);
void *net_listener_data(const struct net_listener *l);
/* The listener a connection came from. */
struct net_listener *net_conn_listener(const struct net_conn *c);
/* The TLS context usable for STARTTLS on this connection, or NULL. */
struct net_tls *net_conn_starttls_ctx(const struct net_conn *c);

/* True for a wildcard IPv6 host ("::"): a listener that the daemons skip
 * with a warning when net_listen returns PR_EINVAL because the host has
 * IPv6 turned off, so the default "0.0.0.0:25,[::]:25" works there too. */
bool net_listen_optional(const char *host);

/* Stops accepting and closes the listening socket. */
void net_listener_close(struct net_listener **l);

/* How many connections (both roles) are open now, until their close_cb
 * has run, and how many were made since the process started. */
void net_conn_counts(unsigned *live_r, uint64_t *made_r);

/* Input buffer bound per connection. */
#define NET_INPUT_MAX (64 * 1024)

#endif
