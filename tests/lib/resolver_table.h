/*
 * resolver_table.h - a resolver (mailauth/resolver.h) that answers from a
 * table, for unit tests: no network, no loop.  Queries wait until the
 * test calls resolver_table_run(), so the "never from within the query"
 * rule of resolver_query() holds here as it does with c-ares.
 *
 *   static const struct resolver_table_entry zone[] = {
 *       { "a.test", RESOLVER_TXT, RESOLVER_NOERROR, "v=spf1 -all" },
 *       { "sel._domainkey.a.test", RESOLVER_TXT, RESOLVER_NOERROR,
 *         "\"v=DKIM1; k=ed25519; \" \"p=...\"" },
 *       { "mx.a.test", RESOLVER_A, RESOLVER_NOERROR, "192.0.2.1" },
 *       { "b.test", RESOLVER_MX, RESOLVER_NOERROR, "10 mx.b.test" },
 *       { "down.test", RESOLVER_TXT, RESOLVER_SERVFAIL, NULL },
 *   };
 */
#ifndef POSTROOM_RESOLVER_TABLE_H
#define POSTROOM_RESOLVER_TABLE_H

#include <stddef.h>

#include "resolver.h"

/*
 * One record, or one failure.  Entries with the same name and type are
 * the records of one answer, in table order.  rcode other than
 * RESOLVER_NOERROR (data NULL) makes every query for the name and type
 * fail that way.  A name with no entry at all is NXDOMAIN; a name with
 * entries of other types only is an empty NOERROR answer (NODATA).
 *
 * data: A and AAAA an address ("192.0.2.1", "2001:db8::1"); MX
 * "PREF HOST"; PTR a name; TXT the text as one string, or, when it starts
 * with '"', zone-file character-strings ("a" "b", with \" and \\).
 */
struct resolver_table_entry {
	const char *name;
	enum resolver_type type;
	enum resolver_rcode rcode;
	const char *data;
};

struct resolver_table;

/* Makes a resolver over e[0..n), which is borrowed for the resolver's
 * life.  Returns 0 or PR_ENOMEM. */
int resolver_table_new(const struct resolver_table_entry *e, size_t n,
    struct resolver_table **t_r);

/* The resolver to hand to the code under test; valid as long as t. */
struct resolver *resolver_table_resolver(struct resolver_table *t);

/* Answers every query made so far, and those the callbacks make in
 * turn, until none is left.  Returns the number of callbacks run. */
size_t resolver_table_run(struct resolver_table *t);

/* Queries asked so far (cancelled ones included), e.g. to check the
 * lookup limit of RFC 7208 4.6.4. */
size_t resolver_table_asked(const struct resolver_table *t);

/* Frees t (queries still pending are dropped unanswered) and sets *t
 * to NULL. */
void resolver_table_free(struct resolver_table **t);

#endif
