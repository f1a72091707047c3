/*
 * store.h - the mailbox store: the only public header of store/.
 *
 * One SQLite file <data_dir>/mail.db shared by postroom-smtpd,
 * postroom-pop3d and the postroom CLI.  Only store/ knows SQLite; this API
 * speaks in domains, users, aliases, messages and maildrops, so another
 * backend could replace it without touching the daemons.
 *
 * A struct store is one database connection and must be used by one thread
 * at a time.  Each thread that needs the store opens its own.
 *
 * Addresses passed in are canonical (addr_parse_mailbox) or at least
 * "local@domain"; the store compares them case-insensitively (ASCII) and
 * stores them in lower case.
 *
 * Durability: every write commits with WAL and synchronous=FULL before the
 * call returns 0.
 */
#ifndef POSTROOM_STORE_H
#define POSTROOM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "dsn.h"
#include "err.h"

struct store;

#define STORE_OPEN_CREATE 1u /* create data_dir/mail.db if missing */

/* Opens (and with STORE_OPEN_CREATE creates) <data_dir>/mail.db, applies
 * forward migrations, refuses a schema newer than this binary with
 * PR_EVERSION.  Returns 0 or an error with err set. */
int store_open(const char *data_dir, unsigned flags, struct store **st_r,
    struct pr_err *err);
void store_close(struct store **st);
/* Gives back what an idle connection holds for speed: the database
 * file's memory map (its pages count in the process's PSS once read) and
 * SQLite's unused page cache.  For a daemon that has gone idle
 * (daemon_trim); the connection works as before afterwards. */
void store_release_memory(struct store *st);

/* --- Reserve (store_reserve.c) ----------------------------------------- */

/* Room kept in data_dir so that POP3 users can log in and delete mail
 * from a full disk. */
#define STORE_RESERVE_BYTES (16 * 1024 * 1024)

/* Creates the reserve file if it is missing or short.  Returns 0, PR_EFULL
 * when there is no room for it (yet), or PR_EIO. */
int store_reserve_ensure(struct store *st, struct pr_err *err);
/* Removes the reserve; returns the octets given back (0: none). */
int64_t store_reserve_release(struct store *st);

/* --- Login throttling (store_throttle.c) ------------------------------ */

/*
 * Failed logins are counted per client (an IPv4 address, or an IPv6 /64
 * as "2001:db8:1:2::/64") and per account (the name as given, in lower
 * case), over a fixed window: a count is forgotten window seconds after
 * the first failure it holds.  The rows live in the database, so both
 * daemons and their restarts share them.  now is unix seconds, given by
 * the caller (the store reads no clock).  An empty or NULL name is not
 * counted (its count reads 0).
 */
struct store_throttle {
	unsigned ip_failures;
	unsigned account_failures;
};

/* Reads both counts into *t_r.  Returns 0 or an error (then *t_r is 0). */
int store_throttle_get(struct store *st, const char *ip_key,
    const char *account, int64_t now, int64_t window,
    struct store_throttle *t_r, struct pr_err *err);

/* Counts one failure for both in one transaction, forgets expired rows,
 * and returns the new counts in *t_r.  Returns 0 or an error. */
int store_throttle_fail(struct store *st, const char *ip_key,
    const char *account, int64_t now, int64_t window,
    struct store_throttle *t_r, struct pr_err *err);

/* A correct password: forgets the failures of account (the client's own
 * count stays until it expires).  Returns 0 or an error. */
int store_throttle_clear(struct store *st, const char *account,
    struct pr_err *err);

/* Several of the two above in one transaction (the daemons' store worker
 * batches them, so a flood of failures costs one commit, not one each).
 * Each u[i] gets its counts (after a failure) and its status; returns 0,
 * or the commit's error (then every status is that error). */
struct store_throttle_update {
	const char *ip_key;        /* a failure; NULL: a success */
	const char *account;
	int64_t now;
	struct store_throttle counts;
	int status;
};
int store_throttle_update(struct store *st, struct store_throttle_update *u,
    size_t n, int64_t window, struct pr_err *err);

/* --- Greylisting (store_greylist.c) ---------------------------------- */

/*
 * One RCPT's greylisting triplet (the client's network, the envelope
 * sender, the recipient; compared without case).  A new triplet, or one
 * first seen less than delay seconds ago, waits (STORE_GREY_WAIT, with
 * the seconds left in wait); a retry after the delay passes and is
 * remembered for keep seconds after it was last seen; one that never
 * passed is forgotten after retry_max.  spf_domain (NULL or "" = none)
 * is a sender domain with SPF pass: when one of its triplets passed
 * within keep, it passes at once.  Expired rows are deleted here, and
 * the oldest ones past STORE_GREY_PENDING_MAX or STORE_GREY_PASSED_MAX.  now
 * is unix seconds, given by the caller.
 */
/* Most triplets that have not passed yet, and most that have: remote
 * clients choose the senders, so without a bound a flood of them (or of
 * their retries) fills the disk for retry_max (keep).  Past it the
 * oldest pending ones go, those least likely to be retried (RFC 5321
 * 4.5.4.1: a retry comes after 30 minutes or so, not days), and the
 * passed ones seen longest ago, which at worst wait once more. */
#define STORE_GREY_PENDING_MAX 100000
#define STORE_GREY_PASSED_MAX 100000

enum store_grey_result {
	STORE_GREY_PASS = 0,
	STORE_GREY_WAIT = 1,
};
struct store_greylist_req {
	const char *net, *sender, *rcpt, *spf_domain;
	int64_t now, delay, keep, retry_max;
	/* out */
	int status;                /* 0 or PR_E* */
	enum store_grey_result result;
	int64_t wait;
};
/* Decides and records each of q[0..n) in one transaction.  Returns 0, or
 * the commit's error (then every status is that error). */
int store_greylist_update(struct store *st, struct store_greylist_req *q,
    size_t n, struct pr_err *err);

/* Schema version of the open database. */
int store_schema_version(struct store *st);
/* PRAGMA integrity_check + foreign_key_check; 0 or PR_EIO with err. */
int store_check(struct store *st, struct pr_err *err);

/* --- Backup and verify (store_backup.c, docs/BACKUP.md) --------------- */

/* What a database holds, as the backup manifest records it. */
struct store_counts {
	int schema;          /* PRAGMA user_version */
	int64_t domains, users, aliases;
	int64_t bodies;      /* messages, stored once each */
	int64_t mailbox;     /* mailbox entries (a body per recipient) */
	int64_t queue, queue_rcpt;
};

/*
 * Writes a consistent snapshot of the open database to path, a file that
 * must not exist yet; it is created 0600 and is one self-contained SQLite
 * file (no -wal).  Online: the daemons go on committing meanwhile, and the
 * snapshot holds every transaction committed before it began.  The copy is
 * integrity-checked, and its counts go into *c_r.  On failure path is
 * removed.  Returns 0, or PR_EIO / PR_EVERSION with err.
 */
int store_backup(struct store *st, const char *path, struct store_counts *c_r,
    struct pr_err *err);

/* Opens the database file path read-only (a snapshot, not a data_dir):
 * PRAGMA integrity_check, its schema (PR_EVERSION when newer than this
 * binary) and its counts into *c_r.  Returns 0 or an error with err. */
int store_snapshot_check(const char *path, struct store_counts *c_r,
    struct pr_err *err);

/* Called once per problem found; repaired tells whether this run put it
 * right.  problem is valid during the call only. */
typedef void (*store_verify_cb)(void *arg, const char *problem,
    bool repaired);
/*
 * PRAGMA integrity_check, foreign keys, and the store's own invariants
 * (docs/BACKUP.md 3): usage counters, mailbox rows of deleted users or
 * missing bodies, unreferenced bodies, queue entries and recipients,
 * greylist counters.  With repair, what can be repaired safely is, in one
 * transaction (nothing on a file that fails integrity_check).  Returns the
 * number of problems left (0: all is well), or a negative error with err.
 */
int store_verify(struct store *st, bool repair, store_verify_cb cb, void *arg,
    struct pr_err *err);

/* --- Domains ----------------------------------------------------------- */

int store_domain_add(struct store *st, const char *domain,
    struct pr_err *err);
/* Refused with PR_EBUSY while the domain still has users or aliases
 * (counted by alias, not by target). */
int store_domain_del(struct store *st, const char *domain,
    struct pr_err *err);
/* 1 if hosted, 0 if not, <0 on error. */
int store_domain_exists(struct store *st, const char *domain);
/* Calls cb for each domain in name order; a non-zero return from cb stops
 * the walk and is returned. */
int store_domain_list(struct store *st,
    int (*cb)(void *ctx, const char *domain), void *ctx, struct pr_err *err);

/* --- Users ------------------------------------------------------------- */

struct store_user {
	int64_t id;
	const char *address; /* valid during the callback / until next call */
	int64_t quota;       /* bytes, 0 = unlimited */
	int64_t used;        /* bytes in the mailbox */
	int64_t messages;    /* messages in the mailbox */
	int64_t created;     /* unix time */
};

/* Adds a user of a hosted domain (PR_ENOENT if not hosted, PR_EEXIST if
 * the address is a user or an alias already).  The password is hashed with
 * argon2id; the empty password is refused (PR_EINVAL). */
int store_user_add(struct store *st, const char *address,
    const char *password, int64_t quota, struct pr_err *err);
/* Deletes the user and their mailbox, and takes the user (and +tag
 * forms of the address, RFC 5233) out of every alias's targets; an alias
 * left without targets goes too.  All in one transaction. */
int store_user_del(struct store *st, const char *address,
    struct pr_err *err);
/* store_user_del, telling alias_cb about each alias it changed: deleted
 * is true for an alias that lost its last target and is gone. */
int store_user_del_report(struct store *st, const char *address,
    void (*alias_cb)(void *ctx, const char *alias, bool deleted), void *ctx,
    struct pr_err *err);
int store_user_passwd(struct store *st, const char *address,
    const char *password, struct pr_err *err);
int store_user_set_quota(struct store *st, const char *address,
    int64_t quota, struct pr_err *err);
/* Looks up one user; u->address points into st until the next call. */
int store_user_get(struct store *st, const char *address,
    struct store_user *u_r, struct pr_err *err);
/* All users, or those of one domain (domain NULL = all), address order. */
int store_user_list(struct store *st, const char *domain,
    int (*cb)(void *ctx, const struct store_user *u), void *ctx,
    struct pr_err *err);

/* --- Passwords --------------------------------------------------------- */

#define STORE_HASH_MAX 128 /* >= crypto_pwhash_STRBYTES */
/* Longest password accepted for a new user or password change (octets);
 * longer ones are refused with PR_EINVAL, like the empty one. */
#define STORE_PASSWORD_MAX 1024

/* argon2id hash (libsodium crypto_pwhash_str, interactive limits). */
int store_password_hash(const char *password, char hash_r[STORE_HASH_MAX]);
/* 0 if password matches hash, PR_EAUTH if not.  With hash NULL (unknown
 * user) a dummy hash is verified so timing does not reveal existence.
 * CPU- and memory-heavy: daemons call it off the event loop. */
int store_password_verify(const char *hash, const char *password);

/* Fetches the user's id and hash for an off-loop verification.  Returns 0,
 * or PR_ENOENT for no such user (then *id_r = 0 and hash_r is ""). */
int store_user_auth_info(struct store *st, const char *address,
    int64_t *id_r, char hash_r[STORE_HASH_MAX], struct pr_err *err);

/* store_user_auth_info + store_password_verify.  PR_EAUTH for a wrong
 * password or an unknown user alike.  Never logs the password. */
int store_user_verify(struct store *st, const char *address,
    const char *password, int64_t *id_r, struct pr_err *err);

/* --- Logins: app passwords and devices (store_logins.c) ---------------- */

/*
 * Besides a user's own password, two more kinds of credential log in:
 *
 *  - an app password: a generated password of one user, with a label
 *    ("phone"), that works wherever the user's own password does (POP3,
 *    SMTP AUTH) and can be revoked on its own;
 *  - a device: a generated send-only SMTP login (a scanner, a NAS) with a
 *    name of its own, allowed one sender address and a rate per hour.
 *
 * Generated passwords have the shape STORE_LOGIN_TAG_LEN characters of
 * tag, '-', STORE_LOGIN_SECRET_LEN characters of secret, all from
 * STORE_LOGIN_ALPHABET.  The tag is stored in clear and names the
 * credential, so a login checks one argon2id hash whatever the number of
 * app passwords: the tag picks the hash (docs/ARCHITECTURE.md 3.2).  The
 * hash covers the whole password; the tag alone proves nothing.
 */
#define STORE_LOGIN_TAG_LEN 8
#define STORE_LOGIN_SECRET_LEN 24
#define STORE_LOGIN_PASSWORD_LEN \
	(STORE_LOGIN_TAG_LEN + 1 + STORE_LOGIN_SECRET_LEN)
/* 32 characters, none that reads like another (no 0, 1, l, o). */
#define STORE_LOGIN_ALPHABET "abcdefghijkmnpqrstuvwxyz23456789"
#define STORE_LOGIN_LABEL_MAX 64  /* app password labels, device names */

enum store_login_kind {
	STORE_LOGIN_NONE = 0,   /* no such login: a dummy hash is checked */
	STORE_LOGIN_USER,       /* the user's own password */
	STORE_LOGIN_APP,        /* an app password of the user */
	STORE_LOGIN_DEVICE,     /* a device: SMTP submission only */
};

/* What a login name and a password's tag resolve to. */
struct store_login {
	enum store_login_kind kind;
	int64_t user_id;        /* USER, APP: the mailbox; else 0 */
	int64_t cred_id;        /* APP, DEVICE: the credential; else 0 */
	/* The login as logs and Received fields name it: the full address
	 * (a bare name completed with the default domain), or the device's
	 * name; the name as given, lower case, for NONE. */
	char name[ADDR_MAX];
	/* The account that failed logins count against (authlimit.h):
	 * name for USER and NONE, "name/app/LABEL" for an app password,
	 * "device/NAME" for a device, so that each counts on its own. */
	char account[ADDR_MAX + STORE_LOGIN_LABEL_MAX + 8];
	char label[STORE_LOGIN_LABEL_MAX + 1]; /* APP: label; DEVICE: name */
	char from[ADDR_MAX];    /* DEVICE: the one sender address */
	unsigned rate;          /* DEVICE: messages per hour, 0 = no limit */
	char hash[STORE_HASH_MAX]; /* "" for NONE; the caller wipes it */
};

/* The tag of password when it has the shape of a generated password,
 * into tag_r (STORE_LOGIN_TAG_LEN + 1 octets); else tag_r is "" and
 * false is returned.  Pure: reads nothing but password. */
bool store_login_tag(const char *password,
    char tag_r[STORE_LOGIN_TAG_LEN + 1]);

/*
 * Resolves a login.  A name without '@' is taken as name@default_domain
 * when default_domain is set (NULL or "" = off); names compare as the
 * store compares addresses (lower case).  With a tag (store_login_tag of
 * the password given), a device of that name or an app password of that
 * user holding the tag is the login; otherwise the user's own password.
 * Returns 0 with *l_r filled in (kind NONE when nothing matched, so that
 * the caller checks a dummy hash), or a store error.
 */
int store_login_lookup(struct store *st, const char *name, const char *tag,
    const char *default_domain, struct store_login *l_r, struct pr_err *err);

/* A new password of the generated shape with a tag used by no other
 * credential, into pw_r (STORE_LOGIN_PASSWORD_LEN + 1 octets). */
int store_login_generate(struct store *st,
    char pw_r[STORE_LOGIN_PASSWORD_LEN + 1], struct pr_err *err);

/* Adds app password label of user address, with the password pw (from
 * store_login_generate).  PR_ENOENT: no such user; PR_EEXIST: the user
 * has that label already; PR_EINVAL: a bad label (1 to
 * STORE_LOGIN_LABEL_MAX characters of letters, digits, '.', '_', '-'). */
int store_app_password_add(struct store *st, const char *address,
    const char *label, const char *pw, struct pr_err *err);
/* Revokes it at once: the next login with it fails.  PR_ENOENT if the
 * user has no such label. */
int store_app_password_del(struct store *st, const char *address,
    const char *label, struct pr_err *err);
/* cb(label, created) per app password of address, label order. */
int store_app_password_list(struct store *st, const char *address,
    int (*cb)(void *ctx, const char *label, int64_t created), void *ctx,
    struct pr_err *err);

struct store_device {
	const char *name;       /* valid during the callback */
	const char *from;
	unsigned rate;          /* per hour, 0 = no limit */
	int64_t created;
};

/* Adds device name (rules of a label, lower case), which may send as from
 * (an address of a hosted domain) at most rate messages an hour (0 = no
 * limit), with password pw.  PR_EEXIST, PR_EINVAL, PR_ENOENT (domain not
 * hosted). */
int store_device_add(struct store *st, const char *name, const char *from,
    unsigned rate, const char *pw, struct pr_err *err);
int store_device_del(struct store *st, const char *name, struct pr_err *err);
int store_device_list(struct store *st,
    int (*cb)(void *ctx, const struct store_device *d), void *ctx,
    struct pr_err *err);
/* Messages device cred_id sent since unix time since, into *n_r. */
int store_device_sent(struct store *st, int64_t cred_id, int64_t since,
    unsigned *n_r, struct pr_err *err);

/* --- Aliases ----------------------------------------------------------- */

/*
 * Adds alias -> targets (comma-separated addresses, local or remote).
 * The alias is "local@domain" or "@domain" (catch-all) of a hosted domain;
 * it may not be a user's address.  A target that would make the alias
 * graph loop back to alias is refused with PR_ELOOP; a local target that is
 * neither a user nor an alias is refused with PR_ENOENT.  Adding targets to
 * an existing alias extends it.
 */
int store_alias_add(struct store *st, const char *alias, const char *targets,
    struct pr_err *err);

enum {
	STORE_ALIAS_APPEND = 1 << 0, /* an existing alias gets the targets */
	STORE_ALIAS_FORCE = 1 << 1,  /* accept unknown local targets */
};

/*
 * What the admin CLI adds: alias -> targets as store_alias_add, but
 * stricter.  An existing alias is PR_EEXIST unless flags has
 * STORE_ALIAS_APPEND.  A local target must be a user or an alias itself
 * (or a +tag of one, RFC 5233): a catch-all does not count, since the
 * target would then only name whatever the catch-all reaches.  Without
 * STORE_ALIAS_FORCE another local target is PR_ENOENT; with it, it is
 * added and reported to unknown_cb (may be NULL).  Loops are PR_ELOOP.
 */
int store_alias_set(struct store *st, const char *alias, const char *targets,
    unsigned flags, void (*unknown_cb)(void *ctx, const char *target),
    void *ctx, struct pr_err *err);
int store_alias_del(struct store *st, const char *alias,
    struct pr_err *err);
/* Calls cb(alias, "t1,t2") per alias in name order. */
int store_alias_list(struct store *st,
    int (*cb)(void *ctx, const char *alias, const char *targets), void *ctx,
    struct pr_err *err);

/* --- Recipient resolution ---------------------------------------------- */

enum store_resolve_kind {
	STORE_RESOLVE_LOCAL = 1,   /* hosted; targets reported via cb */
	STORE_RESOLVE_REMOTE = 2,  /* domain not hosted here */
	STORE_RESOLVE_UNKNOWN = 3, /* hosted domain, no such user/alias */
};

#define STORE_RESOLVE_DEPTH 8 /* alias nesting followed at most */
#define STORE_RESOLVE_MAX 1000 /* expanded targets at most */

/*
 * Resolves address: exact user, exact alias, then plus-addressing
 * (user+tag@ -> user@, RFC 5233 style), then the catch-all "@domain".
 * Aliases expand recursively (bounded).  For every resulting target, cb is
 * called once with either a local user id (remote NULL) or a remote address
 * (user_id 0); duplicates are removed.  Returns a STORE_RESOLVE_* kind or a
 * negative error.
 *
 * cb is called only for STORE_RESOLVE_LOCAL (the caller already has the
 * address of a REMOTE one).  Remote targets keep the local part as written
 * (RFC 5321 2.4).  A non-zero return from cb stops the walk and is
 * returned.  Nesting past STORE_RESOLVE_DEPTH is PR_ELOOP, more than
 * STORE_RESOLVE_MAX targets PR_ENOSPC; an alias whose targets are all gone
 * is STORE_RESOLVE_UNKNOWN.
 */
int store_resolve(struct store *st, const char *address,
    int (*cb)(void *ctx, int64_t user_id, const char *remote), void *ctx,
    struct pr_err *err);

/* 1 if an authenticated user may use address as MAIL FROM: it is their own
 * address, a +tag of it, or an alias whose expansion includes them.
 * 0 if not, <0 on error. */
int store_sender_allowed(struct store *st, int64_t user_id,
    const char *address);

/* The address of user id into out (ADDR_MAX octets); PR_ENOENT if the
 * user is gone. */
int store_user_address(struct store *st, int64_t user_id, char *out,
    size_t outsz, struct pr_err *err);

/* Bytes and messages in a mailbox and its quota (0 = unlimited). */
int store_mailbox_usage(struct store *st, int64_t user_id, int64_t *bytes_r,
    int64_t *count_r, int64_t *quota_r, struct pr_err *err);

/* --- Delivery ---------------------------------------------------------- */

#define STORE_ID_LEN 16 /* message ids are 16 hex characters */

struct store_msg {
	/* in */
	const char *sender;             /* envelope MAIL FROM, "" = null */
	const int64_t *users;           /* local mailboxes */
	size_t n_users;
	const char *const *remote;      /* outbound queue recipients */
	size_t n_remote;
	/* DSN (RFC 3461), kept with the queue entry: RET= (enum dsn_ret),
	 * ENVID= (decoded, NULL or "" = none) and, optional, parallel to
	 * remote, each recipient's NOTIFY= bits and ORCPT=
	 * ("addr-type;address", NULL or "" = none). */
	int dsn_ret;
	const char *dsn_envid;
	const unsigned *remote_notify;
	const char *const *remote_orcpt;
	const uint8_t *head;            /* prepended header lines (CRLF) */
	size_t head_len;
	const uint8_t *body;            /* message in memory, or ... */
	size_t body_len;
	int body_fd;                    /* ... >= 0: body_len bytes at fd
	                                   offset 0 (a spool file) */
	int *user_status;               /* optional, n_users entries: per
	                                   local mailbox, see store_deliver */
	int64_t device_id;              /* > 0: sent by this device, whose
	                                   hourly count the commit adds to */
	/* Non-NULL: a content filter quarantined the message (the reason,
	 * docs/MILTER.md).  Its body and resolved recipients are held in
	 * the store, in no mailbox and no queue, until
	 * store_held_release() or store_held_del(); quotas are not
	 * checked. */
	const char *held;
	const char *key;                /* optional: a local submission's
	                                   spool name; a key delivered
	                                   before (kept a week) makes the
	                                   message fail with PR_EEXIST and
	                                   commit nothing */
	const char *trace_event;        /* optional: the trace event of its
	                                   arrival; NULL = "received", a
	                                   bounce's is "dsn" */
	const char *trace_info;         /* optional: key=value details of
	                                   that event (client, HELO, TLS,
	                                   login, verdicts), at most
	                                   STORE_TRACE_INFO_MAX octets */
	/* out */
	int status;                     /* 0, PR_EQUOTA, PR_ETOOBIG, ... */
	struct pr_err err;
	/* in/out: the "queued as" id.  A caller may set one of
	 * STORE_ID_LEN lower-case hex digits (e.g. already written into the
	 * Received field); otherwise the store makes one up.  Cleared when
	 * the message fails. */
	char id[STORE_ID_LEN + 1];
};

/*
 * Delivers n messages in one transaction (group commit): the body stored
 * once, one mailbox entry per local user (with its own UIDL), one outbound
 * queue entry for the remote recipients.  Each message succeeds or fails
 * on its own (savepoints): msgs[i]->status is 0 or the reason, e.g.
 * PR_EQUOTA when a mailbox would exceed its quota, PR_ETOOBIG when the
 * message alone exceeds it.  With m->user_status set, quotas are per
 * recipient instead: a mailbox that cannot take the message is skipped
 * and its user_status[i] set (PR_EQUOTA, PR_ETOOBIG; 0 = delivered), and
 * the message succeeds as long as another recipient, local or remote,
 * takes it; only when none does it fails (PR_EQUOTA, or PR_ETOOBIG when
 * it is too big for every mailbox).  Quota errors name the mailbox.
 * head + body is stored as CRLF text: a lone
 * LF or CR becomes CRLF and a non-empty message without a final CRLF gets
 * one, so that every size (quota, POP3 LIST) is the octet count POP3 sends
 * (RFC 1939 11).  Returns 0 when the transaction committed
 * (whatever the per-message statuses), or a negative error when nothing
 * was committed (all statuses set to it).
 */
int store_deliver(struct store *st, struct store_msg *const *msgs, size_t n);

/* --- Maildrops (POP3) -------------------------------------------------- */

struct store_entry {
	int64_t id;
	int64_t size;          /* octets as stored (CRLF lines) */
	int64_t received;      /* unix time */
	char uidl[33];         /* unique and stable, RFC 1939 7 */
};

/* Takes the maildrop lock for user_id on behalf of this process.  A lock
 * held by a live process (including this one) gives PR_EBUSY; a lock of a
 * dead process is taken over.  Returns 0 or an error. */
int store_maildrop_lock(struct store *st, int64_t user_id,
    struct pr_err *err);
int store_maildrop_unlock(struct store *st, int64_t user_id,
    struct pr_err *err);
/* Drops every lock held by this process id (daemon start-up). */
int store_maildrop_unlock_all(struct store *st, struct pr_err *err);

/* Lists the mailbox in arrival order into a malloc'd array (*n_r entries;
 * free() it).  Reads no bodies. */
int store_maildrop_list(struct store *st, int64_t user_id,
    struct store_entry **entries_r, size_t *n_r, struct pr_err *err);

/* The same listing row by row, with nothing kept: cb gets each entry
 * (valid during the call) and stops the scan by returning non-zero, which
 * is then returned.  hint_r, if not NULL, gets the number of entries the
 * user's counter announces before the first call, for sizing an array.
 * A big maildrop's caller keeps one copy of it, not two. */
int store_maildrop_scan(struct store *st, int64_t user_id,
    int (*cb)(void *ctx, const struct store_entry *e), void *ctx,
    size_t *hint_r, struct pr_err *err);

/* Deletes the given entries of user_id in one transaction; bodies no
 * longer referenced are removed too. */
int store_maildrop_delete(struct store *st, int64_t user_id,
    const int64_t *ids, size_t n, struct pr_err *err);

/* A POP3 session's end, for the trace: the messages it retrieved (and
 * when) and those it deletes. */
struct store_maildrop_end {
	const int64_t *retr;           /* entries retrieved (RETR, TOP) */
	const int64_t *retr_at;        /* unix time of each retrieval */
	size_t n_retr;
	const int64_t *dele;           /* entries to delete (QUIT) */
	size_t n_dele;
	const char *info;              /* "client=IP user=LOGIN", or NULL */
	bool unlock;                   /* release the maildrop lock too */
	/* A big deletion (more than STORE_DROP_CHUNK) is only recorded:
	 * the caller finishes it with store_maildrop_drop_step. */
	bool record_only;
};
/* Records the retrievals, deletes, and (with e->unlock) releases the
 * lock, all in one transaction (RFC 1939 6: the UPDATE state).  Returns
 * 0, 1 when e->record_only left a committed record of the deletion to
 * finish, or an error (nothing changed).  A committed record is as good
 * as done: whoever locks the maildrop next finishes it before listing
 * (store_maildrop_lock), and so does the daemon's start-up
 * (store_maildrop_unlock_all). */
int store_maildrop_end(struct store *st, int64_t user_id,
    const struct store_maildrop_end *e, struct pr_err *err);
/* One bounded write transaction (about 100 ms) of user_id's recorded
 * deletion: 1 when more is left, 0 when it is done (or there was none),
 * or an error (the slice rolled back; the record stays). */
int store_maildrop_drop_step(struct store *st, int64_t user_id,
    struct pr_err *err);

/* Streaming body reads: a body is never loaded whole. */
struct store_body;
/* Opens the body of mailbox entry entry_id (of user_id).  *size_r is the
 * entry's size. */
int store_body_open(struct store *st, int64_t user_id, int64_t entry_id,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err);
/* Reads up to len octets at offset.  Returns the count (0 at the end) or a
 * negative error (PR_ENOENT if the message was deleted meanwhile).  An open
 * body holds no database snapshot between reads, so the same store may be
 * written to while a body is being streamed. */
ssize_t store_body_read(struct store_body *b, int64_t offset, uint8_t *buf,
    size_t len);
void store_body_close(struct store_body **b);

/* For `postroom mailbox list`: per entry, envelope sender too. */
int store_mailbox_list(struct store *st, const char *address,
    int (*cb)(void *ctx, const struct store_entry *e, const char *sender),
    void *ctx, struct pr_err *err);

/* --- Outbound queue ---------------------------------------------------- */

struct store_queue_item {
	int64_t id;
	const char *msgid;       /* STORE_ID_LEN hex */
	const char *sender;
	int64_t created;
	int64_t next_attempt;
	int attempts;
	const char *last_error;  /* "" if none */
	size_t n_rcpts;
	const char *const *rcpts; /* pending recipients */
	/* Per recipient, parallel to rcpts: attempts that reached it
	 * and the reply of the last one ("" if none yet).  Every pending
	 * recipient of an entry is next tried at next_attempt. */
	const int *rcpt_attempts;
	const char *const *rcpt_replies;
};

/* Pending queue entries in id order; pointers valid during cb. */
int store_queue_list(struct store *st,
    int (*cb)(void *ctx, const struct store_queue_item *q), void *ctx,
    struct pr_err *err);
/* Removes a queue entry and its recipients (PR_ENOENT if absent). */
int store_queue_del(struct store *st, int64_t id, struct pr_err *err);
/* Removes the queue entries of message msgid (the "queued as" id of the
 * SMTP reply and the logs, STORE_ID_LEN hex, any case) with their
 * recipients; PR_ENOENT if none, PR_EINVAL if msgid is not such an id. */
int store_queue_del_msg(struct store *st, const char *msgid,
    struct pr_err *err);
/* Makes every entry due now. */
int store_queue_flush(struct store *st, struct pr_err *err);
/* When the queue was last flushed (store_queue_flush, _flush_domain),
 * unix time, 0 = never: a flush also tells the runner to forget the
 * hosts that failed lately (postroom(8) queue flush). */
int store_queue_flushed(struct store *st, int64_t *at_r,
    struct pr_err *err);
/* Makes due now the entries with a recipient in domain (lower case,
 * A-labels) and, with subdomains, in any domain below it ("@domain" of
 * ETRN, RFC 1985 5.3).  *n_r is how many entries have such a recipient,
 * the ones due already included.  One transaction, by an index. */
int store_queue_flush_domain(struct store *st, const char *domain,
    bool subdomains, size_t *n_r, struct pr_err *err);

/* Messages held by a content filter (store_msg.held). */
struct store_held_item {
	const char *msgid;       /* STORE_ID_LEN hex */
	const char *sender;
	int64_t created;
	int64_t size;
	const char *reason;
	size_t n_rcpts;
	const char *const *rcpts; /* local mailboxes and remote addresses */
};

/* Held messages, oldest first; pointers valid during cb. */
int store_held_list(struct store *st,
    int (*cb)(void *ctx, const struct store_held_item *h), void *ctx,
    struct pr_err *err);
/* Delivers held message msgid to its recipients in one transaction: a
 * mailbox entry per local recipient that still exists, a queue entry
 * for the remote ones (quotas are not checked: the admin decided).
 * *n_remote_r (may be NULL) tells whether the relay has work.  PR_ENOENT
 * if no such message is held, PR_EINVAL for a malformed id. */
int store_held_release(struct store *st, const char *msgid,
    size_t *n_remote_r, struct pr_err *err);
/* Drops held message msgid and its body; PR_ENOENT if none. */
int store_held_del(struct store *st, const char *msgid, struct pr_err *err);


/* Queue runner side (postroom-smtpd's relay). */
struct store_queue_rcpt {
	int64_t id;
	char address[256];
	unsigned notify;                 /* DSN_NOTIFY_* bits, 0 = none */
	char orcpt[DSN_ORCPT_MAX + 1];   /* "addr-type;address" or "" */
};

struct store_queue_job {
	int64_t id;
	char msgid[STORE_ID_LEN + 1];
	char sender[256];
	int64_t created;
	int attempts;
	int64_t size;               /* body octets */
	int dsn_ret;                /* enum dsn_ret */
	char dsn_envid[DSN_ENVID_MAX + 1]; /* "" = none */
	bool delay_warned;          /* the delay warning went out */
	size_t n_rcpts;
	struct store_queue_rcpt *rcpts; /* pending recipients */
};

/* How long a queue runner's claim on an entry lasts (seconds): longer
 * than any attempt (RFC 5321 4.5.3.2 timeouts, a few MX hosts), short
 * enough that the entries of a runner that crashed are tried again. */
#define STORE_QUEUE_LEASE 3600

/* Up to max entries whose next attempt is <= now and that no runner has
 * claimed, oldest first, into a malloc'd array; free with
 * store_queue_jobs_free.  Each entry returned is claimed in the same
 * transaction until now + STORE_QUEUE_LEASE, so two connections (two
 * processes) asking at once get disjoint sets.  store_queue_settle
 * releases the claim; entries stay in the queue until their recipients
 * are done or failed. */
int store_queue_due(struct store *st, int64_t now, size_t max,
    struct store_queue_job **jobs_r, size_t *n_r, struct pr_err *err);
/* Releases the claim on entry id (an attempt given up without settling,
 * e.g. at shutdown): it is due again at its next attempt. */
int store_queue_unclaim(struct store *st, int64_t id, struct pr_err *err);
/* Releases every claim.  Only for the one queue runner of a data_dir, at
 * its start: claims left then are a crashed predecessor's. */
int store_queue_unclaim_all(struct store *st, struct pr_err *err);
void store_queue_jobs_free(struct store_queue_job *jobs, size_t n);
/* Entries in the queue and the creation time of the oldest (0: empty),
 * for the metrics. */
int store_queue_stats(struct store *st, int64_t *n_r, int64_t *oldest_r,
    struct pr_err *err);
/* Earliest next_attempt of any entry, or 0 if the queue is empty. */
int store_queue_next_due(struct store *st, int64_t *when_r,
    struct pr_err *err);

/* Opens the body of queue entry queue_id for streaming (store_body_read). */
int store_queue_body_open(struct store *st, int64_t queue_id,
    struct store_body **b_r, int64_t *size_r, struct pr_err *err);

/* A queue entry's attempt, as store_queue_settle takes it. */
struct store_settle {
	/* in */
	int64_t queue_id;
	const int64_t *done;           /* recipients delivered (remote 2xx to
	                                  the final dot): they leave */
	size_t n_done;
	const int64_t *failed;         /* recipients failed for good (5xx,
	                                  expiry): they leave with bounce */
	size_t n_failed;
	struct store_msg *const *bounce; /* the non-delivery report for
	                                  failed, as for store_deliver (a
	                                  local copy, a queue entry); may
	                                  be none */
	size_t n_bounce;
	int64_t next_attempt;          /* > 0: recipients that stay are
	                                  retried then; 0: schedule kept */
	bool delay_warned;             /* bounce holds the delay warning
	                                  (RFC 3464 "delayed"): marked
	                                  sent with it, never again */
	const char *last_error;        /* recorded with next_attempt */
	const char *trace_info;        /* optional: the attempt for the
	                                  trace (MX records, host and IP
	                                  tried, TLS, the remote's reply) */
	const char *const *done_info;  /* optional, n_done entries: each
	                                  delivered recipient's reply */
	const char *const *failed_info; /* optional, n_failed entries */
	const int64_t *deferred;       /* recipients this attempt reached
	                                  and that stay: their attempts
	                                  count up, their reply is kept */
	const char *const *deferred_reply; /* parallel to deferred */
	size_t n_deferred;
	/* out */
	bool failed_kept;              /* the bounce could not be stored:
	                                  failed recipients stay queued */
};

/*
 * Settles one attempt at queue entry s->queue_id in one transaction, so
 * that a crash leaves either the whole attempt or none of it:
 *
 * - the recipients in s->done and s->failed leave the queue, and the
 *   bounce messages are delivered (each as by store_deliver, with its own
 *   status in bounce[i]->status and ->err) in the same transaction;
 * - a bounce message that a mailbox refuses for its quota (PR_EQUOTA,
 *   PR_ETOOBIG) is dropped: the failed recipients leave all the same,
 *   since keeping them would only repeat the refusal;
 * - any other bounce failure takes back every bounce message of the call:
 *   the failed recipients then stay, s->failed_kept is set and the entry
 *   records "bounce could not be stored" as its last error;
 * - with s->delay_warned, the entry is marked as warned together with
 *   the bounce messages (not when they are taken back);
 * - with s->next_attempt > 0, an entry that keeps recipients is retried
 *   at next_attempt: attempts is incremented, last_error recorded
 *   (bounded), and so are each s->deferred recipient's;
 * - the entry leaves with its last recipient, its body with its last
 *   reference.
 *
 * Returns 0 once committed.  PR_ENOENT when the entry, or a recipient
 * listed, is not in the queue (deleted with `postroom queue del`, or
 * settled already); then, as on any other error, nothing changes (every
 * bounce status is set to the error).
 */
int store_queue_settle(struct store *st, struct store_settle *s,
    struct pr_err *err);

/* --- Outbound TLS policies (store_tlspol.c) ------------------------- */

/*
 * The relay's memory of recipient domains' TLS (docs/OUTBOUND_TLS.md):
 * the MTA-STS policy last fetched for each (RFC 8461 5.1: it stays in
 * effect until it expires, whatever a later fetch or TXT lookup says),
 * and the domains whose MX hosts gave us verified TLS before (the
 * downgrade memory).  Domains are A-labels in lower case.
 */
#define STORE_STS_ID_MAX 32
#define STORE_STS_MODE_MAX 15

struct store_sts {
	char id[STORE_STS_ID_MAX + 1];   /* the TXT record's id */
	char mode[STORE_STS_MODE_MAX + 1];
	char *policy;                    /* malloc'd policy text, NUL-ended */
	int64_t fetched, expires;        /* unix time */
};

/* The cached policy of domain into *p (free p->policy).  Returns 1,
 * 0 if none is cached (expired ones are kept: the caller decides), or an
 * error. */
int store_sts_get(struct store *st, const char *domain, struct store_sts *p,
    struct pr_err *err);

/* Caches p as domain's policy, replacing the one before.  Returns 0 or
 * an error. */
int store_sts_put(struct store *st, const char *domain,
    const struct store_sts *p, struct pr_err *err);

/* When domain's MX hosts last gave us TLS with a verified certificate
 * (unix time, into *last_r, and which host into mx, RELAY_HOST_MAX
 * octets or NULL).  Entries older than keep seconds before now are
 * forgotten first.  Returns 1, 0 if not remembered, or an error. */
int store_tls_seen_get(struct store *st, const char *domain, int64_t now,
    int64_t keep, int64_t *last_r, char *mx, size_t mxsz,
    struct pr_err *err);

/* Remembers that mx, an MX host of domain, gave us verified TLS at
 * now.  Returns 0 or an error. */
int store_tls_seen_put(struct store *st, const char *domain, const char *mx,
    int64_t now, struct pr_err *err);

/* Forgets what is remembered of domain: its cached MTA-STS policy and
 * its downgrade memory (postroom tls forget).  Returns the rows removed
 * (0: nothing known) or an error. */
int store_tls_forget(struct store *st, const char *domain,
    struct pr_err *err);

/* --- Trace (store_trace.c) -------------------------------------------- */

/*
 * The events of each message (postroom trace), written by the store in
 * the transactions that commit them: received (or dsn), delivered
 * (per mailbox), queued (per remote recipient), attempt (each relay
 * attempt), relayed, failed and deferred (per remote recipient),
 * bounced (a DSN sent for it), retrieved and deleted (POP3).
 */
#define STORE_TRACE_INFO_MAX 2048

/* Days events are kept ([server] trace_days); 0 writes none.  For the
 * whole process; set once at start-up and on reload. */
void store_trace_set_days(unsigned days);

struct store_trace_event {
	int64_t at;                    /* unix time */
	const char *msgid;             /* the "queued as" id */
	const char *event;
	const char *addr;              /* "" if none */
	const char *info;              /* key=value details */
};

/*
 * Finds the messages named by what: a "queued as" id (STORE_ID_LEN hex
 * digits), a "<message-id>" or an address (the newest max_msgs messages
 * from or to it), and calls cb for each of their events, one message
 * after the other (oldest first), each in time order; pointers are
 * valid during the call.  A non-zero return of cb stops and is
 * returned.  Returns the number of messages (0: none), or PR_EINVAL for
 * a what that is none of the three, or a store error.
 */
int store_trace_find(struct store *st, const char *what, size_t max_msgs,
    int (*cb)(void *ctx, const struct store_trace_event *ev), void *ctx,
    struct pr_err *err);

/* --- TLS reporting (store_tlsrpt.c) ------------------------------------ */

/*
 * The relay's TLS results for SMTP TLS Reporting (RFC 8460), counted per
 * UTC day (days since 1970-01-01) and key: policy domain, policy type
 * and string (RFC 8460 4.4), result ("success" or a 4.3 result type)
 * and, for failures, the receiving MX host and IP, the sending IP and
 * the failure-reason-code.  Text that does not apply is "".
 */
struct store_tlsrpt_count {
	int64_t day;
	const char *domain;
	const char *policy_type;
	const char *policy_string;
	const char *result;
	const char *mx_host;
	const char *receiving_ip;
	const char *sending_ip;
	const char *reason;
	int64_t count;
};

/* Adds the n counts of v to what the store holds (same key: summed), in
 * one transaction.  Returns 0 once committed, or an error (nothing
 * added). */
int store_tlsrpt_add(struct store *st, const struct store_tlsrpt_count *v,
    size_t n, struct pr_err *err);

/* Calls cb for each count of day (all days with day < 0), ordered by
 * domain, policy and result; pointers are valid during the call.  A
 * non-zero return of cb stops and is returned.  Returns the number of
 * rows, or an error. */
int store_tlsrpt_list(struct store *st, int64_t day,
    int (*cb)(void *ctx, const struct store_tlsrpt_count *c), void *ctx,
    struct pr_err *err);

/* The same for day's domains not yet marked with
 * store_tlsrpt_domain_sent_set: what the daily run still has to
 * report. */
int store_tlsrpt_list_unsent(struct store *st, int64_t day,
    int (*cb)(void *ctx, const struct store_tlsrpt_count *c), void *ctx,
    struct pr_err *err);
/* Marks domain's report of day as done (sent, or none to send). */
int store_tlsrpt_domain_sent_set(struct store *st, int64_t day,
    const char *domain, int64_t at, struct pr_err *err);

/* Deletes the counts and sent marks of days before day.  Returns the
 * number of count rows deleted, or an error. */
int store_tlsrpt_prune(struct store *st, int64_t day, struct pr_err *err);

/* When the reports of day were sent (*at_r unix time, 0 = not yet).
 * Returns 0 or an error. */
int store_tlsrpt_sent_get(struct store *st, int64_t day, int64_t *at_r,
    struct pr_err *err);
/* Marks the reports of day as sent at at.  Returns 0 or an error. */
int store_tlsrpt_sent_set(struct store *st, int64_t day, int64_t at,
    struct pr_err *err);

/* The hosted domain that host is, or is in (the longest: "mx.a.test"
 * finds "a.test"), into out: 1; else host itself and 0; or an error. */
int store_tlsrpt_host_domain(struct store *st, const char *host,
    char out[ADDR_DOMAIN_MAX + 1], struct pr_err *err);

/* Queues a message that the system itself sends (a TLS report) from the
 * null reverse-path (RFC 5321 4.5.5: nothing ever answers it, so no
 * loop) to the n addresses of rcpts: hosted ones to their mailboxes,
 * the others to the outbound queue.  msg is the whole message (CRLF
 * lines).  A non-NULL key is remembered with the message, in its commit
 * (as a local submission's, store_msg.key), so that queueing the same
 * key again within a week queues nothing and returns PR_EEXIST.  The
 * "queued as" id goes to id_r.  Returns 0 once committed, PR_ENOENT
 * when no address takes it, PR_EEXIST, or an error. */
int store_tlsrpt_queue(struct store *st, const char *const *rcpts, size_t n,
    const uint8_t *msg, size_t len, const char *key,
    char id_r[STORE_ID_LEN + 1], struct pr_err *err);

#endif
