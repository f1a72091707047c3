/*
 * store.h - stands in front of store/store.h for mailauth/, which is pure
 * (docs/ARCHITECTURE.md): what it needs from the store, its callers pass
 * in.
 */
#error "mailauth/ must not include the store"
