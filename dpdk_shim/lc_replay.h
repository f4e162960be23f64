#pragma once
/* lc_replay.h - `logcaster replay`: the frames of a pcap, sent at C speed.
 * Read by ffi.cdef: declarations only (see lc_batch.h).
 *
 * lc_replay_load reads every frame of a pcap/pcapng file (Ethernet link
 * type) into memory once, so the sending loop never waits on the disk and
 * --loop repeats the file for free. lc_replay_run sends them through an
 * AF_PACKET socket bound to an interface (sendmmsg, frames leave by that
 * interface) or into a TAP's file descriptor (write, the kernel receives
 * them on the TAP), paced by packets/s, bits/s or the capture's own
 * timestamps, or as fast as the kernel takes them. It returns after at
 * most `slice_ns` so the caller can draw progress, and is called again to
 * go on: every field of lc_replay_send is the state between calls.
 *
 * Every function returns >= 0 (ok / a count) or -errno; `err` says what
 * was being done where it helps (the caller adds strerror of the errno).
 */

#define LC_REPLAY_PACKET 0          /* fd: AF_PACKET socket bound to the interface */
#define LC_REPLAY_TAP 1             /* fd: a TAP queue (/dev/net/tun, IFF_TAP | IFF_NO_PI) */
#define LC_REPLAY_MAX_BURST 64      /* frames per sendmmsg */

#define LC_PACE_TOPSPEED 0          /* as fast as the kernel takes them */
#define LC_PACE_PPS 1               /* `rate` packets per second */
#define LC_PACE_BPS 2               /* `rate` bits per second (frame bytes) */
#define LC_PACE_CAPTURE 3           /* the gaps between the capture's own timestamps */

struct lc_replay;                   /* the frames of one file, in memory */

struct lc_replay_info {
    uint64_t frames;
    uint64_t bytes;                 /* frame bytes in all */
    int64_t first_ns, last_ns;      /* capture timestamps */
    uint32_t max_len;               /* largest frame */
    uint32_t truncated;             /* frames cut by the capture's snaplen (sent as captured) */
};

struct lc_replay_send {
    int fd;
    int kind;                       /* LC_REPLAY_PACKET | LC_REPLAY_TAP */
    int pace;                       /* LC_PACE_* */
    uint64_t rate;                  /* for LC_PACE_PPS / LC_PACE_BPS */
    uint64_t loops;                 /* passes over the file (>= 1) */
    uint64_t limit;                 /* frames to send at most (0: loops x frames) */
    /* state and results, kept between calls (zero at the start) */
    uint64_t total;                 /* out: frames to attempt, min(limit, loops x frames) */
    uint64_t attempted;             /* frames sent or refused for good, all passes */
    uint64_t next;                  /* index of the next frame in this pass */
    uint64_t pass;                  /* passes completed */
    uint64_t paced_bits;            /* LC_PACE_BPS: bits of the frames attempted so far */
    int64_t stuck_since_ns;         /* the kernel has refused sends for a moment since then; 0: not */
    uint64_t sent;                  /* frames the kernel accepted */
    uint64_t bytes;                 /* their bytes */
    uint64_t retries;               /* sends the kernel refused for a moment (ENOBUFS, EAGAIN): retried */
    uint64_t errors;                /* frames the kernel refused for good (EMSGSIZE, ...): skipped */
    int last_errno;                 /* errno of the last of those */
    int64_t start_ns;               /* CLOCK_MONOTONIC of the first frame; 0 until then */
    int64_t elapsed_ns;             /* start to the last frame sent */
};

int lc_replay_load(const char *path, struct lc_replay **out, struct lc_replay_info *info, char *err,
                   uint32_t errlen);
void lc_replay_free(struct lc_replay *r);
/* Send for at most slice_ns; 1 when everything was sent, 0 when there is
 * more, -errno when the descriptor failed (the state says how far it got). */
int lc_replay_run(const struct lc_replay *r, struct lc_replay_send *s, int64_t slice_ns);
