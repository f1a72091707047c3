/* maildrop.c - names and the directory of the local submission spool. */
#include "maildrop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

void
maildrop_dir(const struct cfg *cfg, char *out, size_t outsz)
{
	if (cfg->server.maildrop[0] != '\0')
		snprintf(out, outsz, "%s", cfg->server.maildrop);
	else
		snprintf(out, outsz, "%s/maildrop", cfg->server.data_dir);
}

bool
maildrop_name_final(const char *name)
{
	size_t i = 1, digits = 0;

	if (name[0] != 'M')
		return false;
	for (; name[i] >= '0' && name[i] <= '9'; i++)
		digits++;
	if (digits == 0 || digits > 20 || name[i++] != '.')
		return false;
	for (digits = 0; (name[i] >= '0' && name[i] <= '9') ||
	    (name[i] >= 'a' && name[i] <= 'f'); i++)
		digits++;
	return digits == 16 && name[i] == '\0';
}

void
maildrop_names(char *tmp_r, char *final_r)
{
	unsigned char rnd[8];
	char hex[17];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(final_r, MAILDROP_NAME_MAX, "M%lld.%s",
	    (long long)time(NULL), hex);
	snprintf(tmp_r, MAILDROP_NAME_MAX, "T%lld.%s",
	    (long long)time(NULL), hex);
}

int
maildrop_dir_ensure(const char *dir, uid_t uid, gid_t gid,
    struct pr_err *err)
{
	struct stat sb;

	if (mkdir(dir, 0700) == 0) {
		if (geteuid() == 0 && chown(dir, uid, gid) < 0)
			return pr_err_set(err, PR_EIO, "%s: chown: %s", dir,
			    strerror(errno));
		/* mkdir() applies the umask and never sets the sticky bit:
		 * set the mode explicitly.  Sticky: a sender cannot remove
		 * or rename another sender's file. */
		if (chmod(dir, 01730) < 0)
			return pr_err_set(err, PR_EIO, "%s: chmod: %s", dir,
			    strerror(errno));
	} else if (errno != EEXIST)
		return pr_err_set(err, PR_EIO, "%s: %s", dir, strerror(errno));
	if (lstat(dir, &sb) < 0)
		return pr_err_set(err, PR_EIO, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return pr_err_set(err, PR_EINVAL, "%s: not a directory", dir);
	if (sb.st_mode & S_IWOTH)
		return pr_err_set(err, PR_EPERM,
		    "%s: writable by everyone; it must be mode 1730", dir);
	return 0;
}
