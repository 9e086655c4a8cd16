/* Everything pollux binds from DPDK. Stable across 22.11, 23.11 and 24.11. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include "shim.h"
