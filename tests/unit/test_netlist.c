/* test_netlist.c - client network lists ([smtp] etrn_networks). */
#include <string.h>

#include "err.h"
#include "netlist.h"
#include "tap.h"

int
main(void)
{
	struct netlist nl;

	TAP_EQ_INT(netlist_parse("", &nl), 0, "empty list");
	TAP_EQ_INT(nl.n, 0, "no networks");
	TAP_OK(!netlist_match(&nl, "127.0.0.1"), "empty matches nothing");
	TAP_EQ_INT(netlist_parse("192.0.2.0/24, 2001:db8::/32,198.51.100.7 ",
	    &nl), 0, "three networks");
	TAP_EQ_INT(nl.n, 3, "counted");
	TAP_OK(netlist_match(&nl, "192.0.2.200"), "inside the /24");
	TAP_OK(!netlist_match(&nl, "192.0.3.1"), "outside the /24");
	TAP_OK(netlist_match(&nl, "198.51.100.7"), "a single address");
	TAP_OK(!netlist_match(&nl, "198.51.100.8"), "its neighbour");
	TAP_OK(netlist_match(&nl, "2001:db8:ffff::1"), "inside the /32");
	TAP_OK(!netlist_match(&nl, "2001:db9::1"), "outside it");
	TAP_OK(netlist_match(&nl, "::ffff:192.0.2.9"), "IPv4-mapped");
	TAP_OK(!netlist_match(&nl, "not an address"), "garbage matches not");
	TAP_EQ_INT(netlist_parse("10.0.0.0/20", &nl), 0, "odd prefix");
	TAP_OK(netlist_match(&nl, "10.0.15.255") &&
	    !netlist_match(&nl, "10.0.16.0"), "/20 boundary");
	TAP_EQ_INT(netlist_parse("0.0.0.0/0", &nl), 0, "everything");
	TAP_OK(netlist_match(&nl, "203.0.113.1") &&
	    !netlist_match(&nl, "::1"), "/0: every IPv4 address, no IPv6");
	TAP_EQ_INT(netlist_parse("192.0.2.0/33", &nl), PR_EINVAL,
	    "prefix too long");
	TAP_EQ_INT(netlist_parse("192.0.2.0/", &nl), PR_EINVAL,
	    "empty prefix");
	TAP_EQ_INT(netlist_parse("192.0.2.0/-1", &nl), PR_EINVAL,
	    "negative prefix");
	TAP_EQ_INT(netlist_parse("example.org", &nl), PR_EINVAL, "a name");
	TAP_EQ_INT(netlist_parse("192.0.2.1,,192.0.2.2", &nl), PR_EINVAL,
	    "empty element");
	return tap_done();
}
