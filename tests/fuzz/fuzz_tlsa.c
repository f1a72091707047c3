/*
 * fuzz_tlsa.c - common/dns.c's answer parser on DNS messages as a
 * resolver may send them, asked for TLSA (RFC 6698 2.1) and following
 * CNAMEs: every record handed on lies within the message, TLSA data
 * within its RDATA bound (common/tlsa.h), and each record formats to its
 * presentation form.  The .c file is included to reach the parser.
 */
#include "../../common/dns.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_parsed p;
	struct dns_query q;
	char follow[256], out[2 * TLSA_DATA_MAX + 16];
	struct tlsa_rr rr;
	size_t i;

	memset(&q, 0, sizeof(q));
	q.type = RESOLVER_TLSA;
	snprintf(q.name, sizeof(q.name), "_25._tcp.mx.test");
	(void)dns_parse_answer(&q, data, size, &p, follow, sizeof(follow));
	if (p.n > DNS_ANSWER_MAX)
		abort();
	for (i = 0; i < p.n; i++) {
		const struct resolver_rr *a = &p.rr[i];

		if (a->type != RESOLVER_TLSA || a->u.tlsa.len > TLSA_DATA_MAX)
			abort();
		/* A record that did not parse is kept without data. */
		if (a->u.tlsa.len == 0 ? a->u.tlsa.data != NULL :
		    a->u.tlsa.data < data ||
		    a->u.tlsa.data + a->u.tlsa.len > data + size)
			abort();
		rr.usage = a->u.tlsa.usage;
		rr.selector = a->u.tlsa.selector;
		rr.mtype = a->u.tlsa.mtype;
		rr.data = a->u.tlsa.data;
		rr.len = a->u.tlsa.len;
		(void)tlsa_usable(&rr);
		if (tlsa_format(&rr, out, sizeof(out)) >= sizeof(out) ||
		    strlen(out) != 6 + 2 * rr.len + (rr.usage > 9) + (rr.usage > 99) + (rr.selector > 9) +
		    (rr.selector > 99) + (rr.mtype > 9) + (rr.mtype > 99))
			abort();
	}
	return 0;
}
