//! Local discriminators: random, non-zero, unique per instance.
//!
//! RFC 5880 §6.3: "The local discriminator value … MUST be unique across
//! all BFD sessions on this system, and nonzero. It SHOULD be set to a
//! random (but still unique) value to improve security." A predictable
//! discriminator (the first one used to be 0x00010001) lets an off-path
//! host forge packets that select the session; with a random one it must
//! also guess 32 bits, and [`super::table`] checks the source address too.
//!
//! ctrl maps a state change back to its peer by discriminator
//! ([`Discriminators::peer_of`]), so the map is kept here rather than
//! encoded in the value.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// The discriminators handed out by one data plane, and the index of the
/// configured BFD peer each belongs to.
#[derive(Debug)]
pub struct Discriminators {
    /// SipHash keyed from the OS's random source when the process started
    /// (std's `RandomState`): unpredictable from outside.
    keys: RandomState,
    counter: u64,
    given: Vec<(u32, usize)>,
}

impl Default for Discriminators {
    fn default() -> Self {
        Discriminators {
            keys: RandomState::new(),
            counter: 0,
            given: Vec::new(),
        }
    }
}

impl Discriminators {
    /// A new discriminator for configured peer `peer`: random, non-zero,
    /// and not given before.
    pub fn fresh(&mut self, peer: usize) -> u32 {
        loop {
            let mut h = self.keys.build_hasher();
            h.write_u64(self.counter);
            h.write_u64(crate::dpdk::tsc());
            self.counter += 1;
            let d = h.finish() as u32;
            if d != 0 && !self.given.iter().any(|(x, _)| *x == d) {
                self.given.push((d, peer));
                return d;
            }
        }
    }

    /// Peer `peer` is gone and the peers after it move down one place:
    /// its discriminators map to nothing, theirs follow them. A retired
    /// value is never given again (a late packet or event carrying it
    /// finds no session).
    pub fn retire(&mut self, peer: usize) {
        for (_, p) in &mut self.given {
            if *p == peer {
                *p = usize::MAX;
            } else if *p > peer && *p != usize::MAX {
                *p -= 1;
            }
        }
    }

    /// The configured peer index `discr` was given for.
    pub fn peer_of(&self, discr: u32) -> Option<usize> {
        self.given
            .iter()
            .find(|(d, _)| *d == discr)
            .map(|(_, p)| *p)
            .filter(|&p| p != usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminators_are_unique_nonzero_and_not_sequential() {
        let mut d = Discriminators::default();
        let all: Vec<u32> = (0..1000).map(|i| d.fresh(i)).collect();
        assert!(all.iter().all(|&x| x != 0));
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
        assert_ne!(all[0], 0x0001_0001);
        let sequential = all
            .windows(2)
            .filter(|w| w[1] == w[0].wrapping_add(1))
            .count();
        assert!(sequential < 3, "{sequential} sequential pairs");
        for (i, &x) in all.iter().enumerate() {
            assert_eq!(d.peer_of(x), Some(i));
        }
        assert_eq!(d.peer_of(0), None);
        // Retiring peer 3 forgets its value and moves the later ones down.
        d.retire(3);
        assert_eq!(d.peer_of(all[3]), None);
        assert_eq!(d.peer_of(all[2]), Some(2));
        assert_eq!(d.peer_of(all[4]), Some(3));
        assert!(!(0..50).map(|i| d.fresh(i)).any(|x| x == all[3]));
        // Another instance draws other values.
        let mut e = Discriminators::default();
        assert_ne!(e.fresh(0), all[0]);
    }
}
