/*
 * test_store_deliver.c - delivery (group commit, quotas, big bodies from a
 * spool file), maildrops (list, delete, locks) and body streaming.
 */
#include <signal.h>

#include <time.h>

#include "test_store_util.c"

static int64_t alice, bob, carol;

static bool
t_is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Reads entry of user whole through store_body_read in chunk-sized
 * pieces into a malloc'd buffer; *len_r its length. */
static uint8_t *
t_read_body(struct store *st, int64_t user, int64_t entry, size_t chunk,
    size_t *len_r)
{
	struct store_body *b = NULL;
	struct pr_err err = { 0 };
	int64_t size = 0, off = 0;
	uint8_t *p;
	ssize_t n;

	*len_r = 0;
	if (store_body_open(st, user, entry, &b, &size, &err) < 0)
		return NULL;
	p = malloc((size_t)size + 1);
	while ((n = store_body_read(b, off, p + off, chunk)) > 0)
		off += n;
	store_body_close(&b);
	if (n < 0 || off != size) {
		free(p);
		return NULL;
	}
	*len_r = (size_t)size;
	return p;
}

static void
test_deliver_one(struct store *st)
{
	const int64_t users[] = { alice, bob, carol, bob };
	const char *head = "Received: from x by y; now\r\n";
	const char *body = "Subject: hi\r\n\r\nHello.\r\n";
	size_t size = strlen(head) + strlen(body), len;
	struct store_entry *e[3];
	size_t n[3];
	struct pr_err err = { 0 };
	char id[STORE_ID_LEN + 1];
	int64_t bytes, count, quota;
	uint8_t *p;

	TAP_EQ_INT(t_deliver(st, users, 4, NULL, 0, head, body, id), 0,
	    "deliver to three users (one listed twice)");
	TAP_OK(t_is_hex(id, STORE_ID_LEN), "message id is %d hex (%s)",
	    STORE_ID_LEN, id);
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 1,
	    "body stored once");
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox"), 3,
	    "one entry per distinct user");
	TAP_EQ_INT(t_int("SELECT count(DISTINCT uidl) FROM mailbox"), 3,
	    "distinct UIDLs");
	TAP_EQ_INT(t_int("SELECT count(*) FROM queue"), 0, "nothing queued");
	store_maildrop_list(st, alice, &e[0], &n[0], &err);
	store_maildrop_list(st, bob, &e[1], &n[1], &err);
	store_maildrop_list(st, carol, &e[2], &n[2], &err);
	TAP_OK(n[0] == 1 && n[1] == 1 && n[2] == 1, "one entry each");
	TAP_OK(e[0][0].size == (int64_t)size && e[1][0].size == (int64_t)size,
	    "entry size is head + body (%zu)", size);
	TAP_OK(t_is_hex(e[0][0].uidl, 32) && t_is_hex(e[1][0].uidl, 32),
	    "UIDL is 32 hex characters");
	TAP_OK(strcmp(e[0][0].uidl, e[1][0].uidl) != 0 &&
	    strcmp(e[1][0].uidl, e[2][0].uidl) != 0, "UIDLs differ");
	/* The arrival time comes first, so new entries sit together at the
	 * end of the uidl index (store_deliver_entry). */
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox WHERE uidl <"
	    " printf('%012x', CAST(strftime('%s', 'now', '-1 minute') AS"
	    " INTEGER) * 1000) OR uidl > printf('%012x', CAST(strftime('%s',"
	    " 'now', '+1 minute') AS INTEGER) * 1000)"), 0,
	    "UIDLs begin with the arrival in milliseconds");
	TAP_OK(e[0][0].received > 1600000000, "received time");

	p = t_read_body(st, bob, e[1][0].id, 7, &len);
	TAP_OK(p != NULL && len == size && memcmp(p, head, strlen(head)) == 0
	    && memcmp(p + strlen(head), body, strlen(body)) == 0,
	    "body reads back as head + body in 7-octet pieces");
	free(p);
	{
		struct store_body *b = NULL;
		uint8_t buf[16];
		int64_t sz;

		TAP_EQ_INT(store_body_open(st, alice, e[1][0].id, &b, &sz,
		    &err), PR_ENOENT, "another user's entry cannot be opened");
		TAP_EQ_INT(store_body_open(st, bob, e[1][0].id, &b, &sz,
		    &err), 0, "open body");
		TAP_EQ_INT(store_body_read(b, (int64_t)strlen(head), buf, 7),
		    7, "read at an offset");
		TAP_OK(memcmp(buf, "Subject", 7) == 0, "... right octets");
		TAP_EQ_INT(store_body_read(b, sz - 3, buf, sizeof(buf)), 3,
		    "short read at the end");
		TAP_EQ_INT(store_body_read(b, sz, buf, sizeof(buf)), 0,
		    "0 at the end");
		TAP_EQ_INT(store_body_read(b, -1, buf, sizeof(buf)),
		    PR_EINVAL, "negative offset");
		TAP_OK(store__idle(st), "no snapshot held while a body is "
		    "open");
		store_body_close(&b);
		TAP_OK(b == NULL, "body close clears the pointer");
	}
	TAP_EQ_INT(store_mailbox_usage(st, bob, &bytes, &count, &quota, &err),
	    0, "usage");
	TAP_OK(bytes == (int64_t)size && count == 1, "usage counts the "
	    "message");

	/* Deleting: the body goes with its last reference. */
	TAP_EQ_INT(store_maildrop_delete(st, alice, &e[1][0].id, 1, &err), 0,
	    "delete another user's entry: no error ...");
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox"), 3,
	    "... and nothing deleted");
	TAP_EQ_INT(store_maildrop_delete(st, alice, &e[0][0].id, 1, &err), 0,
	    "delete alice's copy");
	TAP_EQ_INT(store_maildrop_delete(st, bob, &e[1][0].id, 1, &err), 0,
	    "delete bob's copy");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 1,
	    "body stays while carol has it");
	TAP_EQ_INT(store_maildrop_delete(st, carol, &e[2][0].id, 1, &err), 0,
	    "delete the last copy");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 0,
	    "body gone with its last reference");
	TAP_EQ_INT(store_mailbox_usage(st, bob, &bytes, &count, &quota, &err),
	    0, "usage after delete");
	TAP_OK(bytes == 0 && count == 0, "usage back to zero");
	for (int i = 0; i < 3; i++)
		free(e[i]);
	TAP_OK(store__idle(st), "idle after delivery");
}

static void
test_deliver_group(struct store *st)
{
	struct store_msg m[5], *mp[5];
	const int64_t to_alice[] = { alice }, to_both[] = { bob, alice };
	const int64_t to_ghost[] = { 987654 };
	char big[1200];
	struct pr_err err = { 0 };
	struct store_entry *e;
	size_t n;

	/* alice has a quota of 1000 octets. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(m, 0, sizeof(m));
	for (int i = 0; i < 5; i++) {
		m[i].sender = "";
		m[i].body_fd = -1;
		m[i].body = (const uint8_t *)"Subject: s\r\n\r\nsmall\r\n";
		m[i].body_len = strlen((const char *)m[i].body);
		m[i].users = to_alice;
		m[i].n_users = 1;
		mp[i] = &m[i];
	}
	m[1].body = (const uint8_t *)big;            /* alone > quota */
	m[1].body_len = strlen(big);
	m[1].users = to_both;
	m[1].n_users = 2;
	m[2].n_users = 0;                            /* no recipients */
	m[3].users = to_ghost;                       /* no such user */
	m[4].users = to_both;
	m[4].n_users = 2;

	TAP_EQ_INT(store_deliver(st, mp, 5), 0, "group committed");
	TAP_EQ_INT(m[0].status, 0, "message 0 delivered");
	TAP_EQ_INT(m[1].status, PR_ETOOBIG, "message 1: larger than quota");
	TAP_OK(strstr(m[1].err.msg, "quota") != NULL, "... message (%s)",
	    m[1].err.msg);
	TAP_EQ_STR(m[1].id, "", "... no id");
	TAP_EQ_INT(m[2].status, PR_EINVAL, "message 2: no recipients");
	TAP_EQ_INT(m[3].status, PR_ENOENT, "message 3: unknown user id");
	TAP_EQ_INT(m[4].status, 0, "message 4 delivered");
	TAP_OK(strlen(m[0].id) == STORE_ID_LEN &&
	    strcmp(m[0].id, m[4].id) != 0, "delivered messages have ids");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies"), 2,
	    "only the delivered bodies are stored");
	store_maildrop_list(st, alice, &e, &n, &err);
	TAP_EQ_INT(n, 2, "alice has two messages");
	free(e);
	store_maildrop_list(st, bob, &e, &n, &err);
	TAP_EQ_INT(n, 1, "bob has one (the too big one went nowhere)");
	free(e);

	/* Fill alice to her quota: the one that does not fit fails with
	 * EQUOTA, later smaller ones in the same group still go in. */
	{
		static char fill[1000], fill50[50], tiny[] = "x\r\n";
		int64_t used;

		store_mailbox_usage(st, alice, &used, NULL, NULL, &err);
		/* Text as stored: each message ends with CRLF. */
		memset(fill, 'f', sizeof(fill) - 1);
		memcpy(fill + (1000 - used - 10) - 2, "\r\n", 2);
		memset(fill50, 'f', sizeof(fill50));
		memcpy(fill50 + 48, "\r\n", 2);
		for (int i = 0; i < 3; i++) {
			m[i].users = to_alice;
			m[i].n_users = 1;
		}
		m[0].body = (const uint8_t *)fill;
		m[0].body_len = (size_t)(1000 - used - 10);
		m[1].body = (const uint8_t *)fill50;
		m[1].body_len = 50;
		m[2].body = (const uint8_t *)tiny;
		m[2].body_len = 3;
		TAP_EQ_INT(store_deliver(st, mp, 3), 0,
		    "quota group committed");
		TAP_EQ_INT(m[0].status, 0, "fills the mailbox to 10 short");
		TAP_EQ_INT(m[1].status, PR_EQUOTA, "next message: EQUOTA");
		TAP_OK(strstr(m[1].err.msg, "full") != NULL,
		    "... message (%s)", m[1].err.msg);
		TAP_EQ_INT(m[2].status, 0, "a tiny one still fits");
		store_mailbox_usage(st, alice, &used, NULL, NULL, &err);
		TAP_EQ_INT(used, 993, "usage counts what committed");
	}
	TAP_EQ_INT(store_deliver(st, mp, 0), 0, "empty group is fine");
	TAP_EQ_INT(store_check(st, &err), 0, "check after deliveries (%s)",
	    err.msg);
	TAP_OK(store__idle(st), "idle after group delivery");
}

/* A 5 MB body from a spool file, written and read in chunks. */
static void
test_deliver_fd(struct store *st)
{
	const size_t len = 5 * 1024 * 1024 + 123;
	const int64_t to[] = { bob };
	const char *head = "Received: by test\r\n";
	char path[400];
	struct store_msg m = { 0 }, *mp = &m;
	struct store_entry *e;
	struct pr_err err = { 0 };
	uint8_t *src, *got;
	size_t n, glen, hl = strlen(head);
	uint32_t x = 2463534242u;
	int fd;

	snprintf(path, sizeof(path), "%s/spool", t_dir);
	src = malloc(len);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		src[i] = (uint8_t)x;
		/* Binary but for line ends, which are stored as CRLF. */
		if (src[i] == '\r' || src[i] == '\n')
			src[i] = 'x';
	}
	memcpy(src + len - 2, "\r\n", 2);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TAP_OK(fd >= 0 && write(fd, src, len) == (ssize_t)len,
	    "spool file written");
	lseek(fd, 17, SEEK_SET); /* pread ignores the file offset */

	store_user_set_quota(st, "bob@example.org", 0, &err);
	m.sender = "big@remote.example";
	m.users = to;
	m.n_users = 1;
	m.head = (const uint8_t *)head;
	m.head_len = hl;
	m.body_len = len;
	m.body_fd = fd;
	TAP_EQ_INT(store_deliver(st, &mp, 1), 0, "big delivery committed");
	TAP_EQ_INT(m.status, 0, "big message delivered");
	store_maildrop_list(st, bob, &e, &n, &err);
	TAP_OK(n == 2 && e[1].size == (int64_t)(len + hl),
	    "entry size %lld", n == 2 ? (long long)e[1].size : -1LL);

	got = t_read_body(st, bob, e[1].id, 64 * 1024, &glen);
	TAP_OK(got != NULL && glen == len + hl &&
	    memcmp(got, head, hl) == 0 && memcmp(got + hl, src, len) == 0,
	    "5 MB body reads back byte-exact in 64 KiB chunks");
	free(got);
	got = t_read_body(st, bob, e[1].id, 100000, &glen);
	TAP_OK(got != NULL && glen == len + hl &&
	    memcmp(got + hl, src, len) == 0,
	    "... and in odd-sized chunks");
	free(got);
	free(e);

	/* A spool file shorter than announced fails that message only. */
	{
		struct store_msg ok = { 0 }, *two[2] = { &m, &ok };

		ok.sender = "";
		ok.users = to;
		ok.n_users = 1;
		ok.body = (const uint8_t *)"ok\r\n";
		ok.body_len = 4;
		ok.body_fd = -1;
		m.body_len = len + 10;
		TAP_EQ_INT(store_deliver(st, two, 2), 0,
		    "group with a short spool file committed");
		TAP_EQ_INT(m.status, PR_EIO, "short spool file: EIO");
		TAP_OK(strstr(m.err.msg, "shorter") != NULL,
		    "... message (%s)", m.err.msg);
		TAP_EQ_INT(ok.status, 0, "the other message delivered");
		TAP_EQ_INT(t_int("SELECT count(*) FROM bodies WHERE size > "
		    "5000000"), 1, "the failed big body was rolled back");
	}
	close(fd);
	free(src);
	TAP_OK(store__idle(st), "idle after big delivery");
}

/* Line ends as stored: CRLF everywhere and at the end, so that the size
 * POP3 announces is what it sends (RFC 1939 11).  Each case from memory
 * and from a spool file. */
static void
test_deliver_crlf(struct store *st)
{
	static const struct {
		const char *head, *body, *want;
	} cases[] = {
		{ "", "a\r\nb\r\n", "a\r\nb\r\n" },
		{ "", "no newline", "no newline\r\n" },
		{ "", "a\n.b\n", "a\r\n.b\r\n" },
		{ "", "bare\rcr", "bare\r\ncr\r\n" },
		{ "", "ends in cr\r", "ends in cr\r\n" },
		{ "", "two\n\nlf", "two\r\n\r\nlf\r\n" },
		{ "", "", "" },
		{ "H: x\r\n", "", "H: x\r\n" },
		{ "H: x\n", "body", "H: x\r\nbody\r\n" },
		{ "H: x\r", "\nbody\r\n", "H: x\r\nbody\r\n" },
	};
	const int64_t to[] = { carol };
	struct store_entry *e;
	struct pr_err err = { 0 };
	char path[400];
	size_t n, len, before;
	uint8_t *got;
	int fd;

	snprintf(path, sizeof(path), "%s/crlf-spool", t_dir);
	store_maildrop_list(st, carol, &e, &before, &err);
	free(e);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int from_fd = 0; from_fd < 2; from_fd++) {
			struct store_msg m = { 0 }, *mp = &m;
			size_t blen = strlen(cases[i].body);

			fd = -1;
			if (from_fd) {
				fd = open(path, O_RDWR | O_CREAT | O_TRUNC,
				    0600);
				if (fd < 0 || write(fd, cases[i].body, blen) !=
				    (ssize_t)blen)
					TAP_OK(0, "spool file %zu", i);
			}
			m.sender = "";
			m.users = to;
			m.n_users = 1;
			m.head = (const uint8_t *)cases[i].head;
			m.head_len = strlen(cases[i].head);
			m.body = (const uint8_t *)cases[i].body;
			m.body_len = blen;
			m.body_fd = fd;
			store_deliver(st, &mp, 1);
			TAP_EQ_INT(m.status, 0, "line ends case %zu%s "
			    "delivered", i, from_fd ? " (spool)" : "");
			store_maildrop_list(st, carol, &e, &n, &err);
			len = strlen(cases[i].want);
			TAP_OK(n == before + 1 && e[n - 1].size ==
			    (int64_t)len, "... entry size %zu", len);
			got = n == before + 1 ? t_read_body(st, carol,
			    e[n - 1].id, 5, &n) : NULL;
			TAP_OK(got != NULL && n == len &&
			    memcmp(got, cases[i].want, len) == 0,
			    "... stored as CRLF text");
			free(got);
			store_maildrop_delete(st, carol, &e[before].id, 1,
			    &err);
			free(e);
			if (fd >= 0)
				close(fd);
		}
	}

	/* A CR at the end of one spool chunk, its LF at the start of the
	 * next, and lone LFs on both sides: one CRLF each. */
	{
		const size_t big = 3 * STORE_CHUNK;
		struct store_msg m = { 0 }, *mp = &m;
		uint8_t *src = malloc(big);
		size_t lfs = 0, glen;
		bool clean = true;

		memset(src, 'a', big);
		for (size_t i = 999; i < big; i += 1000)
			src[i] = '\n';
		src[STORE_CHUNK - 1] = '\r';
		src[STORE_CHUNK] = '\n';
		for (size_t i = 0; i < big; i++)
			if (src[i] == '\n' && (i == 0 || src[i - 1] != '\r'))
				lfs++;
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		TAP_OK(fd >= 0 && write(fd, src, big) == (ssize_t)big,
		    "chunk boundary spool file written");
		m.sender = "";
		m.users = to;
		m.n_users = 1;
		m.body_len = big;
		m.body_fd = fd;
		store_deliver(st, &mp, 1);
		TAP_EQ_INT(m.status, 0, "chunk boundary case delivered");
		store_maildrop_list(st, carol, &e, &n, &err);
		/* Every lone LF gains a CR, the end gains CRLF. */
		TAP_OK(n == before + 1 && e[n - 1].size ==
		    (int64_t)(big + lfs + 2), "... size %zu", big + lfs + 2);
		got = n == before + 1 ? t_read_body(st, carol, e[n - 1].id,
		    65536, &glen) : NULL;
		for (size_t i = 0; got != NULL && i < glen; i++) {
			if (got[i] == '\n' && (i == 0 || got[i - 1] != '\r'))
				clean = false;
			if (got[i] == '\r' && (i + 1 == glen ||
			    got[i + 1] != '\n'))
				clean = false;
		}
		TAP_OK(got != NULL && clean && glen >= 2 &&
		    memcmp(got + glen - 2, "\r\n", 2) == 0,
		    "... every line end is CRLF");
		free(got);
		if (n == before + 1)
			store_maildrop_delete(st, carol, &e[before].id, 1,
			    &err);
		free(e);
		close(fd);
		free(src);
	}
	TAP_EQ_INT(store_check(st, &err), 0, "check after line end cases "
	    "(%s)", err.msg);
}

/* Quotas per recipient: a full mailbox is skipped and reported, the
 * others get the message. */
static void
test_deliver_per_rcpt(struct store *st)
{
	int64_t roomy = t_add_user(st, "roomy@example.org", 0);
	int64_t tiny = t_add_user(st, "tiny@example.org", 10);
	int64_t full = t_add_user(st, "full@example.org", 40);
	const int64_t both[] = { roomy, full, tiny }, alone[] = { full };
	const char *body = "Subject: q\r\n\r\nquota test\r\n"; /* 29 */
	const char *remote[] = { "far@far.example" };
	struct store_msg m = { 0 }, *mp = &m;
	int us[3];
	int64_t count;

	t_deliver(st, &full, 1, NULL, 0, "", body, NULL);
	m.sender = "s@remote.example";
	m.users = both;
	m.n_users = 3;
	m.body = (const uint8_t *)body;
	m.body_len = strlen(body);
	m.body_fd = -1;
	TAP_EQ_INT(store_deliver(st, &mp, 1), 0, "all or nothing committed");
	TAP_EQ_INT(m.status, PR_EQUOTA, "without user_status: one full "
	    "mailbox fails the message");
	TAP_OK(strstr(m.err.msg, "full@example.org") != NULL,
	    "... naming the mailbox (%s)", m.err.msg);

	m.user_status = us;
	TAP_EQ_INT(store_deliver(st, &mp, 1), 0, "per recipient committed");
	TAP_EQ_INT(m.status, 0, "the message is delivered");
	TAP_EQ_INT(us[0], 0, "roomy took it");
	TAP_EQ_INT(us[1], PR_EQUOTA, "full is full");
	TAP_EQ_INT(us[2], PR_ETOOBIG, "too big for tiny");
	store_mailbox_usage(st, roomy, NULL, &count, NULL, NULL);
	TAP_EQ_INT(count, 1, "roomy has one message");
	store_mailbox_usage(st, tiny, NULL, &count, NULL, NULL);
	TAP_EQ_INT(count, 0, "tiny has none");
	store_mailbox_usage(st, full, NULL, &count, NULL, NULL);
	TAP_EQ_INT(count, 1, "full still has one");

	m.users = alone;
	m.n_users = 1;
	TAP_EQ_INT(store_deliver(st, &mp, 1), 0, "only a full mailbox");
	TAP_EQ_INT(m.status, PR_EQUOTA, "... EQUOTA: nobody took it");
	TAP_OK(strstr(m.err.msg, "full@example.org") != NULL,
	    "... naming the mailbox (%s)", m.err.msg);
	TAP_EQ_INT(m.id[0], '\0', "... no id");
	m.remote = remote;
	m.n_remote = 1;
	TAP_EQ_INT(store_deliver(st, &mp, 1), 0, "a full mailbox and a "
	    "remote recipient");
	TAP_OK(m.status == 0 && us[0] == PR_EQUOTA, "the remote one takes "
	    "it, the full one is reported");
	{
		struct store_queue_job *jobs;
		size_t n;

		store_queue_due(st, (int64_t)time(NULL) + 5, 10, &jobs, &n,
		    NULL);
		for (size_t i = 0; i < n; i++)
			store_queue_del(st, jobs[i].id, NULL);
		store_queue_jobs_free(jobs, n);
	}
	TAP_EQ_INT(store_check(st, NULL), 0, "check passes");
}

static void
test_maildrop(struct store *st)
{
	const int64_t to[] = { carol };
	struct store_entry *e, *e2;
	struct pr_err err = { 0 };
	char body[64];
	size_t n, n2;
	int64_t ids[2];

	for (int i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "Subject: %d\r\n\r\n%d\r\n", i,
		    i);
		t_deliver(st, to, 1, NULL, 0, "", body, NULL);
	}
	TAP_EQ_INT(store_maildrop_list(st, carol, &e, &n, &err), 0,
	    "maildrop list");
	TAP_EQ_INT(n, 5, "five entries");
	TAP_OK(e[0].id < e[1].id && e[3].id < e[4].id, "arrival order");
	{
		size_t len;
		uint8_t *p = t_read_body(st, carol, e[3].id, 4096, &len);

		TAP_OK(p != NULL && memcmp(p, "Subject: 3\r\n", 12) == 0,
		    "fourth entry is the fourth message");
		free(p);
	}
	ids[0] = e[1].id;
	ids[1] = e[3].id;
	TAP_EQ_INT(store_maildrop_delete(st, carol, ids, 2, &err), 0,
	    "delete two");
	TAP_EQ_INT(store_maildrop_list(st, carol, &e2, &n2, &err), 0,
	    "list again");
	TAP_OK(n2 == 3 && e2[0].id == e[0].id && e2[1].id == e[2].id &&
	    e2[2].id == e[4].id, "the right ones are gone");
	TAP_OK(strcmp(e2[1].uidl, e[2].uidl) == 0, "UIDLs are stable");
	TAP_EQ_INT(store_maildrop_delete(st, carol, ids, 2, &err), 0,
	    "deleting them again is no error");
	free(e);
	free(e2);
	TAP_EQ_INT(store_maildrop_list(st, 987654, &e, &n, &err), 0,
	    "list of an unknown user");
	TAP_OK(n == 0 && e == NULL, "... is empty");
	TAP_OK(store__idle(st), "idle after maildrop operations");
}

static int
t_scan_cb(void *ctx, const struct store_entry *e)
{
	struct store_entry *v = ctx;
	size_t *n = (size_t *)&v[0].received;

	if (*n + 1 >= 1300)
		return 1;
	v[1 + (*n)++] = *e;
	return 0;
}

/*
 * A big QUIT (docs/ARCHITECTURE.md, "Big maildrops"): more deletions than
 * one slice goes in, all of them happen; a record a dead session left is
 * finished by the next lock before anything is listed.
 */
static void
test_maildrop_big(struct store *st)
{
	static struct store_entry v[1300];
	const int64_t dave = t_add_user(st, "dave@example.net", 0);
	const int64_t to[] = { dave };
	struct pr_err err = { 0 };
	int64_t ids[1200];
	char sql[256];
	size_t *n = (size_t *)&v[0].received, hint = 0;

	for (int i = 0; i < 1200; i++)
		t_deliver(st, to, 1, NULL, 0, "", "Subject: b\r\n\r\nb\r\n",
		    NULL);
	memset(v, 0, sizeof(v));
	TAP_EQ_INT(store_maildrop_scan(st, dave, t_scan_cb, v, &hint, &err), 0,
	    "scan (%s)", err.msg);
	TAP_EQ_INT(*n, 1200, "scan: every entry");
	TAP_EQ_INT(hint, 1200, "scan: the counter as the hint");
	TAP_OK(v[1].id < v[1200].id && strlen(v[1200].uidl) == 32,
	    "scan: arrival order, UIDLs");
	for (int i = 0; i < 1100; i++)
		ids[i] = v[1 + i].id;
	{
		struct store_maildrop_end e = { .dele = ids, .n_dele = 1100,
		    .info = "client=127.0.0.1 user=dave" };

		TAP_EQ_INT(store_maildrop_end(st, dave, &e, &err), 0,
		    "big QUIT");
	}
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM mailbox WHERE "
	    "user_id = %lld", (long long)dave);
	TAP_EQ_INT(t_int(sql), 100, "every one of 1100 deleted");
	TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_deletions"), 0,
	    "its record is gone");
	/* What a session killed half-way leaves: a record of two rows. */
	snprintf(sql, sizeof(sql), "INSERT INTO maildrop_deletions (user_id,"
	    " ids) VALUES (%lld, x'%02llx%02llx000000000000'), (%lld,"
	    " x'%02llx%02llx000000000000')", (long long)dave,
	    (long long)(v[1101].id & 0xff), (long long)(v[1101].id >> 8),
	    (long long)dave, (long long)(v[1102].id & 0xff),
	    (long long)(v[1102].id >> 8));
	TAP_OK(v[1102].id < 65536 && t_exec(sql) == 0, "a record is left");
	TAP_EQ_INT(store_maildrop_lock(st, dave, &err), 0, "lock (%s)",
	    err.msg);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM mailbox WHERE "
	    "user_id = %lld", (long long)dave);
	TAP_EQ_INT(t_int(sql), 98, "the lock finished it first");
	TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_deletions"), 0,
	    "... and dropped the record");
	TAP_EQ_INT(store_maildrop_unlock(st, dave, &err), 0, "unlock");
	snprintf(sql, sizeof(sql), "SELECT used = (SELECT sum(size) FROM "
	    "mailbox WHERE user_id = %lld) AND messages = 98 FROM users "
	    "WHERE id = %lld", (long long)dave, (long long)dave);
	TAP_EQ_INT(t_int(sql), 1, "the counters agree");
	/* record_only: the QUIT's commit is the record; the slices come
	 * after it (pop3d runs them in the background). */
	for (int i = 0; i < 600; i++)
		t_deliver(st, to, 1, NULL, 0, "", "Subject: b\r\n\r\nb\r\n",
		    NULL);
	memset(v, 0, sizeof(v));
	TAP_EQ_INT(store_maildrop_scan(st, dave, t_scan_cb, v, NULL, &err), 0,
	    "scan (%s)", err.msg);
	TAP_EQ_INT(*n, 698, "scan: 698 entries");
	for (int i = 0; i < 600; i++)
		ids[i] = v[1 + i].id;
	{
		struct store_maildrop_end e = { .dele = ids, .n_dele = 600,
		    .info = "client=127.0.0.1 user=dave", .record_only = true };
		int r, steps = 0;

		TAP_EQ_INT(store_maildrop_end(st, dave, &e, &err), 1,
		    "big QUIT, record only: a record left");
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM mailbox WHERE "
		    "user_id = %lld", (long long)dave);
		TAP_EQ_INT(t_int(sql), 698, "... nothing deleted yet");
		TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_deletions"), 2,
		    "... recorded as two rows");
		while ((r = store_maildrop_drop_step(st, dave, &err)) > 0 &&
		    ++steps < 100)
			;
		TAP_EQ_INT(r, 0, "the slices finish it (%s)", err.msg);
		TAP_EQ_INT(t_int(sql), 98, "every one of 600 deleted");
		TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_deletions"), 0,
		    "its record is gone");
		TAP_EQ_INT(store_maildrop_drop_step(st, dave, &err), 0,
		    "a step with no record left: done");
	}
	/* A login right after such a QUIT's +OK, before any slice: the
	 * lock finishes the record before anything is listed. */
	for (int i = 0; i < 600; i++)
		t_deliver(st, to, 1, NULL, 0, "", "Subject: b\r\n\r\nb\r\n",
		    NULL);
	memset(v, 0, sizeof(v));
	TAP_EQ_INT(store_maildrop_scan(st, dave, t_scan_cb, v, NULL, &err), 0,
	    "scan (%s)", err.msg);
	for (int i = 0; i < 600; i++)
		ids[i] = v[1 + i].id;
	{
		struct store_maildrop_end e = { .dele = ids, .n_dele = 600,
		    .record_only = true };

		TAP_EQ_INT(store_maildrop_end(st, dave, &e, &err), 1,
		    "another record left");
	}
	TAP_EQ_INT(store_maildrop_lock(st, dave, &err), 0, "lock (%s)",
	    err.msg);
	TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_deletions"), 0,
	    "the lock finished the record");
	memset(v, 0, sizeof(v));
	TAP_EQ_INT(store_maildrop_scan(st, dave, t_scan_cb, v, NULL, &err), 0,
	    "scan (%s)", err.msg);
	TAP_EQ_INT(*n, 98, "the listing after it has none of the 600");
	TAP_EQ_INT(store_maildrop_unlock(st, dave, &err), 0, "unlock");
}

static int
t_mailbox_cb(void *ctx, const struct store_entry *e, const char *sender)
{
	char *out = ctx;
	char line[128];

	snprintf(line, sizeof(line), "%lld:%s;", (long long)e->size, sender);
	strcat(out, line);
	return 0;
}

static void
test_mailbox_list(struct store *st)
{
	struct pr_err err = { 0 };
	char out[1024] = "";

	TAP_EQ_INT(store_mailbox_list(st, "Carol@example.net", t_mailbox_cb,
	    out, &err), 0, "mailbox list");
	TAP_EQ_STR(out, "17:sender@remote.example;17:sender@remote.example;"
	    "17:sender@remote.example;", "mailbox list: sizes and senders");
	TAP_EQ_INT(store_mailbox_list(st, "nobody@example.org", t_mailbox_cb,
	    out, &err), PR_ENOENT, "mailbox list of an unknown user");
}

/* Forks a child that takes carol's lock; with stay, the child keeps
 * running until the returned pipe is closed. */
static pid_t
t_lock_child(bool stay, int *pipe_w)
{
	int ready[2], hold[2];
	pid_t pid;
	char c;

	if (pipe(ready) < 0 || pipe(hold) < 0)
		return -1;
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct store *cst = NULL;
		struct pr_err err = { 0 };
		int r;

		close(ready[0]);
		close(hold[1]);
		if (store_open(t_data, 0, &cst, &err) < 0)
			_exit(2);
		r = store_maildrop_lock(cst, carol, &err);
		c = r == 0 ? 'L' : 'E';
		(void)!write(ready[1], &c, 1);
		if (stay)
			(void)!read(hold[0], &c, 1);
		/* Exit without unlocking, as a crashed daemon would. */
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], &c, 1) != 1 || c != 'L') {
		close(ready[0]);
		close(hold[1]);
		return -1;
	}
	close(ready[0]);
	*pipe_w = hold[1];
	return pid;
}

static void
test_locks(struct store *st)
{
	struct pr_err err = { 0 };
	pid_t pid;
	int w, status;

	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), 0, "lock");
	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), PR_EBUSY,
	    "lock again in the same process: EBUSY");
	TAP_OK(strstr(err.msg, "locked") != NULL, "... message (%s)",
	    err.msg);
	TAP_EQ_INT(store_maildrop_lock(st, bob, &err), 0,
	    "another maildrop locks independently");
	TAP_EQ_INT(store_maildrop_unlock(st, carol, &err), 0, "unlock");
	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), 0, "lock after "
	    "unlock");
	TAP_EQ_INT(store_maildrop_unlock_all(st, &err), 0, "unlock all");
	TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_locks"), 0,
	    "no locks left");
	TAP_EQ_INT(store_maildrop_lock(st, 987654, &err), PR_ENOENT,
	    "lock of an unknown user");

	/* A live holder in another process. */
	pid = t_lock_child(true, &w);
	TAP_OK(pid > 0, "child process took the lock");
	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), PR_EBUSY,
	    "lock held by a live process: EBUSY");
	TAP_EQ_INT(store_maildrop_unlock(st, carol, &err), 0,
	    "unlock of someone else's lock does nothing ...");
	TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_locks"), 1,
	    "... the lock stays");
	close(w);
	waitpid(pid, &status, 0);
	TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child exited without unlocking");
	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), 0,
	    "stale lock of a dead process taken over");
	TAP_EQ_INT(t_int("SELECT pid FROM maildrop_locks"), getpid(),
	    "the lock is ours now");
	store_maildrop_unlock(st, carol, &err);

	/* A holder that was killed but is not reaped yet (a zombie): it
	 * holds nothing any more. */
	pid = t_lock_child(true, &w);
	kill(pid, SIGKILL);
	{
		siginfo_t si;

		/* Wait until it is a zombie, without reaping it. */
		memset(&si, 0, sizeof(si));
		waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	}
	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), 0,
	    "lock of a killed, unreaped (zombie) holder taken over");
	store_maildrop_unlock(st, carol, &err);
	close(w);
	waitpid(pid, &status, 0);

	/* A child that exits at once. */
	pid = t_lock_child(false, &w);
	close(w);
	waitpid(pid, &status, 0);
	TAP_EQ_INT(store_maildrop_lock(st, carol, &err), 0,
	    "lock of an exited child taken over");
	store_maildrop_unlock(st, carol, &err);

	/* A live pid that is not the holder any more (pid reuse): the
	 * recorded start time differs. */
	{
		char sql[160];

		snprintf(sql, sizeof(sql), "INSERT INTO maildrop_locks"
		    " (user_id, pid, pid_start, since)"
		    " VALUES (%lld, %ld, 1, 0)",
		    (long long)carol, (long)getppid());
		t_exec(sql);
		TAP_EQ_INT(store_maildrop_lock(st, carol, &err), 0,
		    "lock of a reused pid taken over");
		store_maildrop_unlock(st, carol, &err);
	}
	TAP_OK(store__idle(st), "idle after lock operations");
}

static void
test_user_del_cleans(struct store *st)
{
	struct pr_err err = { 0 };
	const int64_t to[] = { bob, carol };

	t_deliver(st, to, 2, NULL, 0, "", "Subject: x\r\n\r\nx\r\n", NULL);
	TAP_EQ_INT(store_maildrop_lock(st, bob, &err), 0, "lock bob");
	TAP_EQ_INT(store_user_del(st, "bob@example.org", &err), 0,
	    "delete bob with mail and a lock");
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox m WHERE NOT EXISTS "
	    "(SELECT 1 FROM users WHERE id = m.user_id)"), 0,
	    "his mailbox is gone");
	TAP_EQ_INT(t_int("SELECT count(*) FROM maildrop_locks"), 0,
	    "his lock is gone");
	TAP_EQ_INT(t_int("SELECT count(*) FROM bodies b WHERE NOT EXISTS "
	    "(SELECT 1 FROM mailbox WHERE body_id = b.id)"), 0,
	    "bodies only he had are gone");
	TAP_EQ_INT(store_check(st, &err), 0, "check passes (%s)", err.msg);
}

static void
test_durable(void)
{
	struct store *st = t_open();
	struct store_entry *e;
	struct pr_err err = { 0 };
	size_t n;

	TAP_EQ_INT(store_maildrop_list(st, carol, &e, &n, &err), 0,
	    "reopened store lists");
	TAP_EQ_INT(n, 4, "mail survives close and reopen");
	free(e);
	store_close(&st);
}

/* A local submission's key (its spool name) makes the delivery happen
 * once: the same key again commits nothing and says PR_EEXIST. */
static void
test_deliver_key(struct store *st)
{
	const int64_t users[] = { bob };
	const char *body = "Subject: once\r\n\r\nx\r\n";
	struct store_msg m[3], *mp[3];
	int64_t before = t_int("SELECT count(*) FROM mailbox");

	for (int i = 0; i < 3; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].sender = "root@host.example";
		m[i].users = users;
		m[i].n_users = 1;
		m[i].body = (const uint8_t *)body;
		m[i].body_len = strlen(body);
		m[i].body_fd = -1;
		m[i].key = i == 2 ? "M2.00000000000000bb" :
		    "M1.00000000000000aa";
		mp[i] = &m[i];
	}
	TAP_EQ_INT(store_deliver(st, mp, 1), 0, "key: first delivery");
	TAP_EQ_INT(m[0].status, 0, "key: first delivery succeeds");
	/* The same key again, and in the same group as a new one. */
	TAP_EQ_INT(store_deliver(st, mp + 1, 2), 0, "key: group commits");
	TAP_EQ_INT(m[1].status, PR_EEXIST, "key: delivered before");
	TAP_EQ_INT(m[2].status, 0, "key: another key is delivered");
	TAP_EQ_INT(t_int("SELECT count(*) FROM mailbox") - before, 2,
	    "key: two mailbox entries, not three");
	TAP_EQ_INT(t_int("SELECT count(*) FROM submissions"), 2,
	    "key: both names recorded");
}

int
main(void)
{
	struct pr_err err = { 0 };
	struct store *st;

	t_setup("store-deliver");
	st = t_open();
	store_domain_add(st, "example.org", &err);
	store_domain_add(st, "example.net", &err);
	alice = t_add_user(st, "alice@example.org", 1000);
	bob = t_add_user(st, "bob@example.org", 0);
	carol = t_add_user(st, "carol@example.net", 0);
	test_deliver_one(st);
	test_deliver_group(st);
	test_deliver_fd(st);
	test_deliver_crlf(st);
	test_deliver_per_rcpt(st);
	test_deliver_key(st);
	test_maildrop(st);
	test_maildrop_big(st);
	test_mailbox_list(st);
	test_locks(st);
	test_user_del_cleans(st);
	t_check_plans(st);
	store_close(&st);
	test_durable();
	return tap_done();
}
