/*
 * test_dkim.c - DKIM keys and signatures, checked by an independent
 * verifier written here with OpenSSL: its own (non-streaming) relaxed
 * canonicalisation, the public key taken from the TXT record text, and
 * EVP_DigestVerify.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "err.h"
#include "dkim_field.h"
#include "dkim_key.h"
#include "dkim_keyfile.h"
#include "dkim_signer.h"
#include "tap.h"

static const char msg[] =
    "Received: from client by mx.a.test\r\n"
    "From: Alice Example <alice@a.test>\r\n"
    "To: Bob <bob@b.test>\r\n"
    "Subject:   Lunch \t plans\r\n"
    "  folded continuation \r\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <1@a.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hi Bob,  \r\n"
    "\r\n"
    "  how about \t noon?\r\n"
    ".leading dot\r\n"
    "caf\xc3\xa9\r\n"
    "\r\n"
    "\r\n";

/* --- An independent verifier ----------------------------------------- */

static size_t
b64dec(const char *in, unsigned char *out, size_t outsz)
{
	char clean[8192];
	size_t n = 0, i;
	int len;

	for (i = 0; in[i] != '\0' && n + 1 < sizeof(clean); i++)
		if (!isspace((unsigned char)in[i]))
			clean[n++] = in[i];
	clean[n] = '\0';
	if (n / 4 * 3 > outsz)
		return 0;
	len = EVP_DecodeBlock(out, (unsigned char *)clean, (int)n);
	if (len < 0)
		return 0;
	while (n > 0 && clean[n - 1] == '=') {
		len--;
		n--;
	}
	return (size_t)len;
}

/* Relaxed body (RFC 6376 3.4.4), the simple way: line by line. */
static void
canon_body(const char *b, size_t len, struct buf *out)
{
	size_t i = 0, e, j, keep = 0;
	bool wsp;

	while (i < len) {
		e = i;
		while (e < len && !(b[e] == '\r' && e + 1 < len &&
		    b[e + 1] == '\n'))
			e++;
		wsp = false;
		for (j = i; j < e; j++) {
			if (b[j] == ' ' || b[j] == '\t') {
				wsp = true;
				continue;
			}
			if (wsp)
				buf_append(out, " ", 1);
			wsp = false;
			buf_append(out, &b[j], 1);
		}
		buf_append(out, "\r\n", 2);
		i = e + 2;
	}
	/* Drop trailing empty lines; an all-empty body is "". */
	while (out->len >= 2 && out->p[out->len - 1] == '\n' &&
	    (out->len == 2 || out->p[out->len - 3] == '\n'))
		out->len -= 2;
	(void)keep;
}

static void
canon_field(const char *f, size_t len, struct buf *out)
{
	size_t i, colon = 0, start;
	char tmp[8192];
	size_t n = 0;

	while (colon < len && f[colon] != ':')
		colon++;
	for (i = 0; i < colon; i++)
		if (f[i] != ' ' && f[i] != '\t')
			tmp[n++] = (char)tolower((unsigned char)f[i]);
	tmp[n++] = ':';
	start = n;
	for (i = colon + 1; i < len; i++) {
		char ch = f[i];

		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == '\t')
			ch = ' ';
		if (ch == ' ' && (n == start || tmp[n - 1] == ' '))
			continue;
		tmp[n++] = ch;
	}
	while (tmp[n - 1] == ' ')
		n--;
	buf_append(out, tmp, n);
	buf_append(out, "\r\n", 2);
}

struct field {
	const char *p;
	size_t len, name_len;
	bool used;
};

static size_t
split_fields(const char *m, size_t hlen, struct field *f, size_t max)
{
	size_t i = 0, n = 0, e;

	while (i < hlen && n < max) {
		e = i;
		for (;;) {
			while (e < hlen && m[e] != '\n')
				e++;
			if (e + 1 < hlen && (m[e + 1] == ' ' ||
			    m[e + 1] == '\t')) {
				e++;
				continue;
			}
			break;
		}
		f[n].p = m + i;
		f[n].len = e - i - 1; /* without CRLF */
		f[n].name_len = strcspn(f[n].p, ": \t");
		f[n].used = false;
		n++;
		i = e + 1;
	}
	return n;
}

static bool
tag(const char *sig, const char *name, char *out, size_t outsz)
{
	const char *p = sig;
	size_t nl = strlen(name), n, o;

	while ((p = strstr(p, name)) != NULL) {
		const char *q = p + nl;

		if ((p == sig || p[-1] == ' ' || p[-1] == ';' ||
		    p[-1] == '\t') && *q == '=') {
			q++;
			n = strcspn(q, ";");
			for (o = 0; n-- > 0 && o + 1 < outsz; q++)
				if (!isspace((unsigned char)*q))
					out[o++] = *q;
			out[o] = '\0';
			return true;
		}
		p = q;
	}
	return false;
}

/* Verifies the first DKIM-Signature of m with the TXT record txt.
 * Returns 0 when valid, 1 for a body hash mismatch, 2 for a bad
 * signature, -1 when the signature is unusable. */
static int
verify(const char *m, size_t mlen, const char *txt)
{
	struct field f[64];
	size_t hlen, nf, i, j, siglen, keylen;
	const char *end = strstr(m, "\r\n\r\n");
	char sigtext[8192], a[64], bh[128], h[2048], b[2048], p[2048];
	unsigned char bhraw[64], sig[1024], key[1024], dig[64];
	struct buf body, data;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *ctx;
	int rc = -1, ok;

	if (end == NULL)
		return -1;
	hlen = (size_t)(end - m) + 2;
	nf = split_fields(m, hlen, f, 64);
	for (i = 0; i < nf; i++)
		if (f[i].name_len == 14 &&
		    strncasecmp(f[i].p, "DKIM-Signature", 14) == 0)
			break;
	if (i == nf)
		return -1;
	snprintf(sigtext, sizeof(sigtext), "%.*s", (int)f[i].len, f[i].p);
	if (!tag(sigtext, "a", a, sizeof(a)) ||
	    !tag(sigtext, "bh", bh, sizeof(bh)) ||
	    !tag(sigtext, "h", h, sizeof(h)) ||
	    !tag(sigtext, "b", b, sizeof(b)) ||
	    !tag(txt, "p", p, sizeof(p)))
		return -1;
	f[i].used = true;

	buf_init(&body, 1 << 20);
	canon_body(end + 4, mlen - hlen - 2, &body);
	EVP_Digest(body.p, body.len, bhraw, NULL, EVP_sha256(), NULL);
	buf_fini(&body);
	if (b64dec(bh, dig, sizeof(dig)) != 32 || memcmp(dig, bhraw, 32))
		return 1;

	/* Header data: each h= name takes the next unused instance from
	 * the bottom. */
	buf_init(&data, 1 << 20);
	for (char *name = strtok(h, ":"); name != NULL;
	    name = strtok(NULL, ":")) {
		for (j = nf; j-- > 0;) {
			if (f[j].used || f[j].name_len != strlen(name) ||
			    strncasecmp(f[j].p, name, f[j].name_len) != 0)
				continue;
			f[j].used = true;
			canon_field(f[j].p, f[j].len, &data);
			break;
		}
	}
	/* The signature field with the b= value removed, no final CRLF. */
	{
		char stripped[8192];
		char *bp = strstr(sigtext, "b=");

		while (bp != NULL && bp > sigtext && bp[-1] != ' ' &&
		    bp[-1] != '\t' && bp[-1] != ';')
			bp = strstr(bp + 1, "b=");
		if (bp == NULL)
			return -1;
		snprintf(stripped, sizeof(stripped), "%.*s",
		    (int)(bp + 2 - sigtext), sigtext);
		strcat(stripped, bp + 2 + strcspn(bp + 2, ";"));
		canon_field(stripped, strlen(stripped), &data);
		data.len -= 2;
	}
	siglen = b64dec(b, sig, sizeof(sig));
	keylen = b64dec(p, key, sizeof(key));
	ctx = EVP_MD_CTX_new();
	if (strcmp(a, "rsa-sha256") == 0) {
		const unsigned char *kp = key;

		pk = d2i_PUBKEY(NULL, &kp, (long)keylen);
		ok = pk != NULL && EVP_DigestVerifyInit(ctx, NULL,
		    EVP_sha256(), NULL, pk) == 1 &&
		    EVP_DigestVerify(ctx, sig, siglen, data.p, data.len) == 1;
	} else {
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key,
		    keylen);
		EVP_Digest(data.p, data.len, dig, NULL, EVP_sha256(), NULL);
		ok = pk != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL,
		    pk) == 1 &&
		    EVP_DigestVerify(ctx, sig, siglen, dig, 32) == 1;
	}
	rc = ok ? 0 : 2;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	buf_fini(&data);
	return rc;
}

/* --- Tests ------------------------------------------------------------ */

/* Signs m in chunks of chunk octets; returns the signed message. */
static int
sign(const struct dkim_key *k, const char *m, size_t len,
    size_t chunk, struct buf *signed_r)
{
	struct dkim_signer *s;
	struct pr_err err;
	size_t i, n;
	int r;

	if (dkim_signer_new(k, &s) < 0)
		return -1;
	for (i = 0; i < len; i += n) {
		n = len - i < chunk ? len - i : chunk;
		dkim_signer_feed(s, (const uint8_t *)m + i, n);
	}
	r = dkim_signer_finish(s, 1700000000, signed_r, &err);
	dkim_signer_free(&s);
	if (r < 0) {
		printf("# sign: %s\n", err.msg);
		return r;
	}
	buf_append(signed_r, m, len);
	buf_append(signed_r, "", 1);
	signed_r->len--;
	return 0;
}

static void
test_key(const char *dir, bool ed25519)
{
	const char *alg = ed25519 ? "ed25519" : "rsa";
	const char *domain = ed25519 ? "ed.test" : "a.test";
	struct dkim_key *k = NULL, *k2 = NULL;
	struct buf txt, sm, first, tam;
	struct pr_err err;
	char path[512];
	struct stat st;
	size_t chunk;
	bool same = true, all_ok = true;
	char *subj;

	TAP_EQ_INT(dkim_keyfile_create(dir, domain, "sel1", ed25519, (gid_t)-1,
	    &k, &err), 0, "%s: keygen", alg);
	if (k == NULL) {
		printf("# %s\n", err.msg);
		return;
	}
	snprintf(path, sizeof(path), "%s/dkim/%s/sel1.key", dir, domain);
	TAP_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	    "%s: key file is 0600", alg);
	TAP_EQ_INT(dkim_keyfile_create(dir, domain, "sel1", ed25519, (gid_t)-1,
	    &k2, &err), PR_EEXIST, "%s: same selector refused", alg);
	/* A new key is pending: it signs only once activated. */
	TAP_EQ_INT(dkim_keyfile_load(dir, domain, &k2, &err), PR_ENOENT,
	    "%s: a new key is pending, not active", alg);
	TAP_EQ_INT(dkim_keyfile_set_state(dir, domain, "sel1",
	    DKIM_KEYFILE_ACTIVE, (gid_t)-1, &err), 0, "%s: activate", alg);
	TAP_EQ_INT(dkim_keyfile_load(dir, domain, &k2, &err), 0,
	    "%s: load the active key", alg);
	TAP_EQ_STR(k2 ? dkim_key_selector(k2) : "", "sel1",
	    "%s: active selector", alg);
	dkim_key_free(&k2);

	buf_init(&txt, 8192);
	dkim_key_txt(k, &txt);
	buf_append(&txt, "", 1);
	TAP_OK(strncmp((char *)txt.p, ed25519 ? "v=DKIM1; k=ed25519; p=" :
	    "v=DKIM1; k=rsa; p=", ed25519 ? 22 : 18) == 0, "%s: TXT record",
	    alg);

	/* Any chunking gives the same signature (RSA PKCS#1 v1.5 and
	 * Ed25519 are deterministic) and it verifies. */
	buf_init(&first, 1 << 20);
	sign(k, msg, sizeof(msg) - 1, 1 << 20, &first);
	for (chunk = 1; chunk < 80; chunk++) {
		buf_init(&sm, 1 << 20);
		sign(k, msg, sizeof(msg) - 1, chunk, &sm);
		if (sm.len != first.len || memcmp(sm.p, first.p, sm.len))
			same = false;
		buf_fini(&sm);
	}
	TAP_OK(same, "%s: signature independent of chunking", alg);
	TAP_EQ_INT(verify((char *)first.p, first.len, (char *)txt.p), 0,
	    "%s: signature verifies", alg);
	TAP_OK(strstr((char *)first.p, "c=relaxed/relaxed") != NULL,
	    "%s: relaxed/relaxed", alg);
	TAP_OK(strstr((char *)first.p, "d=" ) != NULL &&
	    strstr((char *)first.p, "s=sel1;") != NULL, "%s: d= and s=", alg);

	/* Tampering: body, then a signed header. */
	buf_init(&tam, 1 << 20);
	buf_append(&tam, first.p, first.len + 1);
	tam.len--;
	memcpy(strstr((char *)tam.p, "noon"), "nine", 4);
	TAP_EQ_INT(verify((char *)tam.p, tam.len, (char *)txt.p), 1,
	    "%s: changed body detected", alg);
	memcpy(strstr((char *)tam.p, "nine"), "noon", 4);
	subj = strstr((char *)tam.p, "Lunch");
	subj[0] = 'l';
	TAP_EQ_INT(verify((char *)tam.p, tam.len, (char *)txt.p), 2,
	    "%s: changed Subject detected", alg);
	subj[0] = 'L';
	/* Whitespace changes are what relaxed canonicalisation forgives. */
	memcpy(strstr((char *)tam.p, "Hi Bob,  "), "Hi Bob,\t ", 9);
	TAP_EQ_INT(verify((char *)tam.p, tam.len, (char *)txt.p), 0,
	    "%s: whitespace change still verifies (relaxed)", alg);
	buf_fini(&tam);

	/* Header only, and empty body. */
	{
		static const char *const odd[] = {
			"From: a@a.test\r\nSubject: x\r\n\r\n",
			"From: a@a.test\r\nSubject: x\r\n\r\n\r\n\r\n",
			"From: a@a.test\r\n\r\nno final crlf",
			"From: a@a.test\r\nTo: b@b.test\r\nTo: c@c.test\r\n"
			    "\r\n \t \r\nx \r\n",
		};
		for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
			buf_init(&sm, 1 << 20);
			sign(k, odd[i], strlen(odd[i]), 3, &sm);
			if (verify((char *)sm.p, sm.len, (char *)txt.p) != 0)
				all_ok = false;
			buf_fini(&sm);
		}
		TAP_OK(all_ok, "%s: edge-case messages verify", alg);
	}
	buf_fini(&first);
	buf_fini(&txt);
	dkim_key_free(&k);
}

static void
test_from_domain(void)
{
	static const struct {
		const char *head, *want;
	} cases[] = {
		{ "From: Alice <Alice@A.Test>\r\n\r\n", "a.test" },
		{ "Subject: x\r\nfrom: bob@b.test\r\n\r\n", "b.test" },
		{ "From:\r\n \"A, B\" <x@c.test>\r\n\r\n", "c.test" },
		{ "From: \"q@fake.test\" <r@real.test>\r\n\r\n", "real.test" },
		{ "From: bare@d.test (Comment)\r\n\r\n", "d.test" },
		{ "To: x@y.test\r\n\r\n", NULL },
		{ "From: nobody\r\n\r\n", NULL },
		/* RFC 5322 3.4: a "<" or "@" inside a quoted display name
		 * or a comment names no domain. */
		{ "From: \"ceo@b.test <ceo@b.test>\" <alice@a.test>\r\n\r\n",
		    "a.test" },
		{ "From: (ceo@b.test <x@b.test>) alice@a.test\r\n\r\n",
		    "a.test" },
		{ "From: alice@a.test (Boss <ceo@b.test>)\r\n\r\n", "a.test" },
		{ "From: Alice (the <boss>) <alice@A.test>\r\n\r\n", "a.test" },
		{ "From: \"a\\\"<x@b.test>\" <alice@a.test>\r\n\r\n",
		    "a.test" },
		{ "From: Team: alice@a.test, bob@a.test;\r\n\r\n", "a.test" },
		/* Several authors in different domains: none to sign for. */
		{ "From: alice@a.test, ceo@b.test\r\n\r\n", NULL },
		{ "From: \"unterminated <ceo@b.test>\r\n\r\n", NULL },
		/* A line without a colon is no field, even when it starts
		 * with "From" (found by fuzz_dkim_sign). */
		{ "From junk\r\nFrom: c@e.test\r\n\r\n", "e.test" },
		{ "From junk <x@f.test>\r\n\r\n", NULL },
		{ ": x@g.test\r\n\r\n", NULL },
	};
	char out[256];
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = dkim_field_from_domain((const uint8_t *)cases[i].head,
		    strlen(cases[i].head), out, sizeof(out));
		if (cases[i].want == NULL)
			TAP_EQ_INT(r, PR_ENOENT, "from domain %zu: none", i);
		else
			TAP_EQ_STR(r == 0 ? out : "(none)", cases[i].want,
			    "from domain %zu", i);
	}
	TAP_OK(dkim_key_name_ok("a-b_c.test", 253), "name ok");
	TAP_OK(!dkim_key_name_ok("../etc", 253), "path traversal refused");
	TAP_OK(!dkim_key_name_ok("a/b", 253), "slash refused");
	TAP_OK(!dkim_key_name_ok("", 253), "empty refused");
}

static void
test_signer_misuse(void)
{
	static const char m[] = "From: a@a.test\r\n\r\nx\r\n";
	struct dkim_signer *s = NULL;
	struct dkim_key *k = NULL;
	struct pr_err err;
	struct buf out;

	TAP_EQ_INT(dkim_key_generate("A.Test", "s1", true, &k, &err), 0,
	    "generate in memory");
	if (k == NULL)
		return;
	TAP_EQ_STR(dkim_key_domain(k), "a.test", "domain lower-cased");
	TAP_EQ_INT(dkim_signer_new(k, &s), 0, "signer");
	TAP_EQ_INT(dkim_signer_set_canon(s, DKIM_CANON_SIMPLE,
	    DKIM_CANON_SIMPLE), 0, "canon before feeding");
	dkim_signer_feed(s, (const uint8_t *)m, sizeof(m) - 1);
	TAP_EQ_INT(dkim_signer_set_canon(s, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED), PR_EINVAL, "canon after feeding refused");
	buf_init(&out, 1 << 16);
	TAP_EQ_INT(dkim_signer_finish(s, 1, &out, &err), 0, "finish");
	buf_append(&out, "", 1);
	TAP_OK(strstr((char *)out.p, "c=simple/simple;") != NULL,
	    "c=simple/simple");
	out.len = 0;
	TAP_EQ_INT(dkim_signer_finish(s, 1, &out, &err), PR_EINVAL,
	    "second finish refused");
	TAP_EQ_INT(out.len, 0, "second finish writes nothing");
	buf_fini(&out);
	dkim_signer_free(&s);
	TAP_OK(s == NULL, "signer free sets NULL");
	dkim_key_free(&k);
	TAP_OK(k == NULL, "key free sets NULL");
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

/* Key states: pending, active, retired; several active keys; a key
 * directory of an older version ("selector" file, no state files). */
static void
test_states(const char *dir)
{
	struct dkim_keyfile_info info[DKIM_KEYFILE_MAX];
	struct dkim_key *k = NULL, *keys[4];
	char path[512], names[4][256];
	struct pr_err err;
	struct buf txt;
	int n, i;

	TAP_EQ_INT(dkim_keyfile_list(dir, "none.test", info, DKIM_KEYFILE_MAX,
	    &err), 0, "states: no key directory, no keys");
	TAP_EQ_INT(dkim_keyfile_create(dir, "s.test", "rsa1", false,
	    (gid_t)-1, &k, &err), 0, "states: RSA key");
	dkim_key_free(&k);
	TAP_EQ_INT(dkim_keyfile_create(dir, "s.test", "ed1", true,
	    (gid_t)-1, &k, &err), 0, "states: Ed25519 key");
	n = dkim_keyfile_list(dir, "s.test", info, DKIM_KEYFILE_MAX, &err);
	TAP_EQ_INT(n, 2, "states: two keys listed");
	TAP_OK(n == 2 && info[0].state == DKIM_KEYFILE_PENDING &&
	    info[1].state == DKIM_KEYFILE_PENDING, "states: both pending");
	TAP_EQ_INT(dkim_keyfile_load_active(dir, "s.test", keys, 4, &err), 0,
	    "states: no active key yet");
	dkim_keyfile_set_state(dir, "s.test", "rsa1", DKIM_KEYFILE_ACTIVE,
	    (gid_t)-1, &err);
	dkim_keyfile_set_state(dir, "s.test", "ed1", DKIM_KEYFILE_ACTIVE,
	    (gid_t)-1, &err);
	n = dkim_keyfile_load_active(dir, "s.test", keys, 4, &err);
	TAP_EQ_INT(n, 2, "states: RSA and Ed25519 both active");
	TAP_OK(n == 2 && dkim_key_alg(keys[0]) != dkim_key_alg(keys[1]),
	    "states: one key of each algorithm");
	for (i = 0; i < n; i++)
		dkim_key_free(&keys[i]);
	TAP_EQ_INT(dkim_keyfile_set_state(dir, "s.test", "rsa1",
	    DKIM_KEYFILE_RETIRED, (gid_t)-1, &err), 0, "states: retire");
	n = dkim_keyfile_load_active(dir, "s.test", keys, 4, &err);
	TAP_OK(n == 1 && strcmp(dkim_key_selector(keys[0]), "ed1") == 0,
	    "states: the retired key no longer signs");
	for (i = 0; i < n; i++)
		dkim_key_free(&keys[i]);
	TAP_EQ_INT(dkim_keyfile_set_state(dir, "s.test", "nokey",
	    DKIM_KEYFILE_ACTIVE, (gid_t)-1, &err), PR_ENOENT,
	    "states: unknown selector");
	snprintf(path, sizeof(path), "%s/dkim/s.test/ed1.state", dir);
	write_file(path, "bogus\n");
	TAP_EQ_INT(dkim_keyfile_list(dir, "s.test", info, DKIM_KEYFILE_MAX,
	    &err), PR_EINVAL, "states: a bad state file is an error");
	write_file(path, "active\n");

	/* The record check of `postroom dkim activate`. */
	buf_init(&txt, 8192);
	dkim_key_txt(k, &txt);
	TAP_OK(dkim_key_txt_match(k, (char *)txt.p, txt.len),
	    "txt match: the key's own record");
	buf_reset(&txt);
	buf_puts(&txt, "v=DKIM1 ; k = ed25519 ;p=");
	dkim_key_txt(k, &txt);  /* tags twice (RFC 6376 3.2): no record */
	TAP_OK(!dkim_key_txt_match(k, (char *)txt.p, txt.len),
	    "txt match: the wrong p= refused");
	buf_reset(&txt);
	dkim_key_txt(k, &txt);
	txt.p[txt.len - 3] ^= 1;
	TAP_OK(!dkim_key_txt_match(k, (char *)txt.p, txt.len),
	    "txt match: one changed character refused");
	buf_reset(&txt);
	dkim_key_txt(k, &txt);
	{
		/* "k=ed25519" -> "k=rsa": the key type must agree. */
		char *p = strstr((char *)txt.p, "k=ed25519;");
		struct buf t2;

		buf_init(&t2, 8192);
		buf_puts(&t2, "v=DKIM1; k=rsa; ");
		buf_append(&t2, p + 11, txt.len - (size_t)(p + 11 -
		    (char *)txt.p));
		TAP_OK(!dkim_key_txt_match(k, (char *)t2.p, t2.len),
		    "txt match: k=rsa for an Ed25519 key refused");
		buf_reset(&t2);
		/* Whitespace inside p= (RFC 6376 3.2) is ignored. */
		buf_append(&t2, txt.p, 30);
		buf_puts(&t2, " \t ");
		buf_append(&t2, txt.p + 30, txt.len - 30);
		TAP_OK(dkim_key_txt_match(k, (char *)t2.p, t2.len),
		    "txt match: whitespace in p= ignored");
		/* A record that verifiers refuse (RFC 6376 3.6.1 h=: the
		 * key is not for sha256) publishes nothing. */
		buf_reset(&t2);
		buf_puts(&t2, "v=DKIM1; h=sha1; ");
		buf_append(&t2, txt.p + 8, txt.len - 8);
		TAP_OK(!dkim_key_txt_match(k, (char *)t2.p, t2.len),
		    "txt match: a record with h=sha1 refused");
		buf_fini(&t2);
	}
	buf_fini(&txt);
	dkim_key_free(&k);

	/* An older version's directory: "selector" names the key that
	 * signs; that one stays active, the others count as retired. */
	TAP_EQ_INT(dkim_keyfile_create(dir, "old.test", "k2024", false,
	    (gid_t)-1, &k, &err), 0, "legacy: key one");
	dkim_key_free(&k);
	TAP_EQ_INT(dkim_keyfile_create(dir, "old.test", "k2025", false,
	    (gid_t)-1, &k, &err), 0, "legacy: key two");
	dkim_key_free(&k);
	snprintf(path, sizeof(path), "%s/dkim/old.test/k2024.state", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dkim/old.test/k2025.state", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dkim/old.test/selector", dir);
	write_file(path, "k2025\n");
	n = dkim_keyfile_load_active(dir, "old.test", keys, 4, &err);
	TAP_OK(n == 1 && strcmp(dkim_key_selector(keys[0]), "k2025") == 0,
	    "legacy: the selected key keeps signing");
	for (i = 0; i < n; i++)
		dkim_key_free(&keys[i]);
	n = dkim_keyfile_list(dir, "old.test", info, DKIM_KEYFILE_MAX, &err);
	TAP_OK(n == 2 && ((strcmp(info[0].selector, "k2024") == 0 &&
	    info[0].state == DKIM_KEYFILE_RETIRED) ||
	    (strcmp(info[1].selector, "k2024") == 0 &&
	    info[1].state == DKIM_KEYFILE_RETIRED)),
	    "legacy: the other key counts as retired");
	n = dkim_keyfile_domains(dir, names, 4, &err);
	TAP_OK(n >= 2 && strcmp(names[0], "a.test") <= 0,
	    "domains listed, sorted");
}

int
main(void)
{
	char dir[] = "/tmp/postroom-test-dkim-XXXXXX";
	char cmd[600];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_key(dir, false);
	test_key(dir, true);
	test_states(dir);
	test_from_domain();
	test_signer_misuse();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
