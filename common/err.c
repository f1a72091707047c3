/* err.c - error codes and messages. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int
pr_err_set(struct pr_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void
pr_err_clear(struct pr_err *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

const char *
pr_strerror(int code)
{
	switch (code) {
	case PR_OK: return "OK";
	case PR_EINVAL: return "EINVAL";
	case PR_ENOMEM: return "ENOMEM";
	case PR_ENOSPC: return "ENOSPC";
	case PR_EIO: return "EIO";
	case PR_ENOENT: return "ENOENT";
	case PR_EEXIST: return "EEXIST";
	case PR_EAUTH: return "EAUTH";
	case PR_EBUSY: return "EBUSY";
	case PR_EQUOTA: return "EQUOTA";
	case PR_ETOOBIG: return "ETOOBIG";
	case PR_ELOOP: return "ELOOP";
	case PR_EVERSION: return "EVERSION";
	case PR_EAGAIN: return "EAGAIN";
	case PR_EPERM: return "EPERM";
	case PR_ETLS: return "ETLS";
	case PR_EFULL: return "EFULL";
	}
	return "EUNKNOWN";
}
