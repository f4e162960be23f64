/* lc_batch_write.h - inline writers the decoder uses to fill one row.
 *
 * A row is written as: lc_row_begin, then for each column exactly one of
 * the setters (strings may be appended in pieces), then lc_row_end.
 * Columns never touched in a row are null (nullable columns) or zero/empty.
 * Callers must have checked lc_batch_room() for the payload first.
 */
#ifndef LC_BATCH_WRITE_H
#define LC_BATCH_WRITE_H

#include <stdint.h>
#include <string.h>
#include "../lc_batch.h"

#define LC_LIKELY(x) __builtin_expect(!!(x), 1)
#define LC_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Per-record upper bounds of the short string fields (RFC 5424 limits). */
#define LC_MAX_IP_TEXT 39      /* longest IPv6 text, RFC 5952 */
#define LC_MAX_FORMAT 7        /* "rfc5424" */
#define LC_MAX_HOSTNAME 255
#define LC_MAX_APP_NAME 48
#define LC_MAX_PROCID 128
#define LC_MAX_MSGID 32

static inline uint8_t *lc_base(struct lc_batch_hdr *b) { return (uint8_t *)b; }

static inline void lc_set_valid(struct lc_batch_hdr *b, int col, uint32_t row)
{
    uint32_t off = b->cols[col].validity_off;
    if (off)
        lc_base(b)[off + (row >> 3)] |= (uint8_t)(1u << (row & 7));
}

static inline uint32_t lc_row_begin(struct lc_batch_hdr *b) { return b->count; }

static inline void lc_put_i64(struct lc_batch_hdr *b, int col, uint32_t row, int64_t v)
{
    ((int64_t *)(lc_base(b) + b->cols[col].values_off))[row] = v;
    lc_set_valid(b, col, row);
}

static inline void lc_put_u16(struct lc_batch_hdr *b, int col, uint32_t row, uint16_t v)
{
    ((uint16_t *)(lc_base(b) + b->cols[col].values_off))[row] = v;
    lc_set_valid(b, col, row);
}

static inline void lc_put_u8(struct lc_batch_hdr *b, int col, uint32_t row, uint8_t v)
{
    (lc_base(b) + b->cols[col].values_off)[row] = v;
    lc_set_valid(b, col, row);
}

/* Append bytes to the current row's value of a string/binary column and
 * mark it present. Room was reserved by lc_batch_room(). */
static inline void lc_str_append(struct lc_batch_hdr *b, int col, uint32_t row,
                                 const void *p, uint32_t n)
{
    struct lc_col_desc *c = &b->cols[col];
    memcpy(lc_base(b) + c->data_off + c->data_used, p, n);
    c->data_used += n;
    lc_set_valid(b, col, row);
}

/* Pointer to write up to `n` bytes directly (then lc_str_commit). */
static inline uint8_t *lc_str_reserve(struct lc_batch_hdr *b, int col)
{
    struct lc_col_desc *c = &b->cols[col];
    return lc_base(b) + c->data_off + c->data_used;
}

static inline void lc_str_commit(struct lc_batch_hdr *b, int col, uint32_t row, uint32_t n)
{
    b->cols[col].data_used += n;
    lc_set_valid(b, col, row);
}

/* The string and binary columns, in schema order (the hot loops walk only these). */
#define LC_NVAR 10
static const uint8_t lc_var_cols[LC_NVAR] = {
    LC_COL_SRC_IP, LC_COL_DST_IP, LC_COL_FORMAT, LC_COL_HOSTNAME, LC_COL_APP_NAME,
    LC_COL_PROCID, LC_COL_MSGID, LC_COL_STRUCTURED_DATA, LC_COL_MESSAGE, LC_COL_RAW,
};

/* Close the row: string offsets end here, count and rx range advance. */
static inline void lc_row_end(struct lc_batch_hdr *b, uint32_t row, int64_t rx_ns)
{
    for (int i = 0; i < LC_NVAR; i++) {
        struct lc_col_desc *c = &b->cols[lc_var_cols[i]];
        ((int32_t *)(lc_base(b) + c->values_off))[row + 1] = (int32_t)c->data_used;
    }
    if (row == 0)
        b->first_rx_ns = rx_ns;
    b->last_rx_ns = rx_ns;
    b->count = row + 1;
}

#endif
