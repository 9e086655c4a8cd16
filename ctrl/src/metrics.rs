//! Prometheus text exposition (format 0.0.4) on `api.metrics`, `GET /metrics`.
//! Every name is prefixed `pollux_`; `docs/metrics.md` lists them.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::state::State;

/// Builds the exposition text: `# HELP`/`# TYPE` once per family, then
/// one line per label set.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(
            self.out,
            "# HELP pollux_{name} {help}\n# TYPE pollux_{name} {kind}"
        );
        self
    }

    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) -> &mut Self {
        let _ = write!(self.out, "pollux_{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{}{k}=\"{v}\"", if i > 0 { "," } else { "" });
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
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

pub async fn serve(
    addr: SocketAddr,
    interface: Option<&str>,
    state: Arc<State>,
) -> std::io::Result<()> {
    let listener = bind(addr, interface)?;
    tracing::info!(%addr, interface, "metrics listening");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if req.starts_with("GET /metrics") {
                    ("200 OK", state.metrics())
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
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
    fn escapes_label_values() {
        let mut e = Encoder::default();
        e.family("x_total", "counter", "An x.")
            .sample("x_total", &[("port", "a\"b")], 3);
        assert_eq!(e.finish(), "# HELP pollux_x_total An x.\n# TYPE pollux_x_total counter\npollux_x_total{port=\"a\\\"b\"} 3\n");
    }
}
