/* test_buf.c - bounded buffers: growth, limits at max and max+1. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tap.h"

int
main(void)
{
	struct buf b;
	char big[300];
	int i;

	buf_init(&b, 16);
	TAP_EQ_INT(b.len, 0, "new buffer is empty");
	TAP_EQ_INT(buf_append(&b, "0123456789abcdef", 16), 0, "append to max");
	TAP_EQ_INT(b.len, 16, "len at max");
	TAP_EQ_INT(buf_append(&b, "x", 1), PR_ENOSPC, "max+1 refused");
	TAP_EQ_INT(b.len, 16, "len unchanged after refusal");
	buf_consume(&b, 10);
	TAP_OK(b.len == 6 && memcmp(b.p, "abcdef", 6) == 0, "consume moves rest");
	buf_consume(&b, 100);
	TAP_EQ_INT(b.len, 0, "consume past end empties");
	TAP_EQ_INT(buf_printf(&b, "%d-%s", 42, "ok"), 0, "printf");
	TAP_OK(b.len == 5 && memcmp(b.p, "42-ok", 5) == 0, "printf content");
	TAP_EQ_INT(buf_printf(&b, "%s", "0123456789012"), PR_ENOSPC,
	    "printf past max refused");
	buf_reset(&b);
	buf_shrink(&b, 0);
	TAP_OK(b.p == NULL && b.cap == 0, "shrink frees an empty buffer");
	buf_fini(&b);

	buf_init(&b, 1 << 20);
	memset(big, 'a', sizeof(big));
	for (i = 0; i < 1000; i++)
		if (buf_append(&b, big, sizeof(big)) != 0)
			break;
	TAP_EQ_INT(i, 1000, "grows geometrically");
	TAP_OK(b.cap <= b.max, "capacity never exceeds max");
	TAP_EQ_INT(buf_reserve(&b, (size_t)-1), PR_ENOSPC,
	    "huge reserve refused without overflow");
	buf_fini(&b);
	return tap_done();
}
