/*
 * fuzz_restore.c - libFuzzer target for what `postroom restore` reads
 * (tools/cmd_backup.c): a backup file, which may come over a pipe from
 * another host (docs/BACKUP.md 2).
 *
 * The input is written to a file and unpacked into a fresh directory by
 * cmd_restore_unpack(), the code restore runs before it touches
 * data_dir: the tar stream (libarchive), the MANIFEST parser, the member
 * names, sizes and checksums, the seal and, for a member that passes all
 * that, the database check.  The target checks that nothing is written
 * outside that directory and that an archive it accepts holds mail.db.
 *
 *	CC=clang meson setup -Dfuzz=true build-fuzz
 *	build-fuzz/tests/fuzz/fuzz_restore tests/fuzz/corpus_restore
 */
#include <stdarg.h>

/* The CLI's reporting, quiet: the fuzzer feeds garbage on purpose. */
#include "cli.h"

int
cli_fail(const char *fmt, ...)
{
	(void)fmt;
	return CLI_ERR;
}

/* Only cmd_backup_run opens the store; the target never calls it. */
struct store *
cli_store(struct cli *cli)
{
	(void)cli;
	__builtin_trap();
}

#include "../../tools/cmd_backup.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static char fuzz_top[256];

static void
fuzz_restore_cleanup(void)
{
	rmdir(fuzz_top);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char file[300], dir[300], db[320];
	struct cmd_backup_manifest m;
	struct stat sb;
	FILE *f;
	int r;

	if (fuzz_top[0] == '\0') {
		snprintf(fuzz_top, sizeof(fuzz_top), "/tmp/fuzz-restore-XXXXXX");
		FUZZ_CHECK(mkdtemp(fuzz_top) != NULL);
		atexit(fuzz_restore_cleanup);
	}
	snprintf(file, sizeof(file), "%s/in.tar", fuzz_top);
	snprintf(dir, sizeof(dir), "%s/stage", fuzz_top);
	FUZZ_CHECK((f = fopen(file, "w")) != NULL);
	FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
	FUZZ_CHECK(fclose(f) == 0);
	FUZZ_CHECK(mkdir(dir, 0700) == 0);

	memset(&m, 0, sizeof(m));
	r = cmd_restore_unpack(file, dir, &m);
	FUZZ_CHECK(r == CLI_OK || r == CLI_ERR);
	snprintf(db, sizeof(db), "%s/mail.db", dir);
	if (r == CLI_OK)
		FUZZ_CHECK(stat(db, &sb) == 0 && S_ISREG(sb.st_mode));
	cmd_backup_manifest_free(&m);

	cmd_restore_rm_tree(dir);
	/* Only in.tar is left: nothing escaped the stage directory. */
	{
		DIR *d = opendir(fuzz_top);
		struct dirent *de;
		int n = 0;

		FUZZ_CHECK(d != NULL);
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		FUZZ_CHECK(n == 1);
	}
	unlink(file);
	return 0;
}
