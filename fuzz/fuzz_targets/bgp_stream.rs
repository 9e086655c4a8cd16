//! A BGP peer's byte stream into one session, as the neighbor's reader
//! feeds it: the bytes arrive in chunks (sizes from the input), are framed
//! with `split_message`, and each whole message goes to the sans-IO FSM;
//! a framing error hands the bad header to the FSM (which answers with a
//! NOTIFICATION) and ends the connection. The session starts passive with
//! the connection accepted, so a stream that begins with a valid OPEN and
//! KEEPALIVE (the seeds do) reaches Established and its UPDATEs.
//!
//! Input: `[chunk, hold, stream...]`: chunk sizes cycle from `chunk`
//! (1..=256), `hold` picks the hold time we propose; every 8th chunk also
//! fires the timer that is due next.
#![no_main]
use std::net::Ipv4Addr;

use bgp::fsm::{Config, Input, Output, Session};
use bgp::{split_message, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [chunk, hold, stream @ ..] = data else {
        return;
    };
    let mut config = Config::new(65000, 65001, Ipv4Addr::new(192, 0, 2, 1));
    config.hold_time = if hold & 1 == 0 { 90 } else { 3 };
    config.min_hold_time = if hold & 2 == 0 { 3 } else { 0 };
    let mut s = Session::new(config);
    let mut out: Vec<Output> = Vec::with_capacity(64);
    let mut now = 0u64;
    s.process(now, Input::ManualStartPassive, &mut out);
    s.process(now, Input::TcpConnectionConfirmed, &mut out);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut fed = 0usize;
    let mut size = usize::from(*chunk) + 1;
    let mut i = 0u32;
    while fed < stream.len() {
        let n = size.min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        size = size % 256 + 1 + usize::from(stream[fed - 1] & 7);
        now += 10;
        let mut start = 0;
        loop {
            match split_message(&buf[start..]) {
                Ok(Some((msg, _))) => {
                    let len = msg.len();
                    s.process(now, Input::Received(msg), &mut out);
                    start += len;
                }
                Ok(None) => break,
                Err(_) => {
                    let end = (start + HEADER_LEN).min(buf.len());
                    s.process(now, Input::Received(&buf[start..end]), &mut out);
                    s.process(now, Input::TcpConnectionFails, &mut out);
                    return;
                }
            }
        }
        buf.drain(..start);
        i += 1;
        if i % 8 == 0 {
            if let Some((timer, deadline)) = s.next_deadline() {
                now = now.max(deadline);
                s.process(now, Input::Timer(timer), &mut out);
            }
        }
        out.clear();
    }
    s.process(now, Input::TcpConnectionFails, &mut out);
});
