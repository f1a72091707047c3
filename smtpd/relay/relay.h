/*
 * relay.h - the outbound queue runner inside postroom-smtpd.
 *
 * It runs on the daemon's libuv loop: picks due entries from the store's
 * outbound queue, finds the destination's MX hosts with c-ares, hands the
 * message over with an SMTP client (STARTTLS when offered, DKIM-signed for
 * hosted domains), retries with backoff and bounces what cannot be
 * delivered.  Store work runs on the daemon's store worker.
 */
#ifndef POSTROOM_RELAY_H
#define POSTROOM_RELAY_H

#include <uv.h>

#include "cfg.h"
#include "err.h"

struct relay;

struct dns;
struct store_worker;

/* Creates the runner on loop and starts it (first queue scan right away).
 * Its store work runs on wk, the daemon's store worker, which must outlive
 * the runner and be stopped only after relay_stop's done_cb.  Its lookups
 * go to dns, the daemon's resolver (common/dns.h), which must stay open
 * until relay_stop() or be closed first: closing it cancels the lookups
 * in flight.  cfg must outlive the runner too.  With [relay] enabled =
 * false the runner exists but never sends.  Returns 0 or an error with
 * err set. */
int relay_new(uv_loop_t *loop, const struct cfg *cfg, struct dns *dns,
    struct store_worker *wk, struct relay **r_r, struct pr_err *err);

/* New entries were committed to the queue: scan it soon.  Cheap; safe to
 * call after every delivery. */
void relay_kick(struct relay *r);

/* Stops taking new work and closes every connection in flight (those
 * entries stay queued and are retried after a restart).  done_cb runs on
 * the loop once every handle is closed. */
void relay_stop(struct relay *r, void (*done_cb)(void *data), void *data);

/* Frees a stopped runner. */
void relay_free(struct relay **r);

#endif
