/*
 * relay.c - the outbound queue runner's life cycle (see relay.h).
 *
 * Creating the runner reads its part of the config (smarthost and its
 * password file), makes the TLS client contexts (relay_tls.c), its
 * lookups on the daemon's resolver (relay_dns.h) and the store thread
 * (relay_worker.h), and
 * starts the scheduler (relay_sched.c).  Stopping closes everything in
 * flight; the entries stay queued for the next run.  The objects the
 * runner works with are described in relay_int.h.
 */
#include "relay_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "relay_mx.h"
#include "relay_sts.h"
#include "sasl.h"
#include "xmalloc.h"

static int
relay_read_password(const char *path, char **pass_r, struct pr_err *err)
{
	char *pass;
	FILE *f;
	size_t n;

	f = fopen(path, "r");
	if (f == NULL)
		return pr_err_set(err, PR_EIO, "smarthost_password_file %s: %s",
		    path, strerror(errno));
	pass = sodium_malloc(SASL_PASS_MAX);
	if (pass == NULL) {
		fclose(f);
		return pr_err_set(err, PR_ENOMEM, "out of memory");
	}
	if (fgets(pass, SASL_PASS_MAX, f) == NULL)
		pass[0] = '\0';
	fclose(f);
	n = strcspn(pass, "\r\n");
	pass[n] = '\0';
	if (n == 0) {
		sodium_free(pass);
		return pr_err_set(err, PR_EINVAL,
		    "smarthost_password_file %s is empty", path);
	}
	*pass_r = pass;
	return 0;
}

static void
relay_free_cb(uv_handle_t *h)
{
	free(h->data);
}

int
relay_new(uv_loop_t *loop, const struct cfg *cfg, struct dns *dns,
    struct store_worker *wk, struct relay **r_r, struct pr_err *err)
{
	struct relay *r;
	int rc;

	r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->cfg = cfg;
	r->worker = wk;
	r->enabled = cfg->relay.enabled;
	r->wait_tail = &r->wait_head;
	uv_timer_init(loop, &r->scan_timer);
	r->scan_timer.data = r;
	if (!r->enabled) {
		r->dns_closed = true;
		*r_r = r;
		log_info(NULL, "relay: disabled");
		return 0;
	}
	if (cfg->relay.smarthost[0] != '\0') {
		r->smart_port = 25;
		if (relay_mx_parse_hostport(cfg->relay.smarthost, r->smart_host,
		    &r->smart_port) < 0) {
			rc = pr_err_set(err, PR_EINVAL, "[relay] smarthost: "
			    "bad value '%s' (host:port)", cfg->relay.smarthost);
			goto fail;
		}
		r->smarthost = true;
		r->smart_implicit =
		    cfg->relay.smarthost_tls == CFG_SMARTHOST_IMPLICIT;
		if (cfg->relay.smarthost_user[0] != '\0') {
			if (cfg->relay.smarthost_password_file[0] == '\0') {
				rc = pr_err_set(err, PR_EINVAL, "[relay] "
				    "smarthost_user needs "
				    "smarthost_password_file");
				goto fail;
			}
			if ((rc = relay_read_password(
			    cfg->relay.smarthost_password_file,
			    &r->smart_pass, err)) < 0)
				goto fail;
			r->smart_user = xstrdup(cfg->relay.smarthost_user);
		}
	}
	if ((rc = relay_tls_client_new(cfg, &r->tls, err)) < 0)
		goto fail;
	if (r->smarthost &&
	    (rc = relay_tls_smarthost_new(cfg, &r->smart_tls, err)) < 0)
		goto fail;
	if (relay_sts_global_init() < 0) {
		rc = pr_err_set(err, PR_EIO, "libcurl: cannot initialise");
		goto fail;
	}
	r->dnsd = dns;
	r->dns = relay_dns_new(loop, dns);
	relay_tlsrpt_start(r, dns);
	if (r->smarthost)
		log_info(NULL, "relay: all mail through %s:%u%s, %s, "
		    "certificate verified with %s", r->smart_host,
		    r->smart_port, r->smart_user != NULL ? " with AUTH" : "",
		    r->smart_implicit ? "implicit TLS" : "STARTTLS",
		    cfg->relay.smarthost_ca[0] ? cfg->relay.smarthost_ca :
		    cfg->relay.ca_file[0] ? cfg->relay.ca_file :
		    "the system CA store");
	relay_sched_start(r);
	*r_r = r;
	return 0;
fail:
	net_tls_free(&r->tls);
	net_tls_free(&r->smart_tls);
	free(r->smart_user);
	if (r->smart_pass != NULL)
		sodium_free(r->smart_pass);
	uv_close((uv_handle_t *)&r->scan_timer, relay_free_cb);
	return rc;
}

static void
relay_stopped(struct relay *r)
{
	void (*cb)(void *) = r->done_cb;

	r->done_cb = NULL;
	if (cb != NULL)
		cb(r->done_data);
}

/* Once nothing is in flight any more, the relay is done; the store
 * worker is the daemon's and stops after it. */
void
relay__check_stopped(struct relay *r)
{
	if (!r->stopping || r->worker_stopping)
		return;
	if (r->n_msgs > 0 || !r->dns_closed || !r->timer_closed ||
	    r->scanning || r->n_idle_live > 0 || relay_tlsrpt_busy(r))
		return;
	r->worker_stopping = true;
	relay_stopped(r);
}

static void
relay_stop_dns_cb(void *data)
{
	struct relay *r = data;

	r->dns = NULL;
	r->dns_closed = true;
	relay__check_stopped(r);
}

void
relay_kick(struct relay *r)
{
	if (r != NULL)
		relay_sched_kick(r);
}

void
relay_stop(struct relay *r, void (*done_cb)(void *data), void *data)
{
	struct relay_dlv *d;

	if (r->stopping)
		return;
	r->stopping = true;
	r->done_cb = done_cb;
	r->done_data = data;
	relay_sched_stop(r);
	/* Connections close; their close callbacks end the deliveries.
	 * Lookups in flight are cancelled by closing the resolver. */
	for (d = r->dlvs; d != NULL; d = d->next)
		relay_dlv_abort(d);
	relay_pool_stop(r);
	relay_tlsrpt_stop(r);
	if (r->dns != NULL)
		relay_dns_close(r->dns, relay_stop_dns_cb, r);
	relay__check_stopped(r);
}

void
relay_free(struct relay **rp)
{
	struct relay *r = *rp;

	if (r == NULL)
		return;
	relay_pool_free(r);
	relay_tlsrpt_free(r);
	net_tls_free(&r->tls);
	net_tls_free(&r->smart_tls);
	free(r->smart_user);
	if (r->smart_pass != NULL)
		sodium_free(r->smart_pass);
	free(r);
	*rp = NULL;
}
