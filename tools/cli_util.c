/* cli_util.c - address arguments, password entry, sizes. */
#include "cli_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "cli.h"
#include "dns.h"
#include "domain.h"
#include "sasl.h"

int
cli_address(const char *arg, char out[ADDR_MAX])
{
	char dom[ADDR_DOMAIN_MAX + 1];
	char *at;

	if (addr_parse_mailbox(arg, strlen(arg), true, out) < 0 ||
	    (at = strrchr(out, '@')) == NULL ||
	    domain_normalize(at + 1, strlen(at + 1), dom, sizeof(dom)) < 0 ||
	    (size_t)(at + 1 - out) + strlen(dom) >= ADDR_MAX) {
		cli_fail("invalid address '%s'", arg);
		return -1;
	}
	strcpy(at + 1, dom);
	addr_lower(out);
	return 0;
}

int
cli_domain(const char *arg, char out[ADDR_DOMAIN_MAX + 1])
{
	if (domain_normalize(arg, strlen(arg), out, ADDR_DOMAIN_MAX + 1) < 0 ||
	    out[0] == '[') {
		cli_fail("invalid domain name '%s'", arg);
		return -1;
	}
	if (domain_is_ip(out)) {
		cli_fail("%s is an IP address, not a domain name", arg);
		return -1;
	}
	return 0;
}

int
cli_hosted_domain(struct cli *cli, const char *arg,
    char out[ADDR_DOMAIN_MAX + 1])
{
	int r;

	if (cli_domain(arg, out) < 0)
		return CLI_ERR;
	r = store_domain_exists(cli_store(cli), out);
	if (r < 0)
		return cli_fail("cannot read the domains");
	if (r == 0)
		return cli_fail("domain %s is not hosted here (add it with "
		    "`postroom domain add %s`)", out, out);
	return CLI_OK;
}

int
cli_resolve_ignore(void *ctx, int64_t user_id, const char *remote)
{
	(void)ctx;
	(void)user_id;
	(void)remote;
	return 0;
}

unsigned
cli_listen_port(const struct cfg_listen_list *l)
{
	return l->n > 0 ? (unsigned)strtoul(l->a[0].port, NULL, 10) : 0;
}

int
cli_dns_open(struct cli *cli, uv_loop_t *loop, struct dns **d_r)
{
	struct pr_err err;

	if (uv_loop_init(loop) != 0)
		return cli_fail("cannot make an event loop");
	pr_err_clear(&err);
	if (dns_new(loop, cli->cfg.dns.resolver, cli->cfg.dns.timeout * 1000,
	    d_r, &err) < 0) {
		uv_loop_close(loop);
		return cli_fail("%s", err.msg);
	}
	return CLI_OK;
}

int
cli_txt_join(const struct resolver_txt *t, struct buf *out)
{
	size_t j;
	int r;

	for (j = 0; j < t->n; j++)
		if ((r = buf_append(out, t->s[j], t->len[j])) < 0)
			return r;
	return 0;
}

/* Reads one line into buf (size n) without its line end.  Returns the
 * length, -1 at EOF or on an error, or -2 when the line does not fit (the
 * rest of it is read and dropped). */
static ssize_t
cli_read_line(FILE *f, char *buf, size_t n)
{
	size_t len;
	int c;

	if (fgets(buf, (int)n, f) == NULL)
		return -1;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[--len] = '\0';
	} else if (!feof(f)) {
		/* Too long: drain the rest of the line and refuse. */
		while ((c = fgetc(f)) != EOF && c != '\n')
			;
		return -2;
	}
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return (ssize_t)len;
}

/* The controlling terminal, or NULL.  access() is not enough: /dev/tty
 * exists (and passes access()) in a process without a terminal, where only
 * opening it fails, with ENXIO. */
static FILE *
cli_tty_open(void)
{
	return fopen("/dev/tty", "r+");
}

static ssize_t
cli_prompt_noecho(FILE *tty, const char *prompt, char *buf, size_t n)
{
	struct termios old, quiet;
	ssize_t r;

	if (tcgetattr(fileno(tty), &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	/* Echo off (and typeahead dropped) before the prompt shows, so that
	 * nothing typed after it is echoed or lost. */
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	fputs(prompt, tty);
	fflush(tty);
	r = cli_read_line(tty, buf, n);
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	return r;
}

/* Characters, not bytes: a UTF-8 continuation byte (10xxxxxx) does not
 * start one. */
static size_t
cli_password_chars(const char *pw, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)pw[i] & 0xc0) != 0x80)
			n++;
	return n;
}

char *
cli_password_read(bool from_stdin)
{
	char *pw = sodium_malloc(SASL_PASS_MAX + 2);
	char *again = NULL;
	FILE *tty = NULL;
	ssize_t n;

	if (pw == NULL) {
		cli_fail("out of memory");
		return NULL;
	}
	if (from_stdin) {
		n = cli_read_line(stdin, pw, SASL_PASS_MAX + 2);
	} else {
		if ((tty = cli_tty_open()) == NULL) {
			cli_fail("no terminal to ask for a password; use "
			    "--password-stdin");
			goto fail;
		}
		n = cli_prompt_noecho(tty, "New password: ", pw,
		    SASL_PASS_MAX + 2);
		if (n >= 0) {
			again = sodium_malloc(SASL_PASS_MAX + 2);
			if (again == NULL ||
			    cli_prompt_noecho(tty, "Retype password: ", again,
			    SASL_PASS_MAX + 2) != n ||
			    sodium_memcmp(pw, again, (size_t)n) != 0) {
				cli_fail("passwords do not match");
				goto fail;
			}
		}
		fclose(tty);
		tty = NULL;
	}
	if (n == -2 || (n >= 0 && (size_t)n >= SASL_PASS_MAX)) {
		cli_fail("password too long (at most %d bytes)",
		    SASL_PASS_MAX - 1);
		goto fail;
	}
	if (n < 0) {
		cli_fail("no password given");
		goto fail;
	}
	if (n == 0) {
		cli_fail("the password may not be empty");
		goto fail;
	}
	if (cli_password_chars(pw, (size_t)n) < CLI_PASSWORD_MIN) {
		cli_fail("password too short (at least %d characters)",
		    CLI_PASSWORD_MIN);
		goto fail;
	}
	cli_password_free(again);
	return pw;
fail:
	if (tty != NULL)
		fclose(tty);
	cli_password_free(again);
	cli_password_free(pw);
	return NULL;
}

void
cli_password_free(char *pw)
{
	/* sodium_free wipes the memory before releasing it. */
	if (pw != NULL)
		sodium_free(pw);
}

void
cli_human_size(int64_t n, char out[16])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 16, "%lld B", (long long)n);
	else
		snprintf(out, 16, "%.1f %s", v, unit[u]);
}
