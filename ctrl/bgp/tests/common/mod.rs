//! Shared helpers of the integration tests (included with `mod common`).
#![allow(dead_code)]

use std::net::Ipv4Addr;

use bgp::fsm::{Config, Input, Output, Session, State};
use bgp::{Context, Message, Notification};

/// Hex to bytes; whitespace is ignored and `#` starts a comment that runs
/// to the end of the line.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars())
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// A fixture file under tests/fixtures, as bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    hex(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Byte-by-byte comparison that names the first differing offset.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "bytes differ at offset {i}: got {:02x}, want {:02x}\n got  {}\n want {}",
            got[i],
            want[i],
            to_hex(got),
            to_hex(want)
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "lengths differ\n got  {}\n want {}",
        to_hex(got),
        to_hex(want)
    );
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Messages the outputs send, decoded.
pub fn sent(outs: &[Output]) -> Vec<Message> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { bytes, .. } => {
                Some(bgp::decode(bytes, &Context::default()).expect("we send valid messages"))
            }
            _ => None,
        })
        .collect()
}

/// The NOTIFICATION among the outputs, if any.
pub fn sent_notification(outs: &[Output]) -> Option<Notification> {
    sent(outs).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    })
}

/// The configuration of the corpus receiver with short timers.
pub fn local_config() -> Config {
    let mut c = Config::new(65000, 65001, Ipv4Addr::new(192, 0, 2, 1));
    c.hold_time = 9;
    c.connect_retry_time = 5;
    c
}

/// The peer's matching configuration.
pub fn peer_config() -> Config {
    let mut c = Config::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 2));
    c.hold_time = 9;
    c.connect_retry_time = 5;
    c
}

/// The peer's OPEN as bytes.
pub fn peer_open_bytes() -> Vec<u8> {
    Message::Open(peer_config().open())
        .to_bytes(&Context::default())
        .unwrap()
}

pub fn keepalive_bytes() -> Vec<u8> {
    Message::Keepalive.to_bytes(&Context::default()).unwrap()
}

/// A session of `local_config` in OpenSent (we connected, OPEN sent).
pub fn open_sent(now: u64) -> Session {
    let mut s = Session::new(local_config());
    let mut out = Vec::new();
    s.process(now, Input::ManualStart, &mut out);
    s.process(now, Input::TcpCrAcked, &mut out);
    assert_eq!(s.state(), State::OpenSent);
    s
}

/// A session of `local_config` in Established.
pub fn established(now: u64) -> Session {
    let mut s = open_sent(now);
    let mut out = Vec::new();
    s.process(now, Input::Received(&peer_open_bytes()), &mut out);
    s.process(now, Input::Received(&keepalive_bytes()), &mut out);
    assert_eq!(s.state(), State::Established);
    s
}
