/*
 * metrics.h - the counters of a daemon, for its Prometheus endpoint
 * ([metrics] listen in postroom.conf(5); the names and what they count:
 * docs/LOGGING.md 6).
 *
 * Counters and gauges are process-wide atomics: the code increments them
 * on any thread (the loop, the store worker) and the HTTP thread of
 * metrics_http.c reads them while they move, never under a lock.  A
 * family either has no label or one label key; its values (copied, cut
 * to 31 characters of [A-Za-z0-9._-]) are kept in a small fixed table,
 * the rest counted under "other", so that what peers send can never
 * grow it.
 */
#ifndef POSTROOM_METRICS_H
#define POSTROOM_METRICS_H

#include <stdint.h>

#include "buf.h"

/* Which daemon shows a family. */
#define METRICS_SMTPD 0x1u
#define METRICS_POP3D 0x2u

enum metrics_id {
	METRICS_SMTP_SESSIONS,        /* counter, label listener */
	METRICS_SMTP_SESSIONS_ACTIVE, /* gauge */
	METRICS_SMTP_ACCEPTED,        /* counter: messages, 250 after DATA */
	METRICS_SMTP_REFUSED,         /* counter, label reason */
	METRICS_LOCAL_DELIVERIES,     /* counter: mailbox entries added */
	METRICS_RELAY_RCPTS,          /* counter, label status */
	METRICS_QUEUE_LENGTH,         /* gauge: queue entries */
	METRICS_QUEUE_OLDEST,         /* gauge: unix time of the oldest */
	METRICS_STORE_COMMIT,         /* histogram, seconds */
	METRICS_POP3_SESSIONS,        /* counter */
	METRICS_POP3_SESSIONS_ACTIVE, /* gauge */
	METRICS_POP3_LOGINS,          /* counter, label result */
	METRICS_POP3_OCTETS,          /* counter: octets of RETR and TOP */
	METRICS_AUTH_FAILURES,        /* counter, label protocol */
	METRICS_TLS_HANDSHAKES,       /* counter, label version */
	METRICS_DNS_LOOKUPS,          /* counter, label result */
	METRICS__COUNT
};

/* Shows the families of daemon (METRICS_SMTPD or METRICS_POP3D) in
 * metrics_render.  Counting works without it. */
void metrics_init(unsigned daemon);

/* Adds n to counter id; label is its value for a family with a label,
 * NULL otherwise. */
void metrics_add(enum metrics_id id, const char *label, uint64_t n);

static inline void
metrics_inc(enum metrics_id id, const char *label)
{
	metrics_add(id, label, 1);
}

/* Gauges: set to v, or moved by delta. */
void metrics_set(enum metrics_id id, int64_t v);
void metrics_gauge_add(enum metrics_id id, int64_t delta);

/* One observation of a histogram, in microseconds. */
void metrics_observe_us(enum metrics_id id, uint64_t us);

/* A monotonic clock in microseconds, for what metrics_observe_us
 * takes: metrics_observe_us(id, metrics_now_us() - start). */
uint64_t metrics_now_us(void);

/*
 * Appends the families of this daemon in the Prometheus text format
 * (version 0.0.4) to b; now (unix seconds) turns the oldest queue
 * entry's time into an age.  Returns 0 or PR_ENOSPC / PR_ENOMEM.
 */
int metrics_render(struct buf *b, int64_t now);

#endif
