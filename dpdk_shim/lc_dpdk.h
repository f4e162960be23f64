#pragma once
/* lc_dpdk.h - DPDK side of the shim: EAL, ports, mbuf pools and the RX loop.
 * Read by ffi.cdef: declarations only (see lc_batch.h). Needs lc_batch.h,
 * lc_decode.h, lc_ring.h and lc_rx.h before it. Nothing here includes DPDK headers:
 * the DPDK types stay inside dpdk_shim/src/dpdk_*.c.
 *
 * Every function returns >= 0 (ok / a count) or -errno; where a message
 * helps, it is written to `err` (errlen bytes). No function exits the process.
 */

#define LC_DPDK_MAX_QUEUES 16
#define LC_DPDK_NAME_LEN 64

/* EAL with these arguments (argv[0] included). Once per process: DPDK
 * cannot initialise its EAL twice. Returns 0 or -errno (rte_errno). */
int lc_eal_init(int argc, char **argv, char *err, uint32_t errlen);
int lc_eal_cleanup(void);

/* Port id of a device name ("net_pcap0", "0000:01:00.0"), or -ENODEV. */
int lc_port_by_name(const char *name);
int lc_port_count(void);
/* NUMA node of an lcore / a port (-1 when unknown). */
int lc_lcore_socket(unsigned lcore);
int lc_port_socket(uint16_t port_id);

struct lc_port_conf {
    uint16_t port_id;
    uint16_t nb_rxq;            /* RX queues wanted; fewer when the port has fewer */
    uint16_t nb_rxd;            /* RX descriptors per queue (adjusted by the driver) */
    uint16_t burst;             /* rte_eth_rx_burst size */
    uint32_t mbufs;             /* mbuf pool size; 0 = from descriptors, burst and cache */
    uint32_t extra_mbufs;       /* added to the pool (net_pcap infinite_rx holds the whole file) */
    uint32_t link_timeout_ms;   /* wait this long for link up (then go on, reported) */
    uint8_t promiscuous;
    uint8_t rss;                /* spread queues with RSS when the device supports it */
};

/* What the port ended up with. */
struct lc_port_info {
    char name[64];
    char driver[64];
    int32_t socket_id;          /* port's NUMA node, -1 unknown */
    uint16_t nb_rxq;            /* queues configured */
    uint16_t nb_rxd;            /* descriptors after adjustment */
    uint16_t max_rx_queues;
    uint8_t rss;                /* RSS enabled */
    uint8_t link_up;
    uint32_t link_speed_mbps;
    uint32_t mbufs;             /* pool size */
    uint32_t mbuf_data_room;
};

/* Configure (RSS over nb_rxq queues, or 1 queue if RSS is not there), adjust
 * descriptors, set up queues with a pool on the port's node, start, wait for
 * link. Stop with lc_port_stop (stops and closes). */
int lc_port_start(const struct lc_port_conf *conf, struct lc_port_info *info,
                  char *err, uint32_t errlen);
int lc_port_stop(uint16_t port_id);

struct lc_port_stats {
    uint64_t ipackets;
    uint64_t ibytes;
    uint64_t imissed;           /* dropped by the NIC: RX descriptors were full */
    uint64_t ierrors;
    uint64_t rx_nombuf;         /* no mbuf to receive into */
};
int lc_port_stats(uint16_t port_id, struct lc_port_stats *out);

/* Extended stats one at a time: index i < count. Returns the count of
 * xstats; with name/value given, fills entry i (name truncated to namelen). */
int lc_port_xstat(uint16_t port_id, uint32_t i, char *name, uint32_t namelen, uint64_t *value);

struct lc_rx_conf {
    uint16_t port_id;
    uint16_t queue_id;
    uint32_t lcore;
    uint16_t burst;
    uint32_t batch_max_delay_us; /* close a batch this long after its first record */
    uint64_t stop_after;         /* stop after this many packets (0: until stopped) */
    uint32_t idle_stop_ms;       /* with stop_after: also stop after this long without packets */
    uint32_t idle_spin_us;       /* busy-poll this long after the queue ran dry, then nap */
    uint32_t idle_sleep_us;      /* ... in naps of at most this long (0: never nap, busy-poll) */
    struct lc_ring *ring;
    struct lc_decoder *decoder;
    struct lc_rxq_stats *stats;
    struct lc_batch_hdr *scratch; /* decode target while the ring is full */
    uint64_t sleeps;             /* out: naps while idle */
};

/* Idle cost: a queue that returned nothing for idle_spin_us is polled
 * between naps (nanosleep) of idle_sleep_us, each cut short at the open
 * batch's batch_max_delay deadline; the first burst with packets puts the
 * loop back to busy-polling. A nap's time counts as idle cycles, so
 * cycles_busy / (cycles_busy + cycles_idle) is the core's busy share. A
 * poll-mode queue cannot wake the loop: the RX descriptors must hold what
 * arrives during one nap (a burst after silence), else imissed counts it. */

/* Launch the RX loop of one queue on its lcore (rte_eal_remote_launch).
 * `conf` and what it points to must live until the loop ended. */
int lc_rx_launch(struct lc_rx_conf *conf);
/* Ask every RX loop to stop (a flag they check every burst). */
void lc_rx_stop_all(void);
/* 1 while the loop on `lcore` runs, 0 when it finished. */
int lc_rx_running(uint32_t lcore);
/* Wait for the loop on `lcore` to end; returns its result. */
int lc_rx_wait(uint32_t lcore);
