//! Maglev consistent hashing: the member lookup table of a virtual server.
//!
//! # Model
//!
//! ctrl builds one immutable [`Table`] per virtual server from its ordered
//! member list and publishes it in the VS snapshot; workers only call
//! [`Table::lookup`] with the flow's [`FlowHasher::MAGLEV`] hash: one
//! multiply, one load. A new member set means a new table, built off the
//! packet path and swapped in whole.
//!
//! Population is the Maglev paper's (Eisenbud et al., NSDI'16, §3.4,
//! "Pseudocode 1"): each member `i` has a permutation of the `M` slots given
//! by `offset_i = h1(key_i) mod M` and `skip_i = h2(key_i) mod (M-1) + 1`
//! (`M` prime, so every skip generates all slots); members take turns, and
//! on its turn a member claims the next slot of its permutation that is
//! still free, until the table is full.
//!
//! Weights: Katran's weighted variant (`MaglevHashV2`): turns are handed
//! out by credit. Each round every member adds its weight to its credit, and
//! a member whose credit reaches the largest weight spends that much for one
//! turn. So member `i` gets `M * w_i / sum(w)` slots to within a couple of
//! slots (the last round is cut short), and a member of weight 0 (drained)
//! never takes a turn and owns no slot.
//!
//! Determinism: the table depends only on the set of (key, weight) pairs and
//! `M`. The hashes are pollux-hash v1 ([`super::hash::hash_bytes`]) with the
//! fixed seeds [`OFFSET_SEED`] and [`SKIP_SEED`]; turns go in the order of
//! the member keys' bytes, not the input order, so two instances that list
//! the same members in a different order still agree slot for slot (the
//! slot values are indices into each caller's own list). No `HashMap`, no
//! `RandomState`, no floating point. Draining a member (weight 0) and
//! removing it give the same flow→member mapping.
//!
//! Disruption: removing one of `N` members frees its `~M/N` slots, which
//! go to the survivors; a few survivor slots also change hands because the
//! freed slots let some members claim earlier positions of their
//! permutations. The tests measure both (Maglev promises "minimal", not
//! zero, disruption for survivors; GLB and Katran document the same).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[cfg(doc)]
use super::flow::FlowHasher;
use super::hash::{hash_bytes, reduce};

/// Default table size (prime), as in the Maglev paper and Katran.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// A table must have at least this many slots per member (balance: the
/// paper's `M >= 100 N`).
pub const MIN_SLOTS_PER_MEMBER: u32 = 100;
/// Largest accepted table size (32 MiB of `u16` slots).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;
/// Largest member count: slot values are `u16` member indices.
pub const MAX_MEMBERS: usize = u16::MAX as usize;
/// Seed of the hash that picks a member's permutation offset (fixed).
pub const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001; // "maglev", 1
/// Seed of the hash that picks a member's permutation skip (fixed).
pub const SKIP_SEED: u64 = 0x6d61_676c_6576_0002; // "maglev", 2
/// Seed of [`Table::digest`].
pub const DIGEST_SEED: u64 = 0x6d61_676c_6576_00d1;

const EMPTY: u16 = u16::MAX;

/// A member's identity for hashing: its address (IPv4 as `::ffff:a.b.c.d`)
/// and port, 18 bytes, port big-endian. Stable across processes and
/// machines: it is what makes two instances pick the same member.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberKey([u8; 18]);

impl MemberKey {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        let v6 = match addr {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        let mut b = [0u8; 18];
        b[..16].copy_from_slice(&v6.octets());
        b[16..].copy_from_slice(&port.to_be_bytes());
        MemberKey(b)
    }

    pub fn as_bytes(&self) -> &[u8; 18] {
        &self.0
    }
}

impl From<SocketAddr> for MemberKey {
    fn from(sa: SocketAddr) -> Self {
        MemberKey::new(sa.ip(), sa.port())
    }
}

impl fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.0[..16]);
        let ip = std::net::Ipv6Addr::from(a);
        let port = u16::from_be_bytes([self.0[16], self.0[17]]);
        match ip.to_ipv4_mapped() {
            Some(v4) => write!(f, "{v4}:{port}"),
            None => write!(f, "[{ip}]:{port}"),
        }
    }
}

/// One pool member as Maglev sees it. Weight 0 = drain: no slot, no new
/// flows (existing flows stay, through the connection table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub key: MemberKey,
    pub weight: u32,
}

/// Why a table could not be built (ctrl reports it against the config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    #[error("Maglev table size {size} is not a prime number")]
    NotPrime { size: u32 },
    #[error(
        "Maglev table size {size} is too small for {members} members: \
         at least {min} needed (100 slots per member)"
    )]
    TooSmall { size: u32, members: usize, min: u64 },
    #[error("Maglev table size {size} exceeds the maximum of {MAX_TABLE_SIZE}")]
    TooLarge { size: u32 },
    #[error("{members} members exceed the maximum of {MAX_MEMBERS}")]
    TooManyMembers { members: usize },
    #[error("members {first} and {index} have the same address and port")]
    DuplicateMember { first: usize, index: usize },
    #[error("no member has a non-zero weight")]
    NoActiveMember,
}

/// An immutable Maglev lookup table: `size` (prime) slots, each holding the
/// index of a member in the list it was built from.
///
/// A virtual server whose members are all drained or down has no table
/// ([`MaglevError::NoActiveMember`]); ctrl publishes that as "no member" and
/// the worker drops new flows with a counter.
#[derive(Clone, PartialEq, Eq)]
pub struct Table {
    slots: Box<[u16]>,
    members: usize,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("size", &self.slots.len())
            .field("members", &self.members)
            .field("digest", &format_args!("{:#018x}", self.digest()))
            .finish()
    }
}

impl Table {
    /// Build the table for `members` (in the caller's order: slot values are
    /// indices into this slice) with `size` slots. `size` must be prime,
    /// at least 100 × `members.len()` (counting drained members, so that
    /// draining never forces a resize) and at most [`MAX_TABLE_SIZE`]; see
    /// [`table_size_for`].
    ///
    /// Cost: O(M log M) expected slot probes plus O(rounds × N) credit
    /// steps; a few milliseconds for 65537 slots. ctrl only.
    pub fn build(members: &[Member], size: u32) -> Result<Table, MaglevError> {
        validate(members, size)?;
        if members.len() > MAX_MEMBERS {
            return Err(MaglevError::TooManyMembers {
                members: members.len(),
            });
        }
        // Turn order: by key bytes. Also finds duplicates.
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| members[a].key.cmp(&members[b].key).then(a.cmp(&b)));
        for w in order.windows(2) {
            if members[w[0]].key == members[w[1]].key {
                return Err(MaglevError::DuplicateMember {
                    first: w[0].min(w[1]),
                    index: w[0].max(w[1]),
                });
            }
        }
        order.retain(|&i| members[i].weight > 0);
        if order.is_empty() {
            return Err(MaglevError::NoActiveMember);
        }

        struct Turn {
            index: u16,
            weight: u64,
            credit: u64,
            pos: u32,
            skip: u32,
        }
        let m = u64::from(size);
        let mut turns: Vec<Turn> = order
            .iter()
            .map(|&i| {
                let key = members[i].key.as_bytes();
                Turn {
                    index: i as u16,
                    weight: u64::from(members[i].weight),
                    credit: 0,
                    pos: (hash_bytes(key, OFFSET_SEED) % m) as u32,
                    skip: (hash_bytes(key, SKIP_SEED) % (m - 1) + 1) as u32,
                }
            })
            .collect();
        let max_weight = turns.iter().map(|t| t.weight).max().unwrap_or(1);

        let mut slots = vec![EMPTY; size as usize].into_boxed_slice();
        let mut filled = 0u32;
        'fill: loop {
            for t in turns.iter_mut() {
                t.credit += t.weight;
                if t.credit < max_weight {
                    continue;
                }
                t.credit -= max_weight;
                // Next free slot of this member's permutation. Terminates:
                // the permutation visits every slot and one is still free.
                while slots[t.pos as usize] != EMPTY {
                    t.pos = step(t.pos, t.skip, size);
                }
                slots[t.pos as usize] = t.index;
                t.pos = step(t.pos, t.skip, size);
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Ok(Table {
            slots,
            members: members.len(),
        })
    }

    /// The member index for a flow hash ([`FlowHasher::MAGLEV`]): the slot is
    /// chosen from the hash's high 32 bits by multiply-shift
    /// ([`super::hash::reduce`]). O(1), no allocation.
    #[inline(always)]
    pub fn lookup(&self, hash: u64) -> u16 {
        self.slots[reduce(hash, self.slots.len() as u32) as usize]
    }

    /// Number of slots (prime).
    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Length of the member list the table was built from.
    pub fn member_count(&self) -> usize {
        self.members
    }

    /// The slots themselves (member indices), for diffs and `show`.
    pub fn slots(&self) -> &[u16] {
        &self.slots
    }

    /// Slots owned by each member, indexed like the member list.
    pub fn slot_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.members];
        for &s in self.slots.iter() {
            counts[usize::from(s)] += 1;
        }
        counts
    }

    /// A 64-bit digest of the table (pollux-hash v1 of the slots as
    /// little-endian `u16`s): equal on every instance that built the same
    /// table. Worth showing in `pollux show virtual-servers` so operators can
    /// check that ECMP peers agree.
    pub fn digest(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.slots.len() * 2);
        for s in self.slots.iter() {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        hash_bytes(&bytes, DIGEST_SEED)
    }
}

#[inline(always)]
fn step(pos: u32, skip: u32, size: u32) -> u32 {
    // pos, skip < size <= 2^24: no overflow.
    let p = pos + skip;
    if p >= size {
        p - size
    } else {
        p
    }
}

fn validate(members: &[Member], size: u32) -> Result<(), MaglevError> {
    if size > MAX_TABLE_SIZE {
        return Err(MaglevError::TooLarge { size });
    }
    if !is_prime(size) {
        return Err(MaglevError::NotPrime { size });
    }
    let min = members.len() as u64 * u64::from(MIN_SLOTS_PER_MEMBER);
    if u64::from(size) < min {
        return Err(MaglevError::TooSmall {
            size,
            members: members.len(),
            min,
        });
    }
    Ok(())
}

/// Is `n` prime? (Trial division by 6k±1: at most ~11k divisions for u32.)
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if matches!(n % 6, 0 | 2 | 3 | 4) {
        // divisible by 2 or 3
        return false;
    }
    let n = u64::from(n);
    let mut d = 5u64;
    while d * d <= n {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

/// The smallest prime `>= n`, if one fits in `u32`.
pub fn next_prime(n: u32) -> Option<u32> {
    (n..=u32::MAX).find(|&c| is_prime(c))
}

/// The table size for `members` members: [`DEFAULT_TABLE_SIZE`], or the
/// smallest prime giving 100 slots per member when that is larger.
pub fn table_size_for(members: usize) -> Result<u32, MaglevError> {
    if members > MAX_MEMBERS {
        return Err(MaglevError::TooManyMembers { members });
    }
    let min = (members as u32) * MIN_SLOTS_PER_MEMBER;
    if min <= DEFAULT_TABLE_SIZE {
        return Ok(DEFAULT_TABLE_SIZE);
    }
    match next_prime(min) {
        Some(p) if p <= MAX_TABLE_SIZE => Ok(p),
        Some(p) => Err(MaglevError::TooLarge { size: p }),
        None => Err(MaglevError::TooLarge { size: u32::MAX }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::flow::FlowHasher;
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn member(i: u32, weight: u32) -> Member {
        let ip = Ipv4Addr::from(0x0a01_0000 + i);
        Member {
            key: MemberKey::new(IpAddr::V4(ip), 8080),
            weight,
        }
    }

    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| member(i as u32, w))
            .collect()
    }

    /// Assert every member's slot count is within 1 % of its share (or
    /// within 2 slots, for shares too small for 1 % to be a whole slot:
    /// the credit scheme is exact to a turn or two).
    fn assert_balanced(t: &Table, ms: &[Member]) {
        let total: u64 = ms.iter().map(|m| u64::from(m.weight)).sum();
        let counts = t.slot_counts();
        assert_eq!(
            counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
            u64::from(t.size())
        );
        for (i, m) in ms.iter().enumerate() {
            let want = f64::from(t.size()) * m.weight as f64 / total as f64;
            let got = f64::from(counts[i]);
            let tol = (want * 0.01).max(2.0);
            assert!(
                (got - want).abs() <= tol,
                "member {i} weight {} got {got} slots, want {want:.1} ± {tol:.1}",
                m.weight
            );
        }
    }

    #[test]
    fn equal_weights_balance_within_one_percent() {
        let ms = members(&[1, 1, 1]);
        let t = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
        assert_balanced(&t, &ms);
        // Stronger than 1 %: the turns are exact, 65537 = 3 * 21845 + 2.
        let mut c = t.slot_counts();
        c.sort();
        assert_eq!(c, vec![21845, 21846, 21846]);
    }

    #[test]
    fn weights_one_two_three_balance_within_one_percent() {
        let ms = members(&[1, 2, 3]);
        let t = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
        assert_balanced(&t, &ms);
        let c = t.slot_counts();
        assert!(c[0] < c[1] && c[1] < c[2], "{c:?}");
    }

    #[test]
    fn drained_member_gets_no_slot_and_equals_removal() {
        let ms = members(&[1, 0, 1, 1]);
        let t = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
        assert_eq!(t.slot_counts()[1], 0);
        assert_balanced(&t, &ms);
        // Same flow→member mapping as removing member 1 from the list.
        let removed: Vec<Member> = [0, 2, 3].iter().map(|&i| ms[i]).collect();
        let t2 = Table::build(&removed, DEFAULT_TABLE_SIZE).unwrap();
        for (a, b) in t.slots().iter().zip(t2.slots()) {
            assert_eq!(ms[usize::from(*a)].key, removed[usize::from(*b)].key);
        }
    }

    #[test]
    fn lookup_spreads_flows_like_the_weights() {
        use super::super::flow::{FlowKey, PROTO_TCP};
        let ms = members(&[1, 2, 3]);
        let t = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
        let mut n = [0u32; 3];
        // One client, 60000 source ports: the realistic worst case.
        for port in 1..=60000u16 {
            let k = FlowKey::v4([10, 9, 8, 7], [192, 168, 77, 128], port, 80, PROTO_TCP);
            n[usize::from(t.lookup(FlowHasher::MAGLEV.hash(&k)))] += 1;
        }
        for (i, want) in [10000.0, 20000.0, 30000.0].iter().enumerate() {
            // Binomial sd is ~100-120 flows here; allow 5 sd.
            assert!((f64::from(n[i]) - want).abs() < 600.0, "{n:?}");
        }
    }

    /// Remove one of N members: every slot it had moves (it is gone), and
    /// the survivors keep almost all of theirs. Maglev does not promise zero
    /// survivor churn; the paper measures it small. The bound: survivors
    /// lose no more slots than the removed member had (1/N of the table),
    /// i.e. total churn at most twice the unavoidable minimum. Measured:
    /// 0.14 % (N=5), 0.27 % (N=20), 0.54 % (N=100) of the table.
    #[test]
    fn removing_one_member_moves_its_slots_and_few_others() {
        for n in [5u32, 20, 100] {
            let ms = members(&vec![1; n as usize]);
            let t1 = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
            let gone = (n / 2) as usize;
            let rest: Vec<Member> = ms
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != gone)
                .map(|(_, m)| *m)
                .collect();
            let t2 = Table::build(&rest, DEFAULT_TABLE_SIZE).unwrap();
            let (mut moved_gone, mut had_gone, mut moved_survivor) = (0u32, 0u32, 0u32);
            for (a, b) in t1.slots().iter().zip(t2.slots()) {
                let before = ms[usize::from(*a)].key;
                let after = rest[usize::from(*b)].key;
                if usize::from(*a) == gone {
                    had_gone += 1;
                    moved_gone += u32::from(before != after);
                } else if before != after {
                    moved_survivor += 1;
                }
            }
            assert_eq!(
                moved_gone, had_gone,
                "all of the removed member's slots move"
            );
            let size = f64::from(DEFAULT_TABLE_SIZE);
            let frac = f64::from(moved_survivor) / size;
            eprintln!(
                "N={n}: removed member had {:.2} % of slots; survivors' slots moved: {:.3} %",
                f64::from(had_gone) / size * 100.0,
                frac * 100.0
            );
            assert!(frac <= 1.0 / f64::from(n), "N={n}: survivors moved {frac}");
        }
    }

    #[test]
    fn input_order_does_not_change_the_mapping() {
        let ms = members(&[3, 1, 4, 1, 5]);
        let mut rev = ms.clone();
        rev.reverse();
        let a = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
        let b = Table::build(&rev, DEFAULT_TABLE_SIZE).unwrap();
        for (x, y) in a.slots().iter().zip(b.slots()) {
            assert_eq!(ms[usize::from(*x)].key, rev[usize::from(*y)].key);
        }
    }

    #[test]
    fn single_member_owns_every_slot() {
        let t = Table::build(&members(&[7]), 101).unwrap();
        assert!(t.slots().iter().all(|&s| s == 0));
    }

    #[test]
    fn validation_errors() {
        assert_eq!(
            Table::build(&members(&[1, 1]), 65536),
            Err(MaglevError::NotPrime { size: 65536 })
        );
        assert_eq!(
            Table::build(&members(&[1, 1]), 197),
            Err(MaglevError::TooSmall {
                size: 197,
                members: 2,
                min: 200
            })
        );
        assert_eq!(
            Table::build(&members(&[0, 0]), 211),
            Err(MaglevError::NoActiveMember)
        );
        assert_eq!(Table::build(&[], 211), Err(MaglevError::NoActiveMember));
        let mut dup = members(&[1, 1, 1]);
        dup[2].key = dup[0].key;
        assert_eq!(
            Table::build(&dup, 65537),
            Err(MaglevError::DuplicateMember { first: 0, index: 2 })
        );
        assert_eq!(
            Table::build(&members(&[1]), 16_777_259),
            Err(MaglevError::TooLarge { size: 16_777_259 })
        );
        let e = MaglevError::TooSmall {
            size: 197,
            members: 2,
            min: 200,
        };
        assert!(e.to_string().contains("100 slots per member"), "{e}");
    }

    #[test]
    fn primes_and_sizes() {
        let small: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537) && !is_prime(65535) && is_prime(4_294_967_291));
        assert!(!is_prime(25) && !is_prime(49) && !is_prime(65537 * 3));
        assert_eq!(next_prime(65536), Some(65537));
        assert_eq!(next_prime(100_000), Some(100_003));
        assert_eq!(next_prime(u32::MAX), None);
        assert_eq!(table_size_for(3), Ok(65537));
        assert_eq!(table_size_for(655), Ok(65537));
        assert_eq!(table_size_for(1000), Ok(100_003));
        assert!(table_size_for(200_000).is_err());
    }

    /// A fixed input whose digest is pinned: catches any change to the
    /// population or the hashes (which would break agreement with older
    /// instances) on every machine CI runs on.
    fn fixture() -> Table {
        let ms: Vec<Member> = (0..10u32)
            .map(|i| Member {
                key: MemberKey::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 10 + i as u8)), 8080),
                weight: 1 + i % 3,
            })
            .collect();
        Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap()
    }

    const FIXTURE_DIGEST: u64 = 0xb31a_4162_2937_a806;
    const CHILD_ENV: &str = "POLLUX_MAGLEV_DIGEST_CHILD";

    /// Also the child half of `identical_tables_in_two_processes`: with the
    /// env var set it prints the digest for the parent to read.
    #[test]
    fn fixture_digest_is_pinned() {
        let d = fixture().digest();
        if std::env::var_os(CHILD_ENV).is_some() {
            println!("\nmaglev-digest={d:#018x}");
        }
        assert_eq!(d, FIXTURE_DIGEST, "Maglev table changed: {d:#018x}");
    }

    #[test]
    fn identical_tables_in_two_processes() {
        let path = module_path!()
            .split_once("::")
            .map(|(_, p)| p)
            .unwrap_or(module_path!());
        let name = format!("{path}::fixture_digest_is_pinned");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .expect("spawn the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("maglev-digest="))
            .unwrap_or_else(|| panic!("child printed no digest: {stdout}"));
        assert_eq!(line, format!("{:#018x}", fixture().digest()));
        assert!(out.status.success(), "child failed: {stdout}");
    }

    /// `cargo test --release -- --ignored --nocapture bench_`.
    #[test]
    #[ignore]
    fn bench_maglev_build_and_lookup() {
        use super::super::flow::{FlowKey, PROTO_TCP};
        use std::hint::black_box;
        use std::time::Instant;
        let ms = members(&vec![1; 100]);
        let start = Instant::now();
        let t = Table::build(&ms, DEFAULT_TABLE_SIZE).unwrap();
        let build = start.elapsed();
        let keys: Vec<FlowKey> = (0..1_000_000u32)
            .map(|i| {
                FlowKey::v4(
                    i.to_be_bytes(),
                    [192, 168, 77, 128],
                    (i % 60000) as u16,
                    80,
                    PROTO_TCP,
                )
            })
            .collect();
        let start = Instant::now();
        let mut acc = 0u32;
        for k in &keys {
            acc += u32::from(t.lookup(FlowHasher::MAGLEV.hash(black_box(k))));
        }
        let per = start.elapsed().as_nanos() as f64 / keys.len() as f64;
        eprintln!("maglev: build 65537 slots / 100 members {build:?}; hash+lookup {per:.1} ns");
        assert!(acc > 0);
    }

    fn member_set() -> impl Strategy<Value = Vec<Member>> {
        prop::collection::btree_map(any::<(u32, u16)>(), 0u32..100, 1..40).prop_map(|m| {
            m.into_iter()
                .map(|((ip, port), weight)| Member {
                    key: MemberKey::new(IpAddr::V4(Ipv4Addr::from(ip)), port),
                    weight,
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn balanced_and_deterministic(ms in member_set()) {
            prop_assume!(ms.iter().any(|m| m.weight > 0));
            let t = Table::build(&ms, 8191).unwrap();
            assert_balanced(&t, &ms);
            let again = Table::build(&ms.clone(), 8191).unwrap();
            prop_assert_eq!(&t, &again);
            prop_assert_eq!(t.digest(), again.digest());
            for (i, m) in ms.iter().enumerate() {
                if m.weight == 0 {
                    prop_assert_eq!(t.slot_counts()[i], 0);
                }
            }
        }
    }
}
