/* pcap_reader.c - offline reader: pcap and pcapng files through libpcap,
 * decoded a batch at a time (lc_decode.h).
 *
 * A packet that does not fit the current batch is copied aside (libpcap's
 * buffer is only valid until the next read) and decoded first by the next
 * lc_pcap_fill, so no packet is lost or decoded twice across batches.
 * A read error (file cut mid-packet, corrupt block) is reported after the
 * records decoded before it have been handed out.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "lc_batch_write.h"

#define LC_PCAP_PENDING_MAX (256u * 1024u)   /* largest packet kept aside (libpcap's snaplen cap) */

struct lc_pcap {
    pcap_t *p;
    int link;
    uint64_t packets;           /* packets read from the file */
    int has_pending;
    uint32_t pending_len;
    int64_t pending_ns;
    int failed;                 /* -errno of a read error held back for the next fill */
    char failure[PCAP_ERRBUF_SIZE];
    uint8_t pending[LC_PCAP_PENDING_MAX];
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

static int lc_link_supported(int dlt)
{
    switch (dlt) {
    case DLT_EN10MB: return LC_LINK_ETHERNET;
    case DLT_RAW:                       /* 12 on most systems, 14 on OpenBSD */
    case LC_LINK_RAW:                   /* LINKTYPE_RAW as stored in files */
    case DLT_IPV4:
    case DLT_IPV6:
        return LC_LINK_RAW;
    case DLT_LINUX_SLL: return LC_LINK_LINUX_SLL;
    case DLT_LINUX_SLL2: return LC_LINK_LINUX_SLL2;
    default: return 0;
    }
}

/* Nothing fitted: 0 would read as end of file, so say why instead. */
static int lc_no_room(const struct lc_batch_hdr *b, char *err, uint32_t errlen)
{
    if (b->count == 0) {    /* an empty batch holds any packet (lc_batch_size) */
        lc_seterr(err, errlen, "a packet does not fit an empty batch");
        return -EOVERFLOW;
    }
    lc_seterr(err, errlen, "batch full: hand over a batch with room");
    return -ENOSPC;
}

int lc_pcap_open(const char *path, struct lc_pcap **out, char *err, uint32_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    if (!path || !out)
        return -EINVAL;
    *out = NULL;
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!p) {
        lc_seterr(err, errlen, "%s", perr[0] ? perr : "cannot open");
        return -EINVAL;
    }
    int dlt = pcap_datalink(p);
    int link = lc_link_supported(dlt);
    if (!link) {
        const char *name = pcap_datalink_val_to_name(dlt);
        lc_seterr(err, errlen,
                  "unsupported link type %s (%d): Ethernet, raw IP, Linux cooked (SLL, SLL2) are",
                  name ? name : "unknown", dlt);
        pcap_close(p);
        return -EPROTONOSUPPORT;
    }
    struct lc_pcap *pc = malloc(sizeof(*pc));
    if (!pc) {
        pcap_close(p);
        lc_seterr(err, errlen, "%s", "out of memory");
        return -ENOMEM;
    }
    pc->p = p;
    pc->link = link;
    pc->packets = 0;
    pc->has_pending = 0;
    pc->pending_len = 0;
    pc->pending_ns = 0;
    pc->failed = 0;
    pc->failure[0] = 0;
    *out = pc;
    return 0;
}

int lc_pcap_fill(struct lc_pcap *pc, struct lc_decoder *d, struct lc_batch_hdr *b,
                 char *err, uint32_t errlen)
{
    int added = 0, rc;
    if (pc->failed) {
        lc_seterr(err, errlen, "%s", pc->failure);
        return pc->failed;
    }
    if (pc->has_pending) {
        rc = lc_decode_frame(d, b, pc->link, pc->pending, pc->pending_len, pc->pending_ns);
        if (rc == -ENOSPC) {
            return lc_no_room(b, err, errlen);
        }
        if (rc < 0) {
            lc_seterr(err, errlen, "%s", "decoder error");
            return rc;
        }
        pc->has_pending = 0;
        added += rc;
    }
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int r = pcap_next_ex(pc->p, &h, &data);
        if (r == PCAP_ERROR_BREAK)      /* end of file */
            return added;
        if (r == PCAP_ERROR) {
            /* e.g. a file cut mid-packet. Hand out what was decoded first;
             * the error comes with the next call (and every one after). */
            snprintf(pc->failure, sizeof(pc->failure), "after %llu packets: %s",
                     (unsigned long long)pc->packets, pcap_geterr(pc->p));
            pc->failed = -EIO;
            if (added)
                return added;
            lc_seterr(err, errlen, "%s", pc->failure);
            return pc->failed;
        }
        if (r != 1)
            continue;                   /* 0: timeout, live captures only */
        pc->packets++;
        /* nanosecond precision was asked for: ts.tv_usec holds nanoseconds */
        int64_t sec = (int64_t)h->ts.tv_sec;
        if (LC_UNLIKELY(sec < 0))       /* pcap seconds are uint32; libpcap sign-extends (2038+) */
            sec = (int64_t)(uint32_t)sec;
        int64_t ns = sec * 1000000000 + (int64_t)h->ts.tv_usec;
        uint32_t len = h->caplen;
        rc = lc_decode_frame(d, b, pc->link, data, len, ns);
        if (LC_UNLIKELY(rc == -ENOSPC)) {
            if (len > sizeof(pc->pending))
                len = sizeof(pc->pending);
            memcpy(pc->pending, data, len);
            pc->pending_len = len;
            pc->pending_ns = ns;
            pc->has_pending = 1;
            return added ? added : lc_no_room(b, err, errlen);
        }
        if (rc < 0) {
            lc_seterr(err, errlen, "%s", "decoder error");
            return rc;
        }
        added += rc;
    }
}

uint64_t lc_pcap_packets(const struct lc_pcap *pc) { return pc->packets; }

int lc_pcap_linktype(const struct lc_pcap *pc) { return pc->link; }

void lc_pcap_close(struct lc_pcap *pc)
{
    if (!pc)
        return;
    pcap_close(pc->p);
    free(pc);
}
