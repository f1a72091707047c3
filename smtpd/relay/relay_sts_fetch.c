/*
 * relay_sts_fetch.c - the HTTPS fetch of an MTA-STS policy with libcurl
 * (see relay_sts_fetch.h).
 */
#include "relay_sts_fetch.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "err.h"
#include "relay_mx.h"
#include "relay_sts_policy.h"

/* RFC 8461 3.3 asks for bounded fetches; these leave room for a slow
 * server and keep a delivery from waiting long. */
#define STS_FETCH_CONNECT_MS (10 * 1000)
#define STS_FETCH_MS (30 * 1000)

int
sts_fetch_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 :
	    PR_EIO;
}

/* libcurl's body callback: at most STS_POLICY_MAX octets (RFC 8461
 * 3.3: 64 KiB), more ends the transfer. */
static size_t
sts_fetch_write_cb(char *p, size_t size, size_t n, void *data)
{
	struct sts_fetch *f = data;
	size_t len = size * n;

	if (len > STS_POLICY_MAX - f->body_len) {
		f->body_over = true;
		return 0;
	}
	memcpy(f->body + f->body_len, p, len);
	f->body_len += len;
	return len;
}

/* libcurl's progress callback: a caller that stops ends the fetch. */
static int
sts_fetch_progress_cb(void *data, curl_off_t dlt, curl_off_t dln,
    curl_off_t ult, curl_off_t uln)
{
	const struct sts_fetch *f = data;

	(void)dlt;
	(void)dln;
	(void)ult;
	(void)uln;
	return f->cancel != NULL &&
	    __atomic_load_n(f->cancel, __ATOMIC_RELAXED) ? 1 : 0;
}

int
sts_fetch_run(struct sts_fetch *f)
{
	struct curl_slist *pin = NULL;
	char url[RELAY_HOST_MAX + 64], rs[RELAY_HOST_MAX + 80];
	const char *ctype = NULL;
	long code = 0;
	CURLcode rc;
	CURL *c;

	f->body_len = 0;
	f->body_over = false;
	f->webpki = false;
	if ((c = curl_easy_init()) == NULL) {
		snprintf(f->err, sizeof(f->err), "curl: no handle");
		return PR_EIO;
	}
	snprintf(url, sizeof(url),
	    "https://mta-sts.%s/.well-known/mta-sts.txt", f->domain);
	/* The name is resolved by the caller's resolver: libcurl connects
	 * to that address and verifies the certificate for the name. */
	snprintf(rs, sizeof(rs), "mta-sts.%s:443:%s", f->domain, f->addr);
	pin = curl_slist_append(NULL, rs);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, pin);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	/* RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed". */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->ca_file != NULL && f->ca_file[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, f->ca_file);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)STS_FETCH_CONNECT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)STS_FETCH_MS);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)STS_POLICY_MAX);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "postroom");
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sts_fetch_write_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sts_fetch_progress_cb);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	if (rc != CURLE_OK) {
		f->webpki = rc == CURLE_PEER_FAILED_VERIFICATION;
		snprintf(f->err, sizeof(f->err), "%s", f->body_over ?
		    "policy larger than 64 KiB" : curl_easy_strerror(rc));
	} else if (code != 200) {
		/* 3.3: only a 200 answer is a policy; a redirect is not
		 * followed. */
		snprintf(f->err, sizeof(f->err), "HTTP status %ld", code);
	} else if (ctype == NULL || strncasecmp(ctype, "text/plain", 10) != 0 ||
	    (ctype[10] != '\0' && ctype[10] != ';' && ctype[10] != ' ')) {
		/* 3.3: the media type is "text/plain". */
		snprintf(f->err, sizeof(f->err),
		    "content type %s, not text/plain",
		    ctype != NULL ? ctype : "missing");
	} else {
		f->err[0] = '\0';
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(pin);
	f->body[f->body_len] = '\0';
	return f->err[0] == '\0' ? 0 : PR_EIO;
}
