/*
 * dsn.h - the DSN parameters of RFC 3461 as postroom keeps them: with the
 * transaction (smtpd/smtp_proto.h), in the queue (store/store.h) and in
 * the reports (smtpd/relay/relay_dsn.h).
 */
#ifndef POSTROOM_DSN_H
#define POSTROOM_DSN_H

/* MAIL RET= (RFC 3461 4.3); 0 = not given. */
enum dsn_ret {
	DSN_RET_NONE = 0,
	DSN_RET_FULL = 1,
	DSN_RET_HDRS = 2,
};

/* RCPT NOTIFY= (RFC 3461 4.1) as bits; 0 = not given, which asks for
 * failure and delay reports (RFC 3461 4.1: "NOTIFY=FAILURE,DELAY"). */
#define DSN_NOTIFY_SUCCESS 1u
#define DSN_NOTIFY_FAILURE 2u
#define DSN_NOTIFY_DELAY 4u
#define DSN_NOTIFY_NEVER 8u

/* RFC 3461 4.4: an ENVID is at most 100 characters (as xtext, so the
 * decoded value is no longer). */
#define DSN_ENVID_MAX 100
/* RFC 3461 4.2: an ORCPT parameter is at most 500 characters;
 * "addr-type;address" decoded fits in as much. */
#define DSN_ORCPT_MAX 500

/* Whether a report of a kind is wanted for a recipient's notify bits:
 * failures and delays unless NOTIFY was given without them, successes
 * only when asked for. */
#define DSN_WANTS_FAILURE(n) ((n) == 0 || ((n) & DSN_NOTIFY_FAILURE))
#define DSN_WANTS_DELAY(n) ((n) == 0 || ((n) & DSN_NOTIFY_DELAY))
#define DSN_WANTS_SUCCESS(n) (((n) & DSN_NOTIFY_SUCCESS) != 0)

#endif
