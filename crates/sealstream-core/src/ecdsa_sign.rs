//! secp256k1 ECDSA signing whose RFC 6979 nonce is computed with the CPU's
//! SHA-256 instructions.
//!
//! libsecp256k1 derives each signature's nonce with its own portable
//! SHA-256: about a sixth of a signature's time on this project's machines.
//! The library takes the nonce function as a callback, so this module gives
//! it one that computes the same nonce (RFC 6979 with HMAC-SHA256, the
//! private key and the message reduced modulo the group order as its seed,
//! exactly as libsecp256k1's `nonce_function_rfc6979` does) with `sha2`,
//! which uses the SHA extensions where the CPU has them. Signatures are
//! byte-identical to libsecp256k1's default; the tests compare both.
//!
//! This is the crate's only `unsafe` code: the foreign call and the
//! callback's raw pointers, which is the library's interface.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uchar, c_uint, c_void};

use hmac::{Hmac, Mac};
use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::ffi::{self, CPtr};
use secp256k1::{Message, SecretKey, SECP256K1};
use sha2::Sha256;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

/// The order of the secp256k1 group, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// Sign a 32-byte digest: RFC 6979 deterministic, low-s, recoverable; the
/// same signature as `SECP256K1.sign_ecdsa_recoverable`.
pub(crate) fn sign_recoverable(key: &SecretKey, digest: [u8; 32]) -> RecoverableSignature {
    let message = Message::from_digest(digest);
    let mut signature = ffi::recovery::RecoverableSignature::new();
    // SAFETY: the context is the library's global signing context, alive
    // for the program; `signature`, the message and the key are valid for
    // the call's duration and have the sizes the library expects (65-byte
    // signature, 32-byte message and key); the nonce function only reads
    // its two 32-byte inputs and writes its 32-byte output, and the
    // library passes no extra data to it (`noncedata` is null).
    let ok = unsafe {
        ffi::recovery::secp256k1_ecdsa_sign_recoverable(
            SECP256K1.ctx().as_ptr(),
            &mut signature,
            message.as_c_ptr(),
            key.as_c_ptr(),
            Some(rfc6979_nonce),
            std::ptr::null(),
        )
    };
    // A valid key and any digest always sign; the library reports failure
    // only for an invalid key or a nonce function that declines, and this
    // one declines only when given extra data, which it is not.
    assert_eq!(ok, 1, "libsecp256k1 refused a valid key");
    RecoverableSignature::from(signature)
}

/// The nonce callback: libsecp256k1's `nonce_function_rfc6979` without
/// extra data or algorithm tag (declines, returning 0, if given either).
///
/// SAFETY (for the caller, libsecp256k1): `nonce32` points to 32 writable
/// bytes, `msg32` and `key32` to 32 readable bytes each.
unsafe extern "C" fn rfc6979_nonce(
    nonce32: *mut c_uchar,
    msg32: *const c_uchar,
    key32: *const c_uchar,
    algo16: *const c_uchar,
    data: *mut c_void,
    attempt: c_uint,
) -> c_int {
    if !algo16.is_null() || !data.is_null() {
        return 0;
    }
    // SAFETY: as the function's contract says, both inputs are 32 bytes.
    let (message, key) = unsafe { (&*msg32.cast::<[u8; 32]>(), &*key32.cast::<[u8; 32]>()) };
    let mut nonce = nonce(key, message, attempt);
    // SAFETY: `nonce32` has room for 32 bytes and does not overlap `nonce`.
    unsafe { std::ptr::copy_nonoverlapping(nonce.as_ptr(), nonce32, 32) };
    nonce.zeroize();
    1
}

/// RFC 6979's nonce for `key` and `message` (reduced modulo the group
/// order), after `attempt` earlier candidates were refused.
fn nonce(key: &[u8; 32], message: &[u8; 32], attempt: u32) -> [u8; 32] {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(key);
    seed[32..].copy_from_slice(&reduce(message));
    let mut drbg = Drbg::new(&seed);
    seed.zeroize();
    let mut out = drbg.generate();
    for _ in 0..attempt {
        out.zeroize();
        out = drbg.generate();
    }
    out
}

/// `message` modulo the group order (a 256-bit value is below twice the
/// order, so one subtraction suffices).
fn reduce(message: &[u8; 32]) -> [u8; 32] {
    if message < &ORDER {
        return *message;
    }
    let mut out = [0u8; 32];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let d = u16::from(message[i])
            .wrapping_sub(u16::from(ORDER[i]))
            .wrapping_sub(borrow);
        out[i] = d as u8;
        borrow = (d >> 8) & 1;
    }
    out
}

/// RFC 6979's HMAC-SHA256 generator (section 3.2), as libsecp256k1's
/// `rfc6979_hmac_sha256` implements it.
struct Drbg {
    k: [u8; 32],
    v: [u8; 32],
    retry: bool,
}

impl Drbg {
    /// Steps b–g of RFC 6979 3.2 with `seed` as `int2octets(x) ‖ bits2octets(h1)`.
    fn new(seed: &[u8]) -> Self {
        let mut drbg = Drbg {
            k: [0; 32],
            v: [1; 32],
            retry: false,
        };
        for separator in [0u8, 1] {
            drbg.k = hmac(&drbg.k, &[&drbg.v, &[separator], seed]);
            drbg.v = hmac(&drbg.k, &[&drbg.v]);
        }
        drbg
    }

    /// The next 32 bytes (step h; after the first, K and V are renewed first).
    fn generate(&mut self) -> [u8; 32] {
        if self.retry {
            self.k = hmac(&self.k, &[&self.v, &[0]]);
            self.v = hmac(&self.k, &[&self.v]);
        }
        self.v = hmac(&self.k, &[&self.v]);
        self.retry = true;
        self.v
    }
}

impl Drop for Drbg {
    fn drop(&mut self) {
        self.k.zeroize();
        self.v.zeroize();
    }
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// libsecp256k1's own nonce function, for comparison.
    fn library_nonce(key: &[u8; 32], message: &[u8; 32], attempt: u32) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: reading an immutable static of the library.
        let f =
            unsafe { ffi::secp256k1_nonce_function_rfc6979 }.expect("the library's nonce function");
        // SAFETY: 32-byte buffers, no extra data or algorithm tag.
        let ok = unsafe {
            f(
                out.as_mut_ptr(),
                message.as_ptr(),
                key.as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut(),
                attempt,
            )
        };
        assert_eq!(ok, 1);
        out
    }

    #[test]
    fn the_nonce_is_the_librarys_including_retries_and_large_messages() {
        let key = [0x11u8; 32];
        for message in [[0u8; 32], [0xffu8; 32], ORDER, [0x42u8; 32]] {
            for attempt in 0..4 {
                assert_eq!(
                    nonce(&key, &message, attempt),
                    library_nonce(&key, &message, attempt),
                    "message {message:02x?}, attempt {attempt}"
                );
            }
        }
    }

    #[test]
    fn reduction_subtracts_the_order_once() {
        assert_eq!(reduce(&ORDER), [0u8; 32]);
        let mut max = [0xffu8; 32];
        let expected = {
            // 2^256 - 1 - n = 0x14551231950b75fc4402da1732fc9bebe
            let mut e = [0u8; 32];
            e[15] = 0x01;
            e[16..].copy_from_slice(&[
                0x45, 0x51, 0x23, 0x19, 0x50, 0xb7, 0x5f, 0xc4, 0x40, 0x2d, 0xa1, 0x73, 0x2f, 0xc9,
                0xbe, 0xbe,
            ]);
            e
        };
        assert_eq!(reduce(&max), expected);
        max[0] = 0x7f;
        assert_eq!(reduce(&max), max, "below the order: unchanged");
    }

    #[test]
    fn a_declined_call_with_extra_data_returns_zero() {
        let mut out = [0u8; 32];
        let extra = [7u8; 32];
        // SAFETY: 32-byte buffers; `data` points to 32 bytes.
        let ok = unsafe {
            rfc6979_nonce(
                out.as_mut_ptr(),
                [1u8; 32].as_ptr(),
                [2u8; 32].as_ptr(),
                std::ptr::null(),
                extra.as_ptr() as *mut c_void,
                0,
            )
        };
        assert_eq!(ok, 0);
    }

    proptest! {
        #[test]
        fn signatures_are_the_librarys(key in any::<[u8; 32]>(), digest in any::<[u8; 32]>()) {
            let Ok(key) = SecretKey::from_byte_array(key) else { return Ok(()); };
            let ours = sign_recoverable(&key, digest);
            let library = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(digest), &key);
            prop_assert_eq!(ours.serialize_compact(), library.serialize_compact());
        }

        #[test]
        fn nonces_are_the_librarys(key in any::<[u8; 32]>(), message in any::<[u8; 32]>(), attempt in 0u32..3) {
            prop_assert_eq!(nonce(&key, &message, attempt), library_nonce(&key, &message, attempt));
        }
    }
}
