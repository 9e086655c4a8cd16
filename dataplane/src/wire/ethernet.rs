//! Ethernet II with an optional 802.1Q tag.
//!
//! ```text
//! +--------+--------+-----------+------------------+-----------+
//! | dst 6  | src 6  | [0x8100 2 | TCI 2 (PCP,DEI,  | type 2    | payload
//! |        |        |  (TPID)   |  VID 12 bits)]   |           |
//! +--------+--------+-----------+------------------+-----------+
//! ```

use super::{be16, put16, Error, Mac, Result};

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

/// A view of an Ethernet frame, with its 802.1Q tag if it has one.
#[derive(Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Frame { buffer };
        let len = f.buffer.as_ref().len();
        if len < HEADER_LEN || (f.is_tagged() && len < HEADER_LEN + VLAN_TAG_LEN) {
            return Err(Error::Truncated);
        }
        Ok(f)
    }

    pub fn dst(&self) -> Mac {
        Mac::from_slice(&self.buffer.as_ref()[0..6])
    }

    pub fn src(&self) -> Mac {
        Mac::from_slice(&self.buffer.as_ref()[6..12])
    }

    pub fn is_tagged(&self) -> bool {
        be16(self.buffer.as_ref(), 12) == ethertype::VLAN
    }

    /// The VLAN id of the 802.1Q tag, if any.
    pub fn vlan(&self) -> Option<u16> {
        self.is_tagged()
            .then(|| be16(self.buffer.as_ref(), 14) & 0x0fff)
    }

    /// Length of the Ethernet header, tag included.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The EtherType of the payload (after the tag, if any).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), self.header_len() - 2)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst(&mut self, m: Mac) {
        self.buffer.as_mut()[0..6].copy_from_slice(&m.0);
    }

    pub fn set_src(&mut self, m: Mac) {
        self.buffer.as_mut()[6..12].copy_from_slice(&m.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// Writes an untagged or tagged header at the start of `buf`, which must be
/// at least `HEADER_LEN (+ VLAN_TAG_LEN)` long. Returns the header length.
pub fn emit(buf: &mut [u8], dst: Mac, src: Mac, vlan: Option<u16>, ethertype: u16) -> usize {
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    match vlan {
        Some(vid) => {
            put16(buf, 12, ethertype::VLAN);
            put16(buf, 14, vid & 0x0fff);
            put16(buf, 16, ethertype);
            HEADER_LEN + VLAN_TAG_LEN
        }
        None => {
            put16(buf, 12, ethertype);
            HEADER_LEN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged() {
        let b = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
            0x02, 0, 0, 0, 0, 1, // src
            0x08, 0x06, // type: ARP
            0xaa,
        ];
        let f = Frame::new_checked(&b[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src(), Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.vlan(), None);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload(), &[0xaa]);
    }

    #[test]
    fn tagged() {
        let b = [
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, //
            0x81, 0x00, // TPID
            0x20, 0x64, // PCP 1, VID 100
            0x86, 0xdd, // IPv6
        ];
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.vlan(), Some(100));
        assert_eq!(f.ethertype(), ethertype::IPV6);
        assert_eq!(f.header_len(), 18);
        let mut out = [0u8; 18];
        assert_eq!(emit(&mut out, f.dst(), f.src(), Some(100), 0x86dd), 18);
        assert_eq!(&out[14..16], &[0x00, 0x64]); // PCP is not carried over
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&[0u8; 13][..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = [0u8; 16];
        b[12] = 0x81;
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    }
}
