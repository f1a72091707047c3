/* test_cfg.c - config loading: defaults, every key, errors with file:line. */
#include <string.h>

#include "cfg.h"
#include "maildrop.h"
#include "err.h"
#include "log.h"
#include "tap.h"

static int
load(const char *path, struct cfg *c, struct pr_err *err)
{
	cfg_defaults(c);
	pr_err_clear(err);
	return cfg_load(c, path, err);
}

/* Loads text (NUL-terminated) with cfg_load_buf over the defaults. */
static int
load_buf(const char *text, size_t len, struct cfg *c, struct pr_err *err)
{
	cfg_defaults(c);
	pr_err_clear(err);
	return cfg_load_buf(c, "mem.conf", text, len, err);
}

/*
 * cfg_load_buf() parses text like cfg_load() a file.  Lines longer than
 * inih's buffer (INI_MAX_LINE, 200 with the NUL) were cut, the cut part
 * silently kept as the value and the rest read as the next line, with
 * the line numbers off from there (found by fuzz_cfg); they are an error
 * now, at their own line.  Checked at the longest line that fits and at
 * one more.
 */
static void
test_load_buf(void)
{
	static const char good[] = "[server]\nhostname = mem.example\n"
	    "[smtp]\nmax_recipients = 7";
	char text[1024];
	struct cfg c;
	struct pr_err err;
	size_t pre = strlen("[server]\nhostname = ");

	TAP_EQ_INT(load_buf(good, strlen(good), &c, &err), 0,
	    "text loads: %s", err.msg);
	TAP_EQ_STR(c.server.hostname, "mem.example", "hostname from text");
	TAP_EQ_INT(c.smtp.max_recipients, 7, "last line without newline");
	TAP_EQ_STR(c.path, "mem.conf", "path is the name given");
	TAP_EQ_INT(load_buf("", 0, &c, &err), 0, "empty text loads");
	TAP_EQ_INT(load_buf("[smtp]\nfoo = 1\n", 15, &c, &err), PR_EINVAL,
	    "unknown key in text");
	TAP_EQ_STR(err.msg, "mem.conf:2: unknown key 'foo' in [smtp]",
	    "error names the text's name and line");

	/* hostname = 188 octets: a line of 199, the most inih takes. */
	snprintf(text, sizeof(text), "[server]\nhostname = %.*s\nuser = x\n",
	    199 - (int)strlen("hostname = "), "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
	    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
	    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
	    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh");
	TAP_EQ_INT(strchr(text + pre, '\n') - text - 9, 199,
	    "the line is 199 octets");
	TAP_EQ_INT(load_buf(text, strlen(text), &c, &err), 0,
	    "a 199-octet line loads: %s", err.msg);
	TAP_EQ_INT(strlen(c.server.hostname), 188, "whole value kept");
	TAP_EQ_STR(c.server.user, "x", "next line read as itself");
	/* One more octet, and the tail looks like a setting. */
	snprintf(text, sizeof(text), "[server]\nhostname = %.*suser = evil\n"
	    "data_dir = /tmp/x\n", 189 - (int)strlen("user = evil"),
	    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
	    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
	    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh");
	TAP_EQ_INT(strchr(text + pre, '\n') - text - 9, 200,
	    "the line is 200 octets");
	TAP_EQ_INT(load_buf(text, strlen(text), &c, &err), PR_EINVAL,
	    "a 200-octet line is refused");
	TAP_EQ_STR(err.msg, "mem.conf:2: line longer than 199 octets",
	    "long line error at its own line");
	TAP_EQ_STR(c.server.user, "postroom", "its tail is not a setting");
	TAP_EQ_INT(load_buf("[smtp]\nmax_recipients = 1\0x\n", 28, &c, &err),
	    PR_EINVAL, "a NUL octet is refused");
	TAP_EQ_STR(err.msg, "mem.conf:2: NUL octet in line",
	    "NUL error names its line");
}

/* [server] maildrop: an absolute path or empty (data_dir/maildrop). */
static void
test_maildrop(void)
{
	static const char abs[] = "[server]\nmaildrop = /var/spool/x\n";
	static const char rel[] = "[server]\nmaildrop = spool/x\n";
	static const char dd[] = "[server]\ndata_dir = /d\n";
	struct pr_err err;
	struct cfg c;
	char dir[1024];

	TAP_EQ_INT(load_buf(abs, sizeof(abs) - 1, &c, &err), 0,
	    "maildrop: an absolute path");
	maildrop_dir(&c, dir, sizeof(dir));
	TAP_EQ_STR(dir, "/var/spool/x", "maildrop: the path given");
	TAP_EQ_INT(load_buf(rel, sizeof(rel) - 1, &c, &err), PR_EINVAL,
	    "maildrop: a relative path is refused");
	TAP_OK(strstr(err.msg, "mem.conf:2") != NULL,
	    "maildrop: the error names file:line (%s)", err.msg);
	TAP_EQ_INT(load_buf(dd, sizeof(dd) - 1, &c, &err), 0,
	    "maildrop: unset");
	TAP_EQ_STR(c.server.maildrop, "", "maildrop: empty by default");
	maildrop_dir(&c, dir, sizeof(dir));
	TAP_EQ_STR(dir, "/d/maildrop", "maildrop: default data_dir/maildrop");
}

/* [server] trace_days and [metrics]: defaults, values at and past their
 * bounds, the loopback rule and metrics_public. */
static void
test_metrics(void)
{
	static const char *const good[] = {
		"[metrics]\nlisten = 127.0.0.1:9187\n",
		"[metrics]\nlisten = 127.8.9.10:9187\n",
		"[metrics]\nlisten = [::1]:9187\n",
		"[metrics]\nlisten = localhost:9187\n",
		"[metrics]\nlisten = 192.0.2.1:9187\nmetrics_public = true\n",
		"[metrics]\nlisten =\n",
		"[server]\ntrace_days = 3650\n",
		"[server]\ntrace_days = 0\n",
	};
	static const char *const bad[] = {
		"[metrics]\nlisten = 0.0.0.0:9187\n",
		"[metrics]\nlisten = [::]:9187\n",
		"[metrics]\nlisten = 192.0.2.1:9187\n",
		"[metrics]\nlisten = 192.0.2.1:9187\nmetrics_public = false\n",
		"[metrics]\nlisten = 127.0.0.1:1,127.0.0.1:2\n",
		"[metrics]\nlisten = 127.0.0.1:65535\n",
		"[metrics]\nmetrics_public = maybe\n",
		"[metrics]\nport = 9187\n",
		"[server]\ntrace_days = 3651\n",
		"[server]\ntrace_days = -1\n",
		"[server]\ntrace_days = week\n",
	};
	struct cfg c;
	struct pr_err err;
	size_t i;

	cfg_defaults(&c);
	TAP_EQ_INT(c.server.trace_days, 30, "default trace_days 30");
	TAP_EQ_INT(c.metrics.listen.n, 0, "default: no metrics endpoint");
	TAP_OK(!c.metrics.metrics_public, "default: metrics_public false");
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		TAP_EQ_INT(load_buf(good[i], strlen(good[i]), &c, &err), 0,
		    "accepted: %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(load_buf(bad[i], strlen(bad[i]), &c, &err),
		    PR_EINVAL, "refused: %s", bad[i]);
	load_buf(bad[0], strlen(bad[0]), &c, &err);
	TAP_OK(strstr(err.msg, "not a loopback address") != NULL &&
	    strstr(err.msg, "metrics_public") != NULL,
	    "the error says why and what allows it: %s", err.msg);
	TAP_OK(cfg_host_loopback("127.0.0.1") && cfg_host_loopback("::1") &&
	    !cfg_host_loopback("::ffff:127.0.0.1") &&
	    !cfg_host_loopback("128.0.0.1") && !cfg_host_loopback("::"),
	    "cfg_host_loopback: 127/8 and ::1 only");
}

/* [dns] and [inbound]: defaults, every key, bad values, and [relay]
 * resolver as an alias of [dns] resolver. */
static void
test_inbound(void)
{
	static const char all[] = "[dns]\nresolver = 127.0.0.1:5353\n"
	    "timeout = 1s\n[inbound]\nspf = true\ndkim = false\n"
	    "dmarc = false\ndmarc_policy = report\ndnsbl = bl.example\n"
	    "greylist = true\ngreylist_delay = 2s\n";
	static const char *const bad[] = {
		"[dns]\ntimeout = 0\n",
		"[dns]\ntimeout = soon\n",
		"[inbound]\nspf = maybe\n",
		"[inbound]\ndmarc_policy = reject\n",
		"[inbound]\ngreylist_delay = x\n",
		"[inbound]\nspam = true\n",
	};
	static const char alias[] = "[relay]\nresolver = 10.0.0.1\n";
	struct cfg c;
	struct pr_err err;
	size_t i;

	cfg_defaults(&c);
	TAP_OK(c.inbound.spf && c.inbound.dkim && c.inbound.dmarc &&
	    !c.inbound.greylist, "default: spf, dkim, dmarc on; greylist off");
	TAP_EQ_INT(c.inbound.dmarc_policy, CFG_DMARC_ENFORCE,
	    "default dmarc_policy enforce");
	TAP_EQ_INT(c.inbound.greylist_delay, 300, "default greylist_delay 5m");
	TAP_EQ_INT(c.dns.timeout, 5, "default [dns] timeout 5s");
	TAP_EQ_STR(c.dns.resolver, "", "default resolver: the system's");

	TAP_EQ_INT(load_buf(all, strlen(all), &c, &err), 0,
	    "[dns] and [inbound] load: %s", err.msg);
	TAP_EQ_STR(c.dns.resolver, "127.0.0.1:5353", "[dns] resolver");
	TAP_EQ_STR(c.relay.resolver, "127.0.0.1:5353",
	    "[dns] resolver serves the relay too");
	TAP_EQ_INT(c.dns.timeout, 1, "[dns] timeout");
	TAP_OK(c.inbound.spf && !c.inbound.dkim && !c.inbound.dmarc &&
	    c.inbound.greylist, "booleans");
	TAP_EQ_INT(c.inbound.dmarc_policy, CFG_DMARC_REPORT, "dmarc_policy");
	TAP_EQ_STR(c.inbound.dnsbl, "bl.example", "dnsbl");
	TAP_EQ_INT(c.inbound.greylist_delay, 2, "greylist_delay");

	TAP_EQ_INT(load_buf(alias, strlen(alias), &c, &err), 0,
	    "[relay] resolver loads");
	TAP_EQ_STR(c.dns.resolver, "10.0.0.1",
	    "[relay] resolver is an alias of [dns] resolver");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(load_buf(bad[i], strlen(bad[i]), &c, &err),
		    PR_EINVAL, "bad [dns]/[inbound] value %zu refused", i);
}

/* [milter]: defaults, both lists, the entry forms, bad values. */
static void
test_milter(void)
{
	static const char all[] = "[milter]\nservers = inet:127.0.0.1:11332,"
	    " unix:/run/clamav/clamav-milter.ctl ,inet:[::1]:8891\n"
	    "submission_servers = unix:/run/c.sock\ntimeout = 5s\n"
	    "on_failure = accept\n";
	static const char *const bad[] = {
		"[milter]\nservers = tcp:127.0.0.1:1\n",
		"[milter]\nservers = inet:127.0.0.1\n",
		"[milter]\nservers = inet:127.0.0.1:0\n",
		"[milter]\nservers = inet:127.0.0.1:70000\n",
		"[milter]\nservers = unix:relative.sock\n",
		"[milter]\nservers = inet:[::1:25\n",
		"[milter]\nservers = a,b,c,d,e,f,g,h,i\n",
		"[milter]\ntimeout = 0\n",
		"[milter]\non_failure = reject\n",
		"[milter]\nsubmission = yes\n",
	};
	struct cfg c;
	struct pr_err err;
	size_t i;

	cfg_defaults(&c);
	TAP_OK(c.milter.servers.n == 0 && c.milter.submission_servers.n == 0,
	    "[milter] default: no filter");
	TAP_EQ_INT(c.milter.timeout, 30, "[milter] default timeout 30s");
	TAP_EQ_INT(c.milter.on_failure, CFG_MILTER_TEMPFAIL,
	    "[milter] default on_failure tempfail");
	TAP_EQ_INT(load_buf(all, strlen(all), &c, &err), 0, "[milter] loads: "
	    "%s", err.msg);
	TAP_EQ_INT(c.milter.servers.n, 3, "three servers");
	TAP_OK(c.milter.servers.a[0].kind == CFG_MILTER_INET &&
	    strcmp(c.milter.servers.a[0].host, "127.0.0.1") == 0 &&
	    strcmp(c.milter.servers.a[0].port, "11332") == 0, "inet entry");
	TAP_OK(c.milter.servers.a[1].kind == CFG_MILTER_UNIX &&
	    strcmp(c.milter.servers.a[1].path,
	    "/run/clamav/clamav-milter.ctl") == 0, "unix entry, trimmed");
	TAP_EQ_STR(c.milter.servers.a[2].host, "::1", "inet IPv6 entry");
	TAP_EQ_STR(c.milter.servers.a[1].spec,
	    "unix:/run/clamav/clamav-milter.ctl", "spec for logs");
	TAP_EQ_INT(c.milter.submission_servers.n, 1, "submission_servers");
	TAP_EQ_INT(c.milter.timeout, 5, "timeout");
	TAP_EQ_INT(c.milter.on_failure, CFG_MILTER_ACCEPT, "on_failure");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(load_buf(bad[i], strlen(bad[i]), &c, &err),
		    PR_EINVAL, "bad [milter] value %zu refused", i);
}

/* A key set twice is refused at its second line, naming the first; so is
 * an indented line, which inih reads as more of the value before; the same
 * name in two sections is two keys. */
/* [relay] connections_per_domain and [smtp] etrn_networks. */
static void
test_sched(void)
{
	static const char good[] = "[relay]\nconnections_per_domain = 3\n"
	    "[smtp]\netrn_networks = 192.0.2.0/24, ::1\n";
	static const char *const bad[] = {
		"[relay]\nconnections_per_domain = 0\n",
		"[relay]\nconnections_per_domain = 1001\n",
		"[smtp]\netrn_networks = 192.0.2.0/40\n",
		"[smtp]\netrn_networks = mail.example.net\n",
	};
	struct cfg c;
	struct pr_err err;
	size_t i;

	cfg_defaults(&c);
	TAP_EQ_INT(c.relay.connections_per_domain, 10,
	    "default connections_per_domain 10");
	TAP_EQ_INT(c.smtp.etrn_networks.n, 0, "default etrn_networks: none");
	TAP_EQ_INT(load_buf(good, strlen(good), &c, &err), 0,
	    "connections_per_domain and etrn_networks load: %s", err.msg);
	TAP_EQ_INT(c.relay.connections_per_domain, 3, "connections_per_domain");
	TAP_OK(c.smtp.etrn_networks.n == 2 &&
	    netlist_match(&c.smtp.etrn_networks, "192.0.2.9") &&
	    netlist_match(&c.smtp.etrn_networks, "::1"), "etrn_networks");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(load_buf(bad[i], strlen(bad[i]), &c, &err),
		    PR_EINVAL, "bad value refused: %s", bad[i]);
}

/* [relay] mta_sts and tls_memory (docs/OUTBOUND_TLS.md). */
static void
test_outbound_tls(void)
{
	static const char good[] = "[relay]\nmta_sts = no\n"
	    "tls_memory = enforce\nca_file = /etc/ssl/test-ca.pem\n";
	static const char *const bad[] = {
		"[relay]\nmta_sts = maybe\n",
		"[relay]\ntls_memory = strict\n",
		"[relay]\ntls_memory = \n",
	};
	struct cfg c;
	struct pr_err err;
	size_t i;

	cfg_defaults(&c);
	TAP_OK(c.relay.mta_sts, "default mta_sts yes");
	TAP_EQ_INT(c.relay.tls_memory, CFG_TLS_MEMORY_WARN,
	    "default tls_memory warn");
	TAP_EQ_INT(load_buf(good, strlen(good), &c, &err), 0,
	    "mta_sts, tls_memory load: %s", err.msg);
	TAP_OK(!c.relay.mta_sts, "mta_sts no");
	TAP_EQ_INT(c.relay.tls_memory, CFG_TLS_MEMORY_ENFORCE,
	    "tls_memory enforce");
	TAP_EQ_STR(c.relay.ca_file, "/etc/ssl/test-ca.pem", "ca_file");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(load_buf(bad[i], strlen(bad[i]), &c, &err),
		    PR_EINVAL, "bad value refused: %s", bad[i]);
}

static void
test_duplicate_and_caps(void)
{
	static const char dup[] = "[smtp]\nmax_recipients = 5\n\n"
	    "[pop3]\nlisten = 127.0.0.1:1100\n[smtp]\nmax_recipients = 7\n";
	static const char two[] = "[smtp]\nlisten = 127.0.0.1:2525\n"
	    "[pop3]\nlisten = 127.0.0.1:1100\n";
	static const char cont[] = "[server]\nhostname = a\n  continued\n";
	static const char big[] = "[smtp]\nmax_message_size = 901M\n";
	static const char cap[] = "[smtp]\nmax_message_size = 900M\n";
	struct cfg c;
	struct pr_err err;

	TAP_EQ_INT(load_buf(dup, sizeof(dup) - 1, &c, &err), PR_EINVAL,
	    "a key set twice is an error");
	TAP_EQ_STR(err.msg, "mem.conf:7: duplicate key 'max_recipients' in "
	    "[smtp] (first set on line 2)", "duplicate key message");
	TAP_EQ_INT(load_buf(cont, sizeof(cont) - 1, &c, &err), PR_EINVAL,
	    "an indented line is refused");
	TAP_EQ_STR(err.msg, "mem.conf:3: indented line continues 'hostname' "
	    "in [server] (line 2); a value is one line",
	    "an indented line is named so, not a duplicate key");
	TAP_EQ_INT(load_buf(two, sizeof(two) - 1, &c, &err), 0,
	    "one name in two sections (%s)", err.msg);
	TAP_EQ_INT(load_buf(big, sizeof(big) - 1, &c, &err), PR_EINVAL,
	    "max_message_size above what the store takes");
	TAP_EQ_INT(load_buf(cap, sizeof(cap) - 1, &c, &err), 0,
	    "max_message_size at the cap");
	TAP_EQ_INT(c.smtp.max_message_size, CFG_MESSAGE_SIZE_MAX,
	    "the cap is 900 MiB");
}

int
main(void)
{
	struct cfg c;
	struct pr_err err;
	struct cfg_listen_list l;
	uint64_t v;

	test_sched();
	test_outbound_tls();
	cfg_defaults(&c);
	TAP_EQ_INT(c.smtp.max_message_size, 25 * 1024 * 1024,
	    "default max_message_size 25 MiB");
	TAP_EQ_INT(c.smtp.max_recipients, 100, "default max_recipients");
	TAP_EQ_INT(c.smtp.max_connections_per_ip, 50,
	    "default max_connections_per_ip");
	TAP_EQ_INT(c.smtp.max_connections, 1000, "default [smtp] "
	    "max_connections");
	TAP_EQ_INT(c.pop3.max_connections, 1000, "default [pop3] "
	    "max_connections");
	TAP_OK(c.smtp.min_data_rate == 1024 && c.smtp.min_data_grace == 30,
	    "default min_data_rate 1 KiB/s after 30 s");
	TAP_OK(!c.smtp.allow_plaintext_auth, "no plaintext auth by default");
	TAP_EQ_INT(c.relay.mx_port, 25, "default mx_port");
	TAP_EQ_INT(c.relay.max_queue_time, 5 * 86400, "default queue time");
	TAP_EQ_INT(c.relay.delay_warning, 4 * 3600, "default delay warning");
	TAP_OK(c.relay.dane, "DANE on by default");
	TAP_EQ_INT(c.relay.smarthost_tls, CFG_SMARTHOST_STARTTLS,
	    "default smarthost_tls starttls");
	TAP_EQ_STR(c.relay.smarthost_ca, "", "default smarthost_ca: none");
	TAP_EQ_STR(c.relay.ca_file, "", "default ca_file: system store");
	TAP_EQ_STR(c.server.data_dir, "/var/lib/postroom", "default data_dir");
	TAP_EQ_STR(c.smtp.listen.a[0].port, "25", "default smtp port");
	TAP_EQ_INT(c.smtp.hard_error_limit, 20, "default hard_error_limit");
	TAP_EQ_STR(c.server.postmaster, "", "no postmaster by default");
	TAP_EQ_STR(c.server.default_domain, "", "no default_domain by "
	    "default");

	TAP_EQ_INT(load("cfg/good.conf", &c, &err), 0, "good.conf loads: %s",
	    err.msg);
	TAP_EQ_STR(c.server.hostname, "mx.example.org", "hostname");
	TAP_EQ_STR(c.server.user, "", "empty user");
	TAP_EQ_INT(c.server.log_level, LOG_LVL_DEBUG, "log_level");
	TAP_EQ_INT(c.smtp.listen.n, 2, "two smtp listeners");
	TAP_EQ_STR(c.smtp.listen.a[1].host, "::1", "IPv6 host unbracketed");
	TAP_EQ_STR(c.smtp.listen.a[1].port, "2525", "IPv6 port");
	TAP_EQ_INT(c.smtp.submissions.n, 0, "empty value disables listener");
	TAP_EQ_INT(c.smtp.max_message_size, 10 * 1024 * 1024, "10M");
	TAP_EQ_INT(c.smtp.max_recipients, 50, "max_recipients");
	TAP_EQ_INT(c.smtp.max_connections_per_ip, 0, "0 = no limit");
	TAP_OK(c.smtp.allow_plaintext_auth, "yes is true");
	TAP_EQ_INT(c.smtp.timeout, 120, "2m timeout");
	TAP_EQ_INT(c.smtp.hard_error_limit, 8, "hard_error_limit");
	TAP_EQ_STR(c.server.postmaster, "hostmaster@example.org", "postmaster");
	TAP_EQ_STR(c.server.default_domain, "example.org",
	    "default_domain, in lower case");
	TAP_EQ_INT(c.smtp.max_connections, 200, "[smtp] max_connections");
	TAP_EQ_INT(c.pop3.max_connections, 0, "[pop3] max_connections 0 = "
	    "no limit");
	TAP_OK(c.smtp.min_data_rate == 100 && c.smtp.min_data_grace == 5,
	    "min_data_rate RATE/GRACE");
	TAP_EQ_INT(c.pop3.pop3s.n, 1, "pop3s");
	TAP_EQ_STR(c.tls.key, "/etc/ssl/private/ssl-cert-snakeoil.key", "key");
	TAP_EQ_STR(c.relay.smarthost, "smtp.example.net:587", "smarthost");
	TAP_EQ_INT(c.relay.mx_port, 2526, "mx_port");
	TAP_EQ_INT(c.relay.max_queue_time, 3 * 86400, "3d");
	TAP_EQ_INT(c.relay.delay_warning, 90 * 60, "delay_warning 90m");
	TAP_OK(!c.relay.dane, "dane = no");
	TAP_EQ_INT(c.relay.smarthost_tls, CFG_SMARTHOST_IMPLICIT,
	    "smarthost_tls implicit");
	TAP_EQ_STR(c.relay.smarthost_ca, "/etc/postroom/provider-ca.pem",
	    "smarthost_ca");
	TAP_EQ_STR(c.relay.ca_file, "/etc/ssl/certs/ca-certificates.crt",
	    "ca_file");

	{
		uint64_t rate;
		unsigned grace;

		TAP_OK(cfg_parse_rate("1K", 30, &rate, &grace) == 0 &&
		    rate == 1024 && grace == 30, "rate without grace");
		TAP_OK(cfg_parse_rate("0", 30, &rate, &grace) == 0 &&
		    rate == 0, "rate 0: off");
		TAP_OK(cfg_parse_rate("2K/1m", 30, &rate, &grace) == 0 &&
		    rate == 2048 && grace == 60, "rate with a grace of 1m");
		TAP_EQ_INT(cfg_parse_rate("1K/", 30, &rate, &grace),
		    PR_EINVAL, "rate with an empty grace refused");
		TAP_EQ_INT(cfg_parse_rate("fast", 30, &rate, &grace),
		    PR_EINVAL, "rate that is no size refused");
	}

	TAP_EQ_INT(load("cfg/typo.conf", &c, &err), PR_EINVAL, "typo refused");
	TAP_EQ_STR(err.msg,
	    "cfg/typo.conf:6: unknown key 'max_recipient' in [smtp]",
	    "typo message names file:line and key");
	TAP_EQ_INT(load("cfg/badvalue.conf", &c, &err), PR_EINVAL,
	    "bad value refused");
	TAP_OK(strstr(err.msg, "cfg/badvalue.conf:2:") != NULL &&
	    strstr(err.msg, "max_message_size") != NULL,
	    "bad value message: %s", err.msg);
	TAP_EQ_INT(load("cfg/baddefaultdomain.conf", &c, &err), PR_EINVAL,
	    "a default_domain that is no domain name refused");
	TAP_OK(strstr(err.msg, "cfg/baddefaultdomain.conf:2:") != NULL &&
	    strstr(err.msg, "default_domain") != NULL,
	    "default_domain message: %s", err.msg);
	TAP_EQ_INT(load("cfg/badsmarthosttls.conf", &c, &err), PR_EINVAL,
	    "smarthost_tls other than starttls|implicit refused");
	TAP_OK(strstr(err.msg, "cfg/badsmarthosttls.conf:3:") != NULL &&
	    strstr(err.msg, "smarthost_tls") != NULL,
	    "smarthost_tls message: %s", err.msg);
	TAP_EQ_INT(load("cfg/badsection.conf", &c, &err), PR_EINVAL,
	    "unknown section refused");
	TAP_OK(strstr(err.msg, "unknown section [smpt]") != NULL,
	    "unknown section message: %s", err.msg);
	TAP_EQ_INT(load("cfg/nosection.conf", &c, &err), PR_EINVAL,
	    "key outside a section refused");
	TAP_EQ_INT(load("cfg/badlisten.conf", &c, &err), PR_EINVAL,
	    "unbracketed IPv6 listen refused");
	TAP_EQ_INT(load("cfg/halftls.conf", &c, &err), PR_EINVAL,
	    "cert without key refused");
	TAP_EQ_INT(load("cfg/syntax.conf", &c, &err), PR_EINVAL,
	    "syntax error refused");
	TAP_OK(strstr(err.msg, ":2:") != NULL, "syntax error line: %s",
	    err.msg);
	TAP_EQ_INT(load("cfg/missing.conf", &c, &err), PR_EIO,
	    "missing file");

	test_load_buf();
	test_maildrop();
	test_inbound();
	test_milter();
	test_metrics();

	TAP_EQ_INT(cfg_parse_listen("", &l), 0, "empty listen");
	TAP_EQ_INT(l.n, 0, "empty listen has no entries");
	TAP_EQ_INT(cfg_parse_listen("a:0", &l), PR_EINVAL, "port 0");
	TAP_EQ_INT(cfg_parse_listen("a:65536", &l), PR_EINVAL, "port 65536");
	TAP_EQ_INT(cfg_parse_listen("a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9", &l),
	    PR_EINVAL, "too many listeners");
	TAP_EQ_INT(cfg_parse_size("512K", &v), 0, "512K");
	TAP_EQ_INT(v, 512 * 1024, "512K value");
	TAP_EQ_INT(cfg_parse_size("1GiB", &v), 0, "1GiB");
	TAP_EQ_INT(cfg_parse_size("-1", &v), PR_EINVAL, "negative size");
	TAP_EQ_INT(cfg_parse_size("99999999999999999999", &v), PR_EINVAL,
	    "overflowing size");
	TAP_EQ_INT(cfg_parse_size("5X", &v), PR_EINVAL, "bad unit");
	TAP_EQ_INT(cfg_parse_duration("12h", &v), 0, "12h");
	TAP_EQ_INT(v, 43200, "12h value");
	test_duplicate_and_caps();
	return tap_done();
}
