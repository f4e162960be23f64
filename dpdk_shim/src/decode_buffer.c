/* decode_buffer.c - decode frames held in memory, batch after batch; and
 * the copy floor the decode benchmark measures itself against. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "lc_batch_write.h"

int64_t lc_decode_buffer(struct lc_decoder *d, struct lc_batch_hdr *b, int link,
                         const uint8_t *buf, const uint32_t *lens, uint32_t n,
                         int64_t rx_ns, uint64_t *batches)
{
    int64_t records = 0;
    uint64_t closed = 0;
    for (uint32_t i = 0; i < n; i++) {
        int rc = lc_decode_frame(d, b, link, buf, lens[i], rx_ns);
        if (rc == -ENOSPC) {
            /* The batch is full: close it (here: discard) and retry the frame. */
            closed++;
            lc_batch_reset(b, b->seq + 1);
            rc = lc_decode_frame(d, b, link, buf, lens[i], rx_ns);
        }
        if (rc < 0)
            return rc;
        records += rc;
        buf += lens[i];
    }
    if (b->count)
        closed++;
    if (batches)
        *batches = closed;
    return records;
}

/* The UDP payload of an Ethernet frame (VLAN tags, IPv4 options, IPv6
 * without extension headers), with only the checks that keep the reads
 * inside the frame: the least any decoder has to do (the UDP length is not
 * read: Ethernet padding counts as payload). Returns its offset and sets
 * *len, or returns 0. The batch it fills is only timed, never published:
 * columns other than raw are left unwritten. */
static uint32_t lc_floor_payload(const uint8_t *f, uint32_t n, uint32_t *len)
{
    uint32_t o = 12;
    uint16_t type;
    for (;;) {
        if (o + 2 > n)
            return 0;
        type = (uint16_t)(f[o] << 8 | f[o + 1]);
        if (type != 0x8100 && type != 0x88a8)
            break;
        o += 4;
    }
    o += 2;
    if (type == 0x0800 && o + 20 <= n)
        o += (f[o] & 15u) * 4;
    else if (type == 0x86dd)
        o += 40;
    else
        return 0;
    o += 8;
    if (o > n)
        return 0;
    *len = n - o;
    return o;
}

int64_t lc_copy_floor_buffer(struct lc_batch_hdr *b, const uint8_t *buf, const uint32_t *lens,
                             uint32_t n, int64_t rx_ns, uint64_t *batches)
{
    int64_t records = 0;
    uint64_t closed = 0;
    struct lc_col_desc *raw = &b->cols[LC_COL_RAW];
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *frame = buf;
        buf += lens[i];
        uint32_t len, at = lc_floor_payload(frame, lens[i], &len);
        if (!at)
            continue;
        if (len > LC_MAX_PAYLOAD)
            len = LC_MAX_PAYLOAD;                      /* as the decoder cuts it */
        if (!lc_batch_room(b, len)) {
            closed++;
            lc_batch_reset(b, b->seq + 1);
            if (!lc_batch_room(b, len))
                return -ENOSPC;                        /* a batch too small for one record */
        }
        uint32_t row = lc_row_begin(b);
        lc_str_append(b, LC_COL_RAW, row, frame + at, len);
        ((int32_t *)(lc_base(b) + raw->values_off))[row + 1] = (int32_t)raw->data_used;
        if (row == 0)
            b->first_rx_ns = rx_ns;
        b->last_rx_ns = rx_ns;
        b->count = row + 1;
        records++;
    }
    if (b->count)
        closed++;
    if (batches)
        *batches = closed;
    return records;
}
