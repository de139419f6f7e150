//! The OpenAPI 3.1 description of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and served at `GET /openapi.json`.
//!
//! Every route the router serves is listed in `paths(…)` below; the test in
//! `tests/openapi.rs` checks that the document and the router agree.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The body of every refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, and where.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The request part at fault: a JSON path (`recipients[1].publicKeyHex`),
    /// a path or query parameter, a header, a multipart part, or `body`;
    /// `null` when no single part is.
    pub field: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /v1/auth/verify (Sign-In with Ethereum).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sealstream market",
        description = "Machines upload encrypted chunk chains; owners build datasets and listings; \
                       anyone browses the catalog and verifies samples. The server never holds plaintext."
    ),
    paths(
        crate::server::healthz,
        crate::server::metrics,
        crate::server::audit_head,
        crate::server::openapi_json,
        crate::datasets::create_dataset,
        crate::datasets::list_datasets,
        crate::datasets::get_dataset,
        crate::datasets::put_manifest,
        crate::datasets::get_proof,
        crate::datasets::get_envelope,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        crate::datasets::CreateDataset,
        crate::datasets::SignDataset,
        crate::datasets::DatasetView,
        crate::datasets::DatasetPage,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
}
