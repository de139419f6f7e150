//! The auditor's and the administrator's pages:
//!
//! - `GET /portal/audit` (auditors, compliance officers, admins): the
//!   audit log's head signed by the server's key, the result of verifying
//!   the whole chain now, and the disclosure requests (an auditor's own;
//!   all for approvers, with forms that approve or reject the pending ones
//!   the approver did not file); `POST /portal/disclosures/{id}/approve`
//!   and `…/reject`;
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
    Query(q): Query<Values>,
) -> Response {
    audit_page(&state, &web, notice(q.get("notice")), None).await
}

/// The disclosure requests the principal may see, and the approver's forms.
async fn requests_section(state: &AppState, web: &WebSession, posted: Option<&Posted>) -> Section {
    let p = &web.principal;
    let approver = p.has(crate::auth::Role::Compliance) || p.has(crate::auth::Role::Admin);
    let list = crate::disclosures::list(State(state.clone()), p.clone()).await;
    let mut rows = Vec::new();
    let mut forms = Vec::new();
    let items = match list {
        Ok(axum::Json(l)) => l.items,
        Err(_) => Vec::new(),
    };
    for r in &items {
        let scope = match (&r.period, &r.case) {
            (Some(period), _) => format!("{} {} to {}", period.log, period.from, period.to),
            (_, Some(c)) => c
                .order_id
                .as_deref()
                .map(|o| format!("order {o}"))
                .or(c.listing_id.as_deref().map(|l| format!("listing {l}")))
                .or(c.party.as_deref().map(|d| format!("party {d}")))
                .unwrap_or_default(),
            _ => String::new(),
        };
        rows.push(vec![
            Cell::Code(r.id.clone()),
            Cell::Text(r.kind.as_str().into()),
            Cell::Text(scope),
            Cell::Text(r.legal_basis.clone()),
            Cell::Text(format!(
                "{}{} ({} of 2)",
                r.state.as_str(),
                if r.sealed { ", sealed" } else { "" },
                r.approvals.len()
            )),
            Cell::Text(r.created_at.clone()),
        ]);
        let pending = r.state == sealstream_api::disclosures::RequestState::Pending;
        let mine = r.requester == p.did || r.approvals.iter().any(|a| a.did == p.did);
        if approver && pending && !mine {
            forms.push(
                WebForm {
                    id: format!("approve-{}", r.id),
                    heading: format!("Approve {} ({})", r.id, r.kind.as_str()),
                    action: format!("/portal/disclosures/{}/approve", r.id),
                    submit: "Approve".into(),
                    fields: vec![Field::select(
                        "seal",
                        "Seal the case",
                        vec![
                            ("no".into(), "No: the parties are told".into()),
                            (
                                "yes".into(),
                                "Yes (only if the other approver seals too)".into(),
                            ),
                        ],
                    )],
                    error: None,
                }
                .with(posted),
            );
            forms.push(
                WebForm {
                    id: format!("reject-{}", r.id),
                    heading: format!("Reject {}", r.id),
                    action: format!("/portal/disclosures/{}/reject", r.id),
                    submit: "Reject".into(),
                    fields: vec![Field::text("reason", "Reason").required()],
                    error: None,
                }
                .with(posted),
            );
        }
    }
    let mut paragraphs = vec![
        "Auditors file requests with sealstream market disclosure request; two approvers with the compliance or admin role, never the requester, make one take effect; the requester then fetches it with sealstream market disclosure fetch until its access ends.".to_string(),
    ];
    // A refusal about a form no longer shown (the request was decided).
    if let Some(p) = posted.filter(|p| !forms.iter().any(|f| f.id == p.form)) {
        paragraphs.push(format!("Not done: {}", p.message));
    }
    Section {
        id: "requests".into(),
        heading: "Disclosure requests".into(),
        paragraphs,
        tables: vec![Table {
            caption: "Requests".into(),
            headers: vec![
                "Request".into(),
                "Kind".into(),
                "Scope".into(),
                "Legal basis".into(),
                "State".into(),
                "Filed".into(),
            ],
            rows,
            empty: "No disclosure request.".into(),
        }],
        forms,
        ..Section::default()
    }
}

/// `POST /portal/disclosures/{id}/approve` and `…/reject`.
pub(super) async fn decide(
    State(state): State<AppState>,
    axum::extract::Path((id, action)): axum::extract::Path<(String, String)>,
    WebPost { web, values, .. }: WebPost<Auditors>,
) -> Response {
    let p = web.principal.clone();
    let field = |name: &str| values.get(name).cloned().unwrap_or_default();
    let (result, code, form) = match action.as_str() {
        "approve" => (
            crate::disclosures::approve(
                State(state.clone()),
                p,
                ApiPath(id.clone()),
                crate::error::ApiJson(sealstream_api::disclosures::Approve {
                    seal: field("seal") == "yes",
                }),
            )
            .await
            .map(|_| ()),
            "disclosure-approved",
            format!("approve-{id}"),
        ),
        "reject" => (
            crate::disclosures::reject(
                State(state.clone()),
                p,
                ApiPath(id.clone()),
                crate::error::ApiJson(sealstream_api::disclosures::Reject {
                    reason: field("reason"),
                }),
            )
            .await
            .map(|_| ()),
            "disclosure-rejected",
            format!("reject-{id}"),
        ),
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    match result {
        Ok(()) => done("/portal/audit#requests", code),
        Err(e) => {
            let posted = Posted::new(&form, values, e, &[("reason", "reason")]);
            audit_page(&state, &web, None, Some(posted)).await
        }
    }
}

async fn audit_page(
    state: &AppState,
    web: &WebSession,
    notice: Option<String>,
    posted: Option<Posted>,
) -> Response {
    let web = web.clone();
    let state = state.clone();
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
    let inbox = requests_section(&state, &web, posted.as_ref()).await;
    render_status(
        Posted::status(posted.as_ref()),
        &web,
        "/portal/audit",
        "Audit",
        notice,
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
