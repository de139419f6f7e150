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
        crate::catalog::catalog,
        crate::listings::create,
        crate::listings::list_mine,
        crate::listings::get,
        crate::listings::patch,
        crate::listings::publish,
        crate::listings::withdraw,
        crate::listings::card::card,
        crate::listings::samples::disclose,
        crate::listings::samples::get,
        crate::listings::samples::ciphertext,
        crate::auth::siwe_routes::nonce,
        crate::auth::siwe_routes::verify,
        crate::auth::siwe_routes::logout,
        crate::auth::siwe_routes::me,
        crate::auth::admin::grant,
        crate::auth::admin::revoke,
        crate::machines::register,
        crate::machines::list,
        crate::machines::show,
        crate::operator_key::register,
        crate::operator_key::show,
        crate::operator_key::revoke,
        crate::ingest::upload::put_chunk,
        crate::ingest::read::list_topics,
        crate::ingest::read::list_chunks,
        crate::ingest::read::get_envelope,
        crate::ingest::read::get_ciphertext,
        crate::datasets::create_dataset,
        crate::datasets::list_datasets,
        crate::datasets::get_dataset,
        crate::datasets::put_manifest,
        crate::datasets::get_proof,
        crate::datasets::get_envelope,
        crate::orders::create,
        crate::orders::list,
        crate::orders::get_order,
        crate::orders::cancel,
        crate::orders::payment::payment_proof,
        crate::orders::payment::confirmation,
        crate::orders::payment::mark_paid,
        crate::orders::grant::upload,
        crate::orders::grant::show,
        crate::orders::links::create,
        crate::orders::links::revoke,
        crate::orders::release::manifest,
        crate::orders::release::file,
        crate::orders::receipt::get_receipt,
        crate::orders::receipt::server_key,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        crate::catalog::CatalogItem,
        crate::catalog::CatalogPage,
        crate::listings::CreateListing,
        crate::listings::PatchListing,
        crate::listings::ListingView,
        crate::listings::ListingList,
        crate::listings::DatasetSummary,
        crate::listings::card::Card,
        crate::listings::card::PaymentTerm,
        crate::listings::card::CardDataset,
        crate::listings::samples::PostSamples,
        crate::listings::samples::SampleKey,
        crate::listings::samples::SamplesDisclosed,
        crate::listings::samples::SampleView,
        crate::listings::samples::WrappedKey,
        crate::datasets::CreateDataset,
        crate::datasets::SignDataset,
        crate::datasets::DatasetView,
        crate::datasets::DatasetPage,
        crate::orders::CreateOrder,
        crate::orders::OrderView,
        crate::orders::OrderList,
        crate::orders::PaymentInstructions,
        crate::orders::OrderUrls,
        crate::orders::claims::ClaimView,
        crate::orders::payment::PaymentProof,
        crate::orders::payment::ProofAnswer,
        crate::orders::payment::MarkPaid,
        crate::orders::grant::UploadGrant,
        crate::orders::grant::GrantView,
        crate::operator_key::RegisterOperatorKey,
        crate::operator_key::OperatorKeyView,
        crate::orders::links::CreateLink,
        crate::orders::links::LinkView,
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
