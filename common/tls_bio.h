/*
 * tls_bio.h - the memory-BIO side of a TLS connection (docs/ARCHITECTURE.md
 * 3.4): decrypting what arrived into the session's bounded input buffer,
 * and keeping idle BIOs small.
 *
 * No libuv here: common/net.c moves the bytes between the BIOs and the
 * socket, and the fuzz target tests/fuzz/fuzz_tls_pump.c drives the same
 * functions over an in-memory client/server pair.
 */
#ifndef POSTROOM_TLS_BIO_H
#define POSTROOM_TLS_BIO_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "buf.h"

/* Memory BIOs larger than this are replaced by fresh ones once empty. */
#define TLS_BIO_KEEP 4096
/* Plaintext asked of SSL_read at a time: one TLS record at most. */
#define TLS_BIO_READ_MAX 16384

/*
 * Decrypts the records waiting in ssl's read BIO into in, while in has
 * room below in->max; what does not fit stays inside OpenSSL (see
 * tls_bio_buffered).  Storage reserved for a record that did not come is
 * given back when in is empty.  Returns 0 when OpenSSL wants more input
 * or in is full, 1 after the peer's close_notify, or PR_ETLS for a
 * broken record or a failed read (the OpenSSL error queue is cleared).
 * Records that arrive after the handshake only: the caller runs
 * SSL_do_handshake() first.
 */
int tls_bio_read(SSL *ssl, struct buf *in);

/* True when ssl holds input the reader has not seen: decrypted plaintext
 * (SSL_pending) or ciphertext still in rbio. */
bool tls_bio_buffered(const SSL *ssl, BIO *rbio);

/*
 * A memory BIO keeps the largest buffer it ever grew to (and BIO_reset
 * clears all of it).  Replaces ssl's read and write BIOs, *rbio and
 * *wbio, by fresh ones when they are empty and grew past TLS_BIO_KEEP,
 * so a TLS session that once moved a message idles without record-sized
 * buffers.  The old BIOs are freed; *rbio and *wbio are updated.
 */
void tls_bio_trim(SSL *ssl, BIO **rbio, BIO **wbio);

#endif
