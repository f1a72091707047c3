/*
 * dkim_keyfile.h - the DKIM keys of the hosted domains on disk.
 *
 * Keys live under <data_dir>/dkim/<domain>/: "<selector>.key" holds the
 * private key (PEM, PKCS#8) and the file "selector" names the key in use,
 * so a new key can be published under a new selector before it replaces
 * the old one.  Files are written through a temporary file and rename(2)
 * or link(2), so a reader never sees half a file.
 */
#ifndef POSTROOM_DKIM_KEYFILE_H
#define POSTROOM_DKIM_KEYFILE_H

#include <stdbool.h>
#include <sys/types.h>

#include "dkim_key.h"
#include "err.h"

#define DKIM_KEYFILE_SELECTOR_DEFAULT "postroom"

/*
 * Creates a new key for domain under data_dir with selector (NULL = the
 * default) and makes it the active one.  The key file is 0600, or 0640
 * with group gid when gid is not (gid_t)-1 (the daemon's group, when the
 * CLI runs as root).  Refuses an existing selector with PR_EEXIST and a
 * domain or selector unfit for a path with PR_EINVAL.  Returns 0 and the
 * new key in *k_r, or an error with err set.
 */
int dkim_keyfile_create(const char *data_dir, const char *domain,
    const char *selector, bool ed25519, gid_t gid, struct dkim_key **k_r,
    struct pr_err *err);

/* Loads the active key of domain.  Returns 0 and the key in *k_r,
 * PR_ENOENT when the domain has none, or another error; err is set on
 * every failure. */
int dkim_keyfile_load(const char *data_dir, const char *domain,
    struct dkim_key **k_r, struct pr_err *err);

#endif
