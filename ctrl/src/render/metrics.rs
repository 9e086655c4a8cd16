//! Prometheus metrics on `api.metrics`, `GET /metrics`, in the OpenMetrics
//! text format: prometheus-client encodes, axum serves. Every name is
//! prefixed `pollux_`; `docs/metrics.md` lists them.
//!
//! The values are read from the subsystems at each scrape (the workers'
//! counters are snapshots, not registered metrics): [`scrape`] adds each
//! subsystem's families to an [`Encoder`], which hands them to
//! prometheus-client as one [`Collector`].

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::state::State;

/// A sample's value: integers stay integers on the wire.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

#[derive(Debug)]
struct Family {
    name: String,
    counter: bool,
    help: String,
    samples: Vec<(Vec<(String, String)>, Num)>,
}

/// Collects the families of one scrape: `family` once per family (name
/// without the `pollux_` prefix; a counter's ends in `_total`), then its
/// samples.
#[derive(Debug, Default)]
pub struct Encoder {
    families: Vec<Family>,
}

impl Encoder {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        self.families.push(Family {
            name: name.to_string(),
            counter: kind == "counter",
            help: help.to_string(),
            samples: Vec::new(),
        });
        self
    }

    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) -> &mut Self {
        let text = value.to_string();
        let v = text
            .parse::<i64>()
            .map(Num::Int)
            .unwrap_or_else(|_| Num::Float(text.parse().unwrap_or(f64::NAN)));
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), escape(v)))
            .collect();
        match self.families.iter_mut().rev().find(|f| f.name == name) {
            Some(f) => f.samples.push((labels, v)),
            None => tracing::warn!(metric = name, "a sample without its family: not exported"),
        }
        self
    }

    /// The OpenMetrics text of everything added.
    pub fn finish(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(self.families)));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "metrics not encoded");
        }
        out
    }
}

/// A label value as the text format wants it (prometheus-client 0.24
/// writes label values as given).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Debug)]
struct Scrape(Vec<Family>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            // prometheus-client writes a counter's samples as NAME_total.
            let name = if f.counter {
                format!(
                    "pollux_{}",
                    f.name.strip_suffix("_total").unwrap_or(&f.name)
                )
            } else {
                format!("pollux_{}", f.name)
            };
            let kind = if f.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut family = encoder.encode_descriptor(&name, &f.help, None, kind)?;
            for (labels, v) in &f.samples {
                let m = family.encode_family(labels)?;
                match (f.counter, *v) {
                    (true, Num::Int(n)) => ConstCounter::new(n.max(0) as u64).encode(m)?,
                    (true, Num::Float(x)) => ConstCounter::new(x).encode(m)?,
                    (false, Num::Int(n)) => ConstGauge::new(n).encode(m)?,
                    (false, Num::Float(x)) => ConstGauge::new(x).encode(m)?,
                }
            }
        }
        Ok(())
    }
}

/// The exposition text of one scrape: every subsystem's families.
pub fn scrape(state: &State) -> String {
    let mut e = Encoder::default();
    let cfg = state.config.load();
    let inst = cfg.name.as_str();
    let stats = state.stats();
    e.family("up", "gauge", "1 while the data plane runs.")
        .sample("up", &[("instance", inst)], u8::from(stats.is_some()));
    let Some(stats) = stats else {
        return e.finish();
    };
    super::ports::metrics(&stats, inst, &mut e);
    super::lb::metrics(state, &mut e);
    super::bfd::metrics(state, &mut e);
    super::config::metrics(state, &mut e);
    if let Some(b) = &state.bgp {
        super::bgp::metrics(b, &mut e, inst);
    }
    e.finish()
}

/// The listening socket: `addr`, and only on `interface` when given.
pub fn bind(addr: SocketAddr, interface: Option<&str>) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if let Some(i) = interface {
        s.bind_device(Some(i.as_bytes())).map_err(|e| {
            std::io::Error::new(e.kind(), format!("api.metricsInterface {i:?}: {e}"))
        })?;
    }
    s.bind(&addr.into())?;
    s.listen(64)?;
    s.set_nonblocking(true)?;
    TcpListener::from_std(std::net::TcpListener::from(s))
}

/// Serves `GET /metrics` (axum) until the runtime ends.
pub async fn serve(
    addr: SocketAddr,
    interface: Option<&str>,
    state: Arc<State>,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    let listener = bind(addr, interface)?;
    tracing::info!(%addr, interface, "metrics listening");
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<Arc<State>>| async move {
                    let body = tokio::task::spawn_blocking(move || scrape(&state))
                        .await
                        .unwrap_or_default();
                    (
                        [(
                            CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                },
            ),
        )
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "try /metrics\n") })
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{bind, Encoder};

    #[tokio::test]
    async fn bound_to_an_interface_it_answers_only_there() {
        // Loopback: bound to `lo`, a connection to 127.0.0.1 arrives on it.
        let l = bind("127.0.0.1:0".parse().unwrap(), Some("lo")).unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::net::TcpStream::connect(addr);
        let (a, c) = tokio::join!(l.accept(), c);
        assert!(a.is_ok() && c.is_ok());
        let e = bind("127.0.0.1:0".parse().unwrap(), Some("h16nosuch0")).unwrap_err();
        assert!(e.to_string().contains("api.metricsInterface"), "{e}");
    }

    #[test]
    fn families_keep_their_names_and_escape_label_values() {
        let mut e = Encoder::default();
        e.family("x_total", "counter", "An x.")
            .sample("x_total", &[("port", "a\"b")], 3);
        e.family("state", "gauge", "A state.")
            .sample("state", &[("peer", "p")], 6u8)
            .sample("state", &[("peer", "q")], 0.25);
        assert_eq!(
            e.finish(),
            "# HELP pollux_x An x.\n# TYPE pollux_x counter\npollux_x_total{port=\"a\\\"b\"} 3\n\
             # HELP pollux_state A state.\n# TYPE pollux_state gauge\npollux_state{peer=\"p\"} 6\n\
             pollux_state{peer=\"q\"} 0.25\n# EOF\n"
        );
    }
}
