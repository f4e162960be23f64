/* record_finish.h - the end of every record, whichever decoder entry wrote
 * its network columns (frames: decode_net.c, datagrams: decode_datagram.c). */
#ifndef LC_RECORD_FINISH_H
#define LC_RECORD_FINISH_H

#include <stdint.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "lc_batch_write.h"

/* Write the flags, count each flag bit and the record, close the row. */
static inline void lc_record_finish(struct lc_decoder *d, struct lc_batch_hdr *b, uint32_t row, uint16_t flags,
                                    uint32_t payload_len, int64_t rx_ns)
{
    lc_put_u16(b, LC_COL_FLAGS, row, flags);
    for (uint32_t f = flags; f; f &= f - 1)
        d->flag_counts[__builtin_ctz(f)]++;
    d->frames++;
    d->records++;
    d->bytes += payload_len;
    lc_row_end(b, row, rx_ns);
}

#endif
