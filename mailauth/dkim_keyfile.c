/*
 * dkim_keyfile.c - DKIM key files under <data_dir>/dkim/.
 */
#include "dkim_keyfile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"

/* A PEM private key is a few KiB; anything much larger is not one. */
#define DKIM_KEYFILE_PEM_MAX (64 * 1024)
/* A key directory and a file in it, as dkim_keyfile_dir() builds them. */
#define DKIM_KEYFILE_DIR_MAX 1100
#define DKIM_KEYFILE_PATH_MAX 1200

static int
dkim_keyfile_dir(const char *data_dir, const char *domain, char *out,
    size_t outsz, struct pr_err *err)
{
	char d[256];
	size_t i;

	if (!dkim_key_name_ok(domain, 253))
		return pr_err_set(err, PR_EINVAL, "bad domain name '%s'",
		    domain);
	for (i = 0; domain[i] != '\0'; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[i] = '\0';
	if ((size_t)snprintf(out, outsz, "%s/dkim/%s", data_dir, d) >= outsz)
		return pr_err_set(err, PR_EINVAL, "data_dir path too long");
	return 0;
}

/* The key directory of domain into dir and the key file of selector
 * in it into path (DKIM_KEYFILE_DIR_MAX and DKIM_KEYFILE_PATH_MAX
 * octets); PR_EINVAL for a name unfit for a path. */
static int
dkim_keyfile_key_path(const char *data_dir, const char *domain,
    const char *selector, char *dir, char *path, struct pr_err *err)
{
	int r;

	if ((r = dkim_keyfile_dir(data_dir, domain, dir, DKIM_KEYFILE_DIR_MAX,
	    err)) < 0)
		return r;
	if (!dkim_key_name_ok(selector, DKIM_KEY_SELECTOR_MAX))
		return pr_err_set(err, PR_EINVAL, "bad selector '%s'",
		    selector);
	snprintf(path, DKIM_KEYFILE_PATH_MAX, "%s/%s.key", dir, selector);
	return 0;
}

static int
dkim_keyfile_read_selector(const char *dir, char *sel, struct pr_err *err)
{
	char path[1200], line[DKIM_KEY_SELECTOR_MAX + 8];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/selector", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return pr_err_set(err, PR_ENOENT, "no DKIM key");
		return pr_err_set(err, PR_EIO, "%s: %s", path,
		    strerror(errno));
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (!dkim_key_name_ok(line, DKIM_KEY_SELECTOR_MAX))
		return pr_err_set(err, PR_EINVAL, "%s: bad selector", path);
	memcpy(sel, line, n + 1);
	return 0;
}

/* Reads the whole file at path into out (bounded by its max). */
static int
dkim_keyfile_read(const char *path, struct buf *out, struct pr_err *err)
{
	FILE *f;
	size_t n;
	int r;

	f = fopen(path, "r");
	if (f == NULL)
		return pr_err_set(err, errno == ENOENT ? PR_ENOENT : PR_EIO,
		    "%s: %s", path, strerror(errno));
	for (;;) {
		if ((r = buf_reserve(out, 4096)) < 0) {
			fclose(f);
			return pr_err_set(err, r, "%s: too large for a key",
			    path);
		}
		n = fread(out->p + out->len, 1, 4096, f);
		out->len += n;
		if (n < 4096)
			break;
	}
	r = ferror(f) ? pr_err_set(err, PR_EIO, "%s: read error", path) : 0;
	fclose(f);
	return r;
}

static int
dkim_keyfile_mkdir(const char *path, gid_t gid, struct pr_err *err)
{
	mode_t mode = gid != (gid_t)-1 ? 0750 : 0700;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return pr_err_set(err, PR_EIO, "mkdir %s: %s", path,
		    strerror(errno));
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		return pr_err_set(err, PR_EIO, "chown %s: %s", path,
		    strerror(errno));
	return 0;
}

/* Writes data to path through a temporary file: rename(2) replaces an
 * existing file, link(2) (excl) refuses one. */
static int
dkim_keyfile_write(const char *path, const void *data, size_t len,
    mode_t mode, gid_t gid, bool excl, struct pr_err *err)
{
	char tmp[1300];
	int fd, flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
	ssize_t w;

	if (excl && access(path, F_OK) == 0)
		return pr_err_set(err, PR_EEXIST, "%s exists", path);
	snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	fd = open(tmp, flags, mode);
	if (fd < 0)
		return pr_err_set(err, PR_EIO, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) < 0 ||
	    (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0))
		goto fail;
	w = write(fd, data, len);
	if (w < 0 || (size_t)w != len || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (excl ? link(tmp, path) < 0 : rename(tmp, path) < 0)
		goto fail;
	if (excl)
		unlink(tmp);
	return 0;
fail:
	pr_err_set(err, errno == EEXIST ? PR_EEXIST : PR_EIO, "%s: %s", path,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err != NULL ? err->code : PR_EIO;
}

static const char *const dkim_keyfile_states[] = {
	[DKIM_KEYFILE_PENDING] = "pending",
	[DKIM_KEYFILE_ACTIVE] = "active",
	[DKIM_KEYFILE_RETIRED] = "retired",
};

const char *
dkim_keyfile_state_name(enum dkim_keyfile_state st)
{
	if ((size_t)st >= sizeof(dkim_keyfile_states) /
	    sizeof(dkim_keyfile_states[0]))
		return "unknown";
	return dkim_keyfile_states[st];
}

static int
dkim_keyfile_write_state(const char *dir, const char *selector,
    enum dkim_keyfile_state st, mode_t mode, gid_t gid, struct pr_err *err)
{
	char path[1200], word[16];

	snprintf(path, sizeof(path), "%s/%s.state", dir, selector);
	snprintf(word, sizeof(word), "%s\n", dkim_keyfile_state_name(st));
	return dkim_keyfile_write(path, word, strlen(word), mode, gid, false,
	    err);
}

/*
 * The state of the key dir/<selector>.key.  Without a state file the
 * directory comes from an older version, where the file "selector"
 * named the one key that signed (see dkim_keyfile.h).
 */
static int
dkim_keyfile_read_state(const char *dir, const char *selector,
    enum dkim_keyfile_state *st_r, struct pr_err *err)
{
	char path[1200], line[32], legacy[DKIM_KEY_SELECTOR_MAX + 1];
	struct pr_err lerr;
	FILE *f;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s.state", dir, selector);
	f = fopen(path, "r");
	if (f == NULL && errno != ENOENT)
		return pr_err_set(err, PR_EIO, "%s: %s", path,
		    strerror(errno));
	if (f == NULL) {
		*st_r = dkim_keyfile_read_selector(dir, legacy, &lerr) == 0 &&
		    strcmp(legacy, selector) == 0 ? DKIM_KEYFILE_ACTIVE :
		    DKIM_KEYFILE_RETIRED;
		return 0;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	for (i = 0; i < sizeof(dkim_keyfile_states) /
	    sizeof(dkim_keyfile_states[0]); i++) {
		if (strcmp(line, dkim_keyfile_states[i]) == 0) {
			*st_r = (enum dkim_keyfile_state)i;
			return 0;
		}
	}
	return pr_err_set(err, PR_EINVAL, "%s: unknown state '%s'", path,
	    line);
}

static int
dkim_keyfile_info_cmp(const void *a, const void *b)
{
	const struct dkim_keyfile_info *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->selector, y->selector);
}

int
dkim_keyfile_list(const char *data_dir, const char *domain,
    struct dkim_keyfile_info *info, size_t max, struct pr_err *err)
{
	char dir[1100], path[1200];
	struct dirent *de;
	struct stat sb;
	size_t n = 0, len;
	DIR *d;
	int r;

	if ((r = dkim_keyfile_dir(data_dir, domain, dir, sizeof(dir),
	    err)) < 0)
		return r;
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return pr_err_set(err, PR_EIO, "%s: %s", dir,
		    strerror(errno));
	}
	while (n < max && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len <= 4 || strcmp(de->d_name + len - 4, ".key") != 0 ||
		    len - 4 > DKIM_KEY_SELECTOR_MAX)
			continue;
		memcpy(info[n].selector, de->d_name, len - 4);
		info[n].selector[len - 4] = '\0';
		if (!dkim_key_name_ok(info[n].selector,
		    DKIM_KEY_SELECTOR_MAX))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
			continue;
		info[n].created = (long long)sb.st_mtime;
		if ((r = dkim_keyfile_read_state(dir, info[n].selector,
		    &info[n].state, err)) < 0) {
			closedir(d);
			return r;
		}
		n++;
	}
	closedir(d);
	qsort(info, n, sizeof(*info), dkim_keyfile_info_cmp);
	return (int)n;
}

static int
dkim_keyfile_name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int
dkim_keyfile_domains(const char *data_dir, char (*names)[256], size_t max,
    struct pr_err *err)
{
	char top[1100];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(top, sizeof(top), "%s/dkim", data_dir);
	d = opendir(top);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return pr_err_set(err, PR_EIO, "%s: %s", top,
		    strerror(errno));
	}
	while (n < max && (de = readdir(d)) != NULL) {
		if (!dkim_key_name_ok(de->d_name, 253))
			continue;
		snprintf(names[n++], 256, "%s", de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), dkim_keyfile_name_cmp);
	return (int)n;
}

int
dkim_keyfile_load_one(const char *data_dir, const char *domain,
    const char *selector, struct dkim_key **k_r, struct pr_err *err)
{
	char dir[DKIM_KEYFILE_DIR_MAX], path[DKIM_KEYFILE_PATH_MAX];
	struct buf pem;
	int r;

	if ((r = dkim_keyfile_key_path(data_dir, domain, selector, dir,
	    path, err)) < 0)
		return r;
	buf_init(&pem, DKIM_KEYFILE_PEM_MAX);
	r = dkim_keyfile_read(path, &pem, err);
	if (r == 0 && (r = dkim_key_from_pem(domain, selector,
	    (const char *)pem.p, pem.len, k_r, err)) < 0 && err != NULL) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		pr_err_set(err, r, "%s: %s", path, why);
	}
	if (pem.p != NULL)
		OPENSSL_cleanse(pem.p, pem.cap);
	buf_fini(&pem);
	return r;
}

int
dkim_keyfile_load_active(const char *data_dir, const char *domain,
    struct dkim_key **keys, size_t max, struct pr_err *err)
{
	struct dkim_keyfile_info info[DKIM_KEYFILE_MAX];
	size_t i, n = 0;
	int nk, r;

	nk = dkim_keyfile_list(data_dir, domain, info, DKIM_KEYFILE_MAX, err);
	if (nk < 0)
		return nk;
	for (i = 0; i < (size_t)nk && n < max; i++) {
		if (info[i].state != DKIM_KEYFILE_ACTIVE)
			continue;
		r = dkim_keyfile_load_one(data_dir, domain, info[i].selector,
		    &keys[n], err);
		if (r < 0) {
			while (n > 0)
				dkim_key_free(&keys[--n]);
			return r;
		}
		n++;
	}
	return (int)n;
}

int
dkim_keyfile_load(const char *data_dir, const char *domain,
    struct dkim_key **k_r, struct pr_err *err)
{
	int n;

	n = dkim_keyfile_load_active(data_dir, domain, k_r, 1, err);
	if (n < 0)
		return n;
	if (n == 0)
		return pr_err_set(err, PR_ENOENT, "no active DKIM key");
	return 0;
}

int
dkim_keyfile_set_state(const char *data_dir, const char *domain,
    const char *selector, enum dkim_keyfile_state st, gid_t gid,
    struct pr_err *err)
{
	char dir[DKIM_KEYFILE_DIR_MAX], path[DKIM_KEYFILE_PATH_MAX];
	mode_t mode = gid != (gid_t)-1 ? 0640 : 0600;
	int r;

	if ((r = dkim_keyfile_key_path(data_dir, domain, selector, dir,
	    path, err)) < 0)
		return r;
	if (access(path, F_OK) < 0)
		return pr_err_set(err, PR_ENOENT, "%s has no DKIM key with "
		    "selector '%s'", domain, selector);
	return dkim_keyfile_write_state(dir, selector, st, mode, gid, err);
}

int
dkim_keyfile_create(const char *data_dir, const char *domain,
    const char *selector, bool ed25519, gid_t gid, struct dkim_key **k_r,
    struct pr_err *err)
{
	char top[DKIM_KEYFILE_DIR_MAX], dir[DKIM_KEYFILE_DIR_MAX];
	char path[DKIM_KEYFILE_PATH_MAX];
	mode_t mode = gid != (gid_t)-1 ? 0640 : 0600;
	struct dkim_key *k = NULL;
	struct buf pem;
	int r;

	if (selector == NULL)
		selector = DKIM_KEYFILE_SELECTOR_DEFAULT;
	if ((r = dkim_keyfile_key_path(data_dir, domain, selector, dir,
	    path, err)) < 0)
		return r;
	snprintf(top, sizeof(top), "%s/dkim", data_dir);
	if ((r = dkim_keyfile_mkdir(top, gid, err)) < 0 ||
	    (r = dkim_keyfile_mkdir(dir, gid, err)) < 0)
		return r;
	if (access(path, F_OK) == 0)
		return pr_err_set(err, PR_EEXIST,
		    "a key with selector '%s' exists for %s; choose another "
		    "with --selector", selector, domain);

	if ((r = dkim_key_generate(domain, selector, ed25519, &k, err)) < 0)
		return r;
	buf_init(&pem, DKIM_KEYFILE_PEM_MAX);
	r = dkim_key_to_pem(k, &pem, err);
	if (r == 0)
		r = dkim_keyfile_write(path, pem.p, pem.len, mode, gid, true,
		    err);
	if (pem.p != NULL)
		OPENSSL_cleanse(pem.p, pem.cap);
	buf_fini(&pem);
	if (r < 0)
		goto fail;
	/* A new key waits for its record to be published. */
	r = dkim_keyfile_write_state(dir, selector, DKIM_KEYFILE_PENDING,
	    mode, gid, err);
	if (r < 0)
		goto fail;
	*k_r = k;
	return 0;
fail:
	dkim_key_free(&k);
	return r;
}
