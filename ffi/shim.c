/* See shim.h: one non-inline wrapper per DPDK static inline that pollux needs. */
#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include "shim.h"

uint16_t pollux_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }

uint16_t pollux_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }

struct rte_mbuf *pollux_pktmbuf_alloc(struct rte_mempool *mp)
{ return rte_pktmbuf_alloc(mp); }

int pollux_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, n); }

void pollux_pktmbuf_free(struct rte_mbuf *m)
{ rte_pktmbuf_free(m); }

void pollux_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n)
{ rte_pktmbuf_free_bulk(mbufs, n); }

int pollux_errno(void) { return rte_errno; }

unsigned pollux_lcore_id(void) { return rte_lcore_id(); }

uint64_t pollux_rdtsc(void) { return rte_rdtsc(); }

uint64_t pollux_tsc_hz(void) { return rte_get_tsc_hz(); }

unsigned pollux_mempool_avail(const struct rte_mempool *mp)
{ return rte_mempool_avail_count(mp); }
