/*
 * relay_client_reply.c - the SMTP client reading the server (see
 * relay_client.h): reply lines framed into replies and the EHLO keywords.
 *
 * RFC 5321 4.2: a reply is one or more lines with the same code, "-"
 * after the code on every line but the last.  Lines and replies are
 * bounded (RELAY_CLIENT_LINE_MAX, RELAY_CLIENT_REPLY_LINES_MAX); a
 * server that breaks a bound or the syntax ends the session.  Each
 * complete reply goes to the state machine in relay_client.c.
 */
#include "relay_client_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* --- EHLO keywords ----------------------------------------------------- */

/* Case-insensitive "does the line start with keyword as a whole word". */
static bool
relay_client_kw(const char *s, const char *kw, const char **rest_r)
{
	size_t n = strlen(kw);

	if (strncasecmp(s, kw, n) != 0)
		return false;
	if (s[n] != '\0' && s[n] != ' ' && s[n] != '=')
		return false;
	*rest_r = s + n + (s[n] != '\0');
	return true;
}

static void
relay_client_parse_auth(struct relay_client *c, const char *mechs)
{
	const char *p = mechs;
	size_t n;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
			c->ext.auth_plain = true;
		else if (n == 5 && strncasecmp(p, "LOGIN", 5) == 0)
			c->ext.auth_login = true;
		p += n;
	}
}

/* One line of a 250 EHLO reply (RFC 5321 4.1.1.1): the first names the
 * server, the others are extension keywords with parameters. */
void
relay_client__parse_ehlo(struct relay_client *c, const char *text,
    bool first)
{
	const char *rest;
	unsigned long long v;
	char *end;
	size_t n;

	if (first) {
		n = strcspn(text, " ");
		if (n >= sizeof(c->server_name))
			n = sizeof(c->server_name) - 1;
		memcpy(c->server_name, text, n);
		c->server_name[n] = '\0';
		return;
	}
	if (relay_client_kw(text, "STARTTLS", &rest))
		c->ext.starttls = true;
	else if (relay_client_kw(text, "PIPELINING", &rest))
		c->ext.pipelining = true;
	else if (relay_client_kw(text, "8BITMIME", &rest))
		c->ext.eightbitmime = true;
	else if (relay_client_kw(text, "SMTPUTF8", &rest))
		c->ext.smtputf8 = true;
	else if (relay_client_kw(text, "DSN", &rest))
		c->ext.dsn = true;
	else if (relay_client_kw(text, "AUTH", &rest))
		relay_client_parse_auth(c, rest);
	else if (relay_client_kw(text, "SIZE", &rest)) {
		/* RFC 1870 4: an optional fixed maximum, 0 = none. */
		c->ext.size = true;
		v = strtoull(rest, &end, 10);
		if (end != rest && (*end == '\0' || *end == ' '))
			c->ext.size_max = v;
	}
}

/* --- Replies ---------------------------------------------------------- */

/* Parses one reply line (without CRLF).  Returns the code, or -1 for a
 * malformed line; *more says a continuation follows, *text the text. */
static int
relay_client_parse_line(const char *line, size_t len, bool *more,
    const char **text)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	*more = len > 3 && line[3] == '-';
	*text = len > 4 ? line + 4 : "";
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

static void
relay_client_append_reply(struct relay_client *c, int code, const char *text)
{
	size_t n = strlen(c->reply), k;

	if (n == 0) {
		snprintf(c->reply, sizeof(c->reply), "%d %s", code, text);
	} else {
		/* "550-5.1.1 a" / "550 5.1.1 b" reads "550 5.1.1 a b": the
		 * enhanced code is not repeated (as Postfix reports it). */
		k = strcspn(c->reply + 4, " ");
		if (k > 0 && strncmp(text, c->reply + 4, k) == 0 &&
		    (text[k] == ' ' || text[k] == '\0') &&
		    strchr(c->reply + 4, '.') < c->reply + 4 + k)
			text += k + (text[k] == ' ');
		if (n + 1 < sizeof(c->reply))
			snprintf(c->reply + n, sizeof(c->reply) - n, " %s",
			    text);
	}
	/* No trailing space for a bare "250". */
	n = strlen(c->reply);
	while (n > 0 && c->reply[n - 1] == ' ')
		c->reply[--n] = '\0';
}

long
relay_client_feed(struct relay_client *c, const uint8_t *in, size_t len)
{
	char line[RELAY_CLIENT_LINE_MAX + 1];
	const uint8_t *nl;
	const char *text;
	size_t used = 0, n, i;
	bool more;
	int code;

	while (used < len && c->event == RELAY_CLIENT_EV_NONE &&
	    c->state != RELAY_CLIENT_S_CLOSED &&
	    c->state != RELAY_CLIENT_S_TLS &&
	    c->state != RELAY_CLIENT_S_BODY) {
		nl = memchr(in + used, '\n', len - used);
		if (nl == NULL) {
			if (len - used > RELAY_CLIENT_LINE_MAX) {
				relay_client_abort(c,
				    "protocol error: reply line too long");
				return PR_ENOSPC;
			}
			break;
		}
		n = (size_t)(nl - (in + used));
		i = used;
		used += n + 1;
		if (n > 0 && in[i + n - 1] == '\r')
			n--;
		if (n > RELAY_CLIENT_LINE_MAX) {
			relay_client_abort(c,
			    "protocol error: reply line too long");
			return PR_ENOSPC;
		}
		memcpy(line, in + i, n);
		line[n] = '\0';
		/* A NUL or other control octet in a reply is not text. */
		for (i = 0; i < n; i++)
			if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
				line[i] = '?';
		code = relay_client_parse_line(line, n, &more, &text);
		if (code < 0 || (c->reply_lines > 0 && code != c->reply_code)) {
			relay_client_abort(c,
			    "protocol error: malformed reply");
			return (long)used;
		}
		if (c->reply_lines == 0) {
			c->reply_code = code;
			c->reply[0] = '\0';
		}
		if (c->state == RELAY_CLIENT_S_EHLO && code == 250)
			relay_client__parse_ehlo(c, text,
			    c->reply_lines == 0);
		relay_client_append_reply(c, code, text);
		if (more) {
			if (++c->reply_lines >= RELAY_CLIENT_REPLY_LINES_MAX) {
				relay_client_abort(c,
				    "protocol error: reply too long");
				return (long)used;
			}
			continue;
		}
		c->reply_lines = 0;
		relay_client__reply(c, code, c->reply);
	}
	return (long)used;
}
