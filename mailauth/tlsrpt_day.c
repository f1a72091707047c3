/*
 * tlsrpt_day.c - one UTC day's TLS reports (RFC 8460 4 and 5.3; see
 * tlsrpt.h): the day's counts of every policy domain, copied, and the
 * report of each domain that asked for one, built.  The relay's daily
 * run and `postroom tlsrpt send` both come through here.
 */
#include "tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void
tlsrpt_day_init(struct tlsrpt_day *d, int64_t day)
{
	memset(d, 0, sizeof(*d));
	d->day = day;
}

static void
tlsrpt_day_row_free(struct tlsrpt_day_row *r)
{
	free(r->domain);
	free((char *)r->row.policy_type);
	free((char *)r->row.policy_string);
	free((char *)r->row.result);
	free((char *)r->row.mx_host);
	free((char *)r->row.receiving_ip);
	free((char *)r->row.sending_ip);
	free((char *)r->row.reason);
}

void
tlsrpt_day_fini(struct tlsrpt_day *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		tlsrpt_day_row_free(&d->rows[i]);
	free(d->rows);
	free(d->domains);
	memset(d, 0, sizeof(*d));
}

static char *
tlsrpt_day_dup(const char *s)
{
	return strdup(s != NULL ? s : "");
}

int
tlsrpt_day_add(struct tlsrpt_day *d, const char *domain,
    const struct tlsrpt_row *row)
{
	struct tlsrpt_day_row *r, *nr;
	const char **nd;
	size_t cap;

	if (d->n >= TLSRPT_ROWS_MAX)
		return PR_ENOSPC;
	if (d->n == d->cap) {
		cap = d->cap == 0 ? 64 : d->cap * 2;
		if ((nr = realloc(d->rows, cap * sizeof(*nr))) == NULL)
			return PR_ENOMEM;
		d->rows = nr;
		if ((nd = realloc(d->domains, cap * sizeof(*nd))) == NULL)
			return PR_ENOMEM;
		d->domains = nd;
		d->cap = cap;
	}
	r = &d->rows[d->n];
	memset(r, 0, sizeof(*r));
	r->domain = tlsrpt_day_dup(domain);
	r->row.policy_type = tlsrpt_day_dup(row->policy_type);
	r->row.policy_string = tlsrpt_day_dup(row->policy_string);
	r->row.result = tlsrpt_day_dup(row->result);
	r->row.mx_host = tlsrpt_day_dup(row->mx_host);
	r->row.receiving_ip = tlsrpt_day_dup(row->receiving_ip);
	r->row.sending_ip = tlsrpt_day_dup(row->sending_ip);
	r->row.reason = tlsrpt_day_dup(row->reason);
	r->row.count = row->count;
	if (r->domain == NULL || r->row.policy_type == NULL ||
	    r->row.policy_string == NULL || r->row.result == NULL ||
	    r->row.mx_host == NULL || r->row.receiving_ip == NULL ||
	    r->row.sending_ip == NULL || r->row.reason == NULL) {
		tlsrpt_day_row_free(r);
		return PR_ENOMEM;
	}
	if (d->n == 0 || strcmp(d->rows[d->n - 1].domain, r->domain) != 0)
		d->domains[d->n_domains++] = r->domain;
	d->n++;
	return 0;
}

void
tlsrpt_msgs_free(struct tlsrpt_msg **msgs, size_t n)
{
	size_t i;

	if (*msgs == NULL)
		return;
	for (i = 0; i < n; i++)
		buf_fini(&(*msgs)[i].msg);
	free(*msgs);
	*msgs = NULL;
}

/* The report of rows[0..n) (one domain) for dest into m. */
static int
tlsrpt_day_one(const struct tlsrpt_day *d, const struct tlsrpt_day_row *dr,
    size_t n, const struct tlsrpt_dest *dest,
    const struct tlsrpt_sender *who, int64_t now, const char *uid,
    struct tlsrpt_msg *m)
{
	struct tlsrpt_row *rows;
	struct tlsrpt_info info;
	struct buf json, gz;
	size_t i;
	int r;

	if ((rows = calloc(n, sizeof(*rows))) == NULL)
		return PR_ENOMEM;
	for (i = 0; i < n; i++)
		rows[i] = dr[i].row;
	snprintf(m->report_id, sizeof(m->report_id), "%s+%s@%s", uid,
	    dr[0].domain, who->submitter);
	info.org = who->org;
	info.submitter = who->submitter;
	info.contact = who->contact;
	info.from = who->from;
	info.domain = dr[0].domain;
	info.report_id = m->report_id;
	info.unique_id = uid;
	info.day = d->day;
	m->domain = dr[0].domain;
	m->n_rcpt = dest->n_rua;
	for (i = 0; i < dest->n_rua; i++) {
		memcpy(m->rcpt[i], dest->rua[i], sizeof(m->rcpt[i]));
		m->rcptv[i] = m->rcpt[i];
	}
	buf_init(&json, TLSRPT_JSON_MAX);
	buf_init(&gz, TLSRPT_JSON_MAX);
	buf_init(&m->msg, TLSRPT_MSG_MAX);
	if ((r = tlsrpt_json(&info, rows, n, &json)) == 0 &&
	    (r = tlsrpt_gzip(json.p, json.len, &gz)) == 0)
		r = tlsrpt_mime(&info, m->rcptv, m->n_rcpt, gz.p, gz.len, now,
		    &m->msg);
	m->json_len = json.len;
	buf_fini(&json);
	buf_fini(&gz);
	free(rows);
	if (r < 0)
		buf_fini(&m->msg);
	return r;
}

int
tlsrpt_day_build(const struct tlsrpt_day *d,
    const struct tlsrpt_dest *dests, const struct tlsrpt_sender *who,
    int64_t now, const char *nonce, struct tlsrpt_msg **msgs_r,
    size_t *n_r, size_t *failed_r)
{
	struct tlsrpt_msg *msgs;
	char day[11], uid[96];
	size_t i, j, dom = 0, n = 0;
	int r;

	*msgs_r = NULL;
	*n_r = 0;
	*failed_r = 0;
	if (d->n_domains == 0)
		return 0;
	if ((msgs = calloc(d->n_domains, sizeof(*msgs))) == NULL)
		return PR_ENOMEM;
	tlsrpt_day_format(d->day, day);
	for (i = 0; i < d->n; i = j, dom++) {
		for (j = i + 1; j < d->n &&
		    strcmp(d->rows[j].domain, d->rows[i].domain) == 0; j++)
			;
		if (dests[dom].status != 0 || dests[dom].n_rua == 0)
			continue;
		/* unique-id (RFC 8460 5.3.1): letters and digits. */
		snprintf(uid, sizeof(uid), "%.4s%.2s%.2s%s%zu", day, day + 5,
		    day + 8, nonce, dom);
		r = tlsrpt_day_one(d, d->rows + i, j - i, &dests[dom], who,
		    now, uid, &msgs[n]);
		if (r == PR_ENOMEM) {
			tlsrpt_msgs_free(&msgs, n);
			return r;
		}
		if (r < 0)
			(*failed_r)++;
		else
			n++;
	}
	*msgs_r = msgs;
	*n_r = n;
	return 0;
}

void
tlsrpt_sender_fill(struct tlsrpt_sender_buf *b, const char *hostname,
    const char *from_domain, const char *postmaster)
{
	snprintf(b->from, sizeof(b->from), "noreply-tlsrpt@%s", from_domain);
	if (postmaster != NULL && postmaster[0] != '\0')
		snprintf(b->contact, sizeof(b->contact), "%s", postmaster);
	else
		snprintf(b->contact, sizeof(b->contact), "postmaster@%s",
		    from_domain);
	b->who.org = hostname;
	b->who.submitter = hostname;
	b->who.from = b->from;
	b->who.contact = b->contact;
}
