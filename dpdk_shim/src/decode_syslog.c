/* decode_syslog.c - the syslog layer: RFC 5424, RFC 3164 and the vendor
 * dialects seen in the field, from one UDP payload into one batch row.
 *
 * The payload is parsed into spans (pointers into the payload) first and
 * written to the row at the end, so a header found malformed half-way never
 * leaves half a record. Every read is bounds checked against p[0..n).
 *
 * Decisions (docs/SYSLOG.md, docs/FLAGS.md and DESIGN.md describe them for
 * users):
 *  - What is parsed: the payload without white space before "<PRI>" and
 *    without the line breaks that end it (and padding after them):
 *    LC_F_NEWLINE. raw always keeps every byte.
 *  - PRI: '<' 1-3 digits '>' with value 0..191; leading zeros ("<013>") are
 *    accepted and decoded. Anything else sets LC_F_BAD_PRI and leaves
 *    facility/severity null; a malformed "<...>" (closed within 8 bytes) is
 *    skipped and the rest still parsed.
 *  - Format: "<PRI>1 " starts RFC 5424; "<PRI>2 " .. "<PRI>999 " too when
 *    the whole header is well formed (LC_F_VERSION). Any other text after a valid PRI is
 *    RFC 3164 (even "<13>hello world": timestamp and hostname null). Without
 *    a valid PRI the record is RFC 3164 only when a timestamp starts the text
 *    (after the malformed PRI, or the Cisco sequence number); otherwise it
 *    is raw. "<bad-PRI>1 " is still tried as RFC 5424.
 *  - RFC 5424 header: a field that is empty or not PRINTUSASCII sets
 *    LC_F_BAD_HEADER and the record becomes raw (message = the payload;
 *    facility/severity kept); one longer than its limit is cut there and
 *    flagged LC_F_BAD_HEADER. No MSG at all (no SP after SD): message null. A timestamp token that is
 *    printable but not a valid RFC 3339 time sets LC_F_BAD_TIMESTAMP only.
 *    SD: well-formed elements are kept exactly as sent; at the first
 *    malformed element (or a missing SD) LC_F_BAD_HEADER is set and the
 *    message starts there. Unquoted PARAM-VALUEs (ESXi) are accepted and
 *    kept, with LC_F_BAD_HEADER. Elements with invalid UTF-8 count as
 *    malformed (structured_data is always valid UTF-8, exactly as sent).
 *  - RFC 3164: see lc_parse_3164. Hostname, app_name and procid hold
 *    printable ASCII only: a token with other bytes stays in the message.
 *    An impossible date or time (Feb 30, 25:00) sets LC_F_BAD_TIMESTAMP,
 *    the timestamp is null and parsing continues after it (the timestamp
 *    text is only in raw).
 *  - MSG: a leading UTF-8 BOM is dropped (RFC 5424 and 3164 alike); a raw
 *    record's message is the payload (BOM included; without the line
 *    breaks that end it, as every record's). Invalid UTF-8:
 *    each maximal invalid subpart becomes one U+FFFD, as Python's
 *    decode("utf-8", "replace") does (utf8.h; LC_F_BAD_UTF8).
 *    NUL bytes are kept (LC_F_NUL_BYTES).
 *  - A token that two families of senders read as different fields stays
 *    where the RFC, then syslog-ng and rsyslog, put it, and the record is
 *    flagged LC_F_AMBIGUOUS (lc_parse_host, lc_word_like_tag).
 */
#include <stdint.h>
#include <string.h>

#include "lc_batch_write.h"
#include "decode_syslog.h"
#include "senders.h"
#include "syslog_time.h"
#include "utf8.h"

#define LC_PRI_MAX 191
#define LC_PRI_DIGITS 3
#define LC_BAD_PRI_SCAN 8      /* a malformed PRI must close within p[1..8] */
#define LC_SD_NAME_MAX 32      /* SD-NAME, RFC 5424 6.3.2 */
#define LC_SD_NAME_LONG 255    /* longer ones are kept (as syslog-ng does), flagged */
#define LC_SEQ_DIGITS 10       /* Cisco sequence number "000123: " */
#define LC_SD_ELEMS 8          /* SD-ELEMENTs whose start a record keeps (sequence rules look there) */
#define LC_ASCII_MASK 0x8080808080808080ull
#define LC_ONES 0x0101010101010101ull

static const char *const lc_format_names[3] = {"rfc5424", "rfc3164", "raw"};
static const uint8_t lc_format_lens[3] = {7, 7, 3};

/* A field of the record: bytes of the payload, or null (p == NULL). */
struct lc_span {
    const uint8_t *p;
    uint32_t n;
};

struct lc_rec {
    uint16_t flags;
    uint8_t fmt;
    uint8_t has_pri;
    uint8_t pri;
    uint8_t has_ts;
    uint8_t no_msg;          /* RFC 5424 without MSG: message is null */
    int64_t ts;
    struct lc_span host, app, procid, msgid, sd;
    struct lc_span cisco_seq;    /* Cisco's sequence number, digits (NULL: none) */
    uint8_t nsd;             /* SD-ELEMENTs kept, up to LC_SD_ELEMS: where each starts in p */
    uint32_t sd_at[LC_SD_ELEMS];
    uint32_t msg;            /* message is payload[msg..n) */
};

static inline int lc_dig(uint8_t c) { return (unsigned)(c - '0') < 10; }

/* Character classes of header bytes, one table lookup per byte. */
#define LC_C_PRINT 0x01    /* PRINTUSASCII, RFC 5424: %d33-126 */
#define LC_C_SDNAME 0x02   /* SD-NAME: PRINTUSASCII except '=', SP, ']', '"' */
#define LC_C_TAG 0x04      /* RFC 3164 TAG name: printable except '[', ']', ':'
                              (generous: "postfix/smtpd", "%ASA-6-302013") */
#define LC_C_HOST 0x08     /* RFC 3164 HOSTNAME: printable except '[' */
#define LC_C_PID 0x10      /* TAG "[pid]": printable except ']' */
#define LC_C_SDVAL 0x20    /* unquoted PARAM-VALUE (ESXi): printable except ']', '"' */
#define LC_C_ALL 0x3f

static const uint8_t lc_cls[256] = {
    ['!'] = LC_C_ALL,
    ['"'] = LC_C_ALL & ~(LC_C_SDNAME | LC_C_SDVAL),
    ['#' ... '9'] = LC_C_ALL,
    [':'] = LC_C_ALL & ~LC_C_TAG,
    [';' ... '<'] = LC_C_ALL,
    ['='] = LC_C_ALL & ~LC_C_SDNAME,
    ['>' ... 'Z'] = LC_C_ALL,
    ['['] = LC_C_ALL & ~(LC_C_TAG | LC_C_HOST),
    ['\\'] = LC_C_ALL,
    [']'] = LC_C_PRINT | LC_C_HOST,
    ['^' ... '~'] = LC_C_ALL,
};

static inline int lc_print(uint8_t c) { return lc_cls[c] & LC_C_PRINT; }

/* First index in [i, stop) whose byte lacks class `c`, or stop. */
static inline uint32_t lc_span_cls(const uint8_t *p, uint32_t i, uint32_t stop, uint8_t c)
{
    while (i < stop && (lc_cls[p[i]] & c))
        i++;
    return i;
}

static inline uint32_t lc_min(uint32_t a, uint32_t b) { return a < b ? a : b; }

static inline int lc_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the word scans assume little endian");

/* Byte-parallel tests on eight bytes: the lowest flagged byte of each mask
 * is exact (borrows and carries only flag bytes above a flagged one). */
static inline uint64_t lc_zero_bytes(uint64_t v) { return (v - LC_ONES) & ~v & LC_ASCII_MASK; }

static inline uint64_t lc_nonprint_bytes(uint64_t v)
{
    return ((v - 0x21 * LC_ONES) & ~v & LC_ASCII_MASK) | (((v + LC_ONES) | v) & LC_ASCII_MASK);
}

/* Index of the first byte == c in [i, n), or n. Inline, eight bytes at a
 * time: the strings searched (tokens, PARAM-VALUEs) are mostly short, where
 * a call to memchr costs more than the search. */
static inline uint32_t lc_find(const uint8_t *p, uint32_t i, uint32_t n, uint8_t c)
{
    const uint64_t pat = c * LC_ONES;
    while (i + 8 <= n) {
        uint64_t v, z;
        memcpy(&v, p + i, 8);
        if ((z = lc_zero_bytes(v ^ pat)))
            return i + (uint32_t)(__builtin_ctzll(z) >> 3);
        i += 8;
    }
    while (i < n && p[i] != c)
        i++;
    return i;
}

/* First index in [i, stop) whose byte is not PRINTUSASCII or is one of
 * x1, x2, x3 (which define class `c` of lc_cls), or stop. Reads words while
 * they lie inside p[0..n) (stop <= n), bytes for the tail. */
static inline uint32_t lc_span(const uint8_t *p, uint32_t i, uint32_t stop, uint32_t n, uint8_t c,
                               uint8_t x1, uint8_t x2, uint8_t x3)
{
    while (i < stop && i + 8 <= n) {
        uint64_t v, z;
        memcpy(&v, p + i, 8);
        z = lc_nonprint_bytes(v) | lc_zero_bytes(v ^ (x1 * LC_ONES)) |
            lc_zero_bytes(v ^ (x2 * LC_ONES)) | lc_zero_bytes(v ^ (x3 * LC_ONES));
        if (z) {
            i += (uint32_t)(__builtin_ctzll(z) >> 3);
            return i < stop ? i : stop;
        }
        i += 8;
    }
    if (i > stop)
        return stop;
    return lc_span_cls(p, i, stop, c);
}

/* The classes as spans (the excluded bytes repeat when fewer than three). */
#define LC_SPAN_PRINT(p, i, stop, n) lc_span(p, i, stop, n, LC_C_PRINT, ' ', ' ', ' ')
#define LC_SPAN_SDNAME(p, i, stop, n) lc_span(p, i, stop, n, LC_C_SDNAME, '=', ']', '"')
#define LC_SPAN_TAG(p, i, stop, n) lc_span(p, i, stop, n, LC_C_TAG, '[', ']', ':')
#define LC_SPAN_HOST(p, i, stop, n) lc_span(p, i, stop, n, LC_C_HOST, '[', '[', '[')
#define LC_SPAN_PID(p, i, stop, n) lc_span(p, i, stop, n, LC_C_PID, ']', ']', ']')
#define LC_SPAN_SDVAL(p, i, stop, n) lc_span(p, i, stop, n, LC_C_SDVAL, ']', '"', '"')

static inline struct lc_span lc_span_of(const uint8_t *p, uint32_t n)
{
    struct lc_span s = {p, n};
    return s;
}

/* ---- PRI ------------------------------------------------------------ */

/* PRI at the start of p[0..n). Returns the index after it (0 when the
 * payload does not start with a closed "<...>") and sets *pri to 0..191,
 * or -1 when it is missing or malformed. */
static uint32_t lc_parse_pri(const uint8_t *p, uint32_t n, int *pri)
{
    *pri = -1;
    if (n < 2 || p[0] != '<')
        return 0;
    uint32_t i = 1;
    unsigned v = 0;
    while (i < n && i <= LC_PRI_DIGITS && lc_dig(p[i]))
        v = v * 10 + (p[i++] - '0');
    if (i > 1 && i < n && p[i] == '>') {
        if (v <= LC_PRI_MAX)
            *pri = (int)v;
        return i + 1;
    }
    for (uint32_t j = 1; j < n && j <= LC_BAD_PRI_SCAN; j++)
        if (p[j] == '>')
            return j + 1;
    return 0;
}

/* ---- RFC 5424 ------------------------------------------------------- */

/* SD-ELEMENTs from p[i] == '['. Returns the index after the last
 * well-formed element (i if none). *lenient is set when an element used
 * unquoted PARAM-VALUEs or an SD-NAME longer than RFC 5424 allows. */
static uint32_t lc_parse_sd(struct lc_rec *r, const uint8_t *p, uint32_t n, uint32_t i, int *lenient)
{
    uint32_t good = i;
    while (i < n && p[i] == '[') {
        uint32_t k = i + 1, unquoted = 0;   /* or a long SD-NAME: lenient */
        uint32_t j = LC_SPAN_SDNAME(p, k, lc_min(n, k + LC_SD_NAME_LONG + 1), n);
        if (j == k || j - k > LC_SD_NAME_LONG)
            return good;
        unquoted |= j - k > LC_SD_NAME_MAX;
        for (;;) {                                     /* *(SP SD-PARAM) "]" */
            if (j >= n)
                return good;
            if (p[j] == ']') {
                j++;
                break;
            }
            if (p[j] != ' ')
                return good;
            k = ++j;
            j = LC_SPAN_SDNAME(p, k, lc_min(n, k + LC_SD_NAME_LONG + 1), n);
            if (j == k || j - k > LC_SD_NAME_LONG || j >= n || p[j] != '=')
                return good;
            unquoted |= j - k > LC_SD_NAME_MAX;
            j++;
            if (j < n && p[j] == '"') {
                /* The value ends at the first '"' not escaped by '\' (an odd
                 * run of backslashes before it); an unescaped ']' inside it
                 * does not end the element. */
                k = ++j;
                for (;;) {
                    j = lc_find(p, j, n, '"');
                    if (j >= n)
                        return good;
                    uint32_t bs = j;
                    while (bs > k && p[bs - 1] == '\\')
                        bs--;
                    if (((j - bs) & 1) == 0)
                        break;
                    j++;
                }
                if (!lc_utf8_valid(p + k, j - k))
                    return good;
                j++;
            } else {                                   /* ESXi: param=value */
                k = j;
                j = LC_SPAN_SDVAL(p, k, n, n);
                if (j == k)
                    return good;
                unquoted = 1;
            }
        }
        if (unquoted)
            *lenient = 1;
        if (r->nsd < LC_SD_ELEMS)
            r->sd_at[r->nsd++] = i;
        good = i = j;
    }
    return good;
}

static inline int lc_is_nil(const uint8_t *p, uint32_t n) { return n == 1 && p[0] == '-'; }

static const uint32_t lc_5424_limits[5] = {
    UINT32_MAX, LC_MAX_HOSTNAME, LC_MAX_APP_NAME, LC_MAX_PROCID, LC_MAX_MSGID,
};

/* "TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]"
 * from p[i] (after "<PRI>1 "). A field longer than its RFC limit is cut
 * there and flagged, as syslog-ng and rsyslog do (the rest stays in raw). */
static void lc_parse_5424(const struct lc_decoder *d, struct lc_rec *r, const uint8_t *p,
                          uint32_t n, uint32_t i)
{
    struct lc_span f[5];
    for (int k = 0; k < 5; k++) {
        uint32_t s = i, lim = lc_5424_limits[k];
        i = LC_SPAN_PRINT(p, s, n, n);
        if (i == s || (i < n && p[i] != ' ')) {
            r->flags |= LC_F_BAD_HEADER;               /* record becomes raw */
            return;
        }
        if (i - s > lim)
            r->flags |= LC_F_BAD_HEADER;               /* too long: cut */
        f[k] = lc_span_of(p + s, lc_min(i - s, lim));
        if (i < n) {
            i++;                                       /* SP */
        } else if (k < 4) {
            r->flags |= LC_F_BAD_HEADER;               /* header ends early */
            return;
        }
    }
    r->fmt = LC_FMT_RFC5424;
    if (!lc_is_nil(f[0].p, f[0].n)) {
        if (lc_ts_rfc5424(f[0].p, f[0].n, d->tz_offset_s, &r->ts))
            r->has_ts = 1;
        else
            r->flags |= LC_F_BAD_TIMESTAMP;
    }
    struct lc_span *dst[4] = {&r->host, &r->app, &r->procid, &r->msgid};
    for (int k = 1; k < 5; k++)
        if (!lc_is_nil(f[k].p, f[k].n))
            *dst[k - 1] = f[k];

    /* STRUCTURED-DATA */
    if (i >= n) {                                      /* missing, and so is MSG */
        r->flags |= LC_F_BAD_HEADER;
        r->msg = n;
        r->no_msg = 1;
        return;
    }
    uint32_t e = i;
    if (p[i] == '-') {
        if (i + 1 == n || p[i + 1] == ' ')
            e = i + 1;                                 /* NILVALUE */
    } else if (p[i] == '[') {
        int lenient = 0;
        e = lc_parse_sd(r, p, n, i, &lenient);
        if (e > i)
            r->sd = lc_span_of(p + i, e - i);
        if (lenient)
            r->flags |= LC_F_BAD_HEADER;
    }
    if (e == i || (e < n && p[e] != ' ')) {
        r->flags |= LC_F_BAD_HEADER;                   /* message from the bad part */
        r->msg = e;
        return;
    }
    r->msg = e < n ? e + 1 : n;                        /* "SD SP" and nothing: MSG is "" */
    r->no_msg = e == n;                                /* no SP after SD: no MSG at all */
}

/* VERSION at p[i..n): NONZERO-DIGIT 0*2DIGIT then SP (RFC 5424 6.2.2).
 * Returns the index after the SP (0 if there is no version there) and sets
 * *one when it is "1". */
static uint32_t lc_version(const uint8_t *p, uint32_t n, uint32_t i, int *one)
{
    uint32_t v = i;
    while (v < n && v - i < 3 && lc_dig(p[v]))
        v++;
    if (v == i || p[i] == '0' || v >= n || p[v] != ' ')
        return 0;
    *one = v == i + 1 && p[i] == '1';
    return v + 1;
}

/* ---- RFC 3164 and vendor dialects ----------------------------------- */

/* Index of the first SP at or after i, or n. */
static inline uint32_t lc_token_end(const uint8_t *p, uint32_t n, uint32_t i)
{
    return lc_find(p, i, n, ' ');
}

/* 1 if p[a..e) is 1..limit printable ASCII bytes without '['. */
static int lc_host_token(const uint8_t *p, uint32_t a, uint32_t e)
{
    return e > a && e - a <= LC_MAX_HOSTNAME && LC_SPAN_HOST(p, a, e, e) == e;
}

static inline int lc_word_byte(uint8_t c)
{
    return lc_dig(c) || (unsigned)((c | 0x20) - 'a') < 26 || c == '.' || c == '_' || c == '-' || c == '/';
}

/* Index after the word starting at p[i] (RFC 3164's alphanumeric TAG
 * characters and the '.', '_', '-', '/' programs use), at most up to stop. */
static inline uint32_t lc_word_end(const uint8_t *p, uint32_t i, uint32_t stop)
{
    while (i < stop && lc_word_byte(p[i]))
        i++;
    return i;
}

/* A TAG found by lc_scan_tag. */
struct lc_tag {
    struct lc_span name, pid;
    uint32_t content;        /* index of the text after the TAG */
};

/* RFC 3164 TAG at p[i] (name <= 48 bytes, pid <= 128):
 *   NAME "[" PID "]" [":"] then SP, or ":" and the text right after it;
 *   NAME ":" then SP or the end;
 *   NAME ":" then text that is not a digit, '/' or '\\', when NAME is a word
 *   (lc_word_end: "tag:msg": rsyslog's TAG ends at the colon; "CEF:0|...",
 *   "LEEF:2.0|...", "http://...", "12:00", '{"a":"b"}' stay text).
 * Returns 1 and *t, else 0. */
static int lc_scan_tag(const uint8_t *p, uint32_t n, uint32_t i, struct lc_tag *t)
{
    uint32_t j = LC_SPAN_TAG(p, i, lc_min(n, i + LC_MAX_APP_NAME + 1), n);
    if (j == i || j - i > LC_MAX_APP_NAME || j >= n)
        return 0;
    t->name = lc_span_of(p + i, j - i);
    t->pid = (struct lc_span){NULL, 0};
    if (p[j] == '[') {
        uint32_t k = ++j;
        j = LC_SPAN_PID(p, k, lc_min(n, k + LC_MAX_PROCID + 1), n);
        if (j >= n || p[j] != ']' || j - k > LC_MAX_PROCID)
            return 0;
        if (j > k)
            t->pid = lc_span_of(p + k, j - k);
        j++;
        if (j < n && p[j] == ':') {
            t->content = j + 1 < n && p[j + 1] == ' ' ? j + 2 : j + 1;   /* "[pid]:text" too */
            return 1;
        }
    } else if (p[j] == ':') {
        j++;
        if (j < n && p[j] != ' ') {
            if (lc_dig(p[j]) || p[j] == '/' || p[j] == '\\' || lc_word_end(p, i, j - 1) != j - 1)
                return 0;                              /* "CEF:0|", "http://", "10:00", "C:\\", '{"a":' */
            t->content = j;                            /* "tag:msg" */
            return 1;
        }
    } else {
        return 0;
    }
    if (j < n && p[j] != ' ')
        return 0;
    t->content = j < n ? j + 1 : n;
    return 1;
}

/* 1 if a TAG name is Cisco's "%FACILITY-SEVERITY-MNEMONIC" ("%ASA-6-302013",
 * "%SYS-5-CONFIG_I"): '%', a letter, and a '-' followed by a digit. */
static int lc_cisco_mnemonic(struct lc_span name)
{
    if (name.n < 4 || name.p[0] != '%' || (unsigned)((name.p[1] | 0x20) - 'a') >= 26)
        return 0;
    for (uint32_t k = 2; k + 1 < name.n; k++)
        if (name.p[k] == '-' && lc_dig(name.p[k + 1]))
            return 1;
    return 0;
}

/* The TAG at p[i], if there is one: sets app (and procid) and returns the
 * index where the message starts, else i. Cisco's "%FAC-SEV-MNEMONIC:" is
 * a TAG whose text is part of the message (Cisco's message format is
 * "%FACILITY-SEVERITY-MNEMONIC: text"): the message starts at the '%'. */
static uint32_t lc_parse_tag(struct lc_rec *r, const uint8_t *p, uint32_t n, uint32_t i)
{
    struct lc_tag t;
    if (!lc_scan_tag(p, n, i, &t))
        return i;
    r->app = t.name;
    r->procid = t.pid;
    return lc_cisco_mnemonic(t.name) ? i : t.content;
}

/* 1 if a TAG or a Cisco %MNEMONIC starts at p[i] (what makes the token
 * before it a host name where that is otherwise unsure). */
static int lc_tag_follows(const uint8_t *p, uint32_t n, uint32_t i)
{
    struct lc_tag t;
    if (i >= n)
        return 0;
    if (p[i] == '%') {                                 /* "%ASA-6-1:" or ASA's "%ASA-6-1 :" */
        uint32_t e = i;
        while (e < n && e - i <= LC_MAX_APP_NAME && p[e] != ' ' && p[e] != ':')
            e++;
        return lc_cisco_mnemonic(lc_span_of(p + i, e - i));
    }
    return lc_scan_tag(p, n, i, &t);
}

/* 1 if a word that could be a TAG without its ':' starts at p[i]: letters,
 * digits, '.', '_', '-', '/' (RFC 3164 4.1.3 lets a space end the TAG;
 * syslog-ng and rsyslog read "host sshd text" so, Beats and go-syslog keep
 * "sshd text" as the message), up to the TAG limit, then a space or the
 * end. */
static int lc_word_like_tag(const uint8_t *p, uint32_t n, uint32_t i)
{
    uint32_t k = lc_word_end(p, i, lc_min(n, i + LC_MAX_APP_NAME + 1));
    return k > i && k - i <= LC_MAX_APP_NAME && (k == n || p[k] == ' ');
}

/* 1 if p[a..e) is an IPv6 address as text: hex digits, '.' and at least
 * two ':' ("1::", "0002::", "2001:db8::1", "::ffff:1.2.3.4"). */
static int lc_ipv6_token(const uint8_t *p, uint32_t a, uint32_t e)
{
    uint32_t colons = 0;
    if (e - a < 2 || e - a > LC_MAX_IP_TEXT)
        return 0;
    for (uint32_t k = a; k < e; k++) {
        uint8_t c = p[k] | 0x20;
        if (p[k] == ':')
            colons++;
        else if (!lc_dig(p[k]) && p[k] != '.' && !(c >= 'a' && c <= 'f'))
            return 0;
    }
    return colons >= 2;
}

/* What may follow a Cisco sequence number: a timestamp or a %MNEMONIC. */
static int lc_cisco_next(const struct lc_decoder *d, const uint8_t *p, uint32_t n, uint32_t i,
                         int64_t rx_ns, struct lc_ts *ts)
{
    if (i >= n)
        return 0;
    if (p[i] == '%')
        return 1;
    lc_ts_bsd(p + i, n - i, d->tz_offset_s, rx_ns, ts);
    return ts->len > 0;
}

/* A line card's prefix after a Cisco sequence number ("3408: CLC 6/0:
 * Dec 11 ..."): up to LC_MODULE_MAX bytes holding a '/' and no ':', then
 * ": ". Returns the index after it, else i. */
#define LC_MODULE_MAX 24
static uint32_t lc_cisco_module(const uint8_t *p, uint32_t n, uint32_t i)
{
    uint32_t c = lc_find(p, i, lc_min(n, i + LC_MODULE_MAX), ':');
    if (c == i || c + 1 >= n || p[c] != ':' || p[c + 1] != ' ' || lc_find(p, i, c, '/') == c)
        return i;
    for (uint32_t k = i; k < c; k++)
        if (!lc_print(p[k]) && p[k] != ' ')
            return i;
    return c + 2;
}

/* A Cisco message behind a relay's BSD header ("<189>Jan 15 10:00:05 host
 * 4471: Jan 15 10:00:05.101: %PM-4-ERR_DISABLE: ..."): returns the index
 * of the %MNEMONIC past "SEQ: [TIMESTAMP:] ", else i. Only taken when the
 * mnemonic follows; the relay's timestamp stays the record's. */
static uint32_t lc_skip_cisco_body(const struct lc_decoder *d, struct lc_rec *r, const uint8_t *p, uint32_t n,
                                   uint32_t i, int64_t rx_ns)
{
    uint32_t q = i;
    while (q < n && q - i < LC_SEQ_DIGITS && lc_dig(p[q]))
        q++;
    if (q == i || q + 2 >= n || p[q] != ':' || p[q + 1] != ' ')
        return i;
    uint32_t a = q + 2;
    r->cisco_seq = lc_span_of(p + i, q - i);
    if (p[a] == '%')
        return a;
    struct lc_ts ts;
    lc_ts_bsd(p + a, n - a, d->tz_offset_s, rx_ns, &ts);
    a += ts.len;
    if (ts.len && ts.colon && a + 1 < n && p[a] == ' ' && p[a + 1] == '%')
        return a + 1;
    r->cisco_seq = (struct lc_span){NULL, 0};
    return i;
}

/* AIX's syslogd relaying: "Message forwarded from HOST: " before the
 * sender's own text. Returns the index after it (setting the host), else i. */
static const char lc_forwarded[] = "Message forwarded from ";
#define LC_FORWARDED_LEN (sizeof(lc_forwarded) - 1)

static uint32_t lc_parse_forwarded(struct lc_rec *r, const uint8_t *p, uint32_t n, uint32_t i)
{
    if (n - i <= LC_FORWARDED_LEN || memcmp(p + i, lc_forwarded, LC_FORWARDED_LEN) != 0)
        return i;
    uint32_t a = i + LC_FORWARDED_LEN, c = lc_find(p, a, n, ':');
    if (c >= n || !lc_host_token(p, a, c) || (c + 1 < n && p[c + 1] != ' '))
        return i;
    r->host = lc_span_of(p + a, c - a);
    return c + 1 < n ? c + 2 : n;
}

/* HOSTNAME at p[i], after a BSD timestamp and its SP. Returns the index
 * after the host and its SP, or i when the token is no host:
 *  - a printable token without '[' that is not a %MNEMONIC; "-": null;
 *  - IPv6 addresses are hosts even when they end in ':' ("1::");
 *  - "name:" is a host only when a TAG or %MNEMONIC follows ("host: su:
 *    text"); else it is the TAG, flagged ambiguous (Beats and syslog-loose
 *    take it as the host, rsyslog and syslog-ng as the TAG);
 *  - after a timestamp ending in ':' (Cisco "10:00:00: ") a host only
 *    when a TAG or %MNEMONIC follows;
 *  - a token that is the whole rest stays in the message, flagged
 *    ambiguous (a host to Beats, the program to syslog-ng);
 *  - ASA's "host : %ASA-..." skips the lone ':'. */
static uint32_t lc_parse_host(struct lc_rec *r, const uint8_t *p, uint32_t n, uint32_t i,
                              int after_colon)
{
    uint32_t e = lc_token_end(p, n, i);
    if (e == i || p[i] == '%' || !lc_host_token(p, i, e))
        return i;
    uint32_t next = e < n ? e + 1 : n, end = e;
    if (p[e - 1] == ':' && !lc_ipv6_token(p, i, e)) {  /* "1::" is an address */
        if (e - 1 == i || !lc_tag_follows(p, n, next)) {
            r->flags |= LC_F_AMBIGUOUS;                /* "word: text": TAG, or host? */
            return i;
        }
        end = e - 1;
    } else if (after_colon && !lc_tag_follows(p, n, next)) {
        return i;
    } else if (next >= n) {
        r->flags |= LC_F_AMBIGUOUS;                    /* one word: host, or program? */
        return i;
    }
    if (!lc_is_nil(p + i, end - i))
        r->host = lc_span_of(p + i, end - i);
    if (next < n && p[next] == ':' && (next + 1 == n || p[next + 1] == ' '))
        next = next + 1 < n ? next + 2 : n;            /* ASA: "host : %ASA-..." */
    return next;
}

/* RFC 3164 as devices send it, from p[i] (after the PRI):
 *   [SP*] [SEQ ": " [HOST ": " | MODULE ": "]] [TIMESTAMP [ZONE] [":"] SP]
 *   ["Message forwarded from " HOST ": "] [HOST SP] [TAG] MSG
 *  - Spaces after the PRI are skipped.
 *  - SEQ: Cisco's sequence number (0-10 digits, so NX-OS's bare ": " too);
 *    it and "HOST: " or a line card's "CLC 6/0: " are skipped only when a
 *    timestamp or "%" follows. The number itself is not kept in a column
 *    (it stays in raw). IOS XR's node ("RP/0/RSP0/CPU0:" glued to the
 *    timestamp) is skipped likewise. After a relay's BSD header,
 *    "SEQ: [TIMESTAMP:] %MNEMONIC" is a Cisco body: SEQ and its timestamp
 *    are skipped (lc_skip_cisco_body).
 *  - TIMESTAMP: the forms of lc_ts_bsd (BSD with month names in any case
 *    or in full, a year after the day or the time, ISO 8601, Cisco's
 *    leading '*' or '.' for an unsynchronised clock: the time is decoded as
 *    sent all the same). A year after the time is flagged LC_F_AMBIGUOUS.
 *  - "Message forwarded from HOST:" (AIX relaying): HOST is the host.
 *  - HOST: see lc_parse_host (printable ASCII, <= 255 bytes, no '[';
 *    IPv6, '/', '@' allowed; "-" is null).
 *  - TAG: see lc_scan_tag: app_name and procid. Cisco's "%FAC-SEV-MNEMONIC:"
 *    is a TAG too, so app_name holds the mnemonic as sent (with '%'), and
 *    the message starts at the '%'.
 *  - MSG: the rest; without timestamp and TAG the whole text after PRI. A
 *    word that could be a TAG without its ':' stays here, flagged.
 * Returns 1 if a timestamp was recognised (valid or not). */
static int lc_parse_3164(const struct lc_decoder *d, struct lc_rec *r, const uint8_t *p, uint32_t n,
                         uint32_t i, int64_t rx_ns)
{
    struct lc_ts ts = {0};
    uint32_t ts_at = UINT32_MAX;                       /* where ts was parsed */
    int have_host = 0;

    while (i > 0 && i < n && p[i] == ' ')              /* "<13> Jan  1 ...": spaces after PRI */
        i++;

    uint32_t q = i, seq_at = i;
    while (q < n && q - i < LC_SEQ_DIGITS && lc_dig(p[q]))
        q++;
    if (q + 1 < n && p[q] == ':' && p[q + 1] == ' ') {
        uint32_t a = q + 2, e = lc_token_end(p, n, a), m;
        if (e < n && e - a >= 2 && p[e - 1] == ':' && p[a] != '%' && lc_host_token(p, a, e - 1) &&
            lc_cisco_next(d, p, n, e + 1, rx_ns, &ts)) {
            r->host = lc_span_of(p + a, e - 1 - a);    /* "123: host: ..." */
            have_host = 1;
            i = ts_at = e + 1;
        } else if (lc_cisco_next(d, p, n, a, rx_ns, &ts)) {
            i = ts_at = a;
        } else if ((m = lc_cisco_module(p, n, a)) != a && lc_cisco_next(d, p, n, m, rx_ns, &ts)) {
            i = ts_at = m;                             /* "CLC 6/0: " skipped */
        } else {
            /* IOS XR: "123: RP/0/RSP0/CPU0:Jan 15 ...": the node is skipped */
            uint32_t c = lc_find(p, a, e, ':');
            if (c > a && c + 1 < e && lc_host_token(p, a, c) &&
                lc_cisco_next(d, p, n, c + 1, rx_ns, &ts) && ts.len)
                i = ts_at = c + 1;
        }
        if (ts_at == i && q > seq_at)
            r->cisco_seq = lc_span_of(p + seq_at, q - seq_at);   /* "000123: " was a sequence number */
    }
    if (ts_at != i)
        lc_ts_bsd(p + i, n - i, d->tz_offset_s, rx_ns, &ts);
    int found = ts.len > 0;
    if (found) {
        if (ts.valid) {
            r->has_ts = 1;
            r->ts = ts.ns;
            if (ts.year_inferred)
                r->flags |= LC_F_YEAR_INFERRED;
        } else {
            r->flags |= LC_F_BAD_TIMESTAMP;
        }
        i += ts.len;
        if (i < n)
            i++;                                       /* SP */
        uint32_t fwd = lc_parse_forwarded(r, p, n, i);
        if (fwd != i) {
            have_host = 1;
            i = fwd;
        }
        if (ts.year_after)
            r->flags |= LC_F_AMBIGUOUS;                /* rsyslog: that year is the host */
        if (!have_host && i < n)
            i = lc_parse_host(r, p, n, i, ts.colon);
        i = lc_skip_cisco_body(d, r, p, n, i, rx_ns);
    } else {
        i = lc_parse_forwarded(r, p, n, i);
    }
    uint32_t content = lc_parse_tag(r, p, n, i);
    if (content == i && found && lc_word_like_tag(p, n, i))
        r->flags |= LC_F_AMBIGUOUS;                    /* "host word text": is word the TAG? */
    r->msg = content;
    return found;
}

/* ---- the record ------------------------------------------------------ */

static inline void lc_put_span(struct lc_batch_hdr *b, int col, uint32_t row, struct lc_span s)
{
    if (s.p)
        lc_str_append(b, col, row, s.p, s.n);
}

/* Digits p[0..n) as a number, if there are 1..19 of them and nothing else. */
static int lc_seq_number(const uint8_t *p, uint32_t n, uint64_t *v)
{
    if (n == 0 || n > 19)
        return 0;
    uint64_t x = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!lc_dig(p[i]))
            return 0;
        x = x * 10 + (uint64_t)(p[i] - '0');
    }
    *v = x;
    return 1;
}

/* The value of PARAM in the element SD-ID, e.g. sequenceId in
 * [meta sequenceId="7"], among the elements lc_parse_sd kept (well formed;
 * their starts are in r->sd_at): sets *v and returns 1 when it is a number. */
static int lc_sd_number(const struct lc_rec *r, const uint8_t *p, uint32_t n, const struct lc_seq_rule *rule,
                        uint64_t *v)
{
    for (uint32_t el = 0; el < r->nsd; el++) {
        uint32_t k = r->sd_at[el] + 1, j = k + rule->sd_id_len;
        if (j >= n || (p[j] != ' ' && p[j] != ']') || memcmp(p + k, rule->sd_id, rule->sd_id_len) != 0)
            continue;
        while (j < n && p[j] == ' ') {                 /* SP PARAM-NAME "=" value */
            k = j + 1;
            j = LC_SPAN_SDNAME(p, k, n, n);
            int want = j - k == rule->param_len && memcmp(p + k, rule->param, j - k) == 0;
            j++;                                       /* '=' */
            uint32_t a, e;
            if (j < n && p[j] == '"') {
                a = e = j + 1;
                for (;;) {                             /* to the '"' no odd run of '\\' escapes */
                    e = lc_find(p, e, n, '"');
                    uint32_t bs = e;
                    while (bs > a && p[bs - 1] == '\\')
                        bs--;
                    if (e >= n || ((e - bs) & 1) == 0)
                        break;
                    e++;
                }
                j = e + 1;
            } else {
                a = j;
                e = j = LC_SPAN_SDVAL(p, j, n, n);
            }
            if (want)
                return lc_seq_number(p + a, e - a, v);
        }
        return 0;
    }
    return 0;
}

/* The record's sequence number under the first rule that finds one. */
static void lc_find_seq(const struct lc_senders *t, const struct lc_rec *r, const uint8_t *p, uint32_t n,
                        struct lc_sender_key *k)
{
    for (uint32_t i = 0; i < t->nrules && i < LC_SEQ_RULES_MAX; i++) {
        const struct lc_seq_rule *rule = &t->rules[i];
        uint64_t v;
        int found = rule->kind == LC_SEQ_CISCO ? r->cisco_seq.p && lc_seq_number(r->cisco_seq.p, r->cisco_seq.n, &v)
                                               : r->nsd && lc_sd_number(r, p, n, rule, &v);
        if (found && v >= rule->min && v <= rule->max) {
            k->rule = i + 1;
            k->seq = v;
            return;
        }
    }
}

uint16_t lc_syslog_decode(struct lc_decoder *d, struct lc_batch_hdr *b, uint32_t row,
                          const uint8_t *payload, uint32_t size, int64_t rx_ns, struct lc_sender_key *k)
{
    struct lc_rec r;
    memset(&r, 0, sizeof(r));
    r.fmt = LC_FMT_RAW;

    /* What is parsed: the payload without the padding some senders put
     * before "<PRI>" and without the line breaks after the message (both
     * stay in raw; the second is flagged). */
    uint32_t n = size, lead = 0, t = size;
    while (t > 0 && (payload[t - 1] == ' ' || payload[t - 1] == '\t'))
        t--;                                           /* padding after the line break */
    if (t > 0 && (payload[t - 1] == '\n' || payload[t - 1] == '\r')) {
        while (t > 0 && (payload[t - 1] == '\n' || payload[t - 1] == '\r'))
            t--;
        n = t;
        r.flags |= LC_F_NEWLINE;
    }
    while (lead < n && lc_space(payload[lead]))
        lead++;
    if (lead == n || payload[lead] != '<')
        lead = 0;                                      /* no PRI behind it: the text is the message */
    const uint8_t *p = payload + lead;
    n -= lead;

    if (LC_UNLIKELY(size == 0)) {
        r.flags = LC_F_EMPTY;
    } else {
        int pri, one = 0;
        uint32_t i = lc_parse_pri(p, n, &pri);
        if (LC_LIKELY(pri >= 0)) {
            r.has_pri = 1;
            r.pri = (uint8_t)pri;
        } else {
            r.flags |= LC_F_BAD_PRI;
        }
        uint32_t v = i > 0 ? lc_version(p, n, i, &one) : 0;
        if (v && one) {
            lc_parse_5424(d, &r, p, n, v);
        } else if (v) {
            /* VERSION 2..999: RFC 5424 only if the whole header is well
             * formed (a valid or nil timestamp, SD present and valid), else
             * the text after PRI is BSD ("<13>2 words ..."). */
            struct lc_rec tried = r;
            lc_parse_5424(d, &tried, p, n, v);
            if (tried.fmt == LC_FMT_RFC5424 && !(tried.flags & (LC_F_BAD_HEADER | LC_F_BAD_TIMESTAMP))) {
                r = tried;
                r.flags |= LC_F_VERSION;
            }
        }
        if (r.fmt == LC_FMT_RFC5424 || (v && one)) {
            /* decided: RFC 5424, or a version-1 header that is malformed (raw) */
        } else if (pri >= 0) {
            r.fmt = LC_FMT_RFC3164;
            lc_parse_3164(d, &r, p, n, i, rx_ns);
        } else if (lc_parse_3164(d, &r, p, n, i, rx_ns)) {
            r.fmt = LC_FMT_RFC3164;                    /* no PRI, but a timestamp */
        } else {
            uint16_t keep = r.flags & (LC_F_BAD_PRI | LC_F_NEWLINE);    /* not syslog: raw */
            memset(&r, 0, sizeof(r));
            r.fmt = LC_FMT_RAW;
            r.flags = keep;
        }
        if (r.fmt == LC_FMT_RAW) {
            /* header fields of a raw record are null; PRI is kept */
            r.has_ts = 0;
            r.host = r.app = r.procid = r.msgid = r.sd = (struct lc_span){NULL, 0};
            r.msg = 0;
            r.no_msg = 0;
        } else if (r.msg + 3 <= n && p[r.msg] == 0xEF && p[r.msg + 1] == 0xBB && p[r.msg + 2] == 0xBF) {
            r.msg += 3;                                /* BOM */
        }
    }
    if (r.fmt == LC_FMT_RAW) {                         /* the whole text, padding included */
        p = payload;
        n += lead;
        lead = 0;
    }

    if (r.has_pri) {
        lc_put_u8(b, LC_COL_FACILITY, row, r.pri >> 3);
        lc_put_u8(b, LC_COL_SEVERITY, row, r.pri & 7);
    }
    d->severity_counts[r.has_pri ? r.pri & 7 : 8]++;
    if (d->senders) {
        k->app = r.app.p;
        k->app_len = r.app.n;
        if (d->senders->nrules && r.fmt != LC_FMT_RAW)
            lc_find_seq(d->senders, &r, p, n, k);
    }
    lc_str_append(b, LC_COL_FORMAT, row, lc_format_names[r.fmt], lc_format_lens[r.fmt]);
    if (r.has_ts)
        lc_put_i64(b, LC_COL_TIMESTAMP, row, r.ts);
    lc_put_span(b, LC_COL_HOSTNAME, row, r.host);
    lc_put_span(b, LC_COL_APP_NAME, row, r.app);
    lc_put_span(b, LC_COL_PROCID, row, r.procid);
    lc_put_span(b, LC_COL_MSGID, row, r.msgid);
    lc_put_span(b, LC_COL_STRUCTURED_DATA, row, r.sd);
    if (!r.no_msg) {
        uint8_t *out = lc_str_reserve(b, LC_COL_MESSAGE);
        uint32_t m = n > r.msg ? lc_utf8_copy(out, p + r.msg, n - r.msg, &r.flags) : 0;
        lc_str_commit(b, LC_COL_MESSAGE, row, m);
    }
    if (size)
        lc_str_append(b, LC_COL_RAW, row, payload, size);
    else
        lc_str_commit(b, LC_COL_RAW, row, 0);
    d->format_counts[r.fmt]++;
    return r.flags;
}
