/*
 * fuzz_smtp_proto.c - libFuzzer target for the SMTP protocol core.
 *
 * Input: byte 0 picks the configuration (with 128: content filters, whose
 * steps are answered with a refusal or not), byte 1 a prologue that takes the
 * session straight to an interesting state (after EHLO, authenticated,
 * inside DATA, between BDAT chunks...), byte 2 the feed piece size and
 * how events are answered; the rest is client input.  Every event is
 * answered (success or one of the failures the glue can report), and the
 * replies are checked for shape: CRLF lines starting with a 3-digit code.
 * The client input is also read as the ESMTP arguments a content filter
 * gives an added recipient (smtp_parse_rcpt_dsn).
 *
 * Build: meson setup -Dfuzz=true (with CC=clang); run:
 *   ./fuzz_smtp_proto -max_total_time=20
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "err.h"
#include "smtp_parse.h"
#include "smtp_proto.h"

static const char *const fuzz_prologues[] = {
	"",
	"EHLO fuzz.test\r\n",
	"EHLO fuzz.test\r\nMAIL FROM:<a@remote.test>\r\n"
	    "RCPT TO:<alice@example.test>\r\n",
	"EHLO fuzz.test\r\nMAIL FROM:<a@remote.test> SIZE=100\r\n"
	    "RCPT TO:<alice@example.test>\r\nDATA\r\n",
	"EHLO fuzz.test\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"
	    "MAIL FROM:<alice@example.test>\r\n",
	"EHLO fuzz.test\r\nMAIL FROM:<a@remote.test>\r\n"
	    "RCPT TO:<alice@example.test>\r\nBDAT 5\r\nabcde",
	"EHLO fuzz.test\r\nAUTH LOGIN\r\n",
	"EHLO fuzz.test\r\nSTARTTLS\r\n",
};

/* Checks that out holds whole reply lines "DDD[ -]..." CRLF. */
static void
fuzz_check_out(const struct buf *out)
{
	size_t i = 0;

	while (i < out->len) {
		const uint8_t *p = out->p + i;
		const uint8_t *crlf = memmem(p, out->len - i, "\r\n", 2);

		if (crlf == NULL || crlf - p < 3 || p[0] < '2' || p[0] > '5' ||
		    p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
		    (crlf - p > 3 && p[3] != ' ' && p[3] != '-'))
			abort();
		i += (size_t)(crlf - p) + 2;
	}
}

static void
fuzz_answer(struct smtp_proto *p, const struct smtp_event *ev, unsigned mode)
{
	static const int rcpt_status[] = { SMTP_RCPT_LOCAL, SMTP_RCPT_REMOTE,
	    SMTP_RCPT_UNKNOWN, PR_EQUOTA, PR_ETOOBIG, PR_EIO };

	switch (ev->type) {
	case SMTP_EV_AUTH:
		if (ev->user == NULL || ev->pass == NULL)
			abort();
		smtp_proto_complete(p, mode & 1 ? PR_EAUTH : 0);
		break;
	case SMTP_EV_MAIL:
		if (smtp_proto_auth_user(p)[0] == '\0')
			smtp_proto_complete(p, mode & 2 ? SMTP_MAIL_HOSTED : 0);
		else
			smtp_proto_complete(p, mode & 2 ? PR_EPERM : 0);
		break;
	case SMTP_EV_FROM:
		if (ev->addr == NULL || ev->addr[0] == '\0')
			abort();
		smtp_proto_complete(p, mode & 64 ? PR_EPERM : 0);
		break;
	case SMTP_EV_DELAY:
		if (ev->delay_ms == 0)
			abort();
		smtp_proto_complete(p, 0);
		break;
	case SMTP_EV_RCPT:
		smtp_proto_rcpt_target(p, 1 + (mode & 3), NULL);
		if (mode & 4)
			smtp_proto_rcpt_target(p, 0, "x@remote.test");
		smtp_proto_complete(p, rcpt_status[mode % 6]);
		break;
	case SMTP_EV_SPOOL:
		if (ev->len == 0)
			abort();
		smtp_proto_complete(p, mode & 8 ? PR_EIO : 0);
		break;
	case SMTP_EV_DELIVER:
		if (smtp_proto_tx(p)->n_rcpt == 0)
			abort();
		smtp_proto_queued_as(p, "0123456789abcdef");
		smtp_proto_complete(p, mode & 16 ? PR_EQUOTA : 0);
		break;
	case SMTP_EV_STARTTLS:
		/* A failed handshake is an error completion: closed. */
		if (mode & 32) {
			smtp_proto_complete(p, PR_ETLS);
			if (!smtp_proto_closing(p))
				abort();
		} else {
			smtp_proto_tls_started(p, "TLSv1.3 FUZZ");
		}
		break;
	case SMTP_EV_MILTER: {
		struct smtp_milter_reply r;

		if (ev->milter_step < SMTP_MILTER_HELO ||
		    ev->milter_step > SMTP_MILTER_ABORT)
			abort();
		memset(&r, 0, sizeof(r));
		r.outcome = (mode >> 1) % 4;
		r.code = mode & 128 ? 554 : 0;
		snprintf(r.text, sizeof(r.text), "filtered");
		if (r.outcome != SMTP_MILTER_NONE)
			smtp_proto_milter_reply(p, &r);
		smtp_proto_complete(p, 0);
		break;
	}
	default:
		abort();
	}
}

/* The arguments of SMFIR_ADDRCPT_PAR: the DSN ones, bounded. */
static void
fuzz_rcpt_dsn(const uint8_t *data, size_t size)
{
	char args[SMTP_PARSE_ARGS_MAX + 2], orcpt[DSN_ORCPT_MAX + 1];
	unsigned notify;
	size_t n = size < sizeof(args) - 1 ? size : sizeof(args) - 1;

	memcpy(args, data, n);
	args[n] = '\0';
	if (smtp_parse_rcpt_dsn(args, &notify, orcpt, sizeof(orcpt))) {
		if ((notify & ~0xfu) != 0 || memchr(orcpt, '\0',
		    sizeof(orcpt)) == NULL)
			abort();
	}
}

static void
fuzz_feed(struct smtp_proto *p, const uint8_t *in, size_t len, size_t piece,
    unsigned mode)
{
	const struct smtp_event *ev;
	size_t off = 0, guard = 0;

	while (off < len && guard++ < 10 * len + 100) {
		size_t n = len - off;
		ssize_t used;

		if ((ev = smtp_proto_event(p)) != NULL) {
			fuzz_answer(p, ev, mode++);
			continue;
		}
		if (smtp_proto_closing(p))
			return;
		if (piece > 0 && n > piece)
			n = piece;
		used = smtp_proto_feed(p, in + off, n);
		if (used < 0 || (size_t)used > n)
			abort();
		off += (size_t)used;
		fuzz_check_out(smtp_proto_out(p));
		buf_reset(smtp_proto_out(p));
	}
	while ((ev = smtp_proto_event(p)) != NULL)
		fuzz_answer(p, ev, mode++);
	fuzz_check_out(smtp_proto_out(p));
	buf_reset(smtp_proto_out(p));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_proto_conf conf;
	struct smtp_proto *p;
	struct smtp_trace t = { "192.0.2.1", "id", "date", "<m@x>", NULL };
	struct buf h;
	const char *pro;

	if (size < 3)
		return 0;
	fuzz_rcpt_dsn(data + 3, size - 3);
	memset(&conf, 0, sizeof(conf));
	conf.hostname = "mx.example.test";
	conf.kind = (enum smtp_listen_kind)(1 + data[0] % 3);
	conf.starttls = data[0] & 4;
	conf.allow_plaintext_auth = data[0] & 8;
	conf.milter = data[0] & 128;
	smtp_limits_default(&conf.limits);
	if (data[0] & 16) {
		/* Small limits reach the edges sooner. */
		conf.limits.mem_max = 7;
		conf.limits.data_max = 200;
		conf.limits.rcpt_max = 3;
		conf.limits.targets_max = 4;
		conf.limits.line_max = 64;
		conf.limits.text_line_max = 40;
		conf.limits.auth_line_max = 128;
	}
	if (smtp_proto_new(&conf, &p) < 0)
		return 0;
	if (conf.kind == SMTP_LISTEN_SUBMISSIONS)
		smtp_proto_tls_started(p, "TLSv1.3 FUZZ");
	smtp_proto_greet(p);
	pro = fuzz_prologues[data[1] % (sizeof(fuzz_prologues) /
	    sizeof(fuzz_prologues[0]))];
	fuzz_feed(p, (const uint8_t *)pro, strlen(pro), 0, data[2]);
	fuzz_feed(p, data + 3, size - 3, data[2] >> 4, data[2]);
	if (data[0] & 32)
		smtp_proto_shutdown(p);
	if (data[0] & 64)
		smtp_proto_timeout(p);
	buf_init(&h, 1 << 16);
	if (smtp_proto_trace(p, &t, &h) < 0)
		abort();
	buf_fini(&h);
	fuzz_check_out(smtp_proto_out(p));
	smtp_proto_free(&p);
	return 0;
}
