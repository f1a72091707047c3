/*
 * dkim_keyfile.h - the DKIM keys of the hosted domains on disk.
 *
 * Keys live under <data_dir>/dkim/<domain>/: "<selector>.key" holds the
 * private key (PEM, PKCS#8) and "<selector>.state" its state, one word:
 *
 *   pending   made, its record printed, not signing yet: the record has
 *             to be in DNS before the first signature a receiver checks
 *             (RFC 6376 3.6.2.1, RFC 6376 6.1.2);
 *   active    signs every outbound message of the domain; with several
 *             active keys (RSA and Ed25519) a message carries one
 *             signature per key (RFC 6376 4; RFC 8463 A.3);
 *   retired   signs no more; its record may be withdrawn.
 *
 * Key directories of an older version have no state files but a file
 * "selector" naming the one key that signed: that key counts as active
 * and the others as retired, so an upgrade keeps signing as before.
 * Files are written through a temporary file and rename(2) or link(2),
 * so a reader never sees half a file.
 */
#ifndef POSTROOM_DKIM_KEYFILE_H
#define POSTROOM_DKIM_KEYFILE_H

#include <stdbool.h>
#include <sys/types.h>

#include "dkim_key.h"
#include "err.h"

#define DKIM_KEYFILE_SELECTOR_DEFAULT "postroom"

enum dkim_keyfile_state {
	DKIM_KEYFILE_PENDING,
	DKIM_KEYFILE_ACTIVE,
	DKIM_KEYFILE_RETIRED,
};

/* At most this many keys per domain are listed or used. */
#define DKIM_KEYFILE_MAX 32

/* What dkim_keyfile_list() tells about a key. */
struct dkim_keyfile_info {
	char selector[DKIM_KEY_SELECTOR_MAX + 1];
	enum dkim_keyfile_state state;
	long long created;        /* the key file's mtime, seconds */
};

/* "pending", "active", "retired". */
const char *dkim_keyfile_state_name(enum dkim_keyfile_state st);

/*
 * Creates a new key for domain under data_dir with selector (NULL = the
 * default), in state pending.  The key file is 0600, or 0640
 * with group gid when gid is not (gid_t)-1 (the daemon's group, when the
 * CLI runs as root).  Refuses an existing selector with PR_EEXIST and a
 * domain or selector unfit for a path with PR_EINVAL.  Returns 0 and the
 * new key in *k_r, or an error with err set.
 */
int dkim_keyfile_create(const char *data_dir, const char *domain,
    const char *selector, bool ed25519, gid_t gid, struct dkim_key **k_r,
    struct pr_err *err);

/*
 * Lists the keys of domain, oldest first (by creation, then selector),
 * at most max into info[].  Returns the number of keys (0 when the
 * domain has no key directory), or an error with err set.
 */
int dkim_keyfile_list(const char *data_dir, const char *domain,
    struct dkim_keyfile_info *info, size_t max, struct pr_err *err);

/*
 * Lists the domains that have a key directory, sorted, at most max names
 * of at most 253 octets into names[] (each 256 octets).  Returns the
 * count, or an error with err set.
 */
int dkim_keyfile_domains(const char *data_dir, char (*names)[256],
    size_t max, struct pr_err *err);

/* Loads the key of domain with selector, whatever its state.  Returns 0
 * and the key in *k_r, PR_ENOENT when there is no such key, or another
 * error; err is set on every failure. */
int dkim_keyfile_load_one(const char *data_dir, const char *domain,
    const char *selector, struct dkim_key **k_r, struct pr_err *err);

/*
 * Loads every active key of domain, oldest first, at most max into
 * keys[].  Returns the number loaded (0 when none is active), or an
 * error with err set; a key that fails to load is an error, so that a
 * broken key file is reported rather than silently not used.  The
 * caller frees each key with dkim_key_free().
 */
int dkim_keyfile_load_active(const char *data_dir, const char *domain,
    struct dkim_key **keys, size_t max, struct pr_err *err);

/* Loads one active key of domain (the oldest).  Returns 0 and the key in
 * *k_r, PR_ENOENT when the domain has no active key, or another error;
 * err is set on every failure. */
int dkim_keyfile_load(const char *data_dir, const char *domain,
    struct dkim_key **k_r, struct pr_err *err);

/*
 * Sets the state of the key of domain with selector.  The state file
 * gets mode 0600, or 0640 with group gid (see dkim_keyfile_create).
 * Returns 0, PR_ENOENT when there is no such key, or an error with err
 * set.
 */
int dkim_keyfile_set_state(const char *data_dir, const char *domain,
    const char *selector, enum dkim_keyfile_state st, gid_t gid,
    struct pr_err *err);

#endif
