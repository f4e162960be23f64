#pragma once
/* lc_latency.h - latency histogram of records at sink hand-off.
 * Read by ffi.cdef: declarations only (see lc_batch.h).
 *
 * Buckets are log-linear: bucket = 8 * floor(log2(ns)) + the next 3 bits,
 * so each power of two is split in 8 (at most 12.5 % wide). Bucket 0 holds
 * latencies of 0..7 ns and negative ones (clock steps). */

#define LC_LAT_BUCKETS 512

/* Add now_ns - rx_time of every record of `b` to hist[LC_LAT_BUCKETS].
 * Returns the number of records added. */
int lc_latency_add(const struct lc_batch_hdr *b, int64_t now_ns, uint64_t *hist);

/* The same for each of `n` batches (what one worker take() hands over). */
int64_t lc_latency_add_many(struct lc_batch_hdr **b, uint32_t n, int64_t now_ns, uint64_t *hist);

/* Lower bound in ns of bucket i (for percentiles). */
int64_t lc_latency_bucket_floor(uint32_t i);
