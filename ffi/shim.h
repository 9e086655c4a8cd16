/*
 * Non-inline entry points for DPDK's `static inline` fast path.
 *
 * rte_eth_rx_burst/tx_burst, the mbuf allocator and rte_errno are inline (or a
 * thread-local macro) by design, so Rust cannot call them directly. Each costs
 * one extra call per burst here, not per packet: per-packet fields (data
 * pointer, lengths) are read from the bindgen `rte_mbuf` in Rust.
 */
#ifndef POLLUX_SHIM_H
#define POLLUX_SHIM_H
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;

uint16_t pollux_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t pollux_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *pollux_pktmbuf_alloc(struct rte_mempool *mp);
int pollux_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void pollux_pktmbuf_free(struct rte_mbuf *m);
void pollux_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);
int pollux_errno(void);
unsigned pollux_lcore_id(void);
uint64_t pollux_rdtsc(void);
uint64_t pollux_tsc_hz(void);
unsigned pollux_mempool_avail(const struct rte_mempool *mp);
struct rte_mempool *pollux_pktmbuf_pool_create_packed(const char *name, unsigned n, unsigned cache,
                                                      uint16_t data_room, int socket);
unsigned pollux_mempool_outside_umem(struct rte_mempool *mp);
#endif
