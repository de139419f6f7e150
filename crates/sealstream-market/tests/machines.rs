//! Machine registration and visibility, on both databases: an owner
//! registers a machine with the machine's signature over the statement
//! naming that owner; bad signatures (422), duplicates (409) and malformed
//! fields (400) store nothing; only the owner, the machine and admins see it.

mod common;

use common::{Db, TestServer};
use sealstream_core::identity::Did;
use sealstream_core::keys::{
    ChainSigningKey, MachineSigningKey, RecipientPublicKey, RecipientSecretKey,
};
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

struct Owner {
    key: MachineSigningKey,
    did: String,
    token: String,
}

fn owner(server: &TestServer) -> Owner {
    let key = MachineSigningKey::generate();
    let token = server.sign_in(&key);
    Owner {
        did: Did::of_key(&key).to_string(),
        key,
        token,
    }
}

fn keys() -> (
    ChainSigningKey,
    Vec<(&'static str, &'static str, RecipientPublicKey)>,
) {
    let r = || RecipientSecretKey::generate().public_key();
    (
        ChainSigningKey::generate(),
        vec![
            ("owner-1", "owner", r()),
            ("operator-1", "operator", r()),
            ("machine-1", "machine", r()),
        ],
    )
}

fn audit_actions(server: &TestServer) -> Vec<String> {
    common::block_on(async {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT action FROM audit_events ORDER BY seq")
            .fetch_all(server.store.pool())
            .await
            .unwrap();
        rows.into_iter().map(|(a,)| a).collect()
    })
}

fn field(reply: &(u16, Value)) -> &str {
    reply.1["error"]["field"].as_str().unwrap_or("")
}

fn register_list_and_show(db: Db) {
    let mut server = TestServer::start(db);
    let alice = owner(&server);
    let machine_key = MachineSigningKey::generate();
    let machine_did = Did::of_key(&machine_key).to_string();
    let (chain, recipients) = keys();
    let (status, body) =
        server.register_machine(&alice.token, &alice.did, &machine_key, &chain, &recipients);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["did"], machine_did);
    assert_eq!(body["ownerDid"], alice.did);
    assert_eq!(body["chainPublicKey"], chain.public_key().to_hex());
    assert_eq!(body["recipients"][1]["recipientType"], "operator");
    assert_eq!(
        body["recipients"][2]["publicKeyHex"],
        recipients[2].2.to_hex()
    );
    assert!(body["registeredAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        audit_actions(&server).last().map(String::as_str),
        Some("machine.register")
    );

    let (status, list) = server.get("/v1/machines", Some(&alice.token));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["machines"].as_array().unwrap().len(), 1);
    assert_eq!(list["machines"][0], body);
    // By DID, in any case.
    let (status, shown) = server.get(
        &format!("/v1/machines/{}", machine_did.to_lowercase()),
        Some(&alice.token),
    );
    assert_eq!((status, &shown), (200, &body));

    // The machine itself sees it.
    let machine = server.sign_in(&machine_key);
    let (status, shown) = server.get(&format!("/v1/machines/{machine_did}"), Some(&machine));
    assert_eq!((status, &shown), (200, &body));

    // Survives a restart.
    server.restart();
    let (status, shown) = server.get(&format!("/v1/machines/{machine_did}"), Some(&alice.token));
    assert_eq!((status, &shown), (200, &body));
}

/// The body of `POST /v1/machines` with `signer`'s signature over the
/// statement naming `owner_did`.
fn signed_request(
    machine_key: &MachineSigningKey,
    signer: &MachineSigningKey,
    owner_did: &str,
    chain: &ChainSigningKey,
    recipients: &[(&str, &str, RecipientPublicKey)],
) -> Value {
    let registration = sealstream_api::registration::MachineRegistration {
        machine: Did::of_key(machine_key),
        owner: Did::parse(owner_did, "owner").unwrap(),
        chain_public_key: chain.public_key(),
        recipients: recipients
            .iter()
            .map(
                |(id, kind, key)| sealstream_api::registration::RegistrationRecipient {
                    recipient_id: (*id).into(),
                    recipient_type: (*kind).into(),
                    public_key: *key,
                },
            )
            .collect(),
    };
    json!({
        "machineDid": Did::of_key(machine_key).to_string(),
        "chainPublicKey": chain.public_key().to_hex(),
        "recipients": recipients.iter().map(|(id, kind, key)| json!({
            "recipientId": id, "recipientType": kind, "publicKeyHex": key.to_hex()
        })).collect::<Vec<_>>(),
        "signature": registration.sign(signer).to_hex(),
        "chainKeySignature": registration.sign_chain_key(chain).unwrap(),
    })
}

fn a_bad_signature_is_422_and_stores_nothing(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let bob = owner(&server);
    let machine_key = MachineSigningKey::generate();
    let machine_did = Did::of_key(&machine_key).to_string();
    let (chain, recipients) = keys();
    let before = audit_actions(&server).len();

    // Signed by the machine for bob, sent by alice: the statement the server
    // rebuilds names alice, so the signature does not fit it.
    let for_bob = signed_request(&machine_key, &machine_key, &bob.did, &chain, &recipients);
    let reply = server.send("POST", "/v1/machines", Some(&alice.token), &for_bob);
    assert_eq!((reply.0, field(&reply)), (422, "signature"), "{}", reply.1);
    // Signed by alice rather than the machine.
    let by_alice = signed_request(&machine_key, &alice.key, &alice.did, &chain, &recipients);
    let reply = server.send("POST", "/v1/machines", Some(&alice.token), &by_alice);
    assert_eq!((reply.0, field(&reply)), (422, "signature"), "{}", reply.1);
    // A key changed after signing.
    let mut changed = signed_request(&machine_key, &machine_key, &alice.did, &chain, &recipients);
    changed["recipients"][0]["publicKeyHex"] =
        json!(RecipientSecretKey::generate().public_key().to_hex());
    let reply = server.send("POST", "/v1/machines", Some(&alice.token), &changed);
    assert_eq!((reply.0, field(&reply)), (422, "signature"), "{}", reply.1);

    // Nothing stored.
    assert_eq!(server.count_rows("machines"), 0);
    assert_eq!(audit_actions(&server).len(), before);
    let (_, list) = server.get("/v1/machines", Some(&alice.token));
    assert_eq!(list, json!({"machines": []}));
    assert_eq!(
        server
            .get(&format!("/v1/machines/{machine_did}"), Some(&alice.token))
            .0,
        404
    );

    // The honest request passes.
    let honest = signed_request(&machine_key, &machine_key, &alice.did, &chain, &recipients);
    let reply = server.send("POST", "/v1/machines", Some(&alice.token), &honest);
    assert_eq!(reply.0, 201, "{}", reply.1);
    assert_eq!(audit_actions(&server).len(), before + 1);
}

fn a_machine_is_registered_once(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let bob = owner(&server);
    let machine_key = MachineSigningKey::generate();
    let (chain, recipients) = keys();
    let first =
        server.register_machine(&alice.token, &alice.did, &machine_key, &chain, &recipients);
    assert_eq!(first.0, 201, "{}", first.1);
    let again =
        server.register_machine(&alice.token, &alice.did, &machine_key, &chain, &recipients);
    assert_eq!(again.0, 409, "{}", again.1);
    assert_eq!(field(&again), "machineDid");
    // Even with a valid signature for another owner.
    let stolen = server.register_machine(&bob.token, &bob.did, &machine_key, &chain, &recipients);
    assert_eq!(stolen.0, 409, "{}", stolen.1);
    let (_, shown) = server.get(
        &format!("/v1/machines/{}", Did::of_key(&machine_key)),
        Some(&alice.token),
    );
    assert_eq!(shown["ownerDid"], alice.did, "the first owner keeps it");
    assert_eq!(server.count_rows("machines"), 1);
}

/// Issue 14, item 3: a registration proves possession of the chain key,
/// and a chain key belongs to one machine. The attack: a buyer who read the
/// chain public key from a purchased chunk's envelope registers it under a
/// machine of their own, to re-upload the purchased chunks as theirs.
fn a_chain_key_is_proved_and_belongs_to_one_machine(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let mallory = owner(&server);
    let (chain, recipients) = keys();
    let alices_machine = MachineSigningKey::generate();
    let reply = server.register_machine(
        &alice.token,
        &alice.did,
        &alices_machine,
        &chain,
        &recipients,
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    let before = (server.count_rows("machines"), audit_actions(&server).len());

    // Mallory knows the chain public key only: whatever key she signs the
    // proof with, it is not the chain key's.
    let mallorys_machine = MachineSigningKey::generate();
    let mut request = signed_request(
        &mallorys_machine,
        &mallorys_machine,
        &mallory.did,
        &ChainSigningKey::generate(),
        &recipients,
    );
    request["chainPublicKey"] = json!(chain.public_key().to_hex());
    let reply = server.send("POST", "/v1/machines", Some(&mallory.token), &request);
    assert_eq!((reply.0, field(&reply)), (422, "signature"), "{}", reply.1);
    // Her machine's signature over the right statement, and a proof by
    // another Ed25519 key.
    let honest_statement = signed_request(
        &mallorys_machine,
        &mallorys_machine,
        &mallory.did,
        &chain,
        &recipients,
    );
    let mut forged = honest_statement.clone();
    let other = signed_request(
        &mallorys_machine,
        &mallorys_machine,
        &mallory.did,
        &ChainSigningKey::generate(),
        &recipients,
    );
    forged["chainKeySignature"] = other["chainKeySignature"].clone();
    let reply = server.send("POST", "/v1/machines", Some(&mallory.token), &forged);
    assert_eq!(
        (reply.0, field(&reply)),
        (422, "chainKeySignature"),
        "{}",
        reply.1
    );
    // Without a proof at all.
    let mut unproved = honest_statement.clone();
    unproved
        .as_object_mut()
        .unwrap()
        .remove("chainKeySignature");
    let reply = server.send("POST", "/v1/machines", Some(&mallory.token), &unproved);
    assert_eq!(reply.0, 400, "{}", reply.1);
    // Even holding the chain key (stolen), it stays Alice's machine's.
    let reply = server.send(
        "POST",
        "/v1/machines",
        Some(&mallory.token),
        &honest_statement,
    );
    assert_eq!(
        (reply.0, field(&reply)),
        (409, "chainPublicKey"),
        "{}",
        reply.1
    );
    assert_eq!(
        (server.count_rows("machines"), audit_actions(&server).len()),
        before,
        "nothing stored"
    );
}

fn only_the_owner_the_machine_and_admins_see_it(db: Db) {
    let admin_key = MachineSigningKey::generate();
    let admin_did = Did::of_key(&admin_key).to_string();
    let server = TestServer::start_with(db, |c| c.admins = vec![admin_did.clone()]);
    let alice = owner(&server);
    let bob = owner(&server);
    let machine_key = MachineSigningKey::generate();
    let machine_did = Did::of_key(&machine_key).to_string();
    let (chain, recipients) = keys();
    let reply =
        server.register_machine(&alice.token, &alice.did, &machine_key, &chain, &recipients);
    assert_eq!(reply.0, 201);

    let path = format!("/v1/machines/{machine_did}");
    let (status, body) = server.get(&path, Some(&bob.token));
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!("machine {machine_did} not found"),
        "the same answer as for a machine that does not exist"
    );
    let nobody = Did::of_key(&MachineSigningKey::generate()).to_string();
    let (status, body) = server.get(&format!("/v1/machines/{nobody}"), Some(&bob.token));
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        format!("machine {nobody} not found")
    );
    let (_, list) = server.get("/v1/machines", Some(&bob.token));
    assert_eq!(list, json!({"machines": []}));

    // An auditor or buyer without ownership does not see it either.
    let auditor = server.session_for(&nobody, &[Role::Auditor, Role::Buyer]);
    assert_eq!(server.get(&path, Some(&auditor)).0, 404);

    let admin = server.sign_in(&admin_key);
    assert_eq!(server.get(&path, Some(&admin)).0, 200);
    let bobs_machine = MachineSigningKey::generate();
    let (bobs_chain, _) = keys();
    let reply = server.register_machine(
        &bob.token,
        &bob.did,
        &bobs_machine,
        &bobs_chain,
        &recipients,
    );
    assert_eq!(reply.0, 201);
    let (_, all) = server.get("/v1/machines", Some(&admin));
    assert_eq!(all["machines"].as_array().unwrap().len(), 2);
    let (_, mine) = server.get("/v1/machines", Some(&alice.token));
    assert_eq!(mine["machines"].as_array().unwrap().len(), 1);

    // Anonymous callers: 401 everywhere.
    assert_eq!(server.get("/v1/machines", None).0, 401);
    assert_eq!(server.get(&path, None).0, 401);
    let reply =
        server.register_machine("not-a-token", &alice.did, &machine_key, &chain, &recipients);
    assert_eq!(reply.0, 401);
    let reply = server.send("POST", "/v1/machines", None, &json!({}));
    assert_eq!(reply.0, 401);
    // Malformed DID in the path.
    let reply = server.get("/v1/machines/did:peaq:nope", Some(&alice.token));
    assert_eq!((reply.0, field(&reply)), (400, "did"));
}

fn registration_needs_the_owner_role_and_well_formed_fields(db: Db) {
    let server = TestServer::start(db);
    let buyer_did = Did::of_key(&MachineSigningKey::generate()).to_string();
    let buyer = server.session_for(&buyer_did, &[Role::Buyer]);
    let machine_key = MachineSigningKey::generate();
    let (chain, recipients) = keys();
    let reply = server.register_machine(&buyer, &buyer_did, &machine_key, &chain, &recipients);
    assert_eq!(reply.0, 403, "{}", reply.1);

    let alice = owner(&server);
    let base = json!({
        "machineDid": Did::of_key(&machine_key).to_string(),
        "chainPublicKey": chain.public_key().to_hex(),
        "recipients": [{"recipientId": "owner-1", "recipientType": "owner", "publicKeyHex": recipients[0].2.to_hex()}],
        "signature": format!("0x{}", "11".repeat(65)),
        "chainKeySignature": "22".repeat(64),
    });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/machineDid", json!("did:peaq:0x12"), "machineDid"),
        ("/machineDid", json!(alice.did), "machineDid"),
        ("/chainPublicKey", json!("abcd"), "chainPublicKey"),
        ("/recipients", json!([]), "recipients"),
        (
            "/recipients/0/recipientType",
            json!("buyer"),
            "recipients[0].recipientType",
        ),
        (
            "/recipients/0/recipientId",
            json!("two words"),
            "recipients[0].recipientId",
        ),
        (
            "/recipients/0/publicKeyHex",
            json!("00"),
            "recipients[0].publicKeyHex",
        ),
        (
            "/recipients/0/publicKeyHex",
            json!(7),
            "recipients[0].publicKeyHex",
        ),
        ("/recipients/0/extra", json!(1), "recipients[0].extra"),
        ("/signature", json!("0x12"), "signature"),
        ("/extra", json!(true), "extra"),
    ];
    for (pointer, value, expected) in cases {
        let mut body = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(parent).unwrap()
        };
        target[key] = value;
        let reply = server.send("POST", "/v1/machines", Some(&alice.token), &body);
        assert_eq!(reply.0, 400, "{pointer}: {}", reply.1);
        assert_eq!(field(&reply), expected, "{pointer}");
    }
    assert_eq!(server.count_rows("machines"), 0);
}

on_both_databases!(
    register_list_and_show,
    a_bad_signature_is_422_and_stores_nothing,
    a_machine_is_registered_once,
    a_chain_key_is_proved_and_belongs_to_one_machine,
    only_the_owner_the_machine_and_admins_see_it,
    registration_needs_the_owner_role_and_well_formed_fields,
);
