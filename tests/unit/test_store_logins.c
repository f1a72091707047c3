/*
 * test_store_logins.c - logins: bare names and the default domain, app
 * passwords and devices, the tag that picks one hash, a device's count.
 */
#include "test_store_util.c"

#define T_PW "correct horse battery"

/* Generates a password and checks its shape. */
static void
t_generate(struct store *st, char pw[STORE_LOGIN_PASSWORD_LEN + 1])
{
	char tag[STORE_LOGIN_TAG_LEN + 1];
	struct pr_err err = { 0 };

	TAP_EQ_INT(store_login_generate(st, pw, &err), 0, "generate");
	TAP_OK(store_login_tag(pw, tag) && strncmp(tag, pw,
	    STORE_LOGIN_TAG_LEN) == 0, "a generated password has a tag");
}

/* Looks up name with the tag of pw (NULL: none). */
static int
t_lookup(struct store *st, const char *name, const char *pw,
    const char *dd, struct store_login *l)
{
	char tag[STORE_LOGIN_TAG_LEN + 1] = "";
	struct pr_err err = { 0 };

	if (pw != NULL)
		(void)store_login_tag(pw, tag);
	return store_login_lookup(st, name, tag, dd, l, &err);
}

static void
test_tag(void)
{
	char tag[STORE_LOGIN_TAG_LEN + 1];

	TAP_OK(store_login_tag("abcdefgh-abcdefghijkmnpqrstuvwxyz", tag) &&
	    strcmp(tag, "abcdefgh") == 0, "tag of a generated shape");
	TAP_OK(!store_login_tag("abcdefgh-abcdefghijkmnpqrstuvwxy", tag) &&
	    tag[0] == '\0', "one short: no tag");
	TAP_OK(!store_login_tag("abcdefgh-abcdefghijkmnpqrstuvwxyzz", tag),
	    "one long: no tag");
	TAP_OK(!store_login_tag("abcdefgh_abcdefghijkmnpqrstuvwxyz", tag),
	    "no dash: no tag");
	TAP_OK(!store_login_tag("abcdefg1-abcdefghijkmnpqrstuvwxyz", tag),
	    "a character outside the alphabet: no tag");
	TAP_OK(!store_login_tag(T_PW, tag), "a typed password: no tag");
	TAP_OK(!store_login_tag(NULL, tag), "NULL: no tag");
}

static void
test_users(struct store *st)
{
	struct store_login l;

	TAP_EQ_INT(t_lookup(st, "alice@example.test", T_PW, NULL, &l), 0,
	    "lookup of a user");
	TAP_OK(l.kind == STORE_LOGIN_USER && l.user_id > 0 &&
	    strcmp(l.name, "alice@example.test") == 0 &&
	    strcmp(l.account, "alice@example.test") == 0 &&
	    strncmp(l.hash, "$argon2id$", 10) == 0, "a user, own hash");
	TAP_EQ_INT(store_password_verify(l.hash, T_PW), 0,
	    "the hash is the user's");
	TAP_EQ_INT(t_lookup(st, "alice", T_PW, NULL, &l), 0,
	    "bare name, no default domain");
	TAP_OK(l.kind == STORE_LOGIN_NONE && l.hash[0] == '\0' &&
	    strcmp(l.account, "alice") == 0, "is no login");
	TAP_EQ_INT(t_lookup(st, "alice", T_PW, "example.test", &l), 0,
	    "bare name with the default domain");
	TAP_OK(l.kind == STORE_LOGIN_USER &&
	    strcmp(l.name, "alice@example.test") == 0 &&
	    strcmp(l.account, "alice@example.test") == 0,
	    "is alice@example.test, counted as her account");
	TAP_EQ_INT(t_lookup(st, "ALICE", T_PW, "Example.TEST", &l), 0,
	    "bare name in upper case");
	TAP_OK(l.kind == STORE_LOGIN_USER &&
	    strcmp(l.name, "alice@example.test") == 0,
	    "matched as the store keeps addresses (lower case)");
	TAP_EQ_INT(t_lookup(st, "Alice@EXAMPLE.test", T_PW, "other.test",
	    &l), 0, "a full address ignores the default domain");
	TAP_OK(l.kind == STORE_LOGIN_USER, "and is found");
	TAP_EQ_INT(t_lookup(st, "nobody", T_PW, "example.test", &l), 0,
	    "unknown bare name");
	TAP_OK(l.kind == STORE_LOGIN_NONE &&
	    strcmp(l.name, "nobody@example.test") == 0,
	    "no login, named in full");
	TAP_EQ_INT(t_lookup(st, "", T_PW, "example.test", &l), 0,
	    "empty name");
	TAP_OK(l.kind == STORE_LOGIN_NONE, "no login");
	TAP_EQ_INT(t_lookup(st, "a b@@", T_PW, NULL, &l), 0, "garbage");
	TAP_OK(l.kind == STORE_LOGIN_NONE, "no login");
}

static void
test_app_passwords(struct store *st)
{
	char pw1[STORE_LOGIN_PASSWORD_LEN + 1];
	char pw2[STORE_LOGIN_PASSWORD_LEN + 1];
	char wrong[STORE_LOGIN_PASSWORD_LEN + 1];
	struct pr_err err = { 0 };
	struct store_login l;
	int64_t alice;

	t_generate(st, pw1);
	t_generate(st, pw2);
	TAP_OK(strcmp(pw1, pw2) != 0, "two passwords differ");
	TAP_EQ_INT(store_app_password_add(st, "alice@example.test", "Phone",
	    pw1, &err), 0, "add app password phone");
	TAP_EQ_INT(store_app_password_add(st, "alice@example.test", "phone",
	    pw2, &err), PR_EEXIST, "a label twice (any case) is refused");
	TAP_EQ_INT(store_app_password_add(st, "alice@example.test", "laptop",
	    pw2, &err), 0, "add app password laptop");
	TAP_EQ_INT(store_app_password_add(st, "nobody@example.test", "x",
	    pw2, &err), PR_ENOENT, "no such user");
	TAP_EQ_INT(store_app_password_add(st, "alice@example.test", "a b",
	    pw2, &err), PR_EINVAL, "a bad label");
	TAP_EQ_INT(store_app_password_add(st, "alice@example.test", "typed",
	    T_PW, &err), PR_EINVAL, "a password not generated");
	TAP_EQ_INT(t_int("SELECT count(*) FROM app_passwords WHERE hash LIKE "
	    "'$argon2id$%'"), 2, "stored as argon2id hashes");

	TAP_EQ_INT(t_lookup(st, "alice", pw1, "example.test", &l), 0,
	    "lookup with the phone's tag");
	alice = l.user_id;
	TAP_OK(l.kind == STORE_LOGIN_APP && l.user_id > 0 && l.cred_id > 0 &&
	    strcmp(l.label, "phone") == 0 &&
	    strcmp(l.name, "alice@example.test") == 0 &&
	    strcmp(l.account, "app/phone/alice@example.test") == 0,
	    "the phone's app password, an account of its own (%s)",
	    l.account);
	TAP_EQ_INT(store_password_verify(l.hash, pw1), 0,
	    "its one hash takes it");
	TAP_EQ_INT(store_password_verify(l.hash, pw2), PR_EAUTH,
	    "and not the laptop's password");
	TAP_EQ_INT(t_lookup(st, "alice@example.test", pw2, NULL, &l), 0,
	    "lookup with the laptop's tag");
	TAP_OK(l.kind == STORE_LOGIN_APP && strcmp(l.label, "laptop") == 0 &&
	    l.user_id == alice, "picks the laptop's hash");
	TAP_EQ_INT(t_lookup(st, "bob@example.test", pw1, NULL, &l), 0,
	    "alice's tag, bob's name");
	TAP_OK(l.kind == STORE_LOGIN_USER && l.user_id != alice,
	    "is bob's own password to check");
	TAP_EQ_INT(t_lookup(st, "alice@example.test", T_PW, NULL, &l), 0,
	    "lookup without a tag");
	TAP_OK(l.kind == STORE_LOGIN_USER, "is the main password");
	/* The same shape, a tag nobody holds: the main password. */
	memcpy(wrong, pw1, sizeof(wrong));
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	TAP_EQ_INT(t_lookup(st, "alice@example.test", wrong, NULL, &l), 0,
	    "lookup with an unknown tag");
	TAP_OK(l.kind == STORE_LOGIN_USER, "is the main password");

	TAP_EQ_INT(store_app_password_del(st, "alice@example.test", "PHONE",
	    &err), 0, "del phone");
	TAP_EQ_INT(store_app_password_del(st, "alice@example.test", "phone",
	    &err), PR_ENOENT, "del twice");
	TAP_EQ_INT(t_lookup(st, "alice@example.test", pw1, NULL, &l), 0,
	    "lookup with the deleted tag");
	TAP_OK(l.kind == STORE_LOGIN_USER, "falls back to the main password");
	TAP_EQ_INT(store_user_del(st, "bob@example.test", &err), 0,
	    "a user deleted");
	sodium_memzero(pw1, sizeof(pw1));
	sodium_memzero(pw2, sizeof(pw2));
}

static int
t_dev_cb(void *ctx, const struct store_device *d)
{
	char *out = ctx;
	size_t n = strlen(out);

	snprintf(out + n, 256 - n, "%s %s %u;", d->name, d->from, d->rate);
	return 0;
}

static void
test_devices(struct store *st)
{
	char pw[STORE_LOGIN_PASSWORD_LEN + 1], list[256] = "";
	struct pr_err err = { 0 };
	struct store_login l;
	unsigned n;
	int64_t id;

	t_generate(st, pw);
	TAP_EQ_INT(store_device_add(st, "Scanner", "Scanner@Example.test", 3,
	    pw, &err), 0, "add device scanner");
	TAP_EQ_INT(store_device_add(st, "scanner", "x@example.test", 0, pw,
	    &err), PR_EEXIST, "a name twice");
	TAP_EQ_INT(store_device_add(st, "nas", "nas@remote.test", 0, pw,
	    &err), PR_ENOENT, "a sender of a domain not hosted");
	TAP_EQ_INT(store_device_add(st, "a@b", "nas@example.test", 0, pw,
	    &err), PR_EINVAL, "a name with @");
	TAP_EQ_INT(store_device_list(st, t_dev_cb, list, &err), 0, "list");
	TAP_OK(strcmp(list, "scanner scanner@example.test 3;") == 0,
	    "listed in lower case (%s)", list);

	TAP_EQ_INT(t_lookup(st, "scanner", pw, "example.test", &l), 0,
	    "lookup of the device");
	id = l.cred_id;
	TAP_OK(l.kind == STORE_LOGIN_DEVICE && l.user_id == 0 && id > 0 &&
	    strcmp(l.name, "scanner") == 0 &&
	    strcmp(l.from, "scanner@example.test") == 0 && l.rate == 3 &&
	    strcmp(l.account, "device/scanner") == 0,
	    "a device, an account of its own");
	TAP_EQ_INT(store_password_verify(l.hash, pw), 0, "its hash");
	TAP_EQ_INT(t_lookup(st, "scanner", T_PW, "example.test", &l), 0,
	    "the device's name without its tag");
	TAP_OK(l.kind == STORE_LOGIN_NONE &&
	    strcmp(l.name, "scanner@example.test") == 0,
	    "is a (missing) user of the default domain");

	TAP_EQ_INT(store_device_sent(st, id, 0, &n, &err), 0, "count");
	TAP_EQ_INT(n, 0, "nothing sent yet");
	TAP_EQ_INT(store__begin(st, &err), 0, "begin");
	TAP_EQ_INT(store__device_count(st, id, 10000, &err), 0, "count one");
	TAP_EQ_INT(store__device_count(st, id, 12000, &err), 0, "count two");
	TAP_EQ_INT(store__device_count(st, id, 14000, &err), 0,
	    "count three, forgetting the first (an hour old)");
	TAP_EQ_INT(store__commit(st, &err), 0, "commit");
	TAP_EQ_INT(store_device_sent(st, id, 14000 - 3600, &n, &err), 0,
	    "count of the last hour");
	TAP_EQ_INT(n, 2, "two in the last hour");
	TAP_EQ_INT(t_int("SELECT count(*) FROM device_sends"), 2,
	    "older rows are gone");

	TAP_EQ_INT(store_device_del(st, "SCANNER", &err), 0, "del");
	TAP_EQ_INT(store_device_del(st, "scanner", &err), PR_ENOENT,
	    "del twice");
	TAP_EQ_INT(t_int("SELECT count(*) FROM device_sends"), 0,
	    "its counts went with it");
	TAP_EQ_INT(t_lookup(st, "scanner", pw, NULL, &l), 0,
	    "lookup of the deleted device");
	TAP_OK(l.kind == STORE_LOGIN_NONE, "no login");
	sodium_memzero(pw, sizeof(pw));
}

int
main(void)
{
	struct pr_err err = { 0 };
	struct store *st;

	t_setup("logins");
	st = t_open();
	if (store_domain_add(st, "example.test", &err) < 0 ||
	    store_user_add(st, "alice@example.test", T_PW, 0, &err) < 0 ||
	    store_user_add(st, "bob@example.test", T_PW, 0, &err) < 0) {
		printf("Bail out! setup: %s\n", err.msg);
		return 1;
	}
	test_tag();
	test_users(st);
	test_app_passwords(st);
	test_devices(st);
	TAP_EQ_INT(store_check(st, &err), 0, "the database passes check");
	store_close(&st);
	return tap_done();
}
