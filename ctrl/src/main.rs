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
    },
    /// Validate a configuration file; exit non-zero naming the bad field.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Query a running instance: interfaces | stats | virtual-servers |
    /// connections | bgp summary | bgp neighbors | bgp routes | bfd sessions.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
        Command::Show {
            what,
            json,
            api,
            config,
        } => show(&what.join(" "), json, api, config),
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

fn run(path: &Path) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POLLUX_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = match load(path, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctrl::run::run(cfg) {
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
    let socket = match (api, config) {
        (Some(s), _) => s,
        (None, Some(c)) => match config::load(&c, &HostFacts::probe()).map_err(|e| {
            eprintln!("pollux: {}: {e}", c.display());
            ExitCode::from(2)
        }) {
            Ok(cfg) => cfg.api.socket,
            Err(code) => return code,
        },
        (None, None) => PathBuf::from("/run/pollux/pollux.sock"),
    };
    let query = what.replace(' ', "-");
    match ctrl::api::query(&socket, &query) {
        Ok(v) if json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", ctrl::show::render(&query, &v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pollux show {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
