//! ICMP for IPv4 (RFC 792): the echo messages the data plane answers.
//!
//! ```text
//! +--------+--------+-----------------+
//! | type 1 | code 1 | checksum 2      |
//! | identifier 2    | sequence 2      |  (echo)
//! | data ...                          |
//! +-----------------------------------+
//! ```

use super::{be16, checksum, put16, Error, Result};

pub const HEADER_LEN: usize = 8;
pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;

#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Turns an echo request into its reply in place (incremental checksum).
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = be16(b, 0);
        b[0] = ECHO_REPLY;
        let c = checksum::update16(be16(b, 2), old, be16(b, 0));
        put16(b, 2, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_reply_in_place_verifies() {
        let mut b = [
            8, 0, 0, 0, // echo request, code 0, checksum
            0x12, 0x34, 0x00, 0x01, // id, seq
            b'p', b'o', b'l', b'l', b'u', b'x',
        ];
        let c = checksum::checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        p.make_echo_reply();
        assert_eq!(p.msg_type(), ECHO_REPLY);
        assert!(p.verify_checksum());
    }
}
