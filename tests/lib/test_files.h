/*
 * test_files.h - the data files of a table-driven test, in a stable order.
 *
 *   char **names; size_t n;
 *   if (test_files_list(dir, ".dlg", &names, &n) < 0) ...
 *   ... names[i] ...
 *   test_files_free(names, n);
 */
#ifndef POSTROOM_TEST_FILES_H
#define POSTROOM_TEST_FILES_H

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

static inline int
test_files_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir that end in suffix, sorted by strcmp, so that TAP
 * numbers stay put between runs.  *names_r is a malloc'd array of *n_r
 * malloc'd names (test_files_free).  Returns 0, or -1 when dir cannot be
 * read or memory runs out (then nothing is allocated). */
static inline int
test_files_list(const char *dir, const char *suffix, char ***names_r,
    size_t *n_r)
{
	size_t n = 0, cap = 0, sl = strlen(suffix), len;
	char **names = NULL, **grown;
	struct dirent *de;
	DIR *dh;

	if ((dh = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(dh)) != NULL) {
		len = strlen(de->d_name);
		if (len <= sl || strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((grown = realloc(names, cap * sizeof(*names))) ==
			    NULL)
				goto fail;
			names = grown;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto fail;
		n++;
	}
	closedir(dh);
	if (n > 0)
		qsort(names, n, sizeof(*names), test_files_cmp);
	*names_r = names;
	*n_r = n;
	return 0;
fail:
	closedir(dh);
	while (n > 0)
		free(names[--n]);
	free(names);
	return -1;
}

static inline void
test_files_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

#endif
