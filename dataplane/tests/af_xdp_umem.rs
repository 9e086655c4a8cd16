//! Issue 13: bulk TCP with two workers on af_xdp ports stopped after
//! 10-100 MB. DPDK 22.11's af_xdp PMD registers as a port's UMEM
//! `populated × object size` bytes from the start of its RX pool's memory
//! (fixed in DPDK 24.07, "net/af_xdp: parse UMEM map info from mempool").
//! DPDK's default pool layout keeps each mbuf off page boundaries; with
//! 4 KiB pages (`--no-huge`) one 2 368-byte mbuf fits a page, so the last
//! ~42 % of the mbufs lie past the UMEM's end. The kernel refuses their
//! descriptors: a fill-ring buffer is skipped, and a frame the PMD copies
//! into one for TX is dropped (`tx_invalid_descs`). One worker recycles a few
//! hundred mbufs through its lcore cache and never reaches them; with two,
//! mbufs freed on the other lcore go back to the pool's ring and the
//! allocations walk through the whole pool.
//!
//! Its own process (EAL is once per process), no hugepages, no shared
//! config (`--in-memory` refuses `--no-huge`).

use dataplane::dpdk::{Eal, Mempool};

#[test]
fn a_packed_pool_lies_inside_the_af_xdp_umem_and_the_default_one_does_not() {
    let args = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--file-prefix=pollux-ut-umem",
        "-l",
        "0",
        "--log-level=1",
    ];
    let eal = Eal::init(&args.map(String::from)).expect("EAL");
    let n = 16_383;
    let plain = Mempool::new("ut_umem_plain", n, 256, -1).expect("pool");
    let packed = Mempool::packed("ut_umem_packed", n, 256, -1).expect("packed pool");
    let outside = plain.outside_umem();
    assert!(
        outside > n / 3,
        "the default layout should leave mbufs past the UMEM: {outside} of {n}"
    );
    assert_eq!(packed.outside_umem(), 0, "a packed pool fits its UMEM");
    // Every mbuf of the packed pool is a usable packet buffer.
    let mut all = Vec::new();
    assert!(packed.alloc_bulk(n as usize, &mut all));
    for (i, m) in all.iter_mut().enumerate() {
        assert!(m.set_len(1514));
        m.data_mut().fill(i as u8);
        assert_eq!(m.data()[1513], i as u8);
    }
    assert!(packed.alloc().is_none());
    drop(all);
    assert_eq!(packed.available(), n);
    drop((plain, packed));
    drop(eal);
    // EAL leaves its runtime directory behind.
    let _ = std::fs::remove_dir_all("/var/run/dpdk/pollux-ut-umem");
}
