/*
 * test_relay_client.c - the SMTP client state machine fed reply lines.
 *
 * Each case is a dialog: "S:" lines are what the server sends, "C:" the
 * command the client must have sent next, "E:" the next event (the test
 * then completes it: STARTTLS ok, BODY sent; "E:STARTTLS-FAIL" is the
 * STARTTLS event with a failed handshake), "A:" a connection failure.
 * Every case runs with the server's bytes fed whole per line and one
 * octet at a time.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "err.h"
#include "relay_client.h"
#include "tap.h"

#define MAXR 4

struct tcase {
	const char *name;
	struct relay_client_params params;
	const char *rcpts[MAXR];
	const char *script[64];
	int result;            /* enum relay_client_result */
	int status[MAXR];      /* enum relay_rcpt_status per recipient */
	const char *reply0;    /* prefix expected in rcpts[0].reply */
};

#define P_PLAIN { .helo = "mx.a.test", .sender = "alice@a.test", \
	.size = 1234 }
#define P_TLS { .helo = "mx.a.test", .sender = "alice@a.test", \
	.size = 1234, .tls_possible = true }

/* Script fragments most dialogs share. */
#define D_MAIL "S:220 mx.b.test", "C:EHLO mx.a.test", "S:250 mx.b.test", \
	"C:MAIL FROM:<alice@a.test>", "S:250 ok"
#define D_BOB_BODY "C:RCPT TO:<bob@b.test>", "S:250 ok", "C:DATA", \
	"S:354 go", "E:BODY"
#define D_QUIT "E:DONE", "C:QUIT", "S:221 bye", "E:CLOSE", NULL
/* A smarthost that offers STARTTLS: the client uses it and says EHLO
 * again. */
#define D_SMART_TLS "S:220 smart", "C:EHLO mx.a.test", "S:250-smart", \
	"S:250 STARTTLS", "C:STARTTLS", "S:220 go", "E:STARTTLS", \
	"C:EHLO mx.a.test"
/* Expected outcomes: one recipient delivered; tried at the next host. */
#define D_OK_BOB RELAY_CLIENT_R_DONE, { RELAY_RCPT_OK }, "250 ok"
#define D_NEXT_HOST RELAY_CLIENT_R_NEXT_HOST, { RELAY_RCPT_PENDING }, ""
#define P_AUTH { .helo = "mx.a.test", .sender = "alice@a.test", \
	.size = 10, .tls_possible = true, .auth_user = "u", .auth_pass = "p" }

#define P_DSN { .helo = "mx.a.test", .sender = "alice@a.test", \
	.size = 1234, .dsn_ret = DSN_RET_HDRS, .dsn_envid = "id+1=2" }

static const struct tcase cases[] = {
	{ "DSN offered: RET, ENVID, NOTIFY, ORCPT passed on as xtext",
	  P_DSN, { "bob@b.test|7|rfc822;Bob+x@b.test", "carol@b.test|8|" },
	  { "S:220 mx.b.test ESMTP",
	    "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250-PIPELINING", "S:250 DSN",
	    "C:MAIL FROM:<alice@a.test> RET=HDRS ENVID=id+2B1+3D2",
	    "C:RCPT TO:<bob@b.test> NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=rfc822;Bob+2Bx@b.test",
	    "C:RCPT TO:<carol@b.test> NOTIFY=NEVER",
	    "C:DATA",
	    "S:250 ok", "S:250 ok", "S:250 ok", "S:354 go", "E:BODY",
	    "S:250 2.0.0 queued", D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_OK, RELAY_RCPT_OK },
	  "250 2.0.0 queued" },
	{ "DSN not offered: no parameters (RFC 3461 5.2.2.2)",
	  P_DSN, { "bob@b.test|1|rfc822;bob@b.test" },
	  { "S:220 mx.b.test ESMTP",
	    "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 PIPELINING",
	    "C:MAIL FROM:<alice@a.test>",
	    "C:RCPT TO:<bob@b.test>",
	    "C:DATA",
	    "S:250 ok", "S:250 ok", "S:354 go", "E:BODY",
	    "S:250 2.0.0 queued", D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_OK }, "250 2.0.0 queued" },
	{ "happy path, pipelining",
	  P_PLAIN, { "bob@b.test", "carol@b.test" },
	  { "S:220 mx.b.test ESMTP",
	    "C:EHLO mx.a.test",
	    "S:250-mx.b.test hello", "S:250-PIPELINING", "S:250-SIZE 10000",
	    "S:250 8BITMIME",
	    "C:MAIL FROM:<alice@a.test> SIZE=1234",
	    "C:RCPT TO:<bob@b.test>", "C:RCPT TO:<carol@b.test>", "C:DATA",
	    "S:250 2.1.0 ok", "S:250 2.1.5 ok", "S:250 2.1.5 ok",
	    "S:354 go ahead",
	    "E:BODY",
	    "S:250 2.0.0 queued as X1",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_OK, RELAY_RCPT_OK },
	  "250 2.0.0 queued as X1" },
	{ "no pipelining: one command at a time, HELO-less EHLO",
	  P_PLAIN, { "bob@b.test", "carol@b.test" },
	  { D_MAIL,
	    "C:RCPT TO:<bob@b.test>",
	    "S:250 ok",
	    "C:RCPT TO:<carol@b.test>",
	    "S:250 ok",
	    "C:DATA",
	    "S:354 go",
	    "E:BODY",
	    "S:250 ok",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_OK, RELAY_RCPT_OK }, "250 ok" },
	{ "per-recipient 5xx and 4xx do not stop the others",
	  P_PLAIN, { "bob@b.test", "nobody@b.test", "later@b.test" },
	  { "S:220 mx.b.test",
	    "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 PIPELINING",
	    "C:MAIL FROM:<alice@a.test>",
	    "C:RCPT TO:<bob@b.test>", "C:RCPT TO:<nobody@b.test>",
	    "C:RCPT TO:<later@b.test>", "C:DATA",
	    "S:250 ok",
	    "S:250 ok",
	    "S:550-5.1.1 <nobody@b.test>: no such", "S:550 5.1.1 user here",
	    "S:451 4.3.0 try later",
	    "S:354 go",
	    "E:BODY",
	    "S:250 2.0.0 ok",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE,
	  { RELAY_RCPT_OK, RELAY_RCPT_PERM, RELAY_RCPT_TEMP },
	  "250 2.0.0 ok" },
	{ "multi-line refusal: enhanced code not repeated",
	  P_PLAIN, { "x@b.test" },
	  { D_MAIL,
	    "C:RCPT TO:<x@b.test>",
	    "S:550-5.1.1 <x@b.test>: Recipient address rejected:",
	    "S:550 5.1.1 User unknown",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM },
	  "550 5.1.1 <x@b.test>: Recipient address rejected: User unknown" },
	{ "all recipients refused: no DATA without pipelining",
	  P_PLAIN, { "x@b.test" },
	  { D_MAIL,
	    "C:RCPT TO:<x@b.test>",
	    "S:550 5.1.1 no such user",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM },
	  "550 5.1.1 no such user" },
	{ "all refused, pipelined DATA accepted anyway: empty data",
	  P_PLAIN, { "x@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 PIPELINING",
	    "C:MAIL FROM:<alice@a.test>", "C:RCPT TO:<x@b.test>", "C:DATA",
	    "S:250 ok", "S:550 5.1.1 nope", "S:354 go",
	    "E:DONE", "C:.",
	    "S:554 no valid recipients",
	    "C:QUIT", "S:221 bye", "E:CLOSE", NULL },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM }, "550 5.1.1 nope" },
	{ "greeting 4xx: next host",
	  P_PLAIN, { "bob@b.test" },
	  { "S:421-mx.b.test busy", "S:421 try another",
	    "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
	{ "greeting 554: next host, polite QUIT",
	  P_PLAIN, { "bob@b.test" },
	  { "S:554 no service", D_QUIT },
	  D_NEXT_HOST },
	{ "EHLO refused: HELO fallback",
	  P_PLAIN, { "bob@b.test" },
	  { "S:220 old.b.test", "C:EHLO mx.a.test",
	    "S:502 what?", "C:HELO mx.a.test", "S:250 old.b.test",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "STARTTLS offered: used, EHLO again",
	  P_TLS, { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250-STARTTLS", "S:250 PIPELINING",
	    "C:STARTTLS", "S:220 2.0.0 ready",
	    "E:STARTTLS", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 PIPELINING",
	    "C:MAIL FROM:<alice@a.test>", "C:RCPT TO:<bob@b.test>", "C:DATA",
	    "S:250 ok", "S:250 ok", "S:354 go", "E:BODY", "S:250 ok",
	    D_QUIT },
	  D_OK_BOB },
	{ "no STARTTLS offered: plaintext (opportunistic)",
	  P_TLS, { "bob@b.test" },
	  { D_MAIL, D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "STARTTLS refused: plaintext",
	  P_TLS, { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 STARTTLS", "C:STARTTLS",
	    "S:454 4.7.0 TLS not available",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "TLS required (AUTH) but not offered: next host, no password",
	  { .helo = "mx.a.test", .sender = "alice@a.test", .size = 10,
	    .tls_possible = true, .auth_user = "u", .auth_pass = "secret" },
	  { "bob@b.test" },
	  { "S:220 smart", "C:EHLO mx.a.test",
	    "S:250-smart", "S:250 AUTH PLAIN LOGIN",
	    D_QUIT },
	  D_NEXT_HOST },
	{ "AUTH PLAIN after STARTTLS",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH LOGIN PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:235 2.7.0 ok",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "AUTH LOGIN",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH=LOGIN",
	    "C:AUTH LOGIN", "S:334 VXNlcm5hbWU6", "C:dQ==",
	    "S:334 UGFzc3dvcmQ6", "C:cA==", "S:235 ok",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "AUTH failure: next host (message stays queued)",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:535 5.7.8 bad credentials",
	    D_QUIT },
	  D_NEXT_HOST },
	{ "AUTH PLAIN: initial response refused (501 syntax), sent after 334",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH PLAIN LOGIN",
	    "C:AUTH PLAIN AHUAcA==", "S:501 5.5.2 initial response not allowed",
	    "C:AUTH PLAIN", "S:334 ", "C:AHUAcA==", "S:235 2.7.0 ok",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "AUTH PLAIN: 535 with a syntax code (5.5.4): sent after 334",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:535 5.5.4 bad argument",
	    "C:AUTH PLAIN", "S:334", "C:AHUAcA==", "S:235 ok",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "AUTH PLAIN: 334 to the line with the response: sent again",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:334 ", "C:AHUAcA==", "S:235 ok",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "AUTH PLAIN: bare command refused too: next host, one retry only",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:501 5.5.2 syntax",
	    "C:AUTH PLAIN", "S:501 5.5.2 syntax", D_QUIT },
	  D_NEXT_HOST },
	{ "AUTH PLAIN: response after 334 refused: next host",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:500 5.5.2 line too long",
	    "C:AUTH PLAIN", "S:334 ", "C:AHUAcA==",
	    "S:535 5.7.8 bad credentials", D_QUIT },
	  D_NEXT_HOST },
	{ "AUTH LOGIN refused 501: not retried as PLAIN",
	  P_AUTH, { "bob@b.test" },
	  { D_SMART_TLS,
	    "S:250-smart", "S:250 AUTH LOGIN",
	    "C:AUTH LOGIN", "S:501 5.5.2 no", D_QUIT },
	  D_NEXT_HOST },
	{ "implicit TLS: handshake first, then the greeting; no STARTTLS",
	  { .helo = "mx.a.test", .sender = "alice@a.test", .size = 10,
	    .tls_possible = true, .tls_required = true, .tls_implicit = true,
	    .auth_user = "u", .auth_pass = "p" },
	  { "bob@b.test" },
	  { "E:STARTTLS",
	    "S:220 smart ESMTP", "C:EHLO mx.a.test",
	    "S:250-smart", "S:250-STARTTLS", "S:250 AUTH PLAIN",
	    "C:AUTH PLAIN AHUAcA==", "S:235 ok",
	    "C:MAIL FROM:<alice@a.test>", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "implicit TLS: failed handshake: next host, nothing sent",
	  { .helo = "mx.a.test", .sender = "alice@a.test", .size = 10,
	    .tls_possible = true, .tls_required = true, .tls_implicit = true,
	    .auth_user = "u", .auth_pass = "p" },
	  { "bob@b.test" },
	  { "E:STARTTLS-FAIL", "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
	{ "STARTTLS handshake fails with AUTH: next host, no AUTH",
	  P_AUTH, { "bob@b.test" },
	  { "S:220 smart", "C:EHLO mx.a.test", "S:250-smart",
	    "S:250-AUTH PLAIN", "S:250 STARTTLS", "C:STARTTLS", "S:220 go",
	    "E:STARTTLS-FAIL", "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
	{ "TLS required without AUTH, none offered: next host",
	  { .helo = "mx.a.test", .sender = "alice@a.test", .size = 10,
	    .tls_possible = true, .tls_required = true },
	  { "bob@b.test" },
	  { "S:220 smart", "C:EHLO mx.a.test", "S:250 smart", D_QUIT },
	  D_NEXT_HOST },
	{ "MAIL FROM 4xx: all temporary",
	  P_PLAIN, { "bob@b.test", "carol@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test", "S:250 mx.b.test",
	    "C:MAIL FROM:<alice@a.test>", "S:451 4.7.1 greylisted",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_TEMP, RELAY_RCPT_TEMP },
	  "451 4.7.1 greylisted" },
	{ "MAIL FROM 5xx pipelined: all permanent, replies drained",
	  P_PLAIN, { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 PIPELINING",
	    "C:MAIL FROM:<alice@a.test>", "C:RCPT TO:<bob@b.test>",
	    "C:DATA",
	    "S:553 5.7.1 sender rejected", "S:503 5.5.1 no MAIL",
	    "S:503 5.5.1 no RCPT",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM },
	  "553 5.7.1 sender rejected" },
	{ "DATA refused 554",
	  P_PLAIN, { "bob@b.test" },
	  { D_MAIL,
	    "C:RCPT TO:<bob@b.test>", "S:250 ok", "C:DATA",
	    "S:554 5.3.0 no", D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM }, "554 5.3.0 no" },
	{ "final dot 452: temporary",
	  P_PLAIN, { "bob@b.test" },
	  { D_MAIL, D_BOB_BODY, "S:452 4.2.2 mailbox full", D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_TEMP },
	  "452 4.2.2 mailbox full" },
	{ "final dot 550: permanent",
	  P_PLAIN, { "bob@b.test" },
	  { D_MAIL, D_BOB_BODY, "S:550 5.7.1 spam", D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM }, "550 5.7.1 spam" },
	{ "connection lost after the dot: retried (duplicate, not loss)",
	  P_PLAIN, { "bob@b.test" },
	  { D_MAIL, D_BOB_BODY, "A:timeout after end of data", "E:DONE", "E:CLOSE",
	    NULL },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_TEMP },
	  "timeout after end of data" },
	{ "connection lost before MAIL: next host",
	  P_PLAIN, { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "A:connection reset", "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
	{ "421 during RCPT: next host for the rest",
	  P_PLAIN, { "bob@b.test" },
	  { D_MAIL,
	    "C:RCPT TO:<bob@b.test>", "S:421 4.3.2 shutting down",
	    "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
	{ "SIZE limit below the message: permanent without MAIL",
	  { .helo = "mx.a.test", .sender = "alice@a.test", .size = 5000 },
	  { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250 SIZE 4096",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM }, "552 5.3.4" },
	{ "8-bit body: BODY=8BITMIME when offered",
	  { .helo = "mx.a.test", .sender = "", .size = 10,
	    .body_8bit = true },
	  { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test",
	    "S:250-mx.b.test", "S:250-8BITMIME", "S:250 SIZE",
	    "C:MAIL FROM:<> SIZE=10 BODY=8BITMIME", "S:250 ok",
	    D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "8-bit body, no 8BITMIME: sent as it is",
	  { .helo = "mx.a.test", .sender = "alice@a.test", .size = 10,
	    .body_8bit = true },
	  { "bob@b.test" },
	  { D_MAIL, D_BOB_BODY, "S:250 ok", D_QUIT },
	  D_OK_BOB },
	{ "UTF-8 envelope without SMTPUTF8: permanent",
	  { .helo = "mx.a.test", .sender = "al\xc3\xaf" "ce@a.test", .size = 10,
	    .smtputf8 = true },
	  { "bob@b.test" },
	  { "S:220 mx.b.test", "C:EHLO mx.a.test", "S:250 mx.b.test",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM }, "553 5.6.7" },
	{ "mail loops back to myself",
	  P_PLAIN, { "bob@b.test" },
	  { "S:220 mx.a.test ESMTP", "C:EHLO mx.a.test",
	    "S:250-mx.a.test", "S:250 PIPELINING",
	    D_QUIT },
	  RELAY_CLIENT_R_DONE, { RELAY_RCPT_PERM }, "554 5.4.6" },
	{ "malformed reply: next host",
	  P_PLAIN, { "bob@b.test" },
	  { "S:hello there", "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
	{ "multi-line reply with changing code: protocol error",
	  P_PLAIN, { "bob@b.test" },
	  { "S:220-mx.b.test", "S:250 oops", "E:DONE", "E:CLOSE", NULL },
	  D_NEXT_HOST },
};

struct run {
	struct relay_client c;
	struct relay_client_rcpt rcpts[MAXR];
	char addr[MAXR][256];
	char sent[8192];
	size_t sent_len, sent_pos;
	int events[16];
	size_t n_events, ev_pos;
	uint8_t in[8192];
	size_t in_len;
	bool closed;
};

/* A case's recipient: "address" or "address|NOTIFY bits|ORCPT" (RFC
 * 3461 parameters, an empty ORCPT for none). */
static void
run_rcpt(struct run *r, size_t n, const char *spec)
{
	const char *bar = strchr(spec, '|'), *bar2;

	snprintf(r->addr[n], sizeof(r->addr[n]), "%.*s",
	    (int)(bar != NULL ? (size_t)(bar - spec) : strlen(spec)), spec);
	r->rcpts[n].address = r->addr[n];
	r->rcpts[n].notify = 0;
	r->rcpts[n].orcpt = NULL;
	if (bar == NULL)
		return;
	r->rcpts[n].notify = (unsigned)strtoul(bar + 1, NULL, 10);
	if ((bar2 = strchr(bar + 1, '|')) != NULL)
		r->rcpts[n].orcpt = bar2 + 1;
}

static void
run_collect(struct run *r)
{
	enum relay_client_event ev;

	if (r->c.out.len > 0 &&
	    r->sent_len + r->c.out.len < sizeof(r->sent)) {
		memcpy(r->sent + r->sent_len, r->c.out.p, r->c.out.len);
		r->sent_len += r->c.out.len;
	}
	relay_client_sent(&r->c);
	/* CLOSE stays pending for ever once reached: record it once. */
	while (!r->closed &&
	    (ev = relay_client_next_event(&r->c)) != RELAY_CLIENT_EV_NONE) {
		if (r->n_events < 16)
			r->events[r->n_events++] = ev;
		if (ev == RELAY_CLIENT_EV_CLOSE)
			r->closed = true;
	}
}

static int
run_feed(struct run *r, const char *line, bool trickle)
{
	char wire[1100];
	size_t n = (size_t)snprintf(wire, sizeof(wire), "%s\r\n", line);
	size_t i, step;
	long used;

	/* Trickle: the client sees the line grow one octet at a time and
	 * must leave the partial line in the buffer for later. */
	for (i = 0; i < n; i += step) {
		step = trickle ? 1 : n;
		memcpy(r->in + r->in_len, wire + i, step);
		r->in_len += step;
		used = relay_client_feed(&r->c, r->in, r->in_len);
		if (used < 0)
			return -1;
		memmove(r->in, r->in + used, r->in_len - (size_t)used);
		r->in_len -= (size_t)used;
		run_collect(r);
	}
	return 0;
}

static const char *
ev_name(int ev)
{
	static const char *const names[] = { "NONE", "STARTTLS", "BODY",
		"DONE", "CLOSE" };
	return ev >= 0 && ev <= 4 ? names[ev] : "?";
}

static void
run_case(const struct tcase *t, bool trickle)
{
	struct run *r = calloc(1, sizeof(*r));
	const char *mode = trickle ? "trickle" : "whole";
	size_t n = 0, i, k;
	bool ok = true, fail;
	char why[300] = "";

	while (n < MAXR && t->rcpts[n] != NULL) {
		run_rcpt(r, n, t->rcpts[n]);
		n++;
	}
	if (relay_client_init(&r->c, &t->params, r->rcpts, n) < 0) {
		TAP_OK(0, "%s (%s): init", t->name, mode);
		free(r);
		return;
	}
	/* Implicit TLS asks for the handshake before any input. */
	run_collect(r);
	for (i = 0; ok && t->script[i] != NULL; i++) {
		const char *s = t->script[i] + 2;

		switch (t->script[i][0]) {
		case 'S':
			if (run_feed(r, s, trickle) < 0) {
				snprintf(why, sizeof(why), "feed of '%s'", s);
				ok = false;
			}
			break;
		case 'C':
			k = strlen(s);
			if (r->sent_len - r->sent_pos < k + 2 ||
			    memcmp(r->sent + r->sent_pos, s, k) != 0 ||
			    memcmp(r->sent + r->sent_pos + k, "\r\n", 2)) {
				snprintf(why, sizeof(why),
				    "expected C: %s, have '%.*s'", s,
				    (int)(r->sent_len - r->sent_pos),
				    r->sent + r->sent_pos);
				ok = false;
			}
			r->sent_pos += k + 2;
			break;
		case 'E':
			fail = strcmp(s, "STARTTLS-FAIL") == 0;
			if (fail)
				s = "STARTTLS";
			if (r->ev_pos >= r->n_events ||
			    strcmp(ev_name(r->events[r->ev_pos]), s) != 0) {
				snprintf(why, sizeof(why),
				    "expected event %s, have %s", s,
				    r->ev_pos < r->n_events ?
				    ev_name(r->events[r->ev_pos]) : "none");
				ok = false;
				break;
			}
			r->ev_pos++;
			if (strcmp(s, "STARTTLS") == 0)
				relay_client_tls_done(&r->c, !fail);
			else if (strcmp(s, "BODY") == 0)
				relay_client_body_done(&r->c);
			run_collect(r);
			break;
		case 'A':
			relay_client_abort(&r->c, s);
			run_collect(r);
			break;
		}
	}
	if (ok && r->sent_pos != r->sent_len) {
		snprintf(why, sizeof(why), "unexpected output '%.*s'",
		    (int)(r->sent_len - r->sent_pos), r->sent + r->sent_pos);
		ok = false;
	}
	if (ok && r->ev_pos != r->n_events) {
		snprintf(why, sizeof(why), "unexpected event %s",
		    ev_name(r->events[r->ev_pos]));
		ok = false;
	}
	if (!TAP_OK(ok, "%s (%s): dialog", t->name, mode))
		printf("#   %s\n", why);
	TAP_EQ_INT(r->c.result, t->result, "%s (%s): result", t->name, mode);
	for (k = 0; k < n; k++)
		TAP_EQ_INT(r->rcpts[k].status, t->status[k],
		    "%s (%s): rcpt %zu status", t->name, mode, k);
	if (t->reply0[0] != '\0' &&
	    !TAP_OK(strncmp(r->rcpts[0].reply, t->reply0,
	    strlen(t->reply0)) == 0, "%s (%s): reply", t->name, mode))
		printf("#   got '%s'\n", r->rcpts[0].reply);
	relay_client_fini(&r->c);
	free(r);
}

static void
test_timeouts(void)
{
	struct relay_client c;
	struct relay_client_params p = P_PLAIN;
	struct relay_client_rcpt rc = { .address = "b@b.test" };

	relay_client_init(&c, &p, &rc, 1);
	/* RFC 5321 4.5.3.2. */
	TAP_EQ_INT(relay_client_timeout_ms(&c), 300000, "greeting 5 min");
	c.state = RELAY_CLIENT_S_MAIL;
	TAP_EQ_INT(relay_client_timeout_ms(&c), 300000, "MAIL 5 min");
	c.state = RELAY_CLIENT_S_RCPT;
	TAP_EQ_INT(relay_client_timeout_ms(&c), 300000, "RCPT 5 min");
	c.state = RELAY_CLIENT_S_DATA;
	TAP_EQ_INT(relay_client_timeout_ms(&c), 120000, "DATA 2 min");
	c.state = RELAY_CLIENT_S_BODY;
	TAP_EQ_INT(relay_client_timeout_ms(&c), 180000, "data block 3 min");
	c.state = RELAY_CLIENT_S_DOT;
	TAP_EQ_INT(relay_client_timeout_ms(&c), 600000, "final dot 10 min");
	relay_client_fini(&c);
}

static void
test_long_line(void)
{
	struct relay_client c;
	struct relay_client_params p = P_PLAIN;
	struct relay_client_rcpt rc = { .address = "b@b.test" };
	static uint8_t big[RELAY_CLIENT_LINE_MAX + 10];

	relay_client_init(&c, &p, &rc, 1);
	memset(big, 'x', sizeof(big));
	memcpy(big, "220 ", 4);
	/* At the limit without LF: still waiting. */
	TAP_EQ_INT(relay_client_feed(&c, big, RELAY_CLIENT_LINE_MAX), 0,
	    "line at the limit waits for more");
	TAP_OK(relay_client_feed(&c, big, RELAY_CLIENT_LINE_MAX + 1) < 0,
	    "line past the limit is an error");
	TAP_EQ_INT(c.result, RELAY_CLIENT_R_NEXT_HOST,
	    "overlong reply: next host");
	relay_client_fini(&c);
}

/* c's pending output as a string (then sent). */
static const char *
reuse_out(struct relay_client *c, char *out, size_t cap)
{
	snprintf(out, cap, "%.*s", (int)c->out.len, (const char *)c->out.p);
	relay_client_sent(c);
	return out;
}

/* Feeds one reply line to c and returns the output it caused. */
static const char *
reuse_step(struct relay_client *c, const char *line, char *out, size_t cap)
{
	char wire[600];
	size_t n = (size_t)snprintf(wire, sizeof(wire), "%s\r\n", line);

	relay_client_feed(c, (const uint8_t *)wire, n);
	snprintf(out, cap, "%.*s", (int)c->out.len, (const char *)c->out.p);
	relay_client_sent(c);
	return out;
}

/* Connection reuse: after the final dot the session stays (S_IDLE, no
 * QUIT); the next message starts with RSET; a refused RSET ends it with
 * reuse_failed; an idle session ends with QUIT. */
static void
test_reuse(void)
{
	struct relay_client c;
	struct relay_client_params p = P_PLAIN, p2 = P_PLAIN;
	struct relay_client_rcpt r1 = { .address = "b@b.test" };
	struct relay_client_rcpt r2 = { .address = "c@b.test" };
	char o[600];

	p2.sender = "dave@a.test";
	relay_client_init(&c, &p, &r1, 1);
	c.reuse = true;
	reuse_step(&c, "220 mx.b.test", o, sizeof(o));
	reuse_step(&c, "250-mx.b.test", o, sizeof(o));
	TAP_EQ_STR(reuse_step(&c, "250 PIPELINING", o, sizeof(o)),
	    "MAIL FROM:<alice@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\n",
	    "first message pipelined");
	reuse_step(&c, "250 ok", o, sizeof(o));
	reuse_step(&c, "250 ok", o, sizeof(o));
	reuse_step(&c, "354 go", o, sizeof(o));
	TAP_EQ_INT(relay_client_next_event(&c), RELAY_CLIENT_EV_BODY, "body");
	relay_client_body_done(&c);
	TAP_EQ_STR(reuse_step(&c, "250 2.0.0 queued", o, sizeof(o)), "",
	    "no QUIT after the dot");
	TAP_EQ_INT(c.state, RELAY_CLIENT_S_IDLE, "idle");
	TAP_EQ_INT(relay_client_next_event(&c), RELAY_CLIENT_EV_DONE, "done");
	TAP_EQ_INT(r1.status, RELAY_RCPT_OK, "first delivered");
	TAP_EQ_INT(relay_client_next(&c, &p2, &r2, 1), 0, "next message");
	TAP_EQ_STR(reuse_out(&c, o, sizeof(o)), "RSET\r\n", "RSET first");
	TAP_EQ_STR(reuse_step(&c, "250 2.0.0 ok", o, sizeof(o)),
	    "MAIL FROM:<dave@a.test>\r\nRCPT TO:<c@b.test>\r\nDATA\r\n",
	    "then the envelope, with the session's PIPELINING");
	TAP_EQ_INT(c.result, RELAY_CLIENT_R_NONE, "undecided again");
	reuse_step(&c, "250 ok", o, sizeof(o));
	reuse_step(&c, "550 5.1.1 no such user", o, sizeof(o));
	TAP_EQ_STR(reuse_step(&c, "554 5.5.1 no valid recipients", o,
	    sizeof(o)), "", "a refused transaction keeps the session too");
	TAP_EQ_INT(r2.status, RELAY_RCPT_PERM, "second bounced");
	TAP_EQ_INT(c.state, RELAY_CLIENT_S_IDLE, "idle again");
	relay_client_next_event(&c);
	TAP_EQ_INT(relay_client_next(&c, &p, &r1, 1), 0, "third message");
	reuse_out(&c, o, sizeof(o));
	TAP_EQ_STR(reuse_step(&c, "451 4.3.0 not now", o, sizeof(o)),
	    "QUIT\r\n", "refused RSET: QUIT");
	TAP_OK(c.reuse_failed && c.result == RELAY_CLIENT_R_NEXT_HOST &&
	    r1.status == RELAY_RCPT_PENDING,
	    "reuse_failed, recipient pending for a new connection");
	relay_client_fini(&c);

	relay_client_init(&c, &p, &r1, 1);
	c.reuse = true;
	c.state = RELAY_CLIENT_S_IDLE;
	TAP_EQ_INT(relay_client_next(&c, &p, &r1, 0), PR_EINVAL,
	    "next without recipients");
	relay_client_idle_quit(&c);
	TAP_EQ_STR(reuse_out(&c, o, sizeof(o)), "QUIT\r\n", "idle: QUIT");
	relay_client_fini(&c);
	relay_client_init(&c, &p, &r1, 1);
	TAP_EQ_INT(relay_client_next(&c, &p, &r1, 1), PR_EINVAL,
	    "next on a session that is not idle");
	relay_client_fini(&c);
}

int
main(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_case(&cases[i], false);
		run_case(&cases[i], true);
	}
	test_timeouts();
	test_long_line();
	test_reuse();
	return tap_done();
}
