/*
 * relay_tlsrpt.c - TLS results per policy domain (see relay_tlsrpt.h),
 * and the daily aggregate reports (RFC 8460 4 and 5.3).
 *
 * Counting: each result is added to a table in memory, on the loop, by
 * its key (UTC day, policy domain, policy type and string, result and,
 * for failures, the MX host, its address and the failure-reason-code).
 * The table holds RELAY_TLSRPT_KEYS_MAX keys at most; results of further
 * keys are counted as lost and said once per flush.  Every
 * RELAY_TLSRPT_FLUSH_MS, and when the relay stops, the table moves to
 * the store (store_tlsrpt_add) through the relay's store worker, so a
 * busy relay costs one transaction a minute and a clean stop loses
 * nothing.
 *
 * Reporting: after 00:00 UTC plus a random delay (so that not every
 * server on the Internet sends at midnight), once per day: the counts of
 * the day before are read, each policy domain's _smtp._tls record is
 * looked up on the daemon's resolver, and the reports (mailauth/tlsrpt.h)
 * are queued, from the null reverse-path, like any other mail: the relay
 * delivers and DKIM-signs them.  Each domain done is marked, and the day
 * once all are, so a restart or `postroom tlsrpt send` does not send a
 * report twice; a domain whose lookup failed (or whose report could not
 * be queued) is tried again RELAY_TLSRPT_RETRY_S later, alone.  Days
 * older than RELAY_TLSRPT_KEEP_DAYS are pruned.
 */
#include "relay_int.h"
#include "relay_tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dns.h"
#include "tlsrpt.h"
#include "tlsrpt_store.h"
#include "xmalloc.h"

#define RELAY_TLSRPT_KEYS_MAX 4096
#define RELAY_TLSRPT_BUCKETS 256
#define RELAY_TLSRPT_FLUSH_MS (60 * 1000)
/* The daily run is looked for this often; it starts within
 * RELAY_TLSRPT_DELAY_MAX seconds after 00:00 UTC. */
#define RELAY_TLSRPT_CHECK_MS (5 * 60 * 1000)
#define RELAY_TLSRPT_DELAY_MAX (60 * 60)
#define RELAY_TLSRPT_KEEP_DAYS 8
/* A day whose _smtp._tls lookups failed for some domains (or whose
 * reports could not be queued) is tried again this long after, for
 * those domains only, until the next day's run takes over. */
#define RELAY_TLSRPT_RETRY_S (60 * 60)
/* The longest policy string kept (an MTA-STS policy is at most 64 KiB
 * by RFC 8461 3.3, but a real one is a few lines). */
#define RELAY_TLSRPT_POLICY_MAX 4096

static const char *const relay_tlsrpt_results[] = {
	[RELAY_TLSRPT_SUCCESS] = "success",
	[RELAY_TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[RELAY_TLSRPT_CERTIFICATE_HOST_MISMATCH] = "certificate-host-mismatch",
	[RELAY_TLSRPT_CERTIFICATE_EXPIRED] = "certificate-expired",
	[RELAY_TLSRPT_CERTIFICATE_NOT_TRUSTED] = "certificate-not-trusted",
	[RELAY_TLSRPT_VALIDATION_FAILURE] = "validation-failure",
	[RELAY_TLSRPT_TLSA_INVALID] = "tlsa-invalid",
	[RELAY_TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
	[RELAY_TLSRPT_DANE_REQUIRED] = "dane-required",
	[RELAY_TLSRPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	[RELAY_TLSRPT_STS_POLICY_INVALID] = "sts-policy-invalid",
	[RELAY_TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

/* One key and its count; the strings follow the struct in one block. */
struct relay_tlsrpt_key {
	struct relay_tlsrpt_key *next;
	uint32_t hash;
	size_t len;                   /* of the key text in text[] */
	struct store_tlsrpt_count c;  /* strings into text[] */
	char text[];
};

enum relay_tlsrpt_stage {
	RELAY_TLSRPT_IDLE,
	RELAY_TLSRPT_READ,            /* store: sent?, counts, prune */
	RELAY_TLSRPT_LOOKUP,          /* _smtp._tls lookups */
	RELAY_TLSRPT_QUEUE,           /* store: queue the reports */
};

struct relay_tlsrpt {
	struct relay *r;
	struct resolver *res;
	struct relay_tlsrpt_key *b[RELAY_TLSRPT_BUCKETS];
	size_t n_keys;
	int64_t lost;                 /* results of keys beyond the cap */
	uv_timer_t flush_timer, daily_timer;
	unsigned handles;             /* timers not yet closed */
	bool stopping;

	/* The flush in flight. */
	struct relay_work fwork;
	bool flushing;
	struct relay_tlsrpt_key *flist;
	struct store_tlsrpt_count *fv;
	size_t fn;
	int fstatus;
	struct pr_err ferr;

	/* The daily run. */
	struct relay_work dwork;
	enum relay_tlsrpt_stage stage;
	int64_t delay;                /* seconds after 00:00 UTC */
	int64_t done_day;             /* the last day handled */
	int64_t day_n;                /* the day being handled */
	int64_t sent_at;
	int64_t retry_at;             /* 0, or when to try day_n again */
	size_t retry;                 /* domains left for that */
	struct tlsrpt_day day;
	struct tlsrpt_lookup *lookup;
	struct tlsrpt_msg *msgs;
	size_t n_msgs;
	char (*ids)[STORE_ID_LEN + 1];
	/* The looked-up domains whose report is done once the reports are
	 * queued (all but those whose lookup failed). */
	char (*done)[ADDR_DOMAIN_MAX + 1];
	size_t n_done;
	int *qstatus;
	struct pr_err *qerr;
	char from_domain[ADDR_DOMAIN_MAX + 1];
	int dstatus;
	struct pr_err derr;
};

const char *
relay_tlsrpt_result_name(enum relay_tlsrpt_result res)
{
	if ((unsigned)res >= sizeof(relay_tlsrpt_results) /
	    sizeof(relay_tlsrpt_results[0]))
		return "validation-failure";
	return relay_tlsrpt_results[res];
}

const char *
relay_tlsrpt_policy_name(enum relay_tlsrpt_policy type)
{
	switch (type) {
	case RELAY_TLSRPT_POLICY_STS:
		return "sts";
	case RELAY_TLSRPT_POLICY_TLSA:
		return "tlsa";
	default:
		return "no-policy-found";
	}
}

static void relay_tlsrpt_check_done(struct relay_tlsrpt *t);
static void relay_tlsrpt_flush(struct relay_tlsrpt *t);

/* --- Counting ---------------------------------------------------------- */

static uint32_t
relay_tlsrpt_hash(const char *p, size_t len)
{
	uint32_t h = 2166136261u;     /* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

/* The key of ev as
 * "day\0domain\0type\0string\0result\0mx\0ip\0sending ip\0reason\0"
 * into k (malloc'd). */
static char *
relay_tlsrpt_keytext(int64_t day, const struct relay_tlsrpt_event *ev,
    size_t *len_r)
{
	bool fail = ev->result != RELAY_TLSRPT_SUCCESS;
	/* A success needs no detail; TLSA policies are per MX host
	 * (RFC 7672 2.2), so their successes keep the host (mx-host). */
	bool host = fail || ev->policy_type == RELAY_TLSRPT_POLICY_TLSA;
	const char *f[9];
	char dbuf[24];
	size_t i, len = 0, fl[9];
	char *k;

	snprintf(dbuf, sizeof(dbuf), "%lld", (long long)day);
	f[0] = dbuf;
	f[1] = ev->policy_domain != NULL ? ev->policy_domain : "";
	f[2] = relay_tlsrpt_policy_name(ev->policy_type);
	f[3] = ev->policy_string != NULL ? ev->policy_string : "";
	f[4] = relay_tlsrpt_result_name(ev->result);
	f[5] = host && ev->mx_host != NULL ? ev->mx_host : "";
	f[6] = fail && ev->receiving_ip != NULL ? ev->receiving_ip : "";
	f[7] = fail && ev->sending_ip != NULL ? ev->sending_ip : "";
	f[8] = fail && ev->detail != NULL ? ev->detail : "";
	for (i = 0; i < 9; i++) {
		fl[i] = strlen(f[i]);
		if (i == 3 && fl[i] > RELAY_TLSRPT_POLICY_MAX)
			fl[i] = RELAY_TLSRPT_POLICY_MAX;
		if (i != 3 && fl[i] > 255)
			fl[i] = 255;
		len += fl[i] + 1;
	}
	k = xmalloc(len);
	for (i = 0, len = 0; i < 9; i++) {
		memcpy(k + len, f[i], fl[i]);
		len += fl[i];
		k[len++] = '\0';
	}
	*len_r = len;
	return k;
}

static void
relay_tlsrpt_count(struct relay_tlsrpt *t, const struct relay_tlsrpt_event *ev)
{
	struct relay_tlsrpt_key *k;
	const char *s[9];
	size_t len, i, off;
	uint32_t h;
	char *text;

	text = relay_tlsrpt_keytext(tlsrpt_day_of(relay_now()), ev, &len);
	h = relay_tlsrpt_hash(text, len);
	for (k = t->b[h % RELAY_TLSRPT_BUCKETS]; k != NULL; k = k->next)
		if (k->hash == h && k->len == len &&
		    memcmp(k->text, text, len) == 0) {
			k->c.count++;
			free(text);
			return;
		}
	if (t->n_keys >= RELAY_TLSRPT_KEYS_MAX) {
		t->lost++;
		free(text);
		return;
	}
	k = xmalloc(sizeof(*k) + len);
	k->hash = h;
	k->len = len;
	memcpy(k->text, text, len);
	free(text);
	for (i = 0, off = 0; i < 9; i++) {
		s[i] = k->text + off;
		off += strlen(s[i]) + 1;
	}
	k->c.day = strtoll(s[0], NULL, 10);
	k->c.domain = s[1];
	k->c.policy_type = s[2];
	k->c.policy_string = s[3];
	k->c.result = s[4];
	k->c.mx_host = s[5];
	k->c.receiving_ip = s[6];
	k->c.sending_ip = s[7];
	k->c.reason = s[8];
	k->c.count = 1;
	k->next = t->b[h % RELAY_TLSRPT_BUCKETS];
	t->b[h % RELAY_TLSRPT_BUCKETS] = k;
	t->n_keys++;
}

void
relay_tlsrpt_note(struct relay *r, const struct relay_tlsrpt_event *ev)
{
	enum log_level lvl = ev->result == RELAY_TLSRPT_SUCCESS ?
	    LOG_LVL_DEBUG : LOG_LVL_INFO;

	log_msg(lvl, NULL, "tlsrpt domain=%s policy=%s result=%s mx=%s ip=%s%s%s",
	    ev->policy_domain, relay_tlsrpt_policy_name(ev->policy_type),
	    relay_tlsrpt_result_name(ev->result),
	    ev->mx_host != NULL ? ev->mx_host : "-",
	    ev->receiving_ip != NULL ? ev->receiving_ip : "-",
	    ev->detail != NULL ? " detail=" : "",
	    ev->detail != NULL ? ev->detail : "");
	if (r == NULL || r->tlsrpt == NULL || ev->policy_domain == NULL ||
	    ev->policy_domain[0] == '\0')
		return;
	relay_tlsrpt_count(r->tlsrpt, ev);
	/* A session that ends while the relay stops: its count goes to
	 * the store before the relay is done. */
	if (r->tlsrpt->stopping)
		relay_tlsrpt_flush(r->tlsrpt);
}

/* --- Flushing to the store --------------------------------------------- */

static void
relay_tlsrpt_flush_run(struct relay_work *w, struct store *st)
{
	struct relay_tlsrpt *t = RELAY_CONTAINER(w, struct relay_tlsrpt,
	    fwork);

	pr_err_clear(&t->ferr);
	t->fstatus = store_tlsrpt_add(st, t->fv, t->fn, &t->ferr);
}

static void
relay_tlsrpt_flush_done(struct relay_work *w)
{
	struct relay_tlsrpt *t = RELAY_CONTAINER(w, struct relay_tlsrpt,
	    fwork);
	struct relay_tlsrpt_key *k, *next;
	int64_t total = 0;
	size_t i;

	for (i = 0; i < t->fn; i++)
		total += t->fv[i].count;
	if (t->fstatus < 0)
		log_err(NULL, "tlsrpt status=failed counts=%lld keys=%zu "
		    "reason=\"%s\"", (long long)total, t->fn, t->ferr.msg);
	else
		log_debug(NULL, "tlsrpt flushed counts=%lld keys=%zu",
		    (long long)total, t->fn);
	for (k = t->flist; k != NULL; k = next) {
		next = k->next;
		free(k);
	}
	free(t->fv);
	t->flist = NULL;
	t->fv = NULL;
	t->fn = 0;
	t->flushing = false;
	if (t->stopping)
		relay_tlsrpt_flush(t);
	relay_tlsrpt_check_done(t);
}

/* Moves the table to the store, unless a flush is in flight. */
static void
relay_tlsrpt_flush(struct relay_tlsrpt *t)
{
	struct relay_tlsrpt_key *k, *next;
	size_t i;

	if (t->lost > 0) {
		log_warn(NULL, "tlsrpt status=capped keys=%d lost=%lld",
		    RELAY_TLSRPT_KEYS_MAX, (long long)t->lost);
		t->lost = 0;
	}
	if (t->flushing || t->n_keys == 0)
		return;
	t->fv = xcalloc(t->n_keys, sizeof(*t->fv));
	t->fn = 0;
	t->flist = NULL;
	for (i = 0; i < RELAY_TLSRPT_BUCKETS; i++) {
		for (k = t->b[i]; k != NULL; k = next) {
			next = k->next;
			t->fv[t->fn++] = k->c;
			k->next = t->flist;
			t->flist = k;
		}
		t->b[i] = NULL;
	}
	t->n_keys = 0;
	t->flushing = true;
	relay_worker_submit(t->r->worker, &t->fwork, relay_tlsrpt_flush_run,
	    relay_tlsrpt_flush_done);
}

static void
relay_tlsrpt_flush_cb(uv_timer_t *h)
{
	relay_tlsrpt_flush(h->data);
}

/* --- The daily run ------------------------------------------------------ */

static void relay_tlsrpt_daily_end(struct relay_tlsrpt *t);

static void
relay_tlsrpt_read_run(struct relay_work *w, struct store *st)
{
	struct relay_tlsrpt *t = RELAY_CONTAINER(w, struct relay_tlsrpt,
	    dwork);
	int r;

	pr_err_clear(&t->derr);
	tlsrpt_day_init(&t->day, t->day_n);
	if ((r = store_tlsrpt_prune(st, t->day_n + 1 - RELAY_TLSRPT_KEEP_DAYS,
	    &t->derr)) < 0 ||
	    (r = store_tlsrpt_sent_get(st, t->day_n, &t->sent_at,
	    &t->derr)) < 0) {
		t->dstatus = r;
		return;
	}
	if (t->sent_at != 0) {
		t->dstatus = 0;
		return;
	}
	if ((r = store_tlsrpt_list_unsent(st, t->day_n, tlsrpt_store_day_cb,
	    &t->day, &t->derr)) < 0 && t->derr.msg[0] == '\0')
		pr_err_set(&t->derr, r, "too many counts");
	if (r >= 0)
		r = store_tlsrpt_host_domain(st, t->r->cfg->server.hostname,
		    t->from_domain, &t->derr);
	t->dstatus = r < 0 ? r : 0;
}

static void
relay_tlsrpt_queue_run(struct relay_work *w, struct store *st)
{
	struct relay_tlsrpt *t = RELAY_CONTAINER(w, struct relay_tlsrpt,
	    dwork);
	size_t i, k;
	int r = 0;

	for (i = 0; i < t->n_msgs; i++) {
		char key[ADDR_DOMAIN_MAX + 32];

		/* The key makes the report of a day and domain go out once,
		 * even when the mark below is lost (a crash between the two
		 * commits): the second try gets PR_EEXIST. */
		snprintf(key, sizeof(key), "tlsrpt/%lld/%s",
		    (long long)t->day_n, t->msgs[i].domain);
		pr_err_clear(&t->qerr[i]);
		t->qstatus[i] = store_tlsrpt_queue(st, t->msgs[i].rcptv,
		    t->msgs[i].n_rcpt, t->msgs[i].msg.p, t->msgs[i].msg.len,
		    key, t->ids[i], &t->qerr[i]);
	}
	pr_err_clear(&t->derr);
	/* Each domain is done once: its report queued (now or before), or
	 * none to send (no record, a bad one, too big, no recipient that
	 * exists).  A report that could not be queued for another reason
	 * is tried again with the failed lookups. */
	for (i = 0; i < t->n_done && r >= 0; i++) {
		for (k = 0; k < t->n_msgs; k++)
			if (t->qstatus[k] < 0 && t->qstatus[k] != PR_EEXIST &&
			    t->qstatus[k] != PR_ENOENT &&
			    strcmp(t->msgs[k].domain, t->done[i]) == 0)
				break;
		if (k < t->n_msgs)
			t->retry++;
		else
			r = store_tlsrpt_domain_sent_set(st, t->day_n,
			    t->done[i], relay_now(), &t->derr);
	}
	if (r >= 0 && t->retry == 0)
		r = store_tlsrpt_sent_set(st, t->day_n, relay_now(), &t->derr);
	t->dstatus = r < 0 ? r : 0;
}

static void
relay_tlsrpt_queue_done(struct relay_work *w)
{
	struct relay_tlsrpt *t = RELAY_CONTAINER(w, struct relay_tlsrpt,
	    dwork);
	char day[11];
	size_t i;

	tlsrpt_day_format(t->day_n, day);
	for (i = 0; i < t->n_msgs; i++) {
		if (t->qstatus[i] == PR_EEXIST)
			log_info(NULL, "tlsrpt report day=%s domain=%s "
			    "status=queued-before", day, t->msgs[i].domain);
		else if (t->qstatus[i] == PR_ENOENT)
			log_info(NULL, "tlsrpt report day=%s domain=%s "
			    "status=no-recipient reason=\"%s\"", day,
			    t->msgs[i].domain, t->qerr[i].msg);
		else if (t->qstatus[i] < 0)
			log_err(NULL, "tlsrpt report day=%s domain=%s "
			    "status=failed reason=\"%s\"", day,
			    t->msgs[i].domain, t->qerr[i].msg);
		else
			log_info(NULL, "tlsrpt report day=%s domain=%s "
			    "report_id=<%s> msgid=%s rcpt=<%s>%s "
			    "status=queued size=%zu", day, t->msgs[i].domain,
			    t->msgs[i].report_id, t->ids[i], t->msgs[i].rcpt[0],
			    t->msgs[i].n_rcpt > 1 ? " (and more)" : "",
			    t->msgs[i].msg.len);
	}
	if (t->dstatus < 0) {
		/* Not every 5 minutes: the keys keep a second try from
		 * queueing a report twice, but not from building it. */
		t->retry_at = relay_now() + RELAY_TLSRPT_RETRY_S;
		log_err(NULL, "tlsrpt day=%s status=failed reason=\"%s\"",
		    day, t->derr.msg);
	} else if (t->retry > 0) {
		t->retry_at = relay_now() + RELAY_TLSRPT_RETRY_S;
		log_warn(NULL, "tlsrpt day=%s unsent=%zu status=deferred "
		    "reason=\"tried again in %d minutes\"", day, t->retry,
		    RELAY_TLSRPT_RETRY_S / 60);
	} else {
		t->done_day = t->day_n;
		t->retry_at = 0;
	}
	if (t->n_msgs > 0 && !t->stopping)
		relay_sched_kick(t->r);
	relay_tlsrpt_daily_end(t);
}

static void
relay_tlsrpt_lookup_cb(void *data, const struct tlsrpt_dest *dests, size_t n)
{
	struct relay_tlsrpt *t = data;
	struct tlsrpt_sender_buf sb;
	unsigned char rnd[8];
	char nonce[17], day[11];
	size_t i, failed, again = 0;

	tlsrpt_day_format(t->day_n, day);
	t->done = xcalloc(n + 1, sizeof(*t->done));
	t->n_done = 0;
	t->retry = 0;
	for (i = 0; i < n; i++) {
		if (dests[i].status == PR_EAGAIN)
			again++;
		else
			snprintf(t->done[t->n_done++], sizeof(t->done[0]), "%s",
			    dests[i].domain);
		log_debug(NULL, "tlsrpt day=%s domain=%s rua=%s", day,
		    dests[i].domain, dests[i].status == 0 ? dests[i].rua[0] :
		    dests[i].status == PR_EAGAIN ? "temperror" : "none");
	}
	tlsrpt_sender_fill(&sb, t->r->cfg->server.hostname, t->from_domain,
	    t->r->cfg->server.postmaster);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(nonce, sizeof(nonce), rnd, sizeof(rnd));
	if (tlsrpt_day_build(&t->day, dests, &sb.who, relay_now(), nonce,
	    &t->msgs, &t->n_msgs, &failed) < 0)
		fatal("tlsrpt: out of memory");
	t->retry = again;
	if (failed > 0 || again > 0)
		log_warn(NULL, "tlsrpt day=%s unsent=%zu reason=\"%zu "
		    "reports too big, %zu _smtp._tls lookups failed\"", day,
		    failed + again, failed, again);
	/* The lookup is done with; its free may come from in here. */
	tlsrpt_lookup_free(&t->lookup);
	t->ids = xcalloc(t->n_msgs + 1, sizeof(*t->ids));
	t->qstatus = xcalloc(t->n_msgs + 1, sizeof(*t->qstatus));
	t->qerr = xcalloc(t->n_msgs + 1, sizeof(*t->qerr));
	t->stage = RELAY_TLSRPT_QUEUE;
	relay_worker_submit(t->r->worker, &t->dwork, relay_tlsrpt_queue_run,
	    relay_tlsrpt_queue_done);
}

static void
relay_tlsrpt_read_done(struct relay_work *w)
{
	struct relay_tlsrpt *t = RELAY_CONTAINER(w, struct relay_tlsrpt,
	    dwork);
	char day[11];

	tlsrpt_day_format(t->day_n, day);
	if (t->dstatus < 0) {
		log_err(NULL, "tlsrpt day=%s status=failed reason=\"%s\"",
		    day, t->derr.msg);
		relay_tlsrpt_daily_end(t);
		return;
	}
	if (t->sent_at != 0 || t->day.n_domains == 0 || t->stopping) {
		if (t->sent_at != 0 || t->day.n_domains == 0)
			t->done_day = t->day_n;
		log_debug(NULL, "tlsrpt day=%s domains=%zu%s", day,
		    t->day.n_domains, t->sent_at != 0 ? " sent=yes" : "");
		relay_tlsrpt_daily_end(t);
		return;
	}
	log_info(NULL, "tlsrpt day=%s domains=%zu status=reporting", day,
	    t->day.n_domains);
	t->stage = RELAY_TLSRPT_LOOKUP;
	if (tlsrpt_lookup_new(t->res, t->day.domains, t->day.n_domains,
	    relay_tlsrpt_lookup_cb, t, &t->lookup) < 0)
		fatal("tlsrpt: out of memory");
}

static void
relay_tlsrpt_daily_end(struct relay_tlsrpt *t)
{
	tlsrpt_lookup_free(&t->lookup);
	tlsrpt_msgs_free(&t->msgs, t->n_msgs);
	t->n_msgs = 0;
	free(t->ids);
	free(t->done);
	free(t->qstatus);
	free(t->qerr);
	t->done = NULL;
	t->n_done = 0;
	t->ids = NULL;
	t->qstatus = NULL;
	t->qerr = NULL;
	tlsrpt_day_fini(&t->day);
	t->stage = RELAY_TLSRPT_IDLE;
	relay_tlsrpt_check_done(t);
}

static void
relay_tlsrpt_daily_cb(uv_timer_t *h)
{
	struct relay_tlsrpt *t = h->data;
	int64_t now = relay_now(), today = tlsrpt_day_of(now);

	/* RFC 8460 4.1: a report covers one full UTC day, sent after
	 * it ends. */
	if (t->stage != RELAY_TLSRPT_IDLE || t->stopping ||
	    t->done_day >= today - 1 || now < today * 86400 + t->delay)
		return;
	/* A retry waits for its hour; the next day's run does not. */
	if (t->retry_at != 0 && t->day_n == today - 1 && now < t->retry_at)
		return;
	t->retry_at = 0;
	t->day_n = today - 1;
	t->sent_at = 0;
	t->stage = RELAY_TLSRPT_READ;
	relay_worker_submit(t->r->worker, &t->dwork, relay_tlsrpt_read_run,
	    relay_tlsrpt_read_done);
}

/* --- Life cycle ---------------------------------------------------------- */

void
relay_tlsrpt_start(struct relay *r, struct dns *dns)
{
	struct relay_tlsrpt *t = xcalloc(1, sizeof(*t));

	t->r = r;
	t->res = dns_resolver(dns);
	t->delay = (int64_t)randombytes_uniform(RELAY_TLSRPT_DELAY_MAX);
	t->done_day = -1;
	uv_timer_init(r->loop, &t->flush_timer);
	uv_timer_init(r->loop, &t->daily_timer);
	t->flush_timer.data = t;
	t->daily_timer.data = t;
	t->handles = 2;
	uv_timer_start(&t->flush_timer, relay_tlsrpt_flush_cb,
	    RELAY_TLSRPT_FLUSH_MS, RELAY_TLSRPT_FLUSH_MS);
	/* The first look soon after start: a server that was down at
	 * midnight sends yesterday's reports once it is back. */
	uv_timer_start(&t->daily_timer, relay_tlsrpt_daily_cb, 30 * 1000,
	    RELAY_TLSRPT_CHECK_MS);
	r->tlsrpt = t;
}

static void
relay_tlsrpt_close_cb(uv_handle_t *h)
{
	struct relay_tlsrpt *t = h->data;

	t->handles--;
	relay_tlsrpt_check_done(t);
}

static void
relay_tlsrpt_check_done(struct relay_tlsrpt *t)
{
	if (t->stopping)
		relay__check_stopped(t->r);
}

void
relay_tlsrpt_stop(struct relay *r)
{
	struct relay_tlsrpt *t = r->tlsrpt;

	if (t == NULL || t->stopping)
		return;
	t->stopping = true;
	uv_close((uv_handle_t *)&t->flush_timer, relay_tlsrpt_close_cb);
	uv_close((uv_handle_t *)&t->daily_timer, relay_tlsrpt_close_cb);
	/* The lookups go (the resolver closes after the relay); a run in
	 * the store goes on to its end. */
	if (t->stage == RELAY_TLSRPT_LOOKUP)
		relay_tlsrpt_daily_end(t);
	relay_tlsrpt_flush(t);
}

bool
relay_tlsrpt_busy(const struct relay *r)
{
	const struct relay_tlsrpt *t = r->tlsrpt;

	return t != NULL && (t->handles > 0 || t->flushing ||
	    t->stage != RELAY_TLSRPT_IDLE || t->n_keys > 0);
}

/* After the relay stopped: counts noted after the last flush (a session
 * closing late) are flushed by the stop's own flush_done; what is left
 * now was never noted after it. */
void
relay_tlsrpt_free(struct relay *r)
{
	struct relay_tlsrpt *t = r->tlsrpt;
	struct relay_tlsrpt_key *k, *next;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < RELAY_TLSRPT_BUCKETS; i++)
		for (k = t->b[i]; k != NULL; k = next) {
			next = k->next;
			free(k);
		}
	free(t);
	r->tlsrpt = NULL;
}
