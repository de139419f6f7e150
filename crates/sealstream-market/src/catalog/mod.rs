//! The public catalog: published listings, searched by words in their
//! title, description, tags and schema hint (SQLite FTS5 / PostgreSQL
//! `tsvector`), filtered by domain, machine, topic, price and time span,
//! sorted by relevance, publication time or price, a page at a time.
//!
//! Words are taken from `q` the same way on both engines: runs of letters
//! and digits, lower-cased; every word must match (AND). Nothing of `q`
//! reaches the query syntax of either engine (FTS5 gets each word quoted,
//! PostgreSQL gets the words space-separated through
//! `websearch_to_tsquery`), so no `q` is ever a syntax error.
//!
//! Pages: `limit` (≤ 100) items and a `nextCursor`, which carries the sort
//! key of the last item (keyset pagination: no item is repeated or skipped
//! while the catalog does not change); relevance pages carry an offset.
//! Prices compare exactly, as base-unit integers (see the migration).

pub mod cache;
mod db;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;

pub use sealstream_api::catalog::{CatalogItem, CatalogPage};

use crate::error::{ApiError, ApiResult};
use crate::listings::model::{price, price_key};
use crate::server::AppState;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;
/// Longest `q`, in characters.
pub const MAX_QUERY: usize = 1_000;
/// Most words in `q`.
pub const MAX_WORDS: usize = 32;
/// Length of a description excerpt, in characters.
pub const EXCERPT: usize = 280;

/// Sales as a bucket: `0`, `1-10`, `11-100`, `101-1000`, … A page shows
/// this, never a count of buyers nor who they are.
pub fn sales_bucket(sales: i64) -> String {
    if sales <= 0 {
        return "0".to_string();
    }
    let mut high: i128 = 10;
    while i128::from(sales) > high {
        high *= 10;
    }
    let low = if high == 10 { 1 } else { high / 10 + 1 };
    format!("{low}-{high}")
}

/// The searchable words of `q`: runs of letters and digits, lower-cased,
/// deduplicated, in order.
pub fn words(q: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in q.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let w = word.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// An FTS5 query requiring every word: each one a quoted string (words
/// hold only letters and digits, so nothing needs escaping; quotes would
/// be doubled anyway).
pub fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Query parameters, checked: unknown or repeated names are refused,
/// naming them.
#[derive(Debug)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// From the query extractor's result; `allowed` names the parameters
    /// the route takes.
    pub fn new(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> ApiResult<QueryParams> {
        let Query(pairs) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_request(
                    name,
                    format!("unknown parameter (expected one of {})", allowed.join(", ")),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_request(name, "given more than once"));
            }
            if pairs[i].1.chars().any(char::is_control) {
                return Err(ApiError::bad_request(
                    name,
                    "must not contain control characters",
                ));
            }
        }
        Ok(QueryParams(pairs))
    }

    /// The value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
    pub fn limit(&self) -> ApiResult<usize> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(
                    "limit",
                    format!("expected an integer from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`, or of a plain
/// integer (already seconds).
pub fn parse_time(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| sealstream_core::utc::parse_seconds(text))
}

/// How the catalog is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Best match first (needs `q`).
    Relevance,
    /// By publication time.
    Newest,
    /// By price.
    Price,
}

/// A position in a sorted catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cursor {
    /// After the item with this (published time, id).
    Newest(i64, String),
    /// After the item with this (price key, id).
    Price(String, String),
    /// After this many items.
    Offset(u64),
}

fn cursor_tag(sort: Sort, descending: bool) -> &'static str {
    match (sort, descending) {
        (Sort::Newest, true) => "n-",
        (Sort::Newest, false) => "n+",
        (Sort::Price, true) => "p-",
        (Sort::Price, false) => "p+",
        (Sort::Relevance, true) => "r-",
        (Sort::Relevance, false) => "r+",
    }
}

impl Cursor {
    fn encode(&self, sort: Sort, descending: bool) -> String {
        let body = match self {
            Cursor::Newest(t, id) => format!("{t}|{id}"),
            Cursor::Price(k, id) => format!("{k}|{id}"),
            Cursor::Offset(n) => n.to_string(),
        };
        hex::encode(format!("{}|{body}", cursor_tag(sort, descending)))
    }

    fn decode(text: &str, sort: Sort, descending: bool) -> ApiResult<Cursor> {
        let bad = || {
            ApiError::bad_request("cursor", "not a cursor of this query (use nextCursor as given, with the same sort and order)")
        };
        let raw = hex::decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (tag, body) = raw.split_once('|').ok_or_else(bad)?;
        if tag != cursor_tag(sort, descending) {
            return Err(bad());
        }
        match sort {
            Sort::Relevance => body.parse().map(Cursor::Offset).map_err(|_| bad()),
            Sort::Newest => {
                let (t, id) = body.split_once('|').ok_or_else(bad)?;
                Ok(Cursor::Newest(
                    t.parse().map_err(|_| bad())?,
                    id.to_string(),
                ))
            }
            Sort::Price => {
                let (k, id) = body.split_once('|').ok_or_else(bad)?;
                if k.len() != crate::listings::model::PRICE_DIGITS
                    || !k.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                Ok(Cursor::Price(k.to_string(), id.to_string()))
            }
        }
    }
}

/// A catalog query, checked.
#[derive(Debug)]
struct Search {
    words: Vec<String>,
    domain: Option<String>,
    machine: Option<String>,
    topic: Option<String>,
    min_price: Option<String>,
    max_price: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    sort: Sort,
    descending: bool,
    limit: usize,
    cursor: Option<Cursor>,
    kind: Option<crate::listings::ListingKind>,
    rail: Option<sealstream_api::payments::RailKind>,
    /// ASCII letters in lower case: compared with `LOWER(tags)`, which
    /// SQLite applies to ASCII letters only.
    tag: Option<String>,
}

/// The parameters the catalog takes: those of the API's query type.
const PARAMS: [&str; 15] = sealstream_api::catalog::CatalogQuery::PARAMS;

impl Search {
    fn parse(params: &QueryParams) -> ApiResult<Search> {
        let mut words_found = Vec::new();
        if let Some(q) = params.get("q") {
            if q.chars().count() > MAX_QUERY {
                return Err(ApiError::bad_request(
                    "q",
                    format!("longer than {MAX_QUERY} characters"),
                ));
            }
            words_found = words(q);
            if words_found.is_empty() {
                return Err(ApiError::bad_request(
                    "q",
                    "no word to search for (words are letters and digits)",
                ));
            }
            if words_found.len() > MAX_WORDS {
                return Err(ApiError::bad_request(
                    "q",
                    format!("more than {MAX_WORDS} words"),
                ));
            }
        }
        let min_price = params
            .get("minPrice")
            .map(|p| price(p, "minPrice"))
            .transpose()?;
        let max_price = params
            .get("maxPrice")
            .map(|p| price(p, "maxPrice"))
            .transpose()?;
        if let (Some(lo), Some(hi)) = (&min_price, &max_price) {
            if price_key(lo) > price_key(hi) {
                return Err(ApiError::bad_request("minPrice", "greater than maxPrice"));
            }
        }
        let time = |name: &str| -> ApiResult<Option<i64>> {
            params
                .get(name)
                .map(|t| {
                    parse_time(t).ok_or_else(|| {
                        ApiError::bad_request(
                            name,
                            "expected YYYY-MM-DDTHH:MM:SSZ or seconds since the epoch",
                        )
                    })
                })
                .transpose()
        };
        let (from, to) = (time("from")?, time("to")?);
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(ApiError::bad_request("from", "later than to"));
            }
        }
        let sort = match params.get("sort") {
            None if !words_found.is_empty() => Sort::Relevance,
            None | Some("newest") => Sort::Newest,
            Some("relevance") if !words_found.is_empty() => Sort::Relevance,
            Some("relevance") => {
                return Err(ApiError::bad_request(
                    "sort",
                    "relevance needs words to search for in q",
                ))
            }
            Some("price") => Sort::Price,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "sort",
                    "expected relevance, newest or price",
                ))
            }
        };
        let descending = match params.get("order") {
            None => sort != Sort::Price,
            Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(ApiError::bad_request("order", "expected asc or desc")),
        };
        let limit = params.limit()?;
        let cursor = params
            .get("cursor")
            .map(|c| Cursor::decode(c, sort, descending))
            .transpose()?;
        let text = |name: &str, max: usize| -> ApiResult<Option<String>> {
            match params.get(name) {
                Some(v) if v.chars().count() > max => Err(ApiError::bad_request(
                    name,
                    format!("longer than {max} characters"),
                )),
                v => Ok(v.map(str::to_string)),
            }
        };
        Ok(Search {
            words: words_found,
            domain: text("domain", 200)?,
            machine: text("machine", 200)?,
            topic: text("topic", 1_000)?,
            min_price,
            max_price,
            from,
            to,
            sort,
            descending,
            limit,
            cursor,
            kind: params
                .get("kind")
                .map(|k| {
                    crate::listings::ListingKind::parse(k).ok_or_else(|| {
                        ApiError::bad_request("kind", "expected dataset or subscription")
                    })
                })
                .transpose()?,
            rail: params
                .get("rail")
                .map(|r| {
                    sealstream_api::payments::RailKind::parse(r)
                        .ok_or_else(|| ApiError::bad_request("rail", "expected invoice or evm"))
                })
                .transpose()?,
            tag: match text("tag", 40)? {
                Some(t) if t.trim().is_empty() => {
                    return Err(ApiError::bad_request("tag", "an empty tag"))
                }
                t => t.map(|t| t.trim().to_ascii_lowercase()),
            },
        })
    }
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
    }
}

/// Searches the published listings.
#[utoipa::path(get, path = sealstream_api::routes::CATALOG, tag = "catalog",
    params(
        ("q" = Option<String>, Query, description = "Words to find in title, description, tags and schema hint (all must match; at most 1,000 characters)"),
        ("domain" = Option<String>, Query, description = "Only this domain"),
        ("machine" = Option<String>, Query, description = "Only datasets of this machine DID"),
        ("topic" = Option<String>, Query, description = "Only datasets of this topic"),
        ("minPrice" = Option<String>, Query, description = "Lowest price, base units"),
        ("maxPrice" = Option<String>, Query, description = "Highest price, base units"),
        ("from" = Option<String>, Query, description = "Datasets with data at or after this time (UTC YYYY-MM-DDTHH:MM:SSZ or epoch seconds)"),
        ("to" = Option<String>, Query, description = "Datasets with data at or before this time"),
        ("sort" = Option<String>, Query, description = "relevance (default with q), newest (default without), price"),
        ("order" = Option<String>, Query, description = "asc or desc (default desc; asc for price)"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("kind" = Option<String>, Query, description = "Only listings of this kind: dataset or subscription"),
        ("rail" = Option<String>, Query, description = "Only listings paid on this rail: invoice or evm"),
        ("tag" = Option<String>, Query, description = "Only listings carrying this tag (the case of ASCII letters does not matter; at most 40 characters)")),
    responses(
        (status = 200, description = "A page of published listings", body = CatalogPage),
        (status = 400, description = "A parameter is wrong (named in `field`)", body = crate::openapi::ErrorBody)))]
pub async fn catalog(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Json<CatalogPage>> {
    let params = QueryParams::new(query, &PARAMS)?;
    let search = Search::parse(&params)?;
    let sql = db::build(&search, state.store.engine());
    let key = sql.key();
    let generation = db::generation(&state.store).await?;
    if let Some(page) = state.catalog_cache.get(&key, generation) {
        return Ok(Json(CatalogPage::clone(&page)));
    }
    let page = db::search(&state.store, &search, &sql).await?;
    let last = page
        .found
        .last()
        .map(|f| (f.published_unix, f.price_key.clone(), f.item.id.clone()));
    let items = page.found.into_iter().map(|f| f.item).collect();
    let next_cursor = match (page.more, last) {
        (true, Some((published, key, id))) => {
            let cursor = match search.sort {
                Sort::Newest => Cursor::Newest(published, id),
                Sort::Price => Cursor::Price(key, id),
                Sort::Relevance => {
                    let before = match &search.cursor {
                        Some(Cursor::Offset(n)) => *n,
                        _ => 0,
                    };
                    Cursor::Offset(before + search.limit as u64)
                }
            };
            Some(cursor.encode(search.sort, search.descending))
        }
        _ => None,
    };
    let page = CatalogPage { items, next_cursor };
    state
        .catalog_cache
        .insert(key, generation, std::sync::Arc::new(page.clone()));
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sales_buckets() {
        let cases = [
            (-3, "0"),
            (0, "0"),
            (1, "1-10"),
            (10, "1-10"),
            (11, "11-100"),
            (100, "11-100"),
            (101, "101-1000"),
            (1000, "101-1000"),
            (1001, "1001-10000"),
            (999_999, "100001-1000000"),
        ];
        for (n, bucket) in cases {
            assert_eq!(sales_bucket(n), bucket, "{n}");
        }
        assert_eq!(
            sales_bucket(i64::MAX),
            "1000000000000000001-10000000000000000000"
        );
    }

    #[test]
    fn words_are_letters_and_digits_only() {
        assert_eq!(
            words("Air-Quality  \"PM2.5\" NEAR(x*)"),
            ["air", "quality", "pm2", "5", "near", "x"]
        );
        assert!(words("\"*()-^:").is_empty());
        assert_eq!(words("Überlingen über"), ["überlingen", "über"]);
        assert_eq!(fts5_query(&words("a b")), "\"a\" \"b\"");
    }

    #[test]
    fn times_parse_as_utc_text_or_seconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        for t in 0..3 {
            let secs = 1_600_000_000 + t * 86_399 * 37;
            let text = sealstream_core::utc::format_seconds(secs);
            assert_eq!(parse_time(&text), Some(secs), "{text}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "yesterday",
            "2024-01-01 00:00:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_sort() {
        let c = Cursor::Newest(17, "ls_ab".into());
        let text = c.encode(Sort::Newest, true);
        assert_eq!(Cursor::decode(&text, Sort::Newest, true).unwrap(), c);
        assert!(Cursor::decode(&text, Sort::Newest, false).is_err());
        assert!(Cursor::decode(&text, Sort::Price, true).is_err());
        assert!(Cursor::decode("zz", Sort::Newest, true).is_err());
        let o = Cursor::Offset(40);
        assert_eq!(
            Cursor::decode(&o.encode(Sort::Relevance, true), Sort::Relevance, true).unwrap(),
            o
        );
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(EXCERPT + 5);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT + 1);
        assert!(e.ends_with('…'));
    }
}
