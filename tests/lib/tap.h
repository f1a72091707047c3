/*
 * tap.h - a minimal TAP producer for unit tests.
 *
 *   TAP_OK(cond, "name %d", i);  TAP_EQ_INT(got, want, "name");
 *   TAP_EQ_STR(got, want, "name");  return tap_done();
 */
#ifndef POSTROOM_TAP_H
#define POSTROOM_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

/* Prints s on the current TAP line: a line break in a name or a value
 * (a config text, a header field) would end the line and leave the
 * rest as output TAP does not know, so they are shown escaped. */
static inline void
tap_put(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			fputs("\\n", stdout);
		else if (*s == '\r')
			fputs("\\r", stdout);
		else
			putchar(*s);
	}
}

static inline int
tap_ok(int cond, const char *file, int line, const char *name)
{
	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	tap_put(name);
	putchar('\n');
	if (!cond) {
		tap_failed++;
		printf("#   at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define TAP_NAME(...) \
	(snprintf(tap_namebuf, sizeof(tap_namebuf), __VA_ARGS__), tap_namebuf)
static char tap_namebuf[512];

#define TAP_OK(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, TAP_NAME(__VA_ARGS__))

#define TAP_EQ_INT(got, want, ...) do { \
	long long tap_g = (long long)(got), tap_w = (long long)(want); \
	if (!TAP_OK(tap_g == tap_w, __VA_ARGS__)) \
		printf("#   got %lld, want %lld\n", tap_g, tap_w); \
} while (0)

#define TAP_EQ_STR(got, want, ...) do { \
	const char *tap_gs = (got), *tap_ws = (want); \
	if (!TAP_OK(tap_gs != NULL && tap_ws != NULL && \
	    strcmp(tap_gs, tap_ws) == 0, __VA_ARGS__)) \
		{ fputs("#   got  \"", stdout); \
		tap_put(tap_gs ? tap_gs : "(null)"); \
		fputs("\"\n#   want \"", stdout); \
		tap_put(tap_ws ? tap_ws : "(null)"); \
		fputs("\"\n", stdout); } \
} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_failed)
		printf("# %d of %d failed\n", tap_failed, tap_n);
	return tap_failed ? 1 : 0;
}

#endif
