/*
 * ares.h - stands in front of the real header for mailauth/, which is pure
 * (docs/ARCHITECTURE.md): DNS comes through resolver.h, storage through
 * its callers.
 */
#error "mailauth/ must not include <ares.h>"
