/*
 * fuzz_doctor.c - libFuzzer target for what `postroom doctor` reads from
 * the network (tools/doctor_parse.c): the MTA-STS and TLS-RPT TXT records
 * a domain publishes (RFC 8461 3.1, RFC 8460 3) and the SMTP and POP3
 * replies of a listener (RFC 5321 4.2, RFC 1939 3, RFC 2449 5).
 *
 * Byte 0 picks the parser; for replies, byte 1 the size of the chunks the
 * input comes in, so that lines split anywhere.  A reply reader must take
 * at most what it was given, keep its texts NUL-terminated within their
 * bounds, and once it has a reply, leave the rest alone.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_doctor -dict=tests/fuzz/doctor.dict \
 *	    tests/fuzz/corpus_doctor
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void
fuzz_record(const uint8_t *p, size_t n, bool sts)
{
	const char *why = NULL;
	char *s = malloc(n + 1);
	int r;

	if (s == NULL)
		return;
	memcpy(s, p, n);
	s[n] = '\0';
	r = sts ? doctor_sts_record(s, n, &why) :
	    doctor_tlsrpt_record(s, n, &why);
	FUZZ_CHECK(r == 0 || r == PR_ENOENT || r == PR_EINVAL);
	FUZZ_CHECK(r != PR_EINVAL || why != NULL);
	free(s);
}

static void
fuzz_reply(const uint8_t *p, size_t n, enum doctor_reply_kind kind,
    size_t chunk)
{
	struct doctor_reply rep;
	size_t off = 0, len, used;
	int r = 0;

	doctor_reply_init(&rep, kind);
	while (off < n) {
		len = n - off < chunk ? n - off : chunk;
		r = doctor_reply_feed(&rep, p + off, len, &used);
		FUZZ_CHECK(used <= len);
		FUZZ_CHECK(rep.len <= DOCTOR_REPLY_LINE_MAX);
		FUZZ_CHECK(memchr(rep.first, '\0', sizeof(rep.first)) != NULL);
		off += used;
		if (r != 0)
			break;
		FUZZ_CHECK(used == len);
	}
	if (r == 1 && kind == DOCTOR_REPLY_SMTP)
		FUZZ_CHECK(rep.code >= 200 && rep.code <= 599);
	if (r == 1 && kind != DOCTOR_REPLY_SMTP)
		FUZZ_CHECK(rep.code == 0 || rep.code == 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	switch (data[0] % 5) {
	case 0:
		fuzz_record(data + 2, size - 2, true);
		break;
	case 1:
		fuzz_record(data + 2, size - 2, false);
		break;
	default:
		fuzz_reply(data + 2, size - 2,
		    (enum doctor_reply_kind)(data[0] % 5 - 2),
		    (size_t)data[1] % 64 + 1);
		break;
	}
	return 0;
}
