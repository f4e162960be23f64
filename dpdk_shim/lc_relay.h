#pragma once
/* lc_relay.h - the relay sink's data path: the raw payloads of a batch's
 * rows out to another syslog receiver, with no per-record Python.
 * Read by ffi.cdef: declarations only (see lc_batch.h).
 *
 * Streams (TCP, TLS): lc_relay_frame writes rows as RFC 6587 frames into a
 * buffer the caller sends (octet counting "LEN SP MSG", 3.3.1, or the
 * message and LF, 3.4.2). Datagrams (UDP): lc_relay_udp sends one row per
 * datagram on a connected socket with sendmmsg (RFC 5426).
 */

#define LC_RELAY_OCTETS 0           /* RFC 6587 octet counting */
#define LC_RELAY_LF 1               /* RFC 6587 non-transparent framing, LF trailer */
#define LC_RELAY_UDP_BURST 64       /* datagrams per sendmmsg */

/* Frames of rows [first, first + n) of `b`'s raw column, whole frames
 * only, into out[0..cap). Returns the rows framed (0 when the first one
 * does not fit: grow out) and sets *used to the bytes written. */
int lc_relay_frame(const struct lc_batch_hdr *b, uint32_t first, uint32_t n, int framing, char *out,
                   uint64_t cap, uint64_t *used);

/* Rows [first, first + n) of `b`'s raw column, one datagram each, on the
 * connected UDP socket `fd`. Returns the rows the kernel took (fewer than n
 * when its buffer is full: call again with the rest), or -errno. */
int lc_relay_udp(int fd, const struct lc_batch_hdr *b, uint32_t first, uint32_t n);
