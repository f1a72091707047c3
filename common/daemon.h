/*
 * daemon.h - what both daemons do the same way: command line, config,
 * privilege drop, signals, per-IP connection counting.
 */
#ifndef POSTROOM_DAEMON_H
#define POSTROOM_DAEMON_H

#include <stdbool.h>
#include <uv.h>

#include "cfg.h"
#include "err.h"

/*
 * Parses "[-c FILE] [-h] [-V]", loads the config (cfg_path), sets up
 * logging.  Exits 2 on a usage error and 1 on a config error, with one
 * line on stderr.
 */
void daemon_init(int argc, char **argv, const char *progname,
    struct cfg *cfg);

/* When running as root and [server] user is set: setgid/initgroups/setuid
 * to that user (after the listeners are bound).  Returns 0 or PR_EPERM. */
int daemon_drop_privileges(const struct cfg *cfg, struct pr_err *err);

/*
 * One daemon of a kind per data_dir: takes an exclusive flock(2) on
 * data_dir/NAME (e.g. "smtpd.pid"), created if missing, writes this
 * process's id into it, and keeps it open, so the lock lasts exactly as
 * long as the process (a crashed holder leaves no stale lock).  Returns
 * 0, PR_EBUSY with err naming progname and the holder's pid when another
 * process holds it, or PR_EIO.  A data_dir that does not exist yet is no
 * error here (0, nothing locked): the store reports it better.  Call it
 * before binding the listeners, so that a second instance is told why
 * and not "address in use".
 */
int daemon_lock(const char *data_dir, const char *name, const char *progname,
    struct pr_err *err);
/* The lock of daemon_lock without the pid: for a tool that must keep the
 * daemons off the data_dir while it works (postroom restore).  *fd_r is
 * the descriptor that holds the lock (close it to release), -1 when
 * data_dir does not exist.  Returns as daemon_lock. */
int daemon_lock_hold(const char *data_dir, const char *name,
    const char *progname, int *fd_r, struct pr_err *err);

struct daemon_signals {
	uv_signal_t term, intr, hup;
	void (*stop_cb)(void *data);   /* SIGTERM, SIGINT */
	void (*reload_cb)(void *data); /* SIGHUP */
	void *data;
};

/* Installs SIGTERM/SIGINT/SIGHUP handlers on loop and ignores SIGPIPE. */
void daemon_signals_start(uv_loop_t *loop, struct daemon_signals *s);
void daemon_signals_close(struct daemon_signals *s);

/*
 * Gives freed heap back to the kernel once the daemon goes quiet: a
 * burst of sessions leaves malloc's arenas holding memory (glibc returns
 * only the top of each heap on its own), which malloc_trim(3) releases.
 * A timer checks every DAEMON_TRIM_CHECK_MS; after activity (a
 * connection made since the last check, net_conn_counts) followed by
 * DAEMON_TRIM_QUIET checks with no connection open, it trims once.  The
 * timer does not keep the loop alive; daemon_trim_close closes it.
 */
#define DAEMON_TRIM_CHECK_MS 1000
#define DAEMON_TRIM_QUIET 5

struct daemon_trim {
	uv_timer_t timer;
	/* Called before the trim, when set: what the daemon can give back
	 * besides malloc's free memory (store_release_memory). */
	void (*release_cb)(void *data);
	void *data;
	uint64_t seen;             /* net_conn_counts' made at the last check */
	unsigned quiet;            /* checks in a row with nothing open */
	bool dirty;                /* activity since the last trim */
};

/* Starts the checks; release_cb (may be NULL) and data as in struct
 * daemon_trim. */
void daemon_trim_start(uv_loop_t *loop, struct daemon_trim *t,
    void (*release_cb)(void *data), void *data);
void daemon_trim_close(struct daemon_trim *t);

/* Connections per client, for max_connections_per_ip.  A client is an
 * IPv4 address or an IPv6 /64 (authlimit_key): one host holds a whole /64
 * and could otherwise open connections from each of its addresses. */
struct ipcount;
struct ipcount *ipcount_new(void);
void ipcount_free(struct ipcount **ic);
/* Adds one connection from the address ip (as net_conn_peer gives it)
 * and returns the new count of its client. */
unsigned ipcount_inc(struct ipcount *ic, const char *ip);
/* Takes one back; ip as given to ipcount_inc. */
void ipcount_dec(struct ipcount *ic, const char *ip);

#endif
