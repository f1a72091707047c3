/*
 * test_store_greylist.c - greylisting triplets in the store: a new one
 * waits, a retry before the delay waits for the rest, one after it
 * passes and is remembered; an SPF-pass domain that passed before skips
 * the wait; expired rows are deleted; names compare without case.
 */
#include <time.h>

#include "test_store_util.c"

static struct store_greylist_req
t_req(const char *net, const char *snd, const char *rcpt, const char *dom,
    int64_t now)
{
	struct store_greylist_req q;

	memset(&q, 0, sizeof(q));
	q.net = net;
	q.sender = snd;
	q.rcpt = rcpt;
	q.spf_domain = dom;
	q.now = now;
	q.delay = 300;
	q.keep = 36 * 86400;
	q.retry_max = 2 * 86400;
	return q;
}

static int
t_grey(struct store *st, struct store_greylist_req q)
{
	struct pr_err err = { 0 };

	if (store_greylist_update(st, &q, 1, &err) < 0 || q.status < 0)
		return -1;
	return (int)q.result;
}

static int64_t
t_rows(const char *table)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char sql[256], path[1200];
	int64_t n = -1;

	snprintf(path, sizeof(path), "%s/mail.db", t_data);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &s, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			n = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return n;
}

/* 1 if the query plan of sql (an expiry of store_greylist.c) reads
 * an index only, 0 if it scans the table, -1 on error. */
static int
t_indexed(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char q[512], path[1200];
	int r = -1;

	snprintf(path, sizeof(path), "%s/mail.db", t_data);
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, q, -1, &s, NULL) ==
	    SQLITE_OK) {
		r = 1;
		while (sqlite3_step(s) == SQLITE_ROW)
			if (strncmp((const char *)sqlite3_column_text(s, 3),
			    "SCAN ", 5) == 0)
				r = 0;
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return r;
}

/* A flood of new triplets, one transaction: the table keeps the newest
 * STORE_GREY_PENDING_MAX pending ones and its count matches. */
static void
t_flood(struct store *st, int64_t t1)
{
	size_t i, n = STORE_GREY_PENDING_MAX + 10;
	struct store_greylist_req *q = calloc(n, sizeof(*q));
	char (*snd)[32] = calloc(n, sizeof(*snd));
	struct pr_err err = { 0 };
	char where[96];

	if (q == NULL || snd == NULL)
		abort();
	for (i = 0; i < n; i++) {
		snprintf(snd[i], sizeof(snd[i]), "s%zu@flood.test", i);
		q[i] = t_req("198.51.100.0/24", snd[i], "b@y.test", NULL,
		    t1 + (int64_t)i);
	}
	TAP_EQ_INT(store_greylist_update(st, q, n, &err), 0,
	    "a flood of new triplets");
	TAP_OK(q[n - 1].status == 0 && q[n - 1].result == STORE_GREY_WAIT,
	    "the last of them waits");
	TAP_EQ_INT(t_rows("greylist"), STORE_GREY_PENDING_MAX,
	    "pending triplets bounded");
	TAP_EQ_INT(t_rows("greylist WHERE sender = 's9@flood.test'"), 0,
	    "the oldest went");
	TAP_EQ_INT(t_rows("greylist WHERE sender = 's10@flood.test'"), 1,
	    "the newer stayed");
	/* One that passes leaves the count; a new one then needs no
	 * room. */
	q[n - 1].now = t1 + (int64_t)n + 300;
	TAP_EQ_INT(store_greylist_update(st, &q[n - 1], 1, &err), 0,
	    "retry");
	TAP_EQ_INT(q[n - 1].result, STORE_GREY_PASS, "a retry passes");
	TAP_EQ_INT(t_grey(st, t_req("198.51.100.0/24", "new@flood.test",
	    "b@y.test", NULL, t1 + (int64_t)n + 301)), STORE_GREY_WAIT,
	    "a new one waits");
	TAP_EQ_INT(t_rows("greylist WHERE sender = 's10@flood.test'"), 1,
	    "no pending one went for it");
	/* All the others retry and pass: STORE_GREY_PASSED_MAX passed;
	 * one more makes the one seen longest ago go. */
	for (i = 10; i < n - 1; i++)
		q[i].now = t1 + (int64_t)(n + 400 + i);
	TAP_EQ_INT(store_greylist_update(st, &q[10], n - 11, &err), 0,
	    "a flood of retries");
	TAP_EQ_INT(t_rows("greylist WHERE passed > 0"), STORE_GREY_PASSED_MAX,
	    "all passed");
	TAP_EQ_INT(t_grey(st, t_req("198.51.100.0/24", "new@flood.test",
	    "b@y.test", NULL, t1 + (int64_t)(2 * n + 500))), STORE_GREY_PASS,
	    "one more passes");
	TAP_EQ_INT(t_rows("greylist WHERE passed > 0"), STORE_GREY_PASSED_MAX,
	    "passed triplets bounded");
	snprintf(where, sizeof(where), "greylist WHERE sender = '%s'",
	    snd[n - 1]);
	TAP_EQ_INT(t_rows(where), 0, "the one seen longest ago went");
	TAP_EQ_INT(t_rows("greylist WHERE sender = 'new@flood.test'"), 1,
	    "the new one stayed");
	free(q);
	free(snd);
}

int
main(void)
{
	struct store *st;
	struct store_greylist_req q;
	struct pr_err err = { 0 };
	int64_t t0 = 1700000000;

	t_setup("store-greylist");
	st = t_open();
	TAP_EQ_INT(t_grey(st, t_req("192.0.2.0/24", "a@x.test", "b@y.test",
	    NULL, t0)), STORE_GREY_WAIT, "first attempt waits");
	q = t_req("192.0.2.0/24", "a@x.test", "b@y.test", NULL, t0 + 100);
	TAP_EQ_INT(store_greylist_update(st, &q, 1, &err), 0, "retry early");
	TAP_OK(q.result == STORE_GREY_WAIT && q.wait == 200,
	    "retry before the delay waits for the rest (%lld s)",
	    (long long)q.wait);
	TAP_EQ_INT(t_grey(st, t_req("192.0.2.0/24", "A@X.test", "b@Y.TEST",
	    NULL, t0 + 300)), STORE_GREY_PASS, "retry after the delay passes "
	    "(names without case)");
	TAP_EQ_INT(t_grey(st, t_req("192.0.2.0/24", "a@x.test", "b@y.test",
	    NULL, t0 + 30 * 86400)), STORE_GREY_PASS, "remembered after 30 "
	    "days");
	TAP_EQ_INT(t_grey(st, t_req("198.51.100.0/24", "a@x.test", "b@y.test",
	    NULL, t0 + 30 * 86400)), STORE_GREY_WAIT, "another network "
	    "waits");
	/* SPF pass for a domain that passed before. */
	TAP_EQ_INT(t_grey(st, t_req("203.0.113.0/24", "c@spf.test",
	    "b@y.test", "spf.test", t0)), STORE_GREY_WAIT, "spf domain: first "
	    "time waits");
	TAP_EQ_INT(t_grey(st, t_req("203.0.113.0/24", "c@spf.test",
	    "b@y.test", "spf.test", t0 + 400)), STORE_GREY_PASS, "spf domain: "
	    "passes after the delay");
	TAP_EQ_INT(t_grey(st, t_req("2001:db8:1:2::/64", "d@spf.test",
	    "e@y.test", "SPF.test", t0 + 500)), STORE_GREY_PASS, "spf domain "
	    "that passed: a new triplet passes at once");
	TAP_EQ_INT(t_grey(st, t_req("2001:db8:1:2::/64", "d@nospf.test",
	    "e@y.test", NULL, t0 + 500)), STORE_GREY_WAIT, "without SPF pass "
	    "it waits");
	/* Cleanup: 37 days later only what was seen since survives. */
	TAP_EQ_INT(t_grey(st, t_req("192.0.2.0/24", "new@x.test", "b@y.test",
	    NULL, t0 + 67 * 86400)), STORE_GREY_WAIT, "much later: new "
	    "triplet");
	TAP_EQ_INT(t_rows("greylist"), 1, "expired triplets deleted");
	TAP_EQ_INT(t_rows("greylist_domains"), 0, "expired domains deleted");
	/* The expiries run on every RCPT: they may not scan tables that
	 * remote clients fill. */
	TAP_EQ_INT(t_indexed("DELETE FROM greylist WHERE (passed > 0 AND"
	    " last <= ?1 - ?2) OR (passed = 0 AND first <= ?1 - ?3)"), 1,
	    "triplets expire by index");
	TAP_EQ_INT(t_indexed("DELETE FROM greylist_domains"
	    " WHERE last <= ?1 - ?2"), 1, "domains expire by index");
	t_flood(st, t0 + 100 * 86400);
	TAP_EQ_INT(t_rows("greylist_size WHERE pending ="
	    " (SELECT count(*) FROM greylist WHERE passed = 0) AND passed ="
	    " (SELECT count(*) FROM greylist WHERE passed > 0)"), 1,
	    "the counts match the rows");
	store_close(&st);
	return tap_done();
}
