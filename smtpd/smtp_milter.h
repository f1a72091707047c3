/*
 * smtp_milter.h - the content filters of one message, on the loop.
 *
 * Runs a message through the [milter] servers in order, one milter
 * conversation (milter/milter.h) each, over a unix or TCP socket of the
 * daemon's libuv loop with a timeout per step ([milter] timeout; every
 * packet from the filter, SMFIR_PROGRESS included, restarts it).  The
 * first filter that rejects, defers or discards decides and the rest are
 * not asked; a filter that cannot be reached, times out or breaks the
 * protocol is a failure, which [milter] on_failure turns into the
 * verdict (tempfail) or skips (accept).  A failure is logged once per
 * episode of the filter, not once per message (docs/LOGGING.md,
 * "milter").  The octets go out as the message will be stored: the
 * trace fields, then the message, read from memory or from the spool
 * file.  See docs/MILTER.md.
 */
#ifndef POSTROOM_SMTP_MILTER_H
#define POSTROOM_SMTP_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "milter.h"

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

/* Called once on the loop when the filters have decided (not after
 * smtp_milter_cancel()). */
typedef void (*smtp_milter_cb)(struct smtp_milter *m, void *data);

/*
 * Starts the filters of list (copied) for one message, env and src
 * borrowed until the callback; sid names the session in logs.  Returns 0
 * (cb will run) or PR_ENOMEM.
 */
int smtp_milter_start(uv_loop_t *loop, const struct cfg_milter_list *list,
    unsigned timeout_s, bool fail_accept, const struct milter_env *env,
    const struct smtp_milter_src *src, const char *sid, smtp_milter_cb cb,
    void *data, struct smtp_milter **m_r);

/* The verdict: MILTER_CONTINUE (or ACCEPT) lets the message through;
 * REJECT, TEMPFAIL, DISCARD and FAILED (on_failure = tempfail) decide.
 * *filter_r names the filter that decided ("" for none). */
enum milter_verdict smtp_milter_verdict(const struct smtp_milter *m,
    const char **filter_r);

/* The results of the filters that answered, in order (n_r of them);
 * the decisive one is last. */
const struct milter_result *smtp_milter_result(const struct smtp_milter *m,
    size_t i);
size_t smtp_milter_count(const struct smtp_milter *m);

/* The changes of the filters that let the message through, applied in
 * their order (docs/MILTER.md). */
struct smtp_milter_changes {
	bool content;          /* msg is the new message (header, body) */
	struct buf msg;
	bool sender_changed;   /* sender is the new reverse-path */
	char sender[512];
	bool rcpts_changed;    /* rcpts[0..n_rcpts) are the recipients */
	char **rcpts;
	size_t n_rcpts;
	bool quarantine;       /* hold the message (SMFIR_QUARANTINE) */
	char reason[256];
	unsigned n;            /* changes, for the log */
};

/*
 * Applies the changes to the message of the run and to the envelope
 * recipients rcpts[0..n); max bounds the new message.  Returns 0,
 * PR_ETOOBIG (the new message is over max), PR_EIO (the spool file
 * could not be read) or PR_ENOMEM.  ch is filled in either way;
 * smtp_milter_changes_fini() frees it.
 */
int smtp_milter_apply(struct smtp_milter *m, const char *const *rcpts,
    size_t n, uint64_t max, struct smtp_milter_changes *ch);
void smtp_milter_changes_fini(struct smtp_milter_changes *ch);

/* Frees m after its callback, or cancels it before (the session is
 * gone): its sockets close, no callback runs. */
void smtp_milter_free(struct smtp_milter *m);

#endif
