/*
 * smtp_etrn.h - the glue's side of ETRN (RFC 1985): how often a client
 * asked, and the queue flush for a domain through the store worker.
 * Whether a client may ask at all, and the replies, are the policy's
 * (smtp_policy.c).
 */
#ifndef POSTROOM_SMTP_ETRN_H
#define POSTROOM_SMTP_ETRN_H

#include <stdbool.h>
#include <stdint.h>

struct store_worker;

/* Counts an ETRN from client ip at now_ms (the loop's clock); false when
 * it is more than SMTP_POLICY_ETRN_PER_MINUTE within the last minute. */
bool smtp_etrn_count(const char *ip, uint64_t now_ms);

/* Makes the queue entries for domain (and its subdomains with sub) due
 * now (store_queue_flush_domain), then cb(data, status) on the loop:
 * the number of entries found, or an error.  Never calls back from
 * inside. */
void smtp_etrn_submit(struct store_worker *wk, const char *domain, bool sub,
    void (*cb)(void *data, int status), void *data);

#endif
