//! Sign-in with Ethereum, sessions and role administration, on both
//! databases: the real nonce/verify flow with real keys; replayed, forged,
//! malformed, expired, early and misaddressed messages are refused naming the
//! field, with nothing stored; /v1/me, logout; admin grants and revocations.

mod common;

use common::{unix_now, Db, TestServer};
use sealstream_api::siwe::{SiweMessage, Timestamp};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::keys::MachineSigningKey;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

fn roles(body: &Value) -> Vec<&str> {
    body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

fn audit_events(server: &TestServer) -> i64 {
    server.audit_head()["events"].as_i64().unwrap()
}

/// (sessions, principals, used nonces, audit events): what a refused
/// sign-in must leave unchanged.
fn stored(server: &TestServer) -> (i64, i64, i64, i64) {
    (
        server.count_rows("sessions"),
        server.count_rows("principals"),
        server.count_rows("auth_nonces WHERE used_at IS NOT NULL"),
        audit_events(server),
    )
}

/// `field` of a refusal, after checking its status.
fn refused(reply: (u16, Value), status: u16) -> String {
    assert_eq!(reply.0, status, "{}", reply.1);
    reply.1["error"]["field"].as_str().unwrap_or("").to_string()
}

fn sign_in_me_and_logout(db: Db) {
    let server = TestServer::start(db);
    let key = MachineSigningKey::generate();
    let did = Did::of_key(&key).to_string();
    let nonce = server.new_nonce();
    assert_eq!(nonce["nonce"].as_str().unwrap().len(), 64);
    assert!(server.base.ends_with(nonce["domain"].as_str().unwrap()));
    assert_eq!(
        nonce["uri"].as_str().unwrap(),
        server.base,
        "the suggested URI is the server's"
    );

    let message = server.siwe_message(&key);
    let expiration = message.expiration_time.clone().unwrap();
    let before = audit_events(&server);
    let (status, body) = server.siwe_verify(&message.to_string(), &key);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["did"], did);
    assert_eq!(roles(&body), ["owner", "buyer"]);
    assert_eq!(
        body["expiresAt"],
        expiration.as_str(),
        "a session ends when the message expires, if sooner than 12 h"
    );
    // role.grant ×2 and auth.sign_in.
    assert_eq!(audit_events(&server), before + 3);
    let token = body["token"].as_str().unwrap().to_string();

    let (status, me) = server.get("/v1/me", Some(&token));
    assert_eq!(status, 200, "{me}");
    assert_eq!(me, json!({"did": did, "roles": ["owner", "buyer"]}));
    assert_eq!(refused(server.get("/v1/me", None), 401), "Authorization");

    // A second sign-in is not a first one: nothing more granted.
    let second = server.sign_in(&key);
    assert_eq!(audit_events(&server), before + 4);

    let (status, _) = server.send_raw("POST", "/v1/auth/logout", Some(&token), "text/plain", b"");
    assert_eq!(status, 204);
    assert_eq!(audit_events(&server), before + 5);
    assert_eq!(
        refused(server.get("/v1/me", Some(&token)), 401),
        "Authorization"
    );
    assert_eq!(
        refused(
            server.send_raw("POST", "/v1/auth/logout", Some(&token), "text/plain", b""),
            401
        ),
        "Authorization"
    );
    // The other session lives on.
    assert_eq!(server.get("/v1/me", Some(&second)).0, 200);
}

fn a_replayed_message_is_refused(db: Db) {
    let server = TestServer::start(db);
    let key = MachineSigningKey::generate();
    let message = server.siwe_message(&key).to_string();
    assert_eq!(server.siwe_verify(&message, &key).0, 200);
    let before = stored(&server);
    let reply = server.siwe_verify(&message, &key);
    assert_eq!(refused(reply.clone(), 401), "message.nonce");
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        reply.1
    );
    assert_eq!(stored(&server), before);
}

fn misaddressed_messages_are_refused_and_leave_the_nonce_usable(db: Db) {
    let server = TestServer::start(db);
    let key = MachineSigningKey::generate();
    let good = server.siwe_message(&key);
    let before = stored(&server);

    let mut other_domain = good.clone();
    other_domain.domain = "evil.example".into();
    other_domain.uri = "https://evil.example/login".into();
    let reply = server.siwe_verify(&other_domain.to_string(), &key);
    assert_eq!(refused(reply, 401), "message.domain");

    let mut other_uri = good.clone();
    other_uri.uri = "https://evil.example/login".into();
    let reply = server.siwe_verify(&other_uri.to_string(), &key);
    assert_eq!(refused(reply, 401), "message.uri");

    let mut ftp = good.clone();
    ftp.scheme = Some("ftp".into());
    let reply = server.siwe_verify(&ftp.to_string(), &key);
    assert_eq!(refused(reply, 401), "message.scheme");

    assert_eq!(stored(&server), before, "nothing stored");
    // The nonce was not used up by the refusals.
    assert_eq!(server.siwe_verify(&good.to_string(), &key).0, 200);
}

fn messages_outside_their_time_window_are_refused(db: Db) {
    let server = TestServer::start(db);
    let key = MachineSigningKey::generate();
    let now = unix_now();
    type Adjust = fn(&mut SiweMessage, u64);
    let cases: [(&str, Adjust); 5] = [
        ("message.expirationTime", |m, now| {
            m.issued_at = Timestamp::from_unix(now - 120);
            m.expiration_time = Some(Timestamp::from_unix(now - 1));
        }),
        ("message.issuedAt", |m, now| {
            m.issued_at = Timestamp::from_unix(now + 600);
            m.expiration_time = Some(Timestamp::from_unix(now + 1200));
        }),
        ("message.issuedAt", |m, now| {
            m.issued_at = Timestamp::from_unix(now - 600);
        }),
        ("message.notBefore", |m, now| {
            m.not_before = Some(Timestamp::from_unix(now + 600));
        }),
        ("message.issuedAt", |m, _| {
            // An hour ahead, said with an offset: still the future.
            m.issued_at = Timestamp::parse(
                &format!(
                    "{}+00:00",
                    &Timestamp::from_unix(unix_now() + 3600).as_str()[..19]
                ),
                "t",
            )
            .unwrap();
        }),
    ];
    for (field, adjust) in cases {
        let mut message = server.siwe_message(&key);
        adjust(&mut message, now);
        let before = stored(&server);
        let reply = server.siwe_verify(&message.to_string(), &key);
        assert_eq!(refused(reply, 401), field, "{message}");
        assert_eq!(stored(&server), before);
    }
}

fn forged_and_malformed_sign_ins_are_refused(db: Db) {
    let server = TestServer::start(db);
    // The lowercased-address case below needs a checksum with an upper-case
    // letter; about one random address in 2^8 has none.
    let key = std::iter::repeat_with(MachineSigningKey::generate)
        .find(|k| {
            let address = Did::of_key(k).address().to_checksum();
            address != address.to_lowercase()
        })
        .unwrap();
    let forger = MachineSigningKey::generate();
    let message = server.siwe_message(&key).to_string();
    let before = stored(&server);

    // Signed by another key.
    let reply = server.siwe_verify(&message, &forger);
    assert_eq!(refused(reply, 401), "signature");
    // A signature of another text.
    let other = eip191_sign(&key, b"something else").to_hex();
    let reply = server.send(
        "POST",
        "/v1/auth/verify",
        None,
        &json!({"message": message, "signature": other}),
    );
    assert_eq!(refused(reply, 401), "signature");
    // Not a signature at all.
    for bad in ["0x1234", "zz", ""] {
        let reply = server.send(
            "POST",
            "/v1/auth/verify",
            None,
            &json!({"message": message, "signature": bad}),
        );
        assert_eq!(refused(reply, 400), "signature");
    }
    // Malformed messages name the field; the signature is the signer's own.
    let address = Did::of_key(&key).address().to_checksum();
    let malformed = [
        (message.replacen("Nonce: ", "Nonce: !", 1), "message.nonce"),
        (
            message.replace(&address, &address.to_lowercase()),
            "message.address",
        ),
        (
            message.replace("Version: 1", "Version: 2"),
            "message.version",
        ),
        (
            message.replace("Issued At: ", "Issued At: yesterday "),
            "message.issuedAt",
        ),
        (message.replace("URI: ", "URI: /"), "message.uri"),
        (format!("{message}\nextra"), "message"),
        ("hello".to_string(), "message"),
    ];
    for (text, field) in malformed {
        let reply = server.siwe_verify(&text, &key);
        assert_eq!(refused(reply, 400), field, "{text}");
    }
    // Strict body.
    let reply = server.send(
        "POST",
        "/v1/auth/verify",
        None,
        &json!({"message": message, "signature": "0x00", "extra": 1}),
    );
    assert_eq!(refused(reply, 400), "extra");
    let reply = server.send(
        "POST",
        "/v1/auth/verify",
        None,
        &json!({"message": message}),
    );
    assert_eq!(refused(reply, 400), "body");
    assert_eq!(stored(&server), before, "nothing stored");
    // And the nonce is still good.
    assert_eq!(server.siwe_verify(&message, &key).0, 200);
}

fn an_unknown_nonce_is_refused(db: Db) {
    let server = TestServer::start(db);
    let key = MachineSigningKey::generate();
    let mut message = server.siwe_message(&key);
    message.nonce = "abcdefgh12345678".into();
    let before = stored(&server);
    let reply = server.siwe_verify(&message.to_string(), &key);
    assert_eq!(refused(reply.clone(), 401), "message.nonce");
    assert!(reply.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown"));
    assert_eq!(stored(&server), before);
}

fn the_public_url_is_the_one_to_sign_for(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.public_url = Some("https://Market.Example/".into())
    });
    let nonce = server.new_nonce();
    assert_eq!(nonce["domain"], "market.example");
    assert_eq!(nonce["uri"], "https://market.example");
    let key = MachineSigningKey::generate();
    let message = server.siwe_message(&key);
    assert_eq!(server.siwe_verify(&message.to_string(), &key).0, 200);
    // A message for the address the client happened to connect to is not.
    let mut local = server.siwe_message(&key);
    local.domain = server.base.trim_start_matches("http://").to_string();
    local.uri = server.base.clone();
    let reply = server.siwe_verify(&local.to_string(), &key);
    assert_eq!(refused(reply, 401), "message.domain");
}

/// Issue 14, item 1: an attacker's site that relays the victim's sign-in
/// with its own `Host` header gets neither a nonce for its domain nor a
/// session; order and link URLs ignore `Host` and `X-Forwarded-*` too.
fn the_host_header_never_decides_the_sign_in_domain(db: Db) {
    let server = TestServer::start(db);
    let own_domain = server.base.trim_start_matches("http://").to_string();
    let evil = |method: &str, path: &str| {
        server
            .request(method, path, None)
            .header("Host", "evil.example")
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "https")
    };
    // The nonce the attacker's site fetches names the real server.
    let nonce: Value = common::reply(evil("POST", "/v1/auth/nonce").body("")).1;
    assert_eq!(nonce["domain"], own_domain.as_str(), "{nonce}");
    assert_eq!(nonce["uri"], server.base.as_str(), "{nonce}");

    // The victim signs an ordinary-looking message for evil.example, with
    // that nonce; relayed with the same Host, it is refused.
    let victim = MachineSigningKey::generate();
    let mut message = server.siwe_message(&victim);
    message.nonce = nonce["nonce"].as_str().unwrap().to_string();
    message.domain = "evil.example".into();
    message.uri = "https://evil.example/login".into();
    let text = message.to_string();
    let signature = eip191_sign(&victim, text.as_bytes()).to_hex();
    let before = stored(&server);
    let reply = common::reply(
        evil("POST", "/v1/auth/verify")
            .header("Content-Type", "application/json")
            .body(json!({"message": text, "signature": signature}).to_string()),
    );
    assert_eq!(refused(reply, 401), "message.domain");
    assert_eq!(
        stored(&server),
        before,
        "nothing stored for the relayed sign-in"
    );

    // Orders and links name the configured base, whatever the headers say.
    let sale =
        common::orders_fixtures::sale(&server, 2, "1000", common::orders_fixtures::invoice_rail());
    let buyer = common::orders_fixtures::buyer(&server);
    let (status, order) = common::reply(
        evil("POST", "/v1/orders")
            .bearer_auth(&buyer.token)
            .header("Content-Type", "application/json")
            .body(
                json!({
                    "listingId": sale.listing_id,
                    "buyerPublicKeyHex": buyer.recipient.public_key().to_hex(),
                })
                .to_string(),
            ),
    );
    assert_eq!(status, 201, "{order}");
    let text = order.to_string();
    assert!(!text.contains("evil.example"), "{order}");
    assert!(text.contains(&server.base), "{order}");
    let id = order["id"].as_str().unwrap();
    let (status, link) = common::reply(
        evil("POST", &format!("/v1/orders/{id}/links"))
            .bearer_auth(&buyer.token)
            .header("Content-Type", "application/json")
            .body(r#"{"purpose":"release"}"#),
    );
    assert_eq!(status, 201, "{link}");
    assert!(
        link["url"].as_str().unwrap().starts_with(&server.base),
        "{link}"
    );
}

/// Issue 14, item 1: without --public-url the server listens only on
/// loopback; elsewhere it refuses to start, naming the flag.
#[test]
fn a_public_listener_needs_a_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = sealstream_market::server::Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..sealstream_market::server::Config::default()
    };
    let error = common::block_on(sealstream_market::server::Server::bind(config.clone()))
        .expect_err("a public listener without --public-url");
    assert!(error.to_string().contains("--public-url"), "{error}");
    let bound = common::block_on(sealstream_market::server::Server::bind(
        sealstream_market::server::Config {
            public_url: Some("https://market.example".into()),
            ..config
        },
    ))
    .expect("starts with a public URL");
    assert_eq!(bound.state().public_url.domain(), "market.example");
}

/// Issue 14, item 2: a sign-in message on a chain id the server does not
/// accept is refused naming `message.chainId`.
fn only_the_configured_chain_ids_sign_in(db: Db) {
    let server = TestServer::start(db);
    let key = MachineSigningKey::generate();
    assert_eq!(server.new_nonce()["chainId"], 3338);
    let mut message = server.siwe_message(&key);
    message.chain_id = 999_999_999;
    let before = stored(&server);
    let reply = server.siwe_verify(&message.to_string(), &key);
    assert_eq!(refused(reply, 401), "message.chainId");
    assert_eq!(stored(&server), before);

    let server = TestServer::start_with(db, |c| c.sign_in_chain_ids = vec![8453, 1]);
    assert_eq!(server.new_nonce()["chainId"], 8453);
    let message = server.siwe_message(&key);
    assert_eq!(server.siwe_verify(&message.to_string(), &key).0, 200);
    let mut peaq = server.siwe_message(&key);
    peaq.chain_id = 3338;
    assert_eq!(
        refused(server.siwe_verify(&peaq.to_string(), &key), 401),
        "message.chainId"
    );
    let mut mainnet = server.siwe_message(&key);
    mainnet.chain_id = 1;
    assert_eq!(server.siwe_verify(&mainnet.to_string(), &key).0, 200);
}

/// Issue 14, item 7: anonymous nonce requests store nothing, and a nonce
/// still works after a restart (it is checked with the server's key).
fn nonces_are_stateless(db: Db) {
    // Without the rate limit on anonymous writes (a flood of nonces is what
    // is measured here).
    let mut server = TestServer::start_with(db, |c| c.anonymous_write_rate = 0.0);
    let before = server.count_rows("auth_nonces");
    let key = MachineSigningKey::generate();
    for _ in 0..1000 {
        server.new_nonce();
    }
    assert_eq!(
        server.count_rows("auth_nonces"),
        before,
        "a nonce flood stores nothing"
    );
    // A nonce from before a restart signs in after it (same domain: a
    // fixed public URL, since a restart takes a new port).
    server.config.public_url = Some("http://market.test".into());
    server.restart();
    let message = server.siwe_message(&key);
    server.restart();
    assert_eq!(server.siwe_verify(&message.to_string(), &key).0, 200);
    assert_eq!(
        refused(server.siwe_verify(&message.to_string(), &key), 401),
        "message.nonce"
    );
}

/// Issue 24: servers behind one address (replicas) share `--nonce-key-file`,
/// so a nonce one of them issued signs in on another; a server with its
/// own nonce key refuses it.
fn servers_sharing_a_nonce_key_accept_each_others_nonces(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("nonce-key");
    let replica = |key_file: Option<std::path::PathBuf>| {
        TestServer::start_with(db, move |c| {
            c.public_url = Some("http://market.test".into());
            c.nonce_key_file = key_file;
        })
    };
    let a = replica(Some(shared.clone()));
    let b = replica(Some(shared.clone()));
    let alone = replica(None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let key = MachineSigningKey::generate();
    let from_a = a.siwe_message(&key).to_string();
    assert_eq!(
        refused(alone.siwe_verify(&from_a, &key), 401),
        "message.nonce"
    );
    assert_eq!(b.siwe_verify(&from_a, &key).0, 200);
}

fn admins_grant_and_revoke_roles(db: Db) {
    let admin_key = MachineSigningKey::generate();
    let admin_did = Did::of_key(&admin_key).to_string();
    let mut server = TestServer::start_with(db, |c| c.admins = vec![admin_did.clone()]);
    let admin = server.sign_in(&admin_key);
    let (_, me) = server.get("/v1/me", Some(&admin));
    assert_eq!(roles(&me), ["owner", "buyer", "admin"]);

    let user_key = MachineSigningKey::generate();
    let user_did = Did::of_key(&user_key).to_string();
    let user = server.sign_in(&user_key);
    let path = |did: &str, role: &str| format!("/v1/admin/principals/{did}/roles/{role}");

    // Only admins.
    let reply = server.send("PUT", &path(&user_did, "admin"), Some(&user), &json!({}));
    assert_eq!(reply.0, 403, "{}", reply.1);
    let reply = server.send("PUT", &path(&user_did, "admin"), None, &json!({}));
    assert_eq!(refused(reply, 401), "Authorization");
    let reply = server.request("DELETE", &path(&admin_did, "admin"), Some(&user));
    assert_eq!(common::reply(reply).0, 403);

    // Grant, idempotently (one audit event).
    let before = audit_events(&server);
    let (status, body) = server.send("PUT", &path(&user_did, "auditor"), Some(&admin), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(roles(&body), ["owner", "buyer", "auditor"]);
    let (status, _) = server.send("PUT", &path(&user_did, "auditor"), Some(&admin), &json!({}));
    assert_eq!(status, 200);
    assert_eq!(audit_events(&server), before + 1);
    assert_eq!(
        roles(&server.get("/v1/me", Some(&user)).1),
        ["owner", "buyer", "auditor"]
    );

    // A lower-case DID names the same principal.
    let lower = user_did.to_lowercase();
    let reply = server.request("DELETE", &path(&lower, "owner"), Some(&admin));
    let (status, body) = common::reply(reply);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["did"], user_did);
    assert_eq!(roles(&body), ["buyer", "auditor"]);
    assert_eq!(audit_events(&server), before + 2);
    // Revoking what is not there changes nothing.
    let reply = server.request("DELETE", &path(&user_did, "owner"), Some(&admin));
    assert_eq!(common::reply(reply).0, 200);
    assert_eq!(audit_events(&server), before + 2);
    // Signing in again does not give the owner role back, even after a
    // restart.
    server.restart();
    let again = server.sign_in(&user_key);
    assert_eq!(
        roles(&server.get("/v1/me", Some(&again)).1),
        ["buyer", "auditor"]
    );
    let admin = server.sign_in(&admin_key);

    // Bad targets name the field; the machine role is implicit.
    let reply = server.send(
        "PUT",
        &path("did:peaq:nope", "buyer"),
        Some(&admin),
        &json!({}),
    );
    assert_eq!(refused(reply, 400), "did");
    let reply = server.send("PUT", &path(&user_did, "king"), Some(&admin), &json!({}));
    assert_eq!(refused(reply, 400), "role");
    let reply = server.send("PUT", &path(&user_did, "machine"), Some(&admin), &json!({}));
    assert_eq!(refused(reply, 409), "role");
    let reply = server.request("DELETE", &path(&user_did, "machine"), Some(&admin));
    assert_eq!(refused(common::reply(reply), 409), "role");
}

fn a_registered_machine_signs_in_as_a_machine(db: Db) {
    let server = TestServer::start(db);
    let owner_key = MachineSigningKey::generate();
    let owner_did = Did::of_key(&owner_key).to_string();
    let owner = server.sign_in(&owner_key);
    let machine_key = MachineSigningKey::generate();
    let chain = sealstream_core::keys::ChainSigningKey::generate();
    let recipient = sealstream_core::keys::RecipientSecretKey::generate().public_key();
    let (status, body) = server.register_machine(
        &owner,
        &owner_did,
        &machine_key,
        &chain,
        &[("owner-1", "owner", recipient)],
    );
    assert_eq!(status, 201, "{body}");
    let machine = server.sign_in(&machine_key);
    let (_, me) = server.get("/v1/me", Some(&machine));
    assert_eq!(me["did"], Did::of_key(&machine_key).to_string());
    assert_eq!(
        roles(&me),
        ["machine"],
        "a machine gets neither owner nor buyer"
    );
    // It cannot register machines of its own.
    let other = MachineSigningKey::generate();
    let (status, _) = server.register_machine(
        &machine,
        me["did"].as_str().unwrap(),
        &other,
        &chain,
        &[("owner-1", "owner", recipient)],
    );
    assert_eq!(status, 403);
}

/// Expired sessions are deleted by the purge (which the server runs
/// before it serves and every ten minutes); live ones stay and still sign
/// in.
fn expired_sessions_are_purged(db: Db) {
    let server = TestServer::start(db);
    let old = common::listings_fixtures::new_did();
    let live = common::listings_fixtures::new_did();
    server.session_for(&old, &[sealstream_market::auth::Role::Owner]);
    let token = server.session_for(&live, &[sealstream_market::auth::Role::Owner]);
    common::block_on(async {
        sqlx::query("UPDATE sessions SET expires_unix = 1 WHERE did = $1")
            .bind(&old)
            .execute(server.store.pool())
            .await
            .unwrap();
    });
    let purged = common::block_on(sealstream_market::auth::purge_expired_sessions(
        &server.store,
        sealstream_core::utc::now_unix(),
    ))
    .unwrap();
    assert!(purged >= 1, "{purged}");
    let left = |did: &str| {
        common::block_on(async {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE did = $1")
                .bind(did)
                .fetch_one(server.store.pool())
                .await
                .unwrap();
            n
        })
    };
    assert_eq!((left(&old), left(&live)), (0, 1));
    let (status, _) = server.get("/v1/me", Some(&token));
    assert_eq!(status, 200);
}

on_both_databases!(
    expired_sessions_are_purged,
    sign_in_me_and_logout,
    a_replayed_message_is_refused,
    misaddressed_messages_are_refused_and_leave_the_nonce_usable,
    messages_outside_their_time_window_are_refused,
    forged_and_malformed_sign_ins_are_refused,
    an_unknown_nonce_is_refused,
    the_public_url_is_the_one_to_sign_for,
    the_host_header_never_decides_the_sign_in_domain,
    only_the_configured_chain_ids_sign_in,
    nonces_are_stateless,
    servers_sharing_a_nonce_key_accept_each_others_nonces,
    admins_grant_and_revoke_roles,
    a_registered_machine_signs_in_as_a_machine,
);
