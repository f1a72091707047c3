/*
 * pop3_session.h - postroom-pop3d's server: listeners, sessions, and the
 * glue between the POP3 core (pop3_proto.h), the network (net.h) and the
 * store worker (pop3_store.h, store_worker.h).
 */
#ifndef POSTROOM_POP3_SESSION_H
#define POSTROOM_POP3_SESSION_H

#include <uv.h>

#include "cfg.h"
#include "err.h"

struct pop3_server;

/*
 * Loads the TLS certificate (if configured) and binds every [pop3] listen
 * and pop3s address, so that privileges can be dropped afterwards.
 * Accepting starts only with pop3_server_start.  cfg is copied.  Returns
 * 0 or a negative error with err set (nothing is left open then).
 */
int pop3_server_new(uv_loop_t *loop, const struct cfg *cfg,
    struct pop3_server **srv_r, struct pr_err *err);

/*
 * Opens the store (after the privilege drop) twice: one connection for
 * the store thread and one for the loop thread's reads of small message
 * bodies.  Releases maildrop locks a previous process with our pid may
 * have left, starts the store thread and begins accepting.  Returns 0 or a negative error with err set.
 */
int pop3_server_start(struct pop3_server *srv, struct pr_err *err);

/*
 * SIGTERM: stops accepting, ends every session without committing its
 * deletions (RFC 1939 6: only QUIT deletes), releases the maildrop locks
 * and stops the store thread.  The loop then runs out of handles.
 */
void pop3_server_stop(struct pop3_server *srv);

/*
 * SIGHUP: rereads the config file; applies the TLS certificate and the
 * settings that can change at run time (plaintext logins, timeout,
 * per-IP limit, log level).  Listeners stay as they are.  On any error
 * the old settings stay and err says why.
 */
int pop3_server_reload(struct pop3_server *srv, struct pr_err *err);

/* Gives back the memory of the loop thread's store connection
 * (store_release_memory); for an idle daemon. */
void pop3_server_release_memory(struct pop3_server *srv);

/* Frees the server after the loop has stopped. */
void pop3_server_free(struct pop3_server **srv);

#endif
