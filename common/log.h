/*
 * log.h - logging to stderr, one line per event.
 *
 * The daemons run in the foreground and write to stderr, in one of three
 * styles chosen at log_init() (docs/LOGGING.md):
 *
 *   journal   stderr is the stream systemd set up (JOURNAL_STREAM names
 *             its device and inode): "<6>[session] text", the sd-daemon
 *             priority prefix of sd-daemon(3) and nothing journald adds
 *             itself (time, program name, PID);
 *   terminal  stderr is a terminal: "2026-12-01T10:00:00.123+00:00
 *             prog[pid]: info: [session] text", ISO 8601 time first;
 *   plain     anything else (a file, a pipe): "prog[pid]: info: [session]
 *             text", for a supervisor that adds its own time.
 *
 * Session ids are short random hex strings that tie together every line
 * of one connection.  The text of per-session and per-message lines is
 * "event key=value ..." as docs/LOGGING.md lists.
 */
#ifndef POSTROOM_LOG_H
#define POSTROOM_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

enum log_style { LOG_STYLE_PLAIN, LOG_STYLE_TERMINAL, LOG_STYLE_JOURNAL };

/* Sets the program name and minimum level printed, and picks the style
 * for stderr with log_style_detect(). */
void log_init(const char *progname, enum log_level min);

/* The style for output on fd: journal when the environment's
 * JOURNAL_STREAM ("DEVICE:INODE") is fd's file, terminal when fd is a
 * tty, else plain. */
enum log_style log_style_detect(int fd);

/* Overrides the style log_init() chose. */
void log_set_style(enum log_style st);
void log_set_level(enum log_level min);

/* Parses "debug", "info", "warning"/"warn", "error".  Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *lvl_r);

/* Writes one line.  sid may be NULL for daemon-wide events.  Control
 * characters in the text are escaped so a peer cannot forge log lines. */
void log_msg(enum log_level lvl, const char *sid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(sid, ...) log_msg(LOG_LVL_DEBUG, (sid), __VA_ARGS__)
#define log_info(sid, ...) log_msg(LOG_LVL_INFO, (sid), __VA_ARGS__)
#define log_warn(sid, ...) log_msg(LOG_LVL_WARN, (sid), __VA_ARGS__)
#define log_err(sid, ...) log_msg(LOG_LVL_ERR, (sid), __VA_ARGS__)

/*
 * A value for a key=value field (docs/LOGGING.md): v itself when it is
 * one word, else v in double quotes with any '"' in it turned into '\'',
 * in buf (bufsz octets, cut to fit), so that a peer's text with spaces
 * ("alice client=192.0.2.9") stays one value.  Returns v or buf.
 */
const char *log_value(const char *v, char *buf, size_t bufsz);
#define LOG_VALUE_MAX 600

/* Formats a TLS description "PROTOCOL CIPHER" as the fields
 * "protocol=PROTOCOL cipher=CIPHER" into out.  Returns out. */
const char *log_tls_fields(const char *desc, char *out, size_t outsz);

/* Fills out (at least LOG_SID_LEN + 1 bytes) with a new random session id. */
#define LOG_SID_LEN 10
void log_new_sid(char *out);

/* Logs and exits(1).  For out-of-memory and impossible states in daemons. */
_Noreturn void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
