/* smtp_etrn.c - ETRN's rate count and queue flush (see smtp_etrn.h). */
#include "smtp_etrn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "smtp_policy.h"
#include "store.h"
#include "store_worker.h"
#include "xmalloc.h"

/* Clients remembered at once; the one asked least recently makes room. */
#define SMTP_ETRN_CLIENTS 256
#define SMTP_ETRN_WINDOW_MS (60 * 1000)

struct smtp_etrn_client {
	char ip[64];
	uint64_t since;      /* start of its window */
	unsigned n;          /* requests in it */
	uint64_t last;
};

/* The daemon has one loop thread: the table is its. */
static struct smtp_etrn_client smtp_etrn_clients[SMTP_ETRN_CLIENTS];

bool
smtp_etrn_count(const char *ip, uint64_t now_ms)
{
	struct smtp_etrn_client *c = NULL, *old = &smtp_etrn_clients[0];
	size_t i;

	for (i = 0; i < SMTP_ETRN_CLIENTS && c == NULL; i++) {
		if (strcmp(smtp_etrn_clients[i].ip, ip) == 0)
			c = &smtp_etrn_clients[i];
		else if (smtp_etrn_clients[i].last < old->last)
			old = &smtp_etrn_clients[i];
	}
	if (c == NULL) {
		c = old;
		memset(c, 0, sizeof(*c));
		snprintf(c->ip, sizeof(c->ip), "%s", ip);
	}
	if (c->n == 0 || now_ms - c->since >= SMTP_ETRN_WINDOW_MS) {
		c->since = now_ms;
		c->n = 0;
	}
	c->last = now_ms;
	if (c->n >= SMTP_POLICY_ETRN_PER_MINUTE)
		return false;
	c->n++;
	return true;
}

struct smtp_etrn_job {
	struct store_job job;
	char domain[ADDR_MAX];
	bool sub;
	size_t n;
	int status;
	struct pr_err err;
	void (*cb)(void *data, int status);
	void *data;
};

static void
smtp_etrn_run(struct store_job *job, struct store *st)
{
	struct smtp_etrn_job *j = STORE_CONTAINER(job, struct smtp_etrn_job,
	    job);

	pr_err_clear(&j->err);
	j->status = store_queue_flush_domain(st, j->domain, j->sub, &j->n,
	    &j->err);
}

static void
smtp_etrn_done(struct store_job *job)
{
	struct smtp_etrn_job *j = STORE_CONTAINER(job, struct smtp_etrn_job,
	    job);

	if (j->status < 0)
		log_err(NULL, "ETRN %s%s: %s", j->sub ? "@" : "", j->domain,
		    j->err.msg);
	j->cb(j->data, j->status < 0 ? j->status :
	    j->n > 1000000 ? 1000000 : (int)j->n);
	free(j);
}

void
smtp_etrn_submit(struct store_worker *wk, const char *domain, bool sub,
    void (*cb)(void *data, int status), void *data)
{
	struct smtp_etrn_job *j = xcalloc(1, sizeof(*j));

	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	j->sub = sub;
	j->cb = cb;
	j->data = data;
	j->job.run = smtp_etrn_run;
	j->job.done = smtp_etrn_done;
	store_worker_submit(wk, &j->job);
}
