#pragma once
/* lc_ring.h - the single-producer/single-consumer ring of batches, one per
 * RX queue, in a file on hugetlbfs (or /dev/shm) shared by the capture
 * process (producer, the C RX loop) and one worker process (consumer).
 *
 * Read by ffi.cdef: declarations only (see lc_batch.h). C sources include
 * <stdint.h> and lc_batch.h before this header.
 *
 * File layout (private to ring.c; versioned by LC_RING_MAGIC/LC_RING_VERSION):
 *   header page (LC_RING_HDR_SIZE bytes): geometry, then on their own 64-byte
 *     lines: producer head and counters, consumer tail and counters, the
 *     futex word and the consumer's "sleeping" flag, the "closed" flag;
 *   nslots slots of slot_size bytes, each one batch (struct lc_batch_hdr and
 *     its columns) laid out once when the ring is created.
 *   On hugetlbfs the file is rounded up to the huge page size.
 *
 * Indices are 64-bit and never wrap: slot of index i is i & (nslots - 1).
 * head = index of the next batch to publish (batches published so far);
 * tail = oldest batch the sink has not committed yet (advanced by release).
 * A batch's seq is its index. A worker that dies loses nothing: its
 * replacement starts reading at tail (at-least-once delivery).
 *
 * Every function returns >= 0 (ok / a count) or -errno.
 */

#define LC_RING_MAGIC 0x3152434c    /* "LCR1" in memory order */
#define LC_RING_VERSION 1
#define LC_RING_HDR_SIZE 4096       /* the header page; slots start here */
#define LC_RING_MAX_SLOTS 1048576

/* lc_ring_wait results */
#define LC_RING_TIMEOUT 0
#define LC_RING_DATA 1
#define LC_RING_DRAINED 2           /* producer closed and every batch read */

struct lc_ring;                     /* a process's handle on one mapped ring */

/* Geometry of a ring and where this process mapped it. */
struct lc_ring_info {
    uint32_t nslots;
    uint32_t capacity;              /* records per batch */
    uint32_t avg_payload;           /* sizing hint the batches were laid out with */
    uint16_t queue_id;
    uint16_t hugetlb;               /* 1 when the file lives on hugetlbfs */
    uint64_t slot_size;             /* bytes per slot (a batch, page-rounded) */
    uint64_t map_size;              /* bytes of the file, all mapped */
    uint64_t page_size;             /* page size of the file system */
    void *base;                     /* start of the mapping in this process */
};

/* Counters. Producer-written: batches_published (= head), records_published,
 * batches_dropped and records_dropped (ring full). Consumer-written:
 * batches_released (= tail), records_released. */
struct lc_ring_stats {
    uint64_t head;
    uint64_t tail;
    uint64_t batches_published;
    uint64_t records_published;
    uint64_t batches_dropped;
    uint64_t records_dropped;
    uint64_t batches_released;
    uint64_t records_released;
    uint32_t closed;                /* producer finished */
    uint32_t consumer_sleeping;     /* consumer waits on the futex */
};

/* Bytes of the ring's slots and header page (before huge page rounding),
 * or -EINVAL (nslots not a power of two in [1, LC_RING_MAX_SLOTS], bad
 * batch geometry). */
int64_t lc_ring_size(uint32_t nslots, uint32_t capacity, uint32_t avg_payload);

/* Create the ring file (O_EXCL: -EEXIST if present), size it (rounded up to
 * the huge page size on hugetlbfs), reserve its memory (-ENOSPC / -ENOMEM
 * when the file system or the huge page pool is short), map it and lay out
 * every slot. On failure nothing is left behind. */
int lc_ring_create(const char *path, uint32_t nslots, uint32_t capacity,
                   uint32_t avg_payload, uint16_t queue_id, struct lc_ring **out);

/* Map an existing ring. -ENOENT no file, -EBADMSG not a ring (bad magic or
 * too short), -EAGAIN still being created, -EPROTO made by an incompatible
 * build (version or batch layout), -EINVAL size inconsistent with its
 * header (truncated or corrupt). */
int lc_ring_attach(const char *path, struct lc_ring **out);

/* Take the consumer role: 0, or -EBUSY while another live process (or
 * another handle) holds it. Released by lc_ring_close or process death. */
int lc_ring_claim(struct lc_ring *r);

/* Give the consumer role back while keeping the mapping (lc_ring_close
 * gives it back too). */
int lc_ring_unclaim(struct lc_ring *r);

/* Unmap and close the handle (the file stays; see lc_ring_unlink). */
int lc_ring_close(struct lc_ring *r);
int lc_ring_unlink(const char *path);

int lc_ring_info(struct lc_ring *r, struct lc_ring_info *out);
int lc_ring_stats(struct lc_ring *r, struct lc_ring_stats *out);
int lc_ring_head(struct lc_ring *r, uint64_t *out);
int lc_ring_tail(struct lc_ring *r, uint64_t *out);
/* Batches published and not yet released (head - tail): 0 when the
 * consumer has caught up. A hint for the producer, read without ordering. */
int lc_ring_backlog(struct lc_ring *r);

/* Producer. acquire: the next free slot, reset with seq = head, in *slot;
 * -ENOBUFS when the ring is full (never blocks: decode into a scratch batch
 * and count the loss with lc_ring_drop), -EPIPE after lc_ring_set_closed.
 * Acquiring again before publishing resets and returns the same slot.
 * publish: make the acquired slot visible; wakes a sleeping consumer
 * (no system call when it is not sleeping). -EINVAL if nothing acquired.
 * drop: count one batch of `records` records lost because the ring was full.
 * set_closed: the producer is finished; the consumer drains, then stops. */
int lc_ring_acquire(struct lc_ring *r, struct lc_batch_hdr **slot);
int lc_ring_publish(struct lc_ring *r);
int lc_ring_drop(struct lc_ring *r, uint32_t records);
int lc_ring_set_closed(struct lc_ring *r);

/* Consumer. peek: 1 and the batch of `index` in *slot if index < head,
 * 0 if not published yet, -ERANGE if index < tail (already released).
 * release: advance tail to `upto` (tail <= upto <= head) once the sink has
 * committed those batches; returns the number of batches released.
 * wait: sleep on the futex until head > index (LC_RING_DATA), the producer
 * closed and head <= index (LC_RING_DRAINED) or timeout_ms passed
 * (LC_RING_TIMEOUT; timeout_ms < 0 waits without limit); -EINTR when a
 * signal arrived (the caller handles it, then waits again). */
int lc_ring_peek(struct lc_ring *r, uint64_t index, struct lc_batch_hdr **slot);
int lc_ring_release(struct lc_ring *r, uint64_t upto);
int lc_ring_wait(struct lc_ring *r, uint64_t index, int timeout_ms);
