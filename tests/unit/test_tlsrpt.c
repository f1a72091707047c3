/*
 * test_tlsrpt.c - SMTP TLS Reporting (mailauth/tlsrpt_*.c, RFC 8460):
 * the _smtp._tls record (3), the lookups of a day's domains through a
 * table resolver, UTC days, the JSON report (4.4), gzip and the message
 * (5.3).  test_tlsrpt_json.py reads the same output back with python3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "err.h"
#include "resolver_table.h"
#include "tap.h"
#include "tlsrpt.h"

static void
t_record(void)
{
	static const struct {
		const char *rec;
		int want;
		const char *first;
		size_t https;
	} cases[] = {
		{ "v=TLSRPTv1; rua=mailto:reports@b.test", 1,
		    "reports@b.test", 0 },
		{ "v=TLSRPTv1;rua=mailto:a@b.test,mailto:c@d.test", 2,
		    "a@b.test", 0 },
		{ "v=TLSRPTv1; rua=https://r.b.test/v1 , mailto:x%40y@b.test",
		    0, NULL, 1 },
		{ "v=TLSRPTv1; rua=https://r.b.test/v1, mailto:tls@b.test?"
		    "subject=x", 1, "tls@b.test", 1 },
		{ "v=TLSRPTv1 ; ext=1; rua = mailto:a@b.test", 0, NULL, 0 },
		{ "v=TLSRPTv1; ext=1; rua=mailto:a@b.test;", 1, "a@b.test",
		    0 },
		{ "v=TLSRPTv1; rua=mailto:a%40b.test", 1, "a@b.test", 0 },
		{ "v=TLSRPTv1; rua=mailto:bad", 0, NULL, 0 },
		{ "v=TLSRPTv1; rua=mailto:a@b@c", 0, NULL, 0 },
		{ "v=TLSRPTv1; rua=mailto:a%0d%0aBcc:@x.test", 0, NULL, 0 },
		{ "v=TLSRPTv1; rua=mailto:a%zz@x.test", 0, NULL, 0 },
		{ "v=TLSRPTv1", 0, NULL, 0 },
		{ "v=tlsrptv1; rua=mailto:a@b.test", PR_EINVAL, NULL, 0 },
		{ "v=TLSRPTv10; rua=mailto:a@b.test", PR_EINVAL, NULL, 0 },
		{ "v=spf1 -all", PR_EINVAL, NULL, 0 },
		{ "", PR_EINVAL, NULL, 0 },
	};
	char rua[TLSRPT_RUA_MAX][ADDR_MAX], many[1024];
	size_t i, https;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = tlsrpt_record_parse(cases[i].rec, strlen(cases[i].rec),
		    rua, &https);
		TAP_EQ_INT(r, cases[i].want, "record \"%s\"", cases[i].rec);
		if (cases[i].first != NULL && r > 0)
			TAP_EQ_STR(rua[0], cases[i].first, "first address");
		if (r >= 0)
			TAP_EQ_INT(https, cases[i].https, "https URIs");
	}
	/* More addresses than TLSRPT_RUA_MAX: the first ones. */
	strcpy(many, "v=TLSRPTv1; rua=");
	for (i = 0; i < TLSRPT_RUA_MAX + 3; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		    "%smailto:r%zu@b.test", i > 0 ? "," : "", i);
	TAP_EQ_INT(tlsrpt_record_parse(many, strlen(many), rua, &https),
	    TLSRPT_RUA_MAX, "at most TLSRPT_RUA_MAX addresses");
	TAP_EQ_STR(rua[TLSRPT_RUA_MAX - 1], "r7@b.test", "in order");
}

struct t_done {
	int calls;
	struct tlsrpt_dest d[8];
	size_t n;
};

static void
t_done_cb(void *data, const struct tlsrpt_dest *dests, size_t n)
{
	struct t_done *t = data;

	t->calls++;
	t->n = n;
	memcpy(t->d, dests, n * sizeof(*dests));
}

static void
t_lookups(void)
{
	static const struct resolver_table_entry zone[] = {
		{ "_smtp._tls.a.test", RESOLVER_TXT, RESOLVER_NOERROR,
		    "\"v=TLSRPTv1; \" \"rua=mailto:tls@a.test\"" },
		{ "_smtp._tls.a.test", RESOLVER_TXT, RESOLVER_NOERROR,
		    "something else" },
		{ "_smtp._tls.two.test", RESOLVER_TXT, RESOLVER_NOERROR,
		    "v=TLSRPTv1; rua=mailto:x@two.test" },
		{ "_smtp._tls.two.test", RESOLVER_TXT, RESOLVER_NOERROR,
		    "v=TLSRPTv1; rua=mailto:y@two.test" },
		{ "_smtp._tls.down.test", RESOLVER_TXT, RESOLVER_SERVFAIL,
		    NULL },
		{ "_smtp._tls.web.test", RESOLVER_TXT, RESOLVER_NOERROR,
		    "v=TLSRPTv1; rua=https://r.web.test/" },
	};
	const char *domains[] = { "a.test", "none.test", "two.test",
	    "down.test", "web.test", "bad..name" };
	struct resolver_table *rt;
	struct tlsrpt_lookup *l = NULL;
	struct t_done t = { 0 };

	resolver_table_new(zone, sizeof(zone) / sizeof(zone[0]), &rt);
	TAP_EQ_INT(tlsrpt_lookup_new(resolver_table_resolver(rt), domains, 6,
	    t_done_cb, &t, &l), 0, "lookups started");
	TAP_EQ_INT(t.calls, 0, "no answer from within the call");
	resolver_table_run(rt);
	TAP_EQ_INT(t.calls, 1, "done once");
	TAP_EQ_INT(t.n, 6, "every domain");
	TAP_EQ_INT(t.d[0].status, 0, "a.test: one TLSRPT record");
	TAP_EQ_INT(t.d[0].n_rua, 1, "a.test: one address");
	TAP_EQ_STR(t.d[0].rua[0], "tls@a.test", "strings concatenated");
	TAP_EQ_INT(t.d[1].status, PR_ENOENT, "no record");
	TAP_EQ_INT(t.d[2].status, PR_EINVAL, "two records: none (RFC 8460 3)");
	TAP_EQ_INT(t.d[3].status, PR_EAGAIN, "SERVFAIL");
	TAP_EQ_INT(t.d[4].status, PR_ENOENT, "https only: nothing to mail");
	TAP_EQ_INT(t.d[5].status, PR_EINVAL, "not a name");
	tlsrpt_lookup_free(&l);
	TAP_OK(l == NULL, "freed");

	memset(&t, 0, sizeof(t));
	TAP_EQ_INT(tlsrpt_lookup_new(resolver_table_resolver(rt), domains, 0,
	    t_done_cb, &t, &l), 0, "no domains");
	TAP_EQ_INT(t.calls, 1, "done at once");
	tlsrpt_lookup_free(&l);
	/* Freed before the answers: they are never delivered. */
	memset(&t, 0, sizeof(t));
	tlsrpt_lookup_new(resolver_table_resolver(rt), domains, 3, t_done_cb,
	    &t, &l);
	tlsrpt_lookup_free(&l);
	resolver_table_run(rt);
	TAP_EQ_INT(t.calls, 0, "cancelled");
	resolver_table_free(&rt);
}

static void
t_days(void)
{
	char s[11];
	int64_t day;

	TAP_EQ_INT(tlsrpt_day_of(0), 0, "epoch");
	TAP_EQ_INT(tlsrpt_day_of(86399), 0, "last second of day 0");
	TAP_EQ_INT(tlsrpt_day_of(1728000000), 20000, "2024-10-04");
	tlsrpt_day_format(20000, s);
	TAP_EQ_STR(s, "2024-10-04", "day 20000");
	tlsrpt_day_format(11016, s);
	TAP_EQ_STR(s, "2000-02-29", "a leap day");
	TAP_EQ_INT(tlsrpt_day_parse("2024-10-04", &day), 0, "parse");
	TAP_EQ_INT(day, 20000, "parsed day");
	TAP_EQ_INT(tlsrpt_day_parse("2000-02-29", &day), 0, "leap day");
	TAP_EQ_INT(day, 11016, "leap day number");
	TAP_EQ_INT(tlsrpt_day_parse("1900-02-29", &day), PR_EINVAL, "1900");
	TAP_EQ_INT(tlsrpt_day_parse("2023-02-29", &day), PR_EINVAL, "2023");
	TAP_EQ_INT(tlsrpt_day_parse("2024-13-01", &day), PR_EINVAL, "month");
	TAP_EQ_INT(tlsrpt_day_parse("2024-1-01", &day), PR_EINVAL, "short");
	TAP_EQ_INT(tlsrpt_day_parse("yesterday", &day), PR_EINVAL, "word");
	for (day = 0; day < 30000; day += 37) {
		int64_t back;

		tlsrpt_day_format(day, s);
		if (tlsrpt_day_parse(s, &back) < 0 || back != day)
			break;
	}
	TAP_OK(day >= 30000, "format and parse agree over 80 years");
}

static const struct tlsrpt_row t_rows[] = {
	{ "no-policy-found", "", "success", "", "", "", "", 5 },
	{ "no-policy-found", "", "certificate-not-trusted", "mx.b.test",
	    "127.0.0.3", "", "self-signed \"certificate\"", 2 },
	{ "sts", "version: STSv1\nmode: enforce\nmx: mx.b.test\n"
	    "mx: *.b.test\nmax_age: 86400", "success", "", "", "", "", 3 },
	{ "sts", "version: STSv1\nmode: enforce\nmx: mx.b.test\n"
	    "mx: *.b.test\nmax_age: 86400", "sts-policy-fetch-error", "", "",
	    "192.0.2.9", "bad \xff byte", 1 },
};

static const struct tlsrpt_info t_info = {
	.org = "mail.a.test", .submitter = "mail.a.test",
	.contact = "postmaster@a.test", .from = "noreply-tlsrpt@a.test",
	.domain = "b.test", .report_id = "20241004x1+b.test@mail.a.test",
	.unique_id = "20241004x1", .day = 20000,
};

static void
t_json(void)
{
	struct buf out, gz, msg, back;
	char fname[256];
	const char *to[] = { "reports@b.test", "more@b.test" };
	z_stream z;
	int zr;

	buf_init(&out, TLSRPT_JSON_MAX);
	TAP_EQ_INT(tlsrpt_json(&t_info, t_rows, 4, &out), 0, "JSON built");
	buf_append(&out, "", 1);
	TAP_OK(strstr((char *)out.p, "\"start-datetime\": "
	    "\"2024-10-04T00:00:00Z\"") != NULL, "start of the day");
	TAP_OK(strstr((char *)out.p, "\"end-datetime\": "
	    "\"2024-10-04T23:59:59Z\"") != NULL, "end of the day");
	TAP_OK(strstr((char *)out.p, "\"failure-reason-code\": "
	    "\"self-signed \\\"certificate\\\"\"") != NULL, "quotes escaped");
	TAP_OK(strstr((char *)out.p, "bad \\ufffd byte") != NULL,
	    "invalid UTF-8 replaced");
	TAP_OK(strstr((char *)out.p, "\"mx-host\": [\"mx.b.test\", "
	    "\"*.b.test\"]") != NULL, "mx-host from the policy's mx lines");
	TAP_EQ_INT(tlsrpt_json(&t_info, t_rows, 0, &out), PR_EINVAL,
	    "no rows, no report");
	{
		struct buf small;

		buf_init(&small, 100);
		TAP_EQ_INT(tlsrpt_json(&t_info, t_rows, 4, &small),
		    PR_ENOSPC, "bounded output");
		buf_fini(&small);
	}

	buf_init(&gz, TLSRPT_JSON_MAX);
	TAP_EQ_INT(tlsrpt_gzip(out.p, out.len - 1, &gz), 0, "gzip'd");
	TAP_OK(gz.len > 10 && gz.p[0] == 0x1f && gz.p[1] == 0x8b,
	    "gzip magic (RFC 1952 2.3.1)");
	buf_init(&back, TLSRPT_JSON_MAX);
	buf_reserve(&back, out.len + 16);
	memset(&z, 0, sizeof(z));
	inflateInit2(&z, 15 + 16);
	z.next_in = gz.p;
	z.avail_in = (uInt)gz.len;
	z.next_out = back.p;
	z.avail_out = (uInt)back.cap;
	zr = inflate(&z, Z_FINISH);
	back.len = back.cap - z.avail_out;
	inflateEnd(&z);
	TAP_EQ_INT(zr, Z_STREAM_END, "gunzip");
	TAP_OK(back.len == out.len - 1 && memcmp(back.p, out.p,
	    back.len) == 0, "round trip");

	TAP_EQ_INT(tlsrpt_filename(&t_info, fname, sizeof(fname)), 0, "name");
	TAP_EQ_STR(fname, "mail.a.test!b.test!1728000000!1728086399!"
	    "20241004x1.json.gz", "RFC 8460 5.3.1 file name");
	TAP_EQ_INT(tlsrpt_filename(&t_info, fname, 20), PR_ENOSPC, "short");

	buf_init(&msg, TLSRPT_MSG_MAX);
	TAP_EQ_INT(tlsrpt_mime(&t_info, to, 2, gz.p, gz.len, 1728090000,
	    &msg), 0, "message built");
	buf_append(&msg, "", 1);
	TAP_OK(strstr((char *)msg.p, "Subject: Report Domain: b.test "
	    "Submitter: mail.a.test\r\n Report-ID: <20241004x1+b.test@"
	    "mail.a.test>\r\n") != NULL, "Subject");
	TAP_OK(strstr((char *)msg.p, "\r\nTLS-Report-Domain: b.test\r\n")
	    != NULL, "TLS-Report-Domain");
	TAP_OK(strstr((char *)msg.p, "\r\nDate: Sat, 05 Oct 2024 01:00:00 "
	    "+0000\r\n") != NULL, "Date in UTC");
	TAP_OK(strstr((char *)msg.p, "report-type=\"tlsrpt\"") != NULL,
	    "multipart/report of type tlsrpt");
	{
		struct buf bad;
		const char *evil[] = { "a@b.test\r\nBcc: c@d.test" };

		buf_init(&bad, TLSRPT_MSG_MAX);
		TAP_EQ_INT(tlsrpt_mime(&t_info, evil, 1, gz.p, gz.len, 0,
		    &bad), PR_EINVAL, "no header injection");
		TAP_EQ_INT(tlsrpt_mime(&t_info, to, 0, gz.p, gz.len, 0,
		    &bad), PR_EINVAL, "somebody to send it to");
		buf_fini(&bad);
	}
	buf_fini(&out);
	buf_fini(&gz);
	buf_fini(&back);
	buf_fini(&msg);
}

static void
t_day(void)
{
	struct tlsrpt_day d;
	struct tlsrpt_dest dests[3];
	struct tlsrpt_sender_buf sb;
	struct tlsrpt_msg *msgs = NULL;
	size_t n = 0, failed = 0;
	int64_t i;

	tlsrpt_day_init(&d, 20000);
	TAP_EQ_INT(tlsrpt_day_add(&d, "a.test", &t_rows[0]), 0, "add");
	TAP_EQ_INT(tlsrpt_day_add(&d, "b.test", &t_rows[1]), 0, "add");
	TAP_EQ_INT(tlsrpt_day_add(&d, "b.test", &t_rows[2]), 0, "add");
	TAP_EQ_INT(tlsrpt_day_add(&d, "c.test", &t_rows[0]), 0, "add");
	TAP_EQ_INT(d.n_domains, 3, "three domains");
	TAP_EQ_STR(d.domains[1], "b.test", "in order");
	memset(dests, 0, sizeof(dests));
	dests[0].status = PR_ENOENT;
	strcpy(dests[1].rua[0], "r1@b.test");
	strcpy(dests[1].rua[1], "r2@x.test");
	dests[1].n_rua = 2;
	strcpy(dests[2].rua[0], "tls@c.test");
	dests[2].n_rua = 1;
	tlsrpt_sender_fill(&sb, "mx.z.test", "z.test", "");
	TAP_EQ_STR(sb.who.from, "noreply-tlsrpt@z.test", "From address");
	TAP_EQ_STR(sb.who.contact, "postmaster@z.test", "contact");
	TAP_EQ_INT(tlsrpt_day_build(&d, dests, &sb.who, 1728090000, "ab12",
	    &msgs, &n, &failed), 0, "built");
	TAP_EQ_INT(n, 2, "a report for each domain with a rua");
	TAP_EQ_INT(failed, 0, "none failed");
	if (n == 2) {
		TAP_EQ_STR(msgs[0].domain, "b.test", "first b.test");
		TAP_EQ_INT(msgs[0].n_rcpt, 2, "to both addresses");
		TAP_EQ_STR(msgs[0].rcptv[1], "r2@x.test", "second address");
		TAP_EQ_STR(msgs[0].report_id, "20241004ab121+b.test@mx.z.test",
		    "report-id: day, nonce, index");
		TAP_EQ_STR(msgs[1].report_id, "20241004ab122+c.test@mx.z.test",
		    "unique per domain");
		buf_append(&msgs[0].msg, "", 1);
		TAP_OK(strstr((char *)msgs[0].msg.p, "To: <r1@b.test>,\r\n "
		    "<r2@x.test>\r\n") != NULL, "To: lists both");
	}
	tlsrpt_msgs_free(&msgs, n);
	TAP_OK(msgs == NULL, "freed");
	tlsrpt_day_fini(&d);

	/* More than TLSRPT_ROWS_MAX counts: the rest is refused. */
	tlsrpt_day_init(&d, 20000);
	for (i = 0; i < TLSRPT_ROWS_MAX; i++)
		if (tlsrpt_day_add(&d, "a.test", &t_rows[1]) < 0)
			break;
	TAP_EQ_INT(i, TLSRPT_ROWS_MAX, "TLSRPT_ROWS_MAX counts taken");
	TAP_EQ_INT(tlsrpt_day_add(&d, "a.test", &t_rows[1]), PR_ENOSPC,
	    "one more refused");
	tlsrpt_day_fini(&d);
}

int
main(void)
{
	t_record();
	t_lookups();
	t_days();
	t_json();
	t_day();
	return tap_done();
}
