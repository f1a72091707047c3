/*
 * test_metrics.c - the counters of common/metrics.c and their Prometheus
 * text: families per daemon, labels (copied, bounded, "other" past the
 * table), the histogram's cumulative buckets, counting from threads.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "tap.h"

#define T_THREADS 4
#define T_PER_THREAD 100000

static void *
t_count(void *arg)
{
	(void)arg;
	for (int i = 0; i < T_PER_THREAD; i++) {
		metrics_inc(METRICS_SMTP_ACCEPTED, NULL);
		metrics_inc(METRICS_SMTP_REFUSED, i % 2 ? "spf" : "dnsbl");
	}
	return NULL;
}

static bool
t_has(const struct buf *b, const char *line)
{
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	return memmem(b->p, b->len, want, strlen(want)) != NULL;
}

int
main(void)
{
	pthread_t th[T_THREADS];
	char label[64], line[256];
	struct buf b;
	int i;

	metrics_init(METRICS_SMTPD);
	for (i = 0; i < T_THREADS; i++)
		pthread_create(&th[i], NULL, t_count, NULL);
	for (i = 0; i < T_THREADS; i++)
		pthread_join(th[i], NULL);
	metrics_inc(METRICS_SMTP_REFUSED, "bad label\"\n");
	for (i = 0; i < 40; i++) {
		snprintf(label, sizeof(label), "r%d", i);
		metrics_inc(METRICS_SMTP_REFUSED, label);
	}
	metrics_observe_us(METRICS_STORE_COMMIT, 500);
	metrics_observe_us(METRICS_STORE_COMMIT, 3000);
	metrics_observe_us(METRICS_STORE_COMMIT, 60000000);
	metrics_set(METRICS_QUEUE_OLDEST, 1000);
	metrics_gauge_add(METRICS_SMTP_SESSIONS_ACTIVE, 2);
	metrics_gauge_add(METRICS_SMTP_SESSIONS_ACTIVE, -1);

	buf_init(&b, 1024 * 1024);
	TAP_EQ_INT(metrics_render(&b, 1060), 0, "rendered");
	snprintf(line, sizeof(line), "postroom_smtp_messages_accepted_total %d",
	    T_THREADS * T_PER_THREAD);
	TAP_OK(t_has(&b, line), "counted from %d threads", T_THREADS);
	snprintf(line, sizeof(line),
	    "postroom_smtp_refused_total{reason=\"spf\"} %d",
	    T_THREADS * T_PER_THREAD / 2);
	TAP_OK(t_has(&b, line), "a labelled counter");
	TAP_OK(t_has(&b, "postroom_smtp_refused_total{reason=\"bad_label__\"} 1"),
	    "a label value is made safe");
	TAP_OK(t_has(&b, "postroom_smtp_refused_total{reason=\"other\"} 19"),
	    "past 24 values: other");
	TAP_OK(t_has(&b, "postroom_relay_recipients_total{status=\"sent\"} 0"),
	    "preset values show at 0");
	TAP_OK(t_has(&b, "postroom_store_commit_seconds_bucket{le=\"0.001\"} 1") &&
	    t_has(&b, "postroom_store_commit_seconds_bucket{le=\"0.005\"} 2") &&
	    t_has(&b, "postroom_store_commit_seconds_bucket{le=\"10\"} 2") &&
	    t_has(&b, "postroom_store_commit_seconds_bucket{le=\"+Inf\"} 3") &&
	    t_has(&b, "postroom_store_commit_seconds_count 3"),
	    "histogram buckets are cumulative, +Inf is the count");
	TAP_OK(t_has(&b, "postroom_store_commit_seconds_sum 60.003500"),
	    "histogram sum in seconds");
	TAP_OK(t_has(&b, "postroom_queue_oldest_seconds 60"),
	    "oldest queued: an age");
	TAP_OK(t_has(&b, "postroom_smtp_sessions 1"), "a gauge moves");
	TAP_OK(t_has(&b, "# TYPE postroom_store_commit_seconds histogram"),
	    "TYPE lines");
	TAP_OK(memmem(b.p, b.len, "postroom_pop3_", 14) == NULL,
	    "smtpd shows no pop3 families");
	buf_fini(&b);
	return tap_done();
}
