//! `pollux capture`: the daemon's side streams pcapng over the API
//! connection that asked for it; the CLI writes the file.
//!
//! ```text
//!   CLI ── {"do": "capture-start", "port", "filter", "count", "duration_ms"} ──► api
//!   CLI ◄── {"ok": true, "message"} \n, then pcapng: SHB, IDB (the port),
//!           EPBs (flags: inbound/outbound) every 1 ms, ISB (drops) at the end
//!   any ── {"do": "capture-stop"} ──► the running capture ends (ISB, close)
//! ```
//!
//! The CLI writes the file, not the daemon: the file is the operator's
//! (their user, their directory, `-w -` into tshark or a pipe across
//! `kubectl exec`), the daemon writes nowhere on the filesystem on an API
//! client's word, and a client that goes away (Ctrl-C, a killed
//! `kubectl exec`) ends the capture at once. One capture at a time.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::api::{Capture, CaptureDir, CaptureFilter, CAPTURE_SNAP};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::state::State;

/// How often the capture task drains the workers' rings.
const DRAIN_EVERY: Duration = Duration::from_millis(1);

/// The capture that runs, if one does, and the counts of the last one.
#[derive(Debug, Default)]
pub struct Captures {
    running: Mutex<Option<Running>>,
    last: Mutex<Option<Tally>>,
}

/// What `show stats` tells of the running or last capture.
#[derive(Debug, Clone, Default)]
struct Tally {
    port: String,
    running: bool,
    captured: u64,
    /// Matched but found the ring full (`capture_dropped`).
    dropped: u64,
}

impl Captures {
    fn tally(&self, f: impl FnOnce(&mut Tally)) {
        if let Ok(mut t) = self.last.lock() {
            f(t.get_or_insert_with(Tally::default));
        }
    }

    /// `show stats`' `capture`: the running or last capture (null before
    /// the first).
    pub fn json(&self) -> Value {
        match self.last.lock().ok().and_then(|t| t.clone()) {
            Some(t) => json!({
                "port": t.port, "running": t.running,
                "captured": t.captured, "capture_dropped": t.dropped,
            }),
            None => Value::Null,
        }
    }
}

#[derive(Debug)]
struct Running {
    port: String,
    stop: Arc<tokio::sync::Notify>,
}

/// What a `capture-start` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub port: String,
    pub filter: CaptureFilter,
    /// Stop after this many frames.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

impl Request {
    pub fn parse(req: &Value) -> Result<Request, String> {
        let port = req
            .get("port")
            .and_then(Value::as_str)
            .ok_or("expected \"port\"")?
            .to_string();
        let filter = match req.get("filter").and_then(Value::as_str) {
            Some(f) => f.parse()?,
            None => CaptureFilter::default(),
        };
        let num = |k: &str| -> Result<Option<u64>, String> {
            match req.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n > 0)
                    .map(Some)
                    .ok_or_else(|| format!("\"{k}\" must be a positive integer")),
            }
        };
        Ok(Request {
            port,
            filter,
            count: num("count")?,
            duration: num("duration_ms")?.map(Duration::from_millis),
        })
    }
}

/// Clears the running capture when the task ends, however it ends.
struct Clear<'a>(&'a State);

impl Drop for Clear<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.0.captures.running.lock() {
            *r = None;
        }
        self.0.captures.tally(|t| t.running = false);
    }
}

/// `{"do": "capture-stop"}`.
pub fn stop(state: &State) -> Value {
    match state.captures.running.lock().ok().as_deref() {
        Some(Some(r)) => {
            r.stop.notify_one();
            json!({ "ok": true, "message": format!("capture on {} stopping", r.port) })
        }
        _ => json!({ "error": "no capture is running" }),
    }
}

/// `{"do": "capture-start", ...}` on connection (`r`, `w`): answers, then
/// streams the capture until its end. The caller runs this outside the
/// API's per-connection time limit.
pub async fn serve(state: Arc<State>, req: &Value, r: OwnedReadHalf, mut w: OwnedWriteHalf) {
    let started = Request::parse(req).and_then(|q| start(&state, q));
    let (cap, q, stop) = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = w
                .write_all(format!("{}\n", json!({ "error": e })).as_bytes())
                .await;
            let _ = w.shutdown().await;
            return;
        }
    };
    let _clear = Clear(&state);
    let tally = &state.captures;
    tracing::info!(port = %q.port, filter = %q.filter, count = ?q.count, duration = ?q.duration, "capture started");
    let (captured, dropped, how) = match stream(cap, &q, &stop, tally, r, &mut w).await {
        Ok(x) => x,
        Err(e) => {
            tracing::info!(port = %q.port, error = %e, "capture ended: client gone");
            return;
        }
    };
    tracing::info!(port = %q.port, captured, dropped, how, "capture ended");
    let _ = w.shutdown().await;
}

fn start(
    state: &State,
    q: Request,
) -> Result<(Capture, Request, Arc<tokio::sync::Notify>), String> {
    let mut running = state
        .captures
        .running
        .lock()
        .map_err(|_| "capture state poisoned")?;
    if let Some(r) = running.as_ref() {
        return Err(format!(
            "a capture is already running on {} (one at a time; `pollux capture stop` ends it)",
            r.port
        ));
    }
    let cap = state
        .with_dp(|dp| dp.capture(&q.port, q.filter))
        .ok_or("the data plane is stopped")??;
    let stop = Arc::new(tokio::sync::Notify::new());
    *running = Some(Running {
        port: q.port.clone(),
        stop: stop.clone(),
    });
    state.captures.tally(|t| {
        *t = Tally {
            port: q.port.clone(),
            running: true,
            ..Tally::default()
        }
    });
    Ok((cap, q, stop))
}

/// The answer line, then pcapng until the end; (captured, dropped, why
/// it ended). An error: the client went away.
async fn stream(
    mut cap: Capture,
    q: &Request,
    stop: &tokio::sync::Notify,
    tally: &Captures,
    mut r: OwnedReadHalf,
    w: &mut OwnedWriteHalf,
) -> std::io::Result<(u64, u64, &'static str)> {
    let hello = json!({
        "ok": true,
        "message": format!("capturing on {} (filter {}, snap length {CAPTURE_SNAP})", q.port, q.filter),
    });
    w.write_all(format!("{hello}\n").as_bytes()).await?;
    let start_ns = unix_now_ns();
    let mut out = Pcapng::new(&q.port, &q.filter)?;
    w.write_all(&out.take()).await?;
    let deadline = q.duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut captured = 0u64;
    let limit = q.count.unwrap_or(u64::MAX);
    let mut byte = [0u8; 64];
    let how = loop {
        let mut ended = None;
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.notified() => ended = Some("stopped"),
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                ended = Some("duration")
            }
            // The client sends nothing more: readable means gone.
            n = r.read(&mut byte) => {
                if matches!(n, Ok(0) | Err(_)) {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
            }
        }
        if let Some(how) = ended {
            // What the workers filed until they saw the stop.
            cap.stop();
            tokio::time::sleep(DRAIN_EVERY).await;
            out.frames(&mut cap, &mut captured, limit)?;
            break how;
        }
        out.frames(&mut cap, &mut captured, limit)?;
        let dropped = cap.dropped();
        tally.tally(|t| (t.captured, t.dropped) = (captured, dropped));
        w.write_all(&out.take()).await?;
        if captured >= limit {
            cap.stop();
            break "count";
        }
    };
    let dropped = cap.dropped();
    tally.tally(|t| (t.captured, t.dropped) = (captured, dropped));
    out.statistics(start_ns, captured, dropped)?;
    w.write_all(&out.take()).await?;
    Ok((captured, dropped, how))
}

/// pcapng blocks encoded into memory, taken out in batches.
struct Pcapng {
    w: PcapNgWriter<Vec<u8>>,
}

fn pcap_err(e: pcap_file::PcapError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Pcapng {
    /// The section header and the port's interface description.
    fn new(port: &str, filter: &CaptureFilter) -> std::io::Result<Pcapng> {
        let shb = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "pollux {}",
                env!("CARGO_PKG_VERSION")
            )))],
            ..Default::default()
        };
        let mut w = PcapNgWriter::with_section_header(Vec::new(), shb).map_err(pcap_err)?;
        let mut options = vec![
            InterfaceDescriptionOption::IfName(Cow::Owned(port.to_string())),
            // Timestamps in ns (the default is µs).
            InterfaceDescriptionOption::IfTsResol(9),
        ];
        if !filter.is_empty() {
            options.push(InterfaceDescriptionOption::Comment(Cow::Owned(format!(
                "pollux capture filter: {filter}"
            ))));
        }
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: CAPTURE_SNAP as u32,
            options,
        })
        .map_err(pcap_err)?;
        Ok(Pcapng { w })
    }

    /// The bytes encoded since the last call.
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.w.get_mut())
    }

    /// The frames the workers filed, up to `limit` in all.
    fn frames(&mut self, cap: &mut Capture, captured: &mut u64, limit: u64) -> std::io::Result<()> {
        let mut err = Ok(());
        cap.drain(|f| {
            if *captured >= limit || err.is_err() {
                return;
            }
            // epb_flags: bits 0-1 direction (01 inbound, 10 outbound).
            let flags = match f.dir {
                CaptureDir::In => 1,
                CaptureDir::Out => 2,
            };
            let epb = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(f.unix_ns),
                original_len: f.orig_len,
                data: Cow::Borrowed(f.data),
                options: vec![EnhancedPacketOption::Flags(flags)],
            };
            match self.w.write_pcapng_block(epb) {
                Ok(_) => *captured += 1,
                Err(e) => err = Err(pcap_err(e)),
            }
        });
        err
    }

    /// The interface statistics block that ends a capture: frames
    /// delivered, and dropped because the ring was full (isb_ifdrop).
    fn statistics(&mut self, start_ns: u64, captured: u64, dropped: u64) -> std::io::Result<()> {
        let end_ns = unix_now_ns();
        self.w
            .write_pcapng_block(InterfaceStatisticsBlock {
                interface_id: 0,
                timestamp: end_ns,
                options: vec![
                    InterfaceStatisticsOption::IsbStartTime(start_ns),
                    InterfaceStatisticsOption::IsbEndTime(end_ns),
                    InterfaceStatisticsOption::IsbIfDrop(dropped),
                    InterfaceStatisticsOption::IsbUsrDeliv(captured),
                ],
            })
            .map_err(pcap_err)?;
        Ok(())
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The CLI's side: sends `req`, copies the pcapng stream into `out`
/// (flushed block by block), and returns (frames, dropped) when the
/// daemon ends the capture. `started` gets the daemon's first answer.
pub fn client(
    socket: &std::path::Path,
    req: &Value,
    out: impl std::io::Write,
    started: impl FnOnce(&str),
) -> anyhow::Result<(u64, u64)> {
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach pollux at {}: {e} (is it running? use --api or --config)",
            socket.display()
        )
    })?;
    writeln!(s, "{req}")?;
    let mut rd = std::io::BufReader::new(s);
    let mut line = String::new();
    rd.read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| anyhow::anyhow!("bad answer from pollux ({e}): {line:?}"))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        anyhow::bail!("{e}");
    }
    started(v["message"].as_str().unwrap_or("capturing"));
    let mut reader = PcapNgReader::new(rd)?;
    let mut writer = PcapNgWriter::with_section_header(out, reader.section().clone())?;
    let (mut frames, mut dropped) = (0, None);
    while let Some(block) = reader.next_block() {
        let block = block?;
        match &block {
            Block::EnhancedPacket(_) => frames += 1,
            Block::InterfaceStatistics(isb) => {
                dropped = isb.options.iter().find_map(|o| match o {
                    InterfaceStatisticsOption::IsbIfDrop(n) => Some(*n),
                    _ => None,
                });
            }
            _ => {}
        }
        writer.write_block(&block)?;
        writer.get_mut().flush()?;
    }
    let dropped = dropped.ok_or_else(|| {
        anyhow::anyhow!("the capture ended without its statistics: pollux stopped or failed ({frames} frames written)")
    })?;
    Ok((frames, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_refuse_bad_numbers() {
        let q = Request::parse(&json!({
            "do": "capture-start", "port": "ext", "filter": "udp/53", "count": 10, "duration_ms": 1500
        }))
        .unwrap();
        assert_eq!(q.port, "ext");
        assert_eq!(q.filter.to_string(), "53/udp");
        assert_eq!(q.count, Some(10));
        assert_eq!(q.duration, Some(Duration::from_millis(1500)));
        let all = Request::parse(&json!({ "port": "ext", "count": null })).unwrap();
        assert_eq!((all.count, all.duration), (None, None));
        assert!(all.filter.is_empty());
        assert!(Request::parse(&json!({})).unwrap_err().contains("port"));
        assert!(Request::parse(&json!({ "port": "x", "count": 0 }))
            .unwrap_err()
            .contains("count"));
        assert!(Request::parse(&json!({ "port": "x", "filter": "nope" })).is_err());
    }

    #[test]
    fn the_stream_reads_back_as_pcapng_with_flags_and_drops() {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let mut p = Pcapng::new("ext", &"udp".parse().unwrap()).unwrap();
        let mut bytes = p.take();
        let frame = [0xaau8; 60];
        p.w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(1_700_000_000_123_456_789),
            original_len: 1500,
            data: Cow::Borrowed(&frame),
            options: vec![EnhancedPacketOption::Flags(2)],
        })
        .unwrap();
        p.statistics(1, 1, 7).unwrap();
        bytes.extend(p.take());
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut seen = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => {
                    assert_eq!(i.linktype, DataLink::ETHERNET);
                    assert!(i
                        .options
                        .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                    seen.push("idb");
                }
                Block::EnhancedPacket(e) => {
                    assert_eq!(&e.data[..], &frame[..]);
                    assert_eq!(e.original_len, 1500);
                    assert_eq!(e.timestamp.as_nanos(), 1_700_000_000_123_456_789);
                    assert_eq!(e.options, vec![EnhancedPacketOption::Flags(2)]);
                    seen.push("epb");
                }
                Block::InterfaceStatistics(s) => {
                    assert!(s.options.contains(&InterfaceStatisticsOption::IsbIfDrop(7)));
                    seen.push("isb");
                }
                _ => {}
            }
        }
        assert_eq!(seen, ["idb", "epb", "isb"]);
    }
}
