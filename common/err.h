/*
 * err.h - error codes shared by every module.
 *
 * Functions return 0 on success and a negative PR_E* code on failure, the
 * libuv convention.  Callers that need a human-readable reason pass a
 * struct pr_err, which the failing function fills with pr_err_set().
 */
#ifndef POSTROOM_ERR_H
#define POSTROOM_ERR_H

#include <stddef.h>

enum {
	PR_OK = 0,
	PR_EINVAL = -1,    /* malformed input: address, config value, ... */
	PR_ENOMEM = -2,    /* allocation failed (pure cores only) */
	PR_ENOSPC = -3,    /* a bounded buffer or limit is full */
	PR_EIO = -4,       /* I/O or database failure */
	PR_ENOENT = -5,    /* no such domain, user, alias, message */
	PR_EEXIST = -6,    /* already exists */
	PR_EAUTH = -7,     /* wrong password or no such user (never says which) */
	PR_EBUSY = -8,     /* locked by someone else (POP3 maildrop) */
	PR_EQUOTA = -9,    /* over quota for now (RFC 3463 4.2.2) */
	PR_ETOOBIG = -10,  /* larger than a limit that can never be met (5.2.2/5.3.4) */
	PR_ELOOP = -11,    /* alias loop */
	PR_EVERSION = -12, /* database schema newer than this binary */
	PR_EAGAIN = -13,   /* need more input / try later */
	PR_EPERM = -14,    /* not allowed (e.g. sender not owned) */
	PR_ETLS = -15,     /* TLS failure */
	PR_EFULL = -16,    /* no room left on the disk (RFC 3463 4.3.1) */
};

struct pr_err {
	int code;
	char msg[256];
};

/* Records code and a printf-style reason in err (which may be NULL) and
 * returns code, so a failure path can be `return pr_err_set(err, ...)`. */
int pr_err_set(struct pr_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clears err to "no error". */
void pr_err_clear(struct pr_err *err);

/* A short static name for a code, for logs and tests ("EINVAL"). */
const char *pr_strerror(int code);

#endif
