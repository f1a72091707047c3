/*
 * fuzz_pop3_proto.c - libFuzzer target for the POP3 core.
 *
 * The input drives a whole session: byte 0 picks the configuration, byte 1
 * seeds how the client bytes are split into feeds and how the fake store
 * answers events; the rest is what the client sends.  The same input is
 * also a message in the maildrop, so RETR/TOP run the dot-stuffing filter
 * over fuzzed bytes.  Besides the sanitizers, the target checks the
 * core's contracts: bounded output, nothing read or written after close,
 * input consumed only while idle.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	ninja -C build-fuzz tests/fuzz/fuzz_pop3_proto
 *	build-fuzz/tests/fuzz/fuzz_pop3_proto -dict=tests/fuzz/pop3.dict \
 *	    tests/fuzz/corpus_pop3_proto
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pop3_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct fuzz_state {
	struct pop3_proto *p;
	const uint8_t *data;
	size_t size;
	uint32_t rng;
	bool closed;
};

static uint32_t
fuzz_rand(struct fuzz_state *f)
{
	f->rng = f->rng * 1103515245u + 12345u;
	return f->rng >> 16;
}

static const char *const fuzz_bodies[] = {
	"Subject: a\r\n\r\nbody\r\n",
	"",
	".\r\n..\r\n.x\r\n",
	"Subject: no end",
	"Subject: b\n\n.\nlf only\n",
};

/* Drains and checks the output. */
static void
fuzz_drain(struct fuzz_state *f)
{
	struct buf *o = pop3_proto_out(f->p);

	/* Output per step is bounded (docs/ARCHITECTURE.md). */
	FUZZ_CHECK(o->len <= 256 * 1024);
	if (f->closed)
		FUZZ_CHECK(o->len == 0);
	buf_reset(o);
}

static void
fuzz_body(struct fuzz_state *f, const struct pop3_event *ev)
{
	const uint8_t *b;
	size_t n, off = 0, step;
	ssize_t k;
	int guard = 0;

	if (ev->msg_id == 5) {
		b = f->data;
		n = f->size;
	} else {
		b = (const uint8_t *)fuzz_bodies[ev->msg_id];
		n = strlen(fuzz_bodies[ev->msg_id]);
	}
	if (fuzz_rand(f) % 16 == 0) {
		pop3_proto_complete(f->p, PR_EIO);
		return;
	}
	/* Opened: a feed of nothing queues the "+OK". */
	FUZZ_CHECK(pop3_proto_body_feed(f->p, b, 0) == 0);
	fuzz_drain(f);
	while (off < n && pop3_proto_body_wanted(f->p)) {
		step = 1 + fuzz_rand(f) % 300;
		if (step > n - off)
			step = n - off;
		k = pop3_proto_body_feed(f->p, b + off, step);
		FUZZ_CHECK(k > 0 && (size_t)k <= step);
		off += (size_t)k;
		fuzz_drain(f);
		FUZZ_CHECK(++guard < 1000000);
	}
	pop3_proto_complete(f->p, fuzz_rand(f) % 32 == 0 ? PR_EIO : 0);
}

static void
fuzz_events(struct fuzz_state *f)
{
	struct pop3_msg *msgs;
	const struct pop3_event *ev;
	size_t i;
	int guard = 0;

	while (!f->closed) {
		FUZZ_CHECK(++guard < 100000);
		if (pop3_proto_closing(f->p)) {
			FUZZ_CHECK(pop3_proto_event(f->p) == NULL);
			fuzz_drain(f);
			f->closed = true;
			break;
		}
		if ((ev = pop3_proto_event(f->p)) == NULL)
			break;
		switch (ev->type) {
		case POP3_EV_STLS:
			if (fuzz_rand(f) % 8 == 0)
				pop3_proto_complete(f->p, PR_ETLS);
			else
				pop3_proto_tls_started(f->p);
			break;
		case POP3_EV_AUTH:
			FUZZ_CHECK(ev->user != NULL && ev->pass != NULL);
			if (strcmp(ev->pass, "pw") != 0) {
				pop3_proto_complete(f->p, fuzz_rand(f) % 4 ?
				    PR_EAUTH : PR_EBUSY);
				break;
			}
			msgs = calloc(6, sizeof(*msgs));
			FUZZ_CHECK(msgs != NULL);
			for (i = 0; i < 6; i++) {
				msgs[i].id = (int64_t)i;
				msgs[i].size = i == 5 ? (int64_t)f->size :
				    (int64_t)strlen(fuzz_bodies[i]);
				memcpy(msgs[i].uidl, "uid-", 4);
				msgs[i].uidl[4] = (char)('a' + i);
			}
			FUZZ_CHECK(pop3_proto_maildrop(f->p, msgs,
			    fuzz_rand(f) % 7) == 0);
			pop3_proto_complete(f->p, 0);
			break;
		case POP3_EV_MORE:
			pop3_proto_complete(f->p, 0);
			break;
		case POP3_EV_BODY:
			FUZZ_CHECK(ev->msg_id >= 0 && ev->msg_id < 6);
			fuzz_body(f, ev);
			break;
		case POP3_EV_COMMIT:
			for (i = 0; i < ev->n_ids; i++)
				FUZZ_CHECK(ev->ids[i] >= 0 && ev->ids[i] < 6);
			pop3_proto_complete(f->p, fuzz_rand(f) % 8 == 0 ?
			    PR_EIO : 0);
			break;
		case POP3_EV_NONE:
			break;
		}
		fuzz_drain(f);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pop3_config cfg;
	struct fuzz_state f;
	const uint8_t *in;
	size_t len, off = 0, step, pending = 0;
	ssize_t k;
	int guard = 0;

	if (size < 2)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	cfg.hostname = "fuzz.example.test";
	cfg.tls_available = data[0] & 1;
	cfg.tls_active = (data[0] & 2) != 0;
	cfg.allow_plaintext_auth = (data[0] & 4) != 0;
	pop3_proto_limits_default(&cfg.limits);
	if (data[0] & 8)
		cfg.limits.line_max = 16;
	memset(&f, 0, sizeof(f));
	f.data = data;
	f.size = size;
	f.rng = data[1];
	if (pop3_proto_new(&cfg, &f.p) < 0)
		return 0;
	pop3_proto_greet(f.p);
	fuzz_drain(&f);
	in = data + 2;
	len = size - 2;
	/* Deliver the client bytes in fuzzed pieces; what the core leaves
	 * unconsumed is offered again, as net.c keeps it buffered. */
	while (off < len && !f.closed) {
		FUZZ_CHECK(++guard < 1000000);
		step = 1 + fuzz_rand(&f) % 64;
		if (pending + step > len - off)
			step = len - off - pending;
		pending += step;
		for (;;) {
			bool was_busy = pop3_proto_event(f.p) != NULL;

			k = pop3_proto_feed(f.p, in + off, pending);
			FUZZ_CHECK(k >= 0 && (size_t)k <= pending);
			/* A core with an event pending reads nothing. */
			if (was_busy)
				FUZZ_CHECK(k == 0);
			off += (size_t)k;
			pending -= (size_t)k;
			fuzz_drain(&f);
			fuzz_events(&f);
			if (f.closed || pending == 0 || k == 0)
				break;
		}
	}
	if (!f.closed && (data[1] & 0x80)) {
		pop3_proto_shutdown(f.p);
		fuzz_drain(&f);
		FUZZ_CHECK(pop3_proto_closing(f.p));
	}
	pop3_proto_free(&f.p);
	return 0;
}
