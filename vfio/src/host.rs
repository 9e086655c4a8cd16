//! What the pod gives the data plane besides VFs: locked memory,
//! hugepages, CPUs and `/dev/net/tun`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::sys::Memlock;
use crate::Context;

/// CAP_IPC_LOCK, bit 14 of the capability sets (linux/capability.h).
const CAP_IPC_LOCK: u32 = 14;

/// Bytes as people read them (`64 KiB`, `2 MiB`, `1 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {name}", bytes / size);
        }
    }
    for (name, size) in UNITS {
        if bytes >= size {
            return format!("{:.1} {name}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

/// Kubernetes' spelling of a hugepage size (`1Gi`, `2Mi`).
fn k8s_size(bytes: u64) -> String {
    human(bytes)
        .replace(" GiB", "Gi")
        .replace(" MiB", "Mi")
        .replace(" KiB", "Ki")
}

/// The memlock situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemlockReport {
    pub limit: Memlock,
    /// Whether CAP_IPC_LOCK is effective (then the limit does not apply to
    /// VFIO's pinning).
    pub ipc_lock: bool,
}

impl fmt::Display for MemlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Memlock::Unlimited => write!(f, "unlimited")?,
            Memlock::Bytes(b) => write!(f, "{}", human(b))?,
        }
        if self.ipc_lock {
            write!(f, ", CAP_IPC_LOCK held (the limit does not bind VFIO)")?;
        }
        Ok(())
    }
}

/// Whether CapEff in `<proc>/self/status` has `cap`.
fn has_cap(ctx: &Context, cap: u32) -> Result<bool> {
    let path = ctx.proc_root.join("self/status");
    let text = ctx
        .sys
        .read_to_string(&path)
        .map_err(|source| Error::Read {
            what: "the process status",
            path: path.clone(),
            source,
        })?;
    let eff = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    Ok(eff & (1 << cap) != 0)
}

pub(crate) fn check_memlock(ctx: &Context, need: u64) -> Result<MemlockReport> {
    let limit = ctx.sys.memlock_limit().map_err(|source| Error::Syscall {
        what: "getrlimit(RLIMIT_MEMLOCK)",
        source,
    })?;
    let ipc_lock = has_cap(ctx, CAP_IPC_LOCK)?;
    let report = MemlockReport { limit, ipc_lock };
    match limit {
        Memlock::Bytes(b) if !ipc_lock && b < need => Err(Error::MemlockTooLow {
            limit: human(b),
            need: human(need),
        }),
        _ => Ok(report),
    }
}

/// The hugetlbfs DPDK will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HugepageReport {
    /// Where it is mounted (`--huge-dir`).
    pub mount: PathBuf,
    /// Its page size in bytes.
    pub page_size: u64,
    /// Free pages of that size (node-wide, from sysfs).
    pub free: u64,
    /// Total pages of that size (node-wide).
    pub total: u64,
}

impl fmt::Display for HugepageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pages at {}, {} free of {}",
            human(self.page_size),
            self.mount.display(),
            self.free,
            self.total
        )
    }
}

/// `pagesize=2M`/`1024M`/`1G` as bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// Undo the octal escapes of /proc/mounts (`\040` for a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn check_hugepages(
    ctx: &Context,
    need: u64,
    prefer_dir: Option<&std::path::Path>,
) -> Result<HugepageReport> {
    let mounts_path = ctx.proc_root.join("mounts");
    let mounts = ctx
        .sys
        .read_to_string(&mounts_path)
        .map_err(|source| Error::Read {
            what: "the mount table",
            path: mounts_path.clone(),
            source,
        })?;
    let default_size = || -> Option<u64> {
        let meminfo = ctx
            .sys
            .read_to_string(&ctx.proc_root.join("meminfo"))
            .ok()?;
        let kb = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("Hugepagesize:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kb << 10)
    };
    let mut candidates = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[2] != "hugetlbfs" {
            continue;
        }
        let size = f[3]
            .split(',')
            .find_map(|o| o.strip_prefix("pagesize="))
            .and_then(parse_size)
            .or_else(default_size)
            .unwrap_or(2 << 20);
        let dir = ctx
            .sys
            .read_to_string(&ctx.pages_dir(size).join("free_hugepages"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let total = ctx
            .sys
            .read_to_string(&ctx.pages_dir(size).join("nr_hugepages"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        candidates.push(HugepageReport {
            mount: PathBuf::from(unescape_mount(f[1])),
            page_size: size,
            free: dir,
            total,
        });
    }
    if candidates.is_empty() {
        return Err(Error::NoHugetlbfs { path: mounts_path });
    }
    if let Some(p) = prefer_dir {
        candidates.retain(|c| c.mount == p);
        if candidates.is_empty() {
            return Err(Error::NoHugetlbfs { path: mounts_path });
        }
    }
    // Largest pages first: fewer TLB misses, fewer files for DPDK.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.page_size));
    let fits = |c: &HugepageReport| c.free.saturating_mul(c.page_size) >= need.max(1);
    if let Some(c) = candidates.iter().find(|c| fits(c)) {
        return Ok(c.clone());
    }
    let c = &candidates[0];
    Err(Error::HugepagesExhausted {
        need: human(need.max(c.page_size)),
        mount: c.mount.clone(),
        size: human(c.page_size),
        k8s_size: k8s_size(c.page_size),
        free: c.free,
    })
}

/// How many workers, or which cores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workers {
    /// These CPUs, one worker each (config `workers: [2, 3]`).
    Cores(Vec<usize>),
    /// This many workers on CPUs taken from the affinity mask (config
    /// `workers: 2`), which is what a Guaranteed pod under the static CPU
    /// manager should say: the kubelet picks its CPUs.
    Count(usize),
}

/// Where the EAL's main lcore and each worker run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPlan {
    /// The affinity mask.
    pub allowed: Vec<usize>,
    /// The CPU of the main lcore (the control thread).
    pub main: usize,
    /// The CPU of each worker, in worker order.
    pub workers: Vec<usize>,
}

impl fmt::Display for CpuPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "allowed {}; main lcore on CPU {}; workers on CPU(s) {}",
            cpu_list(&self.allowed),
            self.main,
            cpu_list(&self.workers)
        )
    }
}

/// `0-3,6,8-9` style, as /proc and the kernel print CPU lists.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

pub(crate) fn plan_cpus(
    ctx: &Context,
    workers: &Workers,
    warnings: &mut Vec<String>,
) -> Result<CpuPlan> {
    let allowed = ctx.sys.allowed_cpus().map_err(|source| Error::Syscall {
        what: "sched_getaffinity",
        source,
    })?;
    let list = cpu_list(&allowed);
    let chosen: Vec<usize> = match workers {
        Workers::Cores(cores) => {
            if cores.is_empty() {
                return Err(Error::NoWorkers);
            }
            for &c in cores {
                if !allowed.contains(&c) {
                    return Err(Error::CpuNotAllowed {
                        cpu: c,
                        allowed: list,
                    });
                }
            }
            cores.clone()
        }
        Workers::Count(0) => return Err(Error::NoWorkers),
        Workers::Count(n) => {
            if allowed.len() < *n {
                return Err(Error::TooFewCpus {
                    need: *n,
                    have: allowed.len(),
                    want: n + 1,
                    allowed: list,
                });
            }
            // Leave the first allowed CPU to the main lcore when there is room.
            let skip = usize::from(allowed.len() > *n);
            allowed[skip..skip + n].to_vec()
        }
    };
    let main = match allowed.iter().find(|c| !chosen.contains(c)) {
        Some(&c) => c,
        None => {
            warnings.push(format!(
                "no CPU left for the control thread: the main lcore shares CPU {} with a worker; \
                 request one more whole CPU (or use pollMode: adaptive)",
                chosen[0]
            ));
            chosen[0]
        }
    };
    Ok(CpuPlan {
        allowed,
        main,
        workers: chosen,
    })
}

/// NUMA node → its CPUs, from `<sys>/devices/system/node/node<N>/cpulist`.
pub(crate) fn node_cpus(ctx: &Context, node: u32) -> Option<Vec<usize>> {
    let path = ctx
        .sysfs_root
        .join(format!("devices/system/node/node{node}/cpulist"));
    parse_cpu_list(ctx.sys.read_to_string(&path).ok()?.trim())
}

/// Parse `0-3,6` into CPUs.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

pub(crate) fn check_tun(ctx: &Context) -> Result<PathBuf> {
    let path = ctx.dev_root.join("net/tun");
    if !ctx.sys.exists(&path) {
        return Err(Error::TunMissing { path });
    }
    match ctx.sys.open_rw(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::TunMissing { path }),
        Err(source) => Err(Error::TunUnopenable { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_and_parse() {
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(3 << 29), "1536 MiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(12), "12 B");
        assert_eq!(k8s_size(1 << 30), "1Gi");
        assert_eq!(k8s_size(2 << 20), "2Mi");
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1024M"), Some(1 << 30));
        assert_eq!(parse_size("1G"), Some(1 << 30));
    }

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(
            parse_cpu_list("0-3,6,8-9").unwrap(),
            vec![0, 1, 2, 3, 6, 8, 9]
        );
        assert_eq!(cpu_list(&[]), "none");
        assert!(parse_cpu_list("0-x").is_none());
    }

    #[test]
    fn mount_escapes_are_undone() {
        assert_eq!(unescape_mount("/huge\\040pages"), "/huge pages");
        assert_eq!(unescape_mount("/hugepages"), "/hugepages");
    }
}
