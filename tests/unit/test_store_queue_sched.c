/*
 * test_store_queue_sched.c - the queue as the relay's scheduler reads it:
 * the scan of due entries goes by the next_attempt index and reads only
 * due rows, however many are queued for later; per-recipient state
 * (attempts, last reply) for `postroom queue list`; ETRN's flush by
 * domain (RFC 1985) by the queue_rcpt_domain index.
 */
#include <time.h>

#include "test_store_util.c"

#define T_MANY 20000
/* Rows 1..N in column value (Debian's SQLite has no generate_series). */
#define T_SERIES(N) "WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL" \
	" SELECT value + 1 FROM g WHERE value < " #N ") SELECT value FROM g"

struct t_rc {
	char rcpts[512];
	int attempts[4];
	char replies[4][64];
};

static int
t_rc_cb(void *ctx, const struct store_queue_item *q)
{
	struct t_rc *l = ctx;

	for (size_t j = 0; j < q->n_rcpts && j < 4; j++) {
		strcat(l->rcpts, q->rcpts[j]);
		strcat(l->rcpts, ";");
		l->attempts[j] = q->rcpt_attempts[j];
		snprintf(l->replies[j], sizeof(l->replies[j]), "%s",
		    q->rcpt_replies[j]);
	}
	return 0;
}

/* The plan of sql on the store's connection: 1 if every step searches
 * an index, 0 if one scans a table, -1 on error. */
static int
t_searches(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	char q[1024];
	int r = -1;

	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	if (sqlite3_prepare_v2(st->db, q, -1, &s, NULL) != SQLITE_OK)
		return -1;
	r = 1;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(s, 3);

		if (d != NULL && strncmp(d, "SCAN ", 5) == 0) {
			printf("# plan: %s\n", d);
			r = 0;
		}
	}
	sqlite3_finalize(s);
	return r;
}

/* How many rows of table the last statement run through st's cached
 * statement for sql visited, by SQLITE_STMTSTATUS_VM_STEP: a cheap
 * proxy for the rows read. */
static int
t_steps(struct store *st, const char *needle)
{
	sqlite3_stmt *s = NULL;

	while ((s = sqlite3_next_stmt(st->db, s)) != NULL) {
		const char *q = sqlite3_sql(s);

		if (q != NULL && strstr(q, needle) != NULL)
			return sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP,
			    1);
	}
	return -1;
}

int
main(void)
{
	struct store *st;
	struct pr_err err = { 0 };
	struct store_queue_job *jobs;
	struct t_rc l;
	const char *remote[] = { "a@Far.Example", "b@sub.far.example",
	    "c@other.example" };
	const char *body = "Subject: out\r\n\r\nbound\r\n";
	char id[STORE_ID_LEN + 1], sql[512];
	int64_t now = (int64_t)time(NULL), when;
	int steps_few, steps_many;
	size_t n;

	t_setup("store-queue-sched");
	st = t_open();

	TAP_EQ_INT(t_deliver(st, NULL, 0, remote, 3, "", body, id), 0,
	    "one message for three remote recipients");
	/* Ten more due now, for the scan to find among many. */
	TAP_EQ_INT(t_exec("INSERT INTO queue (msgid, body_id, sender,"
	    " created, next_attempt) SELECT printf('%016x', 100 + value),"
	    " (SELECT body_id FROM queue LIMIT 1), 's@x.test', 1, 1"
	    " FROM (" T_SERIES(10) ")"), 0, "ten due entries");

	/* The scan reads the due rows by the index, in due order. */
	TAP_EQ_INT(t_searches(st, "SELECT q.id, q.msgid, q.sender,"
	    " q.created, q.attempts, b.size FROM queue q JOIN bodies b"
	    " ON b.id = q.body_id WHERE q.next_attempt <= 1 AND"
	    " q.claimed_until <= 1 ORDER BY q.next_attempt, q.id LIMIT 5"), 1,
	    "due scan: an index search, no table scan, no sort");
	TAP_EQ_INT(t_searches(st, "SELECT min(next_attempt) FROM queue"), 1,
	    "next due: the index's first row");

	TAP_EQ_INT(store_queue_due(st, now + 5, 100, &jobs, &n, &err), 0,
	    "scan with few entries");
	TAP_EQ_INT(n, 11, "all eleven due");
	store_queue_jobs_free(jobs, n);
	t_exec("UPDATE queue SET claimed_until = 0");
	steps_few = t_steps(st, "q.next_attempt <= ?1");

	/* Many entries queued for later: the scan costs no more. */
	snprintf(sql, sizeof(sql), "INSERT INTO queue (msgid, body_id,"
	    " sender, created, next_attempt) SELECT printf('%%016x',"
	    " 1000 + value), (SELECT body_id FROM queue LIMIT 1),"
	    " 's@x.test', 1, %lld + value FROM (" T_SERIES(%d) ")",
	    (long long)now + 3600, T_MANY);
	TAP_EQ_INT(t_exec(sql), 0, "%d entries due in an hour", T_MANY);
	TAP_EQ_INT(store_queue_due(st, now + 5, 100, &jobs, &n, &err), 0,
	    "scan with many entries");
	TAP_EQ_INT(n, 11, "still the eleven due ones");
	store_queue_jobs_free(jobs, n);
	steps_many = t_steps(st, "q.next_attempt <= ?1");
	TAP_OK(steps_few > 0 && steps_many <= steps_few + 10,
	    "the scan reads only due rows (%d steps with 11, %d with %d "
	    "more)", steps_few, steps_many, T_MANY);
	TAP_EQ_INT(store_queue_next_due(st, &when, &err), 0, "next due");
	TAP_EQ_INT(when, 1, "earliest");
	t_exec("DELETE FROM queue WHERE sender = 's@x.test'");
	t_exec("UPDATE queue SET claimed_until = 0");

	/* Per-recipient state: the deferred recipients count their own
	 * attempts and keep their own reply. */
	TAP_EQ_INT(store_queue_due(st, now + 5, 1, &jobs, &n, &err), 0,
	    "take the first entry");
	if (n != 1 || jobs[0].n_rcpts != 3) {
		printf("Bail out! not the message's entry\n");
		return 1;
	}
	{
		int64_t dfr[] = { jobs[0].rcpts[0].id, jobs[0].rcpts[2].id };
		const char *why[] = { "451 4.7.1 greylisted",
		    "421 4.3.2 busy" };
		int64_t done = jobs[0].rcpts[1].id;
		struct store_settle s = {
			.queue_id = jobs[0].id, .done = &done, .n_done = 1,
			.next_attempt = now + 7200, .last_error = why[0],
			.deferred = dfr, .deferred_reply = why,
			.n_deferred = 2,
		};

		TAP_EQ_INT(store_queue_settle(st, &s, &err), 0,
		    "settle: one done, two deferred");
		s.n_deferred = 1;
		s.n_done = 0;
		TAP_EQ_INT(store_queue_settle(st, &s, &err), 0,
		    "settle again: one deferred");
	}
	store_queue_jobs_free(jobs, n);
	memset(&l, 0, sizeof(l));
	TAP_EQ_INT(store_queue_list(st, t_rc_cb, &l, &err), 0, "list");
	TAP_EQ_STR(l.rcpts, "a@Far.Example;c@other.example;",
	    "the delivered recipient left");
	TAP_EQ_INT(l.attempts[0], 2, "first recipient: two attempts");
	TAP_EQ_INT(l.attempts[1], 1, "second: one");
	TAP_EQ_STR(l.replies[0], "451 4.7.1 greylisted", "its last reply");
	TAP_EQ_STR(l.replies[1], "421 4.3.2 busy", "the other's");

	/* ETRN / queue flush DOMAIN. */
	TAP_EQ_INT(t_searches(st, "SELECT queue_id FROM queue_rcpt WHERE "
	    STORE_QRCPT_DOMAIN_EXPR " = 'far.example'"), 1,
	    "recipients of a domain: by the queue_rcpt_domain index");
	TAP_EQ_INT(store_queue_flush_domain(st, "nowhere.example", false, &n,
	    &err), 0, "flush an unknown domain");
	TAP_EQ_INT(n, 0, "nothing queued for it");
	TAP_EQ_INT(t_int("SELECT next_attempt FROM queue"), now + 7200,
	    "schedule unchanged");
	TAP_EQ_INT(store_queue_flush_domain(st, "example", false, &n, &err),
	    0, "flush a parent domain without @");
	TAP_EQ_INT(n, 0, "no subdomains without @");
	TAP_EQ_INT(store_queue_flush_domain(st, "far.example", false, &n,
	    &err), 0, "flush far.example (address in mixed case)");
	TAP_EQ_INT(n, 1, "one entry");
	TAP_OK(t_int("SELECT next_attempt FROM queue") <= (int64_t)time(NULL),
	    "due now");
	t_check_plans(st);
	t_exec("UPDATE queue SET next_attempt = next_attempt + 7200");
	TAP_EQ_INT(store_queue_flush_domain(st, "example", true, &n, &err),
	    0, "flush @example (subdomains)");
	TAP_EQ_INT(n, 1, "found below it");
	TAP_OK(t_int("SELECT next_attempt FROM queue") <= (int64_t)time(NULL),
	    "due now");
	TAP_EQ_INT(store_queue_flush_domain(st, "ther.example", true, &n,
	    &err), 0, "a suffix that is no parent domain");
	TAP_EQ_INT(n, 0, "matches no label boundary");

	store_close(&st);
	t_cleanup();
	return tap_done();
}
