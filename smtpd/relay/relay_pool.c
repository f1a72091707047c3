/*
 * relay_pool.c - destinations, kept sessions and failed hosts (see
 * relay_int.h).
 *
 * A destination is what a delivery goes to: an MX domain, or the
 * smarthost.  Its connections (deliveries that started, and sessions
 * kept open between two messages) are at most [relay]
 * connections_per_domain, all destinations together RELAY_CONNS_MAX.
 *
 * Connection reuse: when a delivery's transaction is over and the
 * session still stands (relay_client S_IDLE), the session is kept here
 * for RELAY_IDLE_MS; the next delivery to the same destination takes it
 * and starts with RSET instead of a new connection, TLS handshake and
 * EHLO (RFC 5321 4.1.1.5).  After RELAY_SESSION_MSGS_MAX messages, when
 * the idle time is up, or when the slot is wanted by another
 * destination, the session says QUIT.
 *
 * Failed hosts: a host that gave no connection or no greeting is left
 * alone for a while (RELAY_HOST_BACKOFF, doubling up to
 * RELAY_HOST_BACKOFF_MAX), so that the next message to a dead MX does
 * not wait for the same timeout again: its delivery goes on to the
 * next MX host or is deferred at once (RFC 5321 4.5.4.1: "the sender
 * MUST delay retrying a particular destination after one attempt has
 * failed").
 */
#include "relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

static unsigned
relay_pool_hash(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % RELAY_BUCKETS;
}

/* --- Destinations ------------------------------------------------------ */

struct relay_dest *
relay_dest_ref(struct relay *r, const char *name)
{
	unsigned h = relay_pool_hash(name);
	struct relay_dest *dt;

	for (dt = r->dests[h]; dt != NULL; dt = dt->next)
		if (strcmp(dt->name, name) == 0)
			break;
	if (dt == NULL) {
		dt = xcalloc(1, sizeof(*dt));
		snprintf(dt->name, sizeof(dt->name), "%s", name);
		dt->next = r->dests[h];
		r->dests[h] = dt;
	}
	dt->refs++;
	return dt;
}

void
relay_dest_unref(struct relay *r, struct relay_dest *dt)
{
	struct relay_dest **pp;

	if (dt == NULL || --dt->refs > 0)
		return;
	for (pp = &r->dests[relay_pool_hash(dt->name)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == dt) {
			*pp = dt->next;
			break;
		}
	}
	free(dt);
}

/* --- Kept sessions ----------------------------------------------------- */

/* Takes ki out of the pool: it no longer counts as a connection. */
static void
relay_idle_unpool(struct relay_idle *ki)
{
	struct relay *r = ki->r;

	if (!ki->pooled)
		return;
	ki->pooled = false;
	if (ki->prev != NULL)
		ki->prev->next = ki->next;
	else
		ki->dest->idle = ki->next;
	if (ki->next != NULL)
		ki->next->prev = ki->prev;
	if (ki->all_prev != NULL)
		ki->all_prev->all_next = ki->all_next;
	else
		r->idle_old = ki->all_next;
	if (ki->all_next != NULL)
		ki->all_next->all_prev = ki->all_prev;
	else
		r->idle_new = ki->all_prev;
	ki->dest->n_conns--;
	r->n_active--;
}

static void
relay_idle_free_cb(uv_handle_t *h)
{
	struct relay_idle *ki = h->data;
	struct relay *r = ki->r;

	relay_dest_unref(r, ki->dest);
	free(ki);
	r->n_idle_live--;
	relay__check_stopped(r);
}

/* Frees ki once its connection is gone or moved (the timer closes). */
static void
relay_idle_release(struct relay_idle *ki)
{
	if (ki->conn != NULL)
		return;
	uv_timer_stop(&ki->timer);
	if (!uv_is_closing((uv_handle_t *)&ki->timer))
		uv_close((uv_handle_t *)&ki->timer, relay_idle_free_cb);
}

/* Ends a kept session: QUIT, then close after its line went out (the
 * reply is not waited for: RFC 5321 4.1.1.10 asks nothing more of us). */
static void
relay_idle_quit(struct relay_idle *ki, const char *why)
{
	relay_idle_unpool(ki);
	if (ki->conn == NULL || net_conn_closing(ki->conn))
		return;
	log_debug(NULL, "relay host=%s session closed: %s", ki->peer, why);
	relay_client_idle_quit(&ki->client);
	if (ki->client.out.len > 0)
		(void)net_conn_write(ki->conn, ki->client.out.p,
		    ki->client.out.len);
	relay_client_sent(&ki->client);
	net_conn_close(ki->conn, true);
}

static void
relay_idle_timer_cb(uv_timer_t *t)
{
	struct relay_idle *ki = t->data;

	relay_idle_quit(ki, "idle");
	relay_sched_pump(ki->r);
}

static void
relay_idle_input_cb(struct net_conn *c)
{
	struct relay_idle *ki = net_conn_data(c);

	/* Nothing was asked: a server that speaks now is going away (a
	 * 421, RFC 5321 3.8).  The session is not worth keeping. */
	relay_idle_unpool(ki);
	net_conn_close(c, false);
	relay_sched_pump(ki->r);
}

static void
relay_idle_close_cb(struct net_conn *c)
{
	struct relay_idle *ki = net_conn_data(c);
	struct relay *r = ki->r;

	ki->conn = NULL;
	relay_client_fini(&ki->client);
	relay_idle_unpool(ki);
	relay_idle_release(ki);
	relay_sched_pump(r);
}

static const struct net_conn_ops relay_idle_conn_ops = {
	.input_cb = relay_idle_input_cb,
	.close_cb = relay_idle_close_cb,
};

void
relay_pool_park(struct relay_dlv *d)
{
	struct relay *r = d->r;
	struct relay_idle *ki = xcalloc(1, sizeof(*ki));
	struct relay_dest *dt = d->dest;

	ki->r = r;
	ki->dest = dt;
	dt->refs++;
	ki->conn = d->conn;
	ki->client = d->client;     /* the client moves: out and all */
	ki->client.params = NULL;
	ki->client.rcpts = NULL;
	ki->client.n_rcpts = 0;
	ki->route = d->route;
	ki->target = d->target;
	snprintf(ki->peer, sizeof(ki->peer), "%s", d->peer);
	ki->plaintext_only = d->plaintext_only;
	ki->msgs = d->sess_msgs;
	d->conn = NULL;
	d->client_live = false;
	uv_timer_init(r->loop, &ki->timer);
	ki->timer.data = ki;
	r->n_idle_live++;
	net_conn_set_data(ki->conn, ki);
	net_conn_set_ops(ki->conn, &relay_idle_conn_ops);

	/* Counted as a connection of its destination from now on; the
	 * delivery that leaves gives its own slot back. */
	ki->pooled = true;
	ki->next = dt->idle;
	if (dt->idle != NULL)
		dt->idle->prev = ki;
	dt->idle = ki;
	ki->all_prev = r->idle_new;
	if (r->idle_new != NULL)
		r->idle_new->all_next = ki;
	else
		r->idle_old = ki;
	r->idle_new = ki;
	dt->n_conns++;
	r->n_active++;
	if (r->stopping || ki->msgs >= RELAY_SESSION_MSGS_MAX) {
		relay_idle_quit(ki, r->stopping ? "stopping" :
		    "message limit of the session reached");
		return;
	}
	uv_timer_start(&ki->timer, relay_idle_timer_cb, RELAY_IDLE_MS, 0);
}

bool
relay_pool_take(struct relay *r, struct relay_dlv *d)
{
	struct relay_idle *ki = d->dest->idle;

	if (ki == NULL || r->stopping)
		return false;
	relay_idle_unpool(ki);
	uv_timer_stop(&ki->timer);
	relay_dlv_adopt(d, ki);
	ki->conn = NULL;
	relay_idle_release(ki);
	return true;
}

bool
relay_pool_room(struct relay *r, struct relay_dlv *d)
{
	if (d->dest->n_conns >= r->cfg->relay.connections_per_domain)
		return false;
	if (r->n_active < RELAY_CONNS_MAX)
		return true;
	/* All taken: the oldest kept session of another destination makes
	 * room (it stops counting as it says QUIT). */
	if (r->idle_old != NULL && r->idle_old->dest != d->dest)
		relay_idle_quit(r->idle_old, "room for another destination");
	return r->n_active < RELAY_CONNS_MAX;
}

void
relay_pool_stop(struct relay *r)
{
	while (r->idle_old != NULL)
		relay_idle_quit(r->idle_old, "stopping");
}

/* --- Failed hosts ------------------------------------------------------ */

static struct relay_host **
relay_host_find(struct relay *r, const char *key)
{
	struct relay_host **pp;

	for (pp = &r->hosts[relay_pool_hash(key)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

/* Drops the hosts whose time is up (when the table is full). */
static void
relay_host_prune(struct relay *r, int64_t now)
{
	struct relay_host **pp, *h;
	size_t i;

	for (i = 0; i < RELAY_BUCKETS; i++) {
		for (pp = &r->hosts[i]; (h = *pp) != NULL; ) {
			if (h->until <= now) {
				*pp = h->next;
				free(h);
				r->n_hosts--;
			} else {
				pp = &h->next;
			}
		}
	}
}

void
relay_host_failed(struct relay *r, const char *key, const char *why)
{
	struct relay_host **pp = relay_host_find(r, key), *h = *pp;
	int64_t now = relay_now(), wait;

	if (h == NULL) {
		if (r->n_hosts >= RELAY_HOSTS_MAX)
			relay_host_prune(r, now);
		if (r->n_hosts >= RELAY_HOSTS_MAX)
			return;
		h = xcalloc(1, sizeof(*h));
		snprintf(h->key, sizeof(h->key), "%s", key);
		*relay_host_find(r, key) = h;
		r->n_hosts++;
	}
	wait = RELAY_HOST_BACKOFF;
	for (unsigned i = 1; i < h->fails && wait < RELAY_HOST_BACKOFF_MAX;
	    i++)
		wait *= 2;
	if (wait > RELAY_HOST_BACKOFF_MAX)
		wait = RELAY_HOST_BACKOFF_MAX;
	h->fails++;
	h->until = now + wait;
	snprintf(h->why, sizeof(h->why), "%s", why);
	log_info(NULL, "relay host=%s status=backoff fails=%u seconds=%lld",
	    key, h->fails, (long long)wait);
}

void
relay_host_ok(struct relay *r, const char *key)
{
	struct relay_host **pp = relay_host_find(r, key), *h = *pp;

	if (h == NULL)
		return;
	*pp = h->next;
	free(h);
	r->n_hosts--;
}

int64_t
relay_host_backed_off(struct relay *r, const char *key, const char **why_r)
{
	struct relay_host *h = *relay_host_find(r, key);

	if (h == NULL || h->until <= relay_now())
		return 0;
	*why_r = h->why;
	return h->until;
}

void
relay_host_forget(struct relay *r)
{
	relay_pool_free(r);
}

void
relay_pool_free(struct relay *r)
{
	struct relay_host *h;
	size_t i;

	for (i = 0; i < RELAY_BUCKETS; i++) {
		while ((h = r->hosts[i]) != NULL) {
			r->hosts[i] = h->next;
			free(h);
		}
	}
	r->n_hosts = 0;
}
