/*
 * test_pop3_dialog.c - runs tests/dialog/pop3/NNN-name.dlg against the
 * POP3 core, in process, with a fake maildrop store.
 *
 * A dialog file:
 *
 *	# comment
 *	! config tls=none|starttls|implicit plaintext=yes|no
 *	         bad_cmd_max=N junk_max=N
 *	! user ADDRESS PASSWORD   (the rest of the line, expanded)
 *	! locked ADDRESS          (another session holds the maildrop)
 *	! tempfail ADDRESS        (the store fails to open the maildrop)
 *	! permfail ADDRESS        (... and says retrying will not help)
 *	! message ADDRESS UIDL [failopen|failread]
 *	Subject: lines of the message, each sent with CRLF
 *	! end                     (the message as the store keeps it:
 *	                           CRLF line ends, a final CRLF)
 *	C: a client line (CRLF appended unless it ends in %nocrlf%)
 *	S: an expected server line; '*' matches anything
 *	S: <close>
 *	! phase                   (the client waits for every reply so far)
 *	! session                 (the client drops; a new connection starts)
 *	! remaining ADDRESS UIDL... (the store after the last session)
 *
 * %hex[0d 0a]% and %repeat[300 x a]% expand in C:, S: and message lines
 * (the syntax of curl's test files).
 *
 * Every dialog runs three ways (docs/ARCHITECTURE.md 6.1): all client bytes of a phase
 * at once, one byte per feed, and split in two at every offset.  A phase
 * ends after a "C: STLS" line: what a client sends before it has seen the
 * STLS reply is plaintext that the TLS layer discards.  The transcript
 * must match the S: lines in every way of feeding.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "err.h"
#include "pop3_proto.h"
#include "tap.h"
#include "test_files.h"

#define DLG_MAX_USERS 8
#define DLG_MAX_MSGS 64
#define DLG_MAX_LINES 512
#define DLG_MAX_SESSIONS 8
#define DLG_MAX_PHASES 8

struct dlg_msg {
	char user[256];
	char uidl[POP3_UIDL_MAX + 1];
	struct buf data;
	bool fail_open, fail_read;
	bool gone;           /* deleted by a committed QUIT */
	int64_t id;
};

struct dlg_user {
	char addr[256];
	char pass[1100];
	bool locked, tempfail, permfail;
};

/* One expected line: bytes, or the <close> marker. */
struct dlg_expect {
	struct buf line;
	bool close;
	int lineno;
};

struct dlg_session {
	struct buf phase[DLG_MAX_PHASES];
	size_t n_phase;
	struct dlg_expect expect[DLG_MAX_LINES];
	size_t n_expect;
};

struct dlg {
	char name[256];
	struct pop3_config cfg;
	struct dlg_user users[DLG_MAX_USERS];
	size_t n_users;
	struct dlg_msg msgs[DLG_MAX_MSGS];
	size_t n_msgs;
	struct dlg_session sess[DLG_MAX_SESSIONS];
	size_t n_sess;
	char remaining[1024];
	bool check_remaining;
	char remaining_user[256];
};

/* How a run feeds bytes. */
enum dlg_mode { DLG_WHOLE, DLG_TRICKLE, DLG_SPLIT };

static char dlg_err[256];

/* --- Parsing ----------------------------------------------------------- */

static int
dlg_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Expands %hex[..]% and %repeat[N x s]% of s into out; *nocrlf is set
 * when the line ends with %nocrlf%.  Returns 0 or -1. */
static int
dlg_expand(const char *s, struct buf *out, bool *nocrlf)
{
	const char *e;
	unsigned long n;
	char *end;
	int hi, lo;

	*nocrlf = false;
	while (*s != '\0') {
		if (strncmp(s, "%hex[", 5) == 0) {
			if ((e = strstr(s, "]%")) == NULL)
				return -1;
			for (s += 5; s < e; s++) {
				if (*s == ' ')
					continue;
				if ((hi = dlg_hexval(s[0])) < 0 ||
				    (lo = dlg_hexval(s[1])) < 0)
					return -1;
				if (buf_append(out, &(uint8_t){ (uint8_t)(
				    hi * 16 + lo) }, 1) < 0)
					return -1;
				s++;
			}
			s = e + 2;
		} else if (strncmp(s, "%repeat[", 8) == 0) {
			if ((e = strstr(s, "]%")) == NULL)
				return -1;
			n = strtoul(s + 8, &end, 10);
			if (strncmp(end, " x ", 3) != 0)
				return -1;
			end += 3;
			while (n-- > 0)
				if (buf_append(out, end, (size_t)(e - end)) < 0)
					return -1;
			s = e + 2;
		} else if (strcmp(s, "%nocrlf%") == 0) {
			*nocrlf = true;
			s += 8;
		} else {
			if (buf_append(out, s, 1) < 0)
				return -1;
			s++;
		}
	}
	return 0;
}

static void
dlg_free(struct dlg *d)
{
	size_t i, j;

	for (i = 0; i < d->n_msgs; i++)
		buf_fini(&d->msgs[i].data);
	for (i = 0; i < d->n_sess; i++) {
		for (j = 0; j < d->sess[i].n_phase; j++)
			buf_fini(&d->sess[i].phase[j]);
		for (j = 0; j < d->sess[i].n_expect; j++)
			buf_fini(&d->sess[i].expect[j].line);
	}
}

static int
dlg_fail(int lineno, const char *what)
{
	snprintf(dlg_err, sizeof(dlg_err), "line %d: %s", lineno, what);
	return -1;
}

static int
dlg_config(struct dlg *d, char *args, int lineno)
{
	char *w, *save = NULL;

	for (w = strtok_r(args, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (strcmp(w, "tls=none") == 0) {
			d->cfg.tls_available = d->cfg.tls_active = false;
		} else if (strcmp(w, "tls=starttls") == 0) {
			d->cfg.tls_available = true;
			d->cfg.tls_active = false;
		} else if (strcmp(w, "tls=implicit") == 0) {
			d->cfg.tls_available = d->cfg.tls_active = true;
		} else if (strcmp(w, "plaintext=yes") == 0) {
			d->cfg.allow_plaintext_auth = true;
		} else if (strcmp(w, "plaintext=no") == 0) {
			d->cfg.allow_plaintext_auth = false;
		} else if (strncmp(w, "bad_cmd_max=", 12) == 0) {
			d->cfg.limits.bad_cmd_max = (unsigned)atoi(w + 12);
		} else if (strncmp(w, "junk_max=", 9) == 0) {
			d->cfg.limits.junk_max = (unsigned)atoi(w + 9);
		} else {
			return dlg_fail(lineno, "unknown config word");
		}
	}
	return 0;
}

/* The message as store_deliver stores it: a lone CR or LF becomes CRLF,
 * a non-empty message ends with CRLF.  Returns 0 or -1. */
static int
dlg_crlf(struct buf *b)
{
	struct buf out;
	int rc = 0;

	buf_init(&out, b->max);
	for (size_t i = 0; i < b->len && rc == 0; i++) {
		if (b->p[i] == '\r' && i + 1 < b->len && b->p[i + 1] == '\n')
			continue;
		if (b->p[i] == '\r' || b->p[i] == '\n')
			rc = buf_append(&out, "\r\n", 2);
		else
			rc = buf_append(&out, &b->p[i], 1);
	}
	if (rc == 0 && out.len > 0 && out.p[out.len - 1] != '\n')
		rc = buf_append(&out, "\r\n", 2);
	if (rc == 0) {
		buf_reset(b);
		rc = buf_append(b, out.p, out.len);
	}
	buf_fini(&out);
	return rc < 0 ? -1 : 0;
}

static int
dlg_load(const char *path, struct dlg *d)
{
	FILE *f;
	char line[8192], *nl;
	struct dlg_msg *m = NULL;
	struct dlg_session *s;
	struct buf tmp;
	bool nocrlf;
	int lineno = 0, rc = 0;

	memset(d, 0, sizeof(*d));
	d->cfg.hostname = "pop.example.test";
	d->cfg.tls_available = true;
	pop3_proto_limits_default(&d->cfg.limits);
	d->n_sess = 1;
	d->sess[0].n_phase = 1;
	for (size_t i = 0; i < DLG_MAX_SESSIONS; i++)
		for (size_t j = 0; j < DLG_MAX_PHASES; j++)
			buf_init(&d->sess[i].phase[j], 1 << 20);
	if ((f = fopen(path, "r")) == NULL)
		return dlg_fail(0, "cannot open");
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		s = &d->sess[d->n_sess - 1];
		if (m != NULL) {
			if (strcmp(line, "! end") == 0) {
				if (dlg_crlf(&m->data) < 0)
					rc = dlg_fail(lineno, "bad message");
				m = NULL;
				continue;
			}
			if (dlg_expand(line, &m->data, &nocrlf) < 0 ||
			    (!nocrlf && buf_append(&m->data, "\r\n", 2) < 0))
				rc = dlg_fail(lineno, "bad message line");
			continue;
		}
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strncmp(line, "! config ", 9) == 0) {
			rc = dlg_config(d, line + 9, lineno);
		} else if (strncmp(line, "! user ", 7) == 0) {
			struct dlg_user *u;
			const char *pw;

			if (d->n_users >= DLG_MAX_USERS)
				return dlg_fail(lineno, "too many users");
			u = &d->users[d->n_users++];
			if (sscanf(line + 7, "%255s", u->addr) != 1 ||
			    (pw = strchr(line + 7, ' ')) == NULL)
				return dlg_fail(lineno, "bad user");
			/* The password is the rest of the line, expanded. */
			buf_init(&tmp, sizeof(u->pass) - 1);
			if (dlg_expand(pw + 1, &tmp, &nocrlf) < 0) {
				buf_fini(&tmp);
				return dlg_fail(lineno, "bad password");
			}
			memcpy(u->pass, tmp.p, tmp.len);
			u->pass[tmp.len] = '\0';
			buf_fini(&tmp);
		} else if (strncmp(line, "! locked ", 9) == 0 ||
		    strncmp(line, "! tempfail ", 11) == 0 ||
		    strncmp(line, "! permfail ", 11) == 0) {
			size_t i;

			for (i = 0; i < d->n_users; i++) {
				if (strcmp(d->users[i].addr,
				    strchr(line + 2, ' ') + 1) != 0)
					continue;
				if (line[2] == 'l')
					d->users[i].locked = true;
				else if (line[2] == 't')
					d->users[i].tempfail = true;
				else
					d->users[i].permfail = true;
				break;
			}
			if (i == d->n_users)
				return dlg_fail(lineno, "no such user");
		} else if (strncmp(line, "! message ", 10) == 0) {
			char flag[32] = "";

			if (d->n_msgs >= DLG_MAX_MSGS)
				return dlg_fail(lineno, "too many messages");
			m = &d->msgs[d->n_msgs++];
			m->id = 1000 + (int64_t)d->n_msgs;
			buf_init(&m->data, 64 << 20);
			if (sscanf(line + 10, "%255s %70s %31s", m->user,
			    m->uidl, flag) < 2)
				rc = dlg_fail(lineno, "bad message");
			m->fail_open = strcmp(flag, "failopen") == 0;
			m->fail_read = strcmp(flag, "failread") == 0;
		} else if (strcmp(line, "! phase") == 0) {
			if (s->n_phase >= DLG_MAX_PHASES)
				return dlg_fail(lineno, "too many phases");
			s->n_phase++;
		} else if (strcmp(line, "! session") == 0) {
			if (d->n_sess >= DLG_MAX_SESSIONS)
				return dlg_fail(lineno, "too many sessions");
			d->n_sess++;
			d->sess[d->n_sess - 1].n_phase = 1;
		} else if (strncmp(line, "! remaining ", 12) == 0) {
			char *sp;

			d->check_remaining = true;
			if (sscanf(line + 12, "%255s", d->remaining_user) != 1)
				return dlg_fail(lineno, "bad remaining");
			sp = strchr(line + 12, ' ');
			snprintf(d->remaining, sizeof(d->remaining), "%s",
			    sp != NULL ? sp + 1 : "");
		} else if (strncmp(line, "C: ", 3) == 0 ||
		    strcmp(line, "C:") == 0) {
			struct buf *ph = &s->phase[s->n_phase - 1];

			if (dlg_expand(line[2] ? line + 3 : "", ph,
			    &nocrlf) < 0 ||
			    (!nocrlf && buf_append(ph, "\r\n", 2) < 0))
				rc = dlg_fail(lineno, "bad C: line");
			if (strcasecmp(line, "C: STLS") == 0) {
				if (s->n_phase >= DLG_MAX_PHASES)
					return dlg_fail(lineno,
					    "too many STLS");
				s->n_phase++;
			}
		} else if (strncmp(line, "S: ", 3) == 0 ||
		    strcmp(line, "S:") == 0) {
			struct dlg_expect *x;

			if (s->n_expect >= DLG_MAX_LINES)
				return dlg_fail(lineno, "too many S: lines");
			x = &s->expect[s->n_expect++];
			x->lineno = lineno;
			buf_init(&x->line, 1 << 20);
			if (strcmp(line, "S: <close>") == 0) {
				x->close = true;
				continue;
			}
			if (dlg_expand(line[2] ? line + 3 : "", &x->line,
			    &nocrlf) < 0)
				rc = dlg_fail(lineno, "bad S: line");
		} else {
			rc = dlg_fail(lineno, "unknown line");
		}
	}
	fclose(f);
	if (rc == 0 && m != NULL)
		rc = dlg_fail(lineno, "message without ! end");
	return rc;
}

/* --- Matching ---------------------------------------------------------- */

/* Glob match of a line against a pattern where '*' matches any run. */
static bool
dlg_match(const uint8_t *pat, size_t pn, const uint8_t *s, size_t sn)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < sn) {
		if (pi < pn && pat[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pn && pat[pi] == s[si]) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pn && pat[pi] == '*')
		pi++;
	return pi == pn;
}

static void
dlg_show(const char *label, const uint8_t *p, size_t n)
{
	size_t i;

	printf("#   %s \"", label);
	for (i = 0; i < n && i < 200; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f)
			putchar(p[i]);
		else
			printf("\\x%02x", p[i]);
	}
	printf("%s\"\n", n > 200 ? "..." : "");
}

/* Compares a session transcript with its S: lines. */
static bool
dlg_compare(const struct dlg_session *s, const struct buf *out, bool closed,
    bool verbose)
{
	size_t pos = 0, i, n;
	const uint8_t *crlf;
	bool want_close = false;

	for (i = 0; i < s->n_expect; i++) {
		const struct dlg_expect *x = &s->expect[i];

		if (x->close) {
			want_close = true;
			if (i + 1 != s->n_expect) {
				if (verbose)
					printf("#   <close> is not last\n");
				return false;
			}
			break;
		}
		crlf = pos < out->len ? memmem(out->p + pos, out->len - pos,
		    "\r\n", 2) : NULL;
		if (crlf == NULL) {
			if (verbose) {
				printf("#   line %d: output ended\n",
				    x->lineno);
				dlg_show("want", x->line.p, x->line.len);
				dlg_show("rest", out->p + pos, out->len - pos);
			}
			return false;
		}
		n = (size_t)(crlf - (out->p + pos));
		if (!dlg_match(x->line.p, x->line.len, out->p + pos, n)) {
			if (verbose) {
				printf("#   line %d: mismatch\n", x->lineno);
				dlg_show("want", x->line.p, x->line.len);
				dlg_show("got ", out->p + pos, n);
			}
			return false;
		}
		pos += n + 2;
	}
	if (pos != out->len) {
		if (verbose)
			dlg_show("extra output", out->p + pos, out->len - pos);
		return false;
	}
	if (closed != want_close) {
		if (verbose)
			printf("#   session %s\n", closed ?
			    "closed unexpectedly" : "did not close");
		return false;
	}
	return true;
}

/* --- The fake store and the event loop ---------------------------------- */

struct dlg_run {
	struct dlg *d;
	enum dlg_mode mode;
	size_t split;          /* DLG_SPLIT: offset; body chunk size */
	bool gone[DLG_MAX_MSGS];
	struct pop3_proto *p;
	struct buf out;
	bool closed;
	bool failed;
	char why[256];
};

static void
dlg_drain(struct dlg_run *r)
{
	struct buf *o = pop3_proto_out(r->p);

	if (buf_append(&r->out, o->p, o->len) < 0)
		r->failed = true;
	buf_reset(o);
}

static void
dlg_auth(struct dlg_run *r, const struct pop3_event *ev)
{
	struct pop3_msg *list;
	const struct dlg_user *u = NULL;
	size_t i, n = 0;

	for (i = 0; i < r->d->n_users; i++)
		if (strcasecmp(r->d->users[i].addr, ev->user) == 0)
			u = &r->d->users[i];
	if (u == NULL || strcmp(u->pass, ev->pass) != 0) {
		pop3_proto_complete(r->p, PR_EAUTH);
		return;
	}
	if (u->locked) {
		pop3_proto_complete(r->p, PR_EBUSY);
		return;
	}
	if (u->tempfail || u->permfail) {
		pop3_proto_complete(r->p, u->tempfail ? PR_EIO :
		    PR_EVERSION);
		return;
	}
	if ((list = calloc(DLG_MAX_MSGS, sizeof(*list))) == NULL) {
		r->failed = true;
		return;
	}
	for (i = 0; i < r->d->n_msgs; i++) {
		const struct dlg_msg *m = &r->d->msgs[i];

		if (r->gone[i] || strcasecmp(m->user, u->addr) != 0)
			continue;
		list[n].id = m->id;
		list[n].size = (int64_t)m->data.len;
		snprintf(list[n].uidl, sizeof(list[n].uidl), "%s", m->uidl);
		n++;
	}
	pop3_proto_maildrop(r->p, list, n);
	pop3_proto_complete(r->p, 0);
}

static struct dlg_msg *
dlg_find(struct dlg_run *r, int64_t id, size_t *i_r)
{
	size_t i;

	for (i = 0; i < r->d->n_msgs; i++)
		if (r->d->msgs[i].id == id) {
			*i_r = i;
			return &r->d->msgs[i];
		}
	return NULL;
}

static void
dlg_body(struct dlg_run *r, const struct pop3_event *ev)
{
	struct dlg_msg *m;
	size_t i, off = 0, chunk, n;
	ssize_t k;

	if ((m = dlg_find(r, ev->msg_id, &i)) == NULL || m->fail_open) {
		pop3_proto_complete(r->p, PR_EIO);
		return;
	}
	/* Opened: the "+OK" goes out before the first read. */
	pop3_proto_body_feed(r->p, m->data.p, 0);
	dlg_drain(r);
	chunk = r->mode == DLG_TRICKLE ? 1 : r->mode == DLG_SPLIT ?
	    r->split : m->data.len;
	if (chunk == 0)
		chunk = 1;
	if (m->fail_read) {
		pop3_proto_complete(r->p, PR_EIO);
		return;
	}
	while (off < m->data.len && pop3_proto_body_wanted(r->p)) {
		n = m->data.len - off < chunk ? m->data.len - off : chunk;
		/* The core may take less than offered; offer the rest
		 * again after draining, as the glue does. */
		while (n > 0) {
			k = pop3_proto_body_feed(r->p, m->data.p + off, n);
			dlg_drain(r);
			if (k < 0) {
				r->failed = true;
				return;
			}
			if (k == 0) {
				snprintf(r->why, sizeof(r->why),
				    "body_feed took nothing");
				r->failed = true;
				return;
			}
			off += (size_t)k;
			n -= (size_t)k;
			if (!pop3_proto_body_wanted(r->p))
				break;
		}
	}
	pop3_proto_complete(r->p, 0);
}

static void
dlg_commit(struct dlg_run *r, const struct pop3_event *ev)
{
	size_t i, j;

	for (i = 0; i < ev->n_ids; i++)
		if (dlg_find(r, ev->ids[i], &j) != NULL)
			r->gone[j] = true;
	pop3_proto_complete(r->p, 0);
}

/* Handles events until none is pending.  Returns true when the phase's
 * remaining input must be discarded (STLS). */
static bool
dlg_events(struct dlg_run *r)
{
	const struct pop3_event *ev;
	bool discard = false;
	int guard = 0;

	while (!r->closed && !r->failed) {
		if (pop3_proto_closing(r->p)) {
			r->closed = true;
			break;
		}
		if ((ev = pop3_proto_event(r->p)) == NULL)
			break;
		if (++guard > 1000000) {
			snprintf(r->why, sizeof(r->why), "event loop stuck");
			r->failed = true;
			break;
		}
		switch (ev->type) {
		case POP3_EV_STLS:
			dlg_drain(r);
			pop3_proto_tls_started(r->p);
			discard = true;
			break;
		case POP3_EV_AUTH:
			dlg_auth(r, ev);
			break;
		case POP3_EV_MORE:
			pop3_proto_complete(r->p, 0);
			break;
		case POP3_EV_BODY:
			dlg_body(r, ev);
			break;
		case POP3_EV_COMMIT:
			dlg_commit(r, ev);
			break;
		case POP3_EV_NONE:
			break;
		}
		dlg_drain(r);
	}
	return discard;
}

/* Feeds one delivery of client bytes (plus what the core left over). */
static bool
dlg_deliver(struct dlg_run *r, struct buf *pending, const uint8_t *data,
    size_t n)
{
	ssize_t k;

	if (buf_append(pending, data, n) < 0) {
		r->failed = true;
		return false;
	}
	for (;;) {
		if (r->closed || r->failed)
			return false;
		k = pop3_proto_feed(r->p, pending->p, pending->len);
		dlg_drain(r);
		if (k < 0) {
			snprintf(r->why, sizeof(r->why), "feed: %s",
			    pr_strerror((int)k));
			r->failed = true;
			return false;
		}
		buf_consume(pending, (size_t)k);
		if (dlg_events(r)) {
			/* STLS: the rest of this phase is pre-TLS plaintext. */
			buf_reset(pending);
			return true;
		}
		if (k == 0 && pop3_proto_event(r->p) == NULL)
			return false;
		if (pending->len == 0)
			return false;
	}
}

static bool
dlg_run_session(struct dlg_run *r, const struct dlg_session *s,
    bool verbose)
{
	struct buf pending;
	size_t ph, off, step;
	bool ok;

	buf_init(&r->out, 64 << 20);
	buf_init(&pending, 1 << 20);
	r->closed = r->failed = false;
	r->why[0] = '\0';
	if (pop3_proto_new(&r->d->cfg, &r->p) < 0) {
		buf_fini(&r->out);
		buf_fini(&pending);
		return false;
	}
	pop3_proto_greet(r->p);
	dlg_drain(r);
	for (ph = 0; ph < s->n_phase && !r->closed && !r->failed; ph++) {
		const struct buf *in = &s->phase[ph];

		buf_reset(&pending);
		for (off = 0; off < in->len && !r->closed && !r->failed;
		    off += step) {
			switch (r->mode) {
			case DLG_WHOLE:
				step = in->len;
				break;
			case DLG_TRICKLE:
				step = 1;
				break;
			default:
				step = off == 0 && r->split < in->len ?
				    r->split : in->len - off;
				break;
			}
			if (dlg_deliver(r, &pending, in->p + off, step))
				break;
		}
	}
	ok = !r->failed && dlg_compare(s, &r->out, r->closed, verbose);
	if (verbose && r->why[0] != '\0')
		printf("#   %s\n", r->why);
	/* The connection ends here; without a committed QUIT nothing is
	 * deleted (RFC 1939 6). */
	pop3_proto_free(&r->p);
	buf_fini(&r->out);
	buf_fini(&pending);
	return ok;
}

static bool
dlg_check_remaining(struct dlg_run *r, bool verbose)
{
	char want[1024], got[1024] = "";
	size_t i;

	snprintf(want, sizeof(want), "%s", r->d->remaining);
	for (i = 0; i < r->d->n_msgs; i++) {
		if (r->gone[i] || strcasecmp(r->d->msgs[i].user,
		    r->d->remaining_user) != 0)
			continue;
		if (got[0] != '\0')
			strncat(got, " ", sizeof(got) - strlen(got) - 1);
		strncat(got, r->d->msgs[i].uidl, sizeof(got) - strlen(got) - 1);
	}
	if (strcmp(want, got) == 0)
		return true;
	if (verbose)
		printf("#   remaining: want \"%s\", got \"%s\"\n", want, got);
	return false;
}

static bool
dlg_run(struct dlg *d, enum dlg_mode mode, size_t split, bool verbose)
{
	struct dlg_run r;
	size_t i;
	bool ok = true;

	memset(&r, 0, sizeof(r));
	r.d = d;
	r.mode = mode;
	r.split = split;
	for (i = 0; i < d->n_sess && ok; i++) {
		ok = dlg_run_session(&r, &d->sess[i], verbose);
		if (!ok && verbose)
			printf("#   in session %zu\n", i + 1);
	}
	if (ok && d->check_remaining)
		ok = dlg_check_remaining(&r, verbose);
	return ok;
}

static size_t
dlg_longest_phase(const struct dlg *d)
{
	size_t i, j, max = 0;

	for (i = 0; i < d->n_sess; i++)
		for (j = 0; j < d->sess[i].n_phase; j++)
			if (d->sess[i].phase[j].len > max)
				max = d->sess[i].phase[j].len;
	return max;
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "../dialog/pop3";
	char **names, path[4096];
	struct dlg *d;
	size_t n, i, k, max, bad_at;
	bool ok;

	if (test_files_list(dir, ".dlg", &names, &n) < 0) {
		printf("Bail out! cannot read %s\n", dir);
		return 1;
	}
	TAP_OK(n > 0, "found dialog files in %s", dir);
	if ((d = malloc(sizeof(*d))) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (dlg_load(path, d) < 0) {
			TAP_OK(0, "%s: parse: %s", names[i], dlg_err);
			dlg_free(d);
			free(names[i]);
			continue;
		}
		ok = dlg_run(d, DLG_WHOLE, 0, false);
		if (!ok)
			dlg_run(d, DLG_WHOLE, 0, true);
		TAP_OK(ok, "%s: whole", names[i]);
		ok = dlg_run(d, DLG_TRICKLE, 0, false);
		if (!ok)
			dlg_run(d, DLG_TRICKLE, 0, true);
		TAP_OK(ok, "%s: trickle", names[i]);
		max = dlg_longest_phase(d);
		bad_at = 0;
		for (k = 1; k < max; k++) {
			if (!dlg_run(d, DLG_SPLIT, k, false)) {
				bad_at = k;
				dlg_run(d, DLG_SPLIT, k, true);
				break;
			}
		}
		TAP_OK(bad_at == 0, "%s: split at every offset (%zu)%s",
		    names[i], max > 0 ? max - 1 : 0,
		    bad_at ? " FAILED" : "");
		if (bad_at)
			printf("#   first failing offset %zu\n", bad_at);
		dlg_free(d);
		free(names[i]);
	}
	free(names);
	free(d);
	return tap_done();
}
