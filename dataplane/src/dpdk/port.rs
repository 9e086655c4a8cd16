//! Ethernet ports and their queues.

use std::ffi::{CStr, CString};

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

/// One RX or TX queue of a port: what a worker polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    pub port: PortId,
    pub queue: u16,
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

/// A configured port. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    pub id: PortId,
    pub driver: String,
    started: bool,
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
            started: false,
        })
    }

    /// One RX and `txq` TX queues of `desc` descriptors, buffers from `pool`.
    pub fn configure(&mut self, txq: u16, desc: u16, pool: &Mempool) -> Result<()> {
        let conf = rte_eth_conf::default();
        let id = self.id.0;
        // SAFETY: valid port id and a zeroed default configuration.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, 1, txq, &conf)
        })?;
        // SAFETY: plain query.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) }.max(0) as u32;
        // SAFETY: queue 0 of a configured port; the pool outlives the port
        // (the data plane closes ports before freeing pools).
        check("rte_eth_rx_queue_setup", unsafe {
            dpdk_sys::rte_eth_rx_queue_setup(id, 0, desc, socket, std::ptr::null(), pool.as_ptr())
        })?;
        for q in 0..txq {
            // SAFETY: queue q < txq of a configured port, default conf.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, desc, socket, std::ptr::null())
            })?;
        }
        Ok(())
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port.
        check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(self.id.0)
        })?;
        self.started = true;
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

    pub fn rx(&self) -> Queue {
        Queue {
            port: self.id,
            queue: 0,
        }
    }

    pub fn tx(&self, queue: u16) -> Queue {
        Queue {
            port: self.id,
            queue,
        }
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

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: our port; no worker polls it any more (workers are joined
        // before ports drop).
        unsafe {
            if self.started {
                dpdk_sys::rte_eth_dev_stop(self.id.0);
            }
            dpdk_sys::rte_eth_dev_close(self.id.0);
        }
    }
}
