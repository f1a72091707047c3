/*
 * netlist.h - a list of client networks ("192.0.2.0/24, 2001:db8::/32,
 * 198.51.100.7"), as [smtp] etrn_networks names them (postroom.conf(5)).
 * Pure: no I/O, no clock.
 */
#ifndef POSTROOM_NETLIST_H
#define POSTROOM_NETLIST_H

#include <stdbool.h>
#include <stdint.h>

#define NETLIST_MAX 32

struct netlist_net {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;     /* bits */
};

struct netlist {
	unsigned n;
	struct netlist_net v[NETLIST_MAX];
};

/* Parses s, comma-separated addresses with an optional /prefix ("" = an
 * empty list).  Returns 0, or PR_EINVAL (nothing is kept then). */
int netlist_parse(const char *s, struct netlist *nl);

/* True when ip (textual, as net_conn_peer gives it) is in one of nl's
 * networks.  An IPv4-mapped IPv6 address counts as IPv4. */
bool netlist_match(const struct netlist *nl, const char *ip);

#endif
