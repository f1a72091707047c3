/*
 * doctor_probe.c - `postroom doctor`: our own listeners, seen as a client
 * sees them (doctor.h).
 *
 * Each configured listener gets a connection: SMTP (RFC 5321 3.1) reads
 * the 220 greeting, sends EHLO and, on 25 and 587, STARTTLS when offered
 * (RFC 3207 4) and does the handshake; POP3 (RFC 1939 4) reads +OK, asks
 * CAPA and does STLS (RFC 2595 4); 465 and 995 start with the handshake
 * (RFC 8314 3.3).  The open-relay test asks the first [smtp] listen
 * address, unauthenticated, for a recipient in a domain not hosted here,
 * which must be refused, and quits before DATA: nothing is ever sent.
 *
 * All connections run at once on the doctor's loop through common/net.c
 * (the TLS layer of the daemons), each bounded by DOCTOR_PROBE_TIMEOUT_MS;
 * the lines are printed in a fixed order when all are done.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "doctor.h"
#include "log.h"
#include "net.h"

/* Listeners probed at most (each of the five lists has at most
 * CFG_LISTEN_MAX entries), plus the relay test. */
#define DOCTOR_PROBE_MAX (5 * CFG_LISTEN_MAX + 1)

enum doctor_probe_step {
	DP_CONNECT = 0,
	DP_TLS_FIRST,    /* implicit TLS: the handshake before the greeting */
	DP_GREETING,
	DP_EHLO,
	DP_CAPA,
	DP_STARTTLS,     /* STARTTLS / STLS sent, its reply awaited */
	DP_TLS,          /* the upgrade's handshake */
	DP_MAIL,
	DP_RCPT,
	DP_QUIT,
	DP_CLOSING,
};

struct doctor_probes;

struct doctor_probe {
	struct doctor_probes *all;
	char check[128];         /* "smtp 127.0.0.1:25" */
	const char *service;     /* the daemon that serves it */
	bool pop3;
	bool implicit;
	bool relay;              /* the open-relay test */
	bool concluded;
	enum doctor_probe_step step;
	struct net_conn *c;
	uv_timer_t timer;
	bool timer_open;
	struct doctor_reply rep;
	char greeting[120];      /* the start of the greeting line */
	char host[64], port[8];
	enum doctor_level lv;
	char detail[1200];
	char fix[300];
};

struct doctor_probes {
	struct doctor *d;
	struct net_tls *tls;     /* client context; NULL without TLS */
	size_t n, open;
	bool finished;
	struct doctor_probe p[DOCTOR_PROBE_MAX];
};

static void doctor_probe_input_cb(struct net_conn *c);

static void
doctor_probe_closed(struct doctor_probe *p)
{
	if (--p->all->open == 0)
		p->all->finished = true;
}

static void
doctor_probe_timer_closed(uv_handle_t *h)
{
	doctor_probe_closed(h->data);
}

/* The probe's result, once: the first conclusion stands. */
static void
doctor_probe_result(struct doctor_probe *p, enum doctor_level lv,
    const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
doctor_probe_result(struct doctor_probe *p, enum doctor_level lv,
    const char *fix, const char *fmt, ...)
{
	va_list ap;

	if (p->concluded)
		return;
	p->concluded = true;
	p->lv = lv;
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
	va_end(ap);
	snprintf(p->fix, sizeof(p->fix), "%s", fix != NULL ? fix : "");
}

/* Ends the probe: the connection closes (close_cb follows). */
static void
doctor_probe_end(struct doctor_probe *p)
{
	p->step = DP_CLOSING;
	if (p->timer_open)
		uv_timer_stop(&p->timer);
	if (p->c != NULL)
		net_conn_close(p->c, true);
}

static void
doctor_probe_send(struct doctor_probe *p, enum doctor_probe_step next,
    enum doctor_reply_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
doctor_probe_send(struct doctor_probe *p, enum doctor_probe_step next,
    enum doctor_reply_kind kind, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	memcpy(line + n, "\r\n", 2);
	p->step = next;
	doctor_reply_init(&p->rep, kind);
	if (net_conn_write(p->c, line, (size_t)n + 2) < 0) {
		doctor_probe_result(p, DOCTOR_FAIL, NULL, "the connection "
		    "closed");
		doctor_probe_end(p);
	}
}

/* "QUIT", whatever the protocol; its reply ends the probe. */
static void
doctor_probe_quit(struct doctor_probe *p)
{
	doctor_probe_send(p, DP_QUIT, p->pop3 ? DOCTOR_REPLY_POP3 :
	    DOCTOR_REPLY_SMTP, "QUIT");
}

static void
doctor_probe_tls(struct doctor_probe *p, enum doctor_probe_step step)
{
	p->step = step;
	if (p->all->tls == NULL || net_conn_starttls_client(p->c, p->all->tls,
	    p->all->d->host, false) < 0) {
		doctor_probe_result(p, DOCTOR_FAIL, NULL, "cannot start TLS");
		doctor_probe_end(p);
	}
}

/* The relay test's RCPT reply. */
static void
doctor_probe_rcpt(struct doctor_probe *p)
{
	const char *r = p->rep.first;

	if (p->rep.code >= 500)
		doctor_probe_result(p, DOCTOR_OK, NULL, "RCPT TO:<%s> from "
		    "outside, unauthenticated, refused: %s",
		    DOCTOR_RELAY_RCPT, r);
	else if (p->rep.code >= 400)
		doctor_probe_result(p, DOCTOR_WARN, "run doctor again later",
		    "RCPT TO:<%s> refused for now only: %s",
		    DOCTOR_RELAY_RCPT, r);
	else
		doctor_probe_result(p, DOCTOR_FAIL, "only authenticated "
		    "users may send to other domains: check [smtp] listen "
		    "and what runs on it", "OPEN RELAY: RCPT TO:<%s> from "
		    "outside, unauthenticated, accepted: %s",
		    DOCTOR_RELAY_RCPT, r);
	doctor_probe_quit(p);
}

/* A complete reply in p->rep: the next step. */
static void
doctor_probe_step(struct doctor_probe *p)
{
	struct doctor *d = p->all->d;
	const char *r = p->rep.first;
	bool good = p->pop3 ? p->rep.code == 1 : p->rep.code < 400;

	switch (p->step) {
	case DP_GREETING:
		snprintf(p->greeting, sizeof(p->greeting), "%s", r);
		if (!good || (!p->pop3 && p->rep.code != 220)) {
			doctor_probe_result(p, DOCTOR_FAIL, NULL, "greeting "
			    "\"%s\"", r);
			doctor_probe_quit(p);
		} else if (p->pop3) {
			doctor_probe_send(p, DP_CAPA, DOCTOR_REPLY_POP3_MULTI,
			    "CAPA");
		} else {
			doctor_probe_send(p, DP_EHLO, DOCTOR_REPLY_SMTP,
			    "EHLO %s", d->host);
		}
		break;
	case DP_EHLO:
	case DP_CAPA:
		if (!good) {
			doctor_probe_result(p, DOCTOR_FAIL, NULL, "%s refused: "
			    "%s", p->pop3 ? "CAPA" : "EHLO", r);
			doctor_probe_quit(p);
		} else if (p->relay) {
			doctor_probe_send(p, DP_MAIL, DOCTOR_REPLY_SMTP,
			    "MAIL FROM:<doctor@doctor.example.invalid>");
		} else if (p->implicit || net_conn_tls_active(p->c)) {
			doctor_probe_result(p, DOCTOR_OK, NULL, "answers "
			    "\"%s\" over %s", p->greeting,
			    net_conn_tls_desc(p->c));
			doctor_probe_quit(p);
		} else if (!(p->pop3 ? p->rep.stls : p->rep.starttls)) {
			doctor_probe_result(p, DOCTOR_FAIL, "set [tls] cert "
			    "and key, then restart the daemon", "answers, but "
			    "offers no %s: passwords and mail cross the "
			    "network in the clear", p->pop3 ? "STLS" :
			    "STARTTLS");
			doctor_probe_quit(p);
		} else {
			doctor_probe_send(p, DP_STARTTLS, p->pop3 ?
			    DOCTOR_REPLY_POP3 : DOCTOR_REPLY_SMTP, "%s",
			    p->pop3 ? "STLS" : "STARTTLS");
		}
		break;
	case DP_STARTTLS:
		if (!good) {
			doctor_probe_result(p, DOCTOR_FAIL, NULL, "%s offered, "
			    "then refused: %s", p->pop3 ? "STLS" : "STARTTLS",
			    r);
			doctor_probe_quit(p);
		} else {
			doctor_probe_tls(p, DP_TLS);
		}
		break;
	case DP_MAIL:
		if (!good) {
			doctor_probe_result(p, DOCTOR_WARN, "run doctor again "
			    "from another host", "could not test: MAIL FROM "
			    "refused: %s", r);
			doctor_probe_quit(p);
		} else {
			doctor_probe_send(p, DP_RCPT, DOCTOR_REPLY_SMTP,
			    "RCPT TO:<%s>", DOCTOR_RELAY_RCPT);
		}
		break;
	case DP_RCPT:
		doctor_probe_rcpt(p);
		break;
	case DP_QUIT:
		doctor_probe_end(p);
		break;
	default:
		break;
	}
}

/* --- net_conn callbacks ------------------------------------------------ */

static void
doctor_probe_input_cb(struct net_conn *c)
{
	struct doctor_probe *p = net_conn_data(c);
	const uint8_t *in;
	size_t len, used;
	int st;

	while (p->step != DP_CLOSING && p->step != DP_TLS &&
	    p->step != DP_TLS_FIRST) {
		net_conn_input(c, &in, &len);
		if (len == 0)
			return;
		st = doctor_reply_feed(&p->rep, in, len, &used);
		net_conn_consume(c, used);
		if (st == 0)
			return;
		if (st < 0) {
			doctor_probe_result(p, DOCTOR_FAIL, NULL, "not a "
			    "valid reply: %s", p->rep.first);
			doctor_probe_end(p);
			return;
		}
		doctor_probe_step(p);
	}
}

static void
doctor_probe_connect_cb(struct net_conn *c, int status)
{
	struct doctor_probe *p = net_conn_data(c);
	char fix[200];

	if (status < 0 && p->relay) {
		/* The smtp line already fails for it. */
		doctor_probe_result(p, DOCTOR_WARN, "start postroom-smtpd",
		    "not tested: cannot connect: %s", uv_strerror(status));
		return;
	}
	if (status < 0) {
		snprintf(fix, sizeof(fix), "start %s (systemctl start %s), "
		    "or correct its listen address", p->service, p->service);
		doctor_probe_result(p, DOCTOR_FAIL, fix, "cannot connect: %s",
		    uv_strerror(status));
		return;
	}
	doctor_reply_init(&p->rep, p->pop3 ? DOCTOR_REPLY_POP3 :
	    DOCTOR_REPLY_SMTP);
	if (p->implicit)
		doctor_probe_tls(p, DP_TLS_FIRST);
	else
		p->step = DP_GREETING;
}

static void
doctor_probe_tls_cb(struct net_conn *c, int status)
{
	struct doctor_probe *p = net_conn_data(c);

	if (status < 0) {
		doctor_probe_result(p, DOCTOR_FAIL, "check [tls] cert and key",
		    "the TLS handshake failed: %s", net_conn_tls_error(c));
		doctor_probe_end(p);
		return;
	}
	if (p->step == DP_TLS_FIRST) {
		p->step = DP_GREETING;
		doctor_probe_input_cb(c);
		return;
	}
	/* RFC 3207 4.2 / RFC 2595 4: the session starts over; the greeting
	 * is not repeated, so the next thing is a command. */
	doctor_probe_result(p, DOCTOR_OK, NULL, "answers \"%s\", %s works: "
	    "%s", p->greeting, p->pop3 ? "STLS" : "STARTTLS",
	    net_conn_tls_desc(c));
	doctor_probe_quit(p);
}

static void
doctor_probe_error_cb(struct net_conn *c, int uv_status)
{
	struct doctor_probe *p = net_conn_data(c);

	if (p->step == DP_QUIT || p->step == DP_CLOSING)
		return;
	doctor_probe_result(p, DOCTOR_FAIL, NULL, "the connection closed "
	    "before the end of the dialogue: %s", uv_status == UV_EOF ?
	    "closed by the server" : uv_strerror(uv_status));
}

static void
doctor_probe_close_cb(struct net_conn *c)
{
	struct doctor_probe *p = net_conn_data(c);

	p->c = NULL;
	doctor_probe_result(p, DOCTOR_FAIL, NULL, "the connection closed");
	p->step = DP_CLOSING;
	if (p->timer_open) {
		p->timer_open = false;
		uv_close((uv_handle_t *)&p->timer, doctor_probe_timer_closed);
	} else {
		doctor_probe_closed(p);
	}
}

static void
doctor_probe_timeout_cb(struct net_conn *c)
{
	struct doctor_probe *p = net_conn_data(c);

	doctor_probe_result(p, DOCTOR_FAIL, NULL, "no answer in time");
	doctor_probe_end(p);
}

static const struct net_conn_ops doctor_probe_ops = {
	.connect_cb = doctor_probe_connect_cb,
	.input_cb = doctor_probe_input_cb,
	.tls_cb = doctor_probe_tls_cb,
	.error_cb = doctor_probe_error_cb,
	.timeout_cb = doctor_probe_timeout_cb,
	.close_cb = doctor_probe_close_cb,
};

/* The whole dialogue's deadline: also bounds a connect that gets no
 * answer at all (a firewall that drops). */
static void
doctor_probe_deadline_cb(uv_timer_t *t)
{
	struct doctor_probe *p = t->data;

	doctor_probe_result(p, DOCTOR_FAIL, NULL, "no answer within %d s",
	    DOCTOR_PROBE_TIMEOUT_MS / 1000);
	if (p->c != NULL)
		net_conn_close(p->c, false);
}

/* --- Setting up -------------------------------------------------------- */

/* Where to connect for a listen address: a wildcard address is reached
 * through loopback. */
static int
doctor_probe_addr(const struct doctor_probe *p, struct sockaddr_storage *ss)
{
	struct addrinfo hints, *res;
	const char *h = p->host;
	int port = atoi(p->port);

	if (strcmp(h, "0.0.0.0") == 0 || h[0] == '\0')
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(h, port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(h, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(h, p->port, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static void
doctor_probe_start(struct doctor_probes *all, struct doctor_probe *p)
{
	struct sockaddr_storage ss;
	char fix[200];
	int r;

	p->all = all;
	p->step = DP_CONNECT;
	if (doctor_probe_addr(p, &ss) < 0) {
		doctor_probe_result(p, DOCTOR_FAIL, "correct the listen "
		    "address", "cannot resolve %s", p->host);
		return;
	}
	if (p->implicit && all->tls == NULL) {
		doctor_probe_result(p, DOCTOR_FAIL, "set [tls] cert and key",
		    "implicit TLS without a certificate");
		return;
	}
	r = net_connect(&all->d->loop, (struct sockaddr *)&ss,
	    &doctor_probe_ops, p, &p->c);
	if (r < 0) {
		snprintf(fix, sizeof(fix), "start %s", p->service);
		doctor_probe_result(p, DOCTOR_FAIL, fix, "cannot connect: %s",
		    uv_strerror(r));
		p->c = NULL;
		return;
	}
	all->open++;
	uv_timer_init(&all->d->loop, &p->timer);
	p->timer.data = p;
	p->timer_open = true;
	uv_timer_start(&p->timer, doctor_probe_deadline_cb,
	    DOCTOR_PROBE_TIMEOUT_MS, 0);
	net_conn_set_timeout(p->c, DOCTOR_PROBE_TIMEOUT_MS);
}

static void
doctor_probe_add(struct doctor_probes *all, const char *name,
    const struct cfg_listen_list *l, const char *service, bool pop3,
    bool implicit)
{
	struct doctor_probe *p;
	size_t i;

	for (i = 0; i < l->n && all->n < DOCTOR_PROBE_MAX - 1; i++) {
		p = &all->p[all->n++];
		snprintf(p->host, sizeof(p->host), "%s", l->a[i].host);
		snprintf(p->port, sizeof(p->port), "%s", l->a[i].port);
		snprintf(p->check, sizeof(p->check), "%s %s%s%s:%s", name,
		    strchr(l->a[i].host, ':') != NULL ? "[" : "",
		    l->a[i].host, strchr(l->a[i].host, ':') != NULL ? "]" :
		    "", l->a[i].port);
		p->service = service;
		p->pop3 = pop3;
		p->implicit = implicit;
	}
}

void
doctor_probe_all(struct doctor *d)
{
	const struct cfg *cfg = &d->cli->cfg;
	struct doctor_probes *all;
	struct doctor_probe *p;
	struct pr_err err;
	size_t i;

	if ((all = calloc(1, sizeof(*all))) == NULL) {
		doctor_report(d, DOCTOR_FAIL, "listeners", NULL, "out of "
		    "memory");
		return;
	}
	all->d = d;
	pr_err_clear(&err);
	if (cfg->tls.cert[0] != '\0' && net_tls_client_new(NULL,
	    cfg->tls.ciphers, &all->tls, &err) < 0)
		all->tls = NULL;
	doctor_probe_add(all, "smtp", &cfg->smtp.listen, "postroom-smtpd",
	    false, false);
	doctor_probe_add(all, "submission", &cfg->smtp.submission,
	    "postroom-smtpd", false, false);
	doctor_probe_add(all, "submissions", &cfg->smtp.submissions,
	    "postroom-smtpd", false, true);
	doctor_probe_add(all, "pop3", &cfg->pop3.listen, "postroom-pop3d",
	    true, false);
	doctor_probe_add(all, "pop3s", &cfg->pop3.pop3s, "postroom-pop3d",
	    true, true);
	if (cfg->smtp.listen.n > 0) {
		p = &all->p[all->n++];
		*p = all->p[0];
		snprintf(p->check, sizeof(p->check), "open-relay");
		p->relay = true;
	}
	for (i = 0; i < all->n; i++)
		doctor_probe_start(all, &all->p[i]);
	if (all->open > 0)
		doctor_wait(d, &all->finished);
	for (i = 0; i < all->n; i++) {
		p = &all->p[i];
		if (!p->concluded)
			doctor_probe_result(p, DOCTOR_FAIL, NULL, "no result");
		doctor_report(d, p->lv, p->check, p->fix, "%s", p->detail);
	}
	if (cfg->smtp.listen.n == 0)
		doctor_report(d, DOCTOR_OK, "open-relay", NULL, "no [smtp] "
		    "listen address: nothing to relay through");
	net_tls_free(&all->tls);
	free(all);
}
