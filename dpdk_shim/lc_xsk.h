#pragma once
/* lc_xsk.h - AF_XDP side of the shim: one UMEM and one XSK socket per RX
 * queue (libxdp's xsk API, program loading inhibited: the XDP program is
 * ebpf/xdp_syslog.c, loaded by bcc), and the RX loop of one queue.
 *
 * Read by ffi.cdef: declarations only (see lc_batch.h). Needs lc_batch.h,
 * lc_decode.h, lc_ring.h and lc_rx.h before it. No libxdp type appears here:
 * they stay inside dpdk_shim/src/xsk_rx.c.
 *
 * Every function returns >= 0 (ok / a count) or -errno; where a message
 * helps, `err` (errlen bytes) says what was being done (the caller adds
 * strerror of the errno).
 */

#define LC_XSK_FRAME_SIZE 4096       /* UMEM chunk: one frame each (no multi-buffer) */
#define LC_XSK_MAX_BURST 512

/* zero-copy wish (lc_xsk_socket_conf.zerocopy) */
#define LC_XSK_ZC_AUTO 0             /* try zero-copy, fall back to copy mode (kernel decides) */
#define LC_XSK_ZC_REQUIRE 1          /* XDP_ZEROCOPY: fail when the driver cannot */
#define LC_XSK_ZC_OFF 2              /* XDP_COPY */

struct lc_xsk_umem;                  /* frames (hugepages if possible) + fill/completion rings */
struct lc_xsk_socket;                /* an AF_XDP socket bound to (ifname, queue) + its RX ring */

struct lc_xsk_umem_conf {
    uint32_t fill_size;              /* fill ring entries, power of two */
    uint32_t nframes;                /* frames in the UMEM (>= fill_size) */
    uint32_t frame_size;             /* LC_XSK_FRAME_SIZE or 2048 */
    uint8_t hugepages;               /* 1: try MAP_HUGETLB first */
};

struct lc_xsk_umem_info {
    uint64_t bytes;                  /* mapped size */
    uint32_t nframes;
    uint32_t frame_size;
    uint32_t fill_size;
    uint8_t hugepages;               /* 1 when the frames live on huge pages */
    int32_t huge_errno;              /* why not (mmap MAP_HUGETLB errno), 0 if asked and got them */
};

int lc_xsk_umem_create(const struct lc_xsk_umem_conf *conf, struct lc_xsk_umem **out,
                       struct lc_xsk_umem_info *info, char *err, uint32_t errlen);
/* Frees the UMEM; -EBUSY while a socket still uses it. */
int lc_xsk_umem_destroy(struct lc_xsk_umem *u);

struct lc_xsk_socket_conf {
    char ifname[16];
    uint32_t queue_id;
    uint32_t rx_size;                /* RX ring entries, power of two (fill ring >= 2x) */
    uint8_t zerocopy;                /* LC_XSK_ZC_* */
    uint8_t need_wakeup;             /* bind with XDP_USE_NEED_WAKEUP */
    int32_t xsks_map_fd;             /* XSKMAP to insert the socket into at index queue_id; -1: none */
};

struct lc_xsk_socket_info {
    int32_t fd;
    uint32_t ifindex;
    uint32_t queue_id;
    uint32_t rx_size;
    uint8_t zerocopy;                /* 1: zero-copy (XDP_OPTIONS_ZEROCOPY), 0: copy mode */
    uint8_t need_wakeup;
    uint32_t filled;                 /* frames put in the fill ring before RX started */
};

/* Create the socket on `umem` (one socket per UMEM), bind it, put every
 * frame of the UMEM into the fill ring, then insert it into the XSKMAP
 * (the program starts redirecting to it from there). */
int lc_xsk_socket_create(struct lc_xsk_umem *umem, const struct lc_xsk_socket_conf *conf,
                         struct lc_xsk_socket **out, struct lc_xsk_socket_info *info,
                         char *err, uint32_t errlen);
/* Close the socket (the kernel removes it from the XSKMAP). Not while its
 * RX loop runs (-EBUSY). */
int lc_xsk_socket_destroy(struct lc_xsk_socket *s);

/* The socket's XDP_STATISTICS (getsockopt; any thread, any time). */
struct lc_xsk_stats {
    uint64_t rx_dropped;             /* dropped for other reasons (frame too big, no fill entry) */
    uint64_t rx_invalid_descs;
    uint64_t tx_invalid_descs;
    uint64_t rx_ring_full;           /* dropped: our RX ring was full */
    uint64_t rx_fill_ring_empty_descs; /* times the fill ring was empty (overlaps rx_dropped) */
    uint64_t tx_ring_empty_descs;
};
int lc_xsk_statistics(struct lc_xsk_socket *s, struct lc_xsk_stats *out);

struct lc_xsk_rx_conf {
    struct lc_xsk_socket *sock;
    uint16_t burst;                  /* descriptors per peek, <= LC_XSK_MAX_BURST */
    uint32_t batch_max_delay_us;     /* close a batch this long after its first record */
    uint32_t idle_spin_us;           /* busy-poll this long after the queue ran dry, then sleep */
    uint32_t idle_sleep_ms;          /* ... in poll() on the socket, at most this long (0: never sleep) */
    uint32_t stats_interval_ms;      /* refresh stats->kernel_drops this often */
    uint64_t stop_after;             /* stop after this many packets (0: until stopped) */
    uint32_t idle_stop_ms;           /* with stop_after: also stop after this long without packets */
    struct lc_ring *ring;
    struct lc_decoder *decoder;
    struct lc_rxq_stats *stats;
    struct lc_batch_hdr *scratch;    /* decode target while the ring is full */
    uint32_t stop_requested;         /* set by lc_xsk_stop (atomic); 0 when the conf is made */
    uint64_t wakeups;                /* out: wakeup syscalls the kernel asked for */
    uint64_t sleeps;                 /* out: poll() sleeps while idle */
};

/* The RX loop of one queue, in the calling thread (one blocking call; the
 * cffi module releases the GIL), until lc_xsk_stop (or stop_after /
 * idle_stop_ms). Closes the ring at the end. Returns 0, -EBUSY when another
 * loop runs on the socket, -EINVAL for a bad conf. */
int lc_xsk_run(struct lc_xsk_rx_conf *conf);
/* Ask the loop run with this conf to stop (a flag it checks every poll; a
 * sleeping loop notices within idle_sleep_ms). Before lc_xsk_run is fine:
 * it then returns at once. */
int lc_xsk_stop(struct lc_xsk_rx_conf *conf);
