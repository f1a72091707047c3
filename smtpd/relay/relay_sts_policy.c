/*
 * relay_sts_policy.c - MTA-STS record and policy parsing (see
 * relay_sts_policy.h).
 */
#include "relay_sts_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static bool
sts_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 8461 3.1 sts-ext-value: 1*(%x21-3A / %x3C / %x3E-7E). */
static bool
sts_ext_value_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

/*
 * One record already known to begin with "v=STSv1": its fields are
 * "name=value" separated by ";" with optional whitespace around, the
 * first v, an id among the others (3.1).
 */
static int
sts_txt_one(const char *s, size_t len, char id[STS_ID_MAX + 1],
    const char **why_r)
{
	size_t i = 0, ns, nl, vs, vl, k;
	bool first = true, have_id = false;

	while (i < len) {
		while (i < len && sts_wsp(s[i]))
			i++;
		if (i == len)
			break;  /* a trailing ";" (and space) is allowed */
		ns = i;
		while (i < len && (isalnum((unsigned char)s[i]) ||
		    s[i] == '_' || s[i] == '-' || s[i] == '.'))
			i++;
		nl = i - ns;
		if (nl == 0 || nl > 32 || i == len || s[i] != '=') {
			*why_r = "malformed field";
			return PR_EINVAL;
		}
		i++;
		vs = i;
		while (i < len && sts_ext_value_char((unsigned char)s[i]))
			i++;
		vl = i - vs;
		while (i < len && sts_wsp(s[i]))
			i++;
		if (vl == 0 || (i < len && s[i] != ';')) {
			*why_r = "malformed field value";
			return PR_EINVAL;
		}
		if (i < len)
			i++;    /* ';' */
		if (first) {
			if (nl != 1 || s[ns] != 'v' || vl != 5 ||
			    memcmp(s + vs, "STSv1", 5) != 0) {
				*why_r = "v=STSv1 is not the first field";
				return PR_EINVAL;
			}
			first = false;
			continue;
		}
		if (nl == 2 && memcmp(s + ns, "id", 2) == 0) {
			if (have_id)
				continue;       /* the first counts */
			if (vl > STS_ID_MAX) {
				*why_r = "id longer than 32 characters";
				return PR_EINVAL;
			}
			for (k = 0; k < vl; k++)
				if (!isalnum((unsigned char)s[vs + k])) {
					*why_r = "id not alphanumeric";
					return PR_EINVAL;
				}
			memcpy(id, s + vs, vl);
			id[vl] = '\0';
			have_id = true;
		}
	}
	if (!have_id) {
		*why_r = "no id";
		return PR_EINVAL;
	}
	return 0;
}

int
sts_txt_parse(const char *const *recs, const size_t *lens, size_t n,
    char id[STS_ID_MAX + 1], const char **why_r)
{
	size_t i, found = 0, which = 0;

	for (i = 0; i < n; i++) {
		/* 3.1: "records that do not begin with "v=STSv1;" are
		 * discarded" (the version field may end the record too). */
		if (lens[i] < 7 || memcmp(recs[i], "v=STSv1", 7) != 0)
			continue;
		if (lens[i] > 7 && recs[i][7] != ';' && !sts_wsp(recs[i][7]))
			continue;
		found++;
		which = i;
	}
	if (found == 0) {
		*why_r = "no v=STSv1 record";
		return PR_EINVAL;
	}
	if (found > 1) {
		*why_r = "more than one v=STSv1 record";
		return PR_EINVAL;
	}
	return sts_txt_one(recs[which], lens[which], id, why_r);
}

/* A host name or pattern into lower case without a trailing dot; false
 * if it is not one (LDH labels, "*." only in front). */
static bool
sts_norm_name(const char *s, size_t len, bool pattern, char out[RELAY_HOST_MAX])
{
	size_t i, lab = 0;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len >= RELAY_HOST_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '*' && pattern && i == 0 && len > 2 && s[1] == '.') {
			out[i] = '*';
			continue;
		}
		if (c == '.') {
			if (lab == 0 && !(i == 1 && out[0] == '*'))
				return false;
			lab = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++lab > 63)
				return false;
		} else {
			return false;
		}
		out[i] = (char)tolower(c);
	}
	if (lab == 0)
		return false;
	out[len] = '\0';
	return true;
}

int
sts_policy_parse(const char *text, size_t len, struct sts_policy *p,
    char *why, size_t whysz)
{
	bool have_version = false, have_mode = false, have_age = false;
	size_t i = 0, ls, le, ks, kl, vs, ve, line = 0;

	memset(p, 0, sizeof(*p));
	if (len > STS_POLICY_MAX) {
		snprintf(why, whysz, "policy larger than %d octets",
		    STS_POLICY_MAX);
		return PR_EINVAL;
	}
	/* 3.2: the policy is text; a NUL would cut what is cached. */
	if (memchr(text, '\0', len) != NULL) {
		snprintf(why, whysz, "NUL octet in the policy");
		return PR_EINVAL;
	}
	while (i < len) {
		ls = i;
		line++;
		while (i < len && text[i] != '\n')
			i++;
		le = i;
		if (i < len)
			i++;
		if (le > ls && text[le - 1] == '\r')
			le--;
		if (le == ls)
			continue;       /* an empty line, e.g. the last */
		ks = ls;
		kl = 0;
		while (ks + kl < le && (isalnum((unsigned char)text[ks + kl]) ||
		    text[ks + kl] == '_' || text[ks + kl] == '-' ||
		    text[ks + kl] == '.'))
			kl++;
		if (kl == 0 || ks + kl == le || text[ks + kl] != ':') {
			snprintf(why, whysz, "malformed line %zu", line);
			/* A line without a key is a broken policy (3.2:
			 * sts-policy-field = key ":" value). */
			return PR_EINVAL;
		}
		vs = ks + kl + 1;
		while (vs < le && sts_wsp(text[vs]))
			vs++;
		ve = le;
		while (ve > vs && sts_wsp(text[ve - 1]))
			ve--;
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(text + ks, k, kl) == 0)
#define VAL(v) (ve - vs == sizeof(v) - 1 && memcmp(text + vs, v, ve - vs) == 0)
		if (KEY("version")) {
			if (have_version)
				continue;
			if (!VAL("STSv1")) {
				snprintf(why, whysz, "version is not STSv1");
				return PR_EINVAL;
			}
			have_version = true;
		} else if (KEY("mode")) {
			if (have_mode)
				continue;
			if (VAL("enforce"))
				p->mode = STS_MODE_ENFORCE;
			else if (VAL("testing"))
				p->mode = STS_MODE_TESTING;
			else if (VAL("none"))
				p->mode = STS_MODE_NONE;
			else {
				snprintf(why, whysz, "unknown mode");
				return PR_EINVAL;
			}
			have_mode = true;
		} else if (KEY("max_age")) {
			int64_t v = 0;
			size_t k;

			if (have_age)
				continue;
			if (ve == vs || ve - vs > 10) {
				snprintf(why, whysz, "bad max_age");
				return PR_EINVAL;
			}
			for (k = vs; k < ve; k++) {
				if (!isdigit((unsigned char)text[k])) {
					snprintf(why, whysz, "bad max_age");
					return PR_EINVAL;
				}
				v = v * 10 + (text[k] - '0');
			}
			/* 3.2: "max_age ... up to 31557600"; a larger one is
			 * taken as the largest allowed. */
			p->max_age = v > STS_MAX_AGE_MAX ? STS_MAX_AGE_MAX : v;
			have_age = true;
		} else if (KEY("mx")) {
			if (p->n_mx == STS_MX_MAX) {
				snprintf(why, whysz, "more than %d mx lines",
				    STS_MX_MAX);
				return PR_EINVAL;
			}
			if (!sts_norm_name(text + vs, ve - vs, true,
			    p->mx[p->n_mx])) {
				snprintf(why, whysz, "bad mx pattern");
				return PR_EINVAL;
			}
			p->n_mx++;
		}
		/* Other keys: 3.2 extension fields, ignored. */
#undef KEY
#undef VAL
	}
	if (!have_version || !have_mode || !have_age) {
		snprintf(why, whysz, "missing %s", !have_version ? "version" :
		    !have_mode ? "mode" : "max_age");
		return PR_EINVAL;
	}
	if (p->mode != STS_MODE_NONE && p->n_mx == 0) {
		snprintf(why, whysz, "no mx");
		return PR_EINVAL;
	}
	return 0;
}

bool
sts_mx_match(const struct sts_policy *p, const char *host)
{
	char h[RELAY_HOST_MAX];
	const char *dot;
	size_t i;

	if (!sts_norm_name(host, strlen(host), false, h))
		return false;
	dot = strchr(h, '.');
	for (i = 0; i < p->n_mx; i++) {
		const char *pat = p->mx[i];

		if (pat[0] == '*') {
			/* "*.example.net": one label, then example.net. */
			if (dot != NULL && dot != h &&
			    strcmp(dot + 1, pat + 2) == 0)
				return true;
		} else if (strcmp(h, pat) == 0) {
			return true;
		}
	}
	return false;
}

const char *
sts_mode_name(enum sts_mode mode)
{
	switch (mode) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	default:
		return "none";
	}
}
