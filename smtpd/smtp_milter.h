/*
 * smtp_milter.h - the content filters of one SMTP session, on the loop.
 *
 * One struct smtp_milter runs the [milter] servers of a session in
 * order, one milter conversation (milter/milter.h) and one unix or TCP
 * connection each over the daemon's libuv loop, made at the first step
 * and kept for every message of the session (SMFIC_ABORT between them,
 * SMFIC_QUIT at the end).  The session runs each step as its command
 * comes (HELO, MAIL, each RCPT, DATA, the message at the end of the
 * data, ABORT at RSET) and answers the command once the filters have;
 * a filter's first step also sends its SMFIC_CONNECT (and the HELO of
 * a session that said it already).
 *
 * A step goes to the filters in order; the first that refuses decides
 * and the rest are not asked.  Each reply is awaited for [milter]
 * timeout, restarted by every packet (SMFIR_PROGRESS too); the end of a
 * message has a deadline besides (MILTER_DEADLINE_MS).  A filter that
 * cannot be reached, times out or breaks the protocol has failed for
 * the rest of the session, which [milter] on_failure turns into the
 * verdict of each of its steps (tempfail) or skips (accept).  A failure
 * is logged once per episode of the filter, not once per message
 * (docs/LOGGING.md, "milter").  The message goes out as it will be
 * stored: the trace fields, then the message, read from memory or from
 * the spool file.  See docs/MILTER.md.
 */
#ifndef POSTROOM_SMTP_MILTER_H
#define POSTROOM_SMTP_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "dsn.h"
#include "milter.h"
#include "smtp_proto.h"

struct smtp_milter;

/* The message: head[0..head_len) (trace fields), then mem[0..mem_len)
 * or, with fd >= 0, fd_len octets of fd from offset 0.  A Return-Path
 * field at the top of head is not shown to the filters and stays on top
 * (RFC 5321 4.4: the final delivery's; Postfix's filters do not see it
 * either), so a filter's field inserted at index 0 goes below it. */
struct smtp_milter_src {
	const uint8_t *head;
	size_t head_len;
	const uint8_t *mem;
	size_t mem_len;
	int fd;
	uint64_t fd_len;
};

/* Called once when the filters have answered a step that did not
 * complete at once (not after smtp_milter_free()). */
typedef void (*smtp_milter_cb)(struct smtp_milter *m, void *data);

/*
 * The filters of list (copied) for one session; env is borrowed for
 * the session's life and read at each step (the caller updates it:
 * HELO, TLS, login, sender, queue id); sid names the session in logs.
 * Nothing connects before the first step.  Returns the run.
 */
struct smtp_milter *smtp_milter_open(uv_loop_t *loop,
    const struct cfg_milter_list *list, unsigned timeout_s,
    bool fail_accept, const struct milter_env *env, const char *sid);

/*
 * Runs step cmd (arg: the recipient of MILTER_CMD_RCPT; src, borrowed
 * until the answer, the message of MILTER_CMD_MESSAGE) through the
 * filters.  Returns true when it is answered at once (no callback), or
 * false when cb will run.
 */
bool smtp_milter_step(struct smtp_milter *m, enum milter_cmd cmd,
    const char *arg, const struct smtp_milter_src *src, smtp_milter_cb cb,
    void *data);

/* The answer to the last step: MILTER_CONTINUE (or ACCEPT) lets it go
 * on; REJECT, TEMPFAIL, DISCARD (the message) and FAILED (on_failure =
 * tempfail) decide.  *filter_r names the filter that decided ("" for
 * none); *res_r its result (NULL for none). */
enum milter_verdict smtp_milter_verdict(const struct smtp_milter *m,
    const char **filter_r, const struct milter_result **res_r);

/* The results of the filters asked at the last step, in order (count
 * of them); the decisive one is last. */
const struct milter_result *smtp_milter_result(const struct smtp_milter *m,
    size_t i);
size_t smtp_milter_count(const struct smtp_milter *m);

/* A recipient after the filters' changes, with its DSN parameters
 * (RFC 3461 4.1, 4.2): an RCPT's that stays, or those the filter gave
 * with SMFIR_ADDRCPT_PAR (none: the defaults). */
struct smtp_milter_rcpt {
	char *addr;
	unsigned notify;        /* DSN_NOTIFY_* bits, 0 = not given */
	char orcpt[DSN_ORCPT_MAX + 1];
};

/* The changes of the filters that let the message through, applied in
 * their order (docs/MILTER.md). */
struct smtp_milter_changes {
	bool content;          /* msg is the new message (header, body) */
	struct buf msg;
	bool sender_changed;   /* sender is the new reverse-path */
	char sender[512];
	bool rcpts_changed;    /* rcpts[0..n_rcpts) are the recipients */
	struct smtp_milter_rcpt *rcpts;
	size_t n_rcpts;
	bool quarantine;       /* hold the message (SMFIR_QUARANTINE) */
	char reason[256];
	unsigned n;            /* changes, for the log */
};

/*
 * Applies the changes of the last MILTER_CMD_MESSAGE step to its
 * message and to the envelope recipients rcpts[0..n) (the RCPTs, with
 * their DSN parameters); max bounds the new message.  Returns 0,
 * PR_ETOOBIG (the new message is over max), PR_EIO (the spool file
 * could not be read) or PR_ENOMEM.  ch is filled in either way;
 * smtp_milter_changes_fini() frees it.
 */
int smtp_milter_apply(struct smtp_milter *m,
    const struct smtp_tx_rcpt *rcpts, size_t n, uint64_t max,
    struct smtp_milter_changes *ch);
void smtp_milter_changes_fini(struct smtp_milter_changes *ch);

/* The session ends: SMFIC_ABORT for an open message and SMFIC_QUIT go
 * to the filters, their sockets close; a step still running is
 * cancelled (no callback).  NULL is a no-op. */
void smtp_milter_free(struct smtp_milter *m);

#endif
