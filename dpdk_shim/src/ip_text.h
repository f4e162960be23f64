/* ip_text.h - IP addresses as record text (the src_ip/dst_ip columns):
 * IPv4 dotted quad, IPv6 as RFC 5952 says. Shared by the frame decoder
 * (decode_net.c) and the datagram decoder (decode_datagram.c).
 * Addresses are in network byte order; nothing here allocates. */
#ifndef LC_IP_TEXT_H
#define LC_IP_TEXT_H

#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "lc_batch_write.h"

static inline uint32_t lc_fmt_u8(char *o, uint8_t v)
{
    if (v >= 100) {
        o[0] = (char)('0' + v / 100);
        o[1] = (char)('0' + (v / 10) % 10);
        o[2] = (char)('0' + v % 10);
        return 3;
    }
    if (v >= 10) {
        o[0] = (char)('0' + v / 10);
        o[1] = (char)('0' + v % 10);
        return 2;
    }
    o[0] = (char)('0' + v);
    return 1;
}

static inline uint32_t lc_fmt_ip4(char *o, const uint8_t *a)
{
    uint32_t n = lc_fmt_u8(o, a[0]);
    for (int i = 1; i < 4; i++) {
        o[n++] = '.';
        n += lc_fmt_u8(o + n, a[i]);
    }
    return n;
}

static inline uint32_t lc_fmt_hex16(char *o, uint16_t v)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t n = 0;
    int shift = 12;
    while (shift > 0 && ((v >> shift) & 0xf) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        o[n++] = hex[(v >> shift) & 0xf];
    return n;
}

static const uint8_t lc_v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* 1 if the IPv6 address is IPv4-mapped (::ffff:a.b.c.d). */
static inline int lc_ip6_is_v4mapped(const uint8_t *a)
{
    return memcmp(a, lc_v4mapped_prefix, sizeof(lc_v4mapped_prefix)) == 0;
}

/* RFC 5952: lowercase, no leading zeros, the longest run (>= 2) of zero
 * groups as "::" (the first on ties), ::ffff:a.b.c.d for IPv4-mapped.
 * Writes at most LC_MAX_IP_TEXT bytes. */
static inline uint32_t lc_fmt_ip6(char *o, const uint8_t *a)
{
    if (lc_ip6_is_v4mapped(a)) {
        memcpy(o, "::ffff:", 7);
        return 7 + lc_fmt_ip4(o + 7, a + 12);
    }
    uint16_t g[8];
    int best = -1, best_len = 0, cur = -1, cur_len = 0;
    for (int i = 0; i < 8; i++) {
        g[i] = (uint16_t)((a[2 * i] << 8) | a[2 * i + 1]);
        if (g[i] == 0) {
            if (cur < 0) {
                cur = i;
                cur_len = 0;
            }
            if (++cur_len > best_len) {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur = -1;
        }
    }
    if (best_len < 2)
        best = -1;
    uint32_t n = 0;
    int sep = 0;
    for (int i = 0; i < 8;) {
        if (i == best) {
            o[n++] = ':';
            o[n++] = ':';
            i += best_len;
            sep = 0;
            continue;
        }
        if (sep)
            o[n++] = ':';
        n += lc_fmt_hex16(o + n, g[i]);
        sep = 1;
        i++;
    }
    return n;
}

/* Write an address (4 bytes, or 16 with v6) as the text of a string column. */
static inline void lc_put_ip(struct lc_batch_hdr *b, int col, uint32_t row, int v6, const uint8_t *a)
{
    char *o = (char *)lc_str_reserve(b, col);
    lc_str_commit(b, col, row, v6 ? lc_fmt_ip6(o, a) : lc_fmt_ip4(o, a));
}

#endif
