/*
 * smtp_proto_int.h - what the files of the SMTP core share: the session
 * struct and the internals that cross files.  Not for the glue.
 *
 *	smtp_proto.c   life cycle, framing, message data, completions, trace
 *	smtp_parse.c   command arguments, typed (the parse step)
 *	smtp_cmd.c     the command table: check, then proceed
 *	smtp_policy.c  every accept/refuse decision (called from the checks)
 */
#ifndef POSTROOM_SMTP_PROTO_INT_H
#define POSTROOM_SMTP_PROTO_INT_H

#include "smtp_parse.h"
#include "smtp_policy.h"
#include "smtp_proto.h"

/* Replies are held until the glue writes them; past this much the core
 * stops reading commands so that a pipelining client cannot make the
 * output grow without bound. */
#define SMTP_PROTO_OUT_HIGH (16 * 1024)
#define SMTP_PROTO_OUT_MAX (256 * 1024)
#define SMTP_PROTO_CMDLOG_MAX (ADDR_MAX + 32)
/* Octets of header From: and Sender: values kept, and the addresses
 * checked: past either the message is refused, never half checked. */
#define SMTP_PROTO_FROM_HDR_MAX 4096
#define SMTP_PROTO_FROM_MAX 32

struct smtp_proto {
	struct smtp_proto_conf conf;
	enum smtp_state state;
	struct buf out;
	struct buf line;        /* a partial command line */
	struct smtp_event ev;
	bool closing;
	bool out_failed;        /* a reply could not be queued */
	bool draining;          /* smtp_proto_shutdown() was called */
	bool esmtp;             /* EHLO (not HELO) */
	bool tls;
	bool authed;
	const char *auth_mech_name; /* static: the mechanism logged in */
	char helo[SMTP_PARSE_HELO_MAX + 1];
	char etrn_node[ADDR_MAX + 1];   /* ETRN: the domain (ev.addr) */
	bool etrn_sub;
	char auth_user[ADDR_MAX];
	char tls_desc[128];
	char cmdlog[SMTP_PROTO_CMDLOG_MAX + 1]; /* current command, for logs */
	/* errors: the one error counter (smtp_policy_count). */
	unsigned auth_fails, errors, messages, rejects;
	unsigned junk;          /* junk commands (smtp_policy_junk) */

	/* AUTH exchange in progress. */
	enum smtp_auth_mech auth_mech;
	int auth_step;
	char *secret;           /* sodium_malloc: user, then password */

	/* Transaction. */
	struct smtp_tx tx;
	size_t users_cap, remote_cap;
	size_t users_mark, remote_mark; /* rollback point of a RCPT */
	char rcpt[ADDR_MAX];            /* RCPT being resolved */
	unsigned rcpt_notify;           /* ... its NOTIFY= and ORCPT= */
	char rcpt_orcpt[DSN_ORCPT_MAX + 1];
	char queued_id[64];
	struct buf body;                /* message octets not yet spooled */
	struct smtp_data data;
	bool data_started;
	bool spool_failed;
	bool spool_full;            /* ... for want of disk space */
	struct smtp_verify verify;  /* SMTP_EV_VERIFY's outcome */
	struct smtp_milter_reply milter; /* the filters' refusal */
	char verify_domain[256];
	/* The header From: and Sender: values (smtp_data collects them)
	 * and, once the message is complete, their addresses, each asked
	 * about with SMTP_EV_FROM in turn. */
	struct buf from_hdr;
	char (*from)[ADDR_MAX];
	unsigned n_from, from_pos;

	/* BDAT chunk being read. */
	uint64_t chunk_left;
	bool chunk_last;
	struct smtp_verdict chunk_verdict; /* refusal after the octets */
	enum smtp_state chunk_prev;
};

#define SMTP_SECRET_PASS(p) ((p)->secret + SASL_USER_MAX)

/* smtp_proto.c */
void smtp_proto__reply(struct smtp_proto *p, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queues a refusal (or does nothing for an accepting verdict), books it
 * against the error counter and ends the session when told to. */
void smtp_proto__verdict(struct smtp_proto *p, const struct smtp_verdict *v);
/* A syntax or sequence error: smtp_policy_reject(), then the verdict. */
void smtp_proto__reject(struct smtp_proto *p, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The facts for smtp_policy_check(), from the session's state. */
void smtp_proto__facts(const struct smtp_proto *p,
    struct smtp_policy_facts *f);
/* Asks the policy at pt with the session's facts and status; a refusal
 * is queued.  Returns true when the policy accepted. */
bool smtp_proto__check(struct smtp_proto *p, enum smtp_policy_point pt,
    int status);
/* The same with facts the caller filled in (parsed arguments). */
bool smtp_proto__decide(struct smtp_proto *p, enum smtp_policy_point pt,
    const struct smtp_policy_facts *f);
void smtp_proto__log(struct smtp_proto *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void smtp_proto__enter(struct smtp_proto *p, enum smtp_state st);
void smtp_proto__close(struct smtp_proto *p);
void smtp_proto__secret_wipe(struct smtp_proto *p);
void smtp_proto__tx_reset(struct smtp_proto *p);
void smtp_proto__tx_rollback(struct smtp_proto *p);
void smtp_proto__data_begin(struct smtp_proto *p, enum smtp_data_mode mode);
void smtp_proto__chunk_end(struct smtp_proto *p);

/* smtp_cmd.c */
/* Executes one command line (terminator removed, NUL-terminated). */
void smtp_cmd__line(struct smtp_proto *p, char *line, size_t len);
/* The proceed steps of the commands whose check waited for the glue. */
void smtp_cmd__auth_done(struct smtp_proto *p, int status);
/* SMTP_EV_ETRN completed with status (entries found, or an error). */
void smtp_cmd__etrn_done(struct smtp_proto *p, int status);
void smtp_cmd__mail_done(struct smtp_proto *p, int status);
void smtp_cmd__spf_done(struct smtp_proto *p, int status);
void smtp_cmd__rcpt_done(struct smtp_proto *p, int status);
/* SMTP_EV_MILTER completed (p->milter holds a refusal). */
void smtp_cmd__milter_done(struct smtp_proto *p, int status);

#endif
