/* smtp_session.c - SMTP server sessions (libuv glue). */
#include "smtp_session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "authlimit.h"
#include "daemon.h"
#include "log.h"
#include "maildate.h"
#include "pwpool.h"
#include "relay.h"
#include "smtp_deliver.h"
#include "spf.h"
#include "store.h"
#include "store_throttle_job.h"
#include "xmalloc.h"

/* Stop reading from a client whose replies pile up unread. */
#define SMTP_SESSION_WRITE_HIGH (256 * 1024)
/* AUTH failure delays: 1 s, 2 s, 4 s, ... capped. */
#define SMTP_SESSION_AUTH_DELAY_MS 1000
#define SMTP_SESSION_AUTH_DELAY_MAX_MS 16000
/* How often a transfer's rate is checked against min_data_rate. */
#define SMTP_SESSION_RATE_CHECK_MS 1000

/*
 * The state of the asynchronous work a session is carrying out: a password
 * check, a spool write or a delivery, one at a time.  It is allocated when
 * such work starts and freed when nothing is in flight, so an idle session
 * does not carry it (about 1.3 KiB).
 */
struct smtp_session_op {
	struct smtp_session *s;
	/* AUTH: verification in the password pool, failures counted in the
	 * store. */
	struct pwpool_job pw;
	struct store_throttle counts; /* before this attempt */
	struct store_throttle_job th;
	const char *auth_pass;        /* the core's secret, until complete */
	struct store_login login;     /* what the name and tag resolved to */
	int auth_status;

	/* A spool write. */
	uv_fs_t fs;
	const uint8_t *fs_data;
	size_t fs_len;
	void (*fs_then)(struct smtp_session *s, int status);

	/* A delivery. */
	struct smtp_deliver_job job;
};

struct smtp_session {
	struct smtp_server *srv;
	struct net_conn *c;           /* NULL once net closed it */
	struct smtp_proto *p;
	struct smtp_session *prev, *next;
	struct smtp_session_op *op;   /* while work is in flight, or NULL */
	char sid[LOG_SID_LEN + 1];
	char peer[64];
	char ipkey[AUTHLIMIT_KEY_MAX]; /* the client: peer, or its /64 */
	enum smtp_listen_kind kind;
	uint64_t t_start;             /* uv_now at accept */
	unsigned pending;             /* work, fs, delivery, timer in flight */
	bool busy;                    /* an event is being carried out */
	bool tls_starting;
	bool greeted;
	bool ip_counted;
	bool delay_active;
	bool timer_closed;
	int64_t user_id;              /* authenticated user */
	/* A device logged in (store_logins.c): it may send only as
	 * device_from, at most device_rate messages an hour. */
	int64_t device_id;
	unsigned device_rate;
	char *device_from;

	uv_timer_t timer;             /* AUTH and error delays; DATA rate */

	/* The current DATA/BDAT transfer, for min_data_rate. */
	bool in_xfer;
	uint64_t xfer_start;          /* uv_now */
	uint64_t xfer_octets;

	/* Spool file of the current message. */
	int spool_fd;
	uint64_t spool_off;

	/* Header fields prepended at delivery. */
	struct buf head;

	/* The SPF check of MAIL, while it runs (one pending count). */
	struct spf_check *spf;
};

static void smtp_session_run(struct smtp_session *s);
static const struct net_conn_ops smtp_session_ops;

/* The op state for work about to start. */
static struct smtp_session_op *
smtp_session_op(struct smtp_session *s)
{
	if (s->op == NULL) {
		s->op = xcalloc(1, sizeof(*s->op));
		s->op->s = s;
	}
	return s->op;
}

/* Frees the op state once nothing refers to it any more. */
static void
smtp_session_op_free(struct smtp_session *s)
{
	if (s->op == NULL || s->pending > 0)
		return;
	sodium_memzero(s->op->login.hash, sizeof(s->op->login.hash));
	free(s->op);
	s->op = NULL;
}

/* --- Helpers ----------------------------------------------------------- */

static void
smtp_session_log_cb(void *data, int level, const char *text)
{
	struct smtp_session *s = data;
	enum log_level lvl = level == 0 ? LOG_LVL_DEBUG : level == 1 ?
	    LOG_LVL_INFO : LOG_LVL_WARN;

	/* The core's refusals: the client's address first, as on every
	 * other per-session line (docs/LOGGING.md 3). */
	if (strncmp(text, "reject ", 7) == 0)
		log_msg(lvl, s->sid, "reject client=%s %s", s->peer, text + 7);
	else
		log_msg(lvl, s->sid, "%s", text);
}

static const char *
smtp_session_kind_name(enum smtp_listen_kind k)
{
	switch (k) {
	case SMTP_LISTEN_MX: return "smtp";
	case SMTP_LISTEN_SUBMISSION: return "submission";
	case SMTP_LISTEN_SUBMISSIONS: return "submissions";
	}
	return "?";
}

static void
smtp_session_spool_close(struct smtp_session *s)
{
	if (s->spool_fd >= 0) {
		close(s->spool_fd);
		s->spool_fd = -1;
	}
	s->spool_off = 0;
}

/* Frees the session once net has closed it and nothing is in flight. */
static void
smtp_session_release(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	if (s->c != NULL || s->pending > 0 || !s->timer_closed)
		return;
	if (s->ip_counted)
		ipcount_dec(srv->ipc, s->peer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->n_sessions--;
	smtp_proto_free(&s->p);
	smtp_session_spool_close(s);
	buf_fini(&s->head);
	free(s->device_from);
	smtp_session_op_free(s);
	free(s);
	if (srv->draining && srv->n_sessions == 0 && srv->idle_cb != NULL)
		srv->idle_cb(srv);
}

static void
smtp_session_flush(struct smtp_session *s)
{
	struct buf *out = smtp_proto_out(s->p);

	if (out->len == 0 || s->c == NULL)
		return;
	if (net_conn_write(s->c, out->p, out->len) < 0)
		net_conn_close(s->c, false);
	buf_reset(out);
	/* net copied it: an idle session holds no reply storage. */
	buf_shrink(out, 0);
}

/* Answers the outstanding event and goes on with buffered input. */
static void
smtp_session_complete(struct smtp_session *s, int status)
{
	smtp_proto_complete(s->p, status);
	s->busy = false;
	smtp_session_op_free(s);
	if (s->c == NULL)
		return;
	net_conn_resume(s->c);
	smtp_session_run(s);
}

/* --- AUTH -------------------------------------------------------------- */

/*
 * An AUTH event goes: the user's hash and the failures counted for this
 * client and this account (loop-thread reads); the throttling decision
 * (authlimit.h): refused at once, or a delay on the session timer; the
 * password check in the password pool (pwpool.h), fair between clients
 * and refused at once when full; then the failure counted, or the
 * account's failures forgotten, through the store worker; then the reply.
 * Every refusal here is 454 4.7.0 (RFC 4954 6), logged with the client's
 * address.
 */

static void
smtp_session_auth_run_cb(struct pwpool_job *pj)
{
	struct smtp_session_op *op = STORE_CONTAINER(pj,
	    struct smtp_session_op, pw);

	/* argon2id: CPU and memory heavy, hence a pool thread.  An unknown
	 * user costs the same (a dummy hash), so timing tells nothing. */
	op->auth_status = store_password_verify(op->login.kind !=
	    STORE_LOGIN_NONE ? op->login.hash : NULL, op->auth_pass);
}

/* The wait of SMTP_EV_DELAY is over: the held replies go out. */
static void
smtp_session_error_delay_cb(uv_timer_t *t)
{
	struct smtp_session *s = t->data;

	s->delay_active = false;
	s->pending--;
	smtp_session_complete(s, 0);
}

static void
smtp_session_auth_delay_cb(uv_timer_t *t)
{
	struct smtp_session *s = t->data;

	s->delay_active = false;
	s->pending--;
	smtp_session_complete(s, PR_EAUTH);
}

static void
smtp_session_auth_cleared_cb(struct store_throttle_job *j)
{
	struct smtp_session *s = j->data;

	s->pending--;
	if (j->status < 0)
		log_warn(s->sid, "clearing the login failures of %s: %s",
		    j->account, j->err.msg);
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_session_complete(s, 0);
}

static void
smtp_session_auth_counted_cb(struct store_throttle_job *j)
{
	char uq[LOG_VALUE_MAX], lq[LOG_VALUE_MAX];
	struct smtp_session *s = j->data;
	const struct store_login *l;
	unsigned fails;
	uint64_t delay;

	s->pending--;
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	if (j->status < 0)
		log_err(s->sid, "counting a login failure: %s", j->err.msg);
	l = &s->op->login;
	/* Never the password: only who tried, from where. */
	fails = smtp_proto_auth_failures(s->p) + 1;
	/* client= comes before anything the peer chose, so that a filter
	 * matching the line's start (fail2ban) cannot be fed an address
	 * through the user name (docs/LOGGING.md). */
	log_warn(s->sid, "auth client=%s status=failed user=%s%s%s "
	    "failures=%u client_failures=%u account_failures=%u window=%um",
	    s->peer, log_value(l->name, uq, sizeof(uq)),
	    l->kind == STORE_LOGIN_APP ? " app-password=" : "",
	    l->kind == STORE_LOGIN_APP ? log_value(l->label, lq, sizeof(lq)) :
	    "", fails, j->counts.ip_failures, j->counts.account_failures,
	    AUTHLIMIT_WINDOW / 60);
	/* A delay that doubles with each failure, on the session timer:
	 * the loop keeps serving everybody else. */
	delay = (uint64_t)SMTP_SESSION_AUTH_DELAY_MS << (fails - 1 > 4 ? 4 :
	    fails - 1);
	if (delay > SMTP_SESSION_AUTH_DELAY_MAX_MS)
		delay = SMTP_SESSION_AUTH_DELAY_MAX_MS;
	s->pending++;
	s->delay_active = true;
	uv_timer_start(&s->timer, smtp_session_auth_delay_cb, delay, 0);
}

/* Counts a failure (success false) or forgets the account's failures,
 * through the store worker; then cb. */
static void
smtp_session_auth_throttle(struct smtp_session *s, bool success,
    void (*cb)(struct store_throttle_job *))
{
	const char *user = s->op->login.account;
	struct store_throttle_job *j = &s->op->th;

	memset(j, 0, sizeof(*j));
	j->success = success;
	snprintf(j->ip_key, sizeof(j->ip_key), "%s", s->ipkey);
	snprintf(j->account, sizeof(j->account), "%s", user);
	j->now = (int64_t)time(NULL);
	j->done_cb = cb;
	j->data = s;
	s->pending++;
	store_throttle_submit(s->srv->wk, j);
}

static void
smtp_session_auth_after_cb(struct pwpool_job *pj)
{
	char uq[LOG_VALUE_MAX], lq[LOG_VALUE_MAX];
	struct smtp_session_op *op = STORE_CONTAINER(pj,
	    struct smtp_session_op, pw);
	struct smtp_session *s = op->s;

	s->pending--;
	sodium_memzero(op->login.hash, sizeof(op->login.hash));
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	if (op->auth_status == 0 && op->login.kind == STORE_LOGIN_DEVICE &&
	    s->kind == SMTP_LISTEN_MX) {
		/* A device submits (RFC 6409): on port 25 its login is
		 * refused like a wrong password, and not counted, since the
		 * password was right. */
		log_warn(s->sid, "auth client=%s status=refused device=%s "
		    "reason=\"devices log in on the submission ports only\"",
		    s->peer, log_value(op->login.name, uq, sizeof(uq)));
		s->pending++;
		s->delay_active = true;
		uv_timer_start(&s->timer, smtp_session_auth_delay_cb,
		    SMTP_SESSION_AUTH_DELAY_MS, 0);
		return;
	}
	if (op->auth_status == 0) {
		s->user_id = op->login.user_id;
		s->device_id = 0;
		if (op->login.kind == STORE_LOGIN_DEVICE) {
			s->device_id = op->login.cred_id;
			s->device_rate = op->login.rate;
			free(s->device_from);
			s->device_from = xstrdup(op->login.from);
		}
		smtp_proto_auth_name(s->p, op->login.name);
		if (op->login.kind == STORE_LOGIN_APP)
			log_info(s->sid, "auth client=%s status=ok user=%s "
			    "app-password=%s", s->peer,
			    log_value(op->login.name, uq, sizeof(uq)),
			    log_value(op->login.label, lq, sizeof(lq)));
		else if (op->login.kind == STORE_LOGIN_DEVICE)
			log_info(s->sid, "auth client=%s status=ok device=%s "
			    "from=<%s> rate=%u/hour", s->peer,
			    log_value(op->login.name, uq, sizeof(uq)),
			    op->login.from, op->login.rate);
		else
			log_info(s->sid, "auth client=%s status=ok user=%s",
			    s->peer, log_value(op->login.name, uq,
			    sizeof(uq)));
		if (op->counts.account_failures == 0)
			smtp_session_complete(s, 0);
		else
			smtp_session_auth_throttle(s, true,
			    smtp_session_auth_cleared_cb);
		return;
	}
	smtp_session_auth_throttle(s, false, smtp_session_auth_counted_cb);
}

/* Hands the password check to the pool.  Returns false (logged) when the
 * pool has no room for this client: the caller answers PR_EAGAIN. */
static bool
smtp_session_auth_verify(struct smtp_session *s)
{
	char uq[LOG_VALUE_MAX];
	struct smtp_session_op *op = s->op;

	memset(&op->pw, 0, sizeof(op->pw));
	op->pw.run = smtp_session_auth_run_cb;
	op->pw.done = smtp_session_auth_after_cb;
	snprintf(op->pw.key, sizeof(op->pw.key), "%s", s->ipkey);
	op->pw.low = op->counts.ip_failures > 0;
	if (pwpool_submit(s->srv->pw, &op->pw) < 0) {
		log_warn(s->sid, "auth client=%s status=busy user=%s "
		    "reason=\"password checks busy\"", s->peer,
		    log_value(op->login.account, uq, sizeof(uq)));
		return false;
	}
	s->pending++;
	return true;
}

/* The throttling delay is over. */
static void
smtp_session_auth_wait_cb(uv_timer_t *t)
{
	struct smtp_session *s = t->data;

	s->delay_active = false;
	s->pending--;
	if (!smtp_session_auth_verify(s))
		smtp_session_complete(s, PR_EAGAIN);
}

/* Returns true when the event completed synchronously. */
static bool
smtp_session_auth(struct smtp_session *s, const struct smtp_event *ev)
{
	char uq[LOG_VALUE_MAX];
	struct smtp_session_op *op = smtp_session_op(s);
	struct store_throttle *n = &op->counts;
	char tag[STORE_LOGIN_TAG_LEN + 1];
	struct pr_err err;
	uint64_t delay;
	int r;

	pr_err_clear(&err);
	/* The tag of a generated password picks the one hash to check
	 * (store.h, "Logins"); the password itself stays here. */
	(void)store_login_tag(ev->pass, tag);
	r = store_login_lookup(s->srv->st, ev->user, tag,
	    s->srv->cfg->server.default_domain, &op->login, &err);
	if (r < 0) {
		log_err(s->sid, "AUTH lookup of %s: %s", ev->user, err.msg);
		sodium_memzero(op->login.hash, sizeof(op->login.hash));
		smtp_proto_complete(s->p, PR_EIO);
		smtp_session_op_free(s);
		return true;
	}
	op->auth_pass = ev->pass;
	/* A store that cannot tell the counts does not lock everybody out:
	 * the attempt goes on as a first one (and is logged).  App
	 * passwords and devices count as accounts of their own. */
	if (store_throttle_get(s->srv->st, s->ipkey, op->login.account,
	    (int64_t)time(NULL), AUTHLIMIT_WINDOW, n, &err) < 0)
		log_err(s->sid, "login failures of %s: %s", op->login.account,
		    err.msg);
	if (authlimit_decide(n->ip_failures, n->account_failures, &delay) ==
	    AUTHLIMIT_REFUSE) {
		log_warn(s->sid, "auth client=%s status=throttled user=%s "
		    "failures=%u account_failures=%u%s%s", s->peer,
		    log_value(op->login.account, uq, sizeof(uq)),
		    n->ip_failures, n->account_failures,
		    strcmp(s->ipkey, s->peer) != 0 ? " net=" : "",
		    strcmp(s->ipkey, s->peer) != 0 ? s->ipkey : "");
		sodium_memzero(op->login.hash, sizeof(op->login.hash));
		smtp_proto_complete(s->p, PR_EAGAIN);
		smtp_session_op_free(s);
		return true;
	}
	if (delay > 0) {
		log_info(s->sid, "auth client=%s status=delayed user=%s "
		    "failures=%u account_failures=%u delay=%llums", s->peer,
		    log_value(op->login.account, uq, sizeof(uq)),
		    n->ip_failures, n->account_failures,
		    (unsigned long long)delay);
		s->pending++;
		s->delay_active = true;
		uv_timer_start(&s->timer, smtp_session_auth_wait_cb, delay, 0);
		return false;
	}
	if (!smtp_session_auth_verify(s)) {
		sodium_memzero(op->login.hash, sizeof(op->login.hash));
		smtp_proto_complete(s->p, PR_EAGAIN);
		smtp_session_op_free(s);
		return true;
	}
	return false;
}

/* --- MAIL and RCPT lookups (loop thread, indexed reads) ---------------- */

/* MAIL of an authenticated user, or a header From:/Sender: address of
 * their message: may they send as it? */
static bool
smtp_session_sender(struct smtp_session *s, const struct smtp_event *ev)
{
	int r;

	/* A device sends as its one address, nothing else (not even a
	 * +tag of it). */
	if (s->device_id > 0) {
		r = s->device_from != NULL &&
		    strcasecmp(ev->addr, s->device_from) == 0;
		smtp_proto_complete(s->p, r ? 0 : PR_EPERM);
		return true;
	}
	r = store_sender_allowed(s->srv->st, s->user_id, ev->addr);

	if (r < 0)
		log_err(s->sid, "sender lookup of %s: %s", ev->addr,
		    pr_strerror(r));
	smtp_proto_complete(s->p, r == 1 ? 0 : r == 0 ? PR_EPERM : PR_EIO);
	return true;
}

/* A device's MAIL: 0 while it is under its rate, SMTP_MAIL_RATE past
 * it, PR_EIO when the count cannot be read.  The rate counts accepted
 * messages of the last hour, in the store, so it holds across sessions
 * and restarts (store_device_sent). */
static int
smtp_session_device_rate(struct smtp_session *s)
{
	struct pr_err err;
	unsigned sent;

	if (store_device_sent(s->srv->st, s->device_id,
	    (int64_t)time(NULL) - 3600, &sent, &err) < 0) {
		log_err(s->sid, "message count of device %s: %s",
		    smtp_proto_auth_user(s->p), err.msg);
		return PR_EIO;
	}
	if (sent < s->device_rate)
		return 0;
	log_warn(s->sid, "device %s: %u messages in the last hour, the "
	    "limit is %u", smtp_proto_auth_user(s->p), sent, s->device_rate);
	return SMTP_MAIL_RATE;
}

static bool
smtp_session_mail(struct smtp_session *s, const struct smtp_event *ev)
{
	const char *dom;
	int r;

	if (smtp_proto_auth_user(s->p)[0] != '\0' && s->device_id > 0 &&
	    s->device_rate > 0 && s->device_from != NULL &&
	    strcasecmp(ev->addr, s->device_from) == 0 &&
	    (r = smtp_session_device_rate(s)) != 0) {
		smtp_proto_complete(s->p, r);
		return true;
	}
	if (smtp_proto_auth_user(s->p)[0] != '\0')
		return smtp_session_sender(s, ev);
	/* Anonymous: the policy wants to know whether the domain is ours. */
	dom = addr_domain(ev->addr);
	r = dom != NULL ? store_domain_exists(s->srv->st, dom) : 0;
	if (r < 0)
		log_err(s->sid, "domain lookup of %s: %s", dom,
		    pr_strerror(r));
	smtp_proto_complete(s->p, r == 1 ? SMTP_MAIL_HOSTED : r == 0 ? 0 :
	    PR_EIO);
	return true;
}

struct smtp_session_targets {
	int64_t *users;
	size_t n_users, cap_users;
	char **remote;
	size_t n_remote, cap_remote;
};

static int
smtp_session_target_cb(void *ctx, int64_t user_id, const char *remote)
{
	struct smtp_session_targets *t = ctx;

	if (remote == NULL) {
		if (t->n_users == t->cap_users) {
			t->cap_users = t->cap_users ? t->cap_users * 2 : 8;
			t->users = xrealloc(t->users,
			    t->cap_users * sizeof(*t->users));
		}
		t->users[t->n_users++] = user_id;
	} else {
		if (t->n_remote == t->cap_remote) {
			t->cap_remote = t->cap_remote ? t->cap_remote * 2 : 8;
			t->remote = xrealloc(t->remote,
			    t->cap_remote * sizeof(*t->remote));
		}
		t->remote[t->n_remote++] = xstrdup(remote);
	}
	return 0;
}

/* Quota (RFC 3463 4.2.2 / 5.2.2) of one local target, against the size
 * the client declared (RFC 1870), if any. */
static int
smtp_session_quota(struct smtp_session *s, int64_t user_id)
{
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	int64_t bytes, count, quota, declared = (int64_t)tx->declared_size;
	struct pr_err err;
	int r;

	r = store_mailbox_usage(s->srv->st, user_id, &bytes, &count, &quota,
	    &err);
	if (r < 0)
		return r;
	if (quota <= 0)
		return 0;
	if (declared > quota)
		return PR_ETOOBIG;
	if (bytes >= quota || bytes + declared > quota)
		return PR_EQUOTA;
	return 0;
}

static void
smtp_session_targets_reset(struct smtp_session_targets *t)
{
	size_t i;

	for (i = 0; i < t->n_remote; i++)
		free(t->remote[i]);
	t->n_remote = 0;
	t->n_users = 0;
}

/* True for the local parts every domain must have: postmaster (RFC 5321
 * 4.5.1) and abuse (RFC 2142 5), in any case. */
static bool
smtp_session_role(const char *addr, const char **domain_r)
{
	const char *at = strrchr(addr, '@');
	size_t n;

	if (at == NULL)
		return false;
	n = (size_t)(at - addr);
	*domain_r = at + 1;
	return (n == 10 && strncasecmp(addr, "postmaster", 10) == 0) ||
	    (n == 5 && strncasecmp(addr, "abuse", 5) == 0);
}

/*
 * RFC 5321 4.5.1: "RCPT TO:<Postmaster>" must be accepted (the core asks
 * for postmaster@<hostname>), and so must postmaster@ every hosted domain;
 * RFC 2142 5 adds abuse@.  A domain's own user or alias of that name
 * wins.  Then, for the host name, the postmaster of its parent domain
 * (mx.example.org serving example.org), and last [server] postmaster.
 */
static int
smtp_session_postmaster(struct smtp_session *s, const char *addr, int kind,
    struct smtp_session_targets *t, struct pr_err *err)
{
	const char *host = s->srv->cfg->server.hostname;
	const char *pm = s->srv->cfg->server.postmaster;
	const char *parent = strchr(host, '.'), *dom;
	bool is_host;
	char alt[ADDR_MAX];

	if (kind == STORE_RESOLVE_LOCAL || !smtp_session_role(addr, &dom))
		return kind;
	is_host = strcasecmp(dom, host) == 0;
	if (kind != STORE_RESOLVE_UNKNOWN && !is_host)
		return kind; /* another domain's, or a lookup error */
	if (is_host && strncasecmp(addr, "postmaster@", 11) == 0 &&
	    parent != NULL && strchr(parent + 1, '.') != NULL) {
		snprintf(alt, sizeof(alt), "postmaster@%s", parent + 1);
		smtp_session_targets_reset(t);
		kind = store_resolve(s->srv->st, alt, smtp_session_target_cb,
		    t, err);
		if (kind == STORE_RESOLVE_LOCAL || kind < 0)
			return kind;
	}
	if (pm[0] != '\0') {
		smtp_session_targets_reset(t);
		kind = store_resolve(s->srv->st, pm, smtp_session_target_cb, t,
		    err);
	}
	/* Still nobody: an unknown local user, never a relay attempt. */
	return kind == STORE_RESOLVE_REMOTE ? STORE_RESOLVE_UNKNOWN : kind;
}

static bool
smtp_session_rcpt(struct smtp_session *s, const struct smtp_event *ev)
{
	struct smtp_session_targets t;
	struct pr_err err;
	int kind, status, full_status = 0;
	size_t i, full;

	memset(&t, 0, sizeof(t));
	pr_err_clear(&err);
	kind = store_resolve(s->srv->st, ev->addr, smtp_session_target_cb, &t,
	    &err);
	kind = smtp_session_postmaster(s, ev->addr, kind, &t, &err);
	switch (kind) {
	case STORE_RESOLVE_LOCAL:
		status = SMTP_RCPT_LOCAL;
		/* RFC 5321 4.2.2 (452, 552): a recipient whose mailboxes are
		 * all full is refused now, naming it.  One full mailbox among
		 * an alias's targets refuses nobody: the others get the
		 * message and the full one a bounce at the end of data. */
		for (i = 0, full = 0; i < t.n_users && status > 0; i++) {
			int r = smtp_session_quota(s, t.users[i]);

			if (r == PR_EQUOTA || r == PR_ETOOBIG) {
				if (full == 0 || r == PR_EQUOTA)
					full_status = r;
				full++;
			} else if (r < 0) {
				status = r;
			}
		}
		if (status > 0 && full > 0 && full == t.n_users &&
		    t.n_remote == 0)
			status = full_status;
		for (i = 0; i < t.n_users && status > 0; i++)
			if (smtp_proto_rcpt_target(s->p, t.users[i], NULL) < 0)
				status = PR_ENOSPC;
		for (i = 0; i < t.n_remote && status > 0; i++)
			if (smtp_proto_rcpt_target(s->p, 0, t.remote[i]) < 0)
				status = PR_ENOSPC;
		break;
	case STORE_RESOLVE_REMOTE:
		status = SMTP_RCPT_REMOTE;
		break;
	case STORE_RESOLVE_UNKNOWN:
		status = SMTP_RCPT_UNKNOWN;
		break;
	default:
		log_err(s->sid, "recipient lookup of %s: %s", ev->addr,
		    err.msg[0] ? err.msg : pr_strerror(kind));
		status = kind < 0 ? kind : PR_EIO;
		if (status == PR_EQUOTA || status == PR_ETOOBIG)
			status = PR_EIO;
		break;
	}
	smtp_session_targets_reset(&t);
	free(t.users);
	free(t.remote);
	smtp_proto_complete(s->p, status);
	return true;
}

/* --- Spool ------------------------------------------------------------- */

/* A file nobody else can see: O_TMPFILE, or mkstemp + unlink where the
 * file system lacks it.  Nothing is left behind after a crash. */
static int
smtp_session_spool_open(struct smtp_session *s)
{
	char path[1200];
	int fd;

	fd = open(s->srv->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL)) {
		snprintf(path, sizeof(path), "%s/spool.XXXXXX",
		    s->srv->spool_dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0) {
		log_err(s->sid, "spool in %s: %s", s->srv->spool_dir,
		    strerror(errno));
		return PR_EIO;
	}
	s->spool_fd = fd;
	s->spool_off = 0;
	return 0;
}

static void smtp_session_fs_cb(uv_fs_t *req);

/* Writes the rest of op->fs_data at the spool offset, off the loop
 * thread.  Returns 0, or PR_EIO when the write could not be started. */
static int
smtp_session_fs_write(struct smtp_session *s)
{
	struct smtp_session_op *op = s->op;
	uv_buf_t b = uv_buf_init((char *)op->fs_data, (unsigned)op->fs_len);

	op->fs.data = s;
	if (uv_fs_write(s->srv->loop, &op->fs, s->spool_fd, &b, 1,
	    (int64_t)s->spool_off, smtp_session_fs_cb) != 0)
		return PR_EIO;
	s->pending++;
	return 0;
}

static void
smtp_session_fs_cb(uv_fs_t *req)
{
	struct smtp_session *s = req->data;
	struct smtp_session_op *op = s->op;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	s->pending--;
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	if (n < 0) {
		log_err(s->sid, "spool write: %s", uv_strerror((int)n));
		op->fs_then(s, n == UV_ENOSPC || n == -EDQUOT ? PR_EFULL :
		    PR_EIO);
		return;
	}
	s->spool_off += (uint64_t)n;
	op->fs_data += n;
	op->fs_len -= (size_t)n;
	/* A short write (disk nearly full, a signal) goes on from there. */
	if (op->fs_len == 0)
		op->fs_then(s, 0);
	else if (smtp_session_fs_write(s) < 0)
		op->fs_then(s, PR_EIO);
}

/* Appends data to the spool file off the loop thread; then(s, status)
 * follows, possibly before this returns. */
static void
smtp_session_spool_write(struct smtp_session *s, const uint8_t *data,
    size_t len, void (*then)(struct smtp_session *, int))
{
	struct smtp_session_op *op = smtp_session_op(s);

	op->fs_then = then;
	op->fs_data = data;
	op->fs_len = len;
	if ((s->spool_fd < 0 && smtp_session_spool_open(s) < 0) ||
	    smtp_session_fs_write(s) < 0)
		then(s, PR_EIO);
}

static void
smtp_session_spool_done(struct smtp_session *s, int status)
{
	if (status < 0)
		smtp_session_spool_close(s);
	smtp_session_complete(s, status);
}

/* --- Delivery ---------------------------------------------------------- */

static void
smtp_session_deliver_done(struct smtp_deliver_job *job)
{
	struct smtp_session *s = job->data;
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	const struct store_msg *m = &job->msg;
	bool remote = m->n_remote > 0;
	const char *tls = "no";
	int tls_len = 2;

	s->pending--;
	free(job->msg.user_status);
	job->msg.user_status = NULL;
	/* The protocol of the TLS session ("TLSv1.3"), or "no". */
	if (s->c != NULL && net_conn_tls_active(s->c)) {
		tls = net_conn_tls_desc(s->c);
		tls_len = (int)strcspn(tls, " ");
	}
	/* One id end to end: the Received field, the "queued as" reply,
	 * this line and `postroom queue list`. */
	if (m->status == 0)
		log_info(s->sid, "accepted msgid=%s client=%s from=<%s> "
		    "to=<%s> nrcpt=%u local=%zu remote=%zu size=%llu tls=%.*s"
		    "%s%s", m->id, s->peer, tx->sender, tx->first_rcpt,
		    tx->n_rcpt, m->n_users, m->n_remote,
		    (unsigned long long)tx->size, tls_len, tls,
		    smtp_proto_auth_user(s->p)[0] != '\0' ? " user=" : "",
		    smtp_proto_auth_user(s->p));
	else
		log_warn(s->sid, "rejected client=%s from=<%s> nrcpt=%u "
		    "status=failed reason=\"%s%s%s\"", s->peer, tx->sender,
		    tx->n_rcpt, pr_strerror(m->status),
		    m->err.msg[0] ? ": " : "", m->err.msg);
	if (m->status == 0 && remote && s->srv->relay != NULL)
		relay_kick(s->srv->relay);
	smtp_session_spool_close(s);
	buf_reset(&s->head);
	buf_shrink(&s->head, 0);
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_proto_queued_as(s->p, m->id);
	smtp_session_complete(s, m->status);
}

static void
smtp_session_deliver_submit(struct smtp_session *s, int status)
{
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	const struct smtp_event *ev = smtp_proto_event(s->p);
	struct smtp_deliver_job *job = &smtp_session_op(s)->job;
	struct store_msg *m = &job->msg;
	struct smtp_trace t;
	char date[64], id[STORE_ID_LEN + 1], rnd[17], msgid[384];
	unsigned char rb[8];

	if (status < 0) {
		smtp_session_spool_done(s, status);
		return;
	}
	maildate_format(time(NULL), date, sizeof(date));
	/* The message id is chosen here, so that the Received field, the
	 * reply and the logs all carry the one the store keeps. */
	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(id, sizeof(id), rb, sizeof(rb));
	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(rnd, sizeof(rnd), rb, sizeof(rb));
	snprintf(msgid, sizeof(msgid), "<%s.%s@%s>", rnd, id,
	    s->srv->cfg->server.hostname);
	t.peer_ip = s->peer;
	t.id = id;
	t.date = date;
	t.msgid = msgid;
	buf_reset(&s->head);
	if (smtp_proto_trace(s->p, &t, &s->head) < 0) {
		smtp_session_spool_done(s, PR_EIO);
		return;
	}
	memset(job, 0, sizeof(*job));
	m->sender = tx->sender;
	m->users = tx->users;
	m->n_users = tx->n_users;
	/* Quotas per recipient: one full mailbox does not hold the message
	 * back from the others; it gets a bounce (smtp_deliver.h). */
	m->user_status = xcalloc(tx->n_users ? tx->n_users : 1,
	    sizeof(*m->user_status));
	job->hostname = s->srv->cfg->server.hostname;
	job->sid = s->sid;
	m->remote = (const char *const *)tx->remote;
	m->n_remote = tx->n_remote;
	m->head = s->head.p;
	m->head_len = s->head.len;
	m->device_id = s->device_id;
	memcpy(m->id, id, sizeof(m->id));
	if (tx->spooled) {
		m->body_fd = s->spool_fd;
		m->body_len = (size_t)tx->size;
	} else {
		m->body_fd = -1;
		m->body = ev->data;
		m->body_len = ev->len;
	}
	job->done_cb = smtp_session_deliver_done;
	job->data = s;
	s->pending++;
	smtp_deliver_submit(s->srv->wk, job);
}

static bool
smtp_session_deliver(struct smtp_session *s, const struct smtp_event *ev)
{
	const struct smtp_tx *tx = smtp_proto_tx(s->p);

	/* The tail of a spooled message joins the rest in the file first. */
	if (tx->spooled && ev->len > 0) {
		smtp_session_spool_write(s, ev->data, ev->len,
		    smtp_session_deliver_submit);
		return false;
	}
	smtp_session_deliver_submit(s, 0);
	return false;
}

/* --- SPF at MAIL (RFC 7208) ------------------------------------------- */

/* Hands the outcome to the core, which keeps it in the transaction for
 * the policy and Authentication-Results; one log line names the client,
 * the check and the reason (RFC 7208 9.1 names the same facts). */
static void
smtp_session_spf_outcome(struct smtp_session *s, const struct spf_outcome *o)
{
	log_info(s->sid, "spf: ip=%s %s=%s result=%s (%s)", s->peer,
	    spf_identity_str(o->identity), o->sender,
	    spf_result_str(o->result), o->reason);
	smtp_proto_spf_result(s->p, (int)o->result,
	    o->identity == SPF_ID_HELO, o->sender, o->explanation);
}

static void
smtp_session_spf_cb(void *data, const struct spf_outcome *o)
{
	struct smtp_session *s = data;

	smtp_session_spf_outcome(s, o);
	spf_check_free(&s->spf);
	s->pending--;
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_session_complete(s, 0);
}

static bool
smtp_session_spf(struct smtp_session *s, const struct smtp_event *ev)
{
	struct smtp_server *srv = s->srv;
	struct spf_request req;
	int r;

	if (srv->resolver == NULL) {
		smtp_proto_complete(s->p, PR_EIO);
		return true;
	}
	memset(&req, 0, sizeof(req));
	req.ip = s->peer;
	req.sender = ev->addr;
	req.helo = smtp_proto_helo(s->p);
	req.receiver = srv->cfg->server.hostname;
	req.now = (uint64_t)time(NULL);
	r = spf_check_new(srv->resolver, &req, smtp_session_spf_cb, s,
	    &s->spf);
	if (r < 0) {
		log_warn(s->sid, "spf: cannot check %s: %s", s->peer,
		    pr_strerror(r));
		smtp_proto_complete(s->p, r);
		return true;
	}
	if (r == 1) {
		smtp_session_spf_outcome(s, spf_check_outcome(s->spf));
		spf_check_free(&s->spf);
		smtp_proto_complete(s->p, 0);
		return true;
	}
	/* The session waits for the answer before it replies to MAIL
	 * ([dns] timeout bounds each lookup). */
	s->pending++;
	return false;
}

/* --- The session loop -------------------------------------------------- */

/* Carries out ev.  Returns true when it completed synchronously. */
static bool
smtp_session_event(struct smtp_session *s, const struct smtp_event *ev)
{
	switch (ev->type) {
	case SMTP_EV_AUTH:
		return smtp_session_auth(s, ev);
	case SMTP_EV_MAIL:
		return smtp_session_mail(s, ev);
	case SMTP_EV_FROM:
		return smtp_session_sender(s, ev);
	case SMTP_EV_SPF:
		return smtp_session_spf(s, ev);
	case SMTP_EV_DELAY:
		/* The error reply waits in the core's output; the loop
		 * serves everybody else meanwhile. */
		s->pending++;
		s->delay_active = true;
		uv_timer_start(&s->timer, smtp_session_error_delay_cb,
		    ev->delay_ms, 0);
		return false;
	case SMTP_EV_RCPT:
		return smtp_session_rcpt(s, ev);
	case SMTP_EV_SPOOL:
		smtp_session_spool_write(s, ev->data, ev->len,
		    smtp_session_spool_done);
		return false;
	case SMTP_EV_DELIVER:
		return smtp_session_deliver(s, ev);
	case SMTP_EV_STARTTLS:
		/* The 220 is flushed; net drops any input buffered so far
		 * (RFC 3207 5) and tls_cb continues. */
		s->tls_starting = true;
		if (net_conn_starttls(s->c) < 0) {
			log_warn(s->sid, "STARTTLS could not start");
			net_conn_close(s->c, false);
		}
		return false;
	case SMTP_EV_NONE:
		break;
	}
	return true;
}

/*
 * min_data_rate: a transfer (DATA's 354 or the first BDAT, to the final
 * reply) must average the rate once its grace period is over, or one
 * client could hold a session for hours by sending an octet just before
 * each idle timeout.  The glue measures with the loop's clock and tells
 * the core (smtp_proto_too_slow), which stays clock-free.
 */
static void
smtp_session_rate_cb(uv_timer_t *t)
{
	struct smtp_session *s = t->data;
	const struct smtp_server *srv = s->srv;
	uint64_t elapsed = uv_now(srv->loop) - s->xfer_start;

	/* Waiting on us (a spool write, a commit) is not the client's
	 * slowness. */
	if (s->c == NULL || s->busy || !s->in_xfer ||
	    elapsed < srv->min_data_grace_ms ||
	    s->xfer_octets * 1000 >= srv->min_data_rate * elapsed)
		return;
	log_warn(s->sid, "slow client=%s octets=%llu seconds=%.1f "
	    "min_data_rate=%llu/s", s->peer,
	    (unsigned long long)s->xfer_octets, (double)elapsed / 1000.0,
	    (unsigned long long)srv->min_data_rate);
	uv_timer_stop(&s->timer);
	s->in_xfer = false;
	smtp_proto_too_slow(s->p);
	smtp_session_flush(s);
	if (s->c != NULL)
		net_conn_close(s->c, true);
}

/* After each feed: octets that belong to a transfer (fed while one was
 * going on), and the start or the end of one. */
static void
smtp_session_xfer(struct smtp_session *s, bool was_in, size_t octets)
{
	bool in = smtp_proto_in_transfer(s->p) && !smtp_proto_closing(s->p);

	if (s->srv->min_data_rate == 0 || s->delay_active)
		return;
	if (in && !s->in_xfer) {
		s->in_xfer = true;
		s->xfer_start = uv_now(s->srv->loop);
		s->xfer_octets = 0;
		uv_timer_start(&s->timer, smtp_session_rate_cb,
		    SMTP_SESSION_RATE_CHECK_MS, SMTP_SESSION_RATE_CHECK_MS);
	} else if (!in && s->in_xfer) {
		s->in_xfer = false;
		uv_timer_stop(&s->timer);
	}
	if (in && was_in)
		s->xfer_octets += octets;
}

static void
smtp_session_run(struct smtp_session *s)
{
	const struct smtp_event *ev;
	const uint8_t *in;
	size_t len;
	ssize_t n;
	bool was_in;

	while (s->c != NULL && !s->busy && !net_conn_closing(s->c)) {
		if ((ev = smtp_proto_event(s->p)) != NULL) {
			if (ev->type != SMTP_EV_DELAY)
				smtp_session_flush(s);
			s->busy = true;
			if (!smtp_session_event(s, ev)) {
				/* Backpressure while we wait, except during a
				 * handshake, which needs the socket. */
				if (s->busy && s->c != NULL && !s->tls_starting)
					net_conn_pause(s->c);
				return;
			}
			s->busy = false;
			continue;
		}
		if (smtp_proto_closing(s->p))
			break;
		net_conn_input(s->c, &in, &len);
		if (len == 0)
			break;
		was_in = smtp_proto_in_transfer(s->p);
		n = smtp_proto_feed(s->p, in, len);
		if (n < 0) {
			log_err(s->sid, "protocol core: %s",
			    pr_strerror((int)n));
			smtp_proto_refuse(s->p, 421, "4.3.0",
			    "Local error, closing");
			break;
		}
		net_conn_consume(s->c, (size_t)n);
		smtp_session_xfer(s, was_in, (size_t)n);
		/* A command line must be complete within one timeout of its
		 * first octet, however slowly it trickles in. */
		net_conn_hold_timeout(s->c, smtp_proto_line_pending(s->p));
		if (n == 0 && smtp_proto_event(s->p) == NULL &&
		    !smtp_proto_closing(s->p)) {
			/* The core holds back: its replies must go first. */
			smtp_session_flush(s);
			if (s->c != NULL && net_conn_write_pending(s->c) >
			    SMTP_SESSION_WRITE_HIGH) {
				net_conn_pause(s->c);
				return;
			}
		}
	}
	if (s->c == NULL || s->busy)
		return;
	/* A transfer also ends with an event's reply (the 250). */
	smtp_session_xfer(s, false, 0);
	smtp_session_flush(s);
	if (s->c != NULL && smtp_proto_closing(s->p))
		net_conn_close(s->c, true);
}

/* --- net callbacks ----------------------------------------------------- */

static void
smtp_session_input_cb(struct net_conn *c)
{
	smtp_session_run(net_conn_data(c));
}

static void
smtp_session_drain_cb(struct net_conn *c)
{
	struct smtp_session *s = net_conn_data(c);

	if (!s->busy) {
		net_conn_resume(c);
		smtp_session_run(s);
	}
}

static void
smtp_session_tls_cb(struct net_conn *c, int status)
{
	struct smtp_session *s = net_conn_data(c);
	char kv[160];

	s->tls_starting = false;
	if (status < 0) {
		log_info(s->sid, "tls client=%s status=failed reason=\"%s\"",
		    s->peer, net_conn_tls_error(c));
		smtp_proto_complete(s->p, status);
		return;
	}
	log_info(s->sid, "tls client=%s status=ok %s", s->peer,
	    log_tls_fields(net_conn_tls_desc(c), kv, sizeof(kv)));
	smtp_proto_tls_started(s->p, net_conn_tls_desc(c));
	s->busy = false;
	if (!s->greeted) {
		/* Implicit TLS (RFC 8314): the greeting comes after. */
		s->greeted = true;
		smtp_proto_greet(s->p);
		if (s->srv->draining)
			smtp_proto_shutdown(s->p);
	}
	net_conn_resume(c);
	smtp_session_run(s);
}

static void
smtp_session_timeout_cb(struct net_conn *c)
{
	struct smtp_session *s = net_conn_data(c);

	if (s->tls_starting) {
		log_info(s->sid, "tls client=%s status=timeout", s->peer);
		net_conn_close(c, false);
		return;
	}
	/* Waiting on us (a commit, a password check) is not idling. */
	if (s->busy) {
		net_conn_set_timeout(c, s->srv->timeout_ms);
		return;
	}
	log_info(s->sid, "timeout client=%s", s->peer);
	if (!s->greeted) {
		net_conn_close(c, false);
		return;
	}
	smtp_proto_timeout(s->p);
	smtp_session_flush(s);
	net_conn_close(c, true);
}

static void
smtp_session_error_cb(struct net_conn *c, int status)
{
	struct smtp_session *s = net_conn_data(c);

	log_debug(s->sid, "connection from %s: %s", s->peer,
	    status == UV_EOF ? "closed by peer" : uv_strerror(status));
}

static void
smtp_session_timer_closed_cb(uv_handle_t *h)
{
	struct smtp_session *s = h->data;

	s->timer_closed = true;
	smtp_session_release(s);
}

static void
smtp_session_close_cb(struct net_conn *c)
{
	struct smtp_session *s = net_conn_data(c);
	double secs = (double)(uv_now(s->srv->loop) - s->t_start) / 1000.0;

	log_info(s->sid, "disconnect client=%s duration=%.3f messages=%u "
	    "rejected=%u", s->peer, secs, smtp_proto_messages(s->p),
	    smtp_proto_rejects(s->p));
	s->c = NULL;
	if (s->delay_active) {
		/* Closing the timer cancels the pending AUTH delay. */
		s->delay_active = false;
		s->pending--;
	}
	uv_close((uv_handle_t *)&s->timer, smtp_session_timer_closed_cb);
}

static const struct net_conn_ops smtp_session_ops = {
	.input_cb = smtp_session_input_cb,
	.tls_cb = smtp_session_tls_cb,
	.drain_cb = smtp_session_drain_cb,
	.timeout_cb = smtp_session_timeout_cb,
	.error_cb = smtp_session_error_cb,
	.close_cb = smtp_session_close_cb,
};

/* A 421 instead of the greeting, then close: on port 465 inside TLS,
 * after the handshake, where such a client can read it (net.h). */
static void
smtp_session_refuse(struct smtp_session *s, const char *enh,
    const char *text)
{
	struct buf *out = smtp_proto_out(s->p);
	char line[512];

	s->greeted = true;
	smtp_proto_refuse(s->p, 421, enh, text);
	snprintf(line, sizeof(line), "%.*s", out->len >= 2 ?
	    (int)out->len - 2 : 0, (const char *)out->p);
	buf_reset(out);
	net_conn_refuse(s->c, line);
}

void
smtp_session_accept(struct net_listener *l, struct net_conn *c)
{
	struct smtp_server *srv = net_listener_data(l);
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	struct smtp_proto_conf conf;
	unsigned count;

	s->srv = srv;
	s->c = c;
	s->kind = (enum smtp_listen_kind)net_listener_kind(l);
	s->spool_fd = -1;
	s->t_start = uv_now(srv->loop);
	log_new_sid(s->sid);
	snprintf(s->peer, sizeof(s->peer), "%s", net_conn_peer(c));
	authlimit_key(s->peer, s->ipkey);
	buf_init(&s->head, 64 * 1024);
	uv_timer_init(srv->loop, &s->timer);
	s->timer.data = s;
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->n_sessions++;
	net_conn_set_data(c, s);
	net_conn_set_ops(c, &smtp_session_ops);

	memset(&conf, 0, sizeof(conf));
	conf.hostname = srv->cfg->server.hostname;
	conf.kind = s->kind;
	conf.starttls = net_conn_starttls_ctx(c) != NULL &&
	    s->kind != SMTP_LISTEN_SUBMISSIONS;
	conf.allow_plaintext_auth = srv->cfg->smtp.allow_plaintext_auth;
	conf.spf = srv->cfg->inbound.spf;
	conf.limits = srv->limits;
	conf.log_cb = smtp_session_log_cb;
	conf.log_data = s;
	if (smtp_proto_new(&conf, &s->p) < 0)
		fatal("out of memory");

	log_info(s->sid, "connect client=%s port=%d listener=%s", s->peer,
	    net_conn_local_port(c), smtp_session_kind_name(s->kind));
	if (srv->max_sessions > 0 && srv->n_sessions > srv->max_sessions) {
		log_warn(s->sid, "refused client=%s reason=max_connections "
		    "sessions=%u max_connections=%u", s->peer,
		    srv->n_sessions - 1, srv->max_sessions);
		smtp_session_refuse(s, "4.7.0", "Too many connections, try "
		    "again later");
		return;
	}
	count = ipcount_inc(srv->ipc, s->peer);
	s->ip_counted = true;
	if (srv->max_per_ip > 0 && count > srv->max_per_ip) {
		log_warn(s->sid, "refused client=%s "
		    "reason=max_connections_per_ip connections=%u", s->peer,
		    count);
		smtp_session_refuse(s, "4.7.0",
		    "Too many connections from your address");
		return;
	}
	if (srv->draining) {
		smtp_session_refuse(s, "4.3.2", "Service shutting down");
		return;
	}
	net_conn_set_timeout(c, srv->timeout_ms);
	if (s->kind == SMTP_LISTEN_SUBMISSIONS) {
		s->tls_starting = true;
		return; /* tls_cb greets */
	}
	s->greeted = true;
	smtp_proto_greet(s->p);
	smtp_session_flush(s);
}

void
smtp_server_drain(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	srv->draining = true;
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->c == NULL)
			continue;
		if (!s->greeted) {
			net_conn_close(s->c, false);
			continue;
		}
		smtp_proto_shutdown(s->p);
		if (!s->busy)
			smtp_session_run(s);
	}
	if (srv->n_sessions == 0 && srv->idle_cb != NULL)
		srv->idle_cb(srv);
}

void
smtp_server_close_all(struct smtp_server *srv)
{
	struct smtp_session *s;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->c != NULL)
			net_conn_close(s->c, false);
}
