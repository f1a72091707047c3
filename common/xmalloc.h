/*
 * xmalloc.h - allocation that cannot fail.
 *
 * Daemons and the CLI treat out-of-memory as fatal (OpenSMTPD, Redis).
 * Pure protocol cores do not use these: they return PR_ENOMEM instead.
 */
#ifndef POSTROOM_XMALLOC_H
#define POSTROOM_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
