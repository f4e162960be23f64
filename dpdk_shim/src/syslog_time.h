/* syslog_time.h - timestamps of syslog headers: RFC 3339 (RFC 5424) and the
 * BSD / vendor forms of RFC 3164, normalised to int64 ns UTC.
 *
 * No libc time functions, no allocation: civil dates are converted with
 * days-from-civil arithmetic, month names through a perfect-hash table.
 * Every parser reads only p[0..n).
 */
#ifndef LC_SYSLOG_TIME_H
#define LC_SYSLOG_TIME_H

#include <stdint.h>

/* A timestamp recognised in a header. */
struct lc_ts {
    int64_t ns;               /* UTC nanoseconds; meaningful only when valid */
    uint32_t len;             /* bytes of the timestamp text (0: none here) */
    uint8_t valid;            /* 1: date and time in range, ns set */
    uint8_t year_inferred;    /* 1: the text had no year, taken from rx time */
    uint8_t colon;            /* 1: the text ended in ':' (Cisco/ASA "...:"),
                                 included in len */
    uint8_t year_after;       /* 1: a year after the time was read as one
                                 (rsyslog reads it as the host name) */
};

/* Seconds a BSD date may lie in the future of the receive time before it is
 * taken to belong to the previous year (DESIGN.md: "about a month"). */
#define LC_TS_FUTURE_SLACK_S (31 * 86400)

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12). */
int64_t lc_days_from_civil(int64_t y, unsigned m, unsigned d);

/* Month 1..12 of a three-letter English abbreviation (any case), else 0.
 * Reads p[0..3). */
unsigned lc_month3(const uint8_t *p);

/* The RFC 5424 TIMESTAMP token p[0..n) (NILVALUE already excluded):
 * full-date "T" full-time with fraction digits (beyond 9: cut to ns, as
 * syslog-ng does) and Z / +hh:mm.
 * Lenient: lowercase t/z, +hhmm, and no offset at all (read in
 * `tz_offset_s`). Returns 1 and sets *ns when the whole token is a valid
 * timestamp, 0 otherwise. */
int lc_ts_rfc5424(const uint8_t *p, uint32_t n, int32_t tz_offset_s, int64_t *ns);

/* A timestamp where RFC 3164 puts one, at the start of p[0..n):
 *   [*|.]Mmm dd hh:mm:ss[.frac]            day space- or zero-padded
 *   [*|.]Mmm dd yyyy hh:mm:ss[.frac]       (Cisco ASA)
 *   [*|.]Mmm dd hh:mm:ss[.frac] yyyy       (a year 1980..2099 after the time)
 * Month names in any case, three letters or in full ("JAN", "January");
 *   yyyy Mmm dd hh:mm:ss[.frac]            (Cisco NX-OS)
 *   yyyy-mm-dd(T| )hh:mm:ss[.frac][Z|+hh:mm|+hhmm]   (ISO 8601 / RFC 3339)
 * optionally followed by a zone abbreviation (" UTC", " CET", ...; upper
 * case, and UTC/GMT in any case before ':', Cisco's "gmt:") where it cannot
 * be a host name: before ':' (Cisco) or before a year
 * ("05:34:00 CST 1987", RFC 3164 5.4); then optionally ':'.
 * The text must end at the end of p, a space or ':'.
 * Without a year, the year is inferred from rx_ns: the year of rx time in
 * the zone, or the one before when that puts the date more than
 * LC_TS_FUTURE_SLACK_S after rx time, or the one after when that keeps it
 * within the slack (a sender whose clock already passed New Year).
 * Zone: a numeric offset or known abbreviation in the text, else tz_offset_s.
 * Sets out->len = 0 when the text is not a timestamp; len > 0 and valid = 0
 * when it has the shape of one but names an impossible date or time. */
void lc_ts_bsd(const uint8_t *p, uint32_t n, int32_t tz_offset_s, int64_t rx_ns,
               struct lc_ts *out);

#endif
