/*
 * pop3_deliver.c - test helper: puts a message into mailboxes through the
 * store, exactly as postroom-smtpd's local delivery does (store_deliver),
 * so POP3 tests do not depend on SMTP.
 *
 *	pop3_deliver [-n COUNT] [-f SENDER] DATA_DIR FILE ADDRESS...
 *
 * FILE ("-" for stdin) is stored as store_deliver stores it: CRLF line
 * ends, a final CRLF.
 * With -n the message is delivered COUNT times to each address (in
 * transactions of up to 500 messages).  Prints one stored id per line.
 * Exit status 0, or 1 with a reason on stderr.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "store.h"

#define BATCH 500

static int
read_all(const char *path, uint8_t **data_r, size_t *len_r)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	uint8_t *p = NULL, *np;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return -1;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if ((np = realloc(p, cap)) == NULL) {
				free(p);
				return -1;
			}
			p = np;
		}
		n = fread(p + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (f != stdin)
		fclose(f);
	*data_r = p;
	*len_r = len;
	return 0;
}

int
main(int argc, char **argv)
{
	struct store *st;
	struct pr_err err;
	struct store_user u;
	struct store_msg *msgs, **ptrs;
	const char *sender = "sender@example.org";
	int64_t *ids;
	uint8_t *data = NULL;
	size_t len = 0, n_users, i, j, k, left, batch;
	long count = 1;
	int c, fd = -1;
	struct stat sb;

	while ((c = getopt(argc, argv, "n:f:")) != -1) {
		switch (c) {
		case 'n':
			count = atol(optarg);
			break;
		case 'f':
			sender = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind < 3 || count < 1)
		goto usage;
	/* Big files go to the store by descriptor, as smtpd's spool does. */
	if (strcmp(argv[optind + 1], "-") != 0 &&
	    stat(argv[optind + 1], &sb) == 0 && sb.st_size > (1 << 20)) {
		if ((fd = open(argv[optind + 1], O_RDONLY)) < 0) {
			perror(argv[optind + 1]);
			return 1;
		}
		len = (size_t)sb.st_size;
	} else if (read_all(argv[optind + 1], &data, &len) < 0) {
		perror(argv[optind + 1]);
		return 1;
	}
	if (store_open(argv[optind], 0, &st, &err) < 0) {
		fprintf(stderr, "pop3_deliver: %s\n", err.msg);
		return 1;
	}
	n_users = (size_t)(argc - optind - 2);
	ids = calloc(n_users, sizeof(*ids));
	for (i = 0; i < n_users; i++) {
		if (store_user_get(st, argv[optind + 2 + i], &u, &err) < 0) {
			fprintf(stderr, "pop3_deliver: %s: %s\n",
			    argv[optind + 2 + i], err.msg);
			return 1;
		}
		ids[i] = u.id;
	}
	msgs = calloc(BATCH, sizeof(*msgs));
	ptrs = calloc(BATCH, sizeof(*ptrs));
	for (left = (size_t)count; left > 0; left -= batch) {
		batch = left < BATCH ? left : BATCH;
		for (k = 0; k < batch; k++) {
			memset(&msgs[k], 0, sizeof(msgs[k]));
			msgs[k].sender = sender;
			msgs[k].users = ids;
			msgs[k].n_users = n_users;
			msgs[k].body = data;
			msgs[k].body_len = len;
			msgs[k].body_fd = fd;
			ptrs[k] = &msgs[k];
		}
		if (store_deliver(st, ptrs, batch) < 0) {
			fprintf(stderr, "pop3_deliver: %s\n", msgs[0].err.msg);
			return 1;
		}
		for (j = 0; j < batch; j++) {
			if (msgs[j].status < 0) {
				fprintf(stderr, "pop3_deliver: %s\n",
				    msgs[j].err.msg);
				return 1;
			}
			printf("%s\n", msgs[j].id);
		}
	}
	store_close(&st);
	free(msgs);
	free(ptrs);
	free(ids);
	free(data);
	if (fd >= 0)
		close(fd);
	return 0;

usage:
	fprintf(stderr, "usage: pop3_deliver [-n COUNT] [-f SENDER] DATA_DIR "
	    "FILE ADDRESS...\n");
	return 2;
}
