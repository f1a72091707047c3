/* smtp_parse.c - the parse step of the SMTP command table. */
#include "smtp_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "domain.h"
#include "err.h"
#include "xtext.h"

/* EHLO/HELO argument: a domain or an address literal (RFC 5321 4.1.1.1).
 * Only characters that are safe in the Received field are let through;
 * underscores are tolerated because many client machine names have them. */
static bool
smtp_parse_domain(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > SMTP_PARSE_HELO_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    (c != '\0' && strchr("-._:[]", c) != NULL)))
			return false;
	}
	return true;
}

/* Parses a decimal uint64 of s[0..len).  Returns 0 or PR_EINVAL. */
static int
smtp_parse_u64(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return PR_EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return PR_EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return PR_EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

/* Matches "FROM:" / "TO:" case-insensitively, then optional spaces (a
 * common client habit RFC 5321 does not allow, tolerated as Postfix
 * does).  Returns the rest or NULL. */
static const char *
smtp_parse_keyword(const char *arg, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(arg, kw, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

bool
smtp_parse_hello(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	size_t len = strlen(a->raw);

	if (!smtp_parse_domain(a->raw, len)) {
		smtp_policy_reject(v_r, 501, "5.5.4", "Syntax: %s hostname",
		    c->verb);
		return false;
	}
	memcpy(a->helo, a->raw, len + 1);
	return true;
}

/* One Mail-parameter s[0..klen) (RFC 5321 4.1.1.2, "keyword=value"). */
static bool
smtp_parse_mail_param(struct smtp_args *a, const char *s, size_t klen,
    struct smtp_verdict *v_r)
{
	const char *kv = memchr(s, '=', klen);

	if (kv != NULL && kv - s == 4 && strncasecmp(s, "SIZE", 4) == 0) {
		/* RFC 1870 6 */
		if (smtp_parse_u64(kv + 1, klen - 5, &a->size) < 0) {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Syntax: SIZE=octets");
			return false;
		}
	} else if (kv != NULL && kv - s == 4 &&
	    strncasecmp(s, "BODY", 4) == 0) {
		/* RFC 6152 2 */
		if (klen == 9 && strncasecmp(kv + 1, "7BIT", 4) == 0) {
			a->body_8bit = false;
		} else if (klen == 13 &&
		    strncasecmp(kv + 1, "8BITMIME", 8) == 0) {
			a->body_8bit = true;
		} else {
			smtp_policy_reject(v_r, 555, "5.5.4",
			    "Unsupported BODY type");
			return false;
		}
	} else if (kv != NULL && kv - s == 3 &&
	    strncasecmp(s, "RET", 3) == 0) {
		/* RFC 3461 4.3 */
		if (a->ret != DSN_RET_NONE) {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Duplicate RET parameter");
			return false;
		}
		if (klen == 8 && strncasecmp(kv + 1, "FULL", 4) == 0) {
			a->ret = DSN_RET_FULL;
		} else if (klen == 8 && strncasecmp(kv + 1, "HDRS", 4) == 0) {
			a->ret = DSN_RET_HDRS;
		} else {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Syntax: RET=FULL|HDRS");
			return false;
		}
	} else if (kv != NULL && kv - s == 5 &&
	    strncasecmp(s, "ENVID", 5) == 0) {
		/* RFC 3461 4.4: xtext of at most 100 characters. */
		if (a->envid[0] != '\0') {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Duplicate ENVID parameter");
			return false;
		}
		if (klen - 6 == 0 || klen - 6 > DSN_ENVID_MAX ||
		    xtext_decode(kv + 1, klen - 6, false, a->envid,
		    sizeof(a->envid)) <= 0) {
			a->envid[0] = '\0';
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Syntax: ENVID=xtext (at most 100 characters)");
			return false;
		}
	} else if (kv == NULL && klen == 8 &&
	    strncasecmp(s, "SMTPUTF8", 8) == 0) {
		a->smtputf8 = true; /* RFC 6531 3.4 */
	} else if (kv != NULL && kv - s == 4 &&
	    strncasecmp(s, "AUTH", 4) == 0) {
		/* RFC 4954 5: accepted; we do not trust another server's
		 * word about who authenticated. */
	} else {
		smtp_policy_reject(v_r, 555, "5.5.4",
		    "Unsupported MAIL parameter");
		return false;
	}
	return true;
}

/* The parameters after a MAIL or RCPT path, space separated, each
 * "keyword[=value]" handed to one(); only after EHLO. */
static bool
smtp_parse_params(const struct smtp_parse_ctx *c, struct smtp_args *a,
    const char *s, bool (*one)(struct smtp_args *a, const char *s,
    size_t klen, struct smtp_verdict *v_r), struct smtp_verdict *v_r)
{
	size_t klen;

	for (; *s != '\0'; s += klen) {
		if (*s != ' ') {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Syntax error in parameters");
			return false;
		}
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		klen = strcspn(s, " ");
		if (!c->esmtp) {
			smtp_policy_reject(v_r, 555, "5.5.4",
			    "Parameters need EHLO");
			return false;
		}
		if (!one(a, s, klen, v_r))
			return false;
	}
	return true;
}

bool
smtp_parse_mail(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	const char *s;
	size_t used;

	a->size = 0;
	a->smtputf8 = a->body_8bit = false;
	a->ret = DSN_RET_NONE;
	a->envid[0] = '\0';
	if ((s = smtp_parse_keyword(a->raw, "FROM:")) == NULL ||
	    addr_parse_path(s, strlen(s), true, true, a->addr, &used) < 0) {
		a->addr[0] = '\0';
		smtp_policy_reject(v_r, 501, "5.1.7",
		    "Syntax: MAIL FROM:<address>");
		return false;
	}
	/* RFC 5321 4.1.1.2: Mail-parameters. */
	return smtp_parse_params(c, a, s + used, smtp_parse_mail_param, v_r);
}

/* RFC 3461 4.1: NOTIFY=NEVER, or a list of SUCCESS, FAILURE, DELAY. */
static bool
smtp_parse_notify(const char *v, size_t len, unsigned *notify_r)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
		{ "NEVER", DSN_NOTIFY_NEVER },
		{ "SUCCESS", DSN_NOTIFY_SUCCESS },
		{ "FAILURE", DSN_NOTIFY_FAILURE },
		{ "DELAY", DSN_NOTIFY_DELAY },
	};
	unsigned bits = 0, bit;
	size_t n, i;

	for (;;) {
		n = 0;
		while (n < len && v[n] != ',')
			n++;
		for (i = 0, bit = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == n &&
			    strncasecmp(v, words[i].word, n) == 0)
				bit = words[i].bit;
		/* Unknown, repeated, or NEVER together with another. */
		if (bit == 0 || (bits & bit) != 0)
			return false;
		bits |= bit;
		if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
			return false;
		if (n == len)
			break;
		v += n + 1;
		len -= n + 1;
	}
	*notify_r = bits;
	return true;
}

/* RFC 3461 4.2: ORCPT=addr-type;xtext, addr-type an atom (RFC 5322
 * 3.2.3); kept as "addr-type;address" decoded. */
static bool
smtp_parse_orcpt(const char *v, size_t len, char *out, size_t outsz)
{
	const char *semi = memchr(v, ';', len);
	size_t tl, i;

	if (semi == NULL || len > DSN_ORCPT_MAX || semi == v ||
	    (size_t)(semi - v) + 1 == len)
		return false;
	tl = (size_t)(semi - v);
	for (i = 0; i < tl; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL) || c == '\0')
			return false;
	}
	memcpy(out, v, tl + 1);
	/* RFC 6533 3: a "utf-8" address may carry UTF-8 as it is. */
	return xtext_decode(semi + 1, len - tl - 1,
	    tl == 5 && strncasecmp(v, "utf-8", 5) == 0, out + tl + 1,
	    outsz - tl - 1) > 0;
}

bool
smtp_parse_rcpt_dsn(const char *args, unsigned *notify_r, char *orcpt,
    size_t orcptsz)
{
	const char *s = args, *kv;
	size_t klen;

	*notify_r = 0;
	orcpt[0] = '\0';
	if (strlen(args) > SMTP_PARSE_ARGS_MAX)
		return false;
	for (; *s != '\0'; s += klen) {
		while (*s == ' ')
			s++;
		if ((klen = strcspn(s, " ")) == 0)
			break;
		kv = memchr(s, '=', klen);
		if (kv != NULL && kv - s == 6 &&
		    strncasecmp(s, "NOTIFY", 6) == 0) {
			if (*notify_r != 0 || !smtp_parse_notify(kv + 1,
			    klen - 7, notify_r))
				return false;
		} else if (kv != NULL && kv - s == 5 &&
		    strncasecmp(s, "ORCPT", 5) == 0) {
			if (orcpt[0] != '\0' || !smtp_parse_orcpt(kv + 1,
			    klen - 6, orcpt, orcptsz))
				return false;
		}
	}
	return true;
}

/* One RCPT parameter s[0..klen) (RFC 5321 4.1.1.3). */
static bool
smtp_parse_rcpt_param(struct smtp_args *a, const char *s, size_t klen,
    struct smtp_verdict *v_r)
{
	const char *kv = memchr(s, '=', klen);

	if (kv != NULL && kv - s == 6 && strncasecmp(s, "NOTIFY", 6) == 0) {
		if (a->notify != 0) {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Duplicate NOTIFY parameter");
			return false;
		}
		if (!smtp_parse_notify(kv + 1, klen - 7, &a->notify)) {
			a->notify = 0;
			smtp_policy_reject(v_r, 501, "5.5.4", "Syntax: "
			    "NOTIFY=NEVER|SUCCESS,FAILURE,DELAY");
			return false;
		}
	} else if (kv != NULL && kv - s == 5 &&
	    strncasecmp(s, "ORCPT", 5) == 0) {
		if (a->orcpt[0] != '\0') {
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Duplicate ORCPT parameter");
			return false;
		}
		if (!smtp_parse_orcpt(kv + 1, klen - 6, a->orcpt,
		    sizeof(a->orcpt))) {
			a->orcpt[0] = '\0';
			smtp_policy_reject(v_r, 501, "5.5.4",
			    "Syntax: ORCPT=addr-type;xtext");
			return false;
		}
	} else {
		smtp_policy_reject(v_r, 555, "5.5.4",
		    "Unsupported RCPT parameter");
		return false;
	}
	return true;
}

bool
smtp_parse_rcpt(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	const char *s;
	size_t used;

	a->notify = 0;
	a->orcpt[0] = '\0';
	if ((s = smtp_parse_keyword(a->raw, "TO:")) == NULL) {
		smtp_policy_reject(v_r, 501, "5.1.3",
		    "Syntax: RCPT TO:<address>");
		return false;
	}
	/* RFC 5321 4.5.1: <Postmaster> without a domain must be accepted. */
	if (strncasecmp(s, "<postmaster>", 12) == 0) {
		snprintf(a->addr, sizeof(a->addr), "postmaster@%s",
		    c->hostname);
		used = 12;
	} else if (addr_parse_path(s, strlen(s), false, true, a->addr,
	    &used) < 0) {
		smtp_policy_reject(v_r, 501, "5.1.3",
		    "Syntax: RCPT TO:<address>");
		return false;
	}
	/* RFC 5321 4.1.1.3: Rcpt-parameters. */
	return smtp_parse_params(c, a, s + used, smtp_parse_rcpt_param, v_r);
}

bool
smtp_parse_bdat(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	size_t n = strcspn(a->raw, " ");
	const char *rest = a->raw + n;

	(void)c;
	while (*rest == ' ')
		rest++;
	if (smtp_parse_u64(a->raw, n, &a->size) < 0 ||
	    (*rest != '\0' && strcasecmp(rest, "LAST") != 0)) {
		/* Without a size we cannot find the end of the chunk: what
		 * follows could be taken for commands.  Close. */
		smtp_policy_reject(v_r, 501, "5.5.4", "Syntax: BDAT size "
		    "[LAST]; closing");
		v_r->close = true;
		return false;
	}
	a->last = *rest != '\0';
	return true;
}

bool
smtp_parse_vrfy(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	(void)c;
	if (*a->raw == '\0') {
		smtp_policy_reject(v_r, 501, "5.5.4", "Syntax: VRFY address");
		return false;
	}
	return true;
}

bool
smtp_parse_auth(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	size_t n = strcspn(a->raw, " ");
	const char *ir = a->raw + n;

	(void)c;
	if (n == 5 && strncasecmp(a->raw, "PLAIN", 5) == 0) {
		a->mech = SMTP_AUTH_PLAIN;
	} else if (n == 5 && strncasecmp(a->raw, "LOGIN", 5) == 0) {
		a->mech = SMTP_AUTH_LOGIN;
	} else {
		smtp_policy_reject(v_r, 504, "5.5.4", "Unrecognized "
		    "authentication type");
		return false;
	}
	a->ir = NULL;
	while (*ir == ' ')
		ir++;
	/* RFC 4954 4: SASL-IR, where "=" is an empty response and "*"
	 * cancels. */
	if (strcmp(ir, "*") == 0) {
		smtp_policy_reject(v_r, 501, "5.0.0", "Authentication "
		    "cancelled");
		return false;
	}
	if (*ir != '\0')
		a->ir = ir;
	return true;
}

bool
smtp_parse_none(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	if (*a->raw != '\0') {
		smtp_policy_reject(v_r, 501, "5.5.4", "Syntax: %s", c->verb);
		return false;
	}
	return true;
}

bool
smtp_parse_etrn(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r)
{
	const char *node = a->raw;
	size_t len;

	(void)c;
	a->etrn_sub = node[0] == '@';
	a->etrn_queue = node[0] == '#';
	if (a->etrn_sub || a->etrn_queue)
		node++;
	len = strlen(node);
	if (len == 0 || strchr(node, ' ') != NULL) {
		smtp_policy_reject(v_r, 501, "5.5.4", "Syntax: ETRN domain, "
		    "ETRN @domain or ETRN #queue");
		return false;
	}
	if (a->etrn_queue) {
		/* A queue name: kept to be named in the 458 reply. */
		if (len >= sizeof(a->addr) || !addr_domain_valid(node, len,
		    false)) {
			smtp_policy_reject(v_r, 501, "5.5.4", "Invalid queue "
			    "name");
			return false;
		}
		memcpy(a->addr, node, len + 1);
		return true;
	}
	if (domain_normalize(node, len, a->addr, sizeof(a->addr)) < 0 ||
	    a->addr[0] == '[') {
		smtp_policy_reject(v_r, 501, "5.5.4", "Invalid node name");
		return false;
	}
	return true;
}
