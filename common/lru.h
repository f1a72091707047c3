/*
 * lru.h - a list in the order of use, for the bounded caches
 * (common/dns_cache.c, mailauth/dkim_keycache.c): an entry used moves
 * to the front, a full cache drops the one at the back.
 *
 * Intrusive: an entry embeds a struct lru_node; the list owns nothing.
 */
#ifndef POSTROOM_LRU_H
#define POSTROOM_LRU_H

#include <stddef.h>

struct lru_node {
	struct lru_node *prev, *next;
};

/* Newest first; zeroed is empty. */
struct lru {
	struct lru_node *head, *tail;
};

/* The entry of type T whose member m is node n (NULL for NULL). */
#define LRU_ENTRY(n, T, m) \
	((n) != NULL ? (T *)(void *)((char *)(n) - offsetof(T, m)) : (T *)NULL)

/* Takes n out of l. */
static inline void
lru_unlink(struct lru *l, struct lru_node *n)
{
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

/* Puts n, not in l, at the front. */
static inline void
lru_push(struct lru *l, struct lru_node *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head != NULL)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

/* Moves n, in l, to the front: it has just been used. */
static inline void
lru_touch(struct lru *l, struct lru_node *n)
{
	lru_unlink(l, n);
	lru_push(l, n);
}

#endif
