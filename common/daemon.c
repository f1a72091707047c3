/* daemon.c - command line, privilege drop, signals, per-IP counts. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <sodium.h>

#include "authlimit.h"
#include "log.h"
#include "net.h"
#include "xmalloc.h"

static void
daemon_usage(const char *progname, FILE *f)
{
	fprintf(f, "usage: %s [-c FILE]\n"
	    "  -c, --config FILE  configuration file (default "
	    "$POSTROOM_CONFIG or " CFG_DEFAULT_PATH ")\n"
	    "  -h, --help         print this help and exit\n"
	    "  -V, --version      print the version and exit\n", progname);
}

static const struct option daemon_long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

void
daemon_init(int argc, char **argv, const char *progname, struct cfg *cfg)
{
	const char *path = NULL;
	struct pr_err err;
	int ch;

	log_init(progname, LOG_LVL_INFO);
	/* Our own message, named after the daemon and not argv[0]. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:hV", daemon_long_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			daemon_usage(progname, stdout);
			exit(0);
		case 'V':
			printf("%s %s\n", progname, POSTROOM_VERSION);
			exit(0);
		case ':':
			fprintf(stderr, "%s: option %s needs an argument\n",
			    progname, argv[optind - 1]);
			daemon_usage(progname, stderr);
			exit(2);
		default:
			if (optopt != 0)
				fprintf(stderr, "%s: unknown option -%c\n",
				    progname, optopt);
			else
				fprintf(stderr, "%s: unknown option %s\n",
				    progname, argv[optind - 1]);
			daemon_usage(progname, stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		daemon_usage(progname, stderr);
		exit(2);
	}
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	cfg_defaults(cfg);
	if (cfg_load(cfg, cfg_path(path), &err) < 0) {
		fprintf(stderr, "%s: %s\n", progname, err.msg);
		exit(1);
	}
	log_set_level((enum log_level)cfg->server.log_level);
}

int
daemon_lock_hold(const char *data_dir, const char *name,
    const char *progname, int *fd_r, struct pr_err *err)
{
	char path[4096], pid[32];
	ssize_t n;
	int fd, e;

	*fd_r = -1;
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, name) >=
	    (int)sizeof(path))
		return pr_err_set(err, PR_EINVAL, "data_dir is too long");
	/* Root-owned after a start as root: a start as the unprivileged user
	 * can still lock it read-only, only not record its pid. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0 &&
	    errno == EACCES)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return pr_err_set(err, PR_EIO, "cannot open %s: %s", path,
		    strerror(errno));
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		e = errno;
		if (e != EWOULDBLOCK) {
			close(fd);
			return pr_err_set(err, PR_EIO, "cannot lock %s: %s",
			    path, strerror(e));
		}
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		close(fd);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\r\n")] = '\0';
		return pr_err_set(err, PR_EBUSY,
		    "another %s (pid %s) is running on data_dir %s: %s is "
		    "locked", progname, pid[0] != '\0' ? pid : "unknown",
		    data_dir, path);
	}
	*fd_r = fd;
	return 0;
}

int
daemon_lock(const char *data_dir, const char *name, const char *progname,
    struct pr_err *err)
{
	char pid[32];
	int fd, r, n;

	if ((r = daemon_lock_hold(data_dir, name, progname, &fd, err)) < 0 ||
	    fd < 0)
		return r;
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* A read-only lock file: the lock alone is what counts. */
		log_debug(NULL, "%s/%s: cannot record the pid: %s", data_dir,
		    name, strerror(errno));
	}
	/* Deliberately never closed: the lock lives with the process. */
	return 0;
}

int
daemon_drop_privileges(const struct cfg *cfg, struct pr_err *err)
{
	struct passwd *pw;

	if (geteuid() != 0 || cfg->server.user[0] == '\0')
		return 0;
	errno = 0;
	pw = getpwnam(cfg->server.user);
	if (pw == NULL)
		return pr_err_set(err, PR_EPERM, "[server] user %s: %s",
		    cfg->server.user, errno ? strerror(errno) : "no such user");
	if (pw->pw_uid == 0)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		return pr_err_set(err, PR_EPERM, "cannot become %s: %s",
		    pw->pw_name, strerror(errno));
	/* Make sure the change cannot be undone. */
	if (setuid(0) == 0)
		return pr_err_set(err, PR_EPERM, "privileges not dropped");
	log_info(NULL, "running as %s (uid %ld)", pw->pw_name,
	    (long)pw->pw_uid);
	return 0;
}

static void
daemon_stop_signal_cb(uv_signal_t *h, int signum)
{
	struct daemon_signals *s = h->data;

	log_info(NULL, "%s: shutting down", strsignal(signum));
	if (s->stop_cb)
		s->stop_cb(s->data);
}

static void
daemon_hup_cb(uv_signal_t *h, int signum)
{
	struct daemon_signals *s = h->data;

	(void)signum;
	log_info(NULL, "SIGHUP: reloading");
	if (s->reload_cb)
		s->reload_cb(s->data);
}

void
daemon_signals_start(uv_loop_t *loop, struct daemon_signals *s)
{
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(loop, &s->term);
	uv_signal_init(loop, &s->intr);
	uv_signal_init(loop, &s->hup);
	s->term.data = s->intr.data = s->hup.data = s;
	uv_signal_start(&s->term, daemon_stop_signal_cb, SIGTERM);
	uv_signal_start(&s->intr, daemon_stop_signal_cb, SIGINT);
	uv_signal_start(&s->hup, daemon_hup_cb, SIGHUP);
}

void
daemon_signals_close(struct daemon_signals *s)
{
	uv_close((uv_handle_t *)&s->term, NULL);
	uv_close((uv_handle_t *)&s->intr, NULL);
	uv_close((uv_handle_t *)&s->hup, NULL);
}

/* --- giving memory back after a burst ------------------------------- */

static void
daemon_trim_cb(uv_timer_t *h)
{
	struct daemon_trim *t = h->data;
	unsigned live;
	uint64_t made;

	net_conn_counts(&live, &made);
	if (made != t->seen || live > 0) {
		t->seen = made;
		t->quiet = 0;
		t->dirty = true;
		return;
	}
	if (!t->dirty || ++t->quiet < DAEMON_TRIM_QUIET)
		return;
	t->dirty = false;
	if (t->release_cb != NULL)
		t->release_cb(t->data);
	/* A daemon-wide line (docs/LOGGING.md 4), at debug level: it comes
	 * after every burst. */
	log_debug(NULL, "idle after a burst: memory trimmed (%s)",
	    malloc_trim(0) ? "some released" : "nothing to release");
}

void
daemon_trim_start(uv_loop_t *loop, struct daemon_trim *t,
    void (*release_cb)(void *data), void *data)
{
	unsigned live;

	memset(t, 0, sizeof(*t));
	t->release_cb = release_cb;
	t->data = data;
	net_conn_counts(&live, &t->seen);
	uv_timer_init(loop, &t->timer);
	t->timer.data = t;
	uv_timer_start(&t->timer, daemon_trim_cb, DAEMON_TRIM_CHECK_MS,
	    DAEMON_TRIM_CHECK_MS);
	uv_unref((uv_handle_t *)&t->timer);
}

void
daemon_trim_close(struct daemon_trim *t)
{
	if (!uv_is_closing((uv_handle_t *)&t->timer))
		uv_close((uv_handle_t *)&t->timer, NULL);
}

/* --- per-IP connection counts: a small chained hash table ------------- */

#define IPCOUNT_BUCKETS 1024

struct ipcount_entry {
	struct ipcount_entry *next;
	unsigned count;
	char ip[];
};

struct ipcount {
	struct ipcount_entry *b[IPCOUNT_BUCKETS];
	unsigned char key[crypto_shorthash_KEYBYTES];
};

struct ipcount *
ipcount_new(void)
{
	struct ipcount *ic = xcalloc(1, sizeof(*ic));

	/* Keyed hash: a peer cannot pick addresses that share a bucket. */
	crypto_shorthash_keygen(ic->key);
	return ic;
}

void
ipcount_free(struct ipcount **ic)
{
	size_t i;

	if (*ic == NULL)
		return;
	for (i = 0; i < IPCOUNT_BUCKETS; i++) {
		struct ipcount_entry *e = (*ic)->b[i], *n;

		for (; e != NULL; e = n) {
			n = e->next;
			free(e);
		}
	}
	free(*ic);
	*ic = NULL;
}

static struct ipcount_entry **
ipcount_slot(struct ipcount *ic, const char *ip)
{
	unsigned char h[crypto_shorthash_BYTES];
	struct ipcount_entry **pp;
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)ip, strlen(ip), ic->key);
	memcpy(&v, h, sizeof(v));
	pp = &ic->b[v % IPCOUNT_BUCKETS];
	while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	return pp;
}

unsigned
ipcount_inc(struct ipcount *ic, const char *addr)
{
	char ip[AUTHLIMIT_KEY_MAX];
	struct ipcount_entry **pp;
	size_t n;

	/* An IPv6 client counts as its /64 (authlimit.h). */
	authlimit_key(addr, ip);
	pp = ipcount_slot(ic, ip);
	if (*pp == NULL) {
		n = strlen(ip);
		*pp = xcalloc(1, sizeof(**pp) + n + 1);
		memcpy((*pp)->ip, ip, n + 1);
	}
	return ++(*pp)->count;
}

void
ipcount_dec(struct ipcount *ic, const char *addr)
{
	char ip[AUTHLIMIT_KEY_MAX];
	struct ipcount_entry **pp, *e;

	pp = ipcount_slot(ic, authlimit_key(addr, ip));
	e = *pp;
	if (e == NULL)
		return;
	if (--e->count == 0) {
		*pp = e->next;
		free(e);
	}
}
