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
