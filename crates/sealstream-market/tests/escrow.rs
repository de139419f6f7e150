//! The escrow contract (`contracts/SealstreamEscrow.sol`) on a real EVM
//! dev node, and the market's check of an escrowed payment
//! (`ExpectedPayment::escrow`): each test deploys its own escrow on its
//! own anvil, moves the chain's clock with `evm_increaseTime` (never the
//! wall clock) and compares balances before and after.

mod common;

use common::anvil::{Anvil, BASE_CHAIN_ID};
use common::block_on;
use sealstream_market::evm::escrow::{
    self, approve_call, deals_call, deposit_call, dispute_call, order_key, release_call,
    resolve_call, Deal, DealState,
};
use sealstream_market::evm::{
    Address, Amount, EscrowDeposit, EvmRpc, ExpectedPayment, PaymentError, PaymentStatus, TxHash,
};
use serde_json::Value;

/// The dispute window of the tests' escrows: one hour.
const WINDOW: u64 = 3_600;
/// The arbitration period: one day.
const ARBITRATION: u64 = 86_400;
/// One token payment: 1 unit of the 6-decimal test token.
const PRICE: u128 = 1_000_000;

struct Setup {
    anvil: Anvil,
    escrow: Address,
    token: Address,
    buyer: Address,
    seller: Address,
    arbiter: Address,
    stranger: Address,
}

/// Anvil with the escrow (arbiter: account 4) and the test token
/// (deployed by account 0, the buyer, account 1, given 10 units).
fn setup() -> Setup {
    let anvil = Anvil::start();
    let deployer = anvil.account(0).address;
    let buyer = anvil.account(1).address;
    let arbiter = anvil.account(4).address;
    let escrow = anvil.deploy_escrow(deployer, arbiter, WINDOW, ARBITRATION);
    let token = anvil.deploy_token(deployer);
    anvil.send_token(token, deployer, buyer, 10 * PRICE);
    Setup {
        escrow,
        token,
        buyer,
        seller: anvil.account(2).address,
        arbiter,
        stranger: anvil.account(3).address,
        anvil,
    }
}

/// Asserts that `result` is a refusal naming the contract's custom error
/// `error` (its selector in the revert data).
fn assert_reverted(result: Result<TxHash, Value>, error: &str) {
    let e = result.expect_err(&format!("expected a revert with {error}"));
    let selector = hex::encode(escrow::selector(error));
    assert!(
        e.to_string().contains(&selector),
        "expected {error} ({selector}), got {e}"
    );
}

impl Setup {
    /// The buyer approves and deposits `PRICE` tokens for `order`.
    fn deposit_token(&self, order: &str) -> TxHash {
        let a = &self.anvil;
        a.try_call(
            self.buyer,
            self.token,
            &approve_call(&self.escrow, Amount::from(PRICE)),
            0,
        )
        .expect("approve");
        a.try_call(
            self.buyer,
            self.escrow,
            &deposit_call(
                &order_key(order),
                &self.seller,
                Some(&self.token),
                Amount::from(PRICE),
            ),
            0,
        )
        .expect("deposit")
    }

    fn deal(&self, order: &str) -> Deal {
        Deal::decode(&self.anvil.call(self.escrow, &deals_call(&order_key(order)))).expect("a deal")
    }

    fn tokens(&self, owner: Address) -> Amount {
        self.anvil.token_balance(self.token, owner)
    }

    fn expected(
        &self,
        order: &str,
        tx: TxHash,
        token: Option<Address>,
        amount: u128,
    ) -> ExpectedPayment {
        ExpectedPayment {
            chain_id: BASE_CHAIN_ID,
            tx_hash: tx,
            payer: self.buyer,
            pay_to: self.seller,
            token,
            min_amount: Amount::from(amount),
            confirmations: 1,
            not_before: None,
            escrow: Some(EscrowDeposit {
                contract: self.escrow,
                order_key: order_key(order),
            }),
        }
    }

    fn check(&self, expected: &ExpectedPayment) -> Result<PaymentStatus, PaymentError> {
        let rpc = EvmRpc::new(&self.anvil.url).expect("anvil's URL");
        block_on(rpc.check_payment(expected))
    }
}

/// A token deposit is the order's payment (exact amount, the order's key,
/// seller and buyer); nobody can release it before the window; after it
/// (the chain's clock moved on) anyone releases it and the seller gets
/// exactly the amount.
#[test]
fn a_deposit_pays_the_order_and_is_released_to_the_seller_after_the_window() {
    let s = setup();
    let tx = s.deposit_token("ord_a");
    let deal = s.deal("ord_a");
    assert_eq!(deal.state, DealState::Held);
    assert_eq!(
        (deal.buyer, deal.seller, deal.token, deal.amount),
        (s.buyer, s.seller, Some(s.token), Amount::from(PRICE))
    );
    assert_eq!(s.tokens(s.escrow), Amount::from(PRICE));

    match s.check(&s.expected("ord_a", tx, Some(s.token), PRICE)) {
        Ok(PaymentStatus::Confirmed(v)) => {
            assert_eq!(v.amount, Amount::from(PRICE));
            assert_eq!(v.release_after, Some(deal.release_after));
            assert_eq!(v.from, s.buyer);
        }
        other => panic!("expected a confirmed deposit, got {other:?}"),
    }
    // Another order's key, another amount (exact), another token: refused.
    for (expected, what) in [
        (s.expected("ord_b", tx, Some(s.token), PRICE), "order"),
        (s.expected("ord_a", tx, Some(s.token), PRICE - 1), "amount"),
        (s.expected("ord_a", tx, None, PRICE), "currency"),
    ] {
        match s.check(&expected) {
            Err(e @ PaymentError::WrongDeposit(_)) => assert_eq!(e.field(), "amount"),
            other => panic!("{what}: expected WrongDeposit, got {other:?}"),
        }
    }
    // The same order cannot be deposited twice.
    s.anvil
        .try_call(
            s.buyer,
            s.token,
            &approve_call(&s.escrow, Amount::from(PRICE)),
            0,
        )
        .unwrap();
    let again = deposit_call(
        &order_key("ord_a"),
        &s.seller,
        Some(&s.token),
        Amount::from(PRICE),
    );
    assert_reverted(
        s.anvil.try_call(s.buyer, s.escrow, &again, 0),
        "AlreadyExists()",
    );

    let key = order_key("ord_a");
    assert_reverted(
        s.anvil
            .try_call(s.stranger, s.escrow, &release_call(&key), 0),
        "WindowOpen()",
    );
    let seller_before = s.tokens(s.seller);
    s.anvil.increase_time(WINDOW + 1);
    s.anvil
        .try_call(s.stranger, s.escrow, &release_call(&key), 0)
        .expect("release after the window");
    assert_eq!(
        s.tokens(s.seller),
        seller_before.checked_add(Amount::from(PRICE)).unwrap()
    );
    assert_eq!(s.tokens(s.escrow), Amount::ZERO);
    assert_eq!(s.deal("ord_a").state, DealState::Released);
    assert_reverted(
        s.anvil
            .try_call(s.stranger, s.escrow, &release_call(&key), 0),
        "WrongState(uint8)",
    );
    // Too late to dispute a released deal, and a new deposit's window
    // closes too.
    assert_reverted(
        s.anvil
            .try_call(s.buyer, s.escrow, &dispute_call(&key, &[1; 32]), 0),
        "WrongState(uint8)",
    );
    s.deposit_token("ord_late");
    s.anvil.increase_time(WINDOW);
    assert_reverted(
        s.anvil.try_call(
            s.buyer,
            s.escrow,
            &dispute_call(&order_key("ord_late"), &[1; 32]),
            0,
        ),
        "WindowClosed()",
    );
}

/// Only the buyer disputes, only the arbiter resolves; a split pays both
/// parties exactly and ends the deal.
#[test]
fn the_arbiter_splits_a_disputed_payment_exactly() {
    let s = setup();
    s.deposit_token("ord_split");
    let key = order_key("ord_split");
    assert_reverted(
        s.anvil
            .try_call(s.stranger, s.escrow, &dispute_call(&key, &[7; 32]), 0),
        "NotBuyer()",
    );
    s.anvil
        .try_call(s.buyer, s.escrow, &dispute_call(&key, &[7; 32]), 0)
        .expect("the buyer disputes");
    let deal = s.deal("ord_split");
    assert_eq!(deal.state, DealState::Disputed);
    assert!(deal.release_after >= s.anvil.latest_timestamp() + ARBITRATION - 1);
    // The window has passed, but a disputed deal waits for the arbiter.
    s.anvil.increase_time(WINDOW + 1);
    assert_reverted(
        s.anvil
            .try_call(s.stranger, s.escrow, &release_call(&key), 0),
        "WindowOpen()",
    );
    let split = resolve_call(&key, Amount::from(300_000u64), &[9; 32]);
    for not_arbiter in [s.buyer, s.seller, s.stranger] {
        assert_reverted(
            s.anvil.try_call(not_arbiter, s.escrow, &split, 0),
            "NotArbiter()",
        );
    }
    let too_much = resolve_call(&key, Amount::from(PRICE + 1), &[9; 32]);
    assert_reverted(
        s.anvil.try_call(s.arbiter, s.escrow, &too_much, 0),
        "SplitTooLarge()",
    );
    let (buyer_before, seller_before) = (s.tokens(s.buyer), s.tokens(s.seller));
    s.anvil
        .try_call(s.arbiter, s.escrow, &split, 0)
        .expect("the arbiter splits");
    assert_eq!(
        s.tokens(s.buyer),
        buyer_before.checked_add(Amount::from(300_000u64)).unwrap()
    );
    assert_eq!(
        s.tokens(s.seller),
        seller_before.checked_add(Amount::from(700_000u64)).unwrap()
    );
    assert_eq!(s.tokens(s.escrow), Amount::ZERO);
    assert_eq!(s.deal("ord_split").state, DealState::Resolved);
    assert_reverted(
        s.anvil.try_call(s.arbiter, s.escrow, &split, 0),
        "WrongState(uint8)",
    );
}

/// The native coin: the deposit must send exactly the amount; a full
/// refund gives the buyer back exactly what was deposited (the arbiter
/// pays the gas); a dispute nobody decides lapses after the arbitration
/// period and the seller is paid.
#[test]
fn native_deposits_are_refunded_in_full_and_undecided_disputes_lapse() {
    let s = setup();
    let wei: u128 = 250_000_000_000_000_000;
    let key = order_key("ord_native");
    let deposit = deposit_call(&key, &s.seller, None, Amount::from(wei));
    assert_reverted(
        s.anvil.try_call(s.buyer, s.escrow, &deposit, wei - 1),
        "BadDeposit()",
    );
    let tx = s
        .anvil
        .try_call(s.buyer, s.escrow, &deposit, wei)
        .expect("deposit");
    assert!(matches!(
        s.check(&s.expected("ord_native", tx, None, wei)),
        Ok(PaymentStatus::Confirmed(_))
    ));
    s.anvil
        .try_call(s.buyer, s.escrow, &dispute_call(&key, &[1; 32]), 0)
        .unwrap();
    let before = s.anvil.balance(s.buyer);
    s.anvil
        .try_call(
            s.arbiter,
            s.escrow,
            &resolve_call(&key, Amount::from(wei), &[2; 32]),
            0,
        )
        .expect("full refund");
    assert_eq!(
        s.anvil.balance(s.buyer),
        before.checked_add(Amount::from(wei)).unwrap()
    );
    assert_eq!(s.anvil.balance(s.escrow), Amount::ZERO);

    // A dispute the arbiter leaves undecided.
    let lapse = order_key("ord_lapse");
    s.anvil
        .try_call(
            s.buyer,
            s.escrow,
            &deposit_call(&lapse, &s.seller, None, Amount::from(wei)),
            wei,
        )
        .unwrap();
    s.anvil
        .try_call(s.buyer, s.escrow, &dispute_call(&lapse, &[3; 32]), 0)
        .unwrap();
    s.anvil.increase_time(ARBITRATION - 60);
    assert_reverted(
        s.anvil
            .try_call(s.stranger, s.escrow, &release_call(&lapse), 0),
        "WindowOpen()",
    );
    s.anvil.increase_time(120);
    let seller_before = s.anvil.balance(s.seller);
    s.anvil
        .try_call(s.stranger, s.escrow, &release_call(&lapse), 0)
        .expect("the lapsed dispute is released");
    assert_eq!(
        s.anvil.balance(s.seller),
        seller_before.checked_add(Amount::from(wei)).unwrap()
    );
    assert_eq!(s.deal("ord_lapse").state, DealState::Released);
}

// ------------------------------------------------------- through the market

use common::listings_fixtures::audit_actions;
use common::orders_fixtures::{
    buyer_with_key, native_rail, order, sale, sha256_hex, token_rail, Buyer, Sale,
};
use common::{Db, TestServer};
use sealstream_core::access::{access_entry, grant_entry, AccessFileBuilder, Buyer as CoreBuyer};
use sealstream_core::chunk::ChunkKey;
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo};
use sealstream_core::keys::MachineSigningKey;
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::json;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// A market verifying payments on `s.anvil` with `s.escrow` as its escrow
/// there and dev account 4 (the contract's arbiter) as its arbiter key;
/// its own jobs wait an hour, so the tests drive the escrow job.
fn market(db: Db, s: &Setup, dir: &tempfile::TempDir) -> TestServer {
    let key_file = dir.path().join("arbiter.key");
    s.anvil.account(4).write_key_file(&key_file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (url, escrow) = (s.anvil.url.clone(), s.escrow.to_string());
    TestServer::start_with(db, move |c| {
        c.evm_rpc.insert(BASE_CHAIN_ID, url);
        c.confirmations = Some(1);
        c.payment_poll = HOUR;
        c.escrow_contracts.insert(BASE_CHAIN_ID, escrow);
        c.escrow_arbiter_key_file = Some(key_file);
        c.escrow_sweep = HOUR;
    })
}

fn escrowed(mut rail: Value) -> Value {
    rail["escrow"] = json!(true);
    rail
}

/// The buyer (dev account 1) signed in.
fn paying_buyer(server: &TestServer, s: &Setup) -> Buyer {
    let hex = s.anvil.account(1).private_key.trim_start_matches("0x");
    buyer_with_key(server, MachineSigningKey::from_hex(hex, "dev key").unwrap())
}

/// Deposits the order's payment as its instructions say, posts the proof
/// and asserts that the order is paid.
fn pay_into_escrow(server: &TestServer, s: &Setup, order: &Value) -> TxHash {
    let p = &order["payment"];
    assert_eq!(p["escrow"], s.escrow.to_string(), "{p}");
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        p["escrowOrderKey"],
        format!("0x{}", hex::encode(order_key(id)))
    );
    let amount: u128 = p["amount"].as_str().unwrap().parse().unwrap();
    let token = match p["token"].as_str() {
        Some("native") | None => None,
        Some(t) => Some(Address::parse(t, "token").unwrap()),
    };
    let data = deposit_call(
        &order_key(id),
        &s.seller,
        token.as_ref(),
        Amount::from(amount),
    );
    let tx = match token {
        Some(t) => {
            s.anvil
                .try_call(
                    s.buyer,
                    t,
                    &approve_call(&s.escrow, Amount::from(amount)),
                    0,
                )
                .unwrap();
            s.anvil.try_call(s.buyer, s.escrow, &data, 0).unwrap()
        }
        None => s.anvil.try_call(s.buyer, s.escrow, &data, amount).unwrap(),
    };
    let proof = json!({
        "txHash": tx.to_string(),
        "orderId": id,
        "chain": BASE_CHAIN_ID.to_string(),
        "payerAddress": s.buyer.to_string(),
        "payeeAddress": p["payTo"],
        "amount": p["amountDisplay"],
        "tokenAddress": token.map(|t| t.to_string()),
    });
    let (status, body) = server.send(
        "POST",
        &format!("/v1/orders/{id}/payment-proof"),
        None,
        &proof,
    );
    assert_eq!(
        (status, body["accepted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    tx
}

fn escrow_view(server: &TestServer, token: &str, id: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/orders/{id}/dispute"), Some(token));
    assert_eq!(status, 200, "{body}");
    body
}

fn sweep(server: &TestServer) {
    common::block_on(sealstream_market::escrow::sweep_once(&server.state)).expect("a sweep");
}

/// Sweeps until the escrow of `id` is `state` (the server's own job, woken
/// by a dispute, may get there first), at most a few passes.
fn sweep_until(server: &TestServer, token: &str, id: &str, state: &str) -> Value {
    for _ in 0..5 {
        sweep(server);
        let view = escrow_view(server, token, id);
        if view["state"] == state {
            return view;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "the escrow of {id} never became {state}: {}",
        escrow_view(server, token, id)
    );
}

/// An escrowed token order is paid by its deposit, held through the
/// window (the job leaves it), and released to the seller by the job once
/// the chain's clock passes the window.
fn an_escrowed_payment_is_released_after_the_window(db: Db) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let server = market(db, &s, &dir);
    let rail = escrowed(token_rail(
        BASE_CHAIN_ID,
        &s.token.to_string(),
        &s.seller.to_string(),
    ));
    let sale = sale(&server, 2, &PRICE.to_string(), rail);
    let alice = paying_buyer(&server, &s);
    let o = order(&server, &alice, &sale.listing_id);
    let id = o["id"].as_str().unwrap();
    pay_into_escrow(&server, &s, &o);
    let view = escrow_view(&server, &alice.token, id);
    assert_eq!(view["state"], "held", "{view}");
    assert_eq!(view["amount"], PRICE.to_string());
    assert_eq!(view["releaseAfter"], s.deal(id).release_after);
    // The seller sees it too; a stranger does not.
    assert_eq!(escrow_view(&server, &sale.owner, id)["state"], "held");
    let stranger = server.session_for(&common::world::new_did(), &[Role::Buyer]);
    let (status, _) = server.get(&format!("/v1/orders/{id}/dispute"), Some(&stranger));
    assert_eq!(status, 404);

    sweep(&server);
    assert_eq!(escrow_view(&server, &alice.token, id)["state"], "held");
    assert_eq!(s.tokens(s.escrow), Amount::from(PRICE));

    let seller_before = s.tokens(s.seller);
    s.anvil.increase_time(WINDOW + 1);
    let view = sweep_until(&server, &alice.token, id, "released");
    assert_eq!(view["toSeller"], PRICE.to_string());
    assert!(view["settleTx"].is_string(), "{view}");
    assert_eq!(
        s.tokens(s.seller),
        seller_before.checked_add(Amount::from(PRICE)).unwrap()
    );
    assert_eq!(s.deal(id).state, DealState::Released);
    assert!(audit_actions(&server, id).contains(&"escrow.release".to_string()));
    // Too late to dispute.
    let (status, body) = server.send(
        "POST",
        &format!("/v1/orders/{id}/dispute"),
        Some(&alice.token),
        &json!({}),
    );
    assert!(status == 409 || status == 400, "{status} {body}");
}

/// The seller's grant for `buyer`: every chunk key sealed to the buyer,
/// except chunk `bad`'s, replaced by a key of nothing (`None`: all good).
fn upload_grant(server: &TestServer, sale: &Sale, buyer: &Buyer, id: &str, bad: Option<usize>) {
    let key = buyer.recipient.public_key().to_hex();
    let core = CoreBuyer::new(&buyer.did, &key).unwrap();
    let mut builder = AccessFileBuilder::new(&core, 512_000).unwrap();
    let mut files = Vec::new();
    for (i, c) in sale.chunks.iter().enumerate() {
        let entry = if Some(i) == bad {
            access_entry(&c.envelope, &ChunkKey::generate(), &core)
        } else {
            grant_entry(&c.envelope, &sale.owner_recipient, &core).unwrap()
        };
        files.extend(builder.push(entry));
    }
    files.extend(builder.finish());
    let files: Vec<Value> = files
        .iter()
        .map(|f| serde_json::from_slice(&f.to_bytes()).unwrap())
        .collect();
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/orders/{id}/grant"),
        Some(&sale.owner),
        &json!({ "files": files }),
    );
    assert_eq!(status, 200, "{body}");
}

/// Decrypt-failure evidence of chunk `i` of `sale` with the entry the
/// market granted (read back from the release package's access file).
fn decrypt_evidence(server: &TestServer, sale: &Sale, buyer: &Buyer, id: &str, i: usize) -> Value {
    let mut b = DatasetBuilder::new();
    for c in &sale.chunks {
        b.push(&c.envelope).unwrap();
    }
    let mut manifest = b
        .finish(DatasetInfo {
            topic: Some(sale.topic.clone()),
            source_hash: sha256_hex(&sale.plaintexts.concat()),
            ..DatasetInfo::default()
        })
        .unwrap();
    manifest.sign_eip191(&sale.machine.key).unwrap();
    manifest.sign_ed25519(&sale.machine.chain_key).unwrap();
    let chunk = &sale.chunks[i];
    // The entry as granted: from the grant the market stores.
    let (status, grant) = server.get(&format!("/v1/orders/{id}/grant"), Some(&buyer.token));
    assert_eq!(status, 200, "{grant}");
    let name = grant["files"][0].as_str().unwrap();
    let text = sealstream_testkit::http::send(server.request(
        "GET",
        &format!("/v1/orders/{id}/release/{name}"),
        Some(&buyer.token),
    ))
    .ok()
    .text();
    let file: Value = serde_json::from_str(&text).unwrap();
    let entry = file["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["chunkId"] == chunk.envelope.chunk_id)
        .unwrap()
        .clone();
    json!({
        "schemaVersion": "sealstream.dispute-evidence.v1",
        "orderId": id,
        "kind": "decrypt-failure",
        "dataset": serde_json::from_str::<Value>(&manifest.to_pretty_json()).unwrap(),
        "envelope": serde_json::from_str::<Value>(&chunk.envelope.to_pretty_json()).unwrap(),
        "ciphertextHex": hex::encode(&chunk.ciphertext),
        "access": entry,
        "buyerSecretKeyHex": buyer.recipient.to_hex_secret().to_string(),
    })
}

/// Posts `evidence` for `id` as the buyer, then sends the on-chain dispute
/// with the hash the market recorded; the market's view.
fn dispute(server: &TestServer, s: &Setup, buyer: &Buyer, id: &str, evidence: &Value) -> Value {
    let (status, view) = server.send(
        "POST",
        &format!("/v1/orders/{id}/dispute"),
        Some(&buyer.token),
        evidence,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "disputed", "{view}");
    let parsed: sealstream_api::disputes::DisputeEvidence =
        serde_json::from_value(evidence.clone()).unwrap();
    let hash = sealstream_api::disputes::evidence_hash(&parsed);
    assert_eq!(view["evidenceHash"], hash);
    let mut word = [0u8; 32];
    hex::decode_to_slice(&hash[2..], &mut word).unwrap();
    s.anvil
        .try_call(s.buyer, s.escrow, &dispute_call(&order_key(id), &word), 0)
        .expect("the buyer disputes on chain");
    view
}

/// A dispute with valid machine-checkable evidence (the granted key of a
/// chunk does not decrypt it) is refunded in full by the job: the buyer
/// gets back exactly what was deposited.
fn valid_evidence_is_refunded_in_full(db: Db) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let server = market(db, &s, &dir);
    let wei: u128 = 250_000_000_000_000_000;
    let rail = escrowed(native_rail(BASE_CHAIN_ID, &s.seller.to_string()));
    let sale = sale(&server, 3, &wei.to_string(), rail);
    let alice = paying_buyer(&server, &s);
    let o = order(&server, &alice, &sale.listing_id);
    let id = o["id"].as_str().unwrap();
    pay_into_escrow(&server, &s, &o);
    upload_grant(&server, &sale, &alice, id, Some(1));

    // Evidence about another order is refused before anything is stored.
    let mut evidence = decrypt_evidence(&server, &sale, &alice, id, 1);
    let mut elsewhere = evidence.clone();
    elsewhere["orderId"] = json!("ord_other");
    let (status, body) = server.send(
        "POST",
        &format!("/v1/orders/{id}/dispute"),
        Some(&alice.token),
        &elsewhere,
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("orderId")),
        "{body}"
    );
    // Nor may the seller dispute.
    let (status, _) = server.send(
        "POST",
        &format!("/v1/orders/{id}/dispute"),
        Some(&sale.owner),
        &evidence,
    );
    assert_eq!(status, 404);

    evidence["statement"] = json!("chunk 1 does not open");
    let view = dispute(&server, &s, &alice, id, &evidence);
    assert_eq!(view["evidenceValid"], true, "{view}");
    let view = sweep_until(&server, &alice.token, id, "resolved");
    assert_eq!(view["toBuyer"], wei.to_string(), "{view}");
    assert_eq!(view["toSeller"], "0");
    // The refund's block: the buyer's balance grew by exactly the deposit
    // (the market's arbiter paid the gas).
    let settle = TxHash::parse(view["settleTx"].as_str().unwrap(), "settleTx").unwrap();
    let block = u64::from_str_radix(
        s.anvil.receipt(&settle).unwrap()["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(
        s.anvil.balance_at(s.buyer, block),
        s.anvil
            .balance_at(s.buyer, block - 1)
            .checked_add(Amount::from(wei))
            .unwrap(),
        "the buyer got exactly the deposit back"
    );
    assert_eq!(s.anvil.balance(s.escrow), Amount::ZERO);
    assert_eq!(s.deal(id).state, DealState::Resolved);
    let actions = audit_actions(&server, id);
    for a in ["escrow.dispute", "escrow.resolve"] {
        assert!(actions.contains(&a.to_string()), "{actions:?}");
    }
}

/// Evidence that shows no fault (the chunk decrypts) is recorded as not
/// valid and left disputed; only an arbiter splits it, and the split pays
/// both parties exactly.
fn invalid_evidence_waits_for_the_arbiters_split(db: Db) {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let server = market(db, &s, &dir);
    let rail = escrowed(token_rail(
        BASE_CHAIN_ID,
        &s.token.to_string(),
        &s.seller.to_string(),
    ));
    let sale = sale(&server, 2, &PRICE.to_string(), rail);
    let alice = paying_buyer(&server, &s);
    let o = order(&server, &alice, &sale.listing_id);
    let id = o["id"].as_str().unwrap();
    pay_into_escrow(&server, &s, &o);
    upload_grant(&server, &sale, &alice, id, None);

    let evidence = decrypt_evidence(&server, &sale, &alice, id, 0);
    let view = dispute(&server, &s, &alice, id, &evidence);
    assert_eq!(view["evidenceValid"], false, "{view}");
    assert!(
        view["evidenceReason"]
            .as_str()
            .unwrap()
            .contains("decrypts"),
        "{view}"
    );
    sweep(&server);
    sweep(&server);
    let view = escrow_view(&server, &alice.token, id);
    assert_eq!(view["state"], "disputed");
    // The view follows the chain: the arbitration deadline.
    assert_eq!(view["releaseAfter"], s.deal(id).release_after, "{view}");
    assert!(
        view["releaseAfter"].as_u64().unwrap() >= s.anvil.latest_timestamp() + ARBITRATION - 60
    );
    assert_eq!(s.deal(id).state, DealState::Disputed);
    assert_eq!(s.tokens(s.escrow), Amount::from(PRICE));

    let path = format!("/v1/orders/{id}/dispute/resolve");
    let split = json!({"toBuyer": "300000"});
    for token in [&alice.token, &sale.owner] {
        let (status, body) = server.send("POST", &path, Some(token), &split);
        assert_eq!(status, 403, "{body}");
    }
    // An admin makes someone an arbiter through the role-grant route.
    let admin = server.session_for(&common::world::new_did(), &[Role::Admin]);
    let arbiter_key = MachineSigningKey::generate();
    let arbiter_did = sealstream_core::identity::Did::of_key(&arbiter_key).to_string();
    let arbiter = server.sign_in(&arbiter_key);
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/admin/principals/{arbiter_did}/roles/arbiter"),
        Some(&admin),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.send(
        "POST",
        &path,
        Some(&arbiter),
        &json!({"toBuyer": "1000001"}),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("toBuyer")),
        "{body}"
    );
    let (buyer_before, seller_before) = (s.tokens(s.buyer), s.tokens(s.seller));
    let (status, view) = server.send("POST", &path, Some(&arbiter), &split);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "resolved");
    assert_eq!(
        (view["toBuyer"].as_str(), view["toSeller"].as_str()),
        (Some("300000"), Some("700000"))
    );
    assert_eq!(
        s.tokens(s.buyer),
        buyer_before.checked_add(Amount::from(300_000u64)).unwrap()
    );
    assert_eq!(
        s.tokens(s.seller),
        seller_before.checked_add(Amount::from(700_000u64)).unwrap()
    );
    assert_eq!(s.tokens(s.escrow), Amount::ZERO);
    // Decided once.
    let (status, _) = server.send("POST", &path, Some(&arbiter), &split);
    assert_eq!(status, 409);
}

/// A listing may ask for escrow only on a chain the market has an escrow
/// on.
fn escrow_needs_a_contract_on_the_chain(db: Db) {
    let s = setup();
    let url = s.anvil.url.clone();
    let server = TestServer::start_with(db, move |c| {
        c.evm_rpc.insert(BASE_CHAIN_ID, url);
    });
    let plain = sale(
        &server,
        1,
        "1",
        native_rail(BASE_CHAIN_ID, &s.seller.to_string()),
    );
    let body = json!({
        "datasetId": plain.dataset_id,
        "title": "T",
        "description": "Escrowed.",
        "license": {"spdx": "CC-BY-4.0", "use": "research"},
        "price": "1",
        "rail": escrowed(native_rail(BASE_CHAIN_ID, &s.seller.to_string())),
        "delivery": ["api"],
    });
    let (status, reply) = server.send("POST", "/v1/listings", Some(&plain.owner), &body);
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (422, Some("rail.escrow")),
        "{reply}"
    );
}

/// The invoice rail's escrow: the same states kept by the market alone,
/// with the server's clock (no chain): held after the seller marks the
/// order paid, released once the window has passed, a valid dispute
/// recorded as a full refund, an invalid one left to an arbiter's split.
/// The window is an hour, so no step of the test races it; the release is
/// tested by moving the first escrow's end into the past.
fn invoice_escrows_hold_and_settle_off_chain(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.invoice_dispute_window = HOUR;
        c.invoice_arbitration_period = 2 * HOUR;
        c.escrow_sweep = HOUR;
    });
    let sale = sale(
        &server,
        3,
        "100",
        escrowed(common::orders_fixtures::invoice_rail()),
    );
    let alice = common::orders_fixtures::buyer(&server);
    let paid = |reference: &str| {
        let o = order(&server, &alice, &sale.listing_id);
        let id = o["id"].as_str().unwrap().to_string();
        let (status, body) =
            common::orders_fixtures::mark_paid(&server, &id, &sale.owner, reference);
        assert_eq!(status, 200, "{body}");
        id
    };
    let started = sealstream_testkit::unix_now();
    let first = paid("INV-1");
    let paid_by = sealstream_testkit::unix_now();
    let view = escrow_view(&server, &alice.token, &first);
    assert_eq!(view["state"], "held", "{view}");
    assert!(view["contract"].is_null());
    let release_after = view["releaseAfter"].as_u64().unwrap();
    assert!(
        (started + 3_600..=paid_by + 3_600).contains(&release_after),
        "{view}"
    );

    // A dispute with valid evidence: refunded in full (recorded; the
    // seller refunds the invoice).
    let refunded = paid("INV-2");
    upload_grant(&server, &sale, &alice, &refunded, Some(2));
    let evidence = decrypt_evidence(&server, &sale, &alice, &refunded, 2);
    let (status, view) = server.send(
        "POST",
        &format!("/v1/orders/{refunded}/dispute"),
        Some(&alice.token),
        &evidence,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["evidenceValid"], true, "{view}");
    let view = sweep_until(&server, &alice.token, &refunded, "resolved");
    assert_eq!(
        (view["toBuyer"].as_str(), view["toSeller"].as_str()),
        (Some("100"), Some("0"))
    );
    assert!(view["settleTx"].is_null());

    // Evidence of no fault: disputed, past the window, until an arbiter
    // splits it.
    let split = paid("INV-3");
    upload_grant(&server, &sale, &alice, &split, None);
    let evidence = decrypt_evidence(&server, &sale, &alice, &split, 0);
    let (status, view) = server.send(
        "POST",
        &format!("/v1/orders/{split}/dispute"),
        Some(&alice.token),
        &evidence,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["evidenceValid"], false, "{view}");
    assert!(
        view["releaseAfter"].as_u64().unwrap() >= started + 2 * 3_600,
        "{view}"
    );

    // The first one is released once its window has passed (the server's
    // clock: its end is moved into the past); the disputed one stays.
    common::block_on(async {
        sqlx::query("UPDATE escrows SET release_after = $1 WHERE order_id = $2")
            .bind(started as i64 - 1)
            .bind(&first)
            .execute(server.store.pool())
            .await
            .unwrap();
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        sweep(&server);
        if escrow_view(&server, &alice.token, &first)["state"] == "released" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never released");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let view = escrow_view(&server, &alice.token, &first);
    assert_eq!(view["toSeller"], "100", "{view}");
    assert_eq!(
        escrow_view(&server, &alice.token, &split)["state"],
        "disputed"
    );
    let arbiter = server.session_for(&common::world::new_did(), &[Role::Arbiter]);
    let (status, view) = server.send(
        "POST",
        &format!("/v1/orders/{split}/dispute/resolve"),
        Some(&arbiter),
        &json!({"toBuyer": "40"}),
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            view["state"].as_str(),
            view["toBuyer"].as_str(),
            view["toSeller"].as_str()
        ),
        (Some("resolved"), Some("40"), Some("60"))
    );
    for id in [&first, &refunded, &split] {
        let actions = audit_actions(&server, id);
        assert!(
            actions
                .iter()
                .any(|a| a == "escrow.release" || a == "escrow.resolve"),
            "{id}: {actions:?}"
        );
    }
}

on_both_databases!(
    an_escrowed_payment_is_released_after_the_window,
    valid_evidence_is_refunded_in_full,
    invalid_evidence_waits_for_the_arbiters_split,
    escrow_needs_a_contract_on_the_chain,
    invoice_escrows_hold_and_settle_off_chain,
);
