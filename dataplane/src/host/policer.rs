//! The punt policer: token buckets on what the data plane hands the kernel.
//!
//! Every frame punted to a port's TAP costs a `write()` system call, so a
//! flood to a self IP would otherwise cost the worker a syscall per frame
//! and bury the kernel's BGP session under it. Punted frames are policed
//! per port, in three classes with a bucket each, so that one class's flood
//! does not starve another:
//!
//! - `bgp`: TCP to or from port 179 (the control plane's sessions);
//! - `neighbor`: ARP and ND mirrored to the TAP (the kernel learns its
//!   neighbors from them; the data plane answers them itself, so losing
//!   some costs nothing but the kernel's neighbor table freshness);
//! - `other`: everything else punted (ICMP other than echo, SSH, health
//!   checks' replies, UDP to a self IP…).
//!
//! Refused frames are dropped and counted as `punt_policed`.

use super::neighbor::Nanos;

const NS_PER_S: u64 = 1_000_000_000;

/// A token bucket counting in token-nanoseconds (one token =
/// 1e9 units), refilled from the worker's clock: no division per packet.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    /// Tokens per second; 0 = no limit.
    rate: u64,
    /// The most tokens the bucket holds, in token-nanoseconds.
    cap: u64,
    level: u64,
    last: Nanos,
}

impl Bucket {
    /// `rate` frames per second with bursts of `burst` frames (0: no limit).
    pub fn new(rate: u32, burst: u32) -> Bucket {
        let cap = u64::from(burst.max(1)).saturating_mul(NS_PER_S);
        Bucket {
            rate: u64::from(rate),
            cap,
            level: cap,
            last: 0,
        }
    }

    /// Whether one frame may pass at `now` (and takes its token).
    #[inline]
    pub fn admit(&mut self, now: Nanos) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.cap);
        if self.level >= NS_PER_S {
            self.level -= NS_PER_S;
            true
        } else {
            false
        }
    }
}

/// Which bucket a punted frame draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Bgp,
    Neighbor,
    Other,
    /// Not a punt: the data plane's own answers to ARP requests and
    /// Neighbor Solicitations. Unpoliced, an ARP flood came back out of
    /// the port as a flood of replies at the same rate (a reflector), and
    /// on the flooded link those replies crowded out BFD and BGP.
    Answer,
}

/// Punted frames per second (the `other` class) when the config names
/// none: a TAP write costs a few microseconds, so this bounds the worker's
/// time spent on the exception path to a few percent.
pub const DEFAULT_RATE: u32 = 10_000;

/// The three buckets of one port.
#[derive(Debug, Clone, Copy)]
pub struct PuntPolicer {
    bgp: Bucket,
    neighbor: Bucket,
    other: Bucket,
    answer: Bucket,
}

impl PuntPolicer {
    /// `rate`: frames per second of the `other` class (0: no policing at
    /// all). BGP gets twice that (a full table arrives in bursts), ARP/ND
    /// mirrors a tenth (at least 100/s), ARP replies and NAs the same as
    /// `other`. Each bucket holds a tenth of a
    /// second of its rate (at least 64 frames).
    pub fn new(rate: u32) -> PuntPolicer {
        let bucket = |r: u32| Bucket::new(r, (r / 10).max(64));
        if rate == 0 {
            return PuntPolicer {
                bgp: Bucket::new(0, 0),
                neighbor: Bucket::new(0, 0),
                other: Bucket::new(0, 0),
                answer: Bucket::new(0, 0),
            };
        }
        PuntPolicer {
            bgp: bucket(rate.saturating_mul(2)),
            neighbor: bucket((rate / 10).max(100)),
            other: bucket(rate),
            answer: bucket(rate),
        }
    }

    #[inline]
    pub fn admit(&mut self, class: Class, now: Nanos) -> bool {
        match class {
            Class::Bgp => self.bgp.admit(now),
            Class::Neighbor => self.neighbor.admit(now),
            Class::Other => self.other.admit(now),
            Class::Answer => self.answer.admit(now),
        }
    }
}

impl Default for PuntPolicer {
    fn default() -> Self {
        PuntPolicer::new(DEFAULT_RATE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = Bucket::new(1000, 10);
        let t0 = 5 * NS_PER_S;
        let passed = (0..100).filter(|_| b.admit(t0)).count();
        assert_eq!(passed, 10, "a full bucket passes its burst");
        assert!(!b.admit(t0));
        // 1000/s: one token per millisecond.
        assert!(b.admit(t0 + MS));
        assert!(!b.admit(t0 + MS));
        // Refill stops at the burst.
        let passed = (0..100).filter(|_| b.admit(t0 + 10 * NS_PER_S)).count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn zero_rate_is_no_limit_and_clock_going_back_is_harmless() {
        let mut b = Bucket::new(0, 0);
        assert!((0..100_000).all(|_| b.admit(7)));
        let mut b = Bucket::new(10, 1);
        assert!(b.admit(NS_PER_S));
        assert!(!b.admit(0), "an older timestamp adds no tokens");
    }

    #[test]
    fn classes_do_not_starve_each_other() {
        let mut p = PuntPolicer::new(1000);
        let now = NS_PER_S;
        while p.admit(Class::Other, now) {}
        while p.admit(Class::Neighbor, now) {}
        assert!(
            p.admit(Class::Bgp, now),
            "a UDP and ARP flood leaves BGP its bucket"
        );
    }
}
