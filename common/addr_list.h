/*
 * addr_list.h - the addresses of an RFC 5322 3.4 address-list, as in the
 * header fields From:, Sender:, To: and Cc:.
 *
 * Display names, comments (RFC 5322 3.2.2) and quoted strings (3.2.4) are
 * read as such, so a "<" or "@" inside them is never taken for the
 * address; groups (3.4) give their members.  Pure: no I/O, no state.
 */
#ifndef POSTROOM_ADDR_LIST_H
#define POSTROOM_ADDR_LIST_H

#include <stddef.h>

#include "addr.h"

/*
 * Parses s[0..len), an unfolded field value, and writes the canonical
 * form (addr_parse_mailbox) of each mailbox's addr-spec to out[0..*n_r),
 * in order.  An empty list (or a group with no members) gives *n_r 0.
 * Returns 0, PR_EINVAL for a syntax error or an address that is not a
 * valid mailbox (*n_r is then undefined), or PR_ENOSPC for more than max
 * mailboxes.
 */
int addr_list_parse(const char *s, size_t len, char (*out)[ADDR_MAX],
    size_t max, size_t *n_r);

#endif
