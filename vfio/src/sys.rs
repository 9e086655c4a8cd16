//! Every call this crate makes into the kernel, behind one trait.
//!
//! Discovery reads the environment, files under sysfs/procfs/dev, symlinks,
//! opens device nodes, and asks the kernel for two numbers (RLIMIT_MEMLOCK and
//! the CPU affinity mask). All of it goes through [`Sys`]; [`Kernel`] is the
//! real thing and [`Fake`] (feature `testing` or `cfg(test)`) is its twin for
//! tests: it reads real files from a temporary tree, but answers environment,
//! memlock and affinity from its own fields and can refuse to open chosen
//! paths the way a device cgroup refuses (`EPERM`).
//!
//! Trust statement: the only `unsafe` in the crate lives in this module, in
//! [`Kernel::memlock_limit`] and [`Kernel::allowed_cpus`]; both pass
//! pointers to stack values of exactly the type libc declares.
#![allow(unsafe_code)]

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

/// What RLIMIT_MEMLOCK allows (the soft limit, which is what the kernel
/// checks when VFIO pins DMA memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memlock {
    Unlimited,
    Bytes(u64),
}

/// The kernel, as discovery sees it. Paths are absolute (already joined
/// with the sysfs/procfs/dev roots of the [`crate::Context`]).
pub trait Sys: Debug + Send + Sync {
    /// An environment variable of this process (`None` when unset or not
    /// UTF-8).
    fn env_var(&self, name: &str) -> Option<String>;
    /// A whole file as text.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Where a symlink points (not resolved further).
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// The entry names of a directory.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether anything exists at `path` (symlinks followed).
    fn exists(&self, path: &Path) -> bool;
    /// Open `path` read-write and close it again: proves the device cgroup
    /// and permissions let this process use a device node.
    fn open_rw(&self, path: &Path) -> io::Result<()>;
    /// RLIMIT_MEMLOCK (soft) of this process.
    fn memlock_limit(&self) -> io::Result<Memlock>;
    /// The CPUs in this process's affinity mask, ascending.
    fn allowed_cpus(&self) -> io::Result<Vec<usize>>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kernel;

impl Sys for Kernel {
    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn open_rw(&self, path: &Path) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(drop)
    }

    fn memlock_limit(&self) -> io::Result<Memlock> {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `rl` is a live, writable `rlimit` on our stack, the type
        // getrlimit(2) fills; the kernel writes nothing else.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(if rl.rlim_cur == libc::RLIM_INFINITY {
            Memlock::Unlimited
        } else {
            Memlock::Bytes(rl.rlim_cur)
        })
    }

    fn allowed_cpus(&self) -> io::Result<Vec<usize>> {
        // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid
        // (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 means this thread; the size passed is the size of
        // `set`, a live writable cpu_set_t, so the kernel writes within it.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
        Ok((0..bits)
            // SAFETY: CPU_ISSET only reads bit `cpu` of `set`, and `cpu` is
            // below the bit size of the set.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect())
    }
}

/// The test twin: files come from the real (temporary) tree through
/// [`Kernel`]; the environment, memlock, affinity and open refusals come from
/// these fields.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct Fake {
    pub env: std::collections::BTreeMap<String, String>,
    pub memlock: Memlock,
    pub cpus: Vec<usize>,
    /// Paths whose `open_rw` fails with EPERM, as a device cgroup refuses a
    /// device the container was not given.
    pub deny_open: Vec<PathBuf>,
}

#[cfg(any(test, feature = "testing"))]
impl Default for Fake {
    fn default() -> Self {
        Fake {
            env: Default::default(),
            memlock: Memlock::Unlimited,
            cpus: vec![0, 1, 2, 3],
            deny_open: Vec::new(),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl Sys for Fake {
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        Kernel.read_to_string(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        Kernel.read_link(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        Kernel.read_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        Kernel.exists(path)
    }
    fn open_rw(&self, path: &Path) -> io::Result<()> {
        if self.deny_open.iter().any(|p| p == path) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Kernel.open_rw(path)
    }
    fn memlock_limit(&self) -> io::Result<Memlock> {
        Ok(self.memlock)
    }
    fn allowed_cpus(&self) -> io::Result<Vec<usize>> {
        Ok(self.cpus.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_affinity_is_not_empty_and_sorted() {
        let cpus = Kernel.allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn kernel_memlock_answers() {
        // Whatever the limit is here, getrlimit must succeed.
        Kernel.memlock_limit().unwrap();
    }

    #[test]
    fn fake_denies_chosen_paths_with_eperm() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tun");
        std::fs::write(&p, "").unwrap();
        let mut fake = Fake::default();
        assert!(fake.open_rw(&p).is_ok());
        fake.deny_open.push(p.clone());
        let e = fake.open_rw(&p).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }
}
