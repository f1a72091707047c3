/*
 * cfg.h - the postroom.conf INI file (parsed with inih).
 *
 * One file, default /etc/postroom/postroom.conf, overridden by -c FILE or
 * POSTROOM_CONFIG.  Unknown sections and keys are errors reported with
 * file:line, so a typo never silently falls back to a default.
 */
#ifndef POSTROOM_CFG_H
#define POSTROOM_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "netlist.h"

#define CFG_DEFAULT_PATH "/etc/postroom/postroom.conf"
#define CFG_LISTEN_MAX 8

struct cfg_listen {
	char host[64]; /* "0.0.0.0", "::", "127.0.0.1", "::1" (no brackets) */
	char port[8];
};

struct cfg_listen_list {
	size_t n;
	struct cfg_listen a[CFG_LISTEN_MAX];
};

/* [relay] smarthost_tls: how TLS to the smarthost starts. */
enum cfg_smarthost_tls {
	CFG_SMARTHOST_STARTTLS = 0, /* "starttls": RFC 3207, port 587/25 */
	CFG_SMARTHOST_IMPLICIT,     /* "implicit": RFC 8314, port 465 */
};

/* [relay] tls_memory: a domain once reached over verified TLS, later
 * offered less. */
enum cfg_tls_memory {
	CFG_TLS_MEMORY_WARN = 0,    /* "warn": log a warning, deliver */
	CFG_TLS_MEMORY_ENFORCE,     /* "enforce": defer instead */
};

/* [inbound] dmarc_policy: what a failing DMARC policy does (RFC 7489 6.3). */
enum cfg_dmarc_policy {
	CFG_DMARC_ENFORCE = 0, /* "enforce": refuse p=reject, mark quarantine */
	CFG_DMARC_REPORT,      /* "report": record results, refuse nothing */
};
/*
 * The largest [smtp] max_message_size: the store keeps a message in one
 * SQLite blob, which holds at most SQLITE_MAX_LENGTH (10^9) octets, and
 * adds its own header fields (Received, Authentication-Results) to it.
 * 900 MiB leaves room for those; a larger setting would let a client send
 * a message that can only fail at the end of DATA.
 */
#define CFG_MESSAGE_SIZE_MAX (900ull * 1024 * 1024)

/* [milter] servers: where a content filter listens (docs/MILTER.md). */
#define CFG_MILTER_MAX 8
enum cfg_milter_kind {
	CFG_MILTER_UNIX = 1, /* unix:PATH */
	CFG_MILTER_INET,     /* inet:HOST:PORT, inet:[V6]:PORT */
};
struct cfg_milter {
	int kind;            /* enum cfg_milter_kind */
	char path[108];      /* unix: the socket (sun_path) */
	char host[64];       /* inet: an address, no brackets */
	char port[8];
	char spec[200];      /* as written, for logs */
};
struct cfg_milter_list {
	size_t n;
	struct cfg_milter a[CFG_MILTER_MAX];
};

/* [milter] on_failure: a filter down, timing out or speaking garbage. */
enum cfg_milter_failure {
	CFG_MILTER_TEMPFAIL = 0, /* 451 4.7.1: the client retries */
	CFG_MILTER_ACCEPT,       /* deliver unfiltered */
};

struct cfg {
	char path[1024];
	struct {
		char hostname[256]; /* default: gethostname() */
		char data_dir[1024]; /* default /var/lib/postroom */
		char user[64];       /* default "postroom"; "" = do not drop */
		int log_level;       /* enum log_level, default info */
		/* Receives postmaster@ and abuse@ of every hosted domain and
		 * <Postmaster> (RFC 5321 4.5.1, RFC 2142 5) when the domain
		 * has no such user or alias; "" = none (the default). */
		char postmaster[256];
		/* A login name without '@' (POP3 USER, SASL PLAIN and LOGIN
		 * of both daemons) means name@default_domain; "" = off (the
		 * default).  Stored in lower case. */
		char default_domain[256];
		/* The local submission spool of postroom-sendmail
		 * (docs/ARCHITECTURE.md 5.4); "" = <data_dir>/maildrop (the
		 * default).  See maildrop_dir(). */
		char maildrop[1024];
		/* Days the trace of each message is kept (postroom trace);
		 * default 30, 0 = no trace. */
		unsigned trace_days;
	} server;
	struct {
		struct cfg_listen_list listen;      /* default 0.0.0.0:25 */
		struct cfg_listen_list submission;  /* default 0.0.0.0:587 */
		struct cfg_listen_list submissions; /* default 0.0.0.0:465 */
		uint64_t max_message_size;  /* default 25 MiB, at most
		                             * CFG_MESSAGE_SIZE_MAX */
		unsigned max_recipients;    /* default 100 */
		unsigned max_connections_per_ip; /* default 50, 0 = unlimited */
		unsigned max_connections;   /* sessions, default 1000, 0 = none */
		/* DATA/BDAT: octets per second a transaction must average once
		 * min_data_grace seconds have passed; default 1 KiB/s after
		 * 30 s, 0 = no minimum.  "RATE[/GRACE]" in the file. */
		uint64_t min_data_rate;
		unsigned min_data_grace;
		bool allow_plaintext_auth;  /* default false */
		/* Counted errors before 421, default 20; past half of it
		 * each error reply waits a second. */
		unsigned hard_error_limit;
		unsigned timeout;  /* idle seconds, default 300 (RFC 5321 4.5.3.2.7) */
		/* Clients that may use ETRN (RFC 1985) without AUTH;
		 * default none (authenticated users only). */
		struct netlist etrn_networks;
	} smtp;
	struct {
		struct cfg_listen_list listen; /* default 0.0.0.0:110 */
		struct cfg_listen_list pop3s;  /* default 0.0.0.0:995 */
		bool allow_plaintext_auth;
		unsigned max_connections_per_ip; /* default 50, 0 = unlimited */
		unsigned max_connections;   /* sessions, default 1000, 0 = none */
		unsigned timeout; /* idle seconds, default 600 (RFC 1939 3) */
	} pop3;
	struct {
		char cert[1024]; /* PEM chain; "" = no TLS */
		char key[1024];
		/* TLS 1.2 suites (OpenSSL cipher list); "" = the default,
		 * NET_TLS_CIPHERS_DEFAULT.  TLS 1.3 suites are OpenSSL's. */
		char ciphers[512];
	} tls;
	struct {
		bool enabled;             /* default true */
		char smarthost[256];      /* "host:port" or "" */
		char smarthost_user[256];
		char smarthost_password_file[1024];
		int smarthost_tls;        /* enum cfg_smarthost_tls */
		/* PEM CA certificates the smarthost's chain must lead to;
		 * "" = ca_file. */
		char smarthost_ca[1024];
		/* PEM CA bundle for MX certificates and MTA-STS policy
		 * fetches; "" = the system store. */
		char ca_file[1024];
		/* MTA-STS (RFC 8461) for recipient domains; default true. */
		bool mta_sts;
		/* The downgrade memory (docs/OUTBOUND_TLS.md): enum
		 * cfg_tls_memory, default CFG_TLS_MEMORY_WARN. */
		int tls_memory;
		char resolver[256];       /* "ip[:port]" or "" = system */
		unsigned mx_port;         /* default 25 */
		uint64_t max_queue_time;  /* seconds, default 5 days */
		/* A message still queued this long gets one delay warning
		 * (RFC 3464 action "delayed"); seconds, default 4 hours,
		 * 0 = never. */
		uint64_t delay_warning;
		/* Connections to one destination (an MX domain, or the
		 * smarthost) at once, default 10; the relay's cap on all
		 * connections is RELAY_CONNS_MAX (postroom.conf(5)). */
		unsigned connections_per_domain;
		/* DANE for MX hosts (RFC 7672) where DNSSEC-validated TLSA
		 * records exist; default true (postroom.conf(5)). */
		bool dane;
	} relay;
	struct {
		/* The DNS server of the relay and the inbound checks:
		 * "ip[:port]" ("[v6]:port"), "" = the system's.  [relay]
		 * resolver is an alias: whichever is set serves both. */
		char resolver[256];
		unsigned timeout;  /* seconds per lookup, default 5 */
	} dns;
	struct {
		/* Checks of mail on the MX listener (not authenticated
		 * submissions). */
		bool spf;          /* RFC 7208 at MAIL FROM, default true */
		bool dkim;         /* RFC 6376 verification, default true */
		bool dmarc;        /* RFC 7489, default true */
		int dmarc_policy;  /* enum cfg_dmarc_policy, default enforce */
		char dnsbl[512];   /* DNS block list zones, comma-separated */
		bool greylist;     /* default false */
		uint64_t greylist_delay; /* seconds, default 5 minutes */
	} inbound;
	struct {
		/* Filters of the MX listener's mail, in order; empty = none
		 * (the default). */
		struct cfg_milter_list servers;
		/* Filters of authenticated submissions (587, 465), in
		 * order; empty = none (the default). */
		struct cfg_milter_list submission_servers;
		unsigned timeout;  /* seconds per step, default 30 */
		int on_failure;    /* enum cfg_milter_failure */
	} milter;
	struct {
		/* The Prometheus endpoint of each daemon: one HOST:PORT,
		 * n = 0 (the default) = off.  A host that is not a loopback
		 * address is refused unless metrics_public. */
		struct cfg_listen_list listen;
		bool metrics_public; /* default false */
	} metrics;
};

/* Fills c with the defaults. */
void cfg_defaults(struct cfg *c);

/*
 * Loads path over the defaults.  Returns 0, or PR_EINVAL/PR_EIO with
 * err->msg "FILE:LINE: unknown key 'x' in [smtp]" (or a bad value, or a
 * missing file).
 */
int cfg_load(struct cfg *c, const char *path, struct pr_err *err);

/*
 * Loads the INI text text[0..len) over the defaults, as cfg_load() loads
 * a file; name stands for the file in messages and in c->path.  The text
 * need not end in a NUL or a newline.  Returns as cfg_load(), or
 * PR_ENOMEM when no stream could be made of the text.
 */
int cfg_load_buf(struct cfg *c, const char *name, const char *text,
    size_t len, struct pr_err *err);

/* The config path to use: explicit (from -c) if not NULL, else
 * $POSTROOM_CONFIG, else CFG_DEFAULT_PATH. */
const char *cfg_path(const char *explicit_path);

/* Parses "host:port,[v6]:port,..." into l.  "" gives an empty list. */
int cfg_parse_listen(const char *s, struct cfg_listen_list *l);

/* True for a loopback host: 127.0.0.0/8, ::1, "localhost". */
bool cfg_host_loopback(const char *host);

/* Parses sizes "1048576", "512K", "25M", "1G" (binary units). */
/* Parses "unix:PATH" and "inet:HOST:PORT" entries, comma-separated.
 * Returns 0 or PR_EINVAL. */
int cfg_parse_milters(const char *s, struct cfg_milter_list *l);

int cfg_parse_size(const char *s, uint64_t *v_r);

/* Parses durations "90", "90s", "30m", "12h", "5d". */
int cfg_parse_duration(const char *s, uint64_t *secs_r);

/* Parses a minimum rate "SIZE[/DURATION]" ("1K", "512/10s"): octets per
 * second and the grace period before it applies (default_grace when the
 * value names none).  "0" turns the minimum off. */
int cfg_parse_rate(const char *s, unsigned default_grace, uint64_t *rate_r,
    unsigned *grace_r);

#endif
