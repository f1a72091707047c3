/*
 * fuzz_cfg.c - libFuzzer target for the config parser (common/cfg.c).
 *
 * The input is postroom.conf text, parsed from memory with
 * cfg_load_buf(), the same stream code cfg_load() runs on a file.  The
 * target checks the contract of cfg.h: a result of 0, PR_EINVAL or
 * PR_EIO; an error message that starts with the file name and, when it
 * names a line, a line that exists; and after success values within
 * their documented bounds.  The value parsers (listen lists, sizes,
 * durations) also run on the first line by themselves, and a listen list
 * they accept must read back the same when printed again.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_cfg -dict=tests/fuzz/cfg.dict \
 *	    tests/fuzz/corpus_cfg
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define FUZZ_NAME "fuzz.conf"

static void
fuzz_check_str(const char *s, size_t sz)
{
	FUZZ_CHECK(memchr(s, '\0', sz) != NULL);
}

static void
fuzz_check_listen(const struct cfg_listen_list *l)
{
	struct cfg_listen_list again;
	char text[CFG_LISTEN_MAX * 80], *p = text;
	size_t i;
	long port;
	char *end;

	FUZZ_CHECK(l->n <= CFG_LISTEN_MAX);
	text[0] = '\0';
	for (i = 0; i < l->n; i++) {
		fuzz_check_str(l->a[i].host, sizeof(l->a[i].host));
		fuzz_check_str(l->a[i].port, sizeof(l->a[i].port));
		FUZZ_CHECK(l->a[i].host[0] != '\0');
		port = strtol(l->a[i].port, &end, 10);
		FUZZ_CHECK(*end == '\0' && port >= 1 && port <= 65535);
		p += sprintf(p, strchr(l->a[i].host, ':') != NULL ?
		    "%s[%s]:%s" : "%s%s:%s", i > 0 ? "," : "",
		    l->a[i].host, l->a[i].port);
	}
	/* What the parser made of a list reads back as the same list,
	 * unless a host holds what the list syntax cannot carry. */
	for (i = 0; i < l->n; i++)
		if (strpbrk(l->a[i].host, ",[] \t\r\n\f\v") != NULL)
			return;
	FUZZ_CHECK(cfg_parse_listen(text, &again) == 0);
	FUZZ_CHECK(again.n == l->n);
	for (i = 0; i < l->n; i++) {
		FUZZ_CHECK(strcmp(again.a[i].host, l->a[i].host) == 0);
		FUZZ_CHECK(strcmp(again.a[i].port, l->a[i].port) == 0);
	}
}

/* The config as cfg.h documents it after a successful load. */
static void
fuzz_check_cfg(const struct cfg *c)
{
	fuzz_check_str(c->path, sizeof(c->path));
	fuzz_check_str(c->server.hostname, sizeof(c->server.hostname));
	fuzz_check_str(c->server.data_dir, sizeof(c->server.data_dir));
	FUZZ_CHECK(c->server.data_dir[0] != '\0');
	fuzz_check_str(c->server.user, sizeof(c->server.user));
	fuzz_check_listen(&c->smtp.listen);
	fuzz_check_listen(&c->smtp.submission);
	fuzz_check_listen(&c->smtp.submissions);
	FUZZ_CHECK(c->smtp.max_message_size >= 1024);
	FUZZ_CHECK(c->smtp.max_recipients >= 1 &&
	    c->smtp.max_recipients <= 100000);
	FUZZ_CHECK(c->smtp.max_connections_per_ip <= 1000000);
	FUZZ_CHECK(c->smtp.timeout >= 1 && c->smtp.timeout <= 86400);
	fuzz_check_listen(&c->pop3.listen);
	fuzz_check_listen(&c->pop3.pop3s);
	FUZZ_CHECK(c->pop3.max_connections_per_ip <= 1000000);
	FUZZ_CHECK(c->pop3.timeout >= 1 && c->pop3.timeout <= 86400);
	fuzz_check_str(c->tls.cert, sizeof(c->tls.cert));
	fuzz_check_str(c->tls.key, sizeof(c->tls.key));
	fuzz_check_str(c->tls.ciphers, sizeof(c->tls.ciphers));
	FUZZ_CHECK((c->tls.cert[0] == '\0') == (c->tls.key[0] == '\0'));
	fuzz_check_str(c->relay.smarthost, sizeof(c->relay.smarthost));
	fuzz_check_str(c->relay.smarthost_user,
	    sizeof(c->relay.smarthost_user));
	fuzz_check_str(c->relay.resolver, sizeof(c->relay.resolver));
	FUZZ_CHECK(c->relay.mx_port >= 1 && c->relay.mx_port <= 65535);
}

/* An error names the file and, if it names a line, one of the input. */
static void
fuzz_check_err(const struct pr_err *err, const uint8_t *data, size_t size)
{
	const char *m = err->msg;
	size_t lines = 1, i;
	long line;
	char *end;

	fuzz_check_str(m, sizeof(err->msg));
	FUZZ_CHECK(strncmp(m, FUZZ_NAME ":", strlen(FUZZ_NAME) + 1) == 0);
	m += strlen(FUZZ_NAME) + 1;
	if (*m < '0' || *m > '9')
		return;
	line = strtol(m, &end, 10);
	FUZZ_CHECK(*end == ':');
	for (i = 0; i < size; i++)
		if (data[i] == '\n')
			lines++;
	FUZZ_CHECK(line >= 1 && (size_t)line <= lines);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg c;
	struct cfg_listen_list l;
	struct pr_err err;
	char first[512];
	const uint8_t *nl;
	size_t n;
	uint64_t v;
	int r;

	cfg_defaults(&c);
	pr_err_clear(&err);
	r = cfg_load_buf(&c, FUZZ_NAME, (const char *)data, size, &err);
	FUZZ_CHECK(r == 0 || r == PR_EINVAL || r == PR_EIO);
	if (r == 0)
		fuzz_check_cfg(&c);
	else
		fuzz_check_err(&err, data, size);

	/* The value parsers by themselves, on the first line. */
	nl = memchr(data, '\n', size);
	n = nl != NULL ? (size_t)(nl - data) : size;
	if (n >= sizeof(first))
		n = sizeof(first) - 1;
	memcpy(first, data, n);
	first[n] = '\0';
	if (cfg_parse_listen(first, &l) == 0)
		fuzz_check_listen(&l);
	if (cfg_parse_size(first, &v) == 0)
		FUZZ_CHECK(strpbrk(first, "0123456789") != NULL);
	(void)cfg_parse_duration(first, &v);
	return 0;
}
