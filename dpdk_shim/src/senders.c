/* senders.c - per-sender accounting on the RX loop: traffic per sender,
 * sequence gaps (what was lost before the box), per-source budgets.
 *
 * Both tables are set-associative: a key hashes to one set of
 * LC_TABLE_WAYS slots; a set fills in order and, when full, its least
 * recently used slot is replaced (counted in `evictions`). Lookups cost a
 * hash and at most LC_TABLE_WAYS compares, whatever the number of senders
 * on the wire, and the memory is fixed at start. One writer (the RX loop);
 * readers in other processes see counters that may be a record behind.
 *
 * Sequence numbers, per sender (docs/SENDERS.md says the same for users):
 *   next number                        -> nothing to count
 *   k numbers skipped (k <= max_gap)   -> lost += k, the record flagged
 *                                         LC_F_SEQ_GAP
 *   a skipped number that comes late   -> reorder, lost -= 1
 *   (within LC_SEQ_WINDOW of the newest)
 *   a number already seen (window)     -> duplicate
 *   further back than the window, or   -> reset: a wrap when the newest was
 *   back at the rule's min or min + 1     near the rule's max and this one is
 *                                         near its min (numbers skipped across
 *                                         the wrap are lost), else a restart
 *                                         (reboot: nothing counted lost)
 *   a jump forward beyond max_gap      -> reset (restart), not loss
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_senders.h"
#include "senders.h"

_Static_assert(sizeof(struct lc_sender) == 192, "lc_sender is three cache lines");
_Static_assert(sizeof(struct lc_budget_entry) == 72, "lc_budget_entry size");
_Static_assert(LC_SEQ_WINDOW == 64, "seq_missing is a 64-bit window");

static int lc_pow2(uint32_t n) { return n && (n & (n - 1)) == 0; }

/* Bytes of a table: its head and nsets sets of LC_TABLE_WAYS entries. */
static int64_t lc_table_size(uint32_t nsets, size_t head, size_t entry)
{
    if (!lc_pow2(nsets))
        return -EINVAL;
    return (int64_t)head + (int64_t)nsets * LC_TABLE_WAYS * (int64_t)entry;
}

/* Zero `need` bytes of mem for a table, if they are there and 64-byte aligned. */
static int lc_table_clear(void *mem, uint64_t size, int64_t need)
{
    if (need < 0 || size < (uint64_t)need || ((uintptr_t)mem & 63))
        return -EINVAL;
    memset(mem, 0, (size_t)need);
    return 0;
}

int64_t lc_senders_size(uint32_t nsets)
{
    return lc_table_size(nsets, sizeof(struct lc_senders), sizeof(struct lc_sender));
}

int lc_senders_init(void *mem, uint64_t size, uint32_t nsets, uint64_t max_gap)
{
    if (lc_table_clear(mem, size, lc_senders_size(nsets)))
        return -EINVAL;
    struct lc_senders *t = mem;
    t->nsets = nsets;
    t->max_gap = max_gap;
    t->magic = LC_SENDERS_MAGIC;
    return 0;
}

int64_t lc_budget_size(uint32_t nsets)
{
    return lc_table_size(nsets, sizeof(struct lc_budget), sizeof(struct lc_budget_entry));
}

int lc_budget_init(void *mem, uint64_t size, uint32_t nsets, uint64_t interval_ns, uint64_t tolerance_ns)
{
    if (lc_table_clear(mem, size, lc_budget_size(nsets)))
        return -EINVAL;
    struct lc_budget *t = mem;
    t->nsets = nsets;
    t->interval_ns = interval_ns;
    t->tolerance_ns = tolerance_ns;
    t->magic = LC_BUDGET_MAGIC;
    return 0;
}

/* ---- sequence numbers -------------------------------------------------- */

static void lc_seq_restart(struct lc_sender *e, uint32_t rule, uint64_t seq)
{
    e->seq_rule = (uint8_t)rule;
    e->seq_tracking = 1;
    e->seq_last = e->seq_first = seq;
    e->seq_missing = 0;
}

uint16_t lc_seq_observe(struct lc_decoder *d, struct lc_senders *t, struct lc_sender *e, uint32_t rule,
                        uint64_t s)
{
    d->seq_records++;
    if (!e->seq_tracking || e->seq_rule != rule) {
        lc_seq_restart(e, rule, s);
        return 0;
    }
    uint64_t last = e->seq_last;
    if (s > last) {
        uint64_t skip = s - last - 1;
        if (skip > t->max_gap) {                       /* not loss: a new sequence */
            e->resets++;
            d->seq_resets++;
            lc_seq_restart(e, rule, s);
            return 0;
        }
        e->seq_missing = skip + 1 >= 64 ? 0 : e->seq_missing << (skip + 1);
        e->seq_missing |= skip >= 64 ? ~0ull : (1ull << skip) - 1;
        e->seq_last = s;
        if (!skip)
            return 0;
        e->lost += skip;
        e->gaps++;
        d->seq_lost += skip;
        d->seq_gaps++;
        return LC_F_SEQ_GAP;
    }
    uint64_t back = last - s;
    if (back == 0) {
        e->duplicates++;
        d->seq_duplicates++;
        return 0;
    }
    const struct lc_seq_rule *r = &t->rules[rule - 1];
    int first_numbers = s <= r->min + 1 && back > 1;   /* a sender that restarted counts from min again */
    if (back <= LC_SEQ_WINDOW && !first_numbers) {
        uint64_t bit = 1ull << (back - 1);
        if (e->seq_missing & bit) {                    /* counted lost, came after all */
            e->seq_missing &= ~bit;
            e->reorders++;
            e->lost--;
            d->seq_reorders++;
            d->seq_lost--;
        } else if (s < e->seq_first) {                 /* older than the first we saw */
            e->reorders++;
            d->seq_reorders++;
        } else {
            e->duplicates++;
            d->seq_duplicates++;
        }
        return 0;
    }
    /* Further back than the window, or back at the first numbers: the
     * sequence started again. */
    uint16_t flags = 0;
    e->resets++;
    d->seq_resets++;
    if (r->max >= LC_SEQ_WINDOW && last > r->max - LC_SEQ_WINDOW && s >= r->min && s - r->min < LC_SEQ_WINDOW) {
        uint64_t skip = (r->max - last) + (s - r->min);   /* a wrap: what it skipped is lost */
        if (skip) {
            e->lost += skip;
            e->gaps++;
            d->seq_lost += skip;
            d->seq_gaps++;
            flags = LC_F_SEQ_GAP;
        }
    }
    lc_seq_restart(e, rule, s);
    return flags;
}

uint16_t lc_senders_observe(struct lc_decoder *d, struct lc_senders *t, const uint8_t *addr,
                            const uint8_t *app, uint32_t app_len, uint32_t rule, uint64_t seq,
                            uint32_t payload_len, int64_t rx_ns)
{
    struct lc_sender_key k = {.addr = addr, .app = app, .app_len = app ? app_len : 0, .rule = rule, .seq = seq};
    return lc_senders_account(d, t, &k, payload_len, rx_ns);
}

/* ---- budgets ----------------------------------------------------------- */

/* The override whose prefix holds addr (the longest), or NULL. */
static const struct lc_budget_override *lc_budget_override(const struct lc_budget *t, const uint8_t *addr)
{
    const struct lc_budget_override *best = NULL;
    for (uint32_t i = 0; i < t->noverrides && i < LC_BUDGET_OVERRIDES_MAX; i++) {
        const struct lc_budget_override *o = &t->overrides[i];
        uint32_t bits = o->prefix_len, full = bits / 8, rest = bits % 8;
        if (memcmp(o->addr, addr, full) != 0)
            continue;
        if (rest && ((o->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))))
            continue;
        if (!best || o->prefix_len > best->prefix_len)
            best = o;
    }
    return best;
}

struct lc_budget_entry *lc_budget_fresh(struct lc_budget *t, struct lc_budget_entry *e, const uint8_t *addr,
                                        uint64_t h)
{
    if (e->hash)
        t->evictions++;
    memset(e, 0, sizeof(*e));
    memcpy(e->addr, addr, 16);
    e->hash = h;
    const struct lc_budget_override *o = lc_budget_override(t, addr);
    e->interval_ns = o ? o->interval_ns : t->interval_ns;
    e->tolerance_ns = o ? o->tolerance_ns : t->tolerance_ns;
    return e;
}

int lc_budget_take(struct lc_decoder *d, struct lc_budget *t, const uint8_t *addr, uint64_t now_ns)
{
    return lc_budget_check(d, t, addr, now_ns);
}
