/*
 * fuzz_msgid.c - libFuzzer target for the Message-ID finder
 * (common/msgid.c) over a message start a peer writes: folded fields,
 * no final newline, bare CR and LF, NULs, overlong tokens.
 *
 * What it finds must be a token as RFC 5322 3.6.4 shapes it ("<", no
 * white space or control, an "@" with text on both sides, ">"), shorter
 * than MSGID_MAX; a start of the same input (a message read only in
 * part) finds that token or nothing, never another.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_msgid tests/fuzz/corpus_msgid
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[MSGID_MAX], again[MSGID_MAX];
	size_t n, i, at = 0;
	uint8_t *copy;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	if (msgid_find(copy, size, id) == 0) {
		FUZZ_CHECK(id[0] == '\0');
		free(copy);
		return 0;
	}
	n = strlen(id);
	FUZZ_CHECK(n >= 5 && n < MSGID_MAX);
	FUZZ_CHECK(id[0] == '<' && id[n - 1] == '>');
	for (i = 1; i + 1 < n; i++) {
		FUZZ_CHECK((unsigned char)id[i] > ' ' && id[i] != 0x7f &&
		    id[i] != '<' && id[i] != '>');
		if (id[i] == '@')
			at = i;
	}
	FUZZ_CHECK(at > 1 && at + 2 < n);
	FUZZ_CHECK(memmem(copy, size, id, n) != NULL);
	for (i = 1; i < 4; i++)
		if (msgid_find(copy, size * i / 4, again) == 1)
			FUZZ_CHECK(strcmp(id, again) == 0);
	free(copy);
	return 0;
}
