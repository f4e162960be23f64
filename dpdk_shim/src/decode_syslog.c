/* PLACEHOLDER until the syslog parser lands: every payload becomes `raw`. */
#include <stdint.h>
#include "lc_batch_write.h"
#include "decode_syslog.h"

uint16_t lc_syslog_decode(struct lc_decoder *d, struct lc_batch_hdr *b, uint32_t row,
                          const uint8_t *p, uint32_t n, int64_t rx_ns)
{
    lc_str_append(b, LC_COL_FORMAT, row, "raw", 3);
    lc_str_append(b, LC_COL_MESSAGE, row, p, n);
    lc_str_append(b, LC_COL_RAW, row, p, n);
    d->format_counts[LC_FMT_RAW]++;
    return n ? 0 : LC_F_EMPTY;
}
