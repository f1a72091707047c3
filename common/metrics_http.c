/*
 * metrics_http.c - GET /metrics over libmicrohttpd (docs/LOGGING.md 6).
 */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

/* The text is a few KiB; the bound only guards against a bug. */
#define METRICS_HTTP_BODY_MAX (1024 * 1024)
/* A scraper or two, and someone with curl. */
#define METRICS_HTTP_CONNECTIONS 8
#define METRICS_HTTP_TIMEOUT 10 /* seconds of silence before a close */

/* The exposition format's content type (version 0.0.4). */
#define METRICS_HTTP_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
	struct MHD_Daemon *d;
};

static enum MHD_Result
metrics_http_reply(struct MHD_Connection *conn, unsigned status,
    const char *text)
{
	struct MHD_Response *rsp;
	enum MHD_Result ret;

	rsp = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_PERSISTENT);
	if (rsp == NULL)
		return MHD_NO;
	MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(rsp, MHD_HTTP_HEADER_ALLOW, "GET");
	ret = MHD_queue_response(conn, status, rsp);
	MHD_destroy_response(rsp);
	return ret;
}

static enum MHD_Result
metrics_http_handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *rsp;
	enum MHD_Result ret;
	struct buf b;

	(void)cls;
	(void)version;
	(void)upload_data;
	/* A request body is never wanted: drop what arrives. */
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	(void)req_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method not allowed\n");
	if (strcmp(url, "/metrics") != 0)
		return metrics_http_reply(conn, MHD_HTTP_NOT_FOUND,
		    "not found: the metrics are at /metrics\n");
	buf_init(&b, METRICS_HTTP_BODY_MAX);
	if (metrics_render(&b, (int64_t)time(NULL)) < 0) {
		buf_fini(&b);
		return metrics_http_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "cannot render the metrics\n");
	}
	/* The response takes the buffer and frees it with free(). */
	rsp = MHD_create_response_from_buffer(b.len, b.p,
	    MHD_RESPMEM_MUST_FREE);
	if (rsp == NULL) {
		buf_fini(&b);
		return MHD_NO;
	}
	MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    METRICS_HTTP_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, rsp);
	MHD_destroy_response(rsp);
	return ret;
}

int
metrics_http_start(const struct cfg *cfg, unsigned port_offset,
    struct metrics_http **h_r, struct pr_err *err)
{
	const struct cfg_listen *l = &cfg->metrics.listen.a[0];
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
	const char *host = strcmp(l->host, "localhost") == 0 ? "127.0.0.1" :
	    l->host;
	struct metrics_http *h;
	long port;
	char *end;

	*h_r = NULL;
	if (cfg->metrics.listen.n == 0)
		return 0;
	port = strtol(l->port, &end, 10) + (long)port_offset;
	if (*end != '\0' || port <= 0 || port > 65535)
		return pr_err_set(err, PR_EINVAL, "metrics: bad port %s",
		    l->port);
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else
		return pr_err_set(err, PR_EINVAL,
		    "metrics: %s is not an IP address", l->host);
	h = xcalloc(1, sizeof(*h));
	h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
	    metrics_http_handler, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)METRICS_HTTP_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
	    MHD_OPTION_END);
	if (h->d == NULL) {
		free(h);
		return pr_err_set(err, PR_EIO, "metrics: cannot listen on "
		    "%s port %ld (in use, or not an address of this host)",
		    l->host, port);
	}
	*h_r = h;
	log_info(NULL, "metrics listening on %s%s%s:%ld", strchr(host, ':') ?
	    "[" : "", host, strchr(host, ':') ? "]" : "", port);
	return 0;
}

void
metrics_http_stop(struct metrics_http **hp)
{
	struct metrics_http *h = *hp;

	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	free(h);
	*hp = NULL;
}
