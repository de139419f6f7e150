//! The seller's pages (owners):
//!
//! - `GET /portal/seller`: machines (registration, chains with their chunk
//!   counts and last upload, operator key), datasets with the form that
//!   makes one of a chain's index or time range, listings with the form
//!   that makes one;
//! - `POST /portal/seller/datasets`, `POST /portal/seller/listings`;
//! - `GET /portal/seller/listings/{id}`: a listing with its edit form and
//!   the publish and withdraw buttons; `POST` to it (edit), to `/publish`
//!   and to `/withdraw`.
//!
//! A draft dataset is completed on the owner's machine, where the keys
//! are (`sealstream market dataset create` with the same range, shown on
//! the page): the server never holds an owner's key.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use sealstream_api::datasets::{CreateDataset, DatasetPage, DatasetState, DatasetView, ListParams};
use sealstream_api::listings::{
    CreateListing, ListingKind, ListingList, ListingState, ListingView, PatchListing,
};
use sealstream_api::payments::{format_units, parse_units, RailInput};
use serde_json::{json, Value};

use super::error_page;
use super::portal::{done, json_of, notice, render_status, Owners, SignedIn, Values, WebPost};
use super::view::{Button, Cell, Field, Form as WebForm, Posted, Section, Table};
use crate::auth::{MaybePrincipal, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::server::AppState;

/// API field → form field, for the listing forms.
const LISTING_FIELDS: &[(&str, &str)] = &[
    ("datasetId", "datasetId"),
    ("title", "title"),
    ("description", "description"),
    ("tags", "tags"),
    ("domain", "domain"),
    ("schemaHint", "schemaHint"),
    ("sampleChunkIndexes", "samples"),
    ("license", "license"),
    ("price", "price"),
    ("rail.currency", "currency"),
    ("rail.chainId", "chainId"),
    ("rail.payTo", "payTo"),
    ("rail.token", "token"),
    ("rail.decimals", "decimals"),
    ("rail", "rail"),
    ("delivery", "delivery"),
];

/// API field → form field, for the dataset form.
const DATASET_FIELDS: &[(&str, &str)] = &[
    ("machineDid", "machineDid"),
    ("topic", "topic"),
    ("fromIndex", "fromIndex"),
    ("toIndex", "toIndex"),
    ("fromTime", "fromTime"),
    ("toTime", "toTime"),
];

fn get<'a>(v: &'a Values, name: &str) -> &'a str {
    v.get(name).map(|s| s.trim()).unwrap_or("")
}

/// `GET /portal/seller`.
pub(super) async fn seller(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Owners>,
    Query(q): Query<Values>,
) -> Response {
    seller_page(
        &state,
        &web.principal.clone(),
        &web,
        notice(q.get("notice")),
        None,
    )
    .await
}

async fn seller_page(
    state: &AppState,
    p: &Principal,
    web: &super::session::WebSession,
    notice: Option<String>,
    posted: Option<Posted>,
) -> Response {
    match seller_sections(state, p, posted.as_ref()).await {
        Ok(sections) => render_status(
            Posted::status(posted.as_ref()),
            web,
            "/portal/seller",
            "Seller",
            notice,
            None,
            sections,
        ),
        Err(e) => error_page(e.status, "Not available", &e.message),
    }
}

async fn seller_sections(
    state: &AppState,
    p: &Principal,
    posted: Option<&Posted>,
) -> Result<Vec<Section>, ApiError> {
    let st = || State(state.clone());
    let Json(machines) = crate::machines::list(st(), p.clone()).await?;
    let mut machine_rows = Vec::new();
    let mut chain_rows = Vec::new();
    let mut machine_options = Vec::new();
    for m in &machines.machines {
        machine_options.push((m.did.clone(), m.did.clone()));
        let operator = match crate::operator_key::show(st(), p.clone(), ApiPath(m.did.clone()))
            .await
        {
            Ok(Json(k)) => format!(
                "held by the server since {}: paid orders are granted at once",
                k.registered_at
            ),
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                "none: your grant daemon grants paid orders (sealstream market grant-daemon)".into()
            }
            Err(e) => e.message,
        };
        machine_rows.push(vec![
            Cell::Code(m.did.clone()),
            Cell::Text(format!("registered {}", m.registered_at)),
            Cell::Text(operator),
        ]);
        let Json(topics) = crate::ingest::read::list_topics(
            st(),
            p.clone(),
            Ok(axum::extract::Path(m.did.clone())),
        )
        .await?;
        for t in topics.topics {
            chain_rows.push(vec![
                Cell::Code(m.did.clone()),
                Cell::Text(t.topic),
                Cell::Text(t.chunk_count.to_string()),
                Cell::Text(t.bytes.to_string()),
                Cell::Text(t.updated_at),
            ]);
        }
    }
    let machines_section = Section {
        id: "machines".into(),
        heading: "Machines".into(),
        paragraphs: vec!["Machines register themselves with their key (sealstream market machine register); their agents upload sealed chunks.".into()],
        tables: vec![
            Table {
                caption: "Your machines".into(),
                headers: vec!["Machine".into(), "Registration".into(), "Operator key".into()],
                rows: machine_rows,
                empty: "No machine registered yet.".into(),
            },
            Table {
                caption: "Their chains".into(),
                headers: vec!["Machine".into(), "Topic".into(), "Chunks".into(), "Bytes".into(), "Last upload".into()],
                rows: chain_rows,
                empty: "No chunk uploaded yet.".into(),
            },
        ],
        ..Section::default()
    };

    let page: DatasetPage = json_of(
        crate::datasets::list_datasets(
            st(),
            p.clone(),
            ApiQuery(ListParams {
                limit: Some(100),
                offset: None,
            }),
        )
        .await?,
    )
    .await?;
    let mut dataset_rows = Vec::new();
    let mut commands = Vec::new();
    let mut dataset_options = vec![(String::new(), "Choose a signed dataset".to_string())];
    for d in &page.datasets {
        let state_text = match d.state {
            DatasetState::Signed => {
                format!("signed by {}", d.signer_did.clone().unwrap_or_default())
            }
            _ => "draft: complete it on your machine (command below)".into(),
        };
        if d.state == DatasetState::Signed {
            dataset_options.push((
                d.id.clone(),
                format!("{} ({} {}..{})", d.id, d.topic, d.first_index, d.last_index),
            ));
        } else {
            commands.push(complete_command(d));
        }
        dataset_rows.push(vec![
            Cell::Code(d.id.clone()),
            Cell::Text(format!("{} {}..{}", d.topic, d.first_index, d.last_index)),
            Cell::Text(d.chunk_count.to_string()),
            Cell::Text(state_text),
            Cell::Code(d.merkle_root.clone()),
        ]);
    }
    let dataset_form = WebForm {
        id: "dataset-form".into(),
        heading: "Make a dataset".into(),
        action: "/portal/seller/datasets".into(),
        submit: "Make the dataset".into(),
        fields: vec![
            Field::select("machineDid", "Machine", machine_options).required(),
            Field::text("topic", "Topic")
                .required()
                .help("The chain's topic, e.g. /gps/fix."),
            Field::text("fromIndex", "First chunk index")
                .help("An index range (both ends included)…"),
            Field::text("toIndex", "Last chunk index"),
            Field::text("fromTime", "Received from")
                .help("…or a time range the server received the chunks in: YYYY-MM-DDTHH:MM:SSZ."),
            Field::text("toTime", "Received before"),
        ],
        error: None,
    }
    .with(posted);
    let mut dataset_paragraphs = vec![
        "The server computes the Merkle root of the range; you complete and sign the dataset on your machine, where your keys are.".to_string(),
    ];
    if !commands.is_empty() {
        dataset_paragraphs.push("To complete a draft, run on your machine:".into());
    }
    let datasets_section = Section {
        id: "datasets".into(),
        heading: "Datasets".into(),
        paragraphs: dataset_paragraphs,
        commands,
        tables: vec![Table {
            caption: "Your datasets".into(),
            headers: vec![
                "Dataset".into(),
                "Range".into(),
                "Chunks".into(),
                "State".into(),
                "Merkle root".into(),
            ],
            rows: dataset_rows,
            empty: "No dataset yet.".into(),
        }],
        forms: vec![dataset_form],
        ..Section::default()
    };

    let Json(listings) = crate::listings::list_mine(
        st(),
        p.clone(),
        Ok(Query(vec![
            ("mine".into(), "true".into()),
            ("limit".into(), "100".into()),
        ])),
    )
    .await?;
    let listing_rows = listing_rows(&listings);
    let mut listing_form = listing_form(
        "listing-form",
        "Make a listing",
        "/portal/seller/listings",
        "Make the listing (a draft)",
        dataset_options,
    );
    listing_form = listing_form.with(posted);
    let listings_section = Section {
        id: "listings".into(),
        heading: "Listings".into(),
        paragraphs: vec!["A listing is a draft until you publish it; a published one is in the catalog until you withdraw it.".into()],
        tables: vec![Table {
            caption: "Your listings".into(),
            headers: vec!["Listing".into(), "Title".into(), "Kind".into(), "State".into(), "Price".into()],
            rows: listing_rows,
            empty: "No listing yet.".into(),
        }],
        forms: vec![listing_form],
        ..Section::default()
    };
    Ok(vec![machines_section, datasets_section, listings_section])
}

/// The command that completes a draft dataset on the owner's machine.
fn complete_command(d: &DatasetView) -> String {
    format!(
        "sealstream market dataset create --machine-did {} --topic '{}' --from-index {} --to-index {} --key-file OWNER.secp256k1.sk --owner-private-key-file OWNER.x25519.sk",
        d.machine_did,
        d.topic.replace('\'', "'\\''"),
        d.first_index,
        d.last_index
    )
}

fn listing_rows(listings: &ListingList) -> Vec<Vec<Cell>> {
    listings
        .items
        .iter()
        .map(|l| {
            vec![
                Cell::Link(format!("/portal/seller/listings/{}", l.id), l.id.clone()),
                Cell::Text(l.title.clone()),
                Cell::Text(
                    if l.kind == ListingKind::Subscription {
                        "subscription"
                    } else {
                        "dataset"
                    }
                    .into(),
                ),
                Cell::Text(l.state.as_str().into()),
                Cell::Text(super::price(&l.price, &l.rail)),
            ]
        })
        .collect()
}

/// The fields of a listing (create and edit).
fn listing_form(
    id: &str,
    heading: &str,
    action: &str,
    submit: &str,
    datasets: Vec<(String, String)>,
) -> WebForm {
    let mut fields = Vec::new();
    if !datasets.is_empty() {
        fields.push(Field::select("datasetId", "Dataset", datasets).required());
    }
    fields.extend([
        Field::text("title", "Title").required(),
        Field::area("description", "Description"),
        Field::text("tags", "Tags").help("Separated by commas."),
        Field::text("domain", "Domain").help("e.g. mobility, energy."),
        Field::area("schemaHint", "Schema").help("What a decrypted chunk looks like."),
        Field::area("license", "License").help("Text, or a JSON object."),
        Field::select(
            "rail",
            "Payment",
            vec![
                ("invoice".into(), "Invoice".into()),
                ("evm".into(), "EVM chain".into()),
            ],
        )
        .value("invoice"),
        Field::text("price", "Price")
            .required()
            .help("In the currency's units, e.g. 4.90."),
        Field::text("currency", "Invoice currency")
            .value("EUR")
            .help("For an invoice: ISO code."),
        Field::text("decimals", "Decimals")
            .value("2")
            .help("Digits after the point of the currency or token (18 for ETH)."),
        Field::text("chainId", "Chain id").help("For an EVM rail."),
        Field::text("payTo", "Pay to").help("For an EVM rail: the address paid (0x…)."),
        Field::text("token", "Token")
            .value("native")
            .help("For an EVM rail: native or the ERC-20's address."),
        Field::text("delivery", "Delivery")
            .value("api")
            .help("Among api, object-store, p2p; separated by commas."),
    ]);
    WebForm {
        id: id.into(),
        heading: heading.into(),
        action: action.into(),
        submit: submit.into(),
        fields,
        error: None,
    }
}

fn list_of(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The rail and the price in base units of a listing form, or the form
/// field at fault.
fn rail_and_price(v: &Values) -> Result<(RailInput, String), (&'static str, String)> {
    let decimals: u8 = match get(v, "decimals") {
        "" => 2,
        d => d
            .parse()
            .map_err(|_| ("decimals", "a whole number from 0 to 36".to_string()))?,
    };
    let rail = match get(v, "rail") {
        "evm" => {
            let chain_id: u64 = get(v, "chainId").parse().map_err(|_| {
                (
                    "chainId",
                    "the chain's EIP-155 id, a whole number".to_string(),
                )
            })?;
            json!({"kind": "evm", "chainId": chain_id, "token": get(v, "token"), "decimals": decimals, "payTo": get(v, "payTo")})
        }
        "invoice" | "" => {
            json!({"kind": "invoice", "currency": get(v, "currency"), "decimals": decimals})
        }
        _ => return Err(("rail", "invoice or evm".into())),
    };
    let price = parse_units(get(v, "price"), decimals).ok_or((
        "price",
        format!("an amount such as 4.90, with at most {decimals} digits after the point"),
    ))?;
    Ok((RailInput(rail), price))
}

fn license_of(text: &str) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.starts_with('{') {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
            return Some(v);
        }
    }
    Some(Value::String(text.to_string()))
}

fn samples_of(text: &str) -> Result<Vec<u64>, (&'static str, String)> {
    list_of(text)
        .iter()
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ("samples", format!("{s:?} is not a chunk index")))
        })
        .collect()
}

fn opt(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// `POST /portal/seller/datasets`.
pub(super) async fn create_dataset(
    State(state): State<AppState>,
    WebPost { web, values, .. }: WebPost<Owners>,
) -> Response {
    let p = web.principal.clone();
    let index = |name: &str| -> Result<Option<u64>, String> {
        match get(&values, name) {
            "" => Ok(None),
            t => t.parse().map(Some).map_err(|_| name.to_string()),
        }
    };
    let (from_index, to_index) = match (index("fromIndex"), index("toIndex")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(f), _) | (_, Err(f)) => {
            let posted = Posted::field("dataset-form", values, &f, "a chunk index: a whole number");
            return seller_page(&state, &p, &web, None, Some(posted)).await;
        }
    };
    let req = CreateDataset {
        machine_did: opt(get(&values, "machineDid")),
        topic: opt(get(&values, "topic")),
        from_index,
        to_index,
        from_time: opt(get(&values, "fromTime")),
        to_time: opt(get(&values, "toTime")),
        manifest: None,
    };
    match crate::datasets::create_dataset(State(state.clone()), p.clone(), ApiJson(req)).await {
        Ok(r) if r.status().is_success() => done("/portal/seller#datasets", "dataset-created"),
        Ok(r) => {
            let e = json_of::<Value>(r)
                .await
                .err()
                .unwrap_or_else(|| ApiError::conflict(None, "refused"));
            seller_page(
                &state,
                &p,
                &web,
                None,
                Some(Posted::new("dataset-form", values, e, DATASET_FIELDS)),
            )
            .await
        }
        Err(e) => {
            seller_page(
                &state,
                &p,
                &web,
                None,
                Some(Posted::new("dataset-form", values, e, DATASET_FIELDS)),
            )
            .await
        }
    }
}

/// `POST /portal/seller/listings`.
pub(super) async fn create_listing(
    State(state): State<AppState>,
    WebPost { web, values, .. }: WebPost<Owners>,
) -> Response {
    let p = web.principal.clone();
    let built = (|| {
        let (rail, price) = rail_and_price(&values)?;
        if get(&values, "datasetId").is_empty() {
            return Err((
                "datasetId",
                "choose one of your signed datasets".to_string(),
            ));
        }
        Ok(CreateListing {
            kind: ListingKind::Dataset,
            dataset_id: get(&values, "datasetId").to_string(),
            subscription: None,
            title: get(&values, "title").to_string(),
            description: get(&values, "description").to_string(),
            tags: list_of(get(&values, "tags")),
            domain: opt(get(&values, "domain")),
            schema_hint: opt(get(&values, "schemaHint")),
            sample_chunk_indexes: Vec::new(),
            license: license_of(get(&values, "license")),
            price,
            rail,
            delivery: Some(list_of(get(&values, "delivery"))).filter(|d| !d.is_empty()),
            compliance: None,
        })
    })();
    let req = match built {
        Ok(r) => r,
        Err((field, message)) => {
            let posted = Posted::field("listing-form", values, field, &message);
            return seller_page(&state, &p, &web, None, Some(posted)).await;
        }
    };
    match crate::listings::create(State(state.clone()), p.clone(), ApiJson(req)).await {
        Ok((_, Json(view))) => done(
            &format!("/portal/seller/listings/{}", view.id),
            "listing-created",
        ),
        Err(e) => {
            seller_page(
                &state,
                &p,
                &web,
                None,
                Some(Posted::new("listing-form", values, e, LISTING_FIELDS)),
            )
            .await
        }
    }
}

/// `GET /portal/seller/listings/{id}`.
pub(super) async fn listing(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Owners>,
    Path(id): Path<String>,
    Query(q): Query<Values>,
) -> Response {
    listing_page(&state, &web, &id, notice(q.get("notice")), None).await
}

async fn listing_page(
    state: &AppState,
    web: &super::session::WebSession,
    id: &str,
    notice: Option<String>,
    posted: Option<Posted>,
) -> Response {
    let p = web.principal.clone();
    let view = match crate::listings::get(
        State(state.clone()),
        MaybePrincipal(Some(p.clone())),
        ApiPath(id.to_string()),
    )
    .await
    {
        Ok(Json(v)) if p.owns(&v.owner_did) => v,
        Ok(_) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "No such listing",
                "You have no listing with this id.",
            )
        }
        Err(e) => return error_page(e.status, "No such listing", &e.message),
    };
    let sections = listing_sections(&view, posted.as_ref());
    render_status(
        Posted::status(posted.as_ref()),
        web,
        "/portal/seller",
        &format!("Listing: {}", view.title),
        notice,
        None,
        sections,
    )
}

fn listing_sections(v: &ListingView, posted: Option<&Posted>) -> Vec<Section> {
    let mut facts = vec![
        ("Id".to_string(), v.id.clone()),
        ("State".into(), v.state.as_str().into()),
        ("Price".into(), super::price(&v.price, &v.rail)),
        ("Sales".into(), v.sales.clone()),
        ("Created".into(), v.created_at.clone()),
    ];
    if let Some(d) = &v.dataset {
        facts.push((
            "Dataset".into(),
            format!(
                "{} ({} chunks, root {})",
                d.id, d.chunk_count, d.merkle_root
            ),
        ));
    }
    if let Some(at) = &v.published_at {
        facts.push(("Published".into(), at.clone()));
    }
    let mut buttons = Vec::new();
    if v.state == ListingState::Draft {
        buttons.push(Button {
            action: format!("/portal/seller/listings/{}/publish", v.id),
            label: "Publish".into(),
            hidden: Vec::new(),
        });
    }
    if v.state != ListingState::Withdrawn {
        buttons.push(Button {
            action: format!("/portal/seller/listings/{}/withdraw", v.id),
            label: "Withdraw".into(),
            hidden: Vec::new(),
        });
    }
    let mut paragraphs = Vec::new();
    if v.state == ListingState::Published {
        paragraphs.push(format!("In the catalog at /listings/{}.", v.id));
    }
    let status = Section {
        id: "listing".into(),
        heading: "Listing".into(),
        paragraphs,
        facts,
        tables: vec![Table {
            caption: "Actions".into(),
            headers: vec!["Listing".into(), "Do".into()],
            rows: if buttons.is_empty() {
                Vec::new()
            } else {
                vec![vec![Cell::Code(v.id.clone()), Cell::Buttons(buttons)]]
            },
            empty: "A withdrawn listing stays withdrawn.".into(),
        }],
        ..Section::default()
    };
    let decimals = v.rail.decimals();
    let mut form = listing_form(
        "edit-form",
        "Edit",
        &format!("/portal/seller/listings/{}", v.id),
        "Save",
        Vec::new(),
    );
    let rail = serde_json::to_value(&v.rail).unwrap_or_default();
    let current = |name: &str| -> String {
        match name {
            "title" => v.title.clone(),
            "description" => v.description.clone(),
            "tags" => v.tags.join(", "),
            "domain" => v.domain.clone().unwrap_or_default(),
            "schemaHint" => v.schema_hint.clone().unwrap_or_default(),
            "license" => match &v.license {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            },
            "rail" => rail["kind"].as_str().unwrap_or("invoice").to_string(),
            "price" => format_units(&v.price, decimals),
            "currency" => rail["currency"].as_str().unwrap_or("").to_string(),
            "decimals" => decimals.to_string(),
            "chainId" => rail["chainId"]
                .as_u64()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            "payTo" => rail["payTo"].as_str().unwrap_or("").to_string(),
            "token" => rail["token"].as_str().unwrap_or("native").to_string(),
            "delivery" => v.delivery.join(", "),
            _ => String::new(),
        }
    };
    for f in &mut form.fields {
        f.value = current(&f.name);
    }
    form.fields.push(
        Field::text("samples", "Sample chunks")
            .value(&v.sample_chunk_indexes.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
            .help("Chain indexes of up to 5 chunks anyone may preview; disclose their keys on your machine: sealstream market listing edit … --owner-private-key-file."),
    );
    let edit = Section {
        id: "edit".into(),
        heading: "Edit".into(),
        forms: if v.state == ListingState::Withdrawn {
            Vec::new()
        } else {
            vec![form.with(posted)]
        },
        ..Section::default()
    };
    vec![status, edit]
}

/// `POST /portal/seller/listings/{id}`: the edit form.
pub(super) async fn edit_listing(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebPost { web, values, .. }: WebPost<Owners>,
) -> Response {
    let built = (|| {
        let (rail, price) = rail_and_price(&values)?;
        Ok(PatchListing {
            title: Some(get(&values, "title").to_string()),
            description: Some(get(&values, "description").to_string()),
            tags: Some(list_of(get(&values, "tags"))),
            domain: Some(opt(get(&values, "domain"))),
            schema_hint: Some(opt(get(&values, "schemaHint"))),
            sample_chunk_indexes: Some(samples_of(get(&values, "samples"))?),
            license: Some(license_of(get(&values, "license"))),
            price: Some(price),
            rail: Some(rail),
            delivery: Some(list_of(get(&values, "delivery"))),
            compliance: None,
        })
    })();
    let req = match built {
        Ok(r) => r,
        Err((field, message)) => {
            let posted = Posted::field("edit-form", values, field, &message);
            return listing_page(&state, &web, &id, None, Some(posted)).await;
        }
    };
    match crate::listings::patch(
        State(state.clone()),
        web.principal.clone(),
        ApiPath(id.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => done(&format!("/portal/seller/listings/{id}"), "listing-saved"),
        Err(e) => {
            let posted = Posted::new("edit-form", values, e, LISTING_FIELDS);
            listing_page(&state, &web, &id, None, Some(posted)).await
        }
    }
}

/// `POST /portal/seller/listings/{id}/publish` and `/withdraw`.
pub(super) async fn listing_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    WebPost { web, .. }: WebPost<Owners>,
) -> Response {
    let p = web.principal.clone();
    let result = match action.as_str() {
        "publish" => crate::listings::publish(State(state.clone()), p, ApiPath(id.clone()))
            .await
            .map(|_| "listing-published"),
        "withdraw" => crate::listings::withdraw(State(state.clone()), p, ApiPath(id.clone()))
            .await
            .map(|_| "listing-withdrawn"),
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    match result {
        Ok(code) => done(&format!("/portal/seller/listings/{id}"), code),
        Err(e) => {
            let posted = Posted {
                form: "edit-form".into(),
                values: Values::new(),
                field: None,
                message: format!("Not done: {}", e.message),
            };
            let mut response = listing_page(&state, &web, &id, None, Some(posted)).await;
            *response.status_mut() = e.status;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_form_becomes_a_rail_and_base_units() {
        let mut v = Values::new();
        v.insert("price".into(), "4.90".into());
        v.insert("currency".into(), "EUR".into());
        let (rail, price) = rail_and_price(&v).unwrap();
        assert_eq!(price, "490");
        assert_eq!(rail.0["kind"], "invoice");
        v.insert("price".into(), "4.901".into());
        assert_eq!(rail_and_price(&v).unwrap_err().0, "price");
        v.insert("rail".into(), "evm".into());
        v.insert("chainId".into(), "x".into());
        assert_eq!(rail_and_price(&v).unwrap_err().0, "chainId");
        assert_eq!(license_of("{\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(license_of("CC-BY"), Some(json!("CC-BY")));
        assert_eq!(samples_of("1, 2").unwrap(), vec![1, 2]);
        assert!(samples_of("1, x").is_err());
    }
}
