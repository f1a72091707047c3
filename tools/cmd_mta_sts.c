/*
 * cmd_mta_sts.c - `postroom mta-sts DOMAIN [--mode enforce|testing]
 * [--max-age SECONDS] [-o FILE]` (postroom(8), docs/OUTBOUND_TLS.md
 * "Publishing our own policy"): the MTA-STS policy file (RFC 8461 3.2)
 * the admin's web server serves at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, for the MX host of
 * the domain as `postroom dns` publishes it ([server] hostname).
 *
 * The policy's id (RFC 8461 3.1) is derived from its text, so it
 * changes exactly when the policy does.  The last policy written is
 * kept as <data_dir>/mta-sts/DOMAIN.txt, so that `postroom dns` prints
 * the TXT record with the id of the file that is served.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "cli.h"
#include "cli_util.h"

/* RFC 8461 3.2: max_age is at most 31557600 (about a year); a week is
 * the default, long enough to outlast an attack on the DNS. */
#define CMD_MTA_STS_MAX_AGE 604800
#define CMD_MTA_STS_MAX_AGE_MAX 31557600
#define CMD_MTA_STS_FILE_MAX 4096

int
cmd_mta_sts_policy(const struct cli *cli, bool enforce, long max_age,
    struct buf *out)
{
	/* RFC 8461 3.2: "key: value" lines ending in CRLF (the ABNF's
	 * sts-policy-term allows LF or CRLF), version first. */
	return buf_printf(out, "version: STSv1\r\nmode: %s\r\nmx: %s\r\n"
	    "max_age: %ld\r\n", enforce ? "enforce" : "testing",
	    cli->cfg.server.hostname, max_age);
}

void
cmd_mta_sts_id(const uint8_t *policy, size_t len, char id[33])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	/* RFC 8461 3.1: id is 1*32(ALPHA / DIGIT); 128 bits of the
	 * policy's SHA-256 in hex. */
	crypto_hash_sha256(h, policy, len);
	sodium_bin2hex(id, 33, h, 16);
}

static void
cmd_mta_sts_saved_path(const struct cli *cli, const char *domain,
    char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/mta-sts/%s.txt", cli->cfg.server.data_dir,
	    domain);
}

int
cmd_mta_sts_saved(const struct cli *cli, const char *domain,
    struct buf *out)
{
	char path[1200], chunk[1024];
	size_t n;
	FILE *f;

	cmd_mta_sts_saved_path(cli, domain, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(out, chunk, n) < 0) {
			fclose(f);
			return -1;
		}
	fclose(f);
	return 1;
}

/* Writes p[0..len) to path through a temporary file and rename(2), so
 * that a web server never serves half a policy. */
static int
cmd_mta_sts_write(const char *path, const uint8_t *p, size_t len)
{
	char tmp[1200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	if (fwrite(p, 1, len, f) != len || fflush(f) != 0 ||
	    fsync(fileno(f)) < 0) {
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0 || chmod(tmp, 0644) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
cmd_mta_sts(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], path[1200], id[33], *end;
	const char *file = NULL;
	bool enforce = false;
	long max_age = CMD_MTA_STS_MAX_AGE;
	struct buf pol;
	int i, r;

	if (argc < 2 || argv[1][0] == '-')
		return CLI_USAGE;
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "enforce") == 0)
				enforce = true;
			else if (strcmp(argv[i], "testing") == 0)
				enforce = false;
			else
				return cli_fail("--mode: enforce or testing, "
				    "not %s", argv[i]);
		} else if (strcmp(argv[i], "--max-age") == 0 && i + 1 < argc) {
			i++;
			errno = 0;
			max_age = strtol(argv[i], &end, 10);
			if (errno != 0 || end == argv[i] || *end != '\0' ||
			    max_age < 1 || max_age > CMD_MTA_STS_MAX_AGE_MAX)
				return cli_fail("--max-age: seconds from 1 to "
				    "%d (RFC 8461 3.2), not %s",
				    CMD_MTA_STS_MAX_AGE_MAX, argv[i]);
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			file = argv[++i];
		else
			return CLI_USAGE;
	}
	if ((r = cli_hosted_domain(cli, argv[1], domain)) != CLI_OK)
		return r;
	buf_init(&pol, CMD_MTA_STS_FILE_MAX);
	if (cmd_mta_sts_policy(cli, enforce, max_age, &pol) < 0) {
		buf_fini(&pol);
		return cli_fail("[server] hostname is too long");
	}
	cmd_mta_sts_id(pol.p, pol.len, id);
	snprintf(path, sizeof(path), "%s/mta-sts", cli->cfg.server.data_dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		buf_fini(&pol);
		return cli_fail("%s: %s", path, strerror(errno));
	}
	cmd_mta_sts_saved_path(cli, domain, path, sizeof(path));
	if (cmd_mta_sts_write(path, pol.p, pol.len) < 0) {
		r = cli_fail("%s: %s", path, strerror(errno));
		buf_fini(&pol);
		return r;
	}
	if (file == NULL || strcmp(file, "-") == 0)
		fwrite(pol.p, 1, pol.len, stdout);
	else if (cmd_mta_sts_write(file, pol.p, pol.len) < 0) {
		r = cli_fail("%s: %s", file, strerror(errno));
		buf_fini(&pol);
		return r;
	}
	buf_fini(&pol);
	if (file != NULL && strcmp(file, "-") != 0)
		printf("; serve %s as https://mta-sts.%s/.well-known/"
		    "mta-sts.txt and publish:\n_mta-sts.%s. IN TXT "
		    "\"v=STSv1; id=%s\"\n", file, domain, domain, id);
	return CLI_OK;
}
