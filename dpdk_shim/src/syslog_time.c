/* syslog_time.c - syslog header timestamps to int64 ns UTC (see syslog_time.h). */
#include <stdint.h>

#include "syslog_time.h"

#define LC_INLINE static inline __attribute__((always_inline))
#define LC_NS 1000000000LL
/* Whole seconds that still fit an int64 nanosecond timestamp (1677..2262). */
#define LC_TS_MAX_S (INT64_MAX / LC_NS - 1)
#define LC_TS_MIN_S (INT64_MIN / LC_NS + 1)
#define LC_FRAC_MAX_DIGITS 9
#define LC_ZONE_MAX 5               /* letters of a zone abbreviation */
#define LC_ZONE_CONFIGURED INT32_MIN /* abbreviation known but ambiguous */

static inline int lc_dig(uint8_t c) { return (unsigned)(c - '0') < 10; }

/* 1 if p[i..i+k) are k digits inside p[0..n). */
static inline int lc_digits(const uint8_t *p, uint32_t n, uint32_t i, uint32_t k)
{
    if (i + k > n)
        return 0;
    for (uint32_t j = 0; j < k; j++)
        if (!lc_dig(p[i + j]))
            return 0;
    return 1;
}

/* Nonzero if c is not a digit (for branch-free checks of fixed shapes). */
static inline unsigned lc_nd(uint8_t c) { return (unsigned)(c - '0') > 9; }

static inline unsigned lc_num2(const uint8_t *p) { return (p[0] - '0') * 10u + (p[1] - '0'); }

static inline unsigned lc_num4(const uint8_t *p)
{
    return lc_num2(p) * 100u + lc_num2(p + 2);
}

LC_INLINE int64_t lc_civil_days(int64_t y, unsigned m, unsigned d)
{
    /* H. Hinnant, "chrono-Compatible Low-Level Date Algorithms". */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Year of the civil date `z` days after 1970-01-01. */
static int64_t lc_year_of_days(int64_t z)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    return (int64_t)yoe + era * 400 + (mp >= 10);   /* Jan, Feb count to the next year */
}

static inline int lc_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned lc_days_in_month(int64_t y, unsigned m)
{
    static const uint8_t dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 ? 28u + (unsigned)lc_leap(y) : dim[m];
}

LC_INLINE int64_t lc_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Month names: a perfect hash of (2nd + 3rd lowercase letter) & 31, then
 * one full compare. Index 0 of a slot's key means "no month here". */
static const struct { char key[3]; uint8_t month; } lc_months[32] = {
    [1] = {"jul", 7},  [2] = {"apr", 4},  [3] = {"jun", 6},  [5] = {"nov", 11},
    [7] = {"feb", 2},  [8] = {"dec", 12}, [15] = {"jan", 1}, [19] = {"mar", 3},
    [21] = {"sep", 9}, [23] = {"oct", 10}, [26] = {"may", 5}, [28] = {"aug", 8},
};

LC_INLINE unsigned lc_month(const uint8_t *p)
{
    uint8_t a = p[0] | 0x20, b = p[1] | 0x20, c = p[2] | 0x20;
    unsigned h = (unsigned)(b + c) & 31;
    if (lc_months[h].month && lc_months[h].key[0] == a && lc_months[h].key[1] == b &&
        lc_months[h].key[2] == c)
        return lc_months[h].month;
    return 0;
}

/* The rest of a full month name after its first three letters ("uary" of
 * January), any case; "" for May. */
static const char *const lc_month_rest[13] = {
    "", "uary", "ruary", "ch", "il", "", "e", "y", "ust", "tember", "ober", "ember", "ember",
};

/* Bytes of the month name at p[0..n) ending before a space: three letters
 * or the full name (any case), 0 if it is neither; *m its number. */
static uint32_t lc_month_name(const uint8_t *p, uint32_t n, unsigned *m)
{
    if (n < 4 || !(*m = lc_month(p)))
        return 0;
    if (p[3] == ' ')
        return 3;
    const char *rest = lc_month_rest[*m];
    uint32_t k = 0;
    while (rest[k] && 3 + k < n && (p[3 + k] | 0x20) == rest[k])
        k++;
    return rest[k] == 0 && k > 0 && 3 + k < n && p[3 + k] == ' ' ? 3 + k : 0;
}

/* A plausible year after the time ("Jan 15 10:00:00 2024"): 4 digits in
 * [LC_YEAR_MIN, LC_YEAR_MAX], then the end, a space, or ':' and the end or
 * a space ("2001:db8::1" is an IPv6 host name, not a year). */
#define LC_YEAR_MIN 1980
#define LC_YEAR_MAX 2099
static int lc_year_after(const uint8_t *p, uint32_t n, uint32_t i, unsigned *y)
{
    if (i + 5 > n || p[i] != ' ' || !lc_digits(p, n, i + 1, 4))
        return 0;
    uint32_t j = i + 5;
    if (j < n && p[j] == ':')
        j++;
    if (j < n && p[j] != ' ')
        return 0;
    *y = lc_num4(p + i + 1);
    return *y >= LC_YEAR_MIN && *y <= LC_YEAR_MAX;
}

int64_t lc_days_from_civil(int64_t y, unsigned m, unsigned d) { return lc_civil_days(y, m, d); }

unsigned lc_month3(const uint8_t *p) { return lc_month(p); }

/* Zone abbreviations seen after Cisco timestamps ("... 10:00:00.123 CET:").
 * Ambiguous ones (CST: US or China, IST, BST, AST) are recognised as zones
 * but read in the configured zone. */
static const struct { char name[LC_ZONE_MAX + 1]; int32_t off; } lc_zones[] = {
    {"UTC", 0}, {"GMT", 0}, {"UT", 0}, {"WET", 0}, {"WEST", 3600},
    {"CET", 3600}, {"CEST", 7200}, {"MET", 3600}, {"MEST", 7200},
    {"MEZ", 3600}, {"MESZ", 7200}, {"EET", 7200}, {"EEST", 10800}, {"MSK", 10800},
    {"EST", -18000}, {"EDT", -14400}, {"CDT", -18000}, {"MST", -25200},
    {"MDT", -21600}, {"PST", -28800}, {"PDT", -25200}, {"AKST", -32400},
    {"AKDT", -28800}, {"HST", -36000}, {"JST", 32400}, {"KST", 32400},
    {"HKT", 28800}, {"SGT", 28800}, {"AWST", 28800}, {"ACST", 34200},
    {"ACDT", 37800}, {"AEST", 36000}, {"AEDT", 39600}, {"NZST", 43200},
    {"NZDT", 46800},
    {"CST", LC_ZONE_CONFIGURED}, {"IST", LC_ZONE_CONFIGURED},
    {"BST", LC_ZONE_CONFIGURED}, {"AST", LC_ZONE_CONFIGURED},
};

static inline int lc_letter(uint8_t c) { return (unsigned)((c | 0x20) - 'a') < 26; }

/* 1 and *off if p[0..k) names a zone in the table, in upper case; with
 * `utc_any_case`, "utc" and "gmt" in any case too (Cisco's "gmt:"; other
 * lower-case words before ':' are host names or TAGs). */
#define LC_ZONES_ANY_CASE 2          /* the first entries: UTC, GMT */
static int lc_zone_lookup(const uint8_t *p, uint32_t k, int utc_any_case, int32_t *off)
{
    for (unsigned z = 0; z < sizeof(lc_zones) / sizeof(lc_zones[0]); z++) {
        const char *name = lc_zones[z].name;
        int fold = utc_any_case && z < LC_ZONES_ANY_CASE;
        uint32_t j = 0;
        while (j < k && name[j] && (uint8_t)name[j] == (fold ? p[j] & ~0x20 : p[j]))
            j++;
        if (j == k && name[k] == 0) {
            *off = lc_zones[z].off;
            return 1;
        }
    }
    return 0;
}

/* Civil time fields as read, validated by lc_civil_ns. */
struct lc_civil {
    int64_t y;
    unsigned mo, d, h, mi, s;
    uint32_t frac_ns;
    int bad;            /* a field had the right shape but is out of range */
};

/* "hh:mm:ss[.f+]" at p[i..n). Returns the index after it, 0 if the shape
 * is wrong. Fraction digits past the ninth are read and dropped. */
LC_INLINE uint32_t lc_parse_hms(const uint8_t *p, uint32_t n, uint32_t i, struct lc_civil *c)
{
    if (i + 8 > n)
        return 0;
    const uint8_t *t = p + i;
    if (lc_nd(t[0]) | lc_nd(t[1]) | (t[2] ^ ':') | lc_nd(t[3]) | lc_nd(t[4]) | (t[5] ^ ':') |
        lc_nd(t[6]) | lc_nd(t[7]))
        return 0;
    c->h = lc_num2(p + i);
    c->mi = lc_num2(p + i + 3);
    c->s = lc_num2(p + i + 6);
    i += 8;
    c->frac_ns = 0;
    if (i < n && p[i] == '.') {
        uint32_t k = 0, f = 0;
        i++;
        while (i < n && lc_dig(p[i])) {
            if (k < LC_FRAC_MAX_DIGITS)
                f = f * 10 + (p[i] - '0');
            k++;
            i++;
        }
        if (k == 0)
            return 0;
        static const uint32_t scale[LC_FRAC_MAX_DIGITS + 1] = {
            0, 100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1,
        };
        c->frac_ns = f * scale[k < LC_FRAC_MAX_DIGITS ? k : LC_FRAC_MAX_DIGITS];
    }
    return i;
}

/* Civil time in a zone `off` seconds east of UTC -> ns UTC, `days` being
 * lc_days_from_civil of its date. Returns 0 if a field is out of range (no
 * leap seconds, RFC 5424 6.2.3) or the instant does not fit int64 ns. */
static int lc_civil_ns_days(const struct lc_civil *c, int64_t days, int32_t off, int64_t *ns)
{
    if (c->bad || c->mo < 1 || c->mo > 12 || c->d < 1 || c->d > lc_days_in_month(c->y, c->mo) ||
        c->h > 23 || c->mi > 59 || c->s > 59)
        return 0;
    int64_t s = days * 86400 + c->h * 3600 + c->mi * 60 + c->s - off;
    if (s > LC_TS_MAX_S || s < LC_TS_MIN_S)
        return 0;
    *ns = s * LC_NS + c->frac_ns;
    return 1;
}

static int lc_civil_ns(const struct lc_civil *c, int32_t off, int64_t *ns)
{
    if (c->mo < 1 || c->mo > 12 || c->d < 1 || c->d > 31)
        return 0;
    return lc_civil_ns_days(c, lc_civil_days(c->y, c->mo, c->d), off, ns);
}

/* Numeric zone at p[i..n): Z | (+|-)hh[:mm] | (+|-)hhmm. Returns the index
 * after it (i if there is none), sets *has and *off; bad range sets c->bad. */
static uint32_t lc_parse_offset(const uint8_t *p, uint32_t n, uint32_t i, struct lc_civil *c,
                                int *has, int32_t *off)
{
    *has = 0;
    if (i >= n)
        return i;
    if (p[i] == 'Z' || p[i] == 'z') {
        *has = 1;
        *off = 0;
        return i + 1;
    }
    if ((p[i] != '+' && p[i] != '-') || !lc_digits(p, n, i + 1, 2))
        return i;
    int sign = p[i] == '-' ? -1 : 1;
    unsigned hh = lc_num2(p + i + 1), mm = 0;
    uint32_t j = i + 3;
    if (j < n && p[j] == ':' && lc_digits(p, n, j + 1, 2)) {
        mm = lc_num2(p + j + 1);
        j += 3;
    } else if (lc_digits(p, n, j, 2)) {
        mm = lc_num2(p + j);
        j += 2;
    }
    if (hh > 23 || mm > 59)
        c->bad = 1;
    *has = 1;
    *off = sign * (int32_t)(hh * 3600 + mm * 60);
    return j;
}

/* ISO 8601 date-time at p[0..n): yyyy-mm-dd(T|t[| ])hh:mm:ss[.f][zone].
 * Returns the index after it, 0 if the shape is wrong. */
static uint32_t lc_parse_iso(const uint8_t *p, uint32_t n, int space_sep, struct lc_civil *c,
                             int *has_off, int32_t *off)
{
    if (n < 19 || (lc_nd(p[0]) | lc_nd(p[1]) | lc_nd(p[2]) | lc_nd(p[3]) | (p[4] ^ '-') |
                   lc_nd(p[5]) | lc_nd(p[6]) | (p[7] ^ '-') | lc_nd(p[8]) | lc_nd(p[9])))
        return 0;
    uint8_t sep = p[10];
    if (sep != 'T' && sep != 't' && !(space_sep && sep == ' '))
        return 0;
    c->y = lc_num4(p);
    c->mo = lc_num2(p + 5);
    c->d = lc_num2(p + 8);
    uint32_t i = lc_parse_hms(p, n, 11, c);
    if (!i)
        return 0;
    return lc_parse_offset(p, n, i, c, has_off, off);
}

int lc_ts_rfc5424(const uint8_t *p, uint32_t n, int32_t tz_offset_s, int64_t *ns)
{
    struct lc_civil c = {0};
    int has_off = 0;
    int32_t off = tz_offset_s;
    uint32_t end = lc_parse_iso(p, n, 0, &c, &has_off, &off);
    if (!end || end != n)
        return 0;
    return lc_civil_ns(&c, has_off ? off : tz_offset_s, ns);
}

void lc_ts_bsd(const uint8_t *p, uint32_t n, int32_t tz_offset_s, int64_t rx_ns,
               struct lc_ts *out)
{
    struct lc_civil c = {0};
    int has_year = 0, has_off = 0;
    int32_t off = tz_offset_s;
    uint32_t i = 0;

    out->len = 0;
    out->valid = out->year_inferred = out->colon = out->year_after = 0;
    if (n < 3)
        return;
    if (lc_dig(p[0])) {
        if (!lc_digits(p, n, 0, 4) || n < 5)
            return;
        has_year = 1;
        if (p[4] == '-') {                              /* ISO 8601 */
            i = lc_parse_iso(p, n, 1, &c, &has_off, &off);
            if (!i)
                return;
            goto zone;
        }
        uint32_t k = p[4] == ' ' ? lc_month_name(p + 5, n - 5, &c.mo) : 0;
        if (!k)
            return;
        c.y = lc_num4(p);                               /* yyyy Mmm dd hh:mm:ss (NX-OS) */
        i = 5 + k + 1;
    } else {
        if (p[0] == '*' || p[0] == '.')                 /* Cisco: clock not in sync */
            i = 1;
        uint32_t k = lc_month_name(p + i, n - i, &c.mo);
        if (!k)
            return;
        i += k + 1;
    }
    if (i < n && p[i] == ' ')                           /* "Oct  1" */
        i++;
    if (i >= n || !lc_dig(p[i]))
        return;
    c.d = p[i++] - '0';
    if (i < n && lc_dig(p[i]))
        c.d = c.d * 10 + (p[i++] - '0');
    if (i >= n || p[i] != ' ')
        return;
    i++;
    if (!has_year && lc_digits(p, n, i, 4) && i + 4 < n && p[i + 4] == ' ') {
        c.y = lc_num4(p + i);                           /* Mmm dd yyyy hh:mm:ss (ASA) */
        has_year = 1;
        i += 5;
    }
    i = lc_parse_hms(p, n, i, &c);
    if (!i)
        return;
    unsigned year_after;
    if (!has_year && lc_year_after(p, n, i, &year_after)) {
        c.y = year_after;                               /* Mmm dd hh:mm:ss yyyy */
        has_year = 1;
        out->year_after = 1;
        i += 5;
    }

zone:
    /* A zone abbreviation from the table, only where it cannot be a host
     * name: before ':' (Cisco, "10:00:00.123 UTC:") or before a year
     * (RFC 3164 5.4 example 3, "05:34:00 CST 1987 host"). */
    if (!has_off && i + 1 < n && p[i] == ' ' && lc_letter(p[i + 1])) {
        uint32_t z = i + 1, j = z;
        int32_t zoff;
        while (j < n && j - z <= LC_ZONE_MAX && lc_letter(p[j]))
            j++;
        int colon = j < n && p[j] == ':';
        int year = !has_year && j < n && p[j] == ' ' && lc_digits(p, n, j + 1, 4) &&
                   (j + 5 == n || p[j + 5] == ' ' || p[j + 5] == ':');
        if ((colon || year) && lc_zone_lookup(p + z, j - z, colon, &zoff)) {
            has_off = 1;
            off = zoff == LC_ZONE_CONFIGURED ? tz_offset_s : zoff;
            i = j;
            if (year) {
                c.y = lc_num4(p + j + 1);
                has_year = 1;
                i = j + 5;
            }
        }
    }
    if (i < n && p[i] == ':') {
        out->colon = 1;
        i++;
    }
    if (i < n && p[i] != ' ')
        return;                                         /* "10:00:00x": not a timestamp */
    out->len = i;
    if (!has_off)
        off = tz_offset_s;

    if (!has_year) {
        /* Year of rx time in the zone; then the one that keeps the date
         * within (rx - 11 months, rx + slack]. */
        int64_t rx_local = lc_floor_div(rx_ns, LC_NS) + off;
        int64_t y = lc_year_of_days(lc_floor_div(rx_local, 86400));
        if (c.mo < 1 || c.mo > 12 || c.d < 1 || c.d > 31)
            return;                                     /* shape right, date impossible */
        int64_t tod = (int64_t)c.h * 3600 + c.mi * 60 + c.s;
        int64_t limit = rx_local + LC_TS_FUTURE_SLACK_S;
        int64_t days = lc_civil_days(y, c.mo, c.d);
        /* a year later is 365 days later, plus the Feb 29 in between */
        int64_t next = days + 365 + lc_leap(c.mo > 2 ? y + 1 : y);
        if (days * 86400 + tod > limit) {
            y--;
            days -= 365 + lc_leap(c.mo > 2 ? y + 1 : y);
        } else if (next * 86400 + tod <= limit) {
            y++;
            days = next;
        }
        c.y = y;
        out->year_inferred = 1;
        out->valid = (uint8_t)lc_civil_ns_days(&c, days, off, &out->ns);
        return;
    }
    out->valid = (uint8_t)lc_civil_ns(&c, off, &out->ns);
}
