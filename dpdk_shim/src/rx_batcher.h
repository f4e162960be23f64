/* rx_batcher.h - the batching every RX loop shares (DPDK, AF_XDP, sockets).
 *
 * A loop decodes each packet into the batch of the ring slot it holds; the
 * batch closes (is published) when full, when the queue ran dry, or
 * batch_max_delay after its first record. A full ring never blocks: the loop
 * decodes into its scratch batch, which is counted as lost (ring_full) when
 * it closes, so every counter stays exact.
 */
#ifndef LC_RX_BATCHER_H
#define LC_RX_BATCHER_H

#include <errno.h>
#include <stdint.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_ring.h"
#include "../lc_rx.h"

struct lc_batcher {
    struct lc_ring *ring;
    struct lc_decoder *decoder;
    struct lc_rxq_stats *stats;
    struct lc_batch_hdr *scratch;  /* decode target while the ring is full */
    struct lc_batch_hdr *b;        /* batch being filled, or NULL */
    int in_scratch;
    uint64_t opened;               /* clock of the batch's first record */
};

static inline void lc_batcher_open(struct lc_batcher *s)
{
    if (lc_ring_acquire(s->ring, &s->b) == 0) {
        s->in_scratch = 0;
        return;
    }
    s->b = s->scratch;
    lc_batch_reset(s->b, 0);
    s->in_scratch = 1;
}

static inline void lc_batcher_close(struct lc_batcher *s)
{
    if (s->in_scratch) {
        lc_ring_drop(s->ring, s->b->count);
        s->stats->ring_full_batches++;
        s->stats->ring_full_records += s->b->count;
    } else {
        lc_ring_publish(s->ring);
        s->stats->batches++;
    }
    s->b = NULL;
}

/* The queue ran dry. Close the batch if the worker has caught up (it is
 * waiting for data) or the batch has been open `delay`. While the worker is
 * still busy with earlier batches, keep filling this one: batches then grow
 * with the backlog, instead of a trickle filling the ring with one-record
 * batches the worker cannot keep up with. */
static inline void lc_batcher_idle(struct lc_batcher *s, uint64_t now, uint64_t delay)
{
    if (s->b && s->b->count && (s->in_scratch || now - s->opened >= delay || lc_ring_backlog(s->ring) == 0))
        lc_batcher_close(s);
}

/* Close the open batch if it holds records (stopping). */
static inline void lc_batcher_flush(struct lc_batcher *s)
{
    if (s->b && s->b->count)
        lc_batcher_close(s);
}

/* Close the batch when it has been open `delay` clock units. */
static inline void lc_batcher_tick(struct lc_batcher *s, uint64_t now, uint64_t delay)
{
    if (s->b && s->b->count && now - s->opened >= delay)
        lc_batcher_close(s);
}

/* Decode one frame (link type `link`) into the open batch, opening or
 * closing batches as needed. Returns lc_decode_frame's result. */
static inline int lc_batcher_frame(struct lc_batcher *s, int link, const uint8_t *data, uint32_t len,
                                   int64_t rx_ns, uint64_t now)
{
    if (s->b == NULL)
        lc_batcher_open(s);
    int rc = lc_decode_frame(s->decoder, s->b, link, data, len, rx_ns);
    if (__builtin_expect(rc == -ENOSPC, 0)) {
        lc_batcher_close(s);
        lc_batcher_open(s);
        rc = lc_decode_frame(s->decoder, s->b, link, data, len, rx_ns);
    }
    if (rc == 1 && s->b->count == 1)
        s->opened = now;
    return rc;
}

#endif
