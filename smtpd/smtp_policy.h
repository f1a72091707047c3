/*
 * smtp_policy.h - every accept/refuse decision of postroom-smtpd.
 *
 * The command table of the protocol core (smtp_cmd.c) parses a command
 * into typed arguments, then asks this module at a decision point, with
 * the facts it knows (listener, TLS, authenticated user, the sender, the
 * recipient lookup's result, counts), whether to go on.  The answer is a
 * verdict: accept, or one reply with its code, RFC 3463 enhanced status
 * code and text.  The handlers then proceed (change state, raise events);
 * they never decide.  Syntax and sequence errors are refusals too and
 * are built here (smtp_policy_reject), so that which refusals count
 * towards the session's one error counter, and what happens when it is
 * full, is written in one place (docs/ARCHITECTURE.md, "policy").
 *
 * Sans-I/O and without state of its own: no socket, clock, file or
 * database; the same facts always give the same verdict, so unit tests
 * run it as a table (tests/unit/test_smtp_policy.c).
 */
#ifndef POSTROOM_SMTP_POLICY_H
#define POSTROOM_SMTP_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "smtp_proto.h"

/* Where in the dialog a decision is taken. */
enum smtp_policy_point {
	SMTP_POLICY_STARTTLS = 1, /* STARTTLS: is TLS on offer at all? */
	SMTP_POLICY_AUTH,         /* AUTH: may this connection log in? */
	SMTP_POLICY_AUTH_DONE,    /* the password check returned status */
	SMTP_POLICY_TX,           /* MAIL: may this session send mail? */
	SMTP_POLICY_MAIL,         /* MAIL: the parsed path and parameters */
	SMTP_POLICY_MAIL_DONE,    /* sender ownership returned status */
	SMTP_POLICY_RCPT,         /* RCPT: the parsed forward-path */
	SMTP_POLICY_RCPT_DONE,    /* the recipient lookup returned status */
	SMTP_POLICY_MESSAGE,      /* the message data is complete */
	SMTP_POLICY_DELIVER_DONE, /* the delivery returned status */
	SMTP_POLICY_JUNK,         /* NOOP, RSET, VRFY, HELP: counted */
	SMTP_POLICY_FROM,         /* header From:/Sender: of a submission */
	SMTP_POLICY_FROM_DONE,    /* ... one address's ownership returned */
	SMTP_POLICY_SPF_DONE,     /* MAIL: the SPF check returned (RFC 7208) */
	SMTP_POLICY_CONNECT,      /* before the greeting: the DNSBL answers */
	SMTP_POLICY_VERIFY_DONE,  /* end of data on the MX listener: the
	                           * From: count, DKIM and DMARC (RFC 7489) */
	SMTP_POLICY_ETRN,         /* ETRN (RFC 1985): may this client ask? */
	SMTP_POLICY_ETRN_DONE,    /* the queue was flushed: status entries */
	SMTP_POLICY_MILTER_DONE,  /* a command's step of the content filters
	                           * returned: their refusal, if any */
};

/* ETRN requests one client address may make per minute; past that the
 * glue completes with PR_EAGAIN and the reply is 458 (RFC 1985 5). */
#define SMTP_POLICY_ETRN_PER_MINUTE 5

/* Past half the error limit every counted error reply waits this long
 * (Postfix's smtpd_soft_error_limit and smtpd_error_sleep_time).  The
 * core asks the glue for the wait (SMTP_EV_DELAY); it has no clock. */
#define SMTP_POLICY_ERROR_DELAY_MS 1000

/* What the core knows at a decision point.  Strings are borrowed for
 * the call; NULL reads as "". */
struct smtp_policy_facts {
	const char *hostname;      /* for the texts of 421 replies */
	const struct smtp_limits *limits;
	/* The connection. */
	enum smtp_listen_kind kind;
	bool tls;                  /* TLS is active */
	bool tls_offered;          /* a TLS context exists for STARTTLS */
	bool plaintext_auth;       /* [smtp] allow_plaintext_auth */
	const char *auth_user;     /* "" = not authenticated */
	unsigned auth_fails;       /* failed AUTH before this one */
	unsigned junk;             /* junk commands, this one included */
	/* The transaction. */
	const char *sender;        /* reverse-path, "" = null */
	bool smtputf8;             /* MAIL gave SMTPUTF8 (RFC 6531) */
	uint64_t declared_size;    /* MAIL SIZE=, 0 if not given */
	const char *rcpt;          /* RCPT: the forward-path */
	unsigned n_rcpt;           /* RCPT commands accepted so far */
	/* The message, at SMTP_POLICY_MESSAGE (see struct smtp_data). */
	bool spool_failed, spool_full, too_big, bare_eol, long_line;
	/* At SMTP_POLICY_FROM: the header From: and Sender: addresses could
	 * not all be read (syntax, or more than the core keeps); how many
	 * there are.  At SMTP_POLICY_FROM_DONE, from_addr is the one the
	 * glue was asked about. */
	bool from_bad;
	unsigned n_from;
	const char *from_addr;
	/* At SMTP_POLICY_SPF_DONE: the check's result (enum spf_result,
	 * when spf_checked) and, for a fail, the sender's explanation. */
	bool spf_checked;
	int spf_result;
	const char *spf_explanation;
	/* At SMTP_POLICY_CONNECT: the client's address and the first DNS
	 * block list zone that lists it (NULL or "" = none), with the text
	 * of its TXT record (RFC 5782 2.1). */
	const char *peer;
	const char *dnsbl_zone;
	const char *dnsbl_reason;
	/* At SMTP_POLICY_VERIFY_DONE (message checks of the MX listener):
	 * from_status an enum dmarc_from (the header From: count, RFC 7489
	 * 6.6.1); with dmarc_checked, dmarc_result an enum dmarc_result,
	 * dmarc_apply the enum dmarc_policy to apply, dmarc_domain the
	 * From: domain; dmarc_temp when an SPF or DKIM lookup failed for now,
	 * so a fail may be a DNS failure; dmarc_report for [inbound]
	 * dmarc_policy = report (nothing is refused or marked). */
	int from_status;
	bool dmarc_checked;
	int dmarc_result;
	int dmarc_apply;
	bool dmarc_temp;
	bool dmarc_report;
	const char *dmarc_domain;
	/* At SMTP_POLICY_DELIVER_DONE and _MILTER_DONE: the content
	 * filters' refusal (an
	 * enum smtp_milter_outcome, 0 = none) with the filter's reply
	 * code, RFC 3463 code and text (0 and "" = the defaults). */
	int milter;
	int milter_step;           /* enum smtp_milter_step, 0 = the end
	                            * of the data */
	int milter_code;
	const char *milter_enh;
	const char *milter_text;
	/* At SMTP_POLICY_ETRN and _DONE: the node asked for ("@" first for
	 * subdomains) and whether the client's address is in [smtp]
	 * etrn_networks. */
	const char *etrn_node;
	bool etrn_network;
	/* At the *_DONE points, what the glue answered: 0, an
	 * SMTP_RCPT_* kind, SMTP_MAIL_HOSTED, or a PR_E* code. */
	int status;
};

#define SMTP_VERDICT_TEXT_MAX 384

struct smtp_verdict {
	int code;           /* 0 = accept; otherwise the reply code */
	/* Counts towards the session's errors; with code 0 the command is
	 * accepted and still counted (junk past limits.junk_max). */
	/* RFC 3463 code (static, or the filter's milter_enh of the facts,
	 * which the core keeps for the transaction), NULL = none. */
	const char *enh;
	char text[SMTP_VERDICT_TEXT_MAX];
	bool error;
	bool close;         /* the session ends after this reply */
	/* Accepted (code 0) but marked for the mail client as spam, text
	 * being the reason (RFC 7489 6.3 p=quarantine). */
	bool mark;
	/* The check that refused or marked ("spf", "dmarc", "from",
	 * "dnsbl", "greylist", "milter"; static), NULL for the others: such a
	 * decision is logged as one key=value line with the client's
	 * address, for fail2ban and the message trace. */
	const char *check;
};

/* Decides at point pt.  *v_r is filled in either way (code 0 accepts). */
void smtp_policy_check(enum smtp_policy_point pt,
    const struct smtp_policy_facts *f, struct smtp_verdict *v_r);

/*
 * A syntax or sequence error found by the command table: the reply the
 * caller chose, counted as an error.  Always fills *v_r.
 */
void smtp_policy_reject(struct smtp_verdict *v_r, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Books verdict v against the session's one error counter *errors (every
 * counted refusal, whatever its kind).  Returns true when the session has
 * now made too many errors: *v_r is then the 421 that ends it.
 */
bool smtp_policy_count(const struct smtp_policy_facts *f, unsigned *errors,
    const struct smtp_verdict *v, struct smtp_verdict *v_r);

/*
 * How long the reply to a counted error waits, given the session's
 * errors so far (this one included): SMTP_POLICY_ERROR_DELAY_MS past
 * half of limits->bad_cmd_max ([smtp] hard_error_limit), else 0.
 */
unsigned smtp_policy_error_delay(const struct smtp_policy_facts *f,
    unsigned errors);

#endif
