/*
 * smtp_parse.h - the parse step of the SMTP command table: a command's
 * argument text becomes typed arguments, or a syntax error verdict.
 *
 * Nothing here looks at the session's state or decides whether the
 * command may go on; that is the check step (smtp_cmd.c) and the policy
 * (smtp_policy.c).  No I/O, no allocation.
 */
#ifndef POSTROOM_SMTP_PARSE_H
#define POSTROOM_SMTP_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "dsn.h"
#include "smtp_policy.h"

/* RFC 5321 4.5.3.1.2: a domain is at most 255 octets. */
#define SMTP_PARSE_HELO_MAX 255

enum smtp_auth_mech { SMTP_AUTH_PLAIN = 1, SMTP_AUTH_LOGIN };

/* What a parse step fills in; only the fields of its own verb. */
struct smtp_args {
	const char *raw;            /* the argument text, borrowed */
	char helo[SMTP_PARSE_HELO_MAX + 1]; /* EHLO, HELO */
	char addr[ADDR_MAX];        /* MAIL ("" = null), RCPT */
	uint64_t size;              /* MAIL SIZE= (0 if none), BDAT */
	bool smtputf8, body_8bit;   /* MAIL: RFC 6531, RFC 6152 */
	/* DSN, RFC 3461 4: MAIL RET= (enum dsn_ret) and ENVID= (decoded,
	 * "" = none); RCPT NOTIFY= (DSN_NOTIFY_* bits, 0 = none) and ORCPT=
	 * as "addr-type;address" decoded ("" = none). */
	int ret;
	char envid[DSN_ENVID_MAX + 1];
	unsigned notify;
	char orcpt[DSN_ORCPT_MAX + 1];
	bool last;                  /* BDAT ... LAST (RFC 3030 2) */
	enum smtp_auth_mech mech;   /* AUTH */
	const char *ir;             /* AUTH initial response, NULL = none */
	/* ETRN (RFC 1985): the node in addr (a domain in normal form, or
	 * a queue name with etrn_queue), etrn_sub for "@domain". */
	bool etrn_sub, etrn_queue;
};

/* What the parse steps need to know about the session. */
struct smtp_parse_ctx {
	const char *hostname;       /* <Postmaster> resolves to it */
	bool esmtp;                 /* EHLO was given: parameters allowed */
	const char *verb;           /* the command's verb, for error texts */
};

/*
 * Each parse step reads a->raw and returns true with its fields of *a
 * filled in, or false with the syntax error in *v_r (which counts as an
 * error, smtp_policy_reject).
 */
/* EHLO and HELO (c->verb names which in the error). */
bool smtp_parse_hello(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
bool smtp_parse_mail(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
bool smtp_parse_rcpt(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
/* A BDAT without a usable size cannot be framed: *v_r closes (close). */
bool smtp_parse_bdat(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
bool smtp_parse_vrfy(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
bool smtp_parse_auth(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
/* ETRN node: "domain", "@domain" (and its subdomains) or "#queue"
 * (RFC 1985 5.3); 501 5.5.4 for anything else. */
bool smtp_parse_etrn(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);
/*
 * The DSN parameters (RFC 3461 4.1 NOTIFY=, 4.2 ORCPT=) among the ESMTP
 * arguments args of a recipient a content filter added (SMFIR_ADDRCPT_PAR,
 * space-separated); other parameters are not ours to act on and are
 * skipped.  Returns false for a malformed or repeated DSN parameter or
 * over SMTP_PARSE_ARGS_MAX octets.
 */
#define SMTP_PARSE_ARGS_MAX 1000
bool smtp_parse_rcpt_dsn(const char *args, unsigned *notify_r,
    char *orcpt, size_t orcptsz);

/* Verbs without arguments (c->verb names the verb in the error). */
bool smtp_parse_none(const struct smtp_parse_ctx *c, struct smtp_args *a,
    struct smtp_verdict *v_r);

#endif
