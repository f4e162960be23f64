/* senders.h - the inline half of senders.c, called by the decoder for
 * every record (lc_senders_account) and datagram (lc_budget_check). */
#ifndef LC_SENDERS_INLINE_H
#define LC_SENDERS_INLINE_H

#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_senders.h"

/* What a record tells the senders table. */
struct lc_sender_key {
    const uint8_t *addr;         /* 16 bytes, IPv4 mapped */
    const uint8_t *app;          /* app_name, or NULL */
    uint32_t app_len;
    uint32_t rule;               /* 1 + rule index when the record carried a sequence number */
    uint64_t seq;
};

static inline struct lc_sender *lc_senders_slots(struct lc_senders *t) { return (struct lc_sender *)(t + 1); }
static inline struct lc_budget_entry *lc_budget_slots(struct lc_budget *t)
{
    return (struct lc_budget_entry *)(t + 1);
}

static inline uint64_t lc_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t lc_load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Hash of an address (16 bytes) and up to 48 bytes of app name; never 0.
 * Multiply-xor per eight bytes and one finaliser: the lookup runs for
 * every record. */
static inline uint64_t lc_key_hash(const uint8_t *addr, const uint8_t *app, uint32_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = (lc_load64(addr) * k) ^ lc_load64(addr + 8);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = (h ^ lc_load64(app + i)) * k;
    if (i < n) {
        uint64_t tail = 0;
        memcpy(&tail, app + i, n - i);
        h = (h ^ tail) * k;
    }
    h = lc_mix(h ^ n);
    return h ? h : 1;                                  /* 0 marks an empty slot */
}

static inline int lc_addr_eq(const uint8_t *a, const uint8_t *b)
{
    return lc_load64(a) == lc_load64(b) && lc_load64(a + 8) == lc_load64(b + 8);
}

uint16_t lc_seq_observe(struct lc_decoder *d, struct lc_senders *t, struct lc_sender *e, uint32_t rule,
                        uint64_t seq);
struct lc_budget_entry *lc_budget_fresh(struct lc_budget *t, struct lc_budget_entry *e, const uint8_t *addr,
                                        uint64_t h);

/* The record's sender, found or made (replacing the set's least recently
 * used one when the set is full). */
static inline struct lc_sender *lc_sender_get(struct lc_senders *t, const uint8_t *addr, const uint8_t *app,
                                              uint32_t app_len, uint64_t h)
{
    struct lc_sender *set = lc_senders_slots(t) + (size_t)(h & (t->nsets - 1)) * LC_TABLE_WAYS;
    struct lc_sender *victim = set;
    for (int w = 0; w < LC_TABLE_WAYS; w++) {
        struct lc_sender *e = set + w;
        if (e->hash == h) {
            if (e->app_len == app_len && lc_addr_eq(e->addr, addr))
                return e;                              /* the 64-bit hash stands for the app name */
        } else if (e->hash == 0) {                     /* sets fill in order: no match after a hole */
            victim = e;
            goto fresh;
        }
        if (e->used < victim->used)
            victim = e;
    }
    t->evictions++;
fresh:
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->addr, addr, 16);
    victim->app_len = (uint8_t)app_len;
    memcpy(victim->app, app, app_len);
    victim->hash = h;
    return victim;
}

/* One record: its sender's traffic, and its sequence number if it has one.
 * A rule keyed by source alone (Cisco: one counter per device) files the
 * record under the source with no app. */
static inline uint16_t lc_senders_account(struct lc_decoder *d, struct lc_senders *t,
                                          const struct lc_sender_key *k, uint32_t payload_len, int64_t rx_ns)
{
    uint32_t app_len = k->app_len > 48 ? 48 : k->app_len;
    if (k->rule && !t->rules[k->rule - 1].per_app)
        app_len = 0;
    const uint8_t *app = app_len ? k->app : (const uint8_t *)"";
    uint64_t h = lc_key_hash(k->addr, app, app_len);
    struct lc_sender *e = lc_sender_get(t, k->addr, app, app_len, h);
    e->used = ++t->clock;
    e->records++;
    e->bytes += payload_len;
    e->last_ns = (uint64_t)rx_ns;
    return k->rule ? lc_seq_observe(d, t, e, k->rule, k->seq) : 0;
}

/* GCRA: a datagram conforms when its source's theoretical arrival time is
 * at most `tolerance` ahead of now; each one conforming moves it on by
 * `interval`. */
static inline int lc_budget_check(struct lc_decoder *d, struct lc_budget *t, const uint8_t *addr, uint64_t now)
{
    uint64_t h = lc_key_hash(addr, NULL, 0);
    struct lc_budget_entry *set = lc_budget_slots(t) + (size_t)(h & (t->nsets - 1)) * LC_TABLE_WAYS;
    struct lc_budget_entry *e = NULL, *victim = set;
    for (int w = 0; w < LC_TABLE_WAYS; w++) {
        struct lc_budget_entry *s = set + w;
        if (s->hash == h && lc_addr_eq(s->addr, addr)) {
            e = s;
            break;
        }
        if (s->hash == 0) {
            victim = s;
            break;
        }
        if (s->used < victim->used)
            victim = s;
    }
    if (!e)
        e = lc_budget_fresh(t, victim, addr, h);
    e->used = ++t->clock;
    if (e->interval_ns) {
        uint64_t tat = e->tat > now ? e->tat : now;
        if (tat - now > e->tolerance_ns) {
            e->throttled++;
            d->throttled++;
            d->frames++;
            return 0;
        }
        e->tat = tat + e->interval_ns;
    }
    e->passed++;
    return 1;
}

/* An address as the tables key it: 16 bytes, IPv4 as ::ffff:a.b.c.d. */
static inline const uint8_t *lc_addr16(uint8_t *buf, const uint8_t *a, int v6)
{
    if (v6)
        return a;
    memset(buf, 0, 10);
    buf[10] = buf[11] = 0xff;
    memcpy(buf + 12, a, 4);
    return buf;
}

#endif
