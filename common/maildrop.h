/*
 * maildrop.h - the local submission spool shared by postroom-sendmail
 * (which writes it) and postroom-smtpd (which picks it up).
 *
 * docs/ARCHITECTURE.md 5.4 describes the path.  In short: the spool is a
 * directory of mode 1730 owned by [server] user and the group
 * MAILDROP_GROUP, which postroom-sendmail is set-group-ID to.  sendmail
 * writes a file under a temporary name, fsyncs it, renames it to its
 * final name and fsyncs the directory; only final names are ever picked
 * up, so a sendmail killed half-way leaves nothing that could be
 * delivered.  The owner of the file is the submitting user as the kernel
 * knows it (a set-group-ID program keeps the caller's uid), so the
 * daemon learns who sent a message from fstat(), not from the file.
 *
 * A file is a small envelope followed by the message:
 *
 *	postroom-maildrop 1 LF
 *	F<sender> LF          optional: -f or MAIL FROM; empty = <>
 *	R<recipient> LF       one or more
 *	LF
 *	message (LF or CRLF lines, as given)
 *
 * The final name is the message's idempotency key in the store, so a
 * crash between the commit and the unlink delivers nothing twice.
 */
#ifndef POSTROOM_MAILDROP_H
#define POSTROOM_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cfg.h"
#include "err.h"

#define MAILDROP_GROUP "postroom-drop"
#define MAILDROP_MAGIC "postroom-maildrop 1\n"
/* Final names: 'M', the unix time, '.', 16 hex digits; temporary names
 * start with 'T' and are never picked up. */
#define MAILDROP_NAME_MAX 40
#define MAILDROP_LINE_MAX 1024   /* one envelope line, LF included */
#define MAILDROP_RCPT_MAX 1000   /* recipients of one file */
/* A temporary file older than this is a dead sendmail's (seconds). */
#define MAILDROP_TMP_AGE 3600

/* The spool directory of cfg into out: [server] maildrop, or
 * <data_dir>/maildrop. */
void maildrop_dir(const struct cfg *cfg, char *out, size_t outsz);

/* true for a final spool name (one that may be picked up). */
bool maildrop_name_final(const char *name);

/* Makes a fresh pair of names (same random part) into tmp_r and
 * final_r, MAILDROP_NAME_MAX octets each. */
void maildrop_names(char *tmp_r, char *final_r);

/*
 * Creates the spool directory dir if it is missing: mode 1730, owned by
 * uid and gid when the caller may give it away (root), by the caller
 * otherwise.  An existing directory is left as it is, but refused
 * (PR_EPERM) when others may write to it.  Returns 0 or an error with err
 * set.
 */
int maildrop_dir_ensure(const char *dir, uid_t uid, gid_t gid,
    struct pr_err *err);

#endif
