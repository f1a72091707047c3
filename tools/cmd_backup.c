/*
 * cmd_backup.c - postroom backup FILE | restore FILE | verify [--repair]
 *
 * A backup is a POSIX tar archive (pax format, written with libarchive):
 * MANIFEST first, then mail.db (a consistent snapshot of the store, taken
 * online, store_backup), the DKIM key files of data_dir/dkim and the
 * MTA-STS policy files of data_dir/mta-sts (`postroom mta-sts`).  The
 * manifest names the postroom version, the schema, what the database holds
 * and the size and SHA-256 of every other member, so `tar -xf` and
 * `sha256sum` are enough to inspect one by hand (docs/BACKUP.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "cli.h"
#include "daemon.h"

#define BACKUP_FORMAT "postroom-backup 1"
#define BACKUP_MANIFEST "MANIFEST"
#define BACKUP_MANIFEST_MAX (1024 * 1024)
/* DKIM files kept in one archive: two keys and a selector file per
 * domain leave room for over a thousand domains. */
#define BACKUP_FILES_MAX 4096
#define BACKUP_PATH_MAX 512
/* A key or policy file: far more than either ever is. */
#define BACKUP_FILE_MAX (1024 * 1024)
#define BACKUP_CHUNK (64 * 1024)
/* A SHA-256 in hex, with its NUL. */
#define BACKUP_HEX_LEN (crypto_hash_sha256_BYTES * 2 + 1)

/* The file of `backup` or `restore` opened by cmd_backup_prepare: -1
 * when it was not (the command opens it itself), else its descriptor,
 * or cmd_backup_prep_errno for why it could not be opened. */
static int cmd_backup_prep_fd = -1;
static int cmd_backup_prep_errno;

void
cmd_backup_prepare(struct cli *cli, int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], "-") == 0 || geteuid() != 0 ||
	    cli->cfg.server.user[0] == '\0')
		return;
	if (strcmp(argv[0], "restore") == 0)
		cmd_backup_prep_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	else
		/* Written in place: the renamed temporary file of
		 * cmd_backup_run would need the directory to be writable by
		 * [server] user. */
		cmd_backup_prep_fd = open(argv[1], O_WRONLY | O_CREAT |
		    O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (cmd_backup_prep_fd < 0)
		cmd_backup_prep_errno = errno;
	else if (strcmp(argv[0], "backup") == 0)
		fchmod(cmd_backup_prep_fd, 0600);
	if (cmd_backup_prep_fd < 0)
		cmd_backup_prep_fd = -2;
}

struct cmd_backup_file {
	char name[BACKUP_PATH_MAX];   /* path inside the archive */
	int64_t size;
	char sha256[BACKUP_HEX_LEN];
	mode_t mode;
	bool seen;                    /* restore: found in the archive */
};

struct cmd_backup_manifest {
	struct store_counts counts;
	char version[64], created[32], hostname[256];
	struct cmd_backup_file *files;
	size_t n_files;
};

/*
 * The seal: the archive is followed by one 512-octet block, "postroom-
 * backup-sha256 <hex>\n" and zeros, the SHA-256 of every octet of the
 * tar stream before it (headers, data, padding and the end-of-archive
 * blocks).  With the members' checksums of the MANIFEST, no octet of a
 * backup can change unnoticed; tar(1) stops at the end-of-archive blocks
 * and never sees the seal.
 */
#define BACKUP_SEAL_LEN 512
#define BACKUP_SEAL_TAG "postroom-backup-sha256 "

/* Both ends of the archive stream: the descriptor and the running hash.
 * Reading, the last BACKUP_SEAL_LEN octets seen are held back from the
 * hash in tail, since only the end of the stream tells they are the
 * seal. */
static void cmd_backup_hex(const unsigned char *h,
    char out[BACKUP_HEX_LEN]);

struct cmd_backup_tee {
	int fd;
	crypto_hash_sha256_state hs;
	unsigned char tail[BACKUP_SEAL_LEN];
	size_t tail_len;
	unsigned char buf[BACKUP_CHUNK];
	bool eof;
	int error;                    /* errno of a failed read or write */
};

static la_ssize_t
cmd_backup_tee_write_cb(struct archive *a, void *arg, const void *p, size_t n)
{
	struct cmd_backup_tee *t = arg;
	const char *q = p;
	size_t done = 0;
	ssize_t w;

	(void)a;
	crypto_hash_sha256_update(&t->hs, p, (unsigned long long)n);
	while (done < n) {
		if ((w = write(t->fd, q + done, n - done)) < 0) {
			if (errno == EINTR)
				continue;
			t->error = errno;
			archive_set_error(a, errno, "write: %s",
			    strerror(errno));
			return -1;
		}
		done += (size_t)w;
	}
	return (la_ssize_t)n;
}

/* Hashes what of p[0..n) is sure not to be the seal. */
static void
cmd_backup_tee_feed(struct cmd_backup_tee *t, const unsigned char *p, size_t n)
{
	size_t out, from_tail, kept;

	if (t->tail_len + n <= BACKUP_SEAL_LEN) {
		memcpy(t->tail + t->tail_len, p, n);
		t->tail_len += n;
		return;
	}
	out = t->tail_len + n - BACKUP_SEAL_LEN;
	from_tail = out < t->tail_len ? out : t->tail_len;
	crypto_hash_sha256_update(&t->hs, t->tail, from_tail);
	crypto_hash_sha256_update(&t->hs, p, out - from_tail);
	kept = t->tail_len - from_tail;
	memmove(t->tail, t->tail + from_tail, kept);
	memcpy(t->tail + kept, p + (out - from_tail), BACKUP_SEAL_LEN - kept);
	t->tail_len = BACKUP_SEAL_LEN;
}

static la_ssize_t
cmd_backup_tee_read_cb(struct archive *a, void *arg, const void **p_r)
{
	struct cmd_backup_tee *t = arg;
	ssize_t n;

	*p_r = t->buf;
	if (t->eof)
		return 0;
	while ((n = read(t->fd, t->buf, sizeof(t->buf))) < 0 &&
	    errno == EINTR)
		;
	if (n < 0) {
		t->error = errno;
		if (a != NULL)
			archive_set_error(a, errno, "read: %s",
			    strerror(errno));
		return -1;
	}
	if (n == 0)
		t->eof = true;
	cmd_backup_tee_feed(t, t->buf, (size_t)n);
	return n;
}

/* Reads the stream to its end after the archive and checks the seal.
 * Returns CLI_OK or CLI_ERR after saying what is wrong. */
static int
cmd_backup_tee_check_seal(struct cmd_backup_tee *t, const char *file)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[BACKUP_HEX_LEN];
	size_t tag = sizeof(BACKUP_SEAL_TAG) - 1;
	la_ssize_t n;
	const void *p;

	while ((n = cmd_backup_tee_read_cb(NULL, t, &p)) > 0)
		;
	if (n < 0)
		return cli_fail("%s: %s", file, strerror(t->error));
	if (t->tail_len != BACKUP_SEAL_LEN ||
	    memcmp(t->tail, BACKUP_SEAL_TAG, tag) != 0)
		return cli_fail("%s is not sealed as a postroom backup is "
		    "(cut short, or not made by postroom backup)", file);
	crypto_hash_sha256_final(&t->hs, h);
	cmd_backup_hex(h, hex);
	for (size_t i = tag + sizeof(hex) - 1 + 1; i < BACKUP_SEAL_LEN; i++)
		if (t->tail[i] != 0)
			return cli_fail("%s is damaged: its seal block is "
			    "changed", file);
	if (sodium_memcmp(t->tail + tag, hex, sizeof(hex) - 1) != 0 ||
	    t->tail[tag + sizeof(hex) - 1] != '\n')
		return cli_fail("%s is damaged: the SHA-256 of the archive "
		    "differs from its seal", file);
	return CLI_OK;
}

static void
cmd_backup_manifest_free(struct cmd_backup_manifest *m)
{
	free(m->files);
	m->files = NULL;
	m->n_files = 0;
}

static struct cmd_backup_file *
cmd_backup_manifest_add(struct cmd_backup_manifest *m, const char *name)
{
	struct cmd_backup_file *f;

	if (m->n_files >= BACKUP_FILES_MAX || strlen(name) >= BACKUP_PATH_MAX)
		return NULL;
	f = realloc(m->files, (m->n_files + 1) * sizeof(*f));
	if (f == NULL)
		return NULL;
	m->files = f;
	f = &m->files[m->n_files++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	return f;
}

/*
 * A member name a backup may hold: "mail.db", up to two names below
 * "dkim/" (a domain and a key file), or one below "mta-sts/" (a policy
 * file), made of letters, digits and "._+-@", none starting with a dot.
 * Anything else (absolute paths, "..", links) is refused, so that
 * restore writes only where it means to.
 */
static bool
cmd_backup_name_ok(const char *name)
{
	const char *p = name;
	size_t depth = 0, len, max;

	if (strcmp(name, "mail.db") == 0)
		return true;
	if (strncmp(name, "dkim/", 5) == 0 || strcmp(name, "dkim") == 0)
		max = 3;
	else if (strncmp(name, "mta-sts/", 8) == 0 ||
	    strcmp(name, "mta-sts") == 0)
		max = 2;
	else
		return false;
	while (*p != '\0') {
		len = strcspn(p, "/");
		if (len == 0 || p[0] == '.' || ++depth > max)
			return false;
		for (size_t i = 0; i < len; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-@",
			    p[i]) == NULL)
				return false;
		p += len;
		if (*p == '/' && *++p == '\0')
			return false;
	}
	return true;
}

static void
cmd_backup_hex(const unsigned char *h, char out[BACKUP_HEX_LEN])
{
	sodium_bin2hex(out, BACKUP_HEX_LEN, h,
	    crypto_hash_sha256_BYTES);
}

/* Size and SHA-256 of the file at path into f. */
static int
cmd_backup_hash_file(const char *path, struct cmd_backup_file *f)
{
	crypto_hash_sha256_state hs;
	unsigned char buf[BACKUP_CHUNK], h[crypto_hash_sha256_BYTES];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return cli_fail("cannot read %s: %s", path, strerror(errno));
	crypto_hash_sha256_init(&hs);
	f->size = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		crypto_hash_sha256_update(&hs, buf, (unsigned long long)n);
		f->size += n;
	}
	close(fd);
	if (n < 0)
		return cli_fail("cannot read %s: %s", path, strerror(errno));
	crypto_hash_sha256_final(&hs, h);
	cmd_backup_hex(h, f->sha256);
	return CLI_OK;
}

/* Adds the regular files of data_dir/sub (and, with nested, of its
 * directories) to m. */
static int
cmd_backup_collect(const char *data_dir, const char *sub, bool nested,
    struct cmd_backup_manifest *m)
{
	char dir[BACKUP_PATH_MAX * 2], path[BACKUP_PATH_MAX * 3];
	char name[BACKUP_PATH_MAX * 2];
	struct dirent *de, *de2;
	struct cmd_backup_file *f;
	struct stat sb;
	DIR *d, *d2;
	int r = CLI_OK;

	snprintf(dir, sizeof(dir), "%s/%s", data_dir, sub);
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? CLI_OK :
		    cli_fail("cannot read %s: %s", dir, strerror(errno));
	while (r == CLI_OK && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) < 0)
			continue;
		if (S_ISREG(sb.st_mode)) {
			snprintf(name, sizeof(name), "%s/%s", sub, de->d_name);
			if (!cmd_backup_name_ok(name))
				continue;
			if (sb.st_size > BACKUP_FILE_MAX)
				r = cli_fail("%s is too large to back up",
				    path);
			else if ((f = cmd_backup_manifest_add(m, name)) ==
			    NULL)
				r = cli_fail("too many files in %s", dir);
			else
				f->mode = sb.st_mode & 0777;
			continue;
		}
		if (!nested || !S_ISDIR(sb.st_mode) ||
		    (d2 = opendir(path)) == NULL)
			continue;
		while (r == CLI_OK && (de2 = readdir(d2)) != NULL) {
			char p2[BACKUP_PATH_MAX * 4];

			snprintf(name, sizeof(name), "%s/%s/%s", sub,
			    de->d_name, de2->d_name);
			snprintf(p2, sizeof(p2), "%s/%s", path, de2->d_name);
			if (de2->d_name[0] == '.' ||
			    !cmd_backup_name_ok(name) || lstat(p2, &sb) < 0 ||
			    !S_ISREG(sb.st_mode))
				continue;
			if (sb.st_size > BACKUP_FILE_MAX)
				r = cli_fail("%s is too large for a key file",
				    p2);
			else if ((f = cmd_backup_manifest_add(m, name)) == NULL)
				r = cli_fail("too many files in %s", dir);
			else
				f->mode = sb.st_mode & 0777;
		}
		closedir(d2);
	}
	closedir(d);
	return r;
}

static int
cmd_backup_manifest_text(const struct cmd_backup_manifest *m, char **out_r,
    size_t *len_r)
{
	const struct store_counts *c = &m->counts;
	FILE *f;

	if ((f = open_memstream(out_r, len_r)) == NULL)
		return cli_fail("out of memory");
	fprintf(f, "%s\nversion %s\ncreated %s\nhostname %s\nschema %d\n"
	    "domains %" PRId64 "\nusers %" PRId64 "\naliases %" PRId64 "\n"
	    "messages %" PRId64 "\nmailbox %" PRId64 "\nqueue %" PRId64 "\n"
	    "queue_rcpt %" PRId64 "\n", BACKUP_FORMAT, m->version, m->created,
	    m->hostname, c->schema, c->domains, c->users, c->aliases,
	    c->bodies, c->mailbox, c->queue, c->queue_rcpt);
	for (size_t i = 0; i < m->n_files; i++)
		fprintf(f, "file %s %" PRId64 " %s\n", m->files[i].name,
		    m->files[i].size, m->files[i].sha256);
	if (fclose(f) != 0)
		return cli_fail("out of memory");
	return CLI_OK;
}

static int
cmd_backup_archive_fail(struct archive *a, const char *what)
{
	return cli_fail("%s: %s", what, archive_error_string(a) != NULL ?
	    archive_error_string(a) : "archive error");
}

/* Writes one member: a regular file of size octets, from path or from
 * data when path is NULL. */
static int
cmd_backup_write_member(struct archive *a, const char *name, mode_t mode,
    int64_t size, const char *path, const void *data)
{
	struct archive_entry *e;
	char buf[BACKUP_CHUNK];
	int64_t left = size;
	ssize_t n;
	int fd = -1, r = CLI_OK;

	if ((e = archive_entry_new()) == NULL)
		return cli_fail("out of memory");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, mode);
	archive_entry_set_size(e, size);
	archive_entry_set_mtime(e, time(NULL), 0);
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		r = cmd_backup_archive_fail(a, name);
		goto out;
	}
	if (path == NULL) {
		if (archive_write_data(a, data, (size_t)size) != size)
			r = cmd_backup_archive_fail(a, name);
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = cli_fail("cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	/* Exactly the octets hashed: a file that changed since is an
	 * error, not a member that fails its checksum at restore. */
	while (left > 0 && (n = read(fd, buf, left < (int64_t)sizeof(buf) ?
	    (size_t)left : sizeof(buf))) > 0) {
		if (archive_write_data(a, buf, (size_t)n) != n) {
			r = cmd_backup_archive_fail(a, name);
			goto out;
		}
		left -= n;
	}
	if (left != 0)
		r = cli_fail("%s changed while it was archived", path);
out:
	if (fd >= 0)
		close(fd);
	archive_entry_free(e);
	return r;
}

/* The files of m, from data_dir (mail.db from snap), into the archive
 * on fd, MANIFEST first. */
static int
cmd_backup_write_archive(int fd, const char *data_dir, const char *snap,
    const struct cmd_backup_manifest *m)
{
	char path[BACKUP_PATH_MAX * 3];
	struct cmd_backup_tee tee;
	struct archive *a;
	char *text = NULL;
	size_t len = 0;
	int r;

	if ((r = cmd_backup_manifest_text(m, &text, &len)) != CLI_OK)
		return r;
	if ((a = archive_write_new()) == NULL) {
		free(text);
		return cli_fail("out of memory");
	}
	memset(&tee, 0, sizeof(tee));
	tee.fd = fd;
	crypto_hash_sha256_init(&tee.hs);
	/* Unblocked: the archive ends right after its end-of-archive
	 * blocks, where the seal goes. */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_open(a, &tee, NULL, cmd_backup_tee_write_cb, NULL) !=
	    ARCHIVE_OK) {
		r = cmd_backup_archive_fail(a, "archive");
		goto out;
	}
	if ((r = cmd_backup_write_member(a, BACKUP_MANIFEST, 0600, (int64_t)len,
	    NULL, text)) != CLI_OK)
		goto out;
	for (size_t i = 0; i < m->n_files && r == CLI_OK; i++) {
		const struct cmd_backup_file *f = &m->files[i];

		if (strcmp(f->name, "mail.db") == 0)
			snprintf(path, sizeof(path), "%s", snap);
		else
			snprintf(path, sizeof(path), "%s/%s", data_dir,
			    f->name);
		r = cmd_backup_write_member(a, f->name, f->mode, f->size, path,
		    NULL);
	}
	if (r == CLI_OK && archive_write_close(a) != ARCHIVE_OK)
		r = cmd_backup_archive_fail(a, "archive");
	if (r == CLI_OK) {
		unsigned char h[crypto_hash_sha256_BYTES];
		char seal[BACKUP_SEAL_LEN], hex[BACKUP_HEX_LEN];

		crypto_hash_sha256_final(&tee.hs, h);
		cmd_backup_hex(h, hex);
		memset(seal, 0, sizeof(seal));
		snprintf(seal, sizeof(seal), "%s%s\n", BACKUP_SEAL_TAG, hex);
		if (cmd_backup_tee_write_cb(a, &tee, seal, sizeof(seal)) < 0)
			r = cli_fail("write: %s", strerror(tee.error));
	}
out:
	archive_write_free(a);
	free(text);
	return r;
}

static void
cmd_backup_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
cmd_backup_run(struct cli *cli, const char *file)
{
	const char *data_dir = cli->cfg.server.data_dir;
	char snap[BACKUP_PATH_MAX * 2], tmp[BACKUP_PATH_MAX * 2];
	struct cmd_backup_manifest m;
	struct cmd_backup_file *f;
	struct pr_err err;
	bool to_stdout = strcmp(file, "-") == 0;
	int fd = -1, r;

	memset(&m, 0, sizeof(m));
	if (!to_stdout && strlen(file) >= BACKUP_PATH_MAX)
		return cli_fail("%s: path too long", file);
	if (to_stdout && isatty(STDOUT_FILENO))
		return cli_fail("refusing to write a backup to a terminal");
	/* The snapshot goes next to the database: the same file system
	 * has room for a copy more surely than /tmp (often a tmpfs). */
	snprintf(snap, sizeof(snap), "%s/backup-%ld-%08" PRIx32 ".db",
	    data_dir, (long)getpid(), randombytes_random());
	pr_err_clear(&err);
	if (store_backup(cli_store(cli), snap, &m.counts, &err) < 0)
		return cli_fail("%s", err.msg);
	snprintf(m.version, sizeof(m.version), "%s", POSTROOM_VERSION);
	snprintf(m.hostname, sizeof(m.hostname), "%s",
	    cli->cfg.server.hostname);
	cmd_backup_now(m.created);
	if ((f = cmd_backup_manifest_add(&m, "mail.db")) == NULL) {
		r = cli_fail("out of memory");
		goto out;
	}
	f->mode = 0640;
	if ((r = cmd_backup_collect(data_dir, "dkim", true, &m)) != CLI_OK ||
	    (r = cmd_backup_collect(data_dir, "mta-sts", false, &m)) != CLI_OK)
		goto out;
	for (size_t i = 0; i < m.n_files && r == CLI_OK; i++) {
		char path[BACKUP_PATH_MAX * 3];

		if (i == 0)
			snprintf(path, sizeof(path), "%s", snap);
		else
			snprintf(path, sizeof(path), "%s/%s", data_dir,
			    m.files[i].name);
		r = cmd_backup_hash_file(path, &m.files[i]);
	}
	if (r != CLI_OK)
		goto out;

	if (to_stdout) {
		fd = STDOUT_FILENO;
	} else if (cmd_backup_prep_fd == -2) {
		r = cli_fail("cannot create %s: %s", file,
		    strerror(cmd_backup_prep_errno));
		goto out;
	} else if (cmd_backup_prep_fd >= 0) {
		fd = cmd_backup_prep_fd;
	} else {
		/* A new file beside FILE, renamed over it when complete: an
		 * older backup of the same name stays whole until then.
		 * mkstemp creates it 0600. */
		snprintf(tmp, sizeof(tmp), "%s.XXXXXX", file);
		if ((fd = mkstemp(tmp)) < 0) {
			r = cli_fail("cannot create %s: %s", tmp,
			    strerror(errno));
			goto out;
		}
	}
	r = cmd_backup_write_archive(fd, data_dir, snap, &m);
	/* EINVAL: standard output is a pipe, which has nothing to sync. */
	if (r == CLI_OK && fsync(fd) < 0 && errno != EINVAL &&
	    errno != EROFS)
		r = cli_fail("%s: %s", to_stdout ? "stdout" : file,
		    strerror(errno));
	if (fd == cmd_backup_prep_fd) {
		/* No half backup that looks like one (restore would refuse
		 * it anyway: it has no seal). */
		if (r != CLI_OK && ftruncate(fd, 0) < 0)
			r = cli_fail("%s: %s", file, strerror(errno));
		if (close(fd) < 0 && r == CLI_OK)
			r = cli_fail("%s: %s", file, strerror(errno));
	} else if (!to_stdout) {
		if (close(fd) < 0 && r == CLI_OK)
			r = cli_fail("%s: %s", tmp, strerror(errno));
		if (r == CLI_OK && rename(tmp, file) < 0)
			r = cli_fail("cannot rename %s to %s: %s", tmp, file,
			    strerror(errno));
		if (r != CLI_OK)
			unlink(tmp);
	}
	if (r == CLI_OK && !to_stdout)
		printf("backup %s: schema %d, %" PRId64 " domains, %" PRId64
		    " users, %" PRId64 " aliases, %" PRId64 " messages in %"
		    PRId64 " mailbox entries, %" PRId64 " queued, %zu DKIM "
		    "files\n", file, m.counts.schema, m.counts.domains,
		    m.counts.users, m.counts.aliases, m.counts.bodies,
		    m.counts.mailbox, m.counts.queue, m.n_files - 1);
out:
	unlink(snap);
	cmd_backup_manifest_free(&m);
	return r;
}

int
cmd_backup(struct cli *cli, int argc, char **argv)
{
	if (argc != 2)
		return CLI_USAGE;
	return cmd_backup_run(cli, argv[1]);
}

/* --- restore ------------------------------------------------------------ */

static int
cmd_restore_num(const char *v, int64_t *out)
{
	char *end;

	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < 0)
		return -1;
	*out = n;
	return 0;
}

/* Parses the MANIFEST text (NUL-terminated) into m.  Returns CLI_OK or
 * CLI_ERR after saying what is wrong. */
static int
cmd_restore_manifest_parse(char *text, struct cmd_backup_manifest *m)
{
	struct { const char *key; int64_t *v; } nums[] = {
		{ "domains", &m->counts.domains },
		{ "users", &m->counts.users },
		{ "aliases", &m->counts.aliases },
		{ "messages", &m->counts.bodies },
		{ "mailbox", &m->counts.mailbox },
		{ "queue", &m->counts.queue },
		{ "queue_rcpt", &m->counts.queue_rcpt },
	};
	char *line, *save = NULL, *key, *val;
	int64_t schema = -1;
	size_t lineno = 0, i;

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (++lineno == 1) {
			if (strcmp(line, BACKUP_FORMAT) != 0)
				return cli_fail("not a postroom backup (the "
				    "MANIFEST does not start with \"%s\")",
				    BACKUP_FORMAT);
			continue;
		}
		key = line;
		if ((val = strchr(line, ' ')) == NULL)
			return cli_fail("MANIFEST line %zu is malformed",
			    lineno);
		*val++ = '\0';
		if (strcmp(key, "version") == 0) {
			snprintf(m->version, sizeof(m->version), "%s", val);
		} else if (strcmp(key, "created") == 0) {
			snprintf(m->created, sizeof(m->created), "%s", val);
		} else if (strcmp(key, "hostname") == 0) {
			snprintf(m->hostname, sizeof(m->hostname), "%s", val);
		} else if (strcmp(key, "schema") == 0) {
			if (cmd_restore_num(val, &schema) < 0 ||
			    schema > 1000000)
				return cli_fail("MANIFEST line %zu: bad "
				    "schema", lineno);
			m->counts.schema = (int)schema;
		} else if (strcmp(key, "file") == 0) {
			char *sz = strchr(val, ' '), *hash;
			struct cmd_backup_file *f;

			if (sz == NULL || (hash = strchr(sz + 1, ' ')) == NULL)
				return cli_fail("MANIFEST line %zu is "
				    "malformed", lineno);
			*sz++ = '\0';
			*hash++ = '\0';
			if (!cmd_backup_name_ok(val) ||
			    strcmp(val, "dkim") == 0 ||
			    strcmp(val, "mta-sts") == 0)
				return cli_fail("MANIFEST line %zu: refusing "
				    "the member name %s", lineno, val);
			for (i = 0; i < m->n_files; i++)
				if (strcmp(m->files[i].name, val) == 0)
					return cli_fail("MANIFEST line %zu: "
					    "%s twice", lineno, val);
			if ((f = cmd_backup_manifest_add(m, val)) == NULL)
				return cli_fail("MANIFEST: too many files");
			if (cmd_restore_num(sz, &f->size) < 0 ||
			    strlen(hash) != crypto_hash_sha256_BYTES * 2)
				return cli_fail("MANIFEST line %zu is "
				    "malformed", lineno);
			snprintf(f->sha256, sizeof(f->sha256), "%s", hash);
		} else {
			for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
				if (strcmp(key, nums[i].key) == 0)
					break;
			/* Keys of a later format are for later readers. */
			if (i < sizeof(nums) / sizeof(nums[0]) &&
			    cmd_restore_num(val, nums[i].v) < 0)
				return cli_fail("MANIFEST line %zu: bad "
				    "number", lineno);
		}
	}
	if (lineno == 0)
		return cli_fail("not a postroom backup (empty MANIFEST)");
	if (schema < 0)
		return cli_fail("MANIFEST has no schema line");
	for (i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].name, "mail.db") == 0)
			return CLI_OK;
	return cli_fail("MANIFEST lists no mail.db");
}

/* Reads the current member (the MANIFEST) into m. */
static int
cmd_restore_read_manifest(struct archive *a, struct archive_entry *e,
    struct cmd_backup_manifest *m)
{
	int64_t size = archive_entry_size(e);
	char *text;
	la_ssize_t n;
	size_t len = 0;
	int r;

	if (strcmp(archive_entry_pathname(e), BACKUP_MANIFEST) != 0 ||
	    archive_entry_filetype(e) != AE_IFREG)
		return cli_fail("not a postroom backup (its first member is "
		    "%s, not %s)", archive_entry_pathname(e), BACKUP_MANIFEST);
	if (size <= 0 || size > BACKUP_MANIFEST_MAX)
		return cli_fail("the MANIFEST is empty or too large");
	if ((text = malloc((size_t)size + 1)) == NULL)
		return cli_fail("out of memory");
	while (len < (size_t)size && (n = archive_read_data(a, text + len,
	    (size_t)size - len)) > 0)
		len += (size_t)n;
	if (len != (size_t)size) {
		free(text);
		return cmd_backup_archive_fail(a, BACKUP_MANIFEST);
	}
	text[len] = '\0';
	if (strlen(text) != len) {
		free(text);
		return cli_fail("the MANIFEST holds a NUL octet");
	}
	r = cmd_restore_manifest_parse(text, m);
	free(text);
	return r;
}

/* Extracts the current member, a regular file, into dir, checking it
 * against the manifest as it goes. */
static int
cmd_restore_member(struct archive *a, struct archive_entry *e, const char *dir,
    struct cmd_backup_manifest *m)
{
	crypto_hash_sha256_state hs;
	unsigned char buf[BACKUP_CHUNK], h[crypto_hash_sha256_BYTES];
	char path[BACKUP_PATH_MAX * 3], hex[BACKUP_HEX_LEN];
	const char *name = archive_entry_pathname(e);
	struct cmd_backup_file *f = NULL;
	int64_t got = 0;
	la_ssize_t n;
	int fd, r = CLI_OK;

	if (name == NULL || !cmd_backup_name_ok(name))
		return cli_fail("refusing the archive member %s",
		    name != NULL ? name : "(no name)");
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (archive_entry_filetype(e) == AE_IFDIR) {
		if (mkdir(path, 0750) < 0 && errno != EEXIST)
			return cli_fail("mkdir %s: %s", path, strerror(errno));
		return CLI_OK;
	}
	if (archive_entry_filetype(e) != AE_IFREG)
		return cli_fail("refusing the archive member %s (not a "
		    "regular file)", name);
	for (size_t i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].name, name) == 0)
			f = &m->files[i];
	if (f == NULL)
		return cli_fail("archive member %s is not in the MANIFEST",
		    name);
	if (f->seen)
		return cli_fail("archive member %s appears twice", name);
	f->seen = true;
	/* The directories of a key or policy file, if the archive had no
	 * entry for them. */
	if (strncmp(name, "dkim/", 5) == 0 ||
	    strncmp(name, "mta-sts/", 8) == 0) {
		char d[BACKUP_PATH_MAX * 3], *slash;

		snprintf(d, sizeof(d), "%s/%.*s", dir,
		    (int)strcspn(name, "/"), name);
		if (mkdir(d, 0750) < 0 && errno != EEXIST)
			return cli_fail("mkdir %s: %s", d, strerror(errno));
		snprintf(d, sizeof(d), "%s", path);
		if ((slash = strrchr(d, '/')) != NULL) {
			*slash = '\0';
			if (mkdir(d, 0750) < 0 && errno != EEXIST)
				return cli_fail("mkdir %s: %s", d,
				    strerror(errno));
		}
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    strcmp(name, "mail.db") == 0 ? 0640 :
	    (archive_entry_perm(e) & 0750) | 0600)) < 0)
		return cli_fail("cannot create %s: %s", path, strerror(errno));
	crypto_hash_sha256_init(&hs);
	while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) {
		crypto_hash_sha256_update(&hs, buf, (unsigned long long)n);
		got += n;
		if (got > f->size) {
			r = cli_fail("archive member %s is larger than the "
			    "MANIFEST says", name);
			break;
		}
		if (write(fd, buf, (size_t)n) != n) {
			r = cli_fail("write %s: %s", path, strerror(errno));
			break;
		}
	}
	if (r == CLI_OK && n < 0)
		r = cmd_backup_archive_fail(a, name);
	if (r == CLI_OK && fsync(fd) < 0)
		r = cli_fail("fsync %s: %s", path, strerror(errno));
	if (close(fd) < 0 && r == CLI_OK)
		r = cli_fail("close %s: %s", path, strerror(errno));
	if (r != CLI_OK)
		return r;
	crypto_hash_sha256_final(&hs, h);
	cmd_backup_hex(h, hex);
	if (got != f->size || sodium_memcmp(hex, f->sha256, sizeof(hex) - 1))
		return cli_fail("archive member %s is damaged: its size or "
		    "SHA-256 differs from the MANIFEST", name);
	return CLI_OK;
}

static int
cmd_restore_rm_cb(const char *path, const struct stat *sb, int type,
    struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void
cmd_restore_rm_tree(const char *dir)
{
	nftw(dir, cmd_restore_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Reads the archive file ("-": stdin) into the new directory dir and
 * checks every member and the database.  Nothing outside dir changes. */
static int
cmd_restore_unpack(const char *file, const char *dir,
    struct cmd_backup_manifest *m)
{
	char db[BACKUP_PATH_MAX * 3];
	struct archive_entry *e;
	struct store_counts c;
	struct cmd_backup_tee *t;
	struct archive *a = NULL;
	struct pr_err err;
	int rc, r = CLI_OK;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return cli_fail("out of memory");
	if (strcmp(file, "-") == 0) {
		t->fd = STDIN_FILENO;
	} else if (cmd_backup_prep_fd != -1) {
		errno = cmd_backup_prep_errno;
		if ((t->fd = cmd_backup_prep_fd) < 0) {
			free(t);
			return cli_fail("cannot open %s: %s", file,
			    strerror(errno));
		}
	} else if ((t->fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		r = cli_fail("cannot open %s: %s", file, strerror(errno));
		free(t);
		return r;
	}
	crypto_hash_sha256_init(&t->hs);
	if ((a = archive_read_new()) == NULL) {
		r = cli_fail("out of memory");
		goto out;
	}
	/* Plain tar only: the seal covers the tar stream as written (a
	 * compressed backup is restored with `zcat FILE | postroom
	 * restore -`). */
	archive_read_support_format_tar(a);
	if ((rc = archive_read_open(a, t, NULL, cmd_backup_tee_read_cb,
	    NULL)) != ARCHIVE_OK) {
		r = cmd_backup_archive_fail(a, file);
		goto out;
	}
	if ((rc = archive_read_next_header(a, &e)) != ARCHIVE_OK) {
		r = rc == ARCHIVE_EOF ? cli_fail("%s is empty", file) :
		    cmd_backup_archive_fail(a, file);
		goto out;
	}
	if ((r = cmd_restore_read_manifest(a, e, m)) != CLI_OK)
		goto out;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK)
		if ((r = cmd_restore_member(a, e, dir, m)) != CLI_OK)
			goto out;
	if (rc != ARCHIVE_EOF) {
		r = cmd_backup_archive_fail(a, file);
		goto out;
	}
	if ((r = cmd_backup_tee_check_seal(t, file)) != CLI_OK)
		goto out;
	for (size_t i = 0; i < m->n_files; i++)
		if (!m->files[i].seen) {
			r = cli_fail("%s lacks %s, which its MANIFEST lists",
			    file, m->files[i].name);
			goto out;
		}
	snprintf(db, sizeof(db), "%s/mail.db", dir);
	pr_err_clear(&err);
	if (store_snapshot_check(db, &c, &err) < 0) {
		r = cli_fail("the database in %s is unusable: %s", file,
		    err.msg);
		goto out;
	}
	if (c.schema != m->counts.schema || c.users != m->counts.users ||
	    c.bodies != m->counts.bodies || c.mailbox != m->counts.mailbox ||
	    c.queue != m->counts.queue || c.domains != m->counts.domains ||
	    c.aliases != m->counts.aliases)
		r = cli_fail("the database in %s does not hold what its "
		    "MANIFEST says", file);
out:
	archive_read_free(a);
	if (t->fd != STDIN_FILENO)
		close(t->fd);
	free(t);
	return r;
}

/* What a store is made of in data_dir, moved aside and back as one. */
static const char *const cmd_restore_parts[] = {
	"mail.db", "mail.db-wal", "mail.db-shm", "dkim", "mta-sts",
};
#define RESTORE_NPARTS \
	(sizeof(cmd_restore_parts) / sizeof(cmd_restore_parts[0]))

/* Moves the parts of the store in from into to; moved[i] records which
 * did.  Returns 0, or -1 with errno and the name in *failed_r. */
static int
cmd_restore_move(const char *from, const char *to, bool moved[RESTORE_NPARTS],
    const char **failed_r)
{
	char a[BACKUP_PATH_MAX * 3], b[BACKUP_PATH_MAX * 3];

	for (size_t i = 0; i < RESTORE_NPARTS; i++) {
		moved[i] = false;
		snprintf(a, sizeof(a), "%s/%s", from, cmd_restore_parts[i]);
		snprintf(b, sizeof(b), "%s/%s", to, cmd_restore_parts[i]);
		if (rename(a, b) == 0) {
			moved[i] = true;
		} else if (errno != ENOENT) {
			*failed_r = cmd_restore_parts[i];
			return -1;
		}
	}
	return 0;
}

static void
cmd_restore_move_back(const char *from, const char *to,
    const bool moved[RESTORE_NPARTS])
{
	char a[BACKUP_PATH_MAX * 3], b[BACKUP_PATH_MAX * 3];

	for (size_t i = 0; i < RESTORE_NPARTS; i++) {
		if (!moved[i])
			continue;
		snprintf(a, sizeof(a), "%s/%s", from, cmd_restore_parts[i]);
		snprintf(b, sizeof(b), "%s/%s", to, cmd_restore_parts[i]);
		if (rename(a, b) < 0)
			fprintf(stderr, "postroom: cannot move %s back to "
			    "%s: %s\n", a, b, strerror(errno));
	}
}

static void
cmd_restore_fsync_dir(const char *dir)
{
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Creates data_dir/pre-restore-<UTC time>, with -2, -3... when a restore
 * in the same second made one, so that every old store is kept.  Returns
 * 0, or -1 with errno. */
static int
cmd_restore_mkdir_aside(const char *data_dir, char *out, size_t outsz)
{
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(out, outsz, "%s/pre-restore-%s", data_dir, stamp);
	for (int n = 2; mkdir(out, 0750) < 0; n++) {
		if (errno != EEXIST || n > 99)
			return -1;
		snprintf(out, outsz, "%s/pre-restore-%s-%d", data_dir, stamp,
		    n);
	}
	return 0;
}

/* One line per problem of store_verify, for verify and restore. */
static void
cmd_verify_cb(void *arg, const char *problem, bool repaired)
{
	(void)arg;
	printf("%s: %s\n", repaired ? "repaired" : "problem", problem);
}

static int
cmd_restore_run(struct cli *cli, const char *file)
{
	const char *data_dir = cli->cfg.server.data_dir;
	char stage[BACKUP_PATH_MAX * 2], aside[BACKUP_PATH_MAX * 2];
	bool old[RESTORE_NPARTS], new[RESTORE_NPARTS], any_old = false;
	const char *failed = NULL;
	struct cmd_backup_manifest m;
	struct store *st = NULL;
	struct pr_err err;
	int lock_smtpd = -1, lock_pop3d = -1, r, left, schema;

	memset(&m, 0, sizeof(m));
	if (strlen(data_dir) >= BACKUP_PATH_MAX)
		return cli_fail("data_dir is too long");
	if (mkdir(data_dir, 0750) < 0 && errno != EEXIST)
		return cli_fail("mkdir %s: %s", data_dir, strerror(errno));
	/* The daemons' own locks (common/daemon.c), held until the end, so
	 * that neither starts on the data_dir halfway through. */
	pr_err_clear(&err);
	if (daemon_lock_hold(data_dir, "smtpd.pid", "postroom-smtpd",
	    &lock_smtpd, &err) < 0 ||
	    daemon_lock_hold(data_dir, "pop3d.pid", "postroom-pop3d",
	    &lock_pop3d, &err) < 0) {
		r = cli_fail("restore refused: %s; stop it first", err.msg);
		goto out;
	}
	snprintf(stage, sizeof(stage), "%s/restore.XXXXXX", data_dir);
	if (mkdtemp(stage) == NULL) {
		r = cli_fail("cannot create %s: %s", stage, strerror(errno));
		goto out;
	}
	if ((r = cmd_restore_unpack(file, stage, &m)) != CLI_OK) {
		cmd_restore_rm_tree(stage);
		goto out;
	}
	/* Opened where it was unpacked: a backup of an older schema is
	 * migrated, and one that cannot be is refused, before anything in
	 * data_dir changes.  Closing checkpoints the WAL into mail.db. */
	pr_err_clear(&err);
	if (store_open(stage, 0, &st, &err) < 0) {
		r = cli_fail("the database in %s does not open: %s", file,
		    err.msg);
		cmd_restore_rm_tree(stage);
		goto out;
	}
	schema = store_schema_version(st);
	left = store_verify(st, false, cmd_verify_cb, NULL, &err);
	store_close(&st);
	if (left < 0) {
		r = cli_fail("the database in %s: %s", file, err.msg);
		cmd_restore_rm_tree(stage);
		goto out;
	}

	/* The archive is whole: set the old store aside, then move the new
	 * one in.  Renames within data_dir, so each is atomic. */
	if (cmd_restore_mkdir_aside(data_dir, aside, sizeof(aside)) < 0) {
		r = cli_fail("cannot create %s: %s", aside, strerror(errno));
		cmd_restore_rm_tree(stage);
		goto out;
	}
	if (cmd_restore_move(data_dir, aside, old, &failed) < 0) {
		r = cli_fail("cannot move %s/%s aside: %s", data_dir, failed,
		    strerror(errno));
		cmd_restore_move_back(aside, data_dir, old);
		rmdir(aside);
		cmd_restore_rm_tree(stage);
		goto out;
	}
	if (cmd_restore_move(stage, data_dir, new, &failed) < 0) {
		r = cli_fail("cannot move the restored %s into %s: %s",
		    failed, data_dir, strerror(errno));
		cmd_restore_move_back(data_dir, stage, new);
		cmd_restore_move_back(aside, data_dir, old);
		rmdir(aside);
		cmd_restore_rm_tree(stage);
		goto out;
	}
	cmd_restore_fsync_dir(data_dir);
	cmd_restore_rm_tree(stage);
	for (size_t i = 0; i < RESTORE_NPARTS; i++)
		any_old |= old[i];
	if (!any_old)
		rmdir(aside);

	printf("restored %s (postroom %s, %s): %" PRId64 " users, %" PRId64
	    " messages, %" PRId64 " queued, schema %d -> %d\n", file,
	    m.version, m.created, m.counts.users, m.counts.bodies,
	    m.counts.queue, m.counts.schema, schema);
	if (any_old)
		printf("the previous store is in %s; remove it when the "
		    "restored one is as it should be\n", aside);
	r = left > 0 ? cli_fail("the restored store has %d problems "
	    "(postroom verify --repair)", left) : CLI_OK;
out:
	store_close(&st);
	if (lock_smtpd >= 0)
		close(lock_smtpd);
	if (lock_pop3d >= 0)
		close(lock_pop3d);
	cmd_backup_manifest_free(&m);
	return r;
}

int
cmd_restore(struct cli *cli, int argc, char **argv)
{
	if (argc != 2)
		return CLI_USAGE;
	return cmd_restore_run(cli, argv[1]);
}

/* --- verify -------------------------------------------------------------- */

int
cmd_verify(struct cli *cli, int argc, char **argv)
{
	struct pr_err err;
	bool repair = false;
	int left;

	if (argc == 2 && strcmp(argv[1], "--repair") == 0)
		repair = true;
	else if (argc != 1)
		return CLI_USAGE;
	pr_err_clear(&err);
	left = store_verify(cli_store(cli), repair, cmd_verify_cb, NULL, &err);
	fflush(stdout);
	if (left < 0)
		return cli_fail("verify: %s", err.msg);
	if (left == 0) {
		printf("verify: no problems found\n");
		return CLI_OK;
	}
	if (left > 0)
		return cli_fail("verify: %d problem%s%s", left,
		    left == 1 ? "" : "s", repair ? " left that --repair does "
		    "not put right" : " (postroom verify --repair puts right "
		    "what it safely can)");
	return CLI_OK;
}
