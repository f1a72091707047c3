/*
 * pop3_proto_int.h - what the files of the POP3 core share: the session
 * struct and the internals that cross files.  Not for the glue.
 *
 *	pop3_proto.c   life cycle, framing, events and completions, the
 *	               listings and the RETR/TOP output filter
 *	pop3_cmd.c     the command table: parse, check, proceed
 */
#ifndef POSTROOM_POP3_PROTO_INT_H
#define POSTROOM_POP3_PROTO_INT_H

#include "pop3_proto.h"
#include "sasl.h"

enum pop3_listing {
	POP3_LISTING_NONE,
	POP3_LISTING_LIST,
	POP3_LISTING_UIDL,
};

/* Output filter of one RETR/TOP response. */
struct pop3_body {
	bool active;       /* between the BODY event and its completion */
	bool started;      /* "+OK" is out: the first octets were fed */
	bool in_header;    /* TOP: the blank line was not seen yet */
	bool done;         /* TOP: enough lines; ignore the rest */
	bool bol;          /* the next byte starts a line */
	bool prev_cr;      /* the last byte seen was CR */
	long top;          /* body lines wanted, -1 = all */
	long lines;        /* body lines sent so far */
	uint64_t col;      /* bytes since the start of the line */
};

struct pop3_proto {
	struct pop3_config cfg;
	char hostname[256];
	enum pop3_state state;

	struct buf in;       /* the current partial command line */
	bool discarding;     /* dropping an over-long line up to its LF */
	struct buf out;
	bool out_failed;     /* the output could not be queued: closed */

	unsigned bad_cmds;
	unsigned junk;       /* CAPA and USER before a login */
	unsigned auth_fails;
	bool tls_active;

	/* AUTHORIZATION */
	char user[SASL_USER_MAX];
	bool have_user;      /* USER was the previous command */
	bool prev_user;      /* ... of the command being run (PASS) */
	bool sasl_wait;      /* "+ " sent, the next line is the response */
	char *secret;        /* SASL_PASS_MAX bytes of sodium_malloc */

	struct pop3_event ev; /* ev.type != POP3_EV_NONE: pending */
	bool closing;         /* flush the output, then close */

	/* TRANSACTION: the snapshot taken at login (RFC 1939 5 numbers
	 * messages from 1 in this order; later arrivals are not shown). */
	struct pop3_msg *msgs;
	size_t n_msgs;
	size_t live;         /* messages not marked deleted ... */
	int64_t live_octets; /* ... and their octets (STAT, LIST, RSET) */
	char login[SASL_USER_MAX];
	int64_t *del_ids;

	enum pop3_listing listing;
	size_t list_pos;     /* next message index of the listing */

	struct pop3_body body;

	unsigned retrieved;
	uint64_t octets;
	unsigned deleted;
};

/* pop3_proto.c */
/* Queues one response line; CRLF is appended.  A failure closes. */
void pop3_proto__reply(struct pop3_proto *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A command the client should not have sent: "-ERR text", counted; the
 * session closes after limits.bad_cmd_max of them. */
void pop3_proto__bad(struct pop3_proto *p, const char *text);
void pop3_proto__enter(struct pop3_proto *p, enum pop3_state st);
void pop3_proto__set_event(struct pop3_proto *p, enum pop3_event_type type);
void pop3_proto__wipe_secret(struct pop3_proto *p);
void pop3_proto__recount(struct pop3_proto *p);
void pop3_proto__listing_start(struct pop3_proto *p, enum pop3_listing kind);

/* pop3_cmd.c */
/* Executes one command line (terminator removed, NUL-terminated), or
 * the SASL response the core waits for. */
void pop3_cmd__line(struct pop3_proto *p, char *line, size_t len);
/* Forgets a half-done login (over-long line, STLS): RFC 2595 4. */
void pop3_cmd__forget(struct pop3_proto *p);

#endif
