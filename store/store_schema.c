/*
 * store_schema.c - the database schema, as forward migrations.
 *
 * PRAGMA user_version holds the number of migrations applied.  store_open
 * applies the missing ones in one transaction; a database whose version is
 * higher than store__n_migrations was written by a newer postroom and is
 * refused.  Never edit a migration that has shipped: append a new one.
 *
 * Conventions: addresses and domain names are stored in lower case; times
 * are unix seconds; sizes are octets as stored (CRLF line ends).
 */
#include "store_int.h"

const char *const store__migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE domains (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	name     TEXT NOT NULL UNIQUE,\n"
	"	created  INTEGER NOT NULL\n"
	");\n"

	/* quota 0 means unlimited.  used and messages mirror the user's
	 * mailbox rows; the mailbox triggers keep them current so a quota
	 * check is one row read, not a SUM over the mailbox. */
	"CREATE TABLE users (\n"
	"	id        INTEGER PRIMARY KEY,\n"
	"	domain_id INTEGER NOT NULL REFERENCES domains(id),\n"
	"	address   TEXT NOT NULL UNIQUE,\n"
	"	hash      TEXT NOT NULL,\n"
	"	quota     INTEGER NOT NULL DEFAULT 0 CHECK (quota >= 0),\n"
	"	used      INTEGER NOT NULL DEFAULT 0,\n"
	"	messages  INTEGER NOT NULL DEFAULT 0,\n"
	"	created   INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX users_domain ON users(domain_id);\n"

	/* One row per (alias, target).  alias is local@domain, or @domain
	 * for the domain's catch-all; target is any address. */
	"CREATE TABLE aliases (\n"
	"	id        INTEGER PRIMARY KEY,\n"
	"	domain_id INTEGER NOT NULL REFERENCES domains(id),\n"
	"	alias     TEXT NOT NULL,\n"
	"	target    TEXT NOT NULL,\n"
	"	UNIQUE (alias, target)\n"
	");\n"
	"CREATE INDEX aliases_domain ON aliases(domain_id);\n"

	/* A message as stored: prepended header lines and the message, once
	 * for all its recipients.  data comes last so reading the other
	 * columns never walks the blob's overflow pages. */
	"CREATE TABLE bodies (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	msgid    TEXT NOT NULL,\n"
	"	sender   TEXT NOT NULL,\n"
	"	size     INTEGER NOT NULL,\n"
	"	created  INTEGER NOT NULL,\n"
	"	data     BLOB NOT NULL\n"
	");\n"

	/* Mailbox entries.  AUTOINCREMENT: an id is never reused, so an id
	 * a POP3 session holds can only ever name the message it listed. */
	"CREATE TABLE mailbox (\n"
	"	id       INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"	user_id  INTEGER NOT NULL\n"
	"	         REFERENCES users(id) ON DELETE CASCADE,\n"
	"	body_id  INTEGER NOT NULL REFERENCES bodies(id),\n"
	"	size     INTEGER NOT NULL,\n"
	"	uidl     TEXT NOT NULL UNIQUE,\n"
	"	received INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX mailbox_user ON mailbox(user_id);\n"
	"CREATE INDEX mailbox_body ON mailbox(body_id);\n"

	/* RFC 1939 8: one POP3 session per maildrop.  pid_start (the
	 * process start time from /proc, 0 if unknown) tells a live holder
	 * from an unrelated process that reused a dead holder's pid. */
	"CREATE TABLE maildrop_locks (\n"
	"	user_id   INTEGER PRIMARY KEY\n"
	"	          REFERENCES users(id) ON DELETE CASCADE,\n"
	"	pid       INTEGER NOT NULL,\n"
	"	pid_start INTEGER NOT NULL DEFAULT 0,\n"
	"	since     INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX maildrop_locks_pid ON maildrop_locks(pid);\n"

	/* Outbound queue: one entry per message, one row per recipient
	 * still to be delivered. */
	"CREATE TABLE queue (\n"
	"	id           INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"	msgid        TEXT NOT NULL,\n"
	"	body_id      INTEGER NOT NULL REFERENCES bodies(id),\n"
	"	sender       TEXT NOT NULL,\n"
	"	created      INTEGER NOT NULL,\n"
	"	next_attempt INTEGER NOT NULL,\n"
	"	attempts     INTEGER NOT NULL DEFAULT 0,\n"
	"	last_error   TEXT NOT NULL DEFAULT ''\n"
	");\n"
	"CREATE INDEX queue_next ON queue(next_attempt);\n"
	"CREATE INDEX queue_body ON queue(body_id);\n"
	"CREATE TABLE queue_rcpt (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	queue_id INTEGER NOT NULL\n"
	"	         REFERENCES queue(id) ON DELETE CASCADE,\n"
	"	address  TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX queue_rcpt_queue ON queue_rcpt(queue_id);\n"

	/* Usage counters, and reference counting of bodies: a body goes in
	 * the same transaction that drops its last mailbox or queue
	 * reference, whichever statement (or cascade) dropped it. */
	"CREATE TRIGGER mailbox_insert AFTER INSERT ON mailbox BEGIN\n"
	"	UPDATE users SET used = used + NEW.size,\n"
	"	                 messages = messages + 1\n"
	"	 WHERE id = NEW.user_id;\n"
	"END;\n"
	"CREATE TRIGGER mailbox_delete AFTER DELETE ON mailbox BEGIN\n"
	"	UPDATE users SET used = used - OLD.size,\n"
	"	                 messages = messages - 1\n"
	"	 WHERE id = OLD.user_id;\n"
	"	DELETE FROM bodies WHERE id = OLD.body_id\n"
	"	   AND NOT EXISTS (SELECT 1 FROM mailbox\n"
	"	                    WHERE body_id = OLD.body_id)\n"
	"	   AND NOT EXISTS (SELECT 1 FROM queue\n"
	"	                    WHERE body_id = OLD.body_id);\n"
	"END;\n"
	"CREATE TRIGGER queue_delete AFTER DELETE ON queue BEGIN\n"
	"	DELETE FROM bodies WHERE id = OLD.body_id\n"
	"	   AND NOT EXISTS (SELECT 1 FROM mailbox\n"
	"	                    WHERE body_id = OLD.body_id)\n"
	"	   AND NOT EXISTS (SELECT 1 FROM queue\n"
	"	                    WHERE body_id = OLD.body_id);\n"
	"END;\n",

	/* 2: queue claims.  A queue runner that takes an entry for an
	 * attempt leases it until claimed_until (unix time): another
	 * runner's scan skips it, and the lease of a runner that crashed
	 * runs out by itself.  0 = not claimed. */
	"ALTER TABLE queue ADD COLUMN claimed_until INTEGER NOT NULL"
	" DEFAULT 0;\n"
	"CREATE INDEX queue_claimed ON queue(claimed_until)"
	" WHERE claimed_until > 0;\n",

	/* 3: failed logins per client address (an IPv6 client as its /64)
	 * and per account, counted across connections, both daemons and
	 * restarts (store_throttle.c).  scope 0 is an address, 1 an
	 * account; since is the first failure of the current window. */
	"CREATE TABLE auth_failures (\n"
	"	scope    INTEGER NOT NULL,\n"
	"	name     TEXT NOT NULL,\n"
	"	since    INTEGER NOT NULL,\n"
	"	failures INTEGER NOT NULL,\n"
	"	PRIMARY KEY (scope, name)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX auth_failures_since ON auth_failures(since);\n",

	/* Logins besides a user's own password (store_logins.c): app
	 * passwords of a user, and devices, send-only SMTP logins with one
	 * sender address and a rate per hour.  tag is the clear prefix of
	 * the generated password that picks the one hash to check; it is
	 * unique across both tables (store_login_generate).  device_sends
	 * holds a device's messages of the last hour.  This migration
	 * depends only on the users table of the first one. */
	"CREATE TABLE app_passwords (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	user_id  INTEGER NOT NULL\n"
	"	         REFERENCES users(id) ON DELETE CASCADE,\n"
	"	label    TEXT NOT NULL,\n"
	"	tag      TEXT NOT NULL UNIQUE,\n"
	"	hash     TEXT NOT NULL,\n"
	"	created  INTEGER NOT NULL,\n"
	"	UNIQUE (user_id, label)\n"
	");\n"
	"CREATE TABLE devices (\n"
	"	id        INTEGER PRIMARY KEY,\n"
	"	name      TEXT NOT NULL UNIQUE,\n"
	"	from_addr TEXT NOT NULL,\n"
	"	rate      INTEGER NOT NULL DEFAULT 0 CHECK (rate >= 0),\n"
	"	tag       TEXT NOT NULL UNIQUE,\n"
	"	hash      TEXT NOT NULL,\n"
	"	created   INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE device_sends (\n"
	"	device_id INTEGER NOT NULL\n"
	"	          REFERENCES devices(id) ON DELETE CASCADE,\n"
	"	at        INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX device_sends_device ON device_sends(device_id, at);\n",
	/* Local submissions (postroom-sendmail's spool files) delivered,
	 * by spool name: the file is unlinked only after the commit, so a
	 * crash in between finds its name here and does not deliver it
	 * twice (docs/ARCHITECTURE.md 5.4).  Rows are pruned after a week.
	 * Depends on no other migration. */
	"CREATE TABLE IF NOT EXISTS submissions (\n"
	"	name    TEXT PRIMARY KEY,\n"
	"	msgid   TEXT NOT NULL,\n"
	"	created INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX IF NOT EXISTS submissions_created"
	" ON submissions(created);\n",
	/* Lookups by what an admin names: a user's address among alias
	 * targets (user del takes it out), a message id in the queue
	 * (queue del takes the "queued as" id).  IF NOT EXISTS: it depends
	 * on no other migration but the first. */
	"CREATE INDEX IF NOT EXISTS aliases_target ON aliases(target);\n"
	"CREATE INDEX IF NOT EXISTS queue_msgid ON queue(msgid);\n",
	/* Greylisting (store_greylist.c): a triplet of client network (an
	 * IPv4 /24, an IPv6 /64), envelope sender and recipient, first seen
	 * at first, let through since passed (0 = not yet), last seen at
	 * last; and the sender domains that passed with SPF pass, which
	 * skip greylisting.  Only new tables: independent of the other
	 * migrations. */
	"CREATE TABLE IF NOT EXISTS greylist (\n"
	"	net     TEXT NOT NULL,\n"
	"	sender  TEXT NOT NULL,\n"
	"	rcpt    TEXT NOT NULL,\n"
	"	first   INTEGER NOT NULL,\n"
	"	passed  INTEGER NOT NULL DEFAULT 0,\n"
	"	last    INTEGER NOT NULL,\n"
	"	PRIMARY KEY (net, sender, rcpt)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX IF NOT EXISTS greylist_last ON greylist(last);\n"
	"CREATE TABLE IF NOT EXISTS greylist_domains (\n"
	"	domain  TEXT PRIMARY KEY,\n"
	"	last    INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n",
	/* The greylisting rows expire where they are added, on every
	 * RCPT (store_greylist.c): by an index each, not by a scan of
	 * tables that remote clients fill (greylist_last, which no query
	 * needs then, goes).  greylist_size counts the triplets that have
	 * not passed and those that have, kept by the triggers, so that
	 * the bounds of store.h cost one row read.  IF EXISTS, IF NOT
	 * EXISTS: it depends only on the migration before. */
	"CREATE INDEX IF NOT EXISTS greylist_pending ON greylist(first)"
	" WHERE passed = 0;\n"
	"CREATE INDEX IF NOT EXISTS greylist_passed ON greylist(last)"
	" WHERE passed > 0;\n"
	"DROP INDEX IF EXISTS greylist_last;\n"
	"CREATE INDEX IF NOT EXISTS greylist_domains_last"
	" ON greylist_domains(last);\n"
	"CREATE TABLE IF NOT EXISTS greylist_size (\n"
	"	id      INTEGER PRIMARY KEY CHECK (id = 0),\n"
	"	pending INTEGER NOT NULL,\n"
	"	passed  INTEGER NOT NULL\n"
	");\n"
	"INSERT OR REPLACE INTO greylist_size (id, pending, passed)"
	" SELECT 0, count(*) FILTER (WHERE passed = 0),"
	" count(*) FILTER (WHERE passed > 0) FROM greylist;\n"
	"CREATE TRIGGER IF NOT EXISTS greylist_size_add"
	" AFTER INSERT ON greylist BEGIN\n"
	"	UPDATE greylist_size SET pending = pending + (NEW.passed = 0),"
	" passed = passed + (NEW.passed > 0);\n"
	"END;\n"
	"CREATE TRIGGER IF NOT EXISTS greylist_size_del"
	" AFTER DELETE ON greylist BEGIN\n"
	"	UPDATE greylist_size SET pending = pending - (OLD.passed = 0),"
	" passed = passed - (OLD.passed > 0);\n"
	"END;\n"
	"CREATE TRIGGER IF NOT EXISTS greylist_size_pass"
	" AFTER UPDATE OF passed ON greylist"
	" WHEN (OLD.passed = 0) <> (NEW.passed = 0) BEGIN\n"
	"	UPDATE greylist_size SET"
	" pending = pending + (NEW.passed = 0) - (OLD.passed = 0),"
	" passed = passed + (NEW.passed > 0) - (OLD.passed > 0);\n"
	"END;\n",
	/* DSN (RFC 3461): a queue entry keeps its RET= and ENVID= and
	 * whether its delay warning (RFC 3464 "delayed") went out, a
	 * recipient its NOTIFY= bits and ORCPT= (docs/ARCHITECTURE.md
	 * 5.2).  Only new columns with defaults: independent of the other
	 * migrations but the first. */
	"ALTER TABLE queue ADD COLUMN dsn_ret INTEGER NOT NULL DEFAULT 0;\n"
	"ALTER TABLE queue ADD COLUMN dsn_envid TEXT NOT NULL DEFAULT '';\n"
	"ALTER TABLE queue ADD COLUMN delay_warned INTEGER NOT NULL"
	" DEFAULT 0;\n"
	"ALTER TABLE queue_rcpt ADD COLUMN notify INTEGER NOT NULL"
	" DEFAULT 0;\n"
	"ALTER TABLE queue_rcpt ADD COLUMN orcpt TEXT NOT NULL"
	" DEFAULT '';\n",
	/* Messages a content filter quarantined (SMFIR_QUARANTINE,
	 * docs/MILTER.md): the body and the resolved recipients, in no
	 * mailbox and no queue, until `postroom queue release` delivers or
	 * `postroom queue del` drops them.  held_rcpt.user_id is a local
	 * mailbox (0 for a remote address).  The body goes with the last
	 * reference, as for the mailbox and the queue. */
	"CREATE TABLE IF NOT EXISTS held (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	msgid    TEXT NOT NULL UNIQUE,\n"
	"	body_id  INTEGER NOT NULL REFERENCES bodies(id),\n"
	"	sender   TEXT NOT NULL,\n"
	"	created  INTEGER NOT NULL,\n"
	"	reason   TEXT NOT NULL DEFAULT ''\n"
	");\n"
	"CREATE TABLE IF NOT EXISTS held_rcpt (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	held_id  INTEGER NOT NULL\n"
	"	         REFERENCES held(id) ON DELETE CASCADE,\n"
	"	user_id  INTEGER NOT NULL DEFAULT 0,\n"
	"	address  TEXT NOT NULL DEFAULT ''\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS held_rcpt_held ON held_rcpt(held_id);\n"
	"CREATE TRIGGER IF NOT EXISTS held_delete AFTER DELETE ON held BEGIN\n"
	"	DELETE FROM held_rcpt WHERE held_id = OLD.id;\n"
	"	DELETE FROM bodies WHERE id = OLD.body_id\n"
	"	   AND NOT EXISTS (SELECT 1 FROM mailbox\n"
	"	                    WHERE body_id = OLD.body_id)\n"
	"	   AND NOT EXISTS (SELECT 1 FROM queue\n"
	"	                    WHERE body_id = OLD.body_id);\n"
	"END;\n",
	/* The trace of each message (store_trace.c, postroom trace): one
	 * row per event, by the "queued as" id; addr is the address an
	 * event is about (sender, mailbox, recipient) in lower case, mid
	 * the Message-ID of a received event.  Rows expire by at.  Only a
	 * new table: independent of the other migrations. */
	"CREATE TABLE IF NOT EXISTS trace (\n"
	"	id      INTEGER PRIMARY KEY,\n"
	"	msgid   TEXT NOT NULL,\n"
	"	at      INTEGER NOT NULL,\n"
	"	event   TEXT NOT NULL,\n"
	"	addr    TEXT,\n"
	"	mid     TEXT,\n"
	"	info    TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS trace_msgid ON trace(msgid);\n"
	"CREATE INDEX IF NOT EXISTS trace_at ON trace(at);\n"
	"CREATE INDEX IF NOT EXISTS trace_addr ON trace(addr)"
	" WHERE addr IS NOT NULL;\n"
	"CREATE INDEX IF NOT EXISTS trace_mid ON trace(mid)"
	" WHERE mid IS NOT NULL;\n",
	/* Per-recipient queue state and the queue by destination domain
	 * (store_queue.c): how often each recipient was tried and the
	 * reply it got last, for `postroom queue list`; an index on the
	 * domain of each address, for ETRN (RFC 1985) and `postroom queue
	 * flush DOMAIN`.  Only columns and an index of queue_rcpt, which
	 * the first migration made, and a new table: independent of the
	 * others. */
	"ALTER TABLE queue_rcpt ADD COLUMN attempts INTEGER NOT NULL"
	" DEFAULT 0;\n"
	"ALTER TABLE queue_rcpt ADD COLUMN last_reply TEXT NOT NULL"
	" DEFAULT '';\n"
	"CREATE INDEX IF NOT EXISTS queue_rcpt_domain ON queue_rcpt("
	STORE_QRCPT_DOMAIN_EXPR ");\n"
	/* When the queue was last flushed by hand (`postroom queue flush`,
	 * ETRN): the relay then forgets which hosts failed lately. */
	"CREATE TABLE IF NOT EXISTS queue_flush (\n"
	"	id INTEGER PRIMARY KEY CHECK (id = 0),\n"
	"	at INTEGER NOT NULL\n"
	");\n"
	"INSERT OR IGNORE INTO queue_flush (id, at) VALUES (0, 0);\n",
	/* Outbound TLS policies (store_tlspol.c, docs/OUTBOUND_TLS.md):
	 * each recipient domain's cached MTA-STS policy (RFC 8461 5.1) and
	 * the downgrade memory, the domains whose MX hosts gave verified
	 * TLS before.  Only new tables: independent of the others. */
	"CREATE TABLE IF NOT EXISTS sts_policy (\n"
	"	domain  TEXT PRIMARY KEY,\n"
	"	id      TEXT NOT NULL,\n"
	"	mode    TEXT NOT NULL,\n"
	"	policy  TEXT NOT NULL,\n"
	"	fetched INTEGER NOT NULL,\n"
	"	expires INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE IF NOT EXISTS tls_seen (\n"
	"	domain  TEXT PRIMARY KEY,\n"
	"	mx      TEXT NOT NULL,\n"
	"	first   INTEGER NOT NULL,\n"
	"	last    INTEGER NOT NULL\n"
	");\n",
	/* SMTP TLS Reporting (RFC 8460, store_tlsrpt.c): the relay's TLS
	 * results counted per UTC day (days since the epoch), policy
	 * domain, policy and failure detail ('' where a column does not
	 * apply, so that the key is unique), and the days whose reports
	 * went out.  Only new tables: independent of the other
	 * migrations. */
	"CREATE TABLE IF NOT EXISTS tlsrpt (\n"
	"	day           INTEGER NOT NULL,\n"
	"	domain        TEXT NOT NULL,\n"
	"	policy_type   TEXT NOT NULL,\n"
	"	policy_string TEXT NOT NULL,\n"
	"	result        TEXT NOT NULL,\n"
	"	mx_host       TEXT NOT NULL,\n"
	"	receiving_ip  TEXT NOT NULL,\n"
	"	sending_ip    TEXT NOT NULL,\n"
	"	reason        TEXT NOT NULL,\n"
	"	count         INTEGER NOT NULL,\n"
	"	PRIMARY KEY (day, domain, policy_type, policy_string, result,\n"
	"	    mx_host, receiving_ip, sending_ip, reason)\n"
	");\n"
	"CREATE TABLE IF NOT EXISTS tlsrpt_sent (\n"
	"	day INTEGER PRIMARY KEY,\n"
	"	at  INTEGER NOT NULL\n"
	");\n",
	/* Big maildrops (docs/ARCHITECTURE.md, "Big maildrops").  A QUIT
	 * that deletes many messages records them first, in one commit,
	 * and then deletes them in bounded transactions, so that
	 * deliveries to other mailboxes get the write lock in between:
	 * one row per chunk, whose ids are the entry ids as 8-octet
	 * little-endian integers, gone with its chunk; info is the trace's
	 * "client= user=".
	 * A session that died half-way is finished by the next lock of
	 * the maildrop (or the daemon's start).  The maildrop listing
	 * reads one index in key order, not a table row per message
	 * scattered over a big file: mailbox_drop covers it, in id order
	 * (no sort), and takes over mailbox_user's lookups.  Only the
	 * mailbox and users tables of the first migration: independent of
	 * the others. */
	"CREATE TABLE IF NOT EXISTS maildrop_deletions (\n"
	"	id       INTEGER PRIMARY KEY,\n"
	"	user_id  INTEGER NOT NULL\n"
	"	         REFERENCES users(id) ON DELETE CASCADE,\n"
	"	ids      BLOB NOT NULL,\n"
	"	info     TEXT NOT NULL DEFAULT ''\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS maildrop_deletions_user"
	" ON maildrop_deletions(user_id, id);\n"
	"CREATE INDEX IF NOT EXISTS mailbox_drop"
	" ON mailbox(user_id, id, size, received, uidl);\n"
	"DROP INDEX IF EXISTS mailbox_user;\n",
	/* TLS-RPT per policy domain (store_tlsrpt.c): the domains of a day
	 * whose report went out (or that have none to get), so that a day
	 * whose _smtp._tls lookups failed for some is tried again for
	 * those only.  A new table: independent of the other migrations. */
	"CREATE TABLE IF NOT EXISTS tlsrpt_domain_sent (\n"
	"	day    INTEGER NOT NULL,\n"
	"	domain TEXT NOT NULL,\n"
	"	at     INTEGER NOT NULL,\n"
	"	PRIMARY KEY (day, domain)\n"
	");\n",
};

const int store__n_migrations =
    (int)(sizeof(store__migrations) / sizeof(store__migrations[0]));
