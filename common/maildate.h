/*
 * maildate.h - the date-time of Date: and Received: fields (RFC 5322
 * 3.3), in local time with its numeric zone.  strftime's %a and %b are
 * the C locale's names as long as no program of ours calls setlocale(),
 * which none does: RFC 5322 wants the English ones.
 */
#ifndef POSTROOM_MAILDATE_H
#define POSTROOM_MAILDATE_H

#include <stddef.h>
#include <time.h>

/* Room for the longest date-time maildate_format() writes. */
#define MAILDATE_MAX 40

/* Writes t as "Wed, 02 Dec 2026 01:02:03 +0100" into out. */
void maildate_format(time_t t, char *out, size_t outsz);

#endif
