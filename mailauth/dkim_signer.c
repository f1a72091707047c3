/*
 * dkim_signer.c - DKIM signing (RFC 6376 3.5, 3.7, 5.4; RFC 8463).
 */
#include "dkim_signer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_body.h"
#include "dkim_field.h"

/* The header fields signed, in this order when present.  RFC 6376 5.4.1
 * recommends these; From is required (5.4). */
static const char *const dkim_signer_hdrs[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to",
	"cc", "in-reply-to", "references", "mime-version", "content-type",
	"content-transfer-encoding", "content-disposition", "list-id",
	"list-help", "list-unsubscribe", "list-unsubscribe-post",
	"list-subscribe", "list-post", "list-owner", "list-archive",
};

/* Fields that may occur once (RFC 5322 3.6): listed once more than they
 * occur ("oversigned", RFC 6376 8.15) so that nobody can add one on the
 * way without breaking the signature. */
static const char *const dkim_signer_oversign[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to",
	"cc",
};

#define DKIM_SIGNER_NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct dkim_signer {
	const struct dkim_key *key;
	enum dkim_canon hcanon, bcanon;
	struct buf head;        /* the header section, then its fields */
	struct dkim_body *body; /* set once the header section has ended */
	bool fed;
	bool failed;
	bool finished;
};

int
dkim_signer_new(const struct dkim_key *k, struct dkim_signer **s_r)
{
	struct dkim_signer *s;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PR_ENOMEM;
	s->key = k;
	s->hcanon = DKIM_CANON_RELAXED;
	s->bcanon = DKIM_CANON_RELAXED;
	buf_init(&s->head, DKIM_SIGNER_HEAD_MAX);
	*s_r = s;
	return 0;
}

void
dkim_signer_free(struct dkim_signer **s)
{
	if (*s == NULL)
		return;
	buf_fini(&(*s)->head);
	dkim_body_free(&(*s)->body);
	free(*s);
	*s = NULL;
}

int
dkim_signer_set_canon(struct dkim_signer *s, enum dkim_canon hdr,
    enum dkim_canon body)
{
	if (s->fed)
		return PR_EINVAL;
	s->hcanon = hdr;
	s->bcanon = body;
	return 0;
}

/* The header section ends before head[i]: what follows the empty line
 * at head[i] is body. */
static int
dkim_signer_split(struct dkim_signer *s, size_t i)
{
	int r;

	if ((r = dkim_body_new(s->bcanon, DKIM_BODY_NO_LIMIT,
	    &s->body)) < 0)
		return r;
	r = dkim_body_feed(s->body, s->head.p + i + 2, s->head.len - i - 2);
	/* head keeps the fields with their last CRLF. */
	s->head.len = i;
	return r;
}

int
dkim_signer_feed(struct dkim_signer *s, const uint8_t *p, size_t len)
{
	size_t from, i;
	int r;

	s->fed = true;
	if (s->failed)
		return PR_ENOSPC;
	if (s->body != NULL) {
		if ((r = dkim_body_feed(s->body, p, len)) < 0)
			s->failed = true;
		return r;
	}
	/* Look for the empty line that ends the header section, starting
	 * a little before the new data in case CRLFCRLF spans chunks. */
	from = s->head.len >= 3 ? s->head.len - 3 : 0;
	if ((r = buf_append(&s->head, p, len)) < 0) {
		s->failed = true;
		return r;
	}
	r = 1;
	if (s->head.len >= 2 && from == 0 && s->head.p[0] == '\r' &&
	    s->head.p[1] == '\n') {
		/* No header fields at all. */
		r = dkim_signer_split(s, 0);
	} else {
		for (i = from; i + 3 < s->head.len; i++) {
			if (memcmp(s->head.p + i, "\r\n\r\n", 4) == 0) {
				r = dkim_signer_split(s, i + 2);
				break;
			}
		}
	}
	if (r < 0)
		s->failed = true;
	return r < 0 ? r : 0;
}

static bool
dkim_signer_oversigned(const char *name)
{
	size_t i;

	for (i = 0; i < DKIM_SIGNER_NELEM(dkim_signer_oversign); i++)
		if (strcmp(dkim_signer_oversign[i], name) == 0)
			return true;
	return false;
}

/* Builds the h= list and the canonical header data it covers.  RFC 6376
 * 5.4.2: for a name listed k times, the k last instances are signed,
 * from the bottom up; a listing beyond the instances signs "no more". */
static int
dkim_signer_headers(struct dkim_signer *s, struct buf *hlist,
    struct buf *data)
{
	const uint8_t *h = s->head.p;
	struct dkim_field *f;
	size_t nf, i, j, count, used;
	const char *name;
	int r = 0;

	f = calloc(DKIM_FIELD_MAX, sizeof(*f));
	if (f == NULL)
		return PR_ENOMEM;
	nf = dkim_field_split(h, s->head.len, f, DKIM_FIELD_MAX);
	for (i = 0; r == 0 && i < DKIM_SIGNER_NELEM(dkim_signer_hdrs); i++) {
		name = dkim_signer_hdrs[i];
		count = 0;
		for (j = 0; j < nf; j++)
			if (dkim_field_is(h, &f[j], name))
				count++;
		if (count == 0 && strcmp(name, "from") != 0)
			continue;
		used = 0;
		for (j = nf; r == 0 && j-- > 0;) {
			if (!dkim_field_is(h, &f[j], name))
				continue;
			r = dkim_canon_header(s->hcanon, h + f[j].off,
			    f[j].len, data);
			if (r == 0)
				r = buf_printf(hlist, "%s%s",
				    hlist->len ? ":" : "", name);
			used++;
		}
		if (r == 0 && (dkim_signer_oversigned(name) || used == 0))
			r = buf_printf(hlist, "%s%s", hlist->len ? ":" : "",
			    name);
	}
	free(f);
	return r;
}

/* Appends value[0..len) to out, folded: a CRLF TAB before a piece that
 * would pass 76 columns (RFC 5322 2.1.1 recommends 78).  Pieces are
 * split after sep, or every 64 octets when sep is 0 (base64: RFC 6376
 * 3.5 lets FWS stand anywhere in b=). */
static int
dkim_signer_fold(struct buf *out, size_t *col, const uint8_t *value,
    size_t len, char sep)
{
	const uint8_t *e;
	size_t i = 0, n;
	int r;

	while (i < len) {
		if (sep != 0) {
			e = memchr(value + i, sep, len - i);
			n = e != NULL ? (size_t)(e - value - i) + 1 : len - i;
		} else {
			n = len - i < 64 ? len - i : 64;
		}
		if (*col + n > 76 && *col > 1) {
			if ((r = buf_puts(out, "\r\n\t")) < 0)
				return r;
			*col = 1;
		}
		if ((r = buf_append(out, value + i, n)) < 0)
			return r;
		*col += n;
		i += n;
	}
	return 0;
}

/* Ends the body, and the header section if no empty line came. */
static int
dkim_signer_body_hash(struct dkim_signer *s, uint8_t bh[DKIM_BODY_HASH_LEN])
{
	int r;

	if (s->body == NULL) {
		/* Header only: the body is empty. */
		if (s->head.len >= 2 && s->head.p[s->head.len - 1] != '\n' &&
		    (r = buf_puts(&s->head, "\r\n")) < 0)
			return r;
		if ((r = dkim_body_new(s->bcanon, DKIM_BODY_NO_LIMIT,
		    &s->body)) < 0)
			return r;
	}
	return dkim_body_finish(s->body, bh, NULL);
}

int
dkim_signer_finish(struct dkim_signer *s, int64_t now, struct buf *out,
    struct pr_err *err)
{
	const struct dkim_key *k = s->key;
	uint8_t bh[DKIM_BODY_HASH_LEN];
	struct buf hlist, data, hdr, b64;
	size_t col;
	int r;

	if (s->finished)
		return pr_err_set(err, PR_EINVAL, "signature already made");
	if (s->failed)
		return pr_err_set(err, PR_ENOSPC,
		    "header section too large to sign");
	s->finished = true;
	if ((r = dkim_signer_body_hash(s, bh)) < 0)
		return pr_err_set(err, r, "body hash failed");

	buf_init(&hlist, 64 * 1024);
	buf_init(&data, DKIM_SIGNER_HEAD_MAX + 64 * 1024);
	buf_init(&hdr, 64 * 1024);
	buf_init(&b64, 4096);
	r = dkim_signer_headers(s, &hlist, &data);
	/* The DKIM-Signature field with an empty b=, RFC 6376 3.5, 3.7. */
	if (r == 0)
		r = buf_printf(&hdr,
		    "DKIM-Signature: v=1; a=%s; c=%s/%s;\r\n"
		    "\td=%s; s=%s; t=%lld;\r\n\th=",
		    dkim_key_alg_name(dkim_key_alg(k)),
		    dkim_canon_name(s->hcanon), dkim_canon_name(s->bcanon),
		    dkim_key_domain(k), dkim_key_selector(k), (long long)now);
	col = 3;
	if (r == 0)
		r = dkim_signer_fold(&hdr, &col, hlist.p, hlist.len, ':');
	if (r == 0)
		r = buf_puts(&hdr, ";\r\n\tbh=");
	if (r == 0)
		r = dkim__b64(bh, sizeof(bh), &hdr);
	if (r == 0)
		r = buf_puts(&hdr, ";\r\n\tb=");
	/* The signature covers the signed fields and this field itself,
	 * canonicalised, without its final CRLF (RFC 6376 3.7). */
	if (r == 0)
		r = dkim_canon_header(s->hcanon, hdr.p, hdr.len, &data);
	if (r != 0) {
		pr_err_set(err, r, "DKIM header too large");
		goto out;
	}
	data.len -= 2;
	if ((r = dkim_key_sign(k, data.p, data.len, &b64, err)) < 0)
		goto out;
	col = 3;
	if ((r = dkim_signer_fold(&hdr, &col, b64.p, b64.len, 0)) == 0 &&
	    (r = buf_puts(&hdr, "\r\n")) == 0)
		r = buf_append(out, hdr.p, hdr.len);
	if (r != 0)
		pr_err_set(err, r, "DKIM header too large");
out:
	buf_fini(&hlist);
	buf_fini(&data);
	buf_fini(&hdr);
	buf_fini(&b64);
	return r;
}
