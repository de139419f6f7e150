//! The receipt log: every receipt the market issues is appended to an
//! append-only Merkle tree (RFC 6962 shape) whose nodes also carry a
//! Pedersen commitment to the amounts below them, so that a period's total
//! can be proven without showing any single amount or party.
//!
//! * A **leaf** is one receipt: the epoch it was appended in (`epoch` =
//!   Unix seconds ÷ the log's `epochSeconds`), a digest of the signed
//!   receipt ([`receipt_digest`]: unguessable, it covers the signature) and
//!   `C = amount·G(currency) + r·H` on ristretto255, where `G(currency)` is
//!   hashed to the curve from the currency's name ([`currency_generator`]),
//!   `H` from a fixed label, and `r` is a random blinding the market keeps.
//!   `leaf = SHA-256(0x00 ‖ epoch (8 bytes, big endian) ‖ digest ‖ C)`.
//! * A **node** is `SHA-256(0x01 ‖ L.hash ‖ L.C ‖ R.hash ‖ R.C)` with
//!   `C = L.C + R.C`: both children's commitments are hashed, so no node can
//!   claim a sum its children do not add up to (the fix of Hu, Zhang and
//!   Guo to Maxwell's summation tree).
//! * The market signs **tree heads** ([`LogHead`],
//!   `sealstream.receipt-log-head.v1`) with its receipt key: the log's name
//!   (`market`, or `seller:<did>` for one seller's sales), size, root hash
//!   and root commitment, epoch length and the time of signing, before which
//!   every receipt was appended.
//! * A **total proof** ([`TotalProof`], `sealstream.receipt-log-total.v1`)
//!   for a period `[from, to)` aligned to epochs names the leaf range
//!   `[start, end)` of that period and gives: the four leaves around the
//!   range's edges opened (epoch, digest and commitment: never an amount),
//!   every other part of the tree as the largest subtrees inside or outside
//!   the range (hash and commitment), the totals per currency and the sum
//!   `R` of the range's blindings. The verifier rebuilds the signed root,
//!   checks from the opened epochs that the range is exactly the period, adds
//!   the commitments inside and checks `ΣC = Σ total·G(currency) + R·H`. A
//!   total off by one unit does not verify (binding); the commitments show
//!   nothing of a single amount (hiding); no buyer, seller or order appears.
//! * A **consistency proof** ([`LogConsistency`]) between two signed heads
//!   shows the newer tree extends the older one (RFC 9162 §2.1.4).
//! * A **receipt inclusion** ([`ReceiptInclusion`]) gives a receipt's holder
//!   its leaf, its blinding and its audit path, so the holder checks that
//!   the market committed exactly the receipt's amount: what keeps the sums
//!   honest.
//!
//! Amounts are below 2^128 base units; totals are written in decimal and
//! must have at most 60 digits, so no sum can wrap around the group order.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use sealstream_core::json::{canonical, Map, Value};
use sealstream_core::keys::{ReceiptPublicKey, ReceiptSigningKey};
use sealstream_core::merkle::{self, TreeNode};
use sealstream_core::ValidationError;
use sha2::{Digest, Sha256, Sha512};

use super::{
    document_json, lower_hex, parse_document, read_document, signed_bytes_of, utc_time,
    verify_signature, Fields, ReceiptError, SignedReceipt,
};

/// `schemaVersion` of signed tree heads.
pub const LOG_HEAD_SCHEMA_VERSION: &str = "sealstream.receipt-log-head.v1";
/// `schemaVersion` of period total proofs.
pub const TOTAL_SCHEMA_VERSION: &str = "sealstream.receipt-log-total.v1";
/// `schemaVersion` of consistency proofs between two heads.
pub const CONSISTENCY_SCHEMA_VERSION: &str = "sealstream.receipt-log-consistency.v1";
/// `schemaVersion` of a receipt's inclusion in a log.
pub const INCLUSION_SCHEMA_VERSION: &str = "sealstream.receipt-log-inclusion.v1";
/// The log of every receipt the market issues.
pub const MARKET_LOG: &str = "market";
/// Most decimal digits of a total (10^60 < 2^200: no sum wraps).
pub const MAX_TOTAL_DIGITS: usize = 60;
/// Most items a proof may hold (a tree of 2^53 leaves needs about 110).
const MAX_ITEMS: usize = 256;

/// The log of one seller's sales.
pub fn seller_log(seller_did: &str) -> String {
    format!("seller:{seller_did}")
}

/// Whether `name` is a log's name: `market` or `seller:did:peaq:0x…`.
pub fn is_log_name(name: &str) -> bool {
    name == MARKET_LOG
        || name.strip_prefix("seller:").is_some_and(|did| {
            did.parse::<sealstream_core::identity::Did>()
                .is_ok_and(|d| d.to_string() == did)
        })
}

/// `H`, the blinding generator.
fn blinding_generator() -> &'static RistrettoPoint {
    static H: OnceLock<RistrettoPoint> = OnceLock::new();
    H.get_or_init(|| {
        RistrettoPoint::hash_from_bytes::<Sha512>(b"sealstream.receipt-log.blinding.v1")
    })
}

/// `G(currency)`: the value generator of a currency, hashed to the curve
/// from its name, so that nobody knows its discrete log to `H` or to
/// another currency's.
pub fn currency_generator(currency: &str) -> RistrettoPoint {
    let mut label = b"sealstream.receipt-log.currency.v1\n".to_vec();
    label.extend_from_slice(currency.as_bytes());
    RistrettoPoint::hash_from_bytes::<Sha512>(&label)
}

/// Whether `name` is a currency as the log names them:
/// `invoice:<ISO 4217>:<decimals>` or
/// `evm:<chain id>:<native|0x token>:<decimals>`.
pub fn is_currency(name: &str) -> bool {
    let parts: Vec<&str> = name.split(':').collect();
    let number = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'))
    };
    match parts.as_slice() {
        ["invoice", code, decimals] => {
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) && number(decimals, 2)
        }
        ["evm", chain, token, decimals] => {
            number(chain, 16)
                && (*token == "native"
                    || token.len() == 42
                        && token.starts_with("0x")
                        && token[2..].bytes().all(|b| b.is_ascii_hexdigit()))
                && number(decimals, 2)
        }
        _ => false,
    }
}

/// The currency a receipt's rail pays in, as the log names it.
pub fn currency_of_rail(rail: &Value, decimals: u8) -> Option<String> {
    let name = match rail.get("kind")?.as_str()? {
        "invoice" => format!("invoice:{}:{decimals}", rail.get("currency")?.as_str()?),
        "evm" => format!(
            "evm:{}:{}:{decimals}",
            rail.get("chainId")?.as_u64()?,
            rail.get("token")?.as_str()?
        ),
        _ => return None,
    };
    is_currency(&name).then_some(name)
}

/// The number of decimals a currency name ends with.
pub fn currency_decimals(currency: &str) -> u8 {
    currency
        .rsplit(':')
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// A random blinding.
pub fn random_blinding<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    zeroize::Zeroize::zeroize(&mut wide);
    s
}

/// `amount·G(currency) + blinding·H`.
pub fn commit(currency: &str, amount: u128, blinding: &Scalar) -> RistrettoPoint {
    Scalar::from(amount) * currency_generator(currency) + blinding * blinding_generator()
}

/// The digest of a signed receipt a leaf carries: SHA-256 of
/// `sealstream.receipt-log.receipt.v1\n` and the RFC 8785 form of the whole
/// signed document (its signature included, so nobody can recompute it
/// from an order's facts).
pub fn receipt_digest(receipt: &SignedReceipt) -> Result<[u8; 32], ReceiptError> {
    let canonical = canonical::rfc8785(&receipt.to_json())
        .map_err(|e| ValidationError::new("receipt", e.to_string()))?;
    let mut h = Sha256::new();
    h.update(b"sealstream.receipt-log.receipt.v1\n");
    h.update(canonical.as_bytes());
    Ok(h.finalize().into())
}

/// A node of the log's tree: its hash and the commitment to the sum of
/// the amounts below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SumNode {
    /// The node's hash.
    pub hash: [u8; 32],
    /// The commitment to the amounts below it.
    pub sum: RistrettoPoint,
}

impl TreeNode for SumNode {
    fn combine(left: &Self, right: &Self) -> Self {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(left.hash);
        h.update(left.sum.compress().as_bytes());
        h.update(right.hash);
        h.update(right.sum.compress().as_bytes());
        SumNode {
            hash: h.finalize().into(),
            sum: left.sum + right.sum,
        }
    }
}

impl SumNode {
    /// The root of the empty log: `SHA-256("")` and the identity.
    pub fn empty() -> SumNode {
        SumNode {
            hash: merkle::empty_root(),
            sum: RistrettoPoint::identity(),
        }
    }

    fn to_json(self) -> Value {
        let mut m = Map::new();
        m.insert("hash".into(), hex::encode(self.hash).into());
        m.insert(
            "commitment".into(),
            hex::encode(self.sum.compress().as_bytes()).into(),
        );
        Value::Object(m)
    }

    fn from_json(value: &Value, path: &str, schema: &'static str) -> Result<Self, ValidationError> {
        let f = Fields::of(value, path, schema)?;
        f.only(&["hash", "commitment"])?;
        Ok(SumNode {
            hash: hash32(&f.string("hash")?, &f.at("hash"))?,
            sum: point(&f.string("commitment")?, &f.at("commitment"))?.1,
        })
    }
}

/// The root of a log's nodes (the empty root for none).
pub fn root(nodes: &[SumNode]) -> SumNode {
    merkle::root_of(nodes).unwrap_or_else(SumNode::empty)
}

/// One receipt in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLeaf {
    /// The epoch it was appended in.
    pub epoch: u64,
    /// [`receipt_digest`] of the receipt.
    pub receipt_digest: [u8; 32],
    /// `amount·G(currency) + r·H`, compressed.
    pub commitment: CompressedRistretto,
}

impl LogLeaf {
    /// Its node, or `None` when the commitment is not a point.
    pub fn node(&self) -> Option<SumNode> {
        let sum = self.commitment.decompress()?;
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(self.epoch.to_be_bytes());
        h.update(self.receipt_digest);
        h.update(self.commitment.as_bytes());
        Some(SumNode {
            hash: h.finalize().into(),
            sum,
        })
    }

    fn to_json(self) -> Value {
        let mut m = Map::new();
        m.insert("epoch".into(), Value::from(self.epoch));
        m.insert(
            "receiptDigest".into(),
            hex::encode(self.receipt_digest).into(),
        );
        m.insert(
            "commitment".into(),
            hex::encode(self.commitment.as_bytes()).into(),
        );
        Value::Object(m)
    }

    fn from_json(value: &Value, path: &str, schema: &'static str) -> Result<Self, ValidationError> {
        let f = Fields::of(value, path, schema)?;
        f.only(&["epoch", "receiptDigest", "commitment"])?;
        Ok(LogLeaf {
            epoch: f.integer("epoch")?,
            receipt_digest: hash32(&f.string("receiptDigest")?, &f.at("receiptDigest"))?,
            commitment: point(&f.string("commitment")?, &f.at("commitment"))?.0,
        })
    }
}

/// 64 lowercase hex digits.
fn hash32(text: &str, field: &str) -> Result<[u8; 32], ValidationError> {
    lower_hex(text, field, false, 64)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).expect("checked hex");
    Ok(out)
}

/// A compressed ristretto255 point as 64 hex digits.
fn point(
    text: &str,
    field: &str,
) -> Result<(CompressedRistretto, RistrettoPoint), ValidationError> {
    let c = CompressedRistretto(hash32(text, field)?);
    let p = c
        .decompress()
        .ok_or_else(|| ValidationError::new(field, "not a ristretto255 point"))?;
    Ok((c, p))
}

/// A canonical scalar as 64 hex digits (little endian).
fn scalar(text: &str, field: &str) -> Result<Scalar, ValidationError> {
    Option::from(Scalar::from_canonical_bytes(hash32(text, field)?)).ok_or_else(|| {
        ValidationError::new(field, "not a canonical scalar (below the group order)")
    })
}

/// A decimal total (at most [`MAX_TOTAL_DIGITS`] digits, no leading zeros)
/// as a scalar.
fn decimal_scalar(text: &str, field: &str) -> Result<Scalar, ValidationError> {
    let ok = !text.is_empty()
        && text.len() <= MAX_TOTAL_DIGITS
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !ok {
        return Err(ValidationError::new(
            field,
            format!("expected base units as a string of at most {MAX_TOTAL_DIGITS} digits, without leading zeros"),
        ));
    }
    let ten = Scalar::from(10u8);
    Ok(text
        .bytes()
        .fold(Scalar::ZERO, |acc, d| acc * ten + Scalar::from(d - b'0')))
}

/// `a + b` for decimal strings of digits.
pub fn add_decimal(a: &str, b: &str) -> String {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut i, mut j, mut carry) = (a.len(), b.len(), 0u8);
    while i > 0 || j > 0 || carry > 0 {
        let mut d = carry;
        if i > 0 {
            i -= 1;
            d += a[i] - b'0';
        }
        if j > 0 {
            j -= 1;
            d += b[j] - b'0';
        }
        out.push(b'0' + d % 10);
        carry = d / 10;
    }
    out.reverse();
    let s = String::from_utf8(out).unwrap_or_default();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// A signed tree head's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHead {
    /// `market` or `seller:<did>`.
    pub log: String,
    /// Leaves in the tree.
    pub tree_size: u64,
    /// The root's hash.
    pub root_hash: [u8; 32],
    /// The root's commitment (the sum of every leaf's), compressed.
    pub root_commitment: CompressedRistretto,
    /// Seconds per epoch.
    pub epoch_seconds: u64,
    /// When the head was signed (`YYYY-MM-DDTHH:MM:SSZ`): every receipt
    /// appended before it is in the tree, every later one comes after.
    pub signed_at: String,
}

impl LogHead {
    /// The head of `nodes`.
    pub fn of(log: &str, nodes: &[SumNode], epoch_seconds: u64, signed_at: &str) -> LogHead {
        let r = root(nodes);
        LogHead {
            log: log.into(),
            tree_size: nodes.len() as u64,
            root_hash: r.hash,
            root_commitment: r.sum.compress(),
            epoch_seconds,
            signed_at: signed_at.into(),
        }
    }

    /// The root hash as 64 hex digits.
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// The root as a node, or `None` when the commitment is not a point.
    pub fn root(&self) -> Option<SumNode> {
        Some(SumNode {
            hash: self.root_hash,
            sum: self.root_commitment.decompress()?,
        })
    }

    /// Wire JSON of the `head` object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("log".into(), self.log.as_str().into());
        m.insert("treeSize".into(), Value::from(self.tree_size));
        m.insert("rootHash".into(), hex::encode(self.root_hash).into());
        m.insert(
            "rootCommitment".into(),
            hex::encode(self.root_commitment.as_bytes()).into(),
        );
        m.insert("epochSeconds".into(), Value::from(self.epoch_seconds));
        m.insert("signedAt".into(), self.signed_at.as_str().into());
        Value::Object(m)
    }

    fn from_json(value: &Value) -> Result<LogHead, ValidationError> {
        let f = Fields::of(value, "head", LOG_HEAD_SCHEMA_VERSION)?;
        f.only(&[
            "log",
            "treeSize",
            "rootHash",
            "rootCommitment",
            "epochSeconds",
            "signedAt",
        ])?;
        let log = f.string("log")?;
        if !is_log_name(&log) {
            return Err(ValidationError::new(
                "head.log",
                "expected market or seller:<did>",
            ));
        }
        let head = LogHead {
            log,
            tree_size: f.integer("treeSize")?,
            root_hash: hash32(&f.string("rootHash")?, "head.rootHash")?,
            root_commitment: point(&f.string("rootCommitment")?, "head.rootCommitment")?.0,
            epoch_seconds: f.integer("epochSeconds")?,
            signed_at: f.string("signedAt")?,
        };
        if head.epoch_seconds == 0 {
            return Err(ValidationError::new(
                "head.epochSeconds",
                "must be at least 1",
            ));
        }
        utc_time(&head.signed_at, "head.signedAt")?;
        Ok(head)
    }

    /// Signs with the market's receipt key.
    pub fn sign(&self, key: &ReceiptSigningKey) -> Result<SignedLogHead, ReceiptError> {
        let bytes = signed_bytes_of(LOG_HEAD_SCHEMA_VERSION, &self.to_json(), "head")?;
        Ok(SignedLogHead {
            head: self.clone(),
            public_key: key.public_key(),
            signature: key.sign(&bytes),
        })
    }

    /// Unix seconds of `signedAt`.
    fn signed_unix(&self) -> i64 {
        sealstream_core::utc::parse_seconds(&self.signed_at).unwrap_or(i64::MIN)
    }
}

/// A tree head with the market's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedLogHead {
    /// What is signed.
    pub head: LogHead,
    /// The key that signed.
    pub public_key: ReceiptPublicKey,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl SignedLogHead {
    /// Wire JSON: `{schemaVersion, head, signature}`.
    pub fn to_json(&self) -> Value {
        document_json(
            LOG_HEAD_SCHEMA_VERSION,
            "head",
            self.head.to_json(),
            &self.public_key,
            &self.signature,
        )
    }

    /// The head file: indented by 2, trailing newline.
    pub fn to_json_pretty(&self) -> String {
        sealstream_core::json::write::to_python_pretty(&self.to_json())
    }

    /// Reads a signed head strictly (the signature is not checked here).
    pub fn parse(bytes: &[u8]) -> Result<SignedLogHead, ReceiptError> {
        Ok(Self::from_json(&parse_document(bytes)?)?)
    }

    /// Reads a parsed signed head.
    pub fn from_json(value: &Value) -> Result<SignedLogHead, ValidationError> {
        let (body, public_key, signature) =
            read_document(value, LOG_HEAD_SCHEMA_VERSION, "head", "signed log head")?;
        Ok(SignedLogHead {
            head: LogHead::from_json(body)?,
            public_key,
            signature,
        })
    }

    /// Checks the signature and, when `pinned` is given, the key.
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<(), ReceiptError> {
        let bytes = signed_bytes_of(LOG_HEAD_SCHEMA_VERSION, &self.head.to_json(), "head")?;
        verify_signature(&bytes, &self.public_key, &self.signature, pinned)
    }
}

/// An item of a total proof, left to right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofItem {
    /// A whole subtree inside or outside the range (which, follows from
    /// the tree's shape).
    Subtree(SumNode),
    /// A leaf next to an edge of the range, opened to show its epoch.
    Leaf(LogLeaf),
}

/// Where a leaf is for a range `[start, end)`: opened (next to an edge),
/// inside, or outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Open,
    In,
    Out,
}

/// The range `[start, end)` of a tree of `size` leaves: which leaves are
/// opened and which subtrees are whole.
#[derive(Clone, Copy, Debug)]
struct Range {
    start: u64,
    end: u64,
    size: u64,
}

impl Range {
    fn opened(&self, i: u64) -> bool {
        i < self.size
            && (i + 1 == self.start || i == self.start || i + 1 == self.end || i == self.end)
    }

    fn place(&self, i: u64) -> Place {
        if self.opened(i) {
            Place::Open
        } else if (self.start..self.end).contains(&i) {
            Place::In
        } else {
            Place::Out
        }
    }

    /// Whether the subtree `[off, off + len)` is one item: a single leaf,
    /// or no opened leaf in it (then it lies wholly in or out of the range,
    /// because opened leaves surround both edges).
    fn whole(&self, off: u64, len: u64) -> bool {
        len == 1
            || ![
                self.start.wrapping_sub(1),
                self.start,
                self.end.wrapping_sub(1),
                self.end,
            ]
            .iter()
            .any(|&i| self.opened(i) && (off..off + len).contains(&i))
    }
}

/// The items of a total proof for `[start, end)` over `leaves` (their nodes
/// in `nodes`).
fn prove_items(
    leaves: &[LogLeaf],
    nodes: &[SumNode],
    range: Range,
    off: u64,
    out: &mut Vec<ProofItem>,
) {
    let len = nodes.len() as u64;
    if range.whole(off, len) {
        out.push(if len == 1 && range.place(off) == Place::Open {
            ProofItem::Leaf(leaves[0])
        } else {
            ProofItem::Subtree(root(nodes))
        });
        return;
    }
    let k = merkle::split(nodes.len());
    prove_items(&leaves[..k], &nodes[..k], range, off, out);
    prove_items(&leaves[k..], &nodes[k..], range, off + k as u64, out);
}

/// A proof of the totals of the receipts appended in a period.
#[derive(Clone, Debug, PartialEq)]
pub struct TotalProof {
    /// The signed head the proof is against.
    pub head: SignedLogHead,
    /// The period's start (`YYYY-MM-DDTHH:MM:SSZ`, a multiple of the epoch).
    pub from: String,
    /// The period's end (excluded).
    pub to: String,
    /// The first leaf of the period.
    pub start: u64,
    /// One past the last leaf of the period.
    pub end: u64,
    /// The tree, left to right.
    pub items: Vec<ProofItem>,
    /// Totals in base units per currency, by name (nonzero only).
    pub totals: BTreeMap<String, String>,
    /// The sum of the blindings of the period's leaves.
    pub blinding: Scalar,
}

/// What a verified total proof shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotalCheck {
    /// The log.
    pub log: String,
    /// Receipts in the period.
    pub receipts: u64,
    /// Totals in base units per currency.
    pub totals: BTreeMap<String, String>,
}

/// What the market knows of a leaf: the leaf and its opening.
#[derive(Clone, Debug)]
pub struct LeafOpening {
    /// The leaf.
    pub leaf: LogLeaf,
    /// Its currency.
    pub currency: String,
    /// Its amount in base units.
    pub amount: u128,
    /// Its blinding.
    pub blinding: Scalar,
}

/// The epoch a Unix time falls in.
pub fn epoch_of(unix: i64, epoch_seconds: u64) -> u64 {
    (unix.max(0) as u64) / epoch_seconds.max(1)
}

/// The period `[from, to)` as epochs, checked: aligned to the epoch, in
/// order. Errors name `from` or `to`.
pub fn period_epochs(
    from: &str,
    to: &str,
    epoch_seconds: u64,
) -> Result<(u64, u64), ValidationError> {
    if epoch_seconds == 0 {
        return Err(ValidationError::new(
            "head.epochSeconds",
            "must be at least 1",
        ));
    }
    let secs = |text: &str, field: &str| -> Result<u64, ValidationError> {
        let unix = sealstream_core::utc::parse_seconds(text)
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                ValidationError::new(field, "expected a UTC time YYYY-MM-DDTHH:MM:SSZ")
            })? as u64;
        if !unix.is_multiple_of(epoch_seconds) {
            return Err(ValidationError::new(
                field,
                format!(
                    "must fall on an epoch boundary (a multiple of {epoch_seconds} s since 1970)"
                ),
            ));
        }
        Ok(unix / epoch_seconds)
    };
    let (a, b) = (secs(from, "from")?, secs(to, "to")?);
    if a >= b {
        return Err(ValidationError::new("to", "must be after from"));
    }
    Ok((a, b))
}

impl TotalProof {
    /// The proof for the period `[from, to)` over `leaves` (with their
    /// openings, in log order), against `head` (which must be the head of
    /// exactly these leaves). Fails when the period is not aligned, not
    /// over by the head's time, or the head does not match.
    pub fn prove(
        head: SignedLogHead,
        openings: &[LeafOpening],
        from: &str,
        to: &str,
    ) -> Result<TotalProof, ValidationError> {
        let (a, b) = period_epochs(from, to, head.head.epoch_seconds)?;
        if head.head.tree_size != openings.len() as u64 {
            return Err(ValidationError::new(
                "head.treeSize",
                "not the size of the leaves given",
            ));
        }
        let to_unix = b * head.head.epoch_seconds;
        if (head.head.signed_unix() as u64) < to_unix {
            return Err(ValidationError::new(
                "to",
                "the period is not over yet: totals are proven once it has ended",
            ));
        }
        let leaves: Vec<LogLeaf> = openings.iter().map(|o| o.leaf).collect();
        let nodes: Vec<SumNode> = leaves
            .iter()
            .map(|l| {
                l.node()
                    .ok_or_else(|| ValidationError::new("leaf", "not a point"))
            })
            .collect::<Result<_, _>>()?;
        if LogHead::of(
            &head.head.log,
            &nodes,
            head.head.epoch_seconds,
            &head.head.signed_at,
        ) != head.head
        {
            return Err(ValidationError::new(
                "head",
                "not the head of the leaves given",
            ));
        }
        let start = leaves.partition_point(|l| l.epoch < a) as u64;
        let end = leaves.partition_point(|l| l.epoch < b) as u64;
        let mut items = Vec::new();
        if !nodes.is_empty() {
            prove_items(
                &leaves,
                &nodes,
                Range {
                    start,
                    end,
                    size: nodes.len() as u64,
                },
                0,
                &mut items,
            );
        }
        let mut totals: BTreeMap<String, String> = BTreeMap::new();
        let mut blinding = Scalar::ZERO;
        for o in &openings[start as usize..end as usize] {
            blinding += o.blinding;
            if o.amount > 0 {
                let t = totals
                    .entry(o.currency.clone())
                    .or_insert_with(|| "0".into());
                *t = add_decimal(t, &o.amount.to_string());
            }
        }
        Ok(TotalProof {
            head,
            from: from.into(),
            to: to.into(),
            start,
            end,
            items,
            totals,
            blinding,
        })
    }

    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), TOTAL_SCHEMA_VERSION.into());
        m.insert("head".into(), self.head.to_json());
        let mut p = Map::new();
        p.insert("from".into(), self.from.as_str().into());
        p.insert("to".into(), self.to.as_str().into());
        m.insert("period".into(), Value::Object(p));
        let mut r = Map::new();
        r.insert("start".into(), Value::from(self.start));
        r.insert("end".into(), Value::from(self.end));
        m.insert("range".into(), Value::Object(r));
        m.insert(
            "items".into(),
            Value::Array(
                self.items
                    .iter()
                    .map(|i| match i {
                        ProofItem::Subtree(n) => n.to_json(),
                        ProofItem::Leaf(l) => l.to_json(),
                    })
                    .collect(),
            ),
        );
        m.insert(
            "totals".into(),
            Value::Array(
                self.totals
                    .iter()
                    .map(|(c, a)| {
                        let mut t = Map::new();
                        t.insert("currency".into(), c.as_str().into());
                        t.insert("amount".into(), a.as_str().into());
                        Value::Object(t)
                    })
                    .collect(),
            ),
        );
        m.insert(
            "blinding".into(),
            hex::encode(self.blinding.as_bytes()).into(),
        );
        Value::Object(m)
    }

    /// The proof file: indented by 2, trailing newline.
    pub fn to_json_pretty(&self) -> String {
        sealstream_core::json::write::to_python_pretty(&self.to_json())
    }

    /// Reads a proof strictly (nothing is verified here; see
    /// [`TotalProof::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<TotalProof, ReceiptError> {
        let value = parse_document(bytes)?;
        let s = TOTAL_SCHEMA_VERSION;
        let f = Fields::of(&value, "", s)?;
        if f.string("schemaVersion")? != s {
            return Err(ValidationError::new("schemaVersion", format!("expected {s}")).into());
        }
        f.only(&[
            "schemaVersion",
            "head",
            "period",
            "range",
            "items",
            "totals",
            "blinding",
        ])?;
        let head = SignedLogHead::from_json(f.get("head")?)?;
        let p = Fields::of(f.get("period")?, "period", s)?;
        p.only(&["from", "to"])?;
        let r = Fields::of(f.get("range")?, "range", s)?;
        r.only(&["start", "end"])?;
        let Value::Array(raw_items) = f.get("items")? else {
            return Err(ValidationError::new("items", "expected an array").into());
        };
        if raw_items.len() > MAX_ITEMS {
            return Err(
                ValidationError::new("items", format!("more than {MAX_ITEMS} items")).into(),
            );
        }
        let mut items = Vec::with_capacity(raw_items.len());
        for (i, item) in raw_items.iter().enumerate() {
            let path = format!("items[{i}]");
            items.push(if item.get("epoch").is_some() {
                ProofItem::Leaf(LogLeaf::from_json(item, &path, s)?)
            } else {
                ProofItem::Subtree(SumNode::from_json(item, &path, s)?)
            });
        }
        let Value::Array(raw_totals) = f.get("totals")? else {
            return Err(ValidationError::new("totals", "expected an array").into());
        };
        let mut totals = BTreeMap::new();
        for (i, t) in raw_totals.iter().enumerate() {
            let path = format!("totals[{i}]");
            let tf = Fields::of(t, &path, s)?;
            tf.only(&["currency", "amount"])?;
            let currency = tf.string("currency")?;
            if !is_currency(&currency) {
                return Err(ValidationError::new(
                    tf.at("currency"),
                    "expected invoice:<code>:<decimals> or evm:<chain>:<token>:<decimals>",
                )
                .into());
            }
            let amount = tf.string("amount")?;
            decimal_scalar(&amount, &tf.at("amount"))?;
            if totals.insert(currency, amount).is_some() {
                return Err(ValidationError::new(tf.at("currency"), "given twice").into());
            }
        }
        Ok(TotalProof {
            head,
            from: p.string("from")?,
            to: p.string("to")?,
            start: r.integer("start")?,
            end: r.integer("end")?,
            items,
            totals,
            blinding: scalar(&f.string("blinding")?, "blinding")?,
        })
    }

    /// Verifies the proof: the head's signature (and key, when pinned),
    /// that the items rebuild the signed root, that the range is exactly
    /// the receipts appended in the period, and that the totals open the
    /// sum of the range's commitments.
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<TotalCheck, ReceiptError> {
        self.head.verify(pinned)?;
        let head = &self.head.head;
        let (a, b) = period_epochs(&self.from, &self.to, head.epoch_seconds)?;
        let mismatch = |what: &str| ReceiptError::ProofMismatch { what: what.into() };
        let (start, end, size) = (self.start, self.end, head.tree_size);
        if start > end || end > size {
            return Err(ValidationError::new(
                "range",
                "expected start ≤ end ≤ the head's treeSize",
            )
            .into());
        }
        let range = Range { start, end, size };
        let mut sum = RistrettoPoint::identity();
        let mut opened: BTreeMap<u64, u64> = BTreeMap::new();
        let root = if size == 0 {
            if !self.items.is_empty() {
                return Err(mismatch("items: an empty log has none"));
            }
            SumNode::empty()
        } else {
            let mut pos = 0usize;
            let r = rebuild(&self.items, &mut pos, range, 0, size, &mut sum, &mut opened)
                .ok_or_else(|| {
                    mismatch("items: they do not fit the tree's shape for this range")
                })?;
            if pos != self.items.len() {
                return Err(mismatch("items: more than the tree's shape needs"));
            }
            r
        };
        if root.hash != head.root_hash || root.sum.compress() != head.root_commitment {
            return Err(mismatch("items: they do not lead to the signed root"));
        }
        let epoch = |i: u64| opened.get(&i).copied();
        // The range is the period: the leaf before it is earlier, the
        // first and last inside are in it, the one after it is later; with
        // nothing after it, the head was signed once the period was over.
        let before_ok = start == 0 || epoch(start - 1).is_some_and(|e| e < a);
        let inside_ok = start == end
            || epoch(start).is_some_and(|e| e >= a) && epoch(end - 1).is_some_and(|e| e < b);
        let after_ok = if end < size {
            epoch(end).is_some_and(|e| e >= b)
        } else {
            head.signed_unix() >= (b * head.epoch_seconds) as i64
        };
        if !(before_ok && inside_ok && after_ok) {
            return Err(mismatch(
                "range: it is not the receipts appended in the period",
            ));
        }
        let mut claimed = self.blinding * blinding_generator();
        for (currency, amount) in &self.totals {
            claimed += decimal_scalar(amount, "totals.amount")? * currency_generator(currency);
        }
        if claimed != sum {
            return Err(mismatch(
                "totals: they do not open the period's commitments",
            ));
        }
        Ok(TotalCheck {
            log: head.log.clone(),
            receipts: end - start,
            totals: self.totals.clone(),
        })
    }
}

/// Rebuilds the subtree `[off, off + len)` from the items, adding the
/// commitments inside the range to `sum` and noting opened leaves' epochs.
fn rebuild(
    items: &[ProofItem],
    pos: &mut usize,
    range: Range,
    off: u64,
    len: u64,
    sum: &mut RistrettoPoint,
    opened: &mut BTreeMap<u64, u64>,
) -> Option<SumNode> {
    if range.whole(off, len) {
        let item = items.get(*pos)?;
        *pos += 1;
        let open = len == 1 && range.place(off) == Place::Open;
        let node = match (item, open) {
            (ProofItem::Leaf(l), true) => {
                opened.insert(off, l.epoch);
                l.node()?
            }
            (ProofItem::Subtree(n), false) => *n,
            _ => return None,
        };
        if (range.start..range.end).contains(&off) {
            *sum += node.sum;
        }
        return Some(node);
    }
    let k = merkle::split(len as usize) as u64;
    let l = rebuild(items, pos, range, off, k, sum, opened)?;
    let r = rebuild(items, pos, range, off + k, len - k, sum, opened)?;
    Some(SumNode::combine(&l, &r))
}

/// The `path` array of a document of `schema`: at most [`MAX_ITEMS`] nodes.
fn path_of(f: &Fields<'_>, schema: &'static str) -> Result<Vec<SumNode>, ValidationError> {
    let Value::Array(raw) = f.get("path")? else {
        return Err(ValidationError::new("path", "expected an array"));
    };
    if raw.len() > MAX_ITEMS {
        return Err(ValidationError::new(
            "path",
            format!("more than {MAX_ITEMS} nodes"),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, n)| SumNode::from_json(n, &format!("path[{i}]"), schema))
        .collect()
}

/// A proof that a newer head's tree extends an older one's.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConsistency {
    /// The older head.
    pub old: SignedLogHead,
    /// The newer head.
    pub new: SignedLogHead,
    /// RFC 9162 consistency path (empty when the old tree is empty or the
    /// same size).
    pub path: Vec<SumNode>,
}

impl LogConsistency {
    /// The proof from `old` to `new`, whose leaves are `nodes`.
    pub fn prove(
        old: SignedLogHead,
        new: SignedLogHead,
        nodes: &[SumNode],
    ) -> Option<LogConsistency> {
        let m = old.head.tree_size as usize;
        let path = if m == 0 || m == nodes.len() {
            Vec::new()
        } else {
            merkle::consistency_proof(nodes, m)?
        };
        Some(LogConsistency { old, new, path })
    }

    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), CONSISTENCY_SCHEMA_VERSION.into());
        m.insert("old".into(), self.old.to_json());
        m.insert("new".into(), self.new.to_json());
        m.insert(
            "path".into(),
            Value::Array(self.path.iter().map(|n| n.to_json()).collect()),
        );
        Value::Object(m)
    }

    /// The proof file.
    pub fn to_json_pretty(&self) -> String {
        sealstream_core::json::write::to_python_pretty(&self.to_json())
    }

    /// Reads a consistency proof strictly.
    pub fn parse(bytes: &[u8]) -> Result<LogConsistency, ReceiptError> {
        let value = parse_document(bytes)?;
        let s = CONSISTENCY_SCHEMA_VERSION;
        let f = Fields::of(&value, "", s)?;
        if f.string("schemaVersion")? != s {
            return Err(ValidationError::new("schemaVersion", format!("expected {s}")).into());
        }
        f.only(&["schemaVersion", "old", "new", "path"])?;
        Ok(LogConsistency {
            old: SignedLogHead::from_json(f.get("old")?)?,
            new: SignedLogHead::from_json(f.get("new")?)?,
            path: path_of(&f, s)?,
        })
    }

    /// Verifies both signatures (same key, pinned when given), that both
    /// heads are of one log and that the newer tree extends the older.
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<(), ReceiptError> {
        self.old.verify(pinned)?;
        self.new
            .verify(Some(pinned.unwrap_or(&self.old.public_key)))?;
        let (old, new) = (&self.old.head, &self.new.head);
        let mismatch = |what: &str| ReceiptError::ProofMismatch { what: what.into() };
        if old.log != new.log {
            return Err(mismatch("new.head.log: another log than the old head's"));
        }
        if old.tree_size > new.tree_size {
            return Err(mismatch(
                "new.head.treeSize: smaller than the old head's (the log shrank)",
            ));
        }
        let ok = if old.tree_size == 0 {
            self.path.is_empty()
        } else {
            match (old.root(), new.root()) {
                (Some(o), Some(n)) => {
                    merkle::verify_consistency(old.tree_size, new.tree_size, &o, &n, &self.path)
                }
                _ => false,
            }
        };
        if !ok {
            return Err(mismatch(
                "path: the new tree does not extend the old one (the log was rewritten)",
            ));
        }
        Ok(())
    }
}

impl LogConsistency {
    /// What `GET /v1/receipt-log/consistency` answers: `{head, path}`, the
    /// newer head and the path from the size the client asked for.
    pub fn extension_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("head".into(), self.new.to_json());
        m.insert(
            "path".into(),
            Value::Array(self.path.iter().map(|n| n.to_json()).collect()),
        );
        Value::Object(m)
    }

    /// The proof from the client's `old` head and the server's answer
    /// ([`LogConsistency::extension_json`]); not yet verified.
    pub fn from_extension(
        old: SignedLogHead,
        bytes: &[u8],
    ) -> Result<LogConsistency, ReceiptError> {
        let value = parse_document(bytes)?;
        let s = CONSISTENCY_SCHEMA_VERSION;
        let f = Fields::of(&value, "", s)?;
        f.only(&["head", "path"])?;
        Ok(LogConsistency {
            old,
            new: SignedLogHead::from_json(f.get("head")?)?,
            path: path_of(&f, s)?,
        })
    }
}

/// `GET /v1/receipt-log/head` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// `market` (admins and auditors), `seller` (the caller's own sales,
    /// the default) or `seller:<did>` (that seller, or admins and auditors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// `GET /v1/receipt-log/total` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct TotalQuery {
    /// As in [`LogQuery`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The period's start, `YYYY-MM-DDTHH:MM:SSZ`, on an epoch boundary.
    pub from: String,
    /// The period's end (excluded), on an epoch boundary, passed.
    pub to: String,
}

/// `GET /v1/receipt-log/consistency` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// As in [`LogQuery`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The size of the older head the client holds.
    pub size: u64,
}

/// The logs a receipt is in (`GET /v1/orders/{id}/receipt/log`): the
/// market's, and its seller's when the seller asks.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptLogs {
    /// In the market's log.
    pub market: ReceiptInclusion,
    /// In the seller's log (to the seller only).
    pub seller: Option<ReceiptInclusion>,
}

impl ReceiptLogs {
    /// Wire JSON: `{market, seller}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("market".into(), self.market.to_json());
        m.insert(
            "seller".into(),
            self.seller
                .as_ref()
                .map_or(Value::Null, ReceiptInclusion::to_json),
        );
        Value::Object(m)
    }

    /// Reads the answer strictly.
    pub fn parse(bytes: &[u8]) -> Result<ReceiptLogs, ReceiptError> {
        let value = parse_document(bytes)?;
        let f = Fields::of(&value, "", INCLUSION_SCHEMA_VERSION)?;
        f.only(&["market", "seller"])?;
        Ok(ReceiptLogs {
            market: ReceiptInclusion::from_json(f.get("market")?)?,
            seller: match f.get("seller")? {
                Value::Null => None,
                v => Some(ReceiptInclusion::from_json(v)?),
            },
        })
    }
}

/// A receipt's place in a log, for its holder: the leaf, the amount and
/// blinding it commits to, and its audit path to a signed head.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptInclusion {
    /// The head the path leads to.
    pub head: SignedLogHead,
    /// The leaf's index.
    pub index: u64,
    /// The leaf.
    pub leaf: LogLeaf,
    /// Its currency.
    pub currency: String,
    /// Its amount in base units.
    pub amount: String,
    /// Its blinding.
    pub blinding: Scalar,
    /// The audit path, bottom up.
    pub path: Vec<SumNode>,
}

impl ReceiptInclusion {
    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), INCLUSION_SCHEMA_VERSION.into());
        m.insert("head".into(), self.head.to_json());
        m.insert("index".into(), Value::from(self.index));
        m.insert("leaf".into(), self.leaf.to_json());
        m.insert("currency".into(), self.currency.as_str().into());
        m.insert("amount".into(), self.amount.as_str().into());
        m.insert(
            "blinding".into(),
            hex::encode(self.blinding.as_bytes()).into(),
        );
        m.insert(
            "path".into(),
            Value::Array(self.path.iter().map(|n| n.to_json()).collect()),
        );
        Value::Object(m)
    }

    /// Reads an inclusion strictly.
    pub fn from_json(value: &Value) -> Result<ReceiptInclusion, ValidationError> {
        let s = INCLUSION_SCHEMA_VERSION;
        let f = Fields::of(value, "", s)?;
        if f.string("schemaVersion")? != s {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {s}"),
            ));
        }
        f.only(&[
            "schemaVersion",
            "head",
            "index",
            "leaf",
            "currency",
            "amount",
            "blinding",
            "path",
        ])?;
        let currency = f.string("currency")?;
        if !is_currency(&currency) {
            return Err(ValidationError::new("currency", "not a currency name"));
        }
        let amount = f.string("amount")?;
        decimal_scalar(&amount, "amount")?;
        Ok(ReceiptInclusion {
            head: SignedLogHead::from_json(f.get("head")?)?,
            index: f.integer("index")?,
            leaf: LogLeaf::from_json(f.get("leaf")?, "leaf", s)?,
            currency,
            amount,
            blinding: scalar(&f.string("blinding")?, "blinding")?,
            path: path_of(&f, s)?,
        })
    }

    /// Verifies that `receipt` is the leaf at `index` of the signed head's
    /// tree and that its commitment is to the receipt's own amount in the
    /// receipt's currency.
    pub fn verify(
        &self,
        receipt: &SignedReceipt,
        pinned: Option<&ReceiptPublicKey>,
    ) -> Result<(), ReceiptError> {
        self.head.verify(pinned)?;
        let mismatch = |what: &str| ReceiptError::ProofMismatch { what: what.into() };
        if self.leaf.receipt_digest != receipt_digest(receipt)? {
            return Err(mismatch("leaf.receiptDigest: not this receipt's"));
        }
        let r = &receipt.receipt;
        let currency = currency_of_rail(&r.rail, r.decimals)
            .ok_or_else(|| mismatch("currency: the receipt's rail names none"))?;
        if currency != self.currency || r.amount != self.amount {
            return Err(mismatch("amount: not the receipt's amount and currency"));
        }
        let amount: u128 = r
            .amount
            .parse()
            .map_err(|_| mismatch("amount: beyond what the log commits to (2^128)"))?;
        if commit(&currency, amount, &self.blinding).compress() != self.leaf.commitment {
            return Err(mismatch(
                "leaf.commitment: not a commitment to the receipt's amount",
            ));
        }
        let node = self
            .leaf
            .node()
            .ok_or_else(|| mismatch("leaf.commitment: not a point"))?;
        let head = &self.head.head;
        let root = merkle::inclusion_root(&node, self.index, head.tree_size, &self.path)
            .ok_or_else(|| mismatch("path: does not fit the leaf's position"))?;
        if Some(root) != head.root() {
            return Err(mismatch("path: does not lead to the signed root"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn key() -> ReceiptSigningKey {
        ReceiptSigningKey::from_bytes(&[7u8; 32])
    }

    const CUR: [&str; 3] = ["invoice:EUR:2", "invoice:USD:2", "evm:31337:native:18"];

    /// `n` receipts over `epochs` epochs of 60 s (several per epoch, some
    /// epochs empty), in three currencies.
    fn log(n: usize) -> (Vec<LeafOpening>, Vec<SumNode>) {
        let mut out = Vec::new();
        for i in 0..n {
            let currency = CUR[i % 3].to_string();
            let amount = 1_000 + (i as u128 * 7_919) % 1_000_000;
            let blinding = random_blinding(&mut OsRng);
            let epoch = 1_000 + (i as u64 / 7) * 2; // every other epoch empty
            let leaf = LogLeaf {
                epoch,
                receipt_digest: Sha256::digest(i.to_be_bytes()).into(),
                commitment: commit(&currency, amount, &blinding).compress(),
            };
            out.push(LeafOpening {
                leaf,
                currency,
                amount,
                blinding,
            });
        }
        let nodes = out.iter().map(|o| o.leaf.node().unwrap()).collect();
        (out, nodes)
    }

    fn time(epoch: u64) -> String {
        sealstream_core::utc::format_seconds((epoch * 60) as i64)
    }

    fn head(openings: &[LeafOpening], nodes: &[SumNode], signed_epoch: u64) -> SignedLogHead {
        let _ = openings;
        LogHead::of(MARKET_LOG, nodes, 60, &time(signed_epoch))
            .sign(&key())
            .unwrap()
    }

    fn expected(openings: &[LeafOpening], a: u64, b: u64) -> BTreeMap<String, String> {
        let mut t: BTreeMap<String, u128> = BTreeMap::new();
        for o in openings.iter().filter(|o| (a..b).contains(&o.leaf.epoch)) {
            *t.entry(o.currency.clone()).or_default() += o.amount;
        }
        t.into_iter().map(|(c, v)| (c, v.to_string())).collect()
    }

    #[test]
    fn every_period_verifies_and_a_total_off_by_one_unit_does_not() {
        let (openings, nodes) = log(200);
        let last = openings.last().unwrap().leaf.epoch;
        let h = head(&openings, &nodes, last + 5);
        let pk = key().public_key();
        let mut periods = 0;
        for a in (995..last + 4).step_by(3) {
            for b in (a + 1..=last + 5).step_by(5) {
                let proof = TotalProof::prove(h.clone(), &openings, &time(a), &time(b)).unwrap();
                let json = proof.to_json_pretty();
                let back = TotalProof::parse(json.as_bytes()).unwrap();
                assert_eq!(back, proof);
                let check = back
                    .verify(Some(&pk))
                    .unwrap_or_else(|e| panic!("{a}..{b}: {e}"));
                assert_eq!(check.totals, expected(&openings, a, b), "{a}..{b}");
                for currency in CUR {
                    for delta in [1i8, -1] {
                        let mut bad = proof.clone();
                        let t = bad
                            .totals
                            .entry(currency.into())
                            .or_insert_with(|| "0".into());
                        let v: u128 = t.parse().unwrap();
                        if delta < 0 && v == 0 {
                            continue;
                        }
                        *t = if delta > 0 { v + 1 } else { v - 1 }.to_string();
                        assert!(
                            matches!(
                                bad.verify(Some(&pk)),
                                Err(ReceiptError::ProofMismatch { .. })
                            ),
                            "{a}..{b} {currency} {delta}"
                        );
                    }
                }
                periods += 1;
            }
        }
        assert!(periods > 100);
    }

    #[test]
    fn a_range_that_is_not_the_period_fails() {
        let (openings, nodes) = log(60);
        let h = head(&openings, &nodes, 2_000);
        let pk = key().public_key();
        let proof = TotalProof::prove(h.clone(), &openings, &time(1_004), &time(1_010)).unwrap();
        assert!(proof.end > proof.start);
        // Drop the last receipt of the period: the range no longer reaches the period's end.
        let shorter = TotalProof::prove(h.clone(), &openings, &time(1_004), &time(1_010))
            .map(|mut p| {
                p.end -= 1;
                let mut items = Vec::new();
                let leaves: Vec<LogLeaf> = openings.iter().map(|o| o.leaf).collect();
                prove_items(
                    &leaves,
                    &nodes,
                    Range {
                        start: p.start,
                        end: p.end,
                        size: nodes.len() as u64,
                    },
                    0,
                    &mut items,
                );
                p.items = items;
                p
            })
            .unwrap();
        assert!(matches!(
            shorter.verify(Some(&pk)),
            Err(ReceiptError::ProofMismatch { .. })
        ));
        // A period not over at the head's time is refused by the prover, and by the verifier.
        // (the period reaches past the last receipt, so only the head's time
        // shows that no later receipt of the period can come).
        let tail = TotalProof::prove(h.clone(), &openings, &time(1_014), &time(1_020)).unwrap();
        assert_eq!(tail.end, nodes.len() as u64);
        tail.verify(Some(&pk)).unwrap();
        let early = head(&openings, &nodes, 1_018);
        assert!(TotalProof::prove(early.clone(), &openings, &time(1_014), &time(1_020)).is_err());
        let mut forged = tail;
        forged.head = early;
        assert!(matches!(
            forged.verify(Some(&pk)),
            Err(ReceiptError::ProofMismatch { .. })
        ));
        // Another key, or a head changed after signing.
        let other = ReceiptSigningKey::from_bytes(&[9u8; 32]).public_key();
        assert!(matches!(
            proof.verify(Some(&other)),
            Err(ReceiptError::WrongKey { .. })
        ));
        let mut edited = proof.clone();
        edited.head.head.signed_at = time(3_000);
        assert!(matches!(
            edited.verify(Some(&pk)),
            Err(ReceiptError::BadSignature)
        ));
        // Unaligned period.
        let mut unaligned = proof;
        unaligned.from = sealstream_core::utc::format_seconds(1_004 * 60 + 1);
        assert!(matches!(
            unaligned.verify(Some(&pk)),
            Err(ReceiptError::Invalid(_))
        ));
    }

    #[test]
    fn empty_logs_and_empty_periods() {
        let h = head(&[], &[], 2_000);
        let p = TotalProof::prove(h, &[], &time(10), &time(20)).unwrap();
        let c = p.verify(None).unwrap();
        assert_eq!((c.receipts, c.totals.len()), (0, 0));
        let (openings, nodes) = log(30);
        let h = head(&openings, &nodes, 2_000);
        for (a, b) in [(900, 950), (1_001, 1_002), (1_500, 1_600)] {
            let p = TotalProof::prove(h.clone(), &openings, &time(a), &time(b)).unwrap();
            assert_eq!(p.verify(None).unwrap().receipts, 0, "{a}..{b}");
        }
    }

    #[test]
    fn consistency_between_heads_and_a_rewritten_log() {
        let (openings, nodes) = log(70);
        for m in [0usize, 1, 2, 7, 32, 33, 69, 70] {
            let old = head(&openings[..m], &nodes[..m], 1_500);
            let new = head(&openings, &nodes, 1_600);
            let proof = LogConsistency::prove(old.clone(), new.clone(), &nodes).unwrap();
            let back = LogConsistency::parse(proof.to_json_pretty().as_bytes()).unwrap();
            back.verify(Some(&key().public_key()))
                .unwrap_or_else(|e| panic!("{m}: {e}"));
            if m > 0 && m < 70 {
                // A log whose old part was rewritten (one amount changed) is caught.
                let mut rewritten = openings.clone();
                rewritten[m - 1].leaf.commitment = commit(CUR[0], 5, &Scalar::ONE).compress();
                let rn: Vec<SumNode> = rewritten.iter().map(|o| o.leaf.node().unwrap()).collect();
                let forged_new = head(&rewritten, &rn, 1_600);
                let forged = LogConsistency::prove(old, forged_new, &rn).unwrap();
                assert!(
                    matches!(forged.verify(None), Err(ReceiptError::ProofMismatch { .. })),
                    "{m}"
                );
            }
        }
    }

    #[test]
    fn decimals_add_and_currencies_are_named() {
        assert_eq!(add_decimal("999", "1"), "1000");
        assert_eq!(add_decimal("0", "0"), "0");
        assert_eq!(
            add_decimal(&u128::MAX.to_string(), &u128::MAX.to_string()),
            "680564733841876926926749214863536422910"
        );
        assert!(is_currency("invoice:EUR:2"));
        assert!(is_currency(
            "evm:1:0x5FbDB2315678afecb367f032d93F642f64180aa3:6"
        ));
        assert!(!is_currency("invoice:eur:2"));
        assert!(!is_currency("evm:01:native:18"));
        assert!(decimal_scalar(&"9".repeat(61), "x").is_err());
        assert_eq!(decimal_scalar("1000", "x").unwrap(), Scalar::from(1000u32));
        assert!(is_log_name("market"));
        assert!(is_log_name(
            "seller:did:peaq:0x5FbDB2315678afecb367f032d93F642f64180aa3"
        ));
        assert!(!is_log_name("seller:nobody"));
    }
}
