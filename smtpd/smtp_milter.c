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
#include "xmalloc.h"

/* One filter's connection.  It outlives the run when the session goes
 * away mid-conversation: the handles close asynchronously. */
struct smtp_milter_link {
	struct smtp_milter *m;  /* NULL once detached */
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
	struct buf wbuf;        /* the octets being written */
	bool writing;
	int open;               /* handles not yet closed */
};

struct smtp_milter {
	uv_loop_t *loop;
	/* A copy: a SIGHUP may change the configuration under the run. */
	struct cfg_milter_list list_copy;
	const struct cfg_milter_list *list;
	uint64_t timeout_ms;
	bool fail_accept;
	const struct milter_env *env;
	struct smtp_milter_src src;
	const char *sid;
	smtp_milter_cb cb;
	void *data;
	size_t cur;                 /* the filter being asked */
	struct milter_conv *convs[CFG_MILTER_MAX];
	size_t n_convs;
	struct smtp_milter_link *link;
	uint64_t src_off, packets;
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

static void smtp_milter_next(struct smtp_milter *m);
static void smtp_milter_pump(struct smtp_milter *m);

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

static struct milter_conv *
smtp_milter_conv(struct smtp_milter *m)
{
	return m->convs[m->cur];
}

static void
smtp_milter_fail(struct smtp_milter *m, const char *why)
{
	milter_conv_fail(smtp_milter_conv(m), why);
	smtp_milter_pump(m);
}

static void
smtp_milter_timer_cb(uv_timer_t *t)
{
	struct smtp_milter_link *k = t->data;

	if (k->m != NULL)
		smtp_milter_fail(k->m, k->conn_err ? "cannot connect" :
		    "timed out");
}

static void
smtp_milter_restart_timer(struct smtp_milter *m)
{
	uv_timer_start(&m->link->timer, smtp_milter_timer_cb, m->timeout_ms,
	    0);
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

static void
smtp_milter_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct smtp_milter_link *k = s->data;
	struct smtp_milter *m = k->m;
	struct milter_conv *c;

	if (m == NULL || n == 0)
		return;
	c = smtp_milter_conv(m);
	if (n < 0) {
		smtp_milter_fail(m, n == UV_EOF ? "the filter closed the "
		    "connection" : uv_strerror((int)n));
		return;
	}
	milter_conv_feed(c, (const uint8_t *)b->base, (size_t)n);
	if (milter_conv_packets(c) != m->packets) {
		/* Every packet, SMFIR_PROGRESS too, shows the filter at
		 * work. */
		m->packets = milter_conv_packets(c);
		smtp_milter_restart_timer(m);
	}
	smtp_milter_pump(m);
}

static void
smtp_milter_write_cb(uv_write_t *req, int status)
{
	struct smtp_milter_link *k = req->data;
	struct smtp_milter *m = k->m;

	k->writing = false;
	buf_reset(&k->wbuf);
	if (m == NULL)
		return;
	if (status < 0) {
		smtp_milter_fail(m, uv_strerror(status));
		return;
	}
	smtp_milter_pump(m);
}

static void
smtp_milter_connect_cb(uv_connect_t *req, int status)
{
	struct smtp_milter_link *k = req->data;
	struct smtp_milter *m = k->m;

	if (m == NULL)
		return;
	if (status < 0) {
		smtp_milter_fail(m, uv_strerror(status));
		return;
	}
	uv_read_start(&k->u.s, smtp_milter_alloc_cb, smtp_milter_read_cb);
	smtp_milter_pump(m);
}

static int
smtp_milter_connect(struct smtp_milter *m, const struct cfg_milter *f)
{
	struct smtp_milter_link *k = xcalloc(1, sizeof(*k));
	struct sockaddr_storage ss;
	int r;

	k->m = m;
	buf_init(&k->wbuf, 4 * MILTER_PKT_MAX);
	uv_timer_init(m->loop, &k->timer);
	k->timer.data = k;
	k->open = 2;
	k->creq.data = k;
	k->wreq.data = k;
	m->link = k;
	smtp_milter_restart_timer(m);
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

/* --- Driving one conversation ------------------------------------------ */

static void
smtp_milter_filter_done(struct smtp_milter *m)
{
	const struct cfg_milter *f = &m->list->a[m->cur];
	struct milter_conv *c = smtp_milter_conv(m);
	const struct milter_result *res = milter_conv_result(c);
	struct buf *out = milter_conv_out(c);
	bool *down = smtp_milter_down(f->spec);
	char rq[LOG_VALUE_MAX];

	/* QUIT, if it fits the socket now; the filter ends either way. */
	if (out->len > 0 && !m->link->writing) {
		uv_buf_t b = uv_buf_init((char *)out->p, (unsigned)out->len);

		(void)uv_try_write(&m->link->u.s, &b, 1);
	}
	buf_reset(out);
	smtp_milter_link_close(m->link);
	m->link = NULL;
	if (res->verdict == MILTER_FAILED) {
		if (!*down)
			log_warn(m->sid, "milter filter=%s status=down "
			    "reason=%s on_failure=%s", f->spec,
			    log_value(res->error, rq, sizeof(rq)),
			    m->fail_accept ? "accept" : "tempfail");
		*down = true;
		if (!m->fail_accept) {
			m->verdict = MILTER_FAILED;
			m->decided_by = m->cur + 1;
			m->cur = m->list->n;
		}
	} else {
		if (*down)
			log_info(m->sid, "milter filter=%s status=up",
			    f->spec);
		*down = false;
		if (res->verdict != MILTER_CONTINUE &&
		    res->verdict != MILTER_ACCEPT) {
			/* The first filter that refuses decides. */
			m->verdict = res->verdict;
			m->decided_by = m->cur + 1;
			m->cur = m->list->n;
		}
	}
	m->cur++;
	smtp_milter_next(m);
}

static void
smtp_milter_pump(struct smtp_milter *m)
{
	struct smtp_milter_link *k = m->link;
	struct milter_conv *c = smtp_milter_conv(m);

	for (;;) {
		struct buf *out = milter_conv_out(c);
		enum milter_event ev = milter_conv_event(c);
		bool last;
		ssize_t n;

		if (ev == MILTER_EV_DONE) {
			smtp_milter_filter_done(m);
			return;
		}
		/* One write at a time: the next octets are made only once
		 * the last ones are gone (backpressure). */
		if (k->writing)
			return;
		if (out->len > 0) {
			uv_buf_t b;
			struct buf t = k->wbuf;

			k->wbuf = *out;
			*out = t;
			buf_reset(out);
			b = uv_buf_init((char *)k->wbuf.p,
			    (unsigned)k->wbuf.len);
			if (uv_write(&k->wreq, &k->u.s, &b, 1,
			    smtp_milter_write_cb) < 0) {
				milter_conv_fail(c, "cannot write");
				continue;
			}
			k->writing = true;
			return;
		}
		if (ev != MILTER_EV_DATA)
			return;
		if ((n = smtp_milter_read_src(m, &last)) < 0) {
			milter_conv_fail(c, "cannot read the spooled message");
			continue;
		}
		milter_conv_data(c, m->chunk, (size_t)n, last);
	}
}

/* The next filter, or the callback. */
static void
smtp_milter_next(struct smtp_milter *m)
{
	if (m->cur >= m->list->n) {
		m->cb(m, m->data);
		return;
	}
	m->src_off = 0;
	m->packets = 0;
	if (milter_conv_new(m->env, &m->convs[m->cur]) < 0) {
		log_err(m->sid, "milter: out of memory");
		m->verdict = MILTER_FAILED;
		m->cb(m, m->data);
		return;
	}
	m->n_convs = m->cur + 1;
	if (smtp_milter_connect(m, &m->list->a[m->cur]) < 0) {
		/* Reported from the loop, never from inside the caller. */
		m->link->conn_err = true;
		uv_timer_start(&m->link->timer, smtp_milter_timer_cb, 0, 0);
	}
}

/* --- The API ----------------------------------------------------------- */

int
smtp_milter_start(uv_loop_t *loop, const struct cfg_milter_list *list,
    unsigned timeout_s, bool fail_accept, const struct milter_env *env,
    const struct smtp_milter_src *src, const char *sid, smtp_milter_cb cb,
    void *data, struct smtp_milter **m_r)
{
	struct smtp_milter *m = xcalloc(1, sizeof(*m));

	m->loop = loop;
	m->list_copy = *list;
	m->list = &m->list_copy;
	m->timeout_ms = (uint64_t)timeout_s * 1000;
	m->fail_accept = fail_accept;
	m->env = env;
	m->src = *src;
	if (src->head_len > 12 && strncasecmp((const char *)src->head,
	    "Return-Path:", 12) == 0) {
		m->rp_len = milter_field_len(src->head, src->head_len);
		m->src.head += m->rp_len;
		m->src.head_len -= m->rp_len;
	}
	m->sid = sid;
	m->cb = cb;
	m->data = data;
	m->verdict = MILTER_CONTINUE;
	*m_r = m;
	smtp_milter_next(m);
	return 0;
}

enum milter_verdict
smtp_milter_verdict(const struct smtp_milter *m, const char **filter_r)
{
	*filter_r = m->decided_by > 0 ? m->list->a[m->decided_by - 1].spec :
	    "";
	return m->verdict;
}

size_t
smtp_milter_count(const struct smtp_milter *m)
{
	return m->n_convs;
}

const struct milter_result *
smtp_milter_result(const struct smtp_milter *m, size_t i)
{
	return milter_conv_result(m->convs[i]);
}

void
smtp_milter_free(struct smtp_milter *m)
{
	size_t i;

	if (m == NULL)
		return;
	if (m->link != NULL)
		smtp_milter_link_close(m->link);
	for (i = 0; i < CFG_MILTER_MAX; i++)
		milter_conv_free(&m->convs[i]);
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

static int
smtp_milter_rcpt_edit(struct smtp_milter_changes *ch,
    const struct milter_edit *e)
{
	char a[512];
	size_t i;

	smtp_milter_unbracket(e->value, a, sizeof(a));
	for (i = 0; i < ch->n_rcpts; i++)
		if (strcasecmp(ch->rcpts[i], a) == 0)
			break;
	if (e->kind == MILTER_DELRCPT) {
		if (i < ch->n_rcpts) {
			free(ch->rcpts[i]);
			ch->rcpts[i] = ch->rcpts[--ch->n_rcpts];
		}
		return 0;
	}
	if (i < ch->n_rcpts || a[0] == '\0')
		return 0;
	ch->rcpts = xrealloc(ch->rcpts, (ch->n_rcpts + 1) *
	    sizeof(*ch->rcpts));
	ch->rcpts[ch->n_rcpts++] = xstrdup(a);
	return 0;
}

int
smtp_milter_apply(struct smtp_milter *m, const char *const *rcpts,
    size_t n, uint64_t max, struct smtp_milter_changes *ch)
{
	const struct milter_result *body = NULL;
	struct buf all, head;
	size_t i, j, hl, boff;
	bool edits = false;
	int r = 0;

	memset(ch, 0, sizeof(*ch));
	buf_init(&ch->msg, max + MILTER_HEAD_MAX);
	ch->rcpts = xcalloc(n ? n : 1, sizeof(*ch->rcpts));
	for (i = 0; i < n; i++)
		ch->rcpts[i] = xstrdup(rcpts[i]);
	ch->n_rcpts = n;
	for (i = 0; i < m->n_convs; i++) {
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
	/* The message as the filters saw it, then each filter's header
	 * changes over the last one's result, in order. */
	buf_init(&all, max + MILTER_HEAD_MAX);
	m->src_off = 0;
	for (;;) {
		bool last;
		ssize_t k = smtp_milter_read_src(m, &last);

		if (k < 0) {
			r = PR_EIO;
			break;
		}
		if ((r = buf_append(&all, m->chunk, (size_t)k)) < 0)
			break;
		if (last)
			break;
	}
	hl = r == 0 ? milter_head_len(all.p, all.len, &boff) : 0;
	buf_init(&head, MILTER_HEAD_MAX + MILTER_EDITS_OCTETS);
	if (r == 0)
		r = buf_append(&head, all.p, hl);
	for (i = 0; r == 0 && i < m->n_convs; i++) {
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
	if (r == 0 && body != NULL && body->body.len > 0)
		r = buf_append(&ch->msg, body->body.p, body->body.len);
	else if (r == 0 && body == NULL && boff < all.len)
		r = buf_append(&ch->msg, all.p + boff, all.len - boff);
	if (r == PR_ENOSPC)
		r = PR_ETOOBIG;
	ch->content = r == 0;
	buf_fini(&head);
	buf_fini(&all);
	return r;
}

void
smtp_milter_changes_fini(struct smtp_milter_changes *ch)
{
	size_t i;

	for (i = 0; i < ch->n_rcpts; i++)
		free(ch->rcpts[i]);
	free(ch->rcpts);
	buf_fini(&ch->msg);
	memset(ch, 0, sizeof(*ch));
}
