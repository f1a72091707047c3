/*
 * relay_dkim.c - DKIM keys and relaxed/relaxed signing (RFC 6376 3.4,
 * 3.5, 3.7; Ed25519 per RFC 8463).
 */
#include "relay_dkim.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

struct relay_dkim_key {
	char domain[256];
	char selector[RELAY_DKIM_SELECTOR_MAX + 1];
	enum relay_dkim_alg alg;
	EVP_PKEY *pkey;
};

/* The header fields signed, in this order when present.  RFC 6376 5.4.1
 * recommends these; From is required (5.4). */
static const char *const relay_dkim_sign_hdrs[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to",
	"cc", "in-reply-to", "references", "mime-version", "content-type",
	"content-transfer-encoding", "content-disposition", "list-id",
	"list-help", "list-unsubscribe", "list-unsubscribe-post",
	"list-subscribe", "list-post", "list-owner", "list-archive",
};

/* Fields that may occur once (RFC 5322 3.6): listed once more than they
 * occur ("oversigned", RFC 6376 8.15) so that nobody can add one on the
 * way without breaking the signature. */
static const char *const relay_dkim_oversign_hdrs[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to",
	"cc",
};

#define RELAY_DKIM_FIELDS_MAX 1000

struct relay_dkim_field {
	size_t off, len;   /* raw field without the final CRLF */
	size_t name_len;   /* name, before optional WSP and ':' */
};

struct relay_dkim_signer {
	const struct relay_dkim_key *key;
	struct buf head;
	bool in_body;
	/* Relaxed body canonicalisation state (RFC 6376 3.4.4). */
	EVP_MD_CTX *body_md;
	size_t blank_lines; /* empty lines held back: only trailing ones
	                       are dropped */
	bool wsp;           /* whitespace held back within the line */
	bool line_has;      /* the line has non-WSP content */
	bool cr;            /* a CR is held back */
	uint8_t out[4096];
	size_t out_len;
	bool failed;
};

bool
relay_dkim_name_ok(const char *name, size_t max)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > max || name[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.')
			return false;
	}
	return true;
}

static int
relay_dkim_ssl_err(struct pr_err *err, const char *what)
{
	char ebuf[200];
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	else
		snprintf(ebuf, sizeof(ebuf), "unknown error");
	ERR_clear_error();
	return pr_err_set(err, PR_ETLS, "%s: %s", what, ebuf);
}

static int
relay_dkim_key_wrap(const char *domain, const char *selector, EVP_PKEY *pkey,
    struct relay_dkim_key **k_r, struct pr_err *err)
{
	struct relay_dkim_key *k;
	int id = EVP_PKEY_get_base_id(pkey);

	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return pr_err_set(err, PR_EINVAL,
		    "DKIM key for %s is neither RSA nor Ed25519", domain);
	}
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey) < 1024) {
		/* RFC 8301 3.2: verifiers reject keys under 1024 bits. */
		EVP_PKEY_free(pkey);
		return pr_err_set(err, PR_EINVAL,
		    "DKIM key for %s is shorter than 1024 bits", domain);
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		EVP_PKEY_free(pkey);
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	}
	snprintf(k->domain, sizeof(k->domain), "%s", domain);
	snprintf(k->selector, sizeof(k->selector), "%s", selector);
	for (char *p = k->domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	k->alg = id == EVP_PKEY_RSA ? RELAY_DKIM_RSA_SHA256 :
	    RELAY_DKIM_ED25519_SHA256;
	k->pkey = pkey;
	*k_r = k;
	return 0;
}

int
relay_dkim_key_from_pem(const char *domain, const char *selector,
    const char *pem, size_t len, struct relay_dkim_key **k_r,
    struct pr_err *err)
{
	EVP_PKEY *pkey;
	BIO *bio;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return relay_dkim_ssl_err(err, "BIO_new_mem_buf");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return relay_dkim_ssl_err(err, "DKIM private key");
	return relay_dkim_key_wrap(domain, selector, pkey, k_r, err);
}

void
relay_dkim_key_free(struct relay_dkim_key **k)
{
	if (*k == NULL)
		return;
	EVP_PKEY_free((*k)->pkey);
	free(*k);
	*k = NULL;
}

const char *
relay_dkim_key_domain(const struct relay_dkim_key *k)
{
	return k->domain;
}

const char *
relay_dkim_key_selector(const struct relay_dkim_key *k)
{
	return k->selector;
}

enum relay_dkim_alg
relay_dkim_key_alg(const struct relay_dkim_key *k)
{
	return k->alg;
}

static int
relay_dkim_b64(const unsigned char *in, size_t len, struct buf *out)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	int r;

	if ((r = buf_reserve(out, need)) < 0)
		return r;
	out->len += (size_t)EVP_EncodeBlock(out->p + out->len, in, (int)len);
	return 0;
}

int
relay_dkim_key_txt(const struct relay_dkim_key *k, struct buf *out)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	int n, r;

	if (k->alg == RELAY_DKIM_ED25519_SHA256) {
		/* RFC 8463 4.2: the raw 32-octet public key. */
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen) != 1)
			return PR_ETLS;
		if ((r = buf_puts(out, "v=DKIM1; k=ed25519; p=")) < 0)
			return r;
		return relay_dkim_b64(raw, rawlen, out);
	}
	/* RFC 6376 3.6.1: the DER SubjectPublicKeyInfo, base64. */
	n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0)
		return PR_ETLS;
	r = buf_puts(out, "v=DKIM1; k=rsa; p=");
	if (r == 0)
		r = relay_dkim_b64(der, (size_t)n, out);
	OPENSSL_free(der);
	return r;
}

int
relay_dkim_key_record(const struct relay_dkim_key *k, struct buf *out)
{
	struct buf txt;
	size_t i, n, head;
	int r;

	buf_init(&txt, 8192);
	if ((r = relay_dkim_key_txt(k, &txt)) < 0)
		goto out;
	r = buf_printf(out, "%s._domainkey.%s. IN TXT (", k->selector,
	    k->domain);
	/* The tags in one string, the key in pieces short enough for any
	 * DNS provider's web form. */
	head = (size_t)((const uint8_t *)memchr(txt.p, 'p', txt.len) - txt.p);
	if (r == 0)
		r = buf_printf(out, " \"%.*s\"", (int)head, (char *)txt.p);
	for (i = head; r == 0 && i < txt.len; i += n) {
		n = txt.len - i < 250 ? txt.len - i : 250;
		r = buf_printf(out, "\n\t\"%.*s\"", (int)n, (char *)txt.p + i);
	}
	if (r == 0)
		r = buf_puts(out, " )\n");
out:
	buf_fini(&txt);
	return r;
}

/* --- Key files ------------------------------------------------------- */

static int
relay_dkim_dir(const char *data_dir, const char *domain, char *out,
    size_t outsz, struct pr_err *err)
{
	char d[256];
	size_t i;

	if (!relay_dkim_name_ok(domain, 253))
		return pr_err_set(err, PR_EINVAL, "bad domain name '%s'",
		    domain);
	for (i = 0; domain[i] != '\0'; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[i] = '\0';
	if ((size_t)snprintf(out, outsz, "%s/dkim/%s", data_dir, d) >= outsz)
		return pr_err_set(err, PR_EINVAL, "data_dir path too long");
	return 0;
}

static int
relay_dkim_read_selector(const char *dir, char *sel, struct pr_err *err)
{
	char path[1200], line[RELAY_DKIM_SELECTOR_MAX + 8];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/selector", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return pr_err_set(err, PR_ENOENT, "no DKIM key");
		return pr_err_set(err, PR_EIO, "%s: %s", path,
		    strerror(errno));
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (!relay_dkim_name_ok(line, RELAY_DKIM_SELECTOR_MAX))
		return pr_err_set(err, PR_EINVAL, "%s: bad selector", path);
	memcpy(sel, line, n + 1);
	return 0;
}

int
relay_dkim_key_load(const char *data_dir, const char *domain,
    struct relay_dkim_key **k_r, struct pr_err *err)
{
	char dir[1100], path[1200], sel[RELAY_DKIM_SELECTOR_MAX + 1];
	EVP_PKEY *pkey;
	FILE *f;
	int r;

	if ((r = relay_dkim_dir(data_dir, domain, dir, sizeof(dir), err)) < 0)
		return r;
	if ((r = relay_dkim_read_selector(dir, sel, err)) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/%s.key", dir, sel);
	f = fopen(path, "r");
	if (f == NULL)
		return pr_err_set(err, errno == ENOENT ? PR_ENOENT : PR_EIO,
		    "%s: %s", path, strerror(errno));
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL)
		return relay_dkim_ssl_err(err, path);
	return relay_dkim_key_wrap(domain, sel, pkey, k_r, err);
}

static int
relay_dkim_mkdir(const char *path, gid_t gid, struct pr_err *err)
{
	mode_t mode = gid != (gid_t)-1 ? 0750 : 0700;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return pr_err_set(err, PR_EIO, "mkdir %s: %s", path,
		    strerror(errno));
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		return pr_err_set(err, PR_EIO, "chown %s: %s", path,
		    strerror(errno));
	return 0;
}

/* Writes data to path through a temporary file and rename(2), so a
 * reader never sees half a file. */
static int
relay_dkim_write_file(const char *path, const void *data, size_t len,
    mode_t mode, gid_t gid, bool excl, struct pr_err *err)
{
	char tmp[1300];
	int fd, flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
	ssize_t w;

	if (excl && access(path, F_OK) == 0)
		return pr_err_set(err, PR_EEXIST, "%s exists", path);
	snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	fd = open(tmp, flags, mode);
	if (fd < 0)
		return pr_err_set(err, PR_EIO, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) < 0 ||
	    (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0))
		goto fail;
	w = write(fd, data, len);
	if (w < 0 || (size_t)w != len || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (excl ? link(tmp, path) < 0 : rename(tmp, path) < 0)
		goto fail;
	if (excl)
		unlink(tmp);
	return 0;
fail:
	pr_err_set(err, errno == EEXIST ? PR_EEXIST : PR_EIO, "%s: %s", path,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err != NULL ? err->code : PR_EIO;
}

int
relay_dkim_keygen(const char *data_dir, const char *domain,
    const char *selector, bool ed25519, gid_t gid,
    struct relay_dkim_key **k_r, struct pr_err *err)
{
	char top[1100], dir[1100], path[1200], sel[RELAY_DKIM_SELECTOR_MAX + 2];
	mode_t mode = gid != (gid_t)-1 ? 0640 : 0600;
	EVP_PKEY *pkey;
	BIO *bio;
	char *pem;
	long pemlen;
	int r;

	if (selector == NULL)
		selector = RELAY_DKIM_SELECTOR_DEFAULT;
	if (!relay_dkim_name_ok(selector, RELAY_DKIM_SELECTOR_MAX))
		return pr_err_set(err, PR_EINVAL, "bad selector '%s'",
		    selector);
	if ((r = relay_dkim_dir(data_dir, domain, dir, sizeof(dir), err)) < 0)
		return r;
	snprintf(top, sizeof(top), "%s/dkim", data_dir);
	if ((r = relay_dkim_mkdir(top, gid, err)) < 0 ||
	    (r = relay_dkim_mkdir(dir, gid, err)) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/%s.key", dir, selector);
	if (access(path, F_OK) == 0)
		return pr_err_set(err, PR_EEXIST,
		    "a key with selector '%s' exists for %s; choose another "
		    "with --selector", selector, domain);

	if (ed25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		    (size_t)RELAY_DKIM_RSA_BITS);
	if (pkey == NULL)
		return relay_dkim_ssl_err(err, "key generation");
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL,
	    0, NULL, NULL)) {
		BIO_free(bio);
		EVP_PKEY_free(pkey);
		return relay_dkim_ssl_err(err, "PEM_write_bio_PrivateKey");
	}
	pemlen = BIO_get_mem_data(bio, &pem);
	r = relay_dkim_write_file(path, pem, (size_t)pemlen, mode, gid, true,
	    err);
	OPENSSL_cleanse(pem, (size_t)pemlen);
	BIO_free(bio);
	if (r < 0) {
		EVP_PKEY_free(pkey);
		return r;
	}
	snprintf(sel, sizeof(sel), "%s\n", selector);
	snprintf(path, sizeof(path), "%s/selector", dir);
	r = relay_dkim_write_file(path, sel, strlen(sel),
	    gid != (gid_t)-1 ? 0640 : 0600, gid, false, err);
	if (r < 0) {
		EVP_PKEY_free(pkey);
		return r;
	}
	return relay_dkim_key_wrap(domain, selector, pkey, k_r, err);
}

/* --- Canonicalisation ------------------------------------------------ */

/* RFC 6376 3.4.2, relaxed header canonicalisation of one raw field
 * (without its final CRLF): lower-case name, unfold, WSP runs to one SP,
 * no WSP at the end of the value or around the colon. */
static int
relay_dkim_canon_header(const uint8_t *f, size_t len, struct buf *out)
{
	size_t i = 0, start;
	bool wsp = false, any = false;
	int r;

	if ((r = buf_reserve(out, len + 3)) < 0)
		return r;
	while (i < len && f[i] != ':')
		i++;
	start = i;
	/* The name, without WSP before the colon. */
	while (start > 0 && (f[start - 1] == ' ' || f[start - 1] == '\t'))
		start--;
	for (size_t j = 0; j < start; j++)
		out->p[out->len++] = (uint8_t)tolower(f[j]);
	out->p[out->len++] = ':';
	for (i++; i < len; i++) {
		uint8_t ch = f[i];

		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == ' ' || ch == '\t') {
			wsp = true;
			continue;
		}
		if (wsp && any)
			out->p[out->len++] = ' ';
		wsp = false;
		any = true;
		out->p[out->len++] = ch;
	}
	out->p[out->len++] = '\r';
	out->p[out->len++] = '\n';
	return 0;
}

static void
relay_dkim_body_emit(struct relay_dkim_signer *s, const void *p, size_t n)
{
	if (s->out_len + n > sizeof(s->out)) {
		if (EVP_DigestUpdate(s->body_md, s->out, s->out_len) != 1)
			s->failed = true;
		s->out_len = 0;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void
relay_dkim_body_content(struct relay_dkim_signer *s, uint8_t ch)
{
	if (!s->line_has) {
		/* Empty lines followed by content are part of the body. */
		for (; s->blank_lines > 0; s->blank_lines--)
			relay_dkim_body_emit(s, "\r\n", 2);
	}
	if (s->wsp)
		relay_dkim_body_emit(s, " ", 1);
	s->wsp = false;
	s->line_has = true;
	relay_dkim_body_emit(s, &ch, 1);
}

static void
relay_dkim_body_eol(struct relay_dkim_signer *s)
{
	/* RFC 6376 3.4.4: WSP at the end of a line is ignored, so a line
	 * of only WSP is empty; empty lines at the end are ignored. */
	if (s->line_has)
		relay_dkim_body_emit(s, "\r\n", 2);
	else
		s->blank_lines++;
	s->line_has = false;
	s->wsp = false;
}

static void
relay_dkim_body_feed(struct relay_dkim_signer *s, const uint8_t *p,
    size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t ch = p[i];

		if (s->cr) {
			s->cr = false;
			if (ch == '\n') {
				relay_dkim_body_eol(s);
				continue;
			}
			relay_dkim_body_content(s, '\r');
		}
		if (ch == '\r')
			s->cr = true;
		else if (ch == '\n')
			relay_dkim_body_eol(s);
		else if (ch == ' ' || ch == '\t')
			s->wsp = true;
		else
			relay_dkim_body_content(s, ch);
	}
}

/* --- Signer ---------------------------------------------------------- */

int
relay_dkim_signer_new(const struct relay_dkim_key *k,
    struct relay_dkim_signer **s_r)
{
	struct relay_dkim_signer *s;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PR_ENOMEM;
	s->key = k;
	buf_init(&s->head, RELAY_DKIM_HEAD_MAX);
	s->body_md = EVP_MD_CTX_new();
	if (s->body_md == NULL ||
	    EVP_DigestInit_ex(s->body_md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(s->body_md);
		free(s);
		return PR_ENOMEM;
	}
	*s_r = s;
	return 0;
}

void
relay_dkim_signer_free(struct relay_dkim_signer **s)
{
	if (*s == NULL)
		return;
	buf_fini(&(*s)->head);
	EVP_MD_CTX_free((*s)->body_md);
	free(*s);
	*s = NULL;
}

int
relay_dkim_signer_feed(struct relay_dkim_signer *s, const uint8_t *p,
    size_t len)
{
	size_t from, i;
	int r;

	if (s->failed)
		return PR_ENOSPC;
	if (s->in_body) {
		relay_dkim_body_feed(s, p, len);
		return 0;
	}
	/* Look for the empty line that ends the header section, starting
	 * a little before the new data in case CRLFCRLF spans chunks. */
	from = s->head.len >= 3 ? s->head.len - 3 : 0;
	if ((r = buf_append(&s->head, p, len)) < 0) {
		s->failed = true;
		return r;
	}
	if (s->head.len >= 2 && from == 0 && s->head.p[0] == '\r' &&
	    s->head.p[1] == '\n') {
		/* No header fields at all. */
		i = 0;
		goto split;
	}
	for (i = from; i + 3 < s->head.len; i++) {
		if (s->head.p[i] == '\r' && s->head.p[i + 1] == '\n' &&
		    s->head.p[i + 2] == '\r' && s->head.p[i + 3] == '\n') {
			i += 2;
			goto split;
		}
	}
	return 0;
split:
	/* head keeps the fields with their last CRLF; the empty line and
	 * the rest are body. */
	s->in_body = true;
	relay_dkim_body_feed(s, s->head.p + i + 2, s->head.len - i - 2);
	s->head.len = i;
	return 0;
}

static size_t
relay_dkim_fields(const struct buf *h, struct relay_dkim_field *f,
    size_t max)
{
	size_t i = 0, n = 0, end;

	while (i < h->len && n < max) {
		/* A field runs to the CRLF not followed by WSP. */
		end = i;
		for (;;) {
			while (end < h->len && h->p[end] != '\n')
				end++;
			if (end + 1 < h->len &&
			    (h->p[end + 1] == ' ' || h->p[end + 1] == '\t')) {
				end++;
				continue;
			}
			break;
		}
		f[n].off = i;
		f[n].len = end - i;
		if (f[n].len > 0 && h->p[i + f[n].len - 1] == '\r')
			f[n].len--;
		f[n].name_len = 0;
		while (f[n].name_len < f[n].len &&
		    h->p[i + f[n].name_len] != ':' &&
		    h->p[i + f[n].name_len] != ' ' &&
		    h->p[i + f[n].name_len] != '\t')
			f[n].name_len++;
		if (f[n].name_len < f[n].len)
			n++;
		i = end + 1;
	}
	return n;
}

static bool
relay_dkim_field_is(const struct buf *h, const struct relay_dkim_field *f,
    const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n &&
	    strncasecmp((const char *)h->p + f->off, name, n) == 0;
}

static bool
relay_dkim_oversigned(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(relay_dkim_oversign_hdrs) /
	    sizeof(relay_dkim_oversign_hdrs[0]); i++)
		if (strcmp(relay_dkim_oversign_hdrs[i], name) == 0)
			return true;
	return false;
}

/* Builds the h= list and the canonical header data it covers.  RFC 6376
 * 5.4.2: for a name listed k times, the k last instances are signed,
 * from the bottom up; a listing beyond the instances signs "no more". */
static int
relay_dkim_headers(struct relay_dkim_signer *s, struct buf *hlist,
    struct buf *data)
{
	struct relay_dkim_field *f;
	size_t nf, i, j, count, used;
	const char *name;
	int r = 0;

	f = calloc(RELAY_DKIM_FIELDS_MAX, sizeof(*f));
	if (f == NULL)
		return PR_ENOMEM;
	nf = relay_dkim_fields(&s->head, f, RELAY_DKIM_FIELDS_MAX);
	for (i = 0; r == 0 && i < sizeof(relay_dkim_sign_hdrs) /
	    sizeof(relay_dkim_sign_hdrs[0]); i++) {
		name = relay_dkim_sign_hdrs[i];
		count = 0;
		for (j = 0; j < nf; j++)
			if (relay_dkim_field_is(&s->head, &f[j], name))
				count++;
		if (count == 0 && strcmp(name, "from") != 0)
			continue;
		used = 0;
		for (j = nf; r == 0 && j-- > 0;) {
			if (!relay_dkim_field_is(&s->head, &f[j], name))
				continue;
			r = relay_dkim_canon_header(s->head.p + f[j].off,
			    f[j].len, data);
			if (r == 0)
				r = buf_printf(hlist, "%s%s",
				    hlist->len ? ":" : "", name);
			used++;
		}
		if (r == 0 && (relay_dkim_oversigned(name) || used == 0))
			r = buf_printf(hlist, "%s%s", hlist->len ? ":" : "",
			    name);
	}
	free(f);
	return r;
}

/* Appends value to out, folded: a CRLF TAB before a piece that would pass
 * 76 columns.  Pieces are split at sep (or every width octets when sep is
 * 0, for base64). */
static int
relay_dkim_fold(struct buf *out, size_t *col, const char *value, char sep)
{
	size_t i = 0, n, len = strlen(value);
	int r;

	while (i < len) {
		if (sep != 0) {
			n = strcspn(value + i, (char[]){ sep, '\0' });
			if (i + n < len)
				n++;
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

int
relay_dkim_signer_finish(struct relay_dkim_signer *s, int64_t now,
    struct buf *out, struct pr_err *err)
{
	const struct relay_dkim_key *k = s->key;
	unsigned char bh[EVP_MAX_MD_SIZE], hash[32], *sig = NULL;
	unsigned int bhlen;
	struct buf hlist, data, hdr, b64;
	EVP_MD_CTX *ctx = NULL;
	size_t siglen = 0, col;
	int r;

	if (s->failed)
		return pr_err_set(err, PR_ENOSPC,
		    "header section too large to sign");
	if (!s->in_body) {
		/* Header only, no body: the body is empty. */
		s->in_body = true;
		if (s->head.len >= 2 &&
		    s->head.p[s->head.len - 1] != '\n')
			buf_puts(&s->head, "\r\n");
	}
	/* A last line without CRLF still counts (RFC 6376 3.4.4: "if the
	 * body is non-empty but does not end with CRLF, a CRLF is added");
	 * an empty body hashes as nothing in relaxed mode. */
	if (s->cr)
		relay_dkim_body_content(s, '\r');
	if (s->line_has)
		relay_dkim_body_emit(s, "\r\n", 2);
	if (s->out_len > 0 &&
	    EVP_DigestUpdate(s->body_md, s->out, s->out_len) != 1)
		s->failed = true;
	s->out_len = 0;
	if (s->failed || EVP_DigestFinal_ex(s->body_md, bh, &bhlen) != 1)
		return relay_dkim_ssl_err(err, "body hash");

	buf_init(&hlist, 64 * 1024);
	buf_init(&data, RELAY_DKIM_HEAD_MAX + 64 * 1024);
	buf_init(&hdr, 64 * 1024);
	buf_init(&b64, 4096);
	r = relay_dkim_headers(s, &hlist, &data);
	/* The DKIM-Signature field with an empty b=, RFC 6376 3.5, 3.7. */
	if (r == 0)
		r = buf_printf(&hdr,
		    "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;\r\n"
		    "\td=%s; s=%s; t=%lld;\r\n\th=",
		    k->alg == RELAY_DKIM_RSA_SHA256 ? "rsa-sha256" :
		    "ed25519-sha256", k->domain, k->selector, (long long)now);
	col = 3;
	if (r == 0 && (r = buf_append(&hlist, "", 1)) == 0)
		r = relay_dkim_fold(&hdr, &col, (const char *)hlist.p, ':');
	if (r == 0)
		r = buf_puts(&hdr, ";\r\n\tbh=");
	if (r == 0)
		r = relay_dkim_b64(bh, bhlen, &b64);
	if (r == 0)
		r = buf_append(&b64, "", 1);
	if (r == 0)
		r = buf_printf(&hdr, "%s;\r\n\tb=", (const char *)b64.p);
	if (r != 0) {
		pr_err_set(err, r, "DKIM header too large");
		goto out;
	}
	/* The signature covers the signed fields and this field itself,
	 * canonicalised, without its final CRLF (RFC 6376 3.7). */
	if ((r = relay_dkim_canon_header(hdr.p, hdr.len, &data)) < 0) {
		pr_err_set(err, r, "DKIM header too large");
		goto out;
	}
	data.len -= 2;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		r = pr_err_set(err, PR_ENOMEM, "out of memory");
		goto out;
	}
	if (k->alg == RELAY_DKIM_RSA_SHA256) {
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
		    k->pkey) != 1 ||
		    EVP_DigestSign(ctx, NULL, &siglen, data.p, data.len) != 1) {
			r = relay_dkim_ssl_err(err, "DKIM RSA signing");
			goto out;
		}
		sig = OPENSSL_malloc(siglen);
		if (sig == NULL || EVP_DigestSign(ctx, sig, &siglen, data.p,
		    data.len) != 1) {
			r = relay_dkim_ssl_err(err, "DKIM RSA signing");
			goto out;
		}
	} else {
		/* RFC 8463 3: Ed25519 over the SHA-256 hash of the data. */
		if (EVP_Digest(data.p, data.len, hash, NULL, EVP_sha256(),
		    NULL) != 1 ||
		    EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1) {
			r = relay_dkim_ssl_err(err, "DKIM Ed25519 signing");
			goto out;
		}
		siglen = 64;
		sig = OPENSSL_malloc(siglen);
		if (sig == NULL || EVP_DigestSign(ctx, sig, &siglen, hash,
		    sizeof(hash)) != 1) {
			r = relay_dkim_ssl_err(err, "DKIM Ed25519 signing");
			goto out;
		}
	}
	b64.len = 0;
	col = 3;
	if ((r = relay_dkim_b64(sig, siglen, &b64)) == 0 &&
	    (r = buf_append(&b64, "", 1)) == 0 &&
	    (r = relay_dkim_fold(&hdr, &col, (const char *)b64.p, 0)) == 0 &&
	    (r = buf_puts(&hdr, "\r\n")) == 0)
		r = buf_append(out, hdr.p, hdr.len);
	if (r != 0)
		pr_err_set(err, r, "DKIM header too large");
out:
	OPENSSL_free(sig);
	EVP_MD_CTX_free(ctx);
	buf_fini(&hlist);
	buf_fini(&data);
	buf_fini(&hdr);
	buf_fini(&b64);
	return r;
}

/* --- From: domain ---------------------------------------------------- */

int
relay_dkim_from_domain(const uint8_t *head, size_t len, char *out,
    size_t outsz)
{
	struct buf h = { (uint8_t *)head, len, len, len };
	struct relay_dkim_field *f;
	const char *v, *end, *lt, *at, *p;
	char val[1024];
	size_t nf, i, n, o;
	int r = PR_ENOENT;

	f = calloc(RELAY_DKIM_FIELDS_MAX, sizeof(*f));
	if (f == NULL)
		return PR_ENOMEM;
	nf = relay_dkim_fields(&h, f, RELAY_DKIM_FIELDS_MAX);
	for (i = 0; i < nf; i++) {
		if (!relay_dkim_field_is(&h, &f[i], "from"))
			continue;
		v = memchr(head + f[i].off, ':', f[i].len);
		n = f[i].len - (size_t)(v + 1 - (const char *)head - f[i].off);
		if (n >= sizeof(val))
			n = sizeof(val) - 1;
		memcpy(val, v + 1, n);
		val[n] = '\0';
		/* "Name <local@domain>" or a bare "local@domain". */
		lt = strchr(val, '<');
		p = lt != NULL ? lt + 1 : val;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		end = p + strcspn(p, lt != NULL ? ">" : ",;() \t\r\n");
		at = NULL;
		for (const char *q = p; q < end; q++)
			if (*q == '@')
				at = q;
		if (at == NULL)
			break;
		n = (size_t)(end - at - 1);
		if (n == 0 || n >= outsz)
			break;
		for (o = 0; o < n; o++)
			out[o] = (char)tolower((unsigned char)at[1 + o]);
		out[n] = '\0';
		r = 0;
		break;
	}
	free(f);
	return r;
}
