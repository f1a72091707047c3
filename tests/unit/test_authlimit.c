/*
 * test_authlimit.c - client keys (an IPv6 client is its /64) and the
 * throttling decision for failed logins, as tables.
 */
#include <stdio.h>
#include <string.h>

#include "authlimit.h"
#include "tap.h"

static const struct {
	const char *ip, *want;
} keys[] = {
	{ "192.0.2.1", "192.0.2.1" },
	{ "127.0.0.1", "127.0.0.1" },
	{ "2001:db8:1:2::1", "2001:db8:1:2::/64" },
	{ "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64" },
	{ "2001:db8:1:3::1", "2001:db8:1:3::/64" },
	{ "::1", "::/64" },
	{ "fd00:1::2", "fd00:1::/64" },
	{ "unknown", "unknown" },
	{ "not:an:address", "not:an:address" },
};

static const struct {
	unsigned client, account;
	enum authlimit_verdict want;
	uint64_t delay;
} rows[] = {
	{ 0, 0, AUTHLIMIT_CHECK, 0 },
	{ 2, 0, AUTHLIMIT_CHECK, 0 },
	{ 3, 0, AUTHLIMIT_CHECK, 250 },
	{ 4, 1, AUTHLIMIT_CHECK, 500 },
	{ 6, 0, AUTHLIMIT_CHECK, 2000 },
	{ 8, 0, AUTHLIMIT_CHECK, 8000 },
	{ 9, 0, AUTHLIMIT_CHECK, 8000 },
	/* The client's limit, at max - 1 and at max. */
	{ AUTHLIMIT_CLIENT_MAX - 1, 0, AUTHLIMIT_CHECK, 8000 },
	{ AUTHLIMIT_CLIENT_MAX, 0, AUTHLIMIT_REFUSE, 0 },
	{ 100, 0, AUTHLIMIT_REFUSE, 0 },
	/* An account guessed at from elsewhere: a clean client waits, a
	 * client that failed too is refused. */
	{ 0, AUTHLIMIT_ACCOUNT_MAX - 1, AUTHLIMIT_CHECK, 500 },
	{ 0, AUTHLIMIT_ACCOUNT_MAX, AUTHLIMIT_CHECK, 1000 },
	{ 0, 1000, AUTHLIMIT_CHECK, 8000 },
	{ 1, AUTHLIMIT_ACCOUNT_MAX - 1, AUTHLIMIT_CHECK, 500 },
	{ 1, AUTHLIMIT_ACCOUNT_MAX, AUTHLIMIT_REFUSE, 0 },
};

int
main(void)
{
	char out[AUTHLIMIT_KEY_MAX];
	uint64_t d;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		TAP_EQ_STR(authlimit_key(keys[i].ip, out), keys[i].want,
		    "key of %s", keys[i].ip);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum authlimit_verdict v = authlimit_decide(rows[i].client,
		    rows[i].account, &d);

		TAP_OK(v == rows[i].want && d == rows[i].delay,
		    "client %u account %u: %s after %llu ms (got %s, %llu)",
		    rows[i].client, rows[i].account,
		    rows[i].want == AUTHLIMIT_CHECK ? "check" : "refuse",
		    (unsigned long long)rows[i].delay,
		    v == AUTHLIMIT_CHECK ? "check" : "refuse",
		    (unsigned long long)d);
	}
	return tap_done();
}
