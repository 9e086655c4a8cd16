//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! ```text
//! +--------+--------+------+------+--------+-----------+-----------+-----------+-----------+
//! | htype 2| ptype 2| hlen | plen | oper 2 | sha 6     | spa 4     | tha 6     | tpa 4     |
//! | 1      | 0x0800 | 6    | 4    | 1 req  |           |           |           |           |
//! |        |        |      |      | 2 rep  |           |           |           |           |
//! +--------+--------+------+------+--------+-----------+-----------+-----------+-----------+
//! ```

use std::net::Ipv4Addr;

use super::{be16, put16, Error, Mac, Result};

pub const LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view of an ARP packet (Ethernet/IPv4 only; anything else is `Malformed`).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < LEN {
            return Err(Error::Truncated);
        }
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(Error::Malformed);
        }
        Ok(Packet { buffer })
    }

    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    pub fn sender_mac(&self) -> Mac {
        Mac::from_slice(&self.buffer.as_ref()[8..14])
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[14..18])
    }

    pub fn target_mac(&self) -> Mac {
        Mac::from_slice(&self.buffer.as_ref()[18..24])
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[24..28])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Turns a request into its reply in place: `mac` answers for the
    /// requested address.
    pub fn make_reply(&mut self, mac: Mac) {
        let b = self.buffer.as_mut();
        let mut sender = [0u8; 10];
        sender.copy_from_slice(&b[8..18]);
        let target_ip: [u8; 4] = [b[24], b[25], b[26], b[27]];
        put16(b, 6, OP_REPLY);
        b[8..14].copy_from_slice(&mac.0);
        b[14..18].copy_from_slice(&target_ip);
        b[18..28].copy_from_slice(&sender);
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Writes an ARP packet into `buf` (at least `LEN` bytes).
pub fn emit(buf: &mut [u8], op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) {
    put16(buf, 0, 1);
    put16(buf, 2, 0x0800);
    buf[4] = 6;
    buf[5] = 4;
    put16(buf, 6, op);
    buf[8..14].copy_from_slice(&sha.0);
    buf[14..18].copy_from_slice(&spa.octets());
    buf[18..24].copy_from_slice(&tha.0);
    buf[24..28].copy_from_slice(&tpa.octets());
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        6, 4, // hlen, plen
        0x00, 0x01, // request
        0x02, 0, 0, 0, 0, 0x01, // sha
        10, 0, 0, 1, // spa
        0, 0, 0, 0, 0, 0, // tha
        10, 0, 0, 2, // tpa
    ];

    #[test]
    fn parse_request_and_reply_in_place() {
        let mut b = REQUEST;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_ip(), Ipv4Addr::new(10, 0, 0, 2));
        p.make_reply(Mac([2, 0, 0, 0, 0, 2]));
        let mut want = [0u8; 28];
        emit(
            &mut want,
            OP_REPLY,
            Mac([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 2),
            Mac([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 0, 0, 1),
        );
        assert_eq!(b, want);
    }

    #[test]
    fn rejects_non_ipv4_and_short() {
        let mut b = REQUEST;
        b[2] = 0x86;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
    }
}
