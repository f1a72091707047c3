/*
 * fuzz_dns_cache.c - common/dns_cache.c on DNS messages as a server may
 * send them: the TTL reading (RFC 1035 4.1, RFC 2308 5) must stay
 * within the message, and what is kept must come back as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_cache *c;
	uint32_t ttl = 0, age;
	uint8_t *m;
	size_t len;
	bool kept;

	if ((c = dns_cache_new(8)) == NULL)
		abort();
	if (dns_cache_ttl(data, size, &ttl) && ttl == 0)
		abort();
	kept = dns_cache_put(c, "a.test", 16, data, size, 1000);
	m = dns_cache_get(c, "A.TEST", 16, 1000, &len, &age);
	if (kept != (m != NULL))
		abort();
	if (m != NULL && (len != size || memcmp(m, data, size) != 0 ||
	    age != 0))
		abort();
	free(m);
	dns_cache_free(c);
	return 0;
}
