/* cfg.c - postroom.conf: defaults, inih parsing, value checks. */
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"

/* [smtp] min_data_rate applies after this many seconds of a transaction,
 * unless the value names its own grace period. */
#define CFG_MIN_DATA_GRACE 30

void
cfg_defaults(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	if (gethostname(c->server.hostname, sizeof(c->server.hostname) - 1) != 0)
		strcpy(c->server.hostname, "localhost");
	strcpy(c->server.data_dir, "/var/lib/postroom");
	strcpy(c->server.user, "postroom");
	c->server.log_level = LOG_LVL_INFO;
	c->server.trace_days = 30;

	cfg_parse_listen("0.0.0.0:25,[::]:25", &c->smtp.listen);
	cfg_parse_listen("0.0.0.0:587,[::]:587", &c->smtp.submission);
	cfg_parse_listen("0.0.0.0:465,[::]:465", &c->smtp.submissions);
	c->smtp.max_message_size = 25u * 1024 * 1024;
	c->smtp.max_recipients = 100; /* RFC 5321 4.5.3.1.8 minimum */
	c->smtp.max_connections_per_ip = 50;
	c->smtp.max_connections = 1000;
	c->smtp.min_data_rate = 1024;
	c->smtp.min_data_grace = CFG_MIN_DATA_GRACE;
	c->smtp.allow_plaintext_auth = false;
	c->smtp.hard_error_limit = 20; /* Postfix's smtpd_hard_error_limit */
	c->smtp.timeout = 300; /* RFC 5321 4.5.3.2.7: at least 5 minutes */

	cfg_parse_listen("0.0.0.0:110,[::]:110", &c->pop3.listen);
	cfg_parse_listen("0.0.0.0:995,[::]:995", &c->pop3.pop3s);
	c->pop3.allow_plaintext_auth = false;
	c->pop3.max_connections_per_ip = 50;
	c->pop3.max_connections = 1000;
	c->pop3.timeout = 600; /* RFC 1939 3: at least 10 minutes */

	c->relay.enabled = true;
	c->relay.mx_port = 25;
	c->relay.max_queue_time = 5 * 24 * 3600;
	c->relay.delay_warning = 4 * 3600;
	c->relay.connections_per_domain = 10;
	c->relay.dane = true;
	c->relay.mta_sts = true;
	c->relay.tls_memory = CFG_TLS_MEMORY_WARN;

	c->dns.timeout = 5;
	c->inbound.spf = true;
	c->inbound.dkim = true;
	c->inbound.dmarc = true;
	c->inbound.dmarc_policy = CFG_DMARC_ENFORCE;
	c->inbound.greylist = false;
	c->inbound.greylist_delay = 5 * 60;
	/* Postfix's milter_command_timeout is 30 s too; rspamd answers a
	 * scan within its own 8 s task timeout. */
	c->milter.timeout = 30;
	c->milter.on_failure = CFG_MILTER_TEMPFAIL;
}

const char *
cfg_path(const char *explicit_path)
{
	const char *env;

	if (explicit_path != NULL)
		return explicit_path;
	env = getenv("POSTROOM_CONFIG");
	if (env != NULL && *env != '\0')
		return env;
	return CFG_DEFAULT_PATH;
}

static const char *
cfg_trim(const char *s, size_t *len)
{
	size_t n = *len;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	*len = n;
	return s;
}

/* One "host:port" or "[v6]:port" item. */
static int
cfg_parse_listen_one(const char *s, size_t len, struct cfg_listen *l)
{
	const char *host, *port, *end = s + len;
	size_t hlen, plen;
	char *pe;
	long pv;
	char pbuf[8];

	if (len > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL || rb + 1 >= end || rb[1] != ':')
			return PR_EINVAL;
		host = s + 1;
		hlen = (size_t)(rb - host);
		port = rb + 2;
	} else {
		const char *colon = NULL, *p;

		for (p = s; p < end; p++)
			if (*p == ':')
				colon = p;
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)))
			return PR_EINVAL; /* bare IPv6 needs brackets */
		host = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	plen = (size_t)(end - port);
	if (hlen == 0 || hlen >= sizeof(l->host) || plen == 0 ||
	    plen >= sizeof(pbuf))
		return PR_EINVAL;
	memcpy(pbuf, port, plen);
	pbuf[plen] = '\0';
	errno = 0;
	pv = strtol(pbuf, &pe, 10);
	if (errno != 0 || *pe != '\0' || pv < 1 || pv > 65535)
		return PR_EINVAL;
	memcpy(l->host, host, hlen);
	l->host[hlen] = '\0';
	snprintf(l->port, sizeof(l->port), "%ld", pv);
	return 0;
}

int
cfg_parse_listen(const char *s, struct cfg_listen_list *l)
{
	struct cfg_listen_list tmp;
	const char *p = s;

	memset(&tmp, 0, sizeof(tmp));
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *item = cfg_trim(p, &len);

		if (len > 0) {
			if (tmp.n == CFG_LISTEN_MAX ||
			    cfg_parse_listen_one(item, len, &tmp.a[tmp.n]) < 0)
				return PR_EINVAL;
			tmp.n++;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*l = tmp;
	return 0;
}

static int
cfg_parse_number(const char *s, uint64_t *v_r, char **end_r)
{
	char *end;
	unsigned long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return PR_EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return PR_EINVAL;
	*v_r = v;
	*end_r = end;
	return 0;
}

static int
cfg_apply_unit(uint64_t v, uint64_t mult, const char *rest, uint64_t *v_r)
{
	while (isspace((unsigned char)*rest))
		rest++;
	if (*rest != '\0')
		return PR_EINVAL;
	if (mult != 0 && v > UINT64_MAX / mult)
		return PR_EINVAL;
	*v_r = v * mult;
	return 0;
}

int
cfg_parse_size(const char *s, uint64_t *v_r)
{
	uint64_t v, mult = 1;
	char *end;

	if (cfg_parse_number(s, &v, &end) < 0)
		return PR_EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = 1024; end++; break;
	case 'm': case 'M': mult = 1024 * 1024; end++; break;
	case 'g': case 'G': mult = 1024 * 1024 * 1024; end++; break;
	}
	if (mult != 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (mult != 1 && (*end == 'b' || *end == 'B'))
		end++;
	return cfg_apply_unit(v, mult, end, v_r);
}

int
cfg_parse_duration(const char *s, uint64_t *secs_r)
{
	uint64_t v, mult = 1;
	char *end;

	if (cfg_parse_number(s, &v, &end) < 0)
		return PR_EINVAL;
	switch (*end) {
	case 's': mult = 1; end++; break;
	case 'm': mult = 60; end++; break;
	case 'h': mult = 3600; end++; break;
	case 'd': mult = 86400; end++; break;
	case 'w': mult = 7 * 86400; end++; break;
	}
	return cfg_apply_unit(v, mult, end, secs_r);
}

static int
cfg_parse_bool(const char *s, bool *b)
{
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
	    strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0)
		*b = true;
	else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
	    strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0)
		*b = false;
	else
		return PR_EINVAL;
	return 0;
}

int
cfg_parse_rate(const char *s, unsigned default_grace, uint64_t *rate_r,
    unsigned *grace_r)
{
	const char *slash = strchr(s, '/');
	char rate[64];
	uint64_t g = default_grace;
	int r;

	if (slash == NULL)
		r = cfg_parse_size(s, rate_r);
	else if ((size_t)(slash - s) >= sizeof(rate))
		return PR_EINVAL;
	else {
		snprintf(rate, sizeof(rate), "%.*s", (int)(slash - s), s);
		if ((r = cfg_parse_size(rate, rate_r)) == 0)
			r = cfg_parse_duration(slash + 1, &g);
	}
	if (r < 0 || g > 86400)
		return PR_EINVAL;
	*grace_r = (unsigned)g;
	return 0;
}

static int
cfg_parse_uint(const char *s, unsigned max, unsigned *v_r)
{
	uint64_t v;
	char *end;

	if (cfg_parse_number(s, &v, &end) < 0 ||
	    cfg_apply_unit(v, 1, end, &v) < 0 || v > max)
		return PR_EINVAL;
	*v_r = (unsigned)v;
	return 0;
}

static int
cfg_copy(char *dst, size_t dstsz, const char *s)
{
	size_t n = strlen(s);

	if (n >= dstsz)
		return PR_EINVAL;
	memcpy(dst, s, n + 1);
	return 0;
}

#define CFG_STR(field) cfg_copy((field), sizeof(field), value)

/* A key set once already, to refuse a second setting. */
struct cfg_seen {
	char section[16];
	char name[40];
	int line;
};

#define CFG_SEEN_MAX 256 /* more than all the keys of every section */

struct cfg_ctx {
	struct cfg *c;
	char err[200]; /* first error, without the file:line prefix */
	int err_line;
	int line;      /* counted by the handler (inih passes no line) */
	bool indented; /* the line starts with a blank: inih continues the
	                * value before it (multi-line entries) */
	struct cfg_seen seen[CFG_SEEN_MAX];
	size_t n_seen;
};

enum cfg_result { CFG_SET, CFG_BAD_VALUE, CFG_UNKNOWN_KEY };

static enum cfg_result
cfg_set_server(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "hostname") == 0)
		r = CFG_STR(c->server.hostname);
	else if (strcmp(name, "data_dir") == 0)
		r = *value == '\0' ? PR_EINVAL : CFG_STR(c->server.data_dir);
	else if (strcmp(name, "user") == 0)
		r = CFG_STR(c->server.user);
	else if (strcmp(name, "postmaster") == 0)
		/* An address or nothing: whether it exists is the store's to
		 * say (postroom check). */
		r = *value != '\0' && (strchr(value, '@') == NULL ||
		    strchr(value, ' ') != NULL) ? PR_EINVAL :
		    CFG_STR(c->server.postmaster);
	else if (strcmp(name, "maildrop") == 0)
		/* An absolute path or nothing: sendmail and smtpd must agree
		 * on it whatever their working directories. */
		r = *value != '\0' && *value != '/' ? PR_EINVAL :
		    CFG_STR(c->server.maildrop);
	else if (strcmp(name, "default_domain") == 0) {
		/* A domain name or nothing; the domain compares without
		 * case (RFC 5321 2.4), so it is kept in lower case. */
		r = *value != '\0' && !addr_domain_valid(value, strlen(value),
		    true) ? PR_EINVAL : CFG_STR(c->server.default_domain);
		if (r == 0)
			addr_lower(c->server.default_domain);
	} else if (strcmp(name, "trace_days") == 0)
		r = cfg_parse_uint(value, 3650, &c->server.trace_days);
	else if (strcmp(name, "log_level") == 0) {
		enum log_level l;

		r = log_level_parse(value, &l) < 0 ? PR_EINVAL : 0;
		if (r == 0)
			c->server.log_level = (int)l;
	} else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

static enum cfg_result
cfg_set_smtp(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "listen") == 0)
		r = cfg_parse_listen(value, &c->smtp.listen);
	else if (strcmp(name, "submission") == 0)
		r = cfg_parse_listen(value, &c->smtp.submission);
	else if (strcmp(name, "submissions") == 0)
		r = cfg_parse_listen(value, &c->smtp.submissions);
	else if (strcmp(name, "max_message_size") == 0) {
		r = cfg_parse_size(value, &c->smtp.max_message_size);
		if (r == 0 && (c->smtp.max_message_size < 1024 ||
		    c->smtp.max_message_size > CFG_MESSAGE_SIZE_MAX))
			r = PR_EINVAL;
	} else if (strcmp(name, "max_recipients") == 0) {
		r = cfg_parse_uint(value, 100000, &c->smtp.max_recipients);
		if (r == 0 && c->smtp.max_recipients == 0)
			r = PR_EINVAL;
	} else if (strcmp(name, "max_connections_per_ip") == 0)
		r = cfg_parse_uint(value, 1000000,
		    &c->smtp.max_connections_per_ip);
	else if (strcmp(name, "max_connections") == 0)
		r = cfg_parse_uint(value, 1000000, &c->smtp.max_connections);
	else if (strcmp(name, "min_data_rate") == 0)
		r = cfg_parse_rate(value, CFG_MIN_DATA_GRACE,
		    &c->smtp.min_data_rate, &c->smtp.min_data_grace);
	else if (strcmp(name, "allow_plaintext_auth") == 0)
		r = cfg_parse_bool(value, &c->smtp.allow_plaintext_auth);
	else if (strcmp(name, "hard_error_limit") == 0) {
		r = cfg_parse_uint(value, 1000, &c->smtp.hard_error_limit);
		if (r == 0 && c->smtp.hard_error_limit == 0)
			r = PR_EINVAL;
	} else if (strcmp(name, "timeout") == 0) {
		uint64_t s;

		r = cfg_parse_duration(value, &s);
		if (r == 0 && (s == 0 || s > 86400))
			r = PR_EINVAL;
		c->smtp.timeout = (unsigned)s;
	} else if (strcmp(name, "etrn_networks") == 0)
		r = netlist_parse(value, &c->smtp.etrn_networks);
	else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

static enum cfg_result
cfg_set_pop3(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "listen") == 0)
		r = cfg_parse_listen(value, &c->pop3.listen);
	else if (strcmp(name, "pop3s") == 0)
		r = cfg_parse_listen(value, &c->pop3.pop3s);
	else if (strcmp(name, "allow_plaintext_auth") == 0)
		r = cfg_parse_bool(value, &c->pop3.allow_plaintext_auth);
	else if (strcmp(name, "max_connections_per_ip") == 0)
		r = cfg_parse_uint(value, 1000000,
		    &c->pop3.max_connections_per_ip);
	else if (strcmp(name, "max_connections") == 0)
		r = cfg_parse_uint(value, 1000000, &c->pop3.max_connections);
	else if (strcmp(name, "timeout") == 0) {
		uint64_t s;

		r = cfg_parse_duration(value, &s);
		if (r == 0 && (s == 0 || s > 86400))
			r = PR_EINVAL;
		c->pop3.timeout = (unsigned)s;
	} else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

static enum cfg_result
cfg_set_tls(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "cert") == 0)
		r = CFG_STR(c->tls.cert);
	else if (strcmp(name, "key") == 0)
		r = CFG_STR(c->tls.key);
	else if (strcmp(name, "ciphers") == 0)
		r = CFG_STR(c->tls.ciphers);
	else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

static enum cfg_result
cfg_set_relay(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "enabled") == 0)
		r = cfg_parse_bool(value, &c->relay.enabled);
	else if (strcmp(name, "smarthost") == 0) {
		struct cfg_listen_list l;

		r = CFG_STR(c->relay.smarthost);
		if (r == 0 && *value != '\0' &&
		    (cfg_parse_listen(value, &l) < 0 || l.n != 1))
			r = PR_EINVAL;
	} else if (strcmp(name, "smarthost_user") == 0)
		r = CFG_STR(c->relay.smarthost_user);
	else if (strcmp(name, "smarthost_password_file") == 0)
		r = CFG_STR(c->relay.smarthost_password_file);
	else if (strcmp(name, "smarthost_tls") == 0) {
		r = 0;
		if (strcmp(value, "starttls") == 0)
			c->relay.smarthost_tls = CFG_SMARTHOST_STARTTLS;
		else if (strcmp(value, "implicit") == 0)
			c->relay.smarthost_tls = CFG_SMARTHOST_IMPLICIT;
		else
			r = PR_EINVAL;
	} else if (strcmp(name, "smarthost_ca") == 0)
		r = CFG_STR(c->relay.smarthost_ca);
	else if (strcmp(name, "ca_file") == 0)
		r = CFG_STR(c->relay.ca_file);
	else if (strcmp(name, "mta_sts") == 0)
		r = cfg_parse_bool(value, &c->relay.mta_sts);
	else if (strcmp(name, "tls_memory") == 0) {
		r = 0;
		if (strcmp(value, "warn") == 0)
			c->relay.tls_memory = CFG_TLS_MEMORY_WARN;
		else if (strcmp(value, "enforce") == 0)
			c->relay.tls_memory = CFG_TLS_MEMORY_ENFORCE;
		else
			r = PR_EINVAL;
	}
	else if (strcmp(name, "resolver") == 0)
		r = CFG_STR(c->relay.resolver);
	else if (strcmp(name, "mx_port") == 0) {
		r = cfg_parse_uint(value, 65535, &c->relay.mx_port);
		if (r == 0 && c->relay.mx_port == 0)
			r = PR_EINVAL;
	} else if (strcmp(name, "max_queue_time") == 0)
		r = cfg_parse_duration(value, &c->relay.max_queue_time);
	else if (strcmp(name, "delay_warning") == 0)
		r = cfg_parse_duration(value, &c->relay.delay_warning);
	else if (strcmp(name, "connections_per_domain") == 0) {
		r = cfg_parse_uint(value, 1000,
		    &c->relay.connections_per_domain);
		if (r == 0 && c->relay.connections_per_domain == 0)
			r = PR_EINVAL;
	} else if (strcmp(name, "dane") == 0)
		r = cfg_parse_bool(value, &c->relay.dane);
	else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

static enum cfg_result
cfg_set_dns(struct cfg *c, const char *name, const char *value)
{
	uint64_t v;
	int r;

	if (strcmp(name, "resolver") == 0)
		r = CFG_STR(c->dns.resolver);
	else if (strcmp(name, "timeout") == 0) {
		r = cfg_parse_duration(value, &v);
		/* At least a second; RFC 7208 4.6.4 asks for at least 20 s
		 * for a whole SPF check, which several lookups make up. */
		if (r == 0 && (v == 0 || v > 300))
			r = PR_EINVAL;
		if (r == 0)
			c->dns.timeout = (unsigned)v;
	} else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

static enum cfg_result
cfg_set_inbound(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "spf") == 0)
		r = cfg_parse_bool(value, &c->inbound.spf);
	else if (strcmp(name, "dkim") == 0)
		r = cfg_parse_bool(value, &c->inbound.dkim);
	else if (strcmp(name, "dmarc") == 0)
		r = cfg_parse_bool(value, &c->inbound.dmarc);
	else if (strcmp(name, "dmarc_policy") == 0) {
		r = 0;
		if (strcmp(value, "enforce") == 0)
			c->inbound.dmarc_policy = CFG_DMARC_ENFORCE;
		else if (strcmp(value, "report") == 0)
			c->inbound.dmarc_policy = CFG_DMARC_REPORT;
		else
			r = PR_EINVAL;
	} else if (strcmp(name, "dnsbl") == 0)
		r = CFG_STR(c->inbound.dnsbl);
	else if (strcmp(name, "greylist") == 0)
		r = cfg_parse_bool(value, &c->inbound.greylist);
	else if (strcmp(name, "greylist_delay") == 0)
		r = cfg_parse_duration(value, &c->inbound.greylist_delay);
	else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

/* One entry of [milter] servers: "unix:/run/x.sock", "inet:127.0.0.1:11332"
 * or "inet:[::1]:11332" (the Sendmail and Postfix forms). */
static int
cfg_parse_milter(const char *s, size_t n, struct cfg_milter *m)
{
	const char *colon;
	size_t hl;

	memset(m, 0, sizeof(*m));
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= sizeof(m->spec))
		return PR_EINVAL;
	memcpy(m->spec, s, n);
	m->spec[n] = '\0';
	if (strncmp(m->spec, "unix:", 5) == 0) {
		if (m->spec[5] != '/' || strlen(m->spec + 5) >= sizeof(m->path))
			return PR_EINVAL;
		m->kind = CFG_MILTER_UNIX;
		snprintf(m->path, sizeof(m->path), "%s", m->spec + 5);
		return 0;
	}
	if (strncmp(m->spec, "inet:", 5) != 0)
		return PR_EINVAL;
	s = m->spec + 5;
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return PR_EINVAL;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return PR_EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(m->host) || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) >= sizeof(m->port) ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
		return PR_EINVAL;
	memcpy(m->host, s, hl);
	m->host[hl] = '\0';
	snprintf(m->port, sizeof(m->port), "%s", colon + 1);
	m->kind = CFG_MILTER_INET;
	return 0;
}

int
cfg_parse_milters(const char *s, struct cfg_milter_list *l)
{
	l->n = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, ",");

		if (strspn(s, " \t") < n) {
			if (l->n == CFG_MILTER_MAX ||
			    cfg_parse_milter(s, n, &l->a[l->n]) < 0)
				return PR_EINVAL;
			l->n++;
		}
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

static enum cfg_result
cfg_set_milter(struct cfg *c, const char *name, const char *value)
{
	uint64_t v;
	int r;

	if (strcmp(name, "servers") == 0)
		r = cfg_parse_milters(value, &c->milter.servers);
	else if (strcmp(name, "submission_servers") == 0)
		r = cfg_parse_milters(value, &c->milter.submission_servers);
	else if (strcmp(name, "timeout") == 0) {
		r = cfg_parse_duration(value, &v);
		if (r == 0 && (v == 0 || v > 3600))
			r = PR_EINVAL;
		if (r == 0)
			c->milter.timeout = (unsigned)v;
	} else if (strcmp(name, "on_failure") == 0) {
		r = 0;
		if (strcmp(value, "tempfail") == 0)
			c->milter.on_failure = CFG_MILTER_TEMPFAIL;
		else if (strcmp(value, "accept") == 0)
			c->milter.on_failure = CFG_MILTER_ACCEPT;
		else
			r = PR_EINVAL;
	} else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

/*
 * A key given twice is an error: with the last one winning, an admin who
 * edits the first of two (an example block left in, a paste) sees no
 * change and no reason.  Valid keys only reach here, and they are short.
 */
static enum cfg_result
cfg_set_metrics(struct cfg *c, const char *name, const char *value)
{
	int r;

	if (strcmp(name, "listen") == 0) {
		/* One HOST:PORT; postroom-pop3d takes the port after it. */
		r = cfg_parse_listen(value, &c->metrics.listen);
		if (r == 0 && (c->metrics.listen.n > 1 ||
		    (c->metrics.listen.n == 1 &&
		    atoi(c->metrics.listen.a[0].port) >= 65535)))
			r = PR_EINVAL;
	} else if (strcmp(name, "metrics_public") == 0)
		r = cfg_parse_bool(value, &c->metrics.metrics_public);
	else
		return CFG_UNKNOWN_KEY;
	return r < 0 ? CFG_BAD_VALUE : CFG_SET;
}

bool
cfg_host_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static int
cfg_once(struct cfg_ctx *x, const char *section, const char *name,
    int lineno)
{
	struct cfg_seen *v;

	for (size_t i = 0; i < x->n_seen; i++) {
		v = &x->seen[i];
		if (strcmp(v->section, section) != 0 ||
		    strcmp(v->name, name) != 0)
			continue;
		if (x->err_line == 0) {
			/* inih hands an indented line on as the same key
			 * again: say what the line is, not "duplicate". */
			if (x->indented)
				snprintf(x->err, sizeof(x->err),
				    "indented line continues '%.40s' in [%s] "
				    "(line %d); a value is one line", name,
				    section, v->line);
			else
				snprintf(x->err, sizeof(x->err),
				    "duplicate key '%.40s' in [%s] (first set "
				    "on line %d)", name, section, v->line);
			x->err_line = lineno;
		}
		return 0;
	}
	if (x->n_seen < CFG_SEEN_MAX) {
		v = &x->seen[x->n_seen++];
		snprintf(v->section, sizeof(v->section), "%s", section);
		snprintf(v->name, sizeof(v->name), "%s", name);
		v->line = lineno;
	}
	return 1;
}

static int
cfg_handler(void *user, const char *section, const char *name,
    const char *value, int lineno)
{
	struct cfg_ctx *x = user;
	enum cfg_result res;

	if (strcmp(section, "server") == 0)
		res = cfg_set_server(x->c, name, value);
	else if (strcmp(section, "smtp") == 0)
		res = cfg_set_smtp(x->c, name, value);
	else if (strcmp(section, "pop3") == 0)
		res = cfg_set_pop3(x->c, name, value);
	else if (strcmp(section, "tls") == 0)
		res = cfg_set_tls(x->c, name, value);
	else if (strcmp(section, "relay") == 0)
		res = cfg_set_relay(x->c, name, value);
	else if (strcmp(section, "dns") == 0)
		res = cfg_set_dns(x->c, name, value);
	else if (strcmp(section, "inbound") == 0)
		res = cfg_set_inbound(x->c, name, value);
	else if (strcmp(section, "milter") == 0)
		res = cfg_set_milter(x->c, name, value);
	else if (strcmp(section, "metrics") == 0)
		res = cfg_set_metrics(x->c, name, value);
	else {
		if (x->err_line == 0) {
			if (*section == '\0')
				snprintf(x->err, sizeof(x->err),
				    "key '%.40s' outside of any section", name);
			else
				snprintf(x->err, sizeof(x->err),
				    "unknown section [%.40s]", section);
			x->err_line = lineno;
		}
		return 0;
	}
	if (res == CFG_SET)
		return cfg_once(x, section, name, lineno);
	if (x->err_line == 0) {
		if (res == CFG_UNKNOWN_KEY)
			snprintf(x->err, sizeof(x->err),
			    "unknown key '%.40s' in [%s]", name, section);
		else
			snprintf(x->err, sizeof(x->err),
			    "invalid value '%.60s' for %s in [%s]", value, name,
			    section);
		x->err_line = lineno;
	}
	return 0;
}

/*
 * inih reports the line of the first error as its return value but does
 * not pass line numbers to the handler; parse from a stream we read
 * ourselves so the handler knows the line as well.  inih reads a line
 * into a buffer of INI_MAX_LINE octets and takes what does not fit for
 * the next line; the reader instead reports such a line as an error and
 * skips the rest of it, so a long value is neither cut short silently
 * nor its tail read as a setting of its own.
 */
struct cfg_reader {
	FILE *f;
	struct cfg_ctx *x;
};

/* Records the first error found by the reader, at the current line. */
static void
cfg_reader_error(struct cfg_reader *rd, const char *msg)
{
	if (rd->x->err_line != 0)
		return;
	snprintf(rd->x->err, sizeof(rd->x->err), "%s", msg);
	rd->x->err_line = rd->x->line;
}

static char *
cfg_reader_gets(char *str, int num, void *stream)
{
	struct cfg_reader *rd = stream;
	char msg[64];
	size_t n = 0;
	int ch = EOF;

	if (num < 2)
		return NULL;
	while (n + 1 < (size_t)num && (ch = fgetc(rd->f)) != EOF) {
		str[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (n == 0)
		return NULL;
	str[n] = '\0';
	rd->x->line++;
	rd->x->indented = str[0] == ' ' || str[0] == '\t';
	/* inih reads a line up to its first NUL octet only. */
	if (strlen(str) != n)
		cfg_reader_error(rd, "NUL octet in line");
	if (ch == '\n' || ch == EOF)
		return str;
	/* The buffer is full: the line ends here, or it is too long. */
	if ((ch = fgetc(rd->f)) == '\n' || ch == EOF)
		return str;
	while (ch != '\n' && ch != EOF)
		ch = fgetc(rd->f);
	snprintf(msg, sizeof(msg), "line longer than %d octets", num - 1);
	cfg_reader_error(rd, msg);
	return str;
}

static int
cfg_handler_plain(void *user, const char *section, const char *name,
    const char *value)
{
	struct cfg_ctx *x = user;

	return cfg_handler(user, section, name, value, x->line);
}

/* Parses the INI text of f over c; name is the file name in messages. */
static int
cfg_load_stream(struct cfg *c, const char *name, FILE *f,
    struct pr_err *err)
{
	struct cfg_ctx x;
	struct cfg_reader rd;
	int r;

	memset(&x, 0, sizeof(x));
	x.c = c;
	snprintf(c->path, sizeof(c->path), "%s", name);
	rd.f = f;
	rd.x = &x;
	r = ini_parse_stream(cfg_reader_gets, &rd, cfg_handler_plain, &x);
	if (x.err_line != 0)
		return pr_err_set(err, PR_EINVAL, "%s:%d: %s", name,
		    x.err_line, x.err);
	if (r > 0)
		return pr_err_set(err, PR_EINVAL, "%s:%d: syntax error", name,
		    r);
	if (r < 0)
		return pr_err_set(err, PR_EIO, "%s: cannot parse", name);
	if ((c->tls.cert[0] == '\0') != (c->tls.key[0] == '\0'))
		return pr_err_set(err, PR_EINVAL,
		    "%s: [tls] cert and key must be set together", name);
	/* The metrics tell about traffic and users: not for the whole
	 * network unless the admin says so. */
	if (c->metrics.listen.n > 0 && !c->metrics.metrics_public &&
	    !cfg_host_loopback(c->metrics.listen.a[0].host))
		return pr_err_set(err, PR_EINVAL,
		    "%s: [metrics] listen %s is not a loopback address"
		    " (set metrics_public = true to allow it)", name,
		    c->metrics.listen.a[0].host);
	/* [relay] resolver is the older name of [dns] resolver. */
	if (c->dns.resolver[0] == '\0')
		snprintf(c->dns.resolver, sizeof(c->dns.resolver), "%s",
		    c->relay.resolver);
	else if (c->relay.resolver[0] == '\0')
		snprintf(c->relay.resolver, sizeof(c->relay.resolver), "%s",
		    c->dns.resolver);
	return 0;
}

int
cfg_load(struct cfg *c, const char *path, struct pr_err *err)
{
	FILE *f;
	int r;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(c->path, sizeof(c->path), "%s", path);
		return pr_err_set(err, PR_EIO, "%s: %s", path, strerror(errno));
	}
	r = cfg_load_stream(c, path, f, err);
	fclose(f);
	return r;
}

int
cfg_load_buf(struct cfg *c, const char *name, const char *text, size_t len,
    struct pr_err *err)
{
	FILE *f;
	int r;

	/* fmemopen() refuses a zero-sized buffer; empty text is an empty
	 * file. */
	f = len > 0 ? fmemopen((void *)text, len, "r") :
	    fopen("/dev/null", "r");
	if (f == NULL)
		return pr_err_set(err, PR_ENOMEM, "%s: %s", name,
		    strerror(errno));
	r = cfg_load_stream(c, name, f, err);
	fclose(f);
	return r;
}
