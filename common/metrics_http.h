/*
 * metrics_http.h - the Prometheus endpoint of a daemon ([metrics] listen
 * in postroom.conf(5)): GET /metrics answers with metrics_render().
 *
 * libmicrohttpd serves it from a thread of its own; it reads only the
 * atomics of metrics.c, so it never touches the event loop or the store.
 * Bounded: a few connections at once, a short timeout, GET only.
 */
#ifndef POSTROOM_METRICS_HTTP_H
#define POSTROOM_METRICS_HTTP_H

#include "cfg.h"
#include "err.h"

struct metrics_http;

/* The port of each daemon: postroom-smtpd listens on [metrics] listen,
 * postroom-pop3d on the port after it (postroom.conf(5)). */
#define METRICS_HTTP_SMTPD 0
#define METRICS_HTTP_POP3D 1

/* Listens on [metrics] listen of cfg, its port plus port_offset (one of
 * the above), and logs it; with none, sets *h_r NULL and does nothing.
 * Returns 0 and *h_r, or an error with err set. */
int metrics_http_start(const struct cfg *cfg, unsigned port_offset,
    struct metrics_http **h_r, struct pr_err *err);

/* Stops the thread and closes the socket; *h = NULL (NULL: no-op). */
void metrics_http_stop(struct metrics_http **h);

#endif
