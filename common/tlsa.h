/*
 * tlsa.h - TLSA records (RFC 6698) as DANE for SMTP uses them (RFC 7672).
 *
 * Pure: the RDATA parser common/dns.c reads answers with, the rule of
 * which records SMTP can use, and the presentation form that the logs
 * and TLS reports (RFC 8460 4.4 policy-string) show.
 */
#ifndef POSTROOM_TLSA_H
#define POSTROOM_TLSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 6698 2.1.1, 2.1.2, 2.1.3; RFC 7218 acronyms. */
enum tlsa_usage {
	TLSA_PKIX_TA = 0,
	TLSA_PKIX_EE = 1,
	TLSA_DANE_TA = 2,
	TLSA_DANE_EE = 3,
};
enum tlsa_selector {
	TLSA_CERT = 0,
	TLSA_SPKI = 1,
};
enum tlsa_mtype {
	TLSA_FULL = 0,
	TLSA_SHA256 = 1,
	TLSA_SHA512 = 2,
};

/* Certificate association data kept per record at most: a full
 * certificate (matching type 0) of a few KiB fits; a longer record is
 * refused by tlsa_parse, and common/dns.c keeps it without data (len 0),
 * which makes it unusable (RFC 7672 2.2). */
#define TLSA_DATA_MAX 4096

/* One record; data points into the RDATA it was parsed from. */
struct tlsa_rr {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

/* Reads the RDATA rd[0..len) of a TLSA record (RFC 6698 2.1: usage,
 * selector, matching type, then at least one octet of data).  Returns
 * true and fills rr, or false for RDATA too short or with more than
 * TLSA_DATA_MAX octets of data. */
bool tlsa_parse(const uint8_t *rd, size_t len, struct tlsa_rr *rr);

/*
 * Whether DANE for SMTP can use rr (RFC 7672 3.1.3): usage DANE-TA(2)
 * or DANE-EE(3) (PKIX-TA and PKIX-EE are unusable for SMTP), selector
 * Cert(0) or SPKI(1), matching type Full(0), SHA2-256(1) or SHA2-512(2),
 * with data of the digest's length for 1 and 2.
 */
bool tlsa_usable(const struct tlsa_rr *rr);

/* "3 1 1 <hex>" (RFC 6698 2.2, digits and lowercase hex) into out;
 * truncated to outsz - 1.  Returns the length it would have. */
size_t tlsa_format(const struct tlsa_rr *rr, char *out, size_t outsz);

#endif
