/*
 * test_store_trace.c - the trace of each message (store_trace.c): the
 * events a delivery, a settled relay attempt and a POP3 session end
 * write in their own transactions, the lookups by id, Message-ID and
 * address, [server] trace_days 0, and expiry in bounded batches.
 */
#include <time.h>

#include "test_store_util.c"

struct t_events {
	char text[8192];
	size_t n;
};

static int
t_collect(void *ctx, const struct store_trace_event *ev)
{
	struct t_events *e = ctx;
	size_t len = strlen(e->text);

	snprintf(e->text + len, sizeof(e->text) - len, "%s %s|%s\n",
	    ev->event, ev->addr, ev->info);
	e->n++;
	return 0;
}

static int
t_find(struct store *st, const char *what, struct t_events *e)
{
	struct pr_err err = { 0 };

	memset(e, 0, sizeof(*e));
	return store_trace_find(st, what, 20, t_collect, e, &err);
}

/* Delivers body from sender to users and remote, returning its id. */
static void
t_deliver_tr(struct store *st, const char *sender, const int64_t *users,
    size_t n_users, const char *const *remote, size_t n_remote,
    const char *body, const char *info, char id_r[STORE_ID_LEN + 1])
{
	struct store_msg m;
	struct store_msg *mp = &m;

	memset(&m, 0, sizeof(m));
	m.sender = sender;
	m.users = users;
	m.n_users = n_users;
	m.remote = remote;
	m.n_remote = n_remote;
	m.body = (const uint8_t *)body;
	m.body_len = strlen(body);
	m.body_fd = -1;
	m.trace_info = info;
	TAP_EQ_INT(store_deliver(st, &mp, 1), 0, "delivered");
	TAP_EQ_INT(m.status, 0, "message status");
	memcpy(id_r, m.id, STORE_ID_LEN + 1);
}

int
main(void)
{
	static const char body[] = "From: a@example.org\r\n"
	    "Message-ID:\r\n <Case.Kept@example.org> (comment)\r\n"
	    "Subject: hi\r\n\r\nMessage-ID: <not@the.header>\r\n";
	const char *const remote[] = { "Far@Remote.Example" };
	struct pr_err err = { 0 };
	struct store_queue_job *jobs = NULL;
	struct store_maildrop_end end;
	struct store_entry *ents = NULL;
	struct store_settle s;
	struct t_events e;
	char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1], sql[256];
	int64_t alice, at[1], rcpt;
	size_t n = 0;
	struct store *st;

	t_setup("store-trace");
	st = t_open();
	store_domain_add(st, "example.org", &err);
	alice = t_add_user(st, "alice@example.org", 0);

	t_deliver_tr(st, "a@example.org", &alice, 1, remote, 1, body,
	    "client=192.0.2.1 helo=x.test", id);
	TAP_EQ_INT(t_find(st, id, &e), 1, "by id: one message");
	TAP_EQ_STR(e.text,
	    "received a@example.org|from=<a@example.org> size=115 "
	    "message-id=<Case.Kept@example.org> client=192.0.2.1 "
	    "helo=x.test\n"
	    "delivered alice@example.org|mailbox=alice@example.org\n"
	    "queued far@remote.example|rcpt=<Far@Remote.Example>\n",
	    "received, delivered, queued, in order");
	TAP_EQ_INT(t_find(st, "<Case.Kept@example.org>", &e), 1,
	    "by Message-ID, unfolded, the header's and not the body's");
	TAP_EQ_INT(t_find(st, "<case.kept@example.org>", &e), 0,
	    "Message-ID: the local part keeps its case");
	TAP_EQ_INT(t_find(st, "FAR@remote.example", &e), 1,
	    "by a recipient's address, any case");
	TAP_EQ_INT(t_find(st, "alice@example.org", &e), 1,
	    "by a mailbox");
	TAP_EQ_INT(t_find(st, "0123456789abcdef", &e), 0, "unknown id");
	TAP_EQ_INT(t_find(st, "nobody@example.org", &e), 0, "unknown address");
	TAP_EQ_INT(t_find(st, "what", &e), PR_EINVAL, "not a thing to find");

	/* The relay's attempt, settled with its trace. */
	TAP_EQ_INT(store_queue_due(st, time(NULL) + 10, 10, &jobs, &n, &err),
	    0, "queue due");
	TAP_EQ_INT(n, 1, "one entry");
	rcpt = n > 0 ? jobs[0].rcpts[0].id : 0;
	memset(&s, 0, sizeof(s));
	s.queue_id = n > 0 ? jobs[0].id : 0;
	s.done = &rcpt;
	s.n_done = 1;
	s.done_info = (const char *const[]){ "mta=mx.remote.example "
	    "reply=\"250 ok\"" };
	s.trace_info = "domain=remote.example mx=10:mx.remote.example";
	TAP_EQ_INT(store_queue_settle(st, &s, &err), 0, "settled");
	store_queue_jobs_free(jobs, n);
	t_find(st, id, &e);
	TAP_OK(strstr(e.text, "attempt |domain=remote.example "
	    "mx=10:mx.remote.example\nrelayed far@remote.example|"
	    "rcpt=<Far@Remote.Example> mta=mx.remote.example "
	    "reply=\"250 ok\"\n") != NULL, "attempt and relayed: %s", e.text);

	/* A POP3 session: retrieved, then deleted at QUIT. */
	TAP_EQ_INT(store_maildrop_list(st, alice, &ents, &n, &err), 0,
	    "list");
	at[0] = (int64_t)time(NULL) - 60;
	memset(&end, 0, sizeof(end));
	end.retr = &ents[0].id;
	end.retr_at = at;
	end.n_retr = 1;
	end.dele = &ents[0].id;
	end.n_dele = 1;
	end.info = "client=192.0.2.9 user=alice@example.org";
	TAP_EQ_INT(store_maildrop_end(st, alice, &end, &err), 0, "quit");
	free(ents);
	t_find(st, id, &e);
	TAP_OK(strstr(e.text, "retrieved alice@example.org|mailbox="
	    "alice@example.org client=192.0.2.9 user=alice@example.org\n"
	    "deleted alice@example.org|") != NULL, "retrieved, deleted: %s",
	    e.text);
	snprintf(sql, sizeof(sql), "SELECT at FROM trace WHERE msgid = '%s'"
	    " AND event = 'retrieved'", id);
	TAP_EQ_INT(t_int(sql), at[0], "retrieved at its own time");

	/* trace_days = 0: nothing is written. */
	store_trace_set_days(0);
	t_deliver_tr(st, "b@example.org", &alice, 1, NULL, 0, body, NULL, id2);
	TAP_EQ_INT(t_find(st, id2, &e), 0, "trace_days 0: no trace");
	store_trace_set_days(30);

	/* Expiry: old rows go, a bounded batch per commit. */
	TAP_EQ_INT(t_exec("WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL "
	    "SELECT i + 1 FROM k WHERE i < 450) INSERT INTO trace "
	    "(msgid, at, event, info) SELECT 'old', 5, 'received', '' "
	    "FROM k"), 0, "450 rows from long ago");
	t_deliver_tr(st, "c@example.org", &alice, 1, NULL, 0, body, NULL, id2);
	TAP_EQ_INT(t_int("SELECT count(*) FROM trace WHERE msgid = 'old'"),
	    250, "one commit expires 200");
	t_deliver_tr(st, "c@example.org", &alice, 1, NULL, 0, body, NULL, id2);
	t_deliver_tr(st, "c@example.org", &alice, 1, NULL, 0, body, NULL, id2);
	TAP_EQ_INT(t_int("SELECT count(*) FROM trace WHERE msgid = 'old'"),
	    0, "the next commits the rest");
	TAP_EQ_INT(t_find(st, id, &e), 1, "recent events stay");
	t_check_plans(st);
	store_close(&st);
	return tap_done();
}
