/*
 * resolver_table.c - a table-backed resolver for unit tests.
 */
#include "resolver_table.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

#define RESOLVER_TABLE_RR_MAX 32
#define RESOLVER_TABLE_TXT_MAX 16

struct resolver_table_query {
	char name[256];
	enum resolver_type type;
	resolver_cb cb;
	void *data;
	bool cancelled;
};

struct resolver_table {
	struct resolver r;      /* first: the resolver handed out */
	const struct resolver_table_entry *e;
	size_t n;
	struct resolver_table_query *q;
	size_t nq, capq;
	size_t asked;
};

/* The storage behind one answer's records. */
struct resolver_table_answer {
	struct resolver_rr rr[RESOLVER_TABLE_RR_MAX];
	uint8_t txt[RESOLVER_TABLE_RR_MAX][RESOLVER_TABLE_TXT_MAX][256];
	const uint8_t *txt_s[RESOLVER_TABLE_RR_MAX][RESOLVER_TABLE_TXT_MAX];
	size_t txt_len[RESOLVER_TABLE_RR_MAX][RESOLVER_TABLE_TXT_MAX];
	char host[RESOLVER_TABLE_RR_MAX][256];
};

static bool
resolver_table_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static int
resolver_table_query(struct resolver *r, const char *name,
    enum resolver_type type, resolver_cb cb, void *data)
{
	struct resolver_table *t = (struct resolver_table *)r;
	struct resolver_table_query *q;
	size_t len = strlen(name);

	/* RFC 1035 2.3.4: 255 octets on the wire, 253 as text. */
	if (len == 0 || len > 253 || strstr(name, "..") != NULL ||
	    name[0] == '.')
		return PR_EINVAL;
	if (t->nq == t->capq) {
		size_t cap = t->capq ? t->capq * 2 : 8;

		q = realloc(t->q, cap * sizeof(*q));
		if (q == NULL)
			return PR_ENOMEM;
		t->q = q;
		t->capq = cap;
	}
	q = &t->q[t->nq++];
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->type = type;
	q->cb = cb;
	q->data = data;
	q->cancelled = false;
	t->asked++;
	return 0;
}

static void
resolver_table_cancel(struct resolver *r, void *data)
{
	struct resolver_table *t = (struct resolver_table *)r;
	size_t i;

	for (i = 0; i < t->nq; i++)
		if (t->q[i].data == data)
			t->q[i].cancelled = true;
}

static const struct resolver_ops resolver_table_ops = {
	.query = resolver_table_query,
	.cancel = resolver_table_cancel,
};

/* Parses zone-file character-strings ("a" "b\"c") or takes s whole. */
static void
resolver_table_txt(struct resolver_table_answer *a, size_t k, const char *s)
{
	struct resolver_txt *txt = &a->rr[k].u.txt;
	size_t n = 0, len;

	if (s[0] != '"') {
		len = strlen(s) < 255 ? strlen(s) : 255;
		memcpy(a->txt[k][0], s, len);
		a->txt_len[k][0] = len;
		n = 1;
	}
	while (s[0] == '"' && n < RESOLVER_TABLE_TXT_MAX) {
		for (len = 0, s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if (len < 255)
				a->txt[k][n][len++] = (uint8_t)*s;
		}
		a->txt_len[k][n++] = len;
		if (*s == '"')
			s++;
		while (*s == ' ' || *s == '\t')
			s++;
	}
	for (size_t i = 0; i < n; i++)
		a->txt_s[k][i] = a->txt[k][i];
	txt->n = n;
	txt->s = a->txt_s[k];
	txt->len = a->txt_len[k];
}

/* Names in answers carry no trailing dot ("." itself becomes ""). */
static void
resolver_table_nodot(char *name)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		name[n - 1] = '\0';
}

/* Fills one record from an entry's data; false if it does not parse. */
static bool
resolver_table_rr(struct resolver_table_answer *a, size_t k,
    const struct resolver_table_entry *e)
{
	struct resolver_rr *rr = &a->rr[k];
	unsigned pref;

	rr->type = e->type;
	rr->ttl = 300;
	switch (e->type) {
	case RESOLVER_A:
		return inet_pton(AF_INET, e->data, rr->u.a) == 1;
	case RESOLVER_AAAA:
		return inet_pton(AF_INET6, e->data, rr->u.aaaa) == 1;
	case RESOLVER_MX:
		if (sscanf(e->data, "%u %255s", &pref, a->host[k]) != 2 ||
		    pref > 65535)
			return false;
		resolver_table_nodot(a->host[k]);
		rr->u.mx.pref = (uint16_t)pref;
		rr->u.mx.host = a->host[k];
		return true;
	case RESOLVER_PTR:
		snprintf(a->host[k], sizeof(a->host[k]), "%s", e->data);
		resolver_table_nodot(a->host[k]);
		rr->u.ptr = a->host[k];
		return true;
	case RESOLVER_TXT:
		resolver_table_txt(a, k, e->data);
		return true;
	case RESOLVER_TLSA:
		/* Not in tables: the TLSA parser has its own unit test. */
		return false;
	}
	return false;
}

/* Answers query q from the table into a and ans. */
static void
resolver_table_answer(const struct resolver_table *t,
    const struct resolver_table_query *q, struct resolver_table_answer *a,
    struct resolver_answer *ans)
{
	bool known = false;
	size_t i;

	ans->rcode = RESOLVER_NOERROR;
	ans->n = 0;
	ans->rr = a->rr;
	ans->secure = false;
	ans->name = NULL;
	for (i = 0; i < t->n; i++) {
		const struct resolver_table_entry *e = &t->e[i];

		if (!resolver_table_name_eq(e->name, q->name))
			continue;
		known = true;
		if (e->type != q->type)
			continue;
		if (e->rcode != RESOLVER_NOERROR) {
			ans->rcode = e->rcode;
			ans->n = 0;
			return;
		}
		if (e->data != NULL && ans->n < RESOLVER_TABLE_RR_MAX &&
		    resolver_table_rr(a, ans->n, e))
			ans->n++;
	}
	if (!known)
		ans->rcode = RESOLVER_NXDOMAIN;
}

int
resolver_table_new(const struct resolver_table_entry *e, size_t n,
    struct resolver_table **t_r)
{
	struct resolver_table *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return PR_ENOMEM;
	t->r.ops = &resolver_table_ops;
	t->e = e;
	t->n = n;
	*t_r = t;
	return 0;
}

struct resolver *
resolver_table_resolver(struct resolver_table *t)
{
	return &t->r;
}

size_t
resolver_table_run(struct resolver_table *t)
{
	struct resolver_table_answer *a;
	struct resolver_table_query q;
	struct resolver_answer ans;
	size_t ran = 0;

	a = malloc(sizeof(*a));
	if (a == NULL)
		return 0;
	/* First in, first answered; a callback may add queries (or cancel
	 * some) while this runs, so the queue is re-read each time. */
	while (t->nq > 0) {
		q = t->q[0];
		memmove(t->q, t->q + 1, (t->nq - 1) * sizeof(*t->q));
		t->nq--;
		if (q.cancelled)
			continue;
		resolver_table_answer(t, &q, a, &ans);
		q.cb(q.data, &ans);
		ran++;
	}
	free(a);
	return ran;
}

size_t
resolver_table_asked(const struct resolver_table *t)
{
	return t->asked;
}

void
resolver_table_free(struct resolver_table **t)
{
	if (*t == NULL)
		return;
	free((*t)->q);
	free(*t);
	*t = NULL;
}
