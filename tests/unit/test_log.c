/* test_log.c - log lines: one per event, peer text escaped, levels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

static FILE *capture;

/* Runs a log call with stderr captured; returns what it printed. */
#define LOGGED(call) (capture_reset(), (call), logged())

static void
capture_reset(void)
{
	rewind(capture);
	if (ftruncate(fileno(capture), 0) != 0)
		abort();
}

static const char *
logged(void)
{
	static char text[16384];
	size_t n;

	fflush(stderr);
	rewind(capture);
	n = fread(text, 1, sizeof(text) - 1, capture);
	text[n] = '\0';
	return text;
}

static size_t
lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

int
main(void)
{
	char big[3000];
	const char *out;
	int saved = dup(2);

	capture = tmpfile();
	if (capture == NULL || dup2(fileno(capture), 2) < 0)
		return 1;
	log_init("postroom-test", LOG_LVL_INFO);

	out = LOGGED(log_info("0123456789", "EHLO %s", "host.test"));
	TAP_OK(strstr(out, ": info: [0123456789] EHLO host.test\n") != NULL,
	    "a line with the level and the session id");
	TAP_EQ_INT(lines(out), 1, "one line");

	/* A peer's CR LF cannot start a line of its own. */
	out = LOGGED(log_info("0123456789", "EHLO %s",
	    "x\r\npostroom-smtpd[1]: info: forged"));
	TAP_EQ_INT(lines(out), 1, "an injected CR LF stays inside the line");
	TAP_OK(strstr(out, "EHLO x\\x0d\\x0apostroom-smtpd[1]: info: forged\n")
	    != NULL, "control characters escaped");

	/* Text that looks like an escape is escaped itself. */
	out = LOGGED(log_info(NULL, "user %s", "a\\x0ab\x7f"));
	TAP_OK(strstr(out, ": info: user a\\\\x0ab\\x7f\n") != NULL,
	    "a backslash is doubled, DEL escaped");

	/* C1 controls in UTF-8 (NEL U+0085, CSI U+009B) are escaped; other
	 * UTF-8 (U+00E9, U+00A0) passes as it is. */
	out = LOGGED(log_info(NULL, "helo %s", "a\xc2\x85" "b\xc2\x9b[2J\xc3\xa9\xc2\xa0"));
	TAP_OK(strstr(out, ": info: helo a\\xc2\\x85b\\xc2\\x9b[2J\xc3\xa9\xc2\xa0\n")
	    != NULL, "C1 controls escaped, other UTF-8 kept");

	out = LOGGED(log_debug(NULL, "not shown"));
	TAP_EQ_STR(out, "", "below the level: nothing");
	log_set_level(LOG_LVL_DEBUG);
	out = LOGGED(log_debug(NULL, "shown"));
	TAP_OK(strstr(out, ": debug: shown\n") != NULL, "debug once enabled");

	/* Overlong text is cut, still one line; escaping cannot overflow. */
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	out = LOGGED(log_warn(NULL, "%s", big));
	TAP_EQ_INT(lines(out), 1, "a long line of control characters: one "
	    "line");
	TAP_OK(strlen(out) < 4200, "and bounded (%zu octets)", strlen(out));

	dup2(saved, 2);
	return tap_done();
}
