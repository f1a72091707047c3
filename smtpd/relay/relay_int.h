/*
 * relay_int.h - the queue runner's objects, shared by its source files.
 *
 * Not a public header: postroom-smtpd sees relay.h only.  The runner is
 * three objects, each in its own files:
 *
 *   relay      the runner (relay.c: life cycle, config, smarthost
 *              password; relay_sched.c: queue scans, timers, connection
 *              slots; relay_tls.c: the TLS client context)
 *   relay_msg  one queue entry being worked on (relay_msg.c: prepared
 *              once, split into one delivery per destination domain;
 *              relay_settle.c: the attempt's outcome, bounce and retry,
 *              settled in one store call)
 *   relay_dlv  one destination domain of one message (relay_dlv.c: route
 *              lookup, then SMTP sessions to its MX hosts in order until
 *              one decides, with the body streamed from the store)
 *
 * Everything runs on the loop thread except the relay_work run callbacks,
 * which run on the relay's store thread (relay_worker.h) and touch only
 * their own object's store-side fields.
 */
#ifndef POSTROOM_RELAY_INT_H
#define POSTROOM_RELAY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "relay.h"
#include "relay_client.h"
#include "net.h"
#include "relay_data.h"
#include "relay_dns.h"
#include "relay_worker.h"
#include "store.h"

#define RELAY_MSGS_MAX 400      /* queue entries worked on at once */
/* Connections at once, all destinations together (deliveries and kept
 * sessions); each destination has at most [relay]
 * connections_per_domain of them (postroom.conf(5)). */
#define RELAY_CONNS_MAX 100
/* A session is kept for the next message to the same destination for
 * this long, and carries at most this many messages (postroom.conf(5)). */
#define RELAY_IDLE_MS (5 * 1000)
#define RELAY_SESSION_MSGS_MAX 100
/* A host that failed (no connection, no greeting) is not tried again
 * for RELAY_HOST_BACKOFF seconds, doubled with each failure in a row up
 * to RELAY_HOST_BACKOFF_MAX; RELAY_HOSTS_MAX such hosts are kept. */
#define RELAY_HOST_BACKOFF 60
#define RELAY_HOST_BACKOFF_MAX (30 * 60)
#define RELAY_HOSTS_MAX 4096
#define RELAY_BUCKETS 256       /* hash buckets of destinations, hosts */
#define RELAY_CHUNK (64 * 1024) /* body read and write unit */
/* Active DKIM keys a message is signed with at most: one per algorithm
 * and one more of each during a rollover. */
#define RELAY_DKIM_KEYS_MAX 4

/* One recipient's outcome in this attempt. */
struct relay_msg_rcpt {
	int status;                  /* enum relay_rcpt_status */
	char reply[RELAY_REPLY_MAX]; /* remote reply or our reason */
	char mta[RELAY_HOST_MAX];    /* host that replied, "" = ours */
	char code[16];               /* RFC 3463 status for our reasons */
	int64_t when;
	bool no_dsn;                 /* the host that took it has no DSN */
};

struct relay_msg {
	struct relay *r;
	struct relay_msg *prev, *next; /* r->msgs */
	struct store_queue_job job;   /* owned, rcpts too */
	struct relay_msg_rcpt *rcpts; /* parallel to job.rcpts */
	size_t n_dlv;                 /* deliveries not yet freed */
	struct relay_work work;       /* prepare, then settle */
	char sid[LOG_SID_LEN + 1];

	/* Prepared on the store thread. */
	int prep_status;
	struct pr_err prep_err;
	struct buf dkim;              /* DKIM-Signature fields or empty */
	char dkim_domain[RELAY_HOST_MAX];
	unsigned dkim_count;          /* signatures in dkim */
	bool body_8bit, smtputf8;
	uint8_t *head;                /* original header, for bounces */
	size_t head_len;
	size_t skip;                  /* leading Return-Path field not sent */

	/* Settled on the store thread. */
	bool settle_delivered_only;   /* stopping: set before the work */
	bool bounce_queued;           /* a bounce went to the relay queue */
	int64_t retry_at;             /* next attempt, 0 = none */
	char settle_log[512];

	/* The attempt as the trace tells it (postroom trace): MX records,
	 * hosts tried, TLS; NUL-terminated by the settle. */
	struct buf trace;
};

/* A destination: an MX domain (or the smarthost), whose connections
 * are counted against connections_per_domain (relay_pool.c). */
struct relay_dest {
	struct relay_dest *next;      /* hash chain */
	char name[RELAY_HOST_MAX];
	unsigned refs;                /* deliveries and kept sessions */
	unsigned n_conns;             /* started deliveries + kept sessions */
	struct relay_idle *idle;      /* kept sessions */
};

/* An SMTP session kept open between two messages (relay_pool.c): the
 * connection and the client in S_IDLE, with what the delivery knew of
 * its host. */
struct relay_idle {
	struct relay *r;
	struct relay_dest *dest;
	struct relay_idle *next, *prev;         /* dest->idle */
	struct relay_idle *all_next, *all_prev; /* r->idle_old: oldest first */
	struct net_conn *conn;
	struct relay_client client;
	struct relay_route route;
	size_t target;
	char peer[RELAY_HOST_MAX + 80];
	bool plaintext_only;
	unsigned msgs;                /* transactions on the session so far */
	uv_timer_t timer;
	bool pooled;                  /* in dest->idle and counted */
};

/* A host that failed, by address (relay_pool.c). */
struct relay_host {
	struct relay_host *next;
	char key[80];                 /* "192.0.2.1:25" */
	char why[RELAY_REPLY_MAX];    /* the failure, for the skipped */
	unsigned fails;
	int64_t until;
};

struct relay_dlv {
	struct relay *r;
	struct relay_msg *m;
	struct relay_dest *dest;
	struct relay_dlv *next_wait;  /* r->wait_head: not started yet */
	struct relay_dlv *prev, *next;  /* r->dlvs: started deliveries */
	char domain[RELAY_HOST_MAX];
	char sid[LOG_SID_LEN + 1];
	size_t n;                     /* recipients of this domain */
	size_t *idx;                  /* their indexes in m->job.rcpts */
	struct relay_client_rcpt *crcpts;
	size_t *cmap;                 /* crcpts[i] is idx[cmap[i]] */
	size_t n_c;
	struct relay_client_params params;
	struct relay_client client;
	bool client_live;

	struct relay_route route;
	size_t target;
	bool plaintext_only;          /* TLS failed once on this target */
	bool greeted;                 /* the host greeted us: it is alive */
	char hostkey[80];             /* the target's "addr:port" */
	unsigned sess_msgs;           /* transactions on this session */
	bool tls_verify;              /* smarthost: verified TLS or nothing */
	bool tls_failed;
	bool local_error;             /* our side failed: do not go on */
	/* DANE (relay_dane.c): the route's TLSA answers, and the current
	 * target's, NULL when it has none. */
	struct relay_dane *dane;
	const struct relay_dane_host *dane_host;
	struct relay_sts *sts;        /* TLS policy (relay_sts.c) or NULL */
	struct net_conn *conn;
	uv_timer_t timer;
	bool timer_live;
	unsigned refs;                /* timer, conn, DNS, store work */
	bool started, ended;
	char last_error[RELAY_REPLY_MAX];
	char peer[RELAY_HOST_MAX + 80]; /* "mx.b.test[127.0.0.3]:25" */

	/* Body streaming. */
	struct relay_work bwork;
	struct store_body *body;
	uint8_t *chunk;
	ssize_t chunk_n;
	int64_t off;
	bool streaming, reading, body_eof;
	struct relay_stuff stuff;
	struct buf wire;
};

struct relay {
	uv_loop_t *loop;
	const struct cfg *cfg;
	bool enabled;
	struct store_worker *worker;  /* the daemon's, shared */
	struct relay_dns *dns;
	struct dns *dnsd;             /* the daemon's resolver, borrowed */
	struct net_tls *tls;          /* MX hosts: opportunistic */
	struct net_tls *smart_tls;    /* the smarthost: verified */

	/* Queue scans (relay_sched.c). */
	uv_timer_t scan_timer;
	struct relay_work scan_work;
	struct store_queue_job *scan_jobs;
	size_t scan_n, scan_max;
	bool scan_unclaimed;            /* store thread: claims of a crashed
	                                   predecessor released */
	int64_t scan_next;
	int64_t scan_flushed;         /* store_queue_flushed, read by the scan */
	int64_t flush_seen;           /* the flush the runner acted on */
	int scan_status;
	struct pr_err scan_err;
	bool scanning, rescan, scan_capped;
	bool pumping, pump_again;     /* relay_sched_pump runs / must rerun */
	int64_t scan_by;              /* look again by then (0 = poll) */

	struct relay_msg *msgs;
	size_t n_msgs;
	struct relay_dlv *wait_head, **wait_tail;
	struct relay_dlv *dlvs;       /* started, not yet freed */
	size_t n_active;              /* connections: started deliveries and
	                                 kept sessions (RELAY_CONNS_MAX) */

	/* Destinations, kept sessions, failed hosts (relay_pool.c). */
	struct relay_dest *dests[RELAY_BUCKETS];
	struct relay_idle *idle_old, *idle_new;
	size_t n_idle_live;           /* kept sessions not yet freed */
	struct relay_host *hosts[RELAY_BUCKETS];
	size_t n_hosts;

	bool smarthost;
	bool smart_implicit;          /* smarthost_tls = implicit */
	char smart_host[RELAY_HOST_MAX];
	unsigned smart_port;
	char *smart_user, *smart_pass; /* sodium_malloc'd */

	struct relay_tlsrpt *tlsrpt;  /* TLS results (relay_tlsrpt.c) */

	bool stopping, dns_closed, timer_closed, worker_stopping;
	void (*done_cb)(void *data);
	void *done_data;
};

static inline int64_t
relay_now(void)
{
	return (int64_t)time(NULL);
}

/* --- relay.c ----------------------------------------------------------- */

/* While stopping: once nothing is in flight any more, stops the store
 * thread and then calls the stop's done_cb.  Cheap; call after anything
 * that may have been the last. */
void relay__check_stopped(struct relay *r);

/* --- relay_tls.c ------------------------------------------------------- */

/* The TLS client context for STARTTLS to MX hosts (trust anchors:
 * [relay] ca_file or the system store).  Returns 0 or an error with err
 * set; net_tls_free it. */
int relay_tls_client_new(const struct cfg *cfg, struct net_tls **tls_r,
    struct pr_err *err);
/* The context for the smarthost, whose certificate must verify: trust
 * anchors from [relay] smarthost_ca, else ca_file, else the system
 * store.  Returns 0 or an error with err set; net_tls_free it. */
int relay_tls_smarthost_new(const struct cfg *cfg, struct net_tls **tls_r,
    struct pr_err *err);

/* --- relay_tlsrpt.c ---------------------------------------------------- */

struct dns;
/* Starts counting TLS results (relay_tlsrpt.h) and the daily reports,
 * whose _smtp._tls lookups go to dns, the daemon's resolver. */
void relay_tlsrpt_start(struct relay *r, struct dns *dns);
/* Stopping: the counts go to the store, lookups are cancelled; true
 * while something of it is still in flight (relay__check_stopped). */
void relay_tlsrpt_stop(struct relay *r);
bool relay_tlsrpt_busy(const struct relay *r);
void relay_tlsrpt_free(struct relay *r);

/* --- relay_settle.c ---------------------------------------------------- */

/* On the store thread: the queue's length and oldest entry into the
 * metrics (docs/LOGGING.md 6), after each scan and settled attempt. */
void relay_queue_gauges(struct store *st);

/* --- relay_sched.c ----------------------------------------------------- */

/* The first scan, right away: entries left by the last run. */
void relay_sched_start(struct relay *r);
/* Scan soon (new entries committed, a bounce queued). */
void relay_sched_kick(struct relay *r);
/* Makes sure the queue is looked at again by when (unix time), e.g. the
 * next attempt of an entry that was just deferred. */
void relay_sched_retry_at(struct relay *r, int64_t when);
/* A message left r->msgs: there may be room for entries the last scan
 * had to leave. */
void relay_sched_msg_gone(struct relay *r);
/* Queues a delivery for a connection slot; it starts (relay_dlv_start)
 * once one is free.  Takes no reference. */
void relay_sched_enqueue(struct relay *r, struct relay_dlv *d);
/* Starts waiting deliveries while there is room (after a slot freed). */
void relay_sched_pump(struct relay *r);
/* Stopping: the scan timer closes (then relay__check_stopped) and
 * waiting deliveries end without starting. */
void relay_sched_stop(struct relay *r);

/* --- relay_pool.c ------------------------------------------------------ */

/* The destination called name, made on first use; one reference more.
 * relay_dest_unref gives it back (freed with its last). */
struct relay_dest *relay_dest_ref(struct relay *r, const char *name);
void relay_dest_unref(struct relay *r, struct relay_dest *dt);
/* True if d may open a connection now: below RELAY_CONNS_MAX in all and
 * connections_per_domain for its destination.  With all connections
 * taken, a kept session of another destination is closed to make room. */
bool relay_pool_room(struct relay *r, struct relay_dlv *d);
/* Gives d a kept session of its destination, if there is one: true
 * and the session is d's (relay_dlv_adopt). */
bool relay_pool_take(struct relay *r, struct relay_dlv *d);
/* d's session is idle after a transaction: keeps it for the next
 * message to the destination, or says QUIT (limits, stopping).  The
 * connection and the client leave d. */
void relay_pool_park(struct relay_dlv *d);
/* Stopping: QUIT to every kept session. */
void relay_pool_stop(struct relay *r);
/* The host behind key ("addr:port") failed (why: the error) / answered.
 * relay_host_backed_off returns the time until which it is left alone
 * (0 = not backed off) and its failure in *why_r. */
void relay_host_failed(struct relay *r, const char *key, const char *why);
void relay_host_ok(struct relay *r, const char *key);
int64_t relay_host_backed_off(struct relay *r, const char *key,
    const char **why_r);
/* Forgets every failed host (the queue was flushed by hand). */
void relay_host_forget(struct relay *r);
/* Frees what is left (the runner is gone). */
void relay_pool_free(struct relay *r);

/* --- relay_msg.c ------------------------------------------------------- */

/* Takes job (its rcpts array moves to the message) and starts working on
 * it: prepare on the store thread, then deliveries. */
void relay_msg_start(struct relay *r, struct store_queue_job *job);
/* True if queue entry id is being worked on. */
bool relay_msg_in_flight(const struct relay *r, int64_t id);
/* Records a recipient's outcome (reply: the remote's or our reason; mta
 * the host that said it or NULL; code an RFC 3463 status or NULL). */
void relay_msg_rcpt_set(struct relay_msg_rcpt *rc, int status,
    const char *reply, const char *mta, const char *code);
/* "sent", "bounced", "deferred" or "pending", for the logs. */
const char *relay_msg_status_word(int status);
/* Appends a printf-formatted piece to m->trace, space-separated; what
 * does not fit in STORE_TRACE_INFO_MAX is left out. */
void relay_msg_trace(struct relay_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The enhanced status code (RFC 3463) of a reply such as "250 2.0.0 Ok"
 * into out, or the class that status implies when it has none ("2.0.0",
 * "4.0.0", "5.0.0").  Returns out. */
const char *relay_msg_dsn(const char *reply, int status, char out[16]);
/* Unlinks and frees m. */
void relay_msg_free(struct relay_msg *m);

/* --- relay_settle.c ---------------------------------------------------- */

/* Settles the attempt at m on the store thread in one store call
 * (store_queue_settle): delivered recipients leave, failed ones leave
 * with their bounce, the rest is retried; then frees m.  While the runner
 * stops, only the delivered recipients are taken off the queue. */
void relay_settle_submit(struct relay_msg *m);

/* --- relay_dlv.c ------------------------------------------------------- */

/* A delivery of n recipients of m to domain, with one reference held
 * (given up by relay_dlv_end if it never starts).  The caller fills
 * d->idx[0..n) and queues it with relay_sched_enqueue. */
struct relay_dlv *relay_dlv_new(struct relay_msg *m, const char *domain,
    size_t n);
/* Takes a connection slot and looks up the route. */
void relay_dlv_start(struct relay_dlv *d);
/* Ends the delivery: recipients without an answer are deferred with the
 * last error, the slot is given back.  Once every reference is gone the
 * delivery is freed, and with the message's last one the attempt
 * settles (relay_settle_submit). */
void relay_dlv_end(struct relay_dlv *d);
/* Stopping: closes the delivery's connection, if any; its close callback
 * ends the delivery. */
void relay_dlv_abort(struct relay_dlv *d);
/* Starts delivery d on the kept session ki (relay_pool_take): the
 * connection and client move to d, the next transaction begins. */
void relay_dlv_adopt(struct relay_dlv *d, struct relay_idle *ki);

/* Within a delivery (relay_dlv.c, relay_body.c): one reference less;
 * (re)arms the delivery's timer; the client's timeout; feeds buffered
 * replies to the client and acts on them. */
void relay_dlv_unref(struct relay_dlv *d);
void relay_dlv_timer_start(struct relay_dlv *d, void (*cb)(uv_timer_t *),
    uint64_t ms);
void relay_dlv_timeout_cb(uv_timer_t *t);
void relay_dlv_feed(struct relay_dlv *d);
/* Connects to the next address of the route, or ends the delivery. */
void relay_dlv_next_target(struct relay_dlv *d);

/* --- relay_body.c ------------------------------------------------------ */

/* After the 354: streams the body (RFC 5321 4.5.2 dot-stuffed). */
void relay_dlv_body_start(struct relay_dlv *d);
/* The connection drained: reads the next chunk if one is due. */
void relay_dlv_read_next(struct relay_dlv *d);

#endif
