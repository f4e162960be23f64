/* dpdk_port.c - EAL, mbuf pools and port start/stop (basicfwd/l2fwd order:
 * EAL -> pool per (port, socket) -> configure -> adjust descriptors ->
 * queue setup on the port's node -> start -> link). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "../lc_batch.h"
#include "../lc_decode.h"
#include "../lc_ring.h"
#include "../lc_dpdk.h"

#define LC_MBUF_CACHE 256
#define LC_MBUF_DATA_ROOM RTE_MBUF_DEFAULT_BUF_SIZE
#define LC_TX_DESC 64            /* one small TX queue: some PMDs want one */
#define LC_LINK_POLL_MS 50

static struct rte_mempool *lc_pools[RTE_MAX_ETHPORTS];

static void lc_err(char *err, uint32_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int lc_eal_init(int argc, char **argv, char *err, uint32_t errlen)
{
    int rc = rte_eal_init(argc, argv);
    if (rc < 0) {
        int e = rte_errno ? rte_errno : EINVAL;
        lc_err(err, errlen, "rte_eal_init: %s", rte_strerror(e));
        return -e;
    }
    return 0;
}

int lc_eal_cleanup(void)
{
    int rc = rte_eal_cleanup();
    return rc < 0 ? -(rte_errno ? rte_errno : EINVAL) : 0;
}

int lc_port_by_name(const char *name)
{
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(name, &id) != 0)
        return -ENODEV;
    return id;
}

int lc_port_count(void) { return rte_eth_dev_count_avail(); }

int lc_lcore_socket(unsigned lcore)
{
    if (lcore >= RTE_MAX_LCORE)
        return -EINVAL;
    return (int)rte_lcore_to_socket_id(lcore);
}

int lc_port_socket(uint16_t port_id)
{
    if (!rte_eth_dev_is_valid_port(port_id))
        return -ENODEV;
    return rte_eth_dev_socket_id(port_id);
}

/* Pool size: every RX descriptor filled twice over (net_af_xdp fills its
 * fill queue from the pool at setup, on top of the RX ring), a burst in
 * flight, the per-lcore caches; mempools like 2^n - 1. */
static uint32_t lc_pool_size(const struct lc_port_conf *c, uint16_t nb_rxd, uint16_t nb_rxq)
{
    uint64_t n = 2ull * nb_rxd * nb_rxq + (uint64_t)c->burst * nb_rxq +
                 (uint64_t)LC_MBUF_CACHE * (rte_lcore_count() + 1) + LC_TX_DESC * nb_rxq + c->extra_mbufs;
    uint32_t size = 1;
    while (size - 1 < n)
        size <<= 1;
    return size - 1;
}

static int lc_wait_link(uint16_t port, uint32_t timeout_ms, struct rte_eth_link *link)
{
    for (uint32_t waited = 0;; waited += LC_LINK_POLL_MS) {
        memset(link, 0, sizeof(*link));
        if (rte_eth_link_get_nowait(port, link) == 0 && link->link_status == RTE_ETH_LINK_UP)
            return 1;
        if (waited >= timeout_ms)
            return 0;
        rte_delay_ms(LC_LINK_POLL_MS);
    }
}

int lc_port_start(const struct lc_port_conf *c, struct lc_port_info *info, char *err, uint32_t errlen)
{
    uint16_t port = c->port_id;
    struct rte_eth_dev_info dev;
    struct rte_eth_conf conf;
    int rc;

    memset(info, 0, sizeof(*info));
    if (!rte_eth_dev_is_valid_port(port)) {
        lc_err(err, errlen, "port %u does not exist", port);
        return -ENODEV;
    }
    if (c->nb_rxq == 0 || c->nb_rxq > LC_DPDK_MAX_QUEUES || c->burst == 0) {
        lc_err(err, errlen, "bad port configuration: %u RX queues, burst %u", c->nb_rxq, c->burst);
        return -EINVAL;
    }
    rc = rte_eth_dev_info_get(port, &dev);
    if (rc) {
        lc_err(err, errlen, "rte_eth_dev_info_get: %s", rte_strerror(-rc));
        return rc;
    }
    rte_eth_dev_get_name_by_port(port, info->name);
    snprintf(info->driver, sizeof(info->driver), "%s", dev.driver_name);
    info->max_rx_queues = dev.max_rx_queues;

    uint16_t nb_rxq = c->nb_rxq;
    memset(&conf, 0, sizeof(conf));
    uint64_t rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & dev.flow_type_rss_offloads;
    if (nb_rxq > 1 && (!c->rss || rss_hf == 0 || dev.max_rx_queues < nb_rxq)) {
        /* Without RSS several queues would not share the traffic: use one. */
        nb_rxq = 1;
    }
    if (nb_rxq > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        info->rss = 1;
    }
    rc = rte_eth_dev_configure(port, nb_rxq, nb_rxq, &conf);
    if (rc) {
        lc_err(err, errlen, "rte_eth_dev_configure(%u rxq): %s", nb_rxq, rte_strerror(-rc));
        return rc;
    }
    uint16_t nb_rxd = c->nb_rxd, nb_txd = LC_TX_DESC;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
    if (rc) {
        lc_err(err, errlen, "rte_eth_dev_adjust_nb_rx_tx_desc: %s", rte_strerror(-rc));
        goto close;
    }

    int socket = rte_eth_dev_socket_id(port);
    unsigned pool_socket = socket < 0 ? rte_socket_id() : (unsigned)socket;
    uint32_t mbufs = c->mbufs ? c->mbufs : lc_pool_size(c, nb_rxd, nb_rxq);
    if (lc_pools[port] == NULL) {
        char name[RTE_MEMPOOL_NAMESIZE];
        snprintf(name, sizeof(name), "lc_mbuf_p%u", port);
        lc_pools[port] = rte_pktmbuf_pool_create(name, mbufs, LC_MBUF_CACHE, 0, LC_MBUF_DATA_ROOM,
                                                 pool_socket);
        if (lc_pools[port] == NULL) {
            rc = -(rte_errno ? rte_errno : ENOMEM);
            lc_err(err, errlen, "mbuf pool of %u on node %u: %s (hugepages short?)", mbufs, pool_socket,
                   rte_strerror(-rc));
            goto close;
        }
    }
    for (uint16_t q = 0; q < nb_rxq; q++) {
        rc = rte_eth_rx_queue_setup(port, q, nb_rxd, pool_socket, NULL, lc_pools[port]);
        if (rc) {
            lc_err(err, errlen, "rte_eth_rx_queue_setup(queue %u, %u desc): %s", q, nb_rxd, rte_strerror(-rc));
            goto close;
        }
        rc = rte_eth_tx_queue_setup(port, q, nb_txd, pool_socket, NULL);
        if (rc) {
            lc_err(err, errlen, "rte_eth_tx_queue_setup(queue %u): %s", q, rte_strerror(-rc));
            goto close;
        }
    }
    rc = rte_eth_dev_start(port);
    if (rc) {
        lc_err(err, errlen, "rte_eth_dev_start: %s", rte_strerror(-rc));
        goto close;
    }
    if (c->promiscuous)
        rte_eth_promiscuous_enable(port);  /* best effort: not every vdev has it */

    struct rte_eth_link link;
    info->link_up = (uint8_t)lc_wait_link(port, c->link_timeout_ms, &link);
    info->link_speed_mbps = link.link_speed;
    info->socket_id = socket;
    info->nb_rxq = nb_rxq;
    info->nb_rxd = nb_rxd;
    info->mbufs = lc_pools[port]->size;
    info->mbuf_data_room = LC_MBUF_DATA_ROOM;
    return 0;

close:
    rte_eth_dev_close(port);
    return rc;
}

int lc_port_stop(uint16_t port_id)
{
    if (!rte_eth_dev_is_valid_port(port_id))
        return -ENODEV;
    int rc = rte_eth_dev_stop(port_id);
    int rc2 = rte_eth_dev_close(port_id);
    if (lc_pools[port_id]) {
        rte_mempool_free(lc_pools[port_id]);
        lc_pools[port_id] = NULL;
    }
    return rc ? rc : rc2;
}

int lc_port_stats(uint16_t port_id, struct lc_port_stats *out)
{
    struct rte_eth_stats s;
    int rc = rte_eth_stats_get(port_id, &s);
    if (rc)
        return rc;
    out->ipackets = s.ipackets;
    out->ibytes = s.ibytes;
    out->imissed = s.imissed;
    out->ierrors = s.ierrors;
    out->rx_nombuf = s.rx_nombuf;
    return 0;
}

int lc_port_xstat(uint16_t port_id, uint32_t i, char *name, uint32_t namelen, uint64_t *value)
{
    int n = rte_eth_xstats_get_names_by_id(port_id, NULL, 0, NULL);
    if (n < 0 || name == NULL || value == NULL)
        return n;
    if (i >= (uint32_t)n)
        return -ERANGE;
    uint64_t id = i;
    struct rte_eth_xstat_name xname;
    if (rte_eth_xstats_get_names_by_id(port_id, &xname, 1, &id) != 1)
        return -EIO;
    if (rte_eth_xstats_get_by_id(port_id, &id, value, 1) != 1)
        return -EIO;
    snprintf(name, namelen, "%s", xname.name);
    return n;
}
