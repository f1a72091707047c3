/*
 * dkim_body.c - streaming DKIM body canonicalisation and hash (RFC 6376
 * 3.4.3, 3.4.4, 3.5 l=).
 *
 * Both algorithms drop empty lines at the end of the body, which a
 * stream only knows at its end: empty lines are counted and emitted when
 * content follows them.  Relaxed also holds back a WSP run until it
 * knows whether the line goes on (one SP) or ends (nothing).
 */
#include "dkim_body.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "err.h"

struct dkim_body {
	enum dkim_canon canon;
	EVP_MD_CTX *md;
	uint64_t limit;     /* canonical octets hashed at most (l=) */
	uint64_t total;     /* canonical octets seen, hashed or not */
	size_t blank_lines; /* empty lines held back */
	bool wsp;           /* relaxed: a WSP run held back */
	bool line_has;      /* the current line has content */
	bool cr;            /* a CR held back: CRLF or content? */
	bool failed;
	uint8_t out[4096];  /* canonical octets not yet digested */
	size_t out_len;
};

int
dkim_body_new(enum dkim_canon c, uint64_t limit, struct dkim_body **b_r)
{
	struct dkim_body *b;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return PR_ENOMEM;
	b->canon = c;
	b->limit = limit;
	b->md = EVP_MD_CTX_new();
	if (b->md == NULL ||
	    EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(b->md);
		free(b);
		return PR_ENOMEM;
	}
	*b_r = b;
	return 0;
}

void
dkim_body_free(struct dkim_body **b)
{
	if (*b == NULL)
		return;
	EVP_MD_CTX_free((*b)->md);
	free(*b);
	*b = NULL;
}

static void
dkim_body_flush(struct dkim_body *b)
{
	if (b->out_len > 0 &&
	    EVP_DigestUpdate(b->md, b->out, b->out_len) != 1)
		b->failed = true;
	b->out_len = 0;
}

/* Emits canonical octets (n is 1 or 2, so they always fit once out is
 * flushed); those past the l= limit are counted only. */
static void
dkim_body_emit(struct dkim_body *b, const void *p, size_t n)
{
	uint64_t room = b->total < b->limit ? b->limit - b->total : 0;
	size_t take = room < n ? (size_t)room : n;

	b->total += n;
	if (take == 0)
		return;
	if (b->out_len + take > sizeof(b->out))
		dkim_body_flush(b);
	memcpy(b->out + b->out_len, p, take);
	b->out_len += take;
}

static void
dkim_body_content(struct dkim_body *b, uint8_t ch)
{
	if (!b->line_has) {
		/* Empty lines followed by content are part of the body. */
		for (; b->blank_lines > 0; b->blank_lines--)
			dkim_body_emit(b, "\r\n", 2);
	}
	if (b->wsp)
		dkim_body_emit(b, " ", 1);
	b->wsp = false;
	b->line_has = true;
	dkim_body_emit(b, &ch, 1);
}

static void
dkim_body_eol(struct dkim_body *b)
{
	/* RFC 6376 3.4.4: in relaxed, WSP at the end of a line is ignored,
	 * so a line of only WSP is empty.  Empty lines at the end of the
	 * body are ignored in both algorithms (3.4.3, 3.4.4). */
	if (b->line_has)
		dkim_body_emit(b, "\r\n", 2);
	else
		b->blank_lines++;
	b->line_has = false;
	b->wsp = false;
}

int
dkim_body_feed(struct dkim_body *b, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && !b->failed; i++) {
		uint8_t ch = p[i];

		if (b->cr) {
			b->cr = false;
			if (ch == '\n') {
				dkim_body_eol(b);
				continue;
			}
			dkim_body_content(b, '\r');
		}
		if (ch == '\r')
			b->cr = true;
		else if (ch == '\n')
			dkim_body_eol(b);
		else if (b->canon == DKIM_CANON_RELAXED &&
		    (ch == ' ' || ch == '\t'))
			b->wsp = true;
		else
			dkim_body_content(b, ch);
	}
	return b->failed ? PR_ETLS : 0;
}

int
dkim_body_finish(struct dkim_body *b, uint8_t hash_r[DKIM_BODY_HASH_LEN],
    uint64_t *len_r)
{
	unsigned int n = 0;

	if (b->cr)
		dkim_body_content(b, '\r');
	b->cr = false;
	/* RFC 6376 3.4.3, 3.4.4: a non-empty body that does not end with
	 * CRLF gets one. */
	if (b->line_has)
		dkim_body_emit(b, "\r\n", 2);
	b->line_has = false;
	/* RFC 6376 3.4.3: in simple, an empty body is a single CRLF. */
	if (b->canon == DKIM_CANON_SIMPLE && b->total == 0)
		dkim_body_emit(b, "\r\n", 2);
	dkim_body_flush(b);
	if (b->failed || EVP_DigestFinal_ex(b->md, hash_r, &n) != 1 ||
	    n != DKIM_BODY_HASH_LEN) {
		b->failed = true;
		return PR_ETLS;
	}
	/* Finished: later feeds fail rather than hash into a spent digest. */
	b->failed = true;
	if (len_r != NULL)
		*len_r = b->total;
	return 0;
}
