#pragma once
/* lc_ring.h - the single-producer/single-consumer ring of batches, one per
 * RX queue, in a file on hugetlbfs (or /dev/shm) shared by the capture
 * process (producer, the C RX loop) and one worker process (consumer).
 *
 * Read by ffi.cdef: declarations only (see lc_batch.h). C sources include
 * <stdint.h> and lc_batch.h before this header.
 *
 * The ring is sized in bytes, not in slots: batches of any size up to the
 * capacity follow each other in the data area, each only as long as what it
 * holds (lc_batch_compact at publish), so a ring of small batches holds as
 * many records as a ring of full ones.
 *
 * File layout (private to ring.c; versioned by LC_RING_MAGIC/LC_RING_VERSION):
 *   header page (LC_RING_HDR_SIZE bytes): geometry and the creator's run id,
 *     then on their own 64-byte lines: producer head and counters, consumer
 *     tail and counters, the futex word and the consumer's "sleeping" flag;
 *   the data area (data_size bytes): batches back to back, 64-byte aligned.
 *   On hugetlbfs the file is rounded up to the huge page size.
 *
 * Positions are 64-bit byte offsets that never wrap (area offset = pos %
 * data_size); indices (batch sequence numbers) are 64-bit and never wrap.
 * The producer opens a batch at the head only where the full-size batch
 * (batch_max bytes) fits before the end of the area, else at the start of
 * the next lap: both sides apply the same rule, so no marker is needed.
 * head = index of the next batch to publish (batches published so far);
 * tail = oldest batch the sinks have not committed yet (advanced by release).
 * A batch's seq is its index. A worker that dies loses nothing: its
 * replacement starts reading at tail (at-least-once delivery), and a ring
 * left by a crashed appliance is drained at the next start.
 *
 * Every function returns >= 0 (ok / a count) or -errno.
 */

#define LC_RING_MAGIC 0x3252434c    /* "LCR2" in memory order */
#define LC_RING_VERSION 2
#define LC_RING_HDR_SIZE 4096       /* the header page; the data area starts here */
#define LC_RING_MIN_BATCHES 2       /* the data area holds at least this many full batches */

/* lc_ring_wait results */
#define LC_RING_TIMEOUT 0
#define LC_RING_DATA 1
#define LC_RING_DRAINED 2           /* producer closed and every batch read */

struct lc_ring;                     /* a process's handle on one mapped ring */

/* Geometry of a ring and where this process mapped it. */
struct lc_ring_info {
    uint32_t capacity;              /* records per batch at most */
    uint32_t avg_payload;           /* sizing hint the batches are laid out with */
    uint16_t queue_id;
    uint16_t hugetlb;               /* 1 when the file lives on hugetlbfs */
    uint32_t pad;
    uint64_t run_id;                /* the creating run's id (sinks' dedup key) */
    uint64_t data_size;             /* bytes of the data area */
    uint64_t batch_max;             /* bytes of a full batch before compaction */
    uint64_t map_size;              /* bytes of the file, all mapped */
    uint64_t page_size;             /* page size of the file system */
    void *base;                     /* start of the mapping in this process */
};

/* Counters. Producer-written: head, records_published, batches_dropped and
 * records_dropped (ring full), bytes in use (head_pos - tail_pos).
 * Consumer-written: tail, records_released. */
struct lc_ring_stats {
    uint64_t head;
    uint64_t tail;
    uint64_t batches_published;
    uint64_t records_published;
    uint64_t batches_dropped;
    uint64_t records_dropped;
    uint64_t batches_released;
    uint64_t records_released;
    uint64_t bytes_used;            /* published and not yet released, wrap gaps included */
    uint64_t data_size;
    uint32_t closed;                /* producer finished */
    uint32_t consumer_sleeping;     /* consumer waits on the futex */
};

/* Bytes of a ring file with a data area of `data_size` bytes (before huge
 * page rounding), or -EINVAL (bad batch geometry, or an area smaller than
 * LC_RING_MIN_BATCHES full batches). */
int64_t lc_ring_size(uint64_t data_size, uint32_t capacity, uint32_t avg_payload);

/* Bytes of one full (uncompacted) batch: the least a ring needs per batch. */
int64_t lc_ring_batch_max(uint32_t capacity, uint32_t avg_payload);

/* Create the ring file (O_EXCL: -EEXIST if present), size it (rounded up to
 * the huge page size on hugetlbfs, the rounding given to the data area),
 * reserve its memory (-ENOSPC / -ENOMEM when the file system or the huge
 * page pool is short) and map it. On failure nothing is left behind. */
int lc_ring_create(const char *path, uint64_t data_size, uint32_t capacity, uint32_t avg_payload,
                   uint16_t queue_id, uint64_t run_id, struct lc_ring **out);

/* Map an existing ring. -ENOENT no file, -EBADMSG not a ring (bad magic or
 * too short), -EAGAIN still being created, -EPROTO made by an incompatible
 * build (ring version or batch layout), -EINVAL size inconsistent with its
 * header (truncated or corrupt). */
int lc_ring_attach(const char *path, struct lc_ring **out);

/* Take the consumer role: 0, or -EBUSY while another live process (or
 * another handle) holds it. Released by lc_ring_close or process death.
 * Finishes a release its predecessor died in, and rewinds the read cursor
 * to the tail. */
int lc_ring_claim(struct lc_ring *r);

/* Give the consumer role back while keeping the mapping (lc_ring_close
 * gives it back too). */
int lc_ring_unclaim(struct lc_ring *r);

/* Close the handle: the consumer role goes at once; the memory is unmapped
 * when the last Arrow array exported from it (lc_ring_export) is released.
 * The file stays (see lc_ring_unlink). */
int lc_ring_close(struct lc_ring *r);
int lc_ring_unlink(const char *path);

int lc_ring_info(struct lc_ring *r, struct lc_ring_info *out);
int lc_ring_stats(struct lc_ring *r, struct lc_ring_stats *out);
int lc_ring_head(struct lc_ring *r, uint64_t *out);
int lc_ring_tail(struct lc_ring *r, uint64_t *out);
/* Batches published and not yet released (head - tail): 0 when the
 * consumer has caught up. A hint for the producer, read without ordering. */
int lc_ring_backlog(struct lc_ring *r);

/* Producer. acquire: a full-size batch at the head, laid out empty with
 * seq = head, in *slot; -ENOBUFS when the free bytes do not hold a full
 * batch (never blocks: decode into a scratch batch and count the loss with
 * lc_ring_drop), -EPIPE after lc_ring_set_closed. Acquiring again before
 * publishing lays out the same place again.
 * publish: compact the acquired batch to what it holds and make it visible;
 * wakes a sleeping consumer (no system call when it is not sleeping).
 * -EINVAL if nothing acquired.
 * drop: count one batch of `records` records lost because the ring was full.
 * set_closed: the producer is finished; the consumer drains, then stops. */
int lc_ring_acquire(struct lc_ring *r, struct lc_batch_hdr **slot);
int lc_ring_publish(struct lc_ring *r);
int lc_ring_drop(struct lc_ring *r, uint32_t records);
int lc_ring_set_closed(struct lc_ring *r);

/* Consumer. The handle keeps a read cursor (index and position), set to the
 * tail by lc_ring_claim and lc_ring_rewind.
 * read: up to `max` published batches from the cursor into out[] (their
 * headers, in order), advancing the cursor; returns how many (0: none yet)
 * and adds their records to *records.
 * cursor: the index of the next batch read returns.
 * release: advance tail to index `upto` (tail <= upto <= cursor) once every
 * sink has committed those batches; returns the number of batches released.
 * wait: sleep on the futex until head > index (LC_RING_DATA), the producer
 * closed and head <= index (LC_RING_DRAINED) or timeout_ms passed
 * (LC_RING_TIMEOUT; timeout_ms < 0 waits without limit); -EINTR when a
 * signal arrived (the caller handles it, then waits again). */
int lc_ring_read(struct lc_ring *r, uint32_t max, struct lc_batch_hdr **out, uint64_t *records);
int lc_ring_cursor(struct lc_ring *r, uint64_t *out);
int lc_ring_rewind(struct lc_ring *r);
int lc_ring_release(struct lc_ring *r, uint64_t upto);
int lc_ring_wait(struct lc_ring *r, uint64_t index, int timeout_ms);

/* Zero-copy Arrow export of `n` batches read from this ring (lc_ring_read)
 * as an Arrow C stream (struct ArrowArrayStream, the Arrow C stream
 * interface; passed as void * because cffi reads only our headers): one
 * record batch per batch, buffers pointing into the ring. The ring's memory
 * stays mapped until every exported array is released, even after
 * lc_ring_close. The caller releases the stream (pyarrow does). */
int lc_ring_export(struct lc_ring *r, struct lc_batch_hdr **hdrs, uint32_t n, void *stream);
