/* xdp_syslog.c - LogCaster's XDP program (loaded by ebpf/loader.py with bcc).
 *
 * Syslog datagrams go to the AF_XDP socket of the RX queue they arrived on;
 * everything else goes to the kernel untouched:
 *
 *   Ethernet [802.1Q | 802.1ad | 0x9100 tag, at most LC_MAX_VLAN tags]
 *     IPv4 (options allowed) or IPv6 (hop-by-hop, routing, destination
 *     options, fragment and AH extension headers walked, at most LC_MAX_EXT)
 *       UDP whose destination port is in `ports`   -> XSK of ctx->rx_queue_index
 *                                                     (XDP_PASS if no socket there)
 *       source in the deny list (when enabled)      -> XDP_DROP
 *       source over its budget (when enabled)       -> XDP_DROP
 *   anything else (ARP, ICMP, ND, TCP/SSH, other UDP, deeper stacks,
 *   non-first IP fragments, truncated headers)      -> XDP_PASS
 *
 * Fragments: a first fragment (offset 0) carries the UDP header and goes by
 * its port like any datagram (the decoder flags the record FRAGMENT and
 * TRUNCATED). Later fragments carry no port: they go to the kernel, which
 * drops them when reassembly times out (counted here as frag_passed).
 *
 * Budgets (issue 12; the same rule as dpdk_shim/src/senders.h for the DPDK
 * and socket RX loops): each source address has a GCRA budget, an entry of
 * the LRU map `budget` keyed by the address (16 bytes, IPv4 as
 * ::ffff:a.b.c.d). A datagram conforms when the entry's theoretical arrival
 * time `tat` is at most `tolerance_ns` ahead of now; each one conforming
 * moves tat on by `interval_ns` (1e9 / rate; tolerance = (burst - 1) *
 * interval; interval 0: unlimited). A new entry takes its interval and
 * tolerance from the longest prefix in `budget_overrides` holding the
 * address, else from `budget_default`. Entries are shared by all CPUs: the
 * per-source counts are atomic; tat is read and written without a lock, so
 * two CPUs taking datagrams of the same source at the same instant may let
 * one more through than the budget (an update of tat lost), never fewer.
 * When the map is full the least recently used source is forgotten: its
 * next datagram starts a full burst.
 *
 * Counters are per CPU (no atomics): seen = redirected + passed + denied +
 * throttled; redirect_failed (a matching datagram on a queue without a bound
 * socket, given to the kernel) and frag_passed are part of passed.
 *
 * Compile-time parameters (bcc cflags, set by loader.py):
 *   LC_MAX_QUEUES  entries of xsks_map (RX queues of the interface)
 *   LC_MAX_PORTS   configured UDP ports (index range of port_hits)
 *   LC_DENY_MAX    entries of each deny-list trie
 *   LC_BUDGET_MAX  sources tracked by `budget` (LRU)
 *   LC_BUDGET_OVERRIDES_MAX  prefixes of budget_overrides
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/udp.h>

#ifndef LC_MAX_QUEUES
#define LC_MAX_QUEUES 64
#endif
#ifndef LC_MAX_PORTS
#define LC_MAX_PORTS 16
#endif
#ifndef LC_DENY_MAX
#define LC_DENY_MAX 1024
#endif
#ifndef LC_BUDGET_MAX
#define LC_BUDGET_MAX 65536
#endif
#ifndef LC_BUDGET_OVERRIDES_MAX
#define LC_BUDGET_OVERRIDES_MAX 64
#endif

#define LC_MAX_VLAN 2
#define LC_MAX_EXT 4

#define LC_ETH_P_IP 0x0800
#define LC_ETH_P_IPV6 0x86DD
#define LC_ETH_P_8021Q 0x8100
#define LC_ETH_P_8021AD 0x88A8
#define LC_ETH_P_QINQ_OLD 0x9100

#define LC_IP_MF 0x2000
#define LC_IP_OFFSET 0x1FFF
#define LC_IP6_OFFSET 0xFFF8

/* counters: indices (loader.py COUNTERS names them in this order) */
#define LC_C_SEEN 0
#define LC_C_REDIRECTED 1
#define LC_C_PASSED 2
#define LC_C_REDIRECT_FAILED 3
#define LC_C_DENIED 4
#define LC_C_FRAG_PASSED 5
#define LC_C_THROTTLED 6
#define LC_NCOUNTERS 7

/* config: indices */
#define LC_CFG_DENY_ENABLED 0
#define LC_CFG_BUDGET_ENABLED 1
#define LC_NCONFIG 4

struct lc_vlan_hdr {
    __be16 tci;
    __be16 proto;
};

struct lc_deny_v4_key {
    u32 prefixlen;
    u8 addr[4];
};

struct lc_deny_v6_key {
    u32 prefixlen;
    u8 addr[16];
};

/* A source address as the budget keys it: IPv4 as ::ffff:a.b.c.d. */
struct lc_src {
    u32 w[4];
};

/* A prefix of budget_overrides: of the 128 bits of an lc_src (an IPv4
 * prefix /n is ::ffff:a.b.c.d/96+n, as in struct lc_budget_override). */
struct lc_budget_prefix {
    u32 prefixlen;
    u8 addr[16];
};

struct lc_budget_params {
    u64 interval_ns;             /* 1e9 / rate; 0: unlimited */
    u64 tolerance_ns;            /* (burst - 1) * interval */
};

/* One source under a budget (loader.py throttled_sources reads it). */
struct lc_budget_entry {
    u64 tat;                     /* theoretical arrival time, bpf_ktime_get_ns() */
    u64 interval_ns;
    u64 tolerance_ns;
    u64 passed;                  /* datagrams within the budget */
    u64 throttled;               /* datagrams over it, dropped */
};

/* UDP destination port -> 1 + index of the port in the configuration (0: not ours). */
BPF_ARRAY(ports, u8, 65536);
BPF_PERCPU_ARRAY(counters, u64, LC_NCOUNTERS);
BPF_PERCPU_ARRAY(port_hits, u64, LC_MAX_PORTS);
BPF_ARRAY(config, u32, LC_NCONFIG);
BPF_LPM_TRIE(deny_v4, struct lc_deny_v4_key, u8, LC_DENY_MAX);
BPF_LPM_TRIE(deny_v6, struct lc_deny_v6_key, u8, LC_DENY_MAX);
BPF_TABLE("lru_hash", struct lc_src, struct lc_budget_entry, budget, LC_BUDGET_MAX);
BPF_LPM_TRIE(budget_overrides, struct lc_budget_prefix, struct lc_budget_params, LC_BUDGET_OVERRIDES_MAX);
BPF_ARRAY(budget_default, struct lc_budget_params, 1);
/* RX queue index -> AF_XDP socket (filled by the shim, xsk_socket__update_xskmap). */
BPF_XSKMAP(xsks_map, LC_MAX_QUEUES);

static __always_inline void lc_count(int index)
{
    u64 *v = counters.lookup(&index);
    if (v)
        *v += 1;
}

static __always_inline int lc_pass(int index)
{
    lc_count(LC_C_PASSED);
    if (index >= 0)
        lc_count(index);
    return XDP_PASS;
}

static __always_inline int lc_denied_v4(__be32 saddr)
{
    struct lc_deny_v4_key key = {.prefixlen = 32};
    __builtin_memcpy(key.addr, &saddr, 4);
    return deny_v4.lookup(&key) != NULL;
}

static __always_inline int lc_denied_v6(const struct ipv6hdr *ip6)
{
    struct lc_deny_v6_key key = {.prefixlen = 128};
    __builtin_memcpy(key.addr, &ip6->saddr, 16);
    return deny_v6.lookup(&key) != NULL;
}

/* The source's entry in `budget`, made with its budget when it has none
 * (NULL only if the kernel could not make one: the datagram goes through). */
static __always_inline struct lc_budget_entry *lc_budget_entry(struct lc_src *src)
{
    struct lc_budget_entry *e = budget.lookup(src);
    if (e)
        return e;
    struct lc_budget_prefix prefix = {.prefixlen = 128};
    __builtin_memcpy(prefix.addr, src->w, sizeof(prefix.addr));
    struct lc_budget_params *p = budget_overrides.lookup(&prefix);
    if (!p) {
        int zero = 0;
        p = budget_default.lookup(&zero);
        if (!p)
            return NULL;
    }
    struct lc_budget_entry fresh = {.interval_ns = p->interval_ns, .tolerance_ns = p->tolerance_ns};
    budget.insert(src, &fresh);              /* BPF_NOEXIST: another CPU may have made it first */
    return budget.lookup(src);
}

/* GCRA: 1 if the datagram is within its source's budget, 0 if over it. */
static __always_inline int lc_budget_take(struct lc_src *src)
{
    struct lc_budget_entry *e = lc_budget_entry(src);
    if (!e)
        return 1;
    u64 interval = e->interval_ns;
    if (interval) {
        u64 now = bpf_ktime_get_ns();
        u64 tat = e->tat > now ? e->tat : now;
        if (tat - now > e->tolerance_ns) {
            __sync_fetch_and_add(&e->throttled, 1);
            return 0;
        }
        e->tat = tat + interval;
    }
    __sync_fetch_and_add(&e->passed, 1);
    return 1;
}

int lc_xdp_syslog(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u64 off = sizeof(struct ethhdr);

    lc_count(LC_C_SEEN);

    struct ethhdr *eth = data;
    if (data + off > data_end)
        return lc_pass(-1);
    u16 proto = ntohs(eth->h_proto);

#pragma unroll
    for (int i = 0; i < LC_MAX_VLAN; i++) {
        if (proto != LC_ETH_P_8021Q && proto != LC_ETH_P_8021AD && proto != LC_ETH_P_QINQ_OLD)
            break;
        struct lc_vlan_hdr *vh = data + off;
        if (data + off + sizeof(*vh) > data_end)
            return lc_pass(-1);
        proto = ntohs(vh->proto);
        off += sizeof(*vh);
    }

    u8 l4proto;
    int v6 = 0;
    struct iphdr *ip4 = NULL;
    struct ipv6hdr *ip6 = NULL;

    if (proto == LC_ETH_P_IP) {
        ip4 = data + off;
        if (data + off + sizeof(*ip4) > data_end)
            return lc_pass(-1);
        u32 ihl = ip4->ihl * 4;
        if (ihl < sizeof(*ip4))
            return lc_pass(-1);
        l4proto = ip4->protocol;
        if (l4proto == IPPROTO_UDP && (ntohs(ip4->frag_off) & LC_IP_OFFSET))
            return lc_pass(LC_C_FRAG_PASSED);   /* not the first fragment: no UDP header */
        off += ihl;
    } else if (proto == LC_ETH_P_IPV6) {
        v6 = 1;
        ip6 = data + off;
        if (data + off + sizeof(*ip6) > data_end)
            return lc_pass(-1);
        l4proto = ip6->nexthdr;
        off += sizeof(*ip6);
#pragma unroll
        for (int i = 0; i < LC_MAX_EXT; i++) {
            if (l4proto != IPPROTO_HOPOPTS && l4proto != IPPROTO_ROUTING && l4proto != IPPROTO_DSTOPTS &&
                l4proto != IPPROTO_FRAGMENT && l4proto != IPPROTO_AH)
                break;
            u8 *ext = data + off;
            if (data + off + 8 > data_end)
                return lc_pass(-1);
            u8 next = ext[0];
            u64 len;
            if (l4proto == IPPROTO_FRAGMENT) {
                u16 frag = ((u16)ext[2] << 8) | ext[3];
                if (next == IPPROTO_UDP && (frag & LC_IP6_OFFSET))
                    return lc_pass(LC_C_FRAG_PASSED);
                len = 8;
            } else if (l4proto == IPPROTO_AH) {
                len = ((u64)ext[1] + 2) * 4;
            } else {
                len = ((u64)ext[1] + 1) * 8;
            }
            l4proto = next;
            off += len;
        }
    } else {
        return lc_pass(-1);                     /* ARP, LLDP, deeper VLAN stacks, ... */
    }

    if (l4proto != IPPROTO_UDP)
        return lc_pass(-1);                     /* TCP (SSH), ICMP, ND, ... */
    struct udphdr *udp = data + off;
    if (data + off + sizeof(*udp) > data_end)
        return lc_pass(-1);

    int dport = ntohs(udp->dest);
    u8 *slot = ports.lookup(&dport);
    if (!slot || *slot == 0)
        return lc_pass(-1);                     /* UDP to a port that is not ours */
    int hit = *slot - 1;
    if (hit < LC_MAX_PORTS) {
        u64 *h = port_hits.lookup(&hit);
        if (h)
            *h += 1;
    }

    int cfg_deny = LC_CFG_DENY_ENABLED;
    u32 *deny_on = config.lookup(&cfg_deny);
    if (deny_on && *deny_on) {
        int denied = v6 ? lc_denied_v6(ip6) : lc_denied_v4(ip4->saddr);
        if (denied) {
            lc_count(LC_C_DENIED);
            return XDP_DROP;
        }
    }

    int cfg_budget = LC_CFG_BUDGET_ENABLED;
    u32 *budget_on = config.lookup(&cfg_budget);
    if (budget_on && *budget_on) {
        struct lc_src src;
        if (v6) {
            __builtin_memcpy(src.w, &ip6->saddr, sizeof(src.w));
        } else {
            src.w[0] = 0;
            src.w[1] = 0;
            src.w[2] = htonl(0xffff);
            src.w[3] = ip4->saddr;
        }
        if (!lc_budget_take(&src)) {
            lc_count(LC_C_THROTTLED);
            return XDP_DROP;
        }
    }

    /* bcc spells bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS) this way:
     * XDP_REDIRECT, or XDP_PASS when no socket is bound to this queue. */
    int action = xsks_map.redirect_map(ctx->rx_queue_index, XDP_PASS);
    if (action == XDP_REDIRECT) {
        lc_count(LC_C_REDIRECTED);
        return XDP_REDIRECT;
    }
    return lc_pass(LC_C_REDIRECT_FAILED);
}
