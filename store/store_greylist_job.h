/*
 * store_greylist_job.h - a greylisting decision (store.h) as a job of
 * the daemon's store worker: it writes (first seen, passed), so it runs
 * off the loop thread, and requests queued together share one commit
 * (docs/ARCHITECTURE.md 3.3).
 */
#ifndef POSTROOM_STORE_GREYLIST_JOB_H
#define POSTROOM_STORE_GREYLIST_JOB_H

#include "addr.h"
#include "store.h"
#include "store_worker.h"

struct store_greylist_job {
	struct store_job job;          /* private */
	/* in: the strings of req are copied here by the caller */
	char net[64], sender[ADDR_MAX], rcpt[ADDR_MAX], spf_domain[256];
	struct store_greylist_req req; /* out: status, result, wait */
	struct pr_err err;
	void (*done_cb)(struct store_greylist_job *j);
	void *data;
};

/* Queues j (owned by the caller, unchanged until done_cb, which runs on
 * the loop thread); req's strings point into j.  Never fails. */
void store_greylist_submit(struct store_worker *wk,
    struct store_greylist_job *j);

#endif
