/*
 * test_smtp_dialog.c - runs tests/dialog/smtp/NNN-name.dlg against the
 * SMTP protocol core, in process, with a fake store and password checker.
 *
 * A dialog file (docs/ARCHITECTURE.md 6.1):
 *
 *   # comment
 *   %config kind=submission starttls=1 plaintext=0 size=1000 ...
 *   S: 220 *                 an expected reply line; '*' matches anything
 *   C: EHLO client.test      client line, CRLF appended
 *   R: %hex[0a]%.%hex[0a]%   raw client octets, nothing appended
 *   M: 250-*                 one or more reply lines matching
 *   S: <close>               the core closes the session here
 *   B: Subject: x            expected body of the next delivery, a line
 *                            (a comment line ends it; B: <empty> is "")
 *   E: sender=a users=1,2 remote=x@y   envelope of the last delivery
 *   D: 2                     deliveries so far
 *   W: 3                     error-reply delays (SMTP_EV_DELAY) so far
 *
 * Client lines up to the next S: line form one block, sent as if in one
 * packet.  Every dialog runs three ways (docs/ARCHITECTURE.md 6.1): each block whole,
 * trickled one octet per feed, and split in two at every offset.
 * Expansions from curl's test format: %repeat[N x text]% and %hex[..]%.
 *
 * The fake store: hosted domains example.test and example.org; users
 * alice (1), bob (2); full@ is over quota, big@ too small for the message;
 * team@ -> alice, bob; fwd@ -> alice, x@remote.test; unknown@ and any
 * other local part are unknown; lookupfail@ fails.  alice@example.test has
 * the password "secret" and may send as alice@, alice+tag@ and team@
 * (envelope and header From:/Sender:).  An anonymous sender in a hosted
 * domain is reported as such (SMTP_MAIL_HOSTED).  A sender of
 * "deliverfail@remote.test" or "deliverfail@example.org" makes the
 * delivery fail.  With %config milter=1 a fake content filter answers
 * SMTP_EV_MILTER: it refuses the sender milterno@remote.test (550 5.7.1
 * with its text), the recipient bob@example.test (550 5.7.1 "Not for
 * bob") and defers DATA from datafail@remote.test (451, the default
 * text).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "buf.h"
#include "err.h"
#include "smtp_proto.h"
#include "tap.h"
#include "test_files.h"

#define DLG_TRICKLE ((size_t)-1)

struct dlg_block {
	struct buf in;
	char **want;       /* expected reply lines */
	size_t n_want;
	bool want_close;
	int want_deliveries;   /* -1 = not checked */
	int want_delays;       /* -1 = not checked */
	char *want_env;        /* NULL = not checked */
};

struct dlg {
	char name[256];
	struct smtp_proto_conf conf;
	bool spool_fail;
	struct dlg_block *blocks;
	size_t n_blocks;
	struct buf *bodies;   /* expected bodies, in delivery order */
	size_t n_bodies;
};

/* What one run of a dialog produced. */
struct dlg_run {
	struct buf spool;
	size_t n_deliveries;
	size_t n_delays;
	struct buf last_body[64];
	char last_env[1024];
	char err[2048];
};

static void
dlg_die(const char *what)
{
	fprintf(stderr, "test_smtp_dialog: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
dlg_append(struct buf *b, const void *d, size_t n)
{
	if (buf_append(b, d, n) < 0)
		dlg_die("buf_append");
}

/* Expands %repeat[N x text]% and %hex[hh..]% in s into b. */
static void
dlg_expand(const char *s, struct buf *b)
{
	while (*s != '\0') {
		if (strncmp(s, "%repeat[", 8) == 0) {
			char *end;
			unsigned long n = strtoul(s + 8, &end, 10), i;
			const char *text, *close;

			if (strncmp(end, " x ", 3) != 0 ||
			    (close = strstr(end, "]%")) == NULL)
				dlg_die("bad %repeat");
			text = end + 3;
			for (i = 0; i < n; i++)
				dlg_append(b, text, (size_t)(close - text));
			s = close + 2;
		} else if (strncmp(s, "%hex[", 5) == 0) {
			s += 5;
			while (*s != ']' && *s != '\0') {
				unsigned v;

				if (*s == ' ') {
					s++;
					continue;
				}
				if (sscanf(s, "%2x", &v) != 1)
					dlg_die("bad %hex");
				uint8_t c = (uint8_t)v;
				dlg_append(b, &c, 1);
				s += 2;
			}
			if (strncmp(s, "]%", 2) != 0)
				dlg_die("bad %hex end");
			s += 2;
		} else {
			dlg_append(b, s, 1);
			s++;
		}
	}
}

static void
dlg_config(struct dlg *d, char *args)
{
	char *tok, *save;

	for (tok = strtok_r(args, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		unsigned long v;

		if (eq == NULL)
			dlg_die("bad %config");
		*eq++ = '\0';
		v = strtoul(eq, NULL, 10);
		if (strcmp(tok, "kind") == 0)
			d->conf.kind = strcmp(eq, "mx") == 0 ? SMTP_LISTEN_MX :
			    strcmp(eq, "submission") == 0 ?
			    SMTP_LISTEN_SUBMISSION : SMTP_LISTEN_SUBMISSIONS;
		else if (strcmp(tok, "starttls") == 0)
			d->conf.starttls = v != 0;
		else if (strcmp(tok, "plaintext") == 0)
			d->conf.allow_plaintext_auth = v != 0;
		else if (strcmp(tok, "size") == 0)
			d->conf.limits.data_max = v;
		else if (strcmp(tok, "rcpt_max") == 0)
			d->conf.limits.rcpt_max = (unsigned)v;
		else if (strcmp(tok, "targets_max") == 0)
			d->conf.limits.targets_max = (unsigned)v;
		else if (strcmp(tok, "bad_cmd_max") == 0)
			d->conf.limits.bad_cmd_max = (unsigned)v;
		else if (strcmp(tok, "junk_max") == 0)
			d->conf.limits.junk_max = (unsigned)v;
		else if (strcmp(tok, "auth_fail_max") == 0)
			d->conf.limits.auth_fail_max = (unsigned)v;
		else if (strcmp(tok, "mem_max") == 0)
			d->conf.limits.mem_max = v;
		else if (strcmp(tok, "spool_fail") == 0)
			d->spool_fail = v != 0;
		else if (strcmp(tok, "milter") == 0)
			d->conf.milter = v != 0;
		else
			dlg_die("unknown %config key");
	}
}

static struct dlg_block *
dlg_block_new(struct dlg *d)
{
	struct dlg_block *b;

	d->blocks = realloc(d->blocks, (d->n_blocks + 1) * sizeof(*b));
	if (d->blocks == NULL)
		dlg_die("realloc");
	b = &d->blocks[d->n_blocks++];
	memset(b, 0, sizeof(*b));
	buf_init(&b->in, 64 * 1024 * 1024);
	b->want_deliveries = -1;
	b->want_delays = -1;
	return b;
}

static int
dlg_load(const char *path, struct dlg *d)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct dlg_block *b = NULL;
	bool in_body = false;

	if (f == NULL)
		return -1;
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", strrchr(path, '/') + 1);
	d->conf.hostname = "mx.example.test";
	d->conf.kind = SMTP_LISTEN_MX;
	d->conf.starttls = true;
	d->conf.allow_plaintext_auth = true;
	smtp_limits_default(&d->conf.limits);
	b = dlg_block_new(d);
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (line[0] == '#') {
			in_body = false; /* a comment separates two bodies */
			continue;
		}
		if (strncmp(line, "%config ", 8) == 0) {
			dlg_config(d, line + 8);
			continue;
		}
		if (n < 2 || line[1] != ':')
			dlg_die("bad dialog line");
		const char *arg = line[2] == ' ' ? line + 3 : line + 2;
		if (line[0] != 'B')
			in_body = false;
		switch (line[0]) {
		case 'C':
		case 'R':
			/* A client line after replies starts a new block. */
			if (b->n_want > 0 || b->want_close ||
			    b->want_deliveries >= 0 || b->want_delays >= 0 ||
			    b->want_env != NULL)
				b = dlg_block_new(d);
			dlg_expand(arg, &b->in);
			if (line[0] == 'C')
				dlg_append(&b->in, "\r\n", 2);
			break;
		case 'S':
		case 'M':
			if (strcmp(arg, "<close>") == 0) {
				b->want_close = true;
				break;
			}
			b->want = realloc(b->want, (b->n_want + 1) *
			    sizeof(char *));
			b->want[b->n_want] = malloc(strlen(arg) + 2);
			/* A leading '+' marks "one or more lines". */
			sprintf(b->want[b->n_want++], "%c%s",
			    line[0] == 'M' ? '+' : '=', arg);
			break;
		case 'B':
			if (!in_body) {
				d->bodies = realloc(d->bodies,
				    (d->n_bodies + 1) * sizeof(struct buf));
				buf_init(&d->bodies[d->n_bodies++], 1 << 26);
				in_body = true;
			}
			if (strcmp(arg, "<empty>") == 0)
				break;
			dlg_expand(arg, &d->bodies[d->n_bodies - 1]);
			dlg_append(&d->bodies[d->n_bodies - 1], "\r\n", 2);
			break;
		case 'D':
			b->want_deliveries = atoi(arg);
			break;
		case 'W':
			b->want_delays = atoi(arg);
			break;
		case 'E':
			b->want_env = strdup(arg);
			break;
		default:
			dlg_die("bad dialog line");
		}
	}
	free(line);
	fclose(f);
	return 0;
}

static void
dlg_free(struct dlg *d)
{
	size_t i, j;

	for (i = 0; i < d->n_blocks; i++) {
		buf_fini(&d->blocks[i].in);
		for (j = 0; j < d->blocks[i].n_want; j++)
			free(d->blocks[i].want[j]);
		free(d->blocks[i].want);
		free(d->blocks[i].want_env);
	}
	free(d->blocks);
	for (i = 0; i < d->n_bodies; i++)
		buf_fini(&d->bodies[i]);
	free(d->bodies);
}

/* '*' matches any run of characters. */
static bool
dlg_match(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*') {
		for (;; s++) {
			if (dlg_match(pat + 1, s))
				return true;
			if (*s == '\0')
				return false;
		}
	}
	return *s == *pat && dlg_match(pat + 1, s + 1);
}

/* --- The fake outside world ------------------------------------------ */

static bool
dlg_hosted(const char *addr)
{
	const char *dom = addr_domain(addr);

	return dom != NULL && (strcmp(dom, "example.test") == 0 ||
	    strcmp(dom, "example.org") == 0 ||
	    strcmp(dom, "mx.example.test") == 0);
}

static int
dlg_resolve(struct smtp_proto *p, const char *addr)
{
	char local[ADDR_MAX];
	const char *at = strrchr(addr, '@');
	size_t n = (size_t)(at - addr);
	char *plus;

	if (!dlg_hosted(addr))
		return SMTP_RCPT_REMOTE;
	memcpy(local, addr, n);
	local[n] = '\0';
	addr_lower(local);
	if ((plus = strchr(local, '+')) != NULL)
		*plus = '\0';
	if (strcmp(local, "alice") == 0 || strcmp(local, "postmaster") == 0)
		return smtp_proto_rcpt_target(p, 1, NULL) < 0 ? PR_ENOSPC :
		    SMTP_RCPT_LOCAL;
	if (strcmp(local, "bob") == 0)
		return smtp_proto_rcpt_target(p, 2, NULL) < 0 ? PR_ENOSPC :
		    SMTP_RCPT_LOCAL;
	if (strcmp(local, "team") == 0) {
		if (smtp_proto_rcpt_target(p, 1, NULL) < 0 ||
		    smtp_proto_rcpt_target(p, 2, NULL) < 0)
			return PR_ENOSPC;
		return SMTP_RCPT_LOCAL;
	}
	if (strcmp(local, "fwd") == 0) {
		if (smtp_proto_rcpt_target(p, 1, NULL) < 0 ||
		    smtp_proto_rcpt_target(p, 0, "x@remote.test") < 0)
			return PR_ENOSPC;
		return SMTP_RCPT_LOCAL;
	}
	if (strcmp(local, "full") == 0)
		return PR_EQUOTA;
	if (strcmp(local, "big") == 0)
		return PR_ETOOBIG;
	if (strcmp(local, "lookupfail") == 0)
		return PR_EIO;
	return SMTP_RCPT_UNKNOWN;
}

static void
dlg_envelope(struct smtp_proto *p, char *out, size_t outsz)
{
	const struct smtp_tx *tx = smtp_proto_tx(p);
	size_t i, o;

	o = (size_t)snprintf(out, outsz, "sender=%s users=", tx->sender);
	for (i = 0; i < tx->n_users && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%s%lld",
		    i ? "," : "", (long long)tx->users[i]);
	if (o < outsz)
		o += (size_t)snprintf(out + o, outsz - o, " remote=");
	for (i = 0; i < tx->n_remote && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%s%s",
		    i ? "," : "", tx->remote[i]);
	/* The DSN parameters (RFC 3461), only where some were given. */
	if (o < outsz && (tx->dsn_ret != 0 || tx->dsn_envid[0] != '\0'))
		o += (size_t)snprintf(out + o, outsz - o, " ret=%d envid=%s",
		    tx->dsn_ret, tx->dsn_envid);
	for (i = 0; i < tx->n_rcpt && o < outsz; i++)
		if (tx->rcpts[i].notify != 0 || tx->rcpts[i].orcpt[0] != '\0')
			o += (size_t)snprintf(out + o, outsz - o,
			    " rcpt=%s notify=%u orcpt=%s", tx->rcpts[i].addr,
			    tx->rcpts[i].notify, tx->rcpts[i].orcpt);
}

/* Handles the pending event.  Returns true when the rest of the block
 * must be dropped (STARTTLS). */
static bool
dlg_event(struct dlg *d, struct dlg_run *run, struct smtp_proto *p,
    const struct smtp_event *ev)
{
	switch (ev->type) {
	case SMTP_EV_AUTH:
		if (strcmp(ev->user, "alice@example.test") == 0 &&
		    strcmp(ev->pass, "secret") == 0)
			smtp_proto_complete(p, 0);
		else if (strcmp(ev->user, "error@example.test") == 0)
			smtp_proto_complete(p, PR_EIO);
		else
			smtp_proto_complete(p, PR_EAUTH);
		return false;
	case SMTP_EV_MAIL:
		if (smtp_proto_auth_user(p)[0] == '\0') {
			smtp_proto_complete(p, dlg_hosted(ev->addr) ?
			    SMTP_MAIL_HOSTED : 0);
			return false;
		}
		/* FALLTHROUGH */
	case SMTP_EV_FROM:
		if (strcmp(smtp_proto_auth_user(p),
		    "alice@example.test") == 0 &&
		    (strcasecmp(ev->addr, "alice@example.test") == 0 ||
		    strcasecmp(ev->addr, "alice+tag@example.test") == 0 ||
		    strcasecmp(ev->addr, "team@example.test") == 0))
			smtp_proto_complete(p, 0);
		else
			smtp_proto_complete(p, PR_EPERM);
		return false;
	case SMTP_EV_RCPT:
		smtp_proto_complete(p, dlg_resolve(p, ev->addr));
		return false;
	case SMTP_EV_SPOOL:
		if (d->spool_fail) {
			smtp_proto_complete(p, PR_EIO);
			return false;
		}
		dlg_append(&run->spool, ev->data, ev->len);
		smtp_proto_complete(p, 0);
		return false;
	case SMTP_EV_DELIVER: {
		const struct smtp_tx *tx = smtp_proto_tx(p);
		size_t k = run->n_deliveries % 64;

		buf_reset(&run->last_body[k]);
		if (tx->spooled)
			dlg_append(&run->last_body[k], run->spool.p,
			    run->spool.len);
		dlg_append(&run->last_body[k], ev->data, ev->len);
		buf_reset(&run->spool);
		if (run->last_body[k].len != tx->size)
			snprintf(run->err, sizeof(run->err), "delivery %zu: "
			    "size %llu but %zu octets", run->n_deliveries,
			    (unsigned long long)tx->size,
			    run->last_body[k].len);
		dlg_envelope(p, run->last_env, sizeof(run->last_env));
		run->n_deliveries++;
		if (strcmp(tx->sender, "deliverfail@example.org") == 0 ||
		    strcmp(tx->sender, "deliverfail@remote.test") == 0) {
			smtp_proto_complete(p, PR_EIO);
		} else {
			smtp_proto_queued_as(p, "0123456789abcdef");
			smtp_proto_complete(p, 0);
		}
		return false;
	}
	case SMTP_EV_STARTTLS:
		smtp_proto_tls_started(p, "TLSv1.3 TLS_TEST_CIPHER");
		return true;
	case SMTP_EV_MILTER: {
		struct smtp_milter_reply r;

		memset(&r, 0, sizeof(r));
		if (ev->milter_step == SMTP_MILTER_MAIL &&
		    strcmp(ev->addr, "milterno@remote.test") == 0) {
			r.outcome = SMTP_MILTER_REJECT;
			r.code = 550;
			snprintf(r.enh, sizeof(r.enh), "5.7.1");
			snprintf(r.text, sizeof(r.text), "Sender refused by "
			    "the filter");
		} else if (ev->milter_step == SMTP_MILTER_RCPT &&
		    strcasecmp(ev->addr, "bob@example.test") == 0) {
			r.outcome = SMTP_MILTER_REJECT;
			r.code = 550;
			snprintf(r.text, sizeof(r.text), "Not for bob");
		} else if (ev->milter_step == SMTP_MILTER_DATA &&
		    strcmp(smtp_proto_tx(p)->sender,
		    "datafail@remote.test") == 0) {
			r.outcome = SMTP_MILTER_TEMPFAIL;
		}
		if (r.outcome != SMTP_MILTER_NONE)
			smtp_proto_milter_reply(p, &r);
		smtp_proto_complete(p, 0);
		return false;
	}
	case SMTP_EV_DELAY:
		if (ev->delay_ms == 0)
			snprintf(run->err, sizeof(run->err), "delay of 0 ms");
		run->n_delays++;
		smtp_proto_complete(p, 0);
		return false;
	default:
		return false;
	}
}

/* --- Running ----------------------------------------------------------- */

/* Feeds what the "network" buffered; handles events as they come. */
static bool
dlg_pump(struct dlg *d, struct dlg_run *run, struct smtp_proto *p,
    struct buf *net)
{
	const struct smtp_event *ev;
	ssize_t n;

	for (;;) {
		if ((ev = smtp_proto_event(p)) != NULL) {
			if (dlg_event(d, run, p, ev)) {
				buf_reset(net);
				return true;
			}
			continue;
		}
		if (net->len == 0 || smtp_proto_closing(p))
			break;
		n = smtp_proto_feed(p, net->p, net->len);
		if (n < 0) {
			snprintf(run->err, sizeof(run->err), "feed: %s",
			    pr_strerror((int)n));
			return true;
		}
		buf_consume(net, (size_t)n);
		if (n == 0 && smtp_proto_event(p) == NULL) {
			/* Output high-water mark: the glue would write. */
			if (smtp_proto_out(p)->len == 0)
				break;
			return false;
		}
	}
	return false;
}

static bool
dlg_check_block(struct dlg *d, struct dlg_run *run, struct smtp_proto *p,
    size_t bi, struct buf *out)
{
	struct dlg_block *b = &d->blocks[bi];
	size_t i = 0, start = 0, k;

	for (k = 0; k + 1 < out->len; k++) {
		if (out->p[k] != '\r' || out->p[k + 1] != '\n')
			continue;
		char line[1024];
		size_t ll = k - start < sizeof(line) - 1 ? k - start :
		    sizeof(line) - 1;

		memcpy(line, out->p + start, ll);
		line[ll] = '\0';
		/* Past a matched "one or more" pattern, try it again. */
		if (i > 0 && b->want[i - 1][0] == '+' &&
		    dlg_match(b->want[i - 1] + 1, line)) {
			start = k + 2;
			k++;
			continue;
		}
		if (i >= b->n_want) {
			snprintf(run->err, sizeof(run->err), "block %zu: "
			    "unexpected reply \"%s\"", bi, line);
			return false;
		}
		if (!dlg_match(b->want[i] + 1, line)) {
			snprintf(run->err, sizeof(run->err), "block %zu: "
			    "reply %zu: got \"%s\", want \"%s\"", bi, i, line,
			    b->want[i] + 1);
			return false;
		}
		i++;
		start = k + 2;
		k++;
	}
	if (start != out->len) {
		snprintf(run->err, sizeof(run->err), "block %zu: output does "
		    "not end with CRLF", bi);
		return false;
	}
	if (i != b->n_want) {
		snprintf(run->err, sizeof(run->err), "block %zu: %zu replies, "
		    "want %zu (next: \"%s\")", bi, i, b->n_want,
		    b->want[i] + 1);
		return false;
	}
	if (b->want_close != smtp_proto_closing(p)) {
		snprintf(run->err, sizeof(run->err), "block %zu: closing is "
		    "%d, want %d", bi, smtp_proto_closing(p), b->want_close);
		return false;
	}
	if (b->want_deliveries >= 0 &&
	    (size_t)b->want_deliveries != run->n_deliveries) {
		snprintf(run->err, sizeof(run->err), "block %zu: %zu "
		    "deliveries, want %d", bi, run->n_deliveries,
		    b->want_deliveries);
		return false;
	}
	if (b->want_delays >= 0 &&
	    (size_t)b->want_delays != run->n_delays) {
		snprintf(run->err, sizeof(run->err), "block %zu: %zu "
		    "delays, want %d", bi, run->n_delays, b->want_delays);
		return false;
	}
	if (b->want_env != NULL && strcmp(b->want_env, run->last_env) != 0) {
		snprintf(run->err, sizeof(run->err), "block %zu: envelope "
		    "\"%s\", want \"%s\"", bi, run->last_env, b->want_env);
		return false;
	}
	return true;
}

/*
 * Runs the dialog once.  split == 0: each block whole; DLG_TRICKLE: one
 * octet per feed; otherwise each block in two pieces at offset split.
 */
static bool
dlg_run(struct dlg *d, size_t split, struct dlg_run *run)
{
	struct smtp_proto *p;
	struct buf net, out;
	size_t bi, i;
	bool ok = true;

	memset(run, 0, sizeof(*run));
	buf_init(&run->spool, 1 << 26);
	for (i = 0; i < 64; i++)
		buf_init(&run->last_body[i], 1 << 26);
	buf_init(&net, 1 << 26);
	buf_init(&out, 1 << 26);
	if (smtp_proto_new(&d->conf, &p) < 0)
		dlg_die("smtp_proto_new");
	if (d->conf.kind == SMTP_LISTEN_SUBMISSIONS)
		smtp_proto_tls_started(p, "TLSv1.3 TLS_TEST_CIPHER");
	smtp_proto_greet(p);
	for (bi = 0; bi < d->n_blocks && ok; bi++) {
		struct dlg_block *b = &d->blocks[bi];
		size_t off = 0, step;
		bool dropped = false;

		buf_reset(&out);
		if (b->in.len > 0 && smtp_proto_closing(p)) {
			snprintf(run->err, sizeof(run->err), "block %zu: "
			    "input after close", bi);
			ok = false;
			break;
		}
		do {
			struct buf *o;

			if (split == 0)
				step = b->in.len - off;
			else if (split == DLG_TRICKLE)
				step = 1;
			else
				step = off == 0 && split < b->in.len ? split :
				    b->in.len - off;
			if (step > b->in.len - off)
				step = b->in.len - off;
			if (!dropped)
				dlg_append(&net, b->in.p + off, step);
			off += step;
			for (;;) {
				if (dlg_pump(d, run, p, &net))
					dropped = true;
				o = smtp_proto_out(p);
				dlg_append(&out, o->p, o->len);
				buf_reset(o);
				if (run->err[0] != '\0' || net.len == 0 ||
				    smtp_proto_closing(p) ||
				    smtp_proto_event(p) != NULL)
					break;
			}
			if (run->err[0] != '\0')
				break;
		} while (off < b->in.len);
		if (run->err[0] != '\0' || !dlg_check_block(d, run, p, bi,
		    &out))
			ok = false;
	}
	if (ok && run->n_deliveries < d->n_bodies) {
		snprintf(run->err, sizeof(run->err), "%zu deliveries, %zu "
		    "bodies expected", run->n_deliveries, d->n_bodies);
		ok = false;
	}
	for (i = 0; ok && i < d->n_bodies && i < 64; i++) {
		struct buf *got = &run->last_body[i];

		if (got->len != d->bodies[i].len || (got->len > 0 &&
		    memcmp(got->p, d->bodies[i].p, got->len) != 0)) {
			snprintf(run->err, sizeof(run->err), "body %zu: got "
			    "%zu octets \"%.*s\", want %zu", i, got->len,
			    (int)(got->len > 200 ? 200 : got->len),
			    (const char *)got->p, d->bodies[i].len);
			ok = false;
		}
	}
	smtp_proto_free(&p);
	buf_fini(&net);
	buf_fini(&out);
	buf_fini(&run->spool);
	for (i = 0; i < 64; i++)
		buf_fini(&run->last_body[i]);
	return ok;
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "../dialog/smtp";
	char **names;
	size_t n_names, i;

	if (test_files_list(dir, ".dlg", &names, &n_names) < 0)
		dlg_die(dir);
	TAP_OK(n_names > 0, "dialog files found in %s", dir);
	for (i = 0; i < n_names; i++) {
		char path[4096];
		struct dlg d;
		struct dlg_run run;
		size_t maxlen = 0, k, stride;
		bool ok;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (dlg_load(path, &d) < 0)
			dlg_die(path);
		ok = dlg_run(&d, 0, &run);
		TAP_OK(ok, "%s whole", d.name);
		if (!ok)
			printf("#   %s\n", run.err);
		ok = dlg_run(&d, DLG_TRICKLE, &run);
		TAP_OK(ok, "%s trickle", d.name);
		if (!ok)
			printf("#   %s\n", run.err);
		for (k = 0; k < d.n_blocks; k++)
			if (d.blocks[k].in.len > maxlen)
				maxlen = d.blocks[k].in.len;
		/* Every offset for ordinary dialogs; a stride for the ones
		 * with megabyte blocks, to stay fast. */
		stride = maxlen > 4096 ? maxlen / 509 : 1;
		ok = true;
		for (k = 1; k < maxlen && ok; k += stride)
			if (!(ok = dlg_run(&d, k, &run)))
				printf("#   split at %zu: %s\n", k, run.err);
		TAP_OK(ok, "%s split at every offset (%zu)", d.name, maxlen);
		dlg_free(&d);
		free(names[i]);
	}
	free(names);
	return tap_done();
}
