//! BFD Control packets: parse arbitrary bytes; what parses must emit back to
//! itself and must not upset a session or a session table.
#![no_main]
use std::net::{IpAddr, Ipv4Addr};

use dataplane::bfd::{
    Packet, PeerKey, Repr, RxMeta, Session, SessionConfig, SessionId, SessionTable, Timers,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The view: one length check, then infallible getters.
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.state(), p.diag(), p.auth(), p.required_min_echo_rx());
    }

    // The table path, as the worker uses it (counts drops, never panics).
    let peer = PeerKey {
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        iface: 0,
    };
    let mut table = SessionTable::with_capacity(1);
    let cfg = SessionConfig::single_hop(1, Timers::symmetric_us(10_000, 3));
    table.add(0, peer, cfg).unwrap();
    let ttl = data.first().copied().unwrap_or(255) | 0xf0;
    let meta = RxMeta {
        peer,
        ttl,
        multihop: false,
    };
    let _ = table.handle_rx(1_000, &meta, data);
    table.poll_timers(1_000, &mut |_| {});
    table.poll_timers(10_000_000_000, &mut |_| {});

    let Ok(repr) = Repr::parse_bytes(data) else {
        return;
    };
    // Round trip.
    let mut buf = [0u8; 255];
    let n = repr
        .emit(&mut buf)
        .expect("a parsed packet fits its own length");
    assert_eq!(Repr::parse_bytes(&buf[..n]), Ok(repr));

    // A session addressed by the packet, fed it three times with its timers
    // run in between.
    let local = if repr.your_discr == 0 {
        1
    } else {
        repr.your_discr
    };
    let cfg = SessionConfig::single_hop(local, Timers::symmetric_us(3_300, 1));
    let mut s = Session::new(SessionId(0), cfg, 0).unwrap();
    let mut now = 1_000u64;
    for _ in 0..3 {
        let _ = s.on_packet(now, &repr, 255);
        while s.poll_transmit(now, &mut buf).is_some() {}
        now = s.next_deadline().clamp(now, now + 2_000_000_000);
        let _ = s.check_timeout(now);
    }
});
