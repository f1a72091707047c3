/*
 * authres.c - the Authentication-Results header field (RFC 8601 2, 5).
 */
#include "authres.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* RFC 5322 2.1.1: lines SHOULD be no more than 78 characters. */
#define AUTHRES_COLS 78

/* RFC 2045 5.1: a token is printable US-ASCII without SPACE and
 * tspecials. */
static bool
authres_tchar(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && strchr("()<>@,;:\\\"/[]?=", ch) ==
	    NULL;
}

static bool
authres_token(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (!authres_tchar((unsigned char)s[i]))
			return false;
	return true;
}

/* RFC 5322 3.2.3 atext. */
static bool
authres_atext(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", ch) !=
	    NULL;
}

/* RFC 8601 2.2 pvalue: [ [ local-part ] "@" ] domain-name, with a
 * dot-atom local-part; anything else is quoted. */
static bool
authres_addr(const char *s)
{
	const char *at = strrchr(s, '@');
	const char *p;
	bool dot = true;

	if (at == NULL || !authres_token(at + 1, strlen(at + 1)))
		return false;
	for (p = s; p < at; p++) {
		if (*p == '.') {
			if (dot)
				return false;
			dot = true;
		} else if (authres_atext((unsigned char)*p)) {
			dot = false;
		} else {
			return false;
		}
	}
	return p == s || !dot;
}

static void
authres_put(struct authres *a, const void *p, size_t n)
{
	if (a->err == 0)
		a->err = buf_append(a->out, p, n);
	a->col += n;
}

static void
authres_puts(struct authres *a, const char *s)
{
	authres_put(a, s, strlen(s));
}

/* The length value takes when written by authres_value(). */
static size_t
authres_value_len(const char *v)
{
	size_t n = 2;

	if (authres_token(v, strlen(v)) || authres_addr(v))
		return strlen(v);
	for (; *v != '\0'; v++)
		if ((unsigned char)*v >= 0x20 && *v != 0x7f)
			n += (*v == '"' || *v == '\\') ? 2 : 1;
	return n;
}

/* A value as it is, or as a quoted-string (RFC 5322 3.2.4) with its
 * control characters dropped. */
static void
authres_value(struct authres *a, const char *v)
{
	if (authres_token(v, strlen(v)) || authres_addr(v)) {
		authres_puts(a, v);
		return;
	}
	authres_put(a, "\"", 1);
	for (; *v != '\0'; v++) {
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			continue;
		if (*v == '"' || *v == '\\')
			authres_put(a, "\\", 1);
		authres_put(a, v, 1);
	}
	authres_put(a, "\"", 1);
}

/* Starts a piece of n columns: on this line after a space, or on a new
 * folded line (RFC 5322 2.2.3) when it would pass the limit. */
static void
authres_space(struct authres *a, size_t n)
{
	if (a->col + 1 + n > AUTHRES_COLS) {
		authres_puts(a, "\r\n\t");
		a->col = 1;
	} else {
		authres_put(a, " ", 1);
	}
}

void
authres_begin(struct authres *a, struct buf *out, const char *authserv_id)
{
	memset(a, 0, sizeof(*a));
	a->out = out;
	a->start = out->len;
	authres_puts(a, "Authentication-Results:");
	authres_space(a, authres_value_len(authserv_id));
	authres_value(a, authserv_id);
}

void
authres_add(struct authres *a, const char *method, const char *result,
    const char *reason, const struct authres_prop *props, size_t nprops)
{
	size_t i;

	/* RFC 8601 2.2: resinfo = [CFWS] ";" methodspec ...; each on a
	 * line of its own. */
	authres_puts(a, ";\r\n\t");
	a->col = 1;
	authres_puts(a, method);
	authres_put(a, "=", 1);
	authres_puts(a, result);
	a->n++;
	if (reason != NULL && reason[0] != '\0') {
		authres_space(a, 7 + authres_value_len(reason));
		authres_puts(a, "reason=");
		authres_value(a, reason);
	}
	for (i = 0; i < nprops; i++) {
		const struct authres_prop *p = &props[i];

		if (p->value == NULL || p->value[0] == '\0')
			continue;
		authres_space(a, strlen(p->ptype) + strlen(p->property) + 2 +
		    authres_value_len(p->value));
		authres_puts(a, p->ptype);
		authres_put(a, ".", 1);
		authres_puts(a, p->property);
		authres_put(a, "=", 1);
		authres_value(a, p->value);
	}
}

void
authres_add_spf(struct authres *a, const char *result, const char *sender,
    const char *helo)
{
	struct authres_prop p;

	/* RFC 8601 2.7.2: smtp.mailfrom, or smtp.helo for the HELO
	 * identity checked when the reverse-path is null. */
	if (sender != NULL && sender[0] != '\0')
		p = (struct authres_prop){ "smtp", "mailfrom", sender };
	else
		p = (struct authres_prop){ "smtp", "helo", helo };
	authres_add(a, "spf", result, NULL, &p, 1);
}

void
authres_add_dkim(struct authres *a, const struct dkim_verify_result *r)
{
	const struct authres_prop p[] = {
		{ "header", "d", r->d },
		{ "header", "s", r->s },
		{ "header", "b", r->b },
	};

	authres_add(a, "dkim", dkim_verify_res_name(r->res), r->reason, p,
	    sizeof(p) / sizeof(p[0]));
}

void
authres_add_dkim_all(struct authres *a, const struct dkim_verify_result *res,
    size_t n)
{
	size_t i;

	if (n == 0)
		authres_add(a, "dkim", "none", NULL, NULL, 0);
	for (i = 0; i < n; i++)
		authres_add_dkim(a, &res[i]);
}

void
authres_add_dmarc(struct authres *a, const struct dmarc_verdict *v)
{
	const struct authres_prop p = { "header", "from", v->from_domain };
	char why[64];

	why[0] = '\0';
	if (v->result == DMARC_FAIL)
		snprintf(why, sizeof(why), "p=%s%s",
		    dmarc_policy_name(v->published),
		    v->sampled_out ? ", not sampled (pct)" : "");
	authres_add(a, "dmarc", dmarc_result_name(v->result), why, &p, 1);
}

void
authres_add_iprev(struct authres *a, const char *result, const char *ip)
{
	const struct authres_prop p = { "policy", "iprev", ip };

	authres_add(a, "iprev", result, NULL, &p, 1);
}

int
authres_finish(struct authres *a)
{
	/* RFC 8601 2.2: no-result = [CFWS] ";" [CFWS] "none". */
	if (a->n == 0)
		authres_puts(a, "; none");
	authres_puts(a, "\r\n");
	if (a->err != 0)
		a->out->len = a->start;
	return a->err;
}

/* --- Incoming fields (RFC 8601 5) -------------------------------------- */

/* Skips CFWS (RFC 5322 3.2.2): WSP, line breaks and nested comments.
 * Returns the new position, or len for an unclosed comment. */
static size_t
authres_cfws(const uint8_t *f, size_t i, size_t len)
{
	unsigned depth = 0;

	for (; i < len; i++) {
		uint8_t ch = f[i];

		if (depth > 0) {
			if (ch == '\\')
				i++;
			else if (ch == '(')
				depth++;
			else if (ch == ')')
				depth--;
			continue;
		}
		if (ch == '(')
			depth++;
		else if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
			return i;
	}
	return len;
}

bool
authres_is_ours(const uint8_t *f, size_t len, const char *authserv_id)
{
	static const char name[] = "Authentication-Results";
	char id[256];
	size_t i = sizeof(name) - 1, n = 0, idlen = strlen(authserv_id);

	if (len < i || strncasecmp((const char *)f, name, i) != 0)
		return false;
	/* RFC 5322 4.5: WSP before the colon in the obsolete syntax. */
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i == len || f[i] != ':')
		return false;
	i = authres_cfws(f, i + 1, len);
	if (i == len)
		return false;
	/* authserv-id = value: a token or a quoted-string. */
	if (f[i] == '"') {
		for (i++; i < len && f[i] != '"'; i++) {
			if (f[i] == '\\' && i + 1 < len)
				i++;
			if (f[i] == '\r' || f[i] == '\n')
				continue;
			if (n + 1 >= sizeof(id))
				return false;
			id[n++] = (char)f[i];
		}
		if (i == len)
			return false;
	} else {
		for (; i < len && authres_tchar(f[i]); i++) {
			if (n + 1 >= sizeof(id))
				return false;
			id[n++] = (char)f[i];
		}
	}
	id[n] = '\0';
	/* A trailing dot names the same host (RFC 1034 3.1). */
	if (n > 0 && id[n - 1] == '.')
		id[--n] = '\0';
	if (idlen > 0 && authserv_id[idlen - 1] == '.')
		idlen--;
	return n > 0 && n == idlen && strncasecmp(id, authserv_id, n) == 0;
}
