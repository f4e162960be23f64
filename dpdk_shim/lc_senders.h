#pragma once
/* lc_senders.h - what the RX loop keeps per sender: traffic, sequence gaps
 * (loss upstream of the box) and per-source budgets.
 * Read by ffi.cdef: declarations only (see lc_batch.h).
 *
 * Both tables are set-associative (LC_TABLE_WAYS entries per set, the least
 * recently used one of a full set is replaced), live in memory the caller
 * provides (a shared file: `logcaster top` and `stats --sources` read them
 * while the RX loop writes), and have one writer, the queue's RX loop.
 * Totals never depend on the table: they are counted in struct lc_decoder,
 * so an evicted sender takes only its own row with it.
 */

#define LC_TABLE_WAYS 8
#define LC_SEQ_RULES_MAX 8
#define LC_SEQ_WINDOW 64          /* sequence numbers behind the newest that count as late, not a restart */
#define LC_BUDGET_OVERRIDES_MAX 64
#define LC_SENDERS_MAGIC 0x31534e4c   /* "LNS1" */
#define LC_BUDGET_MAGIC 0x3142474c    /* "LGB1" */

/* Where a sender's sequence number is found. */
enum lc_seq_kind {
    LC_SEQ_CISCO = 1,    /* IOS/NX-OS "service sequence-numbers": "<189>000123: ..." */
    LC_SEQ_SD = 2        /* RFC 5424 SD-PARAM: [meta sequenceId="7"], [origin@x seq="7"] */
};

struct lc_seq_rule {
    uint8_t kind;                /* enum lc_seq_kind */
    uint8_t per_app;             /* 1: the key is (source, app_name); 0: (source) */
    uint8_t sd_id_len;
    uint8_t param_len;
    char sd_id[32];
    char param[32];
    uint64_t min;                /* first number after a wrap (RFC 5424 sequenceId: 1) */
    uint64_t max;                /* last number before it wraps (2147483647) */
};

/* One sender: a source address and, for per_app rules and unsequenced
 * records, an app_name. 192 bytes; what every record touches is in the
 * first 64 (a lookup compares hash, app_len and addr; the app name itself
 * is stood for by the 64-bit hash). */
struct lc_sender {
    uint64_t hash;               /* of the key; 0: empty slot */
    uint64_t used;               /* the table's clock at the last record (LRU) */
    uint64_t records;
    uint64_t bytes;
    uint64_t last_ns;            /* rx time of the last record */
    uint8_t addr[16];            /* IPv4 as ::ffff:a.b.c.d */
    uint8_t app_len;
    uint8_t seq_rule;            /* 1 + rule index of its sequenced records, 0: none seen */
    uint8_t seq_tracking;        /* seq_last holds a number */
    uint8_t pad0[5];
    char app[48];
    uint64_t seq_last;           /* highest sequence number seen since the last reset */
    uint64_t seq_first;          /* first number seen since the last reset */
    uint64_t seq_missing;        /* bit i: seq_last - 1 - i was skipped and has not come since */
    uint64_t lost;               /* skipped numbers that never came (upstream loss) */
    uint64_t gaps;               /* records that came after a gap */
    uint64_t duplicates;
    uint64_t reorders;           /* late records: a skipped number that came after all */
    uint64_t resets;             /* restarts (reboot, jump beyond max_gap) and wraps */
    uint64_t pad1[2];
};

struct lc_senders {
    uint32_t magic;
    uint32_t nsets;              /* power of two */
    uint64_t clock;              /* records seen (the LRU clock) */
    uint64_t evictions;          /* senders replaced in a full set */
    uint64_t max_gap;            /* a jump forward by more is a restart, not loss */
    uint32_t nrules;
    uint32_t traffic;            /* 1: every record counts in its sender's row; 0: sequenced records only */
    struct lc_seq_rule rules[8];
    uint64_t reserved[4];
};

/* One source address under a budget (GCRA: a token bucket in one number). */
struct lc_budget_entry {
    uint8_t addr[16];
    uint64_t hash;
    uint64_t used;
    uint64_t tat;                /* theoretical arrival time, ns */
    uint64_t interval_ns;        /* 1e9 / rate; 0: unlimited */
    uint64_t tolerance_ns;       /* (burst - 1) * interval */
    uint64_t passed;
    uint64_t throttled;
};

struct lc_budget_override {
    uint8_t addr[16];            /* prefix, IPv4 as ::ffff:a.b.c.d */
    uint32_t prefix_len;         /* of the 128 bits */
    uint32_t pad;
    uint64_t interval_ns;
    uint64_t tolerance_ns;
};

struct lc_budget {
    uint32_t magic;
    uint32_t nsets;
    uint64_t clock;
    uint64_t evictions;
    uint64_t interval_ns;        /* the default budget */
    uint64_t tolerance_ns;
    uint32_t noverrides;
    uint32_t pad;
    struct lc_budget_override overrides[64];
};

/* Bytes for a senders table of `nsets` sets (a power of two); lay it out in
 * zeroed memory with lc_senders_init. Returns 0 or -EINVAL. */
int64_t lc_senders_size(uint32_t nsets);
int lc_senders_init(void *mem, uint64_t size, uint32_t nsets, uint64_t max_gap);

int64_t lc_budget_size(uint32_t nsets);
int lc_budget_init(void *mem, uint64_t size, uint32_t nsets, uint64_t interval_ns, uint64_t tolerance_ns);

/* Account one record of `payload_len` bytes from `addr` (16 bytes) with
 * app_name app[0..app_len) (app NULL: none), and its sequence number when
 * rule > 0 (1 + rule index). Counts totals in d, the sender in t; returns
 * LC_F_SEQ_GAP when numbers were skipped before this one. For tests and
 * the benchmark; the decoder calls the same code inline. */
uint16_t lc_senders_observe(struct lc_decoder *d, struct lc_senders *t, const uint8_t *addr,
                            const uint8_t *app, uint32_t app_len, uint32_t rule, uint64_t seq,
                            uint32_t payload_len, int64_t rx_ns);

/* 1 if a datagram from `addr` at `now_ns` is within its budget (counted
 * passed), 0 if not (counted throttled, in t and d). */
int lc_budget_take(struct lc_decoder *d, struct lc_budget *t, const uint8_t *addr, uint64_t now_ns);
