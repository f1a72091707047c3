/*
 * relay_policy.h - when to try again and when to give up, sans I/O.
 */
#ifndef POSTROOM_RELAY_POLICY_H
#define POSTROOM_RELAY_POLICY_H

#include <stdint.h>

#define RELAY_BACKOFF_FIRST 300   /* 5 minutes */
#define RELAY_BACKOFF_MAX 3600    /* 1 hour */

/* Seconds to wait after the attempts-th failed attempt (1, 2, ...):
 * 5 min, 10, 20, 40, then 1 h for ever. */
int64_t relay_backoff(int attempts);

/*
 * Decides what a temporary failure at now means for an entry created at
 * created after attempts failures (this one included), with the queue
 * lifetime max_queue_time (seconds).  Returns 1 when the entry has expired
 * (its recipients are to be bounced), else 0 with *next_r set to the next
 * attempt: the backoff, but never later than the expiry instant, so that
 * the last attempt happens on time.
 */
int relay_policy_defer(int64_t now, int64_t created, int attempts,
    uint64_t max_queue_time, int64_t *next_r);

#endif
