//! What a listing holds and how a request's fields are checked (every
//! refusal names its field); `super::db` reads and writes listings.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

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

pub use sealstream_api::listings::{
    CreateListing, DatasetState, DatasetSummary, HistoryPolicy, ListingKind, ListingState,
    PatchListing, SubscriptionTerms, MAX_GRACE_SECONDS, MAX_PERIOD_SECONDS,
};
pub use sealstream_api::payments::Rail;

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
    /// The compliance preset (normalised), if any.
    pub compliance: Option<sealstream_api::compliance::CompliancePreset>,
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
    if normal.parse::<u128>().is_err() {
        return Err(ApiError::bad_request(
            field,
            format!(
                "at most {} base units (the receipt log commits to amounts below 2^128)",
                u128::MAX
            ),
        ));
    }
    Ok(normal.to_string())
}

/// `price` (base units, checked by [`price`]) snapped to the nearest value
/// of the ladder: a mantissa of `ladder` (hundredths, ascending, the first
/// 100) times a power of ten; a tie goes up; 0 stays 0. An empty ladder
/// keeps the price. So listing prices fall on a few tiers and an amount
/// paid does not single out one listing.
pub fn snap_price(price: &str, ladder: &[u32]) -> String {
    let Ok(p) = price.parse::<u128>() else {
        return price.to_string();
    };
    if ladder.is_empty() || p == 0 {
        return price.to_string();
    }
    let mut decade: u128 = 1;
    while decade <= p / 10 {
        decade *= 10;
    }
    // Candidates: the ladder in this decade and the first step of the next.
    let at = |m: u32, d: u128| d.saturating_mul(u128::from(m)) / 100;
    let mut best = at(ladder[0], decade);
    let mut candidates: Vec<u128> = ladder.iter().map(|&m| at(m, decade)).collect();
    candidates.push(at(ladder[0], decade.saturating_mul(10)));
    for c in candidates {
        let (d_best, d_c) = (p.abs_diff(best), p.abs_diff(c));
        if d_c < d_best || d_c == d_best && c > best {
            best = c;
        }
    }
    best.max(1).to_string()
}

/// The sortable key of a normalised price: zero-padded to 78 digits.
pub fn price_key(price: &str) -> String {
    format!("{price:0>width$}", width = PRICE_DIGITS)
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
            rail: req.rail.check()?,
            delivery: delivery(req.delivery.as_deref())?,
            compliance: req
                .compliance
                .clone()
                .map(|p| p.checked("compliance"))
                .transpose()?,
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
            next.rail = r.check()?;
        }
        if let Some(d) = &patch.delivery {
            next.delivery = delivery(Some(d))?;
        }
        if let Some(c) = &patch.compliance {
            next.compliance = c.clone().map(|p| p.checked("compliance")).transpose()?;
        }
        Ok(next)
    }
}

/// Checks the kind of a creation request and its subscription terms: a
/// `dataset` listing names a dataset and no terms; a `subscription`
/// listing names terms (period, grace and history within bounds) and
/// neither a dataset nor sample chunks (a subscription has no fixed
/// chunks). The machine is checked against the store by the caller.
///
/// `min_period` is the server's shortest period (seconds, the operator's
/// policy: [`crate::server::Config::min_subscription_period`]).
pub fn subscription_terms(
    req: &CreateListing,
    min_period: u64,
) -> ApiResult<Option<SubscriptionTerms>> {
    match req.kind {
        ListingKind::Dataset => {
            if req.subscription.is_some() {
                return Err(ApiError::bad_request(
                    "subscription",
                    "only a listing of kind subscription has subscription terms",
                ));
            }
            if req.dataset_id.is_empty() {
                return Err(ApiError::bad_request(
                    "datasetId",
                    "a dataset listing names its dataset",
                ));
            }
            Ok(None)
        }
        ListingKind::Subscription => {
            if !req.dataset_id.is_empty() {
                return Err(ApiError::bad_request(
                    "datasetId",
                    "a subscription listing sells a topic, not a dataset",
                ));
            }
            if !req.sample_chunk_indexes.is_empty() {
                return Err(ApiError::bad_request(
                    "sampleChunkIndexes",
                    "a subscription listing has no sample chunks",
                ));
            }
            let Some(t) = &req.subscription else {
                return Err(ApiError::bad_request(
                    "subscription",
                    "a subscription listing names its machine, topic, period, grace and history",
                ));
            };
            // A chain's topic rules, the field named as in this request.
            crate::ingest::check_topic(&t.topic)
                .map_err(|e| ApiError::bad_request("subscription.topic", e.message.clone()))?;
            if !plausible_id(&t.machine_did) {
                return Err(ApiError::bad_request(
                    "subscription.machineDid",
                    "expected a machine DID",
                ));
            }
            let min_period = min_period.clamp(1, MAX_PERIOD_SECONDS);
            if !(min_period..=MAX_PERIOD_SECONDS).contains(&t.period_seconds) {
                return Err(ApiError::bad_request(
                    "subscription.periodSeconds",
                    format!("expected {min_period} to {MAX_PERIOD_SECONDS} seconds (this server's shortest period is {min_period})"),
                ));
            }
            if t.grace_seconds > MAX_GRACE_SECONDS {
                return Err(ApiError::bad_request(
                    "subscription.graceSeconds",
                    format!("expected 0 to {MAX_GRACE_SECONDS} seconds"),
                ));
            }
            if let HistoryPolicy::LastChunks(n) = t.history {
                if n == 0 || n > i64::MAX as u64 {
                    return Err(ApiError::bad_request(
                        "subscription.history.lastChunks",
                        "expected at least 1 (use \"none\" for no history)",
                    ));
                }
            }
            Ok(Some(t.clone()))
        }
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
    /// `dataset` or `subscription`.
    pub kind: ListingKind,
    /// The dataset on sale (empty for a subscription listing).
    pub dataset_id: String,
    /// A subscription listing's terms.
    pub subscription: Option<SubscriptionTerms>,
    /// The content.
    pub fields: ListingFields,
    /// Lifecycle state.
    pub state: ListingState,
    /// Completed sales as the public sees them: those paid before now minus
    /// `--public-stats-delay` when the stats job last ran
    /// ([`crate::listings::stats`]); shown only as a bucket.
    pub sales_count: i64,
    /// When created (UTC text).
    pub created_at: String,
    /// When last changed (UTC text).
    pub updated_at: String,
    /// When published (UTC text).
    pub published_at: Option<String>,
}

/// A dataset as far as listings need it: what a listing shows
/// ([`DatasetSummary`]), with its owner and its machine's chain key.
#[derive(Clone, Debug)]
pub struct ListedDataset {
    /// What a listing shows of it.
    pub summary: DatasetSummary,
    /// The dataset's owner.
    pub owner_did: String,
    /// The chain key of its machine, if registered.
    pub chain_public_key: Option<String>,
}

impl std::ops::Deref for ListedDataset {
    type Target = DatasetSummary;

    fn deref(&self) -> &DatasetSummary {
        &self.summary
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn prices_snap_to_the_ladder() {
        let ladder = [100, 200, 500];
        for (given, snapped) in [
            ("1234", "1000"),
            ("1800", "2000"),
            ("1500", "2000"),
            ("3400", "2000"),
            ("3600", "5000"),
            ("7600", "10000"),
            ("999", "1000"),
            ("5", "5"),
            ("7", "5"),
            ("8", "10"),
            ("0", "0"),
            ("250000000000000000", "200000000000000000"),
        ] {
            assert_eq!(snap_price(given, &ladder), snapped, "{given}");
        }
        assert_eq!(snap_price("1234", &[]), "1234");
        assert_eq!(snap_price("1400", &[100, 150, 250, 500]), "1500");
        assert!(price(&u128::MAX.to_string(), "price").is_ok());
        assert_eq!(
            price("340282366920938463463374607431768211456", "price")
                .unwrap_err()
                .status,
            axum::http::StatusCode::BAD_REQUEST
        );
    }
    use super::*;
    use sealstream_api::listings::MIN_PERIOD_SECONDS;
    use serde_json::json;

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
        // At most 2^128 − 1 base units (the receipt log's commitments);
        // more digits than a uint256 has are refused first.
        let max = u128::MAX.to_string();
        assert_eq!(price(&max, "price").unwrap(), max);
        assert!(price(&"9".repeat(39), "price").is_err());
        assert!(price(&"9".repeat(79), "price").is_err());
        assert_eq!(price_key("12").len(), 78);
        assert!(price_key("9") < price_key("10"));
        assert!(price_key("999999999999999999999") < price_key("1000000000000000000000"));
    }

    #[test]
    fn subscription_terms_are_checked_field_by_field() {
        let base = json!({
            "kind": "subscription", "title": "T", "price": "5",
            "rail": {"kind":"invoice","currency":"EUR"},
            "subscription": {"machineDid": "did:peaq:0x1", "topic": "/gps",
                             "periodSeconds": 86400, "graceSeconds": 3600, "history": "all"}
        });
        let req: CreateListing = serde_json::from_value(base.clone()).unwrap();
        assert_eq!(
            subscription_terms(&req, MIN_PERIOD_SECONDS)
                .unwrap()
                .unwrap()
                .history,
            HistoryPolicy::All
        );
        let cases = [
            (
                "/subscription/periodSeconds",
                json!(3599),
                "subscription.periodSeconds",
            ),
            (
                "/subscription/periodSeconds",
                json!(31_536_001),
                "subscription.periodSeconds",
            ),
            (
                "/subscription/graceSeconds",
                json!(2_592_001),
                "subscription.graceSeconds",
            ),
            ("/subscription/topic", json!(""), "subscription.topic"),
            (
                "/subscription/machineDid",
                json!(""),
                "subscription.machineDid",
            ),
            (
                "/subscription/history",
                json!({"lastChunks": 0}),
                "subscription.history.lastChunks",
            ),
            ("/datasetId", json!("ds_1"), "datasetId"),
            ("/sampleChunkIndexes", json!([1]), "sampleChunkIndexes"),
            ("/subscription", json!(null), "subscription"),
        ];
        for (pointer, value, field_named) in cases {
            let mut v = base.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(key.into(), value);
            let req: CreateListing = serde_json::from_value(v).unwrap();
            assert_eq!(
                field(subscription_terms(&req, MIN_PERIOD_SECONDS).unwrap_err()),
                field_named,
                "{pointer}"
            );
        }
        let dataset: CreateListing = serde_json::from_value(json!({
            "title": "T", "price": "5", "rail": {"kind":"invoice","currency":"EUR"},
            "subscription": base["subscription"].clone(), "datasetId": "ds_1"
        }))
        .unwrap();
        assert_eq!(
            field(subscription_terms(&dataset, MIN_PERIOD_SECONDS).unwrap_err()),
            "subscription"
        );
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
