/*
 * test_store_queue.c - the outbound queue: administration (list, del,
 * flush) and the runner's side (due, body, and an attempt settled in one
 * transaction: recipients done, failed with their bounce, retry).
 */
#include <ctype.h>
#include <time.h>

#include "test_store_util.c"

struct t_qlist {
	int n;
	int64_t id[8];
	char msgid[8][STORE_ID_LEN + 1];
	int attempts[8];
	int64_t next[8];
	char last_error[8][64];
	char rcpts[8][256];
};

static int
t_qlist_cb(void *ctx, const struct store_queue_item *q)
{
	struct t_qlist *l = ctx;
	int i = l->n++;

	if (i >= 8)
		return -1;
	l->id[i] = q->id;
	snprintf(l->msgid[i], sizeof(l->msgid[i]), "%s", q->msgid);
	l->attempts[i] = q->attempts;
	l->next[i] = q->next_attempt;
	snprintf(l->last_error[i], sizeof(l->last_error[i]), "%s",
	    q->last_error);
	l->rcpts[i][0] = '\0';
	for (size_t j = 0; j < q->n_rcpts; j++) {
		strcat(l->rcpts[i], q->rcpts[j]);
		strcat(l->rcpts[i], ";");
	}
	return 0;
}

/* An attempt that delivered done[0..n_done) and retries the rest. */
static int
t_settle(struct store *st, int64_t qid, const int64_t *done, size_t n_done,
    int64_t next, const char *last_error, struct pr_err *err)
{
	struct store_settle s = {
		.queue_id = qid, .done = done, .n_done = n_done,
		.next_attempt = next, .last_error = last_error,
	};

	return store_queue_settle(st, &s, err);
}

static struct t_qlist
t_qlist(struct store *st)
{
	struct t_qlist l;
	struct pr_err err = { 0 };

	memset(&l, 0, sizeof(l));
	if (store_queue_list(st, t_qlist_cb, &l, &err) < 0)
		l.n = -1;
	return l;
}

/* A bounce message from the null sender to users[]/remote[]. */
static struct store_msg
t_bounce(const int64_t *users, size_t n_users, const char *const *remote,
    size_t n_remote)
{
	struct store_msg m = {
		.sender = "",
		.users = users, .n_users = n_users,
		.remote = remote, .n_remote = n_remote,
		.body = (const uint8_t *)"Subject: failed\r\n\r\nsorry\r\n",
		.body_len = 26, .body_fd = -1,
	};

	return m;
}

/* The attempt with bounces: the bounce and the recipients it reports
 * leave together, or neither does. */
static void
t_settle_bounces(struct store *st, int64_t alice)
{
	const char *remote[] = { "r0@far.example", "r1@far.example",
	    "r2@far.example", "r3@far.example" };
	const char *sender[] = { "sender@remote.example" };
	const char *bad[] = { "no-at-sign" };
	struct pr_err err = { 0 };
	struct store_queue_job *jobs;
	struct store_msg b1, b2, *bs[2];
	struct store_settle s;
	struct t_qlist l;
	int64_t tiny, ids[2], now = (int64_t)time(NULL);
	char sql[128];
	size_t n;

	tiny = t_add_user(st, "tiny@example.org", 10);
	snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM mailbox WHERE user_id = %lld",
	    (long long)alice);
	TAP_EQ_INT(t_deliver(st, NULL, 0, remote, 4, "", "Subject: x\r\n\r\n",
	    NULL), 0, "an entry with four recipients");
	TAP_EQ_INT(store_queue_due(st, now + 5, 10, &jobs, &n, &err), 0,
	    "due");
	TAP_OK(n == 1 && jobs[0].n_rcpts == 4, "four recipients due");

	/* A listed recipient that is not there: nothing changes, the
	 * bounce is not stored either. */
	b1 = t_bounce(&alice, 1, NULL, 0);
	bs[0] = &b1;
	ids[0] = jobs[0].rcpts[1].id;
	ids[1] = 987654;
	memset(&s, 0, sizeof(s));
	s.queue_id = jobs[0].id;
	s.failed = ids;
	s.n_failed = 2;
	s.bounce = bs;
	s.n_bounce = 1;
	T_FAILS_CLEAN(st, store_queue_settle(st, &s, &err), PR_ENOENT,
	    "settle with an unknown failed recipient");
	TAP_EQ_INT(b1.status, PR_ENOENT, "the bounce carries the error");

	/* r0 delivered, r1 failed: its bounce to alice and to the remote
	 * sender, r2 and r3 retried. */
	b1 = t_bounce(&alice, 1, NULL, 0);
	b2 = t_bounce(NULL, 0, sender, 1);
	bs[0] = &b1;
	bs[1] = &b2;
	memset(&s, 0, sizeof(s));
	s.queue_id = jobs[0].id;
	s.done = &jobs[0].rcpts[0].id;
	s.n_done = 1;
	s.failed = &jobs[0].rcpts[1].id;
	s.n_failed = 1;
	s.bounce = bs;
	s.n_bounce = 2;
	s.next_attempt = now + 300;
	s.last_error = "451 later";
	TAP_EQ_INT(store_queue_settle(st, &s, &err), 0, "settle (%s)",
	    err.msg);
	TAP_OK(b1.status == 0 && b2.status == 0 && b1.id[0] && b2.id[0],
	    "both bounce copies stored");
	TAP_OK(!s.failed_kept, "failed recipients not kept");
	TAP_EQ_INT(t_int(sql), 1, "the bounce is in alice's mailbox");
	l = t_qlist(st);
	TAP_EQ_INT(l.n, 2, "the entry and the remote bounce");
	TAP_EQ_STR(l.rcpts[0], "r2@far.example;r3@far.example;",
	    "delivered and failed recipients left together");
	TAP_EQ_INT(l.attempts[0], 1, "attempt counted");
	TAP_EQ_INT(l.next[0], now + 300, "next attempt");
	TAP_EQ_STR(l.last_error[0], "451 later", "last error");
	TAP_EQ_STR(l.rcpts[1], "sender@remote.example;",
	    "the remote bounce is queued");
	/* By the "queued as" id admins see, in any case. */
	{
		char upper[STORE_ID_LEN + 1];

		for (size_t i = 0; i <= STORE_ID_LEN; i++)
			upper[i] = (char)toupper((unsigned char)l.msgid[1][i]);
		T_FAILS_CLEAN(st, store_queue_del_msg(st, "12", &err),
		    PR_EINVAL, "queue del of a row number");
		T_FAILS_CLEAN(st, store_queue_del_msg(st, "0123456789abcdeg",
		    &err), PR_EINVAL, "queue del of a non-hex id");
		T_FAILS_CLEAN(st, store_queue_del_msg(st, "0000000000000000",
		    &err), PR_ENOENT, "queue del of an unknown id");
		TAP_EQ_STR(err.msg, "no queue entry 0000000000000000",
		    "unknown id message");
		TAP_EQ_INT(store_queue_del_msg(st, upper, &err), 0,
		    "drop the remote bounce");
		T_FAILS_CLEAN(st, store_queue_del_msg(st, l.msgid[1], &err),
		    PR_ENOENT, "queue del of that id again");
	}

	/* r2 failed, its bounce cannot be stored (one copy is malformed):
	 * both copies are taken back and r2 stays. */
	b1 = t_bounce(&alice, 1, NULL, 0);
	b2 = t_bounce(NULL, 0, bad, 1);
	memset(&s, 0, sizeof(s));
	s.queue_id = jobs[0].id;
	s.failed = &jobs[0].rcpts[2].id;
	s.n_failed = 1;
	s.bounce = bs;
	s.n_bounce = 2;
	s.next_attempt = now + 400;
	s.last_error = "451 later";
	TAP_EQ_INT(store_queue_settle(st, &s, &err), 0,
	    "settle with a bad bounce (%s)", err.msg);
	TAP_OK(s.failed_kept, "failed recipient kept");
	TAP_OK(b1.status == PR_EINVAL && b2.status == PR_EINVAL &&
	    b1.id[0] == '\0', "both copies report the failure");
	TAP_EQ_INT(t_int(sql), 1, "no second message for alice");
	l = t_qlist(st);
	TAP_EQ_INT(l.n, 1, "no remote bounce either");
	TAP_EQ_STR(l.rcpts[0], "r2@far.example;r3@far.example;",
	    "the failed recipient stays");
	TAP_EQ_INT(l.attempts[0], 2, "attempt counted");
	TAP_EQ_INT(l.next[0], now + 400, "retried");
	TAP_EQ_STR(l.last_error[0], "bounce could not be stored",
	    "last error says why");

	/* r2 and r3 failed, the sender's mailbox cannot take the bounce:
	 * it is dropped and the entry leaves with its last recipients. */
	b1 = t_bounce(&tiny, 1, NULL, 0);
	ids[0] = jobs[0].rcpts[2].id;
	ids[1] = jobs[0].rcpts[3].id;
	memset(&s, 0, sizeof(s));
	s.queue_id = jobs[0].id;
	s.failed = ids;
	s.n_failed = 2;
	s.bounce = bs;
	s.n_bounce = 1;
	s.next_attempt = now + 500;
	TAP_EQ_INT(store_queue_settle(st, &s, &err), 0,
	    "settle with a bounce over quota (%s)", err.msg);
	TAP_EQ_INT(b1.status, PR_ETOOBIG, "the bounce is too big for tiny");
	TAP_OK(!s.failed_kept, "failed recipients leave");
	l = t_qlist(st);
	TAP_EQ_INT(l.n, 0, "queue empty");
	TAP_EQ_INT(t_int("SELECT count(*) FROM queue_rcpt"), 0,
	    "no recipient rows");
	store_queue_jobs_free(jobs, n);
}

/* Claims: two connections (two processes) asking for the same due
 * entries get disjoint sets; a claim ends with the attempt's settle, with
 * store_queue_unclaim_all, or when its lease runs out. */
#define T_CLAIM_N 40

static void
t_claims(struct store *st)
{
	const char *to[] = { "claim@far.example" };
	struct store_queue_job *ja, *jb, *jc;
	struct store *st2 = NULL;
	struct pr_err err = { 0 };
	int64_t now = (int64_t)time(NULL), seen[T_CLAIM_N], deferred;
	size_t na, nb, nc, n_seen = 0;
	int fds[2], status, dup = 0, ok = 0;
	pid_t pids[2];

	for (int i = 0; i < T_CLAIM_N; i++)
		t_deliver(st, NULL, 0, to, 1, "", "Subject: c\r\n\r\n", NULL);
	TAP_EQ_INT(store_open(t_data, 0, &st2, &err), 0, "a second "
	    "connection");
	TAP_EQ_INT(store_queue_due(st, now + 5, 15, &ja, &na, &err), 0,
	    "first connection claims");
	TAP_EQ_INT(store_queue_due(st2, now + 5, 100, &jb, &nb, &err), 0,
	    "second connection claims");
	TAP_EQ_INT(na + nb, T_CLAIM_N, "%zu + %zu: every entry claimed once",
	    na, nb);
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (ja[i].id == jb[j].id)
				dup++;
	TAP_EQ_INT(dup, 0, "the two sets are disjoint");
	TAP_EQ_INT(store_queue_due(st, now + 5, 100, &jc, &nc, &err), 0,
	    "asking again");
	TAP_EQ_INT(nc, 0, "claimed entries are not due to anyone");
	store_queue_jobs_free(jc, nc);

	/* A settled attempt releases its claim: due again when scheduled. */
	deferred = ja[0].id;
	TAP_EQ_INT(t_settle(st, deferred, NULL, 0, now + 600, "451 later",
	    &err), 0, "an attempt deferred");
	TAP_EQ_INT(store_queue_due(st2, now + 5, 100, &jc, &nc, &err), 0,
	    "due before its next attempt");
	TAP_EQ_INT(nc, 0, "... nothing");
	store_queue_jobs_free(jc, nc);
	TAP_EQ_INT(store_queue_due(st2, now + 601, 100, &jc, &nc, &err), 0,
	    "due at its next attempt");
	TAP_OK(nc == 1 && jc[0].id == deferred, "the deferred entry is "
	    "due again, to either connection");
	store_queue_jobs_free(jc, nc);

	/* A runner that crashed: its lease runs out. */
	TAP_EQ_INT(store_queue_due(st2, now + STORE_QUEUE_LEASE - 1, 100, &jc,
	    &nc, &err), 0, "before the lease ends");
	TAP_EQ_INT(nc, 0, "... nothing");
	store_queue_jobs_free(jc, nc);
	TAP_EQ_INT(store_queue_due(st2, now + STORE_QUEUE_LEASE + 10, 100,
	    &jc, &nc, &err), 0, "after the lease ends");
	TAP_EQ_INT(nc, T_CLAIM_N - 1, "... every entry is due again but the "
	    "one claimed later");
	store_queue_jobs_free(jc, nc);
	TAP_EQ_INT(store_queue_unclaim_all(st, &err), 0, "unclaim all");
	TAP_EQ_INT(store_queue_due(st, now + 5, 100, &jc, &nc, &err), 0,
	    "due after unclaim all");
	TAP_EQ_INT(nc, T_CLAIM_N - 1, "every entry but the deferred one");
	store_queue_jobs_free(jc, nc);
	TAP_EQ_INT(store_queue_unclaim_all(st, &err), 0, "unclaim all again");
	store_queue_jobs_free(ja, na);
	store_queue_jobs_free(jb, nb);
	store_close(&st2);

	/* Two processes racing, one entry at a time. */
	if (pipe(fds) < 0)
		return;
	fflush(stdout);
	for (int p = 0; p < 2; p++) {
		if ((pids[p] = fork()) == 0) {
			struct store *cst = NULL;
			struct store_queue_job *j;
			size_t n;

			close(fds[0]);
			if (store_open(t_data, 0, &cst, &err) < 0)
				_exit(1);
			while (store_queue_due(cst, now + 5, 1, &j, &n,
			    &err) == 0 && n == 1) {
				if (write(fds[1], &j[0].id, sizeof(j[0].id)) !=
				    sizeof(j[0].id))
					_exit(1);
				store_queue_jobs_free(j, n);
			}
			store_close(&cst);
			_exit(err.code != 0 ? 1 : 0);
		}
	}
	close(fds[1]);
	for (;;) {
		int64_t id;

		if (read(fds[0], &id, sizeof(id)) != sizeof(id))
			break;
		for (size_t i = 0; i < n_seen; i++)
			if (seen[i] == id)
				dup++;
		if (n_seen < T_CLAIM_N)
			seen[n_seen++] = id;
	}
	close(fds[0]);
	for (int p = 0; p < 2; p++)
		if (waitpid(pids[p], &status, 0) == pids[p] &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	TAP_EQ_INT(ok, 2, "two racing claimants had no error");
	TAP_EQ_INT(dup, 0, "no entry claimed twice");
	TAP_EQ_INT(n_seen, T_CLAIM_N - 1, "every due entry claimed");

	/* Leave the queue empty for what follows. */
	seen[n_seen < T_CLAIM_N ? n_seen++ : 0] = deferred;
	for (size_t i = 0; i < n_seen; i++)
		if (store_queue_del(st, seen[i], &err) == 0)
			ok++;
	TAP_EQ_INT(ok, 2 + T_CLAIM_N, "queue emptied");
}

int
main(void)
{
	struct store *st;
	struct pr_err err = { 0 };
	struct store_queue_job *jobs;
	struct store_body *b;
	struct t_qlist l;
	const char *remote[] = { "Dave@Far.Example", "erin@far.example",
	    "Dave@Far.Example", "frank@other.example" };
	const char *body = "Subject: out\r\n\r\nbound\r\n";
	const char *head = "DKIM-Signature: x\r\n";
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1], buf[128];
	int64_t alice, when, size, now = (int64_t)time(NULL);
	size_t n;

	t_setup("store-queue");
	st = t_open();
	store_domain_add(st, "example.org", &err);
	alice = t_add_user(st, "alice@example.org", 0);

	TAP_EQ_INT(store_queue_next_due(st, &when, &err), 0, "next due");
	TAP_EQ_INT(when, 0, "empty queue: 0");
	TAP_EQ_INT(store_queue_due(st, now, 10, &jobs, &n, &err), 0, "due");
	TAP_OK(n == 0 && jobs == NULL, "empty queue: no jobs");

	/* One message to a local user and three distinct remotes. */
	TAP_EQ_INT(t_deliver(st, &alice, 1, remote, 4, head, body, id), 0,
	    "deliver local + remote");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 1,
	    "one body for the mailbox and the queue");
	l = t_qlist(st);
	TAP_EQ_INT(l.n, 1, "one queue entry");
	TAP_EQ_STR(l.msgid[0], id, "queue entry carries the message id");
	TAP_EQ_STR(l.rcpts[0], "Dave@Far.Example;erin@far.example;"
	    "frank@other.example;", "recipients deduplicated, as written");
	TAP_EQ_INT(l.attempts[0], 0, "no attempts yet");
	TAP_EQ_STR(l.last_error[0], "", "no error yet");
	TAP_OK(l.next[0] >= now && l.next[0] <= now + 5, "due now");

	TAP_EQ_INT(t_deliver(st, NULL, 0, remote + 3, 1, "", body, id2), 0,
	    "deliver remote only");
	{
		const char *bad[] = { "no-at-sign" };

		T_FAILS_CLEAN(st, t_deliver(st, NULL, 0, bad, 1, "", body,
		    NULL), PR_EINVAL, "remote recipient without a domain");
	}
	TAP_EQ_INT(store_queue_next_due(st, &when, &err), 0, "next due");
	TAP_OK(when >= now && when <= now + 5, "next due is now");

	TAP_EQ_INT(store_queue_due(st, now + 5, 1, &jobs, &n, &err), 0,
	    "due, at most 1");
	TAP_EQ_INT(n, 1, "max respected");
	TAP_EQ_STR(jobs[0].msgid, id, "oldest first");
	TAP_EQ_STR(jobs[0].sender, "sender@remote.example", "sender");
	TAP_EQ_INT(jobs[0].size, (int64_t)(strlen(head) + strlen(body)),
	    "size is head + body");
	TAP_EQ_INT(jobs[0].n_rcpts, 3, "three recipients");
	TAP_EQ_STR(jobs[0].rcpts[1].address, "erin@far.example",
	    "recipient address");
	TAP_OK(jobs[0].rcpts[0].id > 0 && jobs[0].rcpts[0].id !=
	    jobs[0].rcpts[1].id, "recipient ids");

	/* The runner streams the body. */
	TAP_EQ_INT(store_queue_body_open(st, jobs[0].id, &b, &size, &err), 0,
	    "queue body open");
	TAP_EQ_INT(size, jobs[0].size, "queue body size");
	TAP_EQ_INT(store_body_read(b, 0, (uint8_t *)buf, sizeof(buf)), size,
	    "queue body read");
	TAP_OK(memcmp(buf, head, strlen(head)) == 0 &&
	    memcmp(buf + strlen(head), body, strlen(body)) == 0,
	    "queue body content");
	store_body_close(&b);
	TAP_EQ_INT(store_queue_body_open(st, 987654, &b, &size, &err),
	    PR_ENOENT, "body of an unknown queue entry");

	/* Dave delivered, the rest deferred. */
	TAP_EQ_INT(t_settle(st, jobs[0].id, &jobs[0].rcpts[0].id, 1, 0, NULL,
	    &err), 0, "one recipient done");
	T_FAILS_CLEAN(st, t_settle(st, jobs[0].id, &jobs[0].rcpts[0].id, 1,
	    0, NULL, &err), PR_ENOENT, "the same recipient again");
	T_FAILS_CLEAN(st, t_settle(st, jobs[0].id + 1, &jobs[0].rcpts[1].id,
	    1, 0, NULL, &err), PR_ENOENT, "a recipient of another entry");
	TAP_EQ_INT(t_settle(st, jobs[0].id, NULL, 0, now + 600,
	    "451 4.7.1 greylisted, try later", &err), 0, "retry later");
	l = t_qlist(st);
	TAP_EQ_INT(l.n, 2, "two entries");
	TAP_EQ_STR(l.rcpts[0], "erin@far.example;frank@other.example;",
	    "delivered recipient left the queue");
	TAP_EQ_INT(l.attempts[0], 1, "attempt counted");
	TAP_EQ_INT(l.next[0], now + 600, "next attempt recorded");
	TAP_EQ_STR(l.last_error[0], "451 4.7.1 greylisted, try later",
	    "last error recorded");
	T_FAILS_CLEAN(st, t_settle(st, 987654, NULL, 0, now, "x", &err),
	    PR_ENOENT, "retry of an unknown entry");
	{
		char longerr[3000];

		memset(longerr, 'e', sizeof(longerr) - 1);
		longerr[sizeof(longerr) - 1] = '\0';
		TAP_EQ_INT(t_settle(st, jobs[0].id, NULL, 0, now + 600,
		    longerr, &err), 0, "retry with a huge error text");
		TAP_EQ_INT(t_int("SELECT max(length(last_error)) FROM queue"),
		    1000, "last error is bounded");
		t_settle(st, jobs[0].id, NULL, 0, now + 600, NULL, &err);
	}
	store_queue_jobs_free(jobs, n);

	TAP_EQ_INT(store_queue_due(st, now + 5, 10, &jobs, &n, &err), 0,
	    "due again");
	TAP_OK(n == 1 && strcmp(jobs[0].msgid, id2) == 0,
	    "the deferred entry is not due");
	store_queue_jobs_free(jobs, n);
	TAP_EQ_INT(store_queue_next_due(st, &when, &err), 0, "next due");
	TAP_OK(when <= now + 5, "next due is the other entry");

	/* The remote-only entry: deleting it drops its body. */
	TAP_EQ_INT(store_queue_del(st, l.id[1], &err), 0, "queue del");
	T_FAILS_CLEAN(st, store_queue_del(st, l.id[1], &err), PR_ENOENT,
	    "queue del again");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 1,
	    "its body went with it");
	TAP_EQ_INT(store_queue_next_due(st, &when, &err), 0, "next due");
	TAP_EQ_INT(when, now + 600, "next due is the deferred entry");

	TAP_EQ_INT(store_queue_flush(st, &err), 0, "flush");
	TAP_EQ_INT(store_queue_due(st, (int64_t)time(NULL), 10, &jobs, &n,
	    &err), 0, "due after flush");
	TAP_OK(n == 1 && strcmp(jobs[0].msgid, id) == 0 &&
	    jobs[0].attempts == 3 && jobs[0].n_rcpts == 2,
	    "flushed entry is due with its attempts and recipients");

	/* The last recipients: the entry leaves, the body stays for
	 * alice's mailbox. */
	TAP_EQ_INT(t_settle(st, jobs[0].id, &jobs[0].rcpts[0].id, 1, 0, NULL,
	    &err), 0, "second recipient done");
	TAP_EQ_INT(t_settle(st, jobs[0].id, &jobs[0].rcpts[1].id, 1,
	    now + 600, "ignored", &err), 0, "last recipient done");
	store_queue_jobs_free(jobs, n);
	l = t_qlist(st);
	TAP_EQ_INT(l.n, 0, "queue empty");
	TAP_EQ_INT(t_int("SELECT count(*) FROM queue_rcpt"), 0,
	    "no recipient rows");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 1,
	    "body kept for the local copy");
	{
		struct store_entry *e;

		store_maildrop_list(st, alice, &e, &n, &err);
		TAP_EQ_INT(n, 1, "local copy");
		store_maildrop_delete(st, alice, &e[0].id, 1, &err);
		free(e);
	}
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 0,
	    "body gone with the local copy");
	TAP_EQ_INT(store_queue_next_due(st, &when, &err), 0, "next due");
	TAP_EQ_INT(when, 0, "empty again");
	t_settle_bounces(st, alice);
	t_claims(st);
	TAP_EQ_INT(store_check(st, &err), 0, "check passes (%s)", err.msg);
	TAP_OK(store__idle(st), "idle after queue operations");
	t_check_plans(st);
	store_close(&st);
	return tap_done();
}
