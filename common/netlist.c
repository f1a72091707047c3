/* netlist.c - client networks (see netlist.h). */
#include "netlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"

/* One "addr[/prefix]" of len octets into *n. */
static int
netlist_parse_one(const char *s, size_t len, struct netlist_net *n)
{
	char buf[64], *slash, *end;
	unsigned long pfx;
	unsigned max;

	if (len == 0 || len >= sizeof(buf))
		return PR_EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		return PR_EINVAL;
	}
	n->prefix = max;
	if (slash != NULL) {
		if (*slash < '0' || *slash > '9')
			return PR_EINVAL;
		pfx = strtoul(slash, &end, 10);
		if (*end != '\0' || pfx > max)
			return PR_EINVAL;
		n->prefix = (unsigned)pfx;
	}
	return 0;
}

int
netlist_parse(const char *s, struct netlist *nl)
{
	struct netlist out;
	size_t len;

	memset(&out, 0, sizeof(out));
	for (;;) {
		s += strspn(s, " \t");
		len = strcspn(s, ",");
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len > 0) {
			if (out.n == NETLIST_MAX ||
			    netlist_parse_one(s, len, &out.v[out.n]) < 0)
				return PR_EINVAL;
			out.n++;
		} else if (s[strcspn(s, ",")] == ',') {
			return PR_EINVAL;    /* an empty element */
		}
		s += strcspn(s, ",");
		if (*s != ',')
			break;
		s++;
	}
	*nl = out;
	return 0;
}

static bool
netlist_in(const struct netlist_net *n, const uint8_t *a)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;
	uint8_t mask;

	if (memcmp(n->addr, a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (n->addr[full] & mask) == (a[full] & mask);
}

bool
netlist_match(const struct netlist *nl, const char *ip)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	uint8_t a4[4], a6[16];
	bool v4 = false, v6 = false;

	if (inet_pton(AF_INET, ip, a4) == 1) {
		v4 = true;
	} else if (inet_pton(AF_INET6, ip, a6) == 1) {
		v6 = true;
		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(a4, a6 + 12, 4);
			v4 = true;
		}
	}
	for (unsigned i = 0; i < nl->n; i++) {
		if (nl->v[i].family == AF_INET && v4 &&
		    netlist_in(&nl->v[i], a4))
			return true;
		if (nl->v[i].family == AF_INET6 && v6 &&
		    netlist_in(&nl->v[i], a6))
			return true;
	}
	return false;
}
