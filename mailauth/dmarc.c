/*
 * dmarc.c - DMARC (RFC 7489 3, 6.3, 6.6).
 */
#include "dmarc.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpsl.h>
#include <sodium.h>

#include "addr_list.h"
#include "buf.h"
#include "dkim_field.h"
#include "dkim_tag.h"
#include "err.h"

/* --- The author domain ---------------------------------------------------- */

const char *
dmarc_from_name(enum dmarc_from f)
{
	switch (f) {
	case DMARC_FROM_OK:
		return "ok";
	case DMARC_FROM_NONE:
		return "no From: field";
	case DMARC_FROM_MULTIPLE:
		return "not exactly one From: address";
	case DMARC_FROM_BAD:
		break;
	}
	return "unparsable From: field";
}

enum dmarc_from
dmarc_from_domain(const uint8_t *head, size_t len, char *out, size_t outsz)
{
	struct dkim_field *f;
	char (*addrs)[ADDR_MAX] = NULL;
	char *val = NULL;
	const uint8_t *v;
	const char *dom;
	size_t nf, i, k, n, na = 0, nfrom = 0, which = 0;
	enum dmarc_from res = DMARC_FROM_BAD;
	int r;

	out[0] = '\0';
	f = calloc(DKIM_FIELD_MAX, sizeof(*f));
	addrs = calloc(DKIM_FIELD_FROM_MAX, sizeof(*addrs));
	if (f == NULL || addrs == NULL)
		goto out;
	nf = dkim_field_split(head, len, f, DKIM_FIELD_MAX);
	for (i = 0; i < nf; i++)
		if (dkim_field_is(head, &f[i], "from")) {
			if (nfrom++ == 0)
				which = i;
		}
	if (nfrom == 0) {
		res = DMARC_FROM_NONE;
		goto out;
	}
	/* RFC 5322 3.6: From: occurs exactly once. */
	if (nfrom > 1) {
		res = DMARC_FROM_MULTIPLE;
		goto out;
	}
	v = memchr(head + f[which].off, ':', f[which].len);
	n = f[which].len - (size_t)(v + 1 - head - f[which].off);
	if ((val = malloc(n + 1)) == NULL)
		goto out;
	/* Unfolded (RFC 5322 2.2.3): the CRLFs go, the WSP stays. */
	for (i = 0, k = 0; i < n; i++)
		if (v[1 + i] != '\r' && v[1 + i] != '\n')
			val[k++] = (char)v[1 + i];
	val[k] = '\0';
	r = addr_list_parse(val, k, addrs, DKIM_FIELD_FROM_MAX, &na);
	if (r == PR_ENOSPC || (r == 0 && na != 1)) {
		/* RFC 7489 6.6.1: several authors, several domains to
		 * evaluate; none is no domain at all. */
		res = DMARC_FROM_MULTIPLE;
		goto out;
	}
	if (r < 0)
		goto out;
	dom = addr_domain(addrs[0]);
	if (dom[0] == '\0' || strlen(dom) >= outsz)
		goto out;
	for (i = 0; dom[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)dom[i]);
	out[i] = '\0';
	/* A trailing dot names the same domain (RFC 1034 3.1). */
	if (i > 0 && out[i - 1] == '.')
		out[i - 1] = '\0';
	res = out[0] != '\0' ? DMARC_FROM_OK : DMARC_FROM_BAD;
out:
	if (res != DMARC_FROM_OK)
		out[0] = '\0';
	free(val);
	free(addrs);
	free(f);
	return res;
}

/* --- The organisational domain ------------------------------------------- */

static const psl_ctx_t *dmarc_psl_ctx;
static pthread_once_t dmarc_psl_once = PTHREAD_ONCE_INIT;

/* The newest list on the system (the publicsuffix package), else the
 * copy built into libpsl.  Loaded once and kept for the process. */
static void
dmarc_psl_load(void)
{
	dmarc_psl_ctx = psl_latest(NULL);
	if (dmarc_psl_ctx == NULL)
		dmarc_psl_ctx = psl_builtin();
}

int
dmarc_org_domain(const char *domain, char *out, size_t outsz)
{
	char low[256];
	const char *reg = NULL;
	size_t i, n = strlen(domain);

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(low) || n >= outsz)
		return PR_EINVAL;
	for (i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)domain[i]);
	low[n] = '\0';
	pthread_once(&dmarc_psl_once, dmarc_psl_load);
	/* RFC 7489 3.2: the public suffix and one more label.  A public
	 * suffix itself has none and stands for itself. */
	if (dmarc_psl_ctx != NULL)
		reg = psl_registrable_domain(dmarc_psl_ctx, low);
	if (reg == NULL)
		reg = low;
	memmove(out, reg, strlen(reg) + 1);
	return 0;
}

bool
dmarc_aligned(const char *a, const char *b, bool strict)
{
	char oa[256], ob[256];
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	if (la == 0 || lb == 0)
		return false;
	if (la == lb && strncasecmp(a, b, la) == 0)
		return true;
	if (strict)
		return false;
	/* RFC 7489 3.1.1 relaxed: the organisational domains match. */
	if (dmarc_org_domain(a, oa, sizeof(oa)) < 0 ||
	    dmarc_org_domain(b, ob, sizeof(ob)) < 0)
		return false;
	return strcmp(oa, ob) == 0;
}

/* --- Records --------------------------------------------------------- */

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	return p == DMARC_POLICY_REJECT ? "reject" :
	    p == DMARC_POLICY_QUARANTINE ? "quarantine" : "none";
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_PASS:
		return "pass";
	case DMARC_FAIL:
		return "fail";
	case DMARC_TEMPERROR:
		return "temperror";
	case DMARC_PERMERROR:
		return "permerror";
	case DMARC_NONE:
		break;
	}
	return "none";
}

/* RFC 7489 6.4: tag names and values are compared without case. */
static const struct dkim_tag *
dmarc_tag(const char *s, const struct dkim_tag *t, size_t n,
    const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < n; i++)
		if (t[i].name_len == len &&
		    strncasecmp(s + t[i].name_off, name, len) == 0)
			return &t[i];
	return NULL;
}

static int
dmarc_policy_word(const char *s, const struct dkim_tag *tag,
    enum dmarc_policy *p_r)
{
	if (dkim_tag_is(s, tag, "none", true))
		*p_r = DMARC_POLICY_NONE;
	else if (dkim_tag_is(s, tag, "quarantine", true))
		*p_r = DMARC_POLICY_QUARANTINE;
	else if (dkim_tag_is(s, tag, "reject", true))
		*p_r = DMARC_POLICY_REJECT;
	else
		return PR_EINVAL;
	return 0;
}

static int
dmarc_align_word(const char *s, const struct dkim_tag *tag, bool *strict_r)
{
	if (tag == NULL)
		return 0;
	if (dkim_tag_is(s, tag, "s", true))
		*strict_r = true;
	else if (!dkim_tag_is(s, tag, "r", true))
		return PR_EINVAL;
	return 0;
}

/* True when s starts with "v" [WSP] "=" [WSP] "DMARC1" and a ";" or
 * its end (RFC 7489 6.4: v= first; 6.6.3 step 4). */
static bool
dmarc_is_record(const char *s, size_t len)
{
	struct dkim_tag t[1];
	const char *semi;
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == len || (s[i] != 'v' && s[i] != 'V'))
		return false;
	/* Only the first tag-spec: the rest may be broken. */
	if ((semi = memchr(s + i, ';', len - i)) != NULL)
		len = (size_t)(semi - s);
	if (dkim_tag_parse(s, len, t, 1) != 1)
		return false;
	return t[0].name_len == 1 && dkim_tag_is(s, &t[0], "DMARC1", true);
}

int
dmarc_record_parse(const char *s, size_t len, struct dmarc_record *rec_r)
{
	struct dkim_tag t[DKIM_TAG_MAX];
	const struct dkim_tag *tag;
	struct dmarc_record rec;
	bool broken = false;
	uint64_t pct = 0;
	size_t i;
	int nt;

	if (!dmarc_is_record(s, len))
		return PR_ENOENT;
	memset(&rec, 0, sizeof(rec));
	rec.pct = 100;
	nt = dkim_tag_parse(s, len, t, DKIM_TAG_MAX);
	if (nt < 0)
		return PR_EINVAL;
	tag = dmarc_tag(s, t, (size_t)nt, "p");
	if (tag == NULL || dmarc_policy_word(s, tag, &rec.p) < 0)
		broken = true;
	rec.sp = rec.p;
	tag = dmarc_tag(s, t, (size_t)nt, "sp");
	if (tag != NULL && dmarc_policy_word(s, tag, &rec.sp) < 0)
		broken = true;
	if (dmarc_align_word(s, dmarc_tag(s, t, (size_t)nt, "adkim"),
	    &rec.strict_dkim) < 0 ||
	    dmarc_align_word(s, dmarc_tag(s, t, (size_t)nt, "aspf"),
	    &rec.strict_spf) < 0)
		return PR_EINVAL;
	tag = dmarc_tag(s, t, (size_t)nt, "pct");
	if (tag != NULL) {
		/* RFC 7489 6.3: pct= is 1*3DIGIT, 0 to 100. */
		if (tag->val_len == 0 || tag->val_len > 3)
			return PR_EINVAL;
		for (i = 0; i < tag->val_len; i++) {
			char ch = s[tag->val_off + i];

			if (ch < '0' || ch > '9')
				return PR_EINVAL;
			pct = pct * 10 + (uint64_t)(ch - '0');
		}
		if (pct > 100)
			return PR_EINVAL;
		rec.pct = (unsigned)pct;
	}
	if (broken) {
		/* RFC 7489 6.6.3 step 6: a bad p= or sp= with a rua= reads
		 * as p=none, else the record is not applied. */
		tag = dmarc_tag(s, t, (size_t)nt, "rua");
		if (tag == NULL || tag->val_len == 0)
			return PR_EINVAL;
		rec.p = rec.sp = DMARC_POLICY_NONE;
	}
	*rec_r = rec;
	return 0;
}

/* --- Evaluation ------------------------------------------------------ */

struct dmarc {
	struct resolver *r;
	dmarc_rand_fn rnd;
	void *rnd_data;
	bool started, pending, at_org;
	char org[256];
	struct dmarc_verdict v;
	/* Alignment is decided when the record is known; the inputs are
	 * reduced to what it needs. */
	bool spf_pass;
	char spf_domain[256];
	char (*dkim_pass)[256];
	size_t ndkim_pass;
	dmarc_cb cb;
	void *cb_data;
};

static unsigned
dmarc_rand_default(void *data)
{
	(void)data;
	return randombytes_uniform(100);
}

int
dmarc_new(struct resolver *r, dmarc_rand_fn rnd, void *rnd_data,
    struct dmarc **d_r)
{
	struct dmarc *d;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return PR_ENOMEM;
	d->r = r;
	d->rnd = rnd != NULL ? rnd : dmarc_rand_default;
	d->rnd_data = rnd_data;
	*d_r = d;
	return 0;
}

void
dmarc_free(struct dmarc **dp)
{
	struct dmarc *d = *dp;

	if (d == NULL)
		return;
	if (d->pending)
		resolver_cancel(d->r, d);
	free(d->dkim_pass);
	free(d);
	*dp = NULL;
}

static void dmarc_answer_cb(void *data, const struct resolver_answer *ans);

static int
dmarc_ask(struct dmarc *d, const char *domain)
{
	char name[300];
	int r;

	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >=
	    sizeof(name))
		return PR_EINVAL;
	if ((r = resolver_query(d->r, name, RESOLVER_TXT, dmarc_answer_cb,
	    d)) < 0)
		return r;
	d->pending = true;
	return 0;
}

static void
dmarc_done(struct dmarc *d, enum dmarc_result res, const char *reason)
{
	d->v.result = res;
	d->v.reason = reason;
	d->cb(d->cb_data, &d->v);
}

static void
dmarc_evaluate(struct dmarc *d, const struct dmarc_record *rec)
{
	struct dmarc_verdict *v = &d->v;
	bool sub;
	size_t i;

	v->spf_aligned = d->spf_pass && d->spf_domain[0] != '\0' &&
	    dmarc_aligned(d->spf_domain, v->from_domain, rec->strict_spf);
	for (i = 0; i < d->ndkim_pass && !v->dkim_aligned; i++)
		v->dkim_aligned = dmarc_aligned(d->dkim_pass[i],
		    v->from_domain, rec->strict_dkim);
	/* RFC 7489 6.3 sp=: for subdomains of the organisational domain,
	 * when the record found is the organisational domain's. */
	sub = d->at_org && strcmp(d->org, v->from_domain) != 0;
	v->published = sub ? rec->sp : rec->p;
	/* RFC 7489 4.2: a pass needs one aligned passing identifier. */
	if (v->spf_aligned || v->dkim_aligned) {
		dmarc_done(d, DMARC_PASS, v->dkim_aligned ?
		    "aligned DKIM pass" : "aligned SPF pass");
		return;
	}
	v->apply = v->published;
	/* RFC 7489 6.6.4: a message left out of the pct= sample gets the
	 * next policy down. */
	if (rec->pct < 100 && d->rnd(d->rnd_data) >= rec->pct) {
		v->sampled_out = true;
		if (v->apply != DMARC_POLICY_NONE)
			v->apply--;
	}
	dmarc_done(d, DMARC_FAIL, "no aligned SPF or DKIM pass");
}

static void
dmarc_answer_cb(void *data, const struct resolver_answer *ans)
{
	struct dmarc *d = data;
	struct dmarc_record rec;
	struct buf txt;
	size_t i, j, nrec = 0;
	int r = PR_ENOENT, rr;
	const char *dom = d->at_org ? d->org : d->v.from_domain;

	d->pending = false;
	if (ans->rcode == RESOLVER_TIMEOUT ||
	    ans->rcode == RESOLVER_SERVFAIL) {
		/* RFC 7489 6.6.3: a DNS error is a temporary failure. */
		dmarc_done(d, DMARC_TEMPERROR, "DMARC record lookup failed");
		return;
	}
	buf_init(&txt, 64 * 1024);
	for (i = 0; i < ans->n; i++) {
		const struct resolver_txt *t = &ans->rr[i].u.txt;

		if (ans->rr[i].type != RESOLVER_TXT)
			continue;
		buf_reset(&txt);
		for (j = 0; j < t->n; j++)
			if (buf_append(&txt, t->s[j], t->len[j]) < 0)
				break;
		if (j < t->n)
			continue;
		/* RFC 7489 6.6.3 step 4: records that do not start with
		 * v=DMARC1 are discarded. */
		rr = dmarc_record_parse((const char *)txt.p, txt.len, &rec);
		if (rr == PR_ENOENT)
			continue;
		nrec++;
		r = rr;
	}
	buf_fini(&txt);
	/* Step 5: several records, and no DMARC applies. */
	if (nrec > 1) {
		dmarc_done(d, DMARC_NONE, "several DMARC records");
		return;
	}
	if (nrec == 0 && !d->at_org && strcmp(d->org, d->v.from_domain) != 0) {
		/* Step 3: then the organisational domain's. */
		d->at_org = true;
		if (dmarc_ask(d, d->org) < 0)
			dmarc_done(d, DMARC_NONE, "no DMARC record");
		return;
	}
	if (nrec == 0) {
		dmarc_done(d, DMARC_NONE, "no DMARC record");
		return;
	}
	if (r < 0) {
		dmarc_done(d, DMARC_NONE, "invalid DMARC record");
		return;
	}
	snprintf(d->v.policy_domain, sizeof(d->v.policy_domain), "%s", dom);
	dmarc_evaluate(d, &rec);
}

/* RFC 6376 3.6.1 t=y: "Verifiers MUST NOT treat messages from Signers
 * in testing mode differently from unsigned email", so a pass with a
 * testing key aligns nothing. */
static bool
dmarc_dkim_counts(const struct dkim_verify_result *r)
{
	return r->res == DKIM_VERIFY_PASS && !r->testing;
}

int
dmarc_check(struct dmarc *d, const struct dmarc_input *in, dmarc_cb cb,
    void *data)
{
	size_t i, n;
	int r;

	if (d->started || in->from_domain == NULL ||
	    in->from_domain[0] == '\0' ||
	    strlen(in->from_domain) >= sizeof(d->v.from_domain))
		return PR_EINVAL;
	memset(&d->v, 0, sizeof(d->v));
	snprintf(d->v.from_domain, sizeof(d->v.from_domain), "%s",
	    in->from_domain);
	for (i = 0; d->v.from_domain[i] != '\0'; i++)
		d->v.from_domain[i] = (char)tolower(
		    (unsigned char)d->v.from_domain[i]);
	if ((r = dmarc_org_domain(d->v.from_domain, d->org,
	    sizeof(d->org))) < 0)
		return r;
	d->spf_pass = in->spf_pass;
	snprintf(d->spf_domain, sizeof(d->spf_domain), "%s",
	    in->spf_domain != NULL ? in->spf_domain : "");
	for (i = 0, n = 0; i < in->ndkim; i++)
		n += dmarc_dkim_counts(&in->dkim[i]);
	free(d->dkim_pass);
	d->dkim_pass = calloc(n ? n : 1, sizeof(*d->dkim_pass));
	if (d->dkim_pass == NULL)
		return PR_ENOMEM;
	/* RFC 7489 3.1.1: the d= of each passing signature is a
	 * candidate. */
	for (i = 0, d->ndkim_pass = 0; i < in->ndkim; i++)
		if (dmarc_dkim_counts(&in->dkim[i]))
			memcpy(d->dkim_pass[d->ndkim_pass++], in->dkim[i].d,
			    sizeof(in->dkim[i].d));
	d->cb = cb;
	d->cb_data = data;
	d->at_org = false;
	if ((r = dmarc_ask(d, d->v.from_domain)) < 0)
		return r;
	d->started = true;
	return 0;
}
