/*
 * buf.h - a bounded byte buffer.
 *
 * Every buffer fed by a network peer has a hard maximum: buf_reserve() fails
 * with PR_ENOSPC rather than grow past it.  The storage is heap memory that
 * grows geometrically up to max, so an idle session costs only what it used.
 */
#ifndef POSTROOM_BUF_H
#define POSTROOM_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *p;
	size_t len, cap, max;
};

/* Initialises an empty buffer that may grow to max bytes.  No allocation. */
void buf_init(struct buf *b, size_t max);

/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_fini(struct buf *b);

/* Makes room for n more bytes after len.  Returns 0, PR_ENOSPC past max, or
 * PR_ENOMEM.  On success b->p + b->len has at least n writable bytes. */
int buf_reserve(struct buf *b, size_t n);

/* Appends n bytes.  Returns 0, PR_ENOSPC or PR_ENOMEM (buffer unchanged). */
int buf_append(struct buf *b, const void *data, size_t n);

/* Appends a NUL-terminated string (without the NUL). */
int buf_puts(struct buf *b, const char *s);

/* Appends printf-formatted text.  Returns 0, PR_ENOSPC or PR_ENOMEM. */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);

/* Empties the buffer and keeps the storage. */
static inline void
buf_reset(struct buf *b)
{
	b->len = 0;
}

/* Frees storage above keep bytes when the buffer is empty, so a session that
 * once saw a big burst returns to a small footprint. */
void buf_shrink(struct buf *b, size_t keep);

#endif
