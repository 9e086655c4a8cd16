//! Human-readable rendering of `pollux show` answers (`--json` prints them
//! as they are).

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
        _ => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

fn interfaces(v: &Value) -> String {
    let mut out = format!(
        "{:<15} {:<24} {:<10} {:<17} {:>5} {:>5} {:>6}  {}\n",
        "NAME", "DEVICE", "DRIVER", "MAC", "VLAN", "MTU", "LCORE", "SELF IPS"
    );
    for i in v["interfaces"].as_array().into_iter().flatten() {
        let ips: Vec<&str> = i["self_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let vlan = i["vlan"]
            .as_u64()
            .map_or("-".to_string(), |v| v.to_string());
        out += &format!(
            "{:<15} {:<24} {:<10} {:<17} {:>5} {:>5} {:>6}  {}\n",
            s(i, "name"),
            s(i, "device"),
            s(i, "driver"),
            s(i, "mac"),
            vlan,
            n(i, "mtu"),
            n(&i["worker"], "lcore"),
            ips.join(" ")
        );
    }
    out
}

fn stats(v: &Value) -> String {
    let mut out = String::new();
    for p in v["ports"].as_array().into_iter().flatten() {
        out += &format!(
            "port {}: rx {} pkts / {} bytes, tx {}, to tap {}, from tap {}, replies arp {} nd {} echo {}, solicits {}\n",
            s(p, "name"), n(p, "rx_packets"), n(p, "rx_bytes"), n(p, "tx_packets"), n(p, "to_tap"), n(p, "from_tap"),
            n(p, "arp_replies"), n(p, "nd_replies"), n(p, "echo_replies"), n(p, "solicits"),
        );
        if let Some(d) = p["drops"].as_object() {
            let nz: Vec<String> = d
                .iter()
                .filter(|(_, c)| c.as_u64().unwrap_or(0) > 0)
                .map(|(k, c)| format!("{k} {c}"))
                .collect();
            out += &format!(
                "  drops: {}\n",
                if nz.is_empty() {
                    "none".into()
                } else {
                    nz.join(", ")
                }
            );
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
    out
}

fn bgp_summary(v: &Value) -> String {
    let mut out = format!(
        "BGP router identifier {}, local AS {}, {} VIPs\n\n{:<40} {:>10} {:>12} {:>8} {:>8} {:>9} {:>7} {:>7}  {}\n",
        s(v, "router_id"),
        n(v, "local_as"),
        n(v, "vips"),
        "NEIGHBOR", "AS", "STATE", "MSGRCVD", "MSGSENT", "UP (s)", "PFXRCD", "PFXSNT", "ERROR"
    );
    for nb in v["neighbors"].as_array().into_iter().flatten() {
        out += &format!(
            "{:<40} {:>10} {:>12} {:>8} {:>8} {:>9} {:>7} {:>7}  {}\n",
            s(nb, "address"),
            n(nb, "remote_as"),
            s(nb, "state"),
            n(nb, "messages_received"),
            n(nb, "messages_sent"),
            n(nb, "uptime_secs"),
            n(nb, "prefixes_received"),
            n(nb, "prefixes_advertised"),
            nb["error"].as_str().unwrap_or("")
        );
    }
    out
}
