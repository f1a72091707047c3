/*
 * metrics.c - process-wide counters, gauges and one histogram, and their
 * Prometheus text (docs/LOGGING.md 6).
 */
#include "metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "err.h"

/* Label values per family at most; the rest count as "other". */
#define METRICS_LABELS_MAX 24

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics_family {
	const char *name;
	const char *help;
	enum metrics_type type;
	const char *label;          /* the label key, or NULL */
	unsigned daemons;
	const char *const *preset;  /* values shown at 0 from the start */
};

static const char *const metrics_results[] = { "ok", "failed", "in-use",
	NULL };
static const char *const metrics_relay_status[] = { "sent", "deferred",
	"bounced", NULL };
static const char *const metrics_listeners[] = { "smtp", "submission",
	"submissions", NULL };
static const char *const metrics_tls_versions[] = { "TLSv1.2", "TLSv1.3",
	"failed", NULL };
static const char *const metrics_dns_results[] = { "ok", "nxdomain",
	"servfail", "timeout", NULL };

#define S METRICS_SMTPD
#define P METRICS_POP3D
static const struct metrics_family metrics_families[METRICS__COUNT] = {
	[METRICS_SMTP_SESSIONS] = { "postroom_smtp_sessions_total",
	    "SMTP sessions accepted, by listener.", METRICS_COUNTER,
	    "listener", S, metrics_listeners },
	[METRICS_SMTP_SESSIONS_ACTIVE] = { "postroom_smtp_sessions",
	    "SMTP sessions open now.", METRICS_GAUGE, NULL, S, NULL },
	[METRICS_SMTP_ACCEPTED] = { "postroom_smtp_messages_accepted_total",
	    "Messages committed and acknowledged with 250.", METRICS_COUNTER,
	    NULL, S, NULL },
	[METRICS_SMTP_REFUSED] = { "postroom_smtp_refused_total",
	    "Commands and messages refused, by the check that refused them.",
	    METRICS_COUNTER, "reason", S, NULL },
	[METRICS_LOCAL_DELIVERIES] = { "postroom_local_deliveries_total",
	    "Messages stored into a local mailbox (one per mailbox).",
	    METRICS_COUNTER, NULL, S, NULL },
	[METRICS_RELAY_RCPTS] = { "postroom_relay_recipients_total",
	    "Outcomes of relay attempts per recipient, by status.",
	    METRICS_COUNTER, "status", S, metrics_relay_status },
	[METRICS_QUEUE_LENGTH] = { "postroom_queue_messages",
	    "Messages in the outbound queue.", METRICS_GAUGE, NULL, S, NULL },
	[METRICS_QUEUE_OLDEST] = { "postroom_queue_oldest_seconds",
	    "Age of the oldest message in the outbound queue (0: empty).",
	    METRICS_GAUGE, NULL, S, NULL },
	[METRICS_STORE_COMMIT] = { "postroom_store_commit_seconds",
	    "Time of one store commit (a group of deliveries, a settled "
	    "relay attempt, a POP3 QUIT).", METRICS_HISTOGRAM, NULL, S | P,
	    NULL },
	[METRICS_POP3_SESSIONS] = { "postroom_pop3_sessions_total",
	    "POP3 sessions accepted.", METRICS_COUNTER, NULL, P, NULL },
	[METRICS_POP3_SESSIONS_ACTIVE] = { "postroom_pop3_sessions",
	    "POP3 sessions open now.", METRICS_GAUGE, NULL, P, NULL },
	[METRICS_POP3_LOGINS] = { "postroom_pop3_logins_total",
	    "POP3 logins, by result.", METRICS_COUNTER, "result", P,
	    metrics_results },
	[METRICS_POP3_OCTETS] = { "postroom_pop3_retrieved_octets_total",
	    "Octets of messages sent by RETR and TOP.", METRICS_COUNTER, NULL,
	    P, NULL },
	[METRICS_AUTH_FAILURES] = { "postroom_auth_failures_total",
	    "Failed logins (wrong name or password), by protocol.",
	    METRICS_COUNTER, "protocol", S | P, NULL },
	[METRICS_TLS_HANDSHAKES] = { "postroom_tls_handshakes_total",
	    "TLS handshakes completed, by protocol version (\"failed\": "
	    "handshakes that failed).", METRICS_COUNTER, "version", S | P,
	    metrics_tls_versions },
	[METRICS_DNS_LOOKUPS] = { "postroom_dns_lookups_total",
	    "DNS lookups, by result.", METRICS_COUNTER, "result", S,
	    metrics_dns_results },
};
#undef S
#undef P

/* Histogram bounds in microseconds: 1 ms to 10 s. */
static const uint64_t metrics_bounds_us[] = { 1000, 2500, 5000, 10000,
	25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000 };
#define METRICS_BUCKETS \
	(sizeof(metrics_bounds_us) / sizeof(metrics_bounds_us[0]))

/* A slot's state: empty, being claimed (its label is being written), or
 * ready (label fixed for the life of the process). */
enum { METRICS_SLOT_EMPTY, METRICS_SLOT_CLAIMED, METRICS_SLOT_READY };
#define METRICS_LABEL_MAX 32

struct metrics_slot {
	atomic_int state;
	char label[METRICS_LABEL_MAX];
	atomic_uint_fast64_t n;
};

struct metrics_value {
	struct metrics_slot slot[METRICS_LABELS_MAX + 1]; /* last: "other" */
	atomic_int_fast64_t gauge;
	atomic_uint_fast64_t bucket[METRICS_BUCKETS];
	atomic_uint_fast64_t sum_us, count;
};

static struct metrics_value metrics_values[METRICS__COUNT];
static atomic_uint metrics_daemons;

void
metrics_init(unsigned daemon)
{
	atomic_store(&metrics_daemons, daemon);
	for (size_t i = 0; i < METRICS__COUNT; i++) {
		const char *const *p = metrics_families[i].preset;

		for (; p != NULL && *p != NULL; p++)
			metrics_add((enum metrics_id)i, *p, 0);
	}
	metrics_add(METRICS_AUTH_FAILURES, daemon & METRICS_SMTPD ? "smtp" :
	    "pop3", 0);
}

/* label as a label value: letters, digits, '.', '_', '-' (others as
 * '_'), cut to fit, so that it needs no escaping. */
static void
metrics_label_copy(char out[METRICS_LABEL_MAX], const char *label)
{
	size_t i;

	for (i = 0; label[i] != '\0' && i + 1 < METRICS_LABEL_MAX; i++) {
		char c = label[i];

		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ? c : '_';
	}
	out[i] = '\0';
}

/* The slot of label in family id: found, or claimed (compare and swap,
 * so that two threads never take one slot for two values). */
static struct metrics_slot *
metrics_slot(enum metrics_id id, const char *label)
{
	struct metrics_value *v = &metrics_values[id];
	char want[METRICS_LABEL_MAX];

	if (metrics_families[id].label == NULL || label == NULL)
		return &v->slot[0];
	metrics_label_copy(want, label);
	for (size_t i = 0; i < METRICS_LABELS_MAX; i++) {
		struct metrics_slot *sl = &v->slot[i];
		int st = atomic_load(&sl->state);

		if (st == METRICS_SLOT_EMPTY) {
			int empty = METRICS_SLOT_EMPTY;

			if (atomic_compare_exchange_strong(&sl->state, &empty,
			    METRICS_SLOT_CLAIMED)) {
				memcpy(sl->label, want, sizeof(want));
				atomic_store(&sl->state, METRICS_SLOT_READY);
				return sl;
			}
		}
		/* Another thread is writing this slot's label: a few
		 * instructions away. */
		while ((st = atomic_load(&sl->state)) == METRICS_SLOT_CLAIMED)
			;
		if (strcmp(sl->label, want) == 0)
			return sl;
	}
	return &v->slot[METRICS_LABELS_MAX];
}

void
metrics_add(enum metrics_id id, const char *label, uint64_t n)
{
	if ((unsigned)id >= METRICS__COUNT)
		return;
	atomic_fetch_add(&metrics_slot(id, label)->n, n);
}

void
metrics_set(enum metrics_id id, int64_t v)
{
	if ((unsigned)id < METRICS__COUNT)
		atomic_store(&metrics_values[id].gauge, v);
}

void
metrics_gauge_add(enum metrics_id id, int64_t delta)
{
	if ((unsigned)id < METRICS__COUNT)
		atomic_fetch_add(&metrics_values[id].gauge, delta);
}

void
metrics_observe_us(enum metrics_id id, uint64_t us)
{
	struct metrics_value *v;
	size_t i;

	if ((unsigned)id >= METRICS__COUNT)
		return;
	v = &metrics_values[id];
	/* Buckets count each observation once; render adds them up into
	 * the cumulative le= buckets of the text format. */
	for (i = 0; i < METRICS_BUCKETS && us > metrics_bounds_us[i]; i++)
		;
	if (i < METRICS_BUCKETS)
		atomic_fetch_add(&v->bucket[i], 1);
	atomic_fetch_add(&v->sum_us, us);
	atomic_fetch_add(&v->count, 1);
}

uint64_t
metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The text format's escapes for a HELP line or a label value. */
static int
metrics_escaped(struct buf *b, const char *s, bool quote)
{
	int r = 0;

	for (; *s != '\0' && r == 0; s++) {
		if (*s == '\\')
			r = buf_puts(b, "\\\\");
		else if (*s == '\n')
			r = buf_puts(b, "\\n");
		else if (quote && *s == '"')
			r = buf_puts(b, "\\\"");
		else
			r = buf_append(b, s, 1);
	}
	return r;
}

static int
metrics_render_one(struct buf *b, enum metrics_id id, int64_t now)
{
	const struct metrics_family *f = &metrics_families[id];
	struct metrics_value *v = &metrics_values[id];
	static const char *const types[] = { "counter", "gauge", "histogram" };
	uint64_t cum = 0, count, sum;
	int r;

	if ((r = buf_printf(b, "# HELP %s ", f->name)) < 0 ||
	    (r = metrics_escaped(b, f->help, false)) < 0 ||
	    (r = buf_printf(b, "\n# TYPE %s %s\n", f->name,
	    types[f->type])) < 0)
		return r;
	if (f->type == METRICS_GAUGE) {
		int64_t g = atomic_load(&v->gauge);

		if (id == METRICS_QUEUE_OLDEST)
			g = g > 0 && now > g ? now - g : 0;
		return buf_printf(b, "%s %lld\n", f->name, (long long)g);
	}
	if (f->type == METRICS_HISTOGRAM) {
		/* The buckets and the count move while they are read: +Inf
		 * is never shown below a finite bucket. */
		for (size_t i = 0; i < METRICS_BUCKETS; i++) {
			cum += atomic_load(&v->bucket[i]);
			if ((r = buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n",
			    f->name, (double)metrics_bounds_us[i] / 1e6,
			    (unsigned long long)cum)) < 0)
				return r;
		}
		count = atomic_load(&v->count);
		sum = atomic_load(&v->sum_us);
		if (count < cum)
			count = cum;
		return buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n"
		    "%s_sum %.6f\n%s_count %llu\n", f->name,
		    (unsigned long long)count, f->name, (double)sum / 1e6,
		    f->name, (unsigned long long)count);
	}
	if (f->label == NULL)
		return buf_printf(b, "%s %llu\n", f->name,
		    (unsigned long long)atomic_load(&v->slot[0].n));
	for (size_t i = 0; i <= METRICS_LABELS_MAX; i++) {
		struct metrics_slot *sl = &v->slot[i];
		const char *l = i < METRICS_LABELS_MAX ? sl->label : "other";
		uint64_t n = atomic_load(&sl->n);

		if ((i < METRICS_LABELS_MAX &&
		    atomic_load(&sl->state) != METRICS_SLOT_READY) ||
		    (i == METRICS_LABELS_MAX && n == 0))
			continue;
		if ((r = buf_printf(b, "%s{%s=\"", f->name, f->label)) < 0 ||
		    (r = metrics_escaped(b, l, true)) < 0 ||
		    (r = buf_printf(b, "\"} %llu\n",
		    (unsigned long long)n)) < 0)
			return r;
	}
	return 0;
}

int
metrics_render(struct buf *b, int64_t now)
{
	unsigned daemons = atomic_load(&metrics_daemons);
	int r;

	for (size_t i = 0; i < METRICS__COUNT; i++) {
		if ((metrics_families[i].daemons & daemons) == 0)
			continue;
		if ((r = metrics_render_one(b, (enum metrics_id)i, now)) < 0)
			return r;
	}
	return 0;
}
