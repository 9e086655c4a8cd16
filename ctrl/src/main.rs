//! The `pollux` binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ctrl::config::{self, HostFacts};
use ctrl::run::Exit;

/// pollux: a poll-mode L4 load balancer on DPDK that advertises its VIPs by BGP.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `show` can ask a running instance.
const SHOW: &[&str] = &[
    "interfaces",
    "stats",
    "virtual-servers",
    "connections",
    "bgp summary",
    "bgp neighbors",
    "bgp routes",
    "bfd sessions",
    "config",
];

#[derive(Debug, Subcommand)]
enum Command {
    /// Run in the foreground (logs to stderr; SIGTERM drains and exits 0).
    #[command(after_help = "Environment:\n  \
        POLLUX_LOG        log filter (tracing's EnvFilter syntax; default info)\n  \
        POLLUX_HASH_SEED  fixed seed for the connection tables' hash (benchmarks: \
        callgrind counts repeat); default random per worker\n  \
        POLLUX_CLOCK_STEP_NS  benchmarks only: the workers' clock advances this \
        many ns per loop pass instead of following time (callgrind counts repeat)")]
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Log lines as text, or as one JSON object each (tracing's JSON
        /// format: timestamp, level, fields, target, spans).
        #[arg(long, value_enum, default_value = "text", env = "POLLUX_LOG_FORMAT")]
        log_format: LogFormat,
    },
    /// Validate a configuration file; exit non-zero naming the bad field.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Query a running instance: interfaces | stats | virtual-servers |
    /// connections | bgp summary | bgp neighbors | bgp routes | bfd sessions |
    /// config.
    Show {
        #[arg(required = true, num_args = 1..=2, value_name = "WHAT")]
        what: Vec<String>,
        /// Print the answer as JSON (stable; see docs/api.md).
        #[arg(long)]
        json: bool,
        /// The API socket (default: api.socket of --config, else /run/pollux/pollux.sock).
        #[arg(long, value_name = "SOCKET")]
        api: Option<PathBuf>,
        /// Take the API socket from this configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Reload a running instance's configuration (as SIGHUP does): the new
    /// file is validated whole, changes are applied live, a bad file or one
    /// that needs a restart is refused (exit 1) and the running one stays.
    #[command(
        after_help = "With --config FILE the instance reloads from FILE (and reads it \
        from then on, for SIGHUP and the file watcher) and is reached at FILE's api.socket; \
        without it, the instance reloads the file it runs from."
    )]
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Take a pool member out of service or back: a disabled member keeps
    /// its flows and takes no new ones (as weight 0). Until the next
    /// restart; kept across reloads while the member is configured.
    Member {
        #[arg(value_enum)]
        action: MemberAction,
        /// The virtual server's name.
        vs: String,
        /// ADDRESS or ADDRESS:PORT ([V6]:PORT); ADDRESS alone: every
        /// member at that address.
        member: String,
        #[command(flatten)]
        target: Target,
    },
    /// Drain a virtual server: withdraw its VIP from BGP (no new clients
    /// from the routers), keep serving its flows; undrain announces it again.
    Vs {
        #[arg(value_enum)]
        action: VsAction,
        /// The virtual server's name.
        vs: String,
        #[command(flatten)]
        target: Target,
    },
    /// Capture the frames of a port, received and sent, into a pcapng file
    /// (tshark and Wireshark read it); `pollux capture stop` ends the one
    /// that runs. One capture at a time.
    #[command(
        after_help = "Frames are kept whole up to 2048 bytes (longer ones are cut, \
        their length kept); each is marked inbound or outbound. The capture ends at \
        --count frames, after --duration, on `pollux capture stop` or Ctrl-C, and prints \
        the frames captured and those dropped because its ring was full (the packet \
        path never waits for a capture). The daemon streams the capture over the API \
        socket; this command writes FILE (`-w -`: standard output, e.g. into \
        `tshark -r -`).\n\n\
        Filter: HOST, PORT, PROTO or several joined by '/', all of which must match: \
        10.0.0.5 (either address), 53 (either TCP/UDP port), tcp | udp | icmp | icmpv6 \
        | proto=N; e.g. --filter 10.0.0.5/80/tcp."
    )]
    Capture {
        /// The data-plane port's name (as in the configuration); `stop`
        /// ends the running capture.
        port: String,
        /// Stop after N frames.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after S seconds (fractions allowed).
        #[arg(long, value_name = "S")]
        duration: Option<f64>,
        /// Keep only the frames that match.
        #[arg(long, value_name = "HOST/PORT/PROTO")]
        filter: Option<String>,
        /// The pcapng file to write (`-` for standard output).
        #[arg(short = 'w', value_name = "FILE")]
        write: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

/// Which instance a command talks to.
#[derive(Debug, clap::Args)]
struct Target {
    /// The API socket (default: api.socket of --config, else /run/pollux/pollux.sock).
    #[arg(long, value_name = "SOCKET")]
    api: Option<PathBuf>,
    /// The instance's configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MemberAction {
    Disable,
    Enable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum VsAction {
    Drain,
    Undrain,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config, log_format } => run(&config, log_format),
        Command::Show {
            what,
            json,
            api,
            config,
        } => show(&what.join(" "), json, api, config),
        Command::Reload { target } => {
            let path = target.config.as_ref().map(|c| {
                std::path::absolute(c)
                    .unwrap_or_else(|_| c.clone())
                    .display()
                    .to_string()
            });
            operate(
                "reload",
                &target,
                serde_json::json!({ "do": "reload", "config": path }),
            )
        }
        Command::Member {
            action,
            vs,
            member,
            target,
        } => {
            let what = match action {
                MemberAction::Disable => "member-disable",
                MemberAction::Enable => "member-enable",
            };
            operate(
                "member",
                &target,
                serde_json::json!({ "do": what, "vs": vs, "member": member }),
            )
        }
        Command::Vs { action, vs, target } => {
            let what = match action {
                VsAction::Drain => "vs-drain",
                VsAction::Undrain => "vs-undrain",
            };
            operate("vs", &target, serde_json::json!({ "do": what, "vs": vs }))
        }
        Command::Capture {
            port,
            count,
            duration,
            filter,
            write,
            target,
        } => {
            if port == "stop" && write.is_none() {
                return operate(
                    "capture",
                    &target,
                    serde_json::json!({ "do": "capture-stop" }),
                );
            }
            let Some(file) = write else {
                eprintln!("pollux capture: -w FILE is required (- for standard output)");
                return ExitCode::from(2);
            };
            let duration_ms = match duration {
                Some(s) if !(s > 0.0 && s < 1e9) => {
                    eprintln!("pollux capture: --duration must be a positive number of seconds");
                    return ExitCode::from(2);
                }
                Some(s) => Some((s * 1000.0).ceil() as u64),
                None => None,
            };
            capture(
                &target,
                &file,
                serde_json::json!({
                    "do": "capture-start", "port": port, "filter": filter,
                    "count": count, "duration_ms": duration_ms,
                }),
            )
        }
    }
}

/// `pollux capture PORT -w FILE`: Ctrl-C (or SIGTERM) asks the daemon to
/// end the capture, which then closes the file properly.
fn capture(target: &Target, file: &Path, req: serde_json::Value) -> ExitCode {
    use nix::sys::signal::{SigSet, Signal};
    let socket = match socket_of(target.api.clone(), target.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let out: Box<dyn std::io::Write> = if file == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(file) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("pollux capture: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    // The signals wait for a thread of their own (blocked here first, so
    // every thread inherits the mask).
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    if sigs.thread_block().is_ok() {
        let socket = socket.clone();
        std::thread::spawn(move || {
            if sigs.wait().is_ok() {
                let _ = ctrl::render::api::request(
                    &socket,
                    &serde_json::json!({ "do": "capture-stop" }),
                );
            }
            // A second one: give up at once.
            if sigs.wait().is_ok() {
                std::process::exit(130);
            }
        });
    }
    let to = file.display().to_string();
    match ctrl::capture::client(&socket, &req, out, |msg| eprintln!("{msg} -> {to}")) {
        Ok((frames, dropped)) => {
            eprintln!("{frames} frames captured, {dropped} dropped (capture ring full)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pollux capture: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The API socket named by `api`, else by the configuration file (its
/// `api.socket`, read even when the rest of the file does not validate:
/// `pollux reload` must reach the instance to have a bad file refused),
/// else the default.
fn socket_of(api: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf, ExitCode> {
    if let Some(s) = api {
        return Ok(s);
    }
    let Some(c) = config else {
        return Ok(PathBuf::from("/run/pollux/pollux.sock"));
    };
    if let Ok(cfg) = config::load(c, &HostFacts::probe()) {
        return Ok(cfg.api.socket);
    }
    let text = std::fs::read_to_string(c).map_err(|e| {
        eprintln!("pollux: {}: {e}", c.display());
        ExitCode::from(2)
    })?;
    let raw: Option<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&text).ok();
    match raw
        .as_ref()
        .and_then(|v| v.get("api")?.get("socket")?.as_str())
    {
        Some(s) => Ok(PathBuf::from(s)),
        None => {
            eprintln!(
                "pollux: {}: no api.socket found in it (use --api SOCKET)",
                c.display()
            );
            Err(ExitCode::from(2))
        }
    }
}

/// Sends an operator command; prints the answer; exit 1 when refused.
fn operate(name: &str, target: &Target, req: serde_json::Value) -> ExitCode {
    let socket = match socket_of(target.api.clone(), target.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match ctrl::render::api::request(&socket, &req) {
        Ok(v) => {
            if let Some(m) = v.get("message").and_then(serde_json::Value::as_str) {
                println!("{m}");
            } else {
                let changes: Vec<&str> = v["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_str)
                    .collect();
                println!(
                    "{} (generation {})",
                    v["result"].as_str().unwrap_or("done"),
                    v["generation"]
                );
                for c in changes {
                    println!("  {c}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pollux {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates the config, and resolves VF ports through the pod's
/// environment (printing what discovery found when `report` is set).
fn load(path: &Path, report: bool) -> Result<config::Config, ExitCode> {
    let fail = |e: config::Error| {
        eprintln!("pollux: {}: {e}", path.display());
        ExitCode::from(2)
    };
    let mut cfg = config::load(path, &HostFacts::probe()).map_err(fail)?;
    if let Some(found) = ctrl::pod::resolve(&mut cfg, &vfio::Context::from_env()).map_err(fail)? {
        if report {
            print!("{found}");
        }
    }
    Ok(cfg)
}

fn check(path: &Path) -> ExitCode {
    let cfg = match load(path, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!("{}: OK", path.display());
    println!(
        "  instance {} (node {})",
        cfg.name,
        cfg.node_name.as_deref().unwrap_or("-")
    );
    let dp = &cfg.dataplane;
    for (i, p) in dp.ports.iter().enumerate() {
        let ips: Vec<String> = p
            .self_ips
            .iter()
            .map(|s| format!("{}/{}", s.addr, s.len))
            .collect();
        println!(
            "  port {} on {} (worker cpu {}): {}",
            p.name,
            p.device,
            dp.workers[dp.worker_of(i)].cpu,
            ips.join(" ")
        );
    }
    println!(
        "  {} virtual servers, {} BGP neighbors",
        cfg.virtual_servers.len(),
        cfg.bgp.as_ref().map_or(0, |b| b.neighbors.len())
    );
    println!("  EAL: {}", dp.eal_args().join(" "));
    ExitCode::SUCCESS
}

fn run(path: &Path, format: LogFormat) -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("POLLUX_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let cfg = match load(path, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctrl::run::run(cfg, path.to_path_buf()) {
        Ok(Exit::Stopped) => ExitCode::SUCCESS,
        Ok(Exit::WorkerFailed(msg)) => {
            eprintln!("pollux: fatal: {msg}");
            ExitCode::from(70)
        }
        Err(e) => {
            eprintln!("pollux: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn show(what: &str, json: bool, api: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    if !SHOW.contains(&what) {
        eprintln!(
            "pollux show: unknown {what:?}; one of: {}",
            SHOW.join(" | ")
        );
        return ExitCode::from(2);
    }
    let socket = match socket_of(api, config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let query = what.replace(' ', "-");
    match ctrl::render::api::query(&socket, &query) {
        Ok(v) if json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", ctrl::render::show::render(&query, &v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pollux show {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
