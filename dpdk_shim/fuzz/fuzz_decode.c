/* fuzz_decode.c - libFuzzer harness for the frame and syslog decoders.
 *
 * Each input is decoded
 *   - as a frame of every supported link type (Ethernet, raw IP, SLL, SLL2),
 *   - as the UDP payload of a synthetic Ethernet/IPv4/UDP frame, so the
 *     syslog parser sees the bytes directly,
 * into a fresh batch (with a senders table: sequence numbers are looked
 * for and counted), and the batch contract is checked: count, string
 * offsets monotonic and ending at data_used <= data_cap, per-record bounds
 * that lc_batch_room() reserved for, valid UTF-8 in string columns, raw ==
 * the payload, and -ENOSPC leaving batch and counters untouched.
 * Any violation abort()s. Build and run: scripts/fuzz.sh SECONDS.
 */
#define _GNU_SOURCE      /* memmem */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_senders.h"

#define FUZZ_CAPACITY 1          /* one record: the second decode must hit -ENOSPC */
#define FUZZ_AVG_PAYLOAD 64
#define FUZZ_RX_NS 1700000000123456789LL
#define FUZZ_HDR_LEN (14 + 20 + 8)
#define FUZZ_MAX_UDP_PAYLOAD (65535 - 20 - 8)

static struct lc_batch_hdr *fuzz_batch;
static struct lc_senders *fuzz_senders;   /* kept across inputs: a small table, evicting all the time */
static uint8_t fuzz_frame[FUZZ_HDR_LEN + FUZZ_MAX_UDP_PAYLOAD];

#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_decode: invariant broken: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static const uint8_t *col_data(const struct lc_batch_hdr *b, int col, uint32_t row, uint32_t *len)
{
    const struct lc_col_desc *c = &b->cols[col];
    const int32_t *offs = (const int32_t *)((const uint8_t *)b + c->values_off);
    *len = (uint32_t)(offs[row + 1] - offs[row]);
    return (const uint8_t *)b + c->data_off + offs[row];
}

static int utf8_valid(const uint8_t *p, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        uint32_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c == 0xe0) need = 2, lo = 0xa0;
        else if (c == 0xed) need = 2, hi = 0x9f;
        else if (c >= 0xe1 && c <= 0xef) need = 2;
        else if (c == 0xf0) need = 3, lo = 0x90;
        else if (c == 0xf4) need = 3, hi = 0x8f;
        else if (c >= 0xf1 && c <= 0xf3) need = 3;
        else return 0;
        if (n - i <= need)
            return 0;
        for (uint32_t k = 1; k <= need; k++) {
            if (p[i + k] < lo || p[i + k] > hi)
                return 0;
            lo = 0x80, hi = 0xbf;
        }
        i += need + 1;
    }
    return 1;
}

/* Per-record bound of a string column for a payload of `len` bytes (batch.c). */
static uint64_t col_bound(int col, uint32_t len)
{
    switch (col) {
    case LC_COL_SRC_IP:
    case LC_COL_DST_IP: return 39;
    case LC_COL_FORMAT: return 7;
    case LC_COL_HOSTNAME: return 255;
    case LC_COL_APP_NAME: return 48;
    case LC_COL_PROCID: return 128;
    case LC_COL_MSGID: return 32;
    case LC_COL_MESSAGE: return 3ull * len;
    default: return len;            /* structured_data, raw */
    }
}

static void check_batch(const struct lc_batch_hdr *b)
{
    FUZZ_CHECK(b->magic == LC_BATCH_MAGIC && b->count <= b->capacity);
    for (int col = 0; col < LC_NCOLS; col++) {
        const struct lc_col_desc *c = &b->cols[col];
        FUZZ_CHECK(c->data_used <= c->data_cap);
        if (c->kind != LC_KIND_STR && c->kind != LC_KIND_BIN)
            continue;
        const int32_t *offs = (const int32_t *)((const uint8_t *)b + c->values_off);
        FUZZ_CHECK(offs[0] == 0);
        for (uint32_t r = 0; r < b->count; r++)
            FUZZ_CHECK(offs[r] <= offs[r + 1]);
        FUZZ_CHECK((uint32_t)offs[b->count] == c->data_used);
    }
    for (uint32_t r = 0; r < b->count; r++) {
        uint32_t raw_len, len;
        col_data(b, LC_COL_RAW, r, &raw_len);
        for (int col = 0; col < LC_NCOLS; col++) {
            if (b->cols[col].kind != LC_KIND_STR)
                continue;
            const uint8_t *s = col_data(b, col, r, &len);
            FUZZ_CHECK(len <= col_bound(col, raw_len));
            FUZZ_CHECK(utf8_valid(s, len));
        }
        const uint8_t *fmt = col_data(b, LC_COL_FORMAT, r, &len);
        FUZZ_CHECK((len == 3 && !memcmp(fmt, "raw", 3)) || (len == 7 && !memcmp(fmt, "rfc5424", 7)) ||
                   (len == 7 && !memcmp(fmt, "rfc3164", 7)));
    }
}

/* Decode one frame into an empty batch, check it; then once more into the
 * now full batch: -ENOSPC with nothing written or counted. */
static void run(int link, const uint8_t *frame, uint32_t len, int32_t tz,
                const uint8_t *payload, uint32_t plen)
{
    struct lc_decoder d, saved;
    memset(&d, 0, sizeof(d));
    d.tz_offset_s = tz;
    d.senders = fuzz_senders;
    lc_batch_reset(fuzz_batch, 0);
    int rc = lc_decode_frame(&d, fuzz_batch, link, frame, len, FUZZ_RX_NS);
    FUZZ_CHECK(rc == 0 || rc == 1);
    FUZZ_CHECK(fuzz_batch->count == (uint32_t)rc);
    FUZZ_CHECK(d.frames == 1 && d.records == (uint64_t)rc);
    FUZZ_CHECK(d.records + d.not_ip + d.not_udp + d.malformed + d.port_filtered == d.frames);
    FUZZ_CHECK(d.format_counts[0] + d.format_counts[1] + d.format_counts[2] == d.records);
    check_batch(fuzz_batch);
    if (rc == 0) {
        FUZZ_CHECK(!payload);
        return;
    }
    uint32_t raw_len;
    const uint8_t *raw = col_data(fuzz_batch, LC_COL_RAW, 0, &raw_len);
    FUZZ_CHECK(d.bytes == raw_len);
    if (payload) {
        FUZZ_CHECK(raw_len == plen && !memcmp(raw, payload, plen));
    } else {
        FUZZ_CHECK(raw_len <= len && raw >= (const uint8_t *)fuzz_batch);
        FUZZ_CHECK(raw_len == 0 || memmem(frame, len, raw, raw_len) != NULL);
    }
    uint32_t used[LC_NCOLS];
    for (int col = 0; col < LC_NCOLS; col++)
        used[col] = fuzz_batch->cols[col].data_used;
    saved = d;
    rc = lc_decode_frame(&d, fuzz_batch, link, frame, len, FUZZ_RX_NS + 1);
    FUZZ_CHECK(rc == -ENOSPC);
    FUZZ_CHECK(!memcmp(&saved, &d, sizeof(d)) && fuzz_batch->count == 1);
    for (int col = 0; col < LC_NCOLS; col++)
        FUZZ_CHECK(fuzz_batch->cols[col].data_used == used[col]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    int64_t size = lc_batch_size(FUZZ_CAPACITY, FUZZ_AVG_PAYLOAD);
    if (size < 0 || !(fuzz_batch = aligned_alloc(64, ((uint64_t)size + 63) & ~63ull)) ||
        lc_batch_init(fuzz_batch, (uint64_t)size, FUZZ_CAPACITY, FUZZ_AVG_PAYLOAD, 0) != 0)
        abort();
    static const uint8_t hdr[FUZZ_HDR_LEN] = {
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,           /* Ethernet */
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0,                   /* IPv4 (length set below) */
        198, 18, 0, 1, 198, 18, 0, 2,
        0x9c, 0x40, 0x02, 0x02, 0, 0, 0, 0,                        /* UDP 40000 -> 514 */
    };
    memcpy(fuzz_frame, hdr, sizeof(hdr));
    int64_t tsize = lc_senders_size(4);
    if (tsize < 0 || !(fuzz_senders = aligned_alloc(64, ((uint64_t)tsize + 63) & ~63ull)) ||
        lc_senders_init(fuzz_senders, (uint64_t)tsize, 4, 1000) != 0)
        abort();
    struct lc_seq_rule *r = fuzz_senders->rules;      /* the defaults (appliance/config.py) */
    r[0] = (struct lc_seq_rule){.kind = LC_SEQ_CISCO, .per_app = 0, .min = 0, .max = 4294967295ull};
    r[1] = (struct lc_seq_rule){.kind = LC_SEQ_SD, .per_app = 1, .sd_id_len = 4, .param_len = 10,
                                .sd_id = "meta", .param = "sequenceId", .min = 1, .max = 2147483647};
    fuzz_senders->nrules = 2;
    fuzz_senders->traffic = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t tz = (int32_t)(size % 57) * 1800 - 14 * 3600;     /* -14h .. +14h */
    uint32_t len = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    static const int links[] = {LC_LINK_ETHERNET, LC_LINK_RAW, LC_LINK_LINUX_SLL, LC_LINK_LINUX_SLL2};
    for (unsigned i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        run(links[i], data, len, tz, NULL, 0);

    uint32_t plen = len > FUZZ_MAX_UDP_PAYLOAD ? FUZZ_MAX_UDP_PAYLOAD : len;
    uint32_t ip_len = 20 + 8 + plen, udp_len = 8 + plen;
    fuzz_frame[16] = (uint8_t)(ip_len >> 8), fuzz_frame[17] = (uint8_t)ip_len;
    fuzz_frame[38] = (uint8_t)(udp_len >> 8), fuzz_frame[39] = (uint8_t)udp_len;
    memcpy(fuzz_frame + FUZZ_HDR_LEN, data, plen);
    run(LC_LINK_ETHERNET, fuzz_frame, FUZZ_HDR_LEN + plen, tz, fuzz_frame + FUZZ_HDR_LEN, plen);
    return 0;
}
