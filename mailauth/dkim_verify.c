/*
 * dkim_verify.c - DKIM verification (RFC 6376 6.1; RFC 8463; RFC 8301).
 */
#include "dkim_verify.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "buf.h"
#include "dkim_body.h"
#include "dkim_field.h"
#include "dkim_keycache.h"
#include "dkim_tag.h"
#include "err.h"

/* One body hash; signatures with the same c= body algorithm and l=
 * share it. */
struct dkim_verify_hash {
	enum dkim_canon canon;
	uint64_t limit;
	struct dkim_body *body;
	uint8_t sum[DKIM_BODY_HASH_LEN];
	uint64_t total;
	bool done;
};

struct dkim_verify_one {
	struct dkim_verify *v;
	struct dkim_verify_result out;
	struct dkim_verify_sig sig;
	size_t field;          /* index among the header fields */
	int hash;              /* index into v->hash, or -1 */
	bool decided;          /* out.res is final */
	bool pending;          /* a key lookup is in flight */
	/* The signature whose key lookup this one shares (the same s= and
	 * d=), or NULL: one query and one key per name and message. */
	struct dkim_verify_one *key_of;
};

struct dkim_verify {
	struct resolver *r;
	struct dkim_verify_limits lim;
	struct buf head;
	bool in_body, head_over, failed, ended;
	uint8_t last;                   /* the previous header octet */
	struct dkim_field *fields;
	size_t nfields;
	struct dkim_verify_one *one;
	size_t n;
	struct dkim_verify_hash hash[DKIM_VERIFY_SIGS_MAX];
	size_t nhash;
	struct dkim_verify_result *res; /* handed to cb */
	size_t pending;
	dkim_verify_cb cb;
	void *cb_data;
};

const char *
dkim_verify_res_name(enum dkim_verify_res r)
{
	switch (r) {
	case DKIM_VERIFY_PASS:
		return "pass";
	case DKIM_VERIFY_FAIL:
		return "fail";
	case DKIM_VERIFY_NEUTRAL:
		return "neutral";
	case DKIM_VERIFY_POLICY:
		return "policy";
	case DKIM_VERIFY_TEMPERROR:
		return "temperror";
	case DKIM_VERIFY_PERMERROR:
		break;
	}
	return "permerror";
}

/* --- Parsing ------------------------------------------------------------- */

static bool
dkim_verify_fws(uint8_t ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Decodes base64 (RFC 4648 4) with FWS anywhere (RFC 6376 2.4, 3.5 b=)
 * into out[0..max).  Returns the length, or -1 for a bad character, bad
 * padding or more than max octets. */
static long
dkim_verify_b64dec(const char *s, size_t len, uint8_t *out, size_t max)
{
	const char *end;
	size_t n;

	if (sodium_base642bin(out, max, s, len, " \t\r\n", &n, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != s + len)
		return -1;
	return (long)n;
}

/* Copies the value of tag into out (outsz bytes), FWS removed when
 * strip is set.  Returns false when it does not fit. */
static bool
dkim_verify_copy(const char *s, const struct dkim_tag *tag, char *out,
    size_t outsz, bool strip)
{
	size_t i, n = 0;

	for (i = 0; i < tag->val_len; i++) {
		char ch = s[tag->val_off + i];

		if (strip && dkim_verify_fws((uint8_t)ch))
			continue;
		if (ch == '\0' || n + 1 >= outsz)
			return false;
		out[n++] = ch;
	}
	out[n] = '\0';
	return true;
}

static bool
dkim_verify_number(const char *s, const struct dkim_tag *tag, uint64_t max,
    uint64_t *n_r)
{
	uint64_t n = 0;
	size_t i;

	/* RFC 6376 3.5: l=, t= and x= are 1*76DIGIT and 1*12DIGIT. */
	if (tag->val_len == 0 || tag->val_len > 76)
		return false;
	for (i = 0; i < tag->val_len; i++) {
		char ch = s[tag->val_off + i];

		if (ch < '0' || ch > '9')
			return false;
		if (n > (max - (uint64_t)(ch - '0')) / 10)
			n = max;    /* saturate: longer than any message */
		else
			n = n * 10 + (uint64_t)(ch - '0');
	}
	*n_r = n;
	return true;
}

/* True if dom is d or a subdomain of it (RFC 6376 3.5 i=). */
static bool
dkim_verify_under(const char *dom, const char *d)
{
	size_t a = strlen(dom), b = strlen(d);

	if (a == b)
		return strcasecmp(dom, d) == 0;
	return a > b && dom[a - b - 1] == '.' &&
	    strcasecmp(dom + a - b, d) == 0;
}

/* True if the colon-separated list has word (case-insensitive), with
 * FWS around the items ignored. */
static bool
dkim_verify_list_has(const char *s, size_t len, char sep, const char *word)
{
	size_t i = 0, e, k, n = strlen(word);

	while (i <= len) {
		for (e = i; e < len && s[e] != sep; e++)
			;
		for (k = i; k < e && dkim_verify_fws((uint8_t)s[k]); k++)
			;
		while (e > k && dkim_verify_fws((uint8_t)s[e - 1]))
			e--;
		if (e - k == n && strncasecmp(s + k, word, n) == 0)
			return true;
		while (i < len && s[i] != sep)
			i++;
		i++;
	}
	return false;
}

#define DKIM_VERIFY_BAD(why) do { *why_r = (why); \
	return DKIM_VERIFY_NEUTRAL; } while (0)

enum dkim_verify_res
dkim_verify_parse_sig(const uint8_t *f, size_t len,
    struct dkim_verify_sig *sig, const char **why_r)
{
	struct dkim_tag t[DKIM_TAG_MAX];
	const struct dkim_tag *tag;
	const uint8_t *colon;
	const char *s, *at;
	size_t off, k;
	uint64_t num;
	long n;
	int nt;

	memset(sig, 0, sizeof(*sig));
	sig->l = DKIM_BODY_NO_LIMIT;
	sig->t = sig->x = -1;
	colon = memchr(f, ':', len);
	if (colon == NULL)
		DKIM_VERIFY_BAD("no value");
	off = (size_t)(colon + 1 - f);
	s = (const char *)f + off;
	nt = dkim_tag_parse(s, len - off, t, DKIM_TAG_MAX);
	if (nt < 0)
		DKIM_VERIFY_BAD("signature syntax");
	/* d= and s= first, so that even a broken signature names them. */
	tag = dkim_tag_find(s, t, (size_t)nt, "d");
	if (tag != NULL && dkim_verify_copy(s, tag, sig->d, sizeof(sig->d),
	    true))
		for (char *p = sig->d; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	tag = dkim_tag_find(s, t, (size_t)nt, "s");
	if (tag != NULL)
		(void)dkim_verify_copy(s, tag, sig->s, sizeof(sig->s), true);
	tag = dkim_tag_find(s, t, (size_t)nt, "b");
	if (tag != NULL) {
		for (k = 0, n = 0; k < tag->val_len &&
		    n < DKIM_VERIFY_B_PREFIX; k++)
			if (!dkim_verify_fws((uint8_t)s[tag->val_off + k]))
				sig->b_prefix[n++] = s[tag->val_off + k];
		sig->b_prefix[n] = '\0';
	}

	/* RFC 6376 3.5: v=1 is required and comes first by convention;
	 * "v=1" is the only version. */
	tag = dkim_tag_find(s, t, (size_t)nt, "v");
	if (tag == NULL || !dkim_tag_is(s, tag, "1", false))
		DKIM_VERIFY_BAD("missing or unknown v=");
	if (sig->d[0] == '\0')
		DKIM_VERIFY_BAD("missing d=");
	if (sig->s[0] == '\0')
		DKIM_VERIFY_BAD("missing s=");

	tag = dkim_tag_find(s, t, (size_t)nt, "a");
	if (tag == NULL || !dkim_verify_copy(s, tag, sig->a, sizeof(sig->a),
	    true))
		DKIM_VERIFY_BAD("missing a=");
	if (strcasecmp(sig->a, "rsa-sha256") == 0)
		sig->alg = DKIM_VERIFY_ALG_RSA_SHA256;
	else if (strcasecmp(sig->a, "ed25519-sha256") == 0)
		sig->alg = DKIM_VERIFY_ALG_ED25519_SHA256;
	else if (strcasecmp(sig->a, "rsa-sha1") == 0)
		sig->alg = DKIM_VERIFY_ALG_RSA_SHA1;
	else
		DKIM_VERIFY_BAD("unknown a=");

	tag = dkim_tag_find(s, t, (size_t)nt, "c");
	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if (tag != NULL && dkim_canon_parse(s + tag->val_off, tag->val_len,
	    &sig->hcanon, &sig->bcanon) < 0)
		DKIM_VERIFY_BAD("unknown c=");

	tag = dkim_tag_find(s, t, (size_t)nt, "bh");
	if (tag == NULL)
		DKIM_VERIFY_BAD("missing bh=");
	n = dkim_verify_b64dec(s + tag->val_off, tag->val_len, sig->bh,
	    sizeof(sig->bh));
	if (n < 0)
		DKIM_VERIFY_BAD("bad bh=");
	sig->bh_len = (size_t)n;

	tag = dkim_tag_find(s, t, (size_t)nt, "b");
	if (tag == NULL)
		DKIM_VERIFY_BAD("missing b=");
	n = dkim_verify_b64dec(s + tag->val_off, tag->val_len, sig->b,
	    sizeof(sig->b));
	if (n <= 0)
		DKIM_VERIFY_BAD("bad b=");
	sig->b_len = (size_t)n;
	sig->b_raw_off = off + tag->raw_off;
	sig->b_raw_end = off + tag->raw_end;

	tag = dkim_tag_find(s, t, (size_t)nt, "h");
	if (tag == NULL || !dkim_verify_copy(s, tag, sig->h, sizeof(sig->h),
	    true) || sig->h[0] == '\0')
		DKIM_VERIFY_BAD("missing h=");
	/* RFC 6376 5.4: From MUST be signed. */
	if (!dkim_verify_list_has(sig->h, strlen(sig->h), ':', "from"))
		DKIM_VERIFY_BAD("From not signed");

	tag = dkim_tag_find(s, t, (size_t)nt, "i");
	if (tag != NULL) {
		if (!dkim_verify_copy(s, tag, sig->i, sizeof(sig->i), true) ||
		    (at = strrchr(sig->i, '@')) == NULL)
			DKIM_VERIFY_BAD("bad i=");
		/* RFC 6376 3.5: the domain of i= is d= or a subdomain. */
		if (!dkim_verify_under(at + 1, sig->d))
			DKIM_VERIFY_BAD("i= not within d=");
	}
	tag = dkim_tag_find(s, t, (size_t)nt, "l");
	if (tag != NULL) {
		if (!dkim_verify_number(s, tag, UINT64_MAX - 1, &num))
			DKIM_VERIFY_BAD("bad l=");
		sig->l = num;
	}
	/* RFC 6376 3.5: q= is "dns/txt", the only method. */
	tag = dkim_tag_find(s, t, (size_t)nt, "q");
	if (tag != NULL && !dkim_verify_list_has(s + tag->val_off,
	    tag->val_len, ':', "dns/txt"))
		DKIM_VERIFY_BAD("unknown q=");
	tag = dkim_tag_find(s, t, (size_t)nt, "t");
	if (tag != NULL) {
		if (!dkim_verify_number(s, tag, INT64_MAX, &num))
			DKIM_VERIFY_BAD("bad t=");
		sig->t = (int64_t)num;
	}
	tag = dkim_tag_find(s, t, (size_t)nt, "x");
	if (tag != NULL) {
		if (!dkim_verify_number(s, tag, INT64_MAX, &num))
			DKIM_VERIFY_BAD("bad x=");
		sig->x = (int64_t)num;
		/* RFC 6376 3.5: x= MUST be greater than t=. */
		if (sig->t >= 0 && sig->x <= sig->t)
			DKIM_VERIFY_BAD("x= not after t=");
	}
	/* RFC 6376 3.3.3 and RFC 8463 3: SHA-256 hashes are 32 octets;
	 * rsa-sha1's 20-octet hash is refused before it is compared. */
	if (sig->alg != DKIM_VERIFY_ALG_RSA_SHA1 && sig->bh_len != 32)
		DKIM_VERIFY_BAD("bad bh= length");
	*why_r = NULL;
	return DKIM_VERIFY_PASS;
}

#define DKIM_VERIFY_KEYBAD(why) do { *why_r = (why); \
	goto bad; } while (0)

enum dkim_verify_res
dkim_verify_parse_key(const uint8_t *txt, size_t len,
    struct dkim_verify_key *k, const char **why_r)
{
	struct dkim_tag t[DKIM_TAG_MAX];
	const struct dkim_tag *tag;
	const char *s = (const char *)txt;
	const unsigned char *dp;
	uint8_t *raw = NULL;
	long n;
	int nt;

	memset(k, 0, sizeof(*k));
	nt = dkim_tag_parse(s, len, t, DKIM_TAG_MAX);
	if (nt < 0)
		DKIM_VERIFY_KEYBAD("key record syntax");
	/* RFC 6376 3.6.1: v= is optional but, if present, first and
	 * "DKIM1". */
	tag = dkim_tag_find(s, t, (size_t)nt, "v");
	if (tag != NULL && (tag != &t[0] ||
	    !dkim_tag_is(s, tag, "DKIM1", false)))
		DKIM_VERIFY_KEYBAD("key record v= is not DKIM1");
	tag = dkim_tag_find(s, t, (size_t)nt, "k");
	if (tag == NULL || dkim_tag_is(s, tag, "rsa", true))
		k->ed25519 = false;
	else if (dkim_tag_is(s, tag, "ed25519", true))
		k->ed25519 = true;
	else
		DKIM_VERIFY_KEYBAD("unknown key type");
	tag = dkim_tag_find(s, t, (size_t)nt, "h");
	if (tag != NULL && !dkim_verify_list_has(s + tag->val_off,
	    tag->val_len, ':', "sha256"))
		DKIM_VERIFY_KEYBAD("key not for sha256");
	tag = dkim_tag_find(s, t, (size_t)nt, "s");
	if (tag != NULL && !dkim_verify_list_has(s + tag->val_off,
	    tag->val_len, ':', "email") && !dkim_verify_list_has(s +
	    tag->val_off, tag->val_len, ':', "*"))
		DKIM_VERIFY_KEYBAD("key not for email");
	tag = dkim_tag_find(s, t, (size_t)nt, "t");
	if (tag != NULL) {
		k->testing = dkim_verify_list_has(s + tag->val_off,
		    tag->val_len, ':', "y");
		k->strict = dkim_verify_list_has(s + tag->val_off,
		    tag->val_len, ':', "s");
	}
	tag = dkim_tag_find(s, t, (size_t)nt, "p");
	if (tag == NULL)
		DKIM_VERIFY_KEYBAD("key record without p=");
	/* RFC 6376 3.6.1: "An empty value means that this public key has
	 * been revoked." */
	if (tag->val_len == 0)
		DKIM_VERIFY_KEYBAD("key revoked");
	raw = malloc(tag->val_len);
	if (raw == NULL)
		DKIM_VERIFY_KEYBAD("out of memory");
	n = dkim_verify_b64dec(s + tag->val_off, tag->val_len, raw,
	    tag->val_len);
	if (n <= 0)
		DKIM_VERIFY_KEYBAD("bad p=");
	if (k->ed25519) {
		/* RFC 8463 4.2: the raw 32-octet public key. */
		if (n != 32)
			DKIM_VERIFY_KEYBAD("bad Ed25519 key");
		k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		    raw, 32);
	} else {
		/* RFC 6376 3.6.1 names RSAPublicKey, but keys are published
		 * as SubjectPublicKeyInfo (as the signer's dkim_key_txt()
		 * writes them); both are read. */
		dp = raw;
		k->pkey = d2i_PUBKEY(NULL, &dp, n);
		if (k->pkey == NULL) {
			dp = raw;
			k->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &dp, n);
		}
		if (k->pkey != NULL &&
		    EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA) {
			EVP_PKEY_free(k->pkey);
			k->pkey = NULL;
		}
		if (k->pkey != NULL)
			k->bits = EVP_PKEY_get_bits(k->pkey);
	}
	if (k->pkey == NULL)
		DKIM_VERIFY_KEYBAD("bad public key");
	free(raw);
	*why_r = NULL;
	return DKIM_VERIFY_PASS;
bad:
	free(raw);
	return DKIM_VERIFY_PERMERROR;
}

void
dkim_verify_key_fini(struct dkim_verify_key *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

/* --- The verifier -------------------------------------------------------- */

int
dkim_verify_new(struct resolver *r, const struct dkim_verify_limits *lim,
    struct dkim_verify **v_r)
{
	struct dkim_verify *v;

	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return PR_ENOMEM;
	v->r = r;
	if (lim != NULL)
		v->lim = *lim;
	if (v->lim.max_sigs == 0)
		v->lim.max_sigs = DKIM_VERIFY_SIGS;
	if (v->lim.max_sigs > DKIM_VERIFY_SIGS_MAX)
		v->lim.max_sigs = DKIM_VERIFY_SIGS_MAX;
	if (v->lim.head_max == 0)
		v->lim.head_max = DKIM_VERIFY_HEAD_MAX;
	if (v->lim.head_max < 64)
		v->lim.head_max = 64;
	buf_init(&v->head, v->lim.head_max + 4);
	*v_r = v;
	return 0;
}

void
dkim_verify_free(struct dkim_verify **vp)
{
	struct dkim_verify *v = *vp;
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++)
		if (v->one[i].pending)
			resolver_cancel(v->r, &v->one[i]);
	for (i = 0; i < v->nhash; i++)
		dkim_body_free(&v->hash[i].body);
	buf_fini(&v->head);
	free(v->fields);
	free(v->one);
	free(v->res);
	free(v);
	*vp = NULL;
}

static void
dkim_verify_decide(struct dkim_verify_one *o, enum dkim_verify_res res,
    const char *why)
{
	o->out.res = res;
	o->out.reason = res == DKIM_VERIFY_PASS ? NULL : why;
	o->decided = true;
}

/* The body hash for canon and limit, shared or new; -1 when none. */
static int
dkim_verify_hash_for(struct dkim_verify *v, enum dkim_canon canon,
    uint64_t limit)
{
	size_t i;

	for (i = 0; i < v->nhash; i++)
		if (v->hash[i].canon == canon && v->hash[i].limit == limit)
			return (int)i;
	if (v->nhash == DKIM_VERIFY_SIGS_MAX ||
	    dkim_body_new(canon, limit, &v->hash[v->nhash].body) < 0)
		return -1;
	v->hash[v->nhash].canon = canon;
	v->hash[v->nhash].limit = limit;
	return (int)v->nhash++;
}

/* The header section is complete in v->head[0..len): finds and parses
 * the signatures and starts their body hashes. */
static int
dkim_verify_head(struct dkim_verify *v)
{
	const uint8_t *h = v->head.p;
	unsigned verified = 0;
	size_t i, nsig = 0;
	const char *why;
	enum dkim_verify_res res;

	v->fields = calloc(DKIM_FIELD_MAX, sizeof(*v->fields));
	v->one = calloc(DKIM_VERIFY_REPORT_MAX, sizeof(*v->one));
	if (v->fields == NULL || v->one == NULL)
		return PR_ENOMEM;
	if (v->head_over) {
		/* Nothing parsed: one result says why nothing passed. */
		v->n = 1;
		v->one[0].hash = -1;
		dkim_verify_decide(&v->one[0], DKIM_VERIFY_PERMERROR,
		    "header section too large");
		return 0;
	}
	v->nfields = dkim_field_split(h, v->head.len, v->fields,
	    DKIM_FIELD_MAX);
	for (i = 0; i < v->nfields && nsig < DKIM_VERIFY_REPORT_MAX; i++) {
		struct dkim_verify_one *o = &v->one[nsig];

		if (!dkim_field_is(h, &v->fields[i], "dkim-signature"))
			continue;
		nsig++;
		o->v = v;
		o->field = i;
		o->hash = -1;
		res = dkim_verify_parse_sig(h + v->fields[i].off,
		    v->fields[i].len, &o->sig, &why);
		memcpy(o->out.d, o->sig.d, sizeof(o->out.d));
		memcpy(o->out.s, o->sig.s, sizeof(o->out.s));
		memcpy(o->out.i, o->sig.i, sizeof(o->out.i));
		memcpy(o->out.a, o->sig.a, sizeof(o->out.a));
		memcpy(o->out.b, o->sig.b_prefix, sizeof(o->out.b));
		if (res != DKIM_VERIFY_PASS) {
			dkim_verify_decide(o, res, why);
			continue;
		}
		/* RFC 8301 3.1: "Verifiers MUST NOT consider signatures
		 * using SHA-1 to be valid". */
		if (o->sig.alg == DKIM_VERIFY_ALG_RSA_SHA1) {
			dkim_verify_decide(o, DKIM_VERIFY_POLICY,
			    "rsa-sha1 is not accepted");
			continue;
		}
		/* RFC 6376 3.5 x=: past it, the signature is invalid. */
		if (o->sig.x >= 0 && v->lim.now > 0 &&
		    o->sig.x < v->lim.now) {
			dkim_verify_decide(o, DKIM_VERIFY_POLICY,
			    "signature expired");
			continue;
		}
		if (verified == v->lim.max_sigs) {
			dkim_verify_decide(o, DKIM_VERIFY_POLICY,
			    "too many signatures");
			continue;
		}
		verified++;
		o->hash = dkim_verify_hash_for(v, o->sig.bcanon, o->sig.l);
		if (o->hash < 0)
			return PR_ENOMEM;
	}
	v->n = nsig;
	return 0;
}

static int
dkim_verify_body(struct dkim_verify *v, const uint8_t *p, size_t len)
{
	size_t i;
	int r;

	for (i = 0; i < v->nhash; i++)
		if ((r = dkim_body_feed(v->hash[i].body, p, len)) < 0)
			return r;
	return 0;
}

/* Ends the header at head[i], the start of the empty line. */
static int
dkim_verify_split(struct dkim_verify *v, size_t i)
{
	size_t rest_off = i + 2, rest_len = v->head.len - i - 2;
	int r;

	v->head.len = i;
	v->in_body = true;
	if ((r = dkim_verify_head(v)) < 0)
		return r;
	return dkim_verify_body(v, v->head.p + rest_off, rest_len);
}

/* Keeps out[0..n), the header octets that in input octets became.  Past
 * head_max only the last four octets are kept: enough to find the empty
 * line that ends the header section. */
static int
dkim_verify_keep(struct dkim_verify *v, const void *out, size_t n,
    size_t in)
{
	if (v->head.len + in + 1 <= v->lim.head_max)
		return buf_append(&v->head, out, n);
	v->head_over = true;
	if (n >= 4) {
		v->head.len = 0;
		return buf_append(&v->head, (const uint8_t *)out + n - 4, 4);
	}
	memmove(v->head.p, v->head.p + v->head.len - (4 - n), 4 - n);
	v->head.len = 4 - n;
	return buf_append(&v->head, out, n);
}

int
dkim_verify_feed(struct dkim_verify *v, const uint8_t *p, size_t len)
{
	const uint8_t *lf;
	size_t i = 0, n;
	int r = 0;

	if (v->ended)
		return PR_EINVAL;
	if (v->failed)
		return PR_ENOMEM;
	while (!v->in_body && r == 0 && i < len) {
		/* RFC 6376 5.3: the header in network normal form, every
		 * bare LF a CRLF.  The octets up to a LF go in at once. */
		lf = memchr(p + i, '\n', len - i);
		n = lf != NULL ? (size_t)(lf - p) - i : len - i;
		if (n > 0) {
			if ((r = dkim_verify_keep(v, p + i, n, n)) < 0)
				break;
			v->last = p[i + n - 1];
			i += n;
		}
		if (lf == NULL)
			break;
		r = v->last == '\r' ? dkim_verify_keep(v, "\n", 1, 1) :
		    dkim_verify_keep(v, "\r\n", 2, 1);
		v->last = '\n';
		i++;
		if (r < 0)
			break;
		if (v->head.len == 2 && !v->head_over)
			/* No header fields at all. */
			r = dkim_verify_split(v, 0);
		else if (v->head.len >= 4 && memcmp(v->head.p + v->head.len -
		    4, "\r\n\r\n", 4) == 0)
			r = dkim_verify_split(v, v->head.len - 2);
	}
	if (r == 0 && v->in_body && i < len)
		r = dkim_verify_body(v, p + i, len - i);
	if (r < 0)
		v->failed = true;
	return r < 0 ? r : 0;
}

/* Appends the canonical fields that h= names (RFC 6376 5.4.2: for a
 * name listed k times, the last k instances from the bottom up; a name
 * with no instance left adds nothing), then the signature field itself
 * with b= emptied and without its final CRLF (3.7). */
static int
dkim_verify_hdata(struct dkim_verify *v, struct dkim_verify_one *o,
    struct buf *data)
{
	const uint8_t *h = v->head.p;
	const struct dkim_field *sf = &v->fields[o->field];
	const char *list = o->sig.h, *e;
	struct buf self;
	bool *used;
	size_t j, n;
	int r = 0;

	used = calloc(v->nfields ? v->nfields : 1, sizeof(*used));
	if (used == NULL)
		return PR_ENOMEM;
	while (r == 0 && *list != '\0') {
		char name[256];

		e = strchr(list, ':');
		n = e != NULL ? (size_t)(e - list) : strlen(list);
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, list, n);
			name[n] = '\0';
			for (j = v->nfields; j-- > 0;) {
				if (used[j] || !dkim_field_is(h, &v->fields[j],
				    name))
					continue;
				used[j] = true;
				r = dkim_canon_header(o->sig.hcanon,
				    h + v->fields[j].off, v->fields[j].len,
				    data);
				break;
			}
		}
		list += n;
		if (*list == ':')
			list++;
	}
	free(used);
	if (r < 0)
		return r;
	buf_init(&self, sf->len + 1);
	r = buf_append(&self, h + sf->off, o->sig.b_raw_off);
	if (r == 0)
		r = buf_append(&self, h + sf->off + o->sig.b_raw_end,
		    sf->len - o->sig.b_raw_end);
	if (r == 0)
		r = dkim_canon_header(o->sig.hcanon, self.p, self.len, data);
	buf_fini(&self);
	if (r == 0)
		data->len -= 2;
	return r;
}

/* RFC 6376 6.1.3: the body hash, then the signature over the header
 * data, with the key k. */
static void
dkim_verify_check(struct dkim_verify *v, struct dkim_verify_one *o,
    const struct dkim_verify_key *k)
{
	struct dkim_verify_hash *bh = &v->hash[o->hash];
	uint8_t md[32];
	struct buf data;
	EVP_MD_CTX *ctx;
	int ok = 0;

	if (k->ed25519 != (o->sig.alg == DKIM_VERIFY_ALG_ED25519_SHA256)) {
		dkim_verify_decide(o, DKIM_VERIFY_PERMERROR,
		    "key type does not match a=");
		return;
	}
	/* RFC 8301 3.2: RSA keys under 1024 bits are not valid. */
	if (!k->ed25519 && k->bits < 1024) {
		dkim_verify_decide(o, DKIM_VERIFY_POLICY,
		    "RSA key shorter than 1024 bits");
		return;
	}
	/* RFC 6376 3.6.1 t=s: i= must be in d= itself. */
	if (k->strict && o->sig.i[0] != '\0' &&
	    strcasecmp(strrchr(o->sig.i, '@') + 1, o->sig.d) != 0) {
		dkim_verify_decide(o, DKIM_VERIFY_POLICY,
		    "i= subdomain with a t=s key");
		return;
	}
	if (!bh->done) {
		dkim_verify_decide(o, DKIM_VERIFY_TEMPERROR,
		    "body hash failed");
		return;
	}
	/* RFC 6376 3.5 l=: a body shorter than l= fails. */
	if (o->sig.l != DKIM_BODY_NO_LIMIT && bh->total < o->sig.l) {
		dkim_verify_decide(o, DKIM_VERIFY_FAIL,
		    "body shorter than l=");
		return;
	}
	if (memcmp(bh->sum, o->sig.bh, 32) != 0) {
		dkim_verify_decide(o, DKIM_VERIFY_FAIL, "body hash mismatch");
		return;
	}
	buf_init(&data, v->head.len * 2 + 4096);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || dkim_verify_hdata(v, o, &data) < 0) {
		dkim_verify_decide(o, DKIM_VERIFY_TEMPERROR, "out of memory");
		goto out;
	}
	if (k->ed25519) {
		/* RFC 8463 3: Ed25519 over the SHA-256 of the data. */
		ok = EVP_Digest(data.p, data.len, md, NULL, EVP_sha256(),
		    NULL) == 1 &&
		    EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
		    EVP_DigestVerify(ctx, o->sig.b, o->sig.b_len, md,
		    sizeof(md)) == 1;
	} else {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
		    k->pkey) == 1 &&
		    EVP_DigestVerify(ctx, o->sig.b, o->sig.b_len, data.p,
		    data.len) == 1;
	}
	if (ok)
		dkim_verify_decide(o, DKIM_VERIFY_PASS, NULL);
	else
		dkim_verify_decide(o, DKIM_VERIFY_FAIL,
		    "signature did not verify");
out:
	EVP_MD_CTX_free(ctx);
	buf_fini(&data);
}

static void
dkim_verify_report(struct dkim_verify *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		v->res[i] = v->one[i].out;
	v->cb(v->cb_data, v->res, v->n);
}

/* RFC 6376 3.6.2.1: the key is at s._domainkey.d.  False when that is
 * longer than sz. */
static bool
dkim_verify_key_name(const struct dkim_verify_one *o, char *name, size_t sz)
{
	return (size_t)snprintf(name, sz, "%s._domainkey.%s", o->sig.s,
	    o->sig.d) < sz;
}

/* The key (res pass) or the failure to get one decides o and every
 * signature that shares its lookup. */
static void
dkim_verify_apply(struct dkim_verify *v, struct dkim_verify_one *o,
    enum dkim_verify_res res, const struct dkim_verify_key *key,
    const char *why)
{
	struct dkim_verify_one *so;
	size_t i;

	for (i = 0; i < v->n; i++) {
		so = &v->one[i];
		if (so != o && so->key_of != o)
			continue;
		if (res == DKIM_VERIFY_PASS) {
			so->out.testing = key->testing;
			dkim_verify_check(v, so, key);
		} else {
			dkim_verify_decide(so, res, why);
		}
	}
}

static void
dkim_verify_key_cb(void *data, const struct resolver_answer *ans)
{
	struct dkim_verify_one *o = data;
	struct dkim_verify *v = o->v;
	struct dkim_verify_key key;
	const char *why = "no key";
	struct buf txt;
	char name[600];
	size_t i, j;
	uint32_t ttl = 0;
	enum dkim_verify_res res = DKIM_VERIFY_PERMERROR;

	o->pending = false;
	v->pending--;
	if (ans->rcode == RESOLVER_TIMEOUT ||
	    ans->rcode == RESOLVER_SERVFAIL) {
		/* RFC 6376 6.1.2 step 3: TEMPFAIL (key unavailable). */
		res = DKIM_VERIFY_TEMPERROR;
		why = "key lookup failed";
	} else {
		buf_init(&txt, 64 * 1024);
		/* RFC 6376 6.1.2 step 4: with several records, the first
		 * that makes a key. */
		for (i = 0; i < ans->n && res != DKIM_VERIFY_PASS; i++) {
			const struct resolver_txt *t;

			if (ans->rr[i].type != RESOLVER_TXT)
				continue;
			t = &ans->rr[i].u.txt;
			buf_reset(&txt);
			/* RFC 6376 3.6.2.2: strings joined without a
			 * separator. */
			for (j = 0; j < t->n; j++)
				if (buf_append(&txt, t->s[j], t->len[j]) < 0)
					break;
			if (j < t->n)
				continue;
			res = dkim_verify_parse_key(txt.p, txt.len, &key,
			    &why);
			ttl = ans->rr[i].ttl;
		}
		buf_fini(&txt);
	}
	if (res == DKIM_VERIFY_PASS && v->lim.keys != NULL &&
	    dkim_verify_key_name(o, name, sizeof(name)))
		dkim_keycache_put(v->lim.keys, name, &key, ttl);
	dkim_verify_apply(v, o, res, &key, why);
	if (res == DKIM_VERIFY_PASS)
		dkim_verify_key_fini(&key);
	if (v->pending == 0)
		dkim_verify_report(v);
}

int
dkim_verify_end(struct dkim_verify *v, dkim_verify_cb cb, void *data)
{
	struct dkim_verify_key key;
	char name[600];
	size_t i, j;
	int r;

	if (v->ended)
		return PR_EINVAL;
	v->ended = true;
	v->cb = cb;
	v->cb_data = data;
	if (!v->in_body && !v->failed) {
		/* No empty line: all of it is header, the body is empty. */
		if (v->head.len > 0 && v->last != '\n' &&
		    buf_puts(&v->head, "\r\n") < 0)
			v->failed = true;
		v->in_body = true;
		if (!v->failed && dkim_verify_head(v) < 0)
			v->failed = true;
	}
	v->res = calloc(v->n ? v->n : 1, sizeof(*v->res));
	if (v->res == NULL)
		return PR_ENOMEM;
	for (i = 0; i < v->nhash; i++)
		v->hash[i].done = !v->failed && dkim_body_finish(
		    v->hash[i].body, v->hash[i].sum, &v->hash[i].total) == 0;
	/* An answer never comes within a query (resolver.h), so the
	 * count of pending lookups is complete before any arrives. */
	for (i = 0; i < v->n; i++) {
		struct dkim_verify_one *o = &v->one[i];

		if (o->decided)
			continue;
		if (v->failed) {
			dkim_verify_decide(o, DKIM_VERIFY_TEMPERROR,
			    "out of memory");
			continue;
		}
		/* The same key for an earlier signature is asked once. */
		for (j = 0; j < i; j++)
			if (v->one[j].pending && strcasecmp(v->one[j].sig.s,
			    o->sig.s) == 0 && strcmp(v->one[j].sig.d,
			    o->sig.d) == 0)
				break;
		if (j < i) {
			o->key_of = &v->one[j];
			continue;
		}
		if (!dkim_verify_key_name(o, name, sizeof(name))) {
			dkim_verify_decide(o, DKIM_VERIFY_PERMERROR,
			    "bad key name");
			continue;
		}
		/* A key decoded for an earlier message, its TTL not yet
		 * over: decided now, without a lookup. */
		if (v->lim.keys != NULL &&
		    dkim_keycache_get(v->lim.keys, name, &key)) {
			dkim_verify_apply(v, o, DKIM_VERIFY_PASS, &key, NULL);
			dkim_verify_key_fini(&key);
			continue;
		}
		if ((r = resolver_query(v->r, name, RESOLVER_TXT,
		    dkim_verify_key_cb, o)) < 0) {
			dkim_verify_decide(o, DKIM_VERIFY_PERMERROR,
			    "bad key name");
			continue;
		}
		o->pending = true;
		v->pending++;
	}
	if (v->pending == 0)
		dkim_verify_report(v);
	return 0;
}
