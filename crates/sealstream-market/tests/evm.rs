//! The payment check against a real EVM node: each test starts its own
//! anvil, pays (or mispays) from its dev accounts, and asks
//! `EvmRpc::check_payment` about the transaction.

mod common;

use common::anvil::{Anvil, DevAccount, BASE_CHAIN_ID};
use common::block_on;
use sealstream_market::evm::{
    Address, Amount, EvmRpc, ExpectedPayment, PaymentError, PaymentStatus, RpcErrorKind, TxHash,
};
use serde_json::{json, Value};

/// 10^18 wei.
const ETH: u128 = 1_000_000_000_000_000_000;

fn expected(
    tx_hash: TxHash,
    payer: Address,
    pay_to: Address,
    token: Option<Address>,
    min_amount: u128,
) -> ExpectedPayment {
    ExpectedPayment {
        chain_id: BASE_CHAIN_ID,
        tx_hash,
        payer,
        pay_to,
        token,
        min_amount: Amount::from(min_amount),
        confirmations: 1,
        not_before: None,
        escrow: None,
    }
}

fn check(anvil: &Anvil, expected: &ExpectedPayment) -> Result<PaymentStatus, PaymentError> {
    let rpc = EvmRpc::new(&anvil.url).expect("anvil's URL");
    block_on(rpc.check_payment(expected))
}

fn confirmed(anvil: &Anvil, expected: &ExpectedPayment) -> sealstream_market::evm::VerifiedPayment {
    match check(anvil, expected) {
        Ok(PaymentStatus::Confirmed(v)) => v,
        other => panic!("expected a confirmed payment, got {other:?}"),
    }
}

fn refused(anvil: &Anvil, expected: &ExpectedPayment) -> PaymentError {
    match check(anvil, expected) {
        Err(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Dev accounts 1, 2 and 3: the buyer, the seller and someone else.
fn parties(anvil: &Anvil) -> (Address, Address, Address) {
    (
        anvil.account(1).address,
        anvil.account(2).address,
        anvil.account(3).address,
    )
}

/// Asserts what a confirmed payment `v` of `amount` in `token` (the native
/// coin when `None`) by transaction `hash`, mined in one block, reports.
fn assert_verified(
    anvil: &Anvil,
    v: &sealstream_market::evm::VerifiedPayment,
    hash: TxHash,
    (buyer, seller): (Address, Address),
    amount: Amount,
    token: Option<Address>,
) {
    let (block_number, block_hash) = mined_in(anvil, &hash);
    assert_eq!(v.tx_hash, hash);
    assert_eq!(v.block_number, block_number);
    assert_eq!(v.block_hash, block_hash);
    assert_eq!(v.from, buyer);
    assert_eq!(v.to, seller);
    assert_eq!(v.amount, amount);
    assert_eq!(v.token, token);
    assert_eq!(v.confirmations, 1);
}

/// The receipt's block number and hash.
fn mined_in(anvil: &Anvil, hash: &TxHash) -> (u64, String) {
    let receipt = anvil.receipt(hash).expect("mined");
    let number = receipt["blockNumber"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x");
    (
        u64::from_str_radix(number, 16).unwrap(),
        receipt["blockHash"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_native_payment_is_confirmed() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let hash = anvil.send_native(buyer, seller, ETH / 2);

    // Paying more than asked is fine; the amount paid is reported.
    let v = confirmed(&anvil, &expected(hash, buyer, seller, None, ETH * 4 / 10));
    assert_verified(
        &anvil,
        &v,
        hash,
        (buyer, seller),
        Amount::from(ETH / 2),
        None,
    );
    assert_eq!(v.amount.to_string(), "500000000000000000");

    // Exactly the amount asked is enough too.
    assert!(matches!(
        check(&anvil, &expected(hash, buyer, seller, None, ETH / 2)),
        Ok(PaymentStatus::Confirmed(_))
    ));
}

#[test]
fn a_token_payment_is_confirmed() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let token = anvil.deploy_token(buyer);
    let hash = anvil.send_token(token, buyer, seller, 500_000);
    assert_eq!(anvil.token_balance(token, seller), Amount::from(500_000u64));

    let v = confirmed(&anvil, &expected(hash, buyer, seller, Some(token), 500_000));
    let amount = Amount::from(500_000u64);
    assert_verified(&anvil, &v, hash, (buyer, seller), amount, Some(token));
}

#[test]
fn a_native_underpayment_is_refused() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let hash = anvil.send_native(buyer, seller, ETH / 2 - 1);
    let e = refused(&anvil, &expected(hash, buyer, seller, None, ETH / 2));
    assert_eq!(e.field(), "amount");
    match e {
        PaymentError::Underpaid { paid, required } => {
            assert_eq!(paid, Amount::from(ETH / 2 - 1));
            assert_eq!(required, Amount::from(ETH / 2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_token_underpayment_is_refused() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let token = anvil.deploy_token(buyer);
    let hash = anvil.send_token(token, buyer, seller, 499_999);
    let e = refused(&anvil, &expected(hash, buyer, seller, Some(token), 500_000));
    assert_eq!(e.field(), "amount");
    assert!(
        matches!(e, PaymentError::Underpaid { paid, required }
            if paid == Amount::from(499_999u64) && required == Amount::from(500_000u64)),
        "{e:?}"
    );
}

#[test]
fn a_payment_to_someone_else_is_refused() {
    let anvil = Anvil::start();
    let (buyer, seller, other) = parties(&anvil);
    let token = anvil.deploy_token(buyer);
    // (what, transaction, token expected, amount expected)
    for (what, hash, expected_token, amount) in [
        (
            "native",
            anvil.send_native(buyer, other, ETH),
            None,
            ETH / 2,
        ),
        (
            "token",
            anvil.send_token(token, buyer, other, 500_000),
            Some(token),
            500_000,
        ),
    ] {
        let e = refused(
            &anvil,
            &expected(hash, buyer, seller, expected_token, amount),
        );
        assert_eq!(e.field(), "payeeAddress", "{what}");
        assert!(
            matches!(e, PaymentError::WrongRecipient { expected, found: Some(found) }
                if expected == seller && found == other),
            "{what}: {e:?}"
        );
    }
}

#[test]
fn a_payment_sent_by_someone_else_is_refused() {
    let anvil = Anvil::start();
    let (buyer, seller, other) = parties(&anvil);
    let hash = anvil.send_native(other, seller, ETH);
    let e = refused(&anvil, &expected(hash, buyer, seller, None, ETH / 2));
    assert_eq!(e.field(), "payerAddress");
    assert!(
        matches!(e, PaymentError::WrongPayer { expected, found }
            if expected == buyer && found == other),
        "{e:?}"
    );
    // The same for a token payment.
    let token = anvil.deploy_token(other);
    let hash = anvil.send_token(token, other, seller, 500_000);
    let e = refused(&anvil, &expected(hash, buyer, seller, Some(token), 500_000));
    assert!(matches!(e, PaymentError::WrongPayer { .. }), "{e:?}");
}

#[test]
fn a_reverted_token_transfer_is_refused() {
    let anvil = Anvil::start();
    let (owner, buyer, seller) = (
        anvil.account(0).address,
        anvil.account(1).address,
        anvil.account(2).address,
    );
    let token = anvil.deploy_token(owner);
    anvil.send_token(token, owner, buyer, 100);
    // More than the buyer holds: with explicit gas (no estimate) it is
    // mined, and fails.
    let hash = anvil.send_raw(json!({
        "from": buyer.to_string(),
        "to": token.to_string(),
        "data": Anvil::transfer_call(seller, 500_000),
        "gas": "0x30000",
    }));
    assert_eq!(anvil.receipt(&hash).expect("mined")["status"], "0x0");
    let e = refused(&anvil, &expected(hash, buyer, seller, Some(token), 500_000));
    assert!(matches!(e, PaymentError::Reverted), "{e:?}");
    assert_eq!(e.field(), "txHash");
    assert!(!e.is_transient());
}

#[test]
fn a_payment_in_another_currency_is_refused() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let token = anvil.deploy_token(buyer);
    let other_token = anvil.deploy_token(buyer);

    // Native expected, a token transfer sent.
    let hash = anvil.send_token(token, buyer, seller, 500_000);
    let e = refused(&anvil, &expected(hash, buyer, seller, None, 1));
    assert_eq!(e.field(), "tokenAddress");
    assert!(
        matches!(e, PaymentError::WrongToken { expected: None, found: Some(t) } if t == token),
        "{e:?}"
    );

    // A token expected, the native coin sent to the payee.
    let hash = anvil.send_native(buyer, seller, ETH);
    let e = refused(&anvil, &expected(hash, buyer, seller, Some(token), 1));
    assert!(
        matches!(e, PaymentError::WrongToken { expected: Some(t), found: None } if t == token),
        "{e:?}"
    );

    // A token expected, another token sent.
    let hash = anvil.send_token(other_token, buyer, seller, 500_000);
    let e = refused(&anvil, &expected(hash, buyer, seller, Some(token), 1));
    assert!(
        matches!(e, PaymentError::WrongToken { expected: Some(t), found: Some(o) }
            if t == token && o == other_token),
        "{e:?}"
    );
}

#[test]
fn a_transaction_that_moves_nothing_is_refused() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);

    // Native, value 0.
    let hash = anvil.send_native(buyer, seller, 0);
    let e = refused(&anvil, &expected(hash, buyer, seller, None, 0));
    assert!(matches!(e, PaymentError::NothingPaid), "{e:?}");
    assert_eq!(e.field(), "amount");

    // A call of the token that transfers nothing: approve(seller, 10^6).
    let token = anvil.deploy_token(buyer);
    let mut data = String::from("0x095ea7b3");
    data.push_str(&format!("{:0>64}", hex::encode(seller.0)));
    data.push_str(&format!("{:064x}", 1_000_000));
    let hash = anvil.send_raw(json!({
        "from": buyer.to_string(),
        "to": token.to_string(),
        "data": data,
    }));
    let e = refused(&anvil, &expected(hash, buyer, seller, Some(token), 1));
    assert!(matches!(e, PaymentError::NothingPaid), "{e:?}");
}

#[test]
fn a_payment_is_pending_until_it_has_the_confirmations_required() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let hash = anvil.send_native(buyer, seller, ETH);
    let expect = ExpectedPayment {
        confirmations: 3,
        ..expected(hash, buyer, seller, None, ETH)
    };
    assert_eq!(
        check(&anvil, &expect).unwrap(),
        PaymentStatus::Pending {
            confirmations: 1,
            required: 3
        }
    );
    anvil.mine(1);
    assert_eq!(
        check(&anvil, &expect).unwrap(),
        PaymentStatus::Pending {
            confirmations: 2,
            required: 3
        }
    );
    anvil.mine(1);
    let v = confirmed(&anvil, &expect);
    assert_eq!(v.confirmations, 3);
    assert_eq!(v.block_number, anvil.block_number() - 2);
}

#[test]
fn a_transaction_not_yet_mined_is_pending_and_checked_once_mined() {
    let anvil = Anvil::start();
    let (buyer, seller, other) = parties(&anvil);
    anvil.set_automine(false);
    let hash = anvil.send_native(buyer, seller, ETH);
    assert!(anvil.receipt(&hash).is_none(), "not mined yet");
    assert_eq!(
        check(&anvil, &expected(hash, buyer, seller, None, ETH)).unwrap(),
        PaymentStatus::Pending {
            confirmations: 0,
            required: 1
        }
    );
    // What the transaction commits to is checked before it is mined.
    let e = refused(&anvil, &expected(hash, buyer, other, None, ETH));
    assert!(matches!(e, PaymentError::WrongRecipient { .. }), "{e:?}");
    let e = refused(&anvil, &expected(hash, buyer, seller, None, ETH + 1));
    assert!(matches!(e, PaymentError::Underpaid { .. }), "{e:?}");

    anvil.mine(1);
    let v = confirmed(&anvil, &expected(hash, buyer, seller, None, ETH));
    assert_eq!(v.confirmations, 1);
}

/// An unknown hash is not refused: a transaction just sent may not have
/// reached this node yet. It is reported as unknown (not as pending, since
/// issue 14): the caller decides how long to wait, and drops it after.
#[test]
fn an_unknown_transaction_is_pending() {
    let anvil = Anvil::start();
    let (buyer, seller, _) = parties(&anvil);
    let hash = TxHash([0x42; 32]);
    let expect = ExpectedPayment {
        confirmations: 2,
        ..expected(hash, buyer, seller, None, ETH)
    };
    assert_eq!(
        check(&anvil, &expect).unwrap(),
        PaymentStatus::Unknown { required: 2 }
    );
}

/// Issue 14, item 9: with `not_before`, a transaction mined in a block
/// older than it is refused (the block's timestamp decides), one mined at
/// or after it is confirmed, with its block's time.
#[test]
fn a_payment_mined_before_not_before_is_refused() {
    let anvil = Anvil::start_in_the_past(3600);
    let (buyer, seller, _) = parties(&anvil);
    let hash = anvil.send_native(buyer, seller, ETH);
    let mined_at = anvil.mined_at(&hash);
    let late = ExpectedPayment {
        not_before: Some(mined_at + 1),
        ..expected(hash, buyer, seller, None, ETH)
    };
    let e = refused(&anvil, &late);
    assert_eq!(e.field(), "txHash");
    assert!(
        matches!(e, PaymentError::MinedTooEarly { mined_at: m, not_before: n }
            if m == mined_at && n == mined_at + 1),
        "{e:?}"
    );
    let v = confirmed(
        &anvil,
        &ExpectedPayment {
            not_before: Some(mined_at),
            ..expected(hash, buyer, seller, None, ETH)
        },
    );
    assert_eq!(v.mined_at, Some(mined_at));
    // Without a bound the block is not asked for.
    assert_eq!(
        confirmed(&anvil, &expected(hash, buyer, seller, None, ETH)).mined_at,
        None
    );
}

#[test]
fn a_node_on_another_chain_is_refused() {
    let anvil = Anvil::start_on_chain(1);
    let (buyer, seller, _) = parties(&anvil);
    let hash = anvil.send_native(buyer, seller, ETH);
    let rpc = EvmRpc::new(&anvil.url).unwrap();
    assert_eq!(block_on(rpc.chain_id()).unwrap(), 1);
    let e = refused(&anvil, &expected(hash, buyer, seller, None, ETH));
    assert_eq!(e.field(), "chain");
    assert!(
        matches!(
            e,
            PaymentError::WrongChain {
                node: 1,
                expected: BASE_CHAIN_ID
            }
        ),
        "{e:?}"
    );
}

#[test]
fn an_unreachable_node_is_a_transient_error_that_hides_the_url() {
    let anvil_free = TxHash([1; 32]);
    let someone = Address([7; 20]);
    for url in [
        "http://127.0.0.1:1/secret-key-123?apikey=query-secret",
        // https goes through the TLS stack up to the connection attempt.
        "https://user:userinfo-secret@127.0.0.1:1/secret-key-123",
    ] {
        let rpc = EvmRpc::new(url).unwrap();
        let e = block_on(rpc.check_payment(&ExpectedPayment {
            chain_id: BASE_CHAIN_ID,
            tx_hash: anvil_free,
            payer: someone,
            pay_to: someone,
            token: None,
            min_amount: Amount::from(1u64),
            confirmations: 1,
            not_before: None,
            escrow: None,
        }))
        .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.field(), "chain");
        let PaymentError::Rpc(rpc_error) = &e else {
            panic!("{e:?}")
        };
        match &rpc_error.kind {
            RpcErrorKind::Transport(source) => assert!(source.is_connect(), "{source:?}"),
            other => panic!("{other:?}"),
        }
        // Nothing of the path, query or user info in any rendering.
        let mut rendered = vec![
            e.to_string(),
            format!("{e:?}"),
            format!("{rpc:?}"),
            rpc.to_string(),
        ];
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            rendered.push(s.to_string());
            source = s.source();
        }
        for text in rendered {
            for secret in ["secret-key-123", "query-secret", "userinfo-secret"] {
                assert!(!text.contains(secret), "{secret} shown in {text}");
            }
        }
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    }
}

#[test]
fn the_reference_cli_pays_in_the_form_checked() {
    let anvil = Anvil::start();
    let buyer = anvil.account(1);
    let seller = anvil.account(2).address;
    let seller_text = seller.to_string();

    // Native: 0.5 ETH.
    let (hash, reply) = reference_pays(&anvil, buyer, &seller_text, &["--order-id", "o1"]);
    assert_eq!(reply["payerAddress"], json!(buyer.address.to_string()));
    assert_eq!(reply["payeeAddress"], json!(seller_text));
    let v = confirmed(
        &anvil,
        &expected(hash, buyer.address, seller, None, ETH / 2),
    );
    assert_eq!(v.amount, Amount::from(ETH / 2));

    // ERC-20: 0.5 of a 6-decimal token.
    let token = anvil.deploy_token(buyer.address);
    let token_text = token.to_string();
    let (hash, reply) = reference_pays(
        &anvil,
        buyer,
        &seller_text,
        &[
            "--order-id",
            "o2",
            "--token-address",
            &token_text,
            "--token-decimals",
            "6",
        ],
    );
    assert_eq!(
        reply["tokenAddress"].as_str().map(str::to_lowercase),
        Some(token_text.to_lowercase())
    );
    let v = confirmed(
        &anvil,
        &expected(hash, buyer.address, seller, Some(token), 500_000),
    );
    assert_eq!(v.amount, Amount::from(500_000u64));
    assert_eq!(anvil.token_balance(token, seller), Amount::from(500_000u64));
}

/// `peaqos stream pay` of 0.5 from `buyer` to `seller` with `more`
/// arguments: the transaction, once mined, and the reply.
fn reference_pays(
    anvil: &Anvil,
    buyer: &DevAccount,
    seller: &str,
    more: &[&str],
) -> (TxHash, Value) {
    let mut args = vec!["--seller-address", seller, "--amount", "0.5"];
    args.extend_from_slice(more);
    let reply = pay_reply(&anvil.peaqos_pay(buyer, &args));
    let hash = TxHash::parse(reply["txHash"].as_str().expect("txHash"), "txHash").unwrap();
    anvil.wait_mined(&hash);
    (hash, reply)
}

/// The `--json` reply of a successful `peaqos stream pay`.
fn pay_reply(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "peaqos stream pay failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(reply["chain"], "base");
    assert_eq!(reply["status"], "submitted");
    reply
}
