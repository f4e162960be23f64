/* batch.c - layout of the columnar batch (see lc_batch.h). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "lc_batch_write.h"
#include "lc_abi.h"

_Static_assert(LC_NCOLS == sizeof(((struct lc_batch_hdr *)0)->cols) /
                              sizeof(struct lc_col_desc),
               "lc_batch_hdr.cols must have one entry per column");

#define LC_ALIGN 64u
#define LC_FMT_AVG 7u   /* every record writes a format name */

struct lc_col_spec {
    const char *name;
    uint32_t kind;
    int nullable;
    uint32_t avg;       /* expected bytes per record (strings) */
    uint32_t max;       /* per-record bound (strings); 0 = derived from payload */
};

/* The record schema (version 2); names must match appliance/batch.py's SCHEMA. */
static const struct lc_col_spec lc_cols[LC_NCOLS] = {
    [LC_COL_RX_TIME] = {"rx_time", LC_KIND_I64, 0, 0, 0},
    [LC_COL_SRC_IP] = {"src_ip", LC_KIND_STR, 0, LC_MAX_IP_TEXT, LC_MAX_IP_TEXT},
    [LC_COL_DST_IP] = {"dst_ip", LC_KIND_STR, 0, LC_MAX_IP_TEXT, LC_MAX_IP_TEXT},
    [LC_COL_SRC_PORT] = {"src_port", LC_KIND_U16, 0, 0, 0},
    [LC_COL_DST_PORT] = {"dst_port", LC_KIND_U16, 0, 0, 0},
    [LC_COL_VLAN] = {"vlan", LC_KIND_U16, 0, 0, 0},
    [LC_COL_FACILITY] = {"facility", LC_KIND_U8, 1, 0, 0},
    [LC_COL_SEVERITY] = {"severity", LC_KIND_U8, 1, 0, 0},
    [LC_COL_FORMAT] = {"format", LC_KIND_STR, 0, LC_FMT_AVG, LC_MAX_FORMAT},
    [LC_COL_TIMESTAMP] = {"timestamp", LC_KIND_I64, 1, 0, 0},
    [LC_COL_HOSTNAME] = {"hostname", LC_KIND_STR, 1, 32, LC_MAX_HOSTNAME},
    [LC_COL_APP_NAME] = {"app_name", LC_KIND_STR, 1, 32, LC_MAX_APP_NAME},
    [LC_COL_PROCID] = {"procid", LC_KIND_STR, 1, 16, LC_MAX_PROCID},
    [LC_COL_MSGID] = {"msgid", LC_KIND_STR, 1, 16, LC_MAX_MSGID},
    [LC_COL_STRUCTURED_DATA] = {"structured_data", LC_KIND_STR, 1, 0, 0},
    [LC_COL_MESSAGE] = {"message", LC_KIND_STR, 1, 0, 0},     /* null: RFC 5424 without MSG */
    [LC_COL_RAW] = {"raw", LC_KIND_BIN, 0, 0, 0},
    [LC_COL_FLAGS] = {"flags", LC_KIND_U16, 0, 0, 0},
};

int lc_abi_version(void) { return LC_ABI_VERSION; }

const char *lc_col_name(int col)
{
    return (col >= 0 && col < LC_NCOLS) ? lc_cols[col].name : NULL;
}

int lc_col_kind(int col)
{
    return (col >= 0 && col < LC_NCOLS) ? (int)lc_cols[col].kind : -EINVAL;
}

int lc_col_nullable(int col)
{
    return (col >= 0 && col < LC_NCOLS) ? lc_cols[col].nullable : -EINVAL;
}

/* Worst-case bytes one record with `len` payload bytes writes in a column. */
static uint64_t lc_col_bound(int col, uint32_t len)
{
    switch (col) {
    case LC_COL_MESSAGE:
        return 3ull * len;      /* each invalid byte may become U+FFFD (3 bytes) */
    case LC_COL_RAW:
    case LC_COL_STRUCTURED_DATA:
        return len;
    default:
        return lc_cols[col].max;
    }
}

static uint64_t lc_col_avg(int col, uint32_t avg_payload)
{
    switch (col) {
    case LC_COL_MESSAGE:
    case LC_COL_RAW:
        return avg_payload;
    case LC_COL_STRUCTURED_DATA:
        return avg_payload / 4;
    default:
        return lc_cols[col].avg;
    }
}

static uint64_t lc_align(uint64_t x) { return (x + LC_ALIGN - 1) & ~(uint64_t)(LC_ALIGN - 1); }

static uint32_t lc_fixed_width(uint32_t kind)
{
    switch (kind) {
    case LC_KIND_I64: return 8;
    case LC_KIND_U16: return 2;
    case LC_KIND_U8: return 1;
    default: return 4;  /* int32 offsets */
    }
}

/* Where each buffer sits: the data of `message` and `raw` first, right
 * after the header, then every other buffer in column order. When a batch
 * is compacted at publish (lc_batch_compact), the first of the two large
 * buffers never moves and the second moves once, by the first one's slack. */
enum lc_part { LC_PART_VALUES, LC_PART_VALIDITY, LC_PART_DATA, LC_NPARTS };

static int lc_placed_first(int col, enum lc_part part)
{
    return part == LC_PART_DATA && (col == LC_COL_MESSAGE || col == LC_COL_RAW);
}

static uint64_t lc_part_size(int col, enum lc_part part, uint32_t cap, uint32_t avg_payload)
{
    const struct lc_col_spec *s = &lc_cols[col];
    int is_var = s->kind == LC_KIND_STR || s->kind == LC_KIND_BIN;
    switch (part) {
    case LC_PART_VALUES:
        return lc_align((uint64_t)lc_fixed_width(s->kind) * (cap + (is_var ? 1 : 0)));
    case LC_PART_VALIDITY:
        return s->nullable ? lc_align((cap + 7) / 8) : 0;
    default:
        return is_var ? lc_align(lc_col_avg(col, avg_payload) * cap + lc_col_bound(col, LC_MAX_PAYLOAD)) : 0;
    }
}

static uint32_t *lc_part_off(struct lc_col_desc *c, enum lc_part part)
{
    return part == LC_PART_VALUES ? &c->values_off : part == LC_PART_VALIDITY ? &c->validity_off : &c->data_off;
}

/* Walk the layout; fill `b` when given. Returns total size or -EINVAL. */
static int64_t lc_layout(struct lc_batch_hdr *b, uint32_t cap, uint32_t avg_payload)
{
    if (cap == 0 || cap > (1u << 20) || avg_payload > LC_MAX_PAYLOAD)
        return -EINVAL;
    uint64_t off = lc_align(sizeof(struct lc_batch_hdr));
    if (b) {
        for (int col = 0; col < LC_NCOLS; col++) {
            b->cols[col] = (struct lc_col_desc){.kind = lc_cols[col].kind};
        }
    }
    for (int pass = 0; pass < 2; pass++)
        for (int col = 0; col < LC_NCOLS; col++)
            for (enum lc_part part = 0; part < LC_NPARTS; part++) {
                if (lc_placed_first(col, part) != (pass == 0))
                    continue;
                uint64_t size = lc_part_size(col, part, cap, avg_payload);
                if (size && b) {
                    *lc_part_off(&b->cols[col], part) = (uint32_t)off;
                    if (part == LC_PART_DATA)
                        b->cols[col].data_cap = (uint32_t)size;
                }
                off += size;
                if (off > UINT32_MAX)
                    return -EINVAL;
            }
    return (int64_t)off;
}

int64_t lc_batch_size(uint32_t capacity, uint32_t avg_payload)
{
    return lc_layout(NULL, capacity, avg_payload);
}

int lc_batch_init(void *mem, uint64_t size, uint32_t capacity, uint32_t avg_payload,
                  uint16_t queue_id)
{
    int64_t need = lc_batch_size(capacity, avg_payload);
    if (need < 0 || mem == NULL || size < (uint64_t)need || ((uintptr_t)mem % LC_ALIGN))
        return -EINVAL;
    struct lc_batch_hdr *b = mem;
    memset(b, 0, sizeof(*b));
    lc_layout(b, capacity, avg_payload);
    b->magic = LC_BATCH_MAGIC;
    b->version = LC_BATCH_VERSION;
    b->queue_id = queue_id;
    b->capacity = capacity;
    b->total_size = (uint32_t)need;
    b->avg_payload = avg_payload;
    lc_batch_reset(b, 0);
    return 0;
}

void lc_batch_reset(struct lc_batch_hdr *b, uint64_t seq)
{
    uint8_t *base = (uint8_t *)b;
    b->seq = seq;
    b->count = 0;
    b->first_rx_ns = b->last_rx_ns = 0;
    for (int col = 0; col < LC_NCOLS; col++) {
        struct lc_col_desc *c = &b->cols[col];
        c->data_used = 0;
        if (c->validity_off)
            memset(base + c->validity_off, 0, (b->capacity + 7) / 8);
        if (c->kind == LC_KIND_STR || c->kind == LC_KIND_BIN)
            ((int32_t *)(base + c->values_off))[0] = 0;
    }
}

/* Bytes of a buffer that hold data in a batch of `n` records. */
static uint64_t lc_part_used(const struct lc_batch_hdr *b, int col, enum lc_part part, uint32_t n)
{
    const struct lc_col_desc *c = &b->cols[col];
    int is_var = c->kind == LC_KIND_STR || c->kind == LC_KIND_BIN;
    switch (part) {
    case LC_PART_VALUES:
        return (uint64_t)lc_fixed_width(c->kind) * (n + (is_var ? 1 : 0));
    case LC_PART_VALIDITY:
        return c->validity_off ? (n + 7) / 8 : 0;
    default:
        return is_var ? c->data_used : 0;
    }
}

int64_t lc_batch_compact(struct lc_batch_hdr *b)
{
    uint8_t *base = (uint8_t *)b;
    uint32_t n = b->count;
    uint64_t off = lc_align(sizeof(struct lc_batch_hdr));
    /* Buffers move only towards the start, in placement order: a move never
     * overwrites a buffer that has yet to move. */
    for (int pass = 0; pass < 2; pass++)
        for (int col = 0; col < LC_NCOLS; col++)
            for (enum lc_part part = 0; part < LC_NPARTS; part++) {
                uint32_t *at = lc_part_off(&b->cols[col], part);
                if (lc_placed_first(col, part) != (pass == 0) || *at == 0)
                    continue;
                uint64_t used = lc_part_used(b, col, part, n);
                if (*at != off && used)
                    memmove(base + off, base + *at, used);
                *at = (uint32_t)off;
                if (part == LC_PART_DATA)
                    b->cols[col].data_cap = b->cols[col].data_used;
                off += lc_align(used);
            }
    b->capacity = n;        /* full: lc_batch_room says no from now on */
    b->total_size = (uint32_t)off;
    return (int64_t)off;
}

int lc_batch_room(const struct lc_batch_hdr *b, uint32_t payload_len)
{
    if (b->count >= b->capacity || payload_len > LC_MAX_PAYLOAD)
        return 0;
    /* Called for every record: the columns and their bounds are spelled out
     * rather than looked up (lc_col_bound gives the same numbers). */
    const struct lc_col_desc *c = b->cols;
#define LC_ROOM(col, need) (c[col].data_cap - c[col].data_used >= (uint64_t)(need))
    return LC_ROOM(LC_COL_MESSAGE, 3ull * payload_len) && LC_ROOM(LC_COL_RAW, payload_len) &&
           LC_ROOM(LC_COL_STRUCTURED_DATA, payload_len) && LC_ROOM(LC_COL_HOSTNAME, LC_MAX_HOSTNAME) &&
           LC_ROOM(LC_COL_APP_NAME, LC_MAX_APP_NAME) && LC_ROOM(LC_COL_PROCID, LC_MAX_PROCID) &&
           LC_ROOM(LC_COL_MSGID, LC_MAX_MSGID) && LC_ROOM(LC_COL_SRC_IP, LC_MAX_IP_TEXT) &&
           LC_ROOM(LC_COL_DST_IP, LC_MAX_IP_TEXT) && LC_ROOM(LC_COL_FORMAT, LC_MAX_FORMAT);
#undef LC_ROOM
}
