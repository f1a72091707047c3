/*
 * pop3_proto.h - the POP3 protocol core (RFC 1939, 2449, 2595, 5034).
 *
 * A sans-I/O state machine: the glue feeds it the bytes the client sent
 * and writes out the bytes it queues in its output buffer.  Whatever needs
 * the outside world (TLS, the store, the clock) becomes an event that the
 * glue performs and reports back with a completion call.  The core never
 * touches a socket, a clock or the database, so unit tests and the fuzzer
 * drive it with plain byte strings.
 *
 * One command is in flight at a time: while an event is pending, or while
 * a multi-line response is still being produced, pop3_proto_feed() consumes
 * nothing, so pipelined input stays with the caller (backpressure).
 *
 * The events work as in the SMTP core (smtp_proto.h): one pending event,
 * read with pop3_proto_event() and answered with pop3_proto_complete();
 * results beyond a status are handed over just before (maildrop, body
 * octets).  The greeting is queued on demand, closing is a state the glue
 * asks for, and an output that cannot be queued closes the session.
 *
 * Typical glue loop:
 *
 *	pop3_proto_greet(p)                   (port 995: after the handshake)
 *	n = pop3_proto_feed(p, in, len);      consume n bytes of input
 *	write pop3_proto_out(p), then buf_reset() it
 *	if ((ev = pop3_proto_event(p)) != NULL) handle ev:
 *	  POP3_EV_STLS    start TLS, then pop3_proto_tls_started()
 *	  POP3_EV_AUTH    verify ev->user/ev->pass, lock, list the maildrop:
 *	                  pop3_proto_maildrop(), pop3_proto_complete()
 *	  POP3_EV_MORE    when the peer has drained its output,
 *	                  pop3_proto_complete() (long LIST/UIDL listings)
 *	  POP3_EV_BODY    open message ev->msg_id, pop3_proto_body_feed() per
 *	                  chunk while pop3_proto_body_wanted(), then
 *	                  pop3_proto_complete()
 *	  POP3_EV_COMMIT  delete ev->ids, unlock, pop3_proto_complete()
 *	if (pop3_proto_closing(p))            close after the output is flushed
 */
#ifndef POSTROOM_POP3_PROTO_H
#define POSTROOM_POP3_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* RFC 2449 4: a command line is at most 255 octets including the CRLF. */
#define POP3_LINE_MAX 255
/* A SASL continuation line is not a command: it carries a base64 PLAIN
 * response of authzid, authcid and password (SASL_*_MAX), so it may be
 * longer than a command line. */
#define POP3_SASL_LINE_MAX 2200
/* Bad commands before the session is closed (as Dovecot). */
#define POP3_BAD_CMD_MAX 20
/* CAPA and USER before a login, at most: a client that never logs in
 * (and is no bad command either) does not hold a session forever. */
#define POP3_JUNK_MAX 100
/* Failed logins before the session is closed. */
#define POP3_AUTH_FAIL_MAX 3
/* Output produced per step of a long listing or a body chunk. */
#define POP3_OUT_STEP (16 * 1024)
/* RFC 1939 7: a unique-id is 1 to 70 characters 0x21..0x7E. */
#define POP3_UIDL_MAX 70
/* What a snapshot entry holds of one: the store's are 32 hex digits
 * (store.h, struct store_entry), and a maildrop of 100,000 messages
 * should not carry 38 unused octets per message
 * (docs/ARCHITECTURE.md, "Big maildrops"). */
#define POP3_UIDL_HELD 32

struct pop3_limits {
	size_t line_max;       /* POP3_LINE_MAX */
	size_t sasl_line_max;  /* POP3_SASL_LINE_MAX */
	unsigned bad_cmd_max;  /* POP3_BAD_CMD_MAX */
	unsigned junk_max;     /* POP3_JUNK_MAX; 0 reads as that */
	unsigned auth_fail_max; /* POP3_AUTH_FAIL_MAX */
};

struct pop3_config {
	/* Name in the greeting and the sign-off; copied. */
	const char *hostname;
	/* A certificate is configured, so STLS can be offered. */
	bool tls_available;
	/* The connection is already under TLS (port 995, RFC 8314). */
	bool tls_active;
	/* USER/PASS and AUTH accepted without TLS ([pop3]
	 * allow_plaintext_auth; loopback tests only). */
	bool allow_plaintext_auth;
	struct pop3_limits limits;
};

/* Fills limits with the defaults above. */
void pop3_proto_limits_default(struct pop3_limits *l);

/* One message of the maildrop snapshot taken at login. */
struct pop3_msg {
	int64_t id;       /* the store's entry id, opaque to the core */
	int64_t size;     /* exact octets as stored (CRLF lines) */
	char uidl[POP3_UIDL_HELD + 1];
	bool deleted;     /* marked by DELE, cleared by RSET */
};

enum pop3_state {
	POP3_S_AUTHORIZATION, /* RFC 1939 4: USER/PASS/AUTH/STLS/CAPA */
	POP3_S_TRANSACTION,   /* RFC 1939 5: maildrop locked */
	POP3_S_UPDATE,        /* RFC 1939 6: QUIT given, deletions pending */
	POP3_S_CLOSED,        /* nothing more is read; close after flush */
};

enum pop3_event_type {
	POP3_EV_NONE = 0,
	POP3_EV_STLS,   /* "+OK Begin TLS" is queued: flush, start TLS */
	POP3_EV_AUTH,   /* verify credentials and open the maildrop */
	POP3_EV_MORE,   /* a listing goes on: complete it for more */
	POP3_EV_BODY,   /* stream a message (RETR, TOP) */
	POP3_EV_COMMIT, /* QUIT in TRANSACTION: apply the deletions */
};

/* Valid until pop3_proto_complete() (pointers into the core). */
struct pop3_event {
	enum pop3_event_type type;
	/* AUTH: pass lives in sodium_malloc() memory and is wiped by the
	 * completion. */
	const char *user;
	const char *pass;
	bool sasl;          /* AUTH PLAIN rather than USER/PASS */
	/* BODY: message number (1-based), store id, stored size, and for TOP
	 * the number of body lines (-1 for RETR: the whole message). */
	unsigned msgno;
	int64_t msg_id;
	int64_t size;
	long top_lines;
	/* COMMIT: the store ids marked deleted, in message order.  n_ids
	 * may be 0. */
	const int64_t *ids;
	size_t n_ids;
};

struct pop3_proto;

/* Creates a session core.  cfg is copied.  Nothing is written until
 * pop3_proto_greet().  Returns 0 and *p_r, or PR_ENOMEM. */
int pop3_proto_new(const struct pop3_config *cfg, struct pop3_proto **p_r);

/* Frees the core, its snapshot and wipes any credentials; *p = NULL. */
void pop3_proto_free(struct pop3_proto **p);

/* Queues the greeting (RFC 1939 4). */
void pop3_proto_greet(struct pop3_proto *p);

/*
 * Feeds client bytes.  Complete lines are executed in order; a partial
 * line is kept (bounded by the limits).  Stops early when an event becomes
 * pending or the session closes, and returns the number of bytes consumed
 * (the caller keeps the rest and offers it again after the completion).
 * Returns PR_ENOMEM when the output could not be queued; the session is
 * closed then.
 */
ssize_t pop3_proto_feed(struct pop3_proto *p, const uint8_t *in, size_t len);

/*
 * The output to send: reply bytes queued since the caller last emptied
 * it.  The caller writes them and calls buf_reset() on it.  Valid for the
 * life of p.
 */
struct buf *pop3_proto_out(struct pop3_proto *p);

/* The pending event, or NULL.  Valid until pop3_proto_complete(). */
const struct pop3_event *pop3_proto_event(struct pop3_proto *p);

/* True once the session should close after flushing its output. */
bool pop3_proto_closing(const struct pop3_proto *p);

/* True while a command line (or SASL response) has begun and not ended,
 * an over-long one being discarded included: the glue times the whole
 * line from its first octet, not each octet (slowloris), as for SMTP. */
bool pop3_proto_line_pending(const struct pop3_proto *p);

enum pop3_state pop3_proto_state(const struct pop3_proto *p);

/* Failed logins so far (the glue grows its delay with this). */
unsigned pop3_proto_auth_failures(const struct pop3_proto *p);

/*
 * During POP3_EV_AUTH, before completing it with 0: msgs[0..n) is the
 * maildrop snapshot in arrival order, a malloc'd array (or NULL) that the
 * core takes over and frees, whatever happens.  Returns 0, or PR_EINVAL
 * (and frees msgs) when no AUTH event is pending.
 */
int pop3_proto_maildrop(struct pop3_proto *p, struct pop3_msg *msgs,
    size_t n);

/*
 * POP3_EV_STLS: the TLS handshake finished.  The core forgets any state
 * from before (RFC 2595 4: the USER name, partial input).  A failed
 * handshake is answered with pop3_proto_complete(p, error): the session
 * closes.
 */
void pop3_proto_tls_started(struct pop3_proto *p);

/*
 * During POP3_EV_BODY: feeds stored message bytes in order.  The first
 * call queues "+OK"; the bytes are dot-stuffed (RFC 1939 3) into the
 * output and, for TOP, cut after the header and top_lines body lines.
 * Consumes at most what keeps the output below about 2 * POP3_OUT_STEP;
 * returns the count consumed (0 when the output is full: drain it first)
 * or PR_ENOMEM.
 */
ssize_t pop3_proto_body_feed(struct pop3_proto *p, const uint8_t *data,
    size_t len);

/* False once TOP has seen its last line: the rest need not be read. */
bool pop3_proto_body_wanted(const struct pop3_proto *p);

/*
 * Answers the pending event (does nothing when none is):
 *
 *	STLS    an error: the handshake failed, the session closes.
 *	AUTH    0: the maildrop (pop3_proto_maildrop) is locked and the
 *	        session enters TRANSACTION.  PR_EAUTH: bad credentials
 *	        (counted; the session closes after auth_fail_max).
 *	        PR_EBUSY: locked by another session ([IN-USE]).  Others: a
 *	        temporary failure ([SYS/TEMP] or [SYS/PERM]).  The password
 *	        is wiped in every case.
 *	MORE    the next step of the listing, at most about POP3_OUT_STEP
 *	        bytes; the event is raised again while more remains.
 *	BODY    0 ends the response ("CRLF" if needed, then ".").  An error
 *	        before any byte was fed is "-ERR [SYS/TEMP] ..."; after, the
 *	        session closes, since a truncated multi-line response cannot
 *	        be taken back.
 *	COMMIT  0: "+OK" sign-off; otherwise "-ERR [SYS/TEMP] Some deleted
 *	        messages not removed" (RFC 1939 6).  The session closes
 *	        either way.
 */
void pop3_proto_complete(struct pop3_proto *p, int status);

/*
 * The server is shutting down: queues "-ERR [SYS/TEMP] ..." unless a
 * multi-line response is under way, and closes without UPDATE (RFC 1939
 * 6: only QUIT deletes).  Any pending event is abandoned; the glue must
 * not complete it.
 */
void pop3_proto_shutdown(struct pop3_proto *p);

/* Statistics for the end-of-session log line. */
struct pop3_stats {
	unsigned retrieved;   /* RETR completed */
	uint64_t octets;      /* octets of messages sent (RETR and TOP) */
	unsigned deleted;     /* messages deleted at QUIT (0 if no commit) */
	const char *user;     /* logged-in user or NULL */
};
void pop3_proto_stats(const struct pop3_proto *p, struct pop3_stats *st);

/* A name for a state, for debug logs. */
const char *pop3_proto_state_name(enum pop3_state st);

#endif
