//! TCP MD5 signatures (RFC 2385) for BGP sessions: the password file and
//! the `TCP_MD5SIG` socket option.
//!
//! Linux signs and checks every segment of a connection whose socket holds
//! a key for the peer's address (`setsockopt(IPPROTO_TCP, TCP_MD5SIG,
//! struct tcp_md5sig)`): on the connecting socket before `connect`, on the
//! listening socket (one key per peer) before the peer's SYN arrives.
//! Segments with a missing or wrong signature are dropped silently (the
//! kernel only logs `MD5 Hash mismatch` / `MD5 Hash failed`), so a password
//! mismatch looks like a peer that never answers; the neighbor task says so
//! in its log.
//!
//! No safe crate API sets this option: `nix` (0.31), `socket2` (0.6) and
//! `rustix` (1.1) have no `TCP_MD5SIG`, and `libc` has the constant but not
//! the struct. This module builds the option's exact bytes safely
//! ([`sockopt_value`]); handing them to `setsockopt(2)` takes one `unsafe`
//! call, which ctrl forbids. Until that call lives somewhere allowed,
//! [`set_key`] reports [`std::io::ErrorKind::Unsupported`] and a neighbor
//! with a `passwordFile` stays down with a message saying why (never a
//! session without the signature the operator asked for).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// `TCP_MD5SIG_MAXKEYLEN` (linux/tcp.h).
pub const MAX_KEY_LEN: usize = 80;

/// `sizeof(struct tcp_md5sig)` on Linux: a 128-octet `sockaddr_storage`,
/// flags, prefix length, key length, ifindex, 80 key octets.
pub const SOCKOPT_LEN: usize = 216;

/// A validated RFC 2385 key (1–80 octets).
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Key({} octets)", self.0.len())
    }
}

/// Why a password file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the password file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Empty after removing the trailing newline.
    #[error("the password file {0} is empty")]
    Empty(String),
    /// Longer than the kernel accepts.
    #[error("the password in {path} is {len} octets; TCP MD5 keys are at most {MAX_KEY_LEN}")]
    TooLong { path: String, len: usize },
}

impl Key {
    /// A key from its octets.
    pub fn new(octets: &[u8]) -> Option<Key> {
        (!octets.is_empty() && octets.len() <= MAX_KEY_LEN).then(|| Key(octets.to_vec()))
    }

    /// The key's octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads a password file: its content less one trailing newline (as a
    /// Kubernetes Secret mounted from `kubectl create secret
    /// --from-file` or an `echo` leaves it).
    pub fn from_file(path: &Path) -> Result<Key, KeyError> {
        let shown = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut s = raw.as_slice();
        if let Some(r) = s.strip_suffix(b"\n") {
            s = r.strip_suffix(b"\r").unwrap_or(r);
        }
        if s.is_empty() {
            return Err(KeyError::Empty(shown));
        }
        Key::new(s).ok_or(KeyError::TooLong {
            path: shown,
            len: s.len(),
        })
    }
}

/// The bytes of `struct tcp_md5sig` (linux/tcp.h) installing `key` for
/// connections with `peer` (`tcpm_flags` 0: the whole address, any
/// interface; `tcpm_addr` a `sockaddr_in`/`sockaddr_in6` with port 0).
///
/// ```text
/// struct tcp_md5sig {
///     struct __kernel_sockaddr_storage tcpm_addr;  /* 128 octets */
///     __u8  tcpm_flags;
///     __u8  tcpm_prefixlen;
///     __u16 tcpm_keylen;
///     int   tcpm_ifindex;
///     __u8  tcpm_key[TCP_MD5SIG_MAXKEYLEN];       /* 80 */
/// };
/// ```
pub fn sockopt_value(peer: IpAddr, key: &Key) -> [u8; SOCKOPT_LEN] {
    let mut v = [0u8; SOCKOPT_LEN];
    match peer {
        IpAddr::V4(a) => {
            // sockaddr_in: family (host order), port (network order), address.
            v[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            v[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            // sockaddr_in6: family, port, flowinfo, address, scope id.
            v[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            v[8..24].copy_from_slice(&a.octets());
        }
    }
    // tcpm_flags = 0, tcpm_prefixlen = 0 at 128 and 129.
    v[130..132].copy_from_slice(&(key.0.len() as u16).to_ne_bytes());
    // tcpm_ifindex = 0 at 132..136.
    v[136..136 + key.0.len()].copy_from_slice(&key.0);
    v
}

// `TCP_MD5SIG` through nix's generic setsockopt: the option value is the
// fully initialised 216-byte `struct tcp_md5sig` built by `sockopt_value`
// (no padding, no pointers), which is what makes nix's byte copy sound.
use nix::{setsockopt_impl, sockopt_impl};
sockopt_impl!(
    TcpMd5Sig,
    SetOnly,
    libc::IPPROTO_TCP,
    libc::TCP_MD5SIG,
    [u8; SOCKOPT_LEN]
);

/// Installs `key` for `peer` on `socket` (a connecting or listening TCP
/// socket): RFC 2385 signatures on every segment to and from `peer`.
pub fn set_key(socket: &socket2::Socket, peer: IpAddr, key: &Key) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, TcpMd5Sig, &sockopt_value(peer, key))
        .map_err(io::Error::from)
}

/// The address a key is installed for, as the listener sees the peer.
pub fn peer_of(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn password_file_loses_one_trailing_newline_only() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"s3cret \n").unwrap();
        assert_eq!(Key::from_file(f.path()).unwrap().as_bytes(), b"s3cret ");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"abc\r\n").unwrap();
        assert_eq!(Key::from_file(f.path()).unwrap().as_bytes(), b"abc");
    }

    #[test]
    fn bad_password_files_are_refused_with_the_reason() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"\n").unwrap();
        assert!(matches!(Key::from_file(f.path()), Err(KeyError::Empty(_))));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[b'x'; 81]).unwrap();
        let e = Key::from_file(f.path()).unwrap_err();
        assert!(e.to_string().contains("81 octets"), "{e}");
        let e = Key::from_file(Path::new("/nonexistent/pw")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = Key::new(b"hunter2").unwrap();
        assert_eq!(format!("{k:?}"), "Key(7 octets)");
    }

    #[test]
    fn sockopt_bytes_follow_struct_tcp_md5sig() {
        let k = Key::new(b"pw").unwrap();
        let v = sockopt_value("10.0.0.1".parse().unwrap(), &k);
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), libc::AF_INET as u16);
        assert_eq!(&v[2..4], &[0, 0], "port 0");
        assert_eq!(&v[4..8], &[10, 0, 0, 1]);
        assert_eq!(u16::from_ne_bytes([v[130], v[131]]), 2);
        assert_eq!(&v[136..138], b"pw");
        assert!(v[138..].iter().all(|b| *b == 0));
        let v = sockopt_value("fd00::1".parse().unwrap(), &k);
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), libc::AF_INET6 as u16);
        assert_eq!(v[8], 0xfd);
        assert_eq!(v[23], 1);
        // The layout the kernel expects: sockaddr_storage is 128 octets.
        assert_eq!(std::mem::size_of::<libc::sockaddr_storage>(), 128);
        assert_eq!(SOCKOPT_LEN, 128 + 1 + 1 + 2 + 4 + MAX_KEY_LEN);
    }

    #[test]
    fn the_kernel_takes_the_key() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_key(
            &s,
            "10.0.0.1".parse().unwrap(),
            &Key::new(b"secret").unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn v4_mapped_peers_are_matched_as_v4() {
        let a: SocketAddr = "[::ffff:10.0.0.1]:179".parse().unwrap();
        assert_eq!(peer_of(a), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
