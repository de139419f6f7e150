//! The OpenAPI 3.1 description of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and served at `GET /openapi.json`.
//!
//! Every route the router serves is listed in `paths(…)` below; the test in
//! `tests/openapi.rs` checks that the document and the router agree.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

pub use sealstream_api::errors::{ErrorBody, ErrorDetail};

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

/// The answers any operation of a kind can give, whatever its handler
/// does, because a layer in front of every route gives them
/// ([`crate::server::router`], [`crate::connections`]): declared once as
/// components and referenced from every operation that can get them and
/// does not declare the status itself.
struct CommonResponses;

/// (status, component name, description, which operations).
const COMMON_RESPONSES: [(&str, &str, &str, Applies); 6] = [
    (
        "400",
        "BadRequest",
        "A path or query parameter, or the body, is malformed; `error.field` names it",
        Applies::WithInput,
    ),
    (
        "401",
        "Unauthorized",
        "No session token where the operation requires one, or one that is unknown, expired \
         or malformed (`error.field` is `Authorization`)",
        Applies::WithSession,
    ),
    (
        "408",
        "RequestTimeout",
        "The request was not answered in time (`request-timeout`, or `upload-timeout` on \
         uploads)",
        Applies::All,
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the route accepts (`max-body-bytes`, or the upload limits)",
        Applies::All,
    ),
    (
        "429",
        "TooManyWrites",
        "Too many writes (`write-rate`, or `anonymous-write-rate` without a session); \
         `Retry-After` says when to try again",
        Applies::Writes,
    ),
    (
        "503",
        "Unavailable",
        "Too many connections open from the client's address \
         (`max-connections-per-client`); `Retry-After` says when to try again",
        Applies::All,
    ),
];

/// Which operations a common response applies to.
#[derive(Clone, Copy)]
enum Applies {
    /// Every operation.
    All,
    /// Operations with path or query parameters or a request body.
    WithInput,
    /// Operations that take a session (required or optional).
    WithSession,
    /// Operations other than GET (the write rate limits).
    Writes,
}

impl Applies {
    fn to(self, method: &HttpMethod, operation: &Operation) -> bool {
        match self {
            Applies::All => true,
            Applies::WithInput => {
                operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || operation.request_body.is_some()
            }
            Applies::WithSession => operation.security.as_ref().is_some_and(|s| !s.is_empty()),
            Applies::Writes => !matches!(method, HttpMethod::Get | HttpMethod::Head),
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description, _) in COMMON_RESPONSES {
            components
                .responses
                .insert(name.to_string(), RefOr::T(error_response(description)));
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Delete, &mut item.delete),
                (HttpMethod::Patch, &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                for (status, name, _, applies) in COMMON_RESPONSES {
                    if applies.to(&method, operation) {
                        operation
                            .responses
                            .responses
                            .entry(status.to_string())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}

/// A refusal in the JSON error shape.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
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
        crate::auth::siwe_routes::web_link,
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
        crate::receipt_log::head,
        crate::receipt_log::total,
        crate::receipt_log::consistency,
        crate::receipt_log::order_logs,
        crate::disclosures::create,
        crate::disclosures::list,
        crate::disclosures::show,
        crate::disclosures::approve,
        crate::disclosures::reject,
        crate::disclosures::disclosure,
        crate::disclosures::notices,
        crate::subscriptions::create,
        crate::subscriptions::list,
        crate::subscriptions::show,
        crate::subscriptions::cancel,
        crate::subscriptions::revoke,
        crate::subscriptions::renew,
        crate::subscriptions::history,
        crate::subscriptions::cutoff,
        crate::subscriptions::pending,
        crate::subscriptions::store_grants,
        crate::subscriptions::feed::feed,
        crate::subscriptions::feed::chunk_ciphertext,
        crate::subscriptions::feed::chunk_envelope,
        crate::subscriptions::windows::datasets,
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
        crate::listings::SubscriptionTerms,
        crate::subscriptions::CreateSubscription,
        crate::subscriptions::feed::FeedChunk,
        crate::subscriptions::feed::FeedState,
        crate::subscriptions::RenewSubscription,
        crate::subscriptions::RevokeSubscription,
        crate::subscriptions::SubscriptionView,
        crate::subscriptions::SubscriptionList,
        crate::subscriptions::PeriodView,
        crate::subscriptions::BuyerKeyView,
        crate::subscriptions::HistoryEntry,
        crate::subscriptions::SubscriptionHistory,
        crate::subscriptions::PendingGrant,
        crate::subscriptions::PendingGrants,
        crate::subscriptions::PostSubscriptionGrants,
        crate::subscriptions::SubscriptionGrantsStored,
        sealstream_api::subscriptions::SubscriptionGrantEntry,
        sealstream_api::subscriptions::SubscriptionDataset,
        sealstream_api::subscriptions::SubscriptionDatasets,
    )),
    modifiers(&BearerAuth, &CommonResponses)
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
}
