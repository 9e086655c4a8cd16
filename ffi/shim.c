/* See shim.h: one non-inline wrapper per DPDK static inline that pollux needs. */
#include <errno.h>
#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_mbuf_pool_ops.h>
#include <unistd.h>
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

/* rte_pktmbuf_pool_create with RTE_MEMPOOL_F_NO_IOVA_CONTIG: the objects are
 * packed back to back in one memory chunk instead of being kept from crossing
 * page boundaries (which leaves a gap at the end of every page). DPDK 22.11's
 * af_xdp PMD registers as its UMEM only populated_size * object size bytes
 * from the first chunk's start: with gaps, the last mbufs lie past its end
 * (see pollux_mempool_outside_umem). The steps are rte_pktmbuf_pool_create's. */
struct rte_mempool *pollux_pktmbuf_pool_create_packed(const char *name, unsigned n, unsigned cache,
                                                      uint16_t data_room, int socket)
{
	struct rte_pktmbuf_pool_private priv = { .mbuf_data_room_size = data_room, .mbuf_priv_size = 0 };
	unsigned elt = sizeof(struct rte_mbuf) + data_room;
	struct rte_mempool *mp = rte_mempool_create_empty(name, n, elt, cache, sizeof(priv), socket,
							  RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	if (mp == NULL)
		return NULL;
	if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) != 0) {
		rte_mempool_free(mp);
		rte_errno = EINVAL;
		return NULL;
	}
	rte_pktmbuf_pool_init(mp, &priv);
	int rc = rte_mempool_populate_default(mp);
	if (rc < 0) {
		rte_mempool_free(mp);
		rte_errno = -rc;
		return NULL;
	}
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	return mp;
}

struct umem_span { uintptr_t start, end; size_t header, frame; unsigned outside; };

static void count_outside(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
	struct umem_span *s = arg;
	uintptr_t chunk = (uintptr_t)obj - s->header;
	(void)mp;
	(void)idx;
	if (chunk < s->start || chunk + s->frame > s->end)
		s->outside++;
}

/* How many mbufs of `mp` lie (wholly or partly) outside the UMEM that DPDK
 * 22.11's af_xdp PMD registers for it (xdp_umem_configure: from the first
 * memory chunk's start, page-floored, populated_size * object size + the
 * floor's offset). The kernel refuses descriptors there: on the fill ring
 * the buffer is skipped, on the TX ring the frame is dropped (counted in
 * XDP_STATISTICS tx_invalid_descs); neither buffer comes back. */
unsigned pollux_mempool_outside_umem(struct rte_mempool *mp)
{
	struct rte_mempool_memhdr *first = STAILQ_FIRST(&mp->mem_list);
	if (first == NULL)
		return 0;
	uintptr_t addr = (uintptr_t)first->addr;
	uintptr_t base = addr & ~((uintptr_t)getpagesize() - 1);
	size_t frame = rte_mempool_calc_obj_size(mp->elt_size, mp->flags, NULL);
	struct umem_span s = {
		.start = base,
		.end = base + (uintptr_t)mp->populated_size * frame + (addr - base),
		.header = mp->header_size,
		.frame = frame,
		.outside = 0,
	};
	rte_mempool_obj_iter(mp, count_outside, &s);
	return s.outside;
}
