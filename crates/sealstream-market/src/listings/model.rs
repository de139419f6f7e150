//! What a listing holds, how a request's fields are checked (every refusal
//! names its field), and how a listing is read from and written to the
//! store.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use sealstream_core::identity::EvmAddress;

use crate::error::{ApiError, ApiResult};
use crate::store::Engine;

/// Prefix of listing ids.
pub const ID_PREFIX: &str = "ls_";
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 20_000;
/// Most tags.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG: usize = 40;
/// Most sample chunks.
pub const MAX_SAMPLES: usize = 5;
/// Longest domain, in characters.
pub const MAX_DOMAIN: usize = 64;
/// Longest schema hint, in characters.
pub const MAX_SCHEMA_HINT: usize = 4_000;
/// Longest license (text, or the JSON text of a license object).
pub const MAX_LICENSE: usize = 20_000;
/// Digits of the zero-padded price key: any 256-bit amount fits.
pub const PRICE_DIGITS: usize = 78;
/// Delivery options a listing may offer.
pub const DELIVERY_OPTIONS: [&str; 3] = ["api", "object-store", "p2p"];

/// Lifecycle of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListingState {
    /// Visible to its owner only; editable.
    Draft,
    /// In the catalog; editable.
    Published,
    /// Out of the catalog for good.
    Withdrawn,
}

impl ListingState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ListingState::Draft => "draft",
            ListingState::Published => "published",
            ListingState::Withdrawn => "withdrawn",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<ListingState> {
        [
            ListingState::Draft,
            ListingState::Published,
            ListingState::Withdrawn,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// `POST /v1/listings`: a new listing (a draft) for one of the caller's
/// datasets.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateListing {
    /// The dataset on sale (`ds_…`), one of the caller's.
    pub dataset_id: String,
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Up to 20,000 characters.
    #[serde(default)]
    pub description: String,
    /// Up to 20 tags of 1 to 40 characters.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A domain such as `mobility` or `energy` (up to 64 characters).
    #[serde(default)]
    pub domain: Option<String>,
    /// What a decrypted chunk looks like (free text, up to 4,000 characters).
    #[serde(default)]
    pub schema_hint: Option<String>,
    /// Chain indexes of up to 5 chunks of the dataset offered as free
    /// previews (their keys are disclosed to anyone, by design).
    #[serde(default)]
    pub sample_chunk_indexes: Vec<u64>,
    /// License terms: a text or a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub license: Option<Value>,
    /// Price in the rail's base units (wei, cents) as a decimal integer string.
    #[schema(example = "1500000000000000000")]
    pub price: String,
    /// How to pay: `{"kind":"evm","chainId":1,"token":"native"|"0x…","decimals":18,"payTo":"0x…","symbol"?:"ETH"}`
    /// or `{"kind":"invoice","currency":"EUR","decimals"?:2,"payee"?:"…","terms"?:"…"}`.
    #[schema(value_type = Object)]
    pub rail: Value,
    /// Delivery options among `api`, `object-store`, `p2p` (default `["api"]`).
    #[serde(default)]
    pub delivery: Option<Vec<String>>,
}

/// `PATCH /v1/listings/{id}`: only the fields given change; `null` clears
/// an optional field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchListing {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New tags (replace the old ones).
    pub tags: Option<Vec<String>>,
    /// New domain; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub domain: Option<Option<String>>,
    /// New schema hint; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub schema_hint: Option<Option<String>>,
    /// New sample chunk indexes (keys of chunks no longer listed are dropped).
    pub sample_chunk_indexes: Option<Vec<u64>>,
    /// New license; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub license: Option<Option<Value>>,
    /// New price (base units).
    pub price: Option<String>,
    /// New rail.
    #[schema(value_type = Option<Object>)]
    pub rail: Option<Value>,
    /// New delivery options.
    pub delivery: Option<Vec<String>>,
}

/// A field that is present (possibly `null`) is `Some(…)`; an absent one
/// stays `None` through `#[serde(default)]`.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

impl PatchListing {
    /// The camelCase names of the fields given.
    pub fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let flags = [
            (self.title.is_some(), "title"),
            (self.description.is_some(), "description"),
            (self.tags.is_some(), "tags"),
            (self.domain.is_some(), "domain"),
            (self.schema_hint.is_some(), "schemaHint"),
            (self.sample_chunk_indexes.is_some(), "sampleChunkIndexes"),
            (self.license.is_some(), "license"),
            (self.price.is_some(), "price"),
            (self.rail.is_some(), "rail"),
            (self.delivery.is_some(), "delivery"),
        ];
        for (given, name) in flags {
            if given {
                out.push(name);
            }
        }
        out
    }
}

/// The editable content of a listing, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ListingFields {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Schema hint.
    pub schema_hint: Option<String>,
    /// Sample chunk indexes (chain indexes), in the order given.
    pub sample_chunk_indexes: Vec<u64>,
    /// License (text or object).
    pub license: Option<Value>,
    /// Price in base units, normalised decimal text.
    pub price: String,
    /// The payment rail.
    pub rail: Rail,
    /// Delivery options.
    pub delivery: Vec<String>,
}

/// How a buyer pays.
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
    },
}

impl Rail {
    /// The rail's decimals.
    pub fn decimals(&self) -> u8 {
        match self {
            Rail::Evm { decimals, .. } | Rail::Invoice { decimals, .. } => *decimals,
        }
    }

    /// The stored and shown JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            Rail::Evm {
                chain_id,
                token,
                decimals,
                pay_to,
                symbol,
            } => {
                let mut v = json!({
                    "kind": "evm",
                    "chainId": chain_id,
                    "token": token.as_deref().unwrap_or("native"),
                    "decimals": decimals,
                    "payTo": pay_to,
                });
                if let Some(s) = symbol {
                    v["symbol"] = json!(s);
                }
                v
            }
            Rail::Invoice {
                currency,
                decimals,
                payee,
                terms,
            } => {
                let mut v = json!({"kind": "invoice", "currency": currency, "decimals": decimals});
                if let Some(p) = payee {
                    v["payee"] = json!(p);
                }
                if let Some(t) = terms {
                    v["terms"] = json!(t);
                }
                v
            }
        }
    }

    /// Checks a rail object; refusals name `rail.<field>`.
    pub fn parse(value: &Value) -> ApiResult<Rail> {
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::bad_request("rail", "expected an object"))?;
        let kind = obj
            .get("kind")
            .ok_or_else(|| ApiError::bad_request("rail.kind", "required: \"evm\" or \"invoice\""))?
            .as_str()
            .ok_or_else(|| ApiError::bad_request("rail.kind", "expected \"evm\" or \"invoice\""))?;
        let allowed: &[&str] = match kind {
            "evm" => &["kind", "chainId", "token", "decimals", "payTo", "symbol"],
            "invoice" => &["kind", "currency", "decimals", "payee", "terms"],
            _ => {
                return Err(ApiError::bad_request(
                    "rail.kind",
                    "expected \"evm\" or \"invoice\"",
                ))
            }
        };
        if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(
                &format!("rail.{unknown}"),
                format!("unknown field for a {kind} rail"),
            ));
        }
        let text = |name: &str, required: bool, max: usize| -> ApiResult<Option<String>> {
            let field = format!("rail.{name}");
            match obj.get(name) {
                None | Some(Value::Null) if !required => Ok(None),
                None | Some(Value::Null) => Err(ApiError::bad_request(&field, "required")),
                Some(Value::String(s)) => {
                    if s.trim().is_empty() {
                        return Err(ApiError::bad_request(&field, "must not be empty"));
                    }
                    if s.chars().count() > max {
                        return Err(ApiError::bad_request(
                            &field,
                            format!("longer than {max} characters"),
                        ));
                    }
                    if s.chars().any(char::is_control) {
                        return Err(ApiError::bad_request(
                            &field,
                            "must not contain control characters",
                        ));
                    }
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(ApiError::bad_request(&field, "expected a string")),
            }
        };
        let decimals = |max: u64, default: Option<u8>| -> ApiResult<u8> {
            match obj.get("decimals") {
                None | Some(Value::Null) => {
                    default.ok_or_else(|| ApiError::bad_request("rail.decimals", "required"))
                }
                Some(v) => match v.as_u64() {
                    Some(d) if d <= max => Ok(d as u8),
                    _ => Err(ApiError::bad_request(
                        "rail.decimals",
                        format!("expected an integer from 0 to {max}"),
                    )),
                },
            }
        };
        match kind {
            "evm" => {
                let chain_id = match obj.get("chainId") {
                    None => return Err(ApiError::bad_request("rail.chainId", "required")),
                    Some(v) => match v.as_u64() {
                        Some(id) if id > 0 => id,
                        _ => {
                            return Err(ApiError::bad_request(
                                "rail.chainId",
                                "expected a positive integer (EIP-155 chain id)",
                            ))
                        }
                    },
                };
                let token = text("token", true, 42)?.unwrap_or_default();
                let token = if token == "native" {
                    None
                } else {
                    Some(evm_address(&token, "rail.token")?)
                };
                let pay_to =
                    evm_address(&text("payTo", true, 42)?.unwrap_or_default(), "rail.payTo")?;
                if pay_to == "0x0000000000000000000000000000000000000000" {
                    return Err(ApiError::bad_request(
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
                })
            }
            _ => {
                let currency = text("currency", true, 3)?.unwrap_or_default();
                if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(ApiError::bad_request(
                        "rail.currency",
                        "expected an ISO 4217 code such as \"EUR\"",
                    ));
                }
                Ok(Rail::Invoice {
                    currency,
                    decimals: decimals(18, Some(2))?,
                    payee: text("payee", false, 200)?,
                    terms: text("terms", false, 2_000)?,
                })
            }
        }
    }
}

/// An EVM address given checksummed (EIP-55) or in lower case, returned
/// checksummed. A mixed-case address with a wrong checksum is refused: it
/// is most likely mistyped.
pub fn evm_address(text: &str, field: &str) -> ApiResult<String> {
    let address = EvmAddress::parse(text, field)
        .map_err(|_| ApiError::bad_request(field, "expected 0x followed by 40 hex digits"))?;
    let checksum = address.to_checksum();
    let body = &text[2..];
    if body == body.to_ascii_lowercase() || text == checksum {
        Ok(checksum)
    } else {
        Err(ApiError::bad_request(
            field,
            "mixed-case address whose EIP-55 checksum is wrong (give it checksummed or in lower case)",
        ))
    }
}

/// A price in base units: a decimal integer of at most 78 digits, returned
/// without leading zeros.
pub fn price(text: &str, field: &str) -> ApiResult<String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            field,
            "expected a non-negative integer in base units, as a string of digits",
        ));
    }
    let trimmed = text.trim_start_matches('0');
    let normal = if trimmed.is_empty() { "0" } else { trimmed };
    if normal.len() > PRICE_DIGITS {
        return Err(ApiError::bad_request(
            field,
            format!("more than {PRICE_DIGITS} digits"),
        ));
    }
    Ok(normal.to_string())
}

/// The sortable key of a normalised price: zero-padded to 78 digits.
pub fn price_key(price: &str) -> String {
    format!("{price:0>width$}", width = PRICE_DIGITS)
}

/// `base` base units as a decimal amount with `decimals` digits after the
/// point, trailing zeros dropped (`1500000000000000000`, 18 → `1.5`).
pub fn format_units(base: &str, decimals: u8) -> String {
    let d = decimals as usize;
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

fn required_text(value: &str, field: &str, min: usize, max: usize) -> ApiResult<String> {
    let n = value.chars().count();
    if min > 0 && value.trim().is_empty() {
        return Err(ApiError::bad_request(field, "must not be empty"));
    }
    if n < min {
        return Err(ApiError::bad_request(
            field,
            format!("shorter than {min} characters"),
        ));
    }
    if n > max {
        return Err(ApiError::bad_request(
            field,
            format!("longer than {max} characters ({n})"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::bad_request(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_string())
}

fn optional_text(value: Option<&str>, field: &str, max: usize) -> ApiResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => required_text(v, field, 1, max).map(Some),
    }
}

fn tags(values: &[String]) -> ApiResult<Vec<String>> {
    if values.len() > MAX_TAGS {
        return Err(ApiError::bad_request(
            "tags",
            format!("at most {MAX_TAGS} tags ({} given)", values.len()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, tag) in values.iter().enumerate() {
        let field = format!("tags[{i}]");
        let tag = tag.trim();
        if tag.is_empty() {
            return Err(ApiError::bad_request(&field, "must not be empty"));
        }
        if tag.chars().count() > MAX_TAG {
            return Err(ApiError::bad_request(
                &field,
                format!("longer than {MAX_TAG} characters"),
            ));
        }
        if tag.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                &field,
                "must not contain control characters",
            ));
        }
        if out.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            return Err(ApiError::bad_request(&field, "duplicate tag"));
        }
        out.push(tag.to_string());
    }
    Ok(out)
}

fn sample_indexes(values: &[u64]) -> ApiResult<Vec<u64>> {
    if values.len() > MAX_SAMPLES {
        return Err(ApiError::bad_request(
            "sampleChunkIndexes",
            format!(
                "at most {MAX_SAMPLES} sample chunks ({} given)",
                values.len()
            ),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(ApiError::bad_request(
                &format!("sampleChunkIndexes[{i}]"),
                "duplicate index",
            ));
        }
        if *v > i64::MAX as u64 {
            return Err(ApiError::bad_request(
                &format!("sampleChunkIndexes[{i}]"),
                "too large",
            ));
        }
    }
    Ok(values.to_vec())
}

fn license(value: Option<&Value>) -> ApiResult<Option<Value>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            optional_text(Some(s), "license", MAX_LICENSE).map(|t| t.map(Value::String))
        }
        Some(v @ Value::Object(_)) => {
            if v.to_string().len() > MAX_LICENSE {
                return Err(ApiError::bad_request(
                    "license",
                    format!("larger than {MAX_LICENSE} bytes of JSON"),
                ));
            }
            Ok(Some(v.clone()))
        }
        Some(_) => Err(ApiError::bad_request(
            "license",
            "expected a text or a JSON object",
        )),
    }
}

fn delivery(values: Option<&[String]>) -> ApiResult<Vec<String>> {
    let Some(values) = values else {
        return Ok(vec!["api".to_string()]);
    };
    if values.is_empty() {
        return Err(ApiError::bad_request(
            "delivery",
            "at least one of \"api\", \"object-store\", \"p2p\"",
        ));
    }
    for (i, v) in values.iter().enumerate() {
        let field = format!("delivery[{i}]");
        if !DELIVERY_OPTIONS.contains(&v.as_str()) {
            return Err(ApiError::bad_request(
                &field,
                "expected \"api\", \"object-store\" or \"p2p\"",
            ));
        }
        if values[..i].contains(v) {
            return Err(ApiError::bad_request(&field, "duplicate option"));
        }
    }
    Ok(values.to_vec())
}

impl ListingFields {
    /// Checks a creation request (all but the dataset, which needs the store).
    pub fn from_create(req: &CreateListing) -> ApiResult<ListingFields> {
        Ok(ListingFields {
            title: required_text(&req.title, "title", 1, MAX_TITLE)?,
            description: required_text(&req.description, "description", 0, MAX_DESCRIPTION)?,
            tags: tags(&req.tags)?,
            domain: optional_text(req.domain.as_deref(), "domain", MAX_DOMAIN)?,
            schema_hint: optional_text(req.schema_hint.as_deref(), "schemaHint", MAX_SCHEMA_HINT)?,
            sample_chunk_indexes: sample_indexes(&req.sample_chunk_indexes)?,
            license: license(req.license.as_ref())?,
            price: price(&req.price, "price")?,
            rail: Rail::parse(&req.rail)?,
            delivery: delivery(req.delivery.as_deref())?,
        })
    }

    /// These fields with the given ones of `patch` applied and checked.
    pub fn patched(&self, patch: &PatchListing) -> ApiResult<ListingFields> {
        let mut next = self.clone();
        if let Some(t) = &patch.title {
            next.title = required_text(t, "title", 1, MAX_TITLE)?;
        }
        if let Some(d) = &patch.description {
            next.description = required_text(d, "description", 0, MAX_DESCRIPTION)?;
        }
        if let Some(t) = &patch.tags {
            next.tags = tags(t)?;
        }
        if let Some(d) = &patch.domain {
            next.domain = optional_text(d.as_deref(), "domain", MAX_DOMAIN)?;
        }
        if let Some(s) = &patch.schema_hint {
            next.schema_hint = optional_text(s.as_deref(), "schemaHint", MAX_SCHEMA_HINT)?;
        }
        if let Some(s) = &patch.sample_chunk_indexes {
            next.sample_chunk_indexes = sample_indexes(s)?;
        }
        if let Some(l) = &patch.license {
            next.license = license(l.as_ref())?;
        }
        if let Some(p) = &patch.price {
            next.price = price(p, "price")?;
        }
        if let Some(r) = &patch.rail {
            next.rail = Rail::parse(r)?;
        }
        if let Some(d) = &patch.delivery {
            next.delivery = delivery(Some(d))?;
        }
        Ok(next)
    }
}

/// Whether `id` could name a row at all: ids with control characters (a
/// NUL, which PostgreSQL refuses in text) or absurd lengths are looked up
/// no further.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && !id.chars().any(char::is_control)
}

/// A listing as stored.
#[derive(Clone, Debug)]
pub struct Listing {
    /// `ls_…`.
    pub id: String,
    /// The owner's DID.
    pub owner_did: String,
    /// The dataset on sale.
    pub dataset_id: String,
    /// The content.
    pub fields: ListingFields,
    /// Lifecycle state.
    pub state: ListingState,
    /// Completed sales (orders, next issue); shown only as a bucket.
    pub sales_count: i64,
    /// When created (UTC text).
    pub created_at: String,
    /// When last changed (UTC text).
    pub updated_at: String,
    /// When published (UTC text).
    pub published_at: Option<String>,
}

/// The columns [`Listing::from_row`] reads, for `SELECT … FROM listings l`.
pub const COLUMNS: &str = "l.id, l.owner_did, l.dataset_id, l.title, l.description, l.tags, \
     l.domain, l.schema_hint, l.sample_chunk_indexes, l.license, l.price_amount, l.rail, \
     l.delivery, l.state, l.sales_count, l.created_at, l.updated_at, l.published_at";

fn stored_json(row: &AnyRow, column: &str) -> Result<Value, sqlx::Error> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored listing: bad {what}").into())
}

impl Listing {
    /// Reads the [`COLUMNS`] of a row.
    pub fn from_row(row: &AnyRow) -> Result<Listing, sqlx::Error> {
        let tags: Vec<String> =
            serde_json::from_value(stored_json(row, "tags")?).map_err(|_| corrupt("tags"))?;
        let samples: Vec<u64> = serde_json::from_value(stored_json(row, "sample_chunk_indexes")?)
            .map_err(|_| corrupt("sample_chunk_indexes"))?;
        let delivery: Vec<String> = serde_json::from_value(stored_json(row, "delivery")?)
            .map_err(|_| corrupt("delivery"))?;
        let license: Option<String> = row.try_get("license")?;
        let license = match license {
            Some(text) => Some(serde_json::from_str(&text).map_err(|_| corrupt("license"))?),
            None => None,
        };
        let rail = Rail::parse(&stored_json(row, "rail")?).map_err(|_| corrupt("rail"))?;
        let state: String = row.try_get("state")?;
        Ok(Listing {
            id: row.try_get("id")?,
            owner_did: row.try_get("owner_did")?,
            dataset_id: row.try_get("dataset_id")?,
            fields: ListingFields {
                title: row.try_get("title")?,
                description: row.try_get("description")?,
                tags,
                domain: row.try_get("domain")?,
                schema_hint: row.try_get("schema_hint")?,
                sample_chunk_indexes: samples,
                license,
                price: row.try_get("price_amount")?,
                rail,
                delivery,
            },
            state: ListingState::parse(&state).ok_or_else(|| corrupt("state"))?,
            sales_count: row.try_get("sales_count")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            published_at: row.try_get("published_at")?,
        })
    }

    /// Loads a listing by id.
    pub async fn load(
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<Option<Listing>, sqlx::Error> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let sql = format!("SELECT {COLUMNS} FROM listings l WHERE l.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
        row.as_ref().map(Listing::from_row).transpose()
    }

    /// Inserts a new listing and its search entry.
    pub async fn insert(
        &self,
        tx: &mut Transaction<'static, Any>,
        engine: Engine,
    ) -> Result<(), sqlx::Error> {
        let f = &self.fields;
        sqlx::query(
            "INSERT INTO listings (id, owner_did, dataset_id, title, description, tags, domain, \
             schema_hint, sample_chunk_indexes, license, price_amount, price_key, rail, delivery, \
             state, sales_count, created_at, updated_at, published_at, published_unix) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, $16, $17, NULL, NULL)",
        )
        .bind(&self.id)
        .bind(&self.owner_did)
        .bind(&self.dataset_id)
        .bind(&f.title)
        .bind(&f.description)
        .bind(json!(f.tags).to_string())
        .bind(f.domain.clone())
        .bind(f.schema_hint.clone())
        .bind(json!(f.sample_chunk_indexes).to_string())
        .bind(f.license.as_ref().map(Value::to_string))
        .bind(&f.price)
        .bind(price_key(&f.price))
        .bind(f.rail.to_json().to_string())
        .bind(json!(f.delivery).to_string())
        .bind(self.state.as_str())
        .bind(&self.created_at)
        .bind(&self.updated_at)
        .execute(&mut **tx)
        .await?;
        index(tx, engine, &self.id, f).await
    }

    /// Writes changed fields (and `updated_at`) and refreshes the search entry.
    pub async fn update_fields(
        &self,
        tx: &mut Transaction<'static, Any>,
        engine: Engine,
    ) -> Result<(), sqlx::Error> {
        let f = &self.fields;
        sqlx::query(
            "UPDATE listings SET title = $1, description = $2, tags = $3, domain = $4, \
             schema_hint = $5, sample_chunk_indexes = $6, license = $7, price_amount = $8, \
             price_key = $9, rail = $10, delivery = $11, updated_at = $12 WHERE id = $13",
        )
        .bind(&f.title)
        .bind(&f.description)
        .bind(json!(f.tags).to_string())
        .bind(f.domain.clone())
        .bind(f.schema_hint.clone())
        .bind(json!(f.sample_chunk_indexes).to_string())
        .bind(f.license.as_ref().map(Value::to_string))
        .bind(&f.price)
        .bind(price_key(&f.price))
        .bind(f.rail.to_json().to_string())
        .bind(json!(f.delivery).to_string())
        .bind(&self.updated_at)
        .bind(&self.id)
        .execute(&mut **tx)
        .await?;
        index(tx, engine, &self.id, f).await
    }
}

/// Keeps SQLite's FTS5 table in step with a listing (PostgreSQL's
/// `search` column is generated by the database).
async fn index(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    id: &str,
    f: &ListingFields,
) -> Result<(), sqlx::Error> {
    if engine != Engine::Sqlite {
        return Ok(());
    }
    sqlx::query("DELETE FROM listing_search WHERE listing_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO listing_search (listing_id, title, description, tags, schema_hint) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&f.title)
    .bind(&f.description)
    .bind(f.tags.join(" "))
    .bind(f.schema_hint.clone().unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A dataset as far as listings need it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSummary {
    /// `ds_…`.
    pub id: String,
    /// The machine whose chain it is taken from.
    pub machine_did: String,
    /// The topic.
    pub topic: String,
    /// Chain index of its first chunk.
    pub first_index: i64,
    /// Number of chunks.
    pub chunk_count: i64,
    /// Merkle root over its chunk ids.
    pub merkle_root: String,
    /// When its first chunk was received (UTC text).
    pub from: String,
    /// When its last chunk was received (UTC text).
    pub to: String,
    /// `draft` or `signed`.
    pub state: String,
    #[serde(skip)]
    pub(crate) owner_did: String,
    #[serde(skip)]
    pub(crate) chain_public_key: Option<String>,
}

impl DatasetSummary {
    /// Loads a dataset (with its machine's chain key, if registered).
    pub async fn load(
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<Option<DatasetSummary>, sqlx::Error> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT d.id, d.owner_did, d.machine_did, d.topic, d.first_index, d.chunk_count, \
             d.merkle_root, d.first_received_unix, d.last_received_unix, d.state, m.chain_public_key \
             FROM datasets d LEFT JOIN machines m ON m.did = d.machine_did WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let utc = |v: i64| sealstream_core::utc::format_seconds(v.max(0));
        Ok(Some(DatasetSummary {
            id: row.try_get("id")?,
            owner_did: row.try_get("owner_did")?,
            machine_did: row.try_get("machine_did")?,
            topic: row.try_get("topic")?,
            first_index: row.try_get("first_index")?,
            chunk_count: row.try_get("chunk_count")?,
            merkle_root: row.try_get("merkle_root")?,
            from: utc(row.try_get("first_received_unix")?),
            to: utc(row.try_get("last_received_unix")?),
            state: row.try_get("state")?,
            chain_public_key: row.try_get("chain_public_key")?,
        }))
    }

    /// Whether chain index `index` is one of this dataset's chunks.
    pub fn contains(&self, index: u64) -> bool {
        let first = self.first_index.max(0) as u64;
        index >= first && index - first < self.chunk_count.max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: ApiError) -> String {
        e.field.unwrap_or_default()
    }

    #[test]
    fn prices_are_digit_strings_normalised_and_padded() {
        assert_eq!(price("000", "price").unwrap(), "0");
        assert_eq!(price("0012", "price").unwrap(), "12");
        for bad in ["", "-1", "1.5", "1e3", " 1", "0x10"] {
            assert_eq!(field(price(bad, "price").unwrap_err()), "price", "{bad}");
        }
        let max = "9".repeat(78);
        assert_eq!(price(&max, "price").unwrap(), max);
        assert!(price(&"9".repeat(79), "price").is_err());
        assert_eq!(price_key("12").len(), 78);
        assert!(price_key("9") < price_key("10"));
        assert!(price_key("999999999999999999999") < price_key("1000000000000000000000"));
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
    fn patch_changes_only_given_fields() {
        let req: CreateListing = serde_json::from_value(json!({
            "datasetId": "ds_1", "title": "T", "domain": "energy", "price": "5",
            "rail": {"kind":"invoice","currency":"EUR"}
        }))
        .unwrap();
        let base = ListingFields::from_create(&req).unwrap();
        let patch: PatchListing =
            serde_json::from_value(json!({"title": "New", "domain": null})).unwrap();
        assert_eq!(patch.given(), vec!["title", "domain"]);
        let next = base.patched(&patch).unwrap();
        assert_eq!(next.title, "New");
        assert_eq!(next.domain, None);
        assert_eq!(next.price, "5");
        let empty: PatchListing = serde_json::from_value(json!({})).unwrap();
        assert!(empty.given().is_empty());
    }
}
