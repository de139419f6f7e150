//! `sealstream market search|topics|listing show|receipt key`: what a buyer
//! (or anyone) reads of a market before buying, and the chains an owner's
//! machine holds on it. All but `topics` need no sign-in.

use sealstream_api::catalog::{CatalogItem, CatalogPage, CatalogQuery};
use sealstream_api::listings::ListingView;
use sealstream_api::payments::{format_units, Rail, RailKind};

use super::market_session::{anonymous, client, client_error, json_answer};
use crate::cli::{CatalogKind, CatalogRail, MarketSearchArgs, MarketServer, MarketSession};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// Items the catalog gives at most per page.
const CATALOG_PAGE: u32 = 100;

/// Pages read at most while filtering the catalog here (`--tag`, `--rail`).
const MAX_PAGES: usize = 100;

/// A price in whole units with its symbol or currency (`1.5 PEAQ`,
/// `12.5 EUR`).
pub fn price_text(price: &str, rail: &Rail) -> String {
    let unit = match rail {
        Rail::Evm { symbol, token, .. } => symbol
            .clone()
            .or_else(|| token.clone())
            .unwrap_or_else(|| "native".into()),
        Rail::Invoice { currency, .. } => currency.clone(),
    };
    format!("{} {unit}", format_units(price, rail.decimals()))
}

/// A rail in a few words (`evm chain 3338`, `invoice EUR`).
pub fn rail_text(rail: &Rail) -> String {
    match rail {
        Rail::Evm { chain_id, .. } => format!("evm chain {chain_id}"),
        Rail::Invoice { currency, .. } => format!("invoice {currency}"),
    }
}

/// Whether `item` passes the filters the catalog has no parameter for.
fn passes(item: &CatalogItem, tags: &[String], rail: Option<CatalogRail>) -> bool {
    let rail_ok = match rail {
        None => true,
        Some(CatalogRail::Evm) => item.rail.kind() == RailKind::Evm,
        Some(CatalogRail::Invoice) => item.rail.kind() == RailKind::Invoice,
    };
    rail_ok
        && tags
            .iter()
            .all(|t| item.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
}

/// `market search`.
pub fn search(args: MarketSearchArgs, ui: Ui) -> CliResult {
    let mut client = anonymous(&args.server)?;
    let limit = args.limit as usize;
    let filtered = !args.tags.is_empty() || args.rail.is_some();
    let mut query = CatalogQuery {
        q: args.text.filter(|t| !t.trim().is_empty()),
        domain: args.domain,
        machine: args.machine,
        topic: args.topic,
        min_price: args.min_price,
        max_price: args.max_price,
        kind: args.kind.map(|k| {
            match k {
                CatalogKind::Dataset => "dataset",
                CatalogKind::Subscription => "subscription",
            }
            .to_string()
        }),
        // The server filters by the rail and the first tag; the other tags
        // are checked here.
        rail: args.rail.map(|r| {
            match r {
                CatalogRail::Evm => "evm",
                CatalogRail::Invoice => "invoice",
            }
            .to_string()
        }),
        tag: args.tags.first().cloned(),
        ..CatalogQuery::default()
    };
    let mut items: Vec<CatalogItem> = Vec::new();
    let mut next_cursor = None;
    for _ in 0..MAX_PAGES {
        let wanted = if filtered {
            CATALOG_PAGE
        } else {
            (limit - items.len()).min(CATALOG_PAGE as usize) as u32
        };
        query.limit = Some(wanted);
        let page = client
            .catalog(&query)
            .map_err(|e| client_error("search", e))?;
        items.extend(
            page.items
                .into_iter()
                .filter(|i| passes(i, &args.tags, args.rail)),
        );
        next_cursor = page.next_cursor;
        if items.len() >= limit || next_cursor.is_none() {
            break;
        }
        query.cursor = next_cursor.clone();
    }
    if items.len() > limit {
        items.truncate(limit);
    }
    if ui.json {
        return json_answer(&ui, &CatalogPage { items, next_cursor });
    }
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|i| {
            [
                i.id.clone(),
                price_text(&i.price, &i.rail),
                rail_text(&i.rail),
                match &i.subscription {
                    Some(t) => format!("live {}, per {} s", t.topic, t.period_seconds),
                    None => format!("{} chunks", i.chunk_count),
                },
                i.title.clone(),
            ]
        })
        .collect();
    print_table(&["ID", "PRICE", "RAIL", "DATASET", "TITLE"], &rows);
    ui.say(format!(
        "{} listing{} found{}",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        if next_cursor.is_some() {
            " (more: raise --limit)"
        } else {
            ""
        }
    ));
    Ok(())
}

/// Columns padded to their widest cell, the last one as it is; on stdout.
fn print_table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) {
    use std::io::Write;
    let mut widths = head.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (n, cell) in cells.iter().enumerate() {
            if n + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[n]));
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(head);
    for row in rows {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `market listing show`: a published listing, with no sign-in.
pub fn show_listing(server: &MarketServer, id: &str, ui: Ui) -> CliResult {
    let mut client = anonymous(server)?;
    let listing = client
        .listing(id)
        .map_err(|e| client_error("listing show", e))?;
    if ui.json {
        return json_answer(&ui, &listing);
    }
    for line in describe_listing(&listing) {
        println!("{line}");
    }
    Ok(())
}

/// A history policy in a few words (`none`, `all`, `last 100 chunks`).
pub fn history_text(history: sealstream_api::listings::HistoryPolicy) -> String {
    use sealstream_api::listings::HistoryPolicy;
    match history {
        HistoryPolicy::None => "none".into(),
        HistoryPolicy::All => "all".into(),
        HistoryPolicy::LastChunks(n) => format!("last {n} chunks"),
    }
}

/// What a person needs to know of a listing, a line each.
fn describe_listing(l: &ListingView) -> Vec<String> {
    let mut lines = vec![
        format!("{} ({}): {}", l.id, l.state, l.title),
        format!("  provider: {}", l.owner_did),
    ];
    if let Some(t) = &l.subscription {
        lines.push(format!(
            "  price:    {} ({} base units) per period of {} s, {}",
            price_text(&l.price, &l.rail),
            l.price,
            t.period_seconds,
            rail_text(&l.rail)
        ));
        lines.push(format!(
            "  subscription: {} {}, grace {} s, history {}",
            t.machine_did,
            t.topic,
            t.grace_seconds,
            history_text(t.history)
        ));
    } else {
        lines.push(format!(
            "  price:    {} ({} base units), {}",
            price_text(&l.price, &l.rail),
            l.price,
            rail_text(&l.rail)
        ));
    }
    if let Some(d) = &l.dataset {
        lines.push(format!(
            "  dataset:  {} of {} {}: chunks {}..={}, root {}",
            d.id,
            d.machine_did,
            d.topic,
            d.first_index,
            d.first_index + d.chunk_count - 1,
            d.merkle_root
        ));
        lines.push(format!("  received: {} to {}", d.from, d.to));
    }
    if let Rail::Evm { pay_to, token, .. } = &l.rail {
        lines.push(format!(
            "  pay to:   {pay_to}{}",
            token
                .as_deref()
                .map(|t| format!(", token {t}"))
                .unwrap_or_default()
        ));
    }
    if !l.tags.is_empty() {
        lines.push(format!("  tags:     {}", l.tags.join(", ")));
    }
    if let Some(domain) = &l.domain {
        lines.push(format!("  domain:   {domain}"));
    }
    let samples: Vec<String> = l.samples_available.iter().map(u64::to_string).collect();
    lines.push(format!(
        "  samples:  {}",
        if samples.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} (market sample get {} --verify --decrypt)",
                samples.join(", "),
                l.id
            )
        }
    ));
    if let Some(license) = &l.license {
        let text = match sealstream_api::document::core_value_of(license) {
            Ok(sealstream_core::json::Value::String(s)) => s,
            Ok(other) => sealstream_core::json::write::to_python_compact(&other),
            Err(e) => format!("(unreadable: {e})"),
        };
        lines.push(format!("  license:  {text}"));
    }
    lines.push(format!("  delivery: {}", l.delivery.join(", ")));
    if !l.description.is_empty() {
        lines.push(String::new());
        lines.push(l.description.clone());
    }
    lines
}

/// `market receipt key`: the key on stdout, for `$(…)`.
pub fn receipt_key(server: &MarketServer, ui: Ui) -> CliResult {
    let mut client = anonymous(server)?;
    let key = client
        .receipt_key()
        .map_err(|e| client_error("receipt key", e))?;
    if ui.json {
        return json_answer(&ui, &key);
    }
    println!("{}", key.public_key_hex);
    ui.say(format!(
        "The market's {} receipt key: pin it with `sealstream receipt verify --server-key`",
        key.algorithm
    ));
    Ok(())
}

/// `market topics`: a machine's chains.
pub fn topics(session: &MarketSession, machine: &str, ui: Ui) -> CliResult {
    let machine = sealstream_core::identity::Did::parse(machine, "--machine-did")
        .map_err(|e| CliError::input(e.to_string()))?
        .to_string();
    let mut client = client(session, "an owner")?;
    let list = client
        .topics(&machine)
        .map_err(|e| client_error("topics", e))?;
    if ui.json {
        return json_answer(&ui, &list);
    }
    let rows: Vec<[String; 5]> = list
        .topics
        .iter()
        .map(|t| {
            [
                t.topic.clone(),
                t.chunk_count.to_string(),
                crate::ui::human_size(t.bytes),
                t.updated_at.clone(),
                t.head_chunk_id.clone(),
            ]
        })
        .collect();
    print_table(
        &["TOPIC", "CHUNKS", "BYTES", "LAST CHUNK AT", "HEAD"],
        &rows,
    );
    ui.say(format!(
        "{}: {} topic{}",
        list.machine,
        list.topics.len(),
        if list.topics.len() == 1 { "" } else { "s" }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tags: &[&str], rail: Rail) -> CatalogItem {
        CatalogItem {
            id: "ls_1".into(),
            kind: Default::default(),
            subscription: None,
            title: "t".into(),
            description_excerpt: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            domain: None,
            machine_did: "did:peaq:0x1".into(),
            topic: "/t".into(),
            price: "1250".into(),
            rail,
            dataset_id: "ds_1".into(),
            chunk_count: 2,
            merkle_root: "0x00".into(),
            from: String::new(),
            to: String::new(),
            sales_bucket: "0".into(),
            published_at: None,
        }
    }

    fn invoice() -> Rail {
        Rail::Invoice {
            currency: "EUR".into(),
            decimals: 2,
            payee: None,
            terms: None,
            escrow: false,
        }
    }

    #[test]
    fn tags_and_rails_are_filtered_here() {
        let i = item(&["Robotics", "torque"], invoice());
        assert!(passes(&i, &[], None));
        assert!(passes(&i, &["robotics".into()], Some(CatalogRail::Invoice)));
        assert!(!passes(&i, &["robotics".into(), "gps".into()], None));
        assert!(!passes(&i, &[], Some(CatalogRail::Evm)));
    }

    #[test]
    fn prices_read_in_whole_units() {
        assert_eq!(price_text("1250", &invoice()), "12.5 EUR");
        let evm = Rail::Evm {
            chain_id: 3338,
            token: None,
            decimals: 18,
            pay_to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
            symbol: Some("PEAQ".into()),
            escrow: false,
        };
        assert_eq!(price_text("1500000000000000000", &evm), "1.5 PEAQ");
        assert_eq!(rail_text(&evm), "evm chain 3338");
    }
}
