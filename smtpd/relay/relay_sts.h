/*
 * relay_sts.h - the TLS policy of one delivery's recipient domain:
 * MTA-STS (RFC 8461) and the downgrade memory (docs/OUTBOUND_TLS.md).
 *
 * relay_dlv.c calls these at fixed points of a delivery: before the
 * route lookup (find the policy), before each connection (apply it to
 * the host), and when a session's TLS is known (check, note for TLS-RPT
 * through relay_tlsrpt.h, remember).  A delivery to the smarthost, or
 * on a kept session, has no policy state and every call is a no-op.
 */
#ifndef POSTROOM_RELAY_STS_H
#define POSTROOM_RELAY_STS_H

#include <stdbool.h>

struct relay;
struct relay_dlv;
struct relay_target;

/* Downgrade memory: a domain without a verified TLS session for this
 * long is forgotten (docs/OUTBOUND_TLS.md). */
#define RELAY_TLS_MEMORY_KEEP (180 * 24 * 3600)

/* At relay_new / relay_free: libcurl's global state. */
int relay_sts_global_init(void);

/* Finds d's policy: the cache and the memory from the store, the TXT
 * record, a fetch if needed; then done(d) on the loop, never from
 * within.  Holds a reference of d until then. */
void relay_sts_start(struct relay_dlv *d, void (*done)(struct relay_dlv *d));

/* Before connecting to target t: sets d->tls_verify and
 * d->params.tls_required as the policy wants for this host.  False:
 * the host may not be used (d->last_error says why). */
bool relay_sts_target(struct relay_dlv *d, const struct relay_target *t);

/* The session's TLS handshake failed (or verification did); why is the
 * reason.  Notes it and, under a policy, makes d->last_error the policy
 * deferral ("TLS policy <name>: ..."). */
void relay_sts_tls_failed(struct relay_dlv *d, const char *why);

/* The handshake succeeded: notes it, remembers a verified session,
 * warns about an unverified one to a remembered domain. */
void relay_sts_tls_ok(struct relay_dlv *d);

/* The client gave up on the host (RELAY_CLIENT_R_NEXT_HOST) and
 * d->last_error says why: a host that offers no STARTTLS where the
 * policy needs it is noted, and a policy's refusal stays the reason. */
void relay_sts_next_host(struct relay_dlv *d);

/* The session goes on to a transaction: without TLS it is noted and,
 * to a remembered domain, warned about. */
void relay_sts_transaction(struct relay_dlv *d);

/* The RFC 3463 code of d's deferral: 4.7.5 for a TLS policy's, else
 * 4.4.1. */
const char *relay_sts_dsn(const struct relay_dlv *d);

/* The runner stops: a policy fetch in flight ends at once (and is a
 * failed fetch). */
void relay_sts_abort(struct relay_dlv *d);

void relay_sts_free(struct relay_dlv *d);

#endif
