/*
 * relay_client_auth.c - the SMTP client's AUTH (RFC 4954) towards a
 * smarthost: PLAIN (RFC 4616) with an initial response, without one for a
 * server that refuses it, or LOGIN.  Credentials are wiped from the
 * stack once encoded; the client sends them only inside verified TLS
 * (relay_client.c, relay_client_needs_tls).
 */
#include "relay_client_int.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "sasl.h"

/* Appends the PLAIN response (RFC 4616 2: NUL user NUL password, in
 * base64) as "AUTH PLAIN <response>" (RFC 4954 4, the initial response)
 * or alone after a 334.  The lengths were checked by relay_client_auth. */
static void
relay_client_plain(struct relay_client *c, bool initial)
{
	const struct relay_client_params *p = c->params;
	unsigned char raw[SASL_USER_MAX + SASL_PASS_MAX + 2];
	char b64[((SASL_USER_MAX + SASL_PASS_MAX + 2) / 3 + 1) * 4 + 1];
	size_t ul = strlen(p->auth_user), pl = strlen(p->auth_pass);

	raw[0] = '\0';
	memcpy(raw + 1, p->auth_user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, p->auth_pass, pl);
	sasl_b64_encode(raw, ul + pl + 2, b64, sizeof(b64));
	relay_client_cmd(c, "%s%s", initial ? "AUTH PLAIN " : "", b64);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
}

/* RFC 4954 4 and RFC 4616: PLAIN with an initial response, or LOGIN. */
void
relay_client__auth_start(struct relay_client *c)
{
	const struct relay_client_params *p = c->params;
	size_t ul = strlen(p->auth_user), pl = strlen(p->auth_pass);

	if (ul >= SASL_USER_MAX || pl >= SASL_PASS_MAX) {
		snprintf(c->error, sizeof(c->error),
		    "smarthost credentials too long");
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
		return;
	}
	c->auth_no_ir = false;
	if (c->ext.auth_plain) {
		c->auth_login = false;
		relay_client_plain(c, true);
		relay_client_enter(c, RELAY_CLIENT_S_AUTH);
	} else if (c->ext.auth_login) {
		c->auth_login = true;
		relay_client_cmd(c, "AUTH LOGIN");
		relay_client_enter(c, RELAY_CLIENT_S_AUTH);
	} else {
		snprintf(c->error, sizeof(c->error),
		    "%s offers neither AUTH PLAIN nor AUTH LOGIN",
		    c->server_name[0] ? c->server_name : "server");
		relay_client_quit(c, RELAY_CLIENT_R_NEXT_HOST);
	}
}

/*
 * A refusal of "AUTH PLAIN <response>" that is about the syntax of the
 * command line rather than the credentials: 500 or 501 (RFC 4954 6), or
 * any 5xx with a 5.5.x enhanced code (RFC 3463 3.6, protocol status).
 * A server that does not take initial responses answers so; 535 5.7.8
 * means the credentials are wrong and is not retried.
 */
static bool
relay_client_syntax_refusal(int code, const char *reply)
{
	if (code == 500 || code == 501)
		return true;
	return code / 100 == 5 && strlen(reply) > 8 &&
	    strncmp(reply + 4, "5.5.", 4) == 0;
}

static void
relay_client_login_step(struct relay_client *c, const char *secret,
    enum relay_client_state next)
{
	char b64[(SASL_PASS_MAX / 3 + 1) * 4 + 1];
	size_t n = strlen(secret);

	if (n >= SASL_PASS_MAX)
		n = SASL_PASS_MAX - 1;
	sasl_b64_encode((const unsigned char *)secret, n, b64, sizeof(b64));
	relay_client_cmd(c, "%s", b64);
	sodium_memzero(b64, sizeof(b64));
	relay_client_enter(c, next);
}


bool
relay_client__auth_reply(struct relay_client *c, int code, const char *reply)
{
	switch (c->state) {
	case RELAY_CLIENT_S_AUTH:
		if (code == 235) {
			relay_client_mail(c);
			return true;
		}
		if (code == 334 && c->auth_login) {
			relay_client_login_step(c, c->params->auth_user,
			    RELAY_CLIENT_S_AUTH_USER);
			return true;
		}
		if (code == 334) {
			/* RFC 4954 4: a server that ignored the initial
			 * response asks for it with an empty challenge. */
			relay_client_plain(c, false);
			relay_client_enter(c, RELAY_CLIENT_S_AUTH_PASS);
			return true;
		}
		if (!c->auth_login && !c->auth_no_ir &&
		    relay_client_syntax_refusal(code, reply)) {
			/* No SASL-IR here: the bare command, then the
			 * response after the 334 (RFC 4954 4). */
			c->auth_no_ir = true;
			relay_client_cmd(c, "AUTH PLAIN");
			relay_client_enter(c, RELAY_CLIENT_S_AUTH_PLAIN);
			return true;
		}
		return false;
	case RELAY_CLIENT_S_AUTH_PLAIN:
		if (code == 334) {
			relay_client_plain(c, false);
			relay_client_enter(c, RELAY_CLIENT_S_AUTH_PASS);
			return true;
		}
		return false;
	case RELAY_CLIENT_S_AUTH_USER:
		if (code == 334) {
			relay_client_login_step(c, c->params->auth_pass,
			    RELAY_CLIENT_S_AUTH_PASS);
			return true;
		}
		return false;
	case RELAY_CLIENT_S_AUTH_PASS:
		if (code == 235) {
			relay_client_mail(c);
			return true;
		}
		return false;
	default:
		return false;
	}
}
