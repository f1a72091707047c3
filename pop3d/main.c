/*
 * main.c - postroom-pop3d: POP3 (RFC 1939) with STLS (RFC 2595) on the
 * [pop3] listen addresses and implicit TLS (RFC 8314) on [pop3] pop3s.
 *
 *	postroom-pop3d [-c FILE]
 *
 * Runs in the foreground and logs to stderr.  SIGTERM/SIGINT end every
 * session without applying its deletions and exit; SIGHUP reloads the
 * certificate and the run-time settings.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cfg.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "pop3_session.h"
#include "store.h"

struct pop3_main {
	struct pop3_server *srv;
	struct daemon_signals sig;
	struct daemon_trim trim;
	struct metrics_http *metrics;  /* [metrics] listen, or NULL */
};

static void
pop3_main_stop_cb(void *data)
{
	struct pop3_main *m = data;

	pop3_server_stop(m->srv);
	/* Without the signal handles the loop ends once the sessions are
	 * gone; a second SIGTERM then kills the process outright. */
	daemon_signals_close(&m->sig);
	daemon_trim_close(&m->trim);
}

/* Idle after a burst (daemon_trim): the bodies read on the loop thread
 * went through the store's memory map. */
static void
pop3_main_release_cb(void *data)
{
	struct pop3_main *m = data;

	pop3_server_release_memory(m->srv);
}

static void
pop3_main_reload_cb(void *data)
{
	struct pop3_main *m = data;
	struct pr_err err;

	pr_err_clear(&err);
	if (pop3_server_reload(m->srv, &err) < 0)
		log_err(NULL, "reload failed, old settings kept: %s", err.msg);
	else
		log_info(NULL, "reloaded configuration and certificate");
}

int
main(int argc, char **argv)
{
	static struct cfg cfg;
	struct pop3_main m = { 0 };
	struct pr_err err;
	uv_loop_t *loop = uv_default_loop();

	daemon_init(argc, argv, "postroom-pop3d", &cfg);
	store_trace_set_days(cfg.server.trace_days);
	pr_err_clear(&err);
	/* RFC 1939 8: maildrop locks are released at start for this
	 * process; one pop3d per data_dir keeps that safe. */
	if (daemon_lock(cfg.server.data_dir, "pop3d.pid", "postroom-pop3d",
	    &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return 1;
	}
	/* Bind first (ports below 1024 need root), then drop privileges,
	 * then open the database as the unprivileged user. */
	if (pop3_server_new(loop, &cfg, &m.srv, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return 1;
	}
	metrics_init(METRICS_POP3D);
	if (metrics_http_start(&cfg, METRICS_HTTP_POP3D, &m.metrics,
	    &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return 1;
	}
	if (daemon_drop_privileges(&cfg, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return 1;
	}
	if (pop3_server_start(m.srv, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return 1;
	}
	m.sig.stop_cb = pop3_main_stop_cb;
	m.sig.reload_cb = pop3_main_reload_cb;
	m.sig.data = &m;
	daemon_signals_start(loop, &m.sig);
	daemon_trim_start(loop, &m.trim, pop3_main_release_cb, &m);
	log_info(NULL, "postroom-pop3d %s ready", POSTROOM_VERSION);
	uv_run(loop, UV_RUN_DEFAULT);
	pop3_server_free(&m.srv);
	metrics_http_stop(&m.metrics);
	uv_run(loop, UV_RUN_NOWAIT);
	uv_loop_close(loop);
	log_info(NULL, "stopped");
	return 0;
}
