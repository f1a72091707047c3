/*
 * pop3_session.c - the libuv glue of postroom-pop3d.
 *
 * Each connection gets a struct pop3_session holding the sans-I/O core.
 * The glue feeds it the plaintext net.c delivers, writes what it replies,
 * and performs its events:
 *
 *   STLS    net_conn_starttls, then pop3_proto_tls_started
 *   AUTH    store thread: id + hash + the failures counted for the
 *           client and the account; the throttle (authlimit.h): refused
 *           at once, or a delay; the password pool (pwpool.h): argon2id,
 *           fair between clients, refused at once when full; on success
 *           store thread: lock + list (the snapshot); on failure the
 *           failure counted, then a growing delay (a timer, never a
 *           sleep) before the -ERR
 *   BODY    up to POP3_INLINE_MAX: read on the loop thread from its own
 *           store connection, no thread hop; bigger: 64 KiB reads on the
 *           store thread.  Dot-stuffed by the core, the next read only
 *           once the write queue is below a bound
 *   MORE    the next step of a long listing, same bound
 *   COMMIT  store thread: delete the marked messages in one transaction
 *           and unlock; +OK only after that committed
 *
 * Every event but STLS ends with pop3_proto_complete().
 *
 * A session is freed only when the connection is closed, no job, work
 * item or timer of it is outstanding, and its maildrop lock is released:
 * a dropped connection, a timeout or a shutdown deletes nothing and
 * leaves no lock behind.
 */
#include "pop3_session.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "authlimit.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "pop3_proto.h"
#include "pop3_store.h"
#include "pwpool.h"
#include "store.h"
#include "store_throttle_job.h"
#include "store_worker.h"
#include "xmalloc.h"

/* Above this many queued output bytes, stop producing more (RETR chunks,
 * listing steps, replies to pipelined commands) until the peer drained. */
#define POP3_WRITE_HIGH (256 * 1024)
/* Body octets read from the store per step.  Each read of the store
 * reopens the blob, which costs a walk of its page chain, so big messages
 * are read in bigger steps. */
#define POP3_CHUNK (64 * 1024)
#define POP3_CHUNK_BIG (256 * 1024)
#define POP3_BIG_MESSAGE (1024 * 1024)
/*
 * Messages up to this size are read on the loop thread.  A RETR of a few
 * KiB is a page-cache (mmap) read of microseconds; a round trip through
 * the store thread costs two thread wake-ups, which dominate its latency.
 * WAL readers never wait for the writer, and the reads hold no snapshot
 * between steps, so the loop never blocks on another process's commit.
 * Bigger messages stay on the store thread: a cold 50 MB body could
 * stall every other session of the loop.
 */
#define POP3_INLINE_MAX (256 * 1024)
/* First failed-login delay; doubled with every further failure. */
#define POP3_FAIL_DELAY_MS 500

enum pop3_listen_kind {
	POP3_LISTEN_PLAIN = 1,  /* 110, STLS */
	POP3_LISTEN_TLS = 2,    /* 995, RFC 8314 */
};

enum pop3_inflight {
	POP3_IF_NONE,
	POP3_IF_STLS,
	POP3_IF_AUTH,
	POP3_IF_BODY,
	POP3_IF_COMMIT,
};

struct pop3_server {
	uv_loop_t *loop;
	struct cfg cfg;
	struct net_tls *tls;
	struct net_listener *ls[2 * CFG_LISTEN_MAX];
	size_t n_ls;
	struct ipcount *ipc;
	struct store_worker *q;    /* the one store worker */
	struct pop3_drop *drops;   /* big QUITs' deletions running */
	struct pwpool *pw;         /* password checks */
	/* The loop thread's own connection (a struct store is used by one
	 * thread only): reads of small bodies, nothing else. */
	struct store *rd;
	uint8_t *rbuf;             /* POP3_CHUNK, for those reads */
	struct pop3_session *sessions;
	unsigned n_sessions;
	bool stopping;
};

struct pop3_session {
	struct pop3_server *srv;
	struct pop3_session *prev, *next;
	struct net_conn *conn;     /* NULL once closed */
	struct pop3_proto *proto;
	char sid[LOG_SID_LEN + 1];
	char peer[64];
	char ipkey[AUTHLIMIT_KEY_MAX]; /* the client: peer, or its /64 */
	uint64_t start_ms;
	bool greeted;              /* output may flow (implicit TLS: after
	                              the handshake) */
	bool paused;
	bool wait_drain;
	enum pop3_inflight inflight;
	enum pop3_state state;     /* last state logged */
	int pending;               /* outstanding jobs, work, timers */

	/* The logged-in user's maildrop, locked while locked is true. */
	int64_t user_id;
	bool locked;
	/* The listing's store ids and when each was retrieved (0: not),
	 * by message number; for the trace, handed over at the end. */
	int64_t *list_ids, *retr_at;
	size_t n_list;
	int64_t *t_ids, *t_at;     /* the retrieved ones, for the job */

	/* AUTH */
	char user[256];
	const char *pass;          /* the core's secure buffer, see ev.pass */
	bool sasl;
	int64_t auth_id;
	/* What the login resolved to: the kind, the account its failures
	 * count against, an app password's label. */
	enum store_login_kind kind;
	char account[sizeof(((struct store_login *)0)->account)];
	char label[STORE_LOGIN_LABEL_MAX + 1];
	int verify_status;
	struct store_throttle counts;  /* before this attempt */
	struct pwpool_job pw;
	struct store_throttle_job th;
	uv_timer_t delay;
	bool delay_active;
	bool delay_closed;

	/* BODY */
	uint8_t *chunk;
	size_t chunk_len;
	int64_t body_id;
	int64_t body_size;
	int64_t body_off;
	bool body_inline;          /* read on the loop thread */

	struct pop3_job job;
	struct pop3_drop_wait dwait; /* a login behind a deletion */
};

static void pop3_session_pump(struct pop3_session *s);
static void pop3_session_maybe_free(struct pop3_session *s);

/* --- Small helpers ----------------------------------------------------- */

/* True once the connection is gone or going: completions then only
 * tidy up. */
static bool
pop3_session_gone(const struct pop3_session *s)
{
	return s->conn == NULL || net_conn_closing(s->conn);
}

static void
pop3_session_pause(struct pop3_session *s)
{
	if (!s->paused && !pop3_session_gone(s)) {
		s->paused = true;
		net_conn_pause(s->conn);
	}
}

static void
pop3_session_resume(struct pop3_session *s)
{
	if (s->paused && !pop3_session_gone(s)) {
		s->paused = false;
		net_conn_resume(s->conn);
	}
}

/* Writes what the core queued.  Returns false if the connection failed. */
static bool
pop3_session_flush(struct pop3_session *s)
{
	struct buf *o = pop3_proto_out(s->proto);

	if (!s->greeted || pop3_session_gone(s))
		return !pop3_session_gone(s);
	if (o->len > 0 && net_conn_write(s->conn, o->p, o->len) < 0) {
		buf_reset(o);
		net_conn_close(s->conn, false);
		return false;
	}
	buf_reset(o);
	return true;
}

/* The session waits for input: an idle session keeps no big output
 * buffer after a listing or a download (not shrunk per write, which
 * would reallocate it for every message of a download). */
static void
pop3_session_idle(struct pop3_session *s)
{
	buf_shrink(pop3_proto_out(s->proto), 4096);
	pop3_session_resume(s);
}

static uint64_t
pop3_session_timeout_ms(const struct pop3_session *s)
{
	return (uint64_t)s->srv->cfg.pop3.timeout * 1000;
}

/* One asynchronous operation of s finished. */
static void
pop3_session_unpend(struct pop3_session *s)
{
	s->pending--;
	pop3_session_maybe_free(s);
}

/* --- AUTH -------------------------------------------------------------- */

/* msgs: a malloc'd snapshot (or NULL) handed over to the core. */
static void
pop3_session_auth_complete(struct pop3_session *s, int status,
    struct pop3_msg *msgs, size_t n)
{
	s->inflight = POP3_IF_NONE;
	if (status == 0)
		pop3_proto_maildrop(s->proto, msgs, n);
	else
		free(msgs);
	pop3_proto_complete(s->proto, status);
	pop3_session_pump(s);
}

static void
pop3_session_open_done(struct pop3_job *job)
{
	char uq[LOG_VALUE_MAX], lq[LOG_VALUE_MAX];
	struct pop3_session *s = job->data;
	struct pop3_msg *msgs = job->msgs;
	size_t i, n = job->n_msgs;
	int64_t octets = job->octets;

	if (job->status == 0) {
		s->locked = true;
		s->user_id = job->user_id;
	}
	job->msgs = NULL;
	job->n_msgs = 0;
	if (pop3_session_gone(s)) {
		free(msgs);
		pop3_session_unpend(s);
		return;
	}
	s->pending--;
	switch (job->status) {
	case 0:
		if (n > 0) {
			s->list_ids = xcalloc(n, sizeof(*s->list_ids));
			s->retr_at = xcalloc(n, sizeof(*s->retr_at));
			s->n_list = n;
		}
		for (i = 0; i < n; i++)
			s->list_ids[i] = msgs[i].id;
		metrics_inc(METRICS_POP3_LOGINS, "ok");
		log_info(s->sid, "auth client=%s status=ok user=%s%s%s method=%s "
		    "messages=%zu octets=%" PRId64,
		    s->peer, log_value(s->user, uq, sizeof(uq)),
		    s->kind == STORE_LOGIN_APP ? " app-password=" : "",
		    s->kind == STORE_LOGIN_APP ? log_value(s->label, lq,
		    sizeof(lq)) : "", s->sasl ? "PLAIN" : "USER", n, octets);
		pop3_session_auth_complete(s, 0, msgs, n);
		return;
	case PR_EBUSY:
		metrics_inc(METRICS_POP3_LOGINS, "in-use");
		log_info(s->sid, "auth client=%s status=in-use user=%s "
		    "reason=\"maildrop in use\"",
		    s->peer, log_value(s->user, uq, sizeof(uq)));
		break;
	default:
		log_err(s->sid, "auth client=%s status=error user=%s "
		    "reason=\"cannot open maildrop: %s\"",
		    s->peer, log_value(s->user, uq, sizeof(uq)),
		    job->err.msg);
		break;
	}
	free(msgs);
	pop3_session_auth_complete(s, job->status, NULL, 0);
}

static void
pop3_session_delay_cb(uv_timer_t *t)
{
	struct pop3_session *s = t->data;

	s->delay_active = false;
	s->pending--;
	if (pop3_session_gone(s)) {
		pop3_session_maybe_free(s);
		return;
	}
	pop3_session_auth_complete(s, PR_EAUTH, NULL, 0);
}

/* A pool thread: argon2id, CPU- and memory-heavy by design. */
static void
pop3_session_verify_work(struct pwpool_job *pj)
{
	struct pop3_session *s = STORE_CONTAINER(pj, struct pop3_session, pw);

	/* An unknown user is checked against a dummy hash, so the time
	 * taken does not tell whether the address exists. */
	s->verify_status = store_password_verify(
	    s->kind != STORE_LOGIN_NONE ? s->job.login.hash : NULL, s->pass);
}

/* Counts a failure (success false) or forgets the account's failures,
 * through the store worker; then cb. */
static void
pop3_session_throttle(struct pop3_session *s, bool success,
    void (*cb)(struct store_throttle_job *))
{
	struct store_throttle_job *j = &s->th;

	memset(j, 0, sizeof(*j));
	j->success = success;
	snprintf(j->ip_key, sizeof(j->ip_key), "%s", s->ipkey);
	snprintf(j->account, sizeof(j->account), "%s", s->account);
	j->now = (int64_t)time(NULL);
	j->done_cb = cb;
	j->data = s;
	store_throttle_submit(s->srv->q, j);
}

/* The account's failures are forgotten after a correct password; the
 * login went on meanwhile. */
static void
pop3_session_cleared_cb(struct store_throttle_job *j)
{
	struct pop3_session *s = j->data;

	if (j->status < 0)
		log_warn(s->sid, "clearing the login failures of %s: %s",
		    j->account, j->err.msg);
	pop3_session_unpend(s);
}

/* The failure is counted: the -ERR after this session's own delay. */
static void
pop3_session_counted_cb(struct store_throttle_job *j)
{
	char uq[LOG_VALUE_MAX];
	struct pop3_session *s = j->data;
	unsigned fails;

	if (pop3_session_gone(s)) {
		pop3_session_unpend(s);
		return;
	}
	if (j->status < 0)
		log_err(s->sid, "counting a login failure: %s", j->err.msg);
	/* Never the password; the user name as given (log.c escapes it). */
	fails = pop3_proto_auth_failures(s->proto) + 1;
	/* client= before anything the peer chose (docs/LOGGING.md). */
	metrics_inc(METRICS_AUTH_FAILURES, "pop3");
	metrics_inc(METRICS_POP3_LOGINS, "failed");
	log_warn(s->sid, "auth client=%s status=failed user=%s failures=%u "
	    "client_failures=%u account_failures=%u window=%um", s->peer,
	    log_value(s->user, uq, sizeof(uq)), fails, j->counts.ip_failures,
	    j->counts.account_failures, AUTHLIMIT_WINDOW / 60);
	/* A growing delay slows down guessing without a sleeping thread. */
	s->delay_active = true;
	uv_timer_start(&s->delay, pop3_session_delay_cb,
	    (uint64_t)POP3_FAIL_DELAY_MS << (fails > 6 ? 6 : fails - 1), 0);
}

/* The user's last QUIT finished deleting: now the maildrop is listed. */
static void
pop3_session_drop_waited(struct pop3_drop_wait *w)
{
	struct pop3_session *s = STORE_CONTAINER(w, struct pop3_session,
	    dwait);

	if (pop3_session_gone(s) || s->srv->stopping || s->srv->q == NULL) {
		pop3_session_unpend(s);
		return;
	}
	pop3_store_submit(s->srv->q, &s->job);
}

static void
pop3_session_verify_done(struct pwpool_job *pj)
{
	char uq[LOG_VALUE_MAX];
	struct pop3_session *s = STORE_CONTAINER(pj, struct pop3_session, pw);

	sodium_memzero(s->job.login.hash, sizeof(s->job.login.hash));
	s->pass = NULL;
	if (pop3_session_gone(s)) {
		pop3_session_unpend(s);
		return;
	}
	if (s->verify_status == 0 && s->kind == STORE_LOGIN_DEVICE) {
		/* A device is a send-only SMTP login.  Its right password
		 * gets the reply of a wrong one after the same delay, so
		 * that nothing tells a device from a user that does not
		 * exist, but no failure is counted: nobody guessed. */
		log_warn(s->sid, "auth client=%s status=refused device=%s "
		    "reason=\"devices may not use POP3\"", s->peer,
		    log_value(s->user, uq, sizeof(uq)));
		s->delay_active = true;
		uv_timer_start(&s->delay, pop3_session_delay_cb,
		    POP3_FAIL_DELAY_MS, 0);
		return;
	}
	if (s->verify_status == 0 && s->auth_id > 0) {
		if (s->counts.account_failures > 0) {
			s->pending++;
			pop3_session_throttle(s, true,
			    pop3_session_cleared_cb);
		}
		/* Same job struct, next step: lock and list. */
		memset(&s->job, 0, sizeof(s->job));
		s->job.type = POP3_JOB_OPEN;
		s->job.user_id = s->auth_id;
		s->job.data = s;
		s->job.done_cb = pop3_session_open_done;
		s->dwait.cb = pop3_session_drop_waited;
		if (!pop3_store_drop_wait(s->srv->drops, s->auth_id,
		    &s->dwait))
			pop3_store_submit(s->srv->q, &s->job);
		else
			log_debug(s->sid, "login client=%s user=%s "
			    "status=waiting reason=\"the deletion of its "
			    "last QUIT\"", s->peer,
			    log_value(s->user, uq, sizeof(uq)));
		return;
	}
	pop3_session_throttle(s, false, pop3_session_counted_cb);
}

/* Hands the password check to the pool.  Returns false (logged, the
 * hash wiped) when the pool has no room for this client. */
static bool
pop3_session_verify(struct pop3_session *s)
{
	char uq[LOG_VALUE_MAX];

	memset(&s->pw, 0, sizeof(s->pw));
	s->pw.run = pop3_session_verify_work;
	s->pw.done = pop3_session_verify_done;
	snprintf(s->pw.key, sizeof(s->pw.key), "%s", s->ipkey);
	s->pw.low = s->counts.ip_failures > 0;
	if (pwpool_submit(s->srv->pw, &s->pw) == 0)
		return true;
	sodium_memzero(s->job.login.hash, sizeof(s->job.login.hash));
	log_warn(s->sid, "auth client=%s status=busy user=%s "
	    "reason=\"password checks busy\"",
	    s->peer, log_value(s->user, uq, sizeof(uq)));
	return false;
}

/* The throttling delay is over. */
static void
pop3_session_wait_cb(uv_timer_t *t)
{
	struct pop3_session *s = t->data;

	s->delay_active = false;
	if (pop3_session_gone(s)) {
		pop3_session_unpend(s);
		return;
	}
	if (!pop3_session_verify(s)) {
		s->pending--;
		pop3_session_auth_complete(s, PR_EAGAIN, NULL, 0);
	}
}

static void
pop3_session_auth_info_done(struct pop3_job *job)
{
	char uq[LOG_VALUE_MAX], lq[LOG_VALUE_MAX];
	struct pop3_session *s = job->data;
	uint64_t delay;

	if (pop3_session_gone(s)) {
		sodium_memzero(job->login.hash, sizeof(job->login.hash));
		pop3_session_unpend(s);
		return;
	}
	if (job->status < 0 && job->status != PR_ENOENT) {
		sodium_memzero(job->login.hash, sizeof(job->login.hash));
		log_err(s->sid, "auth client=%s status=error user=%s "
		    "reason=\"%s\"",
		    s->peer, log_value(s->user, uq, sizeof(uq)), job->err.msg);
		s->pending--;
		pop3_session_auth_complete(s, job->status, NULL, 0);
		return;
	}
	s->auth_id = job->status == 0 ? job->user_id : 0;
	s->kind = job->status == 0 ? job->login.kind : STORE_LOGIN_NONE;
	/* From here on the logs name the login in full (a bare name
	 * completed with [server] default_domain). */
	snprintf(s->user, sizeof(s->user), "%s", job->login.name);
	snprintf(s->account, sizeof(s->account), "%s", job->login.account);
	snprintf(s->label, sizeof(s->label), "%s", job->login.label);
	/* A store that cannot tell the counts does not lock everybody out:
	 * the attempt goes on as a first one (and is logged). */
	if (job->throttle_status < 0)
		log_err(s->sid, "login failures of %s: %s", s->account,
		    job->throttle_err.msg);
	s->counts = job->throttle;
	if (authlimit_decide(s->counts.ip_failures,
	    s->counts.account_failures, &delay) == AUTHLIMIT_REFUSE) {
		log_warn(s->sid, "auth client=%s status=throttled user=%s "
		    "account=%s failures=%u account_failures=%u%s%s",
		    s->peer, log_value(s->user, uq, sizeof(uq)),
		    log_value(s->account, lq, sizeof(lq)),
		    s->counts.ip_failures, s->counts.account_failures,
		    strcmp(s->ipkey, s->peer) != 0 ? " net=" : "",
		    strcmp(s->ipkey, s->peer) != 0 ? s->ipkey : "");
		sodium_memzero(job->login.hash, sizeof(job->login.hash));
		s->pending--;
		pop3_session_auth_complete(s, PR_EAGAIN, NULL, 0);
		return;
	}
	if (delay > 0) {
		log_info(s->sid, "auth client=%s status=delayed user=%s "
		    "account=%s failures=%u account_failures=%u delay=%llums",
		    s->peer, log_value(s->user, uq, sizeof(uq)),
		    log_value(s->account, lq, sizeof(lq)),
		    s->counts.ip_failures, s->counts.account_failures,
		    (unsigned long long)delay);
		s->delay_active = true;
		uv_timer_start(&s->delay, pop3_session_wait_cb, delay, 0);
		return;
	}
	if (!pop3_session_verify(s)) {
		s->pending--;
		pop3_session_auth_complete(s, PR_EAGAIN, NULL, 0);
	}
}

static void
pop3_session_start_auth(struct pop3_session *s, const struct pop3_event *ev)
{
	s->inflight = POP3_IF_AUTH;
	pop3_session_pause(s);
	snprintf(s->user, sizeof(s->user), "%s", ev->user);
	s->pass = ev->pass;
	s->sasl = ev->sasl;
	memset(&s->job, 0, sizeof(s->job));
	s->job.type = POP3_JOB_AUTH_INFO;
	snprintf(s->job.address, sizeof(s->job.address), "%s", ev->user);
	/* The tag of a generated password picks the one hash to check
	 * (store.h, "Logins"). */
	(void)store_login_tag(ev->pass, s->job.tag);
	/* A copy: a SIGHUP may change the config while the job runs. */
	snprintf(s->job.default_domain, sizeof(s->job.default_domain), "%s",
	    s->srv->cfg.server.default_domain);
	snprintf(s->account, sizeof(s->account), "%s", ev->user);
	snprintf(s->job.ip_key, sizeof(s->job.ip_key), "%s", s->ipkey);
	s->job.now = (int64_t)time(NULL);
	s->job.window = AUTHLIMIT_WINDOW;
	s->job.data = s;
	s->job.done_cb = pop3_session_auth_info_done;
	s->pending++;
	pop3_store_submit(s->srv->q, &s->job);
}

/* --- BODY (RETR, TOP) -------------------------------------------------- */

enum pop3_body_next {
	POP3_BODY_DONE,  /* finished (or failed): inflight is NONE again */
	POP3_BODY_MORE,  /* read the next chunk now */
	POP3_BODY_WAIT,  /* wait_drain: the next chunk once the peer read */
};

static void pop3_session_read_done(struct pop3_job *job);

static void
pop3_session_submit_read(struct pop3_session *s)
{
	memset(&s->job, 0, sizeof(s->job));
	s->job.type = POP3_JOB_READ;
	s->job.user_id = s->user_id;
	s->job.entry_id = s->body_id;
	s->job.offset = s->body_off;
	s->job.buf = s->chunk;
	s->job.len = s->chunk_len;
	s->job.data = s;
	s->job.done_cb = pop3_session_read_done;
	s->pending++;
	pop3_store_submit(s->srv->q, &s->job);
}

/* Never calls the pump: the inline path runs inside it, and a pipeline of
 * RETRs must not recurse once per message. */
static void
pop3_session_body_finish(struct pop3_session *s)
{
	free(s->chunk);
	s->chunk = NULL;
	s->inflight = POP3_IF_NONE;
}

/*
 * Hands the outcome of one read to the core: status < 0 (err says why),
 * or n octets of data at body_off.  Writes what the core produced only
 * when its output is full; the rest goes out with the end of the
 * response, so a small message costs one write.
 */
static enum pop3_body_next
pop3_session_body_chunk(struct pop3_session *s, int status,
    const struct pr_err *err, const uint8_t *data, size_t n)
{
	size_t off = 0;
	ssize_t k;

	if (status < 0) {
		log_err(s->sid, "read message %" PRId64 ": %s", s->body_id,
		    err->msg);
		pop3_proto_complete(s->proto, status);
		pop3_session_body_finish(s);
		return POP3_BODY_DONE;
	}
	while (off < n) {
		k = pop3_proto_body_feed(s->proto, data + off, n - off);
		if (k < 0) {
			/* The core closed the session. */
			log_err(s->sid, "protocol core: %s",
			    pr_strerror((int)k));
			pop3_session_body_finish(s);
			net_conn_close(s->conn, false);
			return POP3_BODY_DONE;
		}
		off += (size_t)k;
		if (off < n && !pop3_session_flush(s)) {
			pop3_session_body_finish(s);
			return POP3_BODY_DONE;
		}
	}
	s->body_off += (int64_t)n;
	/* The client sends nothing while it downloads: progress counts as
	 * activity for the idle timer. */
	net_conn_set_timeout(s->conn, pop3_session_timeout_ms(s));
	if (n == 0 || s->body_off >= s->body_size ||
	    !pop3_proto_body_wanted(s->proto)) {
		pop3_proto_complete(s->proto, 0);
		pop3_session_body_finish(s);
		return POP3_BODY_DONE;
	}
	/* A 50 MB message never sits in memory: the next chunk is read only
	 * when the peer has taken most of the previous ones. */
	if (!pop3_session_flush(s)) {
		pop3_session_body_finish(s);
		return POP3_BODY_DONE;
	}
	if (net_conn_write_pending(s->conn) > POP3_WRITE_HIGH) {
		s->wait_drain = true;
		return POP3_BODY_WAIT;
	}
	return POP3_BODY_MORE;
}

/*
 * Loop thread: reads the (small) body from body_off on with the loop's
 * own store connection until it is done or the write queue is full.
 */
static enum pop3_body_next
pop3_session_body_inline(struct pop3_session *s)
{
	struct pop3_server *srv = s->srv;
	struct store_body *b = NULL;
	enum pop3_body_next nx;
	struct pr_err err;
	int64_t size;
	ssize_t n;
	int r;

	pr_err_clear(&err);
	if ((r = store_body_open(srv->rd, s->user_id, s->body_id, &b, &size,
	    &err)) < 0)
		return pop3_session_body_chunk(s, r, &err, NULL, 0);
	do {
		n = store_body_read(b, s->body_off, srv->rbuf, POP3_CHUNK);
		if (n < 0) {
			r = pr_err_set(&err, (int)n, "cannot read message: %s",
			    pr_strerror((int)n));
			nx = pop3_session_body_chunk(s, r, &err, NULL, 0);
			break;
		}
		nx = pop3_session_body_chunk(s, 0, NULL, srv->rbuf,
		    (size_t)n);
	} while (nx == POP3_BODY_MORE);
	store_body_close(&b);
	return nx;
}

/* Reads the next part of the body, on whichever thread it belongs to.
 * Returns true if the body is finished (the caller pumps on). */
static bool
pop3_session_body_next(struct pop3_session *s)
{
	if (s->body_inline)
		return pop3_session_body_inline(s) == POP3_BODY_DONE;
	pop3_session_submit_read(s);
	return false;
}

static void
pop3_session_read_done(struct pop3_job *job)
{
	struct pop3_session *s = job->data;

	s->pending--;
	if (pop3_session_gone(s)) {
		free(s->chunk);
		s->chunk = NULL;
		pop3_session_maybe_free(s);
		return;
	}
	switch (pop3_session_body_chunk(s, job->status, &job->err, s->chunk,
	    job->status < 0 ? 0 : (size_t)job->nread)) {
	case POP3_BODY_DONE:
		pop3_session_pump(s);
		break;
	case POP3_BODY_MORE:
		pop3_session_submit_read(s);
		break;
	case POP3_BODY_WAIT:
		break;
	}
}

/* Starts RETR/TOP; the caller's pump goes on (and pauses input while the
 * body is still in flight). */
static void
pop3_session_start_body(struct pop3_session *s, const struct pop3_event *ev)
{
	s->inflight = POP3_IF_BODY;
	/* RFC 1939 7: RETR hands the message over; TOP only looks. */
	if (ev->top_lines < 0 && ev->msgno >= 1 && ev->msgno <= s->n_list)
		s->retr_at[ev->msgno - 1] = (int64_t)time(NULL);
	s->body_id = ev->msg_id;
	s->body_size = ev->size;
	metrics_add(METRICS_POP3_OCTETS, NULL, (uint64_t)ev->size);
	s->body_off = 0;
	s->body_inline = ev->size <= POP3_INLINE_MAX;
	if (s->body_inline) {
		pop3_session_body_inline(s);
		return;
	}
	s->chunk_len = ev->size > POP3_BIG_MESSAGE ? POP3_CHUNK_BIG :
	    POP3_CHUNK;
	s->chunk = xmalloc(s->chunk_len);
	pop3_session_submit_read(s);
}

/* --- COMMIT (QUIT) ----------------------------------------------------- */

static void
pop3_session_commit_done(struct pop3_job *job)
{
	char uq[LOG_VALUE_MAX];
	struct pop3_session *s = job->data;

	/* The job unlocks whether the deletion worked or not. */
	s->locked = false;
	if (job->status == 0 && job->drop_left)
		pop3_store_drop_start(&s->srv->q, &s->srv->stopping,
		    &s->srv->drops, job->user_id, job->n_ids, s->sid,
		    s->user);
	if (pop3_session_gone(s)) {
		pop3_session_unpend(s);
		return;
	}
	s->pending--;
	if (job->status < 0)
		log_err(s->sid, "quit client=%s user=%s status=failed "
		    "reason=\"deletion failed: %s\"",
		    s->peer, log_value(s->user, uq, sizeof(uq)),
		    job->err.msg);
	s->inflight = POP3_IF_NONE;
	pop3_proto_complete(s->proto, job->status);
	pop3_session_pump(s);
}

/* Hands the session's retrievals to s->job for the trace (postroom
 * trace): the job runs at the end of the session, with the QUIT commit
 * or the unlock, so a retrieval costs no commit of its own. */
static void
pop3_session_trace_job(struct pop3_session *s)
{
	size_t i, n = 0;

	free(s->t_ids);
	free(s->t_at);
	s->t_ids = xcalloc(s->n_list + 1, sizeof(*s->t_ids));
	s->t_at = xcalloc(s->n_list + 1, sizeof(*s->t_at));
	for (i = 0; i < s->n_list; i++)
		if (s->retr_at[i] != 0) {
			s->t_ids[n] = s->list_ids[i];
			s->t_at[n++] = s->retr_at[i];
		}
	s->job.retr = s->t_ids;
	s->job.retr_at = s->t_at;
	s->job.n_retr = n;
	snprintf(s->job.trace, sizeof(s->job.trace), "client=%s user=%s",
	    s->peer, s->user);
}

static void
pop3_session_start_commit(struct pop3_session *s, const struct pop3_event *ev)
{
	s->inflight = POP3_IF_COMMIT;
	pop3_session_pause(s);
	memset(&s->job, 0, sizeof(s->job));
	s->job.type = POP3_JOB_COMMIT;
	pop3_session_trace_job(s);
	s->job.user_id = s->user_id;
	s->job.ids = ev->ids;
	s->job.n_ids = ev->n_ids;
	s->job.data = s;
	s->job.done_cb = pop3_session_commit_done;
	s->pending++;
	pop3_store_submit(s->srv->q, &s->job);
}

/* --- STLS -------------------------------------------------------------- */

static void
pop3_session_start_tls(struct pop3_session *s)
{
	s->inflight = POP3_IF_STLS;
	/* "+OK Begin TLS negotiation" went out in plaintext; whatever the
	 * client pipelined behind STLS is dropped by net (RFC 2595 4). */
	if (net_conn_starttls(s->conn) < 0) {
		log_err(s->sid, "cannot start TLS");
		net_conn_close(s->conn, false);
		return;
	}
	/* The handshake needs the socket read. */
	pop3_session_resume(s);
}

/* --- The pump ----------------------------------------------------------- */

/*
 * Moves the session forward as far as it can without waiting: writes the
 * core's output, starts the pending event's work, or feeds buffered input.
 * Input is paused whenever the session waits for something.
 */
static void
pop3_session_pump(struct pop3_session *s)
{
	const struct pop3_event *ev;
	const uint8_t *in;
	size_t len;
	ssize_t n;

	for (;;) {
		if (pop3_proto_state(s->proto) != s->state) {
			log_debug(s->sid, "%s -> %s",
			    pop3_proto_state_name(s->state),
			    pop3_proto_state_name(pop3_proto_state(s->proto)));
			s->state = pop3_proto_state(s->proto);
		}
		if (!s->greeted || !pop3_session_flush(s))
			return;
		if (s->inflight != POP3_IF_NONE || s->wait_drain) {
			if (s->inflight != POP3_IF_STLS)
				pop3_session_pause(s);
			return;
		}
		if (pop3_proto_closing(s->proto)) {
			net_conn_close(s->conn, true);
			return;
		}
		if ((ev = pop3_proto_event(s->proto)) != NULL) {
			switch (ev->type) {
			case POP3_EV_MORE:
				if (net_conn_write_pending(s->conn) >
				    POP3_WRITE_HIGH) {
					s->wait_drain = true;
					continue;
				}
				pop3_proto_complete(s->proto, 0);
				continue;
			case POP3_EV_STLS:
				pop3_session_start_tls(s);
				return;
			case POP3_EV_AUTH:
				pop3_session_start_auth(s, ev);
				return;
			case POP3_EV_BODY:
				/* A small body is done right here, and the
				 * next pipelined command follows in this same
				 * loop, with nothing re-armed in between. */
				pop3_session_start_body(s, ev);
				continue;
			case POP3_EV_COMMIT:
				pop3_session_start_commit(s, ev);
				return;
			case POP3_EV_NONE:
				break;
			}
		}
		/* Pipelined commands: answer only as fast as the peer
		 * reads the answers. */
		if (net_conn_write_pending(s->conn) > POP3_WRITE_HIGH) {
			s->wait_drain = true;
			continue;
		}
		net_conn_input(s->conn, &in, &len);
		if (len == 0) {
			pop3_session_idle(s);
			return;
		}
		n = pop3_proto_feed(s->proto, in, len);
		if (n < 0) {
			/* The core closed the session: one session's
			 * failure, not the daemon's. */
			log_err(s->sid, "protocol core: %s",
			    pr_strerror((int)n));
			net_conn_close(s->conn, false);
			return;
		}
		net_conn_consume(s->conn, (size_t)n);
		/* A command line must be complete within one timeout of its
		 * first octet, however slowly it trickles in, even one
		 * being discarded after "-ERR Line too long". */
		net_conn_hold_timeout(s->conn,
		    pop3_proto_line_pending(s->proto));
		if (n == 0 && pop3_proto_event(s->proto) == NULL &&
		    pop3_proto_out(s->proto)->len == 0) {
			pop3_session_idle(s);
			return;
		}
	}
}

/* --- net callbacks ------------------------------------------------------ */

static void
pop3_session_input_cb(struct net_conn *c)
{
	pop3_session_pump(net_conn_data(c));
}

static void
pop3_session_tls_cb(struct net_conn *c, int status)
{
	struct pop3_session *s = net_conn_data(c);
	char kv[160];

	if (status != 0) {
		/* net closes the connection; the core learns it too. */
		pop3_proto_complete(s->proto, status);
		return;
	}
	log_info(s->sid, "tls client=%s status=ok %s", s->peer,
	    log_tls_fields(net_conn_tls_desc(c), kv, sizeof(kv)));
	if (!s->greeted) {
		/* Port 995: the greeting waited for the handshake. */
		s->greeted = true;
		pop3_proto_greet(s->proto);
	} else if (s->inflight == POP3_IF_STLS) {
		s->inflight = POP3_IF_NONE;
		pop3_proto_tls_started(s->proto);
	}
	pop3_session_pump(s);
}

static void
pop3_session_drain_cb(struct net_conn *c)
{
	struct pop3_session *s = net_conn_data(c);

	if (!s->wait_drain)
		return;
	s->wait_drain = false;
	if (s->inflight != POP3_IF_BODY || pop3_session_body_next(s))
		pop3_session_pump(s);
}

static void
pop3_session_timeout_cb(struct net_conn *c)
{
	struct pop3_session *s = net_conn_data(c);

	/* RFC 1939 3: the autologout timer closes the connection without a
	 * response and without entering UPDATE. */
	log_info(s->sid, "timeout client=%s", s->peer);
	net_conn_close(c, false);
}

static void
pop3_session_error_cb(struct net_conn *c, int status)
{
	struct pop3_session *s = net_conn_data(c);

	log_debug(s->sid, "connection: %s", status == UV_EOF ? "EOF" :
	    status == PR_ETLS ? "TLS error" : uv_strerror(status));
}

static void
pop3_session_close_cb(struct net_conn *c)
{
	struct pop3_session *s = net_conn_data(c);
	struct pop3_stats st;
	uint64_t ms = uv_now(s->srv->loop) - s->start_ms;

	pop3_proto_stats(s->proto, &st);
	log_info(s->sid, "disconnect client=%s user=%s retrieved=%u "
	    "deleted=%u octets=%" PRIu64 " duration=%" PRIu64 ".%03" PRIu64,
	    s->peer, st.user != NULL ? st.user : "-", st.retrieved,
	    st.deleted,
	    st.octets, ms / 1000, ms % 1000);
	ipcount_dec(s->srv->ipc, s->peer);
	s->conn = NULL;
	if (s->delay_active) {
		uv_timer_stop(&s->delay);
		s->delay_active = false;
		s->pending--;
	}
	pop3_session_maybe_free(s);
}

static const struct net_conn_ops pop3_session_ops = {
	.input_cb = pop3_session_input_cb,
	.tls_cb = pop3_session_tls_cb,
	.drain_cb = pop3_session_drain_cb,
	.timeout_cb = pop3_session_timeout_cb,
	.error_cb = pop3_session_error_cb,
	.close_cb = pop3_session_close_cb,
};

/* --- Session life ------------------------------------------------------- */

static void
pop3_session_unlock_done(struct pop3_job *job)
{
	struct pop3_session *s = job->data;

	if (job->status < 0)
		log_err(s->sid, "unlock maildrop: %s", job->err.msg);
	/* Unlocked or not, nothing more can be done for it here; a lock of
	 * ours is released at the next start in any case. */
	s->locked = false;
	pop3_session_unpend(s);
}

static void
pop3_session_delay_closed_cb(uv_handle_t *h)
{
	struct pop3_session *s = h->data;

	s->delay_closed = true;
	pop3_session_maybe_free(s);
}

static void
pop3_session_maybe_free(struct pop3_session *s)
{
	struct pop3_server *srv = s->srv;

	if (s->conn != NULL || s->pending > 0)
		return;
	if (s->locked) {
		/* RFC 1939 6: no UPDATE without QUIT, only the unlock. */
		memset(&s->job, 0, sizeof(s->job));
		s->job.type = POP3_JOB_UNLOCK;
		pop3_session_trace_job(s);
		s->job.user_id = s->user_id;
		s->job.data = s;
		s->job.done_cb = pop3_session_unlock_done;
		s->pending++;
		pop3_store_submit(srv->q, &s->job);
		return;
	}
	if (!s->delay_closed) {
		if (!uv_is_closing((uv_handle_t *)&s->delay))
			uv_close((uv_handle_t *)&s->delay,
			    pop3_session_delay_closed_cb);
		return;
	}
	free(s->chunk);
	free(s->list_ids);
	free(s->retr_at);
	free(s->t_ids);
	free(s->t_at);
	pop3_proto_free(&s->proto);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
	metrics_gauge_add(METRICS_POP3_SESSIONS_ACTIVE, -1);
	if (--srv->n_sessions == 0 && srv->stopping) {
		pwpool_stop(&srv->pw);
		store_worker_stop(&srv->q, NULL, NULL);
	}
}

/* Connections over the per-IP limit: just the count to undo. */
static void
pop3_reject_close_cb(struct net_conn *c)
{
	struct pop3_server *srv = net_conn_data(c);

	ipcount_dec(srv->ipc, net_conn_peer(c));
}

static const struct net_conn_ops pop3_reject_ops = {
	.close_cb = pop3_reject_close_cb,
};

static void
pop3_server_accept_cb(struct net_listener *l, struct net_conn *c)
{
	struct pop3_server *srv = net_listener_data(l);
	bool implicit = net_listener_kind(l) == POP3_LISTEN_TLS;
	struct pop3_config pc;
	struct pop3_session *s;
	unsigned n;
	bool full;

	n = ipcount_inc(srv->ipc, net_conn_peer(c));
	full = srv->cfg.pop3.max_connections > 0 &&
	    srv->n_sessions >= srv->cfg.pop3.max_connections;
	if (srv->stopping || full ||
	    (srv->cfg.pop3.max_connections_per_ip > 0 &&
	    n > srv->cfg.pop3.max_connections_per_ip)) {
		net_conn_set_ops(c, &pop3_reject_ops);
		net_conn_set_data(c, srv);
		if (full && !srv->stopping)
			log_warn(NULL, "refused client=%s "
			    "reason=max_connections sessions=%u "
			    "max_connections=%u", net_conn_peer(c),
			    srv->n_sessions, srv->cfg.pop3.max_connections);
		else if (!srv->stopping)
			log_warn(NULL, "refused client=%s "
			    "reason=max_connections_per_ip connections=%u",
			    net_conn_peer(c), n - 1);
		/* On 995 inside TLS, after the handshake (net.h). */
		net_conn_refuse(c, srv->stopping ?
		    "-ERR [SYS/TEMP] Server shutting down" : full ?
		    "-ERR [SYS/TEMP] Too many connections, try again later" :
		    "-ERR [SYS/TEMP] Too many connections from your address");
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->conn = c;
	log_new_sid(s->sid);
	snprintf(s->peer, sizeof(s->peer), "%s", net_conn_peer(c));
	authlimit_key(s->peer, s->ipkey);
	s->start_ms = uv_now(srv->loop);
	memset(&pc, 0, sizeof(pc));
	pc.hostname = srv->cfg.server.hostname;
	pc.tls_available = net_conn_starttls_ctx(c) != NULL;
	pc.tls_active = implicit;
	pc.allow_plaintext_auth = srv->cfg.pop3.allow_plaintext_auth;
	pop3_proto_limits_default(&pc.limits);
	if (pop3_proto_new(&pc, &s->proto) < 0)
		fatal("out of memory");
	uv_timer_init(srv->loop, &s->delay);
	s->delay.data = s;
	s->greeted = !implicit;
	if (s->greeted)
		pop3_proto_greet(s->proto);
	if ((s->next = srv->sessions) != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->n_sessions++;
	metrics_inc(METRICS_POP3_SESSIONS, NULL);
	metrics_gauge_add(METRICS_POP3_SESSIONS_ACTIVE, 1);
	net_conn_set_ops(c, &pop3_session_ops);
	net_conn_set_data(c, s);
	net_conn_set_timeout(c, pop3_session_timeout_ms(s));
	log_info(s->sid, "connect client=%s port=%d listener=%s", s->peer,
	    net_conn_local_port(c), implicit ? "pop3s" : "pop3");
	pop3_session_pump(s);
}

/* --- Server ------------------------------------------------------------ */

static int
pop3_server_bind(struct pop3_server *srv, const struct cfg_listen_list *l,
    int kind, struct pr_err *err)
{
	size_t i;
	int r;

	for (i = 0; i < l->n; i++) {
		if (kind == POP3_LISTEN_TLS && srv->tls == NULL)
			return pr_err_set(err, PR_EINVAL, "[pop3] pop3s needs "
			    "[tls] cert and key");
		r = net_listen(srv->loop, l->a[i].host, l->a[i].port,
		    kind == POP3_LISTEN_TLS ? srv->tls : NULL,
		    kind == POP3_LISTEN_PLAIN ? srv->tls : NULL, kind,
		    pop3_server_accept_cb, srv, &srv->ls[srv->n_ls], err);
		if (r == PR_EINVAL && net_listen_optional(l->a[i].host)) {
			log_warn(NULL, "skipping %s: %s", l->a[i].host, err->msg);
			continue;
		}
		if (r < 0)
			return r;
		log_info(NULL, "listening on %s%s%s:%s%s",
		    strchr(l->a[i].host, ':') ? "[" : "", l->a[i].host,
		    strchr(l->a[i].host, ':') ? "]" : "", l->a[i].port,
		    kind == POP3_LISTEN_TLS ? " (TLS)" : "");
		srv->n_ls++;
	}
	return 0;
}

int
pop3_server_new(uv_loop_t *loop, const struct cfg *cfg,
    struct pop3_server **srv_r, struct pr_err *err)
{
	struct pop3_server *srv = xcalloc(1, sizeof(*srv));
	int r;

	*srv_r = NULL;
	srv->loop = loop;
	srv->cfg = *cfg;
	if (cfg->tls.cert[0] != '\0' &&
	    (r = net_tls_new(cfg->tls.cert, cfg->tls.key, cfg->tls.ciphers, &srv->tls, err)) < 0)
		goto fail;
	if ((r = pop3_server_bind(srv, &cfg->pop3.listen, POP3_LISTEN_PLAIN,
	    err)) < 0 ||
	    (r = pop3_server_bind(srv, &cfg->pop3.pop3s, POP3_LISTEN_TLS,
	    err)) < 0)
		goto fail;
	if (srv->n_ls == 0) {
		r = pr_err_set(err, PR_EINVAL, "[pop3] listen and pop3s are "
		    "both empty: nothing to do");
		goto fail;
	}
	srv->ipc = ipcount_new();
	*srv_r = srv;
	return 0;

fail:
	while (srv->n_ls > 0)
		net_listener_close(&srv->ls[--srv->n_ls]);
	net_tls_free(&srv->tls);
	free(srv);
	return r;
}

int
pop3_server_start(struct pop3_server *srv, struct pr_err *err)
{
	struct pr_err rerr;
	int r;

	/* Opened before the worker starts: a failure leaves nothing to
	 * stop. */
	if ((r = store_open(srv->cfg.server.data_dir, 0, &srv->rd, err)) < 0)
		return r;
	/* A lock row with our pid is a leftover of an earlier process that
	 * had the same pid (a container restart): nobody holds it. */
	if ((r = store_maildrop_unlock_all(srv->rd, err)) < 0 ||
	    (r = store_worker_new(srv->loop, srv->cfg.server.data_dir, 0,
	    &srv->q, err)) < 0) {
		store_close(&srv->rd);
		return r;
	}
	/* Room for logins and deletions on a full disk (store_reserve.c);
	 * without it pop3d still runs. */
	if (store_reserve_ensure(srv->rd, &rerr) < 0)
		log_warn(NULL, "no reserve for a full disk: %s", rerr.msg);
	if ((r = pwpool_new(srv->loop, PWPOOL_THREADS, PWPOOL_QUEUE_MAX, 0,
	    &srv->pw, err)) < 0) {
		store_worker_stop(&srv->q, NULL, NULL);
		store_close(&srv->rd);
		return r;
	}
	srv->rbuf = xmalloc(POP3_CHUNK);
	return 0;
}

void
pop3_server_stop(struct pop3_server *srv)
{
	struct pop3_session *s;
	size_t i;

	if (srv->stopping)
		return;
	srv->stopping = true;
	for (i = 0; i < srv->n_ls; i++)
		net_listener_close(&srv->ls[i]);
	srv->n_ls = 0;
	for (s = srv->sessions; s != NULL; s = s->next) {
		if (pop3_session_gone(s))
			continue;
		/* RFC 1939 6: a session that did not QUIT deletes nothing. */
		pop3_proto_shutdown(s->proto);
		pop3_session_flush(s);
		if (s->conn != NULL)
			net_conn_close(s->conn, true);
	}
	if (srv->n_sessions == 0) {
		pwpool_stop(&srv->pw);
		store_worker_stop(&srv->q, NULL, NULL);
	}
}

int
pop3_server_reload(struct pop3_server *srv, struct pr_err *err)
{
	struct cfg *nc = xmalloc(sizeof(*nc));
	int r;

	cfg_defaults(nc);
	if ((r = cfg_load(nc, srv->cfg.path, err)) < 0)
		goto out;
	if (srv->tls != NULL) {
		if (nc->tls.cert[0] == '\0') {
			r = pr_err_set(err, PR_EINVAL, "[tls] cert is now "
			    "empty; TLS listeners stay as they are");
			goto out;
		}
		if ((r = net_tls_reload(srv->tls, nc->tls.cert, nc->tls.key, nc->tls.ciphers,
		    err)) < 0)
			goto out;
		memcpy(&srv->cfg.tls, &nc->tls, sizeof(nc->tls));
	}
	srv->cfg.pop3.allow_plaintext_auth = nc->pop3.allow_plaintext_auth;
	srv->cfg.pop3.timeout = nc->pop3.timeout;
	srv->cfg.pop3.max_connections_per_ip = nc->pop3.max_connections_per_ip;
	srv->cfg.pop3.max_connections = nc->pop3.max_connections;
	srv->cfg.server.log_level = nc->server.log_level;
	memcpy(srv->cfg.server.hostname, nc->server.hostname,
	    sizeof(nc->server.hostname));
	memcpy(srv->cfg.server.default_domain, nc->server.default_domain,
	    sizeof(nc->server.default_domain));
	log_set_level((enum log_level)nc->server.log_level);
out:
	free(nc);
	return r;
}

void
pop3_server_free(struct pop3_server **srvp)
{
	struct pop3_server *srv = *srvp;

	if (srv == NULL)
		return;
	while (srv->n_ls > 0)
		net_listener_close(&srv->ls[--srv->n_ls]);
	pwpool_stop(&srv->pw);
	store_worker_stop(&srv->q, NULL, NULL);
	store_close(&srv->rd);
	free(srv->rbuf);
	ipcount_free(&srv->ipc);
	net_tls_free(&srv->tls);
	free(srv);
	*srvp = NULL;
}

void
pop3_server_release_memory(struct pop3_server *srv)
{
	if (srv->rd != NULL)
		store_release_memory(srv->rd);
	if (srv->q != NULL && !srv->stopping)
		store_worker_release_memory(srv->q);
}
