/*
 * tlsrpt_json.c - the JSON aggregate report of RFC 8460 4.4 (see
 * tlsrpt.h), and the UTC days it is about.
 *
 * Only written, never read, so a writer of strings (RFC 8259 7) and
 * numbers is all it takes: text that is not valid UTF-8 (a policy
 * fetched from a hostile server, an error string) is written with
 * U+FFFD in its place, so the report is always valid JSON.
 */
#include "tlsrpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

/* The length of the valid UTF-8 sequence (RFC 3629 4) at s[0..n), or 0. */
static size_t
tlsrpt_json_utf8(const uint8_t *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* s as a JSON string, quotes included (RFC 8259 7). */
static int
tlsrpt_json_str(struct buf *out, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), i = 0, len;
	int r = buf_puts(out, "\"");

	while (r == 0 && i < n) {
		if (p[i] == '"' || p[i] == '\\') {
			r = buf_printf(out, "\\%c", p[i]);
			len = 1;
		} else if (p[i] == '\n') {
			r = buf_puts(out, "\\n");
			len = 1;
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			r = buf_printf(out, "\\u%04x", p[i]);
			len = 1;
		} else if ((len = tlsrpt_json_utf8(p + i, n - i)) == 0) {
			r = buf_puts(out, "\\ufffd");
			len = 1;
		} else
			r = buf_append(out, p + i, len);
		i += len;
	}
	return r == 0 ? buf_puts(out, "\"") : r;
}

/* "key": "value", with sep before it. */
static int
tlsrpt_json_kv(struct buf *out, const char *sep, const char *key,
    const char *val)
{
	int r;

	if ((r = buf_puts(out, sep)) < 0 ||
	    (r = tlsrpt_json_str(out, key)) < 0 ||
	    (r = buf_puts(out, ": ")) < 0)
		return r;
	return tlsrpt_json_str(out, val);
}

/* The lines of s, separated by '\n', as a JSON array of strings; with
 * prefix, only the lines that start with it, without it. */
static int
tlsrpt_json_lines(struct buf *out, const char *s, const char *prefix)
{
	char line[1024];
	const char *e, *v;
	size_t len, plen = prefix != NULL ? strlen(prefix) : 0;
	int r, first = 1;

	if ((r = buf_puts(out, "[")) < 0)
		return r;
	while (*s != '\0') {
		e = strchr(s, '\n');
		len = e != NULL ? (size_t)(e - s) : strlen(s);
		if (len > 0 && s[len - 1] == '\r')
			len--;
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, s, len);
		line[len] = '\0';
		v = line;
		if (prefix != NULL) {
			/* RFC 8461 3.2: "mx: pattern", spaces allowed. */
			v = NULL;
			if (strncmp(line, prefix, plen) == 0) {
				v = line + plen;
				while (*v == ' ' || *v == '\t')
					v++;
			}
		}
		if (v != NULL && (prefix == NULL || *v != '\0')) {
			if ((r = buf_puts(out, first ? "" : ", ")) < 0 ||
			    (r = tlsrpt_json_str(out, v)) < 0)
				return r;
			first = 0;
		}
		s += len;
		while (*s == '\r' || *s == '\n')
			s++;
	}
	return buf_puts(out, "]");
}

static bool
tlsrpt_json_same_policy(const struct tlsrpt_row *a, const struct tlsrpt_row *b)
{
	return strcmp(a->policy_type, b->policy_type) == 0 &&
	    strcmp(a->policy_string, b->policy_string) == 0;
}

/* RFC 8460 4.4 mx-host: the policy's mx patterns for "sts"; the hosts
 * the TLSA records were found for, for "tlsa". */
static int
tlsrpt_json_mx(struct buf *out, const struct tlsrpt_row *rows, size_t n)
{
	size_t i, j;
	int r, first = 1;

	if (strcmp(rows[0].policy_type, "sts") == 0) {
		if ((r = buf_puts(out, ",\n\t\t\t\"mx-host\": ")) < 0)
			return r;
		return tlsrpt_json_lines(out, rows[0].policy_string, "mx:");
	}
	if (strcmp(rows[0].policy_type, "tlsa") != 0)
		return 0;
	if ((r = buf_puts(out, ",\n\t\t\t\"mx-host\": [")) < 0)
		return r;
	for (i = 0; i < n; i++) {
		if (rows[i].mx_host[0] == '\0')
			continue;
		for (j = 0; j < i; j++)
			if (strcmp(rows[j].mx_host, rows[i].mx_host) == 0)
				break;
		if (j < i)
			continue;
		if ((r = buf_puts(out, first ? "" : ", ")) < 0 ||
		    (r = tlsrpt_json_str(out, rows[i].mx_host)) < 0)
			return r;
		first = 0;
	}
	return buf_puts(out, "]");
}

/* One policies[] element: the n rows of one policy. */
static int
tlsrpt_json_policy(struct buf *out, const struct tlsrpt_info *info,
    const struct tlsrpt_row *rows, size_t n)
{
	const struct tlsrpt_row *f;
	int64_t ok = 0, failed = 0;
	size_t i;
	int r, first = 1;

	for (i = 0; i < n; i++) {
		if (strcmp(rows[i].result, "success") == 0)
			ok += rows[i].count;
		else
			failed += rows[i].count;
	}
	if ((r = buf_puts(out, "{\n\t\t\"policy\": {")) < 0 ||
	    (r = tlsrpt_json_kv(out, "\n\t\t\t", "policy-type",
	    rows[0].policy_type)) < 0)
		return r;
	/* RFC 8460 4.4: the policy as published, one string per line;
	 * nothing to say for "no-policy-found". */
	if (rows[0].policy_string[0] != '\0' &&
	    ((r = buf_puts(out, ",\n\t\t\t\"policy-string\": ")) < 0 ||
	    (r = tlsrpt_json_lines(out, rows[0].policy_string, NULL)) < 0))
		return r;
	if ((r = tlsrpt_json_kv(out, ",\n\t\t\t", "policy-domain",
	    info->domain)) < 0 || (r = tlsrpt_json_mx(out, rows, n)) < 0)
		return r;
	if ((r = buf_printf(out, "\n\t\t},\n\t\t\"summary\": {\n"
	    "\t\t\t\"total-successful-session-count\": %" PRId64 ",\n"
	    "\t\t\t\"total-failure-session-count\": %" PRId64 "\n\t\t}",
	    ok, failed)) < 0)
		return r;
	if (failed > 0 &&
	    (r = buf_puts(out, ",\n\t\t\"failure-details\": [")) < 0)
		return r;
	for (i = 0; i < n; i++) {
		f = &rows[i];
		if (strcmp(f->result, "success") == 0)
			continue;
		if ((r = buf_puts(out, first ? "{" : ", {")) < 0 ||
		    (r = tlsrpt_json_kv(out, "\n\t\t\t", "result-type",
		    f->result)) < 0)
			return r;
		first = 0;
		if (f->sending_ip[0] != '\0' && (r = tlsrpt_json_kv(out,
		    ",\n\t\t\t", "sending-mta-ip", f->sending_ip)) < 0)
			return r;
		if (f->mx_host[0] != '\0' && (r = tlsrpt_json_kv(out,
		    ",\n\t\t\t", "receiving-mx-hostname", f->mx_host)) < 0)
			return r;
		if (f->receiving_ip[0] != '\0' && (r = tlsrpt_json_kv(out,
		    ",\n\t\t\t", "receiving-ip", f->receiving_ip)) < 0)
			return r;
		if ((r = buf_printf(out, ",\n\t\t\t\"failed-session-count\": %"
		    PRId64, f->count)) < 0)
			return r;
		if (f->reason[0] != '\0' && (r = tlsrpt_json_kv(out,
		    ",\n\t\t\t", "failure-reason-code", f->reason)) < 0)
			return r;
		if ((r = buf_puts(out, "\n\t\t}")) < 0)
			return r;
	}
	if (failed > 0 && (r = buf_puts(out, "]")) < 0)
		return r;
	return buf_puts(out, "\n\t}");
}

int
tlsrpt_json(const struct tlsrpt_info *info, const struct tlsrpt_row *rows,
    size_t n, struct buf *out)
{
	char day[11];
	size_t i, j;
	int r;

	if (n == 0)
		return PR_EINVAL;
	tlsrpt_day_format(info->day, day);
	if ((r = buf_puts(out, "{")) < 0 ||
	    (r = tlsrpt_json_kv(out, "\n\t", "organization-name",
	    info->org)) < 0 ||
	    (r = buf_printf(out, ",\n\t\"date-range\": {\n"
	    "\t\t\"start-datetime\": \"%sT00:00:00Z\",\n"
	    "\t\t\"end-datetime\": \"%sT23:59:59Z\"\n\t}", day, day)) < 0 ||
	    (r = tlsrpt_json_kv(out, ",\n\t", "contact-info",
	    info->contact)) < 0 ||
	    (r = tlsrpt_json_kv(out, ",\n\t", "report-id",
	    info->report_id)) < 0 ||
	    (r = buf_puts(out, ",\n\t\"policies\": [")) < 0)
		return r;
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n &&
		    tlsrpt_json_same_policy(&rows[i], &rows[j]); j++)
			;
		if ((r = buf_puts(out, i == 0 ? "" : ", ")) < 0 ||
		    (r = tlsrpt_json_policy(out, info, rows + i, j - i)) < 0)
			return r;
	}
	return buf_puts(out, "]\n}\n");
}

/* --- UTC days ------------------------------------------------------------ */

int64_t
tlsrpt_day_of(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), so no time zone is ever involved. */
static int64_t
tlsrpt_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void
tlsrpt_day_format(int64_t day, char out[11])
{
	int64_t z = day + 719468, era, y;
	unsigned doe, yoe, doy, mp, d, m;

	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	if (y < 0 || y > 9999)
		y = 0;
	snprintf(out, 11, "%04d-%02u-%02u", (int)y, m, d);
}

int
tlsrpt_day_parse(const char *s, int64_t *day_r)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	unsigned y, m, d;
	size_t i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return PR_EINVAL;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return PR_EINVAL;
	y = (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 +
	    (s[2] - '0') * 10 + (s[3] - '0'));
	m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
	d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 ||
	    y % 400 == 0))))
		return PR_EINVAL;
	*day_r = tlsrpt_days_from_civil(y, m, d);
	return 0;
}
