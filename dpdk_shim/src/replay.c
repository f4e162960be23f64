/* replay.c - the frames of a pcap into an interface or a TAP (lc_replay.h).
 *
 * Loading: libpcap reads the file once (nanosecond timestamps); frames are
 * appended to one growing buffer with their offsets, lengths and times.
 *
 * Sending: each frame k (counted over every pass) has a due time from the
 * start: 0 at top speed, k / pps, the bits of the frames before it / bps
 * (both from the running count, so rounding never adds up), or its
 * timestamp's distance from the first one (a pass lasts the capture's span
 * plus one mean gap). Frames that are due go out in bursts of at most
 * LC_REPLAY_MAX_BURST: one sendmmsg on an AF_PACKET socket, or one write()
 * each into a TAP. When nothing is due the loop sleeps until the next frame
 * is (spinning only the last few microseconds). A send the kernel refuses
 * for a moment (a full TX queue: ENOBUFS, EAGAIN) is retried after a short
 * sleep and counted (refused for LC_STUCK_NS in a row, across calls: the
 * run fails with that errno); a frame it refuses for good (larger than the MTU:
 * EMSGSIZE; EINVAL) is skipped and counted, so the totals always say
 * sent + errors = attempted.
 */
#define _GNU_SOURCE                 /* sendmmsg */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "../lc_replay.h"
#include "lc_clock.h"

#define LC_SPIN_NS 20000            /* closer than this to a due time: spin, do not sleep */
#define LC_RETRY_PAUSE_NS 50000     /* sleep after ENOBUFS/EAGAIN */
#define LC_STUCK_NS 2000000000LL    /* refused for a moment this long in a row: give up (-errno) */

struct lc_replay {
    uint8_t *data;
    uint64_t *off;
    uint32_t *len;
    int64_t *ts;
    uint64_t n, cap_frames, used, cap_bytes;
    struct lc_replay_info info;
};

__attribute__((format(printf, 3, 4)))
static void lc_seterr(char *err, uint32_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int lc_grow(struct lc_replay *r, uint32_t len)
{
    if (r->n == r->cap_frames) {
        uint64_t cap = r->cap_frames ? r->cap_frames * 2 : 4096;
        uint64_t *off = realloc(r->off, cap * sizeof *off);
        if (!off)
            return -ENOMEM;
        r->off = off;
        uint32_t *ln = realloc(r->len, cap * sizeof *ln);
        if (!ln)
            return -ENOMEM;
        r->len = ln;
        int64_t *ts = realloc(r->ts, cap * sizeof *ts);
        if (!ts)
            return -ENOMEM;
        r->ts = ts;
        r->cap_frames = cap;
    }
    if (r->used + len > r->cap_bytes) {
        uint64_t cap = r->cap_bytes ? r->cap_bytes * 2 : (1u << 20);
        while (cap < r->used + len)
            cap *= 2;
        uint8_t *d = realloc(r->data, cap);
        if (!d)
            return -ENOMEM;
        r->data = d;
        r->cap_bytes = cap;
    }
    return 0;
}

void lc_replay_free(struct lc_replay *r)
{
    if (!r)
        return;
    free(r->data);
    free(r->off);
    free(r->len);
    free(r->ts);
    free(r);
}

int lc_replay_load(const char *path, struct lc_replay **out, struct lc_replay_info *info, char *err,
                   uint32_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    if (!path || !out)
        return -EINVAL;
    *out = NULL;
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!p) {
        lc_seterr(err, errlen, "%s", perr);
        return -EINVAL;
    }
    if (pcap_datalink(p) != DLT_EN10MB) {
        lc_seterr(err, errlen, "link type %s: replay sends Ethernet frames only",
                  pcap_datalink_val_to_name(pcap_datalink(p)) ? pcap_datalink_val_to_name(pcap_datalink(p)) : "?");
        pcap_close(p);
        return -EPROTONOSUPPORT;
    }
    struct lc_replay *r = calloc(1, sizeof *r);
    if (!r) {
        pcap_close(p);
        return -ENOMEM;
    }
    struct pcap_pkthdr *h;
    const u_char *bytes;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &bytes)) == 1) {
        int g = lc_grow(r, h->caplen);
        if (g < 0) {
            lc_seterr(err, errlen, "out of memory after %llu frames", (unsigned long long)r->n);
            lc_replay_free(r);
            pcap_close(p);
            return g;
        }
        memcpy(r->data + r->used, bytes, h->caplen);
        r->off[r->n] = r->used;
        r->len[r->n] = h->caplen;
        r->ts[r->n] = (int64_t)h->ts.tv_sec * 1000000000LL + h->ts.tv_usec;   /* nanoseconds (precision nano) */
        r->used += h->caplen;
        r->info.bytes += h->caplen;
        if (h->caplen > r->info.max_len)
            r->info.max_len = h->caplen;
        if (h->caplen < h->len)
            r->info.truncated++;
        r->n++;
    }
    if (rc == PCAP_ERROR) {
        lc_seterr(err, errlen, "after %llu frames: %s", (unsigned long long)r->n, pcap_geterr(p));
        lc_replay_free(r);
        pcap_close(p);
        return -EIO;
    }
    pcap_close(p);
    if (r->n == 0) {
        lc_seterr(err, errlen, "no frames in the file");
        lc_replay_free(r);
        return -ENODATA;
    }
    r->info.frames = r->n;
    r->info.first_ns = r->ts[0];
    r->info.last_ns = r->ts[r->n - 1];
    if (info)
        *info = r->info;
    *out = r;
    return (int)(r->n > INT32_MAX ? INT32_MAX : r->n);
}

static uint64_t lc_total(const struct lc_replay *r, const struct lc_replay_send *s)
{
    uint64_t all = s->loops * r->n;
    return s->limit && s->limit < all ? s->limit : all;
}

/* When frame number k (pass, idx) is due, in ns from the start; `bits`:
 * the bits of the frames before it (LC_PACE_BPS). */
static int64_t lc_due(const struct lc_replay *r, const struct lc_replay_send *s, uint64_t k, uint64_t pass,
                      uint64_t idx, uint64_t bits)
{
    switch (s->pace) {
    case LC_PACE_PPS:
        return (int64_t)((unsigned __int128)k * 1000000000u / s->rate);
    case LC_PACE_BPS:
        return (int64_t)((unsigned __int128)bits * 1000000000u / s->rate);
    case LC_PACE_CAPTURE: {
        int64_t span = r->ts[r->n - 1] - r->ts[0];
        int64_t gap = r->n > 1 ? span / (int64_t)(r->n - 1) : 0;
        int64_t d = r->ts[idx] - r->ts[0];
        return (int64_t)pass * (span + gap) + (d > 0 ? d : 0);    /* out-of-order stamps: at once */
    }
    default:
        return 0;
    }
}

static void lc_nap(int64_t ns)
{
    struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
    nanosleep(&ts, NULL);
}

static void lc_sleep_until(int64_t t_ns)
{
    for (;;) {
        int64_t now = lc_mono_ns();
        if (now >= t_ns)
            return;
        if (t_ns - now > LC_SPIN_NS)
            lc_nap(t_ns - now - LC_SPIN_NS / 2);
    }
}

/* Send frames [i, i+n) of the batch (indices in idx[]); returns how many
 * were dealt with (sent, or refused for good and counted), or -errno. */
static int lc_send_burst(const struct lc_replay *r, struct lc_replay_send *s, const uint64_t *idx, int n)
{
    if (s->kind == LC_REPLAY_PACKET) {
        struct mmsghdr msgs[LC_REPLAY_MAX_BURST];
        struct iovec iov[LC_REPLAY_MAX_BURST];
        memset(msgs, 0, sizeof(msgs[0]) * (size_t)n);
        for (int j = 0; j < n; j++) {
            iov[j].iov_base = r->data + r->off[idx[j]];
            iov[j].iov_len = r->len[idx[j]];
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
        }
        int got = sendmmsg(s->fd, msgs, (unsigned)n, 0);
        if (got > 0) {
            for (int j = 0; j < got; j++) {
                s->sent++;
                s->bytes += r->len[idx[j]];
            }
            return got;
        }
        if (errno == EMSGSIZE || errno == EINVAL) {     /* this frame, for good */
            s->errors++;
            s->last_errno = errno;
            return 1;
        }
        return -errno;
    }
    for (int j = 0; j < n; j++) {
        ssize_t w = write(s->fd, r->data + r->off[idx[j]], r->len[idx[j]]);
        if (w >= 0) {
            s->sent++;
            s->bytes += r->len[idx[j]];
            continue;
        }
        if (errno == EINVAL || errno == EMSGSIZE) {
            s->errors++;
            s->last_errno = errno;
            continue;
        }
        return j ? j : -errno;
    }
    return n;
}

int lc_replay_run(const struct lc_replay *r, struct lc_replay_send *s, int64_t slice_ns)
{
    if (!r || !s || s->loops == 0 || (s->kind != LC_REPLAY_PACKET && s->kind != LC_REPLAY_TAP) ||
        ((s->pace == LC_PACE_PPS || s->pace == LC_PACE_BPS) && s->rate == 0))
        return -EINVAL;
    s->total = lc_total(r, s);
    int64_t deadline = (int64_t)lc_mono_ns() + slice_ns;
    if (s->start_ns == 0)
        s->start_ns = (int64_t)lc_mono_ns();
    while (s->attempted < s->total) {
        uint64_t idx[LC_REPLAY_MAX_BURST];
        uint64_t bits_before[LC_REPLAY_MAX_BURST + 1];
        int n = 0;
        uint64_t next = s->next, pass = s->pass, bits = s->paced_bits;
        int64_t now = (int64_t)lc_mono_ns();
        if (now >= deadline)
            return 0;
        while (n < LC_REPLAY_MAX_BURST && s->attempted + (uint64_t)n < s->total) {
            int64_t due = lc_due(r, s, s->attempted + (uint64_t)n, pass, next, bits);
            if (s->start_ns + due > now) {
                if (n > 0)
                    break;
                if (s->start_ns + due > deadline) {
                    lc_sleep_until(deadline);
                    return 0;
                }
                lc_sleep_until(s->start_ns + due);
                now = (int64_t)lc_mono_ns();
                continue;
            }
            idx[n] = next;
            bits_before[n] = bits;
            n++;
            bits += (uint64_t)r->len[next] * 8u;
            if (++next == r->n) {
                next = 0;
                pass++;
            }
        }
        bits_before[n] = bits;
        int done = lc_send_burst(r, s, idx, n);
        if (done < 0) {
            if (done != -ENOBUFS && done != -EAGAIN)
                return done;
            s->retries++;
            now = (int64_t)lc_mono_ns();
            if (!s->stuck_since_ns)
                s->stuck_since_ns = now;
            else if (now - s->stuck_since_ns > LC_STUCK_NS)
                return done;
            lc_nap(LC_RETRY_PAUSE_NS);
            continue;
        }
        s->stuck_since_ns = 0;
        for (int j = 0; j < done; j++) {       /* the state moves by the frames dealt with */
            if (++s->next == r->n) {
                s->next = 0;
                s->pass++;
            }
        }
        s->attempted += (uint64_t)done;
        s->paced_bits = bits_before[done];
        s->elapsed_ns = (int64_t)lc_mono_ns() - s->start_ns;
    }
    return 1;
}
