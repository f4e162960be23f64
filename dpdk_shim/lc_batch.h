#pragma once
/* lc_batch.h - the columnar batch: one ring slot, Arrow-compatible buffers.
 *
 * This header is read by the cffi build script (ffi.cdef), so it holds only
 * declarations cffi understands: no macros with bodies, no inline code.
 * The C side's inline writers live in lc_batch_write.h.
 *
 * Layout of a batch (all offsets relative to the batch start, 64-byte aligned):
 *   struct lc_batch_hdr
 *   per column: values (fixed width) or int32 offsets[capacity + 1] (strings),
 *               validity bitmap (nullable columns only), string data area.
 * A worker wraps each buffer with pyarrow.foreign_buffer and builds a
 * RecordBatch without copying (appliance/batch.py).
 */

#define LC_BATCH_MAGIC 0x3142434c   /* "LCB1" in memory order */
#define LC_BATCH_VERSION 2   /* 2: message has a validity bitmap (nullable) */
#define LC_MAX_PAYLOAD 65535        /* largest UDP payload a record holds */

/* Column order is the record schema's order (DESIGN.md; schema version 2:
 * message nullable). */
enum lc_col {
    LC_COL_RX_TIME = 0,
    LC_COL_SRC_IP,
    LC_COL_DST_IP,
    LC_COL_SRC_PORT,
    LC_COL_DST_PORT,
    LC_COL_VLAN,
    LC_COL_FACILITY,
    LC_COL_SEVERITY,
    LC_COL_FORMAT,
    LC_COL_TIMESTAMP,
    LC_COL_HOSTNAME,
    LC_COL_APP_NAME,
    LC_COL_PROCID,
    LC_COL_MSGID,
    LC_COL_STRUCTURED_DATA,
    LC_COL_MESSAGE,
    LC_COL_RAW,
    LC_COL_FLAGS,
    LC_NCOLS
};

/* Column kinds; the Python schema maps each to its Arrow type. */
enum lc_col_kind {
    LC_KIND_I64 = 0,   /* timestamp[ns, UTC] */
    LC_KIND_U16,
    LC_KIND_U8,
    LC_KIND_STR,       /* utf8, int32 offsets */
    LC_KIND_BIN        /* binary, int32 offsets */
};

/* Record flags: bit set in the `flags` column. Documented in docs/FLAGS.md. */
#define LC_F_BAD_PRI        0x0001  /* PRI missing, not digits, > 191 or unterminated */
#define LC_F_TRUNCATED      0x0002  /* IP/UDP length claims more than captured (socket: datagram > buffer) */
#define LC_F_BAD_UTF8       0x0004  /* invalid UTF-8 in MSG, replaced with U+FFFD */
#define LC_F_BAD_TIMESTAMP  0x0008  /* a timestamp field is present but invalid */
#define LC_F_FRAGMENT       0x0010  /* IP fragment: first decoded, others kept raw */
#define LC_F_BAD_HEADER     0x0020  /* RFC 5424 header or SD malformed */
#define LC_F_BAD_UDP        0x0040  /* UDP length below 8 or inconsistent with IP */
#define LC_F_BAD_IP         0x0080  /* IP header inconsistent (IHL, total length, ext hdrs) */
#define LC_F_YEAR_INFERRED  0x0100  /* RFC 3164 date without year: year taken from rx_time */
#define LC_F_EMPTY          0x0200  /* empty UDP payload */
#define LC_F_NUL_BYTES      0x0400  /* NUL bytes inside MSG (kept in message, as sent) */
#define LC_F_VERSION        0x0800  /* RFC 5424 VERSION 2..999, header well formed: decoded as RFC 5424 */
#define LC_F_NEWLINE        0x1000  /* line breaks ending the payload not in message (raw keeps them) */
#define LC_F_AMBIGUOUS      0x2000  /* a header token could be two fields (docs/SYSLOG.md: which, and how read) */
#define LC_F_SEQ_GAP        0x4000  /* the sender's sequence skipped numbers before this record (lost upstream) */
#define LC_F_NBITS 15

struct lc_col_desc {
    uint32_t kind;          /* enum lc_col_kind */
    uint32_t values_off;    /* fixed-width values, or int32 offsets[capacity+1] */
    uint32_t validity_off;  /* Arrow validity bitmap; 0 = column not nullable */
    uint32_t data_off;      /* string/binary bytes; 0 for fixed-width columns */
    uint32_t data_cap;      /* bytes available at data_off */
    uint32_t data_used;     /* bytes written so far */
};

struct lc_batch_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t queue_id;
    uint64_t seq;             /* per-queue batch sequence number */
    uint32_t count;           /* records in this batch */
    uint32_t capacity;        /* records this batch can hold */
    int64_t first_rx_ns;
    int64_t last_rx_ns;
    uint32_t total_size;      /* bytes of the whole batch, header included */
    uint32_t avg_payload;     /* sizing hint the batch was laid out with */
    struct lc_col_desc cols[18];
};

/* Size in bytes of a batch for `capacity` records, with string areas sized
 * for `avg_payload` bytes of UDP payload per record; every area also holds
 * one record of LC_MAX_PAYLOAD bytes, so an empty batch takes any packet. */
int64_t lc_batch_size(uint32_t capacity, uint32_t avg_payload);

/* Lay out a batch in caller memory of `size` bytes. Returns 0 or -EINVAL. */
int lc_batch_init(void *mem, uint64_t size, uint32_t capacity,
                  uint32_t avg_payload, uint16_t queue_id);

/* Empty a batch for reuse (keeps its layout), with a new sequence number. */
void lc_batch_reset(struct lc_batch_hdr *b, uint64_t seq);

/* Move a filled batch's buffers together so it takes only the bytes it
 * holds; returns its new total_size. The batch is read-only afterwards
 * (lay it out again with lc_batch_init to reuse the memory). */
int64_t lc_batch_compact(struct lc_batch_hdr *b);

/* 1 if a record with `payload_len` bytes of UDP payload fits, else 0. */
int lc_batch_room(const struct lc_batch_hdr *b, uint32_t payload_len);

/* Field name of a column (the schema's), for the Python-side check. */
const char *lc_col_name(int col);
/* Kind (enum lc_col_kind) and nullability (1/0) of a column, or -EINVAL. */
int lc_col_kind(int col);
int lc_col_nullable(int col);

/* ABI version of the compiled shim; Python refuses a stale build. */
int lc_abi_version(void);
