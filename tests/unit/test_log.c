/* test_log.c - log lines: one per event, peer text escaped, levels. */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* "YYYY-MM-DDTHH:MM:SS.mmm+HH:MM " at the start of s. */
static bool
iso8601_prefix(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.ddd+dd:dd ";
	size_t i;

	for (i = 0; pat[i] != '\0'; i++) {
		if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) :
		    pat[i] == '+' ? s[i] != '+' && s[i] != '-' : s[i] != pat[i])
			return false;
	}
	return true;
}

/* The three styles: journald's stream, a terminal, anything else. */
static void
test_styles(void)
{
	char env[64];
	struct stat sb;
	const char *out;
	int m, t;

	if (fstat(fileno(capture), &sb) < 0)
		abort();
	snprintf(env, sizeof(env), "%llu:%llu",
	    (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	TAP_EQ_INT(log_style_detect(2), LOG_STYLE_JOURNAL,
	    "JOURNAL_STREAM names stderr: journal style");
	log_init("postroom-test", LOG_LVL_DEBUG);
	out = LOGGED(log_err("0123456789", "auth client=%s", "192.0.2.1"));
	TAP_EQ_STR(out, "<3>[0123456789] auth client=192.0.2.1\n",
	    "journal: <3> for an error, no name, no PID, no level word");
	out = LOGGED(log_warn(NULL, "w"));
	TAP_EQ_STR(out, "<4>w\n", "journal: <4> for a warning");
	out = LOGGED(log_info(NULL, "i"));
	TAP_EQ_STR(out, "<6>i\n", "journal: <6> for info");
	out = LOGGED(log_debug(NULL, "d"));
	TAP_EQ_STR(out, "<7>d\n", "journal: <7> for debug");
	out = LOGGED(log_info(NULL, "%s", "x\n<3>forged"));
	TAP_EQ_STR(out, "<6>x\\x0a<3>forged\n",
	    "journal: a peer cannot start a line with its own priority");

	snprintf(env, sizeof(env), "%llu:%llu",
	    (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino + 1);
	setenv("JOURNAL_STREAM", env, 1);
	TAP_EQ_INT(log_style_detect(2), LOG_STYLE_PLAIN,
	    "JOURNAL_STREAM of another file: plain style");
	setenv("JOURNAL_STREAM", "garbage", 1);
	TAP_EQ_INT(log_style_detect(2), LOG_STYLE_PLAIN,
	    "a malformed JOURNAL_STREAM: plain style");
	unsetenv("JOURNAL_STREAM");

	m = posix_openpt(O_RDWR | O_NOCTTY);
	t = -1;
	if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0)
		t = open(ptsname(m), O_RDWR | O_NOCTTY);
	TAP_OK(t >= 0 && log_style_detect(t) == LOG_STYLE_TERMINAL,
	    "a terminal: terminal style");
	if (t >= 0)
		close(t);
	if (m >= 0)
		close(m);

	log_set_style(LOG_STYLE_TERMINAL);
	out = LOGGED(log_info("0123456789", "connect client=%s", "::1"));
	TAP_OK(iso8601_prefix(out) && strstr(out, " postroom-test[") ==
	    out + 29 && strstr(out, "]: info: [0123456789] connect "
	    "client=::1\n") != NULL, "terminal: an ISO 8601 time first: %s",
	    out);
	log_set_style(LOG_STYLE_PLAIN);
	log_set_level(LOG_LVL_INFO);
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

	test_styles();
	{
		char vb[LOG_VALUE_MAX], tb[160];

		TAP_EQ_STR(log_value("alice@a.test", vb, sizeof(vb)),
		    "alice@a.test", "a one-word value stays as it is");
		TAP_EQ_STR(log_value("x client=192.0.2.9 status=failed", vb,
		    sizeof(vb)), "\"x client=192.0.2.9 status=failed\"",
		    "a value with spaces is quoted");
		TAP_EQ_STR(log_value("a\"b", vb, sizeof(vb)), "\"a'b\"",
		    "a double quote inside becomes a single one");
		TAP_EQ_STR(log_value("", vb, sizeof(vb)), "\"\"",
		    "an empty value is \"\"");
		TAP_EQ_STR(log_value("a b c d e f", vb, 6), "\"a b\"",
		    "a quoted value is cut to fit, still quoted");
		TAP_EQ_STR(log_tls_fields("TLSv1.3 TLS_AES_256_GCM_SHA384", tb,
		    sizeof(tb)), "protocol=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384",
		    "TLS fields");
	}
	out = LOGGED(log_info(NULL, "plain again"));
	TAP_OK(strncmp(out, "postroom-test[", 14) == 0,
	    "plain: the program name first");

	dup2(saved, 2);
	return tap_done();
}
