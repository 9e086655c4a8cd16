//! The management API: one JSON request per connection on a unix socket
//! (mode 0600), one JSON answer. `pollux show` is its client. The answers'
//! shapes are documented in `docs/api.md` and stable.
//!
//! Request: `{"show": "stats"}`. Answer: the document, or `{"error": "..."}`.
//! Commands: `{"do": "reload"}`, `{"do": "member-disable", "vs": V,
//! "member": "ADDR[:PORT]"}`… (see [`crate::reload::command`]).

use std::path::Path;
use std::sync::Arc;

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
        "interfaces" => state.interfaces_json(),
        "stats" => state.stats_json(),
        "bfd-sessions" => crate::bfd::show_json(state),
        "virtual-servers" => crate::lb::show_json(state),
        "config" => crate::reload::show_json(state),
        "connections" => crate::lb::connections_json(state),
        "bgp-summary" | "bgp-neighbors" | "bgp-routes" => match &state.bgp {
            Some(b) if query == "bgp-summary" => b.summary_json(),
            Some(b) if query == "bgp-neighbors" => b.neighbors_json(),
            Some(b) => b.routes_json(),
            None => json!({ "error": "BGP is not configured (no bgp section)" }),
        },
        other => {
            json!({ "error": format!("unknown query {other:?} (this instance answers: {})", QUERIES.join(", ")) })
        }
    }
}

/// Binds the socket (replacing a stale one), mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves until the task is dropped.
pub async fn serve(listener: UnixListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &state).await {
                tracing::debug!(error = %e, "api connection");
            }
        });
    }
}

async fn handle(stream: UnixStream, state: &State) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    // Bounded: a request is one short line.
    BufReader::new(r.take(4096)).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Value>(&line) {
        Ok(v) => match v.get("show").and_then(Value::as_str) {
            Some(q) => answer(state, q),
            None if v.get("do").is_some() => crate::reload::command(state, &v),
            None => json!({ "error": "expected {\"show\": QUERY} or {\"do\": COMMAND, ...}" }),
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
