/*
 * fuzz_sts_policy.c - libFuzzer target for the MTA-STS parsers
 * (smtpd/relay/relay_sts_policy.c): the _mta-sts TXT record from DNS
 * and the policy file from a recipient domain's web server, both
 * untrusted (RFC 8461 3.1, 3.2).
 *
 * The input is the policy file up to the first NUL; what follows is
 * split at NULs into up to eight TXT records.  Checks: a parsed policy
 * has a known mode, a max_age within RFC 8461 3.2's bound, mx patterns
 * in lower case without a trailing dot that match themselves (a
 * wildcard one label more), and an id of 1 to 32 letters and digits.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_sts_policy tests/fuzz/corpus_sts_policy
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay_sts_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nul;
	const char *recs[8];
	size_t lens[8], n = 0, i, k;
	struct sts_policy pol;
	char id[STS_ID_MAX + 1], why[128], host[RELAY_HOST_MAX + 1];
	const char *w;

	nul = memchr(p, '\0', size);
	if (sts_policy_parse(p, nul != NULL ? (size_t)(nul - p) : size, &pol,
	    why, sizeof(why)) == 0) {
		if (pol.mode != STS_MODE_NONE && pol.mode != STS_MODE_TESTING &&
		    pol.mode != STS_MODE_ENFORCE)
			abort();
		if (pol.max_age < 0 || pol.max_age > STS_MAX_AGE_MAX)
			abort();
		if (pol.mode != STS_MODE_NONE && pol.n_mx == 0)
			abort();
		for (i = 0; i < pol.n_mx; i++) {
			const char *m = pol.mx[i];
			size_t len = strlen(m);

			if (len == 0 || m[len - 1] == '.')
				abort();
			for (k = 0; k < len; k++)
				if (isupper((unsigned char)m[k]))
					abort();
			if (m[0] == '*') {
				if (len + 2 > sizeof(host))
					continue;
				host[0] = 'x';
				memcpy(host + 1, m + 1, len);
				if (len + 1 < RELAY_HOST_MAX &&
				    !sts_mx_match(&pol, host))
					abort();
			} else if (!sts_mx_match(&pol, m)) {
				abort();
			}
		}
	}
	(void)sts_mode_name(pol.mode);
	if (nul == NULL)
		return 0;
	p = nul + 1;
	while (p <= end && n < 8) {
		nul = memchr(p, '\0', (size_t)(end - p));
		recs[n] = p;
		lens[n++] = nul != NULL ? (size_t)(nul - p) : (size_t)(end - p);
		if (nul == NULL)
			break;
		p = nul + 1;
	}
	if (sts_txt_parse(recs, lens, n, id, &w) == 0) {
		size_t len = strlen(id);

		if (len == 0 || len > STS_ID_MAX)
			abort();
		for (k = 0; k < len; k++)
			if (!isalnum((unsigned char)id[k]))
				abort();
	}
	return 0;
}
