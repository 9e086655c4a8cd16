//! Memory for worker-private tables (the connection table), and a prefetch
//! hint: `unsafe`, so it lives in the DPDK layer beside the other raw memory.
//!
//! DESIGN.md §2: worker tables are allocated by the worker after it is
//! pinned, in hugepages (first touch puts them on the worker's NUMA node),
//! falling back to ordinary pages with a warning and a counter. An
//! [`Arena`] is one mapping that a worker's tables are carved from
//! ([`HugeArray`]s), so that they round up to a page once, not once an
//! array (with 1 GiB pages, four arrays a worker were four pages).
//!
//! Which pages ([`Arena::new`]):
//! 1. `Backing::HugeTlb`: an anonymous `MAP_HUGETLB` mapping of an explicit
//!    page size, the smallest (the least rounding) of those the kernel
//!    offers (`/sys/kernel/mm/hugepages`) that has the pages free *and*
//!    that every hugetlb cgroup of this process leaves room for. The
//!    second matters in a pod: Kubernetes sets the limit of every page size
//!    the pod did not request to 0, and the kernel charges a hugetlb page
//!    at the fault, not at the `mmap` — over the limit the fault is a
//!    SIGBUS. So the limits are read first ([`HugeSys::page_sizes`]) and
//!    a size without room is skipped; and the mapping is faulted in with
//!    `MADV_POPULATE_WRITE`, which fails instead (where the limits were
//!    not visible: `ip netns exec` hides the cgroup mounts, for one).
//! 2. Otherwise (or if every such mmap fails) `Backing::Transparent`:
//!    `std::alloc` with 2 MiB alignment plus `madvise(MADV_HUGEPAGE)`, so
//!    transparent hugepages back it where THP is enabled.
//!
//! Every element is written once at allocation (no reliance on zeroed
//! memory, and all pages are faulted in now, on this thread's node, rather
//! than on the packet path).
//!
//! `T: Copy` keeps this simple: elements have no destructors.
// (unsafe_code is allowed by the parent module, dpdk.)

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

const HUGE_2M: usize = 2 << 20;
/// Arrays in an arena start on a cache line.
const LINE: usize = 64;
/// `madvise`: fault the range in writable, failing rather than signalling
/// (Linux 5.14, `<linux/mman.h>`; not in the libc crate for glibc).
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// What backs a worker table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Reserved hugetlb pages (`/proc/sys/vm/nr_hugepages`).
    HugeTlb,
    /// Ordinary pages, 2 MiB aligned, with `MADV_HUGEPAGE` (THP) advice.
    Transparent,
}

/// One mapping, unmapped when the last array carved from it goes.
struct Mapping {
    ptr: NonNull<u8>,
    /// The hugetlb page size, or `None`: the heap (`layout`'s allocation).
    page: Option<usize>,
    layout: Layout,
}

// SAFETY: Mapping only owns the memory (like a Box<[u8]>) and gives no
// access to it; the arrays carved from it are what is read and written.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` reads no byte of the memory.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `size` bytes (a multiple of `page`) of `page`-sized hugetlb pages.
    fn hugetlb(size: usize, page: usize) -> Option<Mapping> {
        let layout = Layout::from_size_align(size, page).ok()?;
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_HUGETLB
            | ((page.trailing_zeros() as libc::c_int) << libc::MAP_HUGE_SHIFT);
        // SAFETY: a new anonymous private mapping at an address the kernel
        // chooses touches no existing memory; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let map = Mapping {
            ptr: NonNull::new(p.cast())?,
            page: Some(page),
            layout,
        };
        // Fault every page in now: a page the cgroup does not allow fails
        // here with an error instead of a SIGBUS at the first write. A
        // kernel older than 5.14 knows no such advice (EINVAL): then only
        // the limits read before vouch for the pages.
        // SAFETY: advice about [p, p + size), which the mapping owns.
        let r = unsafe { libc::madvise(p, size, MADV_POPULATE_WRITE) };
        if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return None; // dropping `map` unmaps it
        }
        Some(map)
    }

    /// `size` bytes of ordinary memory, 2 MiB aligned, THP advised.
    fn heap(size: usize) -> Option<Mapping> {
        let layout = Layout::from_size_align(size, HUGE_2M).ok()?;
        // SAFETY: non-zero size (Arena::new checks).
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        // SAFETY: madvise only gives advice about [p, p + size), which
        // we own; p is 2 MiB (so page) aligned. Failure (THP disabled)
        // is harmless and ignored.
        unsafe {
            libc::madvise(p.as_ptr().cast(), size, libc::MADV_HUGEPAGE);
        }
        Some(Mapping {
            ptr: p,
            page: None,
            layout,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let p = self.ptr.as_ptr();
        match self.page {
            // SAFETY: p and the size are exactly what mmap returned and
            // was asked for; no array of it is left (they hold the Arc).
            Some(_) => unsafe {
                libc::munmap(p.cast(), self.layout.size());
            },
            // SAFETY: p came from std::alloc::alloc with this very layout.
            None => unsafe { std::alloc::dealloc(p, self.layout) },
        }
    }
}

/// One mapping for several tables: [`array`](Arena::array) carves them
/// off its front, each on its own cache lines.
pub(crate) struct Arena {
    map: Arc<Mapping>,
    used: usize,
}

impl Arena {
    /// The bytes an array of `len` `T`s takes in an arena (whole lines);
    /// `None` if it overflows.
    pub(crate) fn footprint<T>(len: usize) -> Option<usize> {
        Layout::array::<T>(len)
            .ok()?
            .size()
            .checked_next_multiple_of(LINE)
    }

    /// An arena of at least `bytes` (the sum of its arrays'
    /// [`footprint`](Self::footprint)s): hugetlb pages if `prefer` says
    /// so and some page size has room (see the module doc), else ordinary
    /// pages. `None` if `bytes` is 0 or even the fallback fails.
    pub(crate) fn new(bytes: usize, prefer: Backing) -> Option<Arena> {
        Arena::with(bytes, prefer, &HugeSys::host())
    }

    fn with(bytes: usize, prefer: Backing, sys: &HugeSys) -> Option<Arena> {
        if bytes == 0 {
            return None;
        }
        let huge = match prefer {
            Backing::HugeTlb => sys.page_sizes(),
            Backing::Transparent => Vec::new(),
        };
        let map = huge
            .iter()
            .filter_map(|p| Some((p.size, p.fits(bytes)?)))
            .find_map(|(page, size)| Mapping::hugetlb(size, page))
            .or_else(|| Mapping::heap(bytes.checked_next_multiple_of(HUGE_2M)?))?;
        Some(Arena {
            map: Arc::new(map),
            used: 0,
        })
    }

    /// The next `len` copies of `fill`; `None` if `len` or `T` is
    /// zero-sized, or the arena has no room left (the caller sized it too
    /// small: [`footprint`](Self::footprint)).
    pub(crate) fn array<T: Copy>(&mut self, len: usize, fill: T) -> Option<HugeArray<T>> {
        let layout = Layout::array::<T>(len).ok()?;
        if layout.size() == 0 || layout.align() > LINE {
            return None;
        }
        let end = self.used.checked_add(Arena::footprint::<T>(len)?)?;
        if end > self.map.layout.size() {
            return None;
        }
        // SAFETY: used < end <= the mapping's size: in bounds.
        let ptr = unsafe { self.map.ptr.as_ptr().add(self.used) }.cast::<T>();
        for i in 0..len {
            // SAFETY: [used, end) is this array's alone (`used` only
            // grows) and holds `len` Ts at `ptr`, which is aligned (the
            // mapping is page aligned, `used` a multiple of LINE >= the
            // alignment); writing initialises without reading the bytes.
            unsafe { ptr.add(i).write(fill) };
        }
        self.used = end;
        Some(HugeArray {
            ptr: NonNull::new(ptr)?,
            len,
            bytes: layout.size(),
            map: Arc::clone(&self.map),
        })
    }
}

/// A fixed-length array of `T` carved from an [`Arena`]; owns its part of
/// it like a `Box<[T]>`.
pub(crate) struct HugeArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
    /// Keeps the memory mapped.
    map: Arc<Mapping>,
}

// SAFETY: HugeArray owns its elements exclusively, like Box<[T]> (no other
// array of the arena overlaps them); sending or sharing it is exactly as
// safe as sending or sharing the `T`s.
unsafe impl<T: Copy + Send> Send for HugeArray<T> {}
// SAFETY: as above; `&HugeArray` only hands out `&[T]`.
unsafe impl<T: Copy + Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `fill` in an arena of their own.
    #[cfg(test)]
    pub(crate) fn new(len: usize, fill: T, prefer: Backing) -> Option<Self> {
        Arena::new(Arena::footprint::<T>(len)?, prefer)?.array(len, fill)
    }

    /// The hugetlb page size of its arena, if in hugetlb pages.
    pub(crate) fn page_size(&self) -> Option<usize> {
        self.map.page
    }

    /// Bytes of the elements (before the arena's rounding to whole pages).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl<T: Copy> Deref for HugeArray<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to `len` initialised Ts (written in
        // Arena::array) that live as long as the mapping, which self keeps;
        // the shared borrow of self forbids mutation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; the unique borrow of self makes this the only
        // reference to the elements (no other array overlaps them).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("len", &self.len)
            .field("page_size", &self.page_size())
            .finish()
    }
}

/// One hugetlb page size as this process may use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageSize {
    /// Bytes a page.
    pub size: usize,
    /// Pages in the pool that no mapping has taken or reserved.
    pub free: u64,
    /// Bytes of this size the process's hugetlb cgroups still allow (the
    /// least over the cgroup and its ancestors); `None`: no limit found.
    pub room: Option<u64>,
}

impl PageSize {
    /// The mapping size for `bytes` (whole pages), if the pool and the
    /// cgroup limits have room for it.
    fn fits(&self, bytes: usize) -> Option<usize> {
        let size = bytes.checked_next_multiple_of(self.size)?;
        let pages = (size / self.size) as u64;
        (pages <= self.free && self.room.is_none_or(|r| size as u64 <= r)).then_some(size)
    }
}

/// Where the kernel tells the hugetlb pools and this process's cgroups:
/// `/sys` and `/proc/self`, or a fake tree in tests.
pub(crate) struct HugeSys {
    sys: PathBuf,
    proc_self: PathBuf,
}

impl HugeSys {
    fn host() -> HugeSys {
        HugeSys {
            sys: "/sys".into(),
            proc_self: "/proc/self".into(),
        }
    }

    /// The page sizes the kernel offers, smallest first, with their free
    /// pages and cgroup room. Empty if it offers none (or says nothing).
    pub(crate) fn page_sizes(&self) -> Vec<PageSize> {
        let Ok(dir) = std::fs::read_dir(self.sys.join("kernel/mm/hugepages")) else {
            return Vec::new();
        };
        let limits = self.cgroup_dirs();
        let mut sizes: Vec<PageSize> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name();
                let kb = name
                    .to_str()?
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?;
                let size = kb.parse::<usize>().ok()?.checked_mul(1024)?;
                let num = |f: &str| read_u64(&e.path().join(f));
                let free =
                    num("free_hugepages")?.saturating_sub(num("resv_hugepages").unwrap_or(0));
                Some(PageSize {
                    size,
                    free,
                    room: room(&limits, size),
                })
            })
            .filter(|p| p.size.is_power_of_two())
            .collect();
        sizes.sort_by_key(|p| p.size);
        sizes
    }

    /// This process's hugetlb cgroup directories, its own first, up to
    /// the hierarchy's mount, and which files hold limits there.
    fn cgroup_dirs(&self) -> Vec<(PathBuf, Hierarchy)> {
        let (Ok(cgroups), Ok(mounts)) = (
            std::fs::read_to_string(self.proc_self.join("cgroup")),
            std::fs::read_to_string(self.proc_self.join("mountinfo")),
        ) else {
            return Vec::new();
        };
        let mut dirs = Vec::new();
        for m in mounts.lines() {
            // "id parent major:minor root mount-point opts... - fstype source super-opts"
            let Some((left, right)) = m.split_once(" - ") else {
                continue;
            };
            let (l, r): (Vec<&str>, Vec<&str>) =
                (left.split(' ').collect(), right.split(' ').collect());
            let (Some(root), Some(at), Some(fstype)) = (l.get(3), l.get(4), r.first()) else {
                continue;
            };
            let hierarchy = match *fstype {
                "cgroup2" => Hierarchy::V2,
                "cgroup"
                    if r.get(2)
                        .is_some_and(|o| o.split(',').any(|o| o == "hugetlb")) =>
                {
                    Hierarchy::V1
                }
                _ => continue,
            };
            // /proc/self/cgroup: "0::/path" (v2), "N:...,hugetlb,...:/path" (v1)
            let path = cgroups.lines().find_map(|c| {
                let mut f = c.splitn(3, ':');
                let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
                let ours = match hierarchy {
                    Hierarchy::V2 => id == "0" && controllers.is_empty(),
                    Hierarchy::V1 => controllers.split(',').any(|c| c == "hugetlb"),
                };
                ours.then_some(path)
            });
            // The cgroup as seen under this mount (whose root is `root`).
            let Some(rel) = path.and_then(|p| p.strip_prefix(root)) else {
                continue;
            };
            let top = PathBuf::from(unescape(at));
            let mut dir = top.join(rel.trim_start_matches('/'));
            loop {
                dirs.push((dir.clone(), hierarchy));
                if dir == top || !dir.pop() || !dir.starts_with(&top) {
                    break;
                }
            }
        }
        dirs
    }
}

/// Which cgroup interface a hierarchy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hierarchy {
    V1,
    V2,
}

/// The least room (limit − usage, reservations too) for pages of `size`
/// over `dirs`; `None` if no directory limits them.
fn room(dirs: &[(PathBuf, Hierarchy)], size: usize) -> Option<u64> {
    // The kernel's names: hugetlb.2MB.max, hugetlb.1GB.limit_in_bytes.
    let name = match size {
        s if s >= 1 << 30 => format!("{}GB", s >> 30),
        s if s >= 1 << 20 => format!("{}MB", s >> 20),
        s => format!("{}KB", s >> 10),
    };
    let mut least: Option<u64> = None;
    for (dir, h) in dirs {
        let pairs: [(&str, &str); 2] = match h {
            Hierarchy::V2 => [("max", "current"), ("rsvd.max", "rsvd.current")],
            Hierarchy::V1 => [
                ("limit_in_bytes", "usage_in_bytes"),
                ("rsvd.limit_in_bytes", "rsvd.usage_in_bytes"),
            ],
        };
        for (limit, usage) in pairs {
            // "max" (v2) and a missing file mean no limit
            let Some(limit) = read_u64(&dir.join(format!("hugetlb.{name}.{limit}"))) else {
                continue;
            };
            let used = read_u64(&dir.join(format!("hugetlb.{name}.{usage}"))).unwrap_or(0);
            let r = limit.saturating_sub(used);
            least = Some(least.map_or(r, |l| l.min(r)));
        }
    }
    least
}

/// A file holding one number (`None`: missing, "max", or not a number).
fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A mountinfo path with its octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hint the CPU to pull the cache line holding `r` into L1 (as VPP does for
/// the next packet's bucket). No-op off x86_64.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is only a hint: it never faults, reads nothing into
    // the program and writes nothing; `r` is a valid reference anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`prefetch`] of both lines `r` may lie across (an object smaller
/// than a line but not aligned to one: a 24-byte connection-table entry
/// straddles two lines one time in four).
#[inline(always)]
pub(crate) fn prefetch_span<T>(r: &T) {
    prefetch(r);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as `prefetch`'s; the address is `r`'s last byte, inside the
    // object `r` refers to (`wrapping_add`: no arithmetic past it).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let last = (r as *const T)
            .cast::<i8>()
            .wrapping_add(size_of::<T>() - 1);
        _mm_prefetch::<_MM_HINT_T0>(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct Line([u64; 8]);

    #[test]
    fn fallback_is_2m_aligned_filled_and_writable() {
        let mut a = HugeArray::new(40_000, Line([7; 8]), Backing::Transparent).unwrap();
        assert_eq!(a.page_size(), None);
        assert_eq!(a.as_ptr() as usize % HUGE_2M, 0);
        assert_eq!(a.len(), 40_000);
        assert!(a.iter().all(|l| *l == Line([7; 8])));
        a[39_999].0[7] = 9;
        assert_eq!(a[39_999].0[7], 9);
        assert_eq!(a.bytes(), 40_000 * 64);
    }

    #[test]
    fn an_arena_carves_line_aligned_arrays_that_do_not_overlap() {
        let bytes = Arena::footprint::<Line>(3).unwrap()
            + Arena::footprint::<u32>(5).unwrap()
            + Arena::footprint::<u64>(9).unwrap();
        assert_eq!(bytes, 3 * 64 + 64 + 128);
        let mut arena = Arena::new(bytes, Backing::Transparent).unwrap();
        let mut a = arena.array(3, Line([1; 8])).unwrap();
        let mut b = arena.array(5, 2u32).unwrap();
        let mut c = arena.array(9, 3u64).unwrap();
        for p in [
            a.as_ptr() as usize,
            b.as_ptr() as usize,
            c.as_ptr() as usize,
        ] {
            assert_eq!(p % 64, 0);
        }
        assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 3 * 64);
        a[2].0[7] = 7;
        b[4] = 8;
        c.fill(9);
        assert_eq!(
            (a[2].0, &b[..], a.bytes(), b.bytes()),
            ([1, 1, 1, 1, 1, 1, 1, 7], &[2, 2, 2, 2, 8][..], 192, 20)
        );
        // The arena is 2 MiB of ordinary memory: far more than asked, but
        // only what was asked is handed out.
        assert!(arena.array(1, 0u8).is_some());
        drop(arena); // the arrays keep the memory
        assert!(c.iter().all(|&v| v == 9));
        assert_eq!(c.page_size(), None);
    }

    #[test]
    fn an_arena_hands_out_no_more_than_its_size() {
        let mut arena = Arena::new(4 << 20, Backing::Transparent).unwrap();
        assert!(arena.array((4 << 20) / 64, Line([0; 8])).is_some());
        assert!(arena.array(1, 0u8).is_none());
    }

    /// With room for hugetlb pages (as root: `echo N >
    /// /proc/sys/vm/nr_hugepages`, and no cgroup limit in the way) the
    /// arena is in them; without, it falls back. Either way it works.
    #[test]
    fn prefers_hugetlb_where_there_is_room() {
        let bytes = Arena::footprint::<Line>(1000).unwrap();
        let room = HugeSys::host()
            .page_sizes()
            .iter()
            .any(|p| p.fits(bytes).is_some());
        let mut arena = Arena::new(bytes, Backing::HugeTlb).unwrap();
        let a = arena.array(1000, Line([1; 8])).unwrap();
        // With room, either: someone else may take the last free page
        // between the check and the mmap, and then the fallback is right.
        assert!(room || a.page_size().is_none());
        if let Some(page) = a.page_size() {
            assert_eq!(a.as_ptr() as usize % page, 0);
        }
        assert!(a.iter().all(|l| *l == Line([1; 8])));
    }

    #[test]
    fn a_page_size_fits_whole_pages_within_the_pool_and_the_limit() {
        let p = |free, room| PageSize {
            size: 2 << 20,
            free,
            room,
        };
        assert_eq!(p(3, None).fits(5 << 20), Some(6 << 20));
        assert_eq!(p(2, None).fits(5 << 20), None, "three pages, two free");
        assert_eq!(p(3, Some(6 << 20)).fits(5 << 20), Some(6 << 20));
        assert_eq!(
            p(3, Some(5 << 20)).fits(5 << 20),
            None,
            "the cgroup allows 2.5 pages"
        );
        assert_eq!(
            p(100, Some(0)).fits(1),
            None,
            "a size the pod did not request"
        );
    }

    /// A fake `/sys` and `/proc/self` under a fresh directory.
    struct Fake(PathBuf);

    impl Fake {
        fn new(name: &str) -> Fake {
            let root =
                std::env::temp_dir().join(format!("pollux-hugemem-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            Fake(root)
        }
        fn write(&self, path: &str, text: &str) -> &Self {
            let p = self.0.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            self
        }
        fn path(&self, p: &str) -> String {
            self.0.join(p).display().to_string()
        }
        fn sys(&self) -> HugeSys {
            HugeSys {
                sys: self.0.join("sys"),
                proc_self: self.0.join("proc"),
            }
        }
        /// The pools of a node with 2 MiB and 1 GiB pages.
        fn pools(&self) -> &Self {
            self.write(
                "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
                "10\n",
            )
            .write(
                "sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages",
                "2\n",
            )
            .write(
                "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages",
                "4\n",
            )
            .write(
                "sys/kernel/mm/hugepages/hugepages-1048576kB/resv_hugepages",
                "0\n",
            )
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A pod that requested 1 GiB pages under cgroup v2: the kubelet set
    /// its 2 MiB limit to 0 (at the pod's level, not the container's).
    #[test]
    fn page_sizes_read_the_pools_and_every_v2_cgroup_up_to_the_mount() {
        let f = Fake::new("v2");
        let top = f.path("cg");
        f.pools()
            .write("proc/cgroup", "0::/kubepods/pod1/ctr\n")
            .write(
                "proc/mountinfo",
                &format!("25 1 0:22 / /sys rw - sysfs sysfs rw\n30 25 0:26 / {top} rw,nosuid - cgroup2 cgroup2 rw\n"),
            )
            .write("cg/kubepods/pod1/ctr/hugetlb.2MB.max", "max\n")
            .write("cg/kubepods/pod1/ctr/hugetlb.1GB.max", "max\n")
            .write("cg/kubepods/pod1/hugetlb.2MB.max", "0\n")
            .write("cg/kubepods/pod1/hugetlb.1GB.max", "2147483648\n")
            .write("cg/kubepods/pod1/hugetlb.1GB.current", "1073741824\n")
            .write("cg/kubepods/pod1/hugetlb.1GB.rsvd.max", "max\n")
            .write("cg/other/hugetlb.1GB.max", "0\n");
        let sizes = f.sys().page_sizes();
        assert_eq!(
            sizes,
            [
                PageSize {
                    size: 2 << 20,
                    free: 8,
                    room: Some(0)
                },
                PageSize {
                    size: 1 << 30,
                    free: 4,
                    room: Some(1 << 30)
                },
            ]
        );
        let fits: Vec<_> = sizes.iter().filter_map(|p| p.fits(100 << 20)).collect();
        assert_eq!(
            fits,
            [1 << 30],
            "100 MiB: one 1 GiB page, the only size with room"
        );
        assert!(
            sizes.iter().all(|p| p.fits((1 << 30) + 1).is_none()),
            "two 1 GiB pages: over the limit"
        );
    }

    /// cgroup v1's own hugetlb hierarchy, mounted with a root of its own
    /// (the container sees its cgroup at the mount).
    #[test]
    fn page_sizes_read_v1_limits_under_a_mount_of_a_subtree() {
        let f = Fake::new("v1");
        let top = f.path("hugetlb mnt").replace(' ', "\\040");
        f.pools()
            .write(
                "proc/cgroup",
                "7:hugetlb:/docker/abc\n6:memory:/docker/abc\n0::/\n",
            )
            .write(
                "proc/mountinfo",
                &format!(
                    "31 25 0:27 /docker {top} rw - cgroup cgroup rw,hugetlb\n\
                     32 25 0:28 / /x rw - cgroup cgroup rw,memory\n"
                ),
            )
            .write(
                "hugetlb mnt/abc/hugetlb.2MB.limit_in_bytes",
                "9223372036854771712\n",
            )
            .write("hugetlb mnt/abc/hugetlb.2MB.usage_in_bytes", "4194304\n")
            .write("hugetlb mnt/hugetlb.2MB.limit_in_bytes", "8388608\n");
        let sizes = f.sys().page_sizes();
        assert_eq!(
            sizes[0],
            PageSize {
                size: 2 << 20,
                free: 8,
                room: Some(8 << 20)
            }
        );
        assert_eq!(sizes[1].room, None, "no 1 GiB limit anywhere");
        assert_eq!(sizes[0].fits(8 << 20), Some(8 << 20));
        assert_eq!(sizes[0].fits((8 << 20) + 1), None);
    }

    /// Without the pools (no hugetlb in the kernel) or the cgroup files
    /// (`ip netns exec` hides the mounts), what is known is used.
    #[test]
    fn page_sizes_without_pools_or_cgroups() {
        let f = Fake::new("none");
        assert!(f.sys().page_sizes().is_empty());
        f.pools();
        let sizes = f.sys().page_sizes();
        assert_eq!(
            sizes.iter().map(|p| (p.size, p.room)).collect::<Vec<_>>(),
            [(2 << 20, None), (1 << 30, None)]
        );
        // And an arena that wants hugepages but finds no size with room
        // gets ordinary pages.
        f.write(
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "0\n",
        )
        .write(
            "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages",
            "0\n",
        );
        let mut arena = Arena::with(1 << 20, Backing::HugeTlb, &f.sys()).unwrap();
        assert_eq!(arena.array(1, 0u8).unwrap().page_size(), None);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape("/plain\\"), "/plain\\");
    }

    #[test]
    fn zero_sized_requests_are_refused() {
        assert!(HugeArray::new(0, Line([0; 8]), Backing::Transparent).is_none());
        assert!(HugeArray::new(10, (), Backing::Transparent).is_none());
        assert!(HugeArray::new(usize::MAX / 8, Line([0; 8]), Backing::Transparent).is_none());
        assert!(Arena::new(0, Backing::HugeTlb).is_none());
    }
}
