#pragma once
/* lc_decode.h - frame and syslog decoder, and the offline pcap reader.
 * Read by ffi.cdef: declarations only (see lc_batch.h). */

#define LC_MAX_PORT_FILTER 16

/* Link types a frame may start with (pcap DLT values where they exist). */
#define LC_LINK_ETHERNET 1
#define LC_LINK_RAW 101          /* bare IPv4/IPv6 */
#define LC_LINK_LINUX_SLL 113
#define LC_LINK_LINUX_SLL2 276

struct lc_senders;   /* lc_senders.h */
struct lc_budget;

/* Decoder state: options set once, counters with a single writer (the
 * thread that decodes). One per RX queue. */
struct lc_decoder {
    int32_t tz_offset_s;          /* zone of RFC 3164 timestamps, seconds east of UTC */
    uint16_t nports;              /* 0: every UDP port */
    uint16_t ports[16];           /* UDP destination ports kept */
    /* counters */
    uint64_t frames;              /* frames offered */
    uint64_t records;             /* records written */
    uint64_t bytes;               /* UDP payload bytes written */
    uint64_t not_ip;              /* not IPv4/IPv6 (ARP, LLDP, ...) */
    uint64_t not_udp;             /* IP but not UDP */
    uint64_t port_filtered;       /* UDP to a port not in `ports` */
    uint64_t malformed;           /* frames too short/bad to reach a UDP payload */
    uint64_t flag_counts[16];     /* records per flag bit (bit i -> index i) */
    uint64_t format_counts[3];    /* records per format: rfc5424, rfc3164, raw */
    uint64_t severity_counts[9];  /* records per severity 0..7; [8]: no valid PRI */
    /* per sender (lc_senders.h); NULL: off */
    struct lc_senders *senders;   /* traffic and sequence gaps per sender */
    struct lc_budget *budget;     /* per-source budget, applied before decoding */
    uint64_t throttled;           /* datagrams over their source's budget: no record */
    uint64_t seq_records;         /* records that carried a sender sequence number */
    uint64_t seq_lost;            /* numbers skipped that never came: lost upstream */
    uint64_t seq_gaps;            /* records after a gap (flagged seq_gap) */
    uint64_t seq_duplicates;
    uint64_t seq_reorders;        /* a skipped number that came late (no longer lost) */
    uint64_t seq_resets;          /* sequence restarts and wraps */
};

/* Decode one frame of `link` type into the next row of `b`.
 * Returns 1 if a record was written, 0 if the frame is not a UDP datagram
 * the decoder keeps or is over its source's budget (counted in d), -ENOSPC if `b` lacks room (nothing
 * written, nothing counted: close the batch and call again). */
int lc_decode_frame(struct lc_decoder *d, struct lc_batch_hdr *b, int link,
                    const uint8_t *frame, uint32_t caplen, int64_t rx_ns);

/* Decode one UDP datagram taken from a socket (no link, IP or UDP header)
 * into the next row of `b`. `src` and `dst` point at a struct sockaddr_in
 * or sockaddr_in6 (its family field says which); an IPv4-mapped IPv6
 * address (dual-stack socket) is written as IPv4 text. `dst` may be NULL
 * (dst_ip "", dst_port 0). payload[0..len) is what was received; net_flags
 * are LC_F_* bits the caller found (LC_F_TRUNCATED when MSG_TRUNC said the
 * datagram was larger than the buffer). vlan is 0. Same contract as
 * lc_decode_frame: 1 record written, 0 destination port filtered (counted),
 * -ENOSPC if `b` lacks room (nothing written, nothing counted),
 * -EAFNOSUPPORT for a family other than AF_INET/AF_INET6. */
int lc_decode_datagram(struct lc_decoder *d, struct lc_batch_hdr *b, const void *src, const void *dst,
                       const uint8_t *payload, uint32_t len, uint16_t net_flags, int64_t rx_ns);

/* Offline reader: pcap and pcapng through libpcap. */
struct lc_pcap;
int lc_pcap_open(const char *path, struct lc_pcap **out, char *err, uint32_t errlen);
/* Decode packets into `b` until it is full or the file ends.
 * Returns records added (0 at end of file) or -errno; err gets the reason. */
int lc_pcap_fill(struct lc_pcap *pc, struct lc_decoder *d, struct lc_batch_hdr *b,
                 char *err, uint32_t errlen);
uint64_t lc_pcap_packets(const struct lc_pcap *pc);
int lc_pcap_linktype(const struct lc_pcap *pc);
void lc_pcap_close(struct lc_pcap *pc);

/* JSON lines for rows [first, first+n) of a batch into out (cap bytes).
 * with_raw adds "raw" as base64. Returns rows written (fewer when out is
 * full; at least 1 unless out cannot hold one row) and sets *used. */
int lc_batch_jsonl(const struct lc_batch_hdr *b, uint32_t first, uint32_t n, int with_raw,
                   char *out, uint64_t cap, uint64_t *used);

/* Decode `n` frames stored back to back in `buf` (frame i is lens[i] bytes)
 * into `b`, resetting it each time it fills (the batches are discarded):
 * decode + batch build over data held in memory, for the benchmark and for
 * tests of many frames. Returns records written (or -errno); *batches gets
 * the number of batches closed. */
int64_t lc_decode_buffer(struct lc_decoder *d, struct lc_batch_hdr *b, int link,
                         const uint8_t *buf, const uint32_t *lens, uint32_t n,
                         int64_t rx_ns, uint64_t *batches);

/* The copy floor of lc_decode_buffer over the same Ethernet frames: find
 * each UDP payload and copy it into the batch's raw column, nothing else
 * (bench/decode.py reports decode against it). Returns rows written. */
int64_t lc_copy_floor_buffer(struct lc_batch_hdr *b, const uint8_t *buf, const uint32_t *lens,
                             uint32_t n, int64_t rx_ns, uint64_t *batches);
