/*
 * test_store_concurrency.c - several processes on one database, as the
 * daemons and the CLI use it: concurrent creation and migration, delivery
 * in a loop while users are added, a streamed body read while other
 * processes commit.
 */
#include "test_store_util.c"

#define T_GROUPS 150
#define T_GROUP_SIZE 5

#define T_CREATORS_MAX 8

/* n children open the same new database at the same instant: the
 * package starts both daemons and the CLI at once on a new data_dir. */
static void
test_concurrent_create(const char *name, int n)
{
	char dir[400];
	int go[2], status, ok = 0;
	pid_t pids[T_CREATORS_MAX];
	struct store *st = NULL;
	struct pr_err err = { 0 };

	snprintf(dir, sizeof(dir), "%s/%s", t_dir, name);
	if (pipe(go) < 0)
		return;
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		if ((pids[i] = fork()) == 0) {
			char c;

			close(go[1]);
			(void)!read(go[0], &c, 1); /* EOF when released */
			if (store_open(dir, STORE_OPEN_CREATE, &st, &err) < 0) {
				fprintf(stderr, "child: %s\n", err.msg);
				_exit(1);
			}
			if (store_domain_add(st, i % 2 ? "a.example" :
			    "b.example", &err) < 0 && err.code != PR_EEXIST) {
				fprintf(stderr, "child: %s\n", err.msg);
				_exit(1);
			}
			store_close(&st);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < n; i++)
		if (waitpid(pids[i], &status, 0) == pids[i] &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	TAP_EQ_INT(ok, n, "%d processes created and migrated one database "
	    "at once", n);
	TAP_EQ_INT(store_open(dir, 0, &st, &err), 0, "it opens");
	if (st != NULL) {
		TAP_EQ_INT(store_schema_version(st), store__n_migrations,
		    "schema complete");
		TAP_EQ_INT(store_domain_exists(st, "a.example") +
		    store_domain_exists(st, "b.example"), 2,
		    "both domains there");
		store_close(&st);
	}
}

/* One process delivers in a loop while this one adds users. */
static void
test_deliver_while_admin(void)
{
	struct store *st = t_open();
	struct pr_err err = { 0 };
	int64_t target, count = 0;
	int status, added = 0;
	pid_t pid;

	store_domain_add(st, "example.org", &err);
	target = t_add_user(st, "target@example.org", 0);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct store *cst = NULL;
		struct store_msg m[T_GROUP_SIZE], *mp[T_GROUP_SIZE];
		const char *body = "Subject: load\r\n\r\nload\r\n";

		if (store_open(t_data, 0, &cst, &err) < 0)
			_exit(2);
		for (int g = 0; g < T_GROUPS; g++) {
			memset(m, 0, sizeof(m));
			for (int i = 0; i < T_GROUP_SIZE; i++) {
				m[i].sender = "load@remote.example";
				m[i].users = &target;
				m[i].n_users = 1;
				m[i].body = (const uint8_t *)body;
				m[i].body_len = strlen(body);
				m[i].body_fd = -1;
				mp[i] = &m[i];
			}
			if (store_deliver(cst, mp, T_GROUP_SIZE) < 0) {
				fprintf(stderr, "deliver: %s\n", m[0].err.msg);
				_exit(3);
			}
			for (int i = 0; i < T_GROUP_SIZE; i++)
				if (m[i].status != 0)
					_exit(4);
		}
		store_close(&cst);
		_exit(0);
	}

	/* Meanwhile: users, aliases, reads. */
	for (int i = 0; i < 4; i++) {
		char addr[64];

		snprintf(addr, sizeof(addr), "user%d@example.org", i);
		if (store_user_add(st, addr, "pw", 0, &err) == 0)
			added++;
		else
			printf("# user add: %s\n", err.msg);
		snprintf(addr, sizeof(addr), "alias%d@example.org", i);
		if (store_alias_add(st, addr, "target@example.org", &err) == 0)
			added++;
		else
			printf("# alias add: %s\n", err.msg);
		store_mailbox_usage(st, target, NULL, &count, NULL, &err);
	}
	waitpid(pid, &status, 0);
	TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "delivering process had no error (status %d)", status);
	TAP_EQ_INT(added, 8, "users and aliases added meanwhile");
	TAP_EQ_INT(store_mailbox_usage(st, target, NULL, &count, NULL, &err),
	    0, "usage");
	TAP_EQ_INT(count, T_GROUPS * T_GROUP_SIZE, "every message arrived");
	TAP_EQ_INT(store_check(st, &err), 0, "check passes (%s)", err.msg);
	store_close(&st);
}

/* A body streamed in pieces while another process commits, and this
 * connection writing between the pieces: no snapshot may be held. */
static void
test_read_while_writing(void)
{
	struct store *st = t_open();
	struct pr_err err = { 0 };
	struct store_entry *e;
	struct store_body *b;
	int64_t target = t_user_id(st, "target@example.org"), size;
	uint8_t buf[8];
	size_t n;
	int status;
	pid_t pid;

	store_maildrop_list(st, target, &e, &n, &err);
	TAP_EQ_INT(store_body_open(st, target, e[0].id, &b, &size, &err), 0,
	    "open a body");
	TAP_EQ_INT(store_body_read(b, 0, buf, 4), 4, "read its first piece");

	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct store *cst = NULL;

		if (store_open(t_data, 0, &cst, &err) < 0 ||
		    t_deliver(cst, &target, 1, NULL, 0, "", "x\r\n", NULL) < 0)
			_exit(1);
		store_close(&cst);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "another process committed meanwhile");
	TAP_EQ_INT(store_maildrop_delete(st, target, &e[1].id, 1, &err), 0,
	    "this connection writes while the body is open (%s)", err.msg);
	TAP_EQ_INT(store_body_read(b, 4, buf, 4), 4, "read the next piece");
	TAP_OK(memcmp(buf, "ect:", 4) == 0, "... the right octets");
	store_body_close(&b);
	free(e);

	store_maildrop_list(st, target, &e, &n, &err);
	TAP_EQ_INT(n, T_GROUPS * T_GROUP_SIZE, "one gone, one arrived");
	/* The body disappears under an open handle: a clean error. */
	TAP_EQ_INT(store_body_open(st, target, e[0].id, &b, &size, &err), 0,
	    "open another body");
	store_maildrop_delete(st, target, &e[0].id, 1, &err);
	TAP_EQ_INT(store_body_read(b, 0, buf, 4), PR_ENOENT,
	    "reading a deleted body: ENOENT");
	store_body_close(&b);
	free(e);
	store_close(&st);
}

int
main(void)
{
	t_setup("store-conc");
	test_concurrent_create("race4", 4);
	/* A few rounds: the race is between instants, not in one place. */
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "race8-%d", i);
		test_concurrent_create(name, T_CREATORS_MAX);
	}
	test_deliver_while_admin();
	test_read_while_writing();
	return tap_done();
}
