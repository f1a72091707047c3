/*
 * tlsrpt_store.h - a day's TLS result counts from the store
 * (store_tlsrpt_list) into a tlsrpt_day (tlsrpt.h), for the glue that
 * has both: the relay's daily run and `postroom tlsrpt send`.  Not
 * included by mailauth/ itself, which knows no store.
 */
#ifndef POSTROOM_TLSRPT_STORE_H
#define POSTROOM_TLSRPT_STORE_H

#include "store.h"
#include "tlsrpt.h"

/* A store_tlsrpt_list() callback: ctx is the struct tlsrpt_day. */
static inline int
tlsrpt_store_day_cb(void *ctx, const struct store_tlsrpt_count *c)
{
	const struct tlsrpt_row row = {
		.policy_type = c->policy_type,
		.policy_string = c->policy_string, .result = c->result,
		.mx_host = c->mx_host, .receiving_ip = c->receiving_ip,
		.sending_ip = c->sending_ip, .reason = c->reason,
		.count = c->count,
	};

	return tlsrpt_day_add(ctx, c->domain, &row);
}

#endif
