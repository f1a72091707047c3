/*
 * store_greylist.c - greylisting triplets (store.h): which client
 * network, sender and recipient were seen when, and which passed.  The
 * daemon decides what waiting means (a 451 at RCPT); the store keeps
 * the times, so another backend keeps the same contract
 * (docs/ARCHITECTURE.md 3.6).
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

/* Names compare in lower case (RFC 5321 2.4 leaves local parts alone,
 * but a sender that changes case between retries is the same one). */
static const char *
store_grey_lower(const char *in, char out[ADDR_MAX])
{
	snprintf(out, ADDR_MAX, "%s", in != NULL ? in : "");
	addr_lower(out);
	return out;
}

/* One request, inside the caller's transaction. */
static int
store_grey_one(struct store *st, struct store_greylist_req *q,
    struct pr_err *err)
{
	char net[ADDR_MAX], snd[ADDR_MAX], rcpt[ADDR_MAX], dom[ADDR_MAX];
	int64_t first, passed;
	sqlite3_stmt *s;
	int r;

	q->result = STORE_GREY_WAIT;
	q->wait = q->delay;
	store_grey_lower(q->net, net);
	store_grey_lower(q->sender, snd);
	store_grey_lower(q->rcpt, rcpt);
	store_grey_lower(q->spf_domain, dom);
	/* Expired rows go where the table grows. */
	if ((r = store__run(st, STORE_Q_GREY_PRUNE,
	    "DELETE FROM greylist WHERE (passed > 0 AND last <= ?1 - ?2)"
	    " OR (passed = 0 AND first <= ?1 - ?3)",
	    "cannot forget old greylisting triplets", err, "iii", q->now,
	    q->keep, q->retry_max)) < 0 ||
	    (r = store__run(st, STORE_Q_GREY_PRUNE_DOM,
	    "DELETE FROM greylist_domains WHERE last <= ?1 - ?2",
	    "cannot forget old greylisting domains", err, "ii", q->now,
	    q->keep)) < 0)
		return r;
	if (dom[0] != '\0') {
		if ((r = store__row(st, STORE_Q_GREY_DOMAIN,
		    "UPDATE greylist_domains SET last = ?2 WHERE domain = ?1"
		    " RETURNING last", &s, "cannot read greylisting domains",
		    err, "ti", dom, q->now)) < 0)
			return r;
		if (r == 1) {
			sqlite3_reset(s);
			q->result = STORE_GREY_PASS;
			q->wait = 0;
			return 0;
		}
	}
	if ((r = store__row(st, STORE_Q_GREY_GET,
	    "SELECT first, passed FROM greylist"
	    " WHERE net = ?1 AND sender = ?2 AND rcpt = ?3", &s,
	    "cannot read a greylisting triplet", err, "ttt", net, snd,
	    rcpt)) < 0)
		return r;
	/* Room for a new triplet within the bound (store.h): the oldest
	 * pending ones go, by their index; greylist_size is kept by
	 * triggers (store_schema.c). */
	if (r == 0 && (r = store__run(st, STORE_Q_GREY_EVICT,
	    "DELETE FROM greylist WHERE (net, sender, rcpt) IN"
	    " (SELECT net, sender, rcpt FROM greylist WHERE passed = 0"
	    "  ORDER BY first"
	    "  LIMIT max(0, (SELECT pending FROM greylist_size) - ?1 + 1))",
	    "cannot forget old greylisting triplets", err, "i",
	    (int64_t)STORE_GREY_PENDING_MAX)) < 0)
		return r;
	if (r == 0)
		return store__run(st, STORE_Q_GREY_NEW,
		    "INSERT INTO greylist (net, sender, rcpt, first, last)"
		    " VALUES (?1, ?2, ?3, ?4, ?4)",
		    "cannot record a greylisting triplet", err, "ttti", net,
		    snd, rcpt, q->now);
	first = sqlite3_column_int64(s, 0);
	passed = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	if (passed == 0 && q->now - first < q->delay) {
		q->wait = q->delay - (q->now - first);
		return store__run(st, STORE_Q_GREY_SEEN,
		    "UPDATE greylist SET last = ?4"
		    " WHERE net = ?1 AND sender = ?2 AND rcpt = ?3",
		    "cannot update a greylisting triplet", err, "ttti", net,
		    snd, rcpt, q->now);
	}
	q->result = STORE_GREY_PASS;
	q->wait = 0;
	if ((r = store__run(st, STORE_Q_GREY_PASS,
	    "UPDATE greylist SET last = ?4,"
	    " passed = CASE WHEN passed = 0 THEN ?4 ELSE passed END"
	    " WHERE net = ?1 AND sender = ?2 AND rcpt = ?3",
	    "cannot update a greylisting triplet", err, "ttti", net, snd,
	    rcpt, q->now)) < 0)
		return r;
	/* One more passed: the passed ones seen longest ago go past the
	 * bound (this one was seen now). */
	if (passed == 0 && (r = store__run(st, STORE_Q_GREY_EVICT_PASSED,
	    "DELETE FROM greylist WHERE (net, sender, rcpt) IN"
	    " (SELECT net, sender, rcpt FROM greylist WHERE passed > 0"
	    "  ORDER BY last"
	    "  LIMIT max(0, (SELECT passed FROM greylist_size) - ?1))",
	    "cannot forget old greylisting triplets", err, "i",
	    (int64_t)STORE_GREY_PASSED_MAX)) < 0)
		return r;
	if (dom[0] == '\0')
		return 0;
	return store__run(st, STORE_Q_GREY_DOM_PASS,
	    "INSERT INTO greylist_domains (domain, last) VALUES (?1, ?2)"
	    " ON CONFLICT (domain) DO UPDATE SET last = ?2",
	    "cannot record a greylisting domain", err, "ti", dom, q->now);
}

static int
store_grey_item(struct store *st, void *ctx, size_t i, struct pr_err *err)
{
	struct store_greylist_req *q = ctx;

	return q[i].status = store_grey_one(st, &q[i], err);
}

int
store_greylist_update(struct store *st, struct store_greylist_req *q,
    size_t n, struct pr_err *err)
{
	int r;

	/* Each request in a savepoint: one that fails does not undo the
	 * others. */
	if ((r = store__each(st, n, store_grey_item, q, err)) < 0)
		for (size_t i = 0; i < n; i++)
			q[i].status = r;
	return r;
}
