/*
 * fuzz_tls_pump.c - libFuzzer target for the TLS filter's buffer logic
 * (common/tls_bio.c, as common/net.c uses it; docs/ARCHITECTURE.md 3.4).
 *
 * net.c's pumping is bound to libuv, so this target rebuilds its memory
 * BIO sequence around an in-memory pair: a server and a client SSL made
 * from the real contexts of common/tls.c (net_tls_new,
 * net_tls_client_new, tls_conn_setup), each with a read and a write
 * memory BIO and a bounded plaintext input buffer like a net_conn's.
 * What one side's write BIO holds after a flush goes on a "wire"; the
 * fuzzed input then decides, op by op, how many wire bytes arrive at a
 * time (so records and handshake messages split anywhere), who writes
 * how much plaintext, how much the session consumes, when the peer sends
 * close_notify, and (with a flag) which ciphertext byte is damaged on the
 * way.  Delivery is net_read_cb's: BIO_write, handshake or tls_bio_read,
 * flush (BIO_reset, tls_bio_trim); consuming is net_conn_deliver's: once
 * the session made room, what waits inside OpenSSL is decrypted without
 * another packet.
 *
 * Checks: the input buffer never passes its max; each side reads exactly
 * the bytes the other wrote, in order (a prefix of them while data is in
 * flight, all of them once the wire is drained, unless a byte was
 * damaged); records left inside OpenSSL are delivered once there is
 * room; an idle BIO is trimmed to TLS_BIO_KEEP; a damaged record ends
 * the session with PR_ETLS, never with wrong plaintext.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_tls_pump tests/fuzz/corpus_tls_pump
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf.h"
#include "err.h"
#include "net.h"
#include "tls_bio.h"
#include "tls_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define FUZZ_WIRE_MAX (1024 * 1024)

static struct net_tls *fuzz_server_tls, *fuzz_client_tls;

struct fuzz_side {
	SSL *ssl;
	BIO *rbio, *wbio;
	struct buf in;        /* plaintext not yet consumed by the session */
	struct buf wire;      /* ciphertext on its way to the peer */
	bool handshaking;
	bool failed;          /* handshake or record error */
	bool eof;             /* close_notify received */
	bool shut;            /* close_notify sent */
	uint64_t sent;        /* plaintext octets SSL_write took */
	uint64_t got;         /* plaintext octets read so far */
	unsigned char tag;    /* what the pattern of its writes depends on */
};

/* The i-th octet that side tag writes: the reader checks each one. */
static uint8_t
fuzz_octet(unsigned char tag, uint64_t i)
{
	return (uint8_t)((i * 131u + (i >> 8) * 7u + tag) & 0xff);
}

/* A self-signed P-256 certificate, written where net_tls_new reads it. */
static void
fuzz_make_cert(const char *cert_path, const char *key_path)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	FUZZ_CHECK(pk != NULL && x != NULL);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx.example.test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	FUZZ_CHECK(X509_sign(x, pk, EVP_sha256()) > 0);
	FUZZ_CHECK((f = fopen(cert_path, "w")) != NULL);
	FUZZ_CHECK(PEM_write_X509(f, x) == 1);
	fclose(f);
	FUZZ_CHECK((f = fopen(key_path, "w")) != NULL);
	FUZZ_CHECK(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) ==
	    1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz_tls_pump.XXXXXX", cert[64], key[64];
	struct pr_err err;

	(void)argc;
	(void)argv;
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	fuzz_make_cert(cert, key);
	FUZZ_CHECK(net_tls_new(cert, key, NULL, &fuzz_server_tls, &err) == 0);
	FUZZ_CHECK(net_tls_client_new(cert, NULL, &fuzz_client_tls,
	    &err) == 0);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	return 0;
}

static void
fuzz_side_init(struct fuzz_side *s, const struct net_tls *t, bool client,
    size_t in_max, unsigned char tag)
{
	memset(s, 0, sizeof(*s));
	FUZZ_CHECK((s->ssl = SSL_new(t->ctx)) != NULL);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	FUZZ_CHECK(s->rbio != NULL && s->wbio != NULL);
	BIO_set_mem_eof_return(s->rbio, -1);
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	FUZZ_CHECK(tls_conn_setup(s->ssl, t, client ? "mx.example.test" :
	    NULL, false) == 0);
	buf_init(&s->in, in_max);
	buf_init(&s->wire, FUZZ_WIRE_MAX);
	s->handshaking = true;
	s->tag = tag;
}

static void
fuzz_side_fini(struct fuzz_side *s)
{
	SSL_free(s->ssl);
	buf_fini(&s->in);
	buf_fini(&s->wire);
}

/* net_conn_flush_tls: the write BIO's bytes go out, then it is reset
 * and, when idle and big, replaced. */
static void
fuzz_flush(struct fuzz_side *s)
{
	BUF_MEM *bm = NULL;
	char *p;
	long n;

	n = BIO_get_mem_data(s->wbio, &p);
	if (n > 0) {
		FUZZ_CHECK(buf_append(&s->wire, p, (size_t)n) == 0);
		(void)BIO_reset(s->wbio);
	}
	tls_bio_trim(s->ssl, &s->rbio, &s->wbio);
	FUZZ_CHECK(SSL_get_rbio(s->ssl) == s->rbio &&
	    SSL_get_wbio(s->ssl) == s->wbio);
	FUZZ_CHECK(BIO_get_mem_ptr(s->wbio, &bm) == 1 && bm != NULL);
	FUZZ_CHECK(bm->max <= TLS_BIO_KEEP);
	if (BIO_ctrl_pending(s->rbio) == 0) {
		FUZZ_CHECK(BIO_get_mem_ptr(s->rbio, &bm) == 1 && bm != NULL);
		FUZZ_CHECK(bm->max <= TLS_BIO_KEEP);
	}
}

/* net_conn_tls_pump: the handshake, then what fits into s->in. */
static void
fuzz_pump(struct fuzz_side *s)
{
	int n, r;

	if (s->failed || s->eof)
		return;
	if (s->handshaking) {
		n = SSL_do_handshake(s->ssl);
		if (n != 1) {
			r = SSL_get_error(s->ssl, n);
			if (r != SSL_ERROR_WANT_READ &&
			    r != SSL_ERROR_WANT_WRITE) {
				ERR_clear_error();
				s->failed = true;
			}
			fuzz_flush(s);
			return;
		}
		s->handshaking = false;
	}
	r = tls_bio_read(s->ssl, &s->in);
	FUZZ_CHECK(r == 0 || r == 1 || r == PR_ETLS);
	FUZZ_CHECK(s->in.len <= s->in.max);
	if (r == 1)
		s->eof = true;
	else if (r < 0)
		s->failed = true;
	else if (s->in.len < s->in.max)
		/* Room left: everything that arrived is decrypted, except
		 * a record still incomplete (it stays in the read BIO). */
		FUZZ_CHECK(SSL_pending(s->ssl) == 0);
	fuzz_flush(s);
}

/* The session reads n octets of its input (net_conn_consume), which must
 * be the peer's pattern, then net_conn_deliver decrypts what waited. */
static void
fuzz_consume(struct fuzz_side *s, const struct fuzz_side *peer, size_t n)
{
	size_t i, before;
	int guard = 0;

	if (n > s->in.len)
		n = s->in.len;
	for (i = 0; i < n; i++)
		FUZZ_CHECK(s->in.p[i] == fuzz_octet(peer->tag, s->got + i));
	s->got += n;
	FUZZ_CHECK(s->got <= peer->sent);
	buf_consume(&s->in, n);
	if (s->in.len == 0)
		buf_shrink(&s->in, 0);
	while (!s->failed && !s->eof && !s->handshaking &&
	    s->in.len < s->in.max && tls_bio_buffered(s->ssl, s->rbio)) {
		FUZZ_CHECK(++guard < 100000);
		before = s->in.len;
		fuzz_pump(s);
		if (s->in.len == before)
			break;
	}
}

/* n wire octets from s arrive at the peer (net_read_cb). */
static void
fuzz_deliver(struct fuzz_side *s, struct fuzz_side *peer, size_t n)
{
	if (n > s->wire.len)
		n = s->wire.len;
	if (n == 0 || peer->failed || peer->eof) {
		buf_consume(&s->wire, n);
		return;
	}
	FUZZ_CHECK(BIO_write(peer->rbio, s->wire.p, (int)n) == (int)n);
	buf_consume(&s->wire, n);
	fuzz_pump(peer);
}

/* net_conn_write: SSL_write of n pattern octets, then a flush. */
static void
fuzz_write(struct fuzz_side *s, size_t n)
{
	uint8_t tmp[4096];
	size_t i;

	if (s->handshaking || s->failed || s->shut || n == 0)
		return;
	/* A peer that does not read: the session waits for the write
	 * queue to drain (drain_cb) before it writes more. */
	if (s->wire.len >= FUZZ_WIRE_MAX / 2)
		return;
	if (n > sizeof(tmp))
		n = sizeof(tmp);
	for (i = 0; i < n; i++)
		tmp[i] = fuzz_octet(s->tag, s->sent + i);
	if (SSL_write(s->ssl, tmp, (int)n) <= 0) {
		ERR_clear_error();
		return;
	}
	s->sent += n;
	fuzz_flush(s);
}

static void
fuzz_shutdown(struct fuzz_side *s)
{
	if (s->handshaking || s->failed || s->shut)
		return;
	s->shut = true;
	if (SSL_shutdown(s->ssl) < 0)
		ERR_clear_error();
	fuzz_flush(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_side sv, cl, *a, *b;
	size_t i, n;
	bool damage, damaged = false;
	uint64_t guard, limit;

	if (size < 2)
		return 0;
	damage = data[0] & 1;
	fuzz_side_init(&sv, fuzz_server_tls, false,
	    data[0] & 2 ? 1 + data[1] * 64u : 64 * 1024, 's');
	fuzz_side_init(&cl, fuzz_client_tls, true,
	    data[0] & 4 ? 1 + data[1] : 64 * 1024, 'c');
	if (data[0] & 8)
		SSL_set_max_proto_version(cl.ssl, TLS1_2_VERSION);
	/* The client speaks first (net_conn_starttls_client). */
	fuzz_pump(&cl);

	for (i = 2; i + 1 < size; i += 2) {
		unsigned op = data[i], arg = data[i + 1];

		a = op & 1 ? &cl : &sv;
		b = op & 1 ? &sv : &cl;
		switch ((op >> 1) % 6) {
		case 0: /* a's wire: arg octets (times 16) arrive at b */
			fuzz_deliver(a, b, (op & 0x80 ? 16u : 1u) * arg + 1);
			break;
		case 1: /* a writes plaintext */
			fuzz_write(a, (op & 0x80 ? 32u : 1u) * arg + 1);
			break;
		case 2: /* a's session consumes */
			fuzz_consume(a, b, (op & 0x80 ? 64u : 1u) * arg);
			break;
		case 3: /* a sends close_notify */
			if (op & 0x80)
				fuzz_shutdown(a);
			else
				fuzz_flush(a);
			break;
		case 4: /* a byte on a's wire is damaged */
			if (damage && a->wire.len > 0) {
				a->wire.p[arg % a->wire.len] ^=
				    (uint8_t)(1u << (op >> 5));
				damaged = true;
			}
			break;
		default: /* b pumps with nothing new (a kick) */
			if (!b->handshaking)
				fuzz_pump(b);
			break;
		}
		FUZZ_CHECK(sv.in.len <= sv.in.max && cl.in.len <= cl.in.max);
	}

	/* Drain: the wires empty and the sessions read everything.  Each
	 * round moves at least one octet (a 1-octet input buffer takes one
	 * at a time), so the rounds are bounded by what was sent. */
	limit = 1000 + 2 * (sv.sent + cl.sent);
	for (guard = 0; guard < limit; guard++) {
		bool moved = sv.wire.len > 0 || cl.wire.len > 0;

		fuzz_deliver(&cl, &sv, cl.wire.len);
		fuzz_deliver(&sv, &cl, sv.wire.len);
		n = sv.in.len + cl.in.len;
		fuzz_consume(&sv, &cl, sv.in.len);
		fuzz_consume(&cl, &sv, cl.in.len);
		if (!moved && n == 0)
			break;
	}
	FUZZ_CHECK(guard < limit);
	if (!damaged) {
		FUZZ_CHECK(!sv.failed && !cl.failed);
		FUZZ_CHECK(!sv.handshaking && !cl.handshaking);
		FUZZ_CHECK(sv.got == cl.sent && cl.got == sv.sent);
		FUZZ_CHECK(sv.eof == cl.shut && cl.eof == sv.shut);
		FUZZ_CHECK(!tls_bio_buffered(sv.ssl, sv.rbio) &&
		    !tls_bio_buffered(cl.ssl, cl.rbio));
	}
	fuzz_side_fini(&sv);
	fuzz_side_fini(&cl);
	return 0;
}
