/*
 * sendmail.c - postroom-sendmail, the sendmail(8) interface of postroom:
 * local programs (cron, mail(1), PHP's mail()) submit mail through it.
 *
 *   sendmail [-t] [-i] [-f SENDER] [-F NAME] [-oXVALUE...] [--] [RCPT...]
 *   sendmail -bs | -bp | -bi      (mailq = -bp, newaliases = -bi)
 *
 * The message goes into the maildrop spool (common/maildrop.h,
 * docs/ARCHITECTURE.md 5.4) and postroom-smtpd delivers it from there,
 * so mail submitted while smtpd is stopped is kept.  The program is
 * set-group-ID to MAILDROP_GROUP: that lets it write into the spool and
 * nowhere else; the caller's uid, which owns the spool file, tells smtpd
 * who sent it.  Exit codes are those of sysexits.h.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <sodium.h>

#include "addr.h"
#include "maildate.h"
#include "buf.h"
#include "cfg.h"
#include "maildrop.h"
#include "sendmail_msg.h"
#include "store.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sys/prctl.h>

/* Sanitizer builds: a set-group-ID process is not dumpable, and
 * LeakSanitizer, which needs to inspect it, would fail at exit. */
int __lsan_is_turned_off(void);
int
__lsan_is_turned_off(void)
{
	return prctl(PR_GET_DUMPABLE) == 0;
}
#endif

struct sendmail {
	const char *prog;          /* for messages: sendmail, mailq, ... */
	struct cfg cfg;
	const char *cfg_file;      /* -C / -c */
	const char *alias_file;    /* -oA */
	bool extract;              /* -t */
	bool ignore_dots;          /* -i, -oi */
	bool verbose;              /* -v */
	bool has_sender;           /* -f given */
	char sender[ADDR_MAX];     /* -f, canonical; "" = <> */
	const char *fullname;      /* -F */
	char login[64];
	char **rcpt;
	size_t n_rcpt, cap_rcpt;
	int rcpt_status;           /* EX_NOUSER once a bad one was seen */
};

static void sendmail_die(struct sendmail *sm, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* One clear line on stderr, then the sysexits.h code. */
static void
sendmail_die(struct sendmail *sm, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", sm->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void *
sendmail_alloc(struct sendmail *sm, void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		sendmail_die(sm, EX_OSERR, "out of memory");
	return p;
}

/* --- Privilege --------------------------------------------------------- */

/*
 * The set-group-ID bit is for writing into the spool of the system's
 * configuration.  A configuration named by the caller (-C, -c,
 * POSTROOM_CONFIG) could point the spool anywhere, so it is trusted only
 * when root owns it and nobody else may change it; otherwise the group
 * is dropped for good and the program can write only where the caller
 * could (as Postfix does with -C).
 */
static void
sendmail_config(struct sendmail *sm)
{
	const char *path = sm->cfg_file;
	struct pr_err err;
	struct stat sb;
	gid_t g = getgid(), eg = getegid();
	char *text;
	size_t got = 0;
	ssize_t n;
	int fd, e;

	if (path == NULL)
		path = getenv("POSTROOM_CONFIG");
	path = cfg_path(path);
	cfg_defaults(&sm->cfg);
	pr_err_clear(&err);
	/* The file is opened with the caller's own group: the group must
	 * not let a caller read (and see in the error messages) what it
	 * could not read itself.  The saved set-group-ID keeps the way
	 * back.  One open file for the check and the load: a path swapped
	 * in between cannot get an unchecked file trusted. */
	if (eg != g && setegid(g) < 0)
		sendmail_die(sm, EX_OSERR, "setegid: %s", strerror(errno));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &sb) < 0) {
		e = errno;
		sendmail_die(sm, EX_CONFIG, "%s: %s", path, strerror(e));
	}
	if (eg != g) {
		if (getuid() != 0 && (sb.st_uid != 0 ||
		    (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0)) {
			if (setresgid(g, g, g) < 0)
				sendmail_die(sm, EX_OSERR, "setresgid: %s",
				    strerror(errno));
		} else if (setegid(eg) < 0)
			sendmail_die(sm, EX_OSERR, "setegid: %s",
			    strerror(errno));
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > 1024 * 1024)
		sendmail_die(sm, EX_CONFIG, "%s: not a configuration file",
		    path);
	text = sendmail_alloc(sm, NULL, (size_t)sb.st_size + 1);
	while (got < (size_t)sb.st_size &&
	    (n = read(fd, text + got, (size_t)sb.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (cfg_load_buf(&sm->cfg, path, text, got, &err) < 0)
		sendmail_die(sm, EX_CONFIG, "%s", err.msg);
	free(text);
}

static void
sendmail_whoami(struct sendmail *sm)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw != NULL && strlen(pw->pw_name) < sizeof(sm->login))
		snprintf(sm->login, sizeof(sm->login), "%s", pw->pw_name);
	else
		snprintf(sm->login, sizeof(sm->login), "uid%u",
		    (unsigned)getuid());
	if (sm->fullname == NULL && pw != NULL && pw->pw_gecos != NULL &&
	    pw->pw_gecos[0] != '\0' && pw->pw_gecos[0] != ',') {
		static char gecos[128];
		size_t n = strcspn(pw->pw_gecos, ",");

		if (n >= sizeof(gecos))
			n = sizeof(gecos) - 1;
		memcpy(gecos, pw->pw_gecos, n);
		gecos[n] = '\0';
		sm->fullname = gecos;
	}
}

/* --- Addresses --------------------------------------------------------- */

/* A name or address as the caller wrote it into out (ADDR_MAX): a bare
 * name is qualified with [server] hostname.  Returns 0 or -1. */
static int
sendmail_qualify(struct sendmail *sm, const char *in, char *out)
{
	char q[ADDR_MAX + 256];
	size_t n = strlen(in);

	while (n > 0 && isspace((unsigned char)in[n - 1]))
		n--;
	while (n > 0 && isspace((unsigned char)*in))
		in++, n--;
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>')
		in++, n -= 2;
	if (n == 0 || n >= ADDR_MAX)
		return -1;
	if (memchr(in, '@', n) == NULL)
		snprintf(q, sizeof(q), "%.*s@%s", (int)n, in,
		    sm->cfg.server.hostname);
	else
		snprintf(q, sizeof(q), "%.*s", (int)n, in);
	return addr_parse_mailbox(q, strlen(q), true, out) < 0 ? -1 : 0;
}

static int
sendmail_add_rcpt(void *ctx, const char *in)
{
	struct sendmail *sm = ctx;
	char a[ADDR_MAX];

	if (sendmail_qualify(sm, in, a) < 0) {
		fprintf(stderr, "%s: %s: invalid recipient address\n",
		    sm->prog, in);
		sm->rcpt_status = EX_NOUSER;
		return 0;
	}
	/* Each recipient once, however often the headers name it. */
	for (size_t i = 0; i < sm->n_rcpt; i++)
		if (strcasecmp(sm->rcpt[i], a) == 0)
			return 0;
	if (sm->n_rcpt == MAILDROP_RCPT_MAX)
		sendmail_die(sm, EX_DATAERR, "more than %d recipients",
		    MAILDROP_RCPT_MAX);
	if (sm->n_rcpt == sm->cap_rcpt) {
		sm->cap_rcpt = sm->cap_rcpt ? 2 * sm->cap_rcpt : 8;
		sm->rcpt = sendmail_alloc(sm, sm->rcpt,
		    sm->cap_rcpt * sizeof(*sm->rcpt));
	}
	if ((sm->rcpt[sm->n_rcpt] = strdup(a)) == NULL)
		sendmail_die(sm, EX_OSERR, "out of memory");
	sm->n_rcpt++;
	return 0;
}

static void
sendmail_rcpt_clear(struct sendmail *sm)
{
	for (size_t i = 0; i < sm->n_rcpt; i++)
		free(sm->rcpt[i]);
	sm->n_rcpt = 0;
}

/* A command-line recipient argument may hold a comma-separated list. */
static void
sendmail_arg_rcpt(struct sendmail *sm, const char *arg)
{
	sendmail_msg_addrs(arg, strlen(arg), sendmail_add_rcpt, sm);
}

static void
sendmail_set_sender(struct sendmail *sm, const char *arg)
{
	size_t n = strlen(arg);

	sm->has_sender = true;
	/* "<>" and "": the null sender (RFC 5321 4.5.5). */
	if (n == 0 || strcmp(arg, "<>") == 0) {
		sm->sender[0] = '\0';
		return;
	}
	if (sendmail_qualify(sm, arg, sm->sender) < 0)
		sendmail_die(sm, EX_DATAERR, "%s: invalid sender address",
		    arg);
}

/* --- The spool --------------------------------------------------------- */

struct sendmail_spool {
	char dir[1024];
	char tmp[MAILDROP_NAME_MAX];
	char final[MAILDROP_NAME_MAX];
	int dfd;
	int fd;
};

static void
sendmail_spool_fail(struct sendmail *sm, struct sendmail_spool *sp,
    const char *what, int e)
{
	if (sp->fd >= 0) {
		unlinkat(sp->dfd, sp->tmp, 0);
		close(sp->fd);
		sp->fd = -1;
	}
	sendmail_die(sm, EX_TEMPFAIL, "cannot keep the message in %s: %s: %s",
	    sp->dir, what, strerror(e));
}

static void
sendmail_spool_write(struct sendmail *sm, struct sendmail_spool *sp,
    const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(sp->fd, b, n)) < 0) {
			if (errno == EINTR)
				continue;
			sendmail_spool_fail(sm, sp, "write", errno);
		}
		b += w;
		n -= (size_t)w;
	}
}

/*
 * Keeps one message durably: written under a temporary name, fsync'd,
 * renamed to its final name (the moment it is submitted), and the
 * directory fsync'd so that the rename survives a crash.  A sendmail
 * killed before the rename leaves only a temporary file, which smtpd
 * never delivers.  Returns the final name in sp->final; exits with
 * EX_TEMPFAIL and the reason when the message cannot be kept.
 */
static void
sendmail_spool(struct sendmail *sm, struct sendmail_spool *sp,
    const char *const *rcpt, size_t n_rcpt, const struct buf *msg)
{
	struct buf env;
	sigset_t all, old;

	maildrop_dir(&sm->cfg, sp->dir, sizeof(sp->dir));
	sp->fd = -1;
	if ((sp->dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
	    0 && (sp->dfd = open(sp->dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) <
	    0)
		sendmail_spool_fail(sm, sp, "open", errno);
	maildrop_names(sp->tmp, sp->final);
	/* No signal may leave a named temporary file behind half-way
	 * between the checks below; kill -9 still can, harmlessly. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	sp->fd = openat(sp->dfd, sp->tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0644);
	if (sp->fd < 0)
		sendmail_spool_fail(sm, sp, "create", errno);
	/* Readable by the daemon, which is the directory's owner; nobody
	 * else can reach the file through the 1730 directory. */
	if (fchmod(sp->fd, 0644) < 0)
		sendmail_spool_fail(sm, sp, "chmod", errno);
	buf_init(&env, (size_t)MAILDROP_RCPT_MAX * MAILDROP_LINE_MAX + 64);
	buf_puts(&env, MAILDROP_MAGIC);
	if (sm->has_sender)
		buf_printf(&env, "F%s\n", sm->sender);
	for (size_t i = 0; i < n_rcpt; i++)
		buf_printf(&env, "R%s\n", rcpt[i]);
	buf_puts(&env, "\n");
	sendmail_spool_write(sm, sp, env.p, env.len);
	buf_fini(&env);
	sendmail_spool_write(sm, sp, msg->p, msg->len);
	if (fsync(sp->fd) < 0)
		sendmail_spool_fail(sm, sp, "fsync", errno);
	if (renameat(sp->dfd, sp->tmp, sp->dfd, sp->final) < 0)
		sendmail_spool_fail(sm, sp, "rename", errno);
	/* The rename is the submission; from here on the message is
	 * smtpd's.  Syncing the directory makes the new name durable.  A
	 * sender may not read the 1730 directory, so its descriptor is
	 * O_PATH and cannot be fsync'd: syncfs() on the file then flushes
	 * the file system that holds both. */
	if (fsync(sp->dfd) < 0 && (errno != EBADF || syncfs(sp->fd) < 0)) {
		/* Named already: smtpd will deliver it, so do not remove
		 * it; but the caller must not be told it is safe. */
		sendmail_die(sm, EX_TEMPFAIL, "cannot sync %s: %s", sp->dir,
		    strerror(errno));
	}
	close(sp->fd);
	sp->fd = -1;
	close(sp->dfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* --- Building the message ---------------------------------------------- */

/* Adds the header fields the message lacks and keeps it, with the spool
 * name in sp.  Returns 0, or PR_ENOSPC when the fields make it larger
 * than max_message_size; exits on every other failure. */
static int
sendmail_submit(struct sendmail *sm, const uint8_t *in, size_t len,
    bool extract, struct sendmail_spool *sp)
{
	struct sendmail_msg_opts o;
	struct buf out;
	char from[ADDR_MAX + 200], date[64], msgid[ADDR_MAX + 64], hex[17];
	unsigned char rnd[8];
	const char *addr;
	int r;

	addr = sm->has_sender && sm->sender[0] != '\0' ? sm->sender : NULL;
	if (addr == NULL)
		snprintf(from, sizeof(from), "%s@%s", sm->login,
		    sm->cfg.server.hostname);
	else
		snprintf(from, sizeof(from), "%s", addr);
	if (sm->fullname != NULL && sm->fullname[0] != '\0') {
		char tmp[sizeof(from)];
		size_t j = 0;

		/* RFC 5322 3.2.4: the name as a quoted-string. */
		tmp[j++] = '"';
		for (const char *p = sm->fullname; *p != '\0' &&
		    j + 4 < 128; p++) {
			if (*p == '"' || *p == '\\')
				tmp[j++] = '\\';
			if ((unsigned char)*p >= ' ' && *p != 0x7f)
				tmp[j++] = *p;
		}
		tmp[j++] = '"';
		tmp[j] = '\0';
		snprintf(tmp + j, sizeof(tmp) - j, " <%s>", from);
		memcpy(from, tmp, sizeof(from));
	}
	maildate_format(time(NULL), date, sizeof(date));
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(msgid, sizeof(msgid), "<%lld.%s@%s>", (long long)time(NULL),
	    hex, sm->cfg.server.hostname);
	memset(&o, 0, sizeof(o));
	o.extract = extract;
	o.from = from;
	o.date = date;
	o.msgid = msgid;
	o.rcpt_cb = sendmail_add_rcpt;
	o.ctx = sm;
	/* The limit holds for the message as kept, added fields included:
	 * smtpd holds a bigger one and nobody would be told. */
	buf_init(&out, (size_t)sm->cfg.smtp.max_message_size);
	if ((r = sendmail_msg_rewrite(in, len, &o, &out)) == PR_ENOSPC) {
		buf_fini(&out);
		return PR_ENOSPC;
	}
	if (r < 0)
		sendmail_die(sm, EX_OSERR, "out of memory");
	/* One bad address refuses the whole message: the caller gets to
	 * fix it rather than have it reach only some recipients. */
	if (sm->rcpt_status != 0)
		exit(sm->rcpt_status);
	if (sm->n_rcpt == 0)
		sendmail_die(sm, EX_USAGE, extract ?
		    "no recipient addresses found in the message header" :
		    "no recipients given");
	sendmail_spool(sm, sp, (const char *const *)sm->rcpt, sm->n_rcpt,
	    &out);
	buf_fini(&out);
	if (sm->verbose)
		fprintf(stderr, "%s: queued as %s for %zu recipient%s\n",
		    sm->prog, sp->final, sm->n_rcpt,
		    sm->n_rcpt == 1 ? "" : "s");
	return 0;
}

/* RFC 5321 4.5.3.1.4, 4.5.3.1.6: a command line and a text line are 1000
 * octets at most with their CRLF, as smtpd's limits (ARCHITECTURE.md
 * 3.8). */
#define SENDMAIL_LINE_MAX 1000

/*
 * The next piece of a line on stdin into buf (cap octets): up to and
 * including its LF, or cap octets of a longer line, so that a line that
 * never ends costs no more memory than buf.  Returns the length, 0 at
 * the end of the input.
 */
static size_t
sendmail_getline(char *buf, size_t cap)
{
	size_t n = 0;
	int c;

	while (n < cap && (c = getc(stdin)) != EOF)
		if ((buf[n++] = (char)c) == '\n')
			break;
	return n;
}

/* The message on stdin: to EOF, or with -i unset to a line holding
 * only a dot (the old sendmail convention). */
static void
sendmail_read(struct sendmail *sm, struct buf *b)
{
	char piece[4096];
	bool bol = true;
	size_t n;

	while ((n = sendmail_getline(piece, sizeof(piece))) > 0) {
		/* A lone "." piece without LF is the last line of input. */
		if (bol && !sm->ignore_dots && piece[0] == '.' && (n == 1 ||
		    (n == 2 && piece[1] == '\n') ||
		    (n == 3 && memcmp(piece + 1, "\r\n", 2) == 0)))
			break;
		if (buf_append(b, piece, n) < 0)
			sendmail_die(sm, EX_DATAERR, "message larger than "
			    "max_message_size (%llu octets)",
			    (unsigned long long)sm->cfg.smtp.max_message_size);
		bol = piece[n - 1] == '\n';
	}
	if (ferror(stdin))
		sendmail_die(sm, EX_IOERR, "reading the message: %s",
		    strerror(errno));
}

/* --- -bs: SMTP on stdin and stdout ------------------------------------- */

static void
sendmail_reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

/* The argument of "MAIL FROM:" or "RCPT TO:" (RFC 5321 4.1.1.2-3):
 * the path without its brackets; parameters are ignored.  NULL on a
 * syntax error. */
static char *
sendmail_bs_path(char *arg)
{
	char *lt, *gt;

	while (*arg == ' ')
		arg++;
	if ((lt = strchr(arg, '<')) == NULL || (gt = strchr(lt, '>')) == NULL)
		return NULL;
	*gt = '\0';
	return lt + 1;
}

/*
 * An SMTP server (RFC 5321) for one client on stdin and stdout, as
 * programs that speak SMTP to "sendmail -bs" expect: every message is
 * kept in the spool like any other, so it is smtpd's policy that
 * decides on its sender (the envelope sender counts as -f).  Reply
 * 250 to the final dot means the message is durably kept (4.1.1.4).
 */
static int
sendmail_bs(struct sendmail *sm)
{
	struct sendmail_spool sp;
	struct buf msg;
	char line[SENDMAIL_LINE_MAX + 1], *arg;
	size_t n;
	bool mail = false, data = false, too_big = false;
	bool bol = true, eol;
	const char *host = sm->cfg.server.hostname;

	buf_init(&msg, (size_t)sm->cfg.smtp.max_message_size);
	sendmail_reply("220 %s ESMTP postroom-sendmail", host);
	while ((n = sendmail_getline(line, SENDMAIL_LINE_MAX)) > 0) {
		eol = line[n - 1] == '\n';
		while (eol && n > 0 && (line[n - 1] == '\n' ||
		    line[n - 1] == '\r'))
			n--;
		line[n] = '\0';
		if (data) {
			/* A longer text line goes on in the next piece. */
			bool start = bol;

			bol = eol;
			if (start && eol && strcmp(line, ".") == 0) {
				data = false;
				if (too_big) {
					sendmail_reply("552 5.3.4 Message too "
					    "big");
				} else if (sendmail_submit(sm, msg.p, msg.len,
				    false, &sp) < 0) {
					/* Too big with the fields added
					 * (RFC 3463 3.4, X.3.4). */
					sendmail_reply("552 5.3.4 Message too "
					    "big");
				} else {
					/* sendmail_submit exits on any other
					 * failure: the client sees no 250. */
					sendmail_reply("250 2.0.0 Ok: queued "
					    "as %s", sp.final);
				}
				buf_reset(&msg);
				too_big = false;
				mail = false;
				sm->has_sender = false;
				sendmail_rcpt_clear(sm);
				continue;
			}
			/* RFC 5321 4.5.2: undo dot-stuffing. */
			arg = start && line[0] == '.' ? line + 1 : line;
			if (buf_append(&msg, arg, n - (size_t)(arg - line)) < 0 ||
			    (eol && buf_puts(&msg, "\n") < 0))
				too_big = true;
			continue;
		}
		if (!eol && n == SENDMAIL_LINE_MAX) {
			/* Skipped to its end, then answered as smtpd does. */
			while ((n = sendmail_getline(line, SENDMAIL_LINE_MAX)) >
			    0 && line[n - 1] != '\n')
				;
			sendmail_reply("500 5.5.2 Line too long");
			continue;
		}
		if (strncasecmp(line, "EHLO", 4) == 0) {
			sendmail_reply("250-%s", host);
			sendmail_reply("250-8BITMIME");
			sendmail_reply("250-SIZE %llu", (unsigned long long)
			    sm->cfg.smtp.max_message_size);
			sendmail_reply("250 ENHANCEDSTATUSCODES");
		} else if (strncasecmp(line, "HELO", 4) == 0) {
			sendmail_reply("250 %s", host);
		} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
			char a[ADDR_MAX];

			if (mail) {
				sendmail_reply("503 5.5.1 Nested MAIL command");
				continue;
			}
			if ((arg = sendmail_bs_path(line + 10)) == NULL) {
				sendmail_reply("501 5.5.4 Syntax: MAIL FROM:"
				    "<address>");
				continue;
			}
			if (*arg != '\0' && sendmail_qualify(sm, arg, a) < 0) {
				sendmail_reply("553 5.1.7 Bad sender address");
				continue;
			}
			sm->has_sender = true;
			snprintf(sm->sender, sizeof(sm->sender), "%s",
			    *arg != '\0' ? a : "");
			mail = true;
			sendmail_reply("250 2.1.0 Ok");
		} else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
			char a[ADDR_MAX];

			if (!mail) {
				sendmail_reply("503 5.5.1 Need MAIL first");
				continue;
			}
			if ((arg = sendmail_bs_path(line + 8)) == NULL ||
			    sendmail_qualify(sm, arg, a) < 0) {
				sendmail_reply("501 5.1.3 Bad recipient "
				    "address");
				continue;
			}
			if (sm->n_rcpt >= sm->cfg.smtp.max_recipients) {
				sendmail_reply("452 4.5.3 Too many "
				    "recipients");
				continue;
			}
			sendmail_add_rcpt(sm, a);
			sendmail_reply("250 2.1.5 Ok");
		} else if (strcasecmp(line, "DATA") == 0) {
			if (!mail || sm->n_rcpt == 0) {
				sendmail_reply("503 5.5.1 Need RCPT first");
				continue;
			}
			data = true;
			sendmail_reply("354 End data with <CR><LF>.<CR><LF>");
		} else if (strcasecmp(line, "RSET") == 0) {
			mail = false;
			sm->has_sender = false;
			sendmail_rcpt_clear(sm);
			sendmail_reply("250 2.0.0 Ok");
		} else if (strncasecmp(line, "NOOP", 4) == 0) {
			sendmail_reply("250 2.0.0 Ok");
		} else if (strncasecmp(line, "VRFY", 4) == 0) {
			/* RFC 5321 3.5.3: neither confirm nor deny. */
			sendmail_reply("252 2.5.2 Cannot VRFY, send some mail");
		} else if (strcasecmp(line, "QUIT") == 0) {
			sendmail_reply("221 2.0.0 Bye");
			break;
		} else {
			sendmail_reply("500 5.5.2 Command not recognised");
		}
	}
	buf_fini(&msg);
	sendmail_rcpt_clear(sm);
	free(sm->rcpt);
	/* QUIT, or the client went away: a transaction it had not finished
	 * is not delivered. */
	return data ? EX_DATAERR : EX_OK;
}

/* --- -bp: mailq -------------------------------------------------------- */

struct sendmail_mailq {
	size_t n;
};

static int
sendmail_mailq_cb(void *ctx, const struct store_queue_item *q)
{
	struct sendmail_mailq *mq = ctx;
	char when[32];
	time_t t = (time_t)q->created;
	struct tm tm;

	if (mq->n++ == 0)
		printf("%-16s %-24s %s\n", "-Queue ID-", "--Arrival Time--",
		    "-Sender/Recipient-");
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	printf("%-16s %-24s %s\n", q->msgid, when,
	    q->sender[0] != '\0' ? q->sender : "<>");
	if (q->last_error[0] != '\0')
		printf("%42s(%s)\n", "", q->last_error);
	for (size_t i = 0; i < q->n_rcpts; i++)
		printf("%42s%s\n", "", q->rcpts[i]);
	return 0;
}

/* Spool files not picked up yet (smtpd stopped) and held ones. */
static size_t
sendmail_mailq_spool(struct sendmail *sm)
{
	char dir[1024];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	maildrop_dir(&sm->cfg, dir, sizeof(dir));
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		bool held = de->d_name[0] == 'H';

		if (!maildrop_name_final(de->d_name) && !held)
			continue;
		printf("%-41s %s\n", de->d_name, held ?
		    "(held: see the postroom-smtpd log)" :
		    "(waiting for postroom-smtpd)");
		n++;
	}
	closedir(d);
	return n;
}

static int
sendmail_mailq(struct sendmail *sm)
{
	struct sendmail_mailq mq = { 0 };
	struct store *st;
	struct pr_err err;
	size_t spooled;

	pr_err_clear(&err);
	if (store_open(sm->cfg.server.data_dir, 0, &st, &err) < 0)
		sendmail_die(sm, errno == EACCES || access(
		    sm->cfg.server.data_dir, R_OK | X_OK) < 0 ? EX_NOPERM :
		    EX_TEMPFAIL, "cannot read the queue: %s", err.msg);
	if (store_queue_list(st, sendmail_mailq_cb, &mq, &err) < 0) {
		store_close(&st);
		sendmail_die(sm, EX_TEMPFAIL, "cannot read the queue: %s",
		    err.msg);
	}
	store_close(&st);
	spooled = sendmail_mailq_spool(sm);
	if (mq.n == 0 && spooled == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %zu request%s in the queue, %zu in the maildrop\n",
		    mq.n, mq.n == 1 ? "" : "s", spooled);
	return EX_OK;
}

/* --- -bi: newaliases --------------------------------------------------- */

struct sendmail_alias {
	char name[ADDR_MAX];
	char targets[4096];
	bool done;
};

/* One target of /etc/aliases into out (comma-terminated), or a note on
 * stdout why it is left out (aliases(5) programs, files, includes). */
static void
sendmail_alias_target(struct sendmail *sm, const char *name, char *t,
    char *out, size_t outsz)
{
	char a[ADDR_MAX];
	size_t n = strlen(t);

	while (n > 0 && isspace((unsigned char)t[n - 1]))
		t[--n] = '\0';
	while (isspace((unsigned char)*t))
		t++;
	if (n >= 2 && t[0] == '"' && t[strlen(t) - 1] == '"') {
		t[strlen(t) - 1] = '\0';
		t++;
	}
	if (*t == '\0')
		return;
	if (*t == '|' || *t == '/' || strncasecmp(t, ":include:", 9) == 0) {
		printf("%s: skipped target %s of %s: programs, files and "
		    "includes are not supported\n", sm->prog, t, name);
		return;
	}
	if (sendmail_qualify(sm, t, a) < 0) {
		printf("%s: skipped target %s of %s: not an address\n",
		    sm->prog, t, name);
		return;
	}
	if (strlen(out) + strlen(a) + 2 < outsz) {
		if (out[0] != '\0')
			strcat(out, ",");
		strcat(out, a);
	}
}

/*
 * Imports aliases(5) entries as aliases of the domain [server]
 * hostname ("root: alice" becomes root@HOST -> alice@HOST), adding that
 * domain first if needed.  Entries whose targets are aliases imported
 * later in the file are retried until nothing more can be added.
 */
static int
sendmail_newaliases(struct sendmail *sm)
{
	const char *path = sm->alias_file ? sm->alias_file : "/etc/aliases";
	const char *host = sm->cfg.server.hostname;
	struct sendmail_alias *al = NULL;
	size_t n = 0, cap = 0, imported = 0, i;
	char *line = NULL, *colon, *t, *save;
	size_t lcap = 0;
	struct store *st;
	struct pr_err err;
	bool progress;
	FILE *f;
	int r;

	if ((f = fopen(path, "r")) == NULL)
		sendmail_die(sm, EX_NOINPUT, "%s: %s", path, strerror(errno));
	/* Folded lines (a line starting with blanks continues the entry)
	 * are joined first. */
	while (getline(&line, &lcap, f) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[strspn(line, " \t")] == '\0')
			continue;
		if ((line[0] == ' ' || line[0] == '\t') && n > 0) {
			if (strlen(al[n - 1].targets) + strlen(line) + 2 <
			    sizeof(al[n - 1].targets)) {
				strcat(al[n - 1].targets, ",");
				strcat(al[n - 1].targets, line);
			}
			continue;
		}
		if ((colon = strchr(line, ':')) == NULL) {
			printf("%s: %s: skipped a line without a colon\n",
			    sm->prog, path);
			continue;
		}
		*colon = '\0';
		if (n == cap) {
			cap = cap ? 2 * cap : 32;
			al = sendmail_alloc(sm, al, cap * sizeof(*al));
		}
		memset(&al[n], 0, sizeof(al[n]));
		snprintf(al[n].name, sizeof(al[n].name), "%s", line);
		snprintf(al[n].targets, sizeof(al[n].targets), "%s",
		    colon + 1);
		n++;
	}
	free(line);
	fclose(f);

	pr_err_clear(&err);
	if (store_open(sm->cfg.server.data_dir, 0, &st, &err) < 0)
		sendmail_die(sm, EX_NOPERM, "cannot open the store: %s "
		    "(run newaliases as root)", err.msg);
	if ((r = store_domain_exists(st, host)) == 0) {
		if (store_domain_add(st, host, &err) < 0)
			sendmail_die(sm, EX_TEMPFAIL, "%s", err.msg);
		printf("%s: added the domain %s for local mail\n", sm->prog,
		    host);
	} else if (r < 0)
		sendmail_die(sm, EX_TEMPFAIL, "cannot read the store");
	for (i = 0; i < n; i++) {
		char list[4096] = "", a[ADDR_MAX];

		for (t = strtok_r(al[i].targets, ",", &save); t != NULL;
		    t = strtok_r(NULL, ",", &save))
			sendmail_alias_target(sm, al[i].name, t, list,
			    sizeof(list));
		memcpy(al[i].targets, list, sizeof(list));
		if (sendmail_qualify(sm, al[i].name, a) < 0 ||
		    strchr(al[i].name, '@') != NULL) {
			printf("%s: skipped %s: not a local name\n", sm->prog,
			    al[i].name);
			al[i].done = true;
			continue;
		}
		memcpy(al[i].name, a, sizeof(a));
		if (list[0] == '\0')
			al[i].done = true;
	}
	do {
		progress = false;
		for (i = 0; i < n; i++) {
			if (al[i].done)
				continue;
			pr_err_clear(&err);
			r = store_alias_add(st, al[i].name, al[i].targets,
			    &err);
			if (r == PR_ENOENT)
				continue;    /* maybe after another entry */
			al[i].done = true;
			progress = true;
			if (r < 0) {
				printf("%s: skipped %s: %s\n", sm->prog,
				    al[i].name, err.msg);
				continue;
			}
			printf("%s: %s -> %s\n", sm->prog, al[i].name,
			    al[i].targets);
			imported++;
		}
	} while (progress);
	for (i = 0; i < n; i++) {
		if (al[i].done)
			continue;
		store_alias_add(st, al[i].name, al[i].targets, &err);
		printf("%s: skipped %s: %s\n", sm->prog, al[i].name, err.msg);
	}
	store_close(&st);
	printf("%s: imported %zu alias%s of %zu entries from %s into %s\n",
	    sm->prog, imported, imported == 1 ? "" : "es", n, path, host);
	free(al);
	return EX_OK;
}

/* --- Options ----------------------------------------------------------- */

static void
sendmail_usage(struct sendmail *sm)
{
	fprintf(stderr,
	    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-v] "
	    "[-C file] [--] [recipient ...]\n"
	    "       sendmail -bs | -bp | -bi [-oAfile]\n"
	    "       mailq | newaliases\n");
	exit(EX_USAGE);
}

enum sendmail_mode {
	SENDMAIL_MODE_MAIL,
	SENDMAIL_MODE_SMTP,
	SENDMAIL_MODE_MAILQ,
	SENDMAIL_MODE_NEWALIASES,
};

/* The value of an option that takes one: attached (-fADDR) or the next
 * argument (-f ADDR). */
static const char *
sendmail_optarg(struct sendmail *sm, int argc, char **argv, int *i,
    const char *p)
{
	if (p[1] != '\0')
		return p + 1;
	if (*i + 1 >= argc) {
		fprintf(stderr, "%s: option -%c needs a value\n", sm->prog,
		    *p);
		sendmail_usage(sm);
	}
	return argv[++*i];
}

int
main(int argc, char **argv)
{
	static struct sendmail sm;
	struct sendmail_spool sp;
	enum sendmail_mode mode = SENDMAIL_MODE_MAIL;
	const char *sender = NULL, *base;
	struct buf msg;
	char **rcpt_args;
	size_t n_rcpt_args = 0;
	int i;

	/* A caller may exec us with 0, 1 or 2 closed: the spool file or the
	 * directory would then get that number, and messages meant for
	 * stderr would land in the spool.  /dev/null fills the gaps. */
	for (i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0 && open("/dev/null", i == 0 ?
		    O_RDONLY : O_WRONLY) != i)
			return EX_OSERR;
	base = argv[0] != NULL && strrchr(argv[0], '/') ?
	    strrchr(argv[0], '/') + 1 : argv[0] != NULL ? argv[0] : "sendmail";
	sm.prog = "sendmail";
	if (strcmp(base, "mailq") == 0) {
		mode = SENDMAIL_MODE_MAILQ;
		sm.prog = "mailq";
	} else if (strcmp(base, "newaliases") == 0) {
		mode = SENDMAIL_MODE_NEWALIASES;
		sm.prog = "newaliases";
	}
	if (sodium_init() < 0)
		sendmail_die(&sm, EX_SOFTWARE, "libsodium failed to start");
	rcpt_args = sendmail_alloc(&sm, NULL, (size_t)(argc + 1) *
	    sizeof(*rcpt_args));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++)
				rcpt_args[n_rcpt_args++] = argv[i];
			break;
		}
		if (strcmp(a, "--help") == 0)
			sendmail_usage(&sm);
		if (strcmp(a, "--version") == 0) {
			printf("postroom-sendmail %s\n", POSTROOM_VERSION);
			return EX_OK;
		}
		if (a[0] != '-' || a[1] == '\0') {
			rcpt_args[n_rcpt_args++] = argv[i];
			continue;
		}
		switch (a[1]) {
		case 't':
			sm.extract = true;
			break;
		case 'i':
			sm.ignore_dots = true;
			break;
		case 'v':
			sm.verbose = true;
			break;
		case 'f':
		case 'r':          /* the old name of -f */
			sender = sendmail_optarg(&sm, argc, argv, &i, a + 1);
			break;
		case 'F':
			sm.fullname = sendmail_optarg(&sm, argc, argv, &i,
			    a + 1);
			break;
		case 'C':
		case 'c':
			sm.cfg_file = sendmail_optarg(&sm, argc, argv, &i,
			    a + 1);
			break;
		case 'b':
			if (strcmp(a, "-bs") == 0)
				mode = SENDMAIL_MODE_SMTP;
			else if (strcmp(a, "-bp") == 0)
				mode = SENDMAIL_MODE_MAILQ;
			else if (strcmp(a, "-bi") == 0)
				mode = SENDMAIL_MODE_NEWALIASES;
			else if (strcmp(a, "-bm") == 0)
				mode = SENDMAIL_MODE_MAIL;
			else
				sendmail_die(&sm, EX_USAGE, "%s: not supported "
				    "(postroom-smtpd is the daemon)", a);
			break;
		case 'o':
			/* -oi as -i, -oAFILE the alias file; every other
			 * sendmail option is meaningless here. */
			if (strcmp(a, "-oi") == 0)
				sm.ignore_dots = true;
			else if (a[2] == 'A' && a[3] != '\0')
				sm.alias_file = a + 3;
			break;
		case 'O':
		case 'B':
		case 'N':
		case 'R':
		case 'V':
		case 'X':
		case 'L':
		case 'h':
			/* Options with a value, ignored: -O option=value,
			 * body type, DSN notify and return, envelope id,
			 * log file, syslog tag, hop count. */
			sendmail_optarg(&sm, argc, argv, &i, a + 1);
			break;
		case 'q':
			/* postroom-smtpd runs its queue by itself. */
			return EX_OK;
		case 'G':
		case 'U':
		case 'm':
		case 'n':
		case 'e':
		case 'd':
		case 's':
			break;
		default:
			fprintf(stderr, "%s: unknown option %s\n", sm.prog, a);
			sendmail_usage(&sm);
		}
	}
	sendmail_config(&sm);
	/* mailq and newaliases read the store, which the group gives no
	 * access to, and newaliases a file the caller names: they run with
	 * the caller's own group (docs/ARCHITECTURE.md 5.4, 1). */
	if ((mode == SENDMAIL_MODE_MAILQ ||
	    mode == SENDMAIL_MODE_NEWALIASES) && getegid() != getgid() &&
	    setresgid(getgid(), getgid(), getgid()) < 0)
		sendmail_die(&sm, EX_OSERR, "setresgid: %s", strerror(errno));
	sendmail_whoami(&sm);
	if (sender != NULL)
		sendmail_set_sender(&sm, sender);
	if (mode != SENDMAIL_MODE_MAIL) {
		free(rcpt_args);
		rcpt_args = NULL;
	}

	switch (mode) {
	case SENDMAIL_MODE_MAILQ:
		return sendmail_mailq(&sm);
	case SENDMAIL_MODE_NEWALIASES:
		return sendmail_newaliases(&sm);
	case SENDMAIL_MODE_SMTP:
		return sendmail_bs(&sm);
	case SENDMAIL_MODE_MAIL:
		break;
	}
	for (size_t j = 0; j < n_rcpt_args; j++)
		sendmail_arg_rcpt(&sm, rcpt_args[j]);
	free(rcpt_args);
	if (sm.rcpt_status != 0)
		return sm.rcpt_status;
	if (sm.n_rcpt == 0 && !sm.extract)
		sendmail_die(&sm, EX_USAGE, "no recipients given");
	buf_init(&msg, (size_t)sm.cfg.smtp.max_message_size);
	sendmail_read(&sm, &msg);
	if (sendmail_submit(&sm, msg.p, msg.len, sm.extract, &sp) < 0)
		sendmail_die(&sm, EX_DATAERR, "message larger than "
		    "max_message_size (%llu octets)",
		    (unsigned long long)sm.cfg.smtp.max_message_size);
	buf_fini(&msg);
	sendmail_rcpt_clear(&sm);
	free(sm.rcpt);
	return EX_OK;
}
