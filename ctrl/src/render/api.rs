//! The management API: one JSON request per connection on a unix socket
//! (mode 0600), one JSON answer. `pollux show` is its client. The answers'
//! shapes are documented in `docs/api.md` and stable.
//!
//! Request: `{"show": "stats"}`. Answer: the document, or `{"error": "..."}`.
//! Commands: `{"do": "reload"}`, `{"do": "member-disable", "vs": V,
//! "member": "ADDR[:PORT]"}`… (see [`crate::reload::command`]);
//! `{"do": "capture-start", ...}` answers, then streams pcapng on the same
//! connection ([`crate::capture`]).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::state::State;

/// What `pollux show` can ask for.
pub const QUERIES: &[&str] = &[
    "interfaces",
    "stats",
    "connections",
    "virtual-servers",
    "bfd-sessions",
    "bgp-summary",
    "bgp-neighbors",
    "bgp-routes",
    "config",
];

/// Answers one query from the current state.
pub fn answer(state: &State, query: &str) -> Value {
    match query {
        "interfaces" => super::ports::interfaces_json(state),
        "stats" => super::ports::stats_json(state),
        "bfd-sessions" => super::bfd::show_json(state),
        "virtual-servers" => super::lb::show_json(state),
        "config" => super::config::show_json(state),
        "connections" => super::lb::connections_json(state),
        "bgp-summary" | "bgp-neighbors" | "bgp-routes" => match &state.bgp {
            Some(b) if query == "bgp-summary" => super::bgp::summary_json(b),
            Some(b) if query == "bgp-neighbors" => super::bgp::neighbors_json(b),
            Some(b) => super::bgp::routes_json(b),
            None => json!({ "error": "BGP is not configured (no bgp section)" }),
        },
        other => {
            json!({ "error": format!("unknown query {other:?} (this instance answers: {})", QUERIES.join(", ")) })
        }
    }
}

/// Whether `path` may become this instance's socket: absent, or a stale
/// socket nobody answers on. A live instance's socket, or a file that is
/// not a socket, is an error that says so (never deleted).
pub fn check_free(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a socket: refusing to replace it",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another pollux instance is serving on it: stop that one, or give this \
             instance its own api.socket",
        )),
        // ECONNREFUSED: nobody listens; the file is a leftover.
        Err(_) => Ok(()),
    }
}

/// The socket file this process bound (device, inode): the only one it
/// removes on exit.
static BOUND: OnceLock<(u64, u64)> = OnceLock::new();

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Binds the socket, mode 0600, replacing only a stale one
/// ([`check_free`]).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    check_free(path)?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if let Some(id) = file_id(path) {
        let _ = BOUND.set(id);
    }
    Ok(l)
}

/// Removes the socket at `path` if this process bound it (not another
/// instance's that happens to live there).
pub fn remove_socket(path: &Path) {
    if BOUND.get().is_some_and(|b| file_id(path) == Some(*b)) {
        let _ = std::fs::remove_file(path);
    }
}

/// Bounds on the API's clients: connections served at once, and the time
/// one may take (its request line included).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 32,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Connections refused because [`Limits::connections`] were open, and
/// connections closed at [`Limits::timeout`].
static REFUSED: AtomicU64 = AtomicU64::new(0);
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// (refused, timed out) API connections since start.
pub fn counters() -> (u64, u64) {
    (
        REFUSED.load(Ordering::Relaxed),
        TIMED_OUT.load(Ordering::Relaxed),
    )
}

/// Serves until the task is dropped.
pub async fn serve(listener: UnixListener, state: Arc<State>) {
    serve_with(listener, Limits::default(), move |stream| {
        let state = state.clone();
        async move { handle(stream, state).await }
    })
    .await
}

/// [`serve`]'s loop with any handler: at most `limits.connections` at
/// once (more are closed at once, counted and logged), each for at most
/// `limits.timeout`.
pub async fn serve_with<F, Fut>(listener: UnixListener, limits: Limits, handler: F)
where
    F: Fn(UnixStream) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: do not spin.
                tracing::warn!(error = %e, "api accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let n = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    limit = limits.connections,
                    refused = n,
                    "api: too many connections at once, refusing"
                );
            }
            drop(stream);
            continue;
        };
        let fut = handler(stream);
        let timeout = limits.timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "api connection"),
                Ok(Ok(())) => {}
                Err(_) => {
                    let n = TIMED_OUT.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        timed_out = n,
                        "api: a client took more than {timeout:?}; closed"
                    );
                }
            }
            drop(permit);
        });
    }
}

async fn handle(stream: UnixStream, state: Arc<State>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    // Bounded: a request is one short line.
    let mut rd = BufReader::new(r.take(4096));
    rd.read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Value>(&line) {
        Ok(v) => match (
            v.get("show").and_then(Value::as_str),
            v.get("do").and_then(Value::as_str),
        ) {
            (Some(q), _) => answer(&state, q),
            (None, Some("capture-start")) => {
                // Streams until the capture ends: outside the time limit
                // and the connection cap (one capture at a time anyway).
                let r = rd.into_inner().into_inner();
                tokio::spawn(async move { crate::capture::serve(state, &v, r, w).await });
                return Ok(());
            }
            (None, Some("capture-stop")) => crate::capture::stop(&state),
            (None, Some(_)) => crate::reload::command(&state, &v),
            _ => json!({ "error": "expected {\"show\": QUERY} or {\"do\": COMMAND, ...}" }),
        },
        Err(e) => json!({ "error": format!("bad request: {e}") }),
    };
    w.write_all(reply.to_string().as_bytes()).await?;
    w.write_all(b"\n").await?;
    w.shutdown().await
}

/// The client side, for `pollux show` (blocking; no runtime needed).
pub fn query(socket: &Path, what: &str) -> anyhow::Result<Value> {
    request(socket, &json!({ "show": what }))
}

/// Sends one request, returns the answer (an `{"error": ...}` answer is
/// an error).
pub fn request(socket: &Path, req: &Value) -> anyhow::Result<Value> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach pollux at {}: {e} (is it running? use --api or --config)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    writeln!(s, "{req}")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let v: Value = serde_json::from_str(&out)?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        anyhow::bail!("{e}");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_replaces_a_stale_socket_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        // Stale: a socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let live = bind(&path).expect("a stale socket is replaced");
        // Live: another instance answers on it.
        let e = bind(&path).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("another pollux instance"), "{e}");
        assert!(path.exists(), "the live socket was deleted");
        drop(live);
        // Not a socket: left alone.
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(bind(&file)
            .unwrap_err()
            .to_string()
            .contains("not a socket"));
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[tokio::test]
    async fn connections_are_capped_and_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let l = UnixListener::bind(&path).unwrap();
        let limits = Limits {
            connections: 2,
            timeout: Duration::from_millis(300),
        };
        // A handler that waits for the client forever (a silent client).
        tokio::spawn(serve_with(l, limits, |mut s: UnixStream| async move {
            let mut b = [0u8; 1];
            s.read(&mut b).await.map(|_| ())
        }));
        let (refused0, timed0) = counters();
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(UnixStream::connect(&path).await.unwrap());
        }
        // The third is over the cap: closed at once (EOF, not a wait).
        let mut third = UnixStream::connect(&path).await.unwrap();
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_millis(250), third.read(&mut b))
            .await
            .expect("the third connection was not closed at once");
        assert!(matches!(n, Ok(0) | Err(_)));
        assert!(counters().0 > refused0);
        // The silent two are closed at the timeout.
        for mut s in held {
            let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut b))
                .await
                .expect("a silent client was never closed");
            assert!(matches!(n, Ok(0) | Err(_)));
        }
        assert!(counters().1 >= timed0 + 2);
        // Slots are free again.
        let mut again = UnixStream::connect(&path).await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(150), again.read(&mut b)).await;
        assert!(r.is_err(), "a connection within the cap was closed at once");
    }
}
