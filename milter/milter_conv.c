/*
 * milter_conv.c - one milter conversation: negotiation, the steps of the
 * transaction, the filter's replies (milter.h; docs/MILTER.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "milter.h"
#include "milter_int.h"

enum milter_step {
	MILTER_ST_IDLE,         /* no step runs */
	MILTER_ST_OPTNEG,
	MILTER_ST_CONNECT,
	MILTER_ST_HELO,
	MILTER_ST_MAIL,
	MILTER_ST_RCPT,
	MILTER_ST_DATA,
	MILTER_ST_HEADER,
	MILTER_ST_EOH,
	MILTER_ST_BODY,
	MILTER_ST_EOM,
};

/* A refusal at connect or HELO, given again at each MAIL. */
struct milter_refusal {
	enum milter_verdict verdict; /* MILTER_CONTINUE = none */
	int code;
	char enh[16];
	char text[MILTER_REPLY_MAX];
};

struct milter_conv {
	const struct milter_env *env;
	struct buf out;
	struct buf in;          /* a partial packet */
	/* Within MILTER_CMD_MESSAGE the next step to send, else IDLE. */
	enum milter_step step;
	enum milter_step wait;  /* the step whose reply is awaited */
	bool await;
	bool want_data;
	bool failed;
	uint32_t actions, proto;
	/* The session: SMFIR_ACCEPT at connect or HELO, the refusals. */
	bool sess_accept;
	struct milter_refusal conn_ref, helo_ref;
	/* The message: MAIL was sent and no end of message answered;
	 * SMFIC_DATA was sent; ACCEPT or DISCARD before its end. */
	bool msg_open;
	bool data_sent;
	enum milter_verdict msg_verdict;
	bool last_seen;         /* milter_conv_data() had the last octets */
	bool head_done;
	bool skip_body;         /* SMFIR_SKIP, or nothing more to send */
	struct buf head;        /* the header section, as it arrives */
	size_t head_len;        /* once head_done: its length */
	size_t head_pos;        /* the next field to send */
	struct buf chunk;       /* body octets not yet sent */
	uint64_t packets;
	size_t edit_octets;
	struct milter_result res;
};

const char *
milter_verdict_name(enum milter_verdict v)
{
	switch (v) {
	case MILTER_CONTINUE:
		return "continue";
	case MILTER_ACCEPT:
		return "accept";
	case MILTER_REJECT:
		return "reject";
	case MILTER_TEMPFAIL:
		return "tempfail";
	case MILTER_DISCARD:
		return "discard";
	case MILTER_FAILED:
		return "failed";
	}
	return "?";
}

/* --- Packets ----------------------------------------------------------- */

/* A packet is a 4-octet length in network order (covering what
 * follows), the command octet and its data. */
static int
milter_put(struct milter_conv *c, char cmd, const void *data, size_t len)
{
	uint8_t h[5];
	uint32_t n = (uint32_t)len + 1;

	h[0] = (uint8_t)(n >> 24);
	h[1] = (uint8_t)(n >> 16);
	h[2] = (uint8_t)(n >> 8);
	h[3] = (uint8_t)n;
	h[4] = (uint8_t)cmd;
	if (buf_append(&c->out, h, 5) < 0 ||
	    (len > 0 && buf_append(&c->out, data, len) < 0))
		return PR_ENOMEM;
	return 0;
}

static void
milter_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
milter_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Appends s and its NUL to b (NULL is ""). */
static int
milter_putstr(struct buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	return buf_append(b, s, strlen(s) + 1);
}

/* SMFIC_MACRO for the command cmd: name/value pairs, NULL values left
 * out.  names and values are parallel, n long. */
static int
milter_macros(struct milter_conv *c, char cmd, const char *const *names,
    const char *const *values, size_t n)
{
	struct buf b;
	size_t i;
	int r = 0;

	buf_init(&b, MILTER_PKT_MAX);
	if (buf_append(&b, &cmd, 1) < 0)
		r = PR_ENOMEM;
	for (i = 0; r == 0 && i < n; i++) {
		if (values[i] == NULL)
			continue;
		if (milter_putstr(&b, names[i]) < 0 ||
		    milter_putstr(&b, values[i]) < 0)
			r = PR_ENOMEM;
	}
	if (r == 0 && b.len > 1)
		r = milter_put(c, 'D', b.p, b.len);
	buf_fini(&b);
	return r;
}

/* --- The outcome ------------------------------------------------------- */

void
milter_conv_fail(struct milter_conv *c, const char *why)
{
	if (c->failed)
		return;
	c->failed = true;
	c->res.verdict = MILTER_FAILED;
	snprintf(c->res.error, sizeof(c->res.error), "%s", why);
	c->step = MILTER_ST_IDLE;
	c->await = false;
	c->want_data = false;
	buf_reset(&c->out);
}

/* The result of the last step is forgotten when the next one starts. */
static void
milter_res_reset(struct milter_conv *c)
{
	struct milter_result *res = &c->res;
	size_t i;

	for (i = 0; i < res->n_edits; i++) {
		free(res->edits[i].name);
		free(res->edits[i].value);
	}
	free(res->edits);
	res->edits = NULL;
	res->n_edits = 0;
	res->verdict = MILTER_CONTINUE;
	res->code = 0;
	res->enh[0] = '\0';
	res->text[0] = '\0';
	res->quarantine = false;
	res->quarantine_reason[0] = '\0';
	res->body_replaced = false;
	buf_reset(&res->body);
	/* A replaced body may be as large as a message: not kept for the
	 * rest of the session. */
	buf_shrink(&res->body, 0);
	c->edit_octets = 0;
}

static void
milter_ref_save(struct milter_refusal *r, const struct milter_result *res)
{
	r->verdict = res->verdict;
	r->code = res->code;
	memcpy(r->enh, res->enh, sizeof(r->enh));
	memcpy(r->text, res->text, sizeof(r->text));
}

static void
milter_ref_give(const struct milter_refusal *r, struct milter_result *res)
{
	res->verdict = r->verdict;
	res->code = r->code;
	memcpy(res->enh, r->enh, sizeof(res->enh));
	memcpy(res->text, r->text, sizeof(res->text));
}

/* The message is over for the filter (end of message answered, or
 * SMFIC_ABORT sent). */
static void
milter_msg_close(struct milter_conv *c)
{
	c->msg_open = false;
	c->data_sent = false;
	c->msg_verdict = MILTER_CONTINUE;
	c->last_seen = false;
	c->head_done = false;
	c->skip_body = false;
	c->head_len = 0;
	c->head_pos = 0;
	buf_reset(&c->head);
	buf_reset(&c->chunk);
	/* A session may carry many messages: what one big header section
	 * needed is not kept for the next (docs/MILTER.md 3). */
	buf_shrink(&c->head, 0);
	buf_shrink(&c->chunk, 0);
}

/*
 * The filter answered the step awaited with v (not CONTINUE).  At
 * connect and HELO an accept lets the session through and a refusal is
 * kept for each MAIL; at MAIL, RCPT and DATA an accept or a discard is
 * the message's, a refusal that command's; within the end of the
 * message any verdict ends it.
 */
static void
milter_decide(struct milter_conv *c, enum milter_verdict v)
{
	enum milter_step st = c->wait;

	c->await = false;
	switch (st) {
	case MILTER_ST_CONNECT:
	case MILTER_ST_HELO:
		if (v == MILTER_DISCARD) {
			milter_conv_fail(c, "a discard outside a message");
			return;
		}
		if (v == MILTER_ACCEPT) {
			c->sess_accept = true;
			return;
		}
		c->res.verdict = v;
		milter_ref_save(st == MILTER_ST_CONNECT ? &c->conn_ref :
		    &c->helo_ref, &c->res);
		return;
	case MILTER_ST_MAIL:
	case MILTER_ST_RCPT:
	case MILTER_ST_DATA:
		if (c->step == MILTER_ST_IDLE) {
			if (v == MILTER_ACCEPT || v == MILTER_DISCARD)
				c->msg_verdict = v;
			else
				c->res.verdict = v;
			return;
		}
		break;
	default:
		break;
	}
	/* The end of the message: no more of it is sent. */
	c->step = MILTER_ST_IDLE;
	c->want_data = false;
	c->res.verdict = v;
	if (st == MILTER_ST_EOM)
		milter_msg_close(c);
}

/* --- Sending the steps ------------------------------------------------- */

static int
milter_send_connect(struct milter_conv *c)
{
	const struct milter_env *e = c->env;
	static const char *const names[] = { "j", "{daemon_name}", "_",
	    "{client_addr}", "{client_name}", "{client_port}" };
	const char *values[6];
	char name[300], port[16], addr_only[300];
	struct buf b;
	uint8_t fam, pb[2];
	int r = 0;

	snprintf(name, sizeof(name), "%s%s%s", e->client_name ? "" : "[",
	    e->client_name ? e->client_name : e->client_addr ?
	    e->client_addr : "", e->client_name ? "" : "]");
	snprintf(port, sizeof(port), "%u", e->client_port);
	snprintf(addr_only, sizeof(addr_only), "%s [%s]", name,
	    e->client_addr ? e->client_addr : "");
	values[0] = e->hostname;
	values[1] = e->daemon_name;
	values[2] = addr_only;
	values[3] = e->client_addr;
	values[4] = name;
	values[5] = e->client_port != 0 ? port : NULL;
	if (milter_macros(c, 'C', names, values, 6) < 0)
		return PR_ENOMEM;
	buf_init(&b, MILTER_PKT_MAX);
	fam = e->family == 4 ? '4' : e->family == 6 ? '6' : 'U';
	pb[0] = (uint8_t)(e->client_port >> 8);
	pb[1] = (uint8_t)e->client_port;
	if (milter_putstr(&b, name) < 0 || buf_append(&b, &fam, 1) < 0 ||
	    (fam != 'U' && (buf_append(&b, pb, 2) < 0 ||
	    milter_putstr(&b, e->client_addr) < 0)))
		r = PR_ENOMEM;
	if (r == 0)
		r = milter_put(c, 'C', b.p, b.len);
	buf_fini(&b);
	return r;
}

static int
milter_send_helo(struct milter_conv *c)
{
	const struct milter_env *e = c->env;
	static const char *const names[] = { "{tls_version}", "{cipher}",
	    "{cert_subject}", "{cert_issuer}" };
	const char *values[4] = { e->tls_version, e->cipher,
	    e->cert_subject, e->cert_issuer };
	const char *h = e->helo != NULL ? e->helo : "";

	if (milter_macros(c, 'H', names, values, 4) < 0)
		return PR_ENOMEM;
	return milter_put(c, 'H', h, strlen(h) + 1);
}

/* "<addr>\0", the form MAIL and RCPT carry (libmilter's argv[0]). */
static int
milter_send_path(struct milter_conv *c, char cmd, const char *addr)
{
	struct buf b;
	int r;

	buf_init(&b, MILTER_PKT_MAX);
	r = buf_printf(&b, "<%s>", addr != NULL ? addr : "");
	if (r == 0)
		r = buf_append(&b, "", 1);
	if (r == 0)
		r = milter_put(c, cmd, b.p, b.len);
	buf_fini(&b);
	return r;
}

static int
milter_send_mail(struct milter_conv *c)
{
	const struct milter_env *e = c->env;
	static const char *const names[] = { "i", "{auth_type}",
	    "{auth_authen}", "{mail_addr}" };
	const char *values[4] = { e->queue_id, e->auth_authen ?
	    e->auth_type : NULL, e->auth_authen, e->sender };

	if (milter_macros(c, 'M', names, values, 4) < 0)
		return PR_ENOMEM;
	return milter_send_path(c, 'M', e->sender);
}

static int
milter_send_rcpt(struct milter_conv *c, const char *rcpt)
{
	static const char *const names[] = { "{rcpt_addr}" };
	const char *values[1] = { rcpt };

	if (milter_macros(c, 'R', names, values, 1) < 0)
		return PR_ENOMEM;
	return milter_send_path(c, 'R', rcpt);
}

/* One header field: "name\0value\0", the value without the colon, its
 * leading space (unless SMFIP_HDR_LEADSPC) and the final CRLF, inner
 * line breaks as LF (libmilter's form). */
static int
milter_send_field(struct milter_conv *c, const uint8_t *f, size_t len)
{
	const uint8_t *colon = memchr(f, ':', len);
	struct buf b;
	size_t i, v;
	int r = 0;

	if (colon == NULL)
		return 0;
	buf_init(&b, MILTER_PKT_MAX);
	if (buf_append(&b, f, (size_t)(colon - f)) < 0 ||
	    buf_append(&b, "", 1) < 0)
		r = PR_ENOMEM;
	v = (size_t)(colon - f) + 1;
	if (!(c->proto & SMFIP_HDR_LEADSPC))
		while (v < len && (f[v] == ' ' || f[v] == '\t'))
			v++;
	while (len > v && (f[len - 1] == '\n' || f[len - 1] == '\r'))
		len--;
	for (i = v; r == 0 && i < len; i++) {
		if (f[i] == '\r' && i + 1 < len && f[i + 1] == '\n')
			continue;
		if (buf_append(&b, &f[i], 1) < 0)
			r = PR_ENOMEM;
	}
	if (r == 0 && buf_append(&b, "", 1) < 0)
		r = PR_ENOMEM;
	if (r == 0)
		r = milter_put(c, 'L', b.p, b.len);
	buf_fini(&b);
	return r;
}

/* Awaits the reply to step st unless the filter asked for none (its
 * SMFIP_NR_* flag nr). */
static void
milter_sent(struct milter_conv *c, enum milter_step st, uint32_t nr)
{
	if (nr != 0 && (c->proto & nr))
		return;
	c->await = true;
	c->wait = st;
}

static int
milter_step_header(struct milter_conv *c)
{
	const uint8_t *h = c->head.p;
	size_t end;

	if (!c->head_done) {
		c->want_data = true;
		return 0;
	}
	if ((c->proto & SMFIP_NOHDRS) || c->head_pos >= c->head_len) {
		c->step = MILTER_ST_EOH;
		return 0;
	}
	end = milter_field_end(h, c->head_len, c->head_pos);
	if (milter_send_field(c, h + c->head_pos, end - c->head_pos) < 0)
		return PR_ENOMEM;
	/* A line without a colon is not sent and needs no reply. */
	if (memchr(h + c->head_pos, ':', end - c->head_pos) != NULL)
		milter_sent(c, MILTER_ST_HEADER, SMFIP_NR_HDR);
	c->head_pos = end;
	return 0;
}

static int
milter_step_body(struct milter_conv *c)
{
	size_t n;

	if ((c->proto & SMFIP_NOBODY) || c->skip_body) {
		c->step = MILTER_ST_EOM;
		return 0;
	}
	if (c->chunk.len >= MILTER_CHUNK_MAX ||
	    (c->last_seen && c->chunk.len > 0)) {
		n = c->chunk.len < MILTER_CHUNK_MAX ? c->chunk.len :
		    MILTER_CHUNK_MAX;
		if (milter_put(c, 'B', c->chunk.p, n) < 0)
			return PR_ENOMEM;
		buf_consume(&c->chunk, n);
		milter_sent(c, MILTER_ST_BODY, SMFIP_NR_BODY);
		return 0;
	}
	if (c->last_seen)
		c->step = MILTER_ST_EOM;
	else
		c->want_data = true;
	return 0;
}

static int
milter_send_data(struct milter_conv *c)
{
	static const char *const id_name[] = { "i" };
	const char *id_value[1] = { c->env->queue_id };
	int r;

	c->data_sent = true;
	if (c->proto & SMFIP_NODATA)
		return 0;
	r = milter_macros(c, 'T', id_name, id_value, 1);
	if (r == 0)
		r = milter_put(c, 'T', NULL, 0);
	milter_sent(c, MILTER_ST_DATA, SMFIP_NR_DATA);
	return r;
}

/* The end of the message: sends its steps until one needs a reply or
 * message octets, or the last is sent. */
static void
milter_advance(struct milter_conv *c)
{
	static const char *const id_name[] = { "i" };
	const char *id_value[1] = { c->env->queue_id };
	int r = 0;

	while (r == 0 && !c->await && !c->want_data &&
	    c->step != MILTER_ST_IDLE) {
		switch (c->step) {
		case MILTER_ST_DATA:
			c->step = MILTER_ST_HEADER;
			r = milter_send_data(c);
			break;
		case MILTER_ST_HEADER:
			r = milter_step_header(c);
			break;
		case MILTER_ST_EOH:
			c->step = MILTER_ST_BODY;
			if (c->proto & SMFIP_NOEOH)
				break;
			r = milter_put(c, 'N', NULL, 0);
			milter_sent(c, MILTER_ST_EOH, SMFIP_NR_EOH);
			break;
		case MILTER_ST_BODY:
			r = milter_step_body(c);
			break;
		case MILTER_ST_EOM:
			r = milter_macros(c, 'E', id_name, id_value, 1);
			if (r == 0)
				r = milter_put(c, 'E', NULL, 0);
			c->step = MILTER_ST_IDLE;
			c->await = true;
			c->wait = MILTER_ST_EOM;
			break;
		default:
			c->step = MILTER_ST_IDLE;
			break;
		}
	}
	if (r < 0)
		milter_conv_fail(c, "out of memory");
}

/* Whether the message is still the filter's to see. */
static bool
milter_msg_live(const struct milter_conv *c)
{
	return !c->sess_accept && c->msg_open &&
	    c->msg_verdict == MILTER_CONTINUE;
}

void
milter_conv_step(struct milter_conv *c, enum milter_cmd cmd,
    const char *arg)
{
	const struct milter_env *e = c->env;
	int r = 0;

	if (c->failed)
		return;
	if (c->await || c->want_data || c->step != MILTER_ST_IDLE) {
		milter_conv_fail(c, "a step while another runs");
		return;
	}
	milter_res_reset(c);
	switch (cmd) {
	case MILTER_CMD_CONNECT:
		if (c->sess_accept || (c->proto & SMFIP_NOCONNECT))
			break;
		r = milter_send_connect(c);
		milter_sent(c, MILTER_ST_CONNECT, SMFIP_NR_CONN);
		break;
	case MILTER_CMD_HELO:
		/* A new HELO is judged anew (RFC 5321 4.1.4 lets the
		 * client send another); one within a transaction ends it
		 * (RFC 5321 4.1.4), so the filter hears SMFIC_ABORT first
		 * and never an SMFIC_HELO inside a message. */
		if (c->msg_open && milter_put(c, 'A', NULL, 0) < 0)
			r = PR_ENOMEM;
		milter_msg_close(c);
		c->helo_ref.verdict = MILTER_CONTINUE;
		if (c->sess_accept)
			break;
		if (c->conn_ref.verdict != MILTER_CONTINUE) {
			milter_ref_give(&c->conn_ref, &c->res);
			break;
		}
		if ((c->proto & SMFIP_NOHELO) || e->helo == NULL)
			break;
		if (r == 0)
			r = milter_send_helo(c);
		milter_sent(c, MILTER_ST_HELO, SMFIP_NR_HELO);
		break;
	case MILTER_CMD_MAIL:
		if (c->msg_open && milter_put(c, 'A', NULL, 0) < 0)
			r = PR_ENOMEM;
		milter_msg_close(c);
		if (c->sess_accept)
			break;
		if (c->conn_ref.verdict != MILTER_CONTINUE ||
		    c->helo_ref.verdict != MILTER_CONTINUE) {
			milter_ref_give(c->conn_ref.verdict != MILTER_CONTINUE ?
			    &c->conn_ref : &c->helo_ref, &c->res);
			break;
		}
		c->msg_open = true;
		if (c->proto & SMFIP_NOMAIL)
			break;
		if (r == 0)
			r = milter_send_mail(c);
		milter_sent(c, MILTER_ST_MAIL, SMFIP_NR_MAIL);
		break;
	case MILTER_CMD_RCPT:
		if (!milter_msg_live(c) || (c->proto & SMFIP_NORCPT))
			break;
		r = milter_send_rcpt(c, arg);
		milter_sent(c, MILTER_ST_RCPT, SMFIP_NR_RCPT);
		break;
	case MILTER_CMD_DATA:
		if (milter_msg_live(c))
			r = milter_send_data(c);
		break;
	case MILTER_CMD_MESSAGE:
		if (c->sess_accept || !c->msg_open ||
		    c->msg_verdict != MILTER_CONTINUE) {
			/* Let through (or dropped) before its end. */
			c->res.verdict = c->msg_verdict == MILTER_DISCARD ?
			    MILTER_DISCARD : MILTER_ACCEPT;
			milter_msg_close(c);
			break;
		}
		c->step = c->data_sent ? MILTER_ST_HEADER : MILTER_ST_DATA;
		milter_advance(c);
		return;
	case MILTER_CMD_ABORT:
		if (c->msg_open && milter_put(c, 'A', NULL, 0) < 0)
			r = PR_ENOMEM;
		milter_msg_close(c);
		break;
	}
	if (r < 0)
		milter_conv_fail(c, "out of memory");
}

void
milter_conv_quit(struct milter_conv *c)
{
	if (c->failed)
		return;
	if (c->msg_open)
		(void)milter_put(c, 'A', NULL, 0);
	milter_msg_close(c);
	(void)milter_put(c, 'Q', NULL, 0);
	c->await = false;
	c->want_data = false;
	c->step = MILTER_ST_IDLE;
}

bool
milter_conv_failed(const struct milter_conv *c)
{
	return c->failed;
}

uint64_t
milter_wait_ms(uint64_t timeout_ms, uint64_t deadline, uint64_t now)
{
	if (deadline == 0)
		return timeout_ms;
	if (now >= deadline)
		return 0;
	return deadline - now < timeout_ms ? deadline - now : timeout_ms;
}

/* --- Message octets ---------------------------------------------------- */

void
milter_conv_data(struct milter_conv *c, const uint8_t *p, size_t n,
    bool last)
{
	size_t body;

	if (!c->want_data)
		return;
	c->want_data = false;
	c->last_seen = last;
	if (!c->head_done) {
		if (buf_append(&c->head, p, n) < 0) {
			milter_conv_fail(c, "header section too long");
			return;
		}
		c->head_len = milter_head_len(c->head.p, c->head.len, &body);
		if (body < c->head.len || last) {
			c->head_done = true;
			/* What came after the empty line is the body. */
			if (body < c->head.len && buf_append(&c->chunk,
			    c->head.p + body, c->head.len - body) < 0) {
				milter_conv_fail(c, "out of memory");
				return;
			}
		}
	} else if (buf_append(&c->chunk, p, n) < 0) {
		milter_conv_fail(c, "out of memory");
		return;
	}
	milter_advance(c);
}

/* --- Replies ----------------------------------------------------------- */

/* The next NUL-terminated string of a packet's data, or NULL. */
static const char *
milter_str(const uint8_t **p, size_t *left)
{
	const uint8_t *z = memchr(*p, '\0', *left);
	const char *s = (const char *)*p;

	if (z == NULL)
		return NULL;
	*left -= (size_t)(z - *p) + 1;
	*p = z + 1;
	return s;
}

static bool
milter_negotiate(struct milter_conv *c, const uint8_t *d, size_t len)
{
	uint32_t version;

	if (len < 12) {
		milter_conv_fail(c, "short SMFIC_OPTNEG reply");
		return false;
	}
	version = milter_get32(d);
	c->actions = milter_get32(d + 4);
	c->proto = milter_get32(d + 8);
	/* libmilter answers with the version it speaks; older ones lack
	 * the steps version 6 has. */
	if (version < 2 || version > MILTER_VERSION) {
		milter_conv_fail(c, "unsupported milter version");
		return false;
	}
	if ((c->actions & ~(uint32_t)MILTER_ACTIONS_OFFER) != 0 ||
	    (c->proto & ~(uint32_t)MILTER_PROTO_OFFER) != 0) {
		milter_conv_fail(c, "the filter asks for options not offered");
		return false;
	}
	/* Macro lists after the flags (SMFIF_SETSYMLIST) are a request
	 * that version 6 lets the MTA ignore; all known macros are sent. */
	c->res.leadspc = (c->proto & SMFIP_HDR_LEADSPC) != 0;
	return true;
}

/* An SMFIR_REPLYCODE: "DDD[ -]text", lines joined by CRLF, one code
 * (RFC 5321 4.2.1); only 4xx and 5xx codes are taken. */
static bool
milter_replycode(struct milter_conv *c, const char *s, size_t len)
{
	struct milter_result *res = &c->res;
	size_t pos = 0, tl = 0, i;
	char first[4];

	if (len == 0 || s[len - 1] != '\0' || strlen(s) + 1 != len ||
	    len > MILTER_REPLY_MAX)
		return false;
	len--;
	if (len < 3 || (s[0] != '4' && s[0] != '5') || s[1] < '0' ||
	    s[1] > '9' || s[2] < '0' || s[2] > '9')
		return false;
	memcpy(first, s, 3);
	first[3] = '\0';
	res->enh[0] = '\0';
	while (pos < len) {
		const char *line = s + pos;
		const char *eol = strstr(line, "\r\n");
		size_t ll = eol != NULL ? (size_t)(eol - line) : len - pos;
		size_t t = 4;

		if (ll < 3 || memcmp(line, first, 3) != 0 || (ll > 3 &&
		    line[3] != ' ' && line[3] != '-'))
			return false;
		for (i = 0; i < ll; i++)
			if ((unsigned char)line[i] < 0x20 ||
			    (unsigned char)line[i] > 0x7e)
				return false;
		/* An enhanced code at the start of each line; the first
		 * one's class must match the reply's (RFC 3463 2).  One of
		 * the other class is dropped rather than shown after ours
		 * ("550 5.7.1 4.7.1 ..."): the policy gives the reply
		 * code's class. */
		if (ll > 4 && milter_enh(line + 4, ll - 4, first[0],
		    pos == 0 ? res->enh : NULL, sizeof(res->enh), &t))
			t += 4;
		else if (ll > 4 && milter_enh(line + 4, ll - 4,
		    first[0] == '4' ? '5' : '4', NULL, 0, &t))
			t += 4;
		if (ll > t) {
			if (tl > 0)
				res->text[tl++] = ' ';
			memcpy(res->text + tl, line + t, ll - t);
			tl += ll - t;
		}
		if (eol == NULL)
			break;
		pos += ll + 2;
	}
	res->text[tl] = '\0';
	res->code = atoi(first);
	return true;
}

/* A header name a filter may set: printable, no colon (RFC 5322
 * 2.2). */
static bool
milter_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > MILTER_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 ||
		    (unsigned char)s[i] > 0x7e || s[i] == ':')
			return false;
	return true;
}

/* A value: a CR only before an LF, no other control octet but TAB. */
static bool
milter_value_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u != '\0'; u++) {
		if (*u == '\r' && u[1] != '\n')
			return false;
		if (*u < 0x20 && *u != '\t' && *u != '\r' && *u != '\n')
			return false;
	}
	return true;
}

/* An address of CHGFROM, ADDRCPT or DELRCPT, with or without <>: no
 * white space or control octet. */
static bool
milter_path_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	if (strlen(s) > 512)
		return false;
	for (; *u != '\0'; u++)
		if (*u <= 0x20 || *u == 0x7f)
			return false;
	return true;
}

static bool
milter_edit_add(struct milter_conv *c, enum milter_edit_kind kind,
    uint32_t idx, const char *name, const char *value)
{
	struct milter_result *res = &c->res;
	struct milter_edit *e;
	size_t octets = (name ? strlen(name) : 0) + strlen(value);

	if (res->n_edits >= MILTER_EDITS_MAX ||
	    c->edit_octets + octets > MILTER_EDITS_OCTETS)
		return false;
	if (res->n_edits % 16 == 0) {
		e = realloc(res->edits, (res->n_edits + 16) * sizeof(*e));
		if (e == NULL)
			return false;
		res->edits = e;
	}
	e = &res->edits[res->n_edits];
	e->kind = kind;
	e->idx = idx;
	e->name = name != NULL ? strdup(name) : NULL;
	e->value = strdup(value);
	if ((name != NULL && e->name == NULL) || e->value == NULL) {
		free(e->name);
		free(e->value);
		return false;
	}
	res->n_edits++;
	c->edit_octets += octets;
	return true;
}

/* A change at the end of the message (SMFIR_ADDHEADER ... QUARANTINE).
 * Returns false for a malformed one or one not negotiated. */
static bool
milter_change(struct milter_conv *c, uint8_t cmd, const uint8_t *d,
    size_t len)
{
	const char *name = NULL, *value;
	uint32_t idx = 0;

	switch (cmd) {
	case 'h': /* SMFIR_ADDHEADER */
	case 'i': /* SMFIR_INSHEADER */
	case 'm': /* SMFIR_CHGHEADER */
		if (!(c->actions & (cmd == 'h' ? SMFIF_ADDHDRS :
		    cmd == 'i' ? SMFIF_ADDHDRS : SMFIF_CHGHDRS)))
			return false;
		if (cmd != 'h') {
			if (len < 4)
				return false;
			idx = milter_get32(d);
			d += 4;
			len -= 4;
		}
		if ((name = milter_str(&d, &len)) == NULL ||
		    (value = milter_str(&d, &len)) == NULL ||
		    !milter_name_ok(name) || !milter_value_ok(value))
			return false;
		/* An empty value deletes only for CHGHEADER. */
		return milter_edit_add(c, cmd == 'h' ? MILTER_ADDHDR :
		    cmd == 'i' ? MILTER_INSHDR : MILTER_CHGHDR, idx, name,
		    value);
	case 'e': /* SMFIR_CHGFROM: from and optional ESMTP args */
		if (!(c->actions & SMFIF_CHGFROM) ||
		    (value = milter_str(&d, &len)) == NULL ||
		    !milter_path_ok(value))
			return false;
		return milter_edit_add(c, MILTER_CHGFROM, 0, NULL, value);
	case '+': /* SMFIR_ADDRCPT */
	case '2': /* SMFIR_ADDRCPT_PAR: and its ESMTP arguments */
		if (!(c->actions & (cmd == '+' ? SMFIF_ADDRCPT :
		    SMFIF_ADDRCPT_PAR)) ||
		    (value = milter_str(&d, &len)) == NULL ||
		    !milter_path_ok(value) || value[0] == '\0')
			return false;
		if (cmd == '2' && len > 0) {
			/* The arguments, printable, bounded (a RCPT line's
			 * worth, RFC 5321 4.5.3.1.4). */
			if ((name = milter_str(&d, &len)) == NULL ||
			    strlen(name) > MILTER_ARGS_MAX ||
			    !milter_value_ok(name) || strpbrk(name,
			    "\r\n") != NULL)
				return false;
			if (name[0] == '\0')
				name = NULL;
		}
		return milter_edit_add(c, MILTER_ADDRCPT, 0, name, value);
	case '-': /* SMFIR_DELRCPT */
		if (!(c->actions & SMFIF_DELRCPT) ||
		    (value = milter_str(&d, &len)) == NULL ||
		    !milter_path_ok(value))
			return false;
		return milter_edit_add(c, MILTER_DELRCPT, 0, NULL, value);
	case 'b': /* SMFIR_REPLBODY: a chunk of the new body */
		if (!(c->actions & SMFIF_CHGBODY))
			return false;
		if (c->res.body.len + len > c->env->body_max)
			return false;
		c->res.body_replaced = true;
		return len == 0 || buf_append(&c->res.body, d, len) == 0;
	case 'q': /* SMFIR_QUARANTINE: the reason */
		if (!(c->actions & SMFIF_QUARANTINE) ||
		    (value = milter_str(&d, &len)) == NULL ||
		    !milter_value_ok(value))
			return false;
		c->res.quarantine = true;
		snprintf(c->res.quarantine_reason,
		    sizeof(c->res.quarantine_reason), "%s", value);
		return true;
	}
	return false;
}

/* One complete packet from the filter. */
static void
milter_packet(struct milter_conv *c, uint8_t cmd, const uint8_t *d,
    size_t len)
{
	enum milter_step st = c->wait;

	if (!c->await) {
		milter_conv_fail(c, "a reply nothing asked for");
		return;
	}
	if (st == MILTER_ST_OPTNEG) {
		if (cmd != 'O') {
			milter_conv_fail(c, "no SMFIC_OPTNEG reply");
			return;
		}
		c->await = false;
		(void)milter_negotiate(c, d, len);
		return;
	}
	switch (cmd) {
	case 'p': /* SMFIR_PROGRESS: the glue restarts its timer */
		return;
	case 'c': /* SMFIR_CONTINUE */
		c->await = false;
		if (st == MILTER_ST_EOM) {
			c->res.verdict = MILTER_CONTINUE;
			milter_msg_close(c);
		} else if (c->step != MILTER_ST_IDLE) {
			milter_advance(c);
		}
		return;
	case 's': /* SMFIR_SKIP: no more body chunks */
		if (st != MILTER_ST_BODY || !(c->proto & SMFIP_SKIP))
			break;
		c->await = false;
		c->skip_body = true;
		buf_reset(&c->chunk);
		milter_advance(c);
		return;
	case 'a': /* SMFIR_ACCEPT */
		milter_decide(c, MILTER_ACCEPT);
		return;
	case 'r': /* SMFIR_REJECT */
		milter_decide(c, MILTER_REJECT);
		return;
	case 't': /* SMFIR_TEMPFAIL */
		milter_decide(c, MILTER_TEMPFAIL);
		return;
	case 'd': /* SMFIR_DISCARD */
		milter_decide(c, MILTER_DISCARD);
		return;
	case 'y': /* SMFIR_REPLYCODE */
		if (!milter_replycode(c, (const char *)d, len)) {
			milter_conv_fail(c, "malformed SMFIR_REPLYCODE");
			return;
		}
		milter_decide(c, c->res.code >= 500 ? MILTER_REJECT :
		    MILTER_TEMPFAIL);
		return;
	default:
		if (st == MILTER_ST_EOM) {
			if (!milter_change(c, cmd, d, len))
				milter_conv_fail(c, "a malformed or not "
				    "negotiated change");
			return;
		}
		break;
	}
	milter_conv_fail(c, "an unexpected reply");
}

size_t
milter_conv_feed(struct milter_conv *c, const uint8_t *in, size_t len)
{
	size_t used = 0;

	while (used < len && !c->failed) {
		size_t need, take;
		uint32_t plen;

		need = c->in.len < 4 ? 4 : 4 + milter_get32(c->in.p);
		take = need - c->in.len;
		if (take > len - used)
			take = len - used;
		if (buf_append(&c->in, in + used, take) < 0) {
			milter_conv_fail(c, "out of memory");
			return used;
		}
		used += take;
		if (c->in.len < 4)
			break;
		plen = milter_get32(c->in.p);
		if (plen == 0 || plen > MILTER_PKT_MAX) {
			milter_conv_fail(c, "packet length out of bounds");
			return used;
		}
		if (c->in.len < 4 + (size_t)plen)
			continue;
		c->packets++;
		milter_packet(c, c->in.p[4], c->in.p + 5, plen - 1);
		buf_reset(&c->in);
	}
	return used;
}

/* --- Lifecycle --------------------------------------------------------- */

int
milter_conv_new(const struct milter_env *env, struct milter_conv **c_r)
{
	struct milter_conv *c;
	uint8_t d[12];

	*c_r = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return PR_ENOMEM;
	c->env = env;
	buf_init(&c->out, MILTER_PKT_MAX * 2 + MILTER_HEAD_MAX);
	buf_init(&c->in, MILTER_PKT_MAX + 4);
	buf_init(&c->head, MILTER_HEAD_MAX);
	buf_init(&c->chunk, 2 * MILTER_CHUNK_MAX);
	buf_init(&c->res.body, env->body_max);
	milter_put32(d, MILTER_VERSION);
	milter_put32(d + 4, MILTER_ACTIONS_OFFER);
	milter_put32(d + 8, MILTER_PROTO_OFFER);
	if (milter_put(c, 'O', d, sizeof(d)) < 0) {
		milter_conv_free(&c);
		return PR_ENOMEM;
	}
	c->step = MILTER_ST_IDLE;
	c->await = true;
	c->wait = MILTER_ST_OPTNEG;
	*c_r = c;
	return 0;
}

void
milter_conv_free(struct milter_conv **cp)
{
	struct milter_conv *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->res.n_edits; i++) {
		free(c->res.edits[i].name);
		free(c->res.edits[i].value);
	}
	free(c->res.edits);
	buf_fini(&c->res.body);
	buf_fini(&c->out);
	buf_fini(&c->in);
	buf_fini(&c->head);
	buf_fini(&c->chunk);
	free(c);
	*cp = NULL;
}

struct buf *
milter_conv_out(struct milter_conv *c)
{
	return &c->out;
}

enum milter_event
milter_conv_event(const struct milter_conv *c)
{
	if (c->failed)
		return MILTER_EV_DONE;
	if (c->want_data)
		return MILTER_EV_DATA;
	if (c->await || c->step != MILTER_ST_IDLE)
		return MILTER_EV_NONE;
	return MILTER_EV_DONE;
}

uint64_t
milter_conv_packets(const struct milter_conv *c)
{
	return c->packets;
}

const struct milter_result *
milter_conv_result(const struct milter_conv *c)
{
	return &c->res;
}
