//! Payments: a listing's payment [`Rail`], an order's payment instructions
//! and claims, the reference's payment proof
//! (`POST /v1/orders/{id}/payment-proof`) and the seller's
//! `POST /v1/orders/{id}/mark-paid` for invoices.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use sealstream_core::identity::EvmAddress;

use crate::errors::FieldError;

wire_enum! {
    /// The kind of a payment rail.
    pub enum RailKind refuse "expected \"evm\" or \"invoice\"" {
        /// On an EVM chain.
        Evm = "evm",
        /// Against an invoice, off chain.
        Invoice = "invoice",
    }
}

/// How a buyer pays: on the wire `{"kind": "evm", "chainId", "token",
/// "decimals", "payTo", "symbol"?, "escrow"?}` (`token` is `native` for the chain's
/// coin) or `{"kind": "invoice", "currency", "decimals", "escrow"?, "payee"?,
/// "terms"?}`, keys in byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rail {
    /// On an EVM chain, in its native coin or an ERC-20 token.
    Evm {
        /// EIP-155 chain id.
        chain_id: u64,
        /// `None` for the native coin, else the token contract (checksummed).
        token: Option<String>,
        /// Decimals of the coin or token (18 for ether).
        decimals: u8,
        /// Receiving address (checksummed).
        pay_to: String,
        /// Display symbol (`ETH`, `USDC`), if given.
        symbol: Option<String>,
        /// Paid into the market's escrow contract on this chain (held
        /// until the dispute window passes) instead of straight to
        /// `pay_to`; `"escrow": true` on the wire, absent when false.
        escrow: bool,
    },
    /// Against an invoice, off chain.
    Invoice {
        /// ISO 4217 code.
        currency: String,
        /// Minor-unit digits (2 for EUR).
        decimals: u8,
        /// Who invoices, if given.
        payee: Option<String>,
        /// Payment terms, if given.
        terms: Option<String>,
        /// Held by the market until its dispute window passes, off chain
        /// (the same states as an EVM escrow, no chain calls); `"escrow":
        /// true` on the wire, absent when false.
        escrow: bool,
    },
}

/// The `token` of an EVM rail paid in the chain's own coin.
pub const NATIVE: &str = "native";

/// `base` base units as a decimal amount with `decimals` digits after the
/// point, trailing zeros dropped (`1500000000000000000`, 18 → `1.5`).
pub fn format_units(base: &str, decimals: u8) -> String {
    let d = usize::from(decimals);
    if d == 0 {
        return base.to_string();
    }
    let padded = format!("{base:0>width$}", width = d + 1);
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// A decimal amount as a person writes it (`4.90`, `1.5`, `12`) in base
/// units with `decimals` digits after the point (`490` for 2), the inverse
/// of [`format_units`]; `None` for text that is not such an amount or has
/// more digits after the point than `decimals`.
pub fn parse_units(text: &str, decimals: u8) -> Option<String> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty()
        || !digits(int)
        || !digits(frac)
        || frac.len() > usize::from(decimals)
        || int.len() + usize::from(decimals) > 77
    {
        return None;
    }
    let joined = format!("{int}{frac:0<width$}", width = usize::from(decimals));
    let trimmed = joined.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    })
}

impl Rail {
    /// Its kind.
    pub fn kind(&self) -> RailKind {
        match self {
            Rail::Evm { .. } => RailKind::Evm,
            Rail::Invoice { .. } => RailKind::Invoice,
        }
    }

    /// The rail's decimals.
    pub fn decimals(&self) -> u8 {
        match self {
            Rail::Evm { decimals, .. } | Rail::Invoice { decimals, .. } => *decimals,
        }
    }

    /// The stored and shown JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks a rail object as a request gives it; refusals name
    /// `rail.<field>`. Addresses come back checksummed, `token: "native"`
    /// as `None`.
    pub fn parse(value: &Value) -> Result<Rail, FieldError> {
        let bad = |field: &str, message: &str| FieldError::new(field, message);
        let obj = value
            .as_object()
            .ok_or_else(|| bad("rail", "expected an object"))?;
        let kind = obj
            .get("kind")
            .ok_or_else(|| bad("rail.kind", "required: \"evm\" or \"invoice\""))?
            .as_str()
            .ok_or_else(|| bad("rail.kind", "expected \"evm\" or \"invoice\""))?;
        let kind = RailKind::parse(kind)
            .ok_or_else(|| bad("rail.kind", "expected \"evm\" or \"invoice\""))?;
        let allowed: &[&str] = match kind {
            RailKind::Evm => &[
                "kind", "chainId", "token", "decimals", "payTo", "symbol", "escrow",
            ],
            RailKind::Invoice => &["kind", "currency", "decimals", "payee", "terms", "escrow"],
        };
        if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(FieldError::new(
                format!("rail.{unknown}"),
                format!("unknown field for a {kind} rail"),
            ));
        }
        let text = |name: &str, required: bool, max: usize| -> Result<Option<String>, FieldError> {
            let field = format!("rail.{name}");
            match obj.get(name) {
                None | Some(Value::Null) if !required => Ok(None),
                None | Some(Value::Null) => Err(FieldError::new(field, "required")),
                Some(Value::String(s)) => {
                    if s.trim().is_empty() {
                        return Err(FieldError::new(field, "must not be empty"));
                    }
                    if s.chars().count() > max {
                        return Err(FieldError::new(
                            field,
                            format!("longer than {max} characters"),
                        ));
                    }
                    if s.chars().any(char::is_control) {
                        return Err(FieldError::new(
                            field,
                            "must not contain control characters",
                        ));
                    }
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(FieldError::new(field, "expected a string")),
            }
        };
        let decimals = |max: u64, default: Option<u8>| -> Result<u8, FieldError> {
            match obj.get("decimals") {
                None | Some(Value::Null) => default.ok_or_else(|| bad("rail.decimals", "required")),
                Some(v) => match v.as_u64() {
                    Some(d) if d <= max => Ok(d as u8),
                    _ => Err(FieldError::new(
                        "rail.decimals",
                        format!("expected an integer from 0 to {max}"),
                    )),
                },
            }
        };
        let escrow = match obj.get("escrow") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("rail.escrow", "expected true or false")),
        };
        match kind {
            RailKind::Evm => {
                let chain_id = match obj.get("chainId") {
                    None => return Err(bad("rail.chainId", "required")),
                    Some(v) => match v.as_u64() {
                        Some(id) if id > 0 => id,
                        _ => {
                            return Err(bad(
                                "rail.chainId",
                                "expected a positive integer (EIP-155 chain id)",
                            ))
                        }
                    },
                };
                let token = text("token", true, 42)?.unwrap_or_default();
                let token = if token == NATIVE {
                    None
                } else {
                    Some(evm_address(&token, "rail.token")?)
                };
                let pay_to =
                    evm_address(&text("payTo", true, 42)?.unwrap_or_default(), "rail.payTo")?;
                if pay_to == "0x0000000000000000000000000000000000000000" {
                    return Err(bad(
                        "rail.payTo",
                        "the zero address cannot receive payments",
                    ));
                }
                let symbol = text("symbol", false, 16)?;
                Ok(Rail::Evm {
                    chain_id,
                    token,
                    decimals: decimals(36, None)?,
                    pay_to,
                    symbol,
                    escrow,
                })
            }
            RailKind::Invoice => {
                let currency = text("currency", true, 3)?.unwrap_or_default();
                if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(bad(
                        "rail.currency",
                        "expected an ISO 4217 code such as \"EUR\"",
                    ));
                }
                Ok(Rail::Invoice {
                    currency,
                    decimals: decimals(18, Some(2))?,
                    payee: text("payee", false, 200)?,
                    terms: text("terms", false, 2_000)?,
                    escrow,
                })
            }
        }
    }
}

/// An EVM address given checksummed (EIP-55) or in lower case, returned
/// checksummed. A mixed-case address with a wrong checksum is refused: it
/// is most likely mistyped.
pub fn evm_address(text: &str, field: &str) -> Result<String, FieldError> {
    let address = EvmAddress::parse(text, field)
        .map_err(|_| FieldError::new(field, "expected 0x followed by 40 hex digits"))?;
    let checksum = address.to_checksum();
    let body = &text[2..];
    if body == body.to_ascii_lowercase() || text == checksum {
        Ok(checksum)
    } else {
        Err(FieldError::new(
            field,
            "mixed-case address whose EIP-55 checksum is wrong (give it checksummed or in lower case)",
        ))
    }
}

impl Serialize for Rail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Keys in byte order, as the stored form has always been written.
        match self {
            Rail::Evm {
                chain_id,
                token,
                decimals,
                pay_to,
                symbol,
                escrow,
            } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("chainId", chain_id)?;
                m.serialize_entry("decimals", decimals)?;
                if *escrow {
                    m.serialize_entry("escrow", &true)?;
                }
                m.serialize_entry("kind", RailKind::Evm.as_str())?;
                m.serialize_entry("payTo", pay_to)?;
                if let Some(symbol) = symbol {
                    m.serialize_entry("symbol", symbol)?;
                }
                m.serialize_entry("token", token.as_deref().unwrap_or(NATIVE))?;
                m.end()
            }
            Rail::Invoice {
                currency,
                decimals,
                payee,
                terms,
                escrow,
            } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("currency", currency)?;
                m.serialize_entry("decimals", decimals)?;
                if *escrow {
                    m.serialize_entry("escrow", &true)?;
                }
                m.serialize_entry("kind", RailKind::Invoice.as_str())?;
                if let Some(payee) = payee {
                    m.serialize_entry("payee", payee)?;
                }
                if let Some(terms) = terms {
                    m.serialize_entry("terms", terms)?;
                }
                m.end()
            }
        }
    }
}

/// The fields of either kind of rail, as read from an answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RailFields {
    kind: RailKind,
    chain_id: Option<u64>,
    token: Option<String>,
    decimals: Option<u8>,
    pay_to: Option<String>,
    symbol: Option<String>,
    #[serde(default)]
    escrow: bool,
    currency: Option<String>,
    payee: Option<String>,
    terms: Option<String>,
}

impl<'de> Deserialize<'de> for Rail {
    /// Reads a rail as the server shows it (for requests, the server checks
    /// the raw object with [`Rail::parse`]).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rail, D::Error> {
        let f = RailFields::deserialize(d)?;
        let missing = |name: &str| D::Error::custom(format!("a rail without {name}"));
        Ok(match f.kind {
            RailKind::Evm => Rail::Evm {
                chain_id: f.chain_id.ok_or_else(|| missing("chainId"))?,
                token: f.token.filter(|t| t != NATIVE),
                decimals: f.decimals.ok_or_else(|| missing("decimals"))?,
                pay_to: f.pay_to.ok_or_else(|| missing("payTo"))?,
                symbol: f.symbol,
                escrow: f.escrow,
            },
            RailKind::Invoice => Rail::Invoice {
                currency: f.currency.ok_or_else(|| missing("currency"))?,
                decimals: f.decimals.ok_or_else(|| missing("decimals"))?,
                payee: f.payee,
                terms: f.terms,
                escrow: f.escrow,
            },
        })
    }
}

/// A rail as a request gives it: the object sent, checked by the server
/// field by field ([`Rail::parse`], refusals naming `rail.<field>`). A
/// client makes one from a [`Rail`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RailInput(pub Value);

impl RailInput {
    /// The rail it names, checked.
    pub fn check(&self) -> Result<Rail, FieldError> {
        Rail::parse(&self.0)
    }
}

impl From<&Rail> for RailInput {
    fn from(rail: &Rail) -> Self {
        RailInput(rail.to_json())
    }
}

/// How to pay an order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PaymentInstructions {
    /// `evm` or `invoice`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rail: RailKind,
    /// Amount in base units (wei, token units, cents).
    pub amount: String,
    /// The same with its decimal point (`1.5`).
    pub amount_display: String,
    /// Decimals of the coin, token or currency.
    pub decimals: u8,
    /// EIP-155 chain id (EVM).
    pub chain_id: Option<u64>,
    /// The reference CLI's `--chain` name, when the chain has one.
    pub chain: Option<String>,
    /// Where to pay (EVM).
    pub pay_to: Option<String>,
    /// `native` or the ERC-20 contract (EVM).
    pub token: Option<String>,
    /// Display symbol.
    pub symbol: Option<String>,
    /// The only address a payment is accepted from: the buyer's.
    pub payer: Option<String>,
    /// Confirmations the server waits for (EVM).
    pub confirmations: Option<u64>,
    /// Currency (invoice).
    pub currency: Option<String>,
    /// Who invoices (invoice).
    pub payee: Option<String>,
    /// The escrow contract to deposit into (EVM, escrowed listings): pay
    /// with `deposit(escrowOrderKey, payTo, token, amount)` (the token
    /// approved to the contract first; the native coin sent as the value),
    /// not straight to `payTo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<String>,
    /// The order's key in the escrow: `0x` + keccak256 of the order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow_order_key: Option<String>,
}

wire_enum! {
    /// Where a payment claim (a transaction a buyer says pays an order) is.
    pub enum ClaimState refuse "expected unknown, pending, confirmed, rejected, expired or superseded" {
        /// The node does not know the transaction (yet).
        Unknown = "unknown",
        /// Known and valid so far: not mined, or not deep enough.
        Pending = "pending",
        /// It paid the order.
        Confirmed = "confirmed",
        /// It does not pay the order (final).
        Rejected = "rejected",
        /// Unknown to the node for too long: dropped.
        Expired = "expired",
        /// The order was paid by another transaction, or cancelled.
        Superseded = "superseded",
    }
}

impl ClaimState {
    /// Still checked: unknown or pending.
    pub fn is_open(self) -> bool {
        matches!(self, ClaimState::Unknown | ClaimState::Pending)
    }
}

/// A claim as the order's parties see it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimView {
    /// The transaction.
    pub tx_hash: String,
    /// Its chain.
    pub chain_id: u64,
    /// `unknown`, `pending`, `confirmed`, `rejected`, `expired` or
    /// `superseded`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: ClaimState,
    /// What it waits for ("waiting for 2 more confirmations", "transaction
    /// not yet known to the node"), or why it closed.
    pub reason: Option<String>,
    /// Confirmations at the last check, once mined.
    pub confirmations: Option<u64>,
    /// First posted, UTC.
    pub claimed_at: String,
    /// Last checked on chain, UTC.
    pub last_checked_at: Option<String>,
    /// Checks so far.
    pub checks: u64,
}

/// The payment proof of `peaq.stream` v1 (section 5 of the wire format).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentProof {
    /// The transaction (`0x` + 64 hex).
    pub tx_hash: String,
    /// The order it pays (must be the order of the URL).
    pub order_id: String,
    /// `base` or `peaq` (the reference's chain names).
    pub chain: String,
    /// Who paid: must be the buyer's address.
    pub payer_address: String,
    /// Who was paid: must be the listing's pay-to.
    pub payee_address: String,
    /// Human-readable amount (informative: the chain is checked).
    pub amount: String,
    /// The ERC-20 contract, or null for the native coin.
    pub token_address: Option<String>,
    /// Token symbol (informative).
    pub token: Option<String>,
}

wire_enum! {
    /// What the proof endpoint says of a payment.
    pub enum ProofStatus refuse "expected confirmed, awaiting-confirmations, awaiting-transaction or expired" {
        /// Verified: the order is paid.
        Confirmed = "confirmed",
        /// The node knows the transaction: not mined, or not deep enough.
        AwaitingConfirmations = "awaiting-confirmations",
        /// The node does not know the transaction yet.
        AwaitingTransaction = "awaiting-transaction",
        /// The node did not know the transaction for too long: the claim
        /// is dropped.
        Expired = "expired",
    }
}

/// What the proof endpoint answers (`accepted` is what the reference reads).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProofAnswer {
    /// The payment is verified and the order paid.
    pub accepted: bool,
    /// `confirmed`, `awaiting-confirmations` (the node knows the
    /// transaction: not mined, or not deep enough) or
    /// `awaiting-transaction` (the node does not know it yet).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: ProofStatus,
    /// Confirmations seen so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Confirmations required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<u64>,
    /// What is missing ("waiting for 2 more confirmations", "transaction
    /// not yet known to the node").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ProofAnswer {
    /// The payment is verified.
    pub fn confirmed() -> ProofAnswer {
        ProofAnswer {
            accepted: true,
            status: ProofStatus::Confirmed,
            confirmations: None,
            required: None,
            reason: None,
        }
    }
}

/// `POST /v1/orders/{id}/mark-paid`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MarkPaid {
    /// The invoice or bank reference (1 to 200 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub reference: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_people_write_them_become_base_units() {
        assert_eq!(parse_units("4.90", 2).as_deref(), Some("490"));
        assert_eq!(parse_units("12", 2).as_deref(), Some("1200"));
        assert_eq!(
            parse_units("0.5", 18).as_deref(),
            Some("500000000000000000")
        );
        assert_eq!(parse_units(".5", 1).as_deref(), Some("5"));
        assert_eq!(parse_units("0", 2).as_deref(), Some("0"));
        assert_eq!(parse_units("1.234", 2), None);
        assert_eq!(parse_units("abc", 2), None);
        assert_eq!(parse_units("-1", 2), None);
        assert_eq!(parse_units("", 2), None);
        assert_eq!(parse_units(".", 2), None);
        for (base, d) in [("490", 2), ("1500000000000000000", 18), ("7", 0)] {
            assert_eq!(
                parse_units(&format_units(base, d), d).as_deref(),
                Some(base)
            );
        }
    }

    #[test]
    fn units_are_formatted_with_decimals() {
        assert_eq!(format_units("1500000000000000000", 18), "1.5");
        assert_eq!(format_units("1", 18), "0.000000000000000001");
        assert_eq!(format_units("1250", 2), "12.5");
        assert_eq!(format_units("1200", 2), "12");
        assert_eq!(format_units("0", 2), "0");
        assert_eq!(format_units("7", 0), "7");
    }
    use serde_json::json;

    fn field(e: FieldError) -> String {
        e.field
    }

    #[test]
    fn evm_addresses_checksummed_or_lower_case() {
        let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        let checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(evm_address(lower, "rail.payTo").unwrap(), checksum);
        assert_eq!(evm_address(checksum, "rail.payTo").unwrap(), checksum);
        let wrong = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            field(evm_address(wrong, "rail.payTo").unwrap_err()),
            "rail.payTo"
        );
        assert!(evm_address("0x1234", "rail.payTo").is_err());
        assert!(evm_address("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "x").is_err());
    }

    #[test]
    fn rails_are_checked_field_by_field() {
        let ok = json!({"kind":"evm","chainId":1,"token":"native","decimals":18,
                        "payTo":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"});
        let rail = Rail::parse(&ok).unwrap();
        assert_eq!(Rail::parse(&rail.to_json()).unwrap(), rail);
        let cases = [
            (json!(1), "rail"),
            (json!({}), "rail.kind"),
            (json!({"kind":"barter"}), "rail.kind"),
            (
                json!({"kind":"evm","chainId":0,"token":"native","decimals":18,"payTo":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}),
                "rail.chainId",
            ),
            (
                json!({"kind":"evm","chainId":1,"token":"gold","decimals":18,"payTo":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}),
                "rail.token",
            ),
            (
                json!({"kind":"evm","chainId":1,"token":"native","decimals":99,"payTo":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}),
                "rail.decimals",
            ),
            (
                json!({"kind":"evm","chainId":1,"token":"native","decimals":18}),
                "rail.payTo",
            ),
            (
                json!({"kind":"evm","chainId":1,"token":"native","decimals":18,"payTo":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed","x":1}),
                "rail.x",
            ),
            (json!({"kind":"invoice","currency":"eur"}), "rail.currency"),
            (
                json!({"kind":"invoice","currency":"EUR","chainId":1}),
                "rail.chainId",
            ),
        ];
        for (value, name) in cases {
            assert_eq!(field(Rail::parse(&value).unwrap_err()), name, "{value}");
        }
        let invoice = Rail::parse(&json!({"kind":"invoice","currency":"EUR"})).unwrap();
        assert_eq!(invoice.decimals(), 2);
    }

    #[test]
    fn rails_are_written_with_sorted_keys_and_read_back() {
        let evm = Rail::Evm {
            chain_id: 3338,
            token: None,
            decimals: 18,
            pay_to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
            symbol: Some("PEAQ".into()),
            escrow: false,
        };
        let text = serde_json::to_string(&evm).unwrap();
        assert_eq!(
            text,
            r#"{"chainId":3338,"decimals":18,"kind":"evm","payTo":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","symbol":"PEAQ","token":"native"}"#
        );
        // The same bytes as a serde_json object (sorted keys) gives.
        assert_eq!(text, evm.to_json().to_string());
        assert_eq!(serde_json::from_str::<Rail>(&text).unwrap(), evm);
        let invoice = Rail::Invoice {
            currency: "EUR".into(),
            decimals: 2,
            payee: None,
            terms: Some("30 days".into()),
            escrow: false,
        };
        let text = serde_json::to_string(&invoice).unwrap();
        assert_eq!(
            text,
            r#"{"currency":"EUR","decimals":2,"kind":"invoice","terms":"30 days"}"#
        );
        assert_eq!(serde_json::from_str::<Rail>(&text).unwrap(), invoice);
        assert_eq!(RailInput::from(&invoice).check().unwrap(), invoice);
    }

    #[test]
    fn an_escrowed_rail_says_so_and_only_then() {
        let escrowed = Rail::parse(&json!({"kind": "evm", "chainId": 8453, "token": "native",
            "decimals": 18, "payTo": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "escrow": true}))
        .unwrap();
        assert!(matches!(escrowed, Rail::Evm { escrow: true, .. }));
        let text = serde_json::to_string(&escrowed).unwrap();
        assert!(text.contains(r#""escrow":true"#), "{text}");
        assert_eq!(text, escrowed.to_json().to_string());
        assert_eq!(serde_json::from_str::<Rail>(&text).unwrap(), escrowed);
        assert_eq!(RailInput::from(&escrowed).check().unwrap(), escrowed);
        let e = Rail::parse(&json!({"kind": "evm", "chainId": 8453, "token": "native",
            "decimals": 18, "payTo": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "escrow": "yes"}))
        .unwrap_err();
        assert_eq!(field(e), "rail.escrow");
        let invoice =
            Rail::parse(&json!({"kind": "invoice", "currency": "EUR", "escrow": true})).unwrap();
        assert!(matches!(invoice, Rail::Invoice { escrow: true, .. }));
        let text = serde_json::to_string(&invoice).unwrap();
        assert_eq!(serde_json::from_str::<Rail>(&text).unwrap(), invoice);
    }
}
