/*
 * spf.c - RFC 7208 check_host() as a state machine over resolver.h.
 *
 * A check keeps a stack of frames, one per SPF record being evaluated
 * (the first, and one per "include" in progress; "redirect" replaces the
 * frame it runs in, RFC 7208 6.1).  spf_run() evaluates terms until one
 * needs DNS, asks, and returns; the answer callback stores what it
 * learnt and calls spf_run() again.  Every record is parsed whole before
 * any of it is evaluated, so a syntax error anywhere is a permerror
 * (RFC 7208 4.6).
 */
#include "spf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "iprev.h"

/* A domain name as text, RFC 1035 2.3.4 (253 octets without the root). */
#define SPF_NAME_MAX 256
/* Macro expansion may build longer names before RFC 7208 7.3 cuts them
 * to 253 octets from the left. */
#define SPF_EXPAND_MAX 2048
/* Terms per record: RFC 7208 3.4 keeps records short; more is abuse. */
#define SPF_TERMS_MAX 128
#define SPF_ADDR_MAX 512

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

struct spf_term {
	enum spf_mech mech;
	char qual;              /* '+', '-', '~', '?' (RFC 7208 4.6.2) */
	const char *spec;       /* domain-spec inside the record, or NULL */
	size_t spec_len;
	unsigned cidr4, cidr6;  /* prefix lengths (RFC 7208 5.6) */
	bool needs_p;           /* spec uses %{p}: the client's names first */
	uint8_t net[16];        /* ip4 (first 4 octets) and ip6 networks */
	char text[48];          /* the term as written, for the reason */
};

struct spf_frame {
	char domain[SPF_NAME_MAX];
	char *record;           /* the selected record; NULL = not fetched */
	struct spf_term *terms;
	size_t nterms, next;
	const char *redirect, *exp;
	size_t redirect_len, exp_len;
	bool redirect_p, exp_p; /* they use %{p} */
	bool redirected;        /* reached by redirect= (RFC 7208 6.1) */
};

enum spf_state {
	SPF_S_RECORD,   /* TXT of the top frame's domain */
	SPF_S_A,        /* "a" or "exists" */
	SPF_S_MX,
	SPF_S_MX_ADDR,
	SPF_S_PTR,      /* the client's names, for "ptr" and %{p} */
	SPF_S_PTR_ADDR,
	SPF_S_EXP,      /* the exp= TXT record */
	SPF_S_DONE,
};

/* What runs once the validated names are known. */
enum spf_resume {
	SPF_R_RUN,
	SPF_R_EXP,
	SPF_R_EXPTEXT,
};

struct spf_slot {
	struct spf_check *c;
	unsigned idx;
};

struct spf_check {
	struct resolver *r;
	spf_cb cb;
	void *data;

	/* The request. */
	int family;                  /* 4 or 6 */
	uint8_t ip[16];
	char ipstr[64];              /* "c" macro (RFC 7208 7.3) */
	char sender[SPF_ADDR_MAX];   /* "s" */
	char local[SPF_ADDR_MAX];    /* "l" */
	char odomain[SPF_NAME_MAX];  /* "o" */
	char helo[SPF_NAME_MAX];     /* "h" */
	char receiver[SPF_NAME_MAX]; /* "r" */
	uint64_t now;                /* "t" */
	enum spf_identity identity;

	/* Evaluation. */
	struct spf_frame frames[SPF_LOOKUP_MAX + 2];
	size_t depth;
	unsigned lookups, voids;
	enum spf_state state;
	unsigned pending;
	unsigned asked;              /* queries not answered yet */
	bool any_match, any_error;
	struct spf_slot slots[SPF_NAMES_MAX];

	/* The client's validated names (RFC 7208 5.5), found once. */
	bool ptr_done, ptr_void, ptr_error;
	enum spf_resume resume;
	char names[SPF_NAMES_MAX][SPF_NAME_MAX];
	bool valid[SPF_NAMES_MAX];
	size_t nnames;
	/* The MX hosts of the "mx" term being evaluated. */
	char hosts[SPF_NAMES_MAX][SPF_NAME_MAX];

	/* The outcome. */
	bool in_new, finished;
	enum spf_result result;
	char exptext[SPF_EXPLANATION_MAX + 1];
	char reason[160];
	struct spf_outcome out;
};

static void spf_run(struct spf_check *c);
static void spf_exp_start(struct spf_check *c);
static void spf_exp_text(struct spf_check *c, const char *txt);

const char *
spf_result_str(enum spf_result r)
{
	switch (r) {
	case SPF_NONE:
		return "none";
	case SPF_NEUTRAL:
		return "neutral";
	case SPF_PASS:
		return "pass";
	case SPF_FAIL:
		return "fail";
	case SPF_SOFTFAIL:
		return "softfail";
	case SPF_TEMPERROR:
		return "temperror";
	case SPF_PERMERROR:
		return "permerror";
	}
	return "permerror";
}

const char *
spf_identity_str(enum spf_identity id)
{
	return id == SPF_ID_HELO ? "smtp.helo" : "smtp.mailfrom";
}

static int
spf_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static bool
spf_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool
spf_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
spf_ncaseeq(const char *a, size_t alen, const char *b)
{
	size_t i;

	if (alen != strlen(b))
		return false;
	for (i = 0; i < alen; i++)
		if (spf_lower((unsigned char)a[i]) !=
		    spf_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* ---------------------------------------------------------------------
 * Finishing
 */

static void
spf_finish(struct spf_check *c, enum spf_result res, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
spf_report(struct spf_check *c)
{
	c->state = SPF_S_DONE;
	c->finished = true;
	c->out.result = c->result;
	c->out.identity = c->identity;
	c->out.sender = c->sender;
	c->out.domain = c->odomain;
	c->out.explanation = c->result == SPF_FAIL && c->exptext[0] != '\0' ?
	    c->exptext : NULL;
	c->out.reason = c->reason;
	if (!c->in_new)
		c->cb(c->data, &c->out);
}

static void
spf_finish(struct spf_check *c, enum spf_result res, const char *fmt, ...)
{
	va_list ap;

	c->result = res;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	/* RFC 7208 6.2: the explanation of the record that gave "fail". */
	if (res == SPF_FAIL && c->depth > 0 && c->frames[0].exp != NULL) {
		spf_exp_start(c);
		return;
	}
	spf_report(c);
}

/* ---------------------------------------------------------------------
 * Names and addresses
 */

/* A name that can be asked for: labels of 1 to 63 octets, 253 in all
 * (RFC 1035 2.3.4); anything else is treated as not existing (RFC 7208
 * 4.3, 4.8). */
static bool
spf_name_ok(const char *s)
{
	size_t n = strlen(s), lab = 0, i;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (lab == 0)
				return false;
			lab = 0;
		} else if (++lab > 63) {
			return false;
		}
	}
	return lab > 0;
}

/* RFC 7208 4.3: the <domain> of the first check must be a multi-label
 * host name; anything else is "none". */
static bool
spf_domain_ok(const char *s)
{
	size_t n = strlen(s), i;
	bool dot = false;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (i == 0 || s[i - 1] == '.')
				return false;
			dot = true;
		} else if (!spf_alpha(ch) && !spf_digit(ch) && ch != '-' &&
		    ch != '_') {
			return false;
		}
	}
	{
		char tmp[SPF_NAME_MAX];

		memcpy(tmp, s, n);
		tmp[n] = '\0';
		if (!spf_name_ok(tmp))
			return false;
	}
	return dot;
}

static bool
spf_prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

/* Does an A or AAAA record hold the client's address (within cidr)? */
static bool
spf_rr_match(const struct spf_check *c, const struct resolver_rr *rr,
    unsigned cidr4, unsigned cidr6)
{
	if (c->family == 4 && rr->type == RESOLVER_A)
		return spf_prefix_match(rr->u.a, c->ip, cidr4);
	if (c->family == 6 && rr->type == RESOLVER_AAAA)
		return spf_prefix_match(rr->u.aaaa, c->ip, cidr6);
	return false;
}

/* ---------------------------------------------------------------------
 * Macros (RFC 7208 7)
 */

static bool
spf_macro_letter(int ch, bool exp)
{
	switch (spf_lower(ch)) {
	case 's': case 'l': case 'o': case 'd': case 'i': case 'p':
	case 'h': case 'v':
		return true;
	case 'c': case 'r': case 't':
		/* RFC 7208 7.3: only in explanation text. */
		return exp;
	}
	return false;
}

static bool
spf_delimiter(int ch)
{
	return ch != '\0' && strchr(".-+,/_=", ch) != NULL;
}

/*
 * Checks a macro-string (RFC 7208 7.1).  exp allows the letters of
 * explanation text and spaces (explain-string); domain demands a
 * domain-end: a macro, or "." toplabel ["."].  Sets *needs_p when the
 * string uses the "p" macro.
 */
static bool
spf_macro_check(const char *s, size_t n, bool exp, bool domain,
    bool *needs_p)
{
	size_t i = 0, lit = 0, end, dot, j;
	bool last_macro = false, alpha, dash;

	if (needs_p != NULL)
		*needs_p = false;
	while (i < n) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '%') {
			if (i + 1 >= n)
				return false;
			if (s[i + 1] == '%' || s[i + 1] == '_' ||
			    s[i + 1] == '-') {
				i += 2;
				last_macro = true;
				lit = i;
				continue;
			}
			if (s[i + 1] != '{' || i + 2 >= n ||
			    !spf_macro_letter((unsigned char)s[i + 2], exp))
				return false;
			if (spf_lower((unsigned char)s[i + 2]) == 'p' &&
			    needs_p != NULL)
				*needs_p = true;
			j = i + 3;
			if (j < n && spf_digit((unsigned char)s[j])) {
				unsigned long v = 0;

				for (; j < n && spf_digit((unsigned char)s[j]);
				    j++)
					if (v < 1000)
						v = v * 10 +
						    (unsigned)(s[j] - '0');
				/* RFC 7208 7.1: the count must be nonzero. */
				if (v == 0)
					return false;
			}
			if (j < n && spf_lower((unsigned char)s[j]) == 'r')
				j++;
			while (j < n && spf_delimiter((unsigned char)s[j]))
				j++;
			if (j >= n || s[j] != '}')
				return false;
			i = j + 1;
			last_macro = true;
			lit = i;
			continue;
		}
		if (ch == ' ' && exp) {
			i++;
			last_macro = false;
			continue;
		}
		/* macro-literal: visible ASCII but '%'. */
		if (ch < 0x21 || ch > 0x7e)
			return false;
		i++;
		last_macro = false;
	}
	if (!domain)
		return true;
	if (n == 0)
		return false;
	if (last_macro)
		return true;
	/* domain-end = "." toplabel [ "." ] after the last macro. */
	end = n;
	if (end > lit && s[end - 1] == '.')
		end--;
	for (dot = end; dot > lit && s[dot - 1] != '.'; dot--)
		;
	if (dot == lit || dot == end)
		return false;
	/* toplabel = (*alphanum ALPHA *alphanum) /
	 *   (1*alphanum "-" *(alphanum / "-") alphanum) */
	if (s[dot] == '-' || s[end - 1] == '-')
		return false;
	alpha = dash = false;
	for (j = dot; j < end; j++) {
		unsigned char ch = (unsigned char)s[j];

		if (spf_alpha(ch))
			alpha = true;
		else if (ch == '-')
			dash = true;
		else if (!spf_digit(ch))
			return false;
	}
	/* All digits is never a toplabel (the first form needs a letter,
	 * the second a dash). */
	return alpha || dash;
}

/* Appends s[0..n) to out, escaped per RFC 7208 7.3 (uppercase macro
 * letters: every octet outside "unreserved" of RFC 3986 2.3). */
static bool
spf_put(char *out, size_t outsz, size_t *o, const char *s, size_t n,
    bool escape)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (escape && !spf_alpha(ch) && !spf_digit(ch) && ch != '-' &&
		    ch != '.' && ch != '_' && ch != '~') {
			if (*o + 3 >= outsz)
				return false;
			out[(*o)++] = '%';
			out[(*o)++] = hex[ch >> 4];
			out[(*o)++] = hex[ch & 15];
			continue;
		}
		if (*o + 1 >= outsz)
			return false;
		out[(*o)++] = (char)ch;
	}
	out[*o] = '\0';
	return true;
}

/* True if name is domain or a subdomain of it (RFC 7208 5.5, 7.3). */
static bool
spf_within(const char *name, const char *domain)
{
	size_t nl = strlen(name), dl = strlen(domain);

	return strcasecmp(name, domain) == 0 || (nl > dl &&
	    name[nl - dl - 1] == '.' && strcasecmp(name + nl - dl,
	    domain) == 0);
}

/* The validated name for %{p} (RFC 7208 7.3): the domain itself, else
 * a subdomain of it, else any, else "unknown". */
static const char *
spf_p_value(const struct spf_check *c, const char *domain)
{
	const char *any = NULL;
	size_t i;

	for (i = 0; i < c->nnames; i++)
		if (c->valid[i] && strcasecmp(c->names[i], domain) == 0)
			return c->names[i];
	for (i = 0; i < c->nnames; i++) {
		if (!c->valid[i])
			continue;
		if (spf_within(c->names[i], domain))
			return c->names[i];
		if (any == NULL)
			any = c->names[i];
	}
	return any != NULL ? any : "unknown";
}

/* The value of one macro letter, before transformation. */
static void
spf_macro_value(const struct spf_check *c, int letter, const char *domain,
    char *v, size_t vsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	switch (spf_lower(letter)) {
	case 's':
		snprintf(v, vsz, "%s", c->sender);
		break;
	case 'l':
		snprintf(v, vsz, "%s", c->local);
		break;
	case 'o':
		snprintf(v, vsz, "%s", c->odomain);
		break;
	case 'd':
		snprintf(v, vsz, "%s", domain);
		break;
	case 'i':
		if (c->family == 4) {
			snprintf(v, vsz, "%u.%u.%u.%u", c->ip[0], c->ip[1],
			    c->ip[2], c->ip[3]);
			break;
		}
		/* RFC 7208 7.3: dot-format, 32 nibbles. */
		for (i = 0; i < 16 && o + 4 < vsz; i++) {
			v[o++] = hex[c->ip[i] >> 4];
			v[o++] = '.';
			v[o++] = hex[c->ip[i] & 15];
			v[o++] = '.';
		}
		v[o > 0 ? o - 1 : 0] = '\0';
		break;
	case 'p':
		snprintf(v, vsz, "%s", spf_p_value(c, domain));
		break;
	case 'h':
		snprintf(v, vsz, "%s", c->helo);
		break;
	case 'c':
		snprintf(v, vsz, "%s", c->ipstr);
		break;
	case 'r':
		snprintf(v, vsz, "%s", c->receiver);
		break;
	case 't':
		snprintf(v, vsz, "%llu", (unsigned long long)c->now);
		break;
	case 'v':
		snprintf(v, vsz, "%s", c->family == 4 ? "in-addr" : "ip6");
		break;
	default:
		v[0] = '\0';
	}
}

/*
 * Expands a macro-string checked by spf_macro_check() into out, with
 * domain as <domain>.  Returns false when the result does not fit.
 */
static bool
spf_expand(const struct spf_check *c, const char *s, size_t n,
    const char *domain, char *out, size_t outsz)
{
	char val[SPF_EXPAND_MAX], part[SPF_EXPAND_MAX];
	size_t i = 0, o = 0;

	out[0] = '\0';
	while (i < n) {
		const char *parts[128];
		size_t plen[128], np, k, first, j, vl;
		unsigned long digits = 0;
		bool rev = false, upper;
		char delims[8];
		size_t nd = 0, po;
		int letter;

		if (s[i] != '%') {
			if (!spf_put(out, outsz, &o, s + i, 1, false))
				return false;
			i++;
			continue;
		}
		if (s[i + 1] == '%' || s[i + 1] == '_' || s[i + 1] == '-') {
			const char *lit = s[i + 1] == '%' ? "%" :
			    s[i + 1] == '_' ? " " : "%20";

			if (!spf_put(out, outsz, &o, lit, strlen(lit), false))
				return false;
			i += 2;
			continue;
		}
		letter = (unsigned char)s[i + 2];
		upper = letter >= 'A' && letter <= 'Z';
		j = i + 3;
		while (spf_digit((unsigned char)s[j])) {
			if (digits < 1000)
				digits = digits * 10 + (unsigned)(s[j] - '0');
			j++;
		}
		if (spf_lower((unsigned char)s[j]) == 'r') {
			rev = true;
			j++;
		}
		while (s[j] != '}') {
			if (nd < sizeof(delims) - 1)
				delims[nd++] = s[j];
			j++;
		}
		delims[nd] = '\0';
		i = j + 1;
		spf_macro_value(c, letter, domain, val, sizeof(val));
		/* RFC 7208 7.3: split on the delimiters (default "."),
		 * reverse on "r", keep the rightmost DIGITS parts, join
		 * with ".". */
		np = 0;
		vl = strlen(val);
		first = 0;
		for (k = 0; k <= vl && np < 128; k++) {
			if (k == vl || strchr(nd > 0 ? delims : ".", val[k])) {
				parts[np] = val + first;
				plen[np] = k - first;
				np++;
				first = k + 1;
			}
		}
		if (rev) {
			for (k = 0; k < np / 2; k++) {
				const char *tp = parts[k];
				size_t tl = plen[k];

				parts[k] = parts[np - 1 - k];
				plen[k] = plen[np - 1 - k];
				parts[np - 1 - k] = tp;
				plen[np - 1 - k] = tl;
			}
		}
		first = digits > 0 && digits < np ? np - digits : 0;
		po = 0;
		part[0] = '\0';
		for (k = first; k < np; k++) {
			if (k > first && !spf_put(part, sizeof(part), &po, ".",
			    1, false))
				return false;
			if (!spf_put(part, sizeof(part), &po, parts[k], plen[k],
			    false))
				return false;
		}
		if (!spf_put(out, outsz, &o, part, po, upper))
			return false;
	}
	return true;
}

/*
 * Expands a domain-spec into a name to ask for (RFC 7208 7.3): without
 * a trailing dot, cut to 253 octets by dropping labels from the left.
 * Returns false when it cannot name anything (then the lookup is one
 * that finds nothing, RFC 7208 4.3, 4.8).
 */
static bool
spf_target(const struct spf_check *c, const char *spec, size_t n,
    const char *domain, char *out)
{
	char buf[SPF_EXPAND_MAX];
	const char *p;
	size_t len;

	if (!spf_expand(c, spec, n, domain, buf, sizeof(buf)))
		return false;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
	p = buf;
	while (len > 253) {
		const char *dot = strchr(p, '.');

		if (dot == NULL)
			return false;
		len -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	snprintf(out, SPF_NAME_MAX, "%s", p);
	return spf_name_ok(out);
}

/* ---------------------------------------------------------------------
 * Records (RFC 7208 4.5, 4.6, 5, 6)
 */

static bool
spf_parse_cidr(const char *s, size_t n, unsigned max, unsigned *v_r)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (!spf_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*v_r = v;
	return true;
}

/* ip4-network (RFC 7208 5.6): four decimal octets, no leading zeros. */
static bool
spf_parse_ip4(const char *s, size_t n, uint8_t *a)
{
	size_t i = 0, k;

	for (k = 0; k < 4; k++) {
		unsigned v = 0;
		size_t st = i;

		while (i < n && spf_digit((unsigned char)s[i])) {
			v = v * 10 + (unsigned)(s[i] - '0');
			if (v > 255)
				return false;
			i++;
		}
		if (i == st || (i - st > 1 && s[st] == '0'))
			return false;
		a[k] = (uint8_t)v;
		if (k < 3) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == n;
}

/* Finds a trailing "/N" in s[0..*n) (a prefix length), shortening *n. */
static bool
spf_trailing_cidr(const char *s, size_t *n, bool dbl, const char **d_r,
    size_t *dl_r)
{
	size_t e = *n, st = e;

	while (st > 0 && spf_digit((unsigned char)s[st - 1]))
		st--;
	if (st == e || st == 0 || s[st - 1] != '/')
		return false;
	if (dbl) {
		if (st < 2 || s[st - 2] != '/')
			return false;
		*n = st - 2;
	} else {
		if (st >= 2 && s[st - 2] == '/')
			return false;
		*n = st - 1;
	}
	*d_r = s + st;
	*dl_r = e - st;
	return true;
}

static int
spf_parse_term(struct spf_frame *f, const char *s, size_t n, char *why,
    size_t whysz)
{
	struct spf_term *t;
	const char *name, *rest, *d;
	size_t nl, rl, dl, i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x21 || ch > 0x7e) {
			snprintf(why, whysz, "invalid character in SPF record");
			return -1;
		}
	}
	/* modifier = name "=" macro-string (RFC 7208 4.6.1, A) */
	if (spf_alpha((unsigned char)s[0])) {
		for (i = 1; i < n && (spf_alpha((unsigned char)s[i]) ||
		    spf_digit((unsigned char)s[i]) || s[i] == '-' ||
		    s[i] == '_' || s[i] == '.'); i++)
			;
		if (i < n && s[i] == '=') {
			const char *v = s + i + 1;
			size_t vl = n - i - 1;

			if (spf_ncaseeq(s, i, "redirect") ||
			    spf_ncaseeq(s, i, "exp")) {
				bool redir = spf_ncaseeq(s, i, "redirect");

				/* RFC 7208 6: each at most once. */
				if ((redir ? f->redirect : f->exp) != NULL) {
					snprintf(why, whysz, "%s= twice",
					    redir ? "redirect" : "exp");
					return -1;
				}
				if (!spf_macro_check(v, vl, false, true,
				    redir ? &f->redirect_p : &f->exp_p)) {
					snprintf(why, whysz,
					    "bad domain-spec in %.*s=",
					    (int)i, s);
					return -1;
				}
				if (redir) {
					f->redirect = v;
					f->redirect_len = vl;
				} else {
					f->exp = v;
					f->exp_len = vl;
				}
				return 0;
			}
			/* RFC 7208 6: unknown modifiers are ignored, but
			 * must be well-formed. */
			if (!spf_macro_check(v, vl, true, false, NULL)) {
				snprintf(why, whysz, "bad macro in %.*s=",
				    (int)i, s);
				return -1;
			}
			return 0;
		}
	}
	if (f->nterms >= SPF_TERMS_MAX) {
		snprintf(why, whysz, "too many terms");
		return -1;
	}
	t = &f->terms[f->nterms];
	memset(t, 0, sizeof(*t));
	snprintf(t->text, sizeof(t->text), "%.*s", (int)n, s);
	t->qual = '+';
	if (strchr("+-~?", s[0]) != NULL) {
		t->qual = s[0];
		s++;
		n--;
	}
	name = s;
	for (nl = 0; nl < n && s[nl] != ':' && s[nl] != '/'; nl++)
		;
	rest = s + nl;
	rl = n - nl;
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (spf_ncaseeq(name, nl, "all")) {
		t->mech = SPF_M_ALL;
		if (rl != 0)
			goto bad;
	} else if (spf_ncaseeq(name, nl, "include") ||
	    spf_ncaseeq(name, nl, "exists")) {
		t->mech = spf_ncaseeq(name, nl, "include") ? SPF_M_INCLUDE :
		    SPF_M_EXISTS;
		if (rl < 2 || rest[0] != ':')
			goto bad;
		t->spec = rest + 1;
		t->spec_len = rl - 1;
	} else if (spf_ncaseeq(name, nl, "a") || spf_ncaseeq(name, nl, "mx")) {
		t->mech = spf_ncaseeq(name, nl, "a") ? SPF_M_A : SPF_M_MX;
		/* dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr ] */
		if (spf_trailing_cidr(rest, &rl, true, &d, &dl) &&
		    !spf_parse_cidr(d, dl, 128, &t->cidr6))
			goto bad;
		if (spf_trailing_cidr(rest, &rl, false, &d, &dl) &&
		    !spf_parse_cidr(d, dl, 32, &t->cidr4))
			goto bad;
		if (rl > 0) {
			if (rest[0] != ':' || rl < 2)
				goto bad;
			t->spec = rest + 1;
			t->spec_len = rl - 1;
		}
	} else if (spf_ncaseeq(name, nl, "ptr")) {
		t->mech = SPF_M_PTR;
		if (rl > 0) {
			if (rest[0] != ':' || rl < 2)
				goto bad;
			t->spec = rest + 1;
			t->spec_len = rl - 1;
		}
	} else if (spf_ncaseeq(name, nl, "ip4") ||
	    spf_ncaseeq(name, nl, "ip6")) {
		char buf[64];
		const char *slash;
		size_t al;
		bool v4 = spf_ncaseeq(name, nl, "ip4");

		t->mech = v4 ? SPF_M_IP4 : SPF_M_IP6;
		if (rl < 2 || rest[0] != ':')
			goto bad;
		rest++;
		rl--;
		slash = memchr(rest, '/', rl);
		al = slash != NULL ? (size_t)(slash - rest) : rl;
		if (slash != NULL && !spf_parse_cidr(slash + 1,
		    rl - al - 1, v4 ? 32 : 128, v4 ? &t->cidr4 : &t->cidr6))
			goto bad;
		if (v4) {
			if (!spf_parse_ip4(rest, al, t->net))
				goto bad;
		} else {
			if (al >= sizeof(buf))
				goto bad;
			memcpy(buf, rest, al);
			buf[al] = '\0';
			if (inet_pton(AF_INET6, buf, t->net) != 1)
				goto bad;
		}
	} else {
		snprintf(why, whysz, "unknown mechanism '%.*s'", (int)nl, name);
		return -1;
	}
	if (t->spec != NULL && !spf_macro_check(t->spec, t->spec_len, false,
	    true, &t->needs_p))
		goto bad;
	f->nterms++;
	return 0;
bad:
	snprintf(why, whysz, "syntax error in '%s'", t->text);
	return -1;
}

/* Parses the record text after "v=spf1" into f. */
static int
spf_parse(struct spf_frame *f, char *why, size_t whysz)
{
	const char *s = f->record + 6, *e;

	f->terms = calloc(SPF_TERMS_MAX, sizeof(*f->terms));
	if (f->terms == NULL) {
		snprintf(why, whysz, "out of memory");
		return PR_ENOMEM;
	}
	for (;;) {
		/* RFC 7208 4.6.1: terms are separated by 1*SP. */
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		for (e = s; *e != '\0' && *e != ' '; e++)
			;
		if (spf_parse_term(f, s, (size_t)(e - s), why, whysz) < 0)
			return PR_EINVAL;
		s = e;
	}
	return 0;
}

static void
spf_frame_clear(struct spf_frame *f)
{
	free(f->record);
	free(f->terms);
	memset(f, 0, sizeof(*f));
}

/* ---------------------------------------------------------------------
 * DNS
 */

static void spf_answer_cb(void *data, const struct resolver_answer *ans);

static bool
spf_ask(struct spf_check *c, const char *name, enum resolver_type type,
    unsigned slot)
{
	if (resolver_query(c->r, name, type, spf_answer_cb,
	    &c->slots[slot]) < 0) {
		spf_finish(c, SPF_TEMPERROR, "cannot ask DNS for %s", name);
		return false;
	}
	c->asked++;
	return true;
}

/* Asks for the addresses of the client's family at names[0..n), one
 * slot each, and waits in state st for all of them. */
static void
spf_ask_addrs(struct spf_check *c, enum spf_state st,
    char (*names)[SPF_NAME_MAX], size_t n)
{
	size_t i;

	c->state = st;
	c->pending = (unsigned)n;
	for (i = 0; i < n; i++)
		if (!spf_ask(c, names[i], c->family == 4 ? RESOLVER_A :
		    RESOLVER_AAAA, (unsigned)i))
			return;
}

/* RFC 7208 2.6.6, 5: any RCODE but 0 and 3, or no answer, is a
 * temperror. */
static bool
spf_dns_error(const struct resolver_answer *ans)
{
	return ans->rcode != RESOLVER_NOERROR &&
	    ans->rcode != RESOLVER_NXDOMAIN;
}

/* The answer to the lookup of a term (name, for the reason): a DNS
 * error is a temperror (RFC 7208 2.6.6, 5); a lookup that finds nothing
 * counts as void, and more than SPF_VOID_MAX is a permerror (4.6.4).
 * Returns false when the check ended. */
static bool
spf_term_answer(struct spf_check *c, const struct resolver_answer *ans,
    const char *name)
{
	if (spf_dns_error(ans)) {
		spf_finish(c, SPF_TEMPERROR, "DNS error in %s", name);
		return false;
	}
	if (ans->n > 0 && ans->rcode == RESOLVER_NOERROR)
		return true;
	if (++c->voids > SPF_VOID_MAX) {
		spf_finish(c, SPF_PERMERROR, "more than %d void lookups (%s)",
		    SPF_VOID_MAX, name);
		return false;
	}
	return true;
}

static size_t
spf_rr_count(const struct resolver_answer *ans, enum resolver_type type)
{
	size_t i, n = 0;

	if (ans->rcode != RESOLVER_NOERROR)
		return 0;
	for (i = 0; i < ans->n; i++)
		if (ans->rr[i].type == type)
			n++;
	return n;
}

/* Joins the strings of a TXT record (RFC 7208 3.3) into out; false
 * when it does not fit. */
static bool
spf_txt_join(const struct resolver_txt *t, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; i < t->n; i++) {
		if (o + t->len[i] >= outsz)
			return false;
		memcpy(out + o, t->s[i], t->len[i]);
		o += t->len[i];
	}
	out[o] = '\0';
	/* A NUL inside is not a character of any record. */
	return strlen(out) == o;
}

/* ---------------------------------------------------------------------
 * Evaluation
 */

/* RFC 7208 4.6.2: the result a matching term gives, by its qualifier. */
static enum spf_result
spf_qual_result(char qual)
{
	switch (qual) {
	case '-':
		return SPF_FAIL;
	case '~':
		return SPF_SOFTFAIL;
	case '?':
		return SPF_NEUTRAL;
	}
	return SPF_PASS;
}

/* The result of the top frame is known: give it to the frame below
 * (include, RFC 7208 5.2) or end the check.  Returns true when
 * evaluation goes on. */
static bool
spf_return(struct spf_check *c, enum spf_result res, const char *why)
{
	struct spf_frame *f;
	struct spf_term *t;
	char buf[sizeof(c->reason)];

	for (;;) {
		if (res == SPF_NONE && (c->depth > 1 ||
		    c->frames[c->depth - 1].redirected)) {
			/* RFC 7208 5.2, 6.1: no record at an include or
			 * redirect target is a permerror. */
			res = SPF_PERMERROR;
		}
		if (c->depth == 1 || res == SPF_TEMPERROR ||
		    res == SPF_PERMERROR) {
			spf_finish(c, res, "%s", why);
			return false;
		}
		spf_frame_clear(&c->frames[--c->depth]);
		f = &c->frames[c->depth - 1];
		t = &f->terms[f->next];
		if (res != SPF_PASS) {
			/* fail, softfail, neutral: no match. */
			f->next++;
			return true;
		}
		res = spf_qual_result(t->qual);
		snprintf(buf, sizeof(buf), "matched %s (include)", t->text);
		why = buf;
	}
}

/* The current term matched: its qualifier is the frame's result. */
static bool
spf_match(struct spf_check *c)
{
	struct spf_frame *f = &c->frames[c->depth - 1];
	struct spf_term *t = &f->terms[f->next];
	char why[96];

	snprintf(why, sizeof(why), "matched %s", t->text);
	return spf_return(c, spf_qual_result(t->qual), why);
}

/* Starts the search for the client's validated names (RFC 7208 5.5). */
static void
spf_ptr_start(struct spf_check *c, enum spf_resume resume)
{
	char name[SPF_NAME_MAX];

	c->resume = resume;
	c->state = SPF_S_PTR;
	/* RFC 7208 5.5: the client's own address, reversed (ipstr is the
	 * IPv4 form of an IPv4-mapped address). */
	if (iprev_revname(c->ipstr, c->family == 4 ? "in-addr.arpa" :
	    "ip6.arpa", name, sizeof(name)) < 0) {
		spf_finish(c, SPF_TEMPERROR, "no reverse name for %s",
		    c->ipstr);
		return;
	}
	spf_ask(c, name, RESOLVER_PTR, 0);
}

static void
spf_ptr_done(struct spf_check *c)
{
	c->ptr_done = true;
	switch (c->resume) {
	case SPF_R_RUN:
		spf_run(c);
		break;
	case SPF_R_EXP:
		spf_exp_start(c);
		break;
	case SPF_R_EXPTEXT:
		spf_exp_text(c, NULL);
		break;
	}
}

static void
spf_run(struct spf_check *c)
{
	for (;;) {
		struct spf_frame *f = &c->frames[c->depth - 1];
		struct spf_term *t;
		char target[SPF_NAME_MAX];

		if (f->record == NULL) {
			c->state = SPF_S_RECORD;
			spf_ask(c, f->domain, RESOLVER_TXT, 0);
			return;
		}
		if (f->next == f->nterms) {
			if (f->redirect == NULL) {
				if (!spf_return(c, SPF_NEUTRAL,
				    "no mechanism matched"))
					return;
				continue;
			}
			if (f->redirect_p && !c->ptr_done) {
				spf_ptr_start(c, SPF_R_RUN);
				return;
			}
			if (++c->lookups > SPF_LOOKUP_MAX) {
				spf_finish(c, SPF_PERMERROR,
				    "more than %d DNS-querying terms",
				    SPF_LOOKUP_MAX);
				return;
			}
			if (!spf_target(c, f->redirect, f->redirect_len,
			    f->domain, target)) {
				spf_finish(c, SPF_PERMERROR,
				    "redirect= names no domain");
				return;
			}
			/* RFC 7208 6.1: the redirect target's record
			 * replaces this one, exp= included. */
			spf_frame_clear(f);
			snprintf(f->domain, sizeof(f->domain), "%s", target);
			f->redirected = true;
			continue;
		}
		t = &f->terms[f->next];
		if (t->mech == SPF_M_ALL)
			goto match;
		if (t->mech == SPF_M_IP4 || t->mech == SPF_M_IP6) {
			if ((t->mech == SPF_M_IP4 && c->family == 4 &&
			    spf_prefix_match(t->net, c->ip, t->cidr4)) ||
			    (t->mech == SPF_M_IP6 && c->family == 6 &&
			    spf_prefix_match(t->net, c->ip, t->cidr6)))
				goto match;
			f->next++;
			continue;
		}
		/* The rest query DNS; %{p} and "ptr" need the client's
		 * names first. */
		if ((t->needs_p || t->mech == SPF_M_PTR) && !c->ptr_done) {
			spf_ptr_start(c, SPF_R_RUN);
			return;
		}
		if (++c->lookups > SPF_LOOKUP_MAX) {
			spf_finish(c, SPF_PERMERROR,
			    "more than %d DNS-querying terms", SPF_LOOKUP_MAX);
			return;
		}
		if (t->spec == NULL)
			snprintf(target, sizeof(target), "%s", f->domain);
		else if (!spf_target(c, t->spec, t->spec_len, f->domain,
		    target))
			target[0] = '\0';
		switch (t->mech) {
		case SPF_M_INCLUDE:
			if (target[0] == '\0') {
				spf_finish(c, SPF_PERMERROR,
				    "include names no domain");
				return;
			}
			if (c->depth >= sizeof(c->frames) /
			    sizeof(c->frames[0])) {
				spf_finish(c, SPF_PERMERROR,
				    "includes nested too deep");
				return;
			}
			f = &c->frames[c->depth++];
			memset(f, 0, sizeof(*f));
			snprintf(f->domain, sizeof(f->domain), "%s", target);
			continue;
		case SPF_M_PTR: {
			size_t i;

			if (c->ptr_void && ++c->voids > SPF_VOID_MAX) {
				spf_finish(c, SPF_PERMERROR,
				    "more than %d void lookups", SPF_VOID_MAX);
				return;
			}
			/* RFC 7208 5.5: a validated name that is the
			 * target or ends in it. */
			for (i = 0; target[0] != '\0' && i < c->nnames; i++)
				if (c->valid[i] && spf_within(c->names[i],
				    target))
					goto match;
			f->next++;
			continue;
		}
		case SPF_M_A:
		case SPF_M_EXISTS:
		case SPF_M_MX:
			if (target[0] == '\0') {
				/* A name that cannot exist: a void lookup
				 * that matches nothing (RFC 7208 4.8). */
				struct resolver_answer none = {
					RESOLVER_NXDOMAIN, 0, NULL, false, NULL };

				if (!spf_term_answer(c, &none, "(bad name)"))
					return;
				f->next++;
				continue;
			}
			if (t->mech == SPF_M_MX) {
				c->state = SPF_S_MX;
				spf_ask(c, target, RESOLVER_MX, 0);
			} else {
				c->state = SPF_S_A;
				/* RFC 7208 5.7: exists asks for A, always. */
				spf_ask(c, target, t->mech == SPF_M_EXISTS ||
				    c->family == 4 ? RESOLVER_A :
				    RESOLVER_AAAA, 0);
			}
			return;
		default:
			f->next++;
			continue;
		}
match:
		if (!spf_match(c))
			return;
	}
}

/* The TXT answer for the top frame's domain (RFC 7208 4.4, 4.5). */
static void
spf_on_record(struct spf_check *c, const struct resolver_answer *ans)
{
	struct spf_frame *f = &c->frames[c->depth - 1];
	char buf[SPF_RECORD_MAX + 1], why[128];
	size_t i, nfound = 0;
	bool unusable = false;

	if (spf_dns_error(ans)) {
		spf_finish(c, SPF_TEMPERROR, "DNS error looking up %s",
		    f->domain);
		return;
	}
	for (i = 0; i < ans->n; i++) {
		const struct resolver_rr *rr = &ans->rr[i];

		if (rr->type != RESOLVER_TXT)
			continue;
		if (!spf_txt_join(&rr->u.txt, buf, sizeof(buf))) {
			/* Too long, or a NUL inside: unusable, but it
			 * still counts if it is meant as SPF. */
			if (rr->u.txt.n > 0 && rr->u.txt.len[0] >= 6 &&
			    strncasecmp((const char *)rr->u.txt.s[0],
			    "v=spf1", 6) == 0 && (rr->u.txt.len[0] == 6 ||
			    rr->u.txt.s[0][6] == ' ' ||
			    rr->u.txt.s[0][6] == '\0')) {
				nfound++;
				unusable = true;
			}
			continue;
		}
		/* RFC 7208 4.5: "v=spf1" then a space or the end. */
		if (strncasecmp(buf, "v=spf1", 6) != 0 ||
		    (buf[6] != '\0' && buf[6] != ' '))
			continue;
		if (++nfound == 1) {
			free(f->record);
			f->record = strdup(buf);
			if (f->record == NULL) {
				spf_finish(c, SPF_TEMPERROR, "out of memory");
				return;
			}
		}
	}
	if (nfound == 0) {
		if (spf_return(c, SPF_NONE, "no SPF record"))
			spf_run(c);
		return;
	}
	/* RFC 7208 4.5: more than one record is a permerror. */
	if (nfound > 1) {
		spf_finish(c, SPF_PERMERROR, "%zu SPF records at %s", nfound,
		    f->domain);
		return;
	}
	if (unusable || f->record == NULL) {
		spf_finish(c, SPF_PERMERROR, "unusable SPF record at %s",
		    f->domain);
		return;
	}
	if (spf_parse(f, why, sizeof(why)) < 0) {
		spf_finish(c, SPF_PERMERROR, "%s: %s", f->domain, why);
		return;
	}
	spf_run(c);
}

static void
spf_on_a(struct spf_check *c, const struct resolver_answer *ans)
{
	struct spf_frame *f = &c->frames[c->depth - 1];
	struct spf_term *t = &f->terms[f->next];
	size_t i;

	if (!spf_term_answer(c, ans, t->text))
		return;
	for (i = 0; ans->rcode == RESOLVER_NOERROR && i < ans->n; i++) {
		if (t->mech == SPF_M_EXISTS ? ans->rr[i].type == RESOLVER_A :
		    spf_rr_match(c, &ans->rr[i], t->cidr4, t->cidr6)) {
			if (spf_match(c))
				spf_run(c);
			return;
		}
	}
	f->next++;
	spf_run(c);
}

static void
spf_on_mx(struct spf_check *c, const struct resolver_answer *ans)
{
	struct spf_frame *f = &c->frames[c->depth - 1];
	struct spf_term *t = &f->terms[f->next];
	size_t i, n = spf_rr_count(ans, RESOLVER_MX), k = 0;

	if (!spf_term_answer(c, ans, t->text))
		return;
	/* RFC 7208 4.6.4: more than 10 MX names is a permerror. */
	if (n > SPF_NAMES_MAX) {
		spf_finish(c, SPF_PERMERROR, "more than %d MX names in %s",
		    SPF_NAMES_MAX, t->text);
		return;
	}
	c->any_match = c->any_error = false;
	c->pending = 0;
	for (i = 0; i < ans->n; i++) {
		const struct resolver_rr *rr = &ans->rr[i];

		/* RFC 7505: a null MX names no host. */
		if (rr->type != RESOLVER_MX || rr->u.mx.host[0] == '\0' ||
		    !spf_name_ok(rr->u.mx.host))
			continue;
		snprintf(c->hosts[k], SPF_NAME_MAX, "%s", rr->u.mx.host);
		k++;
	}
	if (k == 0) {
		f->next++;
		spf_run(c);
		return;
	}
	/* The names are copied first: the answer is gone once the first
	 * query is asked. */
	spf_ask_addrs(c, SPF_S_MX_ADDR, c->hosts, k);
}

static void
spf_on_mx_addr(struct spf_check *c, const struct resolver_answer *ans)
{
	struct spf_frame *f = &c->frames[c->depth - 1];
	struct spf_term *t = &f->terms[f->next];
	size_t i;

	if (spf_dns_error(ans))
		c->any_error = true;
	for (i = 0; ans->rcode == RESOLVER_NOERROR && i < ans->n; i++)
		if (spf_rr_match(c, &ans->rr[i], t->cidr4, t->cidr6))
			c->any_match = true;
	if (--c->pending > 0)
		return;
	if (c->any_match) {
		if (spf_match(c))
			spf_run(c);
		return;
	}
	if (c->any_error) {
		spf_finish(c, SPF_TEMPERROR, "DNS error in %s", t->text);
		return;
	}
	f->next++;
	spf_run(c);
}

static void
spf_on_ptr(struct spf_check *c, const struct resolver_answer *ans)
{
	size_t i, k = 0;

	c->nnames = 0;
	if (spf_dns_error(ans)) {
		/* RFC 7208 5.5: a DNS error here is no match, and %{p}
		 * is "unknown" (7.3). */
		c->ptr_error = true;
		spf_ptr_done(c);
		return;
	}
	if (spf_rr_count(ans, RESOLVER_PTR) == 0) {
		c->ptr_void = true;
		spf_ptr_done(c);
		return;
	}
	/* RFC 7208 4.6.4: the first 10 names only. */
	for (i = 0; i < ans->n && k < SPF_NAMES_MAX; i++) {
		if (ans->rr[i].type != RESOLVER_PTR ||
		    !spf_name_ok(ans->rr[i].u.ptr))
			continue;
		snprintf(c->names[k], SPF_NAME_MAX, "%s", ans->rr[i].u.ptr);
		c->valid[k] = false;
		k++;
	}
	c->nnames = k;
	if (k == 0) {
		spf_ptr_done(c);
		return;
	}
	spf_ask_addrs(c, SPF_S_PTR_ADDR, c->names, k);
}

static void
spf_on_ptr_addr(struct spf_check *c, unsigned idx,
    const struct resolver_answer *ans)
{
	size_t i;

	/* RFC 7208 5.5: a name whose lookup fails is skipped. */
	for (i = 0; ans->rcode == RESOLVER_NOERROR && i < ans->n; i++)
		if (spf_rr_match(c, &ans->rr[i], 32, 128))
			c->valid[idx] = true;
	if (--c->pending > 0)
		return;
	spf_ptr_done(c);
}

/* ---------------------------------------------------------------------
 * Explanation (RFC 7208 6.2)
 */

static void
spf_exp_start(struct spf_check *c)
{
	struct spf_frame *f = &c->frames[0];
	char target[SPF_NAME_MAX];

	if (f->exp_p && !c->ptr_done) {
		spf_ptr_start(c, SPF_R_EXP);
		return;
	}
	/* RFC 7208 6.2: any trouble and the exp= is as if absent. */
	if (!spf_target(c, f->exp, f->exp_len, f->domain, target)) {
		spf_report(c);
		return;
	}
	c->state = SPF_S_EXP;
	if (resolver_query(c->r, target, RESOLVER_TXT, spf_answer_cb,
	    &c->slots[0]) < 0)
		spf_report(c);
	else
		c->asked++;
}

/* Expands the explanation text: txt the TXT record, or NULL to resume
 * with the text kept in exptext after the validated names came. */
static void
spf_exp_text(struct spf_check *c, const char *txt)
{
	char raw[SPF_EXPLANATION_MAX + 1], out[SPF_EXPAND_MAX];
	bool needs_p;
	size_t i, n;

	if (txt != NULL)
		snprintf(c->exptext, sizeof(c->exptext), "%s", txt);
	snprintf(raw, sizeof(raw), "%s", c->exptext);
	c->exptext[0] = '\0';
	n = strlen(raw);
	for (i = 0; i < n; i++)
		if ((unsigned char)raw[i] < 0x20 ||
		    (unsigned char)raw[i] > 0x7e) {
			spf_report(c);
			return;
		}
	if (!spf_macro_check(raw, n, true, false, &needs_p)) {
		spf_report(c);
		return;
	}
	if (needs_p && !c->ptr_done) {
		snprintf(c->exptext, sizeof(c->exptext), "%s", raw);
		spf_ptr_start(c, SPF_R_EXPTEXT);
		/* Until the names come, exptext holds the raw text. */
		return;
	}
	if (spf_expand(c, raw, n, c->frames[0].domain, out, sizeof(out)))
		snprintf(c->exptext, sizeof(c->exptext), "%s", out);
	spf_report(c);
}

static void
spf_on_exp(struct spf_check *c, const struct resolver_answer *ans)
{
	char buf[SPF_EXPLANATION_MAX + 1];
	size_t n = spf_rr_count(ans, RESOLVER_TXT), i;

	/* RFC 7208 6.2: exactly one TXT record, or no explanation. */
	if (n != 1) {
		spf_report(c);
		return;
	}
	for (i = 0; i < ans->n; i++)
		if (ans->rr[i].type == RESOLVER_TXT)
			break;
	if (!spf_txt_join(&ans->rr[i].u.txt, buf, sizeof(buf))) {
		spf_report(c);
		return;
	}
	spf_exp_text(c, buf);
}

static void
spf_answer_cb(void *data, const struct resolver_answer *ans)
{
	struct spf_slot *s = data;
	struct spf_check *c = s->c;

	c->asked--;
	switch (c->state) {
	case SPF_S_RECORD:
		spf_on_record(c, ans);
		break;
	case SPF_S_A:
		spf_on_a(c, ans);
		break;
	case SPF_S_MX:
		spf_on_mx(c, ans);
		break;
	case SPF_S_MX_ADDR:
		spf_on_mx_addr(c, ans);
		break;
	case SPF_S_PTR:
		spf_on_ptr(c, ans);
		break;
	case SPF_S_PTR_ADDR:
		spf_on_ptr_addr(c, s->idx, ans);
		break;
	case SPF_S_EXP:
		spf_on_exp(c, ans);
		break;
	case SPF_S_DONE:
		break;
	}
}

/* ---------------------------------------------------------------------
 * Life cycle
 */

int
spf_check_new(struct resolver *r, const struct spf_request *req, spf_cb cb,
    void *data, struct spf_check **c_r)
{
	struct spf_check *c;
	const char *at, *helo = req->helo != NULL ? req->helo : "";
	uint8_t a6[16];
	unsigned i;

	*c_r = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return PR_ENOMEM;
	c->r = r;
	c->cb = cb;
	c->data = data;
	c->now = req->now;
	for (i = 0; i < SPF_NAMES_MAX; i++) {
		c->slots[i].c = c;
		c->slots[i].idx = i;
	}
	if (inet_pton(AF_INET, req->ip, c->ip) == 1) {
		c->family = 4;
	} else if (inet_pton(AF_INET6, req->ip, a6) == 1) {
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
		    0, 0, 0xff, 0xff };

		/* RFC 7208 5: an IPv4-mapped address is IPv4. */
		if (memcmp(a6, mapped, 12) == 0) {
			c->family = 4;
			memcpy(c->ip, a6 + 12, 4);
		} else {
			c->family = 6;
			memcpy(c->ip, a6, 16);
		}
	} else {
		free(c);
		return PR_EINVAL;
	}
	inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->ip, c->ipstr,
	    sizeof(c->ipstr));
	snprintf(c->helo, sizeof(c->helo), "%s", helo);
	snprintf(c->receiver, sizeof(c->receiver), "%s",
	    req->receiver != NULL && req->receiver[0] != '\0' ?
	    req->receiver : "unknown");
	at = strrchr(req->sender != NULL ? req->sender : "", '@');
	if (at == NULL) {
		/* RFC 7208 2.4: the null sender (or one without a
		 * domain) is checked as postmaster@HELO. */
		c->identity = SPF_ID_HELO;
		snprintf(c->local, sizeof(c->local), "postmaster");
		snprintf(c->odomain, sizeof(c->odomain), "%s", helo);
	} else {
		c->identity = SPF_ID_MAILFROM;
		/* RFC 7208 4.3: no local-part means "postmaster". */
		if (at == req->sender)
			snprintf(c->local, sizeof(c->local), "postmaster");
		else
			snprintf(c->local, sizeof(c->local), "%.*s",
			    (int)(at - req->sender), req->sender);
		snprintf(c->odomain, sizeof(c->odomain), "%s", at + 1);
	}
	snprintf(c->sender, sizeof(c->sender), "%s@%s", c->local, c->odomain);
	c->depth = 1;
	snprintf(c->frames[0].domain, sizeof(c->frames[0].domain), "%s",
	    c->odomain);
	{
		size_t dl = strlen(c->frames[0].domain);

		if (dl > 0 && c->frames[0].domain[dl - 1] == '.')
			c->frames[0].domain[dl - 1] = '\0';
	}
	c->in_new = true;
	if (!spf_domain_ok(c->odomain))
		spf_finish(c, SPF_NONE, "no valid domain in '%s'", c->sender);
	else
		spf_run(c);
	c->in_new = false;
	*c_r = c;
	return c->finished ? 1 : 0;
}

const struct spf_outcome *
spf_check_outcome(const struct spf_check *c)
{
	return c->finished ? &c->out : NULL;
}

void
spf_check_free(struct spf_check **cp)
{
	struct spf_check *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	*cp = NULL;
	/* Answers may still be on their way, even after the outcome
	 * (when asking failed half way through an "mx" term). */
	if (c->asked > 0)
		for (i = 0; i < SPF_NAMES_MAX; i++)
			resolver_cancel(c->r, &c->slots[i]);
	for (i = 0; i < c->depth; i++)
		spf_frame_clear(&c->frames[i]);
	free(c);
}
