/* decode_buffer.c - decode frames held in memory, batch after batch. */
#include <errno.h>
#include <stdint.h>

#include "../lc_batch.h"
#include "../lc_decode.h"

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
