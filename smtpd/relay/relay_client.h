/*
 * relay_client.h - the SMTP client protocol, sans I/O.
 *
 * One relay_client drives one SMTP session to one remote host for one
 * message and a group of its recipients: greeting (after the handshake
 * with implicit TLS), EHLO (HELO fallback), STARTTLS when offered, AUTH
 * for a smarthost (PLAIN with or without an initial response, or LOGIN),
 * MAIL/RCPT/DATA (pipelined when the server offers PIPELINING, RFC 2920),
 * the final dot and QUIT.
 *
 * It never touches a socket, a clock or the store.  The glue feeds it the
 * server's bytes, sends what it leaves in `out`, and acts on its events:
 *
 *   relay_client_init(&c, &params, rcpts, n);
 *   loop:
 *     relay_client_feed(&c, in, len)      -> bytes consumed
 *     send c.out, relay_client_sent(&c)
 *     switch (relay_client_next_event(&c)):
 *       NONE      wait for more input (timeout: relay_client_timeout_ms)
 *       STARTTLS  run the TLS handshake, then relay_client_tls_done();
 *                 with tls_implicit it is pending right after init, before
 *                 anything is read (RFC 8314 3.3: TLS, then the greeting)
 *       BODY      stream the dot-stuffed message, then relay_client_body_done()
 *       DONE      the transaction is decided: read rcpts[i].status; QUIT
 *                 is in out, or with c.reuse the session is S_IDLE
 *       CLOSE     close the connection
 *
 * Connection reuse: with c.reuse set, a transaction that ended in the
 * protocol (a reply to MAIL, RCPT, DATA or the final dot, not a broken
 * connection) leaves the session in S_IDLE instead of saying QUIT.  The
 * glue then starts the next message with relay_client_next() (RSET
 * first, RFC 5321 4.1.1.5) or ends it with relay_client_idle_quit().
 *
 * A failure of the connection itself (refused, reset, timeout) is reported
 * with relay_client_abort(), which decides what it means for the
 * recipients from the state the session was in.
 */
#ifndef POSTROOM_RELAY_CLIENT_H
#define POSTROOM_RELAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A reply as kept for logs and DSNs: "550 5.1.1 <x@y>: no such user". */
#define RELAY_REPLY_MAX 512
/* RFC 5321 4.5.3.1.5 says 512 octets per reply line; servers send longer
 * ones in practice, so we accept up to this and call the rest an error. */
#define RELAY_CLIENT_LINE_MAX 4096
/* Lines of one multi-line reply (an EHLO reply has one per extension). */
#define RELAY_CLIENT_REPLY_LINES_MAX 64

enum relay_rcpt_status {
	RELAY_RCPT_PENDING = 0, /* no answer for this host yet */
	RELAY_RCPT_OK,          /* accepted after the final dot */
	RELAY_RCPT_TEMP,        /* 4xx or unknown outcome: retry later */
	RELAY_RCPT_PERM,        /* 5xx: bounce */
};

struct relay_client_rcpt {
	const char *address;        /* borrowed for the client's lifetime */
	unsigned notify;            /* DSN NOTIFY= bits (dsn.h), 0 = none */
	const char *orcpt;          /* ORCPT= "addr-type;address" decoded,
	                               NULL or "" = none; borrowed */
	int status;                 /* enum relay_rcpt_status */
	char reply[RELAY_REPLY_MAX]; /* the reply that decided status */
};

struct relay_client_params {
	const char *helo;        /* our name for EHLO/HELO */
	const char *sender;      /* reverse-path, "" = null sender */
	uint64_t size;           /* message octets (SIZE, RFC 1870) */
	bool body_8bit;          /* the message has octets > 127 */
	bool smtputf8;           /* an address is UTF-8 (RFC 6531) */
	bool tls_possible;       /* the glue can run a TLS handshake */
	bool tls_required;       /* refuse to go on without TLS */
	bool tls_implicit;       /* TLS from the start (port 465, RFC 8314) */
	const char *auth_user;   /* AUTH for a smarthost, NULL = none */
	const char *auth_pass;   /* borrowed; only ever sent under TLS */
	/* DSN (RFC 3461), passed on to a server that offers DSN: RET=
	 * (enum dsn_ret) and ENVID= (decoded, NULL or "" = none). */
	int dsn_ret;
	const char *dsn_envid;
};

enum relay_client_state {
	RELAY_CLIENT_S_GREETING,
	RELAY_CLIENT_S_EHLO,
	RELAY_CLIENT_S_HELO,
	RELAY_CLIENT_S_STARTTLS,
	RELAY_CLIENT_S_TLS,          /* handshake running in the glue */
	RELAY_CLIENT_S_AUTH,         /* AUTH PLAIN with a response, or LOGIN */
	RELAY_CLIENT_S_AUTH_PLAIN,   /* PLAIN without one: waiting for 334 */
	RELAY_CLIENT_S_AUTH_USER,    /* LOGIN: username sent */
	RELAY_CLIENT_S_AUTH_PASS,    /* LOGIN password or PLAIN response sent */
	RELAY_CLIENT_S_MAIL,
	RELAY_CLIENT_S_RCPT,
	RELAY_CLIENT_S_DATA,
	RELAY_CLIENT_S_BODY,         /* message streaming in the glue */
	RELAY_CLIENT_S_DOT,          /* waiting for the final reply */
	RELAY_CLIENT_S_QUIT,
	RELAY_CLIENT_S_CLOSED,
	RELAY_CLIENT_S_IDLE,         /* reuse: between two transactions */
	RELAY_CLIENT_S_RSET,         /* reuse: RSET before the next MAIL */
};

enum relay_client_event {
	RELAY_CLIENT_EV_NONE = 0,
	RELAY_CLIENT_EV_STARTTLS,
	RELAY_CLIENT_EV_BODY,
	RELAY_CLIENT_EV_DONE,
	RELAY_CLIENT_EV_CLOSE,
};

/* How the session ended, once EV_DONE was returned. */
enum relay_client_result {
	RELAY_CLIENT_R_NONE = 0,
	/* Every recipient has a status (OK, TEMP or PERM). */
	RELAY_CLIENT_R_DONE,
	/* This host could not take the message (connection, greeting,
	 * EHLO, TLS, ...): PENDING recipients should go to the next MX
	 * host; `error` says why. */
	RELAY_CLIENT_R_NEXT_HOST,
};

/* Server extensions from the EHLO reply. */
struct relay_client_ext {
	bool starttls, pipelining, eightbitmime, smtputf8;
	bool dsn;            /* RFC 3461: DSN parameters are passed on */
	bool auth_plain, auth_login;
	bool size;
	uint64_t size_max;   /* 0 = no limit announced */
};

struct relay_client {
	enum relay_client_state state;
	const struct relay_client_params *params;
	struct relay_client_rcpt *rcpts;
	size_t n_rcpts;

	struct buf out;          /* bytes to send (commands) */
	struct relay_client_ext ext;
	bool tls_active;
	bool helo_fallback;
	bool auth_login;         /* AUTH LOGIN chosen (else PLAIN) */
	bool auth_no_ir;         /* PLAIN: the response after a 334 */
	char server_name[256];   /* first word of the EHLO reply */

	/* Reply being assembled (multi-line). */
	int reply_code;
	size_t reply_lines;
	char reply[RELAY_REPLY_MAX];

	/* Pipelined commands still waiting for their reply, in order. */
	size_t next_rcpt_reply;  /* index of the RCPT whose reply is next */
	bool mail_ok;
	size_t n_accepted;       /* RCPTs answered 2xx */
	bool data_sent;          /* DATA is in flight (pipelined) */

	bool reuse;              /* set by the glue: keep the session */
	/* A kept session failed before its next transaction began (the
	 * RSET was refused, the connection was gone): R_NEXT_HOST, but
	 * the host itself may be fine; a fresh connection is worth it. */
	bool reuse_failed;

	enum relay_client_event event;
	enum relay_client_result result;
	char error[RELAY_REPLY_MAX]; /* why, for NEXT_HOST / TEMP / PERM */
};

/* Prepares a session; the greeting is expected first.  params and rcpts
 * are borrowed and must outlive the client; every rcpts[i].status is reset
 * to PENDING.  Returns 0 or PR_EINVAL (no recipients). */
int relay_client_init(struct relay_client *c,
    const struct relay_client_params *params,
    struct relay_client_rcpt *rcpts, size_t n_rcpts);

/* Wipes out (it may have held credentials) and frees it. */
void relay_client_fini(struct relay_client *c);

/* Consumes complete reply lines from in[0..len) until an event is pending
 * or the input is used up; returns the octets consumed (a partial line is
 * left for the next call), or a negative error for a line longer than
 * RELAY_CLIENT_LINE_MAX (the session is then decided as by
 * relay_client_abort and EV_DONE or EV_CLOSE is pending). */
long relay_client_feed(struct relay_client *c, const uint8_t *in,
    size_t len);

/* The glue sent c->out: the client wipes and empties it. */
void relay_client_sent(struct relay_client *c);

/* Returns the pending event and clears it (DONE and CLOSE stay once
 * reached: EV_DONE is returned once, then EV_NONE until the QUIT reply,
 * then EV_CLOSE for ever). */
enum relay_client_event relay_client_next_event(struct relay_client *c);

/* The TLS handshake asked for by EV_STARTTLS finished; ok false means the
 * connection is unusable (the session ends with R_NEXT_HOST).  Then the
 * client says EHLO again (RFC 3207 4.2), or with tls_implicit waits for
 * the greeting.  Whether the peer had to be verified is the glue's
 * business: it passes ok only for a handshake that met its policy. */
void relay_client_tls_done(struct relay_client *c, bool ok);

/* The message and the final "." were handed to the connection. */
void relay_client_body_done(struct relay_client *c);

/* The connection failed or timed out (why: for logs and DSNs).  Decides
 * the session: before the final dot, pending recipients go to the next
 * host; after it, the outcome is unknown and they are retried later
 * (RFC 5321 6.1: a duplicate is better than a loss).  EV_DONE becomes
 * pending if it was not returned yet, then EV_CLOSE. */
void relay_client_abort(struct relay_client *c, const char *why);

/* In S_IDLE: the next message on the same session, as after
 * relay_client_init (params and rcpts borrowed, statuses reset).  RSET
 * goes out first; the EHLO extensions and TLS of the session stay.
 * Returns 0, or PR_EINVAL (not idle, no recipients). */
int relay_client_next(struct relay_client *c,
    const struct relay_client_params *params,
    struct relay_client_rcpt *rcpts, size_t n_rcpts);

/* In S_IDLE: QUIT goes into out (then EV_CLOSE after its reply). */
void relay_client_idle_quit(struct relay_client *c);

/* The timeout for the current state in milliseconds, RFC 5321 4.5.3.2. */
uint64_t relay_client_timeout_ms(const struct relay_client *c);

/* "EHLO", "MAIL", ... for logs. */
const char *relay_client_state_name(enum relay_client_state st);

#endif
