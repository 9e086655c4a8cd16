//! Human-readable rendering of `pollux show` answers (`--json` prints them
//! as they are): aligned tables, as FRR's vtysh prints them. Every column
//! is as wide as its widest cell ([`Table`]).

use serde_json::Value;

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub fn render(what: &str, v: &Value) -> String {
    match what {
        "interfaces" => interfaces(v),
        "stats" => stats(v),
        "bgp-summary" => bgp_summary(v),
        "bgp-neighbors" => bgp_neighbors(v),
        "bgp-routes" => bgp_routes(v),
        "virtual-servers" => virtual_servers(v),
        "connections" => connections(v),
        "bfd-sessions" => bfd_sessions(v),
        "config" => config(v),
        _ => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

/// Columns of text; a header starting with `>` is right-aligned.
struct Table {
    head: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&'static str]) -> Table {
        Table {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let names: Vec<&str> = self
            .head
            .iter()
            .map(|h| h.trim_start_matches('>'))
            .collect();
        let mut width: Vec<usize> = names.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut out = String::new();
            for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
                let last = i + 1 == cells.len();
                let pad = w.saturating_sub(c.chars().count());
                if self.head[i].starts_with('>') {
                    out += &" ".repeat(pad);
                    out += c;
                } else {
                    out += c;
                    if !last {
                        out += &" ".repeat(pad);
                    }
                }
                if !last {
                    out += "  ";
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&names);
        for r in &self.rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            out += &line(&cells);
        }
        out
    }
}

fn link(l: &Value) -> String {
    match (l["up"].as_bool(), l["speed_mbps"].as_u64()) {
        (Some(true), Some(m)) if m > 0 => format!("up {m}M"),
        (Some(true), _) => "up".into(),
        (Some(false), _) => "down".into(),
        _ => "-".into(),
    }
}

/// `items` joined with `sep`, or "none".
fn joined_or_none(items: &[String], sep: &str) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(sep)
    }
}

/// The non-zero counters of a JSON object (drop reasons), as
/// "name n, name n", or "none".
fn nonzero_counters(v: &Value) -> String {
    let nz: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, c)| c.as_u64().unwrap_or(0) > 0)
        .map(|(k, c)| format!("{k} {c}"))
        .collect();
    joined_or_none(&nz, ", ")
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn bgp_neighbors(v: &Value) -> String {
    let mut t = Table::new(&[
        "NEIGHBOR",
        ">AS",
        "LOCAL",
        "STATE",
        ">UP (s)",
        ">EST",
        ">HOLD",
        "FAMILIES",
        "MD5",
        ">TTL",
        "BFD",
        "LAST ERROR",
    ]);
    for nb in list(&v["neighbors"]) {
        let neg = &nb["negotiated"];
        let families: Vec<String> = list(&neg["families"]).map(text).collect();
        t.row(vec![
            text(&nb["address"]),
            text(&nb["remote_as"]),
            text(&nb["local_address"]),
            text(&nb["state"]),
            text(&nb["uptime_secs"]),
            text(&nb["established_transitions"]),
            text(&neg["hold_time"]),
            if families.is_empty() {
                "-".into()
            } else {
                families.join(",")
            },
            if nb["md5"] == true { "yes" } else { "no" }.into(),
            text(&nb["ttl"]),
            if nb["bfd_up"] == false { "down" } else { "ok" }.into(),
            nb["held_down"]
                .as_str()
                .or(nb["last_error"].as_str())
                .or(nb["error"].as_str())
                .unwrap_or("")
                .into(),
        ]);
    }
    t.render()
}

fn bgp_routes(v: &Value) -> String {
    let vips: Vec<String> = list(&v["vips"]).map(text).collect();
    let mut t = Table::new(&[
        "PREFIX",
        "NEIGHBOR",
        "NEXT HOP",
        "AS PATH",
        ">LOCPRF",
        "COMMUNITIES",
    ]);
    for r in list(&v["routes"]) {
        let path: Vec<String> = list(&r["as_path"]).map(text).collect();
        let comms: Vec<String> = list(&r["communities"]).map(text).collect();
        t.row(vec![
            text(&r["prefix"]),
            text(&r["neighbor"]),
            text(&r["next_hop"]),
            path.join(" "),
            text(&r["local_pref"]),
            comms.join(" "),
        ]);
    }
    format!("VIPs: {}\n\n{}", joined_or_none(&vips, " "), t.render())
}

fn virtual_servers(v: &Value) -> String {
    let mut t = Table::new(&[
        "NAME",
        "VIP",
        ">PORT",
        "PROTO",
        "MEMBER",
        ">WEIGHT",
        "STATE",
        ">FLOWS",
        ">NEW",
        ">PKTS IN",
        ">PKTS OUT",
        ">BYTES IN",
        ">BYTES OUT",
    ]);
    for vs in list(&v["virtual_servers"]) {
        let members: Vec<&Value> = list(&vs["members"]).collect();
        let state = if vs["drained"] == true {
            format!("drained, {} healthy", n(vs, "healthy_members"))
        } else {
            format!("{}/{} healthy", n(vs, "healthy_members"), members.len())
        };
        t.row(vec![
            text(&vs["name"]),
            text(&vs["address"]),
            text(&vs["port"]),
            text(&vs["protocol"]),
            String::new(),
            String::new(),
            state,
            text(&vs["active_flows"]),
            text(&vs["new_flows"]),
            text(&vs["packets_in"]),
            text(&vs["packets_out"]),
            text(&vs["bytes_in"]),
            text(&vs["bytes_out"]),
        ]);
        for m in members {
            let state = if m["disabled"] == true {
                "disabled"
            } else if m["healthy"] == false {
                "down"
            } else {
                "up"
            };
            t.row(vec![
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("{}:{}", text(&m["address"]), text(&m["port"])),
                text(&m["weight"]),
                state.into(),
                text(&m["active_flows"]),
                text(&m["new_flows"]),
                text(&m["packets_in"]),
                text(&m["packets_out"]),
                text(&m["bytes_in"]),
                text(&m["bytes_out"]),
            ]);
        }
    }
    t.render()
}

fn connections(v: &Value) -> String {
    let mut t = Table::new(&[
        ">WORKER",
        ">ENTRIES",
        ">CAPACITY",
        ">NEW",
        ">UNTRACKED",
        ">FORWARDED",
        ">RETURNED",
        ">EXPIRED",
        ">RST SENT",
        "DROPS",
    ]);
    for w in list(&v["workers"]) {
        t.row(vec![
            text(&w["worker"]),
            text(&w["entries"]),
            text(&w["capacity"]),
            text(&w["new_flows"]),
            text(&w["untracked"]),
            text(&w["forwarded"]),
            text(&w["returned"]),
            text(&w["expired"]),
            text(&w["rst_sent"]),
            nonzero_counters(&w["drops"]),
        ]);
    }
    t.render()
}

fn bfd_sessions(v: &Value) -> String {
    let mut t = Table::new(&[
        "PEER",
        "PORT",
        "STATE",
        "REMOTE",
        "DIAG",
        ">TX (ms)",
        ">DETECT (ms)",
        "LOCAL TX/RX/MULT",
        ">UPS",
        ">DOWNS",
        ">DISCR",
    ]);
    for se in list(&v["sessions"]) {
        let l = &se["local"];
        t.row(vec![
            text(&se["peer"]),
            text(&se["port"]),
            text(&se["state"]),
            text(&se["remote_state"]),
            text(&se["diagnostic"]),
            text(&se["tx_interval_ms"]),
            text(&se["detection_time_ms"]),
            if l.is_object() {
                format!(
                    "{}/{}/{}",
                    text(&l["desired_min_tx_ms"]),
                    text(&l["required_min_rx_ms"]),
                    text(&l["multiplier"])
                )
            } else {
                "-".into()
            },
            text(&se["up_transitions"]),
            text(&se["down_transitions"]),
            text(&se["local_discriminator"]),
        ]);
    }
    format!("{}\ndrops: {}\n", t.render(), nonzero_counters(&v["drops"]))
}

fn config(v: &Value) -> String {
    let mut out = format!(
        "instance {}, generation {}, loaded {} ms since the epoch, from {}\n",
        s(v, "instance"),
        n(v, "generation"),
        n(v, "loaded_unix_ms"),
        s(v, "path")
    );
    let r = &v["reloads"];
    out += &format!(
        "{} virtual servers, {} BGP neighbors, {} retired slots; reloads: {} applied, {} unchanged, {} refused\n",
        n(v, "virtual_servers"),
        n(v, "bgp_neighbors"),
        n(v, "retired_slots"),
        n(r, "applied"),
        n(r, "unchanged"),
        n(r, "refused")
    );
    if let Some(l) = v["last_reload"].as_object() {
        let msg = l.get("message").and_then(Value::as_str).unwrap_or("");
        out += &format!(
            "last reload: {} at {} ms{}{}\n",
            l.get("result").and_then(Value::as_str).unwrap_or("-"),
            l.get("unix_ms").and_then(Value::as_u64).unwrap_or(0),
            if msg.is_empty() { "" } else { ": " },
            msg
        );
    }
    for d in list(&v["disabled_members"]) {
        out += &format!("disabled: member {} of {}\n", s(d, "member"), s(d, "vs"));
    }
    for d in list(&v["drained_virtual_servers"]) {
        out += &format!("drained: virtual server {}\n", text(d));
    }
    out
}

fn interfaces(v: &Value) -> String {
    let mut t = Table::new(&[
        "NAME", "DEVICE", "DRIVER", "MAC", "LINK", ">VLAN", ">MTU", ">LCORE", ">RX PKTS",
        ">TX PKTS", "SELF IPS",
    ]);
    for i in list(&v["interfaces"]) {
        let ips: Vec<String> = list(&i["self_ips"]).map(text).collect();
        t.row(vec![
            text(&i["name"]),
            text(&i["device"]),
            text(&i["driver"]),
            text(&i["mac"]),
            link(&i["link"]),
            text(&i["vlan"]),
            text(&i["mtu"]),
            text(&i["worker"]["lcore"]),
            text(&i["rx_packets"]),
            text(&i["tx_packets"]),
            ips.join(" "),
        ]);
    }
    t.render()
}

fn stats(v: &Value) -> String {
    let mut out = String::new();
    for p in v["ports"].as_array().into_iter().flatten() {
        out += &format!(
            "port {}: rx {} pkts / {} bytes, tx {}, to tap {}, from tap {}, replies arp {} nd {} echo {}, solicits {}\n",
            s(p, "name"), n(p, "rx_packets"), n(p, "rx_bytes"), n(p, "tx_packets"), n(p, "to_tap"), n(p, "from_tap"),
            n(p, "arp_replies"), n(p, "nd_replies"), n(p, "echo_replies"), n(p, "solicits"),
        );
        if p["drops"].is_object() {
            out += &format!("  drops: {}\n", nonzero_counters(&p["drops"]));
        }
        out += &format!(
            "  pmd: rx {} tx {} missed {}\n",
            n(&p["pmd"], "ipackets"),
            n(&p["pmd"], "opackets"),
            n(&p["pmd"], "imissed")
        );
    }
    for w in v["workers"].as_array().into_iter().flatten() {
        out += &format!(
            "worker lcore {} cpu {}: {} busy polls, {} idle polls, {} sleeps{}\n",
            n(w, "lcore"),
            n(w, "cpu"),
            n(w, "busy_polls"),
            n(w, "idle_polls"),
            n(w, "sleeps"),
            if w["running"].as_bool() == Some(true) {
                ""
            } else {
                " (stopped)"
            }
        );
    }
    let c = &v["capture"];
    if c.is_object() {
        out += &format!(
            "capture on {}{}: {} frames, {} dropped (ring full)\n",
            s(c, "port"),
            if c["running"] == true {
                " (running)"
            } else {
                ""
            },
            n(c, "captured"),
            n(c, "capture_dropped"),
        );
    }
    out
}

fn bgp_summary(v: &Value) -> String {
    let mut t = Table::new(&[
        "NEIGHBOR", ">AS", "STATE", ">MSGRCVD", ">MSGSENT", ">UP (s)", ">PFXRCD", ">PFXSNT",
        "ERROR",
    ]);
    for nb in list(&v["neighbors"]) {
        t.row(vec![
            text(&nb["address"]),
            text(&nb["remote_as"]),
            text(&nb["state"]),
            text(&nb["messages_received"]),
            text(&nb["messages_sent"]),
            text(&nb["uptime_secs"]),
            text(&nb["prefixes_received"]),
            text(&nb["prefixes_advertised"]),
            nb["error"].as_str().unwrap_or("").into(),
        ]);
    }
    format!(
        "BGP router identifier {}, local AS {}, {} VIPs\n\n{}",
        s(v, "router_id"),
        n(v, "local_as"),
        n(v, "vips"),
        t.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_every_column() {
        let mut t = Table::new(&["NAME", ">N", "NOTE"]);
        t.row(vec!["a".into(), "1".into(), "x".into()]);
        t.row(vec!["longer".into(), "100".into(), "".into()]);
        assert_eq!(
            t.render(),
            "NAME      N  NOTE\na         1  x\nlonger  100\n"
        );
    }

    #[test]
    fn every_show_is_a_table_not_json() {
        let docs = [
            (
                "bgp-neighbors",
                json!({"neighbors": [{"address": "10.0.0.1", "remote_as": 65000, "state": "Established", "negotiated": {"hold_time": 9, "families": ["ipv4-unicast"]}}]}),
            ),
            (
                "bgp-routes",
                json!({"vips": ["192.0.2.1"], "routes": [{"prefix": "192.0.2.1/32", "neighbor": "10.0.0.1", "as_path": [65001], "communities": []}]}),
            ),
            (
                "virtual-servers",
                json!({"virtual_servers": [{"name": "web", "address": "192.0.2.1", "port": 80, "protocol": "tcp", "healthy_members": 1, "members": [{"address": "10.1.0.1", "port": 80, "weight": 1, "healthy": true}]}]}),
            ),
            (
                "connections",
                json!({"workers": [{"worker": 0, "entries": 2, "drops": {"fragment": 1}}]}),
            ),
            (
                "bfd-sessions",
                json!({"sessions": [{"peer": "10.0.0.1", "port": "ext", "state": "Up", "local": {"desired_min_tx_ms": 50.0, "required_min_rx_ms": 50.0, "multiplier": 3}}], "drops": {}}),
            ),
            (
                "config",
                json!({"instance": "a", "generation": 2, "reloads": {"applied": 1}, "last_reload": {"result": "applied", "message": "x", "unix_ms": 1}}),
            ),
        ];
        for (what, doc) in &docs {
            let out = render(what, doc);
            assert!(!out.contains('{'), "{what}: {out}");
            assert!(out.lines().count() >= 2, "{what}: {out}");
        }
        let vs = render("virtual-servers", &docs[2].1);
        assert!(
            vs.contains("10.1.0.1:80") && vs.contains("1/1 healthy"),
            "{vs}"
        );
        let bfd = render("bfd-sessions", &docs[4].1);
        assert!(bfd.contains("50.0/50.0/3"), "{bfd}");
    }
}
