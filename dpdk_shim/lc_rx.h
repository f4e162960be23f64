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

/* The head of a queue's live file (appliance/live.py): the RX loop's and
 * the decoder's counters and the sender tables sit in shared memory at
 * these offsets, so `logcaster top` and `stats --sources` read them while
 * the loop writes, at no cost to it. */
#define LC_LIVE_MAGIC 0x3156494c   /* "LIV1" */
struct lc_live_hdr {
    uint32_t magic;
    uint32_t abi;                 /* LC_ABI_VERSION of the writer */
    uint32_t queue;
    uint32_t pid;
    uint64_t size;
    uint64_t decoder_off;
    uint64_t rxq_off;
    uint64_t senders_off;         /* 0: no senders table */
    uint64_t budget_off;          /* 0: no budget in the RX loop */
    int64_t started_ns;           /* CLOCK_REALTIME when the file was made */
    char label[64];
    char ring_path[256];
};
