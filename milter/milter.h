/*
 * milter.h - the MTA side of the milter protocol, sans I/O.
 *
 * The milter protocol (version 6, as libmilter of Sendmail 8.17 and
 * rspamd speak it) lets a content filter take part in an SMTP
 * transaction: the MTA sends the steps of the transaction (connect,
 * HELO, MAIL, RCPT, DATA, the header fields, end of header, the body in
 * chunks, end of message) and the filter answers each with a verdict,
 * and at the end of the message with changes to the header, the body
 * and the envelope (docs/MILTER.md describes the wire format).
 *
 * One struct milter_conv is one conversation with one filter for one
 * SMTP session: the steps go out as the session reaches them (the
 * connection and HELO, then per message MAIL, each RCPT, DATA and, at
 * the end of the data, the header fields, end of header, body chunks
 * and end of message), SMFIC_ABORT ends a message the filter did not
 * see to its end, SMFIC_QUIT the session.  It never touches a socket, a
 * clock or a file: the glue sends what it leaves in milter_conv_out(),
 * feeds what the filter sent and acts on the event:
 *
 *	milter_conv_new(&env, &c);       SMFIC_OPTNEG is in the output
 *	for each step, once the event is MILTER_EV_DONE:
 *	  milter_conv_step(c, MILTER_CMD_..., arg)
 *	  loop:
 *	    send milter_conv_out(c), then buf_reset() it
 *	    switch (milter_conv_event(c)):
 *	      MILTER_EV_NONE  wait for the filter: milter_conv_feed(c, in, n)
 *	                      (a timeout is the glue's: milter_conv_fail())
 *	      MILTER_EV_DATA  (MILTER_CMD_MESSAGE) the next octets of the
 *	                      message (header section and body, CRLF lines,
 *	                      as stored): milter_conv_data(c, p, n, last),
 *	                      n <= 65535
 *	      MILTER_EV_DONE  the step is answered: milter_conv_result(c)
 *	milter_conv_quit(c), send the output, close the socket
 *
 * What a filter said at one step holds for the later ones, as libmilter
 * means it: a refusal at connect or HELO refuses every MAIL of the
 * session (a new HELO replaces the HELO one), SMFIR_ACCEPT at connect or
 * HELO lets the whole session through unfiltered, at MAIL, RCPT or DATA
 * the message; SMFIR_DISCARD before the end of the message drops it
 * there.  Steps the filter negotiated away (SMFIP_NO*) are not sent,
 * and a step it wants no reply to (SMFIP_NR_*) is answered at once.
 *
 * The filter is a peer that can be buggy: every packet has a bounded
 * length, every reply is checked against the step it answers and the
 * actions it negotiated, and anything else ends the conversation with
 * MILTER_FAILED, which the caller's on_failure setting decides.
 */
#ifndef POSTROOM_MILTER_H
#define POSTROOM_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The largest body chunk one SMFIC_BODY carries (libmilter's
 * MILTER_CHUNK_SIZE). */
#define MILTER_CHUNK_MAX 65535
/* A packet from the filter longer than this is a protocol error; the
 * largest legitimate ones are SMFIR_REPLBODY chunks and header values. */
#define MILTER_PKT_MAX (256 * 1024)
/* The header section of the message handed to a filter (SMFIC_HEADER,
 * one field each); a longer one fails the conversation. */
#define MILTER_HEAD_MAX (256 * 1024)
/* An SMFIR_REPLYCODE reply, all its lines (RFC 5321 4.2.1). */
#define MILTER_REPLY_MAX 512
/* Changes one filter may ask for at the end of one message, and the
 * octets of their names and values together. */
#define MILTER_EDITS_MAX 1000
#define MILTER_EDITS_OCTETS (1024 * 1024)
/* The ESMTP arguments of an SMFIR_ADDRCPT_PAR. */
#define MILTER_ARGS_MAX 1000
/* A header field name the filter adds (RFC 5322 2.1.1 line limit). */
#define MILTER_NAME_MAX 997

/* The end of a message, from its last octet to the filters' last
 * answer, whatever SMFIR_PROGRESS says: the client's own wait for the
 * reply to the final dot (RFC 5321 4.5.3.2.6, 10 minutes). */
#define MILTER_DEADLINE_MS (10 * 60 * 1000)

/* Protocol version 6 and its option bits (libmilter mfdef.h). */
#define MILTER_VERSION 6
#define SMFIF_ADDHDRS     0x001
#define SMFIF_CHGBODY     0x002
#define SMFIF_ADDRCPT     0x004
#define SMFIF_DELRCPT     0x008
#define SMFIF_CHGHDRS     0x010
#define SMFIF_QUARANTINE  0x020
#define SMFIF_CHGFROM     0x040
#define SMFIF_ADDRCPT_PAR 0x080
#define SMFIF_SETSYMLIST  0x100
#define SMFIP_NOCONNECT   0x000001
#define SMFIP_NOHELO      0x000002
#define SMFIP_NOMAIL      0x000004
#define SMFIP_NORCPT      0x000008
#define SMFIP_NOBODY      0x000010
#define SMFIP_NOHDRS      0x000020
#define SMFIP_NOEOH       0x000040
#define SMFIP_NR_HDR      0x000080
#define SMFIP_NOUNKNOWN   0x000100
#define SMFIP_NODATA      0x000200
#define SMFIP_SKIP        0x000400
#define SMFIP_RCPT_REJ    0x000800
#define SMFIP_NR_CONN     0x001000
#define SMFIP_NR_HELO     0x002000
#define SMFIP_NR_MAIL     0x004000
#define SMFIP_NR_RCPT     0x008000
#define SMFIP_NR_DATA     0x010000
#define SMFIP_NR_UNKN     0x020000
#define SMFIP_NR_EOH      0x040000
#define SMFIP_NR_BODY     0x080000
#define SMFIP_HDR_LEADSPC 0x100000
/* What postroom offers: every action, every step flag but RCPT_REJ
 * (rejected recipients are not passed on). */
#define MILTER_ACTIONS_OFFER 0x1ff
#define MILTER_PROTO_OFFER   0x1ff7ff

/* What the MTA knows about the message; borrowed for the conversation.
 * NULL strings are not sent (their macro is left out). */
struct milter_env {
	const char *hostname;     /* j, and {daemon_name} */
	const char *daemon_name;
	const char *client_addr;  /* {client_addr}: "192.0.2.1" */
	const char *client_name;  /* {client_name}, the verified name or
	                           * NULL: "[addr]" is sent */
	unsigned client_port;     /* {client_port}, 0 = not sent */
	int family;               /* 4 or 6; 0 = unknown ('U') */
	const char *helo;
	const char *queue_id;     /* i */
	const char *auth_authen;  /* {auth_authen}, NULL = anonymous */
	const char *auth_type;    /* {auth_type}: "PLAIN", "LOGIN" */
	const char *tls_version;  /* {tls_version}: "TLSv1.3" */
	const char *cipher;       /* {cipher} */
	const char *cert_subject; /* {cert_subject}: the client's
	                           * certificate, when it sent one */
	const char *cert_issuer;  /* {cert_issuer} */
	const char *sender;       /* "" = null reverse-path */
	uint64_t body_max;        /* SMFIR_REPLBODY: [smtp] max_message_size */
};

enum milter_verdict {
	MILTER_CONTINUE = 0, /* the filter let the message through */
	MILTER_ACCEPT,       /* ... and wanted no more of it */
	MILTER_REJECT,       /* 5xx: reply (or 550 5.7.1) */
	MILTER_TEMPFAIL,     /* 4xx: reply (or 451 4.7.1) */
	MILTER_DISCARD,      /* accept and drop */
	MILTER_FAILED,       /* the conversation failed: on_failure */
};

enum milter_edit_kind {
	MILTER_ADDHDR = 1, /* name, value: appended to the header */
	MILTER_INSHDR,     /* idx, name, value: inserted before field idx */
	MILTER_CHGHDR,     /* idx (1-based among name), name, value ("" =
	                    * delete) */
	MILTER_CHGFROM,    /* value: the new reverse-path */
	MILTER_ADDRCPT,    /* value: a recipient to add; name: the ESMTP
	                    * arguments of SMFIR_ADDRCPT_PAR, or NULL */
	MILTER_DELRCPT,    /* value: a recipient to remove */
};

struct milter_edit {
	enum milter_edit_kind kind;
	uint32_t idx;
	char *name;
	char *value;  /* LF line breaks as the filter sent them */
};

struct milter_result {
	enum milter_verdict verdict;
	/* REJECT and TEMPFAIL: the filter's SMFIR_REPLYCODE, checked:
	 * code (0 = none given: 550 5.7.1 or 451 4.7.1), its RFC 3463
	 * code (enh, "" = none given) and its text, the lines of a
	 * multiline reply joined by spaces. */
	int code;
	char enh[16];
	char text[MILTER_REPLY_MAX];
	bool quarantine;    /* SMFIR_QUARANTINE: hold the message */
	char quarantine_reason[256];
	bool body_replaced; /* SMFIR_REPLBODY: body holds the new body */
	struct buf body;
	struct milter_edit *edits; /* in the order the filter sent them */
	size_t n_edits;
	bool leadspc;       /* SMFIP_HDR_LEADSPC: values keep their space */
	char error[160];    /* MILTER_FAILED: what went wrong */
};

/* The steps of a session (milter_conv_step). */
enum milter_cmd {
	MILTER_CMD_CONNECT = 1, /* SMFIC_CONNECT */
	MILTER_CMD_HELO,        /* SMFIC_HELO: env->helo */
	MILTER_CMD_MAIL,        /* SMFIC_MAIL: env->sender; a message that
	                         * is still open is aborted first */
	MILTER_CMD_RCPT,        /* SMFIC_RCPT: arg */
	MILTER_CMD_DATA,        /* SMFIC_DATA */
	MILTER_CMD_MESSAGE,     /* SMFIC_DATA if not sent yet, the header
	                         * fields, SMFIC_EOH, SMFIC_BODY chunks,
	                         * SMFIC_BODYEOB: the changes */
	MILTER_CMD_ABORT,       /* SMFIC_ABORT, when a message is open */
};

enum milter_event {
	MILTER_EV_NONE = 0, /* waiting for the filter */
	MILTER_EV_DATA,     /* message octets wanted */
	MILTER_EV_DONE,     /* the step is answered (or the conversation
	                     * failed): the next one may start */
};

struct milter_conv;

/* A conversation for the session env describes (read at each step, so
 * the glue updates it as the session goes on); SMFIC_OPTNEG is in the
 * output at once, its reply makes the event MILTER_EV_DONE.  Returns 0
 * or PR_ENOMEM. */
int milter_conv_new(const struct milter_env *env, struct milter_conv **c_r);

/*
 * Starts step cmd (arg: the recipient of MILTER_CMD_RCPT, else NULL) at
 * MILTER_EV_DONE; the result of the last step is reset.  A failed
 * conversation answers every step with MILTER_FAILED at once.
 */
void milter_conv_step(struct milter_conv *c, enum milter_cmd cmd,
    const char *arg);

/* The session ends: SMFIC_ABORT for an open message and SMFIC_QUIT are
 * put in the output (nothing for a failed conversation). */
void milter_conv_quit(struct milter_conv *c);

/* True once the conversation failed (it stays so). */
bool milter_conv_failed(const struct milter_conv *c);

/* Frees c and its result; sets *c NULL. */
void milter_conv_free(struct milter_conv **c);

/* Octets to send to the filter; the glue empties it once written. */
struct buf *milter_conv_out(struct milter_conv *c);

enum milter_event milter_conv_event(const struct milter_conv *c);

/* Feeds octets from the filter.  Returns the number consumed: all of
 * them, or fewer once the conversation is done. */
size_t milter_conv_feed(struct milter_conv *c, const uint8_t *in,
    size_t len);

/* At MILTER_EV_DATA: the next n (<= MILTER_CHUNK_MAX) octets of the
 * message; last when they are its end. */
void milter_conv_data(struct milter_conv *c, const uint8_t *p, size_t n,
    bool last);

/* The connection failed or timed out: MILTER_FAILED with why. */
void milter_conv_fail(struct milter_conv *c, const char *why);

/* Complete filter packets received so far: the glue restarts its
 * timeout when it grows (SMFIR_PROGRESS is one). */
uint64_t milter_conv_packets(const struct milter_conv *c);

/* The outcome of the last step, valid at MILTER_EV_DONE until the next
 * step.  Changes come only with MILTER_CMD_MESSAGE. */
const struct milter_result *milter_conv_result(const struct milter_conv *c);

/*
 * How long the glue waits for the filter's next packet at time now (ms
 * of one clock): the per-step timeout, but no later than deadline (0 =
 * none), which bounds the whole end of a message however many
 * SMFIR_PROGRESS packets restart the step's wait.  0 = the deadline has
 * passed.
 */
uint64_t milter_wait_ms(uint64_t timeout_ms, uint64_t deadline,
    uint64_t now);

/* The name of a verdict for logs: "continue", "accept", "reject", ... */
const char *milter_verdict_name(enum milter_verdict v);

/*
 * Header edits (milter_head.c).  Applies the header changes of edits
 * (ADDHDR, INSHDR, CHGHDR; others are skipped) to the header section
 * head[0..len) (fields with CRLF, without the empty line) and appends
 * the result to out.  Values without leadspc get one space after the
 * colon; LF line breaks become CRLF with folding whitespace.  Returns 0,
 * PR_ENOSPC (out is full) or PR_ENOMEM.
 */
int milter_head_apply(const uint8_t *head, size_t len,
    const struct milter_edit *edits, size_t n, bool leadspc,
    struct buf *out);

/*
 * The length of the header section at the start of msg[0..len): the
 * octets up to and including the CRLF of its last field, not the empty
 * line (RFC 5322 2.1).  *body_r is where the body starts (after the
 * empty line), or len when there is none.
 */
size_t milter_head_len(const uint8_t *msg, size_t len, size_t *body_r);

/* The length of the first header field of h[0..len), its continuation
 * lines included (RFC 5322 2.2.3). */
size_t milter_field_len(const uint8_t *h, size_t len);

#endif
