/*
 * relay_client_int.h - between the SMTP client's files.
 *
 * Not a public header: relay_client.c (the state machine),
 * relay_client_reply.c (reading replies) and relay_client_auth.c (AUTH)
 * include it; everyone else uses
 * relay_client.h.
 */
#ifndef POSTROOM_RELAY_CLIENT_INT_H
#define POSTROOM_RELAY_CLIENT_INT_H

#include <stdbool.h>

#include "relay_client.h"

/* Acts on one complete reply (code, and its lines joined as kept for
 * logs and DSNs): the next command into c->out, maybe an event. */
void relay_client__reply(struct relay_client *c, int code,
    const char *reply);

/* Takes one line of a 250 EHLO reply (RFC 5321 4.1.1.1) into c->ext and
 * c->server_name; first is the line that names the server. */
void relay_client__parse_ehlo(struct relay_client *c, const char *text,
    bool first);

/* State changes and commands, shared by the client's files. */
void relay_client_enter(struct relay_client *c, enum relay_client_state st);
void relay_client_cmd(struct relay_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void relay_client_quit(struct relay_client *c, enum relay_client_result res);
/* After EHLO (and AUTH): MAIL FROM, then the recipients. */
void relay_client_mail(struct relay_client *c);

/* relay_client_auth.c: sends the first AUTH command; then each reply in
 * one of the AUTH states, true when it was taken (the next command is
 * queued), false for a refusal the caller handles. */
void relay_client__auth_start(struct relay_client *c);
bool relay_client__auth_reply(struct relay_client *c, int code,
    const char *reply);

#endif
