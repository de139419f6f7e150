//! Cut-off notices (`sealstream.subscription-cutoff.v1`): the market's
//! signed statement that a live subscription ended — which subscription,
//! why (lapsed, cancelled, revoked), from when (`effectiveAt`, the access
//! end `E`) and the highest chunk index it is entitled to. Signed with the
//! receipt key in the receipts' frame ([`super::read_document`],
//! [`super::verify_signature`]), so it is checked offline exactly as a
//! receipt is, pinned to the key `GET /v1/receipts/key` publishes. The
//! format is in `docs/subscriptions.md`.

use std::fmt;

use sealstream_core::identity::Did;
use sealstream_core::json::{Map, Value};
use sealstream_core::keys::{ReceiptPublicKey, ReceiptSigningKey};
use sealstream_core::ValidationError;

use super::{
    document_json, parse_document, read_document, safe_integer, schema_of, signed_bytes_of, text,
    utc_time, verify_signature, Fields, ReceiptError, SignedReceipt, RECEIPT_SCHEMA_VERSION,
};

/// `schemaVersion` of cut-off notices; also the first line of the signed
/// bytes.
pub const CUTOFF_SCHEMA_VERSION: &str = "sealstream.subscription-cutoff.v1";

const CUTOFF_FIELDS: [&str; 12] = [
    "subscriptionId",
    "listingId",
    "sellerDid",
    "buyerDid",
    "buyerId",
    "machineDid",
    "topic",
    "lastIndexEntitled",
    "reason",
    "detail",
    "effectiveAt",
    "issuedAt",
];

/// Why a subscription ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutoffReason {
    /// Not renewed within the grace window (`E = T + G`).
    Lapsed,
    /// Cancelled by the buyer (`E = T`).
    Cancelled,
    /// Revoked by the seller (`E` = the revocation time).
    Revoked,
}

impl CutoffReason {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            CutoffReason::Lapsed => "lapsed",
            CutoffReason::Cancelled => "cancelled",
            CutoffReason::Revoked => "revoked",
        }
    }

    /// From the wire text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "lapsed" => Some(CutoffReason::Lapsed),
            "cancelled" => Some(CutoffReason::Cancelled),
            "revoked" => Some(CutoffReason::Revoked),
            _ => None,
        }
    }
}

impl fmt::Display for CutoffReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the market attests when a subscription ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionCutoff {
    /// The subscription (`sub_…`).
    pub subscription_id: String,
    /// Its listing.
    pub listing_id: String,
    /// The seller (`did:peaq:0x…`).
    pub seller_did: String,
    /// The buyer (`did:peaq:0x…`).
    pub buyer_did: String,
    /// The buyer's recipient id in the wrapped keys.
    pub buyer_id: String,
    /// The machine of the topic (`did:peaq:0x…`).
    pub machine_did: String,
    /// The topic.
    pub topic: String,
    /// The highest chunk index the subscription is entitled to (every
    /// chunk accepted after `effectiveAt` is above it); `None` when it is
    /// entitled to none.
    pub last_index_entitled: Option<u64>,
    /// Why it ended.
    pub reason: CutoffReason,
    /// The reason in words (the seller's, for a revocation).
    pub detail: String,
    /// The end of access `E`, `YYYY-MM-DDTHH:MM:SSZ`: chunks accepted at
    /// or after it are not the subscription's.
    pub effective_at: String,
    /// When the notice was issued, `YYYY-MM-DDTHH:MM:SSZ`.
    pub issued_at: String,
}

impl SubscriptionCutoff {
    /// Wire JSON of the `cutoff` object, in document order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "subscriptionId".into(),
            self.subscription_id.as_str().into(),
        );
        m.insert("listingId".into(), self.listing_id.as_str().into());
        m.insert("sellerDid".into(), self.seller_did.as_str().into());
        m.insert("buyerDid".into(), self.buyer_did.as_str().into());
        m.insert("buyerId".into(), self.buyer_id.as_str().into());
        m.insert("machineDid".into(), self.machine_did.as_str().into());
        m.insert("topic".into(), self.topic.as_str().into());
        m.insert(
            "lastIndexEntitled".into(),
            self.last_index_entitled.map_or(Value::Null, Value::from),
        );
        m.insert("reason".into(), self.reason.as_str().into());
        m.insert("detail".into(), self.detail.as_str().into());
        m.insert("effectiveAt".into(), self.effective_at.as_str().into());
        m.insert("issuedAt".into(), self.issued_at.as_str().into());
        Value::Object(m)
    }

    /// Reads the `cutoff` object: every field required, none other
    /// allowed, every value checked ([`SubscriptionCutoff::validate`]).
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let f = Fields::of(value, "cutoff", CUTOFF_SCHEMA_VERSION)?;
        f.only(&CUTOFF_FIELDS)?;
        let last = match f.get("lastIndexEntitled")? {
            Value::Null => None,
            _ => Some(f.integer("lastIndexEntitled")?),
        };
        let reason = f.string("reason")?;
        let cutoff = SubscriptionCutoff {
            subscription_id: f.string("subscriptionId")?,
            listing_id: f.string("listingId")?,
            seller_did: f.string("sellerDid")?,
            buyer_did: f.string("buyerDid")?,
            buyer_id: f.string("buyerId")?,
            machine_did: f.string("machineDid")?,
            topic: f.string("topic")?,
            last_index_entitled: last,
            reason: CutoffReason::parse(&reason).ok_or_else(|| {
                ValidationError::new("cutoff.reason", "expected lapsed, cancelled or revoked")
            })?,
            detail: f.string("detail")?,
            effective_at: f.string("effectiveAt")?,
            issued_at: f.string("issuedAt")?,
        };
        cutoff.validate()?;
        Ok(cutoff)
    }

    /// Checks every value, naming the first bad field with its path.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (value, field) in [
            (&self.subscription_id, "cutoff.subscriptionId"),
            (&self.listing_id, "cutoff.listingId"),
            (&self.buyer_id, "cutoff.buyerId"),
            (&self.topic, "cutoff.topic"),
            (&self.detail, "cutoff.detail"),
        ] {
            text(value, field)?;
        }
        Did::parse(&self.seller_did, "cutoff.sellerDid")?;
        Did::parse(&self.buyer_did, "cutoff.buyerDid")?;
        Did::parse(&self.machine_did, "cutoff.machineDid")?;
        if let Some(last) = self.last_index_entitled {
            safe_integer(last, "cutoff.lastIndexEntitled", 0)?;
        }
        utc_time(&self.effective_at, "cutoff.effectiveAt")?;
        utc_time(&self.issued_at, "cutoff.issuedAt")?;
        Ok(())
    }

    /// The exact bytes the signature covers:
    /// `sealstream.subscription-cutoff.v1\n` followed by the RFC 8785 form
    /// of the `cutoff` object. Fails if it does not validate.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        self.validate()?;
        signed_bytes_of(CUTOFF_SCHEMA_VERSION, &self.to_json(), "cutoff")
    }

    /// Signs with the market's receipt key (nothing is signed if it does
    /// not validate).
    pub fn sign(&self, key: &ReceiptSigningKey) -> Result<SignedCutoff, ReceiptError> {
        let bytes = self.signed_bytes()?;
        Ok(SignedCutoff {
            cutoff: self.clone(),
            public_key: key.public_key(),
            signature: key.sign(&bytes),
        })
    }
}

/// A cut-off notice with the market's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCutoff {
    /// What is attested.
    pub cutoff: SubscriptionCutoff,
    /// The key that signed (`signature.publicKeyHex`).
    pub public_key: ReceiptPublicKey,
    /// The Ed25519 signature (`signature.value`).
    pub signature: [u8; 64],
}

impl SignedCutoff {
    /// Wire JSON: `{schemaVersion, cutoff, signature}`.
    pub fn to_json(&self) -> Value {
        document_json(
            CUTOFF_SCHEMA_VERSION,
            "cutoff",
            self.cutoff.to_json(),
            &self.public_key,
            &self.signature,
        )
    }

    /// The notice file: indented by 2, ASCII escapes, trailing newline.
    pub fn to_json_pretty(&self) -> String {
        sealstream_core::json::write::to_python_pretty(&self.to_json())
    }

    /// Reads a notice strictly (duplicate keys, unknown fields and bad
    /// values refused, the field named). The signature is not checked
    /// here; see [`SignedCutoff::verify`].
    pub fn parse(bytes: &[u8]) -> Result<SignedCutoff, ReceiptError> {
        Ok(Self::from_json(&parse_document(bytes)?)?)
    }

    /// Reads a parsed notice document.
    pub fn from_json(value: &Value) -> Result<SignedCutoff, ValidationError> {
        let (body, public_key, signature) =
            read_document(value, CUTOFF_SCHEMA_VERSION, "cutoff", "cut-off notice")?;
        Ok(SignedCutoff {
            cutoff: SubscriptionCutoff::from_json(body)?,
            public_key,
            signature,
        })
    }

    /// Checks the signature and, when `pinned` is given, that it is that
    /// key's: as [`SignedReceipt::verify`].
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<(), ReceiptError> {
        verify_signature(
            &self.cutoff.signed_bytes()?,
            &self.public_key,
            &self.signature,
            pinned,
        )
    }
}

/// A document signed with the market's receipt key, of either kind (by
/// its `schemaVersion`).
#[derive(Clone, Debug, PartialEq)]
pub enum SignedDocument {
    /// `sealstream.receipt.v1`.
    Receipt(Box<SignedReceipt>),
    /// `sealstream.subscription-cutoff.v1`.
    Cutoff(Box<SignedCutoff>),
    /// `sealstream.receipt.v2`: a receipt with selective disclosure, whole
    /// or a presentation of some fields.
    ReceiptV2(Box<super::ReceiptV2>),
}

impl SignedDocument {
    /// Reads a receipt (v1 or v2) or a cut-off notice strictly, by its
    /// `schemaVersion` (a receipt when it names neither: the receipt's
    /// errors then say what is wrong).
    pub fn parse(bytes: &[u8]) -> Result<SignedDocument, ReceiptError> {
        let value = parse_document(bytes)?;
        Ok(match schema_of(&value) {
            Some(CUTOFF_SCHEMA_VERSION) => {
                SignedDocument::Cutoff(Box::new(SignedCutoff::from_json(&value)?))
            }
            Some(super::RECEIPT_V2_SCHEMA_VERSION) => {
                SignedDocument::ReceiptV2(Box::new(super::ReceiptV2::parse(bytes)?))
            }
            _ => SignedDocument::Receipt(Box::new(SignedReceipt::from_json(&value)?)),
        })
    }

    /// Checks the signature, as the document's own `verify`.
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<(), ReceiptError> {
        match self {
            SignedDocument::Receipt(r) => r.verify(pinned),
            SignedDocument::Cutoff(c) => c.verify(pinned),
            SignedDocument::ReceiptV2(r) => r.verify(pinned).map(|_| ()),
        }
    }

    /// The key that signed it.
    pub fn public_key(&self) -> &ReceiptPublicKey {
        match self {
            SignedDocument::Receipt(r) => &r.public_key,
            SignedDocument::Cutoff(c) => &c.public_key,
            SignedDocument::ReceiptV2(r) => &r.public_key,
        }
    }

    /// Its `schemaVersion`.
    pub fn schema(&self) -> &'static str {
        match self {
            SignedDocument::Receipt(_) => RECEIPT_SCHEMA_VERSION,
            SignedDocument::Cutoff(_) => CUTOFF_SCHEMA_VERSION,
            SignedDocument::ReceiptV2(_) => super::RECEIPT_V2_SCHEMA_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> SubscriptionCutoff {
        SubscriptionCutoff {
            subscription_id: "sub_0123456789abcdef0123456789abcdef".into(),
            listing_id: "ls_1".into(),
            seller_did: "did:peaq:0x1111111111111111111111111111111111111111".into(),
            buyer_did: "did:peaq:0x2222222222222222222222222222222222222222".into(),
            buyer_id: "buyer-1".into(),
            machine_did: "did:peaq:0x3333333333333333333333333333333333333333".into(),
            topic: "/gps/fix".into(),
            last_index_entitled: Some(41),
            reason: CutoffReason::Revoked,
            detail: "end of contract".into(),
            effective_at: "2026-12-05T09:00:00Z".into(),
            issued_at: "2026-12-05T09:00:01Z".into(),
        }
    }

    #[test]
    fn signed_notices_read_back_and_verify_and_tampering_fails() {
        let key = ReceiptSigningKey::generate();
        let signed = example().sign(&key).unwrap();
        let text = signed.to_json_pretty();
        let back = SignedCutoff::parse(text.as_bytes()).unwrap();
        assert_eq!(back, signed);
        back.verify(Some(&key.public_key())).unwrap();
        let doc = SignedDocument::parse(text.as_bytes()).unwrap();
        assert_eq!(doc.schema(), CUTOFF_SCHEMA_VERSION);
        doc.verify(None).unwrap();
        // Another last index: the signature no longer verifies.
        let bent = text.replace("\"lastIndexEntitled\": 41", "\"lastIndexEntitled\": 42");
        assert_ne!(bent, text);
        let e = SignedCutoff::parse(bent.as_bytes())
            .unwrap()
            .verify(None)
            .unwrap_err();
        assert_eq!(e, ReceiptError::BadSignature);
        // Another signer, pinned.
        let other = ReceiptSigningKey::generate().public_key();
        assert!(matches!(
            back.verify(Some(&other)),
            Err(ReceiptError::WrongKey { .. })
        ));
        // None entitled: null.
        let mut none = example();
        none.last_index_entitled = None;
        let signed = none.sign(&key).unwrap();
        assert_eq!(
            signed
                .to_json()
                .get("cutoff")
                .and_then(|c| c.get("lastIndexEntitled")),
            Some(&Value::Null)
        );
        let back = SignedCutoff::parse(signed.to_json_pretty().as_bytes()).unwrap();
        back.verify(None).unwrap();
    }

    #[test]
    fn malformed_notices_name_the_field() {
        let key = ReceiptSigningKey::generate();
        let text = example().sign(&key).unwrap().to_json_pretty();
        for (from, to, field) in [
            (
                "\"reason\": \"revoked\"",
                "\"reason\": \"gone\"",
                "cutoff.reason",
            ),
            (
                "\"topic\": \"/gps/fix\"",
                "\"topic\": \"/gps/fix\", \"extra\": 1",
                "cutoff.extra",
            ),
            (
                "\"effectiveAt\": \"2026-12-05T09:00:00Z\"",
                "\"effectiveAt\": \"soon\"",
                "cutoff.effectiveAt",
            ),
            (
                "\"lastIndexEntitled\": 41",
                "\"lastIndexEntitled\": -1",
                "cutoff.lastIndexEntitled",
            ),
        ] {
            let bent = text.replace(from, to);
            assert_ne!(bent, text, "{from}");
            match SignedCutoff::parse(bent.as_bytes()) {
                Err(ReceiptError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
                other => panic!("{from}: {other:?}"),
            }
        }
    }
}
