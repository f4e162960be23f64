/* sock_rx.c - the RX loop of the kernel-socket backend, one per UDP socket:
 * recvmmsg -> lc_decode_datagram -> batch (a ring slot) -> publish.
 *
 * The fallback where neither DPDK nor AF_XDP can run (laptops, containers,
 * CI), so it sleeps when idle: ppoll until the socket is readable, the stop
 * flag is due for a look (LC_SOCK_STOP_CHECK_NS) or the open batch is due.
 * Batches close as in every RX loop (rx_batcher.h): when full, when the
 * socket ran dry and the worker has caught up, or batch_max_delay_us after
 * their first record. Receive buffers are allocated once per run; nothing is
 * allocated per datagram.
 *
 * Per datagram the kernel hands over, as control messages: the destination
 * address (IP_PKTINFO / IPV6_PKTINFO; the port is the bound one), the
 * receive time (SCM_TIMESTAMPNS, when asked for) and the socket's
 * cumulative drop counter once it is non-zero (SO_RXQ_OVFL).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_ring.h"
#include "../lc_rx.h"
#include "../lc_sock.h"
#include "lc_clock.h"
#include "rx_batcher.h"

#define LC_SOCK_CTRL 256                        /* control bytes per datagram: pktinfo, timestamp, drops */
#define LC_SOCK_STOP_CHECK_NS 10000000ull       /* an idle loop looks at its stop flag this often */
#define LC_SOCK_MEMINFO_NS 100000000ull         /* an idle loop reads the drop counter at most this often */

/* ---- the socket ---------------------------------------------------------- */

static int lc_fail(char *err, uint32_t errlen, int e, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -e;
}

static int lc_setopt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

int lc_sock_open(const struct lc_sock_conf *conf, struct lc_sock_info *info, char *err, uint32_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    char addr[LC_SOCK_ADDR_LEN];
    int rc, fd;

    memset(&ss, 0, sizeof(ss));
    memset(info, 0, sizeof(*info));
    memcpy(addr, conf->addr, sizeof(addr));
    addr[sizeof(addr) - 1] = 0;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(conf->port);
        sslen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(conf->port);
        sslen = sizeof(*s6);
    } else {
        return lc_fail(err, errlen, EINVAL, "%s is not an IPv4 or IPv6 address", addr);
    }
    int v6 = ss.ss_family == AF_INET6;

    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0)
        return lc_fail(err, errlen, errno, "socket(%s, SOCK_DGRAM)", v6 ? "AF_INET6" : "AF_INET");

    const char *step;
    if (v6 && (rc = lc_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, conf->v6only ? 1 : 0)) < 0) {
        step = "IPV6_V6ONLY";
        goto fail;
    }
    if (conf->reuseport && (rc = lc_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0) {
        step = "SO_REUSEPORT";
        goto fail;
    }
    if (conf->ifname[0]) {
        char ifname[LC_SOCK_IFNAME_LEN];
        memcpy(ifname, conf->ifname, sizeof(ifname));
        ifname[sizeof(ifname) - 1] = 0;
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0) {
            rc = -errno;
            lc_fail(err, errlen, -rc, "SO_BINDTODEVICE %s", ifname);
            close(fd);
            return rc;
        }
    }
    if (conf->rcvbuf) {
        /* SO_RCVBUFFORCE goes past net.core.rmem_max; it needs CAP_NET_ADMIN. */
        int value = conf->rcvbuf > 0x7fffffffu / 2 ? 0x7fffffff / 2 : (int)conf->rcvbuf;
        if (lc_setopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, value) == 0) {
            info->rcvbuf_forced = 1;
        } else if ((rc = lc_setopt(fd, SOL_SOCKET, SO_RCVBUF, value)) < 0) {
            step = "SO_RCVBUF";
            goto fail;
        }
    }
    if ((rc = lc_setopt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1)) < 0) {
        step = "SO_RXQ_OVFL";
        goto fail;
    }
    if ((rc = v6 ? lc_setopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) : lc_setopt(fd, IPPROTO_IP, IP_PKTINFO, 1)) < 0) {
        step = v6 ? "IPV6_RECVPKTINFO" : "IP_PKTINFO";
        goto fail;
    }
    if (conf->timestamps && (rc = lc_setopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1)) < 0) {
        step = "SO_TIMESTAMPNS";
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        rc = -errno;
        lc_fail(err, errlen, -rc, v6 ? "bind [%s]:%u" : "bind %s:%u", addr, conf->port);
        close(fd);
        return rc;
    }

    sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        rc = -errno;
        step = "getsockname";
        goto fail;
    }
    info->family = ss.ss_family;
    info->port = ntohs(v6 ? s6->sin6_port : s4->sin_port);
    inet_ntop(ss.ss_family, v6 ? (void *)&s6->sin6_addr : (void *)&s4->sin_addr, info->addr, sizeof(info->addr));
    int granted = 0;
    socklen_t glen = sizeof(granted);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &glen) == 0)
        info->rcvbuf = (uint32_t)granted;
    return fd;

fail:
    lc_fail(err, errlen, -rc, "setsockopt %s", step);
    close(fd);
    return rc;
}

int lc_sock_meminfo(int fd, struct lc_sock_mem *out)
{
    uint32_t mem[SK_MEMINFO_VARS + 8];
    socklen_t len = sizeof(mem);
    memset(mem, 0, sizeof(mem));
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0)
        return -errno;
    out->rmem_alloc = mem[SK_MEMINFO_RMEM_ALLOC];
    out->rcvbuf = mem[SK_MEMINFO_RCVBUF];
    out->drops = mem[SK_MEMINFO_DROPS];
    return 0;
}

/* ---- the loop ------------------------------------------------------------ */

struct lc_sock_rx {
    struct lc_sock_loop *c;
    struct lc_batcher s;
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *names;
    uint8_t *ctrl;
    uint8_t *data;
    size_t data_size;
    struct sockaddr_storage local;   /* bound address and port */
    struct sockaddr_storage dst;     /* the bound port, the address IP_PKTINFO gave */
    uint32_t drops_seen;             /* last value of the kernel's 32-bit drop counter */
};

/* The kernel's counter is 32 bits and comes from two places (the
 * SO_RXQ_OVFL of each datagram, SO_MEMINFO), each a snapshot of the same
 * counter: add what it moved since the last newer-looking value. */
static inline void lc_sock_drops(struct lc_sock_rx *r, uint32_t now)
{
    uint32_t delta = now - r->drops_seen;
    if (delta && delta < 0x80000000u) {
        r->c->stats->kernel_drops += delta;
        r->drops_seen = now;
    }
}

static void lc_sock_drops_read(struct lc_sock_rx *r)
{
    struct lc_sock_mem m;
    if (lc_sock_meminfo(r->c->fd, &m) == 0)
        lc_sock_drops(r, m.drops);
}

static void lc_sock_rx_free(struct lc_sock_rx *r)
{
    if (r->data && r->data != MAP_FAILED)
        munmap(r->data, r->data_size);
    free(r->msgs);
    free(r->iov);
    free(r->names);
    free(r->ctrl);
}

static int lc_sock_rx_init(struct lc_sock_rx *r, struct lc_sock_loop *c)
{
    unsigned n = c->burst;
    memset(r, 0, sizeof(*r));
    r->c = c;
    r->msgs = calloc(n, sizeof(*r->msgs));
    r->iov = calloc(n, sizeof(*r->iov));
    r->names = calloc(n, sizeof(*r->names));
    r->ctrl = calloc(n, LC_SOCK_CTRL);
    /* Only the pages datagrams are written to get memory. */
    r->data_size = (size_t)n * c->msg_size;
    r->data = mmap(NULL, r->data_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!r->msgs || !r->iov || !r->names || !r->ctrl || r->data == MAP_FAILED) {
        lc_sock_rx_free(r);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        r->iov[i].iov_base = r->data + (size_t)i * c->msg_size;
        r->iov[i].iov_len = c->msg_size;
        struct msghdr *mh = &r->msgs[i].msg_hdr;
        mh->msg_name = &r->names[i];
        mh->msg_namelen = sizeof(r->names[i]);
        mh->msg_iov = &r->iov[i];
        mh->msg_iovlen = 1;
        mh->msg_control = r->ctrl + (size_t)i * LC_SOCK_CTRL;
        mh->msg_controllen = LC_SOCK_CTRL;
    }
    socklen_t len = sizeof(r->local);
    if (getsockname(c->fd, (struct sockaddr *)&r->local, &len) < 0) {
        int rc = -errno;
        lc_sock_rx_free(r);
        return rc;
    }
    r->dst = r->local;
    r->s = (struct lc_batcher){.ring = c->ring, .decoder = c->decoder, .stats = c->stats, .scratch = c->scratch};
    return 0;
}

static inline int lc_sock_recv(int fd, struct mmsghdr *msgs, unsigned n)
{
    int got;
    do
        got = recvmmsg(fd, msgs, n, MSG_DONTWAIT | MSG_TRUNC, NULL);
    while (got < 0 && errno == EINTR);
    return got < 0 ? -errno : got;
}

/* Errors after which the socket is unusable; the others (ENOMEM, a pending
 * ICMP error, ...) pass. */
static inline int lc_sock_fatal(int rc)
{
    return rc == -EBADF || rc == -ENOTSOCK || rc == -EINVAL || rc == -EFAULT;
}

/* Decode the n datagrams recvmmsg returned and make their headers ready
 * for the next call. */
static void lc_sock_take(struct lc_sock_rx *r, unsigned n, uint64_t now)
{
    struct lc_rxq_stats *st = r->c->stats;
    uint32_t msg_size = r->c->msg_size;
    int64_t call_ns = lc_realtime_ns();
    uint64_t bytes = 0;
    int v6 = r->local.ss_family == AF_INET6;
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *mh = &r->msgs[i].msg_hdr;
        uint32_t wire = r->msgs[i].msg_len;      /* the datagram's size (MSG_TRUNC) */
        uint32_t len = wire < msg_size ? wire : msg_size;
        uint16_t net_flags = (mh->msg_flags & MSG_TRUNC) ? LC_F_TRUNCATED : 0;
        int64_t rx_ns = call_ns;
        const void *dst = &r->local;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET) {
                if (cm->cmsg_type == SO_RXQ_OVFL) {
                    uint32_t drops;
                    memcpy(&drops, CMSG_DATA(cm), sizeof(drops));
                    lc_sock_drops(r, drops);
                } else if (cm->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                    if (ts.tv_sec)
                        rx_ns = (int64_t)ts.tv_sec * (int64_t)LC_NS_PER_S + ts.tv_nsec;
                }
            } else if (v6 && cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                ((struct sockaddr_in6 *)&r->dst)->sin6_addr = pi.ipi6_addr;
                dst = &r->dst;
            } else if (!v6 && cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                ((struct sockaddr_in *)&r->dst)->sin_addr = pi.ipi_addr;
                dst = &r->dst;
            }
        }
        lc_batcher_datagram(&r->s, mh->msg_name, dst, r->iov[i].iov_base, len, net_flags, rx_ns, now);
        bytes += wire;
        mh->msg_namelen = sizeof(struct sockaddr_storage);
        mh->msg_controllen = LC_SOCK_CTRL;
    }
    st->packets += n;
    st->bytes += bytes;
}

/* Stop the socket taking datagrams: a socket filter that drops everything
 * (the kernel counts those as drops of this socket). */
static void lc_sock_cut(int fd)
{
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {.len = 1, .filter = drop_all};
    setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

int lc_sock_run(struct lc_sock_loop *c)
{
    if (c->fd < 0 || c->ring == NULL || c->decoder == NULL || c->stats == NULL || c->scratch == NULL ||
        c->burst == 0 || c->burst > LC_SOCK_MAX_BURST || c->msg_size == 0 || c->msg_size > LC_SOCK_MAX_MSG)
        return -EINVAL;
    struct lc_sock_rx r;
    int rc = lc_sock_rx_init(&r, c);
    if (rc < 0)
        return rc;
    struct lc_rxq_stats *st = c->stats;
    unsigned burst = c->burst;
    uint64_t delay = (uint64_t)c->batch_max_delay_us * 1000;
    uint64_t idle_stop = (uint64_t)c->idle_stop_ms * 1000000;
    int dry = 1, counted_out = 0;
    int one = 0;
    /* A filter left by an earlier run on this socket (lc_sock_cut). */
    setsockopt(c->fd, SOL_SOCKET, SO_DETACH_FILTER, &one, sizeof(one));

    st->tsc_hz = LC_NS_PER_S;
    st->running = 1;
    /* Every nanosecond of the loop is counted, busy or idle. */
    uint64_t prev = lc_mono_ns(), last_rx = prev, last_meminfo = 0;
    while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
        if (dry) {
            /* Nothing queued (as far as the last call saw): close the batch
             * if the worker waits for it, then sleep until a datagram, the
             * next stop check, or the open batch's deadline. */
            uint64_t now = lc_mono_ns();
            lc_batcher_idle(&r.s, now, delay);
            if (now - last_meminfo >= LC_SOCK_MEMINFO_NS) {
                lc_sock_drops_read(&r);
                last_meminfo = now;
            }
            if (c->stop_after && c->idle_stop_ms && now - last_rx > idle_stop)
                break;                                   /* the source went quiet */
            uint64_t wait = LC_SOCK_STOP_CHECK_NS;
            if (r.s.b && r.s.b->count) {
                uint64_t due = r.s.opened + delay;
                wait = due <= now ? 0 : (due - now < wait ? due - now : wait);
            }
            struct timespec ts = lc_timespec_ns(wait);
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            int ready = ppoll(&pfd, 1, &ts, NULL);
            uint64_t t1 = lc_mono_ns();
            st->cycles_idle += t1 - prev;
            prev = t1;
            if (ready < 0 && errno != EINTR) {
                rc = -errno;
                break;
            }
            if (ready > 0 && (pfd.revents & POLLNVAL)) {
                rc = -EBADF;
                break;
            }
            if (ready <= 0) {
                st->polls_idle++;
                continue;
            }
        }
        int n = lc_sock_recv(c->fd, r.msgs, burst);
        if (n <= 0) {
            uint64_t t1 = lc_mono_ns();
            st->polls_idle++;
            st->cycles_idle += t1 - prev;
            prev = t1;
            if (lc_sock_fatal(n)) {
                rc = n;
                break;
            }
            dry = 1;
            continue;
        }
        lc_sock_take(&r, (unsigned)n, prev);
        uint64_t t1 = lc_mono_ns();
        lc_batcher_tick(&r.s, t1, delay);
        st->polls_busy++;
        st->cycles_busy += t1 - prev;
        prev = last_rx = t1;
        dry = (unsigned)n < burst;                       /* the socket ran dry */
        if (c->stop_after && st->packets >= c->stop_after) {
            counted_out = 1;
            break;
        }
    }
    if (rc == 0 && !counted_out) {
        /* Stopping: no datagram enters the socket any more; take every one
         * that did, so sent = packets + kernel_drops holds at the end. */
        lc_sock_cut(c->fd);
        int n;
        while ((n = lc_sock_recv(c->fd, r.msgs, burst)) > 0)
            lc_sock_take(&r, (unsigned)n, lc_mono_ns());
    }
    lc_batcher_flush(&r.s);
    lc_sock_drops_read(&r);
    st->cycles_busy += lc_mono_ns() - prev;
    lc_ring_set_closed(c->ring);
    lc_sock_rx_free(&r);
    st->running = 0;
    return rc;
}

void lc_sock_stop(struct lc_sock_loop *loop) { __atomic_store_n(&loop->stop, 1, __ATOMIC_RELAXED); }
