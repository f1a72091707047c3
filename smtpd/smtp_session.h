/*
 * smtp_session.h - SMTP server sessions: the libuv glue around smtp_proto.
 *
 * A session owns one net_conn and one protocol core.  It feeds the core
 * with the connection's plaintext input, writes its replies, and carries
 * out its events: recipient and sender lookups on the loop thread's store
 * connection (indexed reads), password verification in the password
 * pool (pwpool.h) after the login throttle (authlimit.h), spool writes
 * with uv_fs, and deliveries through the daemon's store
 * worker with group commit (smtp_deliver).  While an event is outstanding
 * the connection is paused, so a pipelining client waits instead of
 * filling memory.
 */
#ifndef POSTROOM_SMTP_SESSION_H
#define POSTROOM_SMTP_SESSION_H

#include <stdbool.h>
#include <uv.h>

#include "cfg.h"
#include "net.h"
#include "smtp_proto.h"

struct store_worker;
struct relay;
struct ipcount;
struct pwpool;
struct store;
struct smtp_session;
struct resolver;
struct dkim_keycache;

/* What every session shares; owned by main.c. */
struct smtp_server {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct smtp_limits limits;    /* from cfg; updated on SIGHUP */
	uint64_t timeout_ms;          /* idle timeout ([smtp] timeout) */
	unsigned max_per_ip;          /* 0 = no limit */
	unsigned max_sessions;        /* [smtp] max_connections, 0 = none */
	uint64_t min_data_rate;       /* octets/s, 0 = no minimum */
	uint64_t min_data_grace_ms;
	struct pwpool *pw;            /* password checks */
	struct store *st;             /* loop-thread store: lookups only */
	struct store_worker *wk;      /* the one writer: deliveries, relay */
	struct relay *relay;          /* kicked after remote deliveries */
	/* The DNS of the inbound checks (SPF); NULL = none can be made. */
	struct resolver *resolver;
	/* DKIM keys decoded for earlier messages (dkim_keycache.h). */
	struct dkim_keycache *dkim_keys;
	struct ipcount *ipc;
	char spool_dir[1100];         /* <data_dir>/tmp */
	bool draining;
	unsigned n_sessions;
	struct smtp_session *sessions;
	/* Called when draining and the last session is gone. */
	void (*idle_cb)(struct smtp_server *srv);
};

/* net_accept_cb for every SMTP listener; net_listener_data() is the
 * struct smtp_server and net_listener_kind() an enum smtp_listen_kind. */
void smtp_session_accept(struct net_listener *l, struct net_conn *c);

/* Starts draining: idle sessions get 421 4.3.2 and close; sessions inside
 * a message finish it first.  idle_cb runs once none is left (possibly
 * from inside this call). */
void smtp_server_drain(struct smtp_server *srv);

/* Closes every remaining session at once (drain deadline). */
void smtp_server_close_all(struct smtp_server *srv);

#endif
