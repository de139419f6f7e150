//! The authorization matrix (issue 6): every documented route × every kind
//! of caller, against owner A's resources, on both databases.
//!
//! The world is built through the real routes ([`common::world`]): owners A
//! and B sign in, each registers a machine, the machine signs in and uploads
//! a chain, the owner makes datasets (one public through a published
//! listing, one signed but only in a draft listing, one draft) and listings
//! (published with a disclosed sample key, draft with one, and spares for
//! publish and withdraw). Then each row of [`matrix`] is requested by each caller and
//! the answer's class compared with the table:
//!
//! - `O` allowed (2xx);
//! - `S` allowed, but the answer lists only the caller's own (nothing of
//!   A's private resources appears in it);
//! - `U` 401 (anonymous on a route needing a session);
//! - `F` 403 (wrong role);
//! - `H` 404, worded exactly as for a resource that does not exist;
//! - `V` 422 (the request is refused on its content: a registration
//!   statement naming another owner);
//! - `C` 409 (refused on the state of things, the same for every caller:
//!   a seller ordering their own listing, a chain payment proof for an
//!   order paid by invoice).
//!
//! Orders (issue 7) are seen by their buyer and seller only; the world has
//! A's invoice listing and the buyer's orders of it in every state, and
//! bearer links that open an order's confirmation or release package to
//! whoever holds them, session or not.
//!
//! Every refusal must leave the database (audit head, machines, chains,
//! chunks, datasets, listings, samples, roles, sessions) and the object
//! store as they were. The table must name every route `/openapi.json`
//! documents, so a new route fails this test until it is placed in the
//! matrix; anonymous callers must get 401 on every route documented as
//! needing a session, and reach only the public routes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::listings_fixtures::listing_body;
use common::world::{
    chunk_key, chunks_path, new_did, signed_manifest, upload_body, world, World, CHUNKS, TOPIC,
};
use common::{block_on, path_segment, Db, TestServer};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_market::store::Engine;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};
use sqlx::{Column, Row};

// ------------------------------------------------------------------ callers

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Anonymous,
    OwnerA,
    OwnerB,
    Buyer,
    Auditor,
    Admin,
    MachineA,
    MachineB,
}

/// The column order of the table.
const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::OwnerA,
    Caller::OwnerB,
    Caller::Buyer,
    Caller::Auditor,
    Caller::Admin,
    Caller::MachineA,
    Caller::MachineB,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Ok,
    /// 2xx, listing only the caller's own.
    Own,
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
    /// 404, as for a missing resource.
    Hidden,
    /// 422.
    Invalid,
    /// 409.
    Conflict,
}

impl Expect {
    fn parse(row: &str) -> [Expect; 8] {
        let cells: Vec<Expect> = row
            .split_whitespace()
            .map(|c| match c {
                "O" => Expect::Ok,
                "S" => Expect::Own,
                "U" => Expect::Unauthenticated,
                "F" => Expect::Forbidden,
                "H" => Expect::Hidden,
                "V" => Expect::Invalid,
                "C" => Expect::Conflict,
                other => panic!("unknown cell {other:?} in {row:?}"),
            })
            .collect();
        cells
            .try_into()
            .unwrap_or_else(|_| panic!("8 cells: {row:?}"))
    }

    fn allowed(self) -> bool {
        matches!(self, Expect::Ok | Expect::Own)
    }

    fn status_ok(self, status: u16) -> bool {
        match self {
            Expect::Ok | Expect::Own => (200..300).contains(&status),
            Expect::Unauthenticated => status == 401,
            Expect::Forbidden => status == 403,
            Expect::Hidden => status == 404,
            Expect::Invalid => status == 422,
            Expect::Conflict => status == 409,
        }
    }
}

// -------------------------------------------------------------------- world

impl World {
    fn token(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Anonymous => None,
            Caller::OwnerA => Some(&self.a.owner_token),
            Caller::OwnerB => Some(&self.b.owner_token),
            Caller::Buyer => Some(&self.buyer),
            Caller::Auditor => Some(&self.auditor),
            Caller::Admin => Some(&self.admin),
            Caller::MachineA => Some(&self.a.machine_token),
            Caller::MachineB => Some(&self.b.machine_token),
        }
    }
}

// ------------------------------------------------------------------- matrix

enum Body {
    None,
    Json(Value),
    Multipart(String, Vec<u8>),
    /// A fresh sign-in message for a new key, signed.
    SignIn,
}

struct Case {
    method: &'static str,
    template: &'static str,
    path: String,
    body: Body,
    expect: [Expect; 8],
    /// (the real id in path and body, an id of the same kind that does not
    /// exist): a 404 must read exactly as the 404 for the missing one.
    hidden: Option<(String, String)>,
    /// What an `S` answer must not contain.
    private: Vec<String>,
}

fn row(method: &'static str, template: &'static str, path: String, expect: &str) -> Case {
    Case {
        method,
        template,
        path,
        body: Body::None,
        expect: Expect::parse(expect),
        hidden: None,
        private: Vec::new(),
    }
}

impl Case {
    fn json(mut self, body: Value) -> Case {
        self.body = Body::Json(body);
        self
    }
    fn hidden(mut self, real: &str, missing: &str) -> Case {
        self.hidden = Some((real.to_string(), missing.to_string()));
        self
    }
    fn private(mut self, items: Vec<String>) -> Case {
        self.private = items;
        self
    }
}

/// Every route, against owner A's resources. Columns:
/// anonymous, owner A, owner B, buyer, auditor, admin, machine A, machine B.
#[rustfmt::skip]
fn matrix(w: &World) -> Vec<Case> {
    let a = &w.a;
    let m = &a.machine_did;
    let missing_did = new_did();
    let missing_ds = "ds_00000000deadbeef";
    let missing_ls = "ls_000000000000000000000000deadbeef";
    let sample_for = format!(
        "?recipientPublicKey={}",
        RecipientSecretKey::generate().public_key().to_hex()
    );
    let chunk = |i: u64| format!("{}/{i}", chunks_path(m));
    let next = &a.chunks[CHUNKS - 1];
    let (upload_ct, upload) = upload_body(next);
    // A new machine's registration naming owner A.
    let fresh = MachineSigningKey::generate();
    let fresh_chain = ChainSigningKey::generate();
    let fresh_recipient = RecipientSecretKey::generate().public_key();
    let registration = {
        use sealstream_api::registration::{MachineRegistration, RegistrationRecipient};
        let r = MachineRegistration {
            machine: Did::of_key(&fresh),
            owner: Did::parse(&a.owner_did, "owner").unwrap(),
            chain_public_key: fresh_chain.public_key(),
            recipients: vec![RegistrationRecipient {
                recipient_id: "owner-1".into(),
                recipient_type: "owner".into(),
                public_key: fresh_recipient,
            }],
        };
        json!({
            "machineDid": Did::of_key(&fresh).to_string(),
            "chainPublicKey": fresh_chain.public_key().to_hex(),
            "recipients": [{"recipientId": "owner-1", "recipientType": "owner",
                            "publicKeyHex": fresh_recipient.to_hex()}],
            "signature": r.sign(&fresh).to_hex(),
            "chainKeySignature": r.sign_chain_key(&fresh_chain).unwrap(),
        })
    };
    let a_machines = vec![m.clone(), w.operator_machine.clone()];
    let om = &w.operator_machine;
    let op_key = format!("/v1/machines/{om}/operator-key");
    let a_datasets = vec![a.ds_public.clone(), a.ds_private.clone(), a.ds_draft.clone()];
    let a_listings = vec![
        a.listing_published.clone(),
        a.listing_published_spare.clone(),
        a.listing_draft.clone(),
        a.listing_draft_spare.clone(),
    ];
    let a_unpublished = vec![
        a.listing_draft.clone(),
        a.listing_draft_spare.clone(),
        a.ds_private.clone(),
        a.ds_draft.clone(),
    ];
    let ds = |id: &str, rest: &str| format!("/v1/datasets/{id}{rest}");
    let ls = |id: &str, rest: &str| format!("/v1/listings/{id}{rest}");
    let role_target = format!("/v1/admin/principals/{}/roles/admin", new_did());
    let (pub_, draft) = (&a.listing_published, &a.listing_draft);
    let o = &w.orders;
    let missing_ord = "ord_000000000000000000000000deadbeef";
    let ord = |id: &str, rest: &str| format!("/v1/orders/{id}{rest}");
    let all_orders = vec![o.awaiting.clone(), o.to_cancel.clone(), o.paid.clone(), o.granted.clone()];
    let su = &w.subscriptions;
    let all_subs = vec![su.awaiting.clone(), su.active.clone(), su.to_revoke.clone()];
    let missing_sub = "sub_000000000000000000000000deadbeef";
    let sub = |id: &str, rest: &str| format!("/v1/subscriptions/{id}{rest}");
    let granted = &o.granted;
    let (release, confirmation) = (&o.release_link, &o.confirmation_link);
    let a_log = format!("seller:{}", a.owner_did);
    let missing_dr = "dr_000000000000000000000000deadbeef";

    // method, documented path, request, and expectations:
    //                                                                         an A  B  by au ad mA mB
    vec![
        // Operations and the public catalog.
        row("GET", "/healthz", "/healthz".into(),                              "O  O  O  O  O  O  O  O"),
        // Market-wide counts: auditors and admins only (issue 14, item 13).
        row("GET", "/metrics", "/metrics".into(),                              "U  F  F  F  O  O  F  F"),
        row("GET", "/openapi.json", "/openapi.json".into(),                    "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/audit/head", "/v1/audit/head".into(),                  "U  F  F  F  O  O  F  F"),
        row("GET", "/v1/catalog", "/v1/catalog?limit=100".into(),              "S  S  S  S  S  S  S  S")
            .private(a_unpublished.clone()),
        // Sign-in.
        row("POST", "/v1/auth/nonce", "/v1/auth/nonce".into(),                 "O  O  O  O  O  O  O  O"),
        Case { body: Body::SignIn, ..row("POST", "/v1/auth/verify", "/v1/auth/verify".into(),
                                                                               "O  O  O  O  O  O  O  O") },
        row("GET", "/v1/me", "/v1/me".into(),                                  "U  O  O  O  O  O  O  O"),
        row("POST", "/v1/auth/web-link", "/v1/auth/web-link".into(),           "U  O  O  O  O  O  O  O"),
        // Machines and their chains.
        row("GET", "/v1/machines", "/v1/machines".into(),                      "U  O  S  S  S  O  S  S")
            .private(a_machines),
        row("POST", "/v1/machines", "/v1/machines".into(),                     "U  O  V  F  F  F  F  F")
            .json(registration),
        row("GET", "/v1/machines/{did}", format!("/v1/machines/{m}"),          "U  O  H  H  H  O  O  H")
            .hidden(m, &missing_did),
        row("GET", "/v1/machines/{did}/topics", format!("/v1/machines/{m}/topics"),
                                                                               "U  O  H  H  H  O  O  H")
            .hidden(m, &missing_did),
        row("GET", "/v1/machines/{did}/topics/{topic}/chunks", chunks_path(m), "U  O  H  H  H  O  O  H")
            .hidden(m, &missing_did),
        row("GET", "/v1/machines/{did}/topics/{topic}/chunks/{index}/envelope", chunk(4) + "/envelope",
                                                                               "U  O  H  H  H  O  O  H")
            .hidden(m, &missing_did),
        row("GET", "/v1/machines/{did}/topics/{topic}/chunks/{index}/ciphertext", chunk(4) + "/ciphertext",
                                                                               "U  O  H  H  H  O  O  H")
            .hidden(m, &missing_did),
        // Operator keys: the machine's owner only.
        row("GET", "/v1/machines/{did}/operator-key", op_key.clone(),         "U  O  H  H  H  F  H  H")
            .hidden(om, &missing_did),
        row("PUT", "/v1/machines/{did}/operator-key", op_key.clone(),         "U  O  H  H  H  F  H  H")
            .json(json!({"secretKeyHex": w.operator_secret}))
            .hidden(om, &missing_did),
        row("DELETE", "/v1/machines/{did}/operator-key", op_key,              "U  O  H  H  H  F  H  H")
            .hidden(om, &missing_did),
        Case { body: Body::Multipart(upload_ct, upload),
               ..row("PUT", "/v1/machines/{did}/topics/{topic}/chunks/{index}", chunk(next.envelope.index),
                                                                               "U  O  F  F  F  F  O  F") },
        // Datasets.
        row("GET", "/v1/datasets", "/v1/datasets?limit=500".into(),            "U  O  S  S  S  O  S  S")
            .private(a_datasets),
        row("POST", "/v1/datasets", "/v1/datasets".into(),                     "U  O  H  H  H  H  H  H")
            .json(json!({"machineDid": m, "topic": TOPIC, "fromIndex": 1, "toIndex": 4}))
            .hidden(m, &missing_did),
        // A signed manifest: its owner, or the machine itself (the agent
        // delivers its window manifests); the same one again is the one held.
        row("POST", "/v1/datasets", "/v1/datasets".into(),                     "U  O  H  H  H  H  O  H")
            .json(json!({"manifest": signed_manifest(a, 1, 2)})),
        row("GET", "/v1/datasets/{id}", ds(&a.ds_public, ""),                  "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/datasets/{id}", ds(&a.ds_private, ""),                 "H  O  H  H  H  O  H  H")
            .hidden(&a.ds_private, missing_ds),
        row("GET", "/v1/datasets/{id}", ds(&a.ds_draft, ""),                   "H  O  H  H  H  O  H  H")
            .hidden(&a.ds_draft, missing_ds),
        row("GET", "/v1/datasets/{id}/proofs/{index}", ds(&a.ds_public, "/proofs/1"),
                                                                               "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/datasets/{id}/proofs/{index}", ds(&a.ds_private, "/proofs/4"),
                                                                               "H  O  H  H  H  O  H  H")
            .hidden(&a.ds_private, missing_ds),
        row("GET", "/v1/datasets/{id}/proofs/{index}", ds(&a.ds_draft, "/proofs/4"),
                                                                               "H  O  H  H  H  O  H  H")
            .hidden(&a.ds_draft, missing_ds),
        row("GET", "/v1/datasets/{id}/chunks/{index}/envelope", ds(&a.ds_public, "/chunks/1/envelope"),
                                                                               "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/datasets/{id}/chunks/{index}/envelope", ds(&a.ds_private, "/chunks/4/envelope"),
                                                                               "H  O  H  H  H  O  H  H")
            .hidden(&a.ds_private, missing_ds),
        row("PUT", "/v1/datasets/{id}/manifest", ds(&a.ds_draft, "/manifest"), "U  O  H  H  H  F  H  H")
            .json(json!({"manifest": signed_manifest(a, 0, 5)}))
            .hidden(&a.ds_draft, missing_ds),
        // Listings: pages, cards and samples.
        row("GET", "/v1/listings", "/v1/listings?mine=true&limit=100".into(),  "U  O  S  S  S  S  S  S")
            .private(a_listings),
        row("POST", "/v1/listings", "/v1/listings".into(),                     "U  O  H  F  F  F  F  F")
            .json(listing_body(&a.ds_public, "Another listing of A's"))
            .hidden(&a.ds_public, missing_ds),
        row("GET", "/v1/listings/{id}", ls(pub_, ""),                          "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/listings/{id}", ls(draft, ""),                         "H  O  H  H  H  H  H  H")
            .hidden(draft, missing_ls),
        row("GET", "/v1/listings/{id}/card", ls(pub_, "/card"),                "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/listings/{id}/card", ls(draft, "/card"),               "H  O  H  H  H  H  H  H")
            .hidden(draft, missing_ls),
        row("GET", "/v1/listings/{id}/samples/{index}", ls(pub_, &format!("/samples/1{sample_for}")),
                                                                               "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/listings/{id}/samples/{index}", ls(draft, &format!("/samples/3{sample_for}")),
                                                                               "H  O  H  H  H  H  H  H")
            .hidden(draft, missing_ls),
        row("GET", "/v1/listings/{id}/samples/{index}/ciphertext", ls(pub_, "/samples/1/ciphertext"),
                                                                               "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/listings/{id}/samples/{index}/ciphertext", ls(draft, "/samples/3/ciphertext"),
                                                                               "H  O  H  H  H  H  H  H")
            .hidden(draft, missing_ls),
        // Listings: changes.
        row("PATCH", "/v1/listings/{id}", ls(pub_, ""),                        "U  O  H  H  H  H  H  H")
            .json(json!({"title": "Retitled by its owner"}))
            .hidden(pub_, missing_ls),
        row("PATCH", "/v1/listings/{id}", ls(draft, ""),                       "U  O  H  H  H  H  H  H")
            .json(json!({"description": "Described again by its owner"}))
            .hidden(draft, missing_ls),
        row("POST", "/v1/listings/{id}/samples", ls(pub_, "/samples"),         "U  O  H  H  H  H  H  H")
            .json(json!({"keys": [{"index": 1, "chunkKeyHex": chunk_key(a, 1)}]}))
            .hidden(pub_, missing_ls),
        row("POST", "/v1/listings/{id}/samples", ls(draft, "/samples"),        "U  O  H  H  H  H  H  H")
            .json(json!({"keys": [{"index": 3, "chunkKeyHex": chunk_key(a, 3)}]}))
            .hidden(draft, missing_ls),
        row("POST", "/v1/listings/{id}/publish", ls(&a.listing_draft_spare, "/publish"),
                                                                               "U  O  H  H  H  H  H  H")
            .json(json!({}))
            .hidden(&a.listing_draft_spare, missing_ls),
        row("POST", "/v1/listings/{id}/withdraw", ls(&a.listing_published_spare, "/withdraw"),
                                                                               "U  O  H  H  H  H  H  H")
            .json(json!({}))
            .hidden(&a.listing_published_spare, missing_ls),
        // Orders: made by buyers (a seller's own listing is a conflict),
        // seen by their buyer and seller only.
        row("POST", "/v1/orders", "/v1/orders".into(),                         "U  C  O  O  F  F  F  F")
            .json(json!({"listingId": o.listing,
                         "buyerPublicKeyHex": RecipientSecretKey::generate().public_key().to_hex()})),
        row("GET", "/v1/orders", "/v1/orders?as=seller&limit=200".into(),      "U  O  S  S  S  S  S  S")
            .private(all_orders.clone()),
        row("GET", "/v1/orders", "/v1/orders?as=buyer&limit=200".into(),       "U  S  S  O  S  S  S  S")
            .private(all_orders),
        row("GET", "/v1/orders/{id}", ord(granted, ""),                        "U  O  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        row("GET", "/v1/orders/{id}/receipt", ord(granted, "/receipt"),        "U  O  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        row("GET", "/v1/receipts/key", "/v1/receipts/key".into(),              "O  O  O  O  O  O  O  O"),
        // Disclosure requests (issue 21): auditors file; compliance and
        // admins approve or reject; only the requester reads; every
        // signed-in principal reads the notices that concern it.
        row("POST", "/v1/disclosure-requests", "/v1/disclosure-requests".into(), "U  F  F  F  O  F  F  F")
            .json(json!({"kind": "case", "legalBasis": "matrix", "case": {"orderId": granted}, "accessSeconds": 60})),
        row("GET", "/v1/disclosure-requests", "/v1/disclosure-requests".into(), "U  F  F  F  O  O  F  F"),
        row("GET", "/v1/disclosure-requests/{id}", format!("/v1/disclosure-requests/{missing_dr}"), "U  H  H  H  H  H  H  H"),
        row("POST", "/v1/disclosure-requests/{id}/approve", format!("/v1/disclosure-requests/{missing_dr}/approve"),
                                                                                "U  F  F  F  F  H  F  F")
            .json(json!({"seal": false})),
        row("POST", "/v1/disclosure-requests/{id}/reject", format!("/v1/disclosure-requests/{missing_dr}/reject"),
                                                                                "U  F  F  F  F  H  F  F")
            .json(json!({"reason": "matrix"})),
        row("GET", "/v1/disclosure-requests/{id}/disclosure", format!("/v1/disclosure-requests/{missing_dr}/disclosure"),
                                                                                "U  H  H  H  H  H  H  H"),
        row("GET", "/v1/disclosure-notices", "/v1/disclosure-notices".into(),  "U  O  O  O  O  O  O  O"),
        // Receipt logs (issue 21): the market's to admins and auditors; a
        // seller's to that seller, admins and auditors.
        row("GET", "/v1/orders/{id}/receipt/log", ord(granted, "/receipt/log"), "U  O  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        row("GET", "/v1/receipt-log/head", "/v1/receipt-log/head?log=market".into(), "U  F  F  F  O  O  F  F"),
        row("GET", "/v1/receipt-log/total", format!("/v1/receipt-log/total?log={a_log}&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"),
                                                                                "U  O  F  F  O  O  F  F"),
        row("GET", "/v1/receipt-log/consistency", format!("/v1/receipt-log/consistency?log={a_log}&size=0"),
                                                                                "U  O  F  F  O  O  F  F"),
        row("GET", "/v1/orders/{id}/grant", ord(granted, "/grant"),            "U  O  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        // The payment proof needs no session (the reference sends none):
        // the chain is the judge, and an invoice order has no chain.
        row("POST", "/v1/orders/{id}/payment-proof", ord(&o.awaiting, "/payment-proof"),
                                                                               "C  C  C  C  C  C  C  C")
            .json(json!({"txHash": format!("0x{}", "ab".repeat(32)), "orderId": o.awaiting,
                         "chain": "base", "payerAddress": format!("0x{}", "11".repeat(20)),
                         "payeeAddress": format!("0x{}", "22".repeat(20)), "amount": "42.00",
                         "tokenAddress": null, "token": null})),
        row("POST", "/v1/orders/{id}/mark-paid", ord(&o.awaiting, "/mark-paid"),
                                                                               "U  O  H  H  H  H  H  H")
            .json(json!({"reference": "INV-2026-0042"}))
            .hidden(&o.awaiting, missing_ord),
        // Subscriptions: made by buyers, seen by their buyer and seller
        // only; the buyer cancels and renews, the seller revokes; the
        // granter (the machine's owner, or the admin for the server's
        // granter) reads the pending pairs and stores grants.
        row("POST", "/v1/subscriptions", "/v1/subscriptions".into(),           "U  C  O  O  F  F  F  F")
            .json(json!({"listingId": su.listing,
                         "buyerPublicKeyHex": RecipientSecretKey::generate().public_key().to_hex()})),
        row("GET", "/v1/subscriptions", "/v1/subscriptions?as=seller&limit=200".into(),
                                                                               "U  O  S  S  S  S  S  S")
            .private(all_subs.clone()),
        row("GET", "/v1/subscriptions", "/v1/subscriptions?as=buyer&limit=200".into(),
                                                                               "U  S  S  O  S  S  S  S")
            .private(all_subs),
        // The machine whose topic it covers reads it (its p2p destination).
        row("GET", "/v1/subscriptions/{id}", sub(&su.active, ""),             "U  O  H  O  H  H  O  H")
            .hidden(&su.active, missing_sub),
        row("GET", "/v1/subscriptions/{id}/history", sub(&su.active, "/history"),
                                                                               "U  O  H  O  H  H  H  H")
            .hidden(&su.active, missing_sub),
        row("PUT", "/v1/subscriptions/{id}/grants", sub(&su.active, "/grants"),
                                                                               "U  O  H  H  H  O  H  H")
            .json(json!({"entries": [su.entry]}))
            .hidden(&su.active, missing_sub),
        row("GET", "/v1/machines/{did}/topics/{topic}/subscription-grants",
            format!("/v1/machines/{}/topics/{}/subscription-grants", path_segment(m), path_segment(TOPIC)),
                                                                               "U  O  H  H  H  O  H  H"),
        row("POST", "/v1/subscriptions/{id}/renewals", sub(&su.active, "/renewals"),
                                                                               "U  H  H  O  H  H  H  H")
            .json(json!({}))
            .hidden(&su.active, missing_sub),
        row("POST", "/v1/subscriptions/{id}/cancel", sub(&su.awaiting, "/cancel"),
                                                                               "U  H  H  O  H  H  H  H")
            .json(json!({}))
            .hidden(&su.awaiting, missing_sub),
        row("POST", "/v1/subscriptions/{id}/revoke", sub(&su.to_revoke, "/revoke"),
                                                                               "U  O  H  H  H  H  H  H")
            .json(json!({"reason": "end of the trial"}))
            .hidden(&su.to_revoke, missing_sub),
        // The buyer's feed and chunks: 403 to the seller, 404 to the rest.
        // The feed of the subscription the cancel row ended: final with
        // nothing due, so its stream ends at once.
        row("GET", "/v1/subscriptions/{id}/feed", sub(&su.awaiting, "/feed"),
                                                                               "U  F  H  O  H  H  H  H")
            .hidden(&su.awaiting, missing_sub),
        // The cut-off notice of the subscription the cancel row ended
        // (before its first payment: access ended at once): its buyer and
        // seller only.
        row("GET", "/v1/subscriptions/{id}/cutoff", sub(&su.awaiting, "/cutoff"),
                                                                               "U  O  H  O  H  H  H  H")
            .hidden(&su.awaiting, missing_sub),
        // Chunk 0 of `active`, granted by the grants row above.
        row("GET", "/v1/subscriptions/{id}/chunks/{index}/envelope", sub(&su.active, "/chunks/0/envelope"),
                                                                               "U  F  H  O  H  H  H  H")
            .hidden(&su.active, missing_sub),
        row("GET", "/v1/subscriptions/{id}/chunks/{index}/ciphertext", sub(&su.active, "/chunks/0/ciphertext"),
                                                                               "U  F  H  O  H  H  H  H")
            .hidden(&su.active, missing_sub),
        row("GET", "/v1/subscriptions/{id}/datasets", sub(&su.active, "/datasets"),
                                                                               "U  F  H  O  H  H  H  H")
            .hidden(&su.active, missing_sub),
        row("POST", "/v1/orders/{id}/cancel", ord(&o.to_cancel, "/cancel"),   "U  H  H  O  H  H  H  H")
            .json(json!({}))
            .hidden(&o.to_cancel, missing_ord),
        // Escrow and disputes (issue 21 part 5): the world's orders are paid
        // by invoice, not into escrow, so a caller who may see one is told so
        // (409); the dispute is the buyer's; only an arbiter resolves.
        row("GET", "/v1/orders/{id}/dispute", ord(granted, "/dispute"),       "U  C  H  C  H  C  H  H")
            .hidden(granted, missing_ord),
        row("POST", "/v1/orders/{id}/dispute", ord(granted, "/dispute"),      "U  H  H  C  H  H  H  H")
            .json(json!({"schemaVersion": "sealstream.dispute-evidence.v1", "orderId": granted,
                         "kind": "not-in-root", "dataset": {}, "envelope": {}}))
            .hidden(granted, missing_ord),
        row("POST", "/v1/orders/{id}/dispute/resolve", ord(granted, "/dispute/resolve"),
                                                                               "U  F  F  F  F  F  F  F")
            .json(json!({"toBuyer": "1"})),
        row("PUT", "/v1/orders/{id}/grant", ord(&o.paid, "/grant"),            "U  O  H  H  H  H  H  H")
            .json(json!({"files": o.paid_files}))
            .hidden(&o.paid, missing_ord),
        // Confirmations: the parties' sessions, or the seller's link.
        row("GET", "/v1/orders/{id}/confirmation", ord(granted, "/confirmation"),
                                                                               "H  O  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        row("GET", "/v1/orders/{id}/confirmation", ord(granted, &format!("/confirmation{confirmation}")),
                                                                               "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/orders/{id}/confirmation", ord(granted, &format!("/confirmation{release}")),
                                                                               "H  H  H  H  H  H  H  H"),
        // Release packages: the buyer's session, or the buyer's link.
        row("GET", "/v1/orders/{id}/release/manifest.json", ord(granted, "/release/manifest.json"),
                                                                               "H  H  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        row("GET", "/v1/orders/{id}/release/manifest.json", ord(granted, &format!("/release/manifest.json{release}")),
                                                                               "O  O  O  O  O  O  O  O"),
        row("GET", "/v1/orders/{id}/release/manifest.json", ord(granted, &format!("/release/manifest.json{confirmation}")),
                                                                               "H  H  H  H  H  H  H  H"),
        row("GET", "/v1/orders/{id}/release/{name}", ord(granted, "/release/chunk-1.bin"),
                                                                               "H  H  H  O  H  H  H  H")
            .hidden(granted, missing_ord),
        row("GET", "/v1/orders/{id}/release/{name}", ord(granted, &format!("/release/chunk-1.json{release}")),
                                                                               "O  O  O  O  O  O  O  O"),
        // Links: the buyer makes release links, the seller confirmation
        // links; only a link's maker revokes it.
        row("POST", "/v1/orders/{id}/links", ord(granted, "/links"),           "U  H  H  O  H  H  H  H")
            .json(json!({"purpose": "release"}))
            .hidden(granted, missing_ord),
        row("POST", "/v1/orders/{id}/links", ord(granted, "/links"),           "U  O  H  H  H  H  H  H")
            .json(json!({"purpose": "confirmation"}))
            .hidden(granted, missing_ord),
        row("DELETE", "/v1/orders/{id}/links/{link}", ord(granted, &format!("/links/{}", o.spare_link)),
                                                                               "U  H  H  O  H  H  H  H")
            .hidden(&o.spare_link, "lnk_00000000deadbeef"),
        // Role administration: making a new DID an admin, and back.
        row("PUT", "/v1/admin/principals/{did}/roles/{role}", role_target.clone(),
                                                                               "U  F  F  F  F  O  F  F"),
        row("DELETE", "/v1/admin/principals/{did}/roles/{role}", role_target,  "U  F  F  F  F  O  F  F"),
        // Last: every caller ends its own session.
        row("POST", "/v1/auth/logout", "/v1/auth/logout".into(),               "U  O  O  O  O  O  O  O"),
    ]
}

// ------------------------------------------------------------------- runner

/// (status, body bytes) of any request.
fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Body,
) -> (u16, Vec<u8>) {
    let request = server.request(method, path, token);
    let request = match body {
        Body::None => request,
        Body::Json(v) => request
            .header("Content-Type", "application/json")
            .body(v.to_string()),
        Body::Multipart(ct, bytes) => request
            .header("Content-Type", ct.as_str())
            .body(bytes.clone()),
        Body::SignIn => {
            let key = MachineSigningKey::generate();
            let message = server.siwe_message(&key).to_string();
            let signature = eip191_sign(&key, message.as_bytes()).to_hex();
            request
                .header("Content-Type", "application/json")
                .body(json!({"message": message, "signature": signature}).to_string())
        }
    };
    let answer = sealstream_testkit::http::send(request);
    (answer.status, answer.body)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Everything a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    audit_head: Value,
    tables: BTreeMap<&'static str, Vec<String>>,
    objects: Vec<String>,
}

const TABLES: [&str; 17] = [
    "principals",
    "principal_roles",
    "sessions",
    "machines",
    "chains",
    "chunks",
    "datasets",
    "listings",
    "listing_samples",
    "auth_nonces",
    "audit_events",
    "orders",
    "payments",
    "grants",
    "order_links",
    "receipts",
    "operator_keys",
];

fn snapshot(server: &TestServer) -> Snapshot {
    let tables = block_on(async {
        let mut out = BTreeMap::new();
        for table in TABLES {
            // PostgreSQL renders whole rows as text (a `tsvector` column
            // does not decode through `Any`); SQLite's cells decode one by one.
            let sql = match server.store.engine() {
                Engine::Postgres => format!("SELECT CAST(t AS TEXT) FROM {table} t"),
                Engine::Sqlite => format!("SELECT * FROM {table}"),
            };
            let rows = sqlx::query(&sql)
                .fetch_all(server.store.pool())
                .await
                .unwrap();
            let mut dumped: Vec<String> = rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            let cell = r
                                .try_get::<Option<String>, _>(i)
                                .map(|v| format!("{v:?}"))
                                .or_else(|_| {
                                    r.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .or_else(|_| {
                                    r.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .or_else(|_| {
                                    r.try_get::<Option<Vec<u8>>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .unwrap_or_else(|e| format!("<{e}>"));
                            format!("{}={cell}", r.column(i).name())
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            dumped.sort();
            out.insert(table, dumped);
        }
        out
    });
    Snapshot {
        audit_head: server.audit_head(),
        tables,
        objects: server.object_keys(),
    }
}

fn replaced(body: &Body, from: &str, to: &str) -> Body {
    match body {
        Body::Json(v) => {
            Body::Json(serde_json::from_str(&v.to_string().replace(from, to)).unwrap())
        }
        Body::None => Body::None,
        _ => panic!("no hidden comparison for this body"),
    }
}

/// The documented operations: (METHOD, path) → whether only a session may
/// call it.
fn documented(server: &TestServer) -> BTreeMap<(String, String), bool> {
    let (status, doc) = server.get("/openapi.json", None);
    assert_eq!(status, 200);
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let session_only = op["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty() && s.iter().all(|r| r.get("session").is_some()));
            out.insert((method.to_uppercase(), path.clone()), session_only);
        }
    }
    out
}

fn authorization_matrix(db: Db) {
    let w = world(db);
    let server = &w.server;
    let cases = matrix(&w);

    // The table names every documented route, and only those.
    let doc = documented(server);
    let table: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.template.to_string()))
        .collect();
    let documented_routes: BTreeSet<(String, String)> = doc.keys().cloned().collect();
    let unplaced: Vec<_> = documented_routes.difference(&table).collect();
    assert!(
        unplaced.is_empty(),
        "documented routes missing from the matrix: {unplaced:?}"
    );
    let undocumented: Vec<_> = table.difference(&documented_routes).collect();
    assert!(
        undocumented.is_empty(),
        "matrix rows for undocumented routes: {undocumented:?}"
    );
    // Routes documented as needing a session are 401 to anonymous callers.
    for c in &cases {
        if doc[&(c.method.to_string(), c.template.to_string())] {
            assert_eq!(
                c.expect[0],
                Expect::Unauthenticated,
                "{} {}",
                c.method,
                c.template
            );
        }
    }

    let mut failures = Vec::new();
    let mut anonymous_reach = BTreeSet::new();
    let mut cells = 0;
    for case in &cases {
        // Refusals first, then the callers allowed (whose writes change things).
        let order = CALLERS
            .iter()
            .enumerate()
            .filter(|(i, _)| !case.expect[*i].allowed())
            .chain(
                CALLERS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| case.expect[*i].allowed()),
            );
        for (i, caller) in order {
            cells += 1;
            let expect = case.expect[i];
            let token = w.token(*caller);
            let before = (!expect.allowed()).then(|| snapshot(server));
            let (status, bytes) = call(server, case.method, &case.path, token, &case.body);
            let what = format!("{} {} as {caller:?}", case.method, case.path);
            let text = String::from_utf8_lossy(&bytes);
            if !expect.status_ok(status) {
                failures.push(format!("{what}: expected {expect:?}, got {status} {text}"));
                continue;
            }
            if *caller == Caller::Anonymous && expect.allowed() {
                anonymous_reach.insert((case.method, case.template));
            }
            if expect == Expect::Own {
                for secret in &case.private {
                    if text.contains(secret.as_str()) {
                        failures.push(format!("{what}: the answer shows {secret}"));
                    }
                }
            }
            if let Some(before) = before {
                let after = snapshot(server);
                if after != before {
                    failures.push(format!("{what}: refused ({status}) but changed state"));
                }
            }
            if let (Expect::Hidden, Some((real, missing))) = (expect, &case.hidden) {
                let (other, other_bytes) = call(
                    server,
                    case.method,
                    &case.path.replace(real.as_str(), missing),
                    token,
                    &replaced(&case.body, real, missing),
                );
                let shown = json_of(&bytes)["error"].clone();
                let mut absent = json_of(&other_bytes)["error"].clone();
                if let Some(m) = absent["message"].as_str() {
                    absent["message"] = Value::String(m.replace(missing.as_str(), real));
                }
                if other != 404 || shown != absent {
                    failures.push(format!(
                        "{what}: the 404 {shown} differs from a missing resource's {other} {absent}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, cases.len() * CALLERS.len());

    // Anonymous callers reach the catalog, public pages, sign-in, and the
    // operational endpoints; nothing else.
    let expected: BTreeSet<(&str, &str)> = [
        ("GET", "/healthz"),
        ("GET", "/openapi.json"),
        ("GET", "/v1/catalog"),
        ("POST", "/v1/auth/nonce"),
        ("POST", "/v1/auth/verify"),
        ("GET", "/v1/listings/{id}"),
        ("GET", "/v1/listings/{id}/card"),
        ("GET", "/v1/listings/{id}/samples/{index}"),
        ("GET", "/v1/listings/{id}/samples/{index}/ciphertext"),
        ("GET", "/v1/datasets/{id}"),
        ("GET", "/v1/datasets/{id}/proofs/{index}"),
        ("GET", "/v1/datasets/{id}/chunks/{index}/envelope"),
        ("GET", "/v1/receipts/key"),
        // With a bearer link only.
        ("GET", "/v1/orders/{id}/confirmation"),
        ("GET", "/v1/orders/{id}/release/manifest.json"),
        ("GET", "/v1/orders/{id}/release/{name}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(anonymous_reach, expected);

    // The writes allowed did happen, and only to A.
    let (_, catalog) = server.get("/v1/catalog?limit=100", None);
    let listed = catalog.to_string();
    for id in [
        &w.a.listing_published,
        &w.a.listing_draft_spare,
        &w.b.listing_published,
    ] {
        assert!(
            listed.contains(id.as_str()),
            "{id} in the catalog: {catalog}"
        );
    }
    assert!(
        !listed.contains(w.a.listing_published_spare.as_str()),
        "withdrawn: {catalog}"
    );
    let (_, b_listing) = server.get(&format!("/v1/listings/{}", w.b.listing_published), None);
    assert_eq!(b_listing["title"], "B temperatures");
    // Every session ended by the logout row is over.
    for caller in CALLERS {
        if let Some(token) = w.token(caller) {
            assert_eq!(server.get("/v1/me", Some(token)).0, 401, "{caller:?}");
        }
    }
}

/// Issue 14, item 4: once an admin revokes owner A's owner role, every
/// route A could use only as an owner (the matrix rows A may call and a
/// buyer may not) is a 403 for A, and changes nothing. A stays signed in,
/// and the machine's own routes keep working.
fn a_revoked_owner_can_no_longer_sell(db: Db) {
    let w = world(db);
    let server = &w.server;
    let cases = matrix(&w);
    let a = &w.a;
    let (status, body) = server.send(
        "DELETE",
        &format!("/v1/admin/principals/{}/roles/owner", a.owner_did),
        Some(&w.admin),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let owner_col = CALLERS.iter().position(|c| *c == Caller::OwnerA).unwrap();
    let buyer_col = CALLERS.iter().position(|c| *c == Caller::Buyer).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &cases {
        if !case.expect[owner_col].allowed() || case.expect[buyer_col].allowed() {
            continue;
        }
        checked += 1;
        let before = snapshot(server);
        let (status, bytes) = call(
            server,
            case.method,
            &case.path,
            Some(&a.owner_token),
            &case.body,
        );
        let what = format!("{} {} as the revoked owner", case.method, case.path);
        if status != 403 {
            failures.push(format!(
                "{what}: expected 403, got {status} {}",
                String::from_utf8_lossy(&bytes)
            ));
        } else if snapshot(server) != before {
            failures.push(format!("{what}: refused but changed state"));
        }
    }
    assert!(checked >= 20, "only {checked} owner routes in the matrix");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Still signed in, as a buyer.
    let (status, me) = server.get("/v1/me", Some(&a.owner_token));
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["roles"], json!(["buyer"]));
}

/// A dataset is public while a listing of it is published, and private
/// again once none is.
fn datasets_are_public_while_listed(db: Db) {
    let w = world(db);
    let server = &w.server;
    let a = &w.a;
    let proof = format!("/v1/datasets/{}/proofs/1", a.ds_public);
    let private_proof = format!("/v1/datasets/{}/proofs/4", a.ds_private);
    assert_eq!(server.get(&proof, None).0, 200);
    assert_eq!(server.get(&private_proof, None).0, 404);
    // The public dataset covers chunks 0–2 only: its routes give out nothing else.
    assert_eq!(
        server
            .get(
                &format!("/v1/datasets/{}/chunks/4/envelope", a.ds_public),
                None
            )
            .0,
        404
    );
    for id in [
        &a.listing_published,
        &a.listing_published_spare,
        &w.orders.listing,
    ] {
        assert_eq!(server.get(&proof, None).0, 200, "still listed");
        let (status, body) = server.send(
            "POST",
            &format!("/v1/listings/{id}/withdraw"),
            Some(&a.owner_token),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.get(&proof, None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        server.get(&format!("/v1/datasets/{}", a.ds_public), None).0,
        404
    );
    assert_eq!(server.get(&proof, Some(&a.owner_token)).0, 200);
    // Publishing the draft listing of the private dataset makes it public.
    let (status, body) = server.send(
        "POST",
        &format!("/v1/listings/{}/publish", a.listing_draft),
        Some(&a.owner_token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get(&private_proof, None).0, 200);
    // B's are untouched throughout.
    assert_eq!(
        server
            .get(&format!("/v1/datasets/{}/proofs/1", w.b.ds_public), None)
            .0,
        200
    );
}

on_both_databases!(
    authorization_matrix,
    datasets_are_public_while_listed,
    a_revoked_owner_can_no_longer_sell
);
