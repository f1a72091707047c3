/*
 * main.c - postroom-smtpd: listeners, the store worker, the relay, and
 * the signals that stop and reload them.
 *
 * Start-up order: config, TLS, listeners (bound as root when started
 * so), the privilege drop, then the store, the store worker and the
 * relay, so that every file they create belongs to [server] user.  The
 * store worker is the daemon's one writer: local deliveries and the
 * relay's bookkeeping share its thread and its connection, so they never
 * contend for SQLite's write lock with each other.  SIGTERM drains: the
 * listeners close, idle sessions get 421, sessions inside a message
 * finish it, the relay stops, then the worker commits what it holds and
 * stops; then the process exits.  SIGHUP reloads the certificate and the
 * limits.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "daemon.h"
#include "dkim_keycache.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "net.h"
#include "pwpool.h"
#include "relay.h"
#include "smtp_pickup.h"
#include "smtp_session.h"
#include "store.h"
#include "store_worker.h"
#include "xmalloc.h"

/* How long a drain may take before the remaining sessions are cut. */
#define SMTPD_DRAIN_MS 30000

struct smtpd {
	uv_loop_t *loop;
	struct cfg cfg;
	struct net_tls *tls;
	struct smtp_server srv;
	struct dns *dns;              /* inbound checks, relay ([dns]) */
	struct net_listener *listeners[3 * CFG_LISTEN_MAX];
	size_t n_listeners;
	struct daemon_signals sig;
	struct daemon_trim trim;
	uv_timer_t drain_timer;
	struct smtp_pickup *pickup;
	struct metrics_http *metrics;  /* [metrics] listen, or NULL */
	bool stopping;
	int exit_code;
};

static void
smtpd_limits(struct smtpd *d)
{
	struct smtp_limits *l = &d->srv.limits;

	smtp_limits_default(l);
	l->data_max = d->cfg.smtp.max_message_size;
	l->rcpt_max = d->cfg.smtp.max_recipients;
	l->bad_cmd_max = d->cfg.smtp.hard_error_limit;
	d->srv.timeout_ms = (uint64_t)d->cfg.smtp.timeout * 1000;
	d->srv.max_per_ip = d->cfg.smtp.max_connections_per_ip;
	d->srv.max_sessions = d->cfg.smtp.max_connections;
	d->srv.min_data_rate = d->cfg.smtp.min_data_rate;
	d->srv.min_data_grace_ms = (uint64_t)d->cfg.smtp.min_data_grace * 1000;
}

static int
smtpd_listen_list(struct smtpd *d, const struct cfg_listen_list *list,
    enum smtp_listen_kind kind, const char *key)
{
	struct net_tls *implicit = kind == SMTP_LISTEN_SUBMISSIONS ? d->tls :
	    NULL;
	struct net_tls *starttls = kind == SMTP_LISTEN_SUBMISSIONS ? NULL :
	    d->tls;
	struct pr_err err;
	size_t i;

	if (list->n > 0 && kind == SMTP_LISTEN_SUBMISSIONS && d->tls == NULL) {
		log_err(NULL, "[smtp] %s needs [tls] cert and key", key);
		return -1;
	}
	for (i = 0; i < list->n; i++) {
		struct net_listener *l;
		int r;

		r = net_listen(d->loop, list->a[i].host, list->a[i].port,
		    implicit, starttls, kind, smtp_session_accept, &d->srv, &l,
		    &err);
		if (r == PR_EINVAL && net_listen_optional(list->a[i].host)) {
			log_warn(NULL, "[smtp] %s: skipping %s", key, err.msg);
			continue;
		}
		if (r < 0) {
			log_err(NULL, "[smtp] %s: %s", key, err.msg);
			return -1;
		}
		d->listeners[d->n_listeners++] = l;
		log_info(NULL, "listening on %s%s%s:%s (%s)",
		    strchr(list->a[i].host, ':') ? "[" : "", list->a[i].host,
		    strchr(list->a[i].host, ':') ? "]" : "", list->a[i].port,
		    key);
	}
	return 0;
}

static void
smtpd_close_listeners(struct smtpd *d)
{
	size_t i;

	for (i = 0; i < d->n_listeners; i++)
		net_listener_close(&d->listeners[i]);
	d->n_listeners = 0;
}

static void
smtpd_worker_stopped_cb(void *data)
{
	struct smtpd *d = data;

	uv_close((uv_handle_t *)&d->drain_timer, NULL);
	daemon_signals_close(&d->sig);
	daemon_trim_close(&d->trim);
	log_info(NULL, "stopped");
}

static void
smtpd_relay_stopped_cb(void *data)
{
	struct smtpd *d = data;

	/* The worker commits whatever is still queued before it stops. */
	if (d->srv.wk != NULL)
		store_worker_stop(&d->srv.wk, smtpd_worker_stopped_cb, d);
	else
		smtpd_worker_stopped_cb(d);
}

/* No session (or none yet): stop the relay, then the store worker. */
static void
smtpd_shutdown(struct smtpd *d)
{
	d->srv.idle_cb = NULL;
	uv_timer_stop(&d->drain_timer);
	/* No session is left to check a password, or a sender. */
	pwpool_stop(&d->srv.pw);
	smtp_pickup_stop(&d->pickup);
	/* Closing the resolver also ends the relay's lookups in flight,
	 * which relay_stop() waits for. */
	if (d->dns != NULL) {
		d->srv.resolver = NULL;
		dns_close(d->dns, NULL, NULL);
		d->dns = NULL;
	}
	dkim_keycache_free(&d->srv.dkim_keys);
	if (d->srv.relay != NULL)
		relay_stop(d->srv.relay, smtpd_relay_stopped_cb, d);
	else
		smtpd_relay_stopped_cb(d);
}

/* Every session is gone. */
static void
smtpd_idle_cb(struct smtp_server *srv)
{
	smtpd_shutdown((struct smtpd *)((char *)srv -
	    offsetof(struct smtpd, srv)));
}

static void
smtpd_drain_timeout_cb(uv_timer_t *t)
{
	struct smtpd *d = t->data;

	log_warn(NULL, "drain timeout: closing %u session%s",
	    d->srv.n_sessions, d->srv.n_sessions == 1 ? "" : "s");
	smtp_server_close_all(&d->srv);
}

static void
smtpd_stop_cb(void *data)
{
	struct smtpd *d = data;

	if (d->stopping) {
		/* A second signal: do not wait any longer. */
		smtp_server_close_all(&d->srv);
		return;
	}
	d->stopping = true;
	smtpd_close_listeners(d);
	uv_timer_start(&d->drain_timer, smtpd_drain_timeout_cb,
	    SMTPD_DRAIN_MS, 0);
	log_info(NULL, "draining %u session%s", d->srv.n_sessions,
	    d->srv.n_sessions == 1 ? "" : "s");
	smtp_server_drain(&d->srv);
}

static void
smtpd_reload_cb(void *data)
{
	struct smtpd *d = data;
	struct cfg *n = xmalloc(sizeof(*n));
	struct pr_err err;

	cfg_defaults(n);
	if (cfg_load(n, d->cfg.path, &err) < 0) {
		log_err(NULL, "reload: %s; keeping the old configuration",
		    err.msg);
		free(n);
		return;
	}
	/* What can change without new sockets: TLS material, limits, log
	 * level.  Listeners and data_dir need a restart. */
	if (d->tls != NULL && net_tls_reload(d->tls, n->tls.cert, n->tls.key, n->tls.ciphers,
	    &err) < 0)
		log_err(NULL, "reload: %s; keeping the old certificate",
		    err.msg);
	else if (d->tls != NULL)
		log_info(NULL, "reloaded certificate %s", n->tls.cert);
	memcpy(d->cfg.tls.cert, n->tls.cert, sizeof(d->cfg.tls.cert));
	memcpy(d->cfg.tls.key, n->tls.key, sizeof(d->cfg.tls.key));
	d->cfg.smtp.max_message_size = n->smtp.max_message_size;
	d->cfg.smtp.max_recipients = n->smtp.max_recipients;
	d->cfg.smtp.max_connections_per_ip = n->smtp.max_connections_per_ip;
	d->cfg.smtp.max_connections = n->smtp.max_connections;
	d->cfg.smtp.min_data_rate = n->smtp.min_data_rate;
	d->cfg.smtp.min_data_grace = n->smtp.min_data_grace;
	d->cfg.smtp.allow_plaintext_auth = n->smtp.allow_plaintext_auth;
	d->cfg.smtp.timeout = n->smtp.timeout;
	d->cfg.smtp.hard_error_limit = n->smtp.hard_error_limit;
	memcpy(d->cfg.server.postmaster, n->server.postmaster,
	    sizeof(d->cfg.server.postmaster));
	memcpy(d->cfg.server.default_domain, n->server.default_domain,
	    sizeof(d->cfg.server.default_domain));
	d->cfg.server.log_level = n->server.log_level;
	/* A session keeps the filters it started with (smtp_milter.c
	 * copies the list); the next session has the new ones. */
	d->cfg.milter = n->milter;
	d->cfg.server.trace_days = n->server.trace_days;
	store_trace_set_days(n->server.trace_days);
	log_set_level((enum log_level)n->server.log_level);
	smtpd_limits(d);
	free(n);
}

/* Idle after a burst (daemon_trim): the loop thread's store connection
 * lets go of its memory map and page cache. */
static void
smtpd_release_cb(void *data)
{
	struct smtpd *d = data;

	if (d->srv.st != NULL)
		store_release_memory(d->srv.st);
	if (d->srv.wk != NULL && !d->stopping)
		store_worker_release_memory(d->srv.wk);
}

static int
smtpd_start(struct smtpd *d)
{
	struct pr_err err;
	struct store *st;
	int r;

	pr_err_clear(&err);
	/* Two queue runners on one queue would deliver twice; refuse before
	 * the listeners bind, so the message says why. */
	if (daemon_lock(d->cfg.server.data_dir, "smtpd.pid", "postroom-smtpd",
	    &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return -1;
	}
	/* As root, if started so: the key may be readable by root only and
	 * the ports may be privileged. */
	if (d->cfg.tls.cert[0] != '\0' &&
	    net_tls_new(d->cfg.tls.cert, d->cfg.tls.key, d->cfg.tls.ciphers, &d->tls, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return -1;
	}
	if (smtpd_listen_list(d, &d->cfg.smtp.listen, SMTP_LISTEN_MX,
	    "listen") < 0 ||
	    smtpd_listen_list(d, &d->cfg.smtp.submission,
	    SMTP_LISTEN_SUBMISSION, "submission") < 0 ||
	    smtpd_listen_list(d, &d->cfg.smtp.submissions,
	    SMTP_LISTEN_SUBMISSIONS, "submissions") < 0)
		return -1;
	metrics_init(METRICS_SMTPD);
	if (metrics_http_start(&d->cfg, METRICS_HTTP_SMTPD,
	    &d->metrics, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return -1;
	}
	if (daemon_drop_privileges(&d->cfg, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return -1;
	}
	/* From here on as [server] user: every file we create is theirs.
	 * Nothing is accepted before uv_run(). */
	if ((r = store_open(d->cfg.server.data_dir, 0, &st, &err)) < 0) {
		/* The store's message already says to run `postroom init`. */
		log_err(NULL, "store: %s", err.msg);
		return -1;
	}
	d->srv.st = st;
	snprintf(d->srv.spool_dir, sizeof(d->srv.spool_dir), "%s/tmp",
	    d->cfg.server.data_dir);
	if (mkdir(d->srv.spool_dir, 0700) < 0 && errno != EEXIST) {
		log_err(NULL, "%s: %s", d->srv.spool_dir, strerror(errno));
		return -1;
	}
	if (store_worker_new(d->loop, d->cfg.server.data_dir, 0, &d->srv.wk,
	    &err) < 0) {
		log_err(NULL, "store worker: %s", err.msg);
		return -1;
	}
	if (pwpool_new(d->loop, PWPOOL_THREADS, PWPOOL_QUEUE_MAX, 0,
	    &d->srv.pw, &err) < 0) {
		log_err(NULL, "%s", err.msg);
		return -1;
	}
	/* One resolver for the inbound checks and the relay. */
	if (dns_new(d->loop, d->cfg.dns.resolver, d->cfg.dns.timeout * 1000,
	    &d->dns, &err) < 0) {
		log_err(NULL, "dns: %s", err.msg);
		return -1;
	}
	d->srv.resolver = dns_resolver(d->dns);
	if ((d->srv.dkim_keys = dkim_keycache_new(DKIM_KEYCACHE_ENTRIES,
	    NULL)) == NULL) {
		log_err(NULL, "out of memory");
		return -1;
	}
	if (relay_new(d->loop, &d->cfg, d->dns, d->srv.wk, &d->srv.relay,
	    &err) < 0) {
		log_err(NULL, "relay: %s", err.msg);
		return -1;
	}
	/* Mail that postroom-sendmail left while we were down goes first. */
	if (smtp_pickup_new(d->loop, &d->cfg, d->srv.wk, d->srv.relay,
	    &d->pickup, &err) < 0) {
		log_err(NULL, "pickup: %s", err.msg);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct smtpd d;

	daemon_init(argc, argv, "postroom-smtpd", &d.cfg);
	store_trace_set_days(d.cfg.server.trace_days);
	d.loop = uv_default_loop();
	d.srv.loop = d.loop;
	d.srv.cfg = &d.cfg;
	d.srv.ipc = ipcount_new();
	d.srv.idle_cb = smtpd_idle_cb;
	smtpd_limits(&d);
	uv_timer_init(d.loop, &d.drain_timer);
	d.drain_timer.data = &d;
	d.sig.stop_cb = smtpd_stop_cb;
	d.sig.reload_cb = smtpd_reload_cb;
	d.sig.data = &d;
	daemon_signals_start(d.loop, &d.sig);
	daemon_trim_start(d.loop, &d.trim, smtpd_release_cb, &d);

	if (smtpd_start(&d) < 0) {
		d.exit_code = 1;
		smtpd_close_listeners(&d);
		smtpd_shutdown(&d);
	} else {
		log_info(NULL, "postroom-smtpd %s ready as %s",
		    POSTROOM_VERSION, d.cfg.server.hostname);
	}
	uv_run(d.loop, UV_RUN_DEFAULT);

	metrics_http_stop(&d.metrics);
	relay_free(&d.srv.relay);
	store_close(&d.srv.st);
	net_tls_free(&d.tls);
	ipcount_free(&d.srv.ipc);
	if (uv_loop_close(d.loop) != 0)
		log_debug(NULL, "loop closed with handles still open");
	return d.exit_code;
}
