/*
 * tlsrpt_tool.c - writes a TLS report (mailauth/tlsrpt_*.c) for
 * test_tlsrpt_json.py: `tlsrpt_tool json` the JSON of a fixed set of
 * counts, `tlsrpt_tool mime` the whole message, on stdout.
 */
#include <stdio.h>
#include <string.h>

#include "tlsrpt.h"

static const struct tlsrpt_row rows[] = {
	{ "no-policy-found", "", "success", "", "", "", "", 5 },
	{ "no-policy-found", "", "certificate-not-trusted", "mx.b.test",
	    "127.0.0.3", "", "self-signed certificate", 2 },
	{ "no-policy-found", "", "starttls-not-supported", "mx2.b.test",
	    "::1", "127.0.0.1", "", 4 },
	{ "sts", "version: STSv1\nmode: testing\nmx: mx.b.test\n"
	    "max_age: 86400", "success", "", "", "", "", 3 },
	{ "sts", "version: STSv1\nmode: testing\nmx: mx.b.test\n"
	    "max_age: 86400", "certificate-host-mismatch", "mx.b.test",
	    "192.0.2.1", "", "name \"x\\y\" \x01 \xc3\xa9 \xff", 1 },
	{ "tlsa", "3 1 1 0123456789abcdef", "success", "mx3.b.test", "", "",
	    "", 6 },
	{ "tlsa", "3 1 1 0123456789abcdef", "dane-required", "mx3.b.test",
	    "192.0.2.3", "", "", 1 },
};

int
main(int argc, char **argv)
{
	const struct tlsrpt_info info = {
		.org = "mail.a.test", .submitter = "mail.a.test",
		.contact = "postmaster@a.test",
		.from = "noreply-tlsrpt@a.test", .domain = "b.test",
		.report_id = "20241004x1+b.test@mail.a.test",
		.unique_id = "20241004x1", .day = 20000,
	};
	const char *to[] = { "reports@b.test" };
	struct buf json, gz, msg;
	size_t n = sizeof(rows) / sizeof(rows[0]);

	buf_init(&json, TLSRPT_JSON_MAX);
	buf_init(&gz, TLSRPT_JSON_MAX);
	buf_init(&msg, TLSRPT_MSG_MAX);
	int r = 0;

	if (argc != 2 || tlsrpt_json(&info, rows, n, &json) < 0)
		r = 2;
	else if (strcmp(argv[1], "json") == 0)
		fwrite(json.p, 1, json.len, stdout);
	else if (tlsrpt_gzip(json.p, json.len, &gz) < 0 ||
	    tlsrpt_mime(&info, to, 1, gz.p, gz.len, 1728090000, &msg) < 0)
		r = 1;
	else
		fwrite(msg.p, 1, msg.len, stdout);
	buf_fini(&json);
	buf_fini(&gz);
	buf_fini(&msg);
	return r;
}
