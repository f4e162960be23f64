/* decode_datagram.c - the decoder entry for datagrams read from a UDP
 * socket: the kernel took the link, IP and UDP headers off, the addresses
 * and ports come as sockaddrs. Writes the same row lc_decode_frame writes
 * for the same payload, addresses and ports (vlan 0), and counts the same
 * counters. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "lc_batch_write.h"
#include "decode_syslog.h"
#include "ip_text.h"
#include "record_finish.h"

/* Address and port of a sockaddr_in/sockaddr_in6: *a points at 4 or 16
 * bytes; returns 4, 16, or 0 for another family. An IPv4-mapped IPv6
 * address is given as its 4 IPv4 bytes. */
static inline uint32_t lc_sa_addr(const void *sa, const uint8_t **a, uint16_t *port)
{
    sa_family_t family;
    memcpy(&family, sa, sizeof(family));
    if (family == AF_INET) {
        const struct sockaddr_in *s4 = sa;
        *a = (const uint8_t *)&s4->sin_addr;
        *port = ntohs(s4->sin_port);
        return 4;
    }
    if (family == AF_INET6) {
        const struct sockaddr_in6 *s6 = sa;
        *a = s6->sin6_addr.s6_addr;
        *port = ntohs(s6->sin6_port);
        if (lc_ip6_is_v4mapped(*a)) {
            *a += 12;
            return 4;
        }
        return 16;
    }
    return 0;
}

static inline int lc_port_kept(const struct lc_decoder *d, uint16_t port)
{
    for (uint32_t i = 0; i < d->nports && i < LC_MAX_PORT_FILTER; i++)
        if (d->ports[i] == port)
            return 1;
    return 0;
}

int lc_decode_datagram(struct lc_decoder *d, struct lc_batch_hdr *b, const void *src, const void *dst,
                       const uint8_t *payload, uint32_t len, uint16_t net_flags, int64_t rx_ns)
{
    const uint8_t *sa = NULL, *da = NULL;
    uint16_t sport = 0, dport = 0, flags = net_flags;
    uint32_t slen = lc_sa_addr(src, &sa, &sport);
    uint32_t dlen = dst ? lc_sa_addr(dst, &da, &dport) : 4;
    if (LC_UNLIKELY(slen == 0 || dlen == 0))
        return -EAFNOSUPPORT;
    if (d->nports && !lc_port_kept(d, dport)) {
        d->frames++;
        d->port_filtered++;
        return 0;
    }
    if (LC_UNLIKELY(len > LC_MAX_PAYLOAD)) {
        flags |= LC_F_TRUNCATED;
        len = LC_MAX_PAYLOAD;
    }
    if (LC_UNLIKELY(!lc_batch_room(b, len)))
        return -ENOSPC;
    uint8_t a16[16];
    const uint8_t *from = d->senders || d->budget ? lc_addr16(a16, sa, slen == 16) : NULL;
    if (d->budget && !lc_budget_check(d, d->budget, from, (uint64_t)rx_ns))
        return 0;                       /* over its source's budget: counted there */

    struct lc_sender_key k = {0};
    uint32_t row = lc_row_begin(b);
    lc_put_i64(b, LC_COL_RX_TIME, row, rx_ns);
    lc_put_ip(b, LC_COL_SRC_IP, row, slen == 16, sa);
    if (da)
        lc_put_ip(b, LC_COL_DST_IP, row, dlen == 16, da);
    else
        lc_str_commit(b, LC_COL_DST_IP, row, 0);
    lc_put_u16(b, LC_COL_SRC_PORT, row, sport);
    lc_put_u16(b, LC_COL_DST_PORT, row, dport);
    lc_put_u16(b, LC_COL_VLAN, row, 0);
    flags |= lc_syslog_decode(d, b, row, payload, len, rx_ns, &k);
    if (d->senders && (k.rule || d->senders->traffic)) {
        k.addr = from;
        flags |= lc_senders_account(d, d->senders, &k, len, rx_ns);
    }
    lc_record_finish(d, b, row, flags, len, rx_ns);
    return 1;
}
