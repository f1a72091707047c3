/*
 * maildate.c - RFC 5322 3.3 date-time; see maildate.h.
 */
#include <stdio.h>

#include "maildate.h"

void
maildate_format(time_t t, char *out, size_t outsz)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(out, outsz, "Thu, 01 Jan 1970 00:00:00 +0000");
}
