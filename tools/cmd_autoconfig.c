/*
 * cmd_autoconfig.c - `postroom autoconfig DOMAIN [FILE]`: the Thunderbird
 * autoconfiguration file (config-v1.1.xml) for a hosted domain, to serve
 * at https://autoconfig.DOMAIN/mail/config-v1.1.xml or
 * https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml, so that a
 * client sets itself up from the address alone (docs/DOCTOR.md).
 *
 * It lists what the config enables, implicit TLS first (RFC 8314 4.1
 * prefers it): POP3 on [pop3] pop3s (SSL) and [pop3] listen (STARTTLS),
 * SMTP submission on [smtp] submissions (SSL) and submission (STARTTLS).
 * The user name is the whole address; the password goes inside TLS
 * ("password-cleartext" in the file's words).  Without [tls] cert there
 * is nothing safe to offer and the command says so.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "cli_util.h"

/* Appends s to b with the five XML special characters as entities
 * (XML 1.0 2.4), so that the file is well-formed whatever the name. */
static void
cmd_autoconfig_esc(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&apos;");
			break;
		default:
			buf_append(b, s, 1);
			break;
		}
	}
}

/* One <incomingServer> or <outgoingServer> element. */
static void
cmd_autoconfig_server(struct buf *b, const char *elem, const char *type,
    const char *host, unsigned port, const char *socket)
{
	buf_printf(b, "    <%s type=\"%s\">\n      <hostname>", elem, type);
	cmd_autoconfig_esc(b, host);
	buf_printf(b, "</hostname>\n"
	    "      <port>%u</port>\n"
	    "      <socketType>%s</socketType>\n"
	    "      <username>%%EMAILADDRESS%%</username>\n"
	    "      <authentication>password-cleartext</authentication>\n",
	    port, socket);
	if (strcmp(type, "pop3") == 0)
		/* RFC 1939 8: a POP3 mailbox is a maildrop the client
		 * empties; leaving mail would fill the quota. */
		buf_puts(b, "      <pop3>\n"
		    "        <leaveMessagesOnServer>false"
		    "</leaveMessagesOnServer>\n      </pop3>\n");
	buf_printf(b, "    </%s>\n", elem);
}

static int
cmd_autoconfig_build(const struct cli *cli, const char *domain,
    struct buf *b)
{
	const struct cfg *c = &cli->cfg;
	const char *host = c->server.hostname;
	unsigned pop3s = cli_listen_port(&c->pop3.pop3s);
	unsigned pop3 = cli_listen_port(&c->pop3.listen);
	unsigned subs = cli_listen_port(&c->smtp.submissions);
	unsigned sub = cli_listen_port(&c->smtp.submission);

	if (c->tls.cert[0] == '\0')
		return cli_fail("no [tls] cert: clients could log in only "
		    "without encryption; set [tls] cert and key first");
	if (pop3s == 0 && pop3 == 0)
		return cli_fail("no POP3 listener ([pop3] listen, pop3s): "
		    "nothing to fetch mail from");
	if (subs == 0 && sub == 0)
		return cli_fail("no submission listener ([smtp] submission, "
		    "submissions): nothing to send mail through");
	buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	cmd_autoconfig_esc(b, domain);
	buf_puts(b, "\">\n    <domain>");
	cmd_autoconfig_esc(b, domain);
	buf_puts(b, "</domain>\n    <displayName>");
	cmd_autoconfig_esc(b, domain);
	buf_puts(b, " mail</displayName>\n    <displayShortName>");
	cmd_autoconfig_esc(b, domain);
	buf_puts(b, "</displayShortName>\n");
	if (pop3s != 0)
		cmd_autoconfig_server(b, "incomingServer", "pop3", host, pop3s,
		    "SSL");
	if (pop3 != 0)
		cmd_autoconfig_server(b, "incomingServer", "pop3", host, pop3,
		    "STARTTLS");
	if (subs != 0)
		cmd_autoconfig_server(b, "outgoingServer", "smtp", host, subs,
		    "SSL");
	if (sub != 0)
		cmd_autoconfig_server(b, "outgoingServer", "smtp", host, sub,
		    "STARTTLS");
	buf_puts(b, "  </emailProvider>\n</clientConfig>\n");
	return CLI_OK;
}

/* Writes b to path through a temporary file and rename(2), so that a web
 * server never serves half a file. */
static int
cmd_autoconfig_write(const char *path, const struct buf *b)
{
	char tmp[1100];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return cli_fail("%s: name too long", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return cli_fail("%s: %s", tmp, strerror(errno));
	if (fwrite(b->p, 1, b->len, f) != b->len || fflush(f) != 0 ||
	    fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return cli_fail("%s: %s", tmp, strerror(errno));
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return cli_fail("%s: %s", path, strerror(errno));
	}
	return CLI_OK;
}

int
cmd_autoconfig(struct cli *cli, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	struct buf b;
	int r;

	if (argc < 2 || argc > 3 || argv[1][0] == '-' ||
	    (argc == 3 && argv[2][0] == '-' && argv[2][1] != '\0'))
		return CLI_USAGE;
	if ((r = cli_hosted_domain(cli, argv[1], domain)) != CLI_OK)
		return r;
	buf_init(&b, 64 * 1024);
	if ((r = cmd_autoconfig_build(cli, domain, &b)) == CLI_OK) {
		if (argc == 3 && strcmp(argv[2], "-") != 0)
			r = cmd_autoconfig_write(argv[2], &b);
		else if (fwrite(b.p, 1, b.len, stdout) != b.len ||
		    fflush(stdout) != 0)
			r = cli_fail("stdout: %s", strerror(errno));
	}
	buf_fini(&b);
	return r;
}
