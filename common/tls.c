/*
 * tls.c - TLS contexts for both roles of common/net.c.
 *
 * The one place for protocol versions, cipher suites and the certificate
 * verification policy, so that the listeners, the relay's client and
 * whatever verifies a peer later (smarthost, MTA-STS, DANE) share them.
 */
#include "tls_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tlsa.h"
#include "tls_ticket.h"
#include "xmalloc.h"

static int
tls_error(struct pr_err *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return pr_err_set(err, PR_ETLS, "%s: %s", what,
	    e ? buf : "unknown error");
}

/* What every context gets, whatever its role. */
static SSL_CTX *
tls_ctx_base(bool server, const char *ciphers, struct pr_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() :
	    TLS_client_method());
	char what[600];

	if (ctx == NULL) {
		tls_error(err, "SSL_CTX_new");
		return NULL;
	}
	/* TLS 1.2 or newer only, no compression (CRIME), no renegotiation:
	 * nothing a mail client or server needs. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION |
	    (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
	/* Give back the 34 KiB of record buffers while a session idles. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* TLS 1.2: forward secrecy and AEAD only (no static RSA, no CBC,
	 * no SHA-1 MACs).  TLS 1.3 suites all qualify and stay OpenSSL's. */
	if (ciphers == NULL || *ciphers == '\0')
		ciphers = NET_TLS_CIPHERS_DEFAULT;
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		snprintf(what, sizeof(what), "[tls] ciphers '%.500s'", ciphers);
		tls_error(err, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static SSL_CTX *
tls_server_ctx(const char *cert, const char *key, const char *ciphers,
    struct tls_ticket_keys *tickets, struct pr_err *err)
{
	static const unsigned char sid_ctx[] = "postroom";
	SSL_CTX *ctx = tls_ctx_base(true, ciphers, err);
	char what[1100];

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (tls_ticket_install(ctx, tickets) != 1) {
		tls_error(err, "session tickets");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(what, sizeof(what), "certificate %s", cert);
		tls_error(err, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what), "private key %s", key);
		tls_error(err, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static struct net_tls *
tls_wrap(SSL_CTX *ctx, bool client)
{
	struct net_tls *t = xcalloc(1, sizeof(*t));

	t->ctx = ctx;
	t->client = client;
	return t;
}

int
net_tls_new(const char *cert, const char *key, const char *ciphers,
    struct net_tls **tls_r, struct pr_err *err)
{
	struct tls_ticket_keys *tickets;
	SSL_CTX *ctx;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((tickets = tls_ticket_keys_new((int64_t)ts.tv_sec,
	    TLS_TICKET_PERIOD_S)) == NULL)
		return pr_err_set(err, PR_ENOMEM, "session ticket keys: %s",
		    "out of memory");
	if ((ctx = tls_server_ctx(cert, key, ciphers, tickets, err)) == NULL) {
		tls_ticket_keys_free(&tickets);
		return PR_ETLS;
	}
	*tls_r = tls_wrap(ctx, false);
	(*tls_r)->tickets = tickets;
	return 0;
}

/* An ASN1_TIME as unix time; 0 if it cannot be read. */
static int64_t
tls_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

int
net_tls_cert_info(const struct net_tls *tls, const char *host,
    struct net_tls_cert_info *info_r)
{
	X509 *x;

	memset(info_r, 0, sizeof(*info_r));
	if (tls == NULL || tls->client ||
	    (x = SSL_CTX_get0_certificate(tls->ctx)) == NULL)
		return PR_EINVAL;
	info_r->not_before = tls_asn1_time(X509_get0_notBefore(x));
	info_r->not_after = tls_asn1_time(X509_get0_notAfter(x));
	info_r->names_host = host != NULL && host[0] != '\0' &&
	    X509_check_host(x, host, strlen(host), 0, NULL) == 1;
	return 0;
}

/* The DER of x (selector 0) or of its SubjectPublicKeyInfo (1), digested
 * by mtype (0: none) into md (EVP_MAX_MD_SIZE octets) or, for mtype 0,
 * into a buffer returned in *full (the caller frees it).  Length, or -1. */
static int
tls_tlsa_data(X509 *x, unsigned selector, unsigned mtype,
    unsigned char md[EVP_MAX_MD_SIZE], unsigned char **full)
{
	unsigned char *der = NULL;
	unsigned mdlen = 0;
	int len;

	*full = NULL;
	len = selector == TLSA_CERT ? i2d_X509(x, &der) :
	    i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (len <= 0)
		return -1;
	if (mtype == TLSA_FULL) {
		*full = der;
		return len;
	}
	if (EVP_Digest(der, (size_t)len, md, &mdlen, mtype == TLSA_SHA256 ?
	    EVP_sha256() : EVP_sha512(), NULL) != 1)
		mdlen = 0;
	OPENSSL_free(der);
	return mdlen > 0 ? (int)mdlen : -1;
}

static bool
tls_tlsa_is(X509 *x, const struct tlsa_rr *rr)
{
	unsigned char md[EVP_MAX_MD_SIZE], *full;
	int len = tls_tlsa_data(x, rr->selector, rr->mtype, md, &full);
	bool eq = len > 0 && (size_t)len == rr->len &&
	    memcmp(full != NULL ? full : md, rr->data, rr->len) == 0;

	OPENSSL_free(full);
	return eq;
}

bool
net_tls_tlsa_match(const struct net_tls *tls, const struct tlsa_rr *rr)
{
	STACK_OF(X509) *chain = NULL;
	X509 *leaf;
	int i;

	if (tls == NULL || tls->client || !tlsa_usable(rr) ||
	    (leaf = SSL_CTX_get0_certificate(tls->ctx)) == NULL)
		return false;
	if (rr->usage == TLSA_DANE_EE)
		return tls_tlsa_is(leaf, rr);
	/* DANE-TA: a certificate the server sends above its own (RFC 7672
	 * 3.2.2: the trust anchor must be in the chain sent). */
	if (SSL_CTX_get0_chain_certs(tls->ctx, &chain) != 1 || chain == NULL)
		return false;
	for (i = 0; i < sk_X509_num(chain); i++)
		if (tls_tlsa_is(sk_X509_value(chain, i), rr))
			return true;
	return false;
}

int
net_tls_tlsa_own(const struct net_tls *tls, char *out, size_t outsz)
{
	unsigned char md[EVP_MAX_MD_SIZE], *full;
	struct tlsa_rr rr;
	X509 *leaf;
	int len;

	if (tls == NULL || tls->client ||
	    (leaf = SSL_CTX_get0_certificate(tls->ctx)) == NULL)
		return PR_EINVAL;
	len = tls_tlsa_data(leaf, TLSA_SPKI, TLSA_SHA256, md, &full);
	if (len <= 0)
		return PR_EINVAL;
	rr.usage = TLSA_DANE_EE;
	rr.selector = TLSA_SPKI;
	rr.mtype = TLSA_SHA256;
	rr.data = md;
	rr.len = (size_t)len;
	tlsa_format(&rr, out, outsz);
	return 0;
}

int
net_tls_reload(struct net_tls *tls, const char *cert, const char *key,
    const char *ciphers, struct pr_err *err)
{
	/* The ticket keys stay: sessions resumed before the reload still
	 * resume after it. */
	SSL_CTX *ctx = tls_server_ctx(cert, key, ciphers, tls->tickets, err);

	if (ctx == NULL)
		return PR_ETLS;
	/* Live SSL objects hold their own reference to the old context. */
	SSL_CTX_free(tls->ctx);
	tls->ctx = ctx;
	return 0;
}

int
net_tls_client_new(const char *ca_file, const char *ciphers,
    struct net_tls **tls_r, struct pr_err *err)
{
	SSL_CTX *ctx = tls_ctx_base(false, ciphers, err);
	char what[1100];
	int ok;

	if (ctx == NULL)
		return PR_ETLS;
	/* Each connection chooses whether a failed verification stops the
	 * handshake (net_conn_starttls_client); the trust anchors are
	 * loaded either way, so that an opportunistic session still knows
	 * and logs whether its peer was verified. */
	if (ca_file != NULL && *ca_file != '\0')
		ok = SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(what, sizeof(what), "CA file %s",
		    ca_file && *ca_file ? ca_file : "(system store)");
		tls_error(err, what);
		SSL_CTX_free(ctx);
		return PR_ETLS;
	}
	/* DANE (RFC 7672) is per connection (tls_conn_setup_dane); the
	 * context only needs the digests known. */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		tls_error(err, "SSL_CTX_dane_enable");
		SSL_CTX_free(ctx);
		return PR_ETLS;
	}
	*tls_r = tls_wrap(ctx, true);
	return 0;
}

void
net_tls_free(struct net_tls **tls)
{
	if (*tls == NULL)
		return;
	SSL_CTX_free((*tls)->ctx);
	tls_ticket_keys_free(&(*tls)->tickets);
	free(*tls);
	*tls = NULL;
}

int
tls_conn_setup(SSL *ssl, const struct net_tls *t, const char *host,
    bool verify)
{
	unsigned char tmp[16];
	bool literal = host != NULL && *host != '\0' &&
	    (inet_pton(AF_INET, host, tmp) == 1 ||
	    inet_pton(AF_INET6, host, tmp) == 1);
	bool name = host != NULL && *host != '\0' && !literal;

	if (!t->client) {
		SSL_set_accept_state(ssl);
		return 0;
	}
	SSL_set_connect_state(ssl);
	/* SNI (RFC 6066 3) and the name check (RFC 6125) only make sense
	 * for a host name.  An IP literal is sent no SNI (RFC 6066 3
	 * forbids it) and, when verified, must be an iPAddress of the
	 * certificate's subjectAltName (RFC 5280 4.2.1.6). */
	if (name) {
		if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
		    SSL_set1_host(ssl, host) != 1)
			return PR_ETLS;
		/* No partial wildcards ("f*.example"): RFC 6125 6.4.3. */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	} else if (literal && verify) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) != 1)
			return PR_ETLS;
	} else if (verify) {
		return PR_EINVAL;
	}
	SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return 0;
}

int
tls_conn_setup_dane(SSL *ssl, const struct net_tls *t,
    const struct net_tls_dane *dane)
{
	size_t i, usable = 0;

	if (!t->client || dane == NULL || dane->base == NULL ||
	    dane->base[0] == '\0')
		return PR_EINVAL;
	SSL_set_connect_state(ssl);
	/* SNI is the TLSA base domain (RFC 7672 8.1), and it is the first
	 * reference identifier for DANE-TA (3.2.3); the MX host name is
	 * the other. */
	if (SSL_set_tlsext_host_name(ssl, dane->base) != 1 ||
	    SSL_dane_enable(ssl, dane->base) <= 0)
		return PR_ETLS;
	if (dane->mx_host != NULL && dane->mx_host[0] != '\0' &&
	    strcasecmp(dane->mx_host, dane->base) != 0 &&
	    SSL_add1_host(ssl, dane->mx_host) != 1)
		return PR_ETLS;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* RFC 7672 3.1.1: a DANE-EE record binds the key itself; the names
	 * in its certificate are not checked (nor its dates). */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (i = 0; i < dane->n; i++) {
		const struct tlsa_rr *rr = &dane->rr[i];

		/* RFC 7672 3.1.3: PKIX-TA and PKIX-EE are unusable for
		 * SMTP, as are unknown parameters. */
		if (!tlsa_usable(rr))
			continue;
		if (SSL_dane_tlsa_add(ssl, rr->usage, rr->selector,
		    rr->mtype, rr->data, rr->len) > 0)
			usable++;
	}
	ERR_clear_error();
	if (usable == 0)
		return PR_EINVAL;
	/* A chain that matches no record fails the handshake: RFC 7672
	 * 2.1.1, never on without authentication. */
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}
