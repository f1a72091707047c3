/*
 * test_tlsa.c - TLSA records (common/tlsa.c, RFC 6698 2.1) and how
 * common/dns.c reads them out of an answer with its AD bit (RFC 4035
 * 3.2.3): the RDATA bounds at their limits, which records DANE for SMTP
 * can use (RFC 7672 3.1.3), the presentation form, and a whole answer
 * message parsed, also cut at every length.  The .c file is included to
 * reach the answer parser (STYLE.md H.25).
 */
#include "../../common/dns.c"

#include "tap.h"

static const uint8_t sha256[32] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
	0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0xff,
};

static const struct {
	uint8_t usage, selector, mtype;
	size_t len;
	bool usable;
} usable_cases[] = {
	{ 3, 1, 1, 32, true },          /* DANE-EE SPKI SHA2-256 */
	{ 3, 0, 1, 32, true },          /* DANE-EE Cert SHA2-256 */
	{ 2, 0, 1, 32, true },          /* DANE-TA Cert SHA2-256 */
	{ 2, 1, 2, 64, true },          /* DANE-TA SPKI SHA2-512 */
	{ 3, 1, 0, 91, true },          /* full SPKI */
	{ 3, 1, 1, 31, false },         /* digest one octet short */
	{ 3, 1, 1, 33, false },
	{ 3, 1, 2, 32, false },         /* SHA2-512 of SHA2-256's size */
	{ 1, 1, 1, 32, false },         /* PKIX-EE: unusable for SMTP */
	{ 0, 0, 1, 32, false },         /* PKIX-TA */
	{ 4, 1, 1, 32, false },         /* unknown usage */
	{ 3, 2, 1, 32, false },         /* unknown selector */
	{ 3, 1, 3, 32, false },         /* unknown matching type */
};

/* An answer to "_25._tcp.mx.test TLSA" with AD set (ad) and one record
 * whose RDATA is rd[0..rdlen); returns its length. */
static size_t
answer(uint8_t *m, bool ad, const uint8_t *rd, size_t rdlen)
{
	static const uint8_t q[] = "\x03_25\x04_tcp\x02mx\x04test";
	size_t o = 0;

	memset(m, 0, 12);
	m[2] = 0x81;                    /* QR, RD */
	m[3] = 0x80 | (ad ? 0x20 : 0);  /* RA, AD */
	m[5] = 1;                       /* QDCOUNT */
	m[7] = 1;                       /* ANCOUNT */
	o = 12;
	memcpy(m + o, q, sizeof(q));    /* the name and its root label */
	o += sizeof(q);
	m[o++] = 0;
	m[o++] = RESOLVER_TLSA;
	m[o++] = 0;
	m[o++] = 1;
	m[o++] = 0xc0;                  /* the owner: the question's name */
	m[o++] = 12;
	m[o++] = 0;
	m[o++] = RESOLVER_TLSA;
	m[o++] = 0;
	m[o++] = 1;
	memcpy(m + o, "\x00\x00\x01\x2c", 4);  /* TTL 300 */
	o += 4;
	m[o++] = (uint8_t)(rdlen >> 8);
	m[o++] = (uint8_t)rdlen;
	memcpy(m + o, rd, rdlen);
	return o + rdlen;
}

int
main(void)
{
	uint8_t rd[3 + TLSA_DATA_MAX + 1], m[8192];
	struct dns_parsed *p = calloc(1, sizeof(*p));
	struct dns_query q;
	struct tlsa_rr rr;
	char out[200], follow[256];
	size_t i, len, cut;
	enum resolver_rcode rc;

	/* RDATA bounds: three octets and at least one of data. */
	memset(rd, 0xab, sizeof(rd));
	TAP_OK(!tlsa_parse(rd, 3, &rr), "RDATA of 3 octets: refused");
	TAP_OK(tlsa_parse(rd, 4, &rr) && rr.len == 1, "4 octets: one of data");
	TAP_OK(tlsa_parse(rd, 3 + TLSA_DATA_MAX, &rr) &&
	    rr.len == TLSA_DATA_MAX, "data of TLSA_DATA_MAX: kept");
	TAP_OK(!tlsa_parse(rd, 3 + TLSA_DATA_MAX + 1, &rr),
	    "data of TLSA_DATA_MAX + 1: refused");
	TAP_OK(!tlsa_parse(NULL, 0, &rr), "nothing: refused");

	for (i = 0; i < sizeof(usable_cases) / sizeof(usable_cases[0]); i++) {
		rr.usage = usable_cases[i].usage;
		rr.selector = usable_cases[i].selector;
		rr.mtype = usable_cases[i].mtype;
		rr.data = rd;
		rr.len = usable_cases[i].len;
		TAP_EQ_INT(tlsa_usable(&rr), usable_cases[i].usable,
		    "usable %u %u %u (%zu octets)", rr.usage, rr.selector,
		    rr.mtype, rr.len);
	}

	rr.usage = 3;
	rr.selector = 1;
	rr.mtype = 1;
	rr.data = sha256;
	rr.len = 4;
	TAP_EQ_INT(tlsa_format(&rr, out, sizeof(out)), 14, "format: length");
	TAP_EQ_STR(out, "3 1 1 01020304", "format: presentation form");
	TAP_EQ_INT(tlsa_format(&rr, out, 10), 14, "format cut: full length");
	TAP_EQ_STR(out, "3 1 1 01", "format cut: whole octets only");

	/* A whole answer through common/dns.c's parser. */
	rd[0] = 3;
	rd[1] = 1;
	rd[2] = 1;
	memcpy(rd + 3, sha256, 32);
	memset(&q, 0, sizeof(q));
	q.type = RESOLVER_TLSA;
	snprintf(q.name, sizeof(q.name), "_25._tcp.mx.test");
	len = answer(m, true, rd, 35);
	rc = dns_parse_answer(&q, m, len, p, follow, sizeof(follow));
	TAP_EQ_INT(rc, RESOLVER_NOERROR, "answer: NOERROR");
	TAP_EQ_INT(p->n, 1, "answer: one TLSA record");
	TAP_OK(p->ad, "answer: AD bit read");
	TAP_OK(p->rr[0].u.tlsa.usage == 3 && p->rr[0].u.tlsa.selector == 1 &&
	    p->rr[0].u.tlsa.mtype == 1 && p->rr[0].u.tlsa.len == 32 &&
	    memcmp(p->rr[0].u.tlsa.data, sha256, 32) == 0,
	    "answer: the record's fields");
	TAP_EQ_STR(p->owner, "_25._tcp.mx.test", "answer: where it was found");
	len = answer(m, false, rd, 35);
	dns_parse_answer(&q, m, len, p, follow, sizeof(follow));
	TAP_OK(!p->ad && p->n == 1, "answer without AD: not validated");
	/* RDATA too short for TLSA: kept, but without data, so unusable
	 * (a dropped record would read as no TLSA at all). */
	len = answer(m, true, rd, 3);
	dns_parse_answer(&q, m, len, p, follow, sizeof(follow));
	TAP_EQ_INT(p->n, 1, "TLSA RDATA of 3 octets: kept");
	if (p->n == 1) {
		rr.usage = p->rr[0].u.tlsa.usage;
		rr.selector = p->rr[0].u.tlsa.selector;
		rr.mtype = p->rr[0].u.tlsa.mtype;
		rr.data = p->rr[0].u.tlsa.data;
		rr.len = p->rr[0].u.tlsa.len;
		TAP_OK(rr.len == 0 && rr.data == NULL && rr.usage == 3 &&
		    !tlsa_usable(&rr), "TLSA RDATA of 3 octets: unusable");
	}
	/* Every cut of the message: no record that runs past the end. */
	len = answer(m, true, rd, 35);
	for (cut = 0; cut < len; cut++) {
		dns_parse_answer(&q, m, cut, p, follow, sizeof(follow));
		if (p->n != 0)
			break;
	}
	TAP_EQ_INT(cut, len, "a message cut anywhere yields no record");
	/* The query asks for AD (RFC 6840 5.7). */
	len = dns_build_query("mx.test", RESOLVER_TLSA, m, sizeof(m));
	TAP_OK(len > 12 && (m[3] & 0x20) != 0, "queries carry the AD bit");
	free(p);
	return tap_done();
}
