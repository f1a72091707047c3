/*
 * cli.h - the postroom admin CLI: shared context and command entry points.
 *
 * Each command group lives in its own cmd_<group>.c and is listed in the
 * table in postroom.c.  Exit status: 0 success, 1 user error (one line on
 * stderr via cli_fail), 2 usage error (cli_usage).
 */
#ifndef POSTROOM_CLI_H
#define POSTROOM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "store.h"

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

struct cli {
	struct cfg cfg;
	struct store *st; /* opened lazily by cli_store() */
};

/* The open store, opening it on first use; exits 1 with a clear message if
 * the database is missing or cannot be opened. */
struct store *cli_store(struct cli *cli);

/* Prints "postroom: <msg>" to stderr and returns CLI_ERR. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "usage: postroom <usage>" to stderr and returns CLI_USAGE. */
int cli_usage(const char *usage);

/* argv[0] is the group name ("domain"), argv[1] the verb, if any. */
int cmd_init(struct cli *cli, int argc, char **argv);
int cmd_domain(struct cli *cli, int argc, char **argv);
int cmd_user(struct cli *cli, int argc, char **argv);
/* `user app-password ...`: argv[0] is "app-password", argv[1] the verb. */
int cmd_app_password(struct cli *cli, int argc, char **argv);
int cmd_device(struct cli *cli, int argc, char **argv);
int cmd_alias(struct cli *cli, int argc, char **argv);
int cmd_mailbox(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
/* Loads the TLS pair for cmd_check before the CLI drops privileges, as
 * the daemons load it before they do. */
void cmd_check_prepare(struct cli *cli);
/* A certificate that runs out sooner than this gets a warning: time for
 * a renewal that failed to be noticed (ACME clients renew at 30 days). */
#define CLI_CERT_EXPIRY_WARN (14 * 86400)

struct net_tls;
/* The context cmd_check_prepare() loaded ([tls] cert and key, as the
 * daemons load them), for `check` and `doctor`: NULL with *why_r NULL
 * when none is configured or readable, NULL with *why_r the reason when
 * it did not load. */
const struct net_tls *cmd_check_tls_ctx(const char **why_r);
/* t (unix time) as "2026-01-31T12:00:00Z". */
void cmd_check_date(int64_t t, char out[32]);
int cmd_queue(struct cli *cli, int argc, char **argv);
int cmd_dkim(struct cli *cli, int argc, char **argv);
int cmd_dns(struct cli *cli, int argc, char **argv);
/* tls forget DOMAIN (cmd_tls.c). */
int cmd_tls(struct cli *cli, int argc, char **argv);
int cmd_spf(struct cli *cli, int argc, char **argv);
int cmd_check_message(struct cli *cli, int argc, char **argv);
int cmd_doctor(struct cli *cli, int argc, char **argv);
int cmd_autoconfig(struct cli *cli, int argc, char **argv);
int cmd_trace(struct cli *cli, int argc, char **argv);
/* cmd_tlsrpt.c: tlsrpt list [DAY] | send [DAY] (RFC 8460). */
int cmd_tlsrpt(struct cli *cli, int argc, char **argv);
/* cmd_mta_sts.c: mta-sts DOMAIN [--mode M] [--max-age S] [-o FILE]. */
int cmd_mta_sts(struct cli *cli, int argc, char **argv);
struct buf;
/* The MTA-STS policy file (RFC 8461 3.2) for the domains of this server
 * appended to out; 0 or PR_ENOSPC. */
int cmd_mta_sts_policy(const struct cli *cli, bool enforce, long max_age,
    struct buf *out);
/* The policy's id (RFC 8461 3.1): 32 hex digits of its hash. */
void cmd_mta_sts_id(const uint8_t *policy, size_t len, char id[33]);
/* The policy last written for domain appended to out: 1, 0 if none was,
 * -1 if it cannot be read. */
int cmd_mta_sts_saved(const struct cli *cli, const char *domain,
    struct buf *out);
/* cmd_backup.c: backup FILE, restore FILE, verify [--repair]
 * (docs/BACKUP.md). */
int cmd_backup(struct cli *cli, int argc, char **argv);
int cmd_restore(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
/* Opens the backup file of `backup` or `restore` as the user the CLI was
 * started by, before it becomes [server] user: root may name a file
 * that user cannot reach.  Errors are left for the command to report. */
void cmd_backup_prepare(struct cli *cli, int argc, char **argv);

#endif
