/*
 * smtp_pickup.h - picks up mail that postroom-sendmail left in the
 * maildrop spool (common/maildrop.h) and delivers it like an SMTP
 * submission: local mailboxes or the relay queue, through the daemon's
 * store worker.
 *
 * docs/ARCHITECTURE.md 5.4 describes the path.  A spool file is
 * unlinked only after its delivery committed; its name goes into the
 * store in the same transaction, so a file found again after a crash
 * between the two is not delivered twice.  The submitting user is the
 * file's owner (the kernel's word); an envelope sender of a hosted
 * domain that this user may not use is refused and the user told by
 * mail.
 */
#ifndef POSTROOM_SMTP_PICKUP_H
#define POSTROOM_SMTP_PICKUP_H

#include <uv.h>

#include "cfg.h"
#include "err.h"
#include "store_worker.h"

struct relay;
struct smtp_pickup;

/*
 * Watches the spool directory of cfg (creating it, mode 1730, if it is
 * missing) and scans it now, on every change and every
 * SMTP_PICKUP_INTERVAL seconds.  cfg, wk and relay (NULL: no relay)
 * are borrowed until smtp_pickup_stop().  Returns 0 or an error with err
 * set.
 */
#define SMTP_PICKUP_INTERVAL 30
int smtp_pickup_new(uv_loop_t *loop, const struct cfg *cfg,
    struct store_worker *wk, struct relay *relay, struct smtp_pickup **p_r,
    struct pr_err *err);

/* Stops watching; a scan in flight finishes (the store worker runs it)
 * and the pickup frees itself afterwards.  Sets *pp NULL; NULL is a
 * no-op.  Call before the store worker stops. */
void smtp_pickup_stop(struct smtp_pickup **pp);

#endif
