/* tls_bio.c - decrypting into a bounded buffer, trimming memory BIOs. */
#include "tls_bio.h"

#include <openssl/err.h>

#include "err.h"

int
tls_bio_read(SSL *ssl, struct buf *in)
{
	size_t room;
	int n, e, r = 0;

	while (in->len < in->max) {
		room = in->max - in->len;
		if (room > TLS_BIO_READ_MAX)
			room = TLS_BIO_READ_MAX;
		if (buf_reserve(in, room) < 0)
			break;
		n = SSL_read(ssl, in->p + in->len, (int)room);
		if (n > 0) {
			in->len += (size_t)n;
			continue;
		}
		e = SSL_get_error(ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		ERR_clear_error();
		/* close_notify, or a broken record: the end of input. */
		r = e == SSL_ERROR_ZERO_RETURN ? 1 : PR_ETLS;
		break;
	}
	if (in->len == 0)
		buf_shrink(in, 0);
	return r;
}

bool
tls_bio_buffered(const SSL *ssl, BIO *rbio)
{
	return SSL_pending(ssl) > 0 || BIO_ctrl_pending(rbio) > 0;
}

/* A fresh BIO to replace b, or NULL when b is to stay. */
static BIO *
tls_bio_fresh(BIO *b)
{
	BUF_MEM *bm = NULL;
	BIO *nb;

	if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &bm) != 1 ||
	    bm == NULL || bm->max <= TLS_BIO_KEEP ||
	    (nb = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	/* An empty read BIO means "wait for more", not end of file. */
	BIO_set_mem_eof_return(nb, -1);
	return nb;
}

void
tls_bio_trim(SSL *ssl, BIO **rbio, BIO **wbio)
{
	BIO *b;

	if ((b = tls_bio_fresh(*rbio)) != NULL) {
		SSL_set0_rbio(ssl, b); /* frees the old one */
		*rbio = b;
	}
	if ((b = tls_bio_fresh(*wbio)) != NULL) {
		SSL_set0_wbio(ssl, b);
		*wbio = b;
	}
}
