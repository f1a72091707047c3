/*
 * store_throttle_job.h - login failures counted (or an account's
 * forgotten) as a job of the daemon's store worker.
 *
 * Both daemons write the counters of store_throttle_* off the loop
 * thread, in order with their other store work (docs/ARCHITECTURE.md
 * 3.3); reads may run on the loop thread's own connection.  Jobs queued
 * next to each other commit together, so a flood of failures costs one
 * fsync per batch, not one per failure, and the logins queued behind it
 * don't wait for each.
 */
#ifndef POSTROOM_STORE_THROTTLE_JOB_H
#define POSTROOM_STORE_THROTTLE_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"
#include "store_worker.h"

struct store_throttle_job {
	struct store_job job;          /* private */
	/* in */
	bool success;                  /* forget account's failures instead */
	char ip_key[64];
	char account[256];
	int64_t now;               /* the window is AUTHLIMIT_WINDOW */
	void (*done_cb)(struct store_throttle_job *j);
	void *data;
	/* out: 0 or an error (err says why), and the counts after a
	 * failure was counted */
	int status;
	struct store_throttle counts;
	struct pr_err err;
};

/* Queues j (owned by the caller, unchanged until done_cb, which runs on
 * the loop thread).  Never fails. */
void store_throttle_submit(struct store_worker *wk,
    struct store_throttle_job *j);

#endif
