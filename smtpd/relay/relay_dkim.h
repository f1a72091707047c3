/*
 * relay_dkim.h - DKIM keys and signing (RFC 6376, RFC 8463) with OpenSSL.
 *
 * Keys live under <data_dir>/dkim/<domain>/: "<selector>.key" holds the
 * private key (PEM, PKCS#8) and the file "selector" names the key in use,
 * so a new key can be published under a new selector before it replaces
 * the old one.  Signatures are relaxed/relaxed over the message as stored
 * (CRLF lines), RSA-SHA256 (2048 bits) or Ed25519-SHA256.
 */
#ifndef POSTROOM_RELAY_DKIM_H
#define POSTROOM_RELAY_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

#define RELAY_DKIM_SELECTOR_DEFAULT "postroom"
#define RELAY_DKIM_SELECTOR_MAX 64
#define RELAY_DKIM_RSA_BITS 2048
/* Header section signed at most; a longer one is sent unsigned. */
#define RELAY_DKIM_HEAD_MAX (1024 * 1024)

enum relay_dkim_alg {
	RELAY_DKIM_RSA_SHA256 = 1,
	RELAY_DKIM_ED25519_SHA256 = 2,
};

struct relay_dkim_key;

/*
 * Creates a new key for domain under data_dir with selector (NULL = the
 * default) and makes it the active one.  The key file is 0600, or 0640
 * with group gid when gid is not (gid_t)-1 (the daemon's group, when the
 * CLI runs as root).  Refuses an existing selector with PR_EEXIST.
 * Returns 0 and the new key in *k_r, or an error with err set.
 */
int relay_dkim_keygen(const char *data_dir, const char *domain,
    const char *selector, bool ed25519, gid_t gid,
    struct relay_dkim_key **k_r, struct pr_err *err);

/* Loads the active key of domain.  Returns 0, PR_ENOENT when the domain
 * has none, or another error with err set. */
int relay_dkim_key_load(const char *data_dir, const char *domain,
    struct relay_dkim_key **k_r, struct pr_err *err);

/* Makes a key from a PEM private key in memory (tests, tools). */
int relay_dkim_key_from_pem(const char *domain, const char *selector,
    const char *pem, size_t len, struct relay_dkim_key **k_r,
    struct pr_err *err);

void relay_dkim_key_free(struct relay_dkim_key **k);

const char *relay_dkim_key_domain(const struct relay_dkim_key *k);
const char *relay_dkim_key_selector(const struct relay_dkim_key *k);
enum relay_dkim_alg relay_dkim_key_alg(const struct relay_dkim_key *k);

/* Appends the DNS TXT record data for the key ("v=DKIM1; k=rsa; p=...")
 * to out, as one string (callers split it into 255-octet chunks). */
int relay_dkim_key_txt(const struct relay_dkim_key *k, struct buf *out);

/* Appends the zone-file line publishing the key:
 *   <selector>._domainkey.<domain>. IN TXT ( "v=DKIM1; k=rsa; "
 *   	"p=..." "..." )
 * with the data split into strings of at most 255 octets (RFC 1035
 * 3.3.14, RFC 6376 3.6.2.2). */
int relay_dkim_key_record(const struct relay_dkim_key *k, struct buf *out);

/* Streaming signer: feed the whole message (header and body, CRLF lines)
 * in chunks of any size, then finish to get the header field to prepend. */
struct relay_dkim_signer;

/* k is borrowed until relay_dkim_signer_free. */
int relay_dkim_signer_new(const struct relay_dkim_key *k,
    struct relay_dkim_signer **s_r);
/* Returns 0, or PR_ENOSPC when the header section exceeds
 * RELAY_DKIM_HEAD_MAX (the signer is then unusable). */
int relay_dkim_signer_feed(struct relay_dkim_signer *s, const uint8_t *p,
    size_t len);
/* Appends "DKIM-Signature: ...\r\n" (folded) for timestamp now to out.
 * Returns 0 or an error with err set. */
int relay_dkim_signer_finish(struct relay_dkim_signer *s, int64_t now,
    struct buf *out, struct pr_err *err);
void relay_dkim_signer_free(struct relay_dkim_signer **s);

/* Finds the domain of the (first) address in the From: field of the
 * header section head[0..len), lower-cased, into out (outsz bytes).
 * Returns 0 or PR_ENOENT. */
int relay_dkim_from_domain(const uint8_t *head, size_t len, char *out,
    size_t outsz);

/* True if name is usable as a selector or a domain in a path: letters,
 * digits, '-', '_' and '.', not starting with '.'. */
bool relay_dkim_name_ok(const char *name, size_t max);

#endif
