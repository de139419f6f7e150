//! Buying and selling, signed in:
//!
//! - `GET /portal/buy/{listing}` and `POST`: order a dataset or subscribe
//!   to a topic, with the X25519 key the chunk keys are to be wrapped to;
//! - `GET /portal/buyer`: the buyer's orders (state, how to pay, receipt,
//!   download links: make one, revoke one), subscriptions (state, paid
//!   through, grace; renew, cancel) and the keys used;
//! - `GET /portal/orders/{id}/receipt.json`: the signed receipt as a file;
//! - `GET /portal/orders/{id}/receipt.pdf`: the receipt as a PDF/A-3
//!   document, the signed receipt attached;
//! - `GET /portal/sales`: the seller's orders with the invoice form that
//!   marks one paid, subscriptions, revenue per month and what awaits a
//!   grant.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use sealstream_api::listings::ListingKind;
use sealstream_api::orders::{
    CreateLink, CreateOrder, LinkPurpose, ListQuery, OrderSide, OrderState, OrderView,
};
use sealstream_api::payments::{format_units, MarkPaid, RailKind};
use sealstream_api::subscriptions::{CreateSubscription, RenewSubscription, SubscriptionQuery};

use super::error_page;
use super::portal::{
    done, notice, render_status, Buyers, Owners, Parties, SignedIn, Values, WebPost,
};
use super::session::WebSession;
use super::view::{Button, Cell, Field, Form as WebForm, Posted, Section, Table};
use crate::auth::{MaybePrincipal, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::server::AppState;

fn get<'a>(v: &'a Values, name: &str) -> &'a str {
    v.get(name).map(|s| s.trim()).unwrap_or("")
}

/// The amount of an order as read.
fn amount(o: &OrderView) -> String {
    let p = &o.payment;
    let unit = match p.rail {
        RailKind::Invoice => p.currency.clone().unwrap_or_default(),
        RailKind::Evm => p.symbol.clone().unwrap_or_else(|| "tokens".into()),
    };
    format!("{} {unit}", format_units(&p.amount, p.decimals))
}

fn order_query(side: OrderSide) -> ApiQuery<ListQuery> {
    ApiQuery(ListQuery::new(side).page(100, None))
}

fn subscription_query(side: OrderSide) -> ApiQuery<SubscriptionQuery> {
    ApiQuery(SubscriptionQuery::new(side).page(100, None))
}

/// `GET /portal/buy/{listing}`.
pub(super) async fn buy(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Buyers>,
    Path(id): Path<String>,
) -> Response {
    buy_page(&state, &web, &id, None).await
}

async fn buy_page(
    state: &AppState,
    web: &WebSession,
    id: &str,
    posted: Option<Posted>,
) -> Response {
    let view = match crate::listings::get(
        State(state.clone()),
        MaybePrincipal(None),
        ApiPath(id.to_string()),
    )
    .await
    {
        Ok(Json(v)) => v,
        Err(e) => return error_page(e.status, "No such listing", &e.message),
    };
    let subscription = view.kind == ListingKind::Subscription;
    let mut facts = vec![
        ("Listing".into(), format!("{} ({})", view.title, view.id)),
        (
            "Price".into(),
            super::price(&view.price, &view.rail) + if subscription { " per period" } else { "" },
        ),
        ("Payment".into(), super::rail_text(&view.rail)),
    ];
    let mut fields = vec![
        Field::text("buyerPublicKeyHex", "X25519 public key (hex)")
            .required()
            .help("64 hex digits: the .x25519.pk file of your key pair."),
        Field::text("buyerId", "Recipient id")
            .help("Optional: the id the access entries name (your DID by default)."),
    ];
    if let Some(c) = &view.compliance {
        facts.push(("Sold to".into(), c.jurisdictions.join(", ")));
        facts.push(("Data classes".into(), c.data_classes.join(", ")));
        facts.push(("Retention".into(), c.retention.clone()));
        fields.push(Field::text("jurisdiction", "Your jurisdiction").required().help("Where you are, as an ISO 3166-1 alpha-2 code such as DE: the listing sells only to the jurisdictions above."));
        fields.push(
            Field::area("purpose", "Purpose")
                .required()
                .help("What the data is for (recorded in the order and its receipt)."),
        );
        if let Some(a) = &c.attestation {
            facts.push(("Attestation".into(), a.clone()));
            fields.push(
                Field::select(
                    "acceptAttestation",
                    "Accept the attestation",
                    vec![
                        ("no".into(), "No".into()),
                        ("yes".into(), "Yes, I accept it".into()),
                    ],
                )
                .required(),
            );
        }
    }
    let section = Section {
        id: "order".into(),
        heading: if subscription { "Subscribe" } else { "Order" }.into(),
        paragraphs: vec![
            "The seller's chunk keys are wrapped to your X25519 public key: only the matching secret key, which stays on your machine, opens the data. Make a pair with: sealstream keys generate --role buyer.".into(),
        ],
        facts,
        forms: vec![WebForm {
            id: "order-form".into(),
            heading: "Your key".into(),
            action: format!("/portal/buy/{}", view.id),
            submit: if subscription { "Subscribe" } else { "Place the order" }.into(),
            fields,
            error: None,
        }
        .with(posted.as_ref())],
        ..Section::default()
    };
    render_status(
        Posted::status(posted.as_ref()),
        web,
        "/portal/buyer",
        &format!("Buy: {}", view.title),
        None,
        None,
        vec![section],
    )
}

/// `POST /portal/buy/{listing}`.
pub(super) async fn place_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebPost { web, values, .. }: WebPost<Buyers>,
) -> Response {
    let p = web.principal.clone();
    let key = get(&values, "buyerPublicKeyHex").to_string();
    let buyer_id = Some(get(&values, "buyerId").to_string()).filter(|s| !s.is_empty());
    let kind = match crate::listings::get(
        State(state.clone()),
        MaybePrincipal(None),
        ApiPath(id.clone()),
    )
    .await
    {
        Ok(Json(v)) => v.kind,
        Err(e) => return error_page(e.status, "No such listing", &e.message),
    };
    const FIELDS: &[(&str, &str)] = &[
        ("buyerPublicKeyHex", "buyerPublicKeyHex"),
        ("buyerId", "buyerId"),
        ("jurisdiction", "jurisdiction"),
        ("purpose", "purpose"),
        ("acceptAttestation", "acceptAttestation"),
    ];
    let stated = |name: &str| Some(get(&values, name).to_string()).filter(|s| !s.is_empty());
    let result = if kind == ListingKind::Subscription {
        crate::subscriptions::create(
            State(state.clone()),
            p,
            ApiJson(CreateSubscription {
                listing_id: id.clone(),
                buyer_public_key_hex: key,
                buyer_id,
            }),
        )
        .await
        .map(|_| ())
    } else {
        crate::orders::create(
            State(state.clone()),
            p,
            ApiJson(CreateOrder {
                listing_id: id.clone(),
                buyer_public_key_hex: key,
                buyer_id,
                jurisdiction: stated("jurisdiction"),
                purpose: stated("purpose"),
                accept_attestation: stated("acceptAttestation").map(|a| a == "yes"),
            }),
        )
        .await
        .map(|_| ())
    };
    match result {
        Ok(()) => done("/portal/buyer#orders", "order-created"),
        Err(e) => {
            buy_page(
                &state,
                &web,
                &id,
                Some(Posted::new("order-form", values, e, FIELDS)),
            )
            .await
        }
    }
}

/// `GET /portal/buyer`.
pub(super) async fn buyer(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Buyers>,
    Query(q): Query<Values>,
) -> Response {
    buyer_page(&state, &web, notice(q.get("notice")), None, None).await
}

async fn buyer_page(
    state: &AppState,
    web: &WebSession,
    notice: Option<String>,
    once: Option<(String, String)>,
    posted: Option<Posted>,
) -> Response {
    match buyer_sections(state, &web.principal, posted.as_ref()).await {
        Ok(sections) => render_status(
            Posted::status(posted.as_ref()),
            web,
            "/portal/buyer",
            "Buyer",
            notice,
            once,
            sections,
        ),
        Err(e) => error_page(e.status, "Not available", &e.message),
    }
}

async fn buyer_sections(
    state: &AppState,
    p: &Principal,
    posted: Option<&Posted>,
) -> Result<Vec<Section>, ApiError> {
    let Json(orders) = crate::orders::list(
        State(state.clone()),
        p.clone(),
        order_query(OrderSide::Buyer),
    )
    .await?;
    let Json(subs) = crate::subscriptions::list(
        State(state.clone()),
        p.clone(),
        subscription_query(OrderSide::Buyer),
    )
    .await?;
    let mut keys = BTreeSet::new();
    let mut rows = Vec::new();
    for o in &orders.items {
        keys.insert(o.buyer_public_key_hex.clone());
        let mut buttons = Vec::new();
        match o.state {
            OrderState::AwaitingPayment => buttons.push(Button {
                action: format!("/portal/buyer/orders/{}/cancel", o.id),
                label: "Cancel".into(),
                hidden: Vec::new(),
            }),
            OrderState::Granted if o.subscription_id.is_none() => buttons.push(Button {
                action: format!("/portal/buyer/orders/{}/link", o.id),
                label: "Make a download link".into(),
                hidden: Vec::new(),
            }),
            _ => {}
        }
        let paid = matches!(o.state, OrderState::Paid | OrderState::Granted);
        let receipt = if paid {
            Cell::Link(
                format!("/portal/orders/{}/receipt.json", o.id),
                "Receipt (JSON)".into(),
            )
        } else {
            Cell::Text("once paid".into())
        };
        let receipt_v2 = if paid {
            Cell::Link(
                format!("/portal/orders/{}/receipt.json?version=2", o.id),
                "Receipt v2 (selective disclosure)".into(),
            )
        } else {
            Cell::Text(String::new())
        };
        let receipt_pdf = if paid {
            Cell::Link(
                format!("/portal/orders/{}/receipt.pdf", o.id),
                "Receipt (PDF)".into(),
            )
        } else {
            Cell::Text(String::new())
        };
        rows.push(vec![
            Cell::Code(o.id.clone()),
            Cell::Link(format!("/listings/{}", o.listing_id), o.listing_id.clone()),
            Cell::Text(o.state.as_str().into()),
            Cell::Text(amount(o)),
            Cell::Text(payment_text(o)),
            receipt,
            receipt_v2,
            receipt_pdf,
            Cell::Buttons(buttons),
        ]);
    }
    let revoke = WebForm {
        id: "revoke-form".into(),
        heading: "Revoke a download link".into(),
        action: "/portal/buyer/links/revoke".into(),
        submit: "Revoke".into(),
        fields: vec![
            Field::text("order", "Order").required().help("ord_…"),
            Field::text("link", "Link id")
                .required()
                .help("lnk_…, shown when the link was made."),
        ],
        error: None,
    }
    .with(posted);
    let orders_section = Section {
        id: "orders".into(),
        heading: "Orders".into(),
        paragraphs: vec!["A granted order's download link opens its release package (sealstream consume --download-url …); anyone holding the link can fetch the package, which only your secret key opens.".into()],
        tables: vec![Table {
            caption: "Your orders".into(),
            headers: vec!["Order".into(), "Listing".into(), "State".into(), "Amount".into(), "Payment".into(), "Receipt".into(), "Receipt v2".into(), "PDF".into(), "Do".into()],
            rows,
            empty: "No order yet: find data in the catalog.".into(),
        }],
        forms: vec![revoke],
        ..Section::default()
    };
    let mut sub_rows = Vec::new();
    for s in &subs.items {
        keys.insert(s.buyer_public_key_hex.clone());
        let mut buttons = vec![Button {
            action: format!("/portal/buyer/subscriptions/{}/renew", s.id),
            label: "Renew".into(),
            hidden: Vec::new(),
        }];
        if s.access_ends.is_none() {
            buttons.push(Button {
                action: format!("/portal/buyer/subscriptions/{}/cancel", s.id),
                label: "Cancel".into(),
                hidden: Vec::new(),
            });
        }
        sub_rows.push(vec![
            Cell::Code(s.id.clone()),
            Cell::Text(s.topic.clone()),
            Cell::Text(s.state.as_str().into()),
            Cell::Text(
                s.paid_through
                    .clone()
                    .unwrap_or_else(|| "not paid yet".into()),
            ),
            Cell::Text(s.grace_until.clone().unwrap_or_default()),
            Cell::Buttons(buttons),
        ]);
    }
    let subs_section = Section {
        id: "subscriptions".into(),
        heading: "Subscriptions".into(),
        tables: vec![Table {
            caption: "Your subscriptions".into(),
            headers: vec![
                "Subscription".into(),
                "Topic".into(),
                "State".into(),
                "Paid through".into(),
                "Grace until".into(),
                "Do".into(),
            ],
            rows: sub_rows,
            empty: "No subscription.".into(),
        }],
        ..Section::default()
    };
    let keys_section = Section {
        id: "keys".into(),
        heading: "Keys you used".into(),
        paragraphs: vec![
            "The X25519 public keys your orders and subscriptions wrap chunk keys to.".into(),
        ],
        tables: vec![Table {
            caption: "Keys".into(),
            headers: vec!["Public key".into()],
            rows: keys.into_iter().map(|k| vec![Cell::Code(k)]).collect(),
            empty: "None yet.".into(),
        }],
        ..Section::default()
    };
    Ok(vec![orders_section, subs_section, keys_section])
}

fn payment_text(o: &OrderView) -> String {
    let p = &o.payment;
    match (o.state, p.rail) {
        (OrderState::AwaitingPayment, RailKind::Invoice) => format!(
            "invoice{}; the seller marks it paid",
            p.payee
                .as_deref()
                .map(|x| format!(" to {x}"))
                .unwrap_or_default()
        ),
        (OrderState::AwaitingPayment, RailKind::Evm) => format!(
            "send {} on chain {} to {} (sealstream market order pay)",
            amount(o),
            p.chain_id.unwrap_or_default(),
            p.pay_to.clone().unwrap_or_default()
        ),
        _ => o
            .paid_at
            .clone()
            .map(|t| format!("paid {t}"))
            .unwrap_or_default(),
    }
}

/// `POST /portal/buyer/orders/{id}/{action}`: `cancel`, `link`.
pub(super) async fn order_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    WebPost { web, .. }: WebPost<Buyers>,
) -> Response {
    let p = web.principal.clone();
    let failed = |e: ApiError| Posted {
        form: "revoke-form".into(),
        values: Values::new(),
        field: None,
        message: format!("Order {id}: {}", e.message),
    };
    match action.as_str() {
        "cancel" => match crate::orders::cancel(State(state.clone()), p, ApiPath(id.clone())).await
        {
            Ok(_) => done("/portal/buyer#orders", "order-cancelled"),
            Err(e) => buyer_page(&state, &web, None, None, Some(failed(e))).await,
        },
        "link" => match crate::orders::links::create(
            State(state.clone()),
            p,
            ApiPath(id.clone()),
            ApiJson(CreateLink {
                purpose: LinkPurpose::Release,
            }),
        )
        .await
        {
            Ok((_, Json(link))) => {
                let label = format!(
                    "Download link {} of order {id}, shown once (it works until you revoke it):",
                    link.id
                );
                let mut response =
                    buyer_page(&state, &web, None, Some((label, link.url)), None).await;
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(e) => buyer_page(&state, &web, None, None, Some(failed(e))).await,
        },
        _ => error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    }
}

/// `POST /portal/buyer/links/revoke`.
pub(super) async fn revoke_link(
    State(state): State<AppState>,
    WebPost { web, values, .. }: WebPost<Buyers>,
) -> Response {
    let order = get(&values, "order").to_string();
    let link = get(&values, "link").to_string();
    for (field, value, prefix) in [("order", &order, "ord_"), ("link", &link, "lnk_")] {
        if !value.starts_with(prefix) || value.len() > 100 {
            let message = format!("an id starting with {prefix}");
            let posted = Posted::field("revoke-form", values.clone(), field, &message);
            return buyer_page(&state, &web, None, None, Some(posted)).await;
        }
    }
    match crate::orders::links::revoke(
        State(state.clone()),
        web.principal.clone(),
        ApiPath((order, link)),
    )
    .await
    {
        Ok(_) => done("/portal/buyer#orders", "link-revoked"),
        Err(e) => {
            let posted = Posted::new(
                "revoke-form",
                values,
                e,
                &[("id", "order"), ("order", "order"), ("link", "link")],
            );
            buyer_page(&state, &web, None, None, Some(posted)).await
        }
    }
}

/// `POST /portal/buyer/subscriptions/{id}/{action}`: `cancel`, `renew`.
pub(super) async fn subscription_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    WebPost { web, .. }: WebPost<Buyers>,
) -> Response {
    let p = web.principal.clone();
    let result = match action.as_str() {
        "cancel" => crate::subscriptions::cancel(State(state.clone()), p, ApiPath(id.clone()))
            .await
            .map(|_| "subscription-cancelled"),
        "renew" => crate::subscriptions::renew(
            State(state.clone()),
            p,
            ApiPath(id.clone()),
            ApiJson(RenewSubscription {
                buyer_public_key_hex: None,
            }),
        )
        .await
        .map(|_| "subscription-renewed"),
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    match result {
        Ok(code) => done("/portal/buyer#subscriptions", code),
        Err(e) => {
            let posted = Posted {
                form: "revoke-form".into(),
                values: Values::new(),
                field: None,
                message: format!("Subscription {id}: {}", e.message),
            };
            buyer_page(&state, &web, None, None, Some(posted)).await
        }
    }
}

/// `GET /portal/orders/{id}/receipt.json[?version=2]`: the receipt, as a
/// file (v2: with selective disclosure).
pub(super) async fn receipt(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Parties>,
    Path(id): Path<String>,
    Query(q): Query<Values>,
) -> Response {
    receipt_file(state, &web, id, q.get("version").cloned(), "json").await
}

/// `GET /portal/orders/{id}/receipt.pdf[?version=2]`: the receipt as a
/// PDF/A-3 document, the signed receipt (v1, or v2) attached.
pub(super) async fn receipt_pdf(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Parties>,
    Path(id): Path<String>,
    Query(q): Query<Values>,
) -> Response {
    receipt_file(state, &web, id, q.get("version").cloned(), "pdf").await
}

/// The receipt of order `id` as a download named
/// `receipt[-v2]-{id}.{format}`.
async fn receipt_file(
    state: AppState,
    web: &WebSession,
    id: String,
    version: Option<String>,
    format: &str,
) -> Response {
    let suffix = if version.as_deref() == Some("2") {
        "-v2"
    } else {
        ""
    };
    match crate::orders::receipt::get_receipt(
        State(state),
        web.principal.clone(),
        ApiPath(id.clone()),
        ApiQuery(crate::orders::receipt::ReceiptQuery {
            version,
            format: Some(format.into()),
        }),
    )
    .await
    {
        Ok(mut response) => {
            let name = format!(
                "attachment; filename=\"receipt{suffix}-{}.{format}\"",
                id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "")
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Err(e) => error_page(e.status, "No receipt", &e.message),
    }
}

/// `GET /portal/sales`.
pub(super) async fn sales(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Owners>,
    Query(q): Query<Values>,
) -> Response {
    sales_page(&state, &web, notice(q.get("notice")), None).await
}

async fn sales_page(
    state: &AppState,
    web: &WebSession,
    notice: Option<String>,
    posted: Option<Posted>,
) -> Response {
    match sales_sections(state, &web.principal, posted.as_ref()).await {
        Ok(sections) => render_status(
            Posted::status(posted.as_ref()),
            web,
            "/portal/sales",
            "Sales",
            notice,
            None,
            sections,
        ),
        Err(e) => error_page(e.status, "Not available", &e.message),
    }
}

async fn sales_sections(
    state: &AppState,
    p: &Principal,
    posted: Option<&Posted>,
) -> Result<Vec<Section>, ApiError> {
    let Json(orders) = crate::orders::list(
        State(state.clone()),
        p.clone(),
        order_query(OrderSide::Seller),
    )
    .await?;
    let Json(subs) = crate::subscriptions::list(
        State(state.clone()),
        p.clone(),
        subscription_query(OrderSide::Seller),
    )
    .await?;
    let mut rows = Vec::new();
    let mut invoices = Vec::new();
    let mut awaiting_grant = 0usize;
    // (month, unit, decimals) → base units
    let mut revenue: BTreeMap<(String, String, u8), u128> = BTreeMap::new();
    for o in &orders.items {
        rows.push(vec![
            Cell::Code(o.id.clone()),
            Cell::Link(
                format!("/portal/seller/listings/{}", o.listing_id),
                o.listing_id.clone(),
            ),
            Cell::Code(o.buyer_did.clone()),
            Cell::Text(o.state.as_str().into()),
            Cell::Text(amount(o)),
            Cell::Text(o.created_at.clone()),
            Cell::Text(o.paid_at.clone().unwrap_or_default()),
        ]);
        if o.state == OrderState::Paid && o.subscription_id.is_none() {
            awaiting_grant += 1;
        }
        if let Some(paid) = &o.paid_at {
            let unit = match o.payment.rail {
                RailKind::Invoice => o.payment.currency.clone().unwrap_or_default(),
                RailKind::Evm => format!(
                    "{} (chain {})",
                    o.payment.symbol.clone().unwrap_or_else(|| "tokens".into()),
                    o.payment.chain_id.unwrap_or_default()
                ),
            };
            let month = paid.get(..7).unwrap_or(paid).to_string();
            let value: u128 = o.payment.amount.parse().unwrap_or(0);
            *revenue
                .entry((month, unit, o.payment.decimals))
                .or_default() += value;
        }
        if o.state == OrderState::AwaitingPayment && o.payment.rail == RailKind::Invoice {
            invoices.push(
                WebForm {
                    id: format!("paid-{}", o.id),
                    heading: format!("Invoice of order {} ({})", o.id, amount(o)),
                    action: format!("/portal/sales/{}/mark-paid", o.id),
                    submit: "Mark paid".into(),
                    fields: vec![Field::text("reference", "Payment reference")
                        .required()
                        .help("The invoice or bank reference, recorded in the receipt.")],
                    error: None,
                }
                .with(posted),
            );
        }
    }
    let orders_section = Section {
        id: "orders".into(),
        heading: "Orders".into(),
        tables: vec![Table {
            caption: "Orders of your listings".into(),
            headers: vec![
                "Order".into(),
                "Listing".into(),
                "Buyer".into(),
                "State".into(),
                "Amount".into(),
                "Placed".into(),
                "Paid".into(),
            ],
            rows,
            empty: "No order yet.".into(),
        }],
        forms: invoices,
        ..Section::default()
    };
    let grants = Section {
        id: "grants".into(),
        heading: "Grants".into(),
        paragraphs: vec![
            format!("{awaiting_grant} paid order(s) await a grant."),
            "Machines with an operator key held by the server (Seller page) are granted at once; otherwise your grant daemon grants them on your machine:".into(),
        ],
        commands: vec!["sealstream market grant-daemon --key-file OWNER.secp256k1.sk --owner-private-key-file OWNER.x25519.sk --follow".into()],
        ..Section::default()
    };
    let revenue_section = Section {
        id: "revenue".into(),
        heading: "Revenue".into(),
        tables: vec![Table {
            caption: "Paid, per month".into(),
            headers: vec!["Month".into(), "Amount".into()],
            rows: revenue
                .into_iter()
                .map(|((month, unit, decimals), sum)| {
                    vec![
                        Cell::Text(month),
                        Cell::Text(format!(
                            "{} {unit}",
                            format_units(&sum.to_string(), decimals)
                        )),
                    ]
                })
                .collect(),
            empty: "Nothing paid yet.".into(),
        }],
        ..Section::default()
    };
    let sub_rows = subs
        .items
        .iter()
        .map(|s| {
            vec![
                Cell::Code(s.id.clone()),
                Cell::Text(s.topic.clone()),
                Cell::Code(s.buyer_did.clone()),
                Cell::Text(s.state.as_str().into()),
                Cell::Text(
                    s.paid_through
                        .clone()
                        .unwrap_or_else(|| "not paid yet".into()),
                ),
            ]
        })
        .collect();
    let subs_section = Section {
        id: "subscriptions".into(),
        heading: "Subscriptions".into(),
        tables: vec![Table {
            caption: "Subscriptions to your topics".into(),
            headers: vec![
                "Subscription".into(),
                "Topic".into(),
                "Buyer".into(),
                "State".into(),
                "Paid through".into(),
            ],
            rows: sub_rows,
            empty: "No subscription.".into(),
        }],
        ..Section::default()
    };
    Ok(vec![orders_section, grants, revenue_section, subs_section])
}

/// `POST /portal/sales/{id}/mark-paid`.
pub(super) async fn mark_paid(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebPost { web, values, .. }: WebPost<Owners>,
) -> Response {
    let req = MarkPaid {
        reference: get(&values, "reference").to_string(),
    };
    match crate::orders::payment::mark_paid(
        State(state.clone()),
        web.principal.clone(),
        ApiPath(id.clone()),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => done("/portal/sales#orders", "order-paid"),
        Err(e) => {
            let posted = Posted::new(
                &format!("paid-{id}"),
                values,
                e,
                &[("reference", "reference")],
            );
            sales_page(&state, &web, None, Some(posted)).await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn notices_are_fixed_texts() {
        assert!(super::super::portal::notice(Some(&"order-paid".to_string())).is_some());
        assert!(super::super::portal::notice(Some(&"<script>".to_string())).is_none());
    }
}
