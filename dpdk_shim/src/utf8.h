/* utf8.h - the one UTF-8 rule of the decoder: text is copied as valid
 * UTF-8, each maximal invalid subpart replaced by one U+FFFD, exactly what
 * Python's bytes.decode("utf-8", "replace") does (Unicode's "best practice
 * for U+FFFD substitution", chapter 3 / table 3-8): a lead byte followed by
 * a correct but incomplete continuation is one subpart ("\xE2\x82" -> one
 * U+FFFD), a byte that cannot start or continue a sequence is one subpart
 * each. Pinned against Python by tests/unit/test_utf8.py.
 *
 * ASCII runs move sixteen bytes at a time with SSE2 (eight without it); the
 * common all-ASCII message costs one load, two tests and one store per
 * sixteen bytes. Static inline: the syslog layer
 * and the network layer (raw records of fragments) share it.
 */
#pragma once

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "../lc_batch.h"
#include "lc_batch_write.h"     /* LC_LIKELY */

#define LC_UTF8_ASCII8 0x8080808080808080ull
#define LC_UTF8_ONES8 0x0101010101010101ull

/* Length of the maximal valid prefix of a sequence starting with the
 * non-ASCII byte s[0] of s[0..n): the sequence length when it is complete
 * and valid (*ok = 1), else the length of the maximal subpart to replace
 * (>= 1, *ok = 0). Unicode 15 table 3-7 for the second byte's range. */
static inline uint32_t lc_utf8_step(const uint8_t *s, uint32_t n, int *ok)
{
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    uint32_t need;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *ok = 0;                        /* 0x80..0xC1, 0xF5..0xFF: never valid */
        return 1;
    }
    uint32_t k = 1;
    while (k <= need && k < n && s[k] >= lo && s[k] <= hi) {
        lo = 0x80;
        hi = 0xBF;
        k++;
    }
    *ok = k == need + 1;
    return k;
}

/* Copy s[0..n) to out as valid UTF-8 (out: 3n bytes at most). Sets
 * LC_F_BAD_UTF8 when something was replaced, LC_F_NUL_BYTES when a NUL was
 * kept. Returns the bytes written. */
static inline uint32_t lc_utf8_copy(uint8_t *out, const uint8_t *s, uint32_t n, uint16_t *flags)
{
    uint32_t i = 0, o = 0;
    uint64_t nul = 0;
    for (;;) {
#ifdef __SSE2__
        /* o <= 3i (an input byte becomes at most three), so the 16 bytes
         * stored at o fit out's 3n: o + 16 <= 3(i + 16) <= 3n. */
        const __m128i zero = _mm_setzero_si128();
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            if (_mm_movemask_epi8(v))
                break;
            nul |= (uint64_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
            _mm_storeu_si128((__m128i *)(out + o), v);
            i += 16;
            o += 16;
        }
#endif
        while (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (v & LC_UTF8_ASCII8)
                break;
            nul |= (v - LC_UTF8_ONES8) & ~v & LC_UTF8_ASCII8;   /* any zero byte */
            memcpy(out + o, &v, 8);
            i += 8;
            o += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            nul |= c == 0;
            out[o++] = c;
            i++;
            continue;
        }
        int ok;
        uint32_t k = lc_utf8_step(s + i, n - i, &ok);
        if (LC_LIKELY(ok)) {
            memcpy(out + o, s + i, k);
            o += k;
        } else {
            out[o] = 0xEF;
            out[o + 1] = 0xBF;
            out[o + 2] = 0xBD;
            o += 3;
            *flags |= LC_F_BAD_UTF8;
        }
        i += k;
    }
    if (nul)
        *flags |= LC_F_NUL_BYTES;
    return o;
}

/* 1 if s[0..n) is valid UTF-8. */
static inline int lc_utf8_valid(const uint8_t *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!(v & LC_UTF8_ASCII8)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int ok;
        i += lc_utf8_step(s + i, n - i, &ok);
        if (!ok)
            return 0;
    }
    return 1;
}
