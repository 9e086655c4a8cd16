//! Ethernet ports and their queues.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_eth_stats, rte_ether_addr};

use super::{check, Error, Mempool, Result};
use crate::wire::Mac;

/// A DPDK port id; prints as `port3`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortId(pub u16);

impl std::fmt::Debug for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port{}", self.0)
    }
}

/// The open device behind a [`Port`] and its queues: stopped and closed
/// when the port and every queue handle are gone, so no safe code can poll
/// a closed port, and the pool its RX queues fill from lives as long.
#[derive(Debug)]
struct Device {
    id: PortId,
    started: AtomicBool,
    pool: OnceLock<Arc<Mempool>>,
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the last handle of our port is going: no queue of it can
        // be polled any more (every RxQueue/TxQueue holds this Arc).
        unsafe {
            if self.started.load(Relaxed) {
                dpdk_sys::rte_eth_dev_stop(self.id.0);
            }
            dpdk_sys::rte_eth_dev_close(self.id.0);
        }
    }
}

/// The right to receive on one RX queue of a port. There is exactly one
/// per configured queue ([`Port::take_queues`] hands them out once), it is
/// neither `Clone` nor `Sync`: only the thread holding it polls the queue,
/// as DPDK requires (its queues have no locks).
#[derive(Debug)]
pub struct RxQueue {
    dev: Arc<Device>,
    queue: u16,
    _one_thread: PhantomData<Cell<()>>,
}

/// The right to transmit on one TX queue of a port (as [`RxQueue`]).
#[derive(Debug)]
pub struct TxQueue {
    dev: Arc<Device>,
    queue: u16,
    _one_thread: PhantomData<Cell<()>>,
}

impl RxQueue {
    pub fn port(&self) -> PortId {
        self.dev.id
    }

    pub fn index(&self) -> u16 {
        self.queue
    }
}

impl TxQueue {
    pub fn port(&self) -> PortId {
        self.dev.id
    }

    pub fn index(&self) -> u16 {
        self.queue
    }
}

/// Hardware (or PMD) counters of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the NIC because the RX ring was full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    /// The link as the PMD last saw it (read without waiting).
    pub link: Link,
}

/// A port's link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Mbit/s; 0 when unknown (virtual devices often report none).
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// A port. Stopped and closed once it and all its queue handles are
/// dropped.
#[derive(Debug)]
pub struct Port {
    pub id: PortId,
    pub driver: String,
    dev: Arc<Device>,
    /// The most RX and TX queues the device offers together.
    max_queues: u16,
    /// Queues configured, and whether their handles were handed out.
    queues: u16,
    taken: bool,
    /// Whether the device verifies received IPv4 header checksums.
    rx_ip_checksum: bool,
}

impl Port {
    /// Finds a probed port by its device name (`net_af_xdp0`, a PCI address…).
    pub fn by_name(name: &str) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| Error::Nul("port name"))?;
        let mut id = 0u16;
        // SAFETY: valid C string in, u16 out.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(Error::NoSuchPort(name.to_string()));
        }
        let mut info = rte_eth_dev_info::default();
        // SAFETY: id is a valid port; info is a properly sized out struct.
        check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(id, &mut info)
        })?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: the PMD's driver name is a static C string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(Port {
            id: PortId(id),
            driver,
            dev: Arc::new(Device {
                id: PortId(id),
                started: AtomicBool::new(false),
                pool: OnceLock::new(),
            }),
            max_queues: info.max_rx_queues.min(info.max_tx_queues).max(1),
            queues: 0,
            taken: false,
            rx_ip_checksum: false,
        })
    }

    /// The most queue pairs (one RX, one TX) the device offers: a VF's
    /// or memif's N, one for `net_af_xdp` on a veth.
    pub fn max_queues(&self) -> u16 {
        self.max_queues
    }

    /// `queues` RX and TX queue pairs of `desc` descriptors each, buffers
    /// from `pool`; with more than one, RSS over IP addresses and ports
    /// where the device can hash them (what it offers of those). With
    /// `verify_ip`, the device checks received IPv4 header checksums if it
    /// can (a VF's NIC does it for free; [`rx_ip_checksum`](Self::rx_ip_checksum)
    /// tells), so that the fast path need not.
    pub fn configure(
        &mut self,
        queues: u16,
        desc: u16,
        pool: &Arc<Mempool>,
        verify_ip: bool,
    ) -> Result<()> {
        let id = self.id.0;
        let mut info = rte_eth_dev_info::default();
        // SAFETY: valid port id, out struct.
        check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(id, &mut info)
        })?;
        let mut conf = rte_eth_conf::default();
        // RTE_ETH_RSS_{IPV4, NONFRAG_IPV4_TCP, NONFRAG_IPV4_UDP, IPV6,
        // NONFRAG_IPV6_TCP, NONFRAG_IPV6_UDP}.
        const RSS_IP_L4: u64 = (1 << 2) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 10) | (1 << 11);
        let hf = info.flow_type_rss_offloads & RSS_IP_L4;
        if queues > 1 && hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
        // RTE_ETH_RX_OFFLOAD_IPV4_CKSUM
        const RX_IPV4_CKSUM: u64 = 1 << 1;
        let rx_ip_checksum = verify_ip && info.rx_offload_capa & RX_IPV4_CKSUM != 0;
        if rx_ip_checksum {
            conf.rxmode.offloads |= RX_IPV4_CKSUM;
        }
        // SAFETY: valid port id and an initialised configuration.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, queues, queues, &conf)
        })?;
        // SAFETY: plain query.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) }.max(0) as u32;
        for q in 0..queues {
            // SAFETY: queue q < queues of a configured port; the device
            // keeps the pool alive (Device::pool) until it is closed.
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
            // SAFETY: queue q < queues of a configured port, default conf.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, desc, socket, std::ptr::null())
            })?;
        }
        let _ = self.dev.pool.set(pool.clone());
        self.queues = queues;
        self.rx_ip_checksum = rx_ip_checksum;
        Ok(())
    }

    /// Whether the device verifies received IPv4 header checksums
    /// (flagging each mbuf: [`Burst::frames_checked`](super::mbuf::Burst::frames_checked)).
    pub fn rx_ip_checksum(&self) -> bool {
        self.rx_ip_checksum
    }

    /// The handles of the configured queue pairs, in queue order: once
    /// (each queue has one owner); empty on a second call.
    pub fn take_queues(&mut self) -> Vec<(RxQueue, TxQueue)> {
        if std::mem::replace(&mut self.taken, true) {
            return Vec::new();
        }
        (0..self.queues)
            .map(|queue| {
                (
                    RxQueue {
                        dev: self.dev.clone(),
                        queue,
                        _one_thread: PhantomData,
                    },
                    TxQueue {
                        dev: self.dev.clone(),
                        queue,
                        _one_thread: PhantomData,
                    },
                )
            })
            .collect()
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port.
        check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(self.id.0)
        })?;
        self.dev.started.store(true, Relaxed);
        // Promiscuous: a VF or veth only sees what is addressed to it
        // anyway, and VLAN/multicast filtering is ours. Not all PMDs can.
        // SAFETY: started port.
        unsafe {
            dpdk_sys::rte_eth_promiscuous_enable(self.id.0);
            dpdk_sys::rte_eth_allmulticast_enable(self.id.0);
        }
        Ok(())
    }

    pub fn mac(&self) -> Result<Mac> {
        let mut a = rte_ether_addr::default();
        // SAFETY: valid port, out struct.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.id.0, &mut a)
        })?;
        Ok(Mac(a.addr_bytes))
    }

    /// Sets the port's MAC (for a TAP: the kernel interface's MAC).
    pub fn set_mac(&mut self, mac: Mac) -> Result<()> {
        let mut a = rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: valid port and address.
        check("rte_eth_dev_default_mac_addr_set", unsafe {
            dpdk_sys::rte_eth_dev_default_mac_addr_set(self.id.0, &mut a)
        })?;
        Ok(())
    }

    /// Sets the MTU (for a TAP: the kernel interface's MTU).
    pub fn set_mtu(&mut self, mtu: u16) -> Result<()> {
        // SAFETY: valid port.
        check("rte_eth_dev_set_mtu", unsafe {
            dpdk_sys::rte_eth_dev_set_mtu(self.id.0, mtu)
        })?;
        Ok(())
    }

    pub fn stats(&self) -> PortStats {
        stats(self.id)
    }
}

/// Counters of port `id` (zeros if the PMD cannot tell).
pub fn stats(id: PortId) -> PortStats {
    let mut s = rte_eth_stats::default();
    // SAFETY: valid port id, out struct; read-only for the PMD's counters.
    if unsafe { dpdk_sys::rte_eth_stats_get(id.0, &mut s) } != 0 {
        return PortStats::default();
    }
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        link: link(id),
    }
}

/// The link state of port `id` (down if the PMD cannot tell). Does not
/// wait for autonegotiation.
pub fn link(id: PortId) -> Link {
    let mut l = dpdk_sys::rte_eth_link::default();
    // SAFETY: valid port id, out struct written by the PMD; the _nowait
    // variant never blocks.
    if unsafe { dpdk_sys::rte_eth_link_get_nowait(id.0, &mut l) } != 0 {
        return Link::default();
    }
    // RTE_ETH_SPEED_NUM_UNKNOWN is u32::MAX.
    Link {
        up: l.link_status() != 0,
        speed_mbps: if l.link_speed == u32::MAX {
            0
        } else {
            l.link_speed
        },
        full_duplex: l.link_duplex() != 0,
    }
}
