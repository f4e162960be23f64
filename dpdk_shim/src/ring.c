/* ring.c - SPSC ring of variable-size batches in a shared file (see lc_ring.h).
 *
 * Ordering: the producer fills and compacts a batch, then store-releases
 * head; the consumer load-acquires head before reading a batch. The
 * consumer reads what it needs from released batches, then store-releases
 * tail_pos; the producer load-acquires tail_pos before reusing the bytes.
 * Waking: the consumer sets `sleeping`, fences, re-reads head, and only then
 * FUTEX_WAITs on `futex` (with the value read before setting `sleeping`);
 * the producer stores head, fences, and wakes only when `sleeping` is set,
 * so an idle-free fast path makes no syscall and no wakeup is lost.
 *
 * Space: a batch is opened at full size (batch_max bytes) and shrinks to
 * what it holds at publish, so the ring's capacity is in bytes of records,
 * whatever the batches' sizes. Positions grow without wrapping; a batch
 * never straddles the end of the data area (lc_place).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../lc_batch.h"
#include "../lc_ring.h"
#include "lc_clock.h"
#include "ring_map.h"

#define LC_CACHE_LINE 64
#define LC_BATCH_ALIGN 64u                /* batches start 64-byte aligned (Arrow's alignment) */
#define LC_DATA_ALIGN 4096u               /* the data area is whole pages */
#define LC_HUGETLBFS_MAGIC 0x958458f6u    /* linux/magic.h HUGETLBFS_MAGIC */
#define LC_RELEASING UINT64_MAX           /* journal: a release is being written */

/* The header page as it sits in the file. Only ring.c sees it. */
struct lc_ring_hdr {
    /* geometry: written once by the creator, before `magic` */
    _Atomic uint32_t magic;       /* stored last (release): the ring is ready */
    uint16_t version;
    uint16_t queue_id;
    uint16_t batch_version;       /* LC_BATCH_VERSION of the build that made it */
    uint16_t pad0;
    uint32_t capacity;
    uint32_t avg_payload;
    uint32_t pad1;
    uint64_t run_id;
    uint64_t data_size;
    uint64_t batch_max;           /* lc_batch_size() of the build that made it */
    uint64_t map_size;            /* bytes of the file */
    uint64_t page_size;

    /* producer line: head index and the byte position after the last batch */
    _Alignas(LC_CACHE_LINE) _Atomic uint64_t head;
    _Atomic uint64_t head_pos;
    _Atomic uint32_t closed;

    /* producer counters */
    _Alignas(LC_CACHE_LINE) _Atomic uint64_t records_published;
    _Atomic uint64_t batches_dropped;
    _Atomic uint64_t records_dropped;

    /* consumer line: tail index, its position and records counter, and the
     * release journal (jr_*): a release is written there whole before tail,
     * tail_pos and records_released change, so a consumer that died in the
     * middle leaves what its replacement needs to finish it */
    _Alignas(LC_CACHE_LINE) _Atomic uint64_t tail;
    _Atomic uint64_t tail_pos;
    _Atomic uint64_t records_released;
    _Atomic uint64_t jr_upto;
    _Atomic uint64_t jr_pos;
    _Atomic uint64_t jr_records;

    /* wake line: futex bumped by the producer, flag set by the consumer */
    _Alignas(LC_CACHE_LINE) _Atomic uint32_t futex;
    _Atomic uint32_t sleeping;
};

_Static_assert(sizeof(struct lc_ring_hdr) <= LC_RING_HDR_SIZE, "ring header fits its page");
_Static_assert(LC_RING_HDR_SIZE % LC_DATA_ALIGN == 0, "the data area starts on a page");
_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8,
               "atomics are plain words in the shared file");

/* The per-process handle. */
struct lc_ring {
    struct lc_ring_hdr *hdr;
    struct lc_ring_map *map;      /* the mapping; outlives the handle while exported arrays do */
    uint8_t *data;
    int fd;
    int acquired;                 /* producer: a batch is acquired, not published */
    int hugetlb;
    uint64_t acq_pos;             /* producer: where the acquired batch starts */
    uint64_t rd_seq;              /* consumer: index of the next batch to read */
    uint64_t rd_pos;              /* consumer: its position (before lc_place) */
};

static uint64_t lc_round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

/* ---- the mapping, shared with the Arrow export ---------------------------- */

struct lc_ring_map *lc_ring_map_get(struct lc_ring *r) { return lc_ring_map_hold(r->map); }

void lc_ring_map_put(struct lc_ring_map *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        munmap(m->base, m->size);
        free(m);
    }
}

/* ---- geometry ------------------------------------------------------------- */

int64_t lc_ring_batch_max(uint32_t capacity, uint32_t avg_payload)
{
    int64_t b = lc_batch_size(capacity, avg_payload);
    return b < 0 ? b : (int64_t)lc_round_up((uint64_t)b, LC_BATCH_ALIGN);
}

int64_t lc_ring_size(uint64_t data_size, uint32_t capacity, uint32_t avg_payload)
{
    int64_t batch = lc_ring_batch_max(capacity, avg_payload);
    if (batch < 0)
        return batch;
    uint64_t data = lc_round_up(data_size, LC_DATA_ALIGN);
    if (data < LC_RING_MIN_BATCHES * (uint64_t)batch || data > (INT64_MAX >> 1))
        return -EINVAL;
    return LC_RING_HDR_SIZE + (int64_t)data;
}

/* Where a batch opened at `pos` really starts: there if a full batch fits
 * before the end of the data area, else at the start of the next lap. */
static inline uint64_t lc_place(const struct lc_ring_hdr *h, uint64_t pos)
{
    uint64_t off = pos % h->data_size;
    return h->data_size - off < h->batch_max ? pos + (h->data_size - off) : pos;
}

static inline struct lc_batch_hdr *lc_at(const struct lc_ring *r, uint64_t pos)
{
    return (struct lc_batch_hdr *)(r->data + pos % r->hdr->data_size);
}

static inline uint64_t lc_after(const struct lc_batch_hdr *b, uint64_t pos)
{
    return pos + lc_round_up(b->total_size, LC_BATCH_ALIGN);
}

static long lc_futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    /* not FUTEX_PRIVATE_FLAG: producer and consumer are different processes */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

static void lc_wake(struct lc_ring_hdr *h)
{
    atomic_fetch_add_explicit(&h->futex, 1, memory_order_release);
    lc_futex(&h->futex, FUTEX_WAKE, INT_MAX, NULL);
}

static int lc_fs_page(int fd, uint64_t *page, int *hugetlb)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0)
        return -errno;
    *hugetlb = (uint32_t)fs.f_type == LC_HUGETLBFS_MAGIC;
    long sys = sysconf(_SC_PAGESIZE);
    *page = *hugetlb ? (uint64_t)fs.f_bsize : (uint64_t)(sys > 0 ? sys : 4096);
    return 0;
}

static int lc_map(int fd, uint64_t size, int hugetlb, struct lc_ring **out)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    struct lc_ring *r = calloc(1, sizeof(*r));
    struct lc_ring_map *m = calloc(1, sizeof(*m));
    if (!r || !m) {
        free(r);
        free(m);
        munmap(p, size);
        return -ENOMEM;
    }
    m->base = p;
    m->size = size;
    atomic_init(&m->refs, 1);     /* the handle's */
    r->map = m;
    r->hdr = p;
    r->data = (uint8_t *)p + LC_RING_HDR_SIZE;
    r->fd = fd;
    r->hugetlb = hugetlb;
    *out = r;
    return 0;
}

static void lc_unmap(struct lc_ring *r)
{
    lc_ring_map_put(r->map);
    free(r);
}

int lc_ring_create(const char *path, uint64_t data_size, uint32_t capacity, uint32_t avg_payload,
                   uint16_t queue_id, uint64_t run_id, struct lc_ring **out)
{
    if (!path || !out)
        return -EINVAL;
    int64_t need = lc_ring_size(data_size, capacity, avg_payload);
    if (need < 0)
        return (int)need;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc, hugetlb;
    uint64_t page, size;
    struct lc_ring *r = NULL;
    if ((rc = lc_fs_page(fd, &page, &hugetlb)) < 0)
        goto fail;
    size = lc_round_up((uint64_t)need, page);
    if (ftruncate(fd, (off_t)size) < 0) {
        rc = -errno;
        goto fail;
    }
    /* reserve the memory now: a short tmpfs or huge page pool is an error
     * here, not a SIGBUS in the RX loop later. Zeroing many huge pages takes
     * a while, and a signal (DPDK's net_tap sets up SIGIO) interrupts it:
     * allocating again continues where it stopped. */
    while ((rc = posix_fallocate(fd, 0, (off_t)size)) == EINTR)
        ;
    if (rc != 0) {
        rc = -rc;
        goto fail;
    }
    if ((rc = lc_map(fd, size, hugetlb, &r)) < 0)
        goto fail;

    struct lc_ring_hdr *h = r->hdr;
    memset(h, 0, sizeof(*h));
    h->version = LC_RING_VERSION;
    h->batch_version = LC_BATCH_VERSION;
    h->queue_id = queue_id;
    h->capacity = capacity;
    h->avg_payload = avg_payload;
    h->run_id = run_id;
    h->data_size = size - LC_RING_HDR_SIZE;     /* the huge page rounding goes to the data */
    h->batch_max = (uint64_t)lc_ring_batch_max(capacity, avg_payload);
    h->map_size = size;
    h->page_size = page;
    atomic_store_explicit(&h->magic, LC_RING_MAGIC, memory_order_release);
    *out = r;
    return 0;

fail:
    if (r)
        lc_unmap(r);
    unlink(path);
    close(fd);
    return rc;
}

/* Check a header read from a file of `st_size` bytes against this build. */
static int lc_check_hdr(const struct lc_ring_hdr *h, uint64_t st_size)
{
    uint32_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0)
        return -EAGAIN;
    if (magic != LC_RING_MAGIC)
        return (magic & 0xffffff) == (LC_RING_MAGIC & 0xffffff) ? -EPROTO : -EBADMSG;  /* "LCR" of another version */
    if (h->version != LC_RING_VERSION || h->batch_version != LC_BATCH_VERSION)
        return -EPROTO;
    int64_t batch = lc_ring_batch_max(h->capacity, h->avg_payload);
    if (batch < 0 || (uint64_t)batch != h->batch_max)
        return -EPROTO;
    int64_t need = lc_ring_size(h->data_size, h->capacity, h->avg_payload);
    if (need < 0 || h->data_size % LC_DATA_ALIGN || h->map_size != LC_RING_HDR_SIZE + h->data_size ||
        h->map_size != st_size)
        return -EINVAL;
    return 0;
}

int lc_ring_attach(const char *path, struct lc_ring **out)
{
    if (!path || !out)
        return -EINVAL;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc, hugetlb;
    uint64_t page;
    struct stat st;
    struct lc_ring *r = NULL;
    struct lc_ring_hdr h;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(h)) {
        rc = st.st_size == 0 && S_ISREG(st.st_mode) ? -EAGAIN : -EBADMSG;
        goto fail;
    }
    /* read the header first (pread: a hugetlbfs mapping must be huge-page
     * sized), check it, then map the size it names */
    ssize_t n = pread(fd, &h, sizeof(h), 0);
    if (n != (ssize_t)sizeof(h)) {
        rc = n < 0 ? -errno : -EBADMSG;
        goto fail;
    }
    if ((rc = lc_check_hdr(&h, (uint64_t)st.st_size)) < 0)
        goto fail;
    if ((rc = lc_fs_page(fd, &page, &hugetlb)) < 0)
        goto fail;
    if ((rc = lc_map(fd, h.map_size, hugetlb, &r)) < 0)
        goto fail;
    lc_ring_rewind(r);
    *out = r;
    return 0;

fail:
    close(fd);
    return rc;
}

/* Finish a release the previous consumer died in: the journal, once
 * written whole, names the tail it was going to store. */
static void lc_repair(struct lc_ring_hdr *h)
{
    uint64_t upto = atomic_load_explicit(&h->jr_upto, memory_order_acquire);
    if (upto == LC_RELEASING || upto < atomic_load_explicit(&h->tail, memory_order_relaxed))
        return;                   /* being written (tail untouched), or an old one */
    atomic_store_explicit(&h->tail_pos, atomic_load_explicit(&h->jr_pos, memory_order_relaxed),
                          memory_order_release);
    atomic_store_explicit(&h->tail, upto, memory_order_release);
    atomic_store_explicit(&h->records_released, atomic_load_explicit(&h->jr_records, memory_order_relaxed),
                          memory_order_release);
}

int lc_ring_claim(struct lc_ring *r)
{
    /* flock belongs to this handle's open file description: released when
     * the handle closes, including when the process dies */
    if (flock(r->fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : -errno;
    lc_repair(r->hdr);
    return lc_ring_rewind(r);
}

int lc_ring_unclaim(struct lc_ring *r)
{
    return flock(r->fd, LOCK_UN) < 0 ? -errno : 0;
}

int lc_ring_close(struct lc_ring *r)
{
    if (!r)
        return -EINVAL;
    int rc = close(r->fd) < 0 ? -errno : 0;
    lc_unmap(r);
    return rc;
}

int lc_ring_unlink(const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

int lc_ring_info(struct lc_ring *r, struct lc_ring_info *out)
{
    const struct lc_ring_hdr *h = r->hdr;
    memset(out, 0, sizeof(*out));
    out->capacity = h->capacity;
    out->avg_payload = h->avg_payload;
    out->queue_id = h->queue_id;
    out->hugetlb = (uint16_t)r->hugetlb;
    out->run_id = h->run_id;
    out->data_size = h->data_size;
    out->batch_max = h->batch_max;
    out->map_size = h->map_size;
    out->page_size = h->page_size;
    out->base = r->map->base;
    return 0;
}

int lc_ring_stats(struct lc_ring *r, struct lc_ring_stats *out)
{
    struct lc_ring_hdr *h = r->hdr;
    out->head = atomic_load_explicit(&h->head, memory_order_acquire);
    out->tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    out->batches_published = out->head;
    out->records_published = atomic_load_explicit(&h->records_published, memory_order_relaxed);
    out->batches_dropped = atomic_load_explicit(&h->batches_dropped, memory_order_relaxed);
    out->records_dropped = atomic_load_explicit(&h->records_dropped, memory_order_relaxed);
    out->batches_released = out->tail;
    out->records_released = atomic_load_explicit(&h->records_released, memory_order_relaxed);
    uint64_t head_pos = atomic_load_explicit(&h->head_pos, memory_order_relaxed);
    uint64_t tail_pos = atomic_load_explicit(&h->tail_pos, memory_order_relaxed);
    out->bytes_used = head_pos > tail_pos ? head_pos - tail_pos : 0;
    out->data_size = h->data_size;
    out->closed = atomic_load_explicit(&h->closed, memory_order_acquire);
    out->consumer_sleeping = atomic_load_explicit(&h->sleeping, memory_order_relaxed);
    return 0;
}

int lc_ring_head(struct lc_ring *r, uint64_t *out)
{
    *out = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    return 0;
}

int lc_ring_tail(struct lc_ring *r, uint64_t *out)
{
    *out = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
    return 0;
}

int lc_ring_backlog(struct lc_ring *r)
{
    uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
    return (int)(head - tail > INT_MAX ? INT_MAX : head - tail);
}

/* ---- producer ---------------------------------------------------------- */

int lc_ring_acquire(struct lc_ring *r, struct lc_batch_hdr **slot)
{
    struct lc_ring_hdr *h = r->hdr;
    if (atomic_load_explicit(&h->closed, memory_order_relaxed))
        return -EPIPE;
    uint64_t start = lc_place(h, atomic_load_explicit(&h->head_pos, memory_order_relaxed));
    uint64_t tail_pos = atomic_load_explicit(&h->tail_pos, memory_order_acquire);
    if (start + h->batch_max - tail_pos > h->data_size)
        return -ENOBUFS;
    struct lc_batch_hdr *b = lc_at(r, start);
    lc_batch_init(b, h->batch_max, h->capacity, h->avg_payload, h->queue_id);
    b->seq = atomic_load_explicit(&h->head, memory_order_relaxed);
    r->acquired = 1;
    r->acq_pos = start;
    *slot = b;
    return 0;
}

int lc_ring_publish(struct lc_ring *r)
{
    struct lc_ring_hdr *h = r->hdr;
    if (!r->acquired)
        return -EINVAL;
    r->acquired = 0;
    struct lc_batch_hdr *b = lc_at(r, r->acq_pos);
    lc_batch_compact(b);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->records_published, b->count, memory_order_relaxed);
    atomic_store_explicit(&h->head_pos, lc_after(b, r->acq_pos), memory_order_relaxed);
    atomic_store_explicit(&h->head, head + 1, memory_order_release);
    /* pairs with the consumer's fence between setting `sleeping` and
     * re-reading head: one of the two sides sees the other's store */
    atomic_thread_fence(memory_order_seq_cst);
    if (__builtin_expect(atomic_load_explicit(&h->sleeping, memory_order_relaxed), 0))
        lc_wake(h);
    return 0;
}

int lc_ring_drop(struct lc_ring *r, uint32_t records)
{
    struct lc_ring_hdr *h = r->hdr;
    atomic_fetch_add_explicit(&h->batches_dropped, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->records_dropped, records, memory_order_relaxed);
    return 0;
}

int lc_ring_set_closed(struct lc_ring *r)
{
    struct lc_ring_hdr *h = r->hdr;
    r->acquired = 0;
    atomic_store_explicit(&h->closed, 1, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    lc_wake(h);
    return 0;
}

/* ---- consumer ---------------------------------------------------------- */

int lc_ring_rewind(struct lc_ring *r)
{
    r->rd_seq = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
    r->rd_pos = atomic_load_explicit(&r->hdr->tail_pos, memory_order_acquire);
    return 0;
}

int lc_ring_cursor(struct lc_ring *r, uint64_t *out)
{
    *out = r->rd_seq;
    return 0;
}

int lc_ring_read(struct lc_ring *r, uint32_t max, struct lc_batch_hdr **out, uint64_t *records)
{
    const struct lc_ring_hdr *h = r->hdr;
    uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    uint32_t n = 0;
    while (n < max && r->rd_seq < head) {
        uint64_t pos = lc_place(h, r->rd_pos);
        struct lc_batch_hdr *b = lc_at(r, pos);
        if (b->magic != LC_BATCH_MAGIC || b->seq != r->rd_seq || b->total_size > h->batch_max)
            return -EBADMSG;      /* not what the producer wrote: a corrupt ring */
        out[n++] = b;
        *records += b->count;
        r->rd_pos = lc_after(b, pos);
        r->rd_seq++;
    }
    return (int)n;
}

int lc_ring_release(struct lc_ring *r, uint64_t upto)
{
    struct lc_ring_hdr *h = r->hdr;
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    if (upto < tail || upto > head)
        return -ERANGE;
    if (upto == tail)
        return 0;
    /* walk the batches being released: their records, and where the next starts */
    uint64_t pos = atomic_load_explicit(&h->tail_pos, memory_order_relaxed), records = 0;
    for (uint64_t i = tail; i < upto; i++) {
        pos = lc_place(h, pos);
        const struct lc_batch_hdr *b = lc_at(r, pos);
        records += b->count;      /* read before the producer may reuse the bytes */
        pos = lc_after(b, pos);
    }
    pos = lc_place(h, pos);
    uint64_t released = atomic_load_explicit(&h->records_released, memory_order_relaxed) + records;

    /* journal first, then tail_pos, tail, counter: a death anywhere in
     * between leaves a state lc_repair finishes (or one already consistent) */
    atomic_store_explicit(&h->jr_upto, LC_RELEASING, memory_order_release);
    atomic_store_explicit(&h->jr_pos, pos, memory_order_release);
    atomic_store_explicit(&h->jr_records, released, memory_order_release);
    atomic_store_explicit(&h->jr_upto, upto, memory_order_release);
    atomic_store_explicit(&h->tail_pos, pos, memory_order_release);
    atomic_store_explicit(&h->tail, upto, memory_order_release);
    atomic_store_explicit(&h->records_released, released, memory_order_release);
    if (r->rd_seq < upto) {
        r->rd_seq = upto;
        r->rd_pos = pos;
    }
    return (int)(upto - tail > INT_MAX ? INT_MAX : upto - tail);
}

static int64_t lc_now_ms(void) { return (int64_t)(lc_mono_ns() / 1000000u); }

/* LC_RING_DATA, LC_RING_DRAINED, or -1 when neither holds yet. */
static int lc_ready(struct lc_ring_hdr *h, uint64_t index)
{
    if (atomic_load_explicit(&h->head, memory_order_acquire) > index)
        return LC_RING_DATA;
    if (atomic_load_explicit(&h->closed, memory_order_acquire))
        /* closed is stored after the last publish: re-read head */
        return atomic_load_explicit(&h->head, memory_order_acquire) > index ? LC_RING_DATA
                                                                            : LC_RING_DRAINED;
    return -1;
}

/* Before sleeping on the futex, the consumer watches the head this long: a
 * batch that follows within it is taken without a wake-up (tens of µs of
 * scheduler latency on a busy core). Bounded, and in C: an idle worker
 * still sleeps. */
#define LC_RING_SPIN_NS 20000

static inline void lc_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int lc_spin_ready(struct lc_ring_hdr *h, uint64_t index, int timeout_ms)
{
    uint64_t t0 = lc_mono_ns();
    int64_t limit = timeout_ms >= 0 && timeout_ms * 1000000LL < LC_RING_SPIN_NS ? timeout_ms * 1000000LL
                                                                                 : LC_RING_SPIN_NS;
    for (unsigned i = 0;; i++) {
        int ready = lc_ready(h, index);
        if (ready >= 0)
            return ready;
        for (int k = 0; k < 16; k++)
            lc_cpu_relax();
        if ((i & 15) == 15 && (int64_t)(lc_mono_ns() - t0) >= limit)
            return -1;
    }
}

int lc_ring_wait(struct lc_ring *r, uint64_t index, int timeout_ms)
{
    struct lc_ring_hdr *h = r->hdr;
    int64_t deadline = timeout_ms >= 0 ? lc_now_ms() + timeout_ms : 0;
    int spun = lc_spin_ready(h, index, timeout_ms);
    if (spun >= 0)
        return spun;
    for (;;) {
        int ready = lc_ready(h, index);
        if (ready >= 0)
            return ready;
        struct timespec ts, *tsp = NULL;
        if (timeout_ms >= 0) {
            int64_t left = deadline - lc_now_ms();
            if (left <= 0)
                return LC_RING_TIMEOUT;
            ts.tv_sec = left / 1000;
            ts.tv_nsec = (left % 1000) * 1000000;
            tsp = &ts;
        }
        uint32_t seen = atomic_load_explicit(&h->futex, memory_order_acquire);
        atomic_store_explicit(&h->sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        ready = lc_ready(h, index);
        if (ready >= 0) {
            atomic_store_explicit(&h->sleeping, 0, memory_order_relaxed);
            return ready;
        }
        long rc = lc_futex(&h->futex, FUTEX_WAIT, seen, tsp);
        int err = errno;
        atomic_store_explicit(&h->sleeping, 0, memory_order_relaxed);
        if (rc < 0 && err == EINTR)
            return -EINTR;
        /* woken, EAGAIN (futex moved) or ETIMEDOUT: the loop re-checks */
    }
}
