/*
 * relay_client_int.h - between the SMTP client's two files.
 *
 * Not a public header: relay_client.c (the state machine) and
 * relay_client_reply.c (reading replies) include it; everyone else uses
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

#endif
