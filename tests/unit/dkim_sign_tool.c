/*
 * dkim_sign_tool.c - signs a message for test_dkim_dkimpy.py:
 *
 *   dkim_sign_tool KEY.pem DOMAIN SELECTOR C CHUNK < message > signed
 *
 * C is a c= value ("relaxed/simple"); the message is fed to the signer
 * CHUNK octets at a time.  Writes the DKIM-Signature field and the
 * message.  Exit status 0, or 1 with a line on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dkim_canon.h"
#include "dkim_key.h"
#include "dkim_signer.h"
#include "err.h"

static int
read_all(FILE *f, struct buf *b)
{
	size_t n;

	for (;;) {
		if (buf_reserve(b, 4096) < 0)
			return -1;
		n = fread(b->p + b->len, 1, 4096, f);
		b->len += n;
		if (n < 4096)
			return ferror(f) ? -1 : 0;
	}
}

int
main(int argc, char **argv)
{
	struct dkim_signer *s = NULL;
	struct dkim_key *k = NULL;
	enum dkim_canon hc, bc;
	struct buf pem, msg, out;
	struct pr_err err;
	size_t chunk, i, n;
	FILE *f;
	int r = 1;

	if (argc != 6) {
		fprintf(stderr, "usage: dkim_sign_tool KEY DOMAIN SELECTOR C "
		    "CHUNK\n");
		return 2;
	}
	chunk = (size_t)strtoul(argv[5], NULL, 10);
	buf_init(&pem, 1 << 16);
	buf_init(&msg, 1 << 24);
	buf_init(&out, 1 << 16);
	if ((f = fopen(argv[1], "r")) == NULL || read_all(f, &pem) < 0 ||
	    read_all(stdin, &msg) < 0) {
		fprintf(stderr, "cannot read the key or the message\n");
		goto out;
	}
	if (dkim_canon_parse(argv[4], strlen(argv[4]), &hc, &bc) < 0 ||
	    chunk == 0) {
		fprintf(stderr, "bad c= or chunk size\n");
		goto out;
	}
	if (dkim_key_from_pem(argv[2], argv[3], (const char *)pem.p, pem.len,
	    &k, &err) < 0 || dkim_signer_new(k, &s) < 0 ||
	    dkim_signer_set_canon(s, hc, bc) < 0) {
		fprintf(stderr, "cannot set up the signer\n");
		goto out;
	}
	for (i = 0; i < msg.len; i += n) {
		n = msg.len - i < chunk ? msg.len - i : chunk;
		if (dkim_signer_feed(s, msg.p + i, n) < 0) {
			fprintf(stderr, "feed failed\n");
			goto out;
		}
	}
	if (dkim_signer_finish(s, 1700000000, &out, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		goto out;
	}
	fwrite(out.p, 1, out.len, stdout);
	fwrite(msg.p, 1, msg.len, stdout);
	r = fflush(stdout) == 0 ? 0 : 1;
out:
	if (f != NULL)
		fclose(f);
	dkim_signer_free(&s);
	dkim_key_free(&k);
	buf_fini(&pem);
	buf_fini(&msg);
	buf_fini(&out);
	return r;
}
