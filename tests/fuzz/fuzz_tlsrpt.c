/*
 * fuzz_tlsrpt.c - libFuzzer target for what TLS reporting reads from
 * the network (mailauth/tlsrpt_rua.c, RFC 8460 3): a _smtp._tls TXT
 * record as a DNS server sends it, any octets, no NUL at the end.
 *
 * Every address it takes must be one mailto: address with nothing that
 * could end or add a header field (no control, space, comma, angle
 * bracket or quote), one "@" inside, shorter than ADDR_MAX, and at most
 * TLSRPT_RUA_MAX of them.  The report built for such an address with the
 * record itself as a failure-reason-code must be a message (and JSON)
 * within their bounds.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_tlsrpt tests/fuzz/corpus_tlsrpt
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char rua[TLSRPT_RUA_MAX][ADDR_MAX], *copy, *text;
	const char *to[TLSRPT_RUA_MAX];
	struct buf json, msg;
	size_t i, k, https, at;
	int n;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	n = tlsrpt_record_parse(copy, size, rua, &https);
	free(copy);
	FUZZ_CHECK(n >= -1 && n <= TLSRPT_RUA_MAX);
	for (i = 0; i < (size_t)(n > 0 ? n : 0); i++) {
		at = 0;
		for (k = 0; rua[i][k] != '\0'; k++) {
			unsigned char c = (unsigned char)rua[i][k];

			FUZZ_CHECK(c > ' ' && c != 0x7f && c != ',' &&
			    c != '<' && c != '>' && c != '"');
			if (c == '@')
				at++;
		}
		FUZZ_CHECK(k > 2 && k < ADDR_MAX && at == 1);
		FUZZ_CHECK(rua[i][0] != '@' && rua[i][k - 1] != '@');
		to[i] = rua[i];
	}
	if (n <= 0)
		return 0;
	/* The input as text in a report: JSON-escaped, bounded. */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	{
		const struct tlsrpt_row row = { "no-policy-found", "",
		    "validation-failure", "mx.b.test", "192.0.2.1", "", text,
		    1 };
		const struct tlsrpt_info info = { "o", "mx.a.test",
		    "postmaster@a.test", "noreply-tlsrpt@a.test", "b.test",
		    "1+b.test@mx.a.test", "1", 20000 };

		buf_init(&json, TLSRPT_JSON_MAX);
		buf_init(&msg, TLSRPT_MSG_MAX);
		FUZZ_CHECK(tlsrpt_json(&info, &row, 1, &json) == 0);
		for (i = 0; i < json.len; i++)
			FUZZ_CHECK(json.p[i] >= 0x20 || json.p[i] == '\n' ||
			    json.p[i] == '\t');
		FUZZ_CHECK(tlsrpt_mime(&info, to, (size_t)n, json.p, json.len,
		    0, &msg) == 0);
		buf_fini(&json);
		buf_fini(&msg);
	}
	free(text);
	return 0;
}
