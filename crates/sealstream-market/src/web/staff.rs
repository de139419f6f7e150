//! The auditor's and the administrator's pages:
//!
//! - `GET /portal/audit` (auditors, admins): the audit log's head signed by
//!   the server's key, the result of verifying the whole chain now, and
//!   the requests and cases assigned to the auditor (none can be filed
//!   yet: compliance requests arrive with their own workflow, and this
//!   page lists them then);
//! - `GET /portal/admin` (admins): principals and their roles with the form
//!   that grants or revokes one, the quotas and limits in force, and the
//!   server's health; `POST /portal/admin/roles`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error_page;
use super::portal::{done, notice, render_status, Admins, Auditors, SignedIn, Values, WebPost};
use super::session::WebSession;
use super::view::{Cell, Field, Form as WebForm, Posted, Section, Table};
use crate::auth::admin::RolePath;
use crate::error::ApiPath;
use crate::server::AppState;

/// `GET /portal/audit`.
pub(super) async fn audit(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Auditors>,
) -> Response {
    let mut facts = Vec::new();
    match state.sign_audit_head().await {
        Ok(head) => {
            facts.push(("Events".to_string(), head.events.to_string()));
            facts.push(("Head (hash of the last event)".into(), head.head.clone()));
            facts.push(("Signed at".into(), head.signed_at.clone()));
            facts.push(("Server key".into(), hex::encode(head.public_key.as_bytes())));
            facts.push(("Signature".into(), hex::encode(head.signature)));
        }
        Err(e) => facts.push(("Head".into(), format!("not available: {e}"))),
    }
    let verified = match crate::audit::verify(&state.store).await {
        Ok(report) => format!(
            "verified: {} events chained by their hashes from the first to the head {}",
            report.events, report.head
        ),
        Err(e) => format!("DOES NOT VERIFY: {e}"),
    };
    facts.push(("Verification".into(), verified));
    let head = Section {
        id: "head".into(),
        heading: "Audit log".into(),
        paragraphs: vec![
            "Keep a copy of the signed head elsewhere: anyone with the server's public key can later tell a log cut short or rewritten (sealstream market audit verify --anchor).".into(),
        ],
        facts,
        ..Section::default()
    };
    let inbox = Section {
        id: "requests".into(),
        heading: "Requests and cases assigned to you".into(),
        tables: vec![Table {
            caption: "Requests".into(),
            headers: vec![
                "Request".into(),
                "Kind".into(),
                "State".into(),
                "Filed".into(),
            ],
            rows: Vec::new(),
            empty: "No request or case is assigned to you.".into(),
        }],
        ..Section::default()
    };
    render_status(
        StatusCode::OK,
        &web,
        "/portal/audit",
        "Audit",
        None,
        None,
        vec![head, inbox],
    )
}

/// `GET /portal/admin`.
pub(super) async fn admin(
    State(state): State<AppState>,
    SignedIn(web, _): SignedIn<Admins>,
    Query(q): Query<Values>,
) -> Response {
    admin_page(
        &state,
        &web,
        notice(q.get("notice")),
        None,
        q.get("after").cloned().unwrap_or_default(),
    )
    .await
}

async fn admin_page(
    state: &AppState,
    web: &WebSession,
    notice: Option<String>,
    posted: Option<Posted>,
    after: String,
) -> Response {
    const PAGE: i64 = 100;
    let principals = match crate::auth::db::principals(&state.store, &after, PAGE).await {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not available",
                &format!("database: {e}"),
            )
        }
    };
    let next = (principals.len() as i64 == PAGE)
        .then(|| principals.last().map(|p| p.0.clone()))
        .flatten();
    let mut paragraphs = vec![
        "Machines have the machine role while they are registered; it is not granted here."
            .to_string(),
    ];
    if let Some(n) = next {
        paragraphs.push(format!("More principals: /portal/admin?after={n}"));
    }
    let roles = vec![
        ("owner".to_string(), "owner".to_string()),
        ("buyer".into(), "buyer".into()),
        ("auditor".into(), "auditor".into()),
        ("admin".into(), "admin".into()),
    ];
    let people = Section {
        id: "principals".into(),
        heading: "Principals and roles".into(),
        paragraphs,
        tables: vec![Table {
            caption: "Principals".into(),
            headers: vec![
                "Principal".into(),
                "First seen".into(),
                "Roles granted".into(),
            ],
            rows: principals
                .into_iter()
                .map(|(did, seen, roles)| {
                    vec![Cell::Code(did), Cell::Text(seen), Cell::Text(roles)]
                })
                .collect(),
            empty: "Nobody has signed in yet.".into(),
        }],
        forms: vec![WebForm {
            id: "role-form".into(),
            heading: "Grant or revoke a role".into(),
            action: "/portal/admin/roles".into(),
            submit: "Apply".into(),
            fields: vec![
                Field::text("did", "Principal")
                    .required()
                    .help("did:peaq:0x…"),
                Field::select("role", "Role", roles),
                Field::select(
                    "change",
                    "Change",
                    vec![
                        ("grant".into(), "Grant".into()),
                        ("revoke".into(), "Revoke".into()),
                    ],
                ),
            ],
            error: None,
        }
        .with(posted.as_ref())],
        ..Section::default()
    };
    let c = &state.config;
    let limits = Section {
        id: "quotas".into(),
        heading: "Quotas and limits".into(),
        facts: vec![
            (
                "Storage per owner".into(),
                format!(
                    "{} bytes, {} chunks",
                    c.owner_quota_bytes, c.owner_quota_chunks
                ),
            ),
            (
                "Free disk kept".into(),
                format!("{} bytes", c.min_free_disk),
            ),
            (
                "Request body".into(),
                format!("{} bytes (chunks {} bytes)", c.body_limit, c.chunk_limit),
            ),
            (
                "Writes per principal".into(),
                format!("{}/s, burst {}", c.write_rate, c.write_burst),
            ),
            (
                "Writes per address without a session".into(),
                format!(
                    "{}/s, burst {}",
                    c.anonymous_write_rate, c.anonymous_write_burst
                ),
            ),
            (
                "Connections".into(),
                format!(
                    "{} ({} per client)",
                    c.max_connections, c.max_connections_per_client
                ),
            ),
            (
                "Live feeds per principal".into(),
                c.max_feeds_per_principal.to_string(),
            ),
        ],
        paragraphs: vec![
            "Set with sealstream market serve's options (sealstream market serve --help).".into(),
        ],
        ..Section::default()
    };
    let database = match state.store.ping().await {
        Ok(()) => "answers".to_string(),
        Err(e) => format!("DOES NOT ANSWER: {e}"),
    };
    let health = Section {
        id: "health".into(),
        heading: "Health".into(),
        facts: vec![
            ("Database".into(), database),
            ("Public URL".into(), state.public_url.base().to_string()),
            ("Version".into(), env!("CARGO_PKG_VERSION").to_string()),
        ],
        ..Section::default()
    };
    render_status(
        Posted::status(posted.as_ref()),
        web,
        "/portal/admin",
        "Admin",
        notice,
        None,
        vec![people, limits, health],
    )
}

/// `POST /portal/admin/roles`.
pub(super) async fn roles(
    State(state): State<AppState>,
    WebPost { web, values, .. }: WebPost<Admins>,
) -> Response {
    let field = |n: &str| {
        values
            .get(n)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let path = ApiPath(RolePath {
        did: field("did"),
        role: field("role"),
    });
    let (result, code) = match field("change").as_str() {
        "revoke" => (
            crate::auth::admin::revoke(State(state.clone()), web.principal.clone(), path)
                .await
                .map(|_| ()),
            "role-revoked",
        ),
        _ => (
            crate::auth::admin::grant(State(state.clone()), web.principal.clone(), path)
                .await
                .map(|_| ()),
            "role-granted",
        ),
    };
    match result {
        Ok(()) => done("/portal/admin#principals", code),
        Err(e) => {
            let posted = Posted::new("role-form", values, e, &[("did", "did"), ("role", "role")]);
            admin_page(&state, &web, None, Some(posted), String::new()).await
        }
    }
}
