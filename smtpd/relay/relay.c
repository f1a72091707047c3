/* relay.c - the outbound queue runner (first cut: lifecycle only). */
#include "relay.h"

#include <stdlib.h>

#include "xmalloc.h"

struct relay {
	uv_loop_t *loop;
	const struct cfg *cfg;
	void (*done_cb)(void *data);
	void *done_data;
};

int
relay_new(uv_loop_t *loop, const struct cfg *cfg, struct relay **r_r,
    struct pr_err *err)
{
	struct relay *r;

	(void)err;
	r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->cfg = cfg;
	*r_r = r;
	return 0;
}

void
relay_kick(struct relay *r)
{
	(void)r;
}

void
relay_stop(struct relay *r, void (*done_cb)(void *data), void *data)
{
	(void)r;
	if (done_cb != NULL)
		done_cb(data);
}

void
relay_free(struct relay **r)
{
	free(*r);
	*r = NULL;
}
