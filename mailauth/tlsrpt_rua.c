/*
 * tlsrpt_rua.c - where a policy domain wants its TLS reports (RFC 8460
 * 3; see tlsrpt.h): the TXT record at _smtp._tls.DOMAIN, parsed, and the
 * lookups of a day's domains through resolver.h.
 */
#include "tlsrpt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Lookups in flight at once: a day with many domains must not flood the
 * resolver. */
#define TLSRPT_LOOKUPS_AT_ONCE 8
/* A TLSRPT record is short; longer ones are cut here. */
#define TLSRPT_RECORD_MAX 2048

static int
tlsrpt_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The address of a mailto: URI (RFC 6068 2) s[0..len) into out:
 * %-escapes decoded, hfields ("?...") dropped.  0 or PR_EINVAL. */
static int
tlsrpt_mailto(const char *s, size_t len, char out[ADDR_MAX])
{
	size_t i, o = 0;
	int hi, lo, at = 0;
	char c;

	for (i = 0; i < len && s[i] != '?'; i++) {
		c = s[i];
		if (c == '%') {
			if (i + 2 >= len ||
			    (hi = tlsrpt_hex((unsigned char)s[i + 1])) < 0 ||
			    (lo = tlsrpt_hex((unsigned char)s[i + 2])) < 0)
				return PR_EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		/* One address only; nothing that could break a header. */
		if ((unsigned char)c <= ' ' || c == ',' || c == '<' ||
		    c == '>' || c == '"' || c == 0x7f)
			return PR_EINVAL;
		if (c == '@')
			at++;
		if (o + 1 >= ADDR_MAX)
			return PR_EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	if (at != 1 || out[0] == '@' || out[o - 1] == '@')
		return PR_EINVAL;
	return 0;
}

int
tlsrpt_record_parse(const char *rec, size_t len,
    char rua_r[TLSRPT_RUA_MAX][ADDR_MAX], size_t *n_https_r)
{
	const char *p = rec, *end = rec + len, *f, *fe, *u, *ue;
	size_t n = 0;
	bool seen_rua = false;

	*n_https_r = 0;
	/* RFC 8460 3: the version first, exactly and case-sensitively. */
	if (len < 10 || memcmp(rec, "v=TLSRPTv1", 10) != 0)
		return PR_EINVAL;
	p += 10;
	if (p < end && *p != ';' && *p != ' ' && *p != '\t')
		return PR_EINVAL;
	while (p < end) {
		/* field-delim = *WSP ";" *WSP */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p == ';')
			p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		f = p;
		while (p < end && *p != ';')
			p++;
		fe = p;
		while (fe > f && (fe[-1] == ' ' || fe[-1] == '\t'))
			fe--;
		if ((size_t)(fe - f) < 4 || memcmp(f, "rua=", 4) != 0 ||
		    seen_rua)
			continue;       /* extensions are ignored (3) */
		seen_rua = true;
		for (u = f + 4; u < fe; u = ue < fe ? ue + 1 : fe) {
			const char *te;

			while (u < fe && (*u == ' ' || *u == '\t'))
				u++;
			for (ue = u; ue < fe && *ue != ','; ue++)
				;
			te = ue;
			while (te > u && (te[-1] == ' ' || te[-1] == '\t'))
				te--;
			if (te - u > 7 && strncasecmp(u, "mailto:", 7) == 0) {
				if (n < TLSRPT_RUA_MAX &&
				    tlsrpt_mailto(u + 7, (size_t)(te - u - 7),
				    rua_r[n]) == 0)
					n++;
			} else if (te - u > 8 &&
			    strncasecmp(u, "https://", 8) == 0)
				(*n_https_r)++;
		}
	}
	return (int)n;
}

/* --- Lookups ------------------------------------------------------------- */

struct tlsrpt_slot {
	struct tlsrpt_lookup *l;
	size_t i;                     /* dests[i] */
};

struct tlsrpt_lookup {
	struct resolver *res;
	struct tlsrpt_dest *dests;
	struct tlsrpt_slot *slots;    /* one per domain: the query's data */
	size_t n, next, pending;
	void (*done_cb)(void *, const struct tlsrpt_dest *, size_t);
	void *data;
	bool starting;
	bool done;
};

static void tlsrpt_lookup_cb(void *data, const struct resolver_answer *ans);

static void
tlsrpt_lookup_finish(struct tlsrpt_lookup *l)
{
	if (l->done || l->pending > 0 || l->next < l->n || l->starting)
		return;
	l->done = true;
	l->done_cb(l->data, l->dests, l->n);
}

/* Starts lookups while there is room. */
static void
tlsrpt_lookup_more(struct tlsrpt_lookup *l)
{
	char name[ADDR_DOMAIN_MAX + 16];
	struct tlsrpt_slot *s;

	l->starting = true;
	while (l->next < l->n && l->pending < TLSRPT_LOOKUPS_AT_ONCE) {
		s = &l->slots[l->next];
		s->l = l;
		s->i = l->next++;
		snprintf(name, sizeof(name), "_smtp._tls.%s",
		    l->dests[s->i].domain);
		if (resolver_query(l->res, name, RESOLVER_TXT,
		    tlsrpt_lookup_cb, s) < 0) {
			l->dests[s->i].status = PR_EINVAL;
			continue;
		}
		l->pending++;
	}
	l->starting = false;
}

static void
tlsrpt_lookup_cb(void *data, const struct resolver_answer *ans)
{
	struct tlsrpt_slot *s = data;
	struct tlsrpt_lookup *l = s->l;
	struct tlsrpt_dest *d = &l->dests[s->i];
	char rec[TLSRPT_RECORD_MAX], rua[TLSRPT_RUA_MAX][ADDR_MAX];
	size_t i, j, len, n_https, records = 0;
	int n = 0, got;

	l->pending--;
	if (ans->rcode == RESOLVER_NXDOMAIN ||
	    (ans->rcode == RESOLVER_NOERROR && ans->n == 0))
		d->status = PR_ENOENT;
	else if (ans->rcode != RESOLVER_NOERROR)
		d->status = PR_EAGAIN;
	else {
		for (i = 0; i < ans->n; i++) {
			const struct resolver_txt *t = &ans->rr[i].u.txt;

			if (ans->rr[i].type != RESOLVER_TXT)
				continue;
			/* RFC 8460 3: the strings concatenated. */
			for (j = 0, len = 0; j < t->n; j++) {
				size_t k = t->len[j];

				if (len + k >= sizeof(rec))
					k = sizeof(rec) - 1 - len;
				memcpy(rec + len, t->s[j], k);
				len += k;
			}
			rec[len] = '\0';
			got = tlsrpt_record_parse(rec, len, rua, &n_https);
			if (got == PR_EINVAL)
				continue;   /* not a TLSRPT record */
			records++;
			n = got;
			memcpy(d->rua, rua, sizeof(rua));
		}
		/* RFC 8460 3: other than one record means none. */
		if (records > 1)
			d->status = PR_EINVAL;
		else if (records == 0 || n == 0)
			d->status = PR_ENOENT;
		else {
			d->status = 0;
			d->n_rua = (size_t)n;
		}
	}
	if (d->status != 0)
		d->n_rua = 0;
	tlsrpt_lookup_more(l);
	tlsrpt_lookup_finish(l);
}

int
tlsrpt_lookup_new(struct resolver *res, const char *const *domains,
    size_t n, void (*done_cb)(void *data, const struct tlsrpt_dest *dests,
    size_t n), void *data, struct tlsrpt_lookup **l_r)
{
	struct tlsrpt_lookup *l;
	size_t i;

	if (n > TLSRPT_DOMAINS_MAX)
		n = TLSRPT_DOMAINS_MAX;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return PR_ENOMEM;
	l->dests = calloc(n + 1, sizeof(*l->dests));
	l->slots = calloc(n + 1, sizeof(*l->slots));
	if (l->dests == NULL || l->slots == NULL) {
		free(l->dests);
		free(l->slots);
		free(l);
		return PR_ENOMEM;
	}
	l->res = res;
	l->n = n;
	l->done_cb = done_cb;
	l->data = data;
	for (i = 0; i < n; i++) {
		snprintf(l->dests[i].domain, sizeof(l->dests[i].domain), "%s",
		    domains[i]);
		l->dests[i].status = PR_EAGAIN;
	}
	*l_r = l;
	tlsrpt_lookup_more(l);
	tlsrpt_lookup_finish(l);
	return 0;
}

void
tlsrpt_lookup_free(struct tlsrpt_lookup **lp)
{
	struct tlsrpt_lookup *l = *lp;
	size_t i;

	if (l == NULL)
		return;
	if (l->pending > 0)
		for (i = 0; i < l->next; i++)
			resolver_cancel(l->res, &l->slots[i]);
	free(l->dests);
	free(l->slots);
	free(l);
	*lp = NULL;
}
