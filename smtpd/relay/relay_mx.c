/* relay_mx.c - MX ordering (RFC 5321 5.1) and null MX (RFC 7505). */
#include "relay_mx.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

static int
relay_mx_cmp(const void *a, const void *b)
{
	const struct relay_mx *x = a, *y = b;

	return (x->pref > y->pref) - (x->pref < y->pref);
}

void
relay_mx_sort(struct relay_mx *mx, size_t n, relay_mx_rand_fn rnd,
    void *ctx)
{
	struct relay_mx tmp;
	size_t i, j, k, start;

	qsort(mx, n, sizeof(*mx), relay_mx_cmp);
	/* RFC 5321 5.1: "the SMTP client MUST randomize" among hosts of
	 * equal preference. */
	for (start = 0; start < n; start = i) {
		for (i = start + 1; i < n && mx[i].pref == mx[start].pref; i++)
			;
		for (j = i - 1; j > start; j--) {
			k = start + rnd(ctx, (uint32_t)(j - start + 1));
			if (k != j) {
				tmp = mx[j];
				mx[j] = mx[k];
				mx[k] = tmp;
			}
		}
	}
}

bool
relay_mx_is_null(const struct relay_mx *mx, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (mx[i].host[0] == '\0' || strcmp(mx[i].host, ".") == 0)
			return true;
	return false;
}

int
relay_mx_parse_hostport(const char *s, char *host, unsigned *port)
{
	const char *colon, *end;
	unsigned long v;
	char *e;
	size_t n;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return PR_EINVAL;
		n = (size_t)(end - s - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return PR_EINVAL;
		s++;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* A bare IPv6 literal: no port. */
			colon = NULL;
		}
		n = colon != NULL ? (size_t)(colon - s) : strlen(s);
	}
	if (n == 0 || n >= RELAY_HOST_MAX)
		return PR_EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (colon != NULL) {
		v = strtoul(colon + 1, &e, 10);
		if (e == colon + 1 || *e != '\0' || v == 0 || v > 65535)
			return PR_EINVAL;
		*port = (unsigned)v;
	}
	return 0;
}
