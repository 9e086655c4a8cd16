//! Any bytes as a frame from the wire and from the TAP: the host logic must
//! return a verdict without panicking, whatever the headers claim.
#![no_main]
use std::net::IpAddr;

use dataplane::host::{Fib, Host, HostIo, Prefix, Route, SelfIp};
use dataplane::wire::Mac;
use libfuzzer_sys::fuzz_target;

struct Io;
impl HostIo for Io {
    fn mirror_to_tap(&mut self, _: &[u8], _: &[u8]) {}
    fn resolved(&mut self, _: IpAddr, _: Mac) {}
}

fuzz_target!(|data: &[u8]| {
    let ips = vec![
        SelfIp { addr: "10.0.0.2".parse().unwrap(), len: 24 },
        SelfIp { addr: "fd00::2".parse().unwrap(), len: 64 },
    ];
    let vlan = data.first().map(|b| b & 1 == 1).unwrap_or(false).then_some(100);
    let mut host = Host::new(0, Mac([2, 0, 0, 0, 0, 2]), vlan, 1500, ips);
    let fib = Fib::new(vec![Route { prefix: Prefix::new("0.0.0.0".parse().unwrap(), 0), port: 0, via: Some("10.0.0.1".parse().unwrap()) }]);
    // Room to grow, as an mbuf's tailroom gives.
    let mut buf = data.to_vec();
    buf.resize(data.len() + 256, 0);
    let _ = host.rx_from_wire(1, &mut buf, data.len(), &mut Io);
    let mut buf = data.to_vec();
    buf.resize(data.len() + 256, 0);
    let _ = host.rx_from_tap(&mut buf, data.len(), &fib);
    let mut out = [0u8; 256];
    if let Ok(ip) = std::str::from_utf8(data).unwrap_or("").parse::<IpAddr>() {
        let _ = host.emit_solicit(ip, &mut out);
    }
});
