//! Run discovery the way `pollux check` does, without the rest of pollux:
//!
//! ```text
//! cargo run -p vfio --example discover -- [--workers N|--cores 2,3] [--no-tun]
//!     [--prefix NAME] [--eal ARG]... DEVICE...
//! ```
//!
//! Prints what was found and exits 0, or prints the error and exits 1. The
//! roots come from the test-hook variables (`POLLUX_SYSFS_ROOT`, ...), see
//! the crate docs; the chart tests use it on rendered configs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut workers = vfio::Workers::Count(1);
    let mut eal = Vec::new();
    let mut devices = Vec::new();
    let mut prefix = "pollux".to_string();
    let mut tun = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workers" => {
                workers =
                    vfio::Workers::Count(args.next().and_then(|n| n.parse().ok()).unwrap_or(0))
            }
            "--cores" => {
                let list = args.next().unwrap_or_default();
                workers = vfio::Workers::Cores(vfio::parse_cpu_list(&list).unwrap_or_default())
            }
            "--eal" => eal.extend(args.next()),
            "--prefix" => prefix = args.next().unwrap_or(prefix),
            "--no-tun" => tun = false,
            _ => devices.push(a),
        }
    }
    let mut req = vfio::Request::new(prefix, devices, workers, &eal);
    req.tun = tun;
    match vfio::discover(&req, &vfio::Context::from_env()) {
        Ok(found) => {
            print!("{found}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
