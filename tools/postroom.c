/*
 * postroom.c - the admin CLI: option parsing and command dispatch.
 *
 *   postroom [-c FILE] COMMAND [ARGS...]
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <errno.h>
#include <pwd.h>
#include <sys/stat.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"

struct cli_command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *usage;
};

static const struct cli_command cli_commands[] = {
	{ "init", cmd_init, "init" },
	{ "domain", cmd_domain, "domain add|del|list [DOMAIN]" },
	{ "user", cmd_user,
	    "user add ADDRESS [--password-stdin] [--quota BYTES]\n"
	    "       postroom user passwd ADDRESS [--password-stdin]\n"
	    "       postroom user del ADDRESS\n"
	    "       postroom user quota ADDRESS BYTES\n"
	    "       postroom user list [DOMAIN]\n"
	    "       postroom user app-password add ADDRESS LABEL\n"
	    "       postroom user app-password list ADDRESS\n"
	    "       postroom user app-password del ADDRESS LABEL" },
	{ "device", cmd_device,
	    "device add NAME --from ADDRESS [--rate N/hour]\n"
	    "       postroom device list | del NAME" },
	{ "alias", cmd_alias,
	    "alias add ALIAS TARGET[,TARGET...] [--append] [--force]\n"
	    "       postroom alias del ALIAS\n"
	    "       postroom alias list" },
	{ "mailbox", cmd_mailbox, "mailbox list ADDRESS" },
	{ "queue", cmd_queue, "queue list [--held] | flush [DOMAIN|@DOMAIN] | del ID | release ID" },
	{ "dkim", cmd_dkim,
	    "dkim keygen DOMAIN [--selector S] [--ed25519]\n"
	    "       postroom dkim list [DOMAIN]\n"
	    "       postroom dkim activate DOMAIN SELECTOR [--force]\n"
	    "       postroom dkim retire DOMAIN SELECTOR" },
	{ "dns", cmd_dns, "dns DOMAIN" },
	{ "tls", cmd_tls, "tls forget DOMAIN" },
	{ "mta-sts", cmd_mta_sts, "mta-sts DOMAIN [--mode enforce|testing] "
	    "[--max-age SECONDS] [-o FILE]" },
	{ "tlsrpt", cmd_tlsrpt, "tlsrpt list [DAY] | send [DAY]" },
	{ "spf", cmd_spf, "spf IP SENDER [HELO]" },
	{ "check-message", cmd_check_message, "check-message [--ip IP] "
	    "[--helo NAME] [--from ADDR] [FILE]" },
	{ "trace", cmd_trace, "trace ID | <message-id> | ADDRESS" },
	{ "check", cmd_check, "check" },
	{ "doctor", cmd_doctor, "doctor DOMAIN" },
	{ "autoconfig", cmd_autoconfig, "autoconfig DOMAIN [FILE]" },
	{ "backup", cmd_backup, "backup FILE|-" },
	{ "restore", cmd_restore, "restore FILE|-" },
	{ "verify", cmd_verify, "verify [--repair]" },
};

static const struct option cli_long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

#define CLI_NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

int
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("postroom: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_ERR;
}

int
cli_usage(const char *usage)
{
	fprintf(stderr, "usage: postroom %s\n", usage);
	return CLI_USAGE;
}

struct store *
cli_store(struct cli *cli)
{
	struct pr_err err;

	if (cli->st != NULL)
		return cli->st;
	pr_err_clear(&err);
	if (store_open(cli->cfg.server.data_dir, 0, &cli->st, &err) < 0) {
		cli_fail("%s", err.msg);
		exit(CLI_ERR);
	}
	return cli->st;
}

/*
 * Run by root, the CLI works as [server] user, so that the files SQLite
 * creates next to the database (-wal, -shm) and DKIM keys belong to the
 * daemons' user, as with the daemons themselves.  A missing data_dir is
 * created first, owned by that user.
 */
static int
cli_become_user(const struct cfg *cfg)
{
	struct pr_err err;
	struct passwd *pw;

	if (geteuid() != 0 || cfg->server.user[0] == '\0')
		return 0;
	pw = getpwnam(cfg->server.user);
	if (pw == NULL)
		return cli_fail("[server] user %s does not exist (create it, or "
		    "set user = to run as root)", cfg->server.user);
	if (mkdir(cfg->server.data_dir, 0750) == 0) {
		if (chown(cfg->server.data_dir, pw->pw_uid, pw->pw_gid) != 0)
			return cli_fail("chown %s: %s", cfg->server.data_dir,
			    strerror(errno));
	} else if (errno != EEXIST) {
		return cli_fail("mkdir %s: %s", cfg->server.data_dir,
		    strerror(errno));
	}
	pr_err_clear(&err);
	if (daemon_drop_privileges(cfg, &err) < 0)
		return cli_fail("%s", err.msg);
	return 0;
}

static void
cli_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: postroom [-c FILE] COMMAND [ARGS...]\n"
	    "       postroom --help | --version\n\n");
	for (i = 0; i < CLI_NCOMMANDS; i++)
		fprintf(f, "       postroom %s\n", cli_commands[i].usage);
	fprintf(f, "\nThe configuration is read from -c FILE, $POSTROOM_CONFIG "
	    "or " CFG_DEFAULT_PATH ".\n");
}

int
main(int argc, char **argv)
{
	struct cli cli;
	struct pr_err err;
	const char *path = NULL;
	size_t i;
	int ch, r;

	memset(&cli, 0, sizeof(cli));
	log_init("postroom", LOG_LVL_WARN);
	/* Our own messages, so that they say "postroom:" whatever the name
	 * the program was started by (a symlink, a path). */
	opterr = 0;
	/* '+': stop at the command, so its own options stay its own; ':':
	 * tell a missing argument from an unknown option. */
	while ((ch = getopt_long(argc, argv, "+:c:hV", cli_long_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			cli_help(stdout);
			return CLI_OK;
		case 'V':
			printf("postroom %s\n", POSTROOM_VERSION);
			return CLI_OK;
		case ':':
			fprintf(stderr, "postroom: option %s needs an "
			    "argument\n", argv[optind - 1]);
			cli_help(stderr);
			return CLI_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, "postroom: unknown option "
				    "-%c\n", optopt);
			else
				fprintf(stderr, "postroom: unknown option "
				    "%s\n", argv[optind - 1]);
			cli_help(stderr);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_help(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		cli_help(stdout);
		return CLI_OK;
	}
	for (i = 0; i < CLI_NCOMMANDS; i++)
		if (strcmp(argv[optind], cli_commands[i].name) == 0)
			break;
	if (i == CLI_NCOMMANDS) {
		fprintf(stderr, "postroom: unknown command '%s'\n",
		    argv[optind]);
		cli_help(stderr);
		return CLI_USAGE;
	}
	if (sodium_init() < 0)
		return cli_fail("libsodium failed to initialise");
	cfg_defaults(&cli.cfg);
	pr_err_clear(&err);
	if (cfg_load(&cli.cfg, cfg_path(path), &err) < 0)
		return cli_fail("%s", err.msg);
	if (cli_commands[i].fn == cmd_check ||
	    cli_commands[i].fn == cmd_doctor)
		cmd_check_prepare(&cli);
	if (cli_commands[i].fn == cmd_backup ||
	    cli_commands[i].fn == cmd_restore)
		cmd_backup_prepare(&cli, argc - optind, argv + optind);
	if (cli_become_user(&cli.cfg) != 0)
		return CLI_ERR;
	r = cli_commands[i].fn(&cli, argc - optind, argv + optind);
	if (r == CLI_USAGE)
		cli_usage(cli_commands[i].usage);
	store_close(&cli.st);
	return r;
}
