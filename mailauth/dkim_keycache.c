/*
 * dkim_keycache.c - decoded DKIM keys kept for their record's TTL.
 *
 * A list in the order of use, newest first: a hit moves to the front, a
 * full cache drops from the back.  A few hundred entries at most, so a
 * walk of the list is cheaper than the key decoding it saves.
 */
#include "dkim_keycache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "lru.h"

struct dkim_keycache_ent {
	char name[600];             /* as dkim_verify.c builds it */
	struct dkim_verify_key key; /* the cache's reference */
	uint64_t expires_ms;
	struct lru_node use;
};

struct dkim_keycache {
	pthread_mutex_t lock;
	dkim_keycache_clock clock;
	size_t n, max;
	struct lru use;             /* newest first */
};

static uint64_t
dkim_keycache_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct dkim_keycache *
dkim_keycache_new(size_t max, dkim_keycache_clock clock)
{
	struct dkim_keycache *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return NULL;
	}
	c->max = max > 0 ? max : DKIM_KEYCACHE_ENTRIES;
	c->clock = clock != NULL ? clock : dkim_keycache_monotonic;
	return c;
}

static void
dkim_keycache_drop(struct dkim_keycache *c, struct dkim_keycache_ent *e)
{
	lru_unlink(&c->use, &e->use);
	dkim_verify_key_fini(&e->key);
	free(e);
	c->n--;
}

void
dkim_keycache_free(struct dkim_keycache **cp)
{
	struct dkim_keycache *c = *cp;

	if (c == NULL)
		return;
	while (c->use.head != NULL)
		dkim_keycache_drop(c, LRU_ENTRY(c->use.head,
		    struct dkim_keycache_ent, use));
	pthread_mutex_destroy(&c->lock);
	free(c);
	*cp = NULL;
}

static struct dkim_keycache_ent *
dkim_keycache_find(struct dkim_keycache *c, const char *name)
{
	struct lru_node *n;
	struct dkim_keycache_ent *e;

	for (n = c->use.head; n != NULL; n = n->next) {
		e = LRU_ENTRY(n, struct dkim_keycache_ent, use);
		if (strcasecmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

bool
dkim_keycache_get(struct dkim_keycache *c, const char *name,
    struct dkim_verify_key *k)
{
	struct dkim_keycache_ent *e;
	bool hit = false;

	pthread_mutex_lock(&c->lock);
	if ((e = dkim_keycache_find(c, name)) != NULL) {
		if (c->clock() >= e->expires_ms) {
			dkim_keycache_drop(c, e);
		} else if (EVP_PKEY_up_ref(e->key.pkey) == 1) {
			*k = e->key;
			lru_touch(&c->use, &e->use);
			hit = true;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

void
dkim_keycache_put(struct dkim_keycache *c, const char *name,
    const struct dkim_verify_key *k, uint32_t ttl)
{
	struct dkim_keycache_ent *e, *old;

	if (ttl == 0 || k->pkey == NULL || strlen(name) >= sizeof(e->name))
		return;
	if (ttl > DKIM_KEYCACHE_TTL_MAX)
		ttl = DKIM_KEYCACHE_TTL_MAX;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	if (EVP_PKEY_up_ref(k->pkey) != 1) {
		free(e);
		return;
	}
	strcpy(e->name, name);
	e->key = *k;
	pthread_mutex_lock(&c->lock);
	e->expires_ms = c->clock() + (uint64_t)ttl * 1000;
	if ((old = dkim_keycache_find(c, name)) != NULL)
		dkim_keycache_drop(c, old);
	if (c->n >= c->max)
		dkim_keycache_drop(c, LRU_ENTRY(c->use.tail,
		    struct dkim_keycache_ent, use));
	lru_push(&c->use, &e->use);
	c->n++;
	pthread_mutex_unlock(&c->lock);
}

size_t
dkim_keycache_count(struct dkim_keycache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}
