/*
 * test_doctor_parse.c - the pure parsers of `postroom doctor`
 * (tools/doctor_parse.c): MTA-STS and TLS-RPT records, SMTP and POP3
 * replies fed whole and byte by byte, and their bounds.
 */
#include <string.h>

#include "doctor.h"
#include "err.h"
#include "tap.h"

static int
sts(const char *s)
{
	const char *why;

	return doctor_sts_record(s, strlen(s), &why);
}

static int
rpt(const char *s)
{
	const char *why;

	return doctor_tlsrpt_record(s, strlen(s), &why);
}

/* Feeds s in chunks of n; returns the status, *rest what was left. */
static int
feed(struct doctor_reply *r, enum doctor_reply_kind kind, const char *s,
    size_t n, size_t *rest)
{
	size_t off = 0, len = strlen(s), used, k;
	int st = 0;

	doctor_reply_init(r, kind);
	while (off < len) {
		k = len - off < n ? len - off : n;
		st = doctor_reply_feed(r, (const uint8_t *)s + off, k, &used);
		off += used;
		if (st != 0)
			break;
	}
	*rest = len - off;
	return st;
}

int
main(void)
{
	static const char ehlo[] = "250-mx.example.org hello\r\n"
	    "250-PIPELINING\r\n250-STARTTLSX\r\n250-STARTTLS\r\n"
	    "250 8BITMIME\r\n221 next\r\n";
	static const char capa[] = "+OK Capability list follows\r\n"
	    "USER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n+OK next\r\n";
	struct doctor_reply r;
	char longline[1100];
	size_t rest, n;

	/* RFC 8461 3.1 */
	TAP_EQ_INT(sts("v=STSv1; id=20160831085700Z;"), 0, "sts: valid");
	TAP_EQ_INT(sts("v=STSv1;id=abc"), 0, "sts: no space");
	TAP_EQ_INT(sts("v=spf1 -all"), PR_ENOENT, "sts: not one");
	TAP_EQ_INT(sts("v=STSv1; id=not-valid!"), PR_EINVAL,
	    "sts: bad id characters");
	TAP_EQ_INT(sts("v=STSv1; id=123456789012345678901234567890123"),
	    PR_EINVAL, "sts: id longer than 32");
	TAP_EQ_INT(sts("v=STSv1"), PR_EINVAL, "sts: no id");
	TAP_EQ_INT(sts("v=STSv1; id=1; id=2"), PR_EINVAL, "sts: id twice");
	/* RFC 8460 3 */
	TAP_EQ_INT(rpt("v=TLSRPTv1; rua=mailto:tls@example.org"), 0,
	    "tlsrpt: mailto");
	TAP_EQ_INT(rpt("v=TLSRPTv1;rua=mailto:a@example.org, "
	    "https://reports.example.org/tls"), 0, "tlsrpt: two URIs");
	TAP_EQ_INT(rpt("v=TLSRPTv1; rua=ftp://x"), PR_EINVAL,
	    "tlsrpt: other scheme");
	TAP_EQ_INT(rpt("v=TLSRPTv1; rua=mailto:a@b,"), PR_EINVAL,
	    "tlsrpt: empty URI");
	TAP_EQ_INT(rpt("v=TLSRPTv1"), PR_EINVAL, "tlsrpt: no rua");
	TAP_EQ_INT(rpt("v=DMARC1; p=none"), PR_ENOENT, "tlsrpt: not one");

	/* RFC 5321 4.2, whole and byte by byte */
	for (n = 1; n <= sizeof(ehlo); n += sizeof(ehlo) - 1) {
		TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, ehlo, n, &rest), 1,
		    "smtp: a multi-line reply, chunks of %zu", n);
		TAP_EQ_INT(r.code, 250, "smtp: code");
		TAP_EQ_STR(r.first, "250-mx.example.org hello", "smtp: first");
		TAP_OK(r.starttls, "smtp: STARTTLS seen");
		TAP_EQ_INT(rest, strlen("221 next\r\n"),
		    "smtp: the next reply is left alone");
	}
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, "250-a\r\n250 PIPELINING\r\n",
	    64, &rest), 1, "smtp: no STARTTLS");
	TAP_OK(!r.starttls, "smtp: STARTTLS not offered");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, "220\n", 64, &rest), 1,
	    "smtp: a bare code and LF");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, "250-a\r\n554 b\r\n", 64,
	    &rest), PR_EINVAL, "smtp: two codes in one reply");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, "hello\r\n", 64, &rest),
	    PR_EINVAL, "smtp: no code");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, "999 x\r\n", 64, &rest),
	    PR_EINVAL, "smtp: code out of range");
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	memcpy(longline, "250 ", 4);
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, longline, 7, &rest),
	    PR_EINVAL, "smtp: a line over DOCTOR_REPLY_LINE_MAX");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_SMTP, "250-a\r\n250-b", 64, &rest),
	    0, "smtp: an unfinished reply needs more");

	/* RFC 1939 3, RFC 2449 5 */
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_POP3, "+OK ready\r\n+OK x\r\n", 3,
	    &rest), 1, "pop3: one line");
	TAP_EQ_INT(r.code, 1, "pop3: +OK");
	TAP_EQ_INT(rest, 7, "pop3: the rest left alone");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_POP3, "-ERR no\r\n", 64, &rest), 1,
	    "pop3: -ERR");
	TAP_EQ_INT(r.code, 0, "pop3: -ERR code");
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_POP3, "+OKAY\r\n", 64, &rest),
	    PR_EINVAL, "pop3: +OKAY is no status");
	for (n = 1; n <= sizeof(capa); n += sizeof(capa) - 1) {
		TAP_EQ_INT(feed(&r, DOCTOR_REPLY_POP3_MULTI, capa, n, &rest),
		    1, "pop3: CAPA, chunks of %zu", n);
		TAP_OK(r.stls, "pop3: STLS seen");
		TAP_EQ_INT(rest, strlen("+OK next\r\n"), "pop3: CAPA ends");
	}
	TAP_EQ_INT(feed(&r, DOCTOR_REPLY_POP3_MULTI, "-ERR no\r\n", 64,
	    &rest), 1, "pop3: CAPA refused ends at once");
	{
		static const uint8_t nul[] = "+OK a\0b\r\n";
		size_t used;

		doctor_reply_init(&r, DOCTOR_REPLY_POP3);
		TAP_EQ_INT(doctor_reply_feed(&r, nul, sizeof(nul) - 1, &used),
		    PR_EINVAL, "pop3: a NUL in a reply");
	}
	return tap_done();
}
