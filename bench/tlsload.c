/*
 * tlsload.c - the TLS benchmarks' client (bench/tls.py): many SMTP
 * STARTTLS or POP3S sessions at once, one thread per concurrent session,
 * blocking sockets, OpenSSL.
 *
 * A load generator in C so that the client costs the two CPUs it shares
 * with the servers as little as a remote client would: a Python client
 * spends more CPU per session than postroom-smtpd does and so bounds the
 * rates it measures.  It is the same for every server it drives.
 *
 *   tlsload smtp|handshake|pop3s PORT THREADS RESUME [RCPT [AUTH]]
 *
 * smtp: EHLO, STARTTLS, EHLO, [AUTH PLAIN AUTH], MAIL, RCPT, DATA with
 * a 10 KiB body, QUIT.  handshake: EHLO, STARTTLS, EHLO, QUIT.  pop3s:
 * implicit TLS, USER, PASS, RETR 1..N, QUIT.  Jobs are read from stdin,
 * one line each ("-" for smtp and handshake, "USER PASSWORD N" for
 * pop3s), up to an empty line; then tlsload prints "ready", waits for
 * one more line ("go") and runs them, THREADS at once.  With RESUME 1 a
 * thread offers the TLS session of its previous connection (RFC 8446
 * 2.2).  The result is one line of JSON on stdout: sessions, resumed,
 * login seconds (pop3s), protocol and cipher, the first errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_JOBS 100000
#define MAX_ERRORS 5
#define LINE_MAX_LEN 4096
#define BODY_LINES (10 * 1024 / 78)
#define IO_TIMEOUT_S 120

enum kind { K_SMTP, K_HANDSHAKE, K_POP3S };

struct job {
	char user[256];
	char pass[256];
	int n;
};

static enum kind kind;
static int port;
static int resume;
static const char *rcpt = "";
static const char *auth = "";
static SSL_CTX *ctx;
static struct job *jobs;
static size_t n_jobs;
static char body[BODY_LINES * 78 + 64];
static size_t body_len;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static size_t next_job;
static unsigned long done, reused;
static double *logins;
static size_t n_logins;
static char proto[128];
static char errors[MAX_ERRORS][300];
static unsigned n_errors;

/* One connection: a socket and, after STARTTLS, its TLS session. */
struct conn {
	int fd;
	SSL *ssl;
	char buf[LINE_MAX_LEN];
	size_t len, off;
	char err[256];
};

static int
fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
conn_write(struct conn *c, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w;

		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, s, (int)n);

			if (r <= 0)
				return fail(c, "SSL_write: %d",
				    SSL_get_error(c->ssl, r));
			w = r;
		} else if ((w = write(c->fd, s, n)) < 0) {
			if (errno == EINTR)
				continue;
			return fail(c, "write: %s", strerror(errno));
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One line without its CRLF into out (truncated to outsz). */
static int
conn_line(struct conn *c, char *out, size_t outsz)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		ssize_t r;

		if (nl != NULL) {
			size_t n = (size_t)(nl - (c->buf + c->off));
			size_t k = n > 0 && nl[-1] == '\r' ? n - 1 : n;

			if (k >= outsz)
				k = outsz - 1;
			memcpy(out, c->buf + c->off, k);
			out[k] = '\0';
			c->off += n + 1;
			return 0;
		}
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->len == sizeof(c->buf))
			return fail(c, "line too long");
		if (c->ssl != NULL) {
			int n = SSL_read(c->ssl, c->buf + c->len,
			    (int)(sizeof(c->buf) - c->len));

			if (n <= 0)
				return fail(c, "SSL_read: %d",
				    SSL_get_error(c->ssl, n));
			r = n;
		} else {
			r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return fail(c, "read: %s", r == 0 ? "closed" :
				    strerror(errno));
		}
		c->len += (size_t)r;
	}
}

/* Reads a reply (the last line of a multiline one) and checks its
 * start. */
static int
conn_reply(struct conn *c, const char *want)
{
	char ln[LINE_MAX_LEN];

	do {
		if (conn_line(c, ln, sizeof(ln)) < 0)
			return -1;
	} while (kind != K_POP3S && ln[0] != '\0' && ln[1] != '\0' &&
	    ln[2] != '\0' && ln[3] == '-');
	if (strncmp(ln, want, strlen(want)) != 0)
		return fail(c, "want %s, got %.200s", want, ln);
	return 0;
}

static int
conn_cmd(struct conn *c, const char *cmd, const char *want)
{
	if (conn_write(c, cmd, strlen(cmd)) < 0)
		return -1;
	return conn_reply(c, want);
}

static int
conn_open(struct conn *c)
{
	struct sockaddr_in sa;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return fail(c, "socket: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail(c, "connect: %s", strerror(errno));
	return 0;
}

/* The handshake, offering *sess; *sess becomes this connection's. */
static int
conn_tls(struct conn *c, SSL_SESSION **sess)
{
	int r;

	if ((c->ssl = SSL_new(ctx)) == NULL)
		return fail(c, "SSL_new");
	SSL_set_fd(c->ssl, c->fd);
	if (*sess != NULL)
		SSL_set_session(c->ssl, *sess);
	if ((r = SSL_connect(c->ssl)) != 1)
		return fail(c, "SSL_connect: %d (%s)", SSL_get_error(c->ssl, r),
		    ERR_reason_error_string(ERR_peek_last_error()));
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
session(struct conn *c, const struct job *j, SSL_SESSION **sess,
    double *login)
{
	char cmd[1024];

	if (conn_open(c) < 0)
		return -1;
	if (kind == K_POP3S) {
		if (conn_tls(c, sess) < 0 || conn_reply(c, "+OK") < 0)
			return -1;
		snprintf(cmd, sizeof(cmd), "USER %s\r\n", j->user);
		if (conn_cmd(c, cmd, "+OK") < 0)
			return -1;
		double t0 = now_s();

		snprintf(cmd, sizeof(cmd), "PASS %s\r\n", j->pass);
		if (conn_cmd(c, cmd, "+OK") < 0)
			return -1;
		*login = now_s() - t0;
		for (int k = 1; k <= j->n; k++) {
			char ln[LINE_MAX_LEN];

			snprintf(cmd, sizeof(cmd), "RETR %d\r\n", k);
			if (conn_cmd(c, cmd, "+OK") < 0)
				return -1;
			do {
				if (conn_line(c, ln, sizeof(ln)) < 0)
					return -1;
			} while (strcmp(ln, ".") != 0);
		}
		return conn_cmd(c, "QUIT\r\n", "+OK");
	}
	if (conn_reply(c, "220") < 0 ||
	    conn_cmd(c, "EHLO client.test\r\n", "250") < 0 ||
	    conn_cmd(c, "STARTTLS\r\n", "220") < 0 ||
	    conn_tls(c, sess) < 0 ||
	    conn_cmd(c, "EHLO client.test\r\n", "250") < 0)
		return -1;
	if (kind == K_SMTP) {
		/* A submission client sends as itself. */
		const char *from = auth[0] != '\0' ? rcpt : "bench@client.test";

		if (auth[0] != '\0') {
			snprintf(cmd, sizeof(cmd), "AUTH PLAIN %s\r\n", auth);
			if (conn_cmd(c, cmd, "235") < 0)
				return -1;
		}
		snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", from);
		if (conn_cmd(c, cmd, "250") < 0)
			return -1;
		snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", rcpt);
		if (conn_cmd(c, cmd, "250") < 0 ||
		    conn_cmd(c, "DATA\r\n", "354") < 0 ||
		    conn_write(c, body, body_len) < 0 ||
		    conn_reply(c, "250") < 0)
			return -1;
	}
	return conn_cmd(c, "QUIT\r\n", "221");
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
}

static void *
worker(void *arg)
{
	SSL_SESSION *sess = NULL;

	(void)arg;
	for (;;) {
		struct conn c = { .fd = -1 };
		size_t i;
		double login = 0;
		int r;

		pthread_mutex_lock(&mu);
		i = next_job < n_jobs ? next_job++ : n_jobs;
		pthread_mutex_unlock(&mu);
		if (i == n_jobs)
			break;
		r = session(&c, &jobs[i], &sess, &login);
		pthread_mutex_lock(&mu);
		if (r == 0) {
			done++;
			reused += c.ssl != NULL && SSL_session_reused(c.ssl);
			if (kind == K_POP3S)
				logins[n_logins++] = login;
			else if (proto[0] == '\0' && c.ssl != NULL)
				snprintf(proto, sizeof(proto), "%s %s",
				    SSL_get_version(c.ssl),
				    SSL_CIPHER_get_name(SSL_get_current_cipher(
				    c.ssl)));
		} else if (n_errors < MAX_ERRORS) {
			snprintf(errors[n_errors++], sizeof(errors[0]), "%s",
			    c.err);
		} else {
			n_errors++;
		}
		pthread_mutex_unlock(&mu);
		/* The session to offer next: this connection's, its ticket
		 * read along with the last reply. */
		if (resume && r == 0 && c.ssl != NULL) {
			SSL_SESSION *s = SSL_get1_session(c.ssl);

			if (s != NULL) {
				SSL_SESSION_free(sess);
				sess = s;
			}
		}
		conn_close(&c);
	}
	SSL_SESSION_free(sess);
	return NULL;
}

static void
json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int
main(int argc, char **argv)
{
	char line[1024];
	pthread_t *th;
	int threads;

	if (argc < 5) {
		fprintf(stderr, "usage: tlsload smtp|handshake|pop3s PORT "
		    "THREADS RESUME [RCPT [AUTH]]\n");
		return 2;
	}
	kind = strcmp(argv[1], "pop3s") == 0 ? K_POP3S :
	    strcmp(argv[1], "handshake") == 0 ? K_HANDSHAKE : K_SMTP;
	port = atoi(argv[2]);
	threads = atoi(argv[3]);
	resume = atoi(argv[4]);
	if (argc > 5)
		rcpt = argv[5];
	if (argc > 6)
		auth = argv[6];
	if (threads < 1 || threads > 1000 || port <= 0) {
		fprintf(stderr, "tlsload: bad arguments\n");
		return 2;
	}
	body_len = (size_t)snprintf(body, sizeof(body), "Subject: tls\r\n\r\n");
	for (int i = 0; i < BODY_LINES; i++) {
		memset(body + body_len, 'x', 76);
		memcpy(body + body_len + 76, "\r\n", 2);
		body_len += 78;
	}
	memcpy(body + body_len, ".\r\n", 3);
	body_len += 3;

	jobs = calloc(MAX_JOBS, sizeof(*jobs));
	logins = calloc(MAX_JOBS, sizeof(*logins));
	if (jobs == NULL || logins == NULL)
		return 1;
	while (fgets(line, sizeof(line), stdin) != NULL && line[0] != '\n' &&
	    n_jobs < MAX_JOBS) {
		struct job *j = &jobs[n_jobs++];

		if (kind == K_POP3S && sscanf(line, "%255s %255s %d", j->user,
		    j->pass, &j->n) != 3) {
			fprintf(stderr, "tlsload: bad job line\n");
			return 2;
		}
	}

	/* The client side of what the servers negotiate: TLS 1.2 or 1.3,
	 * OpenSSL's defaults (X25519, AES-256-GCM); the servers' certificate
	 * is a private one and is not verified, as the Python client did. */
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return 1;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);

	printf("ready\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 1;

	th = calloc((size_t)threads, sizeof(*th));
	if (th == NULL)
		return 1;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0)
			return 1;
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);

	printf("{\"n\": %lu, \"reused\": %lu, \"proto\": ", done, reused);
	json_string(proto);
	printf(", \"login\": [");
	for (size_t i = 0; i < n_logins; i++)
		printf("%s%.6f", i ? ", " : "", logins[i]);
	printf("], \"errors\": [");
	for (unsigned i = 0; i < n_errors && i < MAX_ERRORS; i++) {
		printf("%s", i ? ", " : "");
		json_string(errors[i]);
	}
	printf("], \"failed\": %u}\n", n_errors);
	SSL_CTX_free(ctx);
	free(th);
	free(jobs);
	free(logins);
	return 0;
}
