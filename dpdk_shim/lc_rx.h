#pragma once
/* lc_rx.h - what every RX loop shares (DPDK, AF_XDP, sockets): its counters.
 * Read by ffi.cdef: declarations only (see lc_batch.h).
 *
 * "cycles" are TSC cycles in the DPDK loop and nanoseconds elsewhere;
 * tsc_hz says which (1e9 for nanoseconds), so busy fraction and cost per
 * packet come out the same way for every backend. */

/* Per-queue counters, one writer (the queue's RX loop). Padded to 128
 * bytes (two cache lines); each queue's struct is an allocation of its own
 * (ffi.new, 16-byte aligned, not cache-aligned), so two queues' counters
 * share at most one line at the edges. */
struct lc_rxq_stats {
    uint64_t packets;           /* packets taken off the queue (mbufs, XSK descriptors, datagrams) */
    uint64_t bytes;
    uint64_t batches;           /* batches published to the ring */
    uint64_t ring_full_batches; /* batches dropped: ring full */
    uint64_t ring_full_records;
    uint64_t multi_seg;         /* chained mbufs linearised (DPDK) */
    uint64_t polls_busy;        /* polls (rx_burst, ring peek, recvmmsg) that returned packets */
    uint64_t polls_idle;        /* ... that returned none */
    uint64_t cycles_busy;       /* cycles spent in busy polls, decode included */
    uint64_t cycles_idle;
    uint64_t tsc_hz;
    uint64_t running;           /* 1 while the loop runs */
    uint64_t kernel_drops;      /* drops the kernel reports for this queue (SO_RXQ_OVFL, XSK rx_dropped) */
    uint64_t pad[3];
};
