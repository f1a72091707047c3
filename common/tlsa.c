/*
 * tlsa.c - TLSA RDATA (RFC 6698 2.1), usability for SMTP (RFC 7672 3.1.3)
 * and presentation form (RFC 6698 2.2).
 */
#include "tlsa.h"

#include <stdio.h>

bool
tlsa_parse(const uint8_t *rd, size_t len, struct tlsa_rr *rr)
{
	/* RFC 6698 2.1: three octets, then the association data, which
	 * is never empty (2.1.4). */
	if (rd == NULL || len < 4 || len - 3 > TLSA_DATA_MAX)
		return false;
	rr->usage = rd[0];
	rr->selector = rd[1];
	rr->mtype = rd[2];
	rr->data = rd + 3;
	rr->len = len - 3;
	return true;
}

bool
tlsa_usable(const struct tlsa_rr *rr)
{
	if (rr->usage != TLSA_DANE_TA && rr->usage != TLSA_DANE_EE)
		return false;
	if (rr->selector != TLSA_CERT && rr->selector != TLSA_SPKI)
		return false;
	switch (rr->mtype) {
	case TLSA_FULL:
		return rr->len > 0;
	case TLSA_SHA256:
		return rr->len == 32;
	case TLSA_SHA512:
		return rr->len == 64;
	default:
		return false;
	}
}

size_t
tlsa_format(const struct tlsa_rr *rr, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	int n;
	size_t o, i, need;

	n = snprintf(out, outsz, "%u %u %u ", rr->usage, rr->selector,
	    rr->mtype);
	if (n < 0)
		n = 0;
	need = (size_t)n + 2 * rr->len;
	o = (size_t)n < outsz ? (size_t)n : (outsz > 0 ? outsz - 1 : 0);
	for (i = 0; i < rr->len && o + 2 < outsz; i++) {
		out[o++] = hex[rr->data[i] >> 4];
		out[o++] = hex[rr->data[i] & 0x0f];
	}
	if (outsz > 0)
		out[o] = '\0';
	return need;
}
