#pragma once
/* lc_sock.h - the kernel-socket RX backend: UDP sockets read with recvmmsg.
 * Read by ffi.cdef: declarations only (see lc_batch.h). Needs lc_batch.h,
 * lc_decode.h, lc_ring.h and lc_rx.h before it.
 *
 * One socket per RX loop; several sockets bound to one address and port
 * with SO_REUSEPORT share it (the kernel spreads flows over them by a hash
 * of addresses and ports). Each loop runs lc_sock_run on its own thread (a
 * Python thread: cffi releases the GIL), sleeps in ppoll when the socket is
 * idle, and decodes each datagram with lc_decode_datagram into the batches
 * of its ring (dpdk_shim/src/rx_batcher.h).
 *
 * Loss: the kernel counts datagrams it dropped for the socket (receive
 * buffer full, ...). The loop gets that count with every datagram queued
 * after a drop (SO_RXQ_OVFL), reads it with SO_MEMINFO when the socket goes
 * quiet and at the end, and reports it as kernel_drops in lc_rxq_stats:
 * datagrams that reached the socket while its loop ran (and before, since
 * it was opened) = packets + kernel_drops, exactly, once the loop ended.
 *
 * Every function returns >= 0 (ok / a count / a descriptor) or -errno.
 */

#define LC_SOCK_MAX_BURST 1024
#define LC_SOCK_MAX_MSG 65535        /* bytes per receive buffer: any UDP datagram */
#define LC_SOCK_ADDR_LEN 64
#define LC_SOCK_IFNAME_LEN 16

/* What lc_sock_open makes. */
struct lc_sock_conf {
    char addr[64];          /* bind address, IPv4 or IPv6 text; "::" takes IPv4 too (dual stack) */
    char ifname[16];        /* "" or an interface: receive only what arrives on it (SO_BINDTODEVICE) */
    uint16_t port;          /* UDP port; 0: the kernel picks one (see lc_sock_info.port) */
    uint8_t reuseport;      /* SO_REUSEPORT: other sockets may bind the same address and port */
    uint8_t timestamps;     /* SO_TIMESTAMPNS: rx_time is the kernel's receive time */
    uint8_t v6only;         /* with an IPv6 address: no IPv4 (IPV6_V6ONLY) */
    uint32_t rcvbuf;        /* receive buffer asked for, bytes; 0: the system default */
};

/* What the socket got. */
struct lc_sock_info {
    int32_t family;         /* AF_INET or AF_INET6 */
    uint16_t port;          /* bound port */
    uint8_t rcvbuf_forced;  /* SO_RCVBUFFORCE worked (CAP_NET_ADMIN): net.core.rmem_max did not cap it */
    uint32_t rcvbuf;        /* SO_RCVBUF as the kernel reports it: twice the granted request (bookkeeping) */
    char addr[64];          /* bound address, text */
};

/* Open, configure and bind a UDP socket (non-blocking, close-on-exec, with
 * SO_RXQ_OVFL and IP_PKTINFO / IPV6_RECVPKTINFO). Returns the descriptor
 * (the caller closes it, after its loop ended) or -errno with the failing
 * step in err: -EINVAL bad address, -EADDRINUSE port taken, -EACCES
 * privileged port, -EADDRNOTAVAIL not an address of this host, -ENODEV no
 * such interface. */
int lc_sock_open(const struct lc_sock_conf *conf, struct lc_sock_info *info, char *err, uint32_t errlen);

/* The socket now: bytes queued in its receive buffer, the buffer size and
 * the kernel's drop counter (SO_MEMINFO). */
struct lc_sock_mem {
    uint32_t rmem_alloc;
    uint32_t rcvbuf;
    uint32_t drops;
};
int lc_sock_meminfo(int fd, struct lc_sock_mem *out);

/* One RX loop: everything it reads and writes. */
struct lc_sock_loop {
    int32_t fd;
    uint16_t queue_id;
    uint16_t burst;              /* datagrams per recvmmsg, <= LC_SOCK_MAX_BURST */
    uint32_t msg_size;           /* bytes per receive buffer (LC_SOCK_MAX_MSG: no datagram truncated) */
    uint32_t batch_max_delay_us; /* close a batch this long after its first record */
    uint64_t stop_after;         /* stop after this many datagrams (0: until stopped) */
    uint32_t idle_stop_ms;       /* with stop_after: also stop after this long without datagrams */
    uint32_t stop;               /* set by lc_sock_stop */
    struct lc_ring *ring;
    struct lc_decoder *decoder;
    struct lc_rxq_stats *stats;  /* cycles in CLOCK_MONOTONIC ns, tsc_hz = 1e9 */
    struct lc_batch_hdr *scratch; /* decode target while the ring is full */
};

/* Run the loop until lc_sock_stop (seen within ~10 ms; the flag is not
 * reset, so a stop before the run makes it only drain), stop_after, or an
 * error of the socket. At the end it closes the socket to new datagrams (a
 * drop-all socket filter; a later run removes it), decodes what is queued,
 * publishes the last batch, reads the final drop count and closes the ring
 * (lc_ring_set_closed). Returns 0 or -errno. Blocking: call it from the
 * loop's own thread; `loop` and what it points to must live until it
 * returned. */
int lc_sock_run(struct lc_sock_loop *loop);

/* Ask the loop to stop (any thread). */
void lc_sock_stop(struct lc_sock_loop *loop);
