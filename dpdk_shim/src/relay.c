/* relay.c - the relay sink's framing and datagrams (see lc_relay.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../lc_batch.h"
#include "../lc_relay.h"

/* Row r of the raw column: its bytes and length. */
static inline const uint8_t *lc_raw_row(const struct lc_batch_hdr *b, uint32_t r, uint32_t *len)
{
    const struct lc_col_desc *c = &b->cols[LC_COL_RAW];
    const uint8_t *base = (const uint8_t *)b;
    const int32_t *offs = (const int32_t *)(base + c->values_off);
    *len = (uint32_t)(offs[r + 1] - offs[r]);
    return base + c->data_off + offs[r];
}

/* "LEN SP" of octet counting into out (up to 11 bytes); returns its length. */
static inline int lc_octet_count(char *out, uint32_t len)
{
    char digits[10];
    int k = 0;
    do {
        digits[k++] = (char)('0' + len % 10);
        len /= 10;
    } while (len);
    for (int i = 0; i < k; i++)
        out[i] = digits[k - 1 - i];
    out[k] = ' ';
    return k + 1;
}

int lc_relay_frame(const struct lc_batch_hdr *b, uint32_t first, uint32_t n, int framing, char *out,
                   uint64_t cap, uint64_t *used)
{
    uint64_t o = 0;
    uint32_t done = 0;
    if (first > b->count)
        first = b->count;
    if (n > b->count - first)
        n = b->count - first;
    for (; done < n; done++) {
        uint32_t len;
        const uint8_t *p = lc_raw_row(b, first + done, &len);
        char prefix[16];
        int k = framing == LC_RELAY_LF ? 0 : lc_octet_count(prefix, len);
        uint64_t need = (uint64_t)k + len + (framing == LC_RELAY_LF);
        if (o + need > cap)
            break;
        memcpy(out + o, prefix, (size_t)k);
        memcpy(out + o + k, p, len);
        o += (uint64_t)k + len;
        if (framing == LC_RELAY_LF)
            out[o++] = '\n';
    }
    *used = o;
    return (int)done;
}

int lc_relay_udp(int fd, const struct lc_batch_hdr *b, uint32_t first, uint32_t n)
{
    struct mmsghdr msgs[LC_RELAY_UDP_BURST];
    struct iovec iov[LC_RELAY_UDP_BURST];
    uint32_t sent = 0;
    if (first > b->count)
        first = b->count;
    if (n > b->count - first)
        n = b->count - first;
    while (sent < n) {
        uint32_t k = n - sent < LC_RELAY_UDP_BURST ? n - sent : LC_RELAY_UDP_BURST;
        memset(msgs, 0, sizeof(msgs[0]) * k);
        for (uint32_t i = 0; i < k; i++) {
            uint32_t len;
            iov[i].iov_base = (void *)lc_raw_row(b, first + sent + i, &len);
            iov[i].iov_len = len;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, msgs, k, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sent ? (int)sent : -errno;
        }
        sent += (uint32_t)r;
        if ((uint32_t)r < k)
            break;                          /* the socket buffer is full: the caller waits */
    }
    return (int)sent;
}
