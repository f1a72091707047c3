/* cli_util.h - helpers shared by the CLI commands. */
#ifndef POSTROOM_CLI_UTIL_H
#define POSTROOM_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "addr.h"

/* Parses and canonicalises an address argument (lower-cased, the domain
 * in normal form, as the store keeps it).  Prints a clear error and
 * returns -1 when it is not valid. */
int cli_address(const char *arg, char out[ADDR_MAX]);

/* Parses a domain argument into its one normal form (IDNA2008 A-labels,
 * domain.h), so that "exämple.org" and "xn--exmple-cua.org" are one
 * domain.  Refuses IP addresses.  Prints the reason and returns -1. */
int cli_domain(const char *arg, char out[ADDR_DOMAIN_MAX + 1]);

struct cli;
struct cfg_listen_list;

/* The port of the first address of a listen list ([smtp] submission,
 * ...), what clients are told to connect to; 0 for a listener that is
 * off (an empty list). */
unsigned cli_listen_port(const struct cfg_listen_list *l);

/* cli_domain, then the domain must be hosted (`postroom domain add`).
 * Returns CLI_OK, or the exit status after saying what is wrong. */
int cli_hosted_domain(struct cli *cli, const char *arg,
    char out[ADDR_DOMAIN_MAX + 1]);

struct dns;
struct buf;
struct resolver_txt;

/* Appends the character-strings of a TXT record to out, concatenated
 * without a separator as DKIM, SPF and DMARC read them (RFC 6376
 * 3.6.2.2, RFC 7208 3.3).  Returns 0 or PR_ENOSPC from the buffer. */
int cli_txt_join(const struct resolver_txt *t, struct buf *out);

/* Starts loop and on it the resolver of [dns] (common/dns.c: [dns]
 * resolver, [dns] timeout), for a command that looks names up as the
 * daemons do.  Returns CLI_OK, or CLI_ERR after saying why, with nothing
 * left open.  The caller closes *d_r with dns_close(), runs the loop to
 * its end and closes it. */
int cli_dns_open(struct cli *cli, uv_loop_t *loop, struct dns **d_r);

/* A store_resolve() callback for a caller that asks only whether an
 * address reaches someone (the kind), not whom. */
int cli_resolve_ignore(void *ctx, int64_t user_id, const char *remote);

/* The shortest password the CLI sets, in characters: an online guesser is
 * slowed by the login throttle, but not enough for a 4-letter word. */
#define CLI_PASSWORD_MIN 8

/* Reads a new password into sodium_malloc() memory: one line from stdin
 * with from_stdin, else twice from the controlling terminal with echo off
 * (without one: an error that names --password-stdin).  Refuses empty,
 * too long and shorter than CLI_PASSWORD_MIN passwords.  Returns NULL
 * after printing the reason.  Free with cli_password_free. */
char *cli_password_read(bool from_stdin);
void cli_password_free(char *pw);

/* "1.5 MiB"-style rendering of a byte count into out (16 bytes). */
void cli_human_size(int64_t n, char out[16]);

#endif
