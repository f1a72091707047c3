/* log.c - one line per event on stderr, styled for journald, a terminal
 * or a plain file (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

static const char *log_progname = "postroom";
static enum log_level log_min = LOG_LVL_INFO;
static enum log_style log_style = LOG_STYLE_PLAIN;

/* sd-daemon(3) priorities, the syslog levels: err, warning, info,
 * debug; 2 (crit) for fatal(). */
static const char log_prio[] = {
	[LOG_LVL_DEBUG] = '7',
	[LOG_LVL_INFO] = '6',
	[LOG_LVL_WARN] = '4',
	[LOG_LVL_ERR] = '3',
};

static const char *const log_names[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_ERR] = "error",
};

void
log_init(const char *progname, enum log_level min)
{
	log_progname = progname;
	log_min = min;
	log_style = log_style_detect(STDERR_FILENO);
}

enum log_style
log_style_detect(int fd)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	char end;

	/* systemd.exec(5): JOURNAL_STREAM is "DEVICE:INODE" of the stream
	 * it connected; a child that inherited the variable but writes
	 * elsewhere must not use the journal's prefixes. */
	if (js != NULL && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
	    fstat(fd, &sb) == 0 && (unsigned long long)sb.st_dev == dev &&
	    (unsigned long long)sb.st_ino == ino)
		return LOG_STYLE_JOURNAL;
	if (isatty(fd))
		return LOG_STYLE_TERMINAL;
	return LOG_STYLE_PLAIN;
}

void
log_set_style(enum log_style st)
{
	log_style = st;
}

/* "2026-12-01T10:00:00.123+00:00" (ISO 8601, RFC 3339 5.6). */
static void
log_timestamp(char *out, size_t outsz)
{
	struct timeval tv;
	struct tm tm;
	char zone[8];
	size_t n;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(out, outsz, "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(out + n, outsz - n, ".%03ld%.3s:%.2s",
	    (long)(tv.tv_usec / 1000), zone, zone + 3);
}

/* Writes one finished line (text is escaped) in the current style. */
static void
log_write(char prio, const char *level, const char *sid, const char *text)
{
	char ts[40];

	if (log_style == LOG_STYLE_JOURNAL) {
		if (sid != NULL)
			fprintf(stderr, "<%c>[%s] %s\n", prio, sid, text);
		else
			fprintf(stderr, "<%c>%s\n", prio, text);
		return;
	}
	ts[0] = '\0';
	if (log_style == LOG_STYLE_TERMINAL) {
		log_timestamp(ts, sizeof(ts) - 1);
		strcat(ts, " ");
	}
	if (sid != NULL)
		fprintf(stderr, "%s%s[%ld]: %s: [%s] %s\n", ts, log_progname,
		    (long)getpid(), level, sid, text);
	else
		fprintf(stderr, "%s%s[%ld]: %s: %s\n", ts, log_progname,
		    (long)getpid(), level, text);
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

int
log_level_parse(const char *s, enum log_level *lvl_r)
{
	if (strcasecmp(s, "debug") == 0)
		*lvl_r = LOG_LVL_DEBUG;
	else if (strcasecmp(s, "info") == 0)
		*lvl_r = LOG_LVL_INFO;
	else if (strcasecmp(s, "warning") == 0 || strcasecmp(s, "warn") == 0)
		*lvl_r = LOG_LVL_WARN;
	else if (strcasecmp(s, "error") == 0)
		*lvl_r = LOG_LVL_ERR;
	else
		return -1;
	return 0;
}

/*
 * Text from peers (EHLO names, addresses, usernames) ends up in log lines:
 * escape control characters and DEL so a peer cannot inject a fake line,
 * and the backslash itself, so that "\x0a" in a line always means the
 * octet 0x0a and never text a peer typed to look like it.
 */
static size_t
log_escape(char *dst, size_t dstsz, const char *src)
{
	size_t o = 0;

	for (; *src != '\0' && o + 9 < dstsz; src++) {
		unsigned char c = (unsigned char)*src;

		/* C1 controls (U+0080-U+009F, UTF-8 C2 80-C2 9F) are line
		 * and terminal controls too (NEL, CSI). */
		if (c == 0xc2 && (unsigned char)src[1] >= 0x80 &&
		    (unsigned char)src[1] <= 0x9f) {
			o += (size_t)snprintf(dst + o, dstsz - o,
			    "\\x%02x\\x%02x", c, (unsigned char)src[1]);
			src++;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(dst + o, dstsz - o, "\\x%02x", c);
		} else if (c == '\\') {
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
	return o;
}

void
log_msg(enum log_level lvl, const char *sid, const char *fmt, ...)
{
	char raw[2048], esc[4096];
	va_list ap;

	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_escape(esc, sizeof(esc), raw);
	log_write(log_prio[lvl], log_names[lvl], sid, esc);
}

const char *
log_value(const char *v, char *buf, size_t bufsz)
{
	size_t i, o = 0;

	if (v[0] != '\0' && strpbrk(v, " \t\"") == NULL)
		return v;
	if (bufsz < 3)
		return "\"\"";
	buf[o++] = '"';
	for (i = 0; v[i] != '\0' && o + 2 < bufsz; i++)
		buf[o++] = v[i] == '"' ? '\'' : v[i];
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *
log_tls_fields(const char *desc, char *out, size_t outsz)
{
	const char *sp = strchr(desc, ' ');

	if (sp == NULL)
		snprintf(out, outsz, "protocol=%s", desc);
	else
		snprintf(out, outsz, "protocol=%.*s cipher=%s",
		    (int)(sp - desc), desc, sp + 1);
	return out;
}

void
log_new_sid(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[LOG_SID_LEN / 2];
	size_t i;

	randombytes_buf(rnd, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[LOG_SID_LEN] = '\0';
}

void
fatal(const char *fmt, ...)
{
	char raw[1024], esc[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_escape(esc, sizeof(esc), raw);
	log_write('2', "fatal", NULL, esc);
	exit(1);
}
