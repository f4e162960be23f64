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

/* What a loop hands the batcher: a frame with its link layer (DPDK,
 * AF_XDP) or a UDP datagram whose addresses the kernel gave (sockets). */
enum lc_rx_kind { LC_RX_FRAME, LC_RX_DATAGRAM };

struct lc_rx_packet {
    enum lc_rx_kind kind;
    int link;                      /* frame: LC_LINK_* */
    const void *src, *dst;         /* datagram: sockaddrs (lc_decode_datagram) */
    uint16_t net_flags;            /* datagram: LC_F_* the kernel's flags gave */
    const uint8_t *data;
    uint32_t len;
    int64_t rx_ns;
};

static inline __attribute__((always_inline)) int lc_batcher_decode(struct lc_batcher *s,
                                                                   const struct lc_rx_packet *p)
{
    if (p->kind == LC_RX_FRAME)
        return lc_decode_frame(s->decoder, s->b, p->link, p->data, p->len, p->rx_ns);
    return lc_decode_datagram(s->decoder, s->b, p->src, p->dst, p->data, p->len, p->net_flags, p->rx_ns);
}

/* Decode one packet into the open batch, opening or closing batches as
 * needed: a batch that lacks room (-ENOSPC) is closed and the packet goes
 * into a fresh one; the clock of a batch's first record is kept for
 * batch_max_delay. The one home of that logic for every loop. Returns the
 * decoder's result.
 *
 * Always inlined into lc_batcher_frame / lc_batcher_datagram, where
 * p->kind is a constant: the struct stays in registers and the kind test
 * folds away, so each loop calls its decoder directly, as before. */
static inline __attribute__((always_inline)) int lc_batcher_put(struct lc_batcher *s,
                                                                const struct lc_rx_packet *p, uint64_t now)
{
    if (s->b == NULL)
        lc_batcher_open(s);
    int rc = lc_batcher_decode(s, p);
    if (__builtin_expect(rc == -ENOSPC, 0)) {
        lc_batcher_close(s);
        lc_batcher_open(s);
        rc = lc_batcher_decode(s, p);
    }
    if (rc == 1 && s->b->count == 1)
        s->opened = now;
    return rc;
}

/* One frame of link type `link` (lc_decode_frame). */
static inline int lc_batcher_frame(struct lc_batcher *s, int link, const uint8_t *data, uint32_t len,
                                   int64_t rx_ns, uint64_t now)
{
    struct lc_rx_packet p = {.kind = LC_RX_FRAME, .link = link, .data = data, .len = len, .rx_ns = rx_ns};
    return lc_batcher_put(s, &p, now);
}

/* One datagram from a socket (lc_decode_datagram). */
static inline int lc_batcher_datagram(struct lc_batcher *s, const void *src, const void *dst, const uint8_t *data,
                                      uint32_t len, uint16_t net_flags, int64_t rx_ns, uint64_t now)
{
    struct lc_rx_packet p = {.kind = LC_RX_DATAGRAM, .src = src, .dst = dst, .net_flags = net_flags,
                             .data = data, .len = len, .rx_ns = rx_ns};
    return lc_batcher_put(s, &p, now);
}

#endif
