//! Recursive Length Prefix encoding (Ethereum yellow paper, appendix B):
//! only what a transaction needs — byte strings, unsigned integers as
//! big-endian bytes without leading zeros, and lists of those.
//!
//! Written here rather than taken from a crate: the encoder is these few
//! lines, and the crates that carry it with transaction types
//! (`alloy-consensus`) bring about 25 crates into the edge build, a second
//! generation of `sha3` and `digest` among them (measured for issue 16).
//! The tests check it against the examples of the RLP specification, the
//! transactions against EIP-155's published vector and a real node.

/// A list being encoded: items appended in order, then
/// [`finish`](List::finish)ed.
#[derive(Default)]
pub struct List {
    payload: Vec<u8>,
}

impl List {
    /// An empty list.
    pub fn new() -> List {
        List::default()
    }

    /// Appends a byte string.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut List {
        encode_bytes(&mut self.payload, bytes);
        self
    }

    /// Appends an unsigned integer given as big-endian bytes (leading
    /// zeros are dropped: zero is the empty string).
    pub fn uint_be(&mut self, be: &[u8]) -> &mut List {
        let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        self.bytes(&be[start..])
    }

    /// Appends an unsigned integer.
    pub fn uint(&mut self, n: u128) -> &mut List {
        self.uint_be(&n.to_be_bytes())
    }

    /// Appends an encoded list.
    pub fn list(&mut self, list: &List) -> &mut List {
        self.payload.extend_from_slice(&list.finish());
        self
    }

    /// The list's encoding.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 9);
        header(&mut out, 0xc0, self.payload.len());
        out.extend_from_slice(&self.payload);
        out
    }
}

fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes {
        [single] if *single < 0x80 => out.push(*single),
        _ => {
            header(out, 0x80, bytes.len());
            out.extend_from_slice(bytes);
        }
    }
}

/// The prefix of a string (`offset` 0x80) or a list (0xc0) of `len` bytes.
fn header(out: &mut Vec<u8>, offset: u8, len: usize) {
    if len < 56 {
        out.push(offset + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let start = be.iter().position(|&b| b != 0).unwrap_or(7);
        out.push(offset + 55 + (8 - start) as u8);
        out.extend_from_slice(&be[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(f: impl FnOnce(&mut List)) -> Vec<u8> {
        let mut l = List::new();
        f(&mut l);
        // The item alone, without the list's header.
        l.payload
    }

    #[test]
    fn the_specification_examples() {
        assert_eq!(
            one(|l| {
                l.bytes(b"dog");
            }),
            b"\x83dog"
        );
        assert_eq!(
            one(|l| {
                l.bytes(b"");
            }),
            [0x80]
        );
        assert_eq!(
            one(|l| {
                l.uint(0);
            }),
            [0x80]
        );
        assert_eq!(
            one(|l| {
                l.bytes(&[0]);
            }),
            [0x00]
        );
        assert_eq!(
            one(|l| {
                l.uint(15);
            }),
            [0x0f]
        );
        assert_eq!(
            one(|l| {
                l.uint(1024);
            }),
            [0x82, 0x04, 0x00]
        );
        let mut cat_dog = List::new();
        cat_dog.bytes(b"cat").bytes(b"dog");
        assert_eq!(cat_dog.finish(), b"\xc8\x83cat\x83dog");
        assert_eq!(List::new().finish(), [0xc0]);
        // [ [], [[]], [ [], [[]] ] ]
        let empty = List::new();
        let mut one_empty = List::new();
        one_empty.list(&empty);
        let mut both = List::new();
        both.list(&empty).list(&one_empty);
        let mut set = List::new();
        set.list(&empty).list(&one_empty).list(&both);
        assert_eq!(
            set.finish(),
            [0xc7, 0xc0, 0xc1, 0xc0, 0xc3, 0xc0, 0xc1, 0xc0]
        );
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        let mut expected = vec![0xb8, 0x38];
        expected.extend_from_slice(lorem);
        assert_eq!(
            one(|l| {
                l.bytes(lorem);
            }),
            expected
        );
        assert_eq!(
            one(|l| {
                l.uint_be(&[0, 0, 1, 0]);
            }),
            [0x82, 0x01, 0x00]
        );
    }
}
