/* jsonl.c - JSON lines straight from a batch (lc_batch_jsonl, lc_decode.h).
 *
 * One object per row, keys in schema order with the schema's names;
 * timestamps as RFC 3339 UTC with nanoseconds; nulls as null; integers as
 * numbers; strings JSON-escaped; `raw` as standard base64 (only when asked).
 * Rows are written whole: one that does not fit is rolled back.
 */
#include <stdint.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "lc_batch_write.h"

struct lc_jw {
    char *o;
    uint64_t pos;
    uint64_t cap;
    int full;
};

static inline int lc_jw_room(struct lc_jw *w, uint64_t n)
{
    if (LC_UNLIKELY(w->full || w->cap - w->pos < n)) {
        w->full = 1;
        return 0;
    }
    return 1;
}

static inline void lc_jw_put(struct lc_jw *w, const void *p, uint64_t n)
{
    if (lc_jw_room(w, n)) {
        memcpy(w->o + w->pos, p, n);
        w->pos += n;
    }
}

static inline void lc_jw_uint(struct lc_jw *w, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    lc_jw_put(w, tmp + sizeof(tmp) - n, (uint64_t)n);
}

/* ---- time -------------------------------------------------------------- */

/* Howard Hinnant's civil_from_days: days since 1970-01-01 -> y/m/d (proleptic Gregorian). */
static void lc_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static inline void lc_digits(char *o, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" with quotes: 32 bytes. int64 ns spans
 * the years 1677..2262, so the year always has four digits. */
static void lc_jw_time(struct lc_jw *w, int64_t ns)
{
    if (!lc_jw_room(w, 32))
        return;
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    lc_civil_from_days(days, &y, &m, &d);
    char *o = w->o + w->pos;
    o[0] = '"';
    lc_digits(o + 1, (uint64_t)y, 4);
    o[5] = '-';
    lc_digits(o + 6, m, 2);
    o[8] = '-';
    lc_digits(o + 9, d, 2);
    o[11] = 'T';
    lc_digits(o + 12, (uint64_t)(sod / 3600), 2);
    o[14] = ':';
    lc_digits(o + 15, (uint64_t)(sod / 60 % 60), 2);
    o[17] = ':';
    lc_digits(o + 18, (uint64_t)(sod % 60), 2);
    o[20] = '.';
    lc_digits(o + 21, (uint64_t)frac, 9);
    o[30] = 'Z';
    o[31] = '"';
    w->pos += 32;
}

/* ---- strings ----------------------------------------------------------- */

/* 0: copy as is; 1: \u00XX; other: the short escape's letter. */
static const uint8_t lc_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 't', 'n', 1, 1, 'r', 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = '"', ['\\'] = '\\',
};

static void lc_jw_str(struct lc_jw *w, const uint8_t *p, uint32_t n)
{
    static const char hex[] = "0123456789abcdef";
    lc_jw_put(w, "\"", 1);
    uint32_t run = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t e = lc_esc[p[i]];
        if (LC_LIKELY(!e))
            continue;
        lc_jw_put(w, p + run, i - run);
        run = i + 1;
        if (e == 1) {
            char u[6] = {'\\', 'u', '0', '0', hex[p[i] >> 4], hex[p[i] & 0xf]};
            lc_jw_put(w, u, 6);
        } else {
            char s[2] = {'\\', (char)e};
            lc_jw_put(w, s, 2);
        }
    }
    lc_jw_put(w, p + run, n - run);
    lc_jw_put(w, "\"", 1);
}

static void lc_jw_base64(struct lc_jw *w, const uint8_t *p, uint32_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t out = 4 * (((uint64_t)n + 2) / 3);
    if (!lc_jw_room(w, out + 2))
        return;
    char *o = w->o + w->pos;
    *o++ = '"';
    uint32_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = '=';
    }
    *o++ = '"';
    w->pos += out + 2;
}

/* ---- rows -------------------------------------------------------------- */

static inline int lc_valid(const uint8_t *base, const struct lc_col_desc *c, uint32_t row)
{
    return !c->validity_off || (base[c->validity_off + (row >> 3)] >> (row & 7)) & 1;
}

int lc_batch_jsonl(const struct lc_batch_hdr *b, uint32_t first, uint32_t n, int with_raw,
                   char *out, uint64_t cap, uint64_t *used)
{
    const uint8_t *base = (const uint8_t *)b;
    struct lc_jw w = {out, 0, cap, 0};
    char key[LC_NCOLS][24];     /* ",\"structured_data\":" is the longest */
    uint32_t keylen[LC_NCOLS];
    int rows = 0;

    for (int col = 0; col < LC_NCOLS; col++) {
        const char *name = lc_col_name(col);
        size_t len = strlen(name);
        key[col][0] = col ? ',' : '{';
        key[col][1] = '"';
        memcpy(key[col] + 2, name, len);
        key[col][len + 2] = '"';
        key[col][len + 3] = ':';
        keylen[col] = (uint32_t)len + 4;
    }
    if (first > b->count)
        first = b->count;
    if (n > b->count - first)
        n = b->count - first;

    for (uint32_t row = first; row < first + n; row++) {
        uint64_t start = w.pos;
        for (int col = 0; col < LC_NCOLS; col++) {
            const struct lc_col_desc *c = &b->cols[col];
            if (col == LC_COL_RAW && !with_raw)
                continue;
            lc_jw_put(&w, key[col], keylen[col]);
            if (!lc_valid(base, c, row)) {
                lc_jw_put(&w, "null", 4);
                continue;
            }
            const uint8_t *vals = base + c->values_off;
            switch (c->kind) {
            case LC_KIND_I64:
                lc_jw_time(&w, ((const int64_t *)vals)[row]);
                break;
            case LC_KIND_U16:
                lc_jw_uint(&w, ((const uint16_t *)vals)[row]);
                break;
            case LC_KIND_U8:
                lc_jw_uint(&w, vals[row]);
                break;
            case LC_KIND_STR:
            case LC_KIND_BIN: {
                const int32_t *offs = (const int32_t *)vals;
                const uint8_t *s = base + c->data_off + offs[row];
                uint32_t len = (uint32_t)(offs[row + 1] - offs[row]);
                if (c->kind == LC_KIND_STR)
                    lc_jw_str(&w, s, len);
                else
                    lc_jw_base64(&w, s, len);
                break;
            }
            }
        }
        lc_jw_put(&w, "}\n", 2);
        if (w.full) {
            w.pos = start;
            break;
        }
        rows++;
    }
    *used = w.pos;
    return rows;
}
