/* xsk_rx.c - AF_XDP sockets and the RX loop of one queue:
 * RX ring peek -> decode -> batch (a ring slot) -> publish; frames go
 * straight back to the fill ring.
 *
 * Per queue: one UMEM (frames on huge pages when there are free ones, plus
 * the fill and completion rings) and one socket bound to (interface, queue),
 * made through libxdp's xsk API with program loading inhibited: the XDP
 * program is ours (ebpf/xdp_syslog.c, loaded by bcc) and the socket is put
 * into its XSKMAP with xsk_socket__update_xskmap.
 *
 * The loop mirrors dpdk_rx.c (rx_batcher.h does the batching): a batch
 * closes when full, when the queue ran dry, or batch_max_delay_us after its
 * first record; a full ring never blocks (scratch batch, counted ring_full).
 * "cycles" are CLOCK_MONOTONIC nanoseconds (tsc_hz = 1e9). No system call
 * per packet: the kernel is woken only when xsk_ring_prod__needs_wakeup says
 * so, an idle loop sleeps in poll() after idle_spin_us, and XDP_STATISTICS
 * is read every stats_interval_ms.
 */
#define _GNU_SOURCE                 /* ppoll */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_xdp.h>
#include <net/if.h>
#include <xdp/xsk.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_ring.h"
#include "../lc_rx.h"
#include "../lc_xsk.h"
#include "lc_clock.h"
#include "rx_batcher.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define LC_XSK_COMP_SIZE 64             /* completion ring: we never transmit */
#define LC_XSK_DEFAULT_HUGE (2u << 20)  /* when /proc/meminfo does not say */

#define lc_likely(x) __builtin_expect(!!(x), 1)
#define lc_unlikely(x) __builtin_expect(!!(x), 0)

struct lc_xsk_umem {
    struct xsk_umem *umem;
    struct xsk_ring_prod fq;
    struct xsk_ring_cons cq;
    void *area;
    uint64_t size;                      /* bytes mapped */
    uint32_t nframes;
    uint32_t frame_size;
    uint32_t fill_size;
    int huge;
    struct lc_xsk_socket *sock;         /* the one socket on this UMEM */
};

struct lc_xsk_socket {
    struct xsk_socket *xsk;
    struct lc_xsk_umem *umem;
    struct xsk_ring_cons rx;
    int fd;
    uint32_t queue_id;
    int need_wakeup;
    int running;                        /* a loop runs on this socket (atomic) */
};

static int lc_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static uint64_t lc_hugepage_size(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long kb = 0;
    if (f == NULL)
        return LC_XSK_DEFAULT_HUGE;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1)
            break;
    fclose(f);
    return kb ? (uint64_t)kb << 10 : LC_XSK_DEFAULT_HUGE;
}

/* ---- UMEM ----------------------------------------------------------------- */

int lc_xsk_umem_create(const struct lc_xsk_umem_conf *conf, struct lc_xsk_umem **out,
                       struct lc_xsk_umem_info *info, char *err, uint32_t errlen)
{
    if (conf == NULL || out == NULL || !lc_pow2(conf->fill_size) || conf->nframes < conf->fill_size ||
        (conf->frame_size != 2048 && conf->frame_size != 4096)) {
        snprintf(err, errlen, "bad UMEM geometry (fill ring a power of two, frames >= fill ring, "
                 "frame size 2048 or 4096)");
        return -EINVAL;
    }
    struct lc_xsk_umem *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->nframes = conf->nframes;
    u->frame_size = conf->frame_size;
    u->fill_size = conf->fill_size;
    uint64_t bytes = (uint64_t)conf->nframes * conf->frame_size;
    int huge_errno = 0;

    u->area = MAP_FAILED;
    if (conf->hugepages) {
        uint64_t hp = lc_hugepage_size();
        u->size = (bytes + hp - 1) / hp * hp;
        u->area = mmap(NULL, u->size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
        if (u->area == MAP_FAILED)
            huge_errno = errno;
        else
            u->huge = 1;
    }
    if (u->area == MAP_FAILED) {
        u->size = (bytes + 4095) & ~4095ull;
        u->area = mmap(NULL, u->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                       -1, 0);
        if (u->area == MAP_FAILED) {
            int e = errno;
            snprintf(err, errlen, "mapping %llu bytes of UMEM", (unsigned long long)u->size);
            free(u);
            return -e;
        }
    }

    struct xsk_umem_config uc = {
        .fill_size = conf->fill_size,
        .comp_size = LC_XSK_COMP_SIZE,
        .frame_size = conf->frame_size,
        .frame_headroom = 0,
        .flags = 0,
    };
    int rc = xsk_umem__create(&u->umem, u->area, u->size, &u->fq, &u->cq, &uc);
    if (rc) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "registering the UMEM (%llu bytes%s)", (unsigned long long)u->size,
                 u->huge ? ", huge pages" : "");
        munmap(u->area, u->size);
        free(u);
        return rc;
    }
    if (info) {
        info->bytes = u->size;
        info->nframes = u->nframes;
        info->frame_size = u->frame_size;
        info->fill_size = u->fill_size;
        info->hugepages = (uint8_t)u->huge;
        info->huge_errno = huge_errno;
    }
    *out = u;
    return 0;
}

int lc_xsk_umem_destroy(struct lc_xsk_umem *u)
{
    if (u == NULL)
        return 0;
    if (u->sock)
        return -EBUSY;
    int rc = xsk_umem__delete(u->umem);    /* closes the UMEM fd (the socket's, too) */
    if (rc)
        return rc < 0 ? rc : -EBUSY;
    munmap(u->area, u->size);
    free(u);
    return 0;
}

/* ---- socket ----------------------------------------------------------------- */

int lc_xsk_socket_create(struct lc_xsk_umem *u, const struct lc_xsk_socket_conf *conf,
                         struct lc_xsk_socket **out, struct lc_xsk_socket_info *info,
                         char *err, uint32_t errlen)
{
    if (u == NULL || conf == NULL || out == NULL || !lc_pow2(conf->rx_size) || conf->zerocopy > LC_XSK_ZC_OFF) {
        snprintf(err, errlen, "bad socket configuration (RX ring a power of two)");
        return -EINVAL;
    }
    if (u->sock) {
        snprintf(err, errlen, "the UMEM already has a socket (one socket per UMEM)");
        return -EBUSY;
    }
    if (u->fill_size < 2 * conf->rx_size) {
        snprintf(err, errlen, "fill ring (%u) smaller than twice the RX ring (%u)", u->fill_size, conf->rx_size);
        return -EINVAL;
    }
    char ifname[sizeof conf->ifname + 1];
    memcpy(ifname, conf->ifname, sizeof conf->ifname);
    ifname[sizeof conf->ifname] = 0;

    struct lc_xsk_socket *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->umem = u;
    s->queue_id = conf->queue_id;
    s->need_wakeup = conf->need_wakeup != 0;

    struct xsk_socket_config sc = {
        .rx_size = conf->rx_size,
        .tx_size = 0,
        .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
        .xdp_flags = 0,
        .bind_flags = (uint16_t)((conf->need_wakeup ? XDP_USE_NEED_WAKEUP : 0) |
                                 (conf->zerocopy == LC_XSK_ZC_REQUIRE ? XDP_ZEROCOPY : 0) |
                                 (conf->zerocopy == LC_XSK_ZC_OFF ? XDP_COPY : 0)),
    };
    /* Without XDP_ZEROCOPY/XDP_COPY the kernel tries zero-copy and falls
     * back to copy mode by itself; XDP_OPTIONS below says which it took. */
    int rc = xsk_socket__create(&s->xsk, ifname, conf->queue_id, u->umem, &s->rx, NULL, &sc);
    if (rc) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "binding an AF_XDP socket to %s queue %u%s", ifname, conf->queue_id,
                 conf->zerocopy == LC_XSK_ZC_REQUIRE ? " in zero-copy mode" : "");
        free(s);
        return rc;
    }
    s->fd = xsk_socket__fd(s->xsk);

    /* Every frame into the fill ring before RX starts. */
    uint32_t idx = 0, n = u->nframes < u->fill_size ? u->nframes : u->fill_size;
    if (xsk_ring_prod__reserve(&u->fq, n, &idx) != n) {
        snprintf(err, errlen, "fill ring: could not reserve %u entries", n);
        xsk_socket__delete(s->xsk);
        free(s);
        return -ENOSPC;
    }
    for (uint32_t i = 0; i < n; i++)
        *xsk_ring_prod__fill_addr(&u->fq, idx + i) = (uint64_t)i * u->frame_size;
    xsk_ring_prod__submit(&u->fq, n);

    struct xdp_options opts = {0};
    socklen_t optlen = sizeof opts;
    int zc = getsockopt(s->fd, SOL_XDP, XDP_OPTIONS, &opts, &optlen) == 0 &&
             (opts.flags & XDP_OPTIONS_ZEROCOPY);

    if (conf->xsks_map_fd >= 0) {
        rc = xsk_socket__update_xskmap(s->xsk, conf->xsks_map_fd);
        if (rc) {
            rc = rc < 0 ? rc : -errno;
            snprintf(err, errlen, "inserting the socket of %s queue %u into the XSKMAP", ifname, conf->queue_id);
            xsk_socket__delete(s->xsk);
            free(s);
            return rc;
        }
    }
    u->sock = s;
    if (info) {
        info->fd = s->fd;
        info->ifindex = if_nametoindex(ifname);
        info->queue_id = conf->queue_id;
        info->rx_size = conf->rx_size;
        info->zerocopy = (uint8_t)zc;
        info->need_wakeup = (uint8_t)s->need_wakeup;
        info->filled = n;
    }
    *out = s;
    return 0;
}

int lc_xsk_socket_destroy(struct lc_xsk_socket *s)
{
    if (s == NULL)
        return 0;
    if (__atomic_load_n(&s->running, __ATOMIC_ACQUIRE))
        return -EBUSY;
    /* libxdp leaves the fd open when it is the UMEM's (the first socket):
     * lc_xsk_umem_destroy closes it, which also takes it out of the XSKMAP. */
    xsk_socket__delete(s->xsk);
    s->umem->sock = NULL;
    free(s);
    return 0;
}

int lc_xsk_statistics(struct lc_xsk_socket *s, struct lc_xsk_stats *out)
{
    struct xdp_statistics xs;
    socklen_t len = sizeof xs;
    if (s == NULL || out == NULL)
        return -EINVAL;
    memset(&xs, 0, sizeof xs);
    if (getsockopt(s->fd, SOL_XDP, XDP_STATISTICS, &xs, &len))
        return -errno;
    out->rx_dropped = xs.rx_dropped;
    out->rx_invalid_descs = xs.rx_invalid_descs;
    out->tx_invalid_descs = xs.tx_invalid_descs;
    out->rx_ring_full = xs.rx_ring_full;
    out->rx_fill_ring_empty_descs = xs.rx_fill_ring_empty_descs;
    out->tx_ring_empty_descs = xs.tx_ring_empty_descs;
    return 0;
}

/* Packets the kernel dropped on the way into this socket. */
static void lc_xsk_refresh_drops(struct lc_xsk_socket *s, struct lc_rxq_stats *st)
{
    struct lc_xsk_stats ks;
    if (lc_xsk_statistics(s, &ks) == 0)
        st->kernel_drops = ks.rx_dropped + ks.rx_ring_full + ks.rx_invalid_descs;
}

static inline void lc_xsk_kick(struct lc_xsk_socket *s, struct lc_xsk_rx_conf *c)
{
    if (s->need_wakeup && xsk_ring_prod__needs_wakeup(&s->umem->fq)) {
        recvfrom(s->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        c->wakeups++;
    }
}

/* ---- the RX loop ------------------------------------------------------------ */

int lc_xsk_stop(struct lc_xsk_rx_conf *conf)
{
    if (conf == NULL)
        return -EINVAL;
    __atomic_store_n(&conf->stop_requested, 1, __ATOMIC_RELEASE);
    return 0;
}

int lc_xsk_run(struct lc_xsk_rx_conf *c)
{
    if (c == NULL || c->sock == NULL || c->ring == NULL || c->decoder == NULL || c->stats == NULL ||
        c->scratch == NULL || c->burst == 0)
        return -EINVAL;
    struct lc_xsk_socket *s = c->sock;
    struct lc_xsk_umem *u = s->umem;
    if (__atomic_exchange_n(&s->running, 1, __ATOMIC_ACQ_REL))
        return -EBUSY;

    struct lc_rxq_stats *st = c->stats;
    uint32_t burst = c->burst > LC_XSK_MAX_BURST ? LC_XSK_MAX_BURST : c->burst;
    uint64_t delay = (uint64_t)c->batch_max_delay_us * 1000u;
    uint64_t idle_spin = (uint64_t)c->idle_spin_us * 1000u;
    uint64_t idle_stop = (uint64_t)c->idle_stop_ms * 1000000u;
    uint64_t stats_every = (uint64_t)(c->stats_interval_ms ? c->stats_interval_ms : 100) * 1000000u;
    uint64_t chunk_mask = ~(uint64_t)(u->frame_size - 1);
    struct lc_batcher b = {.ring = c->ring, .decoder = c->decoder, .stats = st, .scratch = c->scratch};
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    uint64_t addrs[LC_XSK_MAX_BURST];

    st->tsc_hz = LC_NS_PER_S;
    st->running = 1;
    uint64_t last_rx = lc_mono_ns(), last_stats = last_rx;
    while (lc_likely(!__atomic_load_n(&c->stop_requested, __ATOMIC_RELAXED))) {
        uint64_t t0 = lc_mono_ns();
        uint32_t idx_rx = 0;
        uint32_t n = xsk_ring_cons__peek(&s->rx, burst, &idx_rx);
        if (lc_unlikely(n == 0)) {
            /* The queue ran dry: close the batch if the worker waits for it
             * (else it keeps filling until batch_max_delay). */
            lc_batcher_idle(&b, t0, delay);
            st->polls_idle++;
            lc_xsk_kick(s, c);
            if (c->idle_sleep_ms && t0 - last_rx >= idle_spin) {
                /* Sleep until the next packet, the next stop check, or the
                 * open batch's deadline, whichever comes first. */
                uint64_t wait = (uint64_t)c->idle_sleep_ms * 1000000u;
                if (b.b && b.b->count) {
                    uint64_t due = b.opened + delay;
                    wait = due <= t0 ? 0 : (due - t0 < wait ? due - t0 : wait);
                }
                struct timespec ts = lc_timespec_ns(wait);
                ppoll(&pfd, 1, &ts, NULL);               /* woken by the next packet */
                c->sleeps++;
            }
            uint64_t t1 = lc_mono_ns();
            st->cycles_idle += t1 - t0;
            if (t1 - last_stats >= stats_every) {
                lc_xsk_refresh_drops(s, st);
                last_stats = t1;
            }
            if (c->stop_after && c->idle_stop_ms && t1 - last_rx > idle_stop)
                break;                                   /* the source went quiet */
            continue;
        }
        int64_t rx_ns = lc_realtime_ns();
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < n; i++) {
            const struct xdp_desc *d = xsk_ring_cons__rx_desc(&s->rx, idx_rx + i);
            if (i + 1 < n) {
                const struct xdp_desc *nx = xsk_ring_cons__rx_desc(&s->rx, idx_rx + i + 1);
                __builtin_prefetch(xsk_umem__get_data(u->area, xsk_umem__add_offset_to_addr(nx->addr)));
            }
            const uint8_t *data = xsk_umem__get_data(u->area, xsk_umem__add_offset_to_addr(d->addr));
            addrs[i] = d->addr & chunk_mask;
            bytes += d->len;
            lc_batcher_frame(&b, LC_LINK_ETHERNET, data, d->len, rx_ns, t0);
        }
        /* The frames go straight back: the fill ring holds every frame of the
         * UMEM, so the n we hold always fit; the loop is a guard, not a path. */
        uint32_t idx_fq = 0;
        while (lc_unlikely(xsk_ring_prod__reserve(&u->fq, n, &idx_fq) != n))
            lc_xsk_kick(s, c);
        for (uint32_t i = 0; i < n; i++)
            *xsk_ring_prod__fill_addr(&u->fq, idx_fq + i) = addrs[i];
        xsk_ring_prod__submit(&u->fq, n);
        xsk_ring_cons__release(&s->rx, n);
        lc_xsk_kick(s, c);

        st->packets += n;
        st->bytes += bytes;
        uint64_t t1 = lc_mono_ns();
        lc_batcher_tick(&b, t1, delay);
        st->polls_busy++;
        st->cycles_busy += t1 - t0;
        last_rx = t1;
        if (lc_unlikely(t1 - last_stats >= stats_every)) {
            lc_xsk_refresh_drops(s, st);
            last_stats = t1;
        }
        if (c->stop_after && st->packets >= c->stop_after)
            break;
    }
    lc_batcher_flush(&b);
    lc_ring_set_closed(c->ring);
    lc_xsk_refresh_drops(s, st);
    st->running = 0;
    __atomic_store_n(&s->running, 0, __ATOMIC_RELEASE);
    return 0;
}
