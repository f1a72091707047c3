/*
 * store_reserve.c - room kept aside so that users can delete mail from a
 * full disk.
 *
 * When the file system of data_dir fills up, deliveries fail (452 4.3.1,
 * RFC 3463 "mail system full"), and so would every other write: a POP3
 * login takes its maildrop lock with an INSERT, and the deletions of QUIT
 * need room in the WAL.  The one way out for a user, deleting mail, must
 * still work.  So a daemon keeps a pre-allocated file of
 * STORE_RESERVE_BYTES in data_dir; a POP3 write that fails for want of
 * room releases it and tries once more.  The file comes back once there
 * is room again.  Deliveries never release it: the reserve is for the
 * way out, not for more mail.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_RESERVE_NAME "reserve"

/* <data_dir>/reserve, next to <data_dir>/mail.db. */
static void
store_reserve_path(const struct store *st, char *path, size_t len)
{
	const char *slash = strrchr(st->path, '/');
	int dirlen = slash != NULL ? (int)(slash - st->path) : 1;

	snprintf(path, len, "%.*s/%s", dirlen, slash != NULL ? st->path : ".",
	    STORE_RESERVE_NAME);
}

int
store_reserve_ensure(struct store *st, struct pr_err *err)
{
	char path[1100];
	struct stat sb;
	int fd, r;

	store_reserve_path(st, path, sizeof(path));
	if (stat(path, &sb) == 0 && sb.st_size >= STORE_RESERVE_BYTES)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return pr_err_set(err, PR_EIO, "%s: %s", path, strerror(errno));
	/* Really allocated blocks, not a sparse file: the point is that
	 * unlinking it gives room back. */
	r = posix_fallocate(fd, 0, STORE_RESERVE_BYTES);
	close(fd);
	if (r != 0) {
		unlink(path);
		return pr_err_set(err, r == ENOSPC ? PR_EFULL : PR_EIO,
		    "%s: %s", path, strerror(r));
	}
	return 0;
}

int64_t
store_reserve_release(struct store *st)
{
	char path[1100];
	struct stat sb;

	store_reserve_path(st, path, sizeof(path));
	if (stat(path, &sb) != 0 || unlink(path) != 0)
		return 0;
	return (int64_t)sb.st_blocks * 512;
}
