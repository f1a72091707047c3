/*
 * smtp_proto.h - the SMTP server protocol core (sans-I/O).
 *
 * A state machine fed with the octets a client sent and producing reply
 * octets (smtp_proto_out) and events.  It never touches a socket, a clock,
 * a file or the database: whatever needs the outside world (checking a
 * password, resolving a recipient, writing the spool, committing a
 * message, starting TLS) is an event that the glue carries out and answers
 * with smtp_proto_complete().  While an event is pending the core consumes
 * no input, so a pipelining client gets backpressure, not memory growth
 * (docs/ARCHITECTURE.md).  Every accept/refuse decision is taken by the
 * policy (smtp_policy.h), every refusal booked against one error counter.
 *
 * Implemented: RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT,
 * HELP, VRFY, EXPN), PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
 * (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034, RFC 3463), STARTTLS (RFC
 * 3207), AUTH PLAIN and LOGIN with initial responses (RFC 4954), SMTPUTF8
 * (RFC 6531), CHUNKING (RFC 3030).
 *
 * Typical glue loop:
 *
 *	n = smtp_proto_feed(p, in, len);     consume n input octets
 *	write smtp_proto_out(p), then buf_reset() it
 *	if ((ev = smtp_proto_event(p)) != NULL)
 *		act on it, later smtp_proto_complete()
 *	if (smtp_proto_closing(p))           close after the output is flushed
 */
#ifndef POSTROOM_SMTP_PROTO_H
#define POSTROOM_SMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "buf.h"
#include "dsn.h"
#include "smtp_data.h"

/* Which listener a session came in on (net_listen's kind). */
enum smtp_listen_kind {
	SMTP_LISTEN_MX = 1,          /* [smtp] listen: port 25, the MX */
	SMTP_LISTEN_SUBMISSION = 2,  /* [smtp] submission: 587, RFC 6409 */
	SMTP_LISTEN_SUBMISSIONS = 3, /* [smtp] submissions: 465, RFC 8314 */
};

enum smtp_state {
	SMTP_S_GREETING,   /* greeted; no EHLO/HELO yet */
	SMTP_S_READY,      /* EHLO/HELO done, no transaction */
	SMTP_S_MAIL,       /* MAIL accepted, no recipient yet */
	SMTP_S_RCPT,       /* at least one recipient accepted */
	SMTP_S_DATA,       /* reading DATA */
	SMTP_S_BDAT,       /* between BDAT chunks */
	SMTP_S_CHUNK,      /* reading the octets of a BDAT chunk */
	SMTP_S_AUTH,       /* waiting for a SASL response line */
	SMTP_S_QUIT,       /* closing: input is ignored */
};

struct smtp_limits {
	/* Command line with CRLF.  RFC 5321 4.5.3.1.4 asks for at least
	 * 512; we accept up to 1000 octets, as chasquid does, because real
	 * clients send long MAIL lines with several parameters. */
	size_t line_max;
	/* AUTH command and SASL response lines: RFC 4954 4 sets 12288. */
	size_t auth_line_max;
	/* Text line of the message with CRLF: RFC 5321 4.5.3.1.6, 1000. */
	size_t text_line_max;
	uint64_t data_max;       /* message size ([smtp] max_message_size) */
	unsigned rcpt_max;       /* RCPT commands per transaction */
	unsigned targets_max;    /* resolved mailboxes + remote per message */
	/* Counted refusals before 421 ([smtp] hard_error_limit); past half
	 * of it each error reply is delayed (SMTP_EV_DELAY). */
	unsigned bad_cmd_max;
	/* NOOP, RSET, VRFY and HELP outside a transaction before each one
	 * counts as an error, as Postfix's smtpd_junk_command_limit; an
	 * accepted message resets the count, and an authenticated session
	 * is not limited. */
	unsigned junk_max;
	unsigned auth_fail_max;  /* failed AUTH before 421 */
	size_t mem_max;          /* message octets held before a SPOOL event */
};

/* The defaults: 1000, 12288, 1000, 25 MiB, 100, 1000, 20, 100, 3,
 * 128 KiB. */
void smtp_limits_default(struct smtp_limits *l);

struct smtp_proto_conf {
	const char *hostname;      /* borrowed; outlives the core */
	enum smtp_listen_kind kind;
	bool starttls;             /* a TLS context exists for STARTTLS */
	bool allow_plaintext_auth; /* AUTH without TLS (loopback tests) */
	bool spf;                  /* [inbound] spf: SMTP_EV_SPF on port 25 */
	/* Messages of anonymous clients on the MX listener are checked
	 * (SMTP_EV_VERIFY); dmarc_report is [inbound] dmarc_policy =
	 * report: the results are recorded, nothing is refused. */
	bool verify;
	bool dmarc_report;
	/* ETRN (RFC 1985): offered when the relay runs; etrn_network when
	 * the client's address is in [smtp] etrn_networks (the glue
	 * matches it), which allows ETRN without AUTH. */
	bool etrn;
	bool etrn_network;
	/* Content filters may apply ([milter] servers on the MX listener,
	 * submission_servers for authenticated mail): the commands wait for
	 * them (SMTP_EV_MILTER). */
	bool milter;
	struct smtp_limits limits;
	/* Optional log hook (level 0 debug, 1 info, 2 warning); the text is
	 * a complete sentence without a newline.  NULL = silent. */
	void (*log_cb)(void *data, int level, const char *text);
	void *log_data;
};

enum smtp_event_type {
	SMTP_EV_NONE = 0,
	/* Verify user/pass (pass in sodium_malloc memory, wiped at
	 * completion).  Complete with 0, PR_EAUTH, or another error. */
	SMTP_EV_AUTH,
	/* MAIL FROM addr (never the null sender from an anonymous client).
	 * Authenticated: may the user send as addr (store_sender_allowed)?
	 * Complete with 0, PR_EPERM, or SMTP_MAIL_RATE for a device past
	 * its rate.  Anonymous (port 25): complete with
	 * SMTP_MAIL_HOSTED when addr's domain is hosted here, else 0. */
	SMTP_EV_MAIL,
	/* Resolve recipient addr.  Report each local mailbox or remote
	 * target with smtp_proto_rcpt_target(), then complete with an
	 * SMTP_RCPT_* kind or PR_EQUOTA / PR_ETOOBIG / another error. */
	SMTP_EV_RCPT,
	/* The "220 Ready to start TLS" reply is in the output: flush it and
	 * start the handshake, then call smtp_proto_tls_started(), or
	 * complete with an error if it failed (the session closes).  Input
	 * received before the handshake is void. */
	SMTP_EV_STARTTLS,
	/* Append data[0..len) to this transaction's spool file.  Complete
	 * with 0 or an error (the message is then refused with 451). */
	SMTP_EV_SPOOL,
	/* An authenticated submission's header From: or Sender: names addr:
	 * may the user send as it (the rule of SMTP_EV_MAIL)?  Complete
	 * with 0 or PR_EPERM; one event per address. */
	SMTP_EV_FROM,
	/* Wait delay_ms before writing the output queued so far, then
	 * complete with 0 (an error reply past half the error limit).  The
	 * wait must not block other sessions: a timer, not a sleep. */
	SMTP_EV_DELAY,
	/* The message is complete: deliver it (smtp_proto_tx describes it,
	 * data[0..len) is the part not yet spooled).  Set the id with
	 * smtp_proto_queued_as() and complete with 0 or an error. */
	SMTP_EV_DELIVER,
	/* MAIL of an anonymous client on the MX listener, its other checks
	 * passed: check SPF (RFC 7208) for addr ("" = the null sender, then
	 * the HELO identity) and smtp_proto_helo(), hand the outcome to
	 * smtp_proto_spf_result(), then complete with 0 (or with an error
	 * when no check could be made: the sender is accepted). */
	SMTP_EV_SPF,
	/* The message of an anonymous client on the MX listener is
	 * complete and its other checks passed: data[0..len) is the part
	 * not yet spooled (the same octets the SMTP_EV_DELIVER that may
	 * follow carries).  Check it (DKIM, DMARC), hand the outcome to
	 * smtp_proto_verify_result(), then complete with 0 (or an error
	 * when no check could be made: the message is accepted). */
	SMTP_EV_VERIFY,
	/* ETRN (RFC 1985): make the queued mail for domain addr (and its
	 * subdomains with ev.subdomains, "ETRN @domain") due now and
	 * wake the relay.  Complete with the number of queue entries
	 * found (0 = none), PR_EAGAIN when this client asked too often
	 * (SMTP_POLICY_ETRN_PER_MINUTE), or another error. */
	SMTP_EV_ETRN,
	/* With conf.milter: a command's step of the content filters
	 * (ev.milter_step; ev.addr the sender of MAIL, the recipient of
	 * RCPT), once the core's own checks accepted it and before its
	 * reply.  A refusal is handed over with smtp_proto_milter_reply()
	 * (the policy words it), then complete with 0; an error status
	 * lets the command through. */
	SMTP_EV_MILTER,
};

/* The steps of SMTP_EV_MILTER (docs/MILTER.md). */
enum smtp_milter_step {
	SMTP_MILTER_HELO = 1, /* EHLO or HELO: the client's name */
	SMTP_MILTER_MAIL,     /* MAIL, its reply waits */
	SMTP_MILTER_RCPT,     /* each RCPT, its reply waits */
	SMTP_MILTER_DATA,     /* DATA, before the 354 */
	SMTP_MILTER_ABORT,    /* RSET: a message the filters saw is off */
};

/* An anonymous sender's domain is hosted here (SMTP_EV_MAIL). */
#define SMTP_MAIL_HOSTED 1
/* An authenticated device has sent its messages of the hour already
 * (SMTP_EV_MAIL). */
#define SMTP_MAIL_RATE 2

/* Results of a recipient lookup (SMTP_EV_RCPT). */
enum smtp_rcpt_kind {
	SMTP_RCPT_LOCAL = 1,   /* hosted: targets were reported */
	SMTP_RCPT_REMOTE = 2,  /* not hosted: relaying, if authenticated */
	SMTP_RCPT_UNKNOWN = 3, /* hosted domain, no such mailbox */
	/* Hosted, targets reported, but the greylisting triplet (RFC 6647)
	 * is new or too recent. */
	SMTP_RCPT_GREYLISTED = 4,
};

/* Valid until smtp_proto_complete() (pointers into the core). */
struct smtp_event {
	enum smtp_event_type type;
	const char *user;      /* AUTH: canonical address */
	const char *pass;      /* AUTH: sodium_malloc memory */
	const char *addr;      /* MAIL: sender; RCPT: recipient; FROM */
	unsigned delay_ms;     /* DELAY */
	bool subdomains;       /* ETRN @domain */
	int milter_step;       /* MILTER: enum smtp_milter_step */
	const uint8_t *data;   /* SPOOL, DELIVER */
	size_t len;
};

/* Room for the reason of a spam mark. */
#define SMTP_SPAM_REASON_MAX 384

/* Room for an SPF explanation (RFC 7208 6.2) in a reply line. */
#define SMTP_SPF_EXPLANATION_MAX 401

/* One accepted RCPT with its DSN parameters (RFC 3461 4.1, 4.2). */
struct smtp_tx_rcpt {
	char addr[ADDR_MAX];          /* as given, canonical */
	unsigned notify;              /* DSN_NOTIFY_* bits, 0 = not given */
	char orcpt[DSN_ORCPT_MAX + 1]; /* "addr-type;address", "" = none */
};

/* The transaction, for the glue at DELIVER time.  Read-only. */
struct smtp_tx {
	char sender[ADDR_MAX];        /* "" = null reverse-path */
	uint64_t declared_size;       /* SIZE=, 0 if not given */
	bool smtputf8;                /* SMTPUTF8 given (RFC 6531) */
	bool body_8bit;               /* BODY=8BITMIME */
	unsigned n_rcpt;              /* RCPT commands accepted */
	char first_rcpt[ADDR_MAX];    /* for "for <...>" with one RCPT */
	int64_t *users;               /* local mailboxes, no duplicates */
	size_t n_users;
	char **remote;                /* remote recipients, no duplicates */
	size_t n_remote;
	/* DSN (RFC 3461): MAIL RET= (enum dsn_ret) and ENVID= ("" =
	 * none); the accepted RCPTs, rcpts[0..n_rcpt); and for each local
	 * mailbox and remote recipient the index in rcpts of the RCPT that
	 * first resolved to it. */
	int dsn_ret;
	char dsn_envid[DSN_ENVID_MAX + 1];
	struct smtp_tx_rcpt *rcpts;
	unsigned *users_rcpt;
	unsigned *remote_rcpt;
	bool spooled;                 /* SPOOL events carried part of it */
	uint64_t size;                /* message octets, final at DELIVER */
	bool has_msgid, has_date;     /* header section had these fields */
	/* SPF of this transaction (RFC 7208), for Authentication-Results
	 * (RFC 8601 2.7.2): spf_checked, then spf_result (enum
	 * spf_result), spf_helo (the identity was smtp.helo, else
	 * smtp.mailfrom), spf_identity (the address checked: the sender
	 * or postmaster@HELO) and, for a fail, its explanation. */
	bool spf_checked;
	int spf_result;
	bool spf_helo;
	char spf_identity[ADDR_MAX];
	char spf_explanation[SMTP_SPF_EXPLANATION_MAX];
	/* Marked as spam by the policy (RFC 7489 6.3 p=quarantine): the
	 * reason, "" when not marked. */
	char spam_reason[SMTP_SPAM_REASON_MAX];
};

/* What the content filters decided about a message that is not
 * delivered (smtp_proto_milter_reply()). */
enum smtp_milter_outcome {
	SMTP_MILTER_NONE = 0,
	SMTP_MILTER_REJECT,   /* a filter rejected it */
	SMTP_MILTER_TEMPFAIL, /* a filter deferred it */
	SMTP_MILTER_FAILED,   /* a filter failed, [milter] on_failure =
	                       * tempfail */
};

/* code 0 and text "" = the policy's defaults. */
struct smtp_milter_reply {
	int outcome;          /* enum smtp_milter_outcome */
	int code;             /* the filter's 4xx or 5xx */
	char enh[16];         /* its RFC 3463 code, "" = none */
	char text[SMTP_SPAM_REASON_MAX];
};

/* The outcome of SMTP_EV_VERIFY's checks, for the policy: from_status
 * an enum dmarc_from; with dmarc_checked, dmarc_result (enum
 * dmarc_result) and dmarc_apply (enum dmarc_policy) for domain;
 * dmarc_temp when an SPF or DKIM lookup failed for now. */
struct smtp_verify {
	int from_status;
	bool dmarc_checked;
	int dmarc_result;
	int dmarc_apply;
	bool dmarc_temp;
	const char *domain;
};

/* Header fields the glue knows and the core does not (clock, peer). */
struct smtp_trace {
	const char *peer_ip;  /* "192.0.2.1" or "2001:db8::1" */
	const char *id;       /* trace id for the Received id clause */
	const char *date;     /* RFC 5322 3.3 date-time, now */
	const char *msgid;    /* "<...@host>" to add if missing (submission) */
	/* Header fields (with CRLFs) placed after the Return-Path, above the
	 * Received field: the Authentication-Results (RFC 8601 5); NULL =
	 * none. */
	const char *authres;
};

struct smtp_proto;

/*
 * The outcome of the SMTP_EV_SPF check, before its completion: result
 * an enum spf_result, helo true when the HELO identity was checked,
 * identity the address checked, explanation the exp= text of a fail (or
 * NULL).  Strings are copied (cut to fit).
 */
void smtp_proto_spf_result(struct smtp_proto *p, int result, bool helo,
    const char *identity, const char *explanation);

/* The outcome of the SMTP_EV_VERIFY checks, before its completion;
 * strings are copied. */
void smtp_proto_verify_result(struct smtp_proto *p,
    const struct smtp_verify *r);

/* During SMTP_EV_DELIVER or SMTP_EV_MILTER, before its completion: the
 * content filters refused the message or the command, the policy words
 * the reply. */
void smtp_proto_milter_reply(struct smtp_proto *p,
    const struct smtp_milter_reply *r);

/* Creates a core for one connection.  Nothing is written until
 * smtp_proto_greet().  Returns 0 or PR_ENOMEM. */
int smtp_proto_new(const struct smtp_proto_conf *conf,
    struct smtp_proto **p_r);

/* Frees the core, its transaction and any secret (wiped).  Sets *p NULL. */
void smtp_proto_free(struct smtp_proto **p);

/* Queues the 220 greeting (RFC 5321 4.3.1). */
void smtp_proto_greet(struct smtp_proto *p);

/* Queues a final reply such as "421 4.7.0 Too many connections from your
 * address" and enters SMTP_S_QUIT. */
void smtp_proto_refuse(struct smtp_proto *p, int code, const char *enh,
    const char *text);

/*
 * Feeds client octets.  Returns the number consumed (the rest must be fed
 * again later), or PR_ENOMEM when a reply could not be queued (the
 * session is closed then).  Stops consuming when an event becomes
 * pending; consumes (and ignores) everything once closing.  After a
 * STARTTLS event, the octets that followed the command in in[] are
 * consumed and dropped (RFC 3207 5, CVE-2011-0411).
 */
ssize_t smtp_proto_feed(struct smtp_proto *p, const uint8_t *in, size_t len);

/* The reply octets produced so far.  The glue writes and then empties it
 * (buf_reset); the core never reads it back. */
struct buf *smtp_proto_out(struct smtp_proto *p);

/* The pending event, or NULL.  Valid until smtp_proto_complete(). */
const struct smtp_event *smtp_proto_event(struct smtp_proto *p);

/* During SMTP_EV_RCPT: one resolved target, a local mailbox (remote NULL)
 * or a remote address.  Returns 0, PR_ENOSPC past limits.targets_max, or
 * PR_ENOMEM. */
int smtp_proto_rcpt_target(struct smtp_proto *p, int64_t user_id,
    const char *remote);

/* During SMTP_EV_DELIVER: the store's message id for "queued as". */
void smtp_proto_queued_as(struct smtp_proto *p, const char *id);

/* Answers the pending event (see enum smtp_event_type for statuses) and
 * queues its reply.  Does nothing when no event is pending.  The caller
 * then feeds any buffered input again.  The POP3 core has the same calls
 * (pop3_proto.h): one event at a time, one completion. */
void smtp_proto_complete(struct smtp_proto *p, int status);

/*
 * The TLS handshake finished (after STARTTLS, or before the greeting on an
 * implicit-TLS port).  desc is "TLSv1.3 CIPHER" for the Received field.
 * After STARTTLS the session starts over (RFC 3207 4.2): no EHLO, no
 * transaction, no authentication, no buffered input.
 */
void smtp_proto_tls_started(struct smtp_proto *p, const char *desc);

/* The idle timer expired (RFC 5321 4.5.3.2): 421 4.4.2 and close. */
void smtp_proto_timeout(struct smtp_proto *p);

/* The glue measured the current DATA or BDAT transfer below [smtp]
 * min_data_rate: 421 4.4.2, the transaction is dropped, and close. */
void smtp_proto_too_slow(struct smtp_proto *p);

/* True from DATA's 354 or the first BDAT until the transaction's final
 * reply: the span that min_data_rate measures. */
bool smtp_proto_in_transfer(const struct smtp_proto *p);

/* True when the messages of this session are checked before delivery
 * (SMTP_EV_VERIFY): an anonymous client on the MX listener, with
 * conf.verify.  The glue filters such a message's header on its way to
 * the spool (RFC 8601 5). */
bool smtp_proto_verifies(const struct smtp_proto *p);

/*
 * The daemon is stopping.  An idle session (no event, not inside DATA or
 * BDAT) gets "421 4.3.2" at once and closes; one inside a message finishes
 * it, gets its reply, then the 421.
 */
void smtp_proto_shutdown(struct smtp_proto *p);

/* True once the session should close after flushing its output. */
bool smtp_proto_closing(const struct smtp_proto *p);

/* True while a command line (or SASL response) has begun and not ended:
 * the glue times the whole line, not each octet (slowloris). */
bool smtp_proto_line_pending(const struct smtp_proto *p);

enum smtp_state smtp_proto_state(const struct smtp_proto *p);
/* The authenticated user ("" if none) and the EHLO/HELO name ("" if
 * none); valid until the next call into the core. */
const char *smtp_proto_auth_user(const struct smtp_proto *p);
/* The name the AUTH in flight logs in as, when it is not ev->user as
 * given (a bare login name completed with [server] default_domain, an
 * app password's owner): called before smtp_proto_complete(p, 0), it is
 * what smtp_proto_auth_user, the Received field and the replies name. */
void smtp_proto_auth_name(struct smtp_proto *p, const char *name);
const char *smtp_proto_helo(const struct smtp_proto *p);
/* The SASL mechanism the session logged in with ("PLAIN", "LOGIN"),
 * "" if none; for the {auth_type} of the content filters. */
const char *smtp_proto_auth_mech(const struct smtp_proto *p);
/* Failed AUTH attempts so far (the glue delays each failure). */
unsigned smtp_proto_auth_failures(const struct smtp_proto *p);
/* Messages accepted for delivery and commands rejected so far. */
unsigned smtp_proto_messages(const struct smtp_proto *p);
unsigned smtp_proto_rejects(const struct smtp_proto *p);
/* The current transaction (valid until the next call into the core). */
const struct smtp_tx *smtp_proto_tx(const struct smtp_proto *p);

/*
 * Appends the header fields prepended to the message at delivery: the
 * Return-Path (RFC 5321 4.4), the Received trace field (RFC 5321 4.4 with
 * the RFC 3848 / RFC 6531 "with" keyword), and for an authenticated
 * submission a Date and Message-ID when the message has none (RFC 6409
 * 8.2, 8.3); t->authres after the Return-Path; for a message the policy
 * marked, "X-Spam-Flag: YES" and "X-Spam-Reason:" (the fields that
 * SpamAssassin writes and mail clients' filters act on).  Returns 0, PR_ENOSPC or PR_ENOMEM.
 */
int smtp_proto_trace(const struct smtp_proto *p, const struct smtp_trace *t,
    struct buf *out);

#endif
