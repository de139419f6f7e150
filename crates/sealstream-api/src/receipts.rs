//! License receipts (`sealstream.receipt.v1`): the market's Ed25519
//! signature over what a buyer paid for, checkable offline by anyone who
//! holds the market's public key.
//!
//! The signed bytes are `sealstream.receipt.v1\n` followed by the RFC 8785
//! canonical JSON of the `receipt` object. Reading is strict: unknown fields,
//! duplicate keys and malformed values are refused with the field's path
//! (`receipt.datasetRoot`, `receipt.payment.txHash`, `signature.value`), and
//! every integer must be exact in an IEEE double (|n| ≤ 2^53 − 1) so that the
//! canonical form, and thus the signature, pins one document. The format is
//! in `docs/formats.md`.
//!
//! `GET /v1/orders/{id}/receipt` answers with a [`SignedReceipt`] (its
//! JSON, [`SignedReceipt::parse`]); `GET /v1/receipts/key` with the key
//! that signs them ([`ReceiptKey`]).

use std::fmt;

use sealstream_core::identity::{Did, EvmAddress};
use sealstream_core::json::{self, canonical, JsonError, Limits, Map, Value};
use sealstream_core::keys::{is_blank, ReceiptPublicKey, ReceiptSigningKey};
use sealstream_core::ValidationError;

mod cutoff;
pub mod log;
pub mod pdf;
mod v2;

pub use cutoff::{
    CutoffReason, SignedCutoff, SignedDocument, SubscriptionCutoff, CUTOFF_SCHEMA_VERSION,
};
pub use v2::{Disclosed, Disclosure, ReceiptV2, DIGEST_ALG, RECEIPT_V2_SCHEMA_VERSION};

/// `GET /v1/receipts/key`: the market's Ed25519 public key, which signs
/// receipts and audit heads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptKey {
    /// `ed25519`.
    pub algorithm: String,
    /// The public key, 32 bytes as hex.
    pub public_key_hex: String,
}

/// `schemaVersion` of license receipts; also the first line of the signed bytes.
pub const RECEIPT_SCHEMA_VERSION: &str = "sealstream.receipt.v1";
/// `signature.algorithm` of license receipts.
pub const RECEIPT_SIGNATURE_ALGORITHM: &str = "ed25519";
/// The largest integer a receipt may hold anywhere (2^53 − 1): larger ones
/// have no exact RFC 8785 form.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Most digits of `amount` (a uint256 has 78).
pub const MAX_AMOUNT_DIGITS: usize = 78;
/// Largest `decimals`.
pub const MAX_DECIMALS: u8 = 36;

/// How the order was paid: exactly one of two forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptPayment {
    /// A transaction on an EVM chain (for an `evm` rail).
    Evm {
        /// `0x` + 64 lowercase hex digits.
        tx_hash: String,
        /// EIP-155 chain id (the rail's).
        chain_id: u64,
        /// The paying address, `0x` + 40 hex digits.
        payer: String,
        /// The block that includes the transaction.
        block_number: u64,
    },
    /// An invoice marked paid (for an `invoice` rail).
    Invoice {
        /// The invoice's reference.
        invoice_reference: String,
        /// Who marked it paid (`did:peaq:0x…`).
        marked_by: String,
    },
}

/// What the market attests when an order is paid. See `docs/formats.md`.
#[derive(Clone, Debug, PartialEq)]
pub struct LicenseReceipt {
    /// The order.
    pub order_id: String,
    /// The listing bought.
    pub listing_id: String,
    /// The listing's title when it was bought.
    pub listing_title: String,
    /// The dataset the listing sells.
    pub dataset_id: String,
    /// The dataset's Merkle root, `0x` + 64 lowercase hex digits.
    pub dataset_root: String,
    /// The machine whose chain the dataset covers (`did:peaq:0x…`).
    pub machine_did: String,
    /// The chain's topic.
    pub topic: String,
    /// Index of the dataset's first chunk.
    pub first_index: u64,
    /// Number of chunks in the dataset (at least 1).
    pub chunk_count: u64,
    /// The seller (`did:peaq:0x…`).
    pub seller_did: String,
    /// The buyer (`did:peaq:0x…`).
    pub buyer_did: String,
    /// The buyer's recipient id in access files.
    pub buyer_id: String,
    /// The buyer's X25519 public key, 64 lowercase hex digits.
    pub buyer_public_key_hex: String,
    /// Amount paid in the rail's base units: decimal digits, no leading zeros.
    pub amount: String,
    /// Digits of `amount` after the decimal point.
    pub decimals: u8,
    /// The listing's payment rail, as the listing gives it (an object whose
    /// `kind` is `evm` or `invoice`).
    pub rail: Value,
    /// How it was paid.
    pub payment: ReceiptPayment,
    /// The license terms: a text, an object, or `null`.
    pub license: Value,
    /// When the order was placed, `YYYY-MM-DDTHH:MM:SSZ`.
    pub ordered_at: String,
    /// When it was paid, `YYYY-MM-DDTHH:MM:SSZ`.
    pub paid_at: String,
    /// When this receipt was issued, `YYYY-MM-DDTHH:MM:SSZ`.
    pub issued_at: String,
    /// The compliance preset the buyer accepted, with its hash and the
    /// buyer's statement, when the listing had one (absent otherwise: a
    /// receipt without it reads and signs exactly as before).
    pub compliance: Option<crate::compliance::Accepted>,
}

/// A receipt with the market's signature over its signed bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedReceipt {
    /// What is attested.
    pub receipt: LicenseReceipt,
    /// The key that signed (`signature.publicKeyHex`).
    pub public_key: ReceiptPublicKey,
    /// The Ed25519 signature (`signature.value`).
    pub signature: [u8; 64],
}

/// Why a receipt cannot be read, signed or trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not JSON (or a key given twice in one object).
    #[error("invalid JSON: {0}")]
    Json(#[from] JsonError),
    /// Not a receipt: the field, with its path, and the rule it breaks.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The signature does not verify with `signature.publicKeyHex`.
    #[error("signature.value: the signature does not verify with signature.publicKeyHex (the receipt was changed after signing, or signed by another key)")]
    BadSignature,
    /// Signed by a key other than the pinned one.
    #[error("signature.publicKeyHex: signed by {found}, not by the pinned market key {pinned}")]
    WrongKey {
        /// The key the caller trusts (hex).
        pinned: String,
        /// The key that signed (hex).
        found: String,
    },
    /// A disclosed field of a v2 receipt is not one the market signed.
    #[error("disclosures.{field}: not a field of the signed receipt (its salt, name or value was changed)")]
    NotSigned {
        /// The field's name as disclosed.
        field: String,
    },
    /// A receipt-log proof does not prove what it claims (`log` module):
    /// what fails, with the field.
    #[error("{what}")]
    ProofMismatch {
        /// The field and why it fails.
        what: String,
    },
}

impl ReceiptError {
    /// Whether the document is well formed but not to be trusted (a bad
    /// signature or another signer), as opposed to malformed.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            ReceiptError::BadSignature
                | ReceiptError::WrongKey { .. }
                | ReceiptError::NotSigned { .. }
                | ReceiptError::ProofMismatch { .. }
        )
    }
}

/// The names of a receipt's fields (the 21 every receipt has, and the
/// optional `compliance`), in document order.
pub fn field_names() -> &'static [&'static str] {
    &ALL_FIELDS
}

/// The 21 fields every receipt has (all but the optional compliance
/// record), in document order.
const RECEIPT_FIELDS: &[&str] = ALL_FIELDS.split_at(21).0;
/// The optional 22nd field: the compliance preset accepted.
const COMPLIANCE_FIELD: &str = "compliance";
/// Every field a receipt may have, in document order.
const ALL_FIELDS: [&str; 22] = [
    "orderId",
    "listingId",
    "listingTitle",
    "datasetId",
    "datasetRoot",
    "machineDid",
    "topic",
    "firstIndex",
    "chunkCount",
    "sellerDid",
    "buyerDid",
    "buyerId",
    "buyerPublicKeyHex",
    "amount",
    "decimals",
    "rail",
    "payment",
    "license",
    "orderedAt",
    "paidAt",
    "issuedAt",
    COMPLIANCE_FIELD,
];
const EVM_PAYMENT_FIELDS: [&str; 4] = ["txHash", "chainId", "payer", "blockNumber"];
const INVOICE_PAYMENT_FIELDS: [&str; 2] = ["invoiceReference", "markedBy"];

impl ReceiptPayment {
    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        match self {
            ReceiptPayment::Evm {
                tx_hash,
                chain_id,
                payer,
                block_number,
            } => {
                m.insert("txHash".into(), tx_hash.as_str().into());
                m.insert("chainId".into(), Value::from(*chain_id));
                m.insert("payer".into(), payer.as_str().into());
                m.insert("blockNumber".into(), Value::from(*block_number));
            }
            ReceiptPayment::Invoice {
                invoice_reference,
                marked_by,
            } => {
                m.insert("invoiceReference".into(), invoice_reference.as_str().into());
                m.insert("markedBy".into(), marked_by.as_str().into());
            }
        }
        Value::Object(m)
    }

    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let f = Fields::new(value, "receipt.payment")?;
        let evm = f.obj.contains_key("txHash");
        let invoice = f.obj.contains_key("invoiceReference");
        if evm == invoice {
            return Err(ValidationError::new(
                "receipt.payment",
                "expected exactly one of {txHash, chainId, payer, blockNumber} and {invoiceReference, markedBy}",
            ));
        }
        if evm {
            f.only(&EVM_PAYMENT_FIELDS)?;
            Ok(ReceiptPayment::Evm {
                tx_hash: f.string("txHash")?,
                chain_id: f.integer("chainId")?,
                payer: f.string("payer")?,
                block_number: f.integer("blockNumber")?,
            })
        } else {
            f.only(&INVOICE_PAYMENT_FIELDS)?;
            Ok(ReceiptPayment::Invoice {
                invoice_reference: f.string("invoiceReference")?,
                marked_by: f.string("markedBy")?,
            })
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ReceiptPayment::Evm {
                tx_hash,
                chain_id,
                payer,
                block_number,
            } => {
                lower_hex(tx_hash, "receipt.payment.txHash", true, 64)?;
                safe_integer(*chain_id, "receipt.payment.chainId", 1)?;
                EvmAddress::parse(payer, "receipt.payment.payer")?;
                safe_integer(*block_number, "receipt.payment.blockNumber", 0)?;
            }
            ReceiptPayment::Invoice {
                invoice_reference,
                marked_by,
            } => {
                text(invoice_reference, "receipt.payment.invoiceReference")?;
                Did::parse(marked_by, "receipt.payment.markedBy")?;
            }
        }
        Ok(())
    }
}

impl LicenseReceipt {
    /// Wire JSON of the `receipt` object, in document order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("orderId".into(), self.order_id.as_str().into());
        m.insert("listingId".into(), self.listing_id.as_str().into());
        m.insert("listingTitle".into(), self.listing_title.as_str().into());
        m.insert("datasetId".into(), self.dataset_id.as_str().into());
        m.insert("datasetRoot".into(), self.dataset_root.as_str().into());
        m.insert("machineDid".into(), self.machine_did.as_str().into());
        m.insert("topic".into(), self.topic.as_str().into());
        m.insert("firstIndex".into(), Value::from(self.first_index));
        m.insert("chunkCount".into(), Value::from(self.chunk_count));
        m.insert("sellerDid".into(), self.seller_did.as_str().into());
        m.insert("buyerDid".into(), self.buyer_did.as_str().into());
        m.insert("buyerId".into(), self.buyer_id.as_str().into());
        m.insert(
            "buyerPublicKeyHex".into(),
            self.buyer_public_key_hex.as_str().into(),
        );
        m.insert("amount".into(), self.amount.as_str().into());
        m.insert("decimals".into(), Value::from(u64::from(self.decimals)));
        m.insert("rail".into(), self.rail.clone());
        m.insert("payment".into(), self.payment.to_json());
        m.insert("license".into(), self.license.clone());
        m.insert("orderedAt".into(), self.ordered_at.as_str().into());
        m.insert("paidAt".into(), self.paid_at.as_str().into());
        m.insert("issuedAt".into(), self.issued_at.as_str().into());
        if let Some(c) = &self.compliance {
            m.insert(COMPLIANCE_FIELD.into(), c.to_value());
        }
        Value::Object(m)
    }

    /// Read the `receipt` object: every field is required, none other is
    /// allowed, and every value is checked ([`LicenseReceipt::validate`]).
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let f = Fields::new(value, "receipt")?;
        f.only(&ALL_FIELDS)?;
        let decimals = f.integer("decimals")?;
        let receipt = LicenseReceipt {
            order_id: f.string("orderId")?,
            listing_id: f.string("listingId")?,
            listing_title: f.string("listingTitle")?,
            dataset_id: f.string("datasetId")?,
            dataset_root: f.string("datasetRoot")?,
            machine_did: f.string("machineDid")?,
            topic: f.string("topic")?,
            first_index: f.integer("firstIndex")?,
            chunk_count: f.integer("chunkCount")?,
            seller_did: f.string("sellerDid")?,
            buyer_did: f.string("buyerDid")?,
            buyer_id: f.string("buyerId")?,
            buyer_public_key_hex: f.string("buyerPublicKeyHex")?,
            amount: f.string("amount")?,
            decimals: u8::try_from(decimals)
                .ok()
                .filter(|d| *d <= MAX_DECIMALS)
                .ok_or_else(|| {
                    ValidationError::new(
                        "receipt.decimals",
                        format!("expected an integer from 0 to {MAX_DECIMALS}"),
                    )
                })?,
            rail: f.get("rail")?.clone(),
            payment: ReceiptPayment::from_json(f.get("payment")?)?,
            license: f.get("license")?.clone(),
            ordered_at: f.string("orderedAt")?,
            paid_at: f.string("paidAt")?,
            issued_at: f.string("issuedAt")?,
            compliance: match f.obj.get(COMPLIANCE_FIELD) {
                None => None,
                Some(v) => Some(
                    crate::compliance::Accepted::from_value(v, "receipt.compliance")
                        .map_err(|e| ValidationError::new(e.field, e.message))?,
                ),
            },
        };
        receipt.validate()?;
        Ok(receipt)
    }

    /// Check every value, naming the first bad field with its path. A
    /// receipt that passes has an exact canonical form, so it can be signed
    /// and read back unchanged.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (value, field) in [
            (&self.order_id, "receipt.orderId"),
            (&self.listing_id, "receipt.listingId"),
            (&self.listing_title, "receipt.listingTitle"),
            (&self.dataset_id, "receipt.datasetId"),
        ] {
            text(value, field)?;
        }
        lower_hex(&self.dataset_root, "receipt.datasetRoot", true, 64)?;
        Did::parse(&self.machine_did, "receipt.machineDid")?;
        text(&self.topic, "receipt.topic")?;
        safe_integer(self.first_index, "receipt.firstIndex", 0)?;
        safe_integer(self.chunk_count, "receipt.chunkCount", 1)?;
        Did::parse(&self.seller_did, "receipt.sellerDid")?;
        Did::parse(&self.buyer_did, "receipt.buyerDid")?;
        text(&self.buyer_id, "receipt.buyerId")?;
        lower_hex(
            &self.buyer_public_key_hex,
            "receipt.buyerPublicKeyHex",
            false,
            64,
        )?;
        amount(&self.amount, "receipt.amount")?;
        if self.decimals > MAX_DECIMALS {
            return Err(ValidationError::new(
                "receipt.decimals",
                format!("expected an integer from 0 to {MAX_DECIMALS}"),
            ));
        }
        self.payment.validate()?;
        self.validate_rail()?;
        match &self.license {
            Value::Null | Value::String(_) | Value::Object(_) => {
                exact_numbers(&self.license, "receipt.license")?
            }
            other => {
                return Err(ValidationError::new(
                    "receipt.license",
                    format!(
                        "expected a text, an object or null, got {}",
                        other.type_name()
                    ),
                ))
            }
        }
        utc_time(&self.ordered_at, "receipt.orderedAt")?;
        utc_time(&self.paid_at, "receipt.paidAt")?;
        utc_time(&self.issued_at, "receipt.issuedAt")?;
        Ok(())
    }

    /// The rail is an `evm` or `invoice` object that agrees with `decimals`
    /// and with the form (and chain) of the payment.
    fn validate_rail(&self) -> Result<(), ValidationError> {
        let rail = self
            .rail
            .as_object()
            .ok_or_else(|| ValidationError::new("receipt.rail", "expected an object"))?;
        let kind = rail.get("kind").and_then(Value::as_str).ok_or_else(|| {
            ValidationError::new("receipt.rail.kind", "required: \"evm\" or \"invoice\"")
        })?;
        match (kind, &self.payment) {
            ("evm", ReceiptPayment::Evm { chain_id, .. }) => {
                if let Some(rail_chain) = rail.get("chainId") {
                    if rail_chain.as_u64() != Some(*chain_id) {
                        return Err(ValidationError::new(
                            "receipt.payment.chainId",
                            format!(
                                "{chain_id}, but the rail's chainId is {}",
                                json::write::to_python_compact(rail_chain)
                            ),
                        ));
                    }
                }
            }
            ("invoice", ReceiptPayment::Invoice { .. }) => {}
            ("evm", ReceiptPayment::Invoice { .. }) => {
                return Err(ValidationError::new(
                    "receipt.payment",
                    "an evm rail is paid by a transaction: expected {txHash, chainId, payer, blockNumber}",
                ))
            }
            ("invoice", ReceiptPayment::Evm { .. }) => {
                return Err(ValidationError::new(
                    "receipt.payment",
                    "an invoice rail is paid against an invoice: expected {invoiceReference, markedBy}",
                ))
            }
            _ => {
                return Err(ValidationError::new(
                    "receipt.rail.kind",
                    "expected \"evm\" or \"invoice\"",
                ))
            }
        }
        if let Some(rail_decimals) = rail.get("decimals") {
            if rail_decimals.as_u64() != Some(u64::from(self.decimals)) {
                return Err(ValidationError::new(
                    "receipt.decimals",
                    format!(
                        "{}, but the rail's decimals is {}",
                        self.decimals,
                        json::write::to_python_compact(rail_decimals)
                    ),
                ));
            }
        }
        exact_numbers(&self.rail, "receipt.rail")
    }

    /// The exact bytes the signature covers: `sealstream.receipt.v1\n`
    /// followed by the RFC 8785 form of the `receipt` object. Fails if the
    /// receipt does not [validate](LicenseReceipt::validate).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        self.validate()?;
        signed_bytes_of(RECEIPT_SCHEMA_VERSION, &self.to_json(), "receipt")
    }

    /// Sign with the market's key. Fails, signing nothing, if the receipt
    /// does not [validate](LicenseReceipt::validate): a signed receipt always
    /// reads back.
    pub fn sign(&self, key: &ReceiptSigningKey) -> Result<SignedReceipt, ReceiptError> {
        let bytes = self.signed_bytes()?;
        Ok(SignedReceipt {
            receipt: self.clone(),
            public_key: key.public_key(),
            signature: key.sign(&bytes),
        })
    }

    /// `amount` with `decimals` digits after the point, trailing zeros
    /// dropped (`1500000`, 6 → `1.5`).
    pub fn amount_display(&self) -> String {
        crate::payments::format_units(&self.amount, self.decimals)
    }

    /// What the amount is counted in: the rail's `symbol`, else its
    /// `currency`, else its `token` (`native` or an address).
    pub fn unit(&self) -> Option<&str> {
        ["symbol", "currency", "token"]
            .into_iter()
            .find_map(|k| self.rail.get(k).and_then(Value::as_str))
    }
}

impl SignedReceipt {
    /// Wire JSON: `{schemaVersion, receipt, signature}`.
    pub fn to_json(&self) -> Value {
        document_json(
            RECEIPT_SCHEMA_VERSION,
            "receipt",
            self.receipt.to_json(),
            &self.public_key,
            &self.signature,
        )
    }

    /// The receipt file: indented by 2, ASCII escapes, trailing newline.
    pub fn to_json_pretty(&self) -> String {
        json::write::to_python_pretty(&self.to_json())
    }

    /// Read a receipt file strictly: duplicate keys, unknown fields and bad
    /// values are refused, naming the field with its path. The signature
    /// is not checked here; see [`SignedReceipt::verify`].
    pub fn parse(bytes: &[u8]) -> Result<SignedReceipt, ReceiptError> {
        Ok(Self::from_json(&parse_document(bytes)?)?)
    }

    /// Read a parsed receipt document (see [`SignedReceipt::parse`], which
    /// also refuses duplicate keys).
    pub fn from_json(value: &Value) -> Result<SignedReceipt, ValidationError> {
        let (body, public_key, signature) =
            read_document(value, RECEIPT_SCHEMA_VERSION, "receipt", "receipt file")?;
        let receipt = LicenseReceipt::from_json(body)?;
        Ok(SignedReceipt {
            receipt,
            public_key,
            signature,
        })
    }

    /// Check the signature over the receipt's signed bytes and, when
    /// `pinned` is given, that it is that key's. Without a pinned key this
    /// only shows the receipt is unchanged since *someone* signed it.
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<(), ReceiptError> {
        verify_signature(
            &self.receipt.signed_bytes()?,
            &self.public_key,
            &self.signature,
            pinned,
        )
    }
}

/// The documents the market signs with its receipt key
/// (`sealstream.receipt.v1`, `sealstream.subscription-cutoff.v1`) share one
/// frame: `{schemaVersion, <body>, signature: {algorithm, publicKeyHex,
/// value}}`, the signature over `schemaVersion\n` followed by the RFC 8785
/// form of the body. These functions are that frame, for both.
///
/// The bytes a market signature covers: `schema`, a newline, the RFC 8785
/// form of `body` (whose integers are exact: checked by the caller).
fn signed_bytes_of(schema: &str, body: &Value, field: &str) -> Result<Vec<u8>, ReceiptError> {
    let canonical = canonical::rfc8785(body).map_err(|e| {
        // Unreachable after validation (every integer is exact), kept as an error.
        ValidationError::new(field, e.to_string())
    })?;
    let mut bytes = Vec::with_capacity(schema.len() + 1 + canonical.len());
    bytes.extend_from_slice(schema.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(canonical.as_bytes());
    Ok(bytes)
}

/// A signed document's JSON: `{schemaVersion, <field>: body, signature}`.
fn document_json(
    schema: &str,
    field: &str,
    body: Value,
    public_key: &ReceiptPublicKey,
    signature: &[u8; 64],
) -> Value {
    let mut sig = Map::new();
    sig.insert("algorithm".into(), RECEIPT_SIGNATURE_ALGORITHM.into());
    sig.insert("publicKeyHex".into(), public_key.to_hex().into());
    sig.insert("value".into(), hex::encode(signature).into());
    let mut m = Map::new();
    m.insert("schemaVersion".into(), schema.into());
    m.insert(field.into(), body);
    m.insert("signature".into(), Value::Object(sig));
    Value::Object(m)
}

/// A signed document's bytes as JSON: duplicate keys refused.
fn parse_document(bytes: &[u8]) -> Result<Value, ReceiptError> {
    let limits = Limits {
        max_depth: 64,
        reject_duplicate_keys: true,
    };
    Ok(json::parse_with_limits(bytes, limits)?)
}

/// The `schemaVersion` of a signed document, if it has a text one.
fn schema_of(value: &Value) -> Option<&str> {
    value.get("schemaVersion").and_then(Value::as_str)
}

/// Reads the frame of a signed document of `schema`: its body (`field`,
/// not yet checked) and its signature. `what` names the document in
/// errors about its top level.
fn read_document<'a>(
    value: &'a Value,
    schema: &'static str,
    field: &'static str,
    what: &str,
) -> Result<(&'a Value, ReceiptPublicKey, [u8; 64]), ValidationError> {
    if value.as_object().is_none() {
        return Err(ValidationError::new(what, "expected a JSON object"));
    }
    match value.get("schemaVersion") {
        Some(Value::String(s)) if s == schema => {}
        Some(_) => {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {schema}"),
            ))
        }
        None => {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("required ({schema})"),
            ))
        }
    }
    let f = Fields::of(value, "", schema)?;
    f.only(&["schemaVersion", field, "signature"])?;
    let body = f.get(field)?;
    let s = Fields::of(f.get("signature")?, "signature", schema)?;
    s.only(&["algorithm", "publicKeyHex", "value"])?;
    if s.string("algorithm")? != RECEIPT_SIGNATURE_ALGORITHM {
        return Err(ValidationError::new(
            "signature.algorithm",
            format!("expected {RECEIPT_SIGNATURE_ALGORITHM}"),
        ));
    }
    let key_hex = s.string("publicKeyHex")?;
    lower_hex(&key_hex, "signature.publicKeyHex", false, 64)?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(&key_hex, &mut key).expect("checked hex");
    let public_key = ReceiptPublicKey::from_bytes(&key, "signature.publicKeyHex")?;
    let value_hex = s.string("value")?;
    lower_hex(&value_hex, "signature.value", false, 128)?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&value_hex, &mut signature).expect("checked hex");
    Ok((body, public_key, signature))
}

/// Checks a market signature over `bytes` and, when `pinned` is given,
/// that `public_key` is that key.
fn verify_signature(
    bytes: &[u8],
    public_key: &ReceiptPublicKey,
    signature: &[u8; 64],
    pinned: Option<&ReceiptPublicKey>,
) -> Result<(), ReceiptError> {
    if let Some(pinned) = pinned {
        if pinned != public_key {
            return Err(ReceiptError::WrongKey {
                pinned: pinned.to_hex(),
                found: public_key.to_hex(),
            });
        }
    }
    if !public_key.verify(bytes, signature) {
        return Err(ReceiptError::BadSignature);
    }
    Ok(())
}

impl fmt::Display for ReceiptPayment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptPayment::Evm {
                tx_hash,
                chain_id,
                payer,
                block_number,
            } => write!(
                f,
                "transaction {tx_hash} on chain {chain_id} from {payer} (block {block_number})"
            ),
            ReceiptPayment::Invoice {
                invoice_reference,
                marked_by,
            } => write!(f, "invoice {invoice_reference}, marked paid by {marked_by}"),
        }
    }
}

/// An object's members, read with their paths.
struct Fields<'a> {
    obj: &'a Map,
    path: &'a str,
    /// The document's schema, for unknown fields.
    schema: &'static str,
}

impl<'a> Fields<'a> {
    /// The members of an object of a receipt.
    fn new(value: &'a Value, path: &'a str) -> Result<Self, ValidationError> {
        Self::of(value, path, RECEIPT_SCHEMA_VERSION)
    }

    /// The members of an object of a document of `schema`.
    fn of(value: &'a Value, path: &'a str, schema: &'static str) -> Result<Self, ValidationError> {
        let obj = value.as_object().ok_or_else(|| {
            ValidationError::new(
                path,
                format!("expected an object, got {}", value.type_name()),
            )
        })?;
        Ok(Fields { obj, path, schema })
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn only(&self, known: &[&str]) -> Result<(), ValidationError> {
        match self.obj.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ValidationError::new(
                self.at(k),
                format!("unknown field (not part of {})", self.schema),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, key: &str) -> Result<&'a Value, ValidationError> {
        self.obj
            .get(key)
            .ok_or_else(|| ValidationError::new(self.at(key), "required"))
    }

    fn string(&self, key: &str) -> Result<String, ValidationError> {
        match self.get(key)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(ValidationError::new(
                self.at(key),
                format!("expected a string, got {}", other.type_name()),
            )),
        }
    }

    fn integer(&self, key: &str) -> Result<u64, ValidationError> {
        let value = self.get(key)?;
        value
            .as_u64()
            .filter(|n| *n <= MAX_SAFE_INTEGER)
            .ok_or_else(|| {
                ValidationError::new(
                    self.at(key),
                    format!(
                        "expected an integer from 0 to {MAX_SAFE_INTEGER}, got {}",
                        json::write::to_python_compact(value)
                    ),
                )
            })
    }
}

/// A non-blank text.
fn text(value: &str, field: &str) -> Result<(), ValidationError> {
    if is_blank(value) {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    Ok(())
}

/// `digits` lowercase hex digits, after `0x` when `prefixed`.
fn lower_hex(
    value: &str,
    field: &str,
    prefixed: bool,
    digits: usize,
) -> Result<(), ValidationError> {
    let body = if prefixed {
        value.strip_prefix("0x")
    } else {
        Some(value)
    };
    let ok = body.is_some_and(|b| {
        b.len() == digits && b.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "expected {}{digits} lowercase hex digits",
                if prefixed { "0x followed by " } else { "" }
            ),
        ))
    }
}

fn safe_integer(value: u64, field: &str, min: u64) -> Result<(), ValidationError> {
    if value < min || value > MAX_SAFE_INTEGER {
        return Err(ValidationError::new(
            field,
            format!("expected an integer from {min} to {MAX_SAFE_INTEGER}"),
        ));
    }
    Ok(())
}

/// Base units: decimal digits without leading zeros, at most 78.
fn amount(value: &str, field: &str) -> Result<(), ValidationError> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    if !digits || (value.len() > 1 && value.starts_with('0')) || value.len() > MAX_AMOUNT_DIGITS {
        return Err(ValidationError::new(
            field,
            format!(
                "expected an integer in base units as a string of at most {MAX_AMOUNT_DIGITS} digits, without leading zeros"
            ),
        ));
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ`, a real UTC time from 1970 on.
fn utc_time(value: &str, field: &str) -> Result<(), ValidationError> {
    if sealstream_core::utc::parse_seconds(value).is_some_and(|secs| secs >= 0) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "expected a UTC time YYYY-MM-DDTHH:MM:SSZ",
        ))
    }
}

/// Every integer inside `value` is exact in a double, so that the RFC 8785
/// form (which writes numbers as doubles) pins it.
fn exact_numbers(value: &Value, path: &str) -> Result<(), ValidationError> {
    match value {
        Value::Number(n) if n.is_int() => {
            let exact = n
                .as_i64()
                .is_some_and(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER);
            if !exact {
                return Err(ValidationError::new(
                    path,
                    format!("integer beyond ±{MAX_SAFE_INTEGER} has no exact canonical form (write it as a string)"),
                ));
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| exact_numbers(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| exact_numbers(v, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8032 test 1's secret key.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    /// The signature of [`example`] by [`SEED`], computed once (Ed25519 is deterministic).
    const GOLDEN_SIGNATURE: &str = "8e7e959c1a7f9d8ea375ef0ef5894933c7cb31880df69565c4b8ab487d7e3577fa608f123021c614823af2dd702a1f86a09baaca30843e1b94de23c606865a08";

    fn key() -> ReceiptSigningKey {
        ReceiptSigningKey::from_hex(SEED, "seed").unwrap()
    }

    fn obj(text: &str) -> Value {
        json::parse(text.as_bytes()).unwrap()
    }

    /// The example of docs/formats.md.
    pub(super) fn example() -> LicenseReceipt {
        LicenseReceipt {
            order_id: "or_5c0e1f7a9b3d42e8a61f0c2d7e9b8a43".into(),
            listing_id: "ls_0f4e2a91c37b5d68e0a1f2b3c4d5e6f7".into(),
            listing_title: "GPS traces, Munich ring road, 2026-11".into(),
            dataset_id: "ds_8a2c4e6f1b3d5a79".into(),
            dataset_root: "0x365d83360136b9689ade346c279d23c328d7aa52c5c3c48ec320a5c07fd15f3d"
                .into(),
            machine_did: "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1".into(),
            topic: "/sensor/gps".into(),
            first_index: 0,
            chunk_count: 3,
            seller_did: "did:peaq:0x9C5e5e3F2d1a0B8c7D6e5F4a3B2c1D0e9F8a7B6c".into(),
            buyer_did: "did:peaq:0x000000000000000000000000000000000000b0b0".into(),
            buyer_id: "did:peaq:0x000000000000000000000000000000000000b0b0".into(),
            buyer_public_key_hex:
                "ad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101".into(),
            amount: "1500000".into(),
            decimals: 6,
            rail: obj(
                r#"{"kind":"evm","chainId":8453,"token":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913","decimals":6,"payTo":"0x71C7656EC7ab88b098defB751B7401B5f6d8976F","symbol":"USDC"}"#,
            ),
            payment: ReceiptPayment::Evm {
                tx_hash: "0x5e8d0a4b7c2f91e3d6a8b0c4e2f7193a5d8c6b0e4f2a7d9c1b3e5f8a0c2d4e6f"
                    .into(),
                chain_id: 8453,
                payer: "0x4B0897b0513fdC7C541B6d9D7E929C4e5364D2dB".into(),
                block_number: 23_411_873,
            },
            license: obj(
                r#"{"name":"sealstream-data-1.0","commercialUse":true,"redistribution":false}"#,
            ),
            ordered_at: "2026-11-21T19:03:19Z".into(),
            paid_at: "2026-11-21T19:04:02Z".into(),
            issued_at: "2026-11-21T19:04:05Z".into(),
            compliance: None,
        }
    }

    fn invoice_example() -> LicenseReceipt {
        LicenseReceipt {
            rail: obj(r#"{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Acme GmbH"}"#),
            payment: ReceiptPayment::Invoice {
                invoice_reference: "INV-2026-0042".into(),
                marked_by: "did:peaq:0x9C5e5e3F2d1a0B8c7D6e5F4a3B2c1D0e9F8a7B6c".into(),
            },
            amount: "120000".into(),
            decimals: 2,
            license: "CC BY-NC 4.0".into(),
            ..example()
        }
    }

    type ReceiptEdit = Box<dyn Fn(&mut LicenseReceipt)>;
    type DocumentEdit = Box<dyn Fn(&mut Map)>;

    /// The document of `signed` with `edit` applied to it.
    fn edited(signed: &SignedReceipt, edit: impl FnOnce(&mut Map)) -> Vec<u8> {
        let mut v = signed.to_json();
        let Value::Object(m) = &mut v else {
            unreachable!()
        };
        edit(m);
        json::write::to_python_pretty(&v).into_bytes()
    }

    fn receipt_mut(m: &mut Map) -> &mut Map {
        match m.get_mut("receipt") {
            Some(Value::Object(r)) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn golden_signature() {
        let signed = example().sign(&key()).unwrap();
        assert_eq!(signed.public_key.to_hex(), PUBLIC);
        assert_eq!(hex::encode(signed.signature), GOLDEN_SIGNATURE);
        let bytes = example().signed_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("sealstream.receipt.v1\n{\"amount\":\"1500000\","));
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn round_trip_and_verify() {
        for receipt in [example(), invoice_example()] {
            let signed = receipt.sign(&key()).unwrap();
            let text = signed.to_json_pretty();
            let read = SignedReceipt::parse(text.as_bytes()).unwrap();
            assert_eq!(read, signed);
            assert_eq!(read.to_json_pretty(), text);
            read.verify(None).unwrap();
            read.verify(Some(&key().public_key())).unwrap();
        }
    }

    #[test]
    fn a_null_license_and_a_compact_file_verify() {
        let receipt = LicenseReceipt {
            license: Value::Null,
            ..example()
        };
        let signed = receipt.sign(&key()).unwrap();
        let compact = json::write::to_python_compact(&signed.to_json());
        let read = SignedReceipt::parse(compact.as_bytes()).unwrap();
        assert_eq!(read.receipt.license, Value::Null);
        read.verify(Some(&key().public_key())).unwrap();
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let signed = example().sign(&key()).unwrap();
        let other_did = "did:peaq:0x1111111111111111111111111111111111111111".to_string();
        let edits: Vec<(&str, ReceiptEdit)> = vec![
            ("orderId", Box::new(|r| r.order_id.push('x'))),
            ("listingId", Box::new(|r| r.listing_id.push('x'))),
            (
                "listingTitle",
                Box::new(|r| r.listing_title = r.listing_title.to_uppercase()),
            ),
            ("datasetId", Box::new(|r| r.dataset_id.push('x'))),
            (
                "datasetRoot",
                Box::new(|r| r.dataset_root = format!("0x{}", "ab".repeat(32))),
            ),
            (
                "machineDid",
                Box::new({
                    let d = other_did.clone();
                    move |r| r.machine_did = d.clone()
                }),
            ),
            ("topic", Box::new(|r| r.topic = "/sensor/imu".into())),
            ("firstIndex", Box::new(|r| r.first_index = 1)),
            ("chunkCount", Box::new(|r| r.chunk_count = 2)),
            (
                "sellerDid",
                Box::new({
                    let d = other_did.clone();
                    move |r| r.seller_did = d.clone()
                }),
            ),
            (
                "buyerDid",
                Box::new({
                    let d = other_did.clone();
                    move |r| r.buyer_did = d.clone()
                }),
            ),
            ("buyerId", Box::new(|r| r.buyer_id = "someone else".into())),
            (
                "buyerPublicKeyHex",
                Box::new(|r| r.buyer_public_key_hex = "cd".repeat(32)),
            ),
            ("amount", Box::new(|r| r.amount = "150000".into())),
            (
                "decimals",
                Box::new(|r| {
                    r.decimals = 5;
                    r.rail = obj(
                        r#"{"kind":"evm","chainId":8453,"token":"native","decimals":5,"payTo":"0x71C7656EC7ab88b098defB751B7401B5f6d8976F"}"#,
                    );
                }),
            ),
            (
                "rail",
                Box::new(|r| {
                    r.rail = obj(
                        r#"{"kind":"evm","chainId":8453,"token":"native","decimals":6,"payTo":"0x71C7656EC7ab88b098defB751B7401B5f6d8976F"}"#,
                    )
                }),
            ),
            (
                "payment",
                Box::new(|r| {
                    if let ReceiptPayment::Evm { block_number, .. } = &mut r.payment {
                        *block_number += 1;
                    }
                }),
            ),
            ("license", Box::new(|r| r.license = Value::Null)),
            (
                "orderedAt",
                Box::new(|r| r.ordered_at = "2026-11-21T19:03:18Z".into()),
            ),
            (
                "paidAt",
                Box::new(|r| r.paid_at = "2026-11-21T19:04:03Z".into()),
            ),
            (
                "issuedAt",
                Box::new(|r| r.issued_at = "2026-11-22T19:04:05Z".into()),
            ),
        ];
        assert_eq!(edits.len(), RECEIPT_FIELDS.len(), "one edit per field");
        for (field, edit) in edits {
            let mut tampered = signed.clone();
            edit(&mut tampered.receipt);
            assert_ne!(tampered.receipt, signed.receipt, "{field}: no change");
            // Still a well-formed receipt, read back from its file.
            let read = SignedReceipt::parse(tampered.to_json_pretty().as_bytes())
                .unwrap_or_else(|e| panic!("{field}: {e}"));
            assert_eq!(
                read.verify(None),
                Err(ReceiptError::BadSignature),
                "{field}"
            );
            assert!(read.verify(None).unwrap_err().is_integrity());
        }
        // The signature itself, bit by bit in one byte.
        for bit in 0..8 {
            let mut tampered = signed.clone();
            tampered.signature[17] ^= 1 << bit;
            assert_eq!(tampered.verify(None), Err(ReceiptError::BadSignature));
        }
        // Another valid key in the file: the signature is not by it.
        let mut swapped = signed.clone();
        swapped.public_key = ReceiptSigningKey::generate().public_key();
        assert_eq!(swapped.verify(None), Err(ReceiptError::BadSignature));
    }

    #[test]
    fn the_pinned_key_must_be_the_signer() {
        let stranger = ReceiptSigningKey::generate();
        let forged = example().sign(&stranger).unwrap();
        // Self-consistent, so without a pin it verifies...
        forged.verify(None).unwrap();
        // ...but not as the market's.
        let e = forged.verify(Some(&key().public_key())).unwrap_err();
        assert_eq!(
            e,
            ReceiptError::WrongKey {
                pinned: PUBLIC.into(),
                found: stranger.public_key().to_hex()
            }
        );
        assert!(e.is_integrity());
        assert!(e
            .to_string()
            .starts_with("signature.publicKeyHex: signed by "));
    }

    #[test]
    fn strict_reading_names_the_field() {
        let signed = example().sign(&key()).unwrap();
        let set = |k: &'static str, v: &'static str| {
            move |m: &mut Map| {
                receipt_mut(m).insert(k.into(), obj(v));
            }
        };
        let set_payment = |k: &'static str, v: &'static str| {
            move |m: &mut Map| {
                if let Some(Value::Object(p)) = receipt_mut(m).get_mut("payment") {
                    p.insert(k.into(), obj(v));
                }
            }
        };
        // A member of the receipt set to a JSON value: the field named and
        // words of the refusal.
        let members = [
            ("discount", "1", "receipt.discount", "unknown field"),
            (
                "orderId",
                "7",
                "receipt.orderId",
                "expected a string, got integer",
            ),
            (
                "listingTitle",
                r#"" \t ""#,
                "receipt.listingTitle",
                "must not be empty",
            ),
            (
                "datasetRoot",
                r#""0x365D83360136b9689ade346c279d23c328d7aa52c5c3c48ec320a5c07fd15f3d""#,
                "receipt.datasetRoot",
                "lowercase hex",
            ),
            (
                "datasetRoot",
                r#""365d83360136b9689ade346c279d23c328d7aa52c5c3c48ec320a5c07fd15f3d""#,
                "receipt.datasetRoot",
                "0x followed by 64",
            ),
            (
                "machineDid",
                r#""did:peaq:0x3d91""#,
                "receipt.machineDid",
                "did:peaq:0x",
            ),
            (
                "sellerDid",
                r#""did:key:z6Mk""#,
                "receipt.sellerDid",
                "did:peaq:0x",
            ),
            ("firstIndex", "-1", "receipt.firstIndex", "from 0 to"),
            (
                "firstIndex",
                "9007199254740992",
                "receipt.firstIndex",
                "from 0 to 9007199254740991",
            ),
            ("chunkCount", "0", "receipt.chunkCount", "from 1 to"),
            ("chunkCount", "3.0", "receipt.chunkCount", "got 3.0"),
            (
                "buyerPublicKeyHex",
                r#""0xad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101""#,
                "receipt.buyerPublicKeyHex",
                "64 lowercase hex",
            ),
            (
                "amount",
                r#""01500000""#,
                "receipt.amount",
                "without leading zeros",
            ),
            ("amount", r#""1.5""#, "receipt.amount", "base units"),
            ("amount", "1500000", "receipt.amount", "expected a string"),
            ("decimals", "37", "receipt.decimals", "from 0 to 36"),
            (
                "decimals",
                "5",
                "receipt.decimals",
                "the rail's decimals is 6",
            ),
            ("rail", r#""evm""#, "receipt.rail", "expected an object"),
            (
                "rail",
                r#"{"kind":"lightning"}"#,
                "receipt.rail.kind",
                "\"evm\" or \"invoice\"",
            ),
            (
                "rail",
                r#"{"kind":"evm","chainId":1,"decimals":6}"#,
                "receipt.payment.chainId",
                "8453, but the rail's chainId is 1",
            ),
            (
                "rail",
                r#"{"kind":"invoice","currency":"EUR","decimals":6}"#,
                "receipt.payment",
                "an invoice rail",
            ),
            (
                "rail",
                r#"{"kind":"evm","chainId":8453,"decimals":6,"big":9007199254740993}"#,
                "receipt.rail.big",
                "no exact canonical form",
            ),
            (
                "payment",
                r#"{"txHash":"0x00","invoiceReference":"INV-1"}"#,
                "receipt.payment",
                "exactly one of",
            ),
            ("payment", r#"{}"#, "receipt.payment", "exactly one of"),
            ("license", "[1]", "receipt.license", "got array"),
            (
                "license",
                r#"{"terms":[{"n":-9007199254740992}]}"#,
                "receipt.license.terms[0].n",
                "no exact canonical form",
            ),
            (
                "orderedAt",
                r#""2026-11-21T19:03:19.5Z""#,
                "receipt.orderedAt",
                "YYYY-MM-DDTHH:MM:SSZ",
            ),
            (
                "paidAt",
                r#""2026-11-21T20:04:02+01:00""#,
                "receipt.paidAt",
                "YYYY-MM-DDTHH:MM:SSZ",
            ),
            (
                "issuedAt",
                r#""2026-02-30T00:00:00Z""#,
                "receipt.issuedAt",
                "YYYY-MM-DDTHH:MM:SSZ",
            ),
            (
                "issuedAt",
                r#""2026-11-21t19:04:05z""#,
                "receipt.issuedAt",
                "YYYY-MM-DDTHH:MM:SSZ",
            ),
        ];
        // The same for a member of the receipt's payment.
        let payment_members = [
            ("memo", r#""x""#, "receipt.payment.memo", "unknown field"),
            (
                "txHash",
                r#""0x1234""#,
                "receipt.payment.txHash",
                "0x followed by 64",
            ),
            (
                "payer",
                r#""0x4B08""#,
                "receipt.payment.payer",
                "40 hex digits",
            ),
            ("chainId", "0", "receipt.payment.chainId", "from 1 to"),
            (
                "blockNumber",
                r#""12""#,
                "receipt.payment.blockNumber",
                "got \"12\"",
            ),
        ];
        let mut cases: Vec<(DocumentEdit, &str, &str)> = vec![
            (
                Box::new(|m| {
                    m.insert("extra".into(), Value::Null);
                }),
                "extra",
                "unknown field",
            ),
            (
                Box::new(|m| {
                    m.insert("schemaVersion".into(), "sealstream.receipt.v2".into());
                }),
                "schemaVersion",
                "expected sealstream.receipt.v1",
            ),
            (
                Box::new(|m| {
                    m.shift_remove("schemaVersion");
                }),
                "schemaVersion",
                "required",
            ),
            (
                Box::new(|m| {
                    m.shift_remove("signature");
                }),
                "signature",
                "required",
            ),
            (
                Box::new(|m| {
                    receipt_mut(m).shift_remove("paidAt");
                }),
                "receipt.paidAt",
                "required",
            ),
            (
                Box::new(|m| {
                    m.insert(
                        "signature".into(),
                        obj(r#"{"algorithm":"eip191-secp256k1","publicKeyHex":"","value":""}"#),
                    );
                }),
                "signature.algorithm",
                "expected ed25519",
            ),
            (
                Box::new(|m| {
                    if let Some(Value::Object(s)) = m.get_mut("signature") {
                        s.insert("value".into(), "ab".into());
                    }
                }),
                "signature.value",
                "128 lowercase hex",
            ),
            (
                Box::new(|m| {
                    if let Some(Value::Object(s)) = m.get_mut("signature") {
                        s.insert("keyId".into(), "k".into());
                    }
                }),
                "signature.keyId",
                "unknown field",
            ),
            // y = 2 is not on the curve.
            (
                Box::new(|m| {
                    if let Some(Value::Object(s)) = m.get_mut("signature") {
                        s.insert(
                            "publicKeyHex".into(),
                            format!("02{}", "00".repeat(31)).into(),
                        );
                    }
                }),
                "signature.publicKeyHex",
                "not a valid Ed25519 public key",
            ),
        ];
        for (member, value, field, want) in members {
            cases.push((Box::new(set(member, value)), field, want));
        }
        for (member, value, field, want) in payment_members {
            cases.push((Box::new(set_payment(member, value)), field, want));
        }
        for (edit, field, want) in cases {
            let bytes = edited(&signed, edit);
            match SignedReceipt::parse(&bytes) {
                Err(ReceiptError::Invalid(e)) => {
                    assert_eq!(e.field, field, "{e}");
                    assert!(e.constraint.contains(want), "{field}: {e}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        // Not an object at all; not JSON; a key given twice.
        assert!(matches!(
            SignedReceipt::parse(b"[]"),
            Err(ReceiptError::Invalid(e)) if e.field == "receipt file"
        ));
        assert!(matches!(
            SignedReceipt::parse(b"{"),
            Err(ReceiptError::Json(_))
        ));
        let text = signed.to_json_pretty().replacen(
            "\"amount\": \"1500000\",",
            "\"amount\": \"1500000\",\n    \"amount\": \"9500000\",",
            1,
        );
        match SignedReceipt::parse(text.as_bytes()) {
            Err(ReceiptError::Json(e)) => assert_eq!(e.message, "duplicate key \"amount\""),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invalid_receipt_is_not_signed() {
        let bad = LicenseReceipt {
            dataset_root: "0x12".into(),
            ..example()
        };
        assert!(matches!(
            bad.sign(&key()),
            Err(ReceiptError::Invalid(e)) if e.field == "receipt.datasetRoot"
        ));
        let huge = LicenseReceipt {
            license: obj(r#"{"n":1e300,"m":123456789012345678901234567890}"#),
            ..example()
        };
        assert!(matches!(
            huge.sign(&key()),
            Err(ReceiptError::Invalid(e)) if e.field == "receipt.license.m"
        ));
        let far = LicenseReceipt {
            first_index: MAX_SAFE_INTEGER + 1,
            ..example()
        };
        assert!(far.sign(&key()).is_err());
    }

    #[test]
    fn amounts_display_with_their_decimals() {
        let with = |amount: &str, decimals: u8| LicenseReceipt {
            amount: amount.into(),
            decimals,
            ..example()
        };
        assert_eq!(example().amount_display(), "1.5");
        assert_eq!(with("5", 6).amount_display(), "0.000005");
        assert_eq!(with("0", 2).amount_display(), "0");
        assert_eq!(with("120000", 2).amount_display(), "1200");
        assert_eq!(with("42", 0).amount_display(), "42");
        assert_eq!(example().unit(), Some("USDC"));
        assert_eq!(invoice_example().unit(), Some("EUR"));
    }

    fn non_blank() -> impl Strategy<Value = String> {
        any::<String>().prop_filter("non-blank", |s| !is_blank(s))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn parse_of_to_json_is_identity(
            order_id in non_blank(),
            listing_id in non_blank(),
            listing_title in non_blank(),
            dataset_id in non_blank(),
            topic in non_blank(),
            buyer_id in non_blank(),
            invoice_reference in non_blank(),
            license in any::<String>(),
            license_key in any::<String>(),
            invoice in any::<bool>(),
        ) {
            let base = if invoice { invoice_example() } else { example() };
            let mut license_obj = Map::new();
            license_obj.insert(license_key, Value::String(license.clone()));
            let receipt = LicenseReceipt {
                order_id,
                listing_id,
                listing_title,
                dataset_id,
                topic,
                buyer_id,
                payment: match base.payment {
                    ReceiptPayment::Invoice { marked_by, .. } => ReceiptPayment::Invoice { invoice_reference, marked_by },
                    evm => evm,
                },
                license: if invoice { Value::String(license) } else { Value::Object(license_obj) },
                ..base
            };
            let signed = receipt.sign(&key()).unwrap();
            let read = SignedReceipt::parse(signed.to_json_pretty().as_bytes()).unwrap();
            prop_assert_eq!(&read, &signed);
            prop_assert!(read.verify(Some(&key().public_key())).is_ok());
        }
    }
}
