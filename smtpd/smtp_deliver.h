/*
 * smtp_deliver.h - local delivery as a job of the daemon's store worker,
 * with group commit.
 *
 * Sessions on the event loop hand finished messages to the store worker
 * (store_worker.h).  Deliveries queued next to each other are committed
 * together with one store_deliver() call, i.e. one SQLite transaction and
 * one fsync for the whole group (docs/ARCHITECTURE.md, durability): while
 * one group commits, new messages queue up and form the next, so fifty
 * concurrent senders do not pay fifty fsyncs.  The worker bounds a group
 * by count and by body bytes, so one big message commits alone.  Each
 * job's done_cb runs on the loop thread.
 */
#ifndef POSTROOM_SMTP_DELIVER_H
#define POSTROOM_SMTP_DELIVER_H

#include "smtp_proto.h"
#include "store.h"
#include "store_worker.h"

struct smtp_deliver_job {
	struct store_job job;       /* private */
	struct store_msg msg;       /* in: what to deliver; out: status, id.
	                               With msg.user_status set, a mailbox
	                               that cannot take the message (quota)
	                               is skipped, logged, and reported to
	                               the sender in a bounce (RFC 3464)
	                               stored right after the commit */
	const char *hostname;       /* in: the reporting MTA of a bounce */
	/* in, optional: the RCPTs (RFC 3461 NOTIFY=, ORCPT=) and for each
	 * local mailbox msg.users[i] the index of its RCPT in rcpts; with
	 * them a full mailbox is reported only as NOTIFY asks, and a
	 * mailbox whose RCPT asked for SUCCESS gets a "delivered" report
	 * (RFC 3464 2.3.3) to the sender.  smtputf8: the transaction was
	 * SMTPUTF8 (RFC 6533 reports). */
	const struct smtp_tx_rcpt *rcpts;
	const unsigned *users_rcpt;
	bool smtputf8;
	const char *sid;            /* in: the session's log id, or NULL */
	size_t n_refused;           /* out: local recipients skipped */
	/* Runs on the loop thread once msg.status and msg.id are set. */
	void (*done_cb)(struct smtp_deliver_job *job);
	void *data;
};

/* Queues job (owned by the caller until done_cb).  Everything job->msg
 * points to must stay valid and unchanged until then.  Never fails. */
void smtp_deliver_submit(struct store_worker *wk,
    struct smtp_deliver_job *job);

#endif
