/*
 * test_dkim_verify.c - the DKIM verifier (mailauth/dkim_verify.c) over
 * messages signed by an independent signer, python3-dkim
 * (tests/unit/dkim_vectors.py writes them at test time), and by
 * postroom's own signer, with keys from the table resolver.  Every
 * vector is fed whole, one octet at a time, and split in two at every
 * offset for some.
 *
 *	test_dkim_verify PYTHON VECTORS.PY
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "dkim_key.h"
#include "dkim_signer.h"
#include "dkim_verify.h"
#include "err.h"
#include "resolver_table.h"
#include "tap.h"

/* --- The zone: from dkim_vectors.py, plus entries of the test's own ---- */

#define ZONE_MAX 64

static struct resolver_table_entry zone[ZONE_MAX];
static size_t nzone;

/* Adds a TXT record, split into character-strings of 200 octets as a
 * zone file would hold a long key (RFC 6376 3.6.2.2). */
static void
zone_add(const char *name, enum resolver_rcode rc, const char *data)
{
	size_t i, n = strlen(data);
	char *q;

	if (nzone == ZONE_MAX || (q = malloc(n + 3 * (n / 200 + 1) + 1)) ==
	    NULL)
		abort();
	q[0] = '\0';
	for (i = 0; i == 0 || i < n; i += 200)
		sprintf(q + strlen(q), "%s\"%.200s\"", i ? " " : "", data + i);
	zone[nzone].name = strdup(name);
	zone[nzone].type = RESOLVER_TXT;
	zone[nzone].rcode = rc;
	zone[nzone].data = rc == RESOLVER_NOERROR ? q : NULL;
	if (rc != RESOLVER_NOERROR)
		free(q);
	nzone++;
}

static bool
zone_load(const char *path)
{
	char line[8192], *name, *rc, *data;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		name = strtok(line, "\t");
		rc = strtok(NULL, "\t");
		data = strtok(NULL, "");
		if (name == NULL || rc == NULL)
			continue;
		zone_add(name, strcmp(rc, "SERVFAIL") == 0 ?
		    RESOLVER_SERVFAIL : RESOLVER_NOERROR,
		    data != NULL ? data : "");
	}
	fclose(f);
	return true;
}

static char *
slurp(const char *path, size_t *len_r)
{
	struct stat st;
	char *p;
	FILE *f = fopen(path, "rb");

	if (f == NULL || fstat(fileno(f), &st) < 0) {
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	p = malloc((size_t)st.st_size + 1);
	if (p != NULL && fread(p, 1, (size_t)st.st_size, f) !=
	    (size_t)st.st_size) {
		free(p);
		p = NULL;
	}
	fclose(f);
	if (p != NULL)
		*len_r = (size_t)st.st_size;
	return p;
}

/* --- One verification ----------------------------------------------------- */

struct outcome {
	int calls;
	char words[256];                 /* results, top first */
	struct dkim_verify_result res[DKIM_VERIFY_REPORT_MAX];
	size_t n;
};

static void
outcome_cb(void *data, const struct dkim_verify_result *res, size_t n)
{
	struct outcome *o = data;
	size_t i;

	o->calls++;
	o->n = n;
	o->words[0] = '\0';
	for (i = 0; i < n; i++) {
		o->res[i] = res[i];
		snprintf(o->words + strlen(o->words),
		    sizeof(o->words) - strlen(o->words), "%s%s",
		    i ? " " : "", dkim_verify_res_name(res[i].res));
	}
}

/* Verifies m[0..len) fed in pieces of chunk octets (0: whole), or in
 * two pieces at split when split is not 0.  Returns false if the API
 * misbehaved (cb not exactly once). */
static bool
verify(const char *m, size_t len, size_t chunk, size_t split,
    const struct dkim_verify_limits *lim, struct outcome *o)
{
	struct resolver_table *t;
	struct dkim_verify *v;
	size_t i, n;

	memset(o, 0, sizeof(*o));
	if (resolver_table_new(zone, nzone, &t) < 0 ||
	    dkim_verify_new(resolver_table_resolver(t), lim, &v) < 0)
		return false;
	if (split != 0) {
		dkim_verify_feed(v, (const uint8_t *)m, split);
		dkim_verify_feed(v, (const uint8_t *)m + split, len - split);
	} else {
		for (i = 0; i < len; i += n) {
			n = chunk == 0 || len - i < chunk ? len - i : chunk;
			if (dkim_verify_feed(v, (const uint8_t *)m + i, n) < 0)
				return false;
		}
	}
	if (dkim_verify_end(v, outcome_cb, o) < 0)
		return false;
	resolver_table_run(t);
	dkim_verify_free(&v);
	resolver_table_free(&t);
	return o->calls == 1 && v == NULL;
}

/* --- Vectors from python3-dkim ------------------------------------------ */

static const struct {
	const char *name;
	const char *want;      /* results, top signature first */
	const char *reason;    /* of the first result, or NULL */
	bool split;            /* also split at every offset */
} vectors[] = {
	{ "rsa2048-rr", "pass", NULL, true },
	{ "rsa2048-rs", "pass", NULL, false },
	{ "rsa2048-sr", "pass", NULL, false },
	{ "rsa2048-ss", "pass", NULL, true },
	{ "ed25519-rr", "pass", NULL, true },
	{ "ed25519-rs", "pass", NULL, false },
	{ "ed25519-sr", "pass", NULL, false },
	{ "ed25519-ss", "pass", NULL, false },
	{ "rsa1024-rr", "pass", NULL, false },
	{ "l-appended", "pass", NULL, true },
	{ "l-cut", "fail", "body shorter than l=", false },
	{ "l-simple-appended", "pass", NULL, false },
	{ "two", "pass pass", NULL, true },
	{ "two-one-bad", "fail pass", "signature did not verify", false },
	{ "tampered-body", "fail", "body hash mismatch", true },
	{ "tampered-header", "fail", "signature did not verify", false },
	{ "tampered-relaxed-ws", "pass", NULL, false },
	{ "tampered-simple-ws", "fail", "body hash mismatch", false },
	{ "added-from", "fail", "signature did not verify", false },
	{ "rsa-sha1", "policy", "rsa-sha1 is not accepted", false },
	{ "rsa512", "policy", "RSA key shorter than 1024 bits", false },
	{ "revoked", "permerror", "key revoked", false },
	{ "nokey", "permerror", "no key", false },
	{ "keydown", "temperror", "key lookup failed", false },
	{ "keytype", "permerror", "key type does not match a=", false },
	{ "testing", "pass", NULL, false },
	{ "strict-sub", "policy", "i= subdomain with a t=s key", false },
	{ "identity", "pass", NULL, false },
	{ "lf-lines", "pass", NULL, true },
	{ "six", "pass pass pass pass pass policy", NULL, false },
};

static void
test_vectors(const char *dir)
{
	char path[4096];
	struct outcome o, w;
	size_t i, len, k, bad;
	char *m;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s.eml", dir,
		    vectors[i].name);
		m = slurp(path, &len);
		if (!TAP_OK(m != NULL, "%s: vector written", vectors[i].name))
			continue;
		TAP_OK(verify(m, len, 0, 0, NULL, &w),
		    "%s: callback once", vectors[i].name);
		TAP_EQ_STR(w.words, vectors[i].want, "%s: whole",
		    vectors[i].name);
		if (vectors[i].reason != NULL)
			TAP_EQ_STR(w.n > 0 ? w.res[0].reason : NULL,
			    vectors[i].reason, "%s: reason",
			    vectors[i].name);
		else if (w.n > 0)
			TAP_OK(w.res[0].res != DKIM_VERIFY_PASS ||
			    w.res[0].reason == NULL, "%s: no reason",
			    vectors[i].name);
		verify(m, len, 1, 0, NULL, &o);
		TAP_EQ_STR(o.words, vectors[i].want, "%s: one octet at a time",
		    vectors[i].name);
		if (vectors[i].split) {
			for (k = 1, bad = 0; k < len; k++)
				if (!verify(m, len, 0, k, NULL, &o) ||
				    strcmp(o.words, w.words) != 0)
					bad++;
			TAP_EQ_INT(bad, 0, "%s: split at every offset",
			    vectors[i].name);
		}
		free(m);
	}
}

static void
test_vector_details(const char *dir)
{
	char path[4096];
	struct dkim_verify_limits lim = { .max_sigs = 2 };
	struct outcome o;
	size_t len;
	char *m;

	snprintf(path, sizeof(path), "%s/two.eml", dir);
	if ((m = slurp(path, &len)) != NULL) {
		verify(m, len, 0, 0, NULL, &o);
		TAP_EQ_STR(o.res[0].d, "b.test", "two: top is the Ed25519 one");
		TAP_EQ_STR(o.res[0].s, "ed", "two: s=");
		TAP_EQ_STR(o.res[0].a, "ed25519-sha256", "two: a=");
		TAP_EQ_STR(o.res[1].d, "a.test", "two: then RSA");
		TAP_EQ_INT(strlen(o.res[1].b), DKIM_VERIFY_B_PREFIX,
		    "two: header.b prefix");
		free(m);
	}
	snprintf(path, sizeof(path), "%s/testing.eml", dir);
	if ((m = slurp(path, &len)) != NULL) {
		verify(m, len, 0, 0, NULL, &o);
		TAP_OK(o.n == 1 && o.res[0].testing, "testing: t=y reported");
		free(m);
	}
	snprintf(path, sizeof(path), "%s/identity.eml", dir);
	if ((m = slurp(path, &len)) != NULL) {
		verify(m, len, 0, 0, NULL, &o);
		TAP_EQ_STR(o.res[0].i, "alice@sub.a.test", "identity: i=");
		free(m);
	}
	/* The bound: two verified, the rest policy without a lookup. */
	snprintf(path, sizeof(path), "%s/six.eml", dir);
	if ((m = slurp(path, &len)) != NULL) {
		verify(m, len, 0, 0, &lim, &o);
		TAP_EQ_STR(o.words, "pass pass policy policy policy policy",
		    "six with max_sigs 2");
		TAP_EQ_STR(o.res[5].reason, "too many signatures",
		    "six: reason past the bound");
		free(m);
	}
}

/* --- postroom's signer, verified here ------------------------------------ */

static const char msg[] =
    "From: Alice Example <alice@a.test>\r\n"
    "To: Bob <bob@b.test>\r\n"
    "Subject:   Lunch \t plans\r\n"
    "  folded continuation \r\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "\r\n"
    "Hi Bob,  \r\n"
    "\r\n"
    "  how about \t noon?\r\n\r\n";

/* Signs msg with k and returns signature + msg (malloc'd). */
static char *
own_sign(const struct dkim_key *k, enum dkim_canon h, enum dkim_canon b,
    int64_t now, size_t *len_r)
{
	struct dkim_signer *s;
	struct pr_err err;
	struct buf out;
	char *m;

	buf_init(&out, 1 << 20);
	if (dkim_signer_new(k, &s) < 0)
		return NULL;
	dkim_signer_set_canon(s, h, b);
	dkim_signer_feed(s, (const uint8_t *)msg, sizeof(msg) - 1);
	if (dkim_signer_finish(s, now, &out, &err) < 0 ||
	    buf_append(&out, msg, sizeof(msg) - 1) < 0) {
		dkim_signer_free(&s);
		buf_fini(&out);
		return NULL;
	}
	dkim_signer_free(&s);
	m = malloc(out.len + 1);
	memcpy(m, out.p, out.len);
	m[out.len] = '\0';
	*len_r = out.len;
	buf_fini(&out);
	return m;
}

static void
test_own_signer(void)
{
	static const enum dkim_canon c[] = { DKIM_CANON_SIMPLE,
	    DKIM_CANON_RELAXED };
	struct dkim_key *k;
	struct pr_err err;
	struct outcome o;
	struct buf txt;
	char name[300], *m, *p;
	size_t len, ih, ib;
	int ed;

	for (ed = 0; ed < 2; ed++) {
		if (!TAP_OK(dkim_key_generate("own.test", ed ? "e" : "r",
		    ed, &k, &err) == 0, "own key %d", ed))
			continue;
		buf_init(&txt, 8192);
		dkim_key_txt(k, &txt);
		buf_append(&txt, "", 1);
		snprintf(name, sizeof(name), "%s._domainkey.own.test",
		    ed ? "e" : "r");
		zone_add(name, RESOLVER_NOERROR, (const char *)txt.p);
		buf_fini(&txt);
		for (ih = 0; ih < 2; ih++)
			for (ib = 0; ib < 2; ib++) {
				m = own_sign(k, c[ih], c[ib], 1700000000, &len);
				if (m == NULL)
					continue;
				verify(m, len, 0, 0, NULL, &o);
				TAP_EQ_STR(o.words, "pass",
				    "own signer %s %s/%s verifies",
				    ed ? "ed25519" : "rsa",
				    dkim_canon_name(c[ih]),
				    dkim_canon_name(c[ib]));
				verify(m, len, 3, 0, NULL, &o);
				TAP_EQ_STR(o.words, "pass",
				    "own signer %s %s/%s in 3-octet pieces",
				    ed ? "ed25519" : "rsa",
				    dkim_canon_name(c[ih]),
				    dkim_canon_name(c[ib]));
				if ((p = strstr(m, "noon")) != NULL)
					p[0] = 'N';
				verify(m, len, 0, 0, NULL, &o);
				TAP_EQ_STR(o.words, "fail",
				    "own signer %s %s/%s: changed body",
				    ed ? "ed25519" : "rsa",
				    dkim_canon_name(c[ih]),
				    dkim_canon_name(c[ib]));
				free(m);
			}
		/* x=: expired is policy; an x= added later breaks the
		 * signature once it is not expired. */
		m = own_sign(k, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, 50,
		    &len);
		if (m != NULL) {
			struct dkim_verify_limits lim = { .now = 200 };
			char *x = malloc(len + 16);

			p = strstr(m, "v=1; ");
			memcpy(x, m, (size_t)(p - m) + 5);
			strcpy(x + (p - m) + 5, "x=100; ");
			strcpy(x + (p - m) + 12, p + 5);
			verify(x, len + 7, 0, 0, &lim, &o);
			TAP_EQ_STR(o.words, "policy", "x= in the past: policy");
			TAP_EQ_STR(o.res[0].reason, "signature expired",
			    "x= reason");
			lim.now = 60;
			verify(x, len + 7, 0, 0, &lim, &o);
			TAP_EQ_STR(o.words, "fail",
			    "x= in the future: checked");
			lim.now = 0;
			verify(x, len + 7, 0, 0, &lim, &o);
			TAP_EQ_STR(o.words, "fail", "no clock: x= not checked");
			free(x);
			free(m);
		}
		dkim_key_free(&k);
	}
}

/* --- Parsers ---------------------------------------------------------- */

#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; "

static void
test_parse_sig(void)
{
	static const struct {
		const char *f;
		enum dkim_verify_res want;
		const char *why;
	} c[] = {
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    BH "b=AAAA", DKIM_VERIFY_PASS, NULL },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x;\r\n"
		    "\th=From : To; " BH "b=AA\r\n\tAA;",
		    DKIM_VERIFY_PASS, NULL },
		{ "DKIM-Signature: v=2; a=rsa-sha256; d=a.test; s=x; h=from; "
		    BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "missing or unknown v=" },
		{ "DKIM-Signature: a=rsa-sha256; d=a.test; s=x; h=from; "
		    BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "missing or unknown v=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=to; "
		    BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "From not signed" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "i=u@b.test; " BH "b=AAAA", DKIM_VERIFY_NEUTRAL,
		    "i= not within d=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "i=u@xa.test; " BH "b=AAAA", DKIM_VERIFY_NEUTRAL,
		    "i= not within d=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "i=u@Sub.A.test; " BH "b=AAAA", DKIM_VERIFY_PASS, NULL },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    BH "b=AAAA; d=b.test", DKIM_VERIFY_NEUTRAL,
		    "signature syntax" },
		{ "DKIM-Signature: v=1; a=rsa-md5; d=a.test; s=x; h=from; "
		    BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "unknown a=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "c=fancy; " BH "b=AAAA", DKIM_VERIFY_NEUTRAL,
		    "unknown c=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    BH "b=A!AA", DKIM_VERIFY_NEUTRAL, "bad b=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "bh=AAAA; b=AAAA", DKIM_VERIFY_NEUTRAL,
		    "bad bh= length" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "l=12x; " BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "bad l=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "t=100; x=100; " BH "b=AAAA", DKIM_VERIFY_NEUTRAL,
		    "x= not after t=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; h=from; "
		    "q=http; " BH "b=AAAA", DKIM_VERIFY_NEUTRAL,
		    "unknown q=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; s=x; h=from; "
		    BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "missing d=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; h=from; "
		    BH "b=AAAA", DKIM_VERIFY_NEUTRAL, "missing s=" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; "
		    "h=from; " BH, DKIM_VERIFY_NEUTRAL, "missing b=" },
		{ "DKIM-Signature: v=1; =x", DKIM_VERIFY_NEUTRAL,
		    "signature syntax" },
		{ "DKIM-Signature", DKIM_VERIFY_NEUTRAL, "no value" },
	};
	struct dkim_verify_sig sig;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		enum dkim_verify_res r = dkim_verify_parse_sig(
		    (const uint8_t *)c[i].f, strlen(c[i].f), &sig, &why);

		TAP_EQ_STR(dkim_verify_res_name(r),
		    dkim_verify_res_name(c[i].want), "sig %zu: result", i);
		if (c[i].why != NULL)
			TAP_EQ_STR(why, c[i].why, "sig %zu: reason", i);
	}
	dkim_verify_parse_sig((const uint8_t *)c[1].f, strlen(c[1].f), &sig,
	    &why);
	TAP_EQ_STR(sig.h, "From:To", "h= with FWS removed");
	TAP_EQ_INT(sig.b_len, 3, "b= across a fold");
	TAP_EQ_INT(sig.hcanon, DKIM_CANON_SIMPLE, "no c=: simple");
	TAP_OK(memcmp((const char *)c[1].f + sig.b_raw_off, "AA\r\n\tAA",
	    7) == 0 && sig.b_raw_end == strlen(c[1].f) - 1,
	    "b= value located for emptying");
}

static void
test_parse_key(void)
{
	/* A 1024-bit RSA SubjectPublicKeyInfo and an Ed25519 key. */
	static const char rsa[] =
	    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1M6rcvhY3bZ7pDS1IDNQVBqfL"
	    "Rr+nZ7xcR97nFfw8HnY8dCsUjKb8K636FMfHe32rh3DXZP0zIuSDx6YHx5NhL0AD"
	    "uPm+uN8fBWNqN5Gdlz3/gXbrxPHnqNRLK/oqDrei2B26/bpIAoZeM3ony/gATpyR"
	    "pJxje8MFvb0C3oymbwIDAQAB";
	static const char ed[] = "wJe8gDG7MB/ZYlKyshhCW/caG5/8S+2uWP/P1pGD3L8=";
	static const struct {
		const char *pre, *post;
		const char *key;
		enum dkim_verify_res want;
		const char *why;
	} c[] = {
		{ "v=DKIM1; k=rsa; p=", "", rsa, DKIM_VERIFY_PASS, NULL },
		{ "p=", "", rsa, DKIM_VERIFY_PASS, NULL },
		{ "v=DKIM1; h=sha1:sha256; s=email; t=y:s; p=", "; n=x", rsa,
		    DKIM_VERIFY_PASS, NULL },
		{ "v=DKIM1; k=ed25519; p=", "", ed, DKIM_VERIFY_PASS, NULL },
		{ "k=rsa; v=DKIM1; p=", "", rsa, DKIM_VERIFY_PERMERROR,
		    "key record v= is not DKIM1" },
		{ "v=DKIM2; p=", "", rsa, DKIM_VERIFY_PERMERROR,
		    "key record v= is not DKIM1" },
		{ "v=DKIM1; k=dsa; p=", "", rsa, DKIM_VERIFY_PERMERROR,
		    "unknown key type" },
		{ "v=DKIM1; h=sha1; p=", "", rsa, DKIM_VERIFY_PERMERROR,
		    "key not for sha256" },
		{ "v=DKIM1; s=other; p=", "", rsa, DKIM_VERIFY_PERMERROR,
		    "key not for email" },
		{ "v=DKIM1; s=*; p=", "", rsa, DKIM_VERIFY_PASS, NULL },
		{ "v=DKIM1; p=", "", "", DKIM_VERIFY_PERMERROR,
		    "key revoked" },
		{ "v=DKIM1; k=rsa", "", "", DKIM_VERIFY_PERMERROR,
		    "key record without p=" },
		{ "v=DKIM1; k=ed25519; p=", "", rsa, DKIM_VERIFY_PERMERROR,
		    "bad Ed25519 key" },
		{ "v=DKIM1; k=rsa; p=", "", ed, DKIM_VERIFY_PERMERROR,
		    "bad public key" },
		{ "v=DKIM1; p=", "", "!!!!", DKIM_VERIFY_PERMERROR,
		    "bad p=" },
	};
	struct dkim_verify_key k;
	const char *why;
	char rec[1024];
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		enum dkim_verify_res r;

		snprintf(rec, sizeof(rec), "%s%s%s", c[i].pre, c[i].key,
		    c[i].post);
		r = dkim_verify_parse_key((const uint8_t *)rec, strlen(rec),
		    &k, &why);
		TAP_EQ_STR(dkim_verify_res_name(r),
		    dkim_verify_res_name(c[i].want), "key %zu: result", i);
		if (c[i].why != NULL)
			TAP_EQ_STR(why, c[i].why, "key %zu: reason", i);
		if (r == DKIM_VERIFY_PASS) {
			if (i == 2)
				TAP_OK(k.testing && k.strict, "t=y:s flags");
			if (i == 0)
				TAP_EQ_INT(k.bits, 1024, "RSA key size");
			dkim_verify_key_fini(&k);
		}
	}
}

/* --- The API -------------------------------------------------------------- */

static void
test_api(void)
{
	static const char unsigned_msg[] = "From: a@a.test\r\n\r\nhi\r\n";
	struct dkim_verify_limits lim = { .head_max = 64 };
	struct resolver_table *t;
	struct dkim_verify *v;
	struct outcome o;
	char big[512];
	size_t asked, i;

	memset(&o, 0, sizeof(o));
	resolver_table_new(zone, nzone, &t);
	dkim_verify_new(resolver_table_resolver(t), NULL, &v);
	dkim_verify_feed(v, (const uint8_t *)unsigned_msg,
	    sizeof(unsigned_msg) - 1);
	TAP_EQ_INT(dkim_verify_end(v, outcome_cb, &o), 0, "end, unsigned");
	TAP_EQ_INT(o.calls, 1, "unsigned: callback within end()");
	TAP_EQ_INT(o.n, 0, "unsigned: no results");
	TAP_EQ_INT(dkim_verify_end(v, outcome_cb, &o), PR_EINVAL,
	    "end twice");
	TAP_EQ_INT(dkim_verify_feed(v, (const uint8_t *)"x", 1), PR_EINVAL,
	    "feed after end");
	TAP_EQ_INT(o.calls, 1, "no second callback");
	dkim_verify_free(&v);
	TAP_OK(v == NULL, "free sets NULL");
	dkim_verify_free(&v);

	/* Freed with a lookup in flight: no callback, nothing leaks. */
	snprintf(big, sizeof(big), "DKIM-Signature: v=1; a=rsa-sha256; "
	    "d=own.test; s=r; h=from; " BH "b=AAAA\r\n%s", unsigned_msg);
	memset(&o, 0, sizeof(o));
	dkim_verify_new(resolver_table_resolver(t), NULL, &v);
	dkim_verify_feed(v, (const uint8_t *)big, strlen(big));
	asked = resolver_table_asked(t);
	TAP_EQ_INT(dkim_verify_end(v, outcome_cb, &o), 0, "end, signed");
	TAP_EQ_INT(o.calls, 0, "signed: callback waits for the key");
	TAP_EQ_INT(resolver_table_asked(t), asked + 1, "one key query");
	dkim_verify_free(&v);
	resolver_table_run(t);
	TAP_EQ_INT(o.calls, 0, "freed: the callback never runs");

	/* Two signatures naming one key (s= and d= without case): one
	 * query and one key for both. */
	snprintf(big, sizeof(big), "DKIM-Signature: v=1; a=rsa-sha256; "
	    "d=own.test; s=r; h=from; " BH "b=AAAA\r\n"
	    "DKIM-Signature: v=1; a=rsa-sha256; "
	    "d=OWN.test; s=R; h=from; " BH "b=AAAB\r\n%s", unsigned_msg);
	memset(&o, 0, sizeof(o));
	dkim_verify_new(resolver_table_resolver(t), NULL, &v);
	dkim_verify_feed(v, (const uint8_t *)big, strlen(big));
	asked = resolver_table_asked(t);
	dkim_verify_end(v, outcome_cb, &o);
	TAP_EQ_INT(resolver_table_asked(t), asked + 1,
	    "one key, two signatures: one query");
	resolver_table_run(t);
	TAP_EQ_INT(o.calls, 1, "one key, two signatures: one callback");
	TAP_EQ_STR(o.words, "fail fail", "one key, two signatures: both");
	dkim_verify_free(&v);

	/* A header section over head_max. */
	snprintf(big, sizeof(big), "DKIM-Signature: v=1; a=rsa-sha256; "
	    "d=own.test; s=r; h=from; " BH "b=AAAA\r\n%s", unsigned_msg);
	verify(big, strlen(big), 0, 0, &lim, &o);
	TAP_EQ_STR(o.words, "permerror", "header over head_max");
	TAP_EQ_STR(o.res[0].reason, "header section too large",
	    "header over head_max: reason");
	lim.head_max = strlen(big);
	verify(big, strlen(big), 0, 0, &lim, &o);
	TAP_EQ_STR(o.words, "fail", "header within head_max");
	/* At the bound: a header section (its empty line included) of
	 * head_max - 1 octets is kept, one of head_max is not; whole,
	 * trickled and in chunks of 7. */
	for (i = 0; i < 3; i++) {
		static const size_t chunk[] = { 0, 1, 7 };

		lim.head_max = strlen(big) - strlen("hi\r\n") + 1;
		verify(big, strlen(big), chunk[i], 0, &lim, &o);
		TAP_EQ_STR(o.words, "fail", "header at head_max - 1");
		lim.head_max--;
		verify(big, strlen(big), chunk[i], 0, &lim, &o);
		TAP_EQ_STR(o.words, "permerror", "header at head_max");
	}

	/* No empty line: all header, an empty body. */
	verify("From: a@a.test\r\n", 16, 0, 0, NULL, &o);
	TAP_EQ_INT(o.n, 0, "header only, unsigned");
	verify("\r\nbody\r\n", 8, 0, 0, NULL, &o);
	TAP_EQ_INT(o.n, 0, "no header fields");
	resolver_table_free(&t);
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/postroom-dkimv-XXXXXX", cmd[8192], path[4096];

	if (argc < 3) {
		fprintf(stderr, "usage: %s PYTHON VECTORS.PY\n", argv[0]);
		return 2;
	}
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", argv[1], argv[2], dir);
	TAP_EQ_INT(system(cmd), 0, "python3-dkim wrote the vectors");
	snprintf(path, sizeof(path), "%s/zone.txt", dir);
	TAP_OK(zone_load(path), "zone loaded");
	test_vectors(dir);
	test_vector_details(dir);
	test_own_signer();
	test_parse_sig();
	test_parse_key();
	test_api();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return tap_done();
}
