/*
 * lcgen — LogCaster's syslog traffic generator for the end-to-end benchmark.
 *
 * Reads a pcap of syslog over UDP into memory (libpcap), rewrites every frame
 * once at load (destination MAC, source MAC, destination IP and UDP port,
 * VLAN tag stripped unless --keep-vlan, IPv4 header and UDP checksums fixed),
 * then replays the frames round-robin out of one veth, either as fast as it
 * can or at a set rate: a token bucket, the packets due within a quantum
 * (200 µs) sent with one syscall, nanosleep between sends and a busy-wait for
 * the last 20 µs, so sends leave on time without burning the core that the
 * receiver's worker may share.
 *
 * TX paths (--mode):
 *   mmsg   AF_PACKET SOCK_RAW + sendmmsg(), the iovecs point straight at the
 *          prepared frames (the kernel copies once)
 *   ring   AF_PACKET PACKET_TX_RING (TPACKET_V2): frames copied into the
 *          mapped ring, one send() per batch
 * Both with PACKET_QDISC_BYPASS (straight to the driver's xmit).
 *
 * Safety: every run is bounded by --count AND --duration (both capped), it
 * refuses to run in the initial network namespace (PID 1's, when readable) or
 * any namespace with a default route, on anything but a veth, and to destinations
 * outside 198.18.0.0/15 (IPv4) and 2001:db8::/32 (IPv6).
 *
 * Output: one JSON object on stdout (sent, seconds, pps, ...).
 *
 *   ip netns exec NS lcgen --iface IF --pcap FILE --dst-mac MAC \
 *       [--rate PPS] [--count N] [--duration S] [--mode mmsg|ring]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LCG_MAX_COUNT        2000000000ULL  /* hard cap on packets per run */
#define LCG_MAX_DURATION_S   600.0          /* hard cap on seconds per run */
#define LCG_DEFAULT_COUNT    100000000ULL
#define LCG_DEFAULT_DURATION 10.0
#define LCG_MAX_FRAME        1518           /* Ethernet MTU 1500 + header + one tag */
#define LCG_DEFAULT_BATCH    64
#define LCG_MAX_BATCH        1024
#define LCG_MIN_BURST        32             /* token bucket depth, packets, at least */
#define LCG_BURST_NS         5000000        /* default depth: 5 ms of the rate (rides out a
                                               scheduler time slice lost to another task) */
#define LCG_DEFAULT_QUANTUM_US 200          /* at a set rate: send what is due every 200 µs */
#define LCG_DEFAULT_SPIN_US  20             /* busy-wait the last 20 µs of a wait */
#define LCG_RING_FRAME       2048           /* TX ring slot (header + frame) */
#define LCG_RING_BLOCK       (1 << 16)
#define LCG_RING_FRAMES      4096
#define LCG_SNDBUF           (16 << 20)
#define ETH_P_8021Q_         0x8100
#define ETH_P_8021AD_        0x88a8

struct lcg_frame {
    uint32_t off;
    uint32_t len;
};

struct lcg_frames {
    uint8_t *data;
    size_t used, cap;
    struct lcg_frame *f;
    size_t n, ncap;
    uint64_t read, skipped_family, skipped_not_udp, skipped_too_big, skipped_truncated, vlan_stripped;
};

struct lcg_opts {
    const char *iface, *pcap, *mode;
    uint8_t dst_mac[6], src_mac[6];
    int have_dst_mac, have_src_mac;
    struct in_addr dst4;
    struct in6_addr dst6;
    uint16_t dst_port;
    int family;                 /* 4, 6 or 0 (both) */
    int keep_vlan;
    double rate;                /* packets/s, 0 = top speed */
    uint64_t count;
    double duration;
    int batch, burst, cpu;
    int quantum_us, spin_us;
    size_t max_frames;
};

static volatile sig_atomic_t lcg_stop;

static void lcg_on_signal(int sig) { (void)sig; lcg_stop = 1; }

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "lcgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- checksums --------------------------------------------------------- */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (; len > 1; p += 2, len -= 2)
        sum += (uint32_t)p[0] << 8 | p[1];
    if (len)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* ---- frame preparation (once, at load) ---------------------------------- */

static void frames_push(struct lcg_frames *fr, const uint8_t *pkt, size_t len)
{
    if (fr->n == fr->ncap) {
        fr->ncap = fr->ncap ? fr->ncap * 2 : 4096;
        fr->f = realloc(fr->f, fr->ncap * sizeof(*fr->f));
        if (!fr->f)
            die("%s", "out of memory");
    }
    if (fr->used + len > fr->cap) {
        fr->cap = fr->cap ? fr->cap * 2 : (1 << 22);
        fr->data = realloc(fr->data, fr->cap);
        if (!fr->data)
            die("%s", "out of memory");
    }
    memcpy(fr->data + fr->used, pkt, len);
    fr->f[fr->n].off = (uint32_t)fr->used;
    fr->f[fr->n].len = (uint32_t)len;
    fr->used += len;
    fr->n++;
}

/* Rewrite one captured frame into buf; returns its length or 0 to skip it. */
static size_t prepare(const struct lcg_opts *o, struct lcg_frames *fr, const uint8_t *in, size_t len,
                      uint8_t *buf)
{
    size_t l2 = 12;
    uint16_t type;
    int tagged = 0;

    if (len < 14)
        return fr->skipped_not_udp++, 0;
    type = get16(in + 12);
    while ((type == ETH_P_8021Q_ || type == ETH_P_8021AD_) && len >= l2 + 6) {
        l2 += 4;
        tagged = 1;
        type = get16(in + l2);
    }
    l2 += 2;                                    /* start of the IP header */
    size_t out_l2 = (tagged && !o->keep_vlan) ? 14 : l2;
    const uint8_t *ip = in + l2;
    size_t iplen = len - l2;
    if (out_l2 + iplen > LCG_MAX_FRAME)
        return fr->skipped_too_big++, 0;

    memcpy(buf, in, out_l2);
    if (tagged && !o->keep_vlan) {
        put16(buf + 12, type);
        fr->vlan_stripped++;
    }
    memcpy(buf, o->dst_mac, 6);
    memcpy(buf + 6, o->src_mac, 6);
    uint8_t *oip = buf + out_l2;
    memcpy(oip, ip, iplen);

    if (type == ETHERTYPE_IP) {
        if (o->family == 6)
            return fr->skipped_family++, 0;
        if (iplen < 20 || (ip[0] >> 4) != 4)
            return fr->skipped_not_udp++, 0;
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        size_t tot = get16(ip + 2);
        if (ihl < 20 || tot < ihl + 8 || tot > iplen)
            return fr->skipped_truncated++, 0;
        if (ip[9] != IPPROTO_UDP || (get16(ip + 6) & 0x3fff))   /* not UDP, or a fragment */
            return fr->skipped_not_udp++, 0;
        uint8_t *udp = oip + ihl;
        memcpy(oip + 16, &o->dst4, 4);
        put16(udp + 2, o->dst_port);
        put16(oip + 10, 0);
        put16(oip + 10, csum_fold(csum_add(0, oip, ihl)));
        if (get16(udp + 6)) {                   /* checksum present: recompute it */
            size_t ulen = get16(udp + 4);
            if (ulen < 8 || ulen > tot - ihl)
                return fr->skipped_truncated++, 0;
            uint8_t pseudo[12];
            memcpy(pseudo, oip + 12, 8);
            pseudo[8] = 0;
            pseudo[9] = IPPROTO_UDP;
            put16(pseudo + 10, (uint16_t)ulen);
            put16(udp + 6, 0);
            uint16_t c = csum_fold(csum_add(csum_add(0, pseudo, 12), udp, ulen));
            put16(udp + 6, c ? c : 0xffff);
        }
        return out_l2 + tot;
    }
    if (type == ETHERTYPE_IPV6) {
        if (o->family == 4)
            return fr->skipped_family++, 0;
        if (iplen < 48 || (ip[0] >> 4) != 6)
            return fr->skipped_not_udp++, 0;
        if (ip[6] != IPPROTO_UDP)               /* extension headers: not replayed */
            return fr->skipped_not_udp++, 0;
        size_t plen = get16(ip + 4);
        if (plen < 8 || 40 + plen > iplen)
            return fr->skipped_truncated++, 0;
        uint8_t *udp = oip + 40;
        memcpy(oip + 24, &o->dst6, 16);
        put16(udp + 2, o->dst_port);
        put16(udp + 6, 0);
        uint8_t pseudo[40];
        memcpy(pseudo, oip + 8, 32);
        pseudo[32] = pseudo[33] = 0;
        put16(pseudo + 34, (uint16_t)plen);
        pseudo[36] = pseudo[37] = pseudo[38] = 0;
        pseudo[39] = IPPROTO_UDP;
        uint16_t c = csum_fold(csum_add(csum_add(0, pseudo, 40), udp, plen));
        put16(udp + 6, c ? c : 0xffff);
        return out_l2 + 40 + plen;
    }
    return fr->skipped_not_udp++, 0;
}

static void load_pcap(const struct lcg_opts *o, struct lcg_frames *fr)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(o->pcap, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        die("cannot read the pcap: %s", err);
    if (pcap_datalink(p) != DLT_EN10MB)
        die("%s: not an Ethernet capture", o->pcap);
    struct pcap_pkthdr *h;
    const u_char *pkt;
    uint8_t buf[LCG_MAX_FRAME + 64];
    int rc;
    while ((rc = pcap_next_ex(p, &h, &pkt)) == 1) {
        fr->read++;
        if (h->caplen < h->len) {
            fr->skipped_truncated++;
            continue;
        }
        size_t n = prepare(o, fr, pkt, h->caplen, buf);
        if (n)
            frames_push(fr, buf, n);
        if (o->max_frames && fr->n >= o->max_frames)
            break;
    }
    if (rc == -1)
        die("reading the pcap: %s", pcap_geterr(p));
    pcap_close(p);
    if (fr->n == 0)
        die("%s: no frame to replay (UDP over IPv4/IPv6 of the chosen family)", o->pcap);
}

/* ---- safety ------------------------------------------------------------- */

/* Refuse the initial namespace (when PID 1's can be read) and any namespace
 * with a default route: the namespaces lcgen is meant for have no way out. */
static void check_namespace(void)
{
    struct stat self, init;
    if (stat("/proc/self/ns/net", &self) == 0 && stat("/proc/1/ns/net", &init) == 0 &&
        self.st_ino == init.st_ino && self.st_dev == init.st_dev)
        die("%s", "this is the initial network namespace: lcgen sends only inside a namespace of its own "
                  "(run it with `ip netns exec NS`)");

    char line[512], name[IFNAMSIZ + 1], dst6[33];
    unsigned long dst;
    unsigned plen;
    FILE *f = fopen("/proc/net/route", "r");
    if (!f)
        die("%s", "cannot read /proc/net/route: refusing to send");
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%16s %lx", name, &dst) == 2 && dst == 0)
            die("this network namespace has a default route (via %s): lcgen sends only inside an isolated "
                "namespace (run it with `ip netns exec NS`)", name);
    fclose(f);
    f = fopen("/proc/net/ipv6_route", "r");
    if (f) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "%32s %x", dst6, &plen) == 2 && plen == 0 &&
                strcmp(dst6, "00000000000000000000000000000000") == 0 && !strstr(line, " lo\n"))
                die("this network namespace has an IPv6 default route (%s): refusing to send", "::/0");
        fclose(f);
    }
}

static void check_iface(int fd, const char *iface)
{
    struct ifreq ifr;
    struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
    ifr.ifr_data = (void *)&info;
    if (ioctl(fd, SIOCETHTOOL, &ifr) != 0 || strcmp(info.driver, "veth") != 0)
        die("%s: not a veth (lcgen sends only on veth pairs)", iface);
}

static void check_destination(const struct lcg_opts *o)
{
    uint32_t a = ntohl(o->dst4.s_addr);
    if ((a & 0xfffe0000u) != 0xc6120000u)       /* 198.18.0.0/15 */
        die("%s", "--dst-ip must be in 198.18.0.0/15 (the benchmarking range)");
    if (!(o->dst6.s6_addr[0] == 0x20 && o->dst6.s6_addr[1] == 0x01 && o->dst6.s6_addr[2] == 0x0d &&
          o->dst6.s6_addr[3] == 0xb8))
        die("%s", "--dst-ip6 must be in 2001:db8::/32 (documentation range)");
}

/* ---- TX paths ----------------------------------------------------------- */

struct lcg_tx {
    int fd;
    int ring;                   /* PACKET_TX_RING in use */
    uint8_t *map;
    size_t map_len;
    unsigned nslots, head;
    struct mmsghdr *msgs;       /* mmsg: one per prepared frame */
    struct iovec *iov;
    uint64_t enobufs, other_errors, ring_waits;
    int last_errno;
};

static int open_tx(const struct lcg_opts *o, struct lcg_tx *tx, const struct lcg_frames *fr)
{
    int one = 1, sndbuf = LCG_SNDBUF;
    memset(tx, 0, sizeof(*tx));
    tx->fd = socket(AF_PACKET, SOCK_RAW, 0);    /* protocol 0: this socket receives nothing */
    if (tx->fd < 0)
        die("socket(AF_PACKET): %s (needs CAP_NET_RAW)", strerror(errno));
    check_iface(tx->fd, o->iface);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(o->iface)};
    if (!sll.sll_ifindex)
        die("no interface %s here", o->iface);
    if (setsockopt(tx->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0)
        fprintf(stderr, "lcgen: PACKET_QDISC_BYPASS: %s (going through the qdisc)\n", strerror(errno));
    if (setsockopt(tx->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) != 0)
        setsockopt(tx->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

    if (strcmp(o->mode, "ring") == 0) {
        int ver = TPACKET_V2;
        if (setsockopt(tx->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver)) != 0)
            die("PACKET_VERSION TPACKET_V2: %s", strerror(errno));
        struct tpacket_req req = {.tp_block_size = LCG_RING_BLOCK, .tp_frame_size = LCG_RING_FRAME,
                                  .tp_block_nr = LCG_RING_FRAMES * LCG_RING_FRAME / LCG_RING_BLOCK,
                                  .tp_frame_nr = LCG_RING_FRAMES};
        if (setsockopt(tx->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req)) != 0)
            die("PACKET_TX_RING: %s", strerror(errno));
        tx->map_len = (size_t)req.tp_block_size * req.tp_block_nr;
        tx->map = mmap(NULL, tx->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, tx->fd, 0);
        if (tx->map == MAP_FAILED)
            die("mmap of the TX ring: %s", strerror(errno));
        tx->nslots = req.tp_frame_nr;
        tx->ring = 1;
    } else if (strcmp(o->mode, "mmsg") == 0) {
        tx->msgs = calloc(fr->n, sizeof(*tx->msgs));
        tx->iov = calloc(fr->n, sizeof(*tx->iov));
        if (!tx->msgs || !tx->iov)
            die("%s", "out of memory");
        for (size_t i = 0; i < fr->n; i++) {
            tx->iov[i].iov_base = fr->data + fr->f[i].off;
            tx->iov[i].iov_len = fr->f[i].len;
            tx->msgs[i].msg_hdr.msg_iov = &tx->iov[i];
            tx->msgs[i].msg_hdr.msg_iovlen = 1;
        }
    } else {
        die("--mode %s: one of mmsg, ring", o->mode);
    }
    if (bind(tx->fd, (struct sockaddr *)&sll, sizeof(sll)) != 0)
        die("bind to the interface: %s", strerror(errno));
    return 0;
}

/* Send up to n frames starting at frame index *next (wrapping); returns how
 * many the kernel took, -1 when it dropped the first one (counted). */
static long tx_mmsg(struct lcg_tx *tx, const struct lcg_frames *fr, size_t *next, unsigned n)
{
    unsigned room = (unsigned)(fr->n - *next);
    if (n > room)
        n = room;
    int r = sendmmsg(tx->fd, &tx->msgs[*next], n, 0);
    if (r < 0) {
        tx->last_errno = errno;
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        if (errno == ENOBUFS)
            tx->enobufs++;              /* dropped at the veth (peer's backlog/ring full) */
        else
            tx->other_errors++;
        *next = (*next + 1) % fr->n;    /* that frame is lost; go on with the next */
        return -1;
    }
    *next = (*next + (size_t)r) % fr->n;
    return r;
}

static long tx_ring(struct lcg_tx *tx, const struct lcg_frames *fr, size_t *next, unsigned n)
{
    const size_t data_off = TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
    unsigned queued = 0;
    while (queued < n) {
        struct tpacket2_hdr *h = (void *)(tx->map + (size_t)tx->head * LCG_RING_FRAME);
        if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
            if (queued)
                break;                  /* send what is queued, then come back */
            tx->ring_waits++;
            if (send(tx->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS) {
                tx->last_errno = errno;
                tx->other_errors++;
            }
            struct pollfd pfd = {.fd = tx->fd, .events = POLLOUT};
            poll(&pfd, 1, 1);
            if (lcg_stop)
                return 0;
            continue;
        }
        const struct lcg_frame *f = &fr->f[*next];
        memcpy((uint8_t *)h + data_off, fr->data + f->off, f->len);
        h->tp_len = f->len;
        __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
        tx->head = (tx->head + 1) % tx->nslots;
        *next = (*next + 1) % fr->n;
        queued++;
    }
    if (queued && send(tx->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN) {
        tx->last_errno = errno;
        if (errno == ENOBUFS)
            tx->enobufs++;
        else
            tx->other_errors++;
    }
    return queued;
}

/* Wait for the frames still in the TX ring to leave (at most 1 s). */
static void ring_drain(struct lcg_tx *tx)
{
    uint64_t deadline = now_ns() + 1000000000ULL;
    for (;;) {
        unsigned pending = 0;
        for (unsigned i = 0; i < tx->nslots; i++) {
            struct tpacket2_hdr *h = (void *)(tx->map + (size_t)i * LCG_RING_FRAME);
            if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE)
                pending++;
        }
        if (!pending || now_ns() > deadline)
            return;
        send(tx->fd, NULL, 0, MSG_DONTWAIT);
        usleep(1000);
    }
}

/* ---- the send loop ------------------------------------------------------ */

struct lcg_result {
    uint64_t sent, dropped, bytes;
    double tokens_lost;
    double seconds;
};

/* nanosleep until `spin_ns` before t, then busy-wait: on time without
 * burning the CPU (which the receiver's worker may share) between sends. */
static void sleep_until(uint64_t t, uint64_t spin_ns)
{
    uint64_t now = now_ns();
    if (t > now + spin_ns) {
        uint64_t d = t - now - spin_ns;
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000ULL), .tv_nsec = (long)(d % 1000000000ULL)};
        nanosleep(&ts, NULL);
    }
    while (now_ns() < t && !lcg_stop)
        ;                               /* busy-wait the last stretch */
}

static void run(const struct lcg_opts *o, struct lcg_tx *tx, const struct lcg_frames *fr,
                struct lcg_result *res)
{
    const uint64_t t0 = now_ns();
    const uint64_t end = t0 + (uint64_t)(o->duration * 1e9);
    const double ns_per_pkt = o->rate > 0 ? 1e9 / o->rate : 0;
    /* At a set rate the packets due within one quantum leave together (one
     * syscall); the token bucket keeps the long-run rate exact. */
    double min_send = o->rate * o->quantum_us / 1e6;
    if (min_send < 1.0)
        min_send = 1.0;
    if (min_send > o->batch)
        min_send = o->batch;
    const uint64_t spin_ns = (uint64_t)o->spin_us * 1000u;
    double tokens = 1.0;                /* token bucket: the first packet goes at once */
    uint64_t last = t0, now = t0, iter = 0;
    size_t next = 0;

    memset(res, 0, sizeof(*res));
    while (res->sent + res->dropped < o->count && !lcg_stop) {
        if ((++iter & 15) == 0 || o->rate > 0) {
            now = now_ns();
            if (now >= end)
                break;
        }
        unsigned want = (unsigned)o->batch;
        uint64_t left = o->count - res->sent - res->dropped;
        if (want > left)
            want = (unsigned)left;
        if (o->rate > 0) {
            tokens += (double)(now - last) / ns_per_pkt;
            if (tokens > o->burst) {
                res->tokens_lost += tokens - o->burst;   /* behind by more than the bucket holds */
                tokens = o->burst;
            }
            last = now;
            if (tokens < min_send) {
                uint64_t due = now + (uint64_t)((min_send - tokens) * ns_per_pkt);
                sleep_until(due < end ? due : end, spin_ns);
                continue;
            }
            if (want > (unsigned)tokens)
                want = (unsigned)tokens;
        }
        size_t first = next;
        long r = tx->ring ? tx_ring(tx, fr, &next, want) : tx_mmsg(tx, fr, &next, want);
        if (r < 0) {
            res->dropped++;
            tokens -= 1.0;
            continue;
        }
        for (long i = 0; i < r; i++)
            res->bytes += fr->f[(first + (size_t)i) % fr->n].len;
        res->sent += (uint64_t)r;
        tokens -= (double)r;
    }
    if (tx->ring)
        ring_drain(tx);
    res->seconds = (double)(now_ns() - t0) / 1e9;
}

/* ---- command line ------------------------------------------------------- */

static int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (v[i] > 255)
            return -1;
        mac[i] = (uint8_t)v[i];
    }
    return 0;
}

static void iface_mac(const char *iface, uint8_t mac[6])
{
    char path[128], text[32];
    snprintf(path, sizeof(path), "/sys/class/net/%s/address", iface);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(text, sizeof(text), f) || parse_mac(text, mac) != 0)
        die("cannot read the MAC address of %s (use --src-mac)", iface);
    fclose(f);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lcgen --iface IF --pcap FILE --dst-mac MAC [options]\n"
            "  --rate PPS        packets per second (0: top speed, the default)\n"
            "  --count N         stop after N packets (default %llu, at most %llu)\n"
            "  --duration S      stop after S seconds (default %.0f, at most %.0f)\n"
            "  --mode M          mmsg (sendmmsg, default) or ring (PACKET_TX_RING, TPACKET_V2)\n"
            "  --batch N         frames per syscall (default %d, at most %d)\n"
            "  --burst N         token bucket depth in packets (default: 5 ms of the rate, at least %d)\n"
            "  --quantum-us N    at a set rate, send what is due every N µs (default %d; 0: per packet)\n"
            "  --spin-us N       busy-wait the last N µs of a wait, nanosleep before (default %d)\n"
            "  --dst-ip A        destination IPv4 (default 198.18.0.1, within 198.18.0.0/15)\n"
            "  --dst-ip6 A       destination IPv6 (default 2001:db8:18::1)\n"
            "  --dst-port P      destination UDP port (default 514)\n"
            "  --src-mac MAC     source MAC (default: the interface's)\n"
            "  --family 4|6|46   which frames of the pcap to replay (default 4)\n"
            "  --keep-vlan       keep 802.1Q tags (default: stripped)\n"
            "  --max-frames N    load at most N frames of the pcap\n"
            "  --cpu N           pin to CPU N\n",
            (unsigned long long)LCG_DEFAULT_COUNT, (unsigned long long)LCG_MAX_COUNT, LCG_DEFAULT_DURATION,
            LCG_MAX_DURATION_S, LCG_DEFAULT_BATCH, LCG_MAX_BATCH, LCG_MIN_BURST, LCG_DEFAULT_QUANTUM_US,
            LCG_DEFAULT_SPIN_US);
    exit(2);
}

static void parse_args(int argc, char **argv, struct lcg_opts *o)
{
    enum { O_IFACE = 256, O_PCAP, O_DMAC, O_SMAC, O_DIP, O_DIP6, O_DPORT, O_FAMILY, O_KEEPVLAN, O_RATE,
           O_COUNT, O_DURATION, O_MODE, O_BATCH, O_BURST, O_CPU, O_MAXFRAMES, O_QUANTUM, O_SPIN };
    static const struct option longopts[] = {
        {"iface", 1, 0, O_IFACE}, {"pcap", 1, 0, O_PCAP}, {"dst-mac", 1, 0, O_DMAC},
        {"src-mac", 1, 0, O_SMAC}, {"dst-ip", 1, 0, O_DIP}, {"dst-ip6", 1, 0, O_DIP6},
        {"dst-port", 1, 0, O_DPORT}, {"family", 1, 0, O_FAMILY}, {"keep-vlan", 0, 0, O_KEEPVLAN},
        {"rate", 1, 0, O_RATE}, {"count", 1, 0, O_COUNT}, {"duration", 1, 0, O_DURATION},
        {"mode", 1, 0, O_MODE}, {"batch", 1, 0, O_BATCH}, {"burst", 1, 0, O_BURST}, {"cpu", 1, 0, O_CPU},
        {"max-frames", 1, 0, O_MAXFRAMES}, {"quantum-us", 1, 0, O_QUANTUM}, {"spin-us", 1, 0, O_SPIN},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof(*o));
    o->mode = "mmsg";
    o->dst_port = 514;
    o->family = 4;
    o->count = LCG_DEFAULT_COUNT;
    o->duration = LCG_DEFAULT_DURATION;
    o->batch = LCG_DEFAULT_BATCH;
    o->burst = 0;
    o->cpu = -1;
    o->quantum_us = LCG_DEFAULT_QUANTUM_US;
    o->spin_us = LCG_DEFAULT_SPIN_US;
    inet_pton(AF_INET, "198.18.0.1", &o->dst4);
    inet_pton(AF_INET6, "2001:db8:18::1", &o->dst6);
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_IFACE: o->iface = optarg; break;
        case O_PCAP: o->pcap = optarg; break;
        case O_DMAC:
            if (parse_mac(optarg, o->dst_mac)) die("--dst-mac %s: not a MAC address", optarg);
            o->have_dst_mac = 1;
            break;
        case O_SMAC:
            if (parse_mac(optarg, o->src_mac)) die("--src-mac %s: not a MAC address", optarg);
            o->have_src_mac = 1;
            break;
        case O_DIP: if (inet_pton(AF_INET, optarg, &o->dst4) != 1) die("--dst-ip %s: not IPv4", optarg); break;
        case O_DIP6: if (inet_pton(AF_INET6, optarg, &o->dst6) != 1) die("--dst-ip6 %s: not IPv6", optarg); break;
        case O_DPORT: {
            long p = strtol(optarg, NULL, 10);
            if (p < 1 || p > 65535) die("--dst-port %s: 1..65535", optarg);
            o->dst_port = (uint16_t)p;
            break;
        }
        case O_FAMILY:
            if (!strcmp(optarg, "4")) o->family = 4;
            else if (!strcmp(optarg, "6")) o->family = 6;
            else if (!strcmp(optarg, "46")) o->family = 0;
            else die("--family %s: 4, 6 or 46", optarg);
            break;
        case O_KEEPVLAN: o->keep_vlan = 1; break;
        case O_RATE: o->rate = strtod(optarg, NULL); if (o->rate < 0) die("--rate %s: >= 0", optarg); break;
        case O_COUNT: o->count = strtoull(optarg, NULL, 10); break;
        case O_DURATION: o->duration = strtod(optarg, NULL); break;
        case O_MODE: o->mode = optarg; break;
        case O_BATCH: o->batch = atoi(optarg); break;
        case O_BURST: o->burst = atoi(optarg); break;
        case O_CPU: o->cpu = atoi(optarg); break;
        case O_MAXFRAMES: o->max_frames = strtoull(optarg, NULL, 10); break;
        case O_QUANTUM: o->quantum_us = atoi(optarg); break;
        case O_SPIN: o->spin_us = atoi(optarg); break;
        default: usage();
        }
    }
    if (!o->iface || !o->pcap || !o->have_dst_mac)
        usage();
    if (o->count == 0 || o->count > LCG_MAX_COUNT)
        die("--count: 1 to %s", "2000000000");
    if (!(o->duration > 0 && o->duration <= LCG_MAX_DURATION_S))
        die("--duration: more than 0, at most %s s", "600");
    if (o->batch < 1 || o->batch > LCG_MAX_BATCH)
        die("--batch: 1 to %s", "1024");
    if (o->quantum_us < 0 || o->quantum_us > 100000 || o->spin_us < 0 || o->spin_us > 100000)
        die("%s", "--quantum-us and --spin-us: 0 to 100000");
    if (o->burst <= 0) {
        double b = o->rate * LCG_BURST_NS / 1e9;
        o->burst = b > LCG_MIN_BURST ? (int)b : LCG_MIN_BURST;
    }
}

int main(int argc, char **argv)
{
    struct lcg_opts o;
    struct lcg_frames fr = {0};
    struct lcg_tx tx;
    struct lcg_result res;

    parse_args(argc, argv, &o);
    check_destination(&o);
    check_namespace();
    if (!o.have_src_mac)
        iface_mac(o.iface, o.src_mac);
    if (o.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o.cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0)
            fprintf(stderr, "lcgen: cannot pin to cpu %d: %s\n", o.cpu, strerror(errno));
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);       /* nanosleep wakes on time */
    load_pcap(&o, &fr);
    open_tx(&o, &tx, &fr);
    signal(SIGINT, lcg_on_signal);
    signal(SIGTERM, lcg_on_signal);
    signal(SIGALRM, lcg_on_signal);
    alarm((unsigned)o.duration + 5);              /* a second bound, whatever the loop does */

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    run(&o, &tx, &fr, &res);
    getrusage(RUSAGE_SELF, &ru1);
    alarm(0);
    double cpu_user = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    double cpu_sys = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

    printf("{\"tool\": \"lcgen\", \"mode\": \"%s\", \"iface\": \"%s\", \"frames\": %zu, \"pcap_packets\": %llu, "
           "\"skipped\": {\"family\": %llu, \"not_udp\": %llu, \"too_big\": %llu, \"truncated\": %llu}, "
           "\"vlan_stripped\": %llu, \"mean_frame_bytes\": %.1f, \"offered_pps\": %.0f, \"count_limit\": %llu, "
           "\"duration_limit\": %.3f, \"sent\": %llu, \"dropped\": %llu, \"enobufs\": %llu, \"errors\": %llu, "
           "\"last_errno\": %d, \"ring_waits\": %llu, \"bytes\": %llu, \"seconds\": %.6f, \"pps\": %.0f, "
           "\"mbit_s\": %.1f, \"burst\": %d, \"quantum_us\": %d, \"spin_us\": %d, \"tokens_lost\": %.0f, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, \"cpu\": %d, \"stopped_by_signal\": %s}\n",
           o.mode, o.iface, fr.n, (unsigned long long)fr.read, (unsigned long long)fr.skipped_family,
           (unsigned long long)fr.skipped_not_udp, (unsigned long long)fr.skipped_too_big,
           (unsigned long long)fr.skipped_truncated, (unsigned long long)fr.vlan_stripped,
           (double)fr.used / (double)fr.n, o.rate, (unsigned long long)o.count, o.duration,
           (unsigned long long)res.sent, (unsigned long long)res.dropped, (unsigned long long)tx.enobufs,
           (unsigned long long)tx.other_errors, tx.last_errno, (unsigned long long)tx.ring_waits,
           (unsigned long long)res.bytes, res.seconds, res.seconds > 0 ? res.sent / res.seconds : 0.0,
           res.seconds > 0 ? res.bytes * 8 / res.seconds / 1e6 : 0.0, o.burst, o.quantum_us, o.spin_us, res.tokens_lost, cpu_user, cpu_sys, o.cpu,
           lcg_stop ? "true" : "false");
    if (tx.map)
        munmap(tx.map, tx.map_len);
    close(tx.fd);
    free(tx.msgs);
    free(tx.iov);
    free(fr.f);
    free(fr.data);
    return (res.sent > 0) ? 0 : 1;
}
