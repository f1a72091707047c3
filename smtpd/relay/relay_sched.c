/*
 * relay_sched.c - when the runner works (see relay_int.h).
 *
 * The queue is scanned on the store thread for due entries: at start-up,
 * soon after a kick (new mail committed, a bounce queued), by the next
 * attempt of an entry just deferred, and at least every RELAY_POLL_MS so
 * that `postroom queue flush` from another process is noticed.  At most
 * RELAY_MSGS_MAX entries are worked on at once; their deliveries wait
 * here for a connection: a kept session of their destination, or a new
 * one within the limits of relay_pool.c.
 */
#include "relay_int.h"

#define RELAY_POLL_MS (10 * 1000)

static void relay_sched_later(struct relay *r, uint64_t ms);

/* --- Queue scan -------------------------------------------------------- */

static void
relay_sched_scan_run(struct relay_work *w, struct store *st)
{
	struct relay *r = RELAY_CONTAINER(w, struct relay, scan_work);

	pr_err_clear(&r->scan_err);
	r->scan_jobs = NULL;
	r->scan_n = 0;
	r->scan_next = 0;
	/* The one runner of this data_dir (the smtpd.pid lock): claims
	 * still held at its start are a crashed predecessor's. */
	if (!r->scan_unclaimed &&
	    store_queue_unclaim_all(st, &r->scan_err) == 0)
		r->scan_unclaimed = true;
	r->scan_status = store_queue_due(st, relay_now(), r->scan_max,
	    &r->scan_jobs, &r->scan_n, &r->scan_err);
	if (r->scan_status == 0)
		r->scan_status = store_queue_next_due(st, &r->scan_next,
		    &r->scan_err);
	relay_queue_gauges(st);
	/* After the due entries: a flush that made them due is seen. */
	if (r->scan_status == 0)
		r->scan_status = store_queue_flushed(st, &r->scan_flushed,
		    &r->scan_err);
}

static void
relay_sched_scan_done(struct relay_work *w)
{
	struct relay *r = RELAY_CONTAINER(w, struct relay, scan_work);
	int64_t now = relay_now();
	uint64_t delay = RELAY_POLL_MS;
	size_t i;

	r->scanning = false;
	if (r->scan_status < 0)
		log_err(NULL, "relay: queue scan: %s", r->scan_err.msg);
	if (r->scan_status == 0 && r->scan_flushed != r->flush_seen) {
		/* `postroom queue flush` or ETRN: try every host again, as
		 * Postfix's flush forgets its dead destinations. */
		if (r->flush_seen != 0 || r->n_hosts > 0)
			log_info(NULL, "relay: queue flushed; failed hosts "
			    "are tried again");
		relay_host_forget(r);
		r->flush_seen = r->scan_flushed;
	}
	for (i = 0; i < r->scan_n; i++) {
		if (r->stopping || relay_msg_in_flight(r, r->scan_jobs[i].id))
			continue;
		if (r->scan_jobs[i].n_rcpts == 0)
			continue;
		relay_msg_start(r, &r->scan_jobs[i]);
	}
	if (r->scan_jobs != NULL)
		store_queue_jobs_free(r->scan_jobs, r->scan_n);
	r->scan_jobs = NULL;
	if (r->scan_n >= r->scan_max)
		r->scan_capped = true;
	r->scan_n = 0;
	if (r->stopping) {
		relay__check_stopped(r);
		return;
	}
	if (r->rescan) {
		r->rescan = false;
		delay = 0;
	} else {
		if (r->scan_next > now &&
		    (uint64_t)(r->scan_next - now) * 1000 < delay)
			delay = (uint64_t)(r->scan_next - now) * 1000;
		if (r->scan_by > 0 && (r->scan_by <= now ||
		    (uint64_t)(r->scan_by - now) * 1000 < delay))
			delay = r->scan_by > now ?
			    (uint64_t)(r->scan_by - now) * 1000 : 0;
	}
	r->scan_by = 0;
	relay_sched_later(r, delay);
}

static void
relay_sched_scan_cb(uv_timer_t *t)
{
	struct relay *r = t->data;

	if (r->stopping || r->scanning)
		return;
	if (r->n_msgs >= RELAY_MSGS_MAX) {
		/* Full: a finished message kicks the next scan. */
		r->scan_capped = true;
		relay_sched_later(r, RELAY_POLL_MS);
		return;
	}
	r->scanning = true;
	/* Every entry the scan returns is claimed (store_queue_due), and
	 * in-flight ones are claimed already: ask for the free slots. */
	r->scan_max = RELAY_MSGS_MAX - r->n_msgs;
	relay_worker_submit(r->worker, &r->scan_work, relay_sched_scan_run,
	    relay_sched_scan_done);
}

static void
relay_sched_later(struct relay *r, uint64_t ms)
{
	if (!r->stopping)
		uv_timer_start(&r->scan_timer, relay_sched_scan_cb, ms,
		    0);
}

void
relay_sched_retry_at(struct relay *r, int64_t when)
{
	int64_t now = relay_now();
	uint64_t ms = when > now ? (uint64_t)(when - now) * 1000 : 0;

	if (r->stopping)
		return;
	if (r->scanning) {
		/* The scan in flight may have read the queue before this
		 * entry was deferred: its result is adjusted. */
		if (r->scan_by == 0 || when < r->scan_by)
			r->scan_by = when;
		return;
	}
	if (!uv_is_active((uv_handle_t *)&r->scan_timer) ||
	    uv_timer_get_due_in(&r->scan_timer) > ms)
		relay_sched_later(r, ms);
}

void
relay_sched_kick(struct relay *r)
{
	if (!r->enabled || r->stopping)
		return;
	if (r->scanning) {
		r->rescan = true;
		return;
	}
	relay_sched_later(r, 0);
}

/* --- Connection slots -------------------------------------------------- */

/*
 * Starts the waiting deliveries that may start, in the order they came:
 * on a kept session of their destination, or on a new connection while
 * the destination and the runner have room (relay_pool.c).  Others wait
 * on; a delivery that starts may end at once and pump again, which then
 * only asks this loop to look again.
 */
void
relay_sched_pump(struct relay *r)
{
	struct relay_dlv *d, **pp;

	if (r->pumping) {
		r->pump_again = true;
		return;
	}
	r->pumping = true;
	do {
		r->pump_again = false;
		for (pp = &r->wait_head; !r->stopping && (d = *pp) != NULL; ) {
			if (r->n_active >= RELAY_CONNS_MAX &&
			    r->idle_old == NULL)
				break;
			if (d->dest->idle == NULL && !relay_pool_room(r, d)) {
				pp = &d->next_wait;
				continue;
			}
			*pp = d->next_wait;
			if (*pp == NULL)
				r->wait_tail = pp;
			relay_dlv_start(d);
			if (r->pump_again)
				break;
		}
	} while (r->pump_again && !r->stopping);
	r->pumping = false;
}

void
relay_sched_enqueue(struct relay *r, struct relay_dlv *d)
{
	d->next_wait = NULL;
	*r->wait_tail = d;
	r->wait_tail = &d->next_wait;
}

void
relay_sched_msg_gone(struct relay *r)
{
	if (r->scan_capped) {
		/* There is room again for entries the last scan left. */
		r->scan_capped = false;
		relay_sched_kick(r);
	}
}

/* --- Start and stop ---------------------------------------------------- */

void
relay_sched_start(struct relay *r)
{
	relay_sched_later(r, 0);
}

static void
relay_sched_timer_closed(uv_handle_t *h)
{
	struct relay *r = h->data;

	r->timer_closed = true;
	relay__check_stopped(r);
}

void
relay_sched_stop(struct relay *r)
{
	struct relay_dlv *d;

	uv_timer_stop(&r->scan_timer);
	uv_close((uv_handle_t *)&r->scan_timer, relay_sched_timer_closed);
	/* Deliveries not started yet end at once; their entries stay
	 * queued for the next run. */
	while ((d = r->wait_head) != NULL) {
		r->wait_head = d->next_wait;
		relay_dlv_end(d);
	}
	r->wait_tail = &r->wait_head;
}
