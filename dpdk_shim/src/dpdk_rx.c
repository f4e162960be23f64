/* dpdk_rx.c - the RX loop of one queue, on its own lcore:
 * rte_eth_rx_burst -> decode -> batch (a ring slot) -> publish.
 * A batch closes when full, when the queue ran dry, or batch_max_delay_us
 * after its first record. A full ring never blocks: the batch is decoded
 * into a scratch batch and counted as lost (ring_full).
 *
 * Idle cost: the loop busy-polls while traffic is dense; once the queue
 * has been dry for idle_spin_us it naps (nanosleep, idle_sleep_us at most,
 * never past the open batch's deadline) between polls, and spins again
 * from the first burst that returns packets (lc_dpdk.h). */
#include <errno.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_ring.h"
#include "../lc_rx.h"
#include "../lc_dpdk.h"
#include "lc_clock.h"
#include "rx_batcher.h"

#define LC_MAX_BURST 512
#define LC_LINEAR_BUF (64 * 1024 + 64)   /* a chained jumbo frame, linearised */
#define LC_NAP_SLACK_NS 1000             /* timer slack of a napping lcore (the kernel's default is 50 us) */

static volatile int lc_stop_requested;

/* How long an idle loop may nap now: idle_sleep_us, cut to what is left
 * of the open batch's batch_max_delay (0: do not nap). */
static inline uint64_t lc_rx_nap_ns(const struct lc_batcher *s, uint64_t now, uint64_t delay, uint64_t cyc_per_us,
                                    uint64_t nap_max_ns)
{
    if (s->b == NULL || s->b->count == 0)
        return nap_max_ns;
    uint64_t due = s->opened + delay;
    if (due <= now || cyc_per_us == 0)
        return 0;
    uint64_t left_ns = (due - now) / cyc_per_us * 1000;
    return left_ns < nap_max_ns ? left_ns : nap_max_ns;
}

static int lc_rx_main(void *arg)
{
    struct lc_rx_conf *c = arg;
    struct lc_rxq_stats *st = c->stats;
    struct rte_mbuf *pkts[LC_MAX_BURST];
    uint16_t burst = c->burst > LC_MAX_BURST ? LC_MAX_BURST : c->burst;
    uint64_t hz = rte_get_tsc_hz();
    uint64_t cyc_per_us = hz / 1000000;
    uint64_t delay = cyc_per_us * c->batch_max_delay_us;
    uint64_t idle_stop = hz / 1000 * c->idle_stop_ms;
    uint64_t idle_spin = cyc_per_us * c->idle_spin_us;
    uint64_t nap_max = (uint64_t)c->idle_sleep_us * 1000;
    struct lc_batcher s = {.ring = c->ring, .decoder = c->decoder, .stats = st, .scratch = c->scratch};
    uint8_t *linear = rte_malloc("lc_linear", LC_LINEAR_BUF, 64);
    if (linear == NULL)
        return -ENOMEM;

    if (nap_max)
        prctl(PR_SET_TIMERSLACK, LC_NAP_SLACK_NS, 0, 0, 0);   /* this lcore's thread: naps end on time */
    c->sleeps = 0;
    st->tsc_hz = hz;
    st->running = 1;
    /* Every cycle of the loop is counted, busy or idle (the loop's own
     * overhead included), so busy + idle is the time the loop ran. */
    uint64_t prev = rte_rdtsc(), last_rx = prev;
    while (likely(!__atomic_load_n(&lc_stop_requested, __ATOMIC_RELAXED))) {
        uint16_t n = rte_eth_rx_burst(c->port_id, c->queue_id, pkts, burst);
        if (unlikely(n == 0)) {
            uint64_t t1 = rte_rdtsc();
            lc_batcher_idle(&s, t1, delay);      /* the queue ran dry */
            st->polls_idle++;
            if (nap_max && t1 - last_rx >= idle_spin) {
                /* Dry for idle_spin_us: nap instead of spinning (the TSC
                 * runs on, so the nap counts as idle cycles below). */
                uint64_t nap = lc_rx_nap_ns(&s, t1, delay, cyc_per_us, nap_max);
                if (nap) {
                    struct timespec ts = lc_timespec_ns(nap);
                    nanosleep(&ts, NULL);
                    c->sleeps++;
                    t1 = rte_rdtsc();
                }
            }
            st->cycles_idle += t1 - prev;
            prev = t1;
            if (c->stop_after && c->idle_stop_ms && t1 - last_rx > idle_stop)
                break;                           /* the source went quiet */
            continue;
        }
        int64_t rx_ns = lc_realtime_ns();
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; i++) {
            struct rte_mbuf *m = pkts[i];
            if (i + 1 < n)
                rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
            const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
            uint32_t len = rte_pktmbuf_data_len(m);
            if (unlikely(m->nb_segs > 1)) {
                len = rte_pktmbuf_pkt_len(m) < LC_LINEAR_BUF ? rte_pktmbuf_pkt_len(m) : LC_LINEAR_BUF;
                data = rte_pktmbuf_read(m, 0, len, linear);
                st->multi_seg++;
            }
            bytes += rte_pktmbuf_pkt_len(m);
            lc_batcher_frame(&s, LC_LINK_ETHERNET, data, len, rx_ns, prev);
            rte_pktmbuf_free(m);
        }
        st->packets += n;
        st->bytes += bytes;
        uint64_t t1 = rte_rdtsc();
        lc_batcher_tick(&s, t1, delay);
        st->polls_busy++;
        st->cycles_busy += t1 - prev;
        prev = last_rx = t1;
        if (c->stop_after && st->packets >= c->stop_after)
            break;                               /* every packet of the file is in */
    }
    lc_batcher_flush(&s);
    lc_ring_set_closed(c->ring);
    rte_free(linear);
    st->running = 0;
    return 0;
}

int lc_rx_launch(struct lc_rx_conf *conf)
{
    if (conf->ring == NULL || conf->decoder == NULL || conf->stats == NULL || conf->scratch == NULL ||
        conf->burst == 0)
        return -EINVAL;
    if (conf->lcore >= RTE_MAX_LCORE || !rte_lcore_is_enabled(conf->lcore) ||
        conf->lcore == rte_get_main_lcore())
        return -EINVAL;
    __atomic_store_n(&lc_stop_requested, 0, __ATOMIC_RELAXED);
    conf->stats->running = 1;
    return rte_eal_remote_launch(lc_rx_main, conf, conf->lcore);
}

void lc_rx_stop_all(void) { __atomic_store_n(&lc_stop_requested, 1, __ATOMIC_RELAXED); }

int lc_rx_running(uint32_t lcore)
{
    if (lcore >= RTE_MAX_LCORE)
        return -EINVAL;
    return rte_eal_get_lcore_state(lcore) == RUNNING;
}

int lc_rx_wait(uint32_t lcore)
{
    if (lcore >= RTE_MAX_LCORE)
        return -EINVAL;
    return rte_eal_wait_lcore(lcore);
}
