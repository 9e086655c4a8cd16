//! EAL initialisation, lcore launch and the TSC clock.

use std::ffi::{c_int, c_void, CString};
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{check, Error, Result};

/// The initialised Environment Abstraction Layer; `rte_eal_cleanup` on drop.
/// Create it once per process, before any port or mempool.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// `args` are EAL arguments without the program name.
    pub fn init(args: &[String]) -> Result<Eal> {
        let owned: Vec<CString> = std::iter::once("pollux".to_string())
            .chain(args.iter().cloned())
            .map(|a| CString::new(a).map_err(|_| Error::Nul("EAL argument")))
            .collect::<Result<_>>()?;
        let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive
        // the call (EAL copies what it keeps); EAL may permute argv.
        let rc = unsafe { dpdk_sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        check("rte_eal_init", rc)?;
        Ok(Eal { _private: () })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every DPDK object created by this
        // process was released by its own Drop (ports, mempools).
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}

type Job = Box<dyn FnOnce() -> std::result::Result<(), String> + Send>;

unsafe extern "C" fn lcore_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for this lcore only.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C: catch it and report it as a failure.
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(Ok(())) => 0,
        Ok(Err(_)) | Err(_) => -1,
    }
}

/// Runs `job` on EAL worker lcore `lcore`. Panics are caught at the entry
/// and turn into a -1 return seen by [`wait`].
pub fn launch(
    lcore: u32,
    job: impl FnOnce() -> std::result::Result<(), String> + Send + 'static,
) -> Result<()> {
    let job: Box<Job> = Box::new(Box::new(job));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: lcore_entry matches lcore_function_t and takes ownership of arg.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(lcore_entry), arg, lcore) };
    if rc != 0 {
        // SAFETY: not launched, so the job is still ours to free.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return check("rte_eal_remote_launch", rc.min(-1)).map(|_| ());
    }
    Ok(())
}

/// Waits for the job on `lcore` to return; its return code (0 = ok).
pub fn wait(lcore: u32) -> i32 {
    // SAFETY: plain call; blocks until the lcore is back in WAIT state.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// The time stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::pollux_rdtsc() }
}

/// Sets the calling thread's timer slack (`PR_SET_TIMERSLACK`): how late
/// the kernel may wake its sleeps to batch wake-ups (50 µs by default, on
/// top of every `thread::sleep`). Returns false if the kernel refused.
pub fn set_timer_slack_ns(ns: u64) -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and touches no memory of
    // ours; it affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) == 0 }
}

/// TSC ticks per second as measured by EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: valid after rte_eal_init, which calibrates it.
    unsafe { dpdk_sys::pollux_tsc_hz() }
}

/// TSC → nanoseconds since the clock was made, for the worker loop (read
/// once per burst).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: u64,
    /// Nanoseconds per tick in 32.32 fixed point.
    ns_per_tick: u128,
}

impl Clock {
    pub fn new() -> Clock {
        Clock::with_hz(tsc(), tsc_hz())
    }

    pub fn with_hz(start: u64, hz: u64) -> Clock {
        Clock {
            start,
            ns_per_tick: (1_000_000_000u128 << 32) / u128::from(hz.max(1)),
        }
    }

    #[inline]
    pub fn ns(&self, tsc: u64) -> u64 {
        ((u128::from(tsc.wrapping_sub(self.start)) * self.ns_per_tick) >> 32) as u64
    }

    #[inline]
    pub fn now(&self) -> u64 {
        self.ns(tsc())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn clock_converts_ticks() {
        let c = Clock::with_hz(1000, 2_000_000_000);
        assert_eq!(c.ns(1000), 0);
        assert_eq!(c.ns(1000 + 2_000_000_000), 1_000_000_000);
        // hours of ticks do not overflow
        assert_eq!(c.ns(1000 + 2_000_000_000 * 36_000), 36_000 * 1_000_000_000);
    }
}
