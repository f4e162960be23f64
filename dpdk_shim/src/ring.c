/* ring.c - SPSC ring of batches in a shared file (see lc_ring.h).
 *
 * Ordering: the producer fills a slot, then store-releases head; the consumer
 * load-acquires head before reading a slot. The consumer reads what it needs
 * from released slots, then store-releases tail; the producer load-acquires
 * tail before reusing a slot. Waking: the consumer sets `sleeping`, fences,
 * re-reads head, and only then FUTEX_WAITs on `futex` (with the value read
 * before setting `sleeping`); the producer stores head, fences, and wakes
 * only when `sleeping` is set, so an idle-free fast path makes no syscall
 * and no wakeup is lost.
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

#define LC_CACHE_LINE 64
#define LC_SLOT_ALIGN 4096u               /* slots start on page boundaries */
#define LC_HUGETLBFS_MAGIC 0x958458f6u    /* linux/magic.h HUGETLBFS_MAGIC */
#define LC_RELEASING UINT64_MAX           /* journal: a release is in progress */

/* The header page as it sits in the file. Only ring.c sees it. */
struct lc_ring_hdr {
    /* geometry: written once by the creator, before `magic` */
    _Atomic uint32_t magic;       /* stored last (release): the ring is ready */
    uint16_t version;
    uint16_t queue_id;
    uint32_t nslots;
    uint32_t capacity;
    uint32_t avg_payload;
    uint32_t batch_size;          /* lc_batch_size() of the build that made it */
    uint64_t slot_size;
    uint64_t map_size;            /* bytes of the file */
    uint64_t page_size;

    /* producer line */
    _Alignas(LC_CACHE_LINE) _Atomic uint64_t head;
    _Atomic uint32_t closed;

    /* producer counters */
    _Alignas(LC_CACHE_LINE) _Atomic uint64_t records_published;
    _Atomic uint64_t batches_dropped;
    _Atomic uint64_t records_dropped;

    /* consumer line: tail, its records counter, and the release journal
     * (jr_upto, jr_records) that lets a replacement consumer repair
     * records_released when its predecessor died in the middle of a release */
    _Alignas(LC_CACHE_LINE) _Atomic uint64_t tail;
    _Atomic uint64_t records_released;
    _Atomic uint64_t jr_upto;
    _Atomic uint64_t jr_records;

    /* wake line: futex bumped by the producer, flag set by the consumer */
    _Alignas(LC_CACHE_LINE) _Atomic uint32_t futex;
    _Atomic uint32_t sleeping;
};

_Static_assert(sizeof(struct lc_ring_hdr) <= LC_RING_HDR_SIZE, "ring header fits its page");
_Static_assert(LC_RING_HDR_SIZE % LC_CACHE_LINE == 0, "slots stay 64-byte aligned");
_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8,
               "atomics are plain words in the shared file");

/* The per-process handle. */
struct lc_ring {
    struct lc_ring_hdr *hdr;
    uint8_t *base;
    uint8_t *slots;
    uint64_t map_size;
    uint64_t mask;
    int fd;
    int acquired;                 /* producer: a slot is acquired, not published */
    int hugetlb;
};

static uint64_t lc_round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

static int lc_is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

static int64_t lc_slot_size(uint32_t capacity, uint32_t avg_payload)
{
    int64_t b = lc_batch_size(capacity, avg_payload);
    return b < 0 ? b : (int64_t)lc_round_up((uint64_t)b, LC_SLOT_ALIGN);
}

int64_t lc_ring_size(uint32_t nslots, uint32_t capacity, uint32_t avg_payload)
{
    if (!lc_is_pow2(nslots) || nslots > LC_RING_MAX_SLOTS)
        return -EINVAL;
    int64_t slot = lc_slot_size(capacity, avg_payload);
    if (slot < 0)
        return slot;
    if ((uint64_t)slot > (INT64_MAX - LC_RING_HDR_SIZE) / nslots)
        return -EINVAL;
    return LC_RING_HDR_SIZE + (int64_t)nslots * slot;
}

static struct lc_batch_hdr *lc_slot(const struct lc_ring *r, uint64_t index)
{
    return (struct lc_batch_hdr *)(r->slots + (index & r->mask) * r->hdr->slot_size);
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
    if (!r) {
        munmap(p, size);
        return -ENOMEM;
    }
    r->base = p;
    r->hdr = p;
    r->slots = r->base + LC_RING_HDR_SIZE;
    r->map_size = size;
    r->fd = fd;
    r->hugetlb = hugetlb;
    *out = r;
    return 0;
}

int lc_ring_create(const char *path, uint32_t nslots, uint32_t capacity,
                   uint32_t avg_payload, uint16_t queue_id, struct lc_ring **out)
{
    if (!path || !out)
        return -EINVAL;
    int64_t need = lc_ring_size(nslots, capacity, avg_payload);
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
    h->queue_id = queue_id;
    h->nslots = nslots;
    h->capacity = capacity;
    h->avg_payload = avg_payload;
    h->batch_size = (uint32_t)lc_batch_size(capacity, avg_payload);
    h->slot_size = (uint64_t)lc_slot_size(capacity, avg_payload);
    h->map_size = size;
    h->page_size = page;
    r->mask = nslots - 1;
    for (uint32_t i = 0; i < nslots; i++) {
        if ((rc = lc_batch_init(lc_slot(r, i), h->slot_size, capacity, avg_payload, queue_id)) < 0)
            goto fail;
    }
    atomic_store_explicit(&h->magic, LC_RING_MAGIC, memory_order_release);
    *out = r;
    return 0;

fail:
    if (r) {
        munmap(r->base, r->map_size);
        free(r);
    }
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
        return -EBADMSG;
    if (h->version != LC_RING_VERSION)
        return -EPROTO;
    int64_t batch = lc_batch_size(h->capacity, h->avg_payload);
    int64_t slot = lc_slot_size(h->capacity, h->avg_payload);
    if (batch < 0 || (uint64_t)batch != h->batch_size || slot < 0 || (uint64_t)slot != h->slot_size)
        return -EPROTO;
    int64_t need = lc_ring_size(h->nslots, h->capacity, h->avg_payload);
    if (need < 0 || h->map_size < (uint64_t)need || h->map_size != st_size)
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
    r->mask = r->hdr->nslots - 1;
    for (uint32_t i = 0; i < r->hdr->nslots; i++) {
        const struct lc_batch_hdr *b = lc_slot(r, i);
        if (b->magic != LC_BATCH_MAGIC || b->version != LC_BATCH_VERSION ||
            b->capacity != h.capacity || b->total_size != h.batch_size) {
            rc = -EPROTO;
            goto fail;
        }
    }
    *out = r;
    return 0;

fail:
    if (r) {
        munmap(r->base, r->map_size);
        free(r);
    }
    close(fd);
    return rc;
}

int lc_ring_claim(struct lc_ring *r)
{
    /* flock belongs to this handle's open file description: released when
     * the handle closes, including when the process dies */
    if (flock(r->fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : -errno;
    return 0;
}

int lc_ring_unclaim(struct lc_ring *r)
{
    return flock(r->fd, LOCK_UN) < 0 ? -errno : 0;
}

int lc_ring_close(struct lc_ring *r)
{
    if (!r)
        return -EINVAL;
    int rc = 0;
    if (munmap(r->base, r->map_size) < 0)
        rc = -errno;
    if (close(r->fd) < 0 && rc == 0)
        rc = -errno;
    free(r);
    return rc;
}

int lc_ring_unlink(const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

int lc_ring_info(struct lc_ring *r, struct lc_ring_info *out)
{
    const struct lc_ring_hdr *h = r->hdr;
    out->nslots = h->nslots;
    out->capacity = h->capacity;
    out->avg_payload = h->avg_payload;
    out->queue_id = h->queue_id;
    out->hugetlb = (uint16_t)r->hugetlb;
    out->slot_size = h->slot_size;
    out->map_size = r->map_size;
    out->page_size = h->page_size;
    out->base = r->base;
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
    return (int)(head - tail);
}

/* ---- producer ---------------------------------------------------------- */

int lc_ring_acquire(struct lc_ring *r, struct lc_batch_hdr **slot)
{
    struct lc_ring_hdr *h = r->hdr;
    if (atomic_load_explicit(&h->closed, memory_order_relaxed))
        return -EPIPE;
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    if (head - tail >= h->nslots)
        return -ENOBUFS;
    struct lc_batch_hdr *b = lc_slot(r, head);
    lc_batch_reset(b, head);
    r->acquired = 1;
    *slot = b;
    return 0;
}

int lc_ring_publish(struct lc_ring *r)
{
    struct lc_ring_hdr *h = r->hdr;
    if (!r->acquired)
        return -EINVAL;
    r->acquired = 0;
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->records_published, lc_slot(r, head)->count, memory_order_relaxed);
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

int lc_ring_peek(struct lc_ring *r, uint64_t index, struct lc_batch_hdr **slot)
{
    struct lc_ring_hdr *h = r->hdr;
    if (index < atomic_load_explicit(&h->tail, memory_order_relaxed))
        return -ERANGE;
    if (index >= atomic_load_explicit(&h->head, memory_order_acquire))
        return 0;
    *slot = lc_slot(r, index);
    return 1;
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
    uint64_t records = 0;
    for (uint64_t i = tail; i < upto; i++)
        records += lc_slot(r, i)->count;    /* read before the producer may reuse */

    /* A predecessor that died between storing tail and records_released
     * left the journal naming this tail: finish its update. */
    uint64_t released = atomic_load_explicit(&h->records_released, memory_order_relaxed);
    if (atomic_load_explicit(&h->jr_upto, memory_order_relaxed) == tail)
        released = atomic_load_explicit(&h->jr_records, memory_order_relaxed);
    released += records;

    /* journal, tail, counter: a death between any two stores leaves a
     * state the next release repairs (or one already consistent) */
    atomic_store_explicit(&h->jr_upto, LC_RELEASING, memory_order_release);
    atomic_store_explicit(&h->jr_records, released, memory_order_release);
    atomic_store_explicit(&h->jr_upto, upto, memory_order_release);
    atomic_store_explicit(&h->tail, upto, memory_order_release);
    atomic_store_explicit(&h->records_released, released, memory_order_release);
    return (int)(upto - tail > INT_MAX ? INT_MAX : upto - tail);
}

static int64_t lc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t limit = timeout_ms >= 0 && timeout_ms * 1000000LL < LC_RING_SPIN_NS ? timeout_ms * 1000000LL
                                                                                 : LC_RING_SPIN_NS;
    for (unsigned i = 0;; i++) {
        int ready = lc_ready(h, index);
        if (ready >= 0)
            return ready;
        for (int k = 0; k < 16; k++)
            lc_cpu_relax();
        if ((i & 15) == 15) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) >= limit)
                return -1;
        }
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
