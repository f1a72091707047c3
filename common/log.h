/*
 * log.h - logging to stderr, one line per event.
 *
 * The daemons run in the foreground and journald captures stderr, so a line
 * is "<level>: [session] text".  Session ids are short random hex strings
 * that tie together every line of one connection.
 */
#ifndef POSTROOM_LOG_H
#define POSTROOM_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* Sets the program name and minimum level printed. */
void log_init(const char *progname, enum log_level min);
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

/* Fills out (at least LOG_SID_LEN + 1 bytes) with a new random session id. */
#define LOG_SID_LEN 10
void log_new_sid(char *out);

/* Logs and exits(1).  For out-of-memory and impossible states in daemons. */
_Noreturn void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
