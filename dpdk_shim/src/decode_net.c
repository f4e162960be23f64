/* decode_net.c - link, VLAN, IPv4/IPv6 and UDP layers of the frame decoder.
 *
 * lc_decode_frame() finds the UDP payload of one frame, writes the network
 * columns of a row and hands the payload to the syslog layer
 * (decode_syslog.c). Every header read is bounds-checked against caplen;
 * nothing is allocated and nothing calls into the kernel.
 *
 * What happens to odd frames (the flags are in lc_batch.h, docs/FLAGS.md):
 *   not IPv4/IPv6            -> d->not_ip, no record
 *   IP but not UDP           -> d->not_udp, no record
 *   too short / bad version / bad IHL / broken IPv6 extension headers
 *                            -> d->malformed, no record
 *   IP total/payload length beyond the capture -> TRUNCATED, use what is there
 *   IPv4 total length below the header        -> BAD_IP, use what is there
 *   fragment, first (offset 0) -> FRAGMENT, decoded as UDP (and TRUNCATED)
 *   fragment, not first        -> FRAGMENT, record with ports 0, format raw,
 *                                 raw/message = the fragment's IP payload
 *   UDP length < 8             -> BAD_UDP, payload = the bytes after the header
 *   UDP length > IP payload    -> TRUNCATED, payload = what is there
 *   UDP length < IP payload    -> BAD_UDP, payload = UDP length
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "lc_batch_write.h"
#include "decode_syslog.h"
#include "ip_text.h"
#include "record_finish.h"
#include "senders.h"
#include "utf8.h"

#define LC_ETH_HLEN 14u
#define LC_SLL_HLEN 16u
#define LC_SLL2_HLEN 20u
#define LC_VLAN_HLEN 4u
#define LC_MAX_VLAN_DEPTH 4      /* tags accepted in a row (QinQ and then some) */
#define LC_IP4_HLEN 20u
#define LC_IP6_HLEN 40u
#define LC_UDP_HLEN 8u
#define LC_MAX_EXT_HDRS 16       /* IPv6 extension headers walked at most */

#define LC_ETHERTYPE_IPV4 0x0800
#define LC_ETHERTYPE_IPV6 0x86dd
#define LC_ETHERTYPE_8021Q 0x8100
#define LC_ETHERTYPE_8021AD 0x88a8
#define LC_ETHERTYPE_QINQ_OLD 0x9100

#define LC_IPPROTO_HOPOPTS 0
#define LC_IPPROTO_UDP 17
#define LC_IPPROTO_ROUTING 43
#define LC_IPPROTO_FRAGMENT 44
#define LC_IPPROTO_AH 51
#define LC_IPPROTO_DSTOPTS 60

#define LC_IP4_MF 0x2000
#define LC_IP4_OFFMASK 0x1fff

static inline uint16_t lc_rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

/* ---- non-first fragments: kept as raw records -------------------------- */

static uint16_t lc_raw_record(struct lc_decoder *d, struct lc_batch_hdr *b, uint32_t row,
                              const uint8_t *p, uint32_t n)
{
    uint16_t flags = n ? 0 : LC_F_EMPTY;
    lc_str_append(b, LC_COL_FORMAT, row, "raw", 3);
    uint8_t *o = lc_str_reserve(b, LC_COL_MESSAGE);
    lc_str_commit(b, LC_COL_MESSAGE, row, lc_utf8_copy(o, p, n, &flags));
    lc_str_append(b, LC_COL_RAW, row, p, n);
    d->format_counts[LC_FMT_RAW]++;
    return flags;
}

/* ---- the frame --------------------------------------------------------- */

static inline int lc_port_kept(const struct lc_decoder *d, uint16_t port)
{
    for (uint32_t i = 0; i < d->nports && i < LC_MAX_PORT_FILTER; i++)
        if (d->ports[i] == port)
            return 1;
    return 0;
}

int lc_decode_frame(struct lc_decoder *d, struct lc_batch_hdr *b, int link,
                    const uint8_t *frame, uint32_t caplen, int64_t rx_ns)
{
    const uint8_t *p = frame;
    uint32_t off, end = caplen;
    uint16_t type, vlan = 0, flags = 0;

    /* Link layer -> ethertype and offset of the network header. */
    switch (link) {
    case LC_LINK_ETHERNET:
        if (LC_UNLIKELY(caplen < LC_ETH_HLEN))
            goto malformed;
        type = lc_rd16(p + 12);
        off = LC_ETH_HLEN;
        break;
    case LC_LINK_LINUX_SLL:
        if (LC_UNLIKELY(caplen < LC_SLL_HLEN))
            goto malformed;
        type = lc_rd16(p + 14);
        off = LC_SLL_HLEN;
        break;
    case LC_LINK_LINUX_SLL2:
        if (LC_UNLIKELY(caplen < LC_SLL2_HLEN))
            goto malformed;
        type = lc_rd16(p);
        off = LC_SLL2_HLEN;
        break;
    case LC_LINK_RAW:
        if (LC_UNLIKELY(caplen < 1))
            goto malformed;
        switch (p[0] >> 4) {
        case 4: type = LC_ETHERTYPE_IPV4; break;
        case 6: type = LC_ETHERTYPE_IPV6; break;
        default: goto malformed;
        }
        off = 0;
        break;
    default:
        return -EINVAL;
    }

    /* 802.1Q / 802.1ad tags; the outer VID is the record's. */
    for (int depth = 0; type == LC_ETHERTYPE_8021Q || type == LC_ETHERTYPE_8021AD ||
                        type == LC_ETHERTYPE_QINQ_OLD; depth++) {
        if (LC_UNLIKELY(depth == LC_MAX_VLAN_DEPTH || caplen - off < LC_VLAN_HLEN))
            goto malformed;
        if (depth == 0)
            vlan = lc_rd16(p + off) & 0x0fff;
        type = lc_rd16(p + off + 2);
        off += LC_VLAN_HLEN;
    }

    /* Network layer -> [off, end) is the IP payload, proto its protocol. */
    uint8_t proto;
    int v6, nonfirst = 0;
    const uint8_t *ip = p + off;
    uint32_t avail = caplen - off;
    if (LC_LIKELY(type == LC_ETHERTYPE_IPV4)) {
        v6 = 0;
        if (LC_UNLIKELY(avail < LC_IP4_HLEN || (ip[0] >> 4) != 4))
            goto malformed;
        uint32_t hl = (ip[0] & 0x0fu) * 4;
        if (LC_UNLIKELY(hl < LC_IP4_HLEN || hl > avail))
            goto malformed;
        uint32_t tot = lc_rd16(ip + 2);
        if (LC_UNLIKELY(tot < hl)) {
            flags |= LC_F_BAD_IP;       /* e.g. 0 from segmentation offload */
            tot = avail;
        } else if (LC_UNLIKELY(tot > avail)) {
            flags |= LC_F_TRUNCATED;
            tot = avail;
        }
        end = off + tot;                /* Ethernet padding after tot ignored */
        proto = ip[9];
        uint16_t frag = lc_rd16(ip + 6);
        if (LC_UNLIKELY(frag & (LC_IP4_MF | LC_IP4_OFFMASK))) {
            flags |= LC_F_FRAGMENT;
            nonfirst = (frag & LC_IP4_OFFMASK) != 0;
        }
        off += hl;
    } else if (type == LC_ETHERTYPE_IPV6) {
        v6 = 1;
        if (LC_UNLIKELY(avail < LC_IP6_HLEN || (ip[0] >> 4) != 6))
            goto malformed;
        uint32_t plen = lc_rd16(ip + 4);
        proto = ip[6];
        if (LC_UNLIKELY(plen == 0)) {
            if (proto != LC_IPPROTO_HOPOPTS)    /* not a jumbogram */
                flags |= LC_F_BAD_IP;
            plen = avail - LC_IP6_HLEN;
        } else if (LC_UNLIKELY(plen > avail - LC_IP6_HLEN)) {
            flags |= LC_F_TRUNCATED;
            plen = avail - LC_IP6_HLEN;
        }
        end = off + LC_IP6_HLEN + plen;
        off += LC_IP6_HLEN;
        for (int n = 0; proto != LC_IPPROTO_UDP; n++) {
            uint32_t len;
            if (LC_UNLIKELY(n == LC_MAX_EXT_HDRS))
                goto malformed;
            switch (proto) {
            case LC_IPPROTO_HOPOPTS:
            case LC_IPPROTO_ROUTING:
            case LC_IPPROTO_DSTOPTS:
                if (LC_UNLIKELY(end - off < 2))
                    goto malformed;
                len = ((uint32_t)p[off + 1] + 1) * 8;
                break;
            case LC_IPPROTO_AH:
                if (LC_UNLIKELY(end - off < 2))
                    goto malformed;
                len = ((uint32_t)p[off + 1] + 2) * 4;
                break;
            case LC_IPPROTO_FRAGMENT: {
                if (LC_UNLIKELY(end - off < 8))
                    goto malformed;
                uint16_t fo = lc_rd16(p + off + 2);
                if (fo & 0xfff9) {      /* offset != 0 or M set */
                    flags |= LC_F_FRAGMENT;
                    if (fo & 0xfff8)
                        nonfirst = 1;
                }
                len = 8;
                break;
            }
            default:
                goto not_udp;           /* ESP, ICMPv6, TCP, no next header, ... */
            }
            if (LC_UNLIKELY(len > end - off))
                goto malformed;
            proto = p[off];
            off += len;
            if (nonfirst)
                break;                  /* the rest is fragment data */
        }
    } else {
        d->frames++;
        d->not_ip++;
        return 0;
    }
    if (proto != LC_IPPROTO_UDP)
        goto not_udp;

    /* Transport layer -> payload [off, end), ports. */
    uint16_t sport = 0, dport = 0;
    if (LC_UNLIKELY(nonfirst)) {
        /* No UDP header here, no port to filter on: keep it raw. */
    } else {
        uint32_t have = end - off;
        if (LC_UNLIKELY(have < LC_UDP_HLEN))
            goto malformed;
        sport = lc_rd16(p + off);
        dport = lc_rd16(p + off + 2);
        uint32_t ulen = lc_rd16(p + off + 4);
        if (d->nports && !lc_port_kept(d, dport)) {
            d->frames++;
            d->port_filtered++;
            return 0;
        }
        if (LC_UNLIKELY(ulen < LC_UDP_HLEN)) {
            flags |= LC_F_BAD_UDP;      /* keep whatever follows the header */
        } else if (LC_UNLIKELY(ulen > have)) {
            flags |= LC_F_TRUNCATED;
        } else if (LC_UNLIKELY(ulen < have)) {
            flags |= LC_F_BAD_UDP;
            end = off + ulen;
        }
        off += LC_UDP_HLEN;
    }
    uint32_t len = end - off;
    if (LC_UNLIKELY(len > LC_MAX_PAYLOAD)) {
        flags |= LC_F_TRUNCATED;
        len = LC_MAX_PAYLOAD;
    }
    if (LC_UNLIKELY(!lc_batch_room(b, len)))
        return -ENOSPC;
    const uint8_t *iph = ip;
    uint8_t a16[16];
    const uint8_t *from = d->senders || d->budget ? lc_addr16(a16, v6 ? iph + 8 : iph + 12, v6) : NULL;
    if (d->budget && !lc_budget_check(d, d->budget, from, (uint64_t)rx_ns))
        return 0;                       /* over its source's budget: counted there */

    /* The record. */
    const uint8_t *payload = p + off;
    struct lc_sender_key k = {0};
    uint32_t row = lc_row_begin(b);
    lc_put_i64(b, LC_COL_RX_TIME, row, rx_ns);
    lc_put_ip(b, LC_COL_SRC_IP, row, v6, v6 ? iph + 8 : iph + 12);
    lc_put_ip(b, LC_COL_DST_IP, row, v6, v6 ? iph + 24 : iph + 16);
    lc_put_u16(b, LC_COL_SRC_PORT, row, sport);
    lc_put_u16(b, LC_COL_DST_PORT, row, dport);
    lc_put_u16(b, LC_COL_VLAN, row, vlan);
    if (LC_UNLIKELY(nonfirst))
        flags |= lc_raw_record(d, b, row, payload, len);
    else
        flags |= lc_syslog_decode(d, b, row, payload, len, rx_ns, &k);
    if (d->senders && (k.rule || d->senders->traffic)) {
        k.addr = from;
        flags |= lc_senders_account(d, d->senders, &k, len, rx_ns);
    }
    lc_record_finish(d, b, row, flags, len, rx_ns);
    return 1;

malformed:
    d->frames++;
    d->malformed++;
    return 0;
not_udp:
    d->frames++;
    d->not_udp++;
    return 0;
}
