/* latency.c - per-record latency histogram (see lc_latency.h). */
#include <stdint.h>

#include "../lc_batch.h"
#include "../lc_latency.h"

static inline uint32_t lc_lat_bucket(int64_t ns)
{
    if (ns < 8)
        return 0;
    uint32_t lg = 63 - (uint32_t)__builtin_clzll((uint64_t)ns);    /* >= 3 */
    uint32_t sub = (uint32_t)((uint64_t)ns >> (lg - 3)) & 7;
    uint32_t i = (lg - 2) * 8 + sub;
    return i < LC_LAT_BUCKETS ? i : LC_LAT_BUCKETS - 1;
}

int lc_latency_add(const struct lc_batch_hdr *b, int64_t now_ns, uint64_t *hist)
{
    const int64_t *rx = (const int64_t *)((const uint8_t *)b + b->cols[LC_COL_RX_TIME].values_off);
    for (uint32_t i = 0; i < b->count; i++)
        hist[lc_lat_bucket(now_ns - rx[i])]++;
    return (int)b->count;
}

int64_t lc_latency_add_many(struct lc_batch_hdr **b, uint32_t n, int64_t now_ns, uint64_t *hist)
{
    int64_t records = 0;
    for (uint32_t i = 0; i < n; i++)
        records += lc_latency_add(b[i], now_ns, hist);
    return records;
}

int64_t lc_latency_bucket_floor(uint32_t i)
{
    if (i < 8)                          /* bucket 0 holds 0..7 ns; 1..7 are never used */
        return i == 0 ? 0 : 8;
    uint32_t shift = i / 8 - 1, sub = i % 8;
    if (shift > 59)                     /* beyond what an int64 of ns can hold */
        return INT64_MAX;
    return (int64_t)((UINT64_C(8) + sub) << shift);
}
