//! Escrowed payments and disputes (issue 21 part 5; docs/market-design.md,
//! "Escrow").
//!
//! A listing on the EVM rail may ask for escrow (`"escrow": true`,
//! accepted only when the market has an escrow contract on that chain,
//! `--escrow CHAIN_ID=ADDRESS`). The buyer then pays by depositing into
//! `contracts/SealstreamEscrow.sol` under the order's key (keccak256 of the
//! order id); the payment check ([`crate::evm::ExpectedPayment::escrow`])
//! accepts the transaction whose receipt carries the contract's
//! `Deposited` event of that key with the buyer, the listing's pay-to, the
//! token and exactly the amount. The order is paid and granted as any
//! other, and an `escrows` row records the deposit (`record_deposit`).
//!
//! The market's arbiter key (`--escrow-arbiter-key-file`, the contract's
//! `arbiter`) pays the gas of the calls the market makes. Its job
//! ([`sweep_once`], every `--escrow-sweep`) reads each open deal on chain
//! and:
//! - releases it to the seller once its window has passed undisputed (or
//!   a dispute passed its arbitration deadline undecided);
//! - resolves a dispute whose evidence the checker found valid with a full
//!   refund to the buyer;
//! - records deals someone else released or resolved.
//!
//! Disputes ([`routes`]): the buyer posts evidence within the window
//! (`POST /v1/orders/{id}/dispute`), checked at once with the offline code
//! (`sealstream_api::disputes::verify`) and against what the market served
//! (the dataset, the stored ciphertext, the grant); the buyer's CLI also
//! sends `dispute(orderKey, evidenceHash)` on chain. A valid fault is
//! refunded by the job; anything else waits for an arbiter
//! (`POST /v1/orders/{id}/dispute/resolve {toBuyer}`, role `arbiter`) or
//! lapses to the seller at the arbitration deadline.

pub(crate) mod db;
pub mod routes;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::evm::escrow::{deals_call, order_key, release_call, resolve_call, Deal, DealState};
use crate::evm::{Address, Amount, EvmRpc, RpcError, TxHash};
use crate::server::AppState;
use sealstream_core::evm::transaction::{Fees, Transaction};
use sealstream_core::evm::Uint256;
use sealstream_core::keys::MachineSigningKey;

/// Default interval between passes of the escrow job.
pub const DEFAULT_ESCROW_SWEEP: Duration = Duration::from_secs(30);

/// Default dispute window (and arbitration period) of escrowed invoice
/// orders: 7 days.
pub const DEFAULT_INVOICE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The server's clock, Unix seconds (invoice escrows).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Deals the job reads per chain and pass, at most.
const DEALS_PER_SWEEP: usize = 200;

/// The escrow contracts the market uses and its arbiter key.
pub struct Escrows {
    contracts: BTreeMap<u64, Address>,
    arbiter: Option<MachineSigningKey>,
    /// One transaction of the arbiter's at a time (nonces).
    send: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Escrows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escrows")
            .field("contracts", &self.contracts)
            .field("arbiter", &self.arbiter.as_ref().map(|k| k.address()))
            .finish()
    }
}

/// Why the escrow configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EscrowConfigError {
    /// A contract address is not one.
    #[error("--escrow {chain_id}={address}: not an EVM address")]
    Address {
        /// The chain.
        chain_id: u64,
        /// What was given.
        address: String,
    },
    /// An escrow on a chain without `--evm-rpc`.
    #[error("--escrow {0}=…: the chain has no --evm-rpc endpoint")]
    NoRpc(u64),
    /// Escrows without an arbiter key.
    #[error("--escrow needs --escrow-arbiter-key-file (the contracts' arbiter)")]
    NoArbiter,
    /// The key file cannot be read, or others may read it.
    #[error("--escrow-arbiter-key-file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong (never its content).
        reason: String,
    },
}

impl Escrows {
    /// No escrow.
    pub fn none() -> Escrows {
        Escrows {
            contracts: BTreeMap::new(),
            arbiter: None,
            send: tokio::sync::Mutex::new(()),
        }
    }

    /// From the configuration: every contract on a chain the market has an
    /// endpoint for, and the arbiter key read from its file (which only
    /// its owner may read or write).
    pub fn load(config: &crate::server::Config) -> Result<Escrows, EscrowConfigError> {
        let mut contracts = BTreeMap::new();
        for (chain_id, text) in &config.escrow_contracts {
            let address =
                Address::parse(text, "escrow").map_err(|_| EscrowConfigError::Address {
                    chain_id: *chain_id,
                    address: text.clone(),
                })?;
            if !config.evm_rpc.contains_key(chain_id) {
                return Err(EscrowConfigError::NoRpc(*chain_id));
            }
            contracts.insert(*chain_id, address);
        }
        let arbiter = match &config.escrow_arbiter_key_file {
            Some(path) => Some(read_arbiter_key(path)?),
            None if contracts.is_empty() => None,
            None => return Err(EscrowConfigError::NoArbiter),
        };
        Ok(Escrows {
            contracts,
            arbiter,
            send: tokio::sync::Mutex::new(()),
        })
    }

    /// The escrow contract on `chain_id`, if the market has one.
    pub fn contract(&self, chain_id: u64) -> Option<Address> {
        self.contracts.get(&chain_id).copied()
    }

    /// The arbiter's address (the key's), if configured.
    pub fn arbiter_address(&self) -> Option<Address> {
        self.arbiter.as_ref().map(MachineSigningKey::address)
    }

    /// Whether any escrow is configured.
    pub fn is_empty(&self) -> bool {
        self.contracts.is_empty()
    }
}

fn read_arbiter_key(path: &Path) -> Result<MachineSigningKey, EscrowConfigError> {
    let error = |reason: String| EscrowConfigError::Key {
        path: path.display().to_string(),
        reason,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| error(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(error(format!(
                "mode {:o}: others may read it; make it 0600",
                mode & 0o777
            )));
        }
    }
    sealstream_files::keyfile::read_key_file(path, |t| {
        MachineSigningKey::from_hex(t, "arbiter key")
    })
    .map_err(|e| error(e.to_string()))
}

/// Why a call of the escrow contract did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The node could not be asked (or refused: a call that would revert
    /// fails its gas estimate).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// No arbiter key, or no contract or endpoint on the chain.
    #[error("{0}")]
    NotConfigured(String),
    /// Mined, but reverted.
    #[error("transaction {0} reverted")]
    Reverted(TxHash),
    /// Not mined in time (it may still be).
    #[error("transaction {0} was not mined within {1:?}")]
    NotMined(TxHash, Duration),
    /// The lock the replicas send under could not be taken.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How long the job waits for its transaction to be mined.
const MINING_WAIT: Duration = Duration::from_secs(120);

/// The advisory lock key of the arbiter `from`'s transactions on
/// `chain_id`: the first 8 bytes of SHA-256 over a label, the chain and
/// the address.
fn send_lock_key(chain_id: u64, from: &Address) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"sealstream.escrow-send.v1\0")
        .chain_update(chain_id.to_be_bytes())
        .chain_update(from.to_string().to_ascii_lowercase().as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl AppState {
    fn escrow_chain(&self, chain_id: u64) -> Result<(&EvmRpc, Address), SendError> {
        let rpc = self
            .evm
            .get(&chain_id)
            .ok_or_else(|| SendError::NotConfigured(format!("no endpoint for chain {chain_id}")))?;
        let contract = self.escrow.contract(chain_id).ok_or_else(|| {
            SendError::NotConfigured(format!("no escrow contract on chain {chain_id}"))
        })?;
        Ok((rpc, contract))
    }

    /// The deal of `order_id` on `chain_id`'s escrow.
    pub(crate) async fn escrow_deal(
        &self,
        chain_id: u64,
        order_id: &str,
    ) -> Result<Deal, SendError> {
        let (rpc, contract) = self.escrow_chain(chain_id)?;
        let data = rpc
            .eth_call(&contract, &deals_call(&order_key(order_id)))
            .await?;
        Deal::decode(&data).ok_or_else(|| {
            SendError::Rpc(rpc.malformed("eth_call deals", "not a deal (six words)"))
        })
    }

    /// Signs `data` for the escrow on `chain_id` with the arbiter key,
    /// sends it and waits until it is mined with success.
    async fn escrow_send(&self, chain_id: u64, data: Vec<u8>) -> Result<TxHash, SendError> {
        let (rpc, contract) = self.escrow_chain(chain_id)?;
        let key = self
            .escrow
            .arbiter
            .as_ref()
            .ok_or_else(|| SendError::NotConfigured("no arbiter key".into()))?;
        let from = key.address();
        let _one_at_a_time = self.escrow.send.lock().await;
        // One at a time across replicas too (they share the arbiter's
        // nonce): on PostgreSQL an advisory lock, held by a transaction
        // that writes nothing, from the nonce's read until the
        // transaction is mined (or given up), then rolled back.
        let _across_replicas = match self.store.engine() {
            crate::store::Engine::Postgres => {
                let mut tx = self.store.begin_sqlx().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(send_lock_key(chain_id, &from))
                    .execute(&mut *tx)
                    .await?;
                Some(tx)
            }
            crate::store::Engine::Sqlite => None,
        };
        let gas = rpc.estimate_gas(&from, &contract, &data).await?;
        let nonce = rpc.nonce(&from).await?;
        let gas_price = rpc.gas_price().await?;
        let tx = Transaction {
            chain_id,
            nonce,
            // A margin over the price asked, so a base fee rising by a
            // block or two does not strand it.
            fees: Fees::Legacy {
                gas_price: u128::from(gas_price) * 2,
            },
            gas_limit: gas.saturating_mul(5) / 4 + 10_000,
            to: contract,
            value: Uint256::default(),
            data,
        };
        let signed = tx.sign(key);
        let hash = rpc.send_raw_transaction(&signed.raw).await?;
        let deadline = tokio::time::Instant::now() + MINING_WAIT;
        loop {
            match rpc.receipt_status(&hash).await? {
                Some(true) => return Ok(hash),
                Some(false) => return Err(SendError::Reverted(hash)),
                None if tokio::time::Instant::now() >= deadline => {
                    return Err(SendError::NotMined(hash, MINING_WAIT))
                }
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

/// Records the escrow of a just-paid order whose payment was a deposit
/// (`payment` carries `escrow: {contract, orderKey, releaseAfter}`): in
/// the transaction that makes the order paid.
pub(crate) async fn record_deposit(
    tx: &mut crate::store::Tx,
    order: &crate::orders::Order,
    payment: &serde_json::Value,
    now: &str,
) -> ApiResult<()> {
    let Some(escrow) = payment.get("escrow") else {
        return Ok(());
    };
    let corrupt = || ApiError::internal("escrow", "the deposit's record is malformed");
    if let crate::listings::Rail::Invoice { .. } = order.rail {
        let release_after = escrow["releaseAfter"].as_u64().ok_or_else(corrupt)?;
        db::insert_held_invoice(
            tx,
            &order.id,
            &format!("0x{}", hex::encode(order_key(&order.id))),
            &order.amount,
            release_after,
            now,
        )
        .await?;
        return Ok(());
    }
    let chain_id = payment["chainId"].as_u64().ok_or_else(corrupt)?;
    let contract = escrow["contract"].as_str().ok_or_else(corrupt)?;
    let key = escrow["orderKey"].as_str().ok_or_else(corrupt)?;
    let release_after = escrow["releaseAfter"].as_u64().ok_or_else(corrupt)?;
    let deposit_tx = payment["txHash"].as_str().ok_or_else(corrupt)?;
    db::insert_held(
        tx,
        &order.id,
        chain_id,
        contract,
        key,
        &order.amount,
        release_after,
        deposit_tx,
        now,
    )
    .await?;
    Ok(())
}

/// What one pass of the job did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EscrowSweep {
    /// Deals released to their sellers.
    pub released: usize,
    /// Disputes refunded on valid evidence.
    pub refunded: usize,
    /// Deals found settled by someone else, recorded.
    pub recorded: usize,
    /// Calls that failed (retried next pass).
    pub failed: usize,
}

/// One pass of the escrow job over every chain with an escrow.
pub async fn sweep_once(state: &AppState) -> ApiResult<EscrowSweep> {
    let mut done = EscrowSweep::default();
    use sealstream_api::disputes::EscrowState;
    let chains: Vec<u64> = state.escrow.contracts.keys().copied().collect();
    for chain_id in chains {
        let Some(rpc) = state.evm.get(&chain_id) else {
            continue;
        };
        let now = match rpc.latest_timestamp().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(chain_id, "escrow job: the node does not answer: {e}");
                continue;
            }
        };
        let mut tx = state.store.begin().await?;
        let open = db::open_on_chain(&mut tx, chain_id, DEALS_PER_SWEEP).await?;
        tx.commit().await?;
        for escrow in open {
            match settle_one(state, chain_id, now, &escrow, &mut done).await {
                Ok(()) => {}
                Err(e) => {
                    done.failed += 1;
                    tracing::warn!(order = %escrow.order_id, chain_id, "escrow job: {e}");
                }
            }
        }
    }
    // Invoice escrows: the same states, the server's clock, no chain.
    let now = unix_now();
    let mut tx = state.store.begin().await?;
    let open = db::open_invoice(&mut tx, DEALS_PER_SWEEP).await?;
    tx.commit().await?;
    for escrow in open {
        let result = match escrow.state {
            EscrowState::Disputed if escrow.evidence_valid == Some(true) => record_resolution(
                state,
                &escrow,
                &escrow.amount,
                "0",
                "evidence-checker",
                None,
            )
            .await
            .map(|()| done.refunded += 1),
            _ if now >= escrow.release_after => {
                record_release(state, &escrow, &escrow.amount, None, "escrow-job")
                    .await
                    .map(|()| done.released += 1)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            done.failed += 1;
            tracing::warn!(order = %escrow.order_id, "escrow job: {e}");
        }
    }
    Ok(done)
}

/// What to do with one open deal, by its state on chain.
async fn settle_one(
    state: &AppState,
    chain_id: u64,
    now: u64,
    escrow: &db::Escrow,
    done: &mut EscrowSweep,
) -> Result<(), String> {
    let deal = state
        .escrow_deal(chain_id, &escrow.order_id)
        .await
        .map_err(|e| e.to_string())?;
    let amount = deal.amount.to_string();
    if deal.state == DealState::Disputed && deal.release_after != escrow.release_after {
        // The dispute is on chain: its arbitration deadline is the deal's.
        let now = sealstream_core::utc::now();
        let run = async {
            let mut tx = state.store.begin().await?;
            db::set_release_after(&mut tx, &escrow.order_id, deal.release_after, &now).await?;
            tx.commit().await?;
            Ok::<(), ApiError>(())
        };
        run.await.map_err(|e| e.message)?;
    }
    match deal.state {
        DealState::Released => {
            record_release(state, escrow, &amount, None, "chain").await?;
            done.recorded += 1;
        }
        DealState::Resolved | DealState::None => {
            // Resolved by the arbiter's route (recorded there) or out of
            // band: nothing the job decides.
        }
        DealState::Disputed if escrow.evidence_valid == Some(true) => {
            let decision = decision_hash(escrow, &amount);
            let hash = state
                .escrow_send(
                    chain_id,
                    resolve_call(&order_key(&escrow.order_id), deal.amount, &decision),
                )
                .await
                .map_err(|e| e.to_string())?;
            record_resolution(state, escrow, &amount, "0", "evidence-checker", Some(&hash)).await?;
            done.refunded += 1;
        }
        DealState::Held | DealState::Disputed if now >= deal.release_after => {
            let hash = state
                .escrow_send(chain_id, release_call(&order_key(&escrow.order_id)))
                .await
                .map_err(|e| e.to_string())?;
            record_release(state, escrow, &amount, Some(&hash), "escrow-job").await?;
            done.released += 1;
        }
        DealState::Held | DealState::Disputed => {}
    }
    Ok(())
}

/// The hash logged with a decision: SHA-256 of `{orderId, evidenceHash,
/// toBuyer}` in the market's words.
fn decision_hash(escrow: &db::Escrow, to_buyer: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let text = json!({
        "orderId": escrow.order_id,
        "evidenceHash": escrow.evidence_hash,
        "toBuyer": to_buyer,
    })
    .to_string();
    Sha256::digest(text.as_bytes()).into()
}

async fn record_release(
    state: &AppState,
    escrow: &db::Escrow,
    amount: &str,
    hash: Option<&TxHash>,
    actor: &str,
) -> Result<(), String> {
    let now = sealstream_core::utc::now();
    let hash = hash.map(|h| h.to_string());
    let run = async {
        let mut tx = state.store.begin().await?;
        if db::released(&mut tx, &escrow.order_id, amount, hash.as_deref(), &now).await? {
            let details = json!({"toSeller": amount, "tx": hash, "was": escrow.state.as_str()});
            crate::audit::append(
                &mut tx,
                actor,
                "escrow.release",
                &escrow.order_id,
                &crate::listings::audit_details(details),
            )
            .await?;
        }
        tx.commit().await?;
        Ok::<(), ApiError>(())
    };
    run.await.map_err(|e| e.message)?;
    tracing::info!(order = %escrow.order_id, amount, "escrow released to the seller");
    Ok(())
}

pub(crate) async fn record_resolution(
    state: &AppState,
    escrow: &db::Escrow,
    to_buyer: &str,
    to_seller: &str,
    actor: &str,
    hash: Option<&TxHash>,
) -> Result<(), String> {
    let now = sealstream_core::utc::now();
    let hash = hash.map(|h| h.to_string());
    let run = async {
        let mut tx = state.store.begin().await?;
        if db::resolved(
            &mut tx,
            &escrow.order_id,
            to_buyer,
            to_seller,
            actor,
            hash.as_deref(),
            &now,
        )
        .await?
        {
            let details = json!({
                "toBuyer": to_buyer,
                "toSeller": to_seller,
                "tx": hash,
                "evidenceHash": escrow.evidence_hash,
            });
            crate::audit::append(
                &mut tx,
                actor,
                "escrow.resolve",
                &escrow.order_id,
                &crate::listings::audit_details(details),
            )
            .await?;
        }
        tx.commit().await?;
        Ok::<(), ApiError>(())
    };
    run.await.map_err(|e| e.message)?;
    tracing::info!(order = %escrow.order_id, to_buyer, to_seller, "escrow dispute resolved");
    Ok(())
}

/// Runs [`sweep_once`] every `every`, and at once when woken.
pub fn spawn_escrow_job(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = state.escrow_wake.notified() => {}
            }
            // The lease outlasts a pass's wait for a transaction to be
            // mined, so another replica seldom starts the same sends (when
            // it does, the advisory lock of `escrow_send` orders them, and
            // a repeated one reverts).
            let lease = crate::lease::lease_for(every).max(4 * MINING_WAIT);
            if !state
                .leases
                .leading_for(&state.store, crate::lease::Job::Escrow, lease)
                .await
            {
                continue;
            }
            if let Err(e) = sweep_once(&state).await {
                tracing::warn!("escrow job: {}", e.message);
            }
        }
    })
}

/// A decimal amount of base units, checked: at most `max`.
pub(crate) fn parse_split(text: &str, max: &str) -> ApiResult<(Amount, Amount)> {
    let amount = Amount::parse_decimal(text.trim(), "toBuyer")
        .map_err(|_| ApiError::bad_request("toBuyer", "a decimal integer of base units"))?;
    let total = Amount::parse_decimal(max, "amount")
        .map_err(|_| ApiError::internal("escrow", "stored amount is malformed"))?;
    if amount > total {
        return Err(ApiError::unprocessable(
            "toBuyer",
            format!("more than the {max} held"),
        ));
    }
    let rest = total.checked_sub(amount).expect("amount <= total");
    Ok((amount, rest))
}
