/*
 * smtp_milter.c - the content filters of one message, on the loop
 * (smtp_milter.h; docs/MILTER.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "smtp_milter.h"
#include "smtp_parse.h"
#include "xmalloc.h"

/* One filter's connection.  It outlives the run when the session goes
 * away mid-conversation: the handles close asynchronously. */
struct smtp_milter_link {
	struct smtp_milter *m;  /* NULL once detached */
	size_t idx;             /* the filter's place in the list */
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} u;
	uv_timer_t timer;
	uv_connect_t creq;
	uv_write_t wreq;
	bool conn_err;          /* the connect failed at once */
	bool connected;
	struct buf wbuf;        /* the octets being written */
	bool writing;
	int open;               /* handles not yet closed */
};

/* One filter of the session. */
struct smtp_milter_filter {
	struct milter_conv *conv;      /* NULL before its first step */
	struct smtp_milter_link *link; /* NULL once closed */
	uint64_t packets;
	bool conn_sent, helo_sent;     /* its SMFIC_CONNECT, SMFIC_HELO */
	bool cmd_sent;                 /* the step that runs was sent */
	bool broken;                   /* failed: logged, closed */
	bool skip;                     /* ... with on_failure = accept */
};

struct smtp_milter {
	uv_loop_t *loop;
	/* A copy: a SIGHUP may change the configuration under the run. */
	struct cfg_milter_list list;
	uint64_t timeout_ms;
	bool fail_accept;
	const struct milter_env *env;
	const char *sid;
	struct smtp_milter_filter f[CFG_MILTER_MAX];
	/* The step that runs. */
	bool running;
	bool in_step, answered_at_once;
	enum milter_cmd cmd;
	char arg[512];
	struct smtp_milter_src src;
	uint64_t src_off;
	uint64_t deadline;          /* uv_now() ms; 0 = none */
	size_t cur;                 /* the filter being asked */
	size_t n_asked;
	smtp_milter_cb cb;
	void *data;
	enum milter_verdict verdict;
	size_t decided_by;          /* index + 1; 0 = none */
	size_t rp_len;              /* the Return-Path before src.head */
	uint8_t chunk[MILTER_CHUNK_MAX];
};

/* Whether each filter is in a failure episode, by its spec: a filter
 * that is down is logged when it goes down and when it is back, not for
 * every message in between. */
#define SMTP_MILTER_STATE_MAX 32
static struct {
	char spec[200];
	bool down;
} smtp_milter_state[SMTP_MILTER_STATE_MAX];

static bool *
smtp_milter_down(const char *spec)
{
	size_t i;

	for (i = 0; i < SMTP_MILTER_STATE_MAX; i++)
		if (strcmp(smtp_milter_state[i].spec, spec) == 0)
			return &smtp_milter_state[i].down;
	for (i = 0; i < SMTP_MILTER_STATE_MAX; i++)
		if (smtp_milter_state[i].spec[0] == '\0') {
			snprintf(smtp_milter_state[i].spec,
			    sizeof(smtp_milter_state[i].spec), "%s", spec);
			return &smtp_milter_state[i].down;
		}
	/* More filters than ever configured at once: share a slot. */
	return &smtp_milter_state[0].down;
}

static void smtp_milter_drive(struct smtp_milter *m);

/* --- The connection ---------------------------------------------------- */

static void
smtp_milter_link_closed(uv_handle_t *h)
{
	struct smtp_milter_link *k = h->data;

	if (--k->open == 0) {
		buf_fini(&k->wbuf);
		free(k);
	}
}

static void
smtp_milter_link_close(struct smtp_milter_link *k)
{
	k->m = NULL;
	uv_timer_stop(&k->timer);
	if (!uv_is_closing(&k->u.h))
		uv_close(&k->u.h, smtp_milter_link_closed);
	if (!uv_is_closing((uv_handle_t *)&k->timer))
		uv_close((uv_handle_t *)&k->timer, smtp_milter_link_closed);
}

/* The filter failed (its conversation says why): logged once per
 * episode, its connection closed; with on_failure = accept it is not
 * asked again in this session. */
static void
smtp_milter_broken(struct smtp_milter *m, size_t i)
{
	struct smtp_milter_filter *f = &m->f[i];
	const struct cfg_milter *spec = &m->list.a[i];
	bool *down = smtp_milter_down(spec->spec);
	char rq[LOG_VALUE_MAX];

	if (f->broken)
		return;
	f->broken = true;
	f->skip = m->fail_accept;
	if (!*down)
		log_warn(m->sid, "milter filter=%s status=down reason=%s "
		    "on_failure=%s", spec->spec, log_value(f->conv != NULL ?
		    milter_conv_result(f->conv)->error : "out of memory", rq,
		    sizeof(rq)), m->fail_accept ? "accept" : "tempfail");
	*down = true;
	if (f->link != NULL) {
		smtp_milter_link_close(f->link);
		f->link = NULL;
	}
}

static void
smtp_milter_fail(struct smtp_milter *m, size_t i, const char *why)
{
	milter_conv_fail(m->f[i].conv, why);
	smtp_milter_broken(m, i);
	smtp_milter_drive(m);
}

static void
smtp_milter_timer_cb(uv_timer_t *t)
{
	struct smtp_milter_link *k = t->data;
	struct smtp_milter *m = k->m;

	if (m == NULL)
		return;
	smtp_milter_fail(m, k->idx, k->conn_err ? "cannot connect" :
	    m->deadline != 0 && uv_now(m->loop) >= m->deadline ?
	    "the end of the message took too long" : "timed out");
}

/* The wait for the filter's next packet: the step's timeout, within the
 * message's deadline; none while no reply is awaited. */
static void
smtp_milter_arm(struct smtp_milter *m, size_t i)
{
	struct smtp_milter_filter *f = &m->f[i];

	if (f->link == NULL)
		return;
	if (f->conv != NULL && f->link->connected &&
	    milter_conv_event(f->conv) == MILTER_EV_DONE) {
		uv_timer_stop(&f->link->timer);
		return;
	}
	uv_timer_start(&f->link->timer, smtp_milter_timer_cb,
	    milter_wait_ms(m->timeout_ms, m->deadline, uv_now(m->loop)), 0);
}

static void
smtp_milter_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char rbuf[65536];

	(void)h;
	(void)hint;
	/* Fed to the core at once: one buffer serves every link. */
	b->base = rbuf;
	b->len = sizeof(rbuf);
}

/* Writes what the conversation has for the filter, one write at a
 * time: the next octets are made only once the last ones are gone
 * (backpressure). */
static void smtp_milter_write_cb(uv_write_t *req, int status);

static void
smtp_milter_flush(struct smtp_milter *m, size_t i)
{
	struct smtp_milter_filter *f = &m->f[i];
	struct smtp_milter_link *k = f->link;
	struct buf *out;
	struct buf t;
	uv_buf_t b;

	if (k == NULL || !k->connected || k->writing || f->conv == NULL)
		return;
	out = milter_conv_out(f->conv);
	if (out->len == 0)
		return;
	t = k->wbuf;
	k->wbuf = *out;
	*out = t;
	buf_reset(out);
	b = uv_buf_init((char *)k->wbuf.p, (unsigned)k->wbuf.len);
	if (uv_write(&k->wreq, &k->u.s, &b, 1, smtp_milter_write_cb) < 0) {
		milter_conv_fail(f->conv, "cannot write");
		smtp_milter_broken(m, i);
		return;
	}
	k->writing = true;
}

static void
smtp_milter_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct smtp_milter_link *k = s->data;
	struct smtp_milter *m = k->m;
	struct smtp_milter_filter *f;

	if (m == NULL || n == 0)
		return;
	f = &m->f[k->idx];
	if (n < 0) {
		smtp_milter_fail(m, k->idx, n == UV_EOF ? "the filter closed "
		    "the connection" : uv_strerror((int)n));
		return;
	}
	milter_conv_feed(f->conv, (const uint8_t *)b->base, (size_t)n);
	smtp_milter_flush(m, k->idx);
	if (milter_conv_failed(f->conv)) {
		smtp_milter_broken(m, k->idx);
	} else if (milter_conv_packets(f->conv) != f->packets) {
		/* Every packet, SMFIR_PROGRESS too, shows the filter at
		 * work; the deadline still bounds the message. */
		f->packets = milter_conv_packets(f->conv);
		smtp_milter_arm(m, k->idx);
	}
	smtp_milter_drive(m);
}

static void
smtp_milter_write_cb(uv_write_t *req, int status)
{
	struct smtp_milter_link *k = req->data;
	struct smtp_milter *m = k->m;

	k->writing = false;
	buf_reset(&k->wbuf);
	buf_shrink(&k->wbuf, MILTER_PKT_MAX);
	if (m == NULL)
		return;
	if (status < 0) {
		smtp_milter_fail(m, k->idx, uv_strerror(status));
		return;
	}
	/* The filter took what was written: it is at work, as with a
	 * packet (a body to a filter that answers no chunk, SMFIP_NR_BODY,
	 * may take longer than one timeout to go out); the deadline
	 * still bounds the message. */
	smtp_milter_arm(m, k->idx);
	smtp_milter_flush(m, k->idx);
	smtp_milter_drive(m);
}

static void
smtp_milter_connect_cb(uv_connect_t *req, int status)
{
	struct smtp_milter_link *k = req->data;
	struct smtp_milter *m = k->m;

	if (m == NULL)
		return;
	if (status < 0) {
		smtp_milter_fail(m, k->idx, uv_strerror(status));
		return;
	}
	k->connected = true;
	uv_read_start(&k->u.s, smtp_milter_alloc_cb, smtp_milter_read_cb);
	smtp_milter_flush(m, k->idx);
	smtp_milter_drive(m);
}

static int
smtp_milter_connect(struct smtp_milter *m, size_t i)
{
	const struct cfg_milter *f = &m->list.a[i];
	struct smtp_milter_link *k = xcalloc(1, sizeof(*k));
	struct sockaddr_storage ss;
	int r;

	k->m = m;
	k->idx = i;
	buf_init(&k->wbuf, 4 * MILTER_PKT_MAX);
	uv_timer_init(m->loop, &k->timer);
	k->timer.data = k;
	k->open = 2;
	k->creq.data = k;
	k->wreq.data = k;
	m->f[i].link = k;
	if (f->kind == CFG_MILTER_UNIX) {
		uv_pipe_init(m->loop, &k->u.pipe, 0);
		k->u.h.data = k;
		uv_pipe_connect(&k->creq, &k->u.pipe, f->path,
		    smtp_milter_connect_cb);
		return 0;
	}
	uv_tcp_init(m->loop, &k->u.tcp);
	k->u.h.data = k;
	/* An address, or localhost: no resolver on this path. */
	r = uv_ip4_addr(strcmp(f->host, "localhost") == 0 ? "127.0.0.1" :
	    f->host, atoi(f->port), (struct sockaddr_in *)&ss);
	if (r < 0)
		r = uv_ip6_addr(f->host, atoi(f->port),
		    (struct sockaddr_in6 *)&ss);
	if (r == 0)
		r = uv_tcp_connect(&k->creq, &k->u.tcp,
		    (const struct sockaddr *)&ss, smtp_milter_connect_cb);
	return r;
}

/* --- The message ------------------------------------------------------- */

/* The next octets of trace fields and message, at most a chunk. */
static ssize_t
smtp_milter_read_src(struct smtp_milter *m, bool *last_r)
{
	const struct smtp_milter_src *s = &m->src;
	uint64_t total = s->head_len + (s->fd >= 0 ? s->fd_len : s->mem_len);
	uint64_t off = m->src_off;
	size_t n = 0, want;

	while (n < sizeof(m->chunk) && off < total) {
		want = sizeof(m->chunk) - n;
		if (off < s->head_len) {
			size_t k = s->head_len - (size_t)off;

			k = k < want ? k : want;
			memcpy(m->chunk + n, s->head + off, k);
			n += k;
			off += k;
			continue;
		}
		if (total - off < want)
			want = (size_t)(total - off);
		if (s->fd < 0) {
			memcpy(m->chunk + n, s->mem + (off - s->head_len),
			    want);
		} else {
			/* The spool file was just written: in the page
			 * cache, a read costs what a memcpy does. */
			ssize_t r = pread(s->fd, m->chunk + n, want,
			    (off_t)(off - s->head_len));

			if (r <= 0)
				return -1;
			want = (size_t)r;
		}
		n += want;
		off += want;
	}
	m->src_off = off;
	*last_r = off >= total;
	return (ssize_t)n;
}

/* --- Driving a step ---------------------------------------------------- */

/* Sends step cmd to filter i and waits for its answer. */
static void
smtp_milter_send(struct smtp_milter *m, size_t i, enum milter_cmd cmd,
    const char *arg)
{
	struct smtp_milter_filter *f = &m->f[i];

	if (cmd == MILTER_CMD_MESSAGE)
		m->src_off = 0;
	milter_conv_step(f->conv, cmd, arg);
	smtp_milter_flush(m, i);
	smtp_milter_arm(m, i);
}

/* The filter answered: logged when it is back after a failure. */
static void
smtp_milter_up(struct smtp_milter *m, size_t i)
{
	bool *down = smtp_milter_down(m->list.a[i].spec);

	if (*down)
		log_info(m->sid, "milter filter=%s status=up",
		    m->list.a[i].spec);
	*down = false;
}

/* Opens filter i's conversation and connection. */
static void
smtp_milter_start(struct smtp_milter *m, size_t i)
{
	struct smtp_milter_filter *f = &m->f[i];

	if (milter_conv_new(m->env, &f->conv) < 0) {
		log_err(m->sid, "milter: out of memory");
		f->broken = true;
		f->skip = m->fail_accept;
		return;
	}
	if (smtp_milter_connect(m, i) < 0) {
		/* Reported from the loop, never from inside the caller. */
		f->link->conn_err = true;
		uv_timer_start(&f->link->timer, smtp_milter_timer_cb, 0, 0);
		return;
	}
	uv_timer_start(&f->link->timer, smtp_milter_timer_cb, m->timeout_ms,
	    0);
}

/*
 * Takes the step through the filters from m->cur on, as far as it can
 * go now: a filter's first step is preceded by its connection, its
 * SMFIC_CONNECT and (past HELO) its SMFIC_HELO; the first filter that
 * refuses decides.  Runs the callback once the step is answered.
 */
static void
smtp_milter_drive(struct smtp_milter *m)
{
	while (m->running && m->cur < m->list.n) {
		size_t i = m->cur;
		struct smtp_milter_filter *f = &m->f[i];
		enum milter_verdict v;
		enum milter_event ev;
		bool last;
		ssize_t n;

		if (f->skip || (f->conv == NULL &&
		    m->cmd == MILTER_CMD_ABORT)) {
			m->cur++;
			continue;
		}
		if (m->n_asked < i + 1)
			m->n_asked = i + 1;
		if (f->conv == NULL && !f->broken) {
			smtp_milter_start(m, i);
			if (f->conv != NULL)
				return;
		}
		if (f->conv == NULL || milter_conv_failed(f->conv)) {
			smtp_milter_broken(m, i);
			if (m->cmd == MILTER_CMD_ABORT || f->skip) {
				m->cur++;
				continue;
			}
			m->verdict = MILTER_FAILED;
			m->decided_by = i + 1;
			break;
		}
		if (!f->link->connected)
			return;
		smtp_milter_flush(m, i);
		/* A write refused at once broke it (and closed its link). */
		if (milter_conv_failed(f->conv))
			continue;
		ev = milter_conv_event(f->conv);
		if (ev == MILTER_EV_DATA) {
			if (f->link->writing)
				return;
			if ((n = smtp_milter_read_src(m, &last)) < 0) {
				milter_conv_fail(f->conv, "cannot read the "
				    "spooled message");
				continue;
			}
			milter_conv_data(f->conv, m->chunk, (size_t)n, last);
			smtp_milter_flush(m, i);
			continue;
		}
		if (ev == MILTER_EV_NONE)
			return;
		/* The last thing sent is answered (or needed no answer). */
		if (!f->conn_sent) {
			f->conn_sent = true;
			smtp_milter_send(m, i, MILTER_CMD_CONNECT, NULL);
			continue;
		}
		if (!f->helo_sent && m->cmd != MILTER_CMD_HELO &&
		    m->cmd != MILTER_CMD_ABORT && m->env->helo != NULL) {
			f->helo_sent = true;
			smtp_milter_send(m, i, MILTER_CMD_HELO, NULL);
			continue;
		}
		if (!f->cmd_sent) {
			f->cmd_sent = true;
			if (m->cmd == MILTER_CMD_HELO)
				f->helo_sent = true;
			smtp_milter_send(m, i, m->cmd, m->arg[0] ? m->arg :
			    NULL);
			continue;
		}
		uv_timer_stop(&f->link->timer);
		smtp_milter_up(m, i);
		v = milter_conv_result(f->conv)->verdict;
		if (v == MILTER_REJECT || v == MILTER_TEMPFAIL ||
		    v == MILTER_DISCARD) {
			/* The first filter that refuses decides. */
			m->verdict = v;
			m->decided_by = i + 1;
			break;
		}
		m->cur++;
	}
	if (!m->running)
		return;
	m->running = false;
	m->deadline = 0;
	if (m->in_step)
		m->answered_at_once = true;
	else
		m->cb(m, m->data);
}

/* --- The API ----------------------------------------------------------- */

struct smtp_milter *
smtp_milter_open(uv_loop_t *loop, const struct cfg_milter_list *list,
    unsigned timeout_s, bool fail_accept, const struct milter_env *env,
    const char *sid)
{
	struct smtp_milter *m = xcalloc(1, sizeof(*m));

	m->loop = loop;
	m->list = *list;
	m->timeout_ms = (uint64_t)timeout_s * 1000;
	m->fail_accept = fail_accept;
	m->env = env;
	m->sid = sid;
	return m;
}

bool
smtp_milter_step(struct smtp_milter *m, enum milter_cmd cmd,
    const char *arg, const struct smtp_milter_src *src, smtp_milter_cb cb,
    void *data)
{
	size_t i;

	m->cmd = cmd;
	snprintf(m->arg, sizeof(m->arg), "%s", arg != NULL ? arg : "");
	m->rp_len = 0;
	if (src != NULL) {
		m->src = *src;
		if (src->head_len > 12 && strncasecmp((const char *)src->head,
		    "Return-Path:", 12) == 0) {
			m->rp_len = milter_field_len(src->head,
			    src->head_len);
			m->src.head += m->rp_len;
			m->src.head_len -= m->rp_len;
		}
	}
	/* The end of a message has a deadline, however long the filters
	 * keep it going with SMFIR_PROGRESS. */
	m->deadline = cmd == MILTER_CMD_MESSAGE ? uv_now(m->loop) +
	    MILTER_DEADLINE_MS : 0;
	m->cb = cb;
	m->data = data;
	m->cur = 0;
	m->n_asked = 0;
	m->verdict = MILTER_CONTINUE;
	m->decided_by = 0;
	for (i = 0; i < m->list.n; i++)
		m->f[i].cmd_sent = false;
	m->running = true;
	m->in_step = true;
	m->answered_at_once = false;
	smtp_milter_drive(m);
	m->in_step = false;
	return m->answered_at_once;
}

enum milter_verdict
smtp_milter_verdict(const struct smtp_milter *m, const char **filter_r,
    const struct milter_result **res_r)
{
	const struct smtp_milter_filter *f = m->decided_by > 0 ?
	    &m->f[m->decided_by - 1] : NULL;

	*filter_r = f != NULL ? m->list.a[m->decided_by - 1].spec : "";
	*res_r = f != NULL && f->conv != NULL ? milter_conv_result(f->conv) :
	    NULL;
	return m->verdict;
}

size_t
smtp_milter_count(const struct smtp_milter *m)
{
	return m->n_asked;
}

const struct milter_result *
smtp_milter_result(const struct smtp_milter *m, size_t i)
{
	static const struct milter_result none = { .verdict = MILTER_FAILED };

	return m->f[i].conv != NULL ? milter_conv_result(m->f[i].conv) : &none;
}

void
smtp_milter_free(struct smtp_milter *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->list.n; i++) {
		struct smtp_milter_filter *f = &m->f[i];
		struct smtp_milter_link *k = f->link;

		if (k != NULL && f->conv != NULL && k->connected &&
		    !k->writing && !milter_conv_failed(f->conv)) {
			struct buf *out = milter_conv_out(f->conv);
			uv_buf_t b;

			/* ABORT and QUIT, if they fit the socket now; the
			 * filter ends either way. */
			milter_conv_quit(f->conv);
			b = uv_buf_init((char *)out->p, (unsigned)out->len);
			(void)uv_try_write(&k->u.s, &b, 1);
		}
		if (k != NULL)
			smtp_milter_link_close(k);
		milter_conv_free(&f->conv);
	}
	free(m);
}

/* --- Changes ----------------------------------------------------------- */

/* addr without its angle brackets, into out. */
static void
smtp_milter_unbracket(const char *addr, char *out, size_t outsz)
{
	size_t n = strlen(addr);

	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		addr++;
		n -= 2;
	}
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, addr, n);
	out[n] = '\0';
}

static void
smtp_milter_rcpt_edit(struct smtp_milter_changes *ch,
    const struct milter_edit *e)
{
	struct smtp_milter_rcpt *r;
	char a[512];
	size_t i;

	smtp_milter_unbracket(e->value, a, sizeof(a));
	for (i = 0; i < ch->n_rcpts; i++)
		if (strcasecmp(ch->rcpts[i].addr, a) == 0)
			break;
	if (e->kind == MILTER_DELRCPT) {
		if (i < ch->n_rcpts) {
			free(ch->rcpts[i].addr);
			memmove(&ch->rcpts[i], &ch->rcpts[i + 1],
			    (ch->n_rcpts - i - 1) * sizeof(*ch->rcpts));
			ch->n_rcpts--;
		}
		return;
	}
	if (i < ch->n_rcpts || a[0] == '\0')
		return;
	ch->rcpts = xrealloc(ch->rcpts, (ch->n_rcpts + 1) *
	    sizeof(*ch->rcpts));
	r = &ch->rcpts[ch->n_rcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(a);
	/* SMFIR_ADDRCPT_PAR: the DSN parameters among its ESMTP
	 * arguments (RFC 3461 4.1, 4.2); malformed ones are left out and
	 * the defaults apply. */
	if (e->name != NULL && !smtp_parse_rcpt_dsn(e->name, &r->notify,
	    r->orcpt, sizeof(r->orcpt))) {
		r->notify = 0;
		r->orcpt[0] = '\0';
	}
}

/* Appends the message from offset from to its end, straight from where
 * it is (memory or the spool file). */
static int
smtp_milter_copy_src(struct smtp_milter *m, uint64_t from, struct buf *out)
{
	const struct smtp_milter_src *s = &m->src;
	uint64_t total = s->head_len + (s->fd >= 0 ? s->fd_len : s->mem_len);
	int r = 0;

	if (from < s->head_len) {
		r = buf_append(out, s->head + from, s->head_len - from);
		from = s->head_len;
	}
	if (r == 0 && s->fd < 0 && from < total)
		r = buf_append(out, s->mem + (from - s->head_len),
		    (size_t)(total - from));
	while (r == 0 && s->fd >= 0 && from < total) {
		size_t want = total - from > (1u << 20) ? (1u << 20) :
		    (size_t)(total - from);
		ssize_t k;

		if ((r = buf_reserve(out, want)) < 0)
			break;
		k = pread(s->fd, out->p + out->len, want,
		    (off_t)(from - s->head_len));
		if (k <= 0)
			return PR_EIO;
		out->len += (size_t)k;
		from += (uint64_t)k;
	}
	return r;
}

/* The header section the filters saw, into head (without the empty
 * line); *body_r is where the body starts in the message. */
static int
smtp_milter_read_head(struct smtp_milter *m, struct buf *head,
    uint64_t *body_r)
{
	size_t hl, b;
	bool last;
	ssize_t k;
	int r;

	m->src_off = 0;
	for (;;) {
		if ((k = smtp_milter_read_src(m, &last)) < 0)
			return PR_EIO;
		if ((r = buf_append(head, m->chunk, (size_t)k)) < 0)
			return r;
		hl = milter_head_len(head->p, head->len, &b);
		if (b < head->len || last) {
			*body_r = b;
			head->len = hl;
			return 0;
		}
	}
}

int
smtp_milter_apply(struct smtp_milter *m, const struct smtp_tx_rcpt *rcpts,
    size_t n, uint64_t max, struct smtp_milter_changes *ch)
{
	const struct milter_result *body = NULL;
	struct buf head;
	uint64_t boff = 0;
	size_t i, j;
	bool edits = false;
	int r = 0;

	memset(ch, 0, sizeof(*ch));
	buf_init(&ch->msg, max + MILTER_HEAD_MAX);
	ch->rcpts = xcalloc(n ? n : 1, sizeof(*ch->rcpts));
	for (i = 0; i < n; i++) {
		/* The RCPTs that stay keep their DSN parameters. */
		ch->rcpts[i].addr = xstrdup(rcpts[i].addr);
		ch->rcpts[i].notify = rcpts[i].notify;
		memcpy(ch->rcpts[i].orcpt, rcpts[i].orcpt,
		    sizeof(ch->rcpts[i].orcpt));
	}
	ch->n_rcpts = n;
	for (i = 0; i < m->n_asked; i++) {
		const struct milter_result *res = smtp_milter_result(m, i);

		if (res->verdict != MILTER_CONTINUE &&
		    res->verdict != MILTER_ACCEPT)
			continue;
		if (res->body_replaced)
			body = res;
		if (res->quarantine && !ch->quarantine) {
			ch->quarantine = true;
			snprintf(ch->reason, sizeof(ch->reason), "%s",
			    res->quarantine_reason);
		}
		ch->n += res->body_replaced + res->quarantine;
		for (j = 0; j < res->n_edits; j++) {
			const struct milter_edit *e = &res->edits[j];

			ch->n++;
			switch (e->kind) {
			case MILTER_CHGFROM:
				ch->sender_changed = true;
				smtp_milter_unbracket(e->value, ch->sender,
				    sizeof(ch->sender));
				break;
			case MILTER_ADDRCPT:
			case MILTER_DELRCPT:
				ch->rcpts_changed = true;
				smtp_milter_rcpt_edit(ch, e);
				break;
			default:
				edits = true;
				break;
			}
		}
	}
	/* A new sender changes the Return-Path at the top of the trace
	 * fields too (RFC 5321 4.4), so the message is rebuilt. */
	if (!edits && body == NULL && !ch->sender_changed)
		return 0;
	/* The header section as the filters saw it, then each filter's
	 * header changes over the last one's result, in order. */
	buf_init(&head, MILTER_HEAD_MAX + MILTER_CHUNK_MAX +
	    MILTER_EDITS_OCTETS);
	r = smtp_milter_read_head(m, &head, &boff);
	for (i = 0; r == 0 && i < m->n_asked; i++) {
		const struct milter_result *res = smtp_milter_result(m, i);
		struct buf next;

		if (res->verdict != MILTER_CONTINUE &&
		    res->verdict != MILTER_ACCEPT)
			continue;
		buf_init(&next, MILTER_HEAD_MAX + MILTER_EDITS_OCTETS);
		r = milter_head_apply(head.p, head.len, res->edits,
		    res->n_edits, res->leadspc, &next);
		buf_fini(&head);
		head = next;
	}
	/* The Return-Path first, the new sender's if it changed. */
	if (r == 0 && m->rp_len > 0 && ch->sender_changed)
		r = buf_printf(&ch->msg, "Return-Path: <%s>\r\n", ch->sender);
	else if (r == 0 && m->rp_len > 0)
		r = buf_append(&ch->msg, m->src.head - m->rp_len, m->rp_len);
	if (r == 0)
		r = buf_append(&ch->msg, head.p, head.len);
	if (r == 0)
		r = buf_append(&ch->msg, "\r\n", 2);
	/* The body: the filter's, or the message's own, copied once from
	 * where it is. */
	if (r == 0 && body != NULL && body->body.len > 0)
		r = buf_append(&ch->msg, body->body.p, body->body.len);
	else if (r == 0 && body == NULL)
		r = smtp_milter_copy_src(m, boff, &ch->msg);
	if (r == PR_ENOSPC)
		r = PR_ETOOBIG;
	ch->content = r == 0;
	buf_fini(&head);
	return r;
}

void
smtp_milter_changes_fini(struct smtp_milter_changes *ch)
{
	size_t i;

	for (i = 0; i < ch->n_rcpts; i++)
		free(ch->rcpts[i].addr);
	free(ch->rcpts);
	buf_fini(&ch->msg);
	memset(ch, 0, sizeof(*ch));
}
