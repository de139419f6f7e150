//! The public catalog on both databases: full-text search over title,
//! description, tags and schema hint; filters; pages without duplicates
//! or gaps; sorting; hostile queries never a 500; parameters refused by
//! name.

mod common;

use std::collections::BTreeSet;

use common::listings_fixtures::{
    chain, dataset, encode, listing_body, owner, publish, signed_dataset,
};
use common::{block_on, Db, TestServer};
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn search(server: &TestServer, query: &str) -> Vec<String> {
    let (status, page) = server.get(&format!("/v1/catalog?{query}"), None);
    assert_eq!(status, 200, "{query}: {page}");
    ids(&page)
}

/// [`search`] on the test's own server process, never through a proxy
/// (the catalog cache is each process's).
fn search_here(server: &TestServer, query: &str) -> Vec<String> {
    let (status, page) = server.get_here(&format!("/v1/catalog?{query}"), None);
    assert_eq!(status, 200, "{query}: {page}");
    ids(&page)
}

/// Every page of `query` with `limit`, following `nextCursor`.
fn all_pages(server: &TestServer, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let (status, page) =
            server.get(&format!("/v1/catalog?{query}&limit={limit}{cursor}"), None);
        assert_eq!(status, 200, "{page}");
        let got = ids(&page);
        assert!(got.len() <= limit);
        out.extend(got);
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
    panic!("more than 100 pages")
}

fn words_in_every_field(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    let mut b = listing_body(&ds, "Harbour crane telemetry");
    b["description"] = json!("Hydraulic pressure of gantry cranes, sampled at 10 Hz.");
    b["tags"] = json!(["logistics", "port"]);
    b["schemaHint"] = json!("{\"pressureKpa\": number, \"boomAngle\": number}");
    let crane = publish(&server, &alice.token, &b);
    let mut b = listing_body(&ds, "Vineyard soil moisture");
    b["description"] = json!("Capacitive probes in Burgundy vineyards.");
    b["tags"] = json!(["agriculture", "Überwachung"]);
    b["schemaHint"] = json!("{\"moisture\": number}");
    let soil = publish(&server, &alice.token, &b);
    // A draft never shows.
    let mut b = listing_body(&ds, "Secret crane draft");
    b["tags"] = json!(["port"]);
    server.send("POST", "/v1/listings", Some(&alice.token), &b);

    assert_eq!(search(&server, "q=crane"), [crane.as_str()]);
    assert_eq!(search(&server, "q=Hydraulic"), [crane.as_str()]);
    assert_eq!(search(&server, "q=port"), [crane.as_str()]);
    assert_eq!(search(&server, "q=boomAngle"), [crane.as_str()]);
    assert_eq!(search(&server, "q=HARBOUR%20gantry"), [crane.as_str()]);
    assert_eq!(
        search(&server, "q=harbour%20moisture"),
        Vec::<String>::new()
    );
    assert_eq!(search(&server, "q=burgundy"), [soil.as_str()]);
    assert_eq!(search(&server, "q=%C3%BCberwachung"), [soil.as_str()]);
    assert_eq!(search(&server, "q=moisture&sort=newest"), [soil.as_str()]);
    let mut both = search(&server, "");
    both.sort();
    let mut expected = vec![crane.clone(), soil.clone()];
    expected.sort();
    assert_eq!(both, expected);

    // A title word ranks above a description word.
    let mut b = listing_body(&ds, "Ordinary feed");
    b["description"] = json!("Mentions a turbine once.");
    let low = publish(&server, &alice.token, &b);
    let high = publish(
        &server,
        &alice.token,
        &listing_body(&ds, "Turbine vibration"),
    );
    assert_eq!(search(&server, "q=turbine"), [high.clone(), low.clone()]);
    assert_eq!(search(&server, "q=turbine&order=asc"), [low, high]);

    // An item carries what a buyer needs to decide.
    let (_, page) = server.get("/v1/catalog?q=crane", None);
    let item = &page["items"][0];
    for key in [
        "title",
        "descriptionExcerpt",
        "tags",
        "domain",
        "machineDid",
        "topic",
        "price",
        "rail",
        "chunkCount",
        "merkleRoot",
        "salesBucket",
        "publishedAt",
    ] {
        assert!(!item[key].is_null(), "{key} missing: {item}");
    }
    assert_eq!(item["salesBucket"], "0");
    assert!(item.get("salesCount").is_none() && item.get("buyers").is_none());

    // Patching the text re-indexes it; withdrawing removes it.
    let (status, _) = server.send(
        "PATCH",
        &format!("/v1/listings/{crane}"),
        Some(&alice.token),
        &json!({"title": "Quay crane telemetry", "tags": ["maritime"]}),
    );
    assert_eq!(status, 200);
    assert_eq!(search(&server, "q=harbour"), Vec::<String>::new());
    assert_eq!(search(&server, "q=quay%20maritime"), [crane.as_str()]);
    // Again: the row replaced each time is the listing's own (found by key, not by scan).
    let (status, _) = server.send(
        "PATCH",
        &format!("/v1/listings/{crane}"),
        Some(&alice.token),
        &json!({"title": "Berth crane telemetry"}),
    );
    assert_eq!(status, 200);
    assert_eq!(search(&server, "q=quay"), Vec::<String>::new());
    assert_eq!(search(&server, "q=berth%20maritime"), [crane.as_str()]);
    assert_eq!(search(&server, "q=burgundy"), [soil.as_str()]);
    server.send(
        "POST",
        &format!("/v1/listings/{crane}/withdraw"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(search(&server, "q=quay"), Vec::<String>::new());
}

fn filters(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    // Two machines, two topics, three time spans.
    let plain: [&[u8]; 3] = [b"a", b"b", b"c"];
    let early = chain(&server, &alice.did, "air/pm25", &plain, 1_600_000_000);
    let late = chain(&server, &alice.did, "water/ph", &plain, 1_700_000_000);
    let ds_early = dataset(&server, &alice.did, &early, 0, 3, "signed");
    let ds_late = dataset(&server, &alice.did, &late, 0, 3, "signed");
    let ds_late_tail = dataset(&server, &alice.did, &late, 2, 1, "signed");
    let make = |ds: &str, domain: &str, price: &str, tags: Value| {
        let mut b = listing_body(ds, "Sensor feed");
        b["domain"] = json!(domain);
        b["price"] = json!(price);
        b["tags"] = tags;
        if domain == "air" {
            b["rail"] = json!({"kind": "invoice", "currency": "EUR", "decimals": 2});
        }
        publish(&server, &alice.token, &b)
    };
    let cheap = make(&ds_early, "air", "9", json!(["Air", "pm2_5"]));
    let mid = make(&ds_late, "water", "10", json!(["water"]));
    // Larger than i64 and than u64: compared exactly.
    let dear = make(
        &ds_late_tail,
        "water",
        "100000000000000000000000",
        json!(["water", "100%", "say \"hi\""]),
    );
    let set = |query: &str| -> BTreeSet<String> { search(&server, query).into_iter().collect() };
    let of = |v: &[&String]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };

    assert_eq!(set("domain=water"), of(&[&mid, &dear]));
    assert_eq!(set("domain=air"), of(&[&cheap]));
    assert_eq!(
        set(&format!("machine={}", encode(&early.machine_did))),
        of(&[&cheap])
    );
    assert_eq!(
        set(&format!("topic={}", encode("water/ph"))),
        of(&[&mid, &dear])
    );
    assert_eq!(set("minPrice=10"), of(&[&mid, &dear]));
    assert_eq!(set("maxPrice=10"), of(&[&cheap, &mid]));
    assert_eq!(
        set("minPrice=10&maxPrice=99999999999999999999999"),
        of(&[&mid])
    );
    assert_eq!(set("minPrice=100000000000000000000000"), of(&[&dear]));
    // Time spans: early covers 1.6e9 .. 1.6e9+120; late 1.7e9 .. +120; tail 1.7e9+120.
    assert_eq!(set("to=1600000060"), of(&[&cheap]));
    assert_eq!(set("from=2023-11-14T22:15:00Z"), of(&[&dear, &mid]));
    assert_eq!(set("from=1700000100&to=1700000110"), of(&[&mid]));
    assert_eq!(set("from=1800000000"), of(&[]));
    assert_eq!(set("domain=water&maxPrice=10&q=sensor"), of(&[&mid]));
    // Rails and tags (a whole tag, case aside; LIKE's wildcards are
    // literal; JSON escapes match).
    assert_eq!(set("rail=invoice"), of(&[&cheap]));
    assert_eq!(set("rail=evm"), of(&[&mid, &dear]));
    assert_eq!(set("tag=air"), of(&[&cheap]));
    assert_eq!(set("tag=PM2_5"), of(&[&cheap]));
    assert_eq!(set("tag=pm2x5"), of(&[]));
    assert_eq!(set("tag=wat"), of(&[]));
    assert_eq!(set(&format!("tag={}", encode("100%"))), of(&[&dear]));
    assert_eq!(set(&format!("tag={}", encode("100"))), of(&[]));
    assert_eq!(set(&format!("tag={}", encode("say \"hi\""))), of(&[&dear]));
    assert_eq!(set("tag=water&rail=evm&maxPrice=10"), of(&[&mid]));
    // Only whole elements: the text between two tags is none, nor is a
    // tag's quoted part.
    assert_eq!(set(&format!("tag={}", encode(","))), of(&[]));
    assert_eq!(set(&format!("tag={}", encode("hi"))), of(&[]));
    assert_eq!(set(&format!("tag={}", encode("\"water\""))), of(&[]));

    // Price sorting is numeric, both ways.
    assert_eq!(
        search(&server, "sort=price"),
        [cheap.clone(), mid.clone(), dear.clone()]
    );
    assert_eq!(search(&server, "sort=price&order=desc"), [dear, mid, cheap]);
}

fn pages_have_no_gaps_or_duplicates(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    let mut all = Vec::new();
    for i in 0..11 {
        let mut b = listing_body(&ds, &format!("Paged feed number {i}"));
        b["price"] = json!(format!("{}", (i * 7) % 5)); // ties on price
        if i % 3 == 0 {
            b["description"] = json!("paged paged paged");
        }
        all.push(publish(&server, &alice.token, &b));
    }
    let mut expected = all.clone();
    expected.sort();
    for query in [
        "sort=newest",
        "sort=newest&order=asc",
        "sort=price",
        "sort=price&order=desc",
        "q=paged",
        "q=paged&order=asc",
        "q=feed&sort=price",
    ] {
        for limit in [1, 3, 4, 100] {
            let got = all_pages(&server, query, limit);
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, expected, "{query} limit {limit}: {got:?}");
            if limit > 1 {
                assert_eq!(
                    got,
                    all_pages(&server, query, 1),
                    "{query}: same order at any page size"
                );
            }
        }
    }
    // Newest first means the reverse of publication (ties broken by id).
    let newest = all_pages(&server, "sort=newest", 100);
    let oldest = all_pages(&server, "sort=newest&order=asc", 100);
    assert_eq!(newest.iter().rev().cloned().collect::<Vec<_>>(), oldest);
}

fn hostile_queries_are_never_500(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    publish(
        &server,
        &alice.token,
        &listing_body(&ds, "Robust NEAR search"),
    );
    let long = "crane ".repeat(2_000);
    let hostile = [
        "\"",
        "\"\"",
        "\"unterminated",
        "*",
        "a*",
        "NEAR",
        "NEAR(a b)",
        "a NEAR/2 b",
        "-",
        "-robust",
        "robust -search",
        "(",
        ")",
        "((robust)",
        "robust AND",
        "OR",
        "NOT robust",
        "title:robust",
        "{title}: x",
        "^robust",
        "robust'; DROP TABLE listings; --",
        "%",
        "\\",
        "\u{0}",
        "🙂",
        "a & b | !c <-> d",
        long.as_str(),
    ];
    for q in hostile {
        let (status, body) = server.get(&format!("/v1/catalog?q={}", encode(q)), None);
        assert!(status == 200 || status == 400, "{q:?}: {status} {body}");
        if status == 400 {
            assert_eq!(body["error"]["field"], "q", "{q:?}: {body}");
        }
    }
    // Operators are words like any other.
    assert_eq!(
        search(&server, &format!("q={}", encode("NEAR(robust)"))).len(),
        1
    );
    assert_eq!(
        search(&server, &format!("q={}", encode("\"robust\" -search*"))).len(),
        1
    );
    let (status, body) = server.get(&format!("/v1/catalog?q={}", encode(&long)), None);
    assert_eq!((status, body["error"]["field"].clone()), (400, json!("q")));
    // Control characters anywhere (PostgreSQL refuses NUL in text) are
    // refusals, not failures.
    let (status, body) = server.get("/v1/catalog?domain=%00", None);
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("domain"))
    );
    for path in [
        "/v1/listings/%00",
        "/v1/listings/ls_%00/card",
        "/v1/listings/%00/samples/0/ciphertext",
    ] {
        let (status, body) = server.get(path, None);
        assert_eq!(status, 404, "{path}: {body}");
    }
    // The server is still fine.
    assert_eq!(server.get("/healthz", None).0, 200);
    assert_eq!(search(&server, "q=robust").len(), 1);
}

fn parameters_are_refused_by_name(db: Db) {
    let server = TestServer::start(db);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("sort=popular", "sort"),
        ("sort=relevance", "sort"),
        ("order=sideways", "order"),
        ("minPrice=-1", "minPrice"),
        ("maxPrice=1.5", "maxPrice"),
        ("minPrice=10&maxPrice=9", "minPrice"),
        ("from=yesterday", "from"),
        ("to=2024-02-30T00:00:00Z", "to"),
        ("from=20&to=10", "from"),
        ("cursor=zz", "cursor"),
        ("cursor=6e2d7c31", "cursor"),
        ("page=2", "page"),
        ("q=a&q=b", "q"),
        ("rail=cash", "rail"),
        ("tag=%20", "tag"),
        ("tag=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "tag"),
    ] {
        let (status, body) = server.get(&format!("/v1/catalog?{query}"), None);
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    // A cursor of one sort is not accepted by another.
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    for i in 0..3 {
        publish(&server, &alice.token, &listing_body(&ds, &format!("L{i}")));
    }
    let (_, page) = server.get("/v1/catalog?sort=newest&limit=1", None);
    let cursor = page["nextCursor"].as_str().unwrap();
    let (status, body) = server.get(
        &format!("/v1/catalog?sort=price&limit=1&cursor={cursor}"),
        None,
    );
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("cursor"))
    );
}

/// The catalog cache's counts of searches answered from it and searches run.
fn cache_counts(server: &TestServer) -> (u64, u64) {
    server.state.catalog_cache.counts()
}

/// Answers are kept while nothing they show changed, and never served
/// after a change has committed: one made through the API, or one made
/// in the database by another process (as another replica would).
fn cached_answers_follow_every_change(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    let crane = publish(
        &server,
        &alice.token,
        &listing_body(&ds, "Harbour crane telemetry"),
    );
    let first = search_here(&server, "q=crane");
    assert_eq!(first, [crane.as_str()]);
    let before = cache_counts(&server);
    for _ in 0..3 {
        assert_eq!(search_here(&server, "q=crane"), first);
    }
    let after = cache_counts(&server);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (3, 0),
        "the same search again is answered from the cache"
    );
    // A change through the API: the next search runs again and shows it.
    let (status, _) = server.send(
        "PATCH",
        &format!("/v1/listings/{crane}"),
        Some(&alice.token),
        &json!({"title": "Harbour crane hydraulics"}),
    );
    assert_eq!(status, 200);
    let (_, page) = server.get("/v1/catalog?q=crane", None);
    assert_eq!(page["items"][0]["title"], "Harbour crane hydraulics");
    let second = publish(
        &server,
        &alice.token,
        &listing_body(&ds, "Gantry crane loads"),
    );
    let mut both = search_here(&server, "q=crane");
    both.sort();
    let mut expected = vec![crane.clone(), second.clone()];
    expected.sort();
    assert_eq!(both, expected);
    // A change made in the database by another process: a listing's price
    // and its dataset's chunk count, each in its own transaction.
    let (_, page) = server.get("/v1/catalog?q=gantry", None);
    assert_eq!(page["items"][0]["id"], second.as_str());
    block_on(async {
        sqlx::query("UPDATE listings SET price_amount = '77' WHERE id = $1")
            .bind(&second)
            .execute(server.store.pool())
            .await
            .unwrap();
    });
    let (_, page) = server.get("/v1/catalog?q=gantry", None);
    assert_eq!(page["items"][0]["price"], "77");
    let chunks = page["items"][0]["chunkCount"].as_i64().unwrap();
    block_on(async {
        sqlx::query("UPDATE datasets SET chunk_count = chunk_count + 5 WHERE id = $1")
            .bind(&ds)
            .execute(server.store.pool())
            .await
            .unwrap();
    });
    let (_, page) = server.get("/v1/catalog?q=gantry", None);
    assert_eq!(page["items"][0]["chunkCount"].as_i64(), Some(chunks + 5));
    // Withdrawn: gone at once.
    server.send(
        "POST",
        &format!("/v1/listings/{second}/withdraw"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(search_here(&server, "q=gantry"), Vec::<String>::new());
    // The counts are in /metrics.
    let (hits, misses) = cache_counts(&server);
    let auditor = server.session_for(&alice.did, &[sealstream_market::auth::Role::Auditor]);
    let (status, text) = server.get_here("/metrics", Some(&auditor));
    assert_eq!(status, 200, "{text}");
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains(&format!(
            "sealstream_market_catalog_searches_total{{cache=\"hit\"}} {hits}"
        )) && text.contains(&format!(
            "sealstream_market_catalog_searches_total{{cache=\"miss\"}} {misses}"
        )),
        "{text}"
    );
}

on_both_databases!(
    cached_answers_follow_every_change,
    words_in_every_field,
    filters,
    pages_have_no_gaps_or_duplicates,
    hostile_queries_are_never_500,
    parameters_are_refused_by_name,
);
