/* smtp_pickup.c - delivery of the maildrop spool (smtp_pickup.h). */
#include "smtp_pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "addr.h"
#include "addr_list.h"
#include "buf.h"
#include "dkim_field.h"
#include "log.h"
#include "maildate.h"
#include "maildrop.h"
#include "metrics.h"
#include "relay.h"
#include "store.h"
#include "xmalloc.h"

#define SMTP_PICKUP_BATCH 64  /* files per scan job */
#define SMTP_PICKUP_TARGETS_MAX 1000  /* mailboxes + remote per file */

struct smtp_pickup {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct store_worker *wk;
	struct relay *relay;
	char dir[1024];
	uv_fs_event_t watch;
	uv_timer_t timer;
	int handles;          /* open libuv handles */
	bool busy;            /* a scan job is queued or running */
	bool again;           /* something changed while busy */
	bool stopping;
};

/* What a scan needs from the config, copied on the loop thread: a
 * SIGHUP may change the config while the worker runs. */
struct smtp_pickup_job {
	struct store_job job;
	struct smtp_pickup *p;
	char dir[1024];
	char hostname[256];
	char postmaster[256];
	bool relay_enabled;
	uint64_t max_size;
	/* out */
	size_t n_remote;      /* messages that queued remote recipients */
	bool more;            /* the batch was full: scan again */
};

/* The recipients of one file as the store resolved them. */
struct smtp_pickup_rcpts {
	int64_t *users;
	size_t n_users, cap_users;
	char **remote;
	size_t n_remote, cap_remote;
	struct buf orig;      /* X-Original-To fields of redirected ones */
};

static int
smtp_pickup_add_user(void *ctx, int64_t user_id, const char *remote)
{
	struct smtp_pickup_rcpts *r = ctx;
	size_t i;

	if (remote != NULL) {
		for (i = 0; i < r->n_remote; i++)
			if (strcasecmp(r->remote[i], remote) == 0)
				return 0;
		if (r->n_remote == r->cap_remote) {
			r->cap_remote = r->cap_remote ? 2 * r->cap_remote : 8;
			r->remote = xrealloc(r->remote, r->cap_remote *
			    sizeof(*r->remote));
		}
		r->remote[r->n_remote++] = xstrdup(remote);
		return 0;
	}
	for (i = 0; i < r->n_users; i++)
		if (r->users[i] == user_id)
			return 0;
	if (r->n_users == r->cap_users) {
		r->cap_users = r->cap_users ? 2 * r->cap_users : 8;
		r->users = xrealloc(r->users, r->cap_users *
		    sizeof(*r->users));
	}
	r->users[r->n_users++] = user_id;
	return 0;
}

static void
smtp_pickup_rcpts_free(struct smtp_pickup_rcpts *r)
{
	for (size_t i = 0; i < r->n_remote; i++)
		free(r->remote[i]);
	free(r->remote);
	free(r->users);
	buf_fini(&r->orig);
}

static bool
smtp_pickup_domain_is(const char *addr, const char *domain)
{
	const char *d = addr_domain(addr);

	return d != NULL && strcasecmp(d, domain) == 0;
}

/*
 * The postmaster fallback: mail from the machine's programs to a name
 * that has no mailbox here is never dropped (a cron job's output to a
 * user without one).  [server] postmaster, else postmaster@hostname.
 */
static int
smtp_pickup_to_postmaster(struct smtp_pickup_job *j, struct store *st,
    struct smtp_pickup_rcpts *r, const char *orig, const char *why)
{
	char pm[ADDR_MAX];
	int kind;

	if (j->postmaster[0] != '\0')
		snprintf(pm, sizeof(pm), "%s", j->postmaster);
	else
		snprintf(pm, sizeof(pm), "postmaster@%s", j->hostname);
	log_info(NULL, "pickup: <%s> %s: to the postmaster <%s>", orig, why,
	    pm);
	buf_printf(&r->orig, "X-Original-To: <%s>\r\n", orig);
	kind = store_resolve(st, pm, smtp_pickup_add_user, r, NULL);
	if (kind == STORE_RESOLVE_LOCAL)
		return 0;
	/* Never relayed to the hostname's own MX: that would be us. */
	if (kind == STORE_RESOLVE_REMOTE && j->relay_enabled &&
	    !smtp_pickup_domain_is(pm, j->hostname))
		return smtp_pickup_add_user(r, 0, pm);
	log_err(NULL, "pickup: the postmaster <%s> has no mailbox here; set "
	    "[server] postmaster", pm);
	return PR_ENOENT;
}

/* One envelope recipient: a bare name is a name of this host
 * (RFC 5321 4.1.1.3 wants a domain; sendmail(8) callers omit it). */
static int
smtp_pickup_rcpt(struct smtp_pickup_job *j, struct store *st,
    struct smtp_pickup_rcpts *r, const char *in)
{
	char q[ADDR_MAX], a[ADDR_MAX];
	bool ours;
	int kind;

	if (strchr(in, '@') == NULL)
		snprintf(q, sizeof(q), "%s@%s", in, j->hostname);
	else
		snprintf(q, sizeof(q), "%s", in);
	if (addr_parse_mailbox(q, strlen(q), true, a) < 0)
		return smtp_pickup_to_postmaster(j, st, r, q,
		    "is not a valid address");
	ours = smtp_pickup_domain_is(a, j->hostname);
	kind = store_resolve(st, a, smtp_pickup_add_user, r, NULL);
	if (kind == STORE_RESOLVE_LOCAL)
		return 0;
	if (kind == STORE_RESOLVE_REMOTE && !ours) {
		if (j->relay_enabled)
			return smtp_pickup_add_user(r, 0, a);
		return smtp_pickup_to_postmaster(j, st, r, a,
		    "is remote and [relay] is disabled");
	}
	if (kind < 0 && kind != PR_ELOOP && kind != PR_ENOSPC &&
	    kind != PR_EINVAL)
		return kind;
	return smtp_pickup_to_postmaster(j, st, r, a, "has no mailbox");
}

/*
 * Whether Unix user login may use the hosted address sender: it is
 * login@hostname, or an address that login@hostname resolves to (a user,
 * or an alias that user owns: store_sender_allowed).  An admin maps a
 * Unix user to a hosted user with an alias login@hostname -> address
 * (postroom alias add, or newaliases).
 */
static bool
smtp_pickup_owns(struct store *st, const char *login, const char *hostname,
    const char *sender)
{
	struct smtp_pickup_rcpts r;
	char self[ADDR_MAX];
	bool ok = false;

	snprintf(self, sizeof(self), "%s@%s", login, hostname);
	if (strcasecmp(self, sender) == 0)
		return true;
	memset(&r, 0, sizeof(r));
	buf_init(&r.orig, 1);
	if (store_resolve(st, self, smtp_pickup_add_user, &r, NULL) ==
	    STORE_RESOLVE_LOCAL)
		for (size_t i = 0; i < r.n_users && !ok; i++)
			ok = store_sender_allowed(st, r.users[i], sender) == 1;
	smtp_pickup_rcpts_free(&r);
	return ok;
}

/* Whether text names a hosted domain after any '@' in it: what a lenient
 * reader of a field that does not parse could take for its address. */
static bool
smtp_pickup_names_hosted(struct store *st, const char *text)
{
	char d[ADDR_MAX];
	size_t n;

	for (const char *at = strchr(text, '@'); at != NULL;
	    at = strchr(at + 1, '@')) {
		for (n = 0; n + 1 < sizeof(d) && at[1 + n] != '\0' &&
		    strchr(" \t<>()[],;:\"@\\", at[1 + n]) == NULL; n++)
			d[n] = at[1 + n];
		d[n] = '\0';
		if (n > 0 && store_domain_exists(st, d) == 1)
			return true;
	}
	return false;
}

/*
 * The header From: and Sender: name the author and the sender of the
 * message (RFC 5322 3.6.2); the relay signs for the From: domain (RFC
 * 6376 3.5) and DMARC aligns with it (RFC 7489 3.1).  So, as for the
 * envelope sender and as submission does (smtp_policy.c), each address
 * there in a hosted domain must be one the user may use.  A field that
 * does not parse but names a hosted domain after an '@' is refused as
 * well, for a receiver may read it differently; bare names ("From: root
 * (Cron Daemon)", as cron writes it) name no domain and pass.  Returns true
 * when the header is acceptable, else false with the offending address
 * or field in bad (ADDR_MAX).
 */
static bool
smtp_pickup_header_owned(struct store *st, const char *login,
    const char *hostname, const uint8_t *msg, size_t len, char *bad)
{
	struct dkim_field *f;
	char (*addrs)[ADDR_MAX];
	size_t head = 0, nf, na, j, k;
	const uint8_t *nl, *v;
	char *u;
	bool ok = true;

	/* The header section ends at the first empty line (RFC 5322 2.1). */
	while (head < len && msg[head] != '\n' && !(msg[head] == '\r' &&
	    head + 1 < len && msg[head + 1] == '\n')) {
		nl = memchr(msg + head, '\n', len - head);
		head = nl != NULL ? (size_t)(nl - msg) + 1 : len;
	}
	f = xcalloc(DKIM_FIELD_MAX, sizeof(*f));
	addrs = xcalloc(DKIM_FIELD_FROM_MAX, sizeof(*addrs));
	u = xmalloc(head + 1);
	nf = dkim_field_split(msg, head, f, DKIM_FIELD_MAX);
	for (size_t i = 0; i < nf && ok; i++) {
		if (!dkim_field_is(msg, &f[i], "from") &&
		    !dkim_field_is(msg, &f[i], "sender"))
			continue;
		/* dkim_field_split() keeps only fields with a colon. */
		v = (const uint8_t *)memchr(msg + f[i].off, ':', f[i].len) + 1;
		/* RFC 5322 2.2.3: unfolding removes the line ends. */
		for (j = 0, k = (size_t)(v - msg); k < f[i].off + f[i].len; k++)
			if (msg[k] != '\r' && msg[k] != '\n')
				u[j++] = (char)msg[k];
		u[j] = '\0';
		if (addr_list_parse(u, j, addrs, DKIM_FIELD_FROM_MAX, &na) <
		    0) {
			if (smtp_pickup_names_hosted(st, u)) {
				snprintf(bad, ADDR_MAX, "%s", u + strspn(u,
				    " \t"));
				ok = false;
			}
			continue;
		}
		for (k = 0; k < na && ok; k++) {
			const char *d = addr_domain(addrs[k]);

			if (d != NULL && store_domain_exists(st, d) == 1 &&
			    !smtp_pickup_owns(st, login, hostname, addrs[k])) {
				snprintf(bad, ADDR_MAX, "%s", addrs[k]);
				ok = false;
			}
		}
	}
	free(u);
	free(addrs);
	free(f);
	return ok;
}

/* A parsed spool file; pointers into the file's buffer. */
struct smtp_pickup_env {
	bool has_sender;
	const char *sender;
	const char *rcpt[MAILDROP_RCPT_MAX];
	size_t n_rcpt;
	const uint8_t *msg;
	size_t msg_len;
};

/* Parses the envelope in place (LFs become NULs).  0 or PR_EINVAL. */
static int
smtp_pickup_parse(uint8_t *data, size_t len, struct smtp_pickup_env *e)
{
	size_t off = strlen(MAILDROP_MAGIC);
	uint8_t *nl;

	memset(e, 0, sizeof(*e));
	if (len < off || memcmp(data, MAILDROP_MAGIC, off) != 0)
		return PR_EINVAL;
	for (;;) {
		nl = memchr(data + off, '\n', len - off);
		if (nl == NULL || (size_t)(nl - (data + off)) >=
		    MAILDROP_LINE_MAX || memchr(data + off, '\0',
		    (size_t)(nl - (data + off))) != NULL)
			return PR_EINVAL;
		*nl = '\0';
		if (nl == data + off) {
			off++;
			break;
		}
		if (data[off] == 'F' && !e->has_sender) {
			e->has_sender = true;
			e->sender = (const char *)data + off + 1;
		} else if (data[off] == 'R' && e->n_rcpt < MAILDROP_RCPT_MAX &&
		    data[off + 1] != '\0') {
			e->rcpt[e->n_rcpt++] = (const char *)data + off + 1;
		} else
			return PR_EINVAL;
		off = (size_t)(nl - data) + 1;
	}
	if (e->n_rcpt == 0)
		return PR_EINVAL;
	e->msg = data + off;
	e->msg_len = len - off;
	return 0;
}

/* Sets the file aside under a name that is never picked up ('H' for
 * held); `mailq` lists it and the log says why. */
static void
smtp_pickup_hold(int dfd, const char *name, const char *why)
{
	char held[MAILDROP_NAME_MAX];

	snprintf(held, sizeof(held), "H%s", name + 1);
	log_err(NULL, "pickup: %s: %s; held as %s", name, why, held);
	if (renameat(dfd, name, dfd, held) < 0)
		log_err(NULL, "pickup: %s: rename: %s", name, strerror(errno));
}

/* The notice that replaces a message whose sender was refused. */
static void
smtp_pickup_refusal(struct buf *b, const char *hostname, const char *login,
    unsigned uid, const char *sender, const char *to, const char *date,
    const char *id)
{
	buf_printf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: Undelivered Mail: sender address refused\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s.refused@%s>\r\n"
	    /* RFC 3834 5: a machine's reply, not to be answered. */
	    "Auto-Submitted: auto-replied\r\n"
	    "\r\n"
	    "The message that %s (uid %u) submitted with postroom-sendmail\r\n"
	    "was not sent: its sender address <%s> belongs to a domain\r\n"
	    "hosted here and is not one that %s may use.  See\r\n"
	    "postroom-sendmail(8), \"Who is sending\".\r\n",
	    hostname, to, date, id, hostname, login, uid, sender, login);
}

/*
 * One spool file, on the worker thread.  Returns 0 when the file is
 * done with (delivered, delivered before, or held), 1 when it had remote
 * recipients, or a negative error when it stays for a later scan (the
 * store is full or failing).
 */
static int
smtp_pickup_one(struct smtp_pickup_job *j, struct store *st, int dfd,
    const char *name)
{
	struct smtp_pickup_env env;
	struct smtp_pickup_rcpts r;
	struct store_msg m, *mp = &m;
	struct passwd pw, *pwp = NULL;
	struct stat sb;
	struct buf head, notice;
	char pwbuf[4096], login[64], sender[ADDR_MAX], date[64];
	char info[256];
	char self[ADDR_MAX];
	unsigned char rnd[8];
	uint8_t *data = NULL;
	size_t got = 0;
	ssize_t n;
	bool refused = false;
	int fd, ret = 0, rc;

	memset(&r, 0, sizeof(r));
	buf_init(&r.orig, 512 * 1024);
	buf_init(&head, 1024 * 1024);
	buf_init(&notice, 16 * 1024);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			log_err(NULL, "pickup: %s: %s", name, strerror(errno));
		goto out;
	}
	/* Only plain files with one name: nobody can hand us a link to
	 * another file. */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		smtp_pickup_hold(dfd, name, "not a plain file");
		goto out;
	}
	if ((uint64_t)sb.st_size > j->max_size + (uint64_t)MAILDROP_RCPT_MAX *
	    MAILDROP_LINE_MAX) {
		smtp_pickup_hold(dfd, name, "larger than max_message_size");
		goto out;
	}
	data = xmalloc((size_t)sb.st_size + 1);
	while (got < (size_t)sb.st_size &&
	    (n = read(fd, data + got, (size_t)sb.st_size - got)) > 0)
		got += (size_t)n;
	if (got != (size_t)sb.st_size) {
		smtp_pickup_hold(dfd, name, "short read");
		goto out;
	}
	if (smtp_pickup_parse(data, got, &env) < 0) {
		smtp_pickup_hold(dfd, name, "malformed spool file");
		goto out;
	}
	if (env.msg_len > j->max_size) {
		smtp_pickup_hold(dfd, name, "larger than max_message_size");
		goto out;
	}
	/* Who sent it: the owner of the file, as the kernel recorded it. */
	if (getpwuid_r(sb.st_uid, &pw, pwbuf, sizeof(pwbuf), &pwp) == 0 &&
	    pwp != NULL && strlen(pw.pw_name) < sizeof(login))
		snprintf(login, sizeof(login), "%s", pw.pw_name);
	else
		snprintf(login, sizeof(login), "uid%u", (unsigned)sb.st_uid);
	snprintf(self, sizeof(self), "%s@%s", login, j->hostname);
	if (!env.has_sender) {
		snprintf(sender, sizeof(sender), "%s", self);
	} else {
		/* Checked again: the file is the user's, and only the
		 * kernel's word in it (the owner) is trusted as it is. */
		if (env.sender[0] != '\0' && addr_parse_mailbox(env.sender,
		    strlen(env.sender), true, sender) < 0) {
			smtp_pickup_hold(dfd, name, "malformed sender");
			goto out;
		}
		if (env.sender[0] == '\0')
			sender[0] = '\0';
		if (sb.st_uid != 0 && sender[0] != '\0' &&
		    addr_domain(sender) != NULL &&
		    store_domain_exists(st, addr_domain(sender)) == 1 &&
		    !smtp_pickup_owns(st, login, j->hostname, sender))
			refused = true;
	}
	if (!refused && sb.st_uid != 0 && !smtp_pickup_header_owned(st, login,
	    j->hostname, env.msg, env.msg_len, sender))
		refused = true;

	memset(&m, 0, sizeof(m));
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(m.id, sizeof(m.id), rnd, sizeof(rnd));
	maildate_format(time(NULL), date, sizeof(date));
	if (refused) {
		log_warn(NULL, "pickup: %s: uid %u (%s) may not send as <%s>; "
		    "refused, notice to <%s>", name, (unsigned)sb.st_uid,
		    login, sender, self);
		/* The notice goes to the submitter alone. */
		env.rcpt[0] = self;
		env.n_rcpt = 1;
	}
	for (size_t i = 0; i < env.n_rcpt; i++) {
		if ((rc = smtp_pickup_rcpt(j, st, &r, env.rcpt[i])) < 0) {
			/* A file left for the next scan with an error that
			 * does not pass would stop every scan at it (oldest
			 * first), and all local mail with it. */
			if (rc == PR_ENOENT) {
				smtp_pickup_hold(dfd, name,
				    "no postmaster to deliver to");
				goto out;
			}
			ret = rc;
			goto out;
		}
		/* The bound of an SMTP transaction (smtp_proto.h
		 * targets_max, docs/ARCHITECTURE.md 3.8): the store
		 * worker, which SMTP shares, is not held for one file's
		 * huge expansion. */
		if (r.n_users + r.n_remote > SMTP_PICKUP_TARGETS_MAX) {
			smtp_pickup_hold(dfd, name,
			    "too many resolved recipients");
			goto out;
		}
	}
	if (refused) {
		smtp_pickup_refusal(&notice, j->hostname, login,
		    (unsigned)sb.st_uid, sender, self, date, m.id);
		sender[0] = '\0';
	}
	/* RFC 5321 4.4: the trace fields.  Local submission has no
	 * From-domain; the comment names the uid, which is the kernel's, so
	 * the field says who really submitted the message. */
	buf_printf(&head, "Return-Path: <%s>\r\n", sender);
	buf_printf(&head, "Received: by %s (postroom, from userid %u (%s))\r\n"
	    "\tid %s; %s\r\n", j->hostname, (unsigned)sb.st_uid, login, m.id,
	    date);
	if (!refused)
		buf_append(&head, r.orig.p, r.orig.len);
	m.sender = sender;
	m.users = r.users;
	m.n_users = r.n_users;
	m.remote = (const char *const *)r.remote;
	m.n_remote = r.n_remote;
	m.head = head.p;
	m.head_len = head.len;
	m.body_fd = -1;
	if (refused) {
		m.body = notice.p;
		m.body_len = notice.len;
	} else {
		m.body = env.msg;
		m.body_len = env.msg_len;
	}
	m.key = name;
	/* The received event of the trace (postroom trace): who, by the
	 * kernel's uid, as the Received field. */
	snprintf(info, sizeof(info), "client=local listener=sendmail "
	    "uid=%u login=%s spool=%s%s", (unsigned)sb.st_uid, login, name,
	    refused ? " refused=sender" : "");
	m.trace_info = info;
	store_deliver(st, &mp, 1);
	if (m.status == 0)
		metrics_add(METRICS_LOCAL_DELIVERIES, NULL, m.n_users);
	if (m.status == 0 || m.status == PR_EEXIST) {
		if (m.status == 0)
			log_info(NULL, "pickup: %s: id %s from <%s> uid %u, "
			    "%zu local, %zu remote, %zu octets", name, m.id,
			    sender, (unsigned)sb.st_uid, m.n_users, m.n_remote,
			    m.body_len);
		else
			log_info(NULL, "pickup: %s: delivered before", name);
		/* Unlinked only now that the delivery is on disk. */
		if (unlinkat(dfd, name, 0) < 0)
			log_err(NULL, "pickup: %s: unlink: %s", name,
			    strerror(errno));
		ret = m.status == 0 && m.n_remote > 0 ? 1 : 0;
	} else if (m.status == PR_ETOOBIG || m.status == PR_EINVAL) {
		/* Never deliverable: not left to stop the next scans. */
		smtp_pickup_hold(dfd, name, m.err.msg);
	} else {
		log_warn(NULL, "pickup: %s: %s%s%s; trying again later", name,
		    pr_strerror(m.status), m.err.msg[0] ? ": " : "",
		    m.err.msg);
		ret = m.status;
	}
out:
	if (fd >= 0)
		close(fd);
	free(data);
	buf_fini(&head);
	buf_fini(&notice);
	smtp_pickup_rcpts_free(&r);
	return ret;
}

static int
smtp_pickup_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Worker thread: one scan, oldest files first. */
static void
smtp_pickup_run(struct store_job *job, struct store *st)
{
	struct smtp_pickup_job *j = STORE_CONTAINER(job, struct smtp_pickup_job,
	    job);
	char *names[SMTP_PICKUP_BATCH];
	size_t n = 0;
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int dfd, r;

	if ((d = opendir(j->dir)) == NULL) {
		log_err(NULL, "pickup: %s: %s", j->dir, strerror(errno));
		return;
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == 'T' && fstatat(dfd, de->d_name, &sb,
		    AT_SYMLINK_NOFOLLOW) == 0 &&
		    sb.st_mtime < time(NULL) - MAILDROP_TMP_AGE) {
			/* A sendmail that died while writing (kill -9):
			 * the file was never submitted. */
			log_info(NULL, "pickup: removing %s, abandoned",
			    de->d_name);
			unlinkat(dfd, de->d_name, 0);
			continue;
		}
		if (!maildrop_name_final(de->d_name))
			continue;
		if (n == SMTP_PICKUP_BATCH) {
			j->more = true;
			break;
		}
		names[n++] = xstrdup(de->d_name);
	}
	qsort(names, n, sizeof(names[0]), smtp_pickup_cmp);
	for (size_t i = 0; i < n; i++) {
		r = smtp_pickup_one(j, st, dfd, names[i]);
		if (r > 0)
			j->n_remote++;
		if (r < 0) {
			/* The store cannot take mail now: the timer tries
			 * again. */
			j->more = false;
			for (; i < n; i++)
				free(names[i]);
			break;
		}
		free(names[i]);
	}
	closedir(d);
}

static void smtp_pickup_scan(struct smtp_pickup *p);

static void
smtp_pickup_maybe_free(struct smtp_pickup *p)
{
	if (p->stopping && p->handles == 0 && !p->busy)
		free(p);
}

static void
smtp_pickup_done(struct store_job *job)
{
	struct smtp_pickup_job *j = STORE_CONTAINER(job, struct smtp_pickup_job,
	    job);
	struct smtp_pickup *p = j->p;
	bool again = p->again || j->more;

	p->busy = false;
	p->again = false;
	if (j->n_remote > 0 && p->relay != NULL && !p->stopping)
		relay_kick(p->relay);
	free(j);
	if (p->stopping) {
		smtp_pickup_maybe_free(p);
		return;
	}
	if (again)
		smtp_pickup_scan(p);
}

static void
smtp_pickup_scan(struct smtp_pickup *p)
{
	struct smtp_pickup_job *j;

	if (p->stopping)
		return;
	if (p->busy) {
		p->again = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->p = p;
	snprintf(j->dir, sizeof(j->dir), "%s", p->dir);
	snprintf(j->hostname, sizeof(j->hostname), "%s",
	    p->cfg->server.hostname);
	snprintf(j->postmaster, sizeof(j->postmaster), "%s",
	    p->cfg->server.postmaster);
	j->relay_enabled = p->cfg->relay.enabled;
	j->max_size = p->cfg->smtp.max_message_size;
	j->job.run = smtp_pickup_run;
	j->job.done = smtp_pickup_done;
	p->busy = true;
	store_worker_submit(p->wk, &j->job);
}

static void
smtp_pickup_event_cb(uv_fs_event_t *h, const char *filename, int events,
    int status)
{
	struct smtp_pickup *p = h->data;

	/* A rename into the directory is the end of a submission. */
	if (filename == NULL || filename[0] == 'M')
		smtp_pickup_scan(p);
}

static void
smtp_pickup_timer_cb(uv_timer_t *t)
{
	smtp_pickup_scan(t->data);
}

int
smtp_pickup_new(uv_loop_t *loop, const struct cfg *cfg,
    struct store_worker *wk, struct relay *relay, struct smtp_pickup **p_r,
    struct pr_err *err)
{
	struct smtp_pickup *p;
	int r;

	*p_r = NULL;
	p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->cfg = cfg;
	p->wk = wk;
	p->relay = relay;
	maildrop_dir(cfg, p->dir, sizeof(p->dir));
	if ((r = maildrop_dir_ensure(p->dir, geteuid(), getegid(), err)) < 0) {
		free(p);
		return r;
	}
	uv_fs_event_init(loop, &p->watch);
	p->watch.data = p;
	p->handles++;
	if ((r = uv_fs_event_start(&p->watch, smtp_pickup_event_cb, p->dir,
	    0)) < 0)
		log_warn(NULL, "pickup: cannot watch %s (%s); scanning every "
		    "%d s", p->dir, uv_strerror(r), SMTP_PICKUP_INTERVAL);
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	p->handles++;
	uv_timer_start(&p->timer, smtp_pickup_timer_cb,
	    SMTP_PICKUP_INTERVAL * 1000, SMTP_PICKUP_INTERVAL * 1000);
	smtp_pickup_scan(p);
	*p_r = p;
	return 0;
}

static void
smtp_pickup_close_cb(uv_handle_t *h)
{
	struct smtp_pickup *p = h->data;

	p->handles--;
	smtp_pickup_maybe_free(p);
}

void
smtp_pickup_stop(struct smtp_pickup **pp)
{
	struct smtp_pickup *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	p->stopping = true;
	uv_close((uv_handle_t *)&p->watch, smtp_pickup_close_cb);
	uv_close((uv_handle_t *)&p->timer, smtp_pickup_close_cb);
}
