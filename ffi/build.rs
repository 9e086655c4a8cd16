//! Bindings over the DPDK that `pkg-config libdpdk` finds, plus the C shim.
//!
//! The `pkg-config` crate keeps only -I/-L/-l flags; DPDK's headers also need
//! `-include rte_config.h` and `-march=...` from the raw `--cflags`, so those
//! are passed verbatim to both bindgen and cc (../shared/lab gotcha 7).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("libdpdk not found by pkg-config: apt-get install libdpdk-dev pkg-config");
    let version = lib.version.clone();
    let raw = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config runs");
    let cflags: Vec<String> = String::from_utf8(raw.stdout)
        .expect("pkg-config prints UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let here = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    for f in ["wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-env=POLLUX_DPDK_VERSION={version}");

    let bindings = bindgen::Builder::default()
        .header(here.join("wrapper.h").to_str().unwrap())
        .clang_args(&cflags)
        .clang_arg(format!("-I{}", here.display()))
        .allowlist_function("pollux_.*")
        .allowlist_function("rte_eal_init|rte_eal_cleanup|rte_eal_remote_launch|rte_eal_wait_lcore|rte_eal_mp_wait_lcore")
        .allowlist_function("rte_socket_id|rte_lcore_count|rte_strerror|rte_version|rte_get_main_lcore")
        .allowlist_function("rte_eth_dev_count_avail|rte_eth_dev_get_port_by_name|rte_eth_dev_get_name_by_port")
        .allowlist_function("rte_eth_dev_configure|rte_eth_rx_queue_setup|rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_start|rte_eth_dev_stop|rte_eth_dev_close|rte_eth_dev_info_get")
        .allowlist_function("rte_eth_stats_get|rte_eth_macaddr_get|rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_dev_set_mtu|rte_eth_link_get_nowait|rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_allmulticast_enable|rte_eth_dev_is_valid_port|rte_eth_dev_default_mac_addr_set|rte_eth_dev_get_mtu")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free")
        .allowlist_type("rte_mbuf|rte_mempool|rte_eth_conf|rte_eth_stats|rte_eth_dev_info|rte_ether_addr|rte_eth_link")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|RTE_MAX_ETHPORTS|RTE_MAX_LCORE|RTE_ETH_NAME_MAX_LEN")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen over DPDK headers");
    bindings.write_to_file(out.join("bindings.rs")).unwrap();

    let mut cc = cc::Build::new();
    for f in &cflags {
        cc.flag(f);
    }
    cc.include(&here)
        .opt_level(3)
        .file(here.join("shim.c"))
        .warnings(false);
    cc.compile("pollux_dpdk_shim");
}
