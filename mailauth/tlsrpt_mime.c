/*
 * tlsrpt_mime.c - the message that carries a TLS report (RFC 8460 5.3;
 * see tlsrpt.h): the JSON gzip'd with zlib, a multipart/report
 * (RFC 6522) of report-type "tlsrpt" with a human-readable part and the
 * report as application/tlsrpt+gzip (RFC 8460 6.4) in base64.
 */
#include "tlsrpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "err.h"
#include "sasl.h"

/* RFC 2045 6.8: encoded lines of at most 76 characters. */
#define TLSRPT_B64_LINE 76

int
tlsrpt_gzip(const uint8_t *in, size_t len, struct buf *out)
{
	z_stream z;
	int r, zr;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper (RFC 1952), not zlib's. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return PR_EIO;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		if ((r = buf_reserve(out, 16384)) < 0) {
			deflateEnd(&z);
			return r;
		}
		z.next_out = out->p + out->len;
		z.avail_out = (uInt)(out->cap - out->len);
		zr = deflate(&z, Z_FINISH);
		out->len = out->cap - z.avail_out;
	} while (zr == Z_OK || zr == Z_BUF_ERROR);
	deflateEnd(&z);
	return zr == Z_STREAM_END ? 0 : PR_EIO;
}

int
tlsrpt_filename(const struct tlsrpt_info *info, char *out, size_t outsz)
{
	int64_t begin = info->day * 86400;
	int n;

	/* RFC 8460 5.3.1: sender "!" policy-domain "!" begin-timestamp "!"
	 * end-timestamp "!" unique-id "." extension, the timestamps in
	 * seconds since the epoch. */
	n = snprintf(out, outsz, "%s!%s!%" PRId64 "!%" PRId64 "!%s.json.gz",
	    info->submitter, info->domain, begin, begin + 86399,
	    info->unique_id);
	return n < 0 || (size_t)n >= outsz ? PR_ENOSPC : 0;
}

/* Header text must not end a field early: no CR or LF in what we put
 * into one (the values come from the config and DNS). */
static bool
tlsrpt_mime_clean(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

static int
tlsrpt_mime_b64(const uint8_t *in, size_t len, struct buf *out)
{
	/* 57 octets make one 76-character line. */
	char line[TLSRPT_B64_LINE + 1];
	size_t i, n;
	int r;

	for (i = 0; i < len; i += n) {
		n = len - i < 57 ? len - i : 57;
		if (sasl_b64_encode(in + i, n, line, sizeof(line)) < 0)
			return PR_ENOSPC;
		if ((r = buf_printf(out, "%s\r\n", line)) < 0)
			return r;
	}
	return 0;
}

int
tlsrpt_mime(const struct tlsrpt_info *info, const char *const *to,
    size_t n, const uint8_t *gz, size_t gz_len, int64_t now,
    struct buf *out)
{
	char date[64], day[11], fname[1024], boundary[128];
	time_t t = (time_t)now;
	struct tm tm;
	size_t i;
	int r;

	if (n == 0 || !tlsrpt_mime_clean(info->org) ||
	    strpbrk(info->submitter, "\"\\") != NULL ||
	    !tlsrpt_mime_clean(info->submitter) ||
	    !tlsrpt_mime_clean(info->from) ||
	    !tlsrpt_mime_clean(info->domain) ||
	    !tlsrpt_mime_clean(info->report_id) ||
	    !tlsrpt_mime_clean(info->unique_id))
		return PR_EINVAL;
	for (i = 0; i < n; i++)
		if (!tlsrpt_mime_clean(to[i]))
			return PR_EINVAL;
	if (gmtime_r(&t, &tm) == NULL)
		return PR_EINVAL;
	/* RFC 5322 3.3, in UTC. */
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	tlsrpt_day_format(info->day, day);
	if ((r = tlsrpt_filename(info, fname, sizeof(fname))) < 0)
		return r;
	snprintf(boundary, sizeof(boundary), "tlsrpt=_%s", info->unique_id);

	/* RFC 5322 3.2.5: a dot is no atext, so the phrase is quoted. */
	if ((r = buf_printf(out, "From: \"TLS reports of %s\" <%s>\r\n",
	    info->submitter, info->from)) < 0 ||
	    (r = buf_puts(out, "To: ")) < 0)
		return r;
	for (i = 0; i < n; i++)
		if ((r = buf_printf(out, "%s<%s>", i > 0 ? ",\r\n " : "",
		    to[i])) < 0)
			return r;
	/* RFC 8460 5.3: the Subject names the policy domain, the
	 * submitter and the report-id; TLS-Report-Domain and
	 * TLS-Report-Submitter (6.6) say it to programs. */
	if ((r = buf_printf(out, "\r\n"
	    "Date: %s\r\n"
	    "Subject: Report Domain: %s Submitter: %s\r\n"
	    " Report-ID: <%s>\r\n"
	    "TLS-Report-Domain: %s\r\n"
	    "TLS-Report-Submitter: %s\r\n"
	    "Message-ID: <tlsrpt.%s.%s@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    " boundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a multipart message in MIME format.\r\n"
	    "\r\n"
	    "--%s\r\n"
	    "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "This is an aggregate TLS report (RFC 8460) from %s\r\n"
	    "about mail sent to %s on %s (UTC).\r\n"
	    "\r\n"
	    "--%s\r\n"
	    "Content-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"%s\"\r\n"
	    "\r\n", date, info->domain, info->submitter, info->report_id,
	    info->domain, info->submitter, info->unique_id, info->domain,
	    info->submitter, boundary, boundary, info->org, info->domain, day,
	    boundary, fname)) < 0)
		return r;
	if ((r = tlsrpt_mime_b64(gz, gz_len, out)) < 0)
		return r;
	return buf_printf(out, "\r\n--%s--\r\n", boundary);
}
