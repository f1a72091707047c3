/*
 * authlimit.h - what failed logins mean: the client key of an address,
 * the delay before a password check, and when logins are refused.
 *
 * Both daemons count failures per client and per account across
 * connections and restarts in the store (store_throttle_*); this module
 * turns the counts into a decision, the same for SMTP AUTH and POP3.  It
 * does no I/O and reads no clock, so its unit test is a table.
 *
 * The policy (documented in postroom-smtpd(8) and postroom-pop3d(8)):
 *
 *  - failures are counted per client (an IPv4 address, or an IPv6 /64,
 *    which one subscriber usually holds whole) and per account, over a
 *    window of AUTHLIMIT_WINDOW seconds from the first failure;
 *  - after AUTHLIMIT_DELAY_FREE failures, each new attempt waits before
 *    its password is even checked, AUTHLIMIT_DELAY_MS doubling with each
 *    further failure up to AUTHLIMIT_DELAY_MAX_MS, whether the password
 *    is right or not;
 *  - a client with AUTHLIMIT_CLIENT_MAX failures is refused outright,
 *    right password or not, until its window ends;
 *  - an account with AUTHLIMIT_ACCOUNT_MAX failures is refused to every
 *    client that has failed itself in the window; a client without
 *    failures (the owner at home while someone guesses from elsewhere)
 *    only waits, so guessers cannot lock the owner out.
 */
#ifndef POSTROOM_AUTHLIMIT_H
#define POSTROOM_AUTHLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define AUTHLIMIT_WINDOW 900          /* seconds: 15 minutes */
#define AUTHLIMIT_CLIENT_MAX 10
#define AUTHLIMIT_ACCOUNT_MAX 5
#define AUTHLIMIT_DELAY_FREE 2
#define AUTHLIMIT_DELAY_MS 250
#define AUTHLIMIT_DELAY_MAX_MS 8000

/* "2001:db8:1:2::/64" is 18 + 4 characters at most; IPv4 as it is. */
#define AUTHLIMIT_KEY_MAX 64

enum authlimit_verdict {
	AUTHLIMIT_CHECK,     /* check the password after *delay_ms_r */
	AUTHLIMIT_REFUSE,    /* refuse for now, without checking */
};

/*
 * The client key of a textual address: an IPv6 address becomes its /64
 * ("2001:db8:1:2::/64"), anything else (IPv4, "unknown") stays as it is.
 * out holds AUTHLIMIT_KEY_MAX bytes.  Returns out.
 */
char *authlimit_key(const char *ip, char out[AUTHLIMIT_KEY_MAX]);

/* The decision for an attempt given the failures counted so far, and the
 * delay to wait first (0 with AUTHLIMIT_REFUSE). */
enum authlimit_verdict authlimit_decide(unsigned client_failures,
    unsigned account_failures, uint64_t *delay_ms_r);

#endif
