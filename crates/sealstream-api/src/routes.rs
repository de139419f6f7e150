//! Route paths: the templates the server's router and its OpenAPI document
//! use (`/v1/orders/{id}`, axum's and OpenAPI's placeholder syntax), and
//! functions filling them in for a client (`order("ord_1")`), each path
//! segment percent-encoded.
//!
//! A function is the template with its placeholders filled in order
//! ([`fill`]), so the two cannot drift apart.

/// `GET`: whether the server and its database answer.
pub const HEALTHZ: &str = "/healthz";
/// `GET`: Prometheus counters.
pub const METRICS: &str = "/metrics";
/// `GET`: the OpenAPI document.
pub const OPENAPI: &str = "/openapi.json";

/// `POST`: a sign-in nonce.
pub const AUTH_NONCE: &str = "/v1/auth/nonce";
/// `POST`: a signed sign-in message, for a session.
pub const AUTH_VERIFY: &str = "/v1/auth/verify";
/// `POST`: ends the session.
pub const AUTH_LOGOUT: &str = "/v1/auth/logout";
/// `GET`: who the caller is.
pub const ME: &str = "/v1/me";
/// `POST`: a single-use link that signs the caller in to the web pages.
pub const AUTH_WEB_LINK: &str = "/v1/auth/web-link";
/// `PUT`, `DELETE`: grant or revoke a role (admins).
pub const ADMIN_ROLE: &str = "/v1/admin/principals/{did}/roles/{role}";

/// `GET`: the audit log's signed head.
pub const AUDIT_HEAD: &str = "/v1/audit/head";

/// `POST`: file a disclosure request (auditors); `GET`: the caller's
/// (auditors), or all (compliance, admins).
pub const DISCLOSURE_REQUESTS: &str = "/v1/disclosure-requests";
/// `GET`: one disclosure request.
pub const DISCLOSURE_REQUEST: &str = "/v1/disclosure-requests/{id}";
/// `POST`: approve a disclosure request (compliance, admins; not the requester).
pub const DISCLOSURE_APPROVE: &str = "/v1/disclosure-requests/{id}/approve";
/// `POST`: reject a disclosure request.
pub const DISCLOSURE_REJECT: &str = "/v1/disclosure-requests/{id}/reject";
/// `GET`: what an approved request discloses, to its requester, while the
/// access lasts.
pub const DISCLOSURE: &str = "/v1/disclosure-requests/{id}/disclosure";
/// `GET`: the disclosures that concern the caller.
pub const DISCLOSURE_NOTICES: &str = "/v1/disclosure-notices";

/// [`DISCLOSURE_REQUEST`].
pub fn disclosure_request(id: &str) -> String {
    fill(DISCLOSURE_REQUEST, &[id])
}

/// [`DISCLOSURE_APPROVE`].
pub fn disclosure_approve(id: &str) -> String {
    fill(DISCLOSURE_APPROVE, &[id])
}

/// [`DISCLOSURE_REJECT`].
pub fn disclosure_reject(id: &str) -> String {
    fill(DISCLOSURE_REJECT, &[id])
}

/// [`DISCLOSURE`].
pub fn disclosure(id: &str) -> String {
    fill(DISCLOSURE, &[id])
}

/// `GET`: a receipt log's signed tree head (`?log=`).
pub const RECEIPT_LOG_HEAD: &str = "/v1/receipt-log/head";
/// `GET`: a proof of a period's totals in a receipt log (`?log=&from=&to=`).
pub const RECEIPT_LOG_TOTAL: &str = "/v1/receipt-log/total";
/// `GET`: the consistency path from an older size to the current head
/// (`?log=&size=`).
pub const RECEIPT_LOG_CONSISTENCY: &str = "/v1/receipt-log/consistency";

/// `GET`, `POST`: the caller's machines; register one.
pub const MACHINES: &str = "/v1/machines";
/// `GET`: one machine.
pub const MACHINE: &str = "/v1/machines/{did}";
/// `GET`, `PUT`, `DELETE`: a machine's operator key.
pub const OPERATOR_KEY: &str = "/v1/machines/{did}/operator-key";
/// `GET`: a machine's chains.
pub const TOPICS: &str = "/v1/machines/{did}/topics";
/// `GET`: a page of a chain's chunks.
pub const CHUNKS: &str = "/v1/machines/{did}/topics/{topic}/chunks";
/// `PUT`: upload one chunk.
pub const CHUNK: &str = "/v1/machines/{did}/topics/{topic}/chunks/{index}";
/// `GET`: one chunk's envelope as uploaded.
pub const CHUNK_ENVELOPE: &str = "/v1/machines/{did}/topics/{topic}/chunks/{index}/envelope";
/// `GET`: one chunk's ciphertext.
pub const CHUNK_CIPHERTEXT: &str = "/v1/machines/{did}/topics/{topic}/chunks/{index}/ciphertext";

/// `GET`, `POST`: the caller's datasets; make one.
pub const DATASETS: &str = "/v1/datasets";
/// `GET`: one dataset.
pub const DATASET: &str = "/v1/datasets/{id}";
/// `PUT`: a draft's signed manifest.
pub const DATASET_MANIFEST: &str = "/v1/datasets/{id}/manifest";
/// `GET`: a chunk's inclusion proof.
pub const DATASET_PROOF: &str = "/v1/datasets/{id}/proofs/{index}";
/// `GET`: a chunk's envelope, through its dataset.
pub const DATASET_ENVELOPE: &str = "/v1/datasets/{id}/chunks/{index}/envelope";

/// `GET`: the public catalog.
pub const CATALOG: &str = "/v1/catalog";
/// `GET` (`?mine=true`), `POST`: the caller's listings; make one.
pub const LISTINGS: &str = "/v1/listings";
/// `GET`, `PATCH`: one listing.
pub const LISTING: &str = "/v1/listings/{id}";
/// `POST`: publish a listing.
pub const LISTING_PUBLISH: &str = "/v1/listings/{id}/publish";
/// `POST`: withdraw a listing.
pub const LISTING_WITHDRAW: &str = "/v1/listings/{id}/withdraw";
/// `GET`: a listing's Dazaar-style card.
pub const LISTING_CARD: &str = "/v1/listings/{id}/card";
/// `POST`: disclose sample chunk keys.
pub const LISTING_SAMPLES: &str = "/v1/listings/{id}/samples";
/// `GET`: one sample chunk, its key wrapped for the caller.
pub const LISTING_SAMPLE: &str = "/v1/listings/{id}/samples/{index}";
/// `GET`: one sample chunk's ciphertext.
pub const LISTING_SAMPLE_CIPHERTEXT: &str = "/v1/listings/{id}/samples/{index}/ciphertext";

/// `GET`, `POST`: the caller's subscriptions; subscribe to a listing.
pub const SUBSCRIPTIONS: &str = "/v1/subscriptions";
/// `GET`: one subscription.
pub const SUBSCRIPTION: &str = "/v1/subscriptions/{id}";
/// `POST`: the buyer cancels a subscription.
pub const SUBSCRIPTION_CANCEL: &str = "/v1/subscriptions/{id}/cancel";
/// `POST`: the seller revokes a subscription.
pub const SUBSCRIPTION_REVOKE: &str = "/v1/subscriptions/{id}/revoke";
/// `POST`: the buyer asks for one more period.
pub const SUBSCRIPTION_RENEWALS: &str = "/v1/subscriptions/{id}/renewals";
/// `GET`: a subscription's history.
pub const SUBSCRIPTION_HISTORY: &str = "/v1/subscriptions/{id}/history";
/// `GET`: the signed cut-off notice of a final subscription
/// (`sealstream.subscription-cutoff.v1`), to its buyer and seller.
pub const SUBSCRIPTION_CUTOFF: &str = "/v1/subscriptions/{id}/cutoff";
/// `PUT`: chunk keys wrapped for a subscriber.
pub const SUBSCRIPTION_GRANTS: &str = "/v1/subscriptions/{id}/grants";
/// `GET`: the buyer's live feed of a subscription (server-sent events:
/// `chunk` and `state`, see [`crate::subscriptions::FeedChunk`] and
/// [`crate::subscriptions::FeedState`]).
pub const SUBSCRIPTION_FEED: &str = "/v1/subscriptions/{id}/feed";
/// `GET`: the ciphertext of a chunk granted to a subscription, to its buyer.
pub const SUBSCRIPTION_CHUNK_CIPHERTEXT: &str = "/v1/subscriptions/{id}/chunks/{index}/ciphertext";
/// `GET`: the envelope of a chunk of a subscription's topic up to the last
/// one granted to it, to its buyer (to check the link of the first chunk
/// it follows).
pub const SUBSCRIPTION_CHUNK_ENVELOPE: &str = "/v1/subscriptions/{id}/chunks/{index}/envelope";
/// `GET`: the machine-signed datasets (time windows) of a subscription's
/// topic overlapping the chunks granted to it, to its buyer.
pub const SUBSCRIPTION_DATASETS: &str = "/v1/subscriptions/{id}/datasets";
/// `GET`: the (subscription, chunk) pairs of a topic entitled and not yet
/// granted.
pub const TOPIC_PENDING_GRANTS: &str = "/v1/machines/{did}/topics/{topic}/subscription-grants";

/// `GET`, `POST`: the caller's orders; order a listing.
pub const ORDERS: &str = "/v1/orders";
/// `GET`: one order.
pub const ORDER: &str = "/v1/orders/{id}";
/// `POST`: cancel an unpaid order.
pub const ORDER_CANCEL: &str = "/v1/orders/{id}/cancel";
/// `POST`: the reference's payment proof.
pub const ORDER_PAYMENT_PROOF: &str = "/v1/orders/{id}/payment-proof";
/// `GET`: the reference's confirmation.
pub const ORDER_CONFIRMATION: &str = "/v1/orders/{id}/confirmation";
/// `POST`: mark an invoice order paid.
pub const ORDER_MARK_PAID: &str = "/v1/orders/{id}/mark-paid";
/// `GET`: the signed license receipt.
pub const ORDER_RECEIPT: &str = "/v1/orders/{id}/receipt";
/// `GET`: the receipt's place in the market's receipt log (and, to the
/// seller, in the seller's), with its opening.
pub const ORDER_RECEIPT_LOG: &str = "/v1/orders/{id}/receipt/log";
/// `POST`: make a bearer link.
pub const ORDER_LINKS: &str = "/v1/orders/{id}/links";
/// `DELETE`: revoke a bearer link.
pub const ORDER_LINK: &str = "/v1/orders/{id}/links/{link}";
/// `PUT`, `GET`: the order's grant (access files).
pub const ORDER_GRANT: &str = "/v1/orders/{id}/grant";
/// The release package's base URL (`consume --download-url`): its files
/// are below it.
pub const ORDER_RELEASE: &str = "/v1/orders/{id}/release";
/// `GET`: the release package's manifest.
pub const ORDER_RELEASE_MANIFEST: &str = "/v1/orders/{id}/release/manifest.json";
/// `GET`: one file of the release package.
pub const ORDER_RELEASE_FILE: &str = "/v1/orders/{id}/release/{name}";
/// `GET`: the market's receipt (and audit head) key.
pub const RECEIPTS_KEY: &str = "/v1/receipts/key";

/// Percent-encodes one path segment (RFC 3986 unreserved characters kept).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `template` with its `{placeholders}` replaced, in order, by `values`,
/// each percent-encoded as one segment.
///
/// # Panics
///
/// When the number of values is not the number of placeholders (a bug in
/// this module, which the tests catch).
pub fn fill(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 16 * values.len());
    let mut values = values.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .expect("a closed placeholder");
        out.push_str(&rest[..open]);
        let value = values.next().expect("a value for each placeholder");
        out.push_str(&encode_segment(value));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    assert!(values.next().is_none(), "a placeholder for each value");
    out
}

/// `path` with `query` (already encoded, possibly empty) appended.
pub fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// [`ADMIN_ROLE`].
pub fn admin_role(did: &str, role: &str) -> String {
    fill(ADMIN_ROLE, &[did, role])
}

/// [`MACHINE`].
pub fn machine(did: &str) -> String {
    fill(MACHINE, &[did])
}

/// [`OPERATOR_KEY`].
pub fn operator_key(did: &str) -> String {
    fill(OPERATOR_KEY, &[did])
}

/// [`TOPICS`].
pub fn topics(did: &str) -> String {
    fill(TOPICS, &[did])
}

/// [`CHUNKS`], with the page asked for.
pub fn chunks(did: &str, topic: &str, page: &crate::ingest::ChunkPage) -> String {
    with_query(
        fill(CHUNKS, &[did, topic]),
        &crate::errors::encode_query(page),
    )
}

/// [`CHUNK`].
pub fn chunk(did: &str, topic: &str, index: u64) -> String {
    fill(CHUNK, &[did, topic, &index.to_string()])
}

/// [`CHUNK_ENVELOPE`].
pub fn chunk_envelope(did: &str, topic: &str, index: u64) -> String {
    fill(CHUNK_ENVELOPE, &[did, topic, &index.to_string()])
}

/// [`CHUNK_CIPHERTEXT`].
pub fn chunk_ciphertext(did: &str, topic: &str, index: u64) -> String {
    fill(CHUNK_CIPHERTEXT, &[did, topic, &index.to_string()])
}

/// [`DATASETS`], with the page asked for.
pub fn datasets(page: &crate::datasets::ListParams) -> String {
    with_query(DATASETS.to_string(), &crate::errors::encode_query(page))
}

/// [`DATASET`].
pub fn dataset(id: &str) -> String {
    fill(DATASET, &[id])
}

/// [`DATASET_MANIFEST`].
pub fn dataset_manifest(id: &str) -> String {
    fill(DATASET_MANIFEST, &[id])
}

/// [`DATASET_PROOF`].
pub fn dataset_proof(id: &str, index: u64) -> String {
    fill(DATASET_PROOF, &[id, &index.to_string()])
}

/// [`DATASET_ENVELOPE`].
pub fn dataset_envelope(id: &str, index: u64) -> String {
    fill(DATASET_ENVELOPE, &[id, &index.to_string()])
}

/// [`LISTINGS`], the caller's own (`?mine=true`), with the page asked for.
pub fn my_listings(page: &crate::listings::MyListings) -> String {
    with_query(LISTINGS.to_string(), &crate::errors::encode_query(page))
}

/// [`LISTING`].
pub fn listing(id: &str) -> String {
    fill(LISTING, &[id])
}

/// [`LISTING_PUBLISH`].
pub fn listing_publish(id: &str) -> String {
    fill(LISTING_PUBLISH, &[id])
}

/// [`LISTING_WITHDRAW`].
pub fn listing_withdraw(id: &str) -> String {
    fill(LISTING_WITHDRAW, &[id])
}

/// [`LISTING_CARD`].
pub fn listing_card(id: &str) -> String {
    fill(LISTING_CARD, &[id])
}

/// [`LISTING_SAMPLES`].
pub fn listing_samples(id: &str) -> String {
    fill(LISTING_SAMPLES, &[id])
}

/// [`LISTING_SAMPLE`], its key to be wrapped for `recipient_public_key`
/// (hex).
pub fn listing_sample(id: &str, index: u64, recipient_public_key: &str) -> String {
    with_query(
        fill(LISTING_SAMPLE, &[id, &index.to_string()]),
        &crate::errors::encode_query(&crate::listings::SampleQuery {
            recipient_public_key: recipient_public_key.to_string(),
        }),
    )
}

/// [`LISTING_SAMPLE_CIPHERTEXT`].
pub fn listing_sample_ciphertext(id: &str, index: u64) -> String {
    fill(LISTING_SAMPLE_CIPHERTEXT, &[id, &index.to_string()])
}

/// [`SUBSCRIPTIONS`], with the selection and page asked for.
pub fn subscriptions(query: &crate::subscriptions::SubscriptionQuery) -> String {
    with_query(
        SUBSCRIPTIONS.to_string(),
        &crate::errors::encode_query(query),
    )
}

/// [`SUBSCRIPTION`].
pub fn subscription(id: &str) -> String {
    fill(SUBSCRIPTION, &[id])
}

/// [`SUBSCRIPTION_CANCEL`].
pub fn subscription_cancel(id: &str) -> String {
    fill(SUBSCRIPTION_CANCEL, &[id])
}

/// [`SUBSCRIPTION_REVOKE`].
pub fn subscription_revoke(id: &str) -> String {
    fill(SUBSCRIPTION_REVOKE, &[id])
}

/// [`SUBSCRIPTION_RENEWALS`].
pub fn subscription_renewals(id: &str) -> String {
    fill(SUBSCRIPTION_RENEWALS, &[id])
}

/// [`SUBSCRIPTION_HISTORY`].
pub fn subscription_history(id: &str) -> String {
    fill(SUBSCRIPTION_HISTORY, &[id])
}

/// [`SUBSCRIPTION_CUTOFF`].
pub fn subscription_cutoff(id: &str) -> String {
    fill(SUBSCRIPTION_CUTOFF, &[id])
}

/// [`SUBSCRIPTION_GRANTS`].
pub fn subscription_grants(id: &str) -> String {
    fill(SUBSCRIPTION_GRANTS, &[id])
}

/// [`SUBSCRIPTION_FEED`], after chunk `after` if given.
pub fn subscription_feed(id: &str, after: Option<u64>) -> String {
    with_query(
        fill(SUBSCRIPTION_FEED, &[id]),
        &crate::errors::encode_query(&crate::subscriptions::FeedQuery {
            after: after.map(|a| a.to_string()),
        }),
    )
}

/// [`SUBSCRIPTION_CHUNK_CIPHERTEXT`].
pub fn subscription_chunk_ciphertext(id: &str, index: u64) -> String {
    fill(SUBSCRIPTION_CHUNK_CIPHERTEXT, &[id, &index.to_string()])
}

/// [`SUBSCRIPTION_CHUNK_ENVELOPE`].
pub fn subscription_chunk_envelope(id: &str, index: u64) -> String {
    fill(SUBSCRIPTION_CHUNK_ENVELOPE, &[id, &index.to_string()])
}

/// [`SUBSCRIPTION_DATASETS`], after last index `after`, at most `limit`.
pub fn subscription_datasets(id: &str, after: Option<u64>, limit: Option<u32>) -> String {
    with_query(
        fill(SUBSCRIPTION_DATASETS, &[id]),
        &crate::errors::encode_query(&crate::subscriptions::SubscriptionDatasetsQuery {
            after,
            limit,
        }),
    )
}

/// [`TOPIC_PENDING_GRANTS`], at most `limit` pairs.
pub fn topic_pending_grants(did: &str, topic: &str, limit: Option<u32>) -> String {
    with_query(
        fill(TOPIC_PENDING_GRANTS, &[did, topic]),
        &crate::errors::encode_query(&crate::subscriptions::PendingQuery { limit, wait: None }),
    )
}

/// [`TOPIC_PENDING_GRANTS`], at most `limit` pairs, waiting up to `wait`
/// seconds while none is pending.
pub fn topic_pending_grants_waiting(
    did: &str,
    topic: &str,
    limit: Option<u32>,
    wait: u32,
) -> String {
    with_query(
        fill(TOPIC_PENDING_GRANTS, &[did, topic]),
        &crate::errors::encode_query(&crate::subscriptions::PendingQuery {
            limit,
            wait: Some(wait),
        }),
    )
}

/// [`ORDERS`], with the selection and page asked for.
pub fn orders(query: &crate::orders::ListQuery) -> String {
    with_query(ORDERS.to_string(), &crate::errors::encode_query(query))
}

/// [`ORDER`].
pub fn order(id: &str) -> String {
    fill(ORDER, &[id])
}

/// [`ORDER_CANCEL`].
pub fn order_cancel(id: &str) -> String {
    fill(ORDER_CANCEL, &[id])
}

/// [`ORDER_PAYMENT_PROOF`].
pub fn order_payment_proof(id: &str) -> String {
    fill(ORDER_PAYMENT_PROOF, &[id])
}

/// [`ORDER_CONFIRMATION`].
pub fn order_confirmation(id: &str) -> String {
    fill(ORDER_CONFIRMATION, &[id])
}

/// [`ORDER_MARK_PAID`].
pub fn order_mark_paid(id: &str) -> String {
    fill(ORDER_MARK_PAID, &[id])
}

/// [`ORDER_RECEIPT`].
pub fn order_receipt(id: &str) -> String {
    fill(ORDER_RECEIPT, &[id])
}

/// [`ORDER_RECEIPT_LOG`].
pub fn order_receipt_log(id: &str) -> String {
    fill(ORDER_RECEIPT_LOG, &[id])
}

/// [`ORDER_LINKS`].
pub fn order_links(id: &str) -> String {
    fill(ORDER_LINKS, &[id])
}

/// [`ORDER_LINK`].
pub fn order_link(id: &str, link: &str) -> String {
    fill(ORDER_LINK, &[id, link])
}

/// [`ORDER_GRANT`].
pub fn order_grant(id: &str) -> String {
    fill(ORDER_GRANT, &[id])
}

/// [`ORDER_RELEASE`].
pub fn order_release(id: &str) -> String {
    fill(ORDER_RELEASE, &[id])
}

/// [`ORDER_RELEASE_MANIFEST`].
pub fn order_release_manifest(id: &str) -> String {
    fill(ORDER_RELEASE_MANIFEST, &[id])
}

/// [`ORDER_RELEASE_FILE`].
pub fn order_release_file(id: &str, name: &str) -> String {
    fill(ORDER_RELEASE_FILE, &[id, name])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("/sensor/gps"), "%2Fsensor%2Fgps");
        assert_eq!(encode_segment("did:peaq:0xAb"), "did%3Apeaq%3A0xAb");
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn paths_fill_their_templates() {
        assert_eq!(order("ord_1"), "/v1/orders/ord_1");
        assert_eq!(order_link("ord_1", "lnk_2"), "/v1/orders/ord_1/links/lnk_2");
        assert_eq!(
            chunk("did:peaq:0xAb", "/gps", 7),
            "/v1/machines/did%3Apeaq%3A0xAb/topics/%2Fgps/chunks/7"
        );
        assert_eq!(
            admin_role("did:peaq:0x1", "owner"),
            "/v1/admin/principals/did%3Apeaq%3A0x1/roles/owner"
        );
        assert_eq!(order_release("ord_1"), "/v1/orders/ord_1/release");
        assert_eq!(
            order_release_manifest("ord_1"),
            format!("{}/manifest.json", order_release("ord_1"))
        );
    }

    #[test]
    #[should_panic(expected = "a value for each placeholder")]
    fn a_missing_value_is_a_bug() {
        fill(ORDER_LINK, &["ord_1"]);
    }
}
