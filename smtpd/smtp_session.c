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
#include "authres.h"
#include "daemon.h"
#include "dkim_verify.h"
#include "smtp_milter.h"
#include "dmarc.h"
#include "iprev.h"
#include "log.h"
#include "maildate.h"
#include "metrics.h"
#include "pwpool.h"
#include "relay.h"
#include "smtp_deliver.h"
#include "smtp_etrn.h"
#include "smtp_head.h"
#include "smtp_policy.h"
#include "spf.h"
#include "store.h"
#include "store_greylist_job.h"
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

	/* A delivery, and the details of its trace event. */
	struct smtp_deliver_job job;
	char trace[STORE_TRACE_INFO_MAX];

	/* Greylisting of a RCPT: the status of the lookup before it. */
	struct store_greylist_job grey;
	int grey_status;
};

/* RFC 6647 6.3 (36 days, as Postgrey's max-age): a triplet that passed
 * is remembered that long after it was last seen; one that was never
 * retried is forgotten after two days. */
#define SMTP_SESSION_GREY_KEEP (36 * 86400)
#define SMTP_SESSION_GREY_RETRY (2 * 86400)

/* DNS block lists asked (RFC 5782) at most. */
#define SMTP_SESSION_DNSBL_MAX 8

struct smtp_session_dnsbl_zone {
	struct smtp_session *s;
	char name[256];
	bool listed;
	char txt[256];
};

/* The DNSBL lookups of a connection, before its greeting. */
struct smtp_session_dnsbl {
	unsigned n, wait;
	struct smtp_session_dnsbl_zone zone[SMTP_SESSION_DNSBL_MAX];
};

/* The checks of one message on the MX listener, from its first octets
 * to its delivery. */
struct smtp_session_chk {
	struct smtp_head head;        /* our A-R removed; From: kept */
	struct dkim_verify *dkim;     /* NULL: [inbound] dkim and dmarc off */
	struct dmarc *dmarc;
	struct buf out;               /* filtered octets of the last feed */
	/* What the last feed passes on to the store: k->out while the
	 * header section is filtered, then the fed octets themselves (the
	 * body passes untouched; valid as long as the event's data). */
	const uint8_t *fed;
	size_t fed_len;
	bool verified;                /* SMTP_EV_VERIFY fed the tail */
	bool dkim_async, wait_iprev;
	struct dkim_verify_result res[DKIM_VERIFY_REPORT_MAX];
	size_t nres;
	int from_status;
	char from_domain[256];
	bool dmarc_done;
	struct dmarc_verdict dv;
	struct buf authres;           /* the field, CRLF included */
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

	/* Inbound checks (MX listener): iprev and the DNSBL at connect,
	 * while they run; iprev's result; the current message's checks. */
	struct iprev *iprev;
	const char *iprev_word;       /* RFC 8601 2.7.3, static */
	char iprev_name[256];         /* the client's verified name, or "" */
	struct smtp_session_dnsbl *dnsbl;
	struct smtp_session_chk *chk;

	/* The content filters of the current message, while they run (one
	 * pending count), and what they changed until its delivery. */
	struct smtp_session_mlt *mlt;
};

/* The session's content filters (smtp_milter.h): the run, made at the
 * first step, the values of their macros, and what they changed of the
 * current message until its delivery. */
struct smtp_session_mlt {
	struct smtp_milter *run;
	int which;                    /* the list: 1 [milter] servers, 2
	                               * submission_servers */
	int step;                     /* the core's step in flight */
	struct milter_env env;
	char tls_version[32];
	char cipher[96];
	char cert_subject[256];
	char cert_issuer[256];
	/* The message's id, chosen at MAIL so that the filters see it as
	 * early as Sendmail's and Postfix's do (macro i). */
	char qid[STORE_ID_LEN + 1];
	struct smtp_milter_changes ch;
	/* The recipients after the changes, with their DSN parameters,
	 * and their targets, each with the recipient that reached it. */
	struct smtp_tx_rcpt *rc;
	struct smtp_session_targets_own {
		int64_t *users;
		unsigned *users_rcpt;
		size_t n_users;
		char **remote;
		unsigned *remote_rcpt;
		size_t n_remote;
	} t;
};

static void smtp_session_run(struct smtp_session *s);
static void smtp_session_chk_free(struct smtp_session *s);
static void smtp_session_mlt_free(struct smtp_session *s);
static void smtp_session_mlt_msg_fini(struct smtp_session *s);
static void smtp_session_deliver_dsn(const struct smtp_tx *tx,
    struct smtp_deliver_job *job);
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
	if (strncmp(text, "reject ", 7) == 0) {
		char check[32];

		/* "reject check=NAME ...": counted by check. */
		if (sscanf(text, "reject check=%31[^ ]", check) == 1)
			metrics_inc(METRICS_SMTP_REFUSED, check);
		log_msg(lvl, s->sid, "reject client=%s %s", s->peer, text + 7);
	} else if (strncmp(text, "refused dsn=", 12) == 0) {
		metrics_inc(METRICS_SMTP_REFUSED, text + 12);
		log_msg(lvl, s->sid, "%s", text);
	}
	else if (strncmp(text, "marked ", 7) == 0)
		log_msg(lvl, s->sid, "marked client=%s %s", s->peer, text + 7);
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
	metrics_gauge_add(METRICS_SMTP_SESSIONS_ACTIVE, -1);
	smtp_proto_free(&s->p);
	smtp_session_spool_close(s);
	smtp_session_chk_free(s);
	smtp_session_mlt_free(s);
	iprev_free(&s->iprev);
	free(s->dnsbl);
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

/* The outstanding event is answered: go on with buffered input. */
static void
smtp_session_resume(struct smtp_session *s)
{
	s->busy = false;
	smtp_session_op_free(s);
	if (s->c == NULL)
		return;
	net_conn_resume(s->c);
	smtp_session_run(s);
}

/* Answers the outstanding event and goes on with buffered input. */
static void
smtp_session_complete(struct smtp_session *s, int status)
{
	smtp_proto_complete(s->p, status);
	smtp_session_resume(s);
}

/* Waits ms on the session timer, then cb, which ends the wait (clears
 * delay_active, drops the pending count).  A close cancels the wait
 * (smtp_session_close_cb). */
static void
smtp_session_wait(struct smtp_session *s, uv_timer_cb cb, uint64_t ms)
{
	s->pending++;
	s->delay_active = true;
	uv_timer_start(&s->timer, cb, ms, 0);
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
	metrics_inc(METRICS_AUTH_FAILURES, "smtp");
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
	smtp_session_wait(s, smtp_session_auth_delay_cb, delay);
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
		smtp_session_wait(s, smtp_session_auth_delay_cb,
		    SMTP_SESSION_AUTH_DELAY_MS);
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
	if (!smtp_session_auth_verify(s)) {
		sodium_memzero(s->op->login.hash, sizeof(s->op->login.hash));
		smtp_session_complete(s, PR_EAGAIN);
	}
}

/* AUTH ends before a password check: the hash is wiped (the op state
 * may outlive this, held by other work in flight) and the core gets
 * status.  Returns true: the event completed synchronously. */
static bool
smtp_session_auth_end(struct smtp_session *s, int status)
{
	sodium_memzero(s->op->login.hash, sizeof(s->op->login.hash));
	smtp_proto_complete(s->p, status);
	smtp_session_op_free(s);
	return true;
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
		return smtp_session_auth_end(s, PR_EIO);
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
		return smtp_session_auth_end(s, PR_EAGAIN);
	}
	if (delay > 0) {
		log_info(s->sid, "auth client=%s status=delayed user=%s "
		    "failures=%u account_failures=%u delay=%llums", s->peer,
		    log_value(op->login.account, uq, sizeof(uq)),
		    n->ip_failures, n->account_failures,
		    (unsigned long long)delay);
		smtp_session_wait(s, smtp_session_auth_wait_cb, delay);
		return false;
	}
	if (!smtp_session_auth_verify(s))
		return smtp_session_auth_end(s, PR_EAGAIN);
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

static void
smtp_session_greylist_cb(struct store_greylist_job *j)
{
	struct smtp_session *s = j->data;
	int status = s->op->grey_status;

	s->pending--;
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	/* A store that cannot tell does not hold mail back (logged). */
	if (j->req.status < 0)
		log_err(s->sid, "greylisting: %s", j->err.msg);
	else if (j->req.result == STORE_GREY_WAIT)
		status = SMTP_RCPT_GREYLISTED;
	log_debug(s->sid, "greylist client=%s net=%s from=<%s> to=<%s> %s%s",
	    s->peer, j->net, j->sender, j->rcpt, status ==
	    SMTP_RCPT_GREYLISTED ? "wait" : "pass", j->spf_domain[0] ?
	    " (spf pass)" : "");
	smtp_session_complete(s, status);
}

/*
 * RFC 6647: the triplet of the client's network (IPv4 /24, IPv6 /64),
 * the sender and the recipient, through the store worker (it writes).
 * An SPF pass lets a domain that passed before skip the wait.
 */
static bool
smtp_session_greylist(struct smtp_session *s, const struct smtp_event *ev)
{
	struct smtp_session_op *op = smtp_session_op(s);
	struct store_greylist_job *j = &op->grey;
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	const struct cfg *cfg = s->srv->cfg;
	const char *at;
	char *dot;

	memset(j, 0, sizeof(*j));
	op->grey_status = SMTP_RCPT_LOCAL;
	if (strchr(s->peer, ':') != NULL) {
		snprintf(j->net, sizeof(j->net), "%s", s->ipkey);
	} else {
		snprintf(j->net, sizeof(j->net), "%s", s->peer);
		if ((dot = strrchr(j->net, '.')) != NULL)
			snprintf(dot, sizeof(j->net) - (size_t)(dot - j->net),
			    ".0/24");
	}
	snprintf(j->sender, sizeof(j->sender), "%s", tx->sender);
	snprintf(j->rcpt, sizeof(j->rcpt), "%s", ev->addr);
	if (tx->spf_checked && tx->spf_result == SPF_PASS &&
	    (at = strrchr(tx->spf_identity, '@')) != NULL)
		snprintf(j->spf_domain, sizeof(j->spf_domain), "%s", at + 1);
	j->req.now = (int64_t)time(NULL);
	j->req.delay = (int64_t)cfg->inbound.greylist_delay;
	j->req.keep = SMTP_SESSION_GREY_KEEP;
	j->req.retry_max = SMTP_SESSION_GREY_RETRY > 2 * j->req.delay ?
	    SMTP_SESSION_GREY_RETRY : 2 * j->req.delay;
	j->done_cb = smtp_session_greylist_cb;
	j->data = s;
	s->pending++;
	store_greylist_submit(s->srv->wk, j);
	return false;
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
	if (status == SMTP_RCPT_LOCAL && s->srv->cfg->inbound.greylist &&
	    smtp_proto_verifies(s->p))
		return smtp_session_greylist(s, ev);
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

/* --- Content filters (docs/MILTER.md) --------------------------------- */

/* What the filters changed of the message just delivered or refused. */
static void
smtp_session_mlt_msg_fini(struct smtp_session *s)
{
	struct smtp_session_mlt *x = s->mlt;
	size_t i;

	if (x == NULL)
		return;
	smtp_milter_changes_fini(&x->ch);
	free(x->rc);
	x->rc = NULL;
	for (i = 0; i < x->t.n_remote; i++)
		free(x->t.remote[i]);
	free(x->t.remote);
	free(x->t.remote_rcpt);
	free(x->t.users);
	free(x->t.users_rcpt);
	memset(&x->t, 0, sizeof(x->t));
	x->qid[0] = '\0';
}

/* The session ends: the filters get SMFIC_ABORT and SMFIC_QUIT. */
static void
smtp_session_mlt_free(struct smtp_session *s)
{
	struct smtp_session_mlt *x = s->mlt;

	if (x == NULL)
		return;
	smtp_session_mlt_msg_fini(s);
	smtp_milter_free(x->run);
	free(x);
	s->mlt = NULL;
}

/* The filters of this session's mail: the MX listener's, or those of
 * authenticated submissions; NULL = none.  *which_r tells which. */
static const struct cfg_milter_list *
smtp_session_milters(struct smtp_session *s, int *which_r)
{
	const struct cfg *cfg = s->srv->cfg;

	*which_r = 0;
	if (smtp_proto_auth_user(s->p)[0] != '\0') {
		if (cfg->milter.submission_servers.n == 0)
			return NULL;
		*which_r = 2;
		return &cfg->milter.submission_servers;
	}
	if (s->kind == SMTP_LISTEN_MX && cfg->milter.servers.n > 0) {
		*which_r = 1;
		return &cfg->milter.servers;
	}
	return NULL;
}

/* The macros' values as the session stands (milter.h, struct
 * milter_env). */
static void
smtp_session_mlt_env(struct smtp_session *s)
{
	struct smtp_session_mlt *x = s->mlt;
	struct milter_env *e = &x->env;
	const char *user = smtp_proto_auth_user(s->p);
	const char *helo = smtp_proto_helo(s->p);

	e->hostname = s->srv->cfg->server.hostname;
	e->daemon_name = smtp_session_kind_name(s->kind);
	e->client_addr = s->peer;
	e->client_name = s->iprev_name[0] != '\0' ? s->iprev_name : NULL;
	e->family = strchr(s->peer, ':') != NULL ? 6 : 4;
	e->helo = helo[0] != '\0' ? helo : NULL;
	e->queue_id = x->qid[0] != '\0' ? x->qid : NULL;
	/* rspamd skips its inbound checks for authenticated mail. */
	e->auth_authen = user[0] != '\0' ? user : NULL;
	e->auth_type = user[0] != '\0' ? smtp_proto_auth_mech(s->p) : NULL;
	e->tls_version = e->cipher = NULL;
	e->cert_subject = e->cert_issuer = NULL;
	if (s->c != NULL && net_conn_tls_active(s->c)) {
		const char *d = net_conn_tls_desc(s->c);
		size_t vl = strcspn(d, " ");

		snprintf(x->tls_version, sizeof(x->tls_version), "%.*s",
		    (int)vl, d);
		snprintf(x->cipher, sizeof(x->cipher), "%s", d[vl] ?
		    d + vl + 1 : "");
		e->tls_version = x->tls_version;
		e->cipher = x->cipher;
		/* Only when the client sent a certificate (docs/MILTER.md:
		 * the listeners do not ask for one). */
		if (net_conn_tls_peer_names(s->c, x->cert_subject,
		    sizeof(x->cert_subject), x->cert_issuer,
		    sizeof(x->cert_issuer))) {
			e->cert_subject = x->cert_subject;
			e->cert_issuer = x->cert_issuer;
		}
	}
	e->sender = smtp_proto_tx(s->p)->sender;
	e->body_max = s->srv->limits.data_max;
}

/* The session's run for its filters as they stand (a login may change
 * them), NULL for none. */
static struct smtp_session_mlt *
smtp_session_mlt(struct smtp_session *s)
{
	const struct cfg *cfg = s->srv->cfg;
	const struct cfg_milter_list *list;
	struct smtp_session_mlt *x;
	int which;

	list = smtp_session_milters(s, &which);
	if (s->mlt != NULL && s->mlt->which != which) {
		smtp_milter_free(s->mlt->run);
		s->mlt->run = NULL;
	}
	if (list == NULL)
		return NULL;
	if (s->mlt == NULL)
		s->mlt = xcalloc(1, sizeof(*s->mlt));
	x = s->mlt;
	if (x->run == NULL) {
		x->run = smtp_milter_open(s->srv->loop, list,
		    cfg->milter.timeout,
		    cfg->milter.on_failure == CFG_MILTER_ACCEPT, &x->env,
		    s->sid);
		x->which = which;
	}
	smtp_session_mlt_env(s);
	return x;
}

static const char *
smtp_session_step_name(int step)
{
	switch (step) {
	case SMTP_MILTER_HELO: return "helo";
	case SMTP_MILTER_MAIL: return "mail";
	case SMTP_MILTER_RCPT: return "rcpt";
	case SMTP_MILTER_DATA: return "data";
	case SMTP_MILTER_ABORT: return "abort";
	}
	return "message";
}

/* The filters' refusal for the core (the policy words it). */
static void
smtp_session_milter_rep(enum milter_verdict v,
    const struct milter_result *res, struct smtp_milter_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	if (v == MILTER_REJECT || v == MILTER_TEMPFAIL) {
		rep->outcome = v == MILTER_REJECT ? SMTP_MILTER_REJECT :
		    SMTP_MILTER_TEMPFAIL;
		if (res != NULL) {
			rep->code = res->code;
			snprintf(rep->enh, sizeof(rep->enh), "%s", res->enh);
			snprintf(rep->text, sizeof(rep->text), "%s",
			    res->text);
		}
	} else if (v == MILTER_FAILED) {
		rep->outcome = SMTP_MILTER_FAILED;
	}
}

/* The filters answered a command's step: a refusal is the core's to
 * word; at HELO it waits for the MAIL commands (docs/MILTER.md). */
static void
smtp_session_milter_answer(struct smtp_session *s)
{
	struct smtp_session_mlt *x = s->mlt;
	const struct milter_result *res;
	struct smtp_milter_reply rep;
	const char *filter;
	enum milter_verdict v = smtp_milter_verdict(x->run, &filter, &res);
	char rq[LOG_VALUE_MAX];

	smtp_session_milter_rep(v, res, &rep);
	if (rep.outcome != SMTP_MILTER_NONE)
		log_info(s->sid, "milter client=%s step=%s verdict=%s "
		    "filter=%s%s%s", s->peer, smtp_session_step_name(x->step),
		    milter_verdict_name(v), filter, rep.text[0] ?
		    " reason=" : "", rep.text[0] ? log_value(rep.text, rq,
		    sizeof(rq)) : "");
	if (rep.outcome != SMTP_MILTER_NONE && x->step != SMTP_MILTER_HELO &&
	    x->step != SMTP_MILTER_ABORT)
		smtp_proto_milter_reply(s->p, &rep);
	smtp_proto_complete(s->p, 0);
}

static void
smtp_session_milter_step_cb(struct smtp_milter *run, void *data)
{
	struct smtp_session *s = data;

	(void)run;
	s->pending--;
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_session_milter_answer(s);
	smtp_session_resume(s);
}

/* SMTP_EV_MILTER: the command's step.  Returns true when it completed
 * at once. */
static bool
smtp_session_milter_step(struct smtp_session *s, const struct smtp_event *ev)
{
	static const enum milter_cmd cmds[] = {
		[SMTP_MILTER_HELO] = MILTER_CMD_HELO,
		[SMTP_MILTER_MAIL] = MILTER_CMD_MAIL,
		[SMTP_MILTER_RCPT] = MILTER_CMD_RCPT,
		[SMTP_MILTER_DATA] = MILTER_CMD_DATA,
		[SMTP_MILTER_ABORT] = MILTER_CMD_ABORT,
	};
	struct smtp_session_mlt *x;

	if (ev->milter_step == SMTP_MILTER_ABORT && s->mlt == NULL) {
		smtp_proto_complete(s->p, 0);
		return true;
	}
	if ((x = smtp_session_mlt(s)) == NULL) {
		smtp_proto_complete(s->p, 0);
		return true;
	}
	if (ev->milter_step == SMTP_MILTER_MAIL) {
		unsigned char rb[STORE_ID_LEN / 2];

		randombytes_buf(rb, sizeof(rb));
		sodium_bin2hex(x->qid, sizeof(x->qid), rb, sizeof(rb));
		x->env.queue_id = x->qid;
	}
	x->step = ev->milter_step;
	s->pending++;
	if (!smtp_milter_step(x->run, cmds[ev->milter_step], ev->addr, NULL,
	    smtp_session_milter_step_cb, s))
		return false;
	s->pending--;
	smtp_session_milter_answer(s);
	return true;
}

/* Appends v to the array *a of *n (grown one at a time: the filters'
 * changes are bounded, MILTER_EDITS_MAX). */
static void
smtp_session_push_rcpt(unsigned **a, size_t n, unsigned v)
{
	*a = xrealloc(*a, (n + 1) * sizeof(**a));
	(*a)[n] = v;
}

/* The recipients the filters left, resolved again as RCPT resolves
 * them (an added one may be remote: a filter is the admin's choice),
 * each with its DSN parameters (RFC 3461 4). */
static int
smtp_session_milter_rcpts(struct smtp_session *s, struct smtp_deliver_job *job)
{
	struct smtp_session_mlt *x = s->mlt;
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	struct store_msg *m = &job->msg;
	struct smtp_session_targets t;
	struct smtp_tx dsn;
	struct pr_err err;
	size_t i, j, k;
	int kind;

	x->rc = xcalloc(x->ch.n_rcpts ? x->ch.n_rcpts : 1, sizeof(*x->rc));
	for (i = 0; i < x->ch.n_rcpts; i++) {
		const struct smtp_milter_rcpt *r = &x->ch.rcpts[i];

		snprintf(x->rc[i].addr, sizeof(x->rc[i].addr), "%s",
		    r->addr);
		x->rc[i].notify = r->notify;
		memcpy(x->rc[i].orcpt, r->orcpt, sizeof(x->rc[i].orcpt));
		memset(&t, 0, sizeof(t));
		kind = store_resolve(s->srv->st, r->addr,
		    smtp_session_target_cb, &t, &err);
		if (kind == STORE_RESOLVE_REMOTE)
			smtp_session_target_cb(&t, 0, r->addr);
		else if (kind == STORE_RESOLVE_UNKNOWN)
			log_warn(s->sid, "milter client=%s rcpt=<%s> "
			    "status=unknown", s->peer, r->addr);
		if (kind < 0) {
			smtp_session_targets_reset(&t);
			free(t.users);
			free(t.remote);
			return PR_EIO;
		}
		/* No duplicates (store_msg); a target keeps the first
		 * recipient that reached it. */
		for (j = 0; j < t.n_users; j++) {
			for (k = 0; k < x->t.n_users; k++)
				if (x->t.users[k] == t.users[j])
					break;
			if (k < x->t.n_users)
				continue;
			x->t.users = xrealloc(x->t.users, (x->t.n_users + 1) *
			    sizeof(*x->t.users));
			x->t.users[x->t.n_users] = t.users[j];
			smtp_session_push_rcpt(&x->t.users_rcpt, x->t.n_users++,
			    (unsigned)i);
		}
		for (j = 0; j < t.n_remote; j++) {
			for (k = 0; k < x->t.n_remote; k++)
				if (strcasecmp(x->t.remote[k],
				    t.remote[j]) == 0)
					break;
			if (k < x->t.n_remote)
				continue;
			x->t.remote = xrealloc(x->t.remote, (x->t.n_remote +
			    1) * sizeof(*x->t.remote));
			x->t.remote[x->t.n_remote] = xstrdup(t.remote[j]);
			smtp_session_push_rcpt(&x->t.remote_rcpt,
			    x->t.n_remote++, (unsigned)i);
		}
		smtp_session_targets_reset(&t);
		free(t.users);
		free(t.remote);
	}
	m->users = x->t.users;
	m->n_users = x->t.n_users;
	m->remote = (const char *const *)x->t.remote;
	m->n_remote = x->t.n_remote;
	/* The DSN parameters pair with the recipients the filters left:
	 * the block smtp_session_deliver_dsn made for the RCPTs is made
	 * again for these. */
	free((void *)m->remote_orcpt);
	m->remote_orcpt = NULL;
	m->remote_notify = NULL;
	memset(&dsn, 0, sizeof(dsn));
	dsn.dsn_ret = tx->dsn_ret;
	memcpy(dsn.dsn_envid, tx->dsn_envid, sizeof(dsn.dsn_envid));
	dsn.smtputf8 = tx->smtputf8;
	dsn.rcpts = x->rc;
	dsn.users_rcpt = x->t.users_rcpt;
	dsn.remote_rcpt = x->t.remote_rcpt;
	dsn.n_remote = x->t.n_remote;
	smtp_session_deliver_dsn(&dsn, job);
	free(m->user_status);
	m->user_status = xcalloc(m->n_users ? m->n_users : 1,
	    sizeof(*m->user_status));
	return m->n_users + m->n_remote > 0 ? 0 : PR_ENOENT;
}

/* The filters let the message through: their changes, then the
 * delivery. */
static void
smtp_session_milter_pass(struct smtp_session *s, struct smtp_deliver_job *job)
{
	struct smtp_session_mlt *x = s->mlt;
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	struct store_msg *m = &job->msg;
	char rq[LOG_VALUE_MAX];
	int r;

	r = smtp_milter_apply(x->run, tx->rcpts, tx->n_rcpt,
	    s->srv->limits.data_max, &x->ch);
	if (r == 0 && x->ch.content) {
		m->head = NULL;
		m->head_len = 0;
		m->body = x->ch.msg.p;
		m->body_len = x->ch.msg.len;
		m->body_fd = -1;
	}
	if (r == 0 && x->ch.sender_changed)
		m->sender = x->ch.sender;
	if (r == 0 && x->ch.rcpts_changed)
		r = smtp_session_milter_rcpts(s, job);
	if (r == 0 && x->ch.quarantine)
		m->held = x->ch.reason[0] != '\0' ? x->ch.reason :
		    "quarantined by a content filter";
	if (r != PR_ENOENT)
		log_info(s->sid, "milter msgid=%s client=%s verdict=pass "
		    "filters=%zu changes=%u%s%s%s", m->id, s->peer,
		    smtp_milter_count(x->run), x->ch.n, x->ch.quarantine ?
		    " quarantine=" : "", x->ch.quarantine ?
		    log_value(x->ch.reason[0] ? x->ch.reason : "-", rq,
		    sizeof(rq)) : "", r < 0 ? " status=failed" : "");
	if (r < 0) {
		/* Nothing was stored.  With every recipient removed the
		 * message is done with, as a discard; otherwise the client
		 * keeps it and retries. */
		s->pending--;
		free(m->user_status);
		m->user_status = NULL;
		free((void *)m->remote_orcpt);
		m->remote_orcpt = NULL;
		m->remote_notify = NULL;
		smtp_session_spool_close(s);
		smtp_session_chk_free(s);
		smtp_session_mlt_msg_fini(s);
		buf_reset(&s->head);
		if (r == PR_ENOENT) {
			log_info(s->sid, "milter msgid=%s client=%s "
			    "verdict=discard reason=\"no recipient left\"",
			    m->id, s->peer);
			smtp_proto_queued_as(s->p, m->id);
			r = 0;
		}
		smtp_session_complete(s, r);
		return;
	}
	smtp_deliver_submit(s->srv->wk, job);
}

/* The end of the message is answered. */
static void
smtp_session_milter_cb(struct smtp_milter *run, void *data)
{
	struct smtp_session *s = data;
	struct smtp_deliver_job *job = &smtp_session_op(s)->job;
	const struct milter_result *res;
	struct smtp_milter_reply rep;
	const char *filter;
	enum milter_verdict v = smtp_milter_verdict(run, &filter, &res);
	char rq[LOG_VALUE_MAX];

	if (s->c == NULL) {
		s->pending--;
		free(job->msg.user_status);
		job->msg.user_status = NULL;
		free((void *)job->msg.remote_orcpt);
		job->msg.remote_orcpt = NULL;
		smtp_session_release(s);
		return;
	}
	if (v == MILTER_CONTINUE || v == MILTER_ACCEPT) {
		smtp_session_milter_pass(s, job);
		return;
	}
	/* Refused, deferred or dropped: nothing of it is stored. */
	s->pending--;
	free(job->msg.user_status);
	job->msg.user_status = NULL;
	free((void *)job->msg.remote_orcpt);
	job->msg.remote_orcpt = NULL;
	job->msg.remote_notify = NULL;
	smtp_session_milter_rep(v, res, &rep);
	log_info(s->sid, "milter msgid=%s client=%s verdict=%s filter=%s "
	    "from=<%s> nrcpt=%u%s%s", job->msg.id, s->peer,
	    milter_verdict_name(v), filter, smtp_proto_tx(s->p)->sender,
	    smtp_proto_tx(s->p)->n_rcpt, rep.text[0] ? " reason=" : "",
	    rep.text[0] ? log_value(rep.text, rq, sizeof(rq)) : "");
	smtp_session_spool_close(s);
	smtp_session_chk_free(s);
	smtp_session_mlt_msg_fini(s);
	buf_reset(&s->head);
	if (v == MILTER_DISCARD) {
		/* Accepted and dropped (the filter's SMFIR_DISCARD): the
		 * client is done with it, as with Sendmail and Postfix. */
		smtp_proto_queued_as(s->p, job->msg.id);
		smtp_session_complete(s, 0);
		return;
	}
	smtp_proto_milter_reply(s->p, &rep);
	smtp_session_complete(s, 0);
}

/*
 * Hands the message of job to the content filters when this session's
 * mail has any; returns true when they run (the callback carries on
 * with the delivery or the refusal), false to deliver at once.
 */
static bool
smtp_session_milter(struct smtp_session *s, struct smtp_deliver_job *job)
{
	const struct store_msg *m = &job->msg;
	struct smtp_session_mlt *x = smtp_session_mlt(s);
	struct smtp_milter_src src;

	if (x == NULL)
		return false;
	x->step = 0;
	x->env.queue_id = m->id;
	memset(&src, 0, sizeof(src));
	src.head = m->head;
	src.head_len = m->head_len;
	src.fd = m->body_fd;
	src.fd_len = m->body_fd >= 0 ? m->body_len : 0;
	src.mem = m->body;
	src.mem_len = m->body_fd >= 0 ? 0 : m->body_len;
	if (smtp_milter_step(x->run, MILTER_CMD_MESSAGE, NULL, &src,
	    smtp_session_milter_cb, s))
		smtp_session_milter_cb(x->run, s);
	return true;
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
	/* One block with remote_notify (smtp_session_deliver_dsn). */
	free((void *)job->msg.remote_orcpt);
	job->msg.remote_orcpt = NULL;
	job->msg.remote_notify = NULL;
	/* The protocol of the TLS session ("TLSv1.3"), or "no". */
	if (s->c != NULL && net_conn_tls_active(s->c)) {
		tls = net_conn_tls_desc(s->c);
		tls_len = (int)strcspn(tls, " ");
	}
	/* One id end to end: the Received field, the "queued as" reply,
	 * this line and `postroom queue list`. */
	if (m->status == 0)
		metrics_inc(METRICS_SMTP_ACCEPTED, NULL);
	else
		metrics_inc(METRICS_SMTP_REFUSED, m->status == PR_EQUOTA ||
		    m->status == PR_ETOOBIG ? "quota" : "store");
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
	smtp_session_chk_free(s);
	smtp_session_mlt_msg_fini(s);
	buf_reset(&s->head);
	buf_shrink(&s->head, 0);
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_proto_queued_as(s->p, m->id);
	smtp_session_complete(s, m->status);
}

static bool
smtp_session_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s & 0x80)
			return false;
	return true;
}

/* The DSN parameters (RFC 3461) go with the message: RET= and ENVID=
 * and each remote recipient's NOTIFY= and ORCPT= to the queue, and for
 * the local mailboxes their RCPTs, for a "delivered" report. */
static void
smtp_session_deliver_dsn(const struct smtp_tx *tx, struct smtp_deliver_job *job)
{
	struct store_msg *m = &job->msg;
	const char **orcpt;
	unsigned *notify;
	char *made;
	size_t i;

	m->dsn_ret = tx->dsn_ret;
	m->dsn_envid = tx->dsn_envid;
	job->rcpts = tx->rcpts;
	job->users_rcpt = tx->users_rcpt;
	job->smtputf8 = tx->smtputf8;
	if (tx->n_remote == 0)
		return;
	/* One block: the arrays, then the ORCPTs made up for RCPTs that
	 * gave none. */
	orcpt = xcalloc(1, tx->n_remote * (sizeof(*orcpt) +
	    sizeof(*notify) + ADDR_MAX + 8));
	notify = (unsigned *)(orcpt + tx->n_remote);
	made = (char *)(notify + tx->n_remote);
	for (i = 0; i < tx->n_remote; i++) {
		const struct smtp_tx_rcpt *rc = &tx->rcpts[tx->remote_rcpt[i]];

		notify[i] = rc->notify;
		orcpt[i] = rc->orcpt;
		if (rc->orcpt[0] != '\0')
			continue;
		/* RFC 3461 4.2: an ORCPT may be added when relaying, so
		 * that the next hop's report names the address the sender
		 * used (RFC 6533 3: "utf-8" for a UTF-8 one). */
		snprintf(made, ADDR_MAX + 8, "%s;%s",
		    smtp_session_ascii(rc->addr) ? "rfc822" : "utf-8",
		    rc->addr);
		orcpt[i] = made;
		made += ADDR_MAX + 8;
	}
	m->remote_notify = notify;
	m->remote_orcpt = orcpt;
}

/*
 * The details of a message's received event (postroom trace): who sent
 * it, over what, and the verdicts of the Authentication-Results field
 * (RFC 8601 2.2) on one line, without its authserv-id.
 */
static void
smtp_session_trace_info(struct smtp_session *s, char *out, size_t outsz)
{
	const char *tls = "", *ar = NULL, *semi, *user, *name;
	struct buf b;
	char c, prev = ' ';
	int tls_len = 0;

	buf_init(&b, outsz - 1);
	if (s->c != NULL && net_conn_tls_active(s->c)) {
		tls = net_conn_tls_desc(s->c);
		tls_len = (int)strcspn(tls, " ");
	}
	user = smtp_proto_auth_user(s->p);
	name = s->iprev_name[0] != '\0' ? s->iprev_name : "unknown";
	buf_printf(&b, "client=%s name=%s helo=%s listener=%s", s->peer, name,
	    smtp_proto_helo(s->p), smtp_session_kind_name(s->kind));
	if (tls_len > 0)
		buf_printf(&b, " tls=%.*s cipher=%s", tls_len, tls,
		    tls + tls_len + (tls[tls_len] == ' '));
	else
		buf_printf(&b, " tls=no");
	if (user[0] != '\0')
		buf_printf(&b, " user=%s", user);
	if (s->chk != NULL && s->chk->authres.len > 0 &&
	    (semi = strchr((const char *)s->chk->authres.p, ';')) != NULL)
		ar = semi + 1;
	if (ar != NULL) {
		buf_printf(&b, " auth=\"");
		/* Unfolded (RFC 5322 2.2.3), white space runs as one. */
		for (; (c = *ar) != '\0'; ar++) {
			if (c == '\r' || c == '\n' || c == '\t')
				c = ' ';
			if (c == '"')
				c = '\'';
			if (c == ' ' && prev == ' ')
				continue;
			buf_append(&b, &c, 1);
			prev = c;
		}
		while (b.len > 0 && b.p[b.len - 1] == ' ')
			b.len--;
		buf_printf(&b, "\"");
	}
	if (b.len > 0)
		memcpy(out, b.p, b.len);
	out[b.len] = '\0';
	buf_fini(&b);
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
	/* ... or at MAIL already, for the content filters' macro i. */
	if (s->mlt != NULL && s->mlt->qid[0] != '\0')
		memcpy(id, s->mlt->qid, sizeof(id));
	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(rnd, sizeof(rnd), rb, sizeof(rb));
	snprintf(msgid, sizeof(msgid), "<%s.%s@%s>", rnd, id,
	    s->srv->cfg->server.hostname);
	t.peer_ip = s->peer;
	t.id = id;
	t.date = date;
	t.msgid = msgid;
	t.authres = s->chk != NULL && s->chk->authres.len > 0 ?
	    (const char *)s->chk->authres.p : NULL;
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
	smtp_session_deliver_dsn(tx, job);
	m->head = s->head.p;
	m->head_len = s->head.len;
	m->device_id = s->device_id;
	smtp_session_trace_info(s, smtp_session_op(s)->trace,
	    sizeof(smtp_session_op(s)->trace));
	m->trace_info = smtp_session_op(s)->trace;
	memcpy(m->id, id, sizeof(m->id));
	if (tx->spooled) {
		m->body_fd = s->spool_fd;
		/* What the file holds: the header filter may have taken
		 * fields out. */
		m->body_len = s->chk != NULL && s->chk->verified ?
		    (size_t)s->spool_off : (size_t)tx->size;
	} else if (s->chk != NULL && s->chk->verified) {
		m->body_fd = -1;
		m->body = s->chk->fed;
		m->body_len = s->chk->fed_len;
	} else {
		m->body_fd = -1;
		m->body = ev->data;
		m->body_len = ev->len;
	}
	job->done_cb = smtp_session_deliver_done;
	job->data = s;
	s->pending++;
	if (smtp_session_milter(s, job))
		return;
	smtp_deliver_submit(s->srv->wk, job);
}

static bool
smtp_session_deliver(struct smtp_session *s, const struct smtp_event *ev)
{
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	const uint8_t *data = ev->data;
	size_t len = ev->len;

	if (s->chk != NULL && s->chk->verified) {
		data = s->chk->fed;
		len = s->chk->fed_len;
	}
	/* The tail of a spooled message joins the rest in the file first. */
	if (tx->spooled && len > 0) {
		smtp_session_spool_write(s, data, len,
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
	char sq[LOG_VALUE_MAX], rq[LOG_VALUE_MAX];

	log_info(s->sid, "spf client=%s %s=%s result=%s reason=%s", s->peer,
	    spf_identity_str(o->identity), log_value(o->sender, sq,
	    sizeof(sq)), spf_result_str(o->result), log_value(o->reason, rq,
	    sizeof(rq)));
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

/* --- Inbound checks of the MX listener --------------------------------- */

/*
 * What runs at connect, in parallel with nothing in front of the
 * greeting but the DNS block lists (each bounded by [dns] timeout):
 * iprev (RFC 8601 3: the PTR names of the client's address, each looked
 * up forward, one of them must lead back) and the DNSBL queries (RFC
 * 5782 2.1: an A record under the zone lists the address, its TXT
 * record says why).  At the end of data the message's DKIM signatures,
 * its From: count and DMARC; the policy decides (smtp_policy.c) and the
 * outcome goes into the Authentication-Results field.
 */

static void smtp_session_verify_finish(struct smtp_session *s);

static void
smtp_session_iprev_cb(void *data, enum iprev_result r, const char *name)
{
	struct smtp_session *s = data;

	s->pending--;
	s->iprev_word = iprev_result_str(r);
	snprintf(s->iprev_name, sizeof(s->iprev_name), "%s", name);
	log_debug(s->sid, "iprev client=%s result=%s%s%s", s->peer, s->iprev_word,
	    name[0] ? " name=" : "", name);
	iprev_free(&s->iprev);
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	if (s->chk != NULL && s->chk->wait_iprev) {
		s->chk->wait_iprev = false;
		smtp_session_verify_finish(s);
	}
}

/* Starts iprev; the answer is needed only at the end of data. */
static void
smtp_session_iprev_start(struct smtp_session *s)
{
	s->iprev_word = "temperror";
	if (iprev_new(s->srv->resolver, s->peer, smtp_session_iprev_cb, s,
	    &s->iprev) == 0)
		s->pending++;
}

/* The DNSBL answers are all in (or there were none to ask): refuse the
 * client or greet it. */
static void
smtp_session_dnsbl_done(struct smtp_session *s)
{
	struct smtp_session_dnsbl *bl = s->dnsbl;
	struct smtp_policy_facts f;
	struct smtp_verdict v;
	size_t i;

	memset(&f, 0, sizeof(f));
	f.hostname = s->srv->cfg->server.hostname;
	f.limits = &s->srv->limits;
	f.kind = s->kind;
	f.peer = s->peer;
	/* The first list in the configured order that lists the client. */
	for (i = 0; bl != NULL && i < bl->n; i++) {
		if (bl->zone[i].listed) {
			f.dnsbl_zone = bl->zone[i].name;
			f.dnsbl_reason = bl->zone[i].txt;
			break;
		}
	}
	smtp_policy_check(SMTP_POLICY_CONNECT, &f, &v);
	free(s->dnsbl);
	s->dnsbl = NULL;
	s->busy = false;
	s->greeted = true;
	if (v.code != 0) {
		metrics_inc(METRICS_SMTP_REFUSED, v.check ? v.check : "connect");
		log_warn(s->sid, "reject client=%s check=%s code=%d dsn=%s "
		    "reason=\"%s\"", s->peer, v.check ? v.check : "-", v.code,
		    v.enh ? v.enh : "-", v.text);
		smtp_proto_refuse(s->p, v.code, v.enh, v.text);
		smtp_session_flush(s);
		if (s->c != NULL)
			net_conn_close(s->c, true);
		return;
	}
	smtp_proto_greet(s->p);
	if (s->srv->draining)
		smtp_proto_shutdown(s->p);
	smtp_session_flush(s);
	net_conn_resume(s->c);
	smtp_session_run(s);
}

/* Printable ASCII of a TXT record, for a reply line (RFC 5321 4.2). */
static void
smtp_session_dnsbl_txt(char *out, size_t outsz,
    const struct resolver_answer *ans)
{
	size_t i, j, o = 0;

	out[0] = '\0';
	if (ans->n == 0 || ans->rr[0].type != RESOLVER_TXT)
		return;
	for (i = 0; i < ans->rr[0].u.txt.n; i++)
		for (j = 0; j < ans->rr[0].u.txt.len[i] && o + 1 < outsz; j++) {
			uint8_t c = ans->rr[0].u.txt.s[i][j];

			out[o++] = c >= 0x20 && c < 0x7f && c != '"' ?
			    (char)c : ' ';
		}
	out[o] = '\0';
}

static void
smtp_session_dnsbl_settle(struct smtp_session_dnsbl_zone *z)
{
	struct smtp_session *s = z->s;

	s->pending--;
	if (--s->dnsbl->wait > 0)
		return;
	if (s->c == NULL) {
		free(s->dnsbl);
		s->dnsbl = NULL;
		smtp_session_release(s);
		return;
	}
	smtp_session_dnsbl_done(s);
}

static void
smtp_session_dnsbl_a_cb(void *data, const struct resolver_answer *ans)
{
	struct smtp_session_dnsbl_zone *z = data;
	size_t i;

	/* RFC 5782 2.1: 127.0.0.2 and up list the address; 127.255.255.0/24
	 * are the lists' own error codes (a refused or over-quota query),
	 * and a failure to answer lists nobody. */
	for (i = 0; i < ans->n; i++)
		if (ans->rr[i].type == RESOLVER_A && ans->rr[i].u.a[0] == 127 &&
		    !(ans->rr[i].u.a[1] == 255 && ans->rr[i].u.a[2] == 255) &&
		    !(ans->rr[i].u.a[1] == 0 && ans->rr[i].u.a[2] == 0 &&
		    ans->rr[i].u.a[3] < 2))
			z->listed = true;
	if (ans->rcode != RESOLVER_NOERROR && ans->rcode != RESOLVER_NXDOMAIN)
		log_warn(z->s->sid, "dnsbl: %s did not answer for %s (rcode "
		    "%d): not listed", z->name, z->s->peer, (int)ans->rcode);
	smtp_session_dnsbl_settle(z);
}

static void
smtp_session_dnsbl_txt_cb(void *data, const struct resolver_answer *ans)
{
	struct smtp_session_dnsbl_zone *z = data;

	smtp_session_dnsbl_txt(z->txt, sizeof(z->txt), ans);
	smtp_session_dnsbl_settle(z);
}

/* Starts the DNSBL queries, A and TXT of every zone at once.  Returns
 * true when the greeting waits for them. */
static bool
smtp_session_dnsbl_start(struct smtp_session *s)
{
	const char *list = s->srv->cfg->inbound.dnsbl;
	struct smtp_session_dnsbl *bl;
	struct smtp_session_dnsbl_zone *z;
	char name[512];
	size_t n;

	if (list[0] == '\0')
		return false;
	bl = s->dnsbl = xcalloc(1, sizeof(*bl));
	while (*list != '\0' && bl->n < SMTP_SESSION_DNSBL_MAX) {
		while (*list == ',' || *list == ' ' || *list == '\t')
			list++;
		n = strcspn(list, ", \t");
		if (n == 0 || n >= sizeof(z->name)) {
			list += n;
			continue;
		}
		z = &bl->zone[bl->n];
		z->s = s;
		memcpy(z->name, list, n);
		z->name[n] = '\0';
		list += n;
		if (iprev_revname(s->peer, z->name, name,
		    sizeof(name)) < 0)
			continue;
		bl->n++;
		if (resolver_query(s->srv->resolver, name, RESOLVER_A,
		    smtp_session_dnsbl_a_cb, z) == 0) {
			bl->wait++;
			s->pending++;
		}
		if (resolver_query(s->srv->resolver, name, RESOLVER_TXT,
		    smtp_session_dnsbl_txt_cb, z) == 0) {
			bl->wait++;
			s->pending++;
		}
	}
	if (bl->wait == 0) {
		free(s->dnsbl);
		s->dnsbl = NULL;
		return false;
	}
	return true;
}

static void
smtp_session_chk_free(struct smtp_session *s)
{
	struct smtp_session_chk *k = s->chk;

	if (k == NULL)
		return;
	dkim_verify_free(&k->dkim);
	dmarc_free(&k->dmarc);
	smtp_head_fini(&k->head);
	buf_fini(&k->out);
	buf_fini(&k->authres);
	free(k);
	s->chk = NULL;
}

/* The check state of the message being received on the MX listener. */
static struct smtp_session_chk *
smtp_session_chk(struct smtp_session *s)
{
	const struct cfg *cfg = s->srv->cfg;
	struct smtp_session_chk *k;
	struct dkim_verify_limits lim;

	if (s->chk != NULL)
		return s->chk;
	k = s->chk = xcalloc(1, sizeof(*k));
	smtp_head_init(&k->head, cfg->server.hostname);
	buf_init(&k->out, s->srv->limits.mem_max + SMTP_HEAD_FIELD_MAX + 16);
	buf_init(&k->authres, 8192);
	memset(&lim, 0, sizeof(lim));
	/* RFC 6376 6.1: a bound on the signatures verified per message. */
	lim.max_sigs = DKIM_VERIFY_SIGS;
	lim.now = (int64_t)time(NULL);
	lim.keys = s->srv->dkim_keys;
	if (s->srv->resolver != NULL && (cfg->inbound.dkim ||
	    cfg->inbound.dmarc) && dkim_verify_new(s->srv->resolver, &lim,
	    &k->dkim) < 0)
		fatal("out of memory");
	return k;
}

/* Message octets as received: to the verifier, and through the header
 * filter into k->fed. */
static int
smtp_session_chk_feed(struct smtp_session *s, const uint8_t *data,
    size_t len, bool last)
{
	struct smtp_session_chk *k = smtp_session_chk(s);
	int r;

	buf_reset(&k->out);
	if (k->dkim != NULL && len > 0 && dkim_verify_feed(k->dkim, data,
	    len) < 0)
		log_warn(s->sid, "dkim: the verifier could not take the "
		    "message");
	if (k->head.body) {
		/* Past the header section the filter changes nothing: each
		 * SPOOL chunk of the body goes to the file as it came, not
		 * through a copy. */
		k->fed = data;
		k->fed_len = len;
		return 0;
	}
	r = smtp_head_feed(&k->head, data, len, &k->out);
	if (r == 0 && last)
		r = smtp_head_finish(&k->head, &k->out);
	k->fed = k->out.p;
	k->fed_len = k->out.len;
	return r;
}

/* The Authentication-Results field (RFC 8601 2.2) of this message. */
static void
smtp_session_verify_authres(struct smtp_session *s)
{
	struct smtp_session_chk *k = s->chk;
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	const struct cfg *cfg = s->srv->cfg;
	struct authres a;

	buf_reset(&k->authres);
	authres_begin(&a, &k->authres, cfg->server.hostname);
	if (tx->spf_checked)
		authres_add_spf(&a, spf_result_str((enum spf_result)
		    tx->spf_result), tx->spf_helo ? NULL : tx->sender,
		    smtp_proto_helo(s->p));
	if (cfg->inbound.dkim)
		authres_add_dkim_all(&a, k->res, k->nres);
	if (cfg->inbound.dmarc && k->from_status == DMARC_FROM_OK &&
	    k->dmarc_done)
		authres_add_dmarc(&a, &k->dv);
	authres_add_iprev(&a, s->iprev_word != NULL ? s->iprev_word :
	    "temperror", s->peer);
	if (authres_finish(&a) < 0) {
		log_warn(s->sid, "Authentication-Results did not fit");
		buf_reset(&k->authres);
	}
	/* NUL-terminated for the trace (smtp_trace.authres). */
	if (buf_append(&k->authres, "", 1) == 0)
		k->authres.len--;
	else
		buf_reset(&k->authres);
}

/* Everything is in: the policy's turn, in the core. */
static void
smtp_session_verify_finish(struct smtp_session *s)
{
	struct smtp_session_chk *k = s->chk;
	const struct smtp_event *ev;
	struct smtp_verify r;
	size_t i;

	if (s->iprev != NULL) {
		/* iprev began at connect; its lookups are bounded by the DNS
		 * timeout too. */
		k->wait_iprev = true;
		return;
	}
	memset(&r, 0, sizeof(r));
	r.from_status = k->from_status;
	r.dmarc_checked = k->dmarc_done;
	r.dmarc_result = (int)k->dv.result;
	r.dmarc_apply = (int)k->dv.apply;
	r.domain = k->from_domain;
	r.dmarc_temp = smtp_proto_tx(s->p)->spf_checked &&
	    smtp_proto_tx(s->p)->spf_result == SPF_TEMPERROR;
	for (i = 0; i < k->nres; i++)
		if (k->res[i].res == DKIM_VERIFY_TEMPERROR)
			r.dmarc_temp = true;
	smtp_session_verify_authres(s);
	log_info(s->sid, "checks client=%s from=%s dkim=%zu%s%s dmarc=%s "
	    "iprev=%s", s->peer, k->from_domain[0] ? k->from_domain : "-",
	    k->nres, k->nres > 0 ? "/" : "", k->nres > 0 ?
	    dkim_verify_res_name(k->res[0].res) : "", k->dmarc_done ?
	    dmarc_result_name(k->dv.result) : "-", s->iprev_word);
	smtp_proto_verify_result(s->p, &r);
	smtp_proto_complete(s->p, 0);
	ev = smtp_proto_event(s->p);
	if (ev == NULL || ev->type != SMTP_EV_DELIVER) {
		/* Refused: nothing of it is kept. */
		smtp_session_spool_close(s);
		smtp_session_chk_free(s);
	}
	smtp_session_resume(s);
}

static void
smtp_session_dmarc_cb(void *data, const struct dmarc_verdict *v)
{
	struct smtp_session *s = data;
	struct smtp_session_chk *k = s->chk;

	s->pending--;
	k->dv = *v;
	k->dmarc_done = true;
	log_debug(s->sid, "dmarc client=%s from=%s result=%s apply=%s (%s)",
	    s->peer, v->from_domain, dmarc_result_name(v->result),
	    dmarc_policy_name(v->apply), v->reason ? v->reason : "");
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_session_verify_finish(s);
}

static void
smtp_session_dkim_cb(void *data, const struct dkim_verify_result *res,
    size_t n)
{
	struct smtp_session *s = data;
	struct smtp_session_chk *k = s->chk;
	const struct smtp_tx *tx = smtp_proto_tx(s->p);
	const char *at;
	size_t i;

	if (k->dkim_async)
		s->pending--;
	k->dkim_async = false;
	if (n > DKIM_VERIFY_REPORT_MAX)
		n = DKIM_VERIFY_REPORT_MAX;
	if (n > 0) /* res may be NULL then (C11 7.24.1p2) */
		memcpy(k->res, res, n * sizeof(*res));
	k->nres = n;
	for (i = 0; i < n; i++)
		log_debug(s->sid, "dkim client=%s d=%s s=%s result=%s%s%s",
		    s->peer, res[i].d, res[i].s,
		    dkim_verify_res_name(res[i].res), res[i].reason ? " " : "",
		    res[i].reason ? res[i].reason : "");
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	/* RFC 7489 6.6.1 is DMARC's rule: without DMARC, From: is not
	 * counted. */
	k->from_status = DMARC_FROM_OK;
	if (s->srv->cfg->inbound.dmarc) {
		k->from_status = (int)dmarc_from_domain(k->head.from.p,
		    k->head.from.len, k->from_domain,
		    sizeof(k->from_domain));
		if (k->head.from_overflow)
			k->from_status = DMARC_FROM_BAD;
	}
	if (s->srv->cfg->inbound.dmarc && k->from_status == DMARC_FROM_OK) {
		struct dmarc_input in;

		memset(&in, 0, sizeof(in));
		in.from_domain = k->from_domain;
		in.spf_pass = tx->spf_checked && tx->spf_result == SPF_PASS;
		at = strrchr(tx->spf_identity, '@');
		in.spf_domain = at != NULL ? at + 1 : tx->spf_identity;
		in.dkim = k->res;
		in.ndkim = s->srv->cfg->inbound.dkim ? k->nres : 0;
		if (dmarc_new(s->srv->resolver, NULL, NULL, &k->dmarc) == 0 &&
		    dmarc_check(k->dmarc, &in, smtp_session_dmarc_cb, s) == 0) {
			s->pending++;
			return;
		}
		log_warn(s->sid, "dmarc: cannot check %s", k->from_domain);
	}
	smtp_session_verify_finish(s);
}

/* SMTP_EV_VERIFY: the rest of the message through the verifier and the
 * filter, then DKIM (its key lookups), From:, DMARC, in that order. */
static bool
smtp_session_verify(struct smtp_session *s, const struct smtp_event *ev)
{
	struct smtp_session_chk *k;
	int r;

	if (smtp_session_chk_feed(s, ev->data, ev->len, true) < 0) {
		log_err(s->sid, "header filter: the message does not fit");
		smtp_session_chk_free(s);
		smtp_proto_complete(s->p, PR_EIO);
		return true;
	}
	k = s->chk;
	k->verified = true;
	if (k->dkim == NULL) {
		smtp_session_dkim_cb(s, NULL, 0);
		return false;
	}
	k->dkim_async = true;
	s->pending++;
	r = dkim_verify_end(k->dkim, smtp_session_dkim_cb, s);
	if (r < 0) {
		/* The callback never runs (resolver.h): no signature
		 * checked, the rest goes on. */
		k->dkim_async = false;
		s->pending--;
		smtp_session_dkim_cb(s, NULL, 0);
	}
	return false;
}

/* --- ETRN (RFC 1985) --------------------------------------------------- */

static void
smtp_session_etrn_cb(void *data, int status)
{
	struct smtp_session *s = data;

	s->pending--;
	/* The entries are due: the relay scans now (and forgets the hosts
	 * that failed lately, relay_sched.c). */
	if (status > 0)
		relay_kick(s->srv->relay);
	if (s->c == NULL) {
		smtp_session_release(s);
		return;
	}
	smtp_session_complete(s, status);
}

static bool
smtp_session_etrn(struct smtp_session *s, const struct smtp_event *ev)
{
	if (!smtp_etrn_count(s->peer, uv_now(s->srv->loop))) {
		smtp_proto_complete(s->p, PR_EAGAIN);
		return true;
	}
	s->pending++;
	smtp_etrn_submit(s->srv->wk, ev->addr, ev->subdomains,
	    smtp_session_etrn_cb, s);
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
		smtp_session_wait(s, smtp_session_error_delay_cb,
		    ev->delay_ms);
		return false;
	case SMTP_EV_RCPT:
		/* Every transaction has one: a message's checks that were
		 * left behind (a refused BDAT) end here. */
		smtp_session_chk_free(s);
		return smtp_session_rcpt(s, ev);
	case SMTP_EV_SPOOL:
		/* The first part of a message: a file left by a message that
		 * was refused after it was spooled (too big, bare LF) must
		 * not lend this one its octets (the delivery reads the file
		 * from its start). */
		if (!smtp_proto_tx(s->p)->spooled)
			smtp_session_spool_close(s);
		if (smtp_proto_verifies(s->p)) {
			/* The spool gets the message without our forged A-R
			 * fields; the verifier sees it as it came. */
			if (smtp_session_chk_feed(s, ev->data, ev->len,
			    false) < 0) {
				smtp_session_spool_done(s, PR_EIO);
				return false;
			}
			smtp_session_spool_write(s, s->chk->fed,
			    s->chk->fed_len, smtp_session_spool_done);
			return false;
		}
		smtp_session_spool_write(s, ev->data, ev->len,
		    smtp_session_spool_done);
		return false;
	case SMTP_EV_VERIFY:
		return smtp_session_verify(s, ev);
	case SMTP_EV_DELIVER:
		return smtp_session_deliver(s, ev);
	case SMTP_EV_ETRN:
		return smtp_session_etrn(s, ev);
	case SMTP_EV_MILTER:
		return smtp_session_milter_step(s, ev);
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
	metrics_inc(METRICS_SMTP_SESSIONS, smtp_session_kind_name(s->kind));
	metrics_gauge_add(METRICS_SMTP_SESSIONS_ACTIVE, 1);
	net_conn_set_data(c, s);
	net_conn_set_ops(c, &smtp_session_ops);

	memset(&conf, 0, sizeof(conf));
	conf.hostname = srv->cfg->server.hostname;
	conf.kind = s->kind;
	conf.starttls = net_conn_starttls_ctx(c) != NULL &&
	    s->kind != SMTP_LISTEN_SUBMISSIONS;
	conf.allow_plaintext_auth = srv->cfg->smtp.allow_plaintext_auth;
	conf.spf = srv->cfg->inbound.spf;
	conf.verify = s->kind == SMTP_LISTEN_MX;
	conf.dmarc_report = srv->cfg->inbound.dmarc_policy ==
	    CFG_DMARC_REPORT;
	conf.etrn = srv->cfg->relay.enabled;
	conf.etrn_network = netlist_match(&srv->cfg->smtp.etrn_networks,
	    s->peer);
	/* The MX listener's filters, or those of authenticated mail on
	 * any listener. */
	conf.milter = (s->kind == SMTP_LISTEN_MX &&
	    srv->cfg->milter.servers.n > 0) ||
	    srv->cfg->milter.submission_servers.n > 0;
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
	if (s->kind == SMTP_LISTEN_MX && srv->resolver != NULL) {
		smtp_session_iprev_start(s);
		/* The greeting waits for the block lists, no longer than
		 * one DNS timeout: they run in parallel. */
		if (smtp_session_dnsbl_start(s)) {
			s->busy = true;
			net_conn_pause(c);
			return;
		}
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
