/*
 * doctor_parse.c - what `postroom doctor` reads from the network, parsed
 * without I/O (doctor.h): the MTA-STS and TLS-RPT TXT records, and the
 * replies of our own listeners (SMTP RFC 5321 4.2, POP3 RFC 1939 3).
 */
#include "doctor.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "dkim_tag.h"
#include "err.h"

/*
 * Both records are tag lists of the DKIM kind (RFC 8461 3.1 and RFC
 * 8460 3 define "field-delim" as ";" with optional whitespace), the
 * version tag first.  Returns the number of tags, PR_ENOENT when the
 * first tag is not "v=VERSION", PR_EINVAL on a syntax error.
 */
static int
doctor_tags(const char *s, size_t len, const char *version,
    struct dkim_tag *t, const char **why)
{
	int n = dkim_tag_parse(s, len, t, DKIM_TAG_MAX);

	if (n <= 0 || t[0].name_len != 1 || s[t[0].name_off] != 'v')
		return PR_ENOENT;
	if (!dkim_tag_is(s, &t[0], version, false))
		return PR_ENOENT;
	*why = NULL;
	return n;
}

int
doctor_sts_record(const char *s, size_t len, const char **why)
{
	struct dkim_tag t[DKIM_TAG_MAX];
	const struct dkim_tag *id;
	size_t i;
	int n;

	/* A record that starts "v=STSv1" but does not parse as a tag list
	 * is one, broken; anything else is not one (3.1: discarded). */
	if (len >= 7 && strncmp(s, "v=STSv1", 7) == 0 &&
	    dkim_tag_parse(s, len, t, DKIM_TAG_MAX) < 0) {
		*why = "not a list of tag=value fields";
		return PR_EINVAL;
	}
	if ((n = doctor_tags(s, len, "STSv1", t, why)) < 0)
		return n;
	/* 3.1: sts-id = 1*32(ALPHA / DIGIT). */
	if ((id = dkim_tag_find(s, t, (size_t)n, "id")) == NULL) {
		*why = "no id= field";
		return PR_EINVAL;
	}
	if (id->val_len < 1 || id->val_len > 32) {
		*why = "id= is not 1 to 32 characters";
		return PR_EINVAL;
	}
	for (i = 0; i < id->val_len; i++)
		if (!isalnum((unsigned char)s[id->val_off + i])) {
			*why = "id= holds other than letters and digits";
			return PR_EINVAL;
		}
	return 0;
}

int
doctor_tlsrpt_record(const char *s, size_t len, const char **why)
{
	struct dkim_tag t[DKIM_TAG_MAX];
	const struct dkim_tag *rua;
	const char *p, *end, *comma, *seg;
	size_t n1;
	int n;

	if (len >= 10 && strncmp(s, "v=TLSRPTv1", 10) == 0 &&
	    dkim_tag_parse(s, len, t, DKIM_TAG_MAX) < 0) {
		*why = "not a list of tag=value fields";
		return PR_EINVAL;
	}
	if ((n = doctor_tags(s, len, "TLSRPTv1", t, why)) < 0)
		return n;
	if ((rua = dkim_tag_find(s, t, (size_t)n, "rua")) == NULL ||
	    rua->val_len == 0) {
		*why = "no rua= field (where reports go)";
		return PR_EINVAL;
	}
	/* 3: tlsrpt-rua = tlsrpt-uri *("," tlsrpt-uri), each a mailto: or
	 * an https: URI. */
	p = s + rua->val_off;
	end = p + rua->val_len;
	for (;;) {
		comma = memchr(p, ',', (size_t)(end - p));
		seg = comma != NULL ? comma : end;
		while (p < seg && (*p == ' ' || *p == '\t'))
			p++;
		n1 = (size_t)(seg - p);
		while (n1 > 0 && (p[n1 - 1] == ' ' || p[n1 - 1] == '\t'))
			n1--;
		if (!(n1 > 7 && strncasecmp(p, "mailto:", 7) == 0) &&
		    !(n1 > 8 && strncasecmp(p, "https://", 8) == 0)) {
			*why = "rua= holds a URI that is neither mailto: nor "
			    "https:";
			return PR_EINVAL;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

/* --- Replies ----------------------------------------------------------- */

void
doctor_reply_init(struct doctor_reply *r, enum doctor_reply_kind kind)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->code = -1;
}

static int
doctor_reply_bad(struct doctor_reply *r, const char *why)
{
	strcpy(r->first, why);
	r->code = -1;
	return PR_EINVAL;
}

/* RFC 5321 4.2: "250-text" continues, "250 text" (or "250") ends; every
 * line of one reply has the same code.  EHLO keywords follow the first
 * line (4.1.1.1). */
static int
doctor_reply_smtp_line(struct doctor_reply *r)
{
	const char *l = r->line;
	int code;

	if (r->len < 3 || !isdigit((unsigned char)l[0]) ||
	    !isdigit((unsigned char)l[1]) || !isdigit((unsigned char)l[2]) ||
	    (r->len > 3 && l[3] != ' ' && l[3] != '-'))
		return doctor_reply_bad(r, "a reply line without a code");
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (code < 200 || code > 599)
		return doctor_reply_bad(r, "a reply code out of range");
	if (r->lines == 0) {
		r->code = code;
		memcpy(r->first, l, r->len + 1);
	} else if (code != r->code) {
		return doctor_reply_bad(r, "a multi-line reply with two codes");
	} else if (r->len >= 12 && strncasecmp(l + 4, "STARTTLS", 8) == 0 &&
	    (l[12] == '\0' || l[12] == ' ')) {
		r->starttls = true;
	}
	if (++r->lines > DOCTOR_REPLY_LINES_MAX)
		return doctor_reply_bad(r, "a reply of too many lines");
	return r->len > 3 && l[3] == '-' ? 0 : 1;
}

/* RFC 1939 3: "+OK" or "-ERR" first; RFC 2449 5: a CAPA reply goes on
 * up to a line ".", a capability per line. */
static int
doctor_reply_pop3_line(struct doctor_reply *r)
{
	const char *l = r->line;

	if (r->lines++ == 0) {
		if (strncmp(l, "+OK", 3) == 0 && (l[3] == '\0' || l[3] == ' '))
			r->code = 1;
		else if (strncmp(l, "-ERR", 4) == 0 &&
		    (l[4] == '\0' || l[4] == ' '))
			r->code = 0;
		else
			return doctor_reply_bad(r, "a reply without +OK or "
			    "-ERR");
		memcpy(r->first, l, r->len + 1);
		return r->kind == DOCTOR_REPLY_POP3 || r->code == 0 ? 1 : 0;
	}
	if (strcmp(l, ".") == 0)
		return 1;
	if (r->lines > DOCTOR_REPLY_LINES_MAX)
		return doctor_reply_bad(r, "a reply of too many lines");
	if (strncasecmp(l, "STLS", 4) == 0 && (l[4] == '\0' || l[4] == ' '))
		r->stls = true;
	return 0;
}

int
doctor_reply_feed(struct doctor_reply *r, const uint8_t *p, size_t len,
    size_t *used_r)
{
	size_t i;
	int st;

	*used_r = 0;
	for (i = 0; i < len; i++) {
		if (p[i] != '\n') {
			if (r->len >= DOCTOR_REPLY_LINE_MAX) {
				*used_r = i;
				return doctor_reply_bad(r, "a reply line too "
				    "long");
			}
			r->line[r->len++] = (char)p[i];
			continue;
		}
		/* The line ends; a CR before the LF is dropped (RFC 5321
		 * 2.3.8 wants CRLF, a lenient reader takes LF). */
		if (r->len > 0 && r->line[r->len - 1] == '\r')
			r->len--;
		r->line[r->len] = '\0';
		if (memchr(r->line, '\0', r->len) != NULL) {
			*used_r = i + 1;
			return doctor_reply_bad(r, "a NUL in a reply");
		}
		st = r->kind == DOCTOR_REPLY_SMTP ? doctor_reply_smtp_line(r) :
		    doctor_reply_pop3_line(r);
		r->len = 0;
		if (st != 0) {
			*used_r = i + 1;
			return st;
		}
	}
	*used_r = len;
	return 0;
}
