//! Tests of the driver: neighbor resolution and addressing without
//! sockets; then two speakers, and the malformed corpus from a raw peer,
//! over loopback TCP (127.0.0.0/8, no root needed).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bgp::testing::{self, Expected, When};
use bgp::{Context, Message};
use dataplane::api::{BfdState, PortSpec, SelfIp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::*;
use crate::config::{Bgp, Neighbor, PeerAddress};
// What operators read of a speaker (the tests check it; the speaker
// itself renders nothing).
use crate::render::bgp::{neighbors_json, routes_json, summary_json};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn port(name: &str, ips: &[&str]) -> PortSpec {
    PortSpec {
        name: name.into(),
        device: "d".into(),
        self_ips: ips
            .iter()
            .map(|s| {
                let (a, l) = s.split_once('/').unwrap();
                SelfIp {
                    addr: ip(a),
                    len: l.parse().unwrap(),
                }
            })
            .collect(),
        vlan: None,
        mtu: 1500,
        neighbors: vec![],
        punt_rate: 0,
        queues: None,
    }
}

fn lookup_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn node_lookup_gives_the_node_peers() {
    let f = lookup_file("node-1: [10.0.0.1, \"fd00::1\"]\nnode-2: 10.0.1.1\n");
    assert_eq!(
        lookup_peers(f.path(), Some("node-1")).unwrap(),
        vec![ip("10.0.0.1"), ip("fd00::1")]
    );
    assert_eq!(
        lookup_peers(f.path(), Some("node-2")).unwrap(),
        vec![ip("10.0.1.1")]
    );
}

#[test]
fn node_lookup_errors_name_the_file_and_the_node() {
    let f = lookup_file("node-1: [10.0.0.1]\n");
    let e = lookup_peers(f.path(), Some("node-9")).unwrap_err();
    assert!(
        e.contains("node-9") && e.contains(&f.path().display().to_string()),
        "{e}"
    );
    let e = lookup_peers(f.path(), None).unwrap_err();
    assert!(e.contains("NODE_NAME"), "{e}");
    let f = lookup_file("node-1: [not-an-ip]\n");
    let e = lookup_peers(f.path(), Some("node-1")).unwrap_err();
    assert!(e.contains("not-an-ip"), "{e}");
    let e = lookup_peers(&PathBuf::from("/nonexistent/lookup.yaml"), Some("n")).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn session_uses_the_self_ip_on_the_peer_subnet_and_that_port_next_hops() {
    let ports = [
        port("ext", &["10.0.0.2/24", "fe80::2/64", "fd00::2/64"]),
        port("int", &["10.1.0.2/24", "fd01::2/64"]),
    ];
    let l = local_for(ip("10.1.0.1"), &ports).unwrap();
    assert_eq!(l.addr, ip("10.1.0.2"));
    assert!(l.connected);
    assert_eq!(l.next_hop_v4, Some("10.1.0.2".parse().unwrap()));
    assert_eq!(l.next_hop_v6, Some("fd01::2".parse().unwrap()));
    // IPv6 session: the global self IP, not the link-local one.
    let l = local_for(ip("fd00::1"), &ports).unwrap();
    assert_eq!(l.addr, ip("fd00::2"));
    assert_eq!(l.next_hop_v4, Some("10.0.0.2".parse().unwrap()));
    assert_eq!(l.next_hop_v6, Some("fd00::2".parse().unwrap()));
    // A multihop peer: the first self IP of its family.
    let l = local_for(ip("192.0.2.1"), &ports).unwrap();
    assert_eq!((l.addr, l.connected), (ip("10.0.0.2"), false));
    assert!(local_for(ip("fd99::1"), &[port("v4only", &["10.0.0.2/24"])]).is_none());
}

#[test]
fn open_announces_configured_timers_families_and_graceful_restart() {
    let cfg = bgp_config(
        65000,
        "192.0.2.1",
        vec![neighbor("10.0.0.1", 4_200_000_001)],
    );
    let mut n = cfg.neighbors[0].clone();
    n.advertise_ipv6 = true;
    n.hold_time = 9;
    let c = fsm_config(&cfg, &n, false);
    assert_eq!(c.hold_time, 9);
    assert_eq!(c.peer_as, 4_200_000_001);
    assert_eq!(
        c.families,
        vec![bgp::Family::IPV4_UNICAST, bgp::Family::IPV6_UNICAST]
    );
    let open = c.open();
    let gr = open.graceful_restart().unwrap();
    assert_eq!(gr.restart_time, 120);
    assert!(!gr.restart_state(), "no R bit");
    let mut no_gr = cfg.clone();
    no_gr.graceful_restart = None;
    assert!(fsm_config(&no_gr, &n, false)
        .open()
        .graceful_restart()
        .is_none());
}

/// The corpus as JSON for the end-to-end test (`tests/integration/`):
/// regenerate with `POLLUX_UPDATE_FIXTURES=1 cargo test -p ctrl corpus`.
#[test]
fn corpus_json_for_the_end_to_end_test_is_current() {
    let cases: Vec<Value> = testing::malformed_corpus()
        .iter()
        .map(|c| {
            let expected = match &c.expected {
                Expected::Notification {
                    code,
                    subcode,
                    data,
                } => json!({ "kind": "notification", "code": code, "subcode": subcode, "data": hex(data) }),
                Expected::CloseSilently => json!({ "kind": "close" }),
                Expected::TreatAsWithdraw(p) => json!({
                    "kind": "treat_as_withdraw",
                    "prefixes": p.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
                Expected::AttributeDiscard {
                    type_code,
                    remaining,
                } => json!({ "kind": "attribute_discard", "type_code": type_code, "remaining": remaining }),
            };
            json!({
                "name": c.name,
                "when": match c.when { When::InsteadOfOpen => "instead_of_open", When::Established => "established" },
                "bytes": hex(&c.bytes),
                "expected": expected,
            })
        })
        .collect();
    let doc = json!({
        "generated_by": "cargo test -p ctrl corpus_json (POLLUX_UPDATE_FIXTURES=1 rewrites)",
        "local_as": testing::LOCAL_AS,
        "local_id": testing::LOCAL_ID.to_string(),
        "peer_as": testing::PEER_AS,
        "peer_id": testing::PEER_ID.to_string(),
        "cases": cases,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/integration/bgp_corpus.json");
    if std::env::var_os("POLLUX_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "{} is stale: rerun with POLLUX_UPDATE_FIXTURES=1",
        path.display()
    );
    assert!(cases.len() >= 30);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// -- loopback ----------------------------------------------------------------

fn neighbor(addr: &str, asn: u32) -> Neighbor {
    Neighbor {
        address: PeerAddress::Fixed(ip(addr)),
        asn,
        password_file: None,
        ebgp_multihop: 1,
        bfd: false,
        advertise_ipv4: true,
        advertise_ipv6: false,
        hold_time: 90,
        min_hold_time: 3,
        max_prefixes: 10_000,
        ttl_security: false,
    }
}

fn bgp_config(asn: u32, id: &str, neighbors: Vec<Neighbor>) -> Bgp {
    Bgp {
        asn,
        router_id: id.parse().unwrap(),
        graceful_restart: Some(120),
        neighbors,
        drain_delay: Duration::from_secs(5),
    }
}

/// A port number free on 127.0.0.1 (both speakers bind it on their own
/// loopback address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const FAST: Duration = Duration::from_millis(100);

fn options(port: u16) -> Options {
    Options {
        port,
        restart_min: FAST,
    }
}

async fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn neighbor_json(s: &Speaker) -> Value {
    neighbors_json(s)["neighbors"][0].clone()
}

fn established(s: &Speaker) -> bool {
    neighbor_json(s)["state"] == "Established"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_peer_advertise_withdraw_gate_and_drain() {
    let p = free_port();
    let vips = |v: &[&str]| v.iter().map(|s| ip(s)).collect::<VipSet>();
    let (a_tx, a_rx) = watch::channel(vips(&["192.0.2.10", "2001:db8::10"]));
    let (_b_tx, b_rx) = watch::channel(VipSet::new());
    let mut na = neighbor("127.0.0.2", 4_200_000_002);
    na.advertise_ipv6 = true;
    let mut nb = neighbor("127.0.0.1", 65000);
    nb.advertise_ipv6 = true;
    let a = Speaker::start_with(
        &bgp_config(65000, "192.0.2.1", vec![na]),
        None,
        &[port("a", &["127.0.0.1/8", "fd00::1/64"])],
        a_rx,
        options(p),
    );
    let b = Speaker::start_with(
        &bgp_config(4_200_000_002, "192.0.2.2", vec![nb]),
        None,
        &[port("b", &["127.0.0.2/8", "fd00::2/64"])],
        b_rx,
        options(p),
    );
    until("both Established", 10, || {
        (established(&a) && established(&b)).then_some(())
    })
    .await;
    let nj = neighbor_json(&a);
    assert_eq!(nj["negotiated"]["four_octet_as"], true);
    assert_eq!(nj["negotiated"]["peer_as"], 4_200_000_002u32);
    assert_eq!(nj["local_address"], "127.0.0.1");
    // One /32 and one /128 (MP-BGP on the IPv4 session) reach B.
    until("B received 2 prefixes", 5, || {
        (neighbor_json(&b)["prefixes_received"] == 2).then_some(())
    })
    .await;
    let routes = routes_json(&a);
    let r = routes["routes"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{routes}");
    assert_eq!(r[0]["prefix"], "192.0.2.10/32");
    assert_eq!(r[0]["next_hop"], "127.0.0.1");
    assert_eq!(r[0]["as_path"], json!([65000]));
    assert_eq!(r[1]["prefix"], "2001:db8::10/128");
    assert_eq!(r[1]["next_hop"], "fd00::1");
    // End-of-RIB for both families came after the table.
    assert!(
        neighbor_json(&a)["messages_sent"]["update"]
            .as_u64()
            .unwrap()
            >= 4
    );

    // A VIP leaves the set: withdrawn.
    a_tx.send_replace(vips(&["2001:db8::10"]));
    until("B down to 1 prefix", 5, || {
        (neighbor_json(&b)["prefixes_received"] == 1).then_some(())
    })
    .await;
    assert_eq!(summary_json(&a)["neighbors"][0]["prefixes_advertised"], 1);

    // BFD down (the message the events task sends): at once, and stays
    // down while B keeps trying.
    let before = neighbor_json(&b)["established_transitions"]
        .as_u64()
        .unwrap();
    let notifications = neighbor_json(&a)["messages_sent"]["notification"].clone();
    let (bfd, changes) = tokio::sync::mpsc::unbounded_channel();
    a.follow_bfd(changes);
    let change = |from, to, up, down| crate::events::BfdChange {
        peer: ip("127.0.0.2"),
        from,
        to,
        up,
        down,
    };
    // The peer's AdminDown (its drain) is no path failure: nothing moves.
    bfd.send(change(BfdState::Up, BfdState::Down, false, false))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(established(&a), "AdminDown took the session down");
    bfd.send(change(BfdState::Up, BfdState::Down, false, true))
        .unwrap();
    assert!(!a.peer_down(ip("127.0.0.9")), "unknown peer");
    until("A down", 2, || (!established(&a)).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!established(&a), "gated session came back");
    assert_eq!(neighbor_json(&a)["bfd_up"], false);
    // No NOTIFICATION was sent for it (RFC 5882: just the TCP drop).
    assert_eq!(
        neighbor_json(&a)["messages_sent"]["notification"],
        notifications
    );
    bfd.send(change(BfdState::Init, BfdState::Up, true, false))
        .unwrap();
    assert!(!a.peer_up(ip("127.0.0.9")), "unknown peer");
    until("Established again", 10, || {
        (established(&a) && established(&b)).then_some(())
    })
    .await;
    assert!(
        neighbor_json(&b)["established_transitions"]
            .as_u64()
            .unwrap()
            > before
    );

    // Drain: GRACEFUL_SHUTDOWN, then withdraw, then Cease.
    let updates = |s: &Speaker| {
        neighbor_json(s)["messages_received"]["update"]
            .as_u64()
            .unwrap()
    };
    let before = updates(&b);
    a.drain(Duration::from_millis(300)).await;
    // B saw the re-announcement with the community, the withdrawal, the
    // NOTIFICATION.
    let nb = until("B saw the Cease", 2, || {
        let nb = neighbor_json(&b);
        nb["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cease"))
            .then_some(nb)
    })
    .await;
    assert!(updates(&b) >= before + 2, "{nb}");
    assert_eq!(nb["prefixes_received"], 0);
    let err = nb["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("cease(6)/2") && err.contains("pollux is shutting down"),
        "{nb}"
    );
    let na = neighbor_json(&a);
    assert_eq!(na["stopped"], true);
    assert_eq!(na["draining"], true);
    // Stays down: B's reconnections are refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!established(&a) && !established(&b));
}

// -- the malformed corpus from a raw peer ------------------------------------

async fn read_msg(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 19];
    s.read_exact(&mut h).await.ok()?;
    let len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body).await.ok()?;
    let mut m = h.to_vec();
    m.extend(body);
    Some(m)
}

async fn read_timeout(s: &mut TcpStream, ms: u64) -> Result<Option<Vec<u8>>, ()> {
    tokio::time::timeout(Duration::from_millis(ms), read_msg(s))
        .await
        .map_err(|_| ())
}

fn peer_open() -> Vec<u8> {
    let mut c = bgp::fsm::Config::new(testing::PEER_AS, testing::LOCAL_AS, testing::PEER_ID);
    c.graceful_restart = None;
    Message::Open(c.open())
        .to_bytes(&Context::default())
        .unwrap()
}

const KEEPALIVE: [u8; 19] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 19, 4,
];

/// Reads until the speaker's Established table has ended (End-of-RIB for
/// IPv4 unicast).
async fn establish(s: &mut TcpStream) {
    let open = read_timeout(s, 5000).await.unwrap().expect("OPEN");
    assert_eq!(open[18], 1);
    s.write_all(&peer_open()).await.unwrap();
    s.write_all(&KEEPALIVE).await.unwrap();
    loop {
        let m = read_timeout(s, 5000).await.unwrap().expect("Established");
        if m[18] == 2 && m.len() == 23 {
            return; // IPv4 End-of-RIB
        }
        assert_ne!(m[18], 3, "NOTIFICATION while establishing: {m:02x?}");
    }
}

/// The first NOTIFICATION before the connection closes (`None`: closed
/// without one).
async fn notification(s: &mut TcpStream) -> Option<bgp::Notification> {
    loop {
        match read_timeout(s, 5000).await.expect("no answer within 5 s") {
            None => return None,
            Some(m) if m[18] == 3 => match bgp::decode(&m, &Context::default()) {
                Ok(Message::Notification(n)) => return Some(n),
                other => panic!("bad NOTIFICATION {other:?}"),
            },
            Some(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_corpus_gets_its_rfc_reactions_from_the_driver() {
    let p = free_port();
    let raw = TcpListener::bind(("127.0.0.3", p)).await.unwrap();
    let (_tx, rx) = watch::channel(VipSet::from([ip("192.0.2.10")]));
    let cfg = bgp_config(
        testing::LOCAL_AS,
        &testing::LOCAL_ID.to_string(),
        vec![neighbor("127.0.0.3", testing::PEER_AS)],
    );
    let speaker = Speaker::start_with(&cfg, None, &[port("a", &["127.0.0.1/8"])], rx, options(p));
    // Each case sent instead of an OPEN is followed by one that
    // establishes first, so the restart damping (longer delays after three
    // failures in a row) never builds up.
    let (mut early, mut late): (Vec<_>, Vec<_>) = testing::malformed_corpus()
        .into_iter()
        .partition(|c| c.when == When::InsteadOfOpen);
    early.reverse();
    late.reverse();
    let mut cases = Vec::new();
    while !early.is_empty() || !late.is_empty() {
        cases.extend(early.pop());
        cases.extend(late.pop());
    }
    let mut checked = 0;
    for case in cases {
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(10), raw.accept())
            .await
            .unwrap_or_else(|_| panic!("{}: no connection from the speaker", case.name))
            .unwrap();
        match case.when {
            When::InsteadOfOpen => {
                let open = read_timeout(&mut s, 5000).await.unwrap().expect("OPEN");
                assert_eq!(open[18], 1);
            }
            When::Established => establish(&mut s).await,
        }
        s.write_all(&case.bytes).await.unwrap();
        match &case.expected {
            Expected::Notification {
                code,
                subcode,
                data,
            } => {
                let n = notification(&mut s)
                    .await
                    .unwrap_or_else(|| panic!("{}: closed without NOTIFICATION", case.name));
                assert_eq!(
                    (n.code, n.subcode, &n.data),
                    (*code, *subcode, data),
                    "{}",
                    case.name
                );
            }
            Expected::CloseSilently => {
                assert_eq!(notification(&mut s).await, None, "{}", case.name);
            }
            Expected::TreatAsWithdraw(_) | Expected::AttributeDiscard { .. } => {
                // Still up: a ROUTE-REFRESH gets the table again.
                s.write_all(&testing::message(5, &[0, 1, 0, 1]))
                    .await
                    .unwrap();
                loop {
                    let m = read_timeout(&mut s, 5000)
                        .await
                        .unwrap()
                        .unwrap_or_else(|| panic!("{}: session closed", case.name));
                    assert_ne!(m[18], 3, "{}: NOTIFICATION {m:02x?}", case.name);
                    if m[18] == 2 && m.len() > 23 {
                        break;
                    }
                }
                // Next case on a fresh connection.
                drop(s);
            }
        }
        checked += 1;
    }
    assert!(checked >= 30);
    let nj = neighbor_json(&speaker);
    assert!(nj["treat_as_withdraw"].as_u64().unwrap() > 0, "{nj}");
}

// -- hardening (issue 14) ------------------------------------------------------

/// A raw peer at `addr` whose speaker (AS `testing::LOCAL_AS`) uses `n`.
async fn raw_peer(addr: &str, n: Neighbor) -> (TcpListener, Speaker, watch::Sender<VipSet>) {
    let p = free_port();
    let raw = TcpListener::bind((addr, p)).await.unwrap();
    let (tx, rx) = watch::channel(VipSet::from([ip("192.0.2.10")]));
    let cfg = bgp_config(testing::LOCAL_AS, &testing::LOCAL_ID.to_string(), vec![n]);
    let speaker = Speaker::start_with(&cfg, None, &[port("a", &["127.0.0.1/8"])], rx, options(p));
    (raw, speaker, tx)
}

async fn accept(raw: &TcpListener) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(10), raw.accept())
        .await
        .expect("no connection from the speaker")
        .unwrap()
        .0
}

/// A real peer keeps writing (its KEEPALIVE, queued UPDATEs) while the
/// speaker rejects its OPEN. Closing a socket with unread data sends a
/// RST, and a peer whose write fails with "connection reset" never reads
/// the NOTIFICATION: the driver must drain until the peer's FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_reaches_a_peer_that_is_still_writing() {
    let (raw, _speaker, _vips) =
        raw_peer("127.0.0.4", neighbor("127.0.0.4", testing::PEER_AS)).await;
    let mut s = accept(&raw).await;
    let open = read_timeout(&mut s, 5000).await.unwrap().expect("OPEN");
    assert_eq!(open[18], 1);
    // An OPEN whose 4-octet AS capability disagrees with My AS (RFC 6793),
    // then 16 MiB of KEEPALIVEs: more than the socket buffers hold.
    let case = testing::malformed_corpus()
        .into_iter()
        .find(|c| c.name == "open_4octet_as_disagrees_with_my_as")
        .unwrap();
    let mut burst = case.bytes.clone();
    burst.extend(KEEPALIVE.iter().copied().cycle().take((16 << 20) / 19 * 19));
    tokio::time::timeout(Duration::from_secs(20), s.write_all(&burst))
        .await
        .expect("the speaker stopped reading")
        .expect("the speaker reset the connection instead of draining it");
    let n = notification(&mut s)
        .await
        .expect("closed without NOTIFICATION");
    assert_eq!(
        (n.code, n.subcode),
        (2, 2),
        "OPEN Message Error / Bad Peer AS"
    );
    // Then a clean FIN.
    let mut rest = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
        .await
        .expect("no FIN");
    assert_eq!(r.unwrap(), 0, "expected EOF after the NOTIFICATION");
}

/// RFC 4486: more received prefixes than `maxPrefixes` ends the session
/// with Cease / Maximum Number of Prefixes Reached (AFI, SAFI, limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefixes_ends_the_session_with_cease_1() {
    let mut n = neighbor("127.0.0.5", testing::PEER_AS);
    n.max_prefixes = 2;
    let (raw, speaker, _vips) = raw_peer("127.0.0.5", n).await;
    let mut s = accept(&raw).await;
    establish(&mut s).await;
    let attrs = [
        testing::attr(0x40, 1, &[0]),
        testing::attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        testing::attr(0x40, 3, &[127, 0, 0, 5]),
    ]
    .concat();
    // Two prefixes: at the limit, the session stays.
    s.write_all(&testing::update(&[], &attrs, &[24, 10, 0, 1, 24, 10, 0, 2]))
        .await
        .unwrap();
    until("2 prefixes received", 5, || {
        (neighbor_json(&speaker)["prefixes_received"] == 2).then_some(())
    })
    .await;
    assert!(established(&speaker));
    // A third one is past it.
    s.write_all(&testing::update(&[], &attrs, &[24, 10, 0, 3]))
        .await
        .unwrap();
    let n = notification(&mut s)
        .await
        .expect("closed without NOTIFICATION");
    assert_eq!(
        (n.code, n.subcode),
        (6, 1),
        "Cease / Maximum Number of Prefixes Reached"
    );
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 2], "AFI 1, SAFI 1, limit 2");
    // The neighbor task counts it just after sending the NOTIFICATION.
    let nj = until("max_prefixes_reached counted", 2, || {
        let nj = neighbor_json(&speaker);
        (nj["max_prefixes_reached"] == 1).then_some(nj)
    })
    .await;
    assert_eq!(nj["prefixes_received"], 0, "{nj}");
}

/// RFC 4271 §9.1.2: a route with our own AS on its path (our VIPs sent
/// back by an eBGP peer) is a loop: it is dropped, counted, replaces an
/// earlier route for the prefix, and does not count against maxPrefixes
/// (which once ended sessions whose peer reflected 100 000 VIPs back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_with_our_own_as_on_the_path_are_dropped_not_counted() {
    let mut n = neighbor("127.0.0.8", testing::PEER_AS);
    n.max_prefixes = 2;
    let (raw, speaker, _vips) = raw_peer("127.0.0.8", n).await;
    let mut s = accept(&raw).await;
    establish(&mut s).await;
    let path = |asns: &[u32]| {
        let mut v = vec![2, asns.len() as u8];
        for a in asns {
            v.extend_from_slice(&a.to_be_bytes());
        }
        [
            testing::attr(0x40, 1, &[0]),
            testing::attr(0x40, 2, &v),
            testing::attr(0x40, 3, &[127, 0, 0, 8]),
        ]
        .concat()
    };
    s.write_all(&testing::update(
        &[],
        &path(&[testing::PEER_AS]),
        &[24, 10, 0, 1],
    ))
    .await
    .unwrap();
    until("1 prefix received", 5, || {
        (neighbor_json(&speaker)["prefixes_received"] == 1).then_some(())
    })
    .await;
    // Three looped routes, one of them for the prefix already held: more
    // than maxPrefixes if they counted.
    s.write_all(&testing::update(
        &[],
        &path(&[testing::PEER_AS, 64999, testing::LOCAL_AS]),
        &[24, 10, 0, 1, 24, 10, 0, 2, 24, 10, 0, 3],
    ))
    .await
    .unwrap();
    let nj = until("3 looped routes counted", 5, || {
        let nj = neighbor_json(&speaker);
        (nj["as_path_loops"] == 3).then_some(nj)
    })
    .await;
    assert_eq!(nj["prefixes_received"], 0, "{nj}");
    assert_eq!(nj["max_prefixes_reached"], 0, "{nj}");
    assert!(established(&speaker));
    let mut e = crate::render::metrics::Encoder::default();
    crate::render::bgp::metrics(&speaker, &mut e, "t");
    let text = e.finish();
    assert!(
        text.contains("pollux_bgp_as_path_loops_total{instance=\"t\",neighbor=\"127.0.0.8\"} 3"),
        "{text}"
    );
}

/// The listener could not take a neighbor's MD5 key: the neighbor is held
/// down (visible in `show bgp neighbors`) and a connection from it is
/// never handed to BGP, signed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbor_whose_md5_key_the_listener_refuses_is_held_down() {
    let peer = ip("127.0.0.6");
    MD5_FAIL.lock().unwrap().push(peer);
    let mut pw = tempfile::NamedTempFile::new().unwrap();
    pw.write_all(b"secret\n").unwrap();
    let mut n = neighbor("127.0.0.6", testing::PEER_AS);
    n.password_file = Some(pw.path().to_path_buf());
    let (raw, speaker, _vips) = raw_peer("127.0.0.6", n).await;
    let nj = until("held down", 5, || {
        let nj = neighbor_json(&speaker);
        nj["held_down"].is_string().then_some(nj)
    })
    .await;
    let why = nj["held_down"].as_str().unwrap();
    assert!(why.contains("127.0.0.6") && why.contains("MD5"), "{nj}");
    assert_eq!(nj["stopped"], true, "{nj}");
    assert_eq!(nj["state"], "Idle", "{nj}");
    // An unsigned connection from the peer's address gets no OPEN.
    let listen = SocketAddr::new(ip("127.0.0.1"), raw.local_addr().unwrap().port());
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(peer, 0)).unwrap();
    let mut c = sock.connect(listen).await.unwrap();
    let got = read_timeout(&mut c, 1000).await;
    assert!(matches!(got, Ok(None)), "the speaker answered: {got:?}");
}

/// GTSM (RFC 5082): with `ttlSecurity` a SYN that arrives with TTL < 255
/// never reaches BGP; one with 255 does, and our segments carry 255.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_security_refuses_segments_below_ttl_255() {
    let peer = ip("127.0.0.7");
    let mut n = neighbor("127.0.0.7", testing::PEER_AS);
    n.ttl_security = true;
    // No raw listener: the speaker's own connections are refused.
    let p = free_port();
    let (_tx, rx) = watch::channel(VipSet::new());
    let cfg = bgp_config(testing::LOCAL_AS, &testing::LOCAL_ID.to_string(), vec![n]);
    let speaker = Speaker::start_with(&cfg, None, &[port("a", &["127.0.0.1/8"])], rx, options(p));
    let nj = neighbor_json(&speaker);
    assert_eq!(nj["ttl"], 255, "{nj}");
    assert_eq!(nj["ttl_security_min_ttl"], 255, "{nj}");
    let listen = SocketAddr::new(ip("127.0.0.1"), p);
    let connect = |ttl: u32| async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(peer, 0)).unwrap();
        socket2::SockRef::from(&sock).set_ttl_v4(ttl).unwrap();
        tokio::time::timeout(Duration::from_millis(1500), sock.connect(listen)).await
    };
    // The listener may not be up at once: TTL 255 connects within 5 s.
    let mut ok = None;
    for _ in 0..50 {
        if let Ok(Ok(s)) = connect(255).await {
            ok = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut s = ok.expect("a TTL-255 peer could not connect");
    let open = read_timeout(&mut s, 5000).await.unwrap().expect("OPEN");
    assert_eq!(open[18], 1);
    drop(s);
    // TTL 64 (a peer one hop further, or a remote attacker): the SYN is
    // dropped by the kernel, nothing is accepted.
    assert!(connect(64).await.is_err(), "a TTL-64 SYN was answered");
}

fn neighbor_by(s: &Speaker, addr: &str) -> Option<Value> {
    neighbors_json(s)["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["address"] == addr)
        .cloned()
}

/// A reload's neighbor changes (`Speaker::sync`): added from nothing (a
/// listener opens), another added beside an Established session that
/// stays up, changed (that session alone restarts), removed (Cease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_adds_changes_and_removes_neighbors_touching_nothing_else() {
    let p = free_port();
    let (_a_tx, a_rx) = watch::channel(VipSet::new());
    let (_b_tx, b_rx) = watch::channel(VipSet::new());
    let a_ports = [port("a", &["127.0.0.1/8"])];
    let b_ports = [port("b", &["127.0.0.2/8"])];
    let a_cfg = |n: Vec<Neighbor>| bgp_config(65000, "192.0.2.1", n);
    let b_cfg = |n: Vec<Neighbor>| bgp_config(65002, "192.0.2.2", n);
    let a = Speaker::start_with(
        &a_cfg(vec![neighbor("127.0.0.2", 65002)]),
        None,
        &a_ports,
        a_rx,
        options(p),
    );
    let b = Speaker::start_with(&b_cfg(vec![]), None, &b_ports, b_rx, options(p));
    assert!(neighbors_json(&b)["neighbors"]
        .as_array()
        .unwrap()
        .is_empty());
    let added = b.sync(&b_cfg(vec![neighbor("127.0.0.1", 65000)]), None, &b_ports);
    assert_eq!(added, vec!["BGP neighbor 127.0.0.1 added".to_string()]);
    until("both Established", 10, || {
        (established(&a) && established(&b)).then_some(())
    })
    .await;
    let transitions = |s: &Speaker, peer: &str| {
        neighbor_by(s, peer).unwrap()["established_transitions"]
            .as_u64()
            .unwrap()
    };
    let t0 = transitions(&b, "127.0.0.1");

    // Another neighbor beside it: the session is not touched; the same
    // file again changes nothing.
    let two = vec![neighbor("127.0.0.2", 65002), neighbor("127.0.0.3", 65003)];
    assert_eq!(
        a.sync(&a_cfg(two.clone()), None, &a_ports),
        vec!["BGP neighbor 127.0.0.3 added".to_string()]
    );
    assert!(a.sync(&a_cfg(two), None, &a_ports).is_empty());
    assert!(neighbor_by(&a, "127.0.0.3").is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(established(&a) && established(&b));
    assert_eq!(transitions(&b, "127.0.0.1"), t0);

    // Changed settings: that session alone restarts.
    let mut slow = neighbor("127.0.0.2", 65002);
    slow.hold_time = 30;
    let changed = vec![slow, neighbor("127.0.0.3", 65003)];
    assert_eq!(
        a.sync(&a_cfg(changed), None, &a_ports),
        vec!["BGP neighbor 127.0.0.2 changed".to_string()]
    );
    until("re-established with the new hold time", 10, || {
        let n = neighbor_by(&a, "127.0.0.2")?;
        (n["state"] == "Established" && n["negotiated"]["hold_time"] == 30).then_some(())
    })
    .await;
    assert_eq!(transitions(&b, "127.0.0.1"), t0 + 1);

    // Removed: B sees the Cease; A no longer shows it.
    assert_eq!(
        a.sync(&a_cfg(vec![neighbor("127.0.0.3", 65003)]), None, &a_ports),
        vec!["BGP neighbor 127.0.0.2 removed".to_string()]
    );
    assert!(neighbor_by(&a, "127.0.0.2").is_none());
    until("B down", 5, || {
        (neighbor_by(&b, "127.0.0.1")?["state"] != "Established").then_some(())
    })
    .await;
}
