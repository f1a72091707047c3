/*
 * addr_list.c - RFC 5322 3.4 address-list parsing: see addr_list.h.
 *
 * A lexer turns the value into words (atoms, which here include the dots
 * of a dot-atom, and quoted strings), domain literals and specials, and
 * drops CFWS; a recursive descent over the tokens follows the grammar:
 *
 *	address-list = address *("," address)
 *	address      = mailbox / group
 *	group        = display-name ":" [mailbox-list] ";"
 *	mailbox      = name-addr / addr-spec
 *	name-addr    = [display-name] "<" addr-spec ">"
 *
 * with the obsolete forms of RFC 5322 4.4 that real mail still has: empty
 * list elements and a source route before the addr-spec.
 */
#include "addr_list.h"

#include <stdbool.h>
#include <string.h>

#include "err.h"

enum addr_list_tok {
	ADDR_LIST_T_END,
	ADDR_LIST_T_WORD,    /* atom or quoted string, as written */
	ADDR_LIST_T_DLIT,    /* "[" ... "]" */
	ADDR_LIST_T_SPECIAL, /* one of < > @ , : ; */
	ADDR_LIST_T_BAD,
};

struct addr_list_ctx {
	const char *s;
	size_t len, pos;
	/* The current token. */
	enum addr_list_tok t;
	const char *ts;
	size_t tlen;
	char (*out)[ADDR_MAX];
	size_t max, n;
};

/* RFC 5322 3.2.3 atext, plus "." (dot-atom, obs-phrase) and UTF-8
 * (RFC 6532 3.2). */
static bool
addr_list_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

/* Skips CFWS (RFC 5322 3.2.2): white space and nested comments.
 * Returns false for an unterminated comment. */
static bool
addr_list_cfws(struct addr_list_ctx *c)
{
	unsigned depth = 0;

	while (c->pos < c->len) {
		char ch = c->s[c->pos];

		if (depth > 0 && ch == '\\') {
			c->pos += 2;
			continue;
		}
		if (ch == '(')
			depth++;
		else if (ch == ')' && depth > 0)
			depth--;
		else if (depth == 0 && ch != ' ' && ch != '\t' && ch != '\r' &&
		    ch != '\n')
			return true;
		c->pos++;
	}
	return depth == 0;
}

/* Reads the next token into c->t, c->ts, c->tlen. */
static void
addr_list_next(struct addr_list_ctx *c)
{
	size_t start;
	char ch;

	if (!addr_list_cfws(c)) {
		c->t = ADDR_LIST_T_BAD;
		return;
	}
	if (c->pos >= c->len) {
		c->t = ADDR_LIST_T_END;
		return;
	}
	start = c->pos;
	ch = c->s[c->pos];
	c->ts = c->s + start;
	if (ch == '"') {
		/* RFC 5322 3.2.4 quoted-string with quoted-pairs. */
		for (c->pos++; c->pos < c->len && c->s[c->pos] != '"';
		    c->pos++)
			if (c->s[c->pos] == '\\')
				c->pos++;
		if (c->pos >= c->len) {
			c->t = ADDR_LIST_T_BAD;
			return;
		}
		c->pos++;
		c->t = ADDR_LIST_T_WORD;
	} else if (ch == '[') {
		/* RFC 5322 3.4.1 domain-literal. */
		while (c->pos < c->len && c->s[c->pos] != ']') {
			if (c->s[c->pos] == '\\' || (c->s[c->pos] == '[' &&
			    c->pos != start)) {
				c->t = ADDR_LIST_T_BAD;
				return;
			}
			c->pos++;
		}
		if (c->pos >= c->len) {
			c->t = ADDR_LIST_T_BAD;
			return;
		}
		c->pos++;
		c->t = ADDR_LIST_T_DLIT;
	} else if (strchr("<>@,:;", ch) != NULL) {
		c->pos++;
		c->t = ADDR_LIST_T_SPECIAL;
	} else if (addr_list_atext((unsigned char)ch)) {
		while (c->pos < c->len &&
		    addr_list_atext((unsigned char)c->s[c->pos]))
			c->pos++;
		c->t = ADDR_LIST_T_WORD;
	} else {
		c->t = ADDR_LIST_T_BAD;
		return;
	}
	c->tlen = c->pos - start;
}

static bool
addr_list_is(const struct addr_list_ctx *c, char special)
{
	return c->t == ADDR_LIST_T_SPECIAL && c->ts[0] == special;
}

/* Appends local "@" domain, canonical, to the output. */
static int
addr_list_emit(struct addr_list_ctx *c, const char *local, size_t llen,
    const char *dom, size_t dlen)
{
	char spec[ADDR_MAX];

	if (llen + 1 + dlen >= sizeof(spec))
		return PR_EINVAL;
	if (c->n >= c->max)
		return PR_ENOSPC;
	memcpy(spec, local, llen);
	spec[llen] = '@';
	memcpy(spec + llen + 1, dom, dlen);
	if (addr_parse_mailbox(spec, llen + 1 + dlen, true, c->out[c->n]) < 0)
		return PR_EINVAL;
	c->n++;
	return 0;
}

/* addr-spec = local-part "@" domain, at the current token. */
static int
addr_list_spec(struct addr_list_ctx *c)
{
	const char *local;
	size_t llen;

	if (c->t != ADDR_LIST_T_WORD)
		return PR_EINVAL;
	local = c->ts;
	llen = c->tlen;
	addr_list_next(c);
	if (!addr_list_is(c, '@'))
		return PR_EINVAL;
	addr_list_next(c);
	if (c->t != ADDR_LIST_T_WORD && c->t != ADDR_LIST_T_DLIT)
		return PR_EINVAL;
	return addr_list_emit(c, local, llen, c->ts, c->tlen);
}

/* "<" [obs-route] addr-spec ">", the "<" being the current token. */
static int
addr_list_angle(struct addr_list_ctx *c)
{
	int r;

	addr_list_next(c);
	if (addr_list_is(c, '@')) {
		/* RFC 5322 4.4 obs-route: "@a,@b:" is ignored. */
		while (c->t != ADDR_LIST_T_END && c->t != ADDR_LIST_T_BAD &&
		    !addr_list_is(c, ':'))
			addr_list_next(c);
		if (!addr_list_is(c, ':'))
			return PR_EINVAL;
		addr_list_next(c);
	}
	if ((r = addr_list_spec(c)) < 0)
		return r;
	addr_list_next(c);
	if (!addr_list_is(c, '>'))
		return PR_EINVAL;
	addr_list_next(c);
	return 0;
}

static int addr_list_elements(struct addr_list_ctx *c, bool in_group);

/* One address: a mailbox or, outside a group, a group. */
static int
addr_list_address(struct addr_list_ctx *c, bool in_group)
{
	const char *first = NULL;
	size_t flen = 0, words = 0;
	int r;

	if (addr_list_is(c, '<'))
		return addr_list_angle(c);
	/* A display-name (phrase), or the local-part of an addr-spec. */
	while (c->t == ADDR_LIST_T_WORD) {
		if (words++ == 0) {
			first = c->ts;
			flen = c->tlen;
		}
		addr_list_next(c);
	}
	if (words == 0)
		return PR_EINVAL;
	if (addr_list_is(c, '<'))
		return addr_list_angle(c);
	if (addr_list_is(c, ':') && !in_group) {
		addr_list_next(c);
		if ((r = addr_list_elements(c, true)) < 0)
			return r;
		if (!addr_list_is(c, ';'))
			return PR_EINVAL;
		addr_list_next(c);
		return 0;
	}
	if (addr_list_is(c, '@') && words == 1) {
		addr_list_next(c);
		if (c->t != ADDR_LIST_T_WORD && c->t != ADDR_LIST_T_DLIT)
			return PR_EINVAL;
		if ((r = addr_list_emit(c, first, flen, c->ts, c->tlen)) < 0)
			return r;
		addr_list_next(c);
		return 0;
	}
	return PR_EINVAL;
}

/* Addresses separated by ",", up to the end (or ";" in a group). */
static int
addr_list_elements(struct addr_list_ctx *c, bool in_group)
{
	int r;

	for (;;) {
		/* RFC 5322 4.4: obs-addr-list allows empty elements. */
		while (addr_list_is(c, ','))
			addr_list_next(c);
		if (c->t == ADDR_LIST_T_END || (in_group &&
		    addr_list_is(c, ';')))
			return 0;
		if ((r = addr_list_address(c, in_group)) < 0)
			return r;
		if (c->t == ADDR_LIST_T_END || (in_group &&
		    addr_list_is(c, ';')))
			return 0;
		if (!addr_list_is(c, ','))
			return PR_EINVAL;
	}
}

int
addr_list_parse(const char *s, size_t len, char (*out)[ADDR_MAX],
    size_t max, size_t *n_r)
{
	struct addr_list_ctx c;
	int r;

	memset(&c, 0, sizeof(c));
	c.s = s;
	c.len = len;
	c.out = out;
	c.max = max;
	addr_list_next(&c);
	if ((r = addr_list_elements(&c, false)) < 0)
		return r;
	if (c.t != ADDR_LIST_T_END)
		return PR_EINVAL;
	*n_r = c.n;
	return 0;
}
