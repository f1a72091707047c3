/* iprev.c - RFC 8601 3 iprev over the resolver interface: iprev.h. */
#include "iprev.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* One PTR name being looked up forward. */
struct iprev_name {
	struct iprev *x;
	char name[256];
};

struct iprev {
	struct resolver *r;
	iprev_cb cb;
	void *data;
	bool v6;
	uint8_t addr[16];
	unsigned wait;         /* lookups in flight */
	bool temp;
	char name[256];        /* the first name that led back */
	struct iprev_name names[IPREV_NAMES_MAX];
};

const char *
iprev_result_str(enum iprev_result r)
{
	switch (r) {
	case IPREV_PASS: return "pass";
	case IPREV_FAIL: return "fail";
	case IPREV_TEMPERROR: return "temperror";
	}
	return "temperror";
}

int
iprev_revname(const char *ip, const char *suffix, char *out, size_t outsz)
{
	uint8_t a[16];
	size_t off = 0;
	int i, n;

	if (inet_pton(AF_INET, ip, a) == 1) {
		n = snprintf(out, outsz, "%u.%u.%u.%u.%s", a[3], a[2], a[1],
		    a[0], suffix);
		return n < 0 || (size_t)n >= outsz ? PR_EINVAL : 0;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return PR_EINVAL;
	/* RFC 3596 2.5: nibbles, least significant first. */
	for (i = 15; i >= 0; i--) {
		n = snprintf(out + off, outsz - off, "%x.%x.", a[i] & 0xf,
		    a[i] >> 4);
		if (n < 0 || (size_t)n >= outsz - off)
			return PR_EINVAL;
		off += (size_t)n;
	}
	n = snprintf(out + off, outsz - off, "%s", suffix);
	return n < 0 || (size_t)n >= outsz - off ? PR_EINVAL : 0;
}

static bool
iprev_transient(const struct resolver_answer *ans)
{
	return ans->rcode == RESOLVER_TIMEOUT || ans->rcode ==
	    RESOLVER_SERVFAIL;
}

/* One lookup is over; the last one reports. */
static void
iprev_settle(struct iprev *x)
{
	enum iprev_result r;

	if (--x->wait > 0)
		return;
	r = x->name[0] != '\0' ? IPREV_PASS : x->temp ? IPREV_TEMPERROR :
	    IPREV_FAIL;
	x->cb(x->data, r, x->name);
}

static void
iprev_fwd_cb(void *data, const struct resolver_answer *ans)
{
	struct iprev_name *nm = data;
	struct iprev *x = nm->x;
	size_t i;

	if (iprev_transient(ans))
		x->temp = true;
	for (i = 0; i < ans->n && x->name[0] == '\0'; i++)
		if ((!x->v6 && ans->rr[i].type == RESOLVER_A &&
		    memcmp(ans->rr[i].u.a, x->addr, 4) == 0) ||
		    (x->v6 && ans->rr[i].type == RESOLVER_AAAA &&
		    memcmp(ans->rr[i].u.aaaa, x->addr, 16) == 0))
			snprintf(x->name, sizeof(x->name), "%s", nm->name);
	iprev_settle(x);
}

static void
iprev_ptr_cb(void *data, const struct resolver_answer *ans)
{
	struct iprev *x = data;
	size_t i;
	unsigned n = 0;

	if (iprev_transient(ans))
		x->temp = true;
	for (i = 0; i < ans->n && n < IPREV_NAMES_MAX; i++) {
		struct iprev_name *nm = &x->names[n];

		if (ans->rr[i].type != RESOLVER_PTR ||
		    strlen(ans->rr[i].u.ptr) >= sizeof(nm->name))
			continue;
		nm->x = x;
		snprintf(nm->name, sizeof(nm->name), "%s", ans->rr[i].u.ptr);
		if (resolver_query(x->r, nm->name, x->v6 ? RESOLVER_AAAA :
		    RESOLVER_A, iprev_fwd_cb, nm) == 0) {
			x->wait++;
			n++;
		}
	}
	iprev_settle(x);
}

int
iprev_new(struct resolver *r, const char *ip, iprev_cb cb, void *data,
    struct iprev **x_r)
{
	struct iprev *x;
	char name[128];
	int rc;

	*x_r = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return PR_ENOMEM;
	x->v6 = strchr(ip, ':') != NULL;
	if (inet_pton(x->v6 ? AF_INET6 : AF_INET, ip, x->addr) != 1 ||
	    iprev_revname(ip, x->v6 ? "ip6.arpa" : "in-addr.arpa", name,
	    sizeof(name)) < 0) {
		free(x);
		return PR_EINVAL;
	}
	x->r = r;
	x->cb = cb;
	x->data = data;
	if ((rc = resolver_query(r, name, RESOLVER_PTR, iprev_ptr_cb, x)) <
	    0) {
		free(x);
		return rc;
	}
	x->wait = 1;
	*x_r = x;
	return 0;
}

void
iprev_free(struct iprev **xp)
{
	struct iprev *x = *xp;
	unsigned i;

	if (x == NULL)
		return;
	resolver_cancel(x->r, x);
	for (i = 0; i < IPREV_NAMES_MAX; i++)
		resolver_cancel(x->r, &x->names[i]);
	free(x);
	*xp = NULL;
}
