/* ring_map.h - a ring's mapping, shared by ring.c and the Arrow export.
 *
 * The mapping is reference-counted: the handle holds one reference and
 * every exported Arrow array another, so lc_ring_close never unmaps memory
 * that a pyarrow Table still points at; the last reference unmaps. */
#ifndef LC_RING_MAP_H
#define LC_RING_MAP_H

#include <stdatomic.h>
#include <stdint.h>

struct lc_ring;

struct lc_ring_map {
    _Atomic long refs;
    void *base;
    uint64_t size;
};

struct lc_ring_map *lc_ring_map_get(struct lc_ring *r);   /* one more reference */

static inline struct lc_ring_map *lc_ring_map_hold(struct lc_ring_map *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void lc_ring_map_put(struct lc_ring_map *m);              /* one fewer; the last unmaps */

#endif
