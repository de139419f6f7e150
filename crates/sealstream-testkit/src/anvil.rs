//! A real EVM dev node for tests: anvil (Foundry) on a free loopback port,
//! one process per [`Anvil`], killed when dropped.
//!
//! The binary is `$SEALSTREAM_ANVIL`, else the one `scripts/setup-test-peers`
//! installs in `peers/node_modules`. Its dev accounts are funded and
//! unlocked, so `eth_sendTransaction` sends from them without signing here;
//! their addresses and private keys are read from anvil's `--config-out`
//! file (the well-known test mnemonic's accounts), never written down.
//! Helpers are blocking ([`crate::http`]), for use from plain `#[test]`
//! functions.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sealstream_market::evm::{Address, Amount, TxHash};
use serde_json::{json, Value};

use crate::reference::peaqos_binary;
use crate::{free_port, repo_root, unix_now};

/// The chain id of Base mainnet, the default of [`Anvil::start`]
/// (`peaqos stream pay --chain base` pays on it).
pub const BASE_CHAIN_ID: u64 = 8453;

/// One of anvil's funded, unlocked dev accounts.
#[derive(Clone)]
pub struct DevAccount {
    /// Its address.
    pub address: Address,
    /// Its private key, `0x` + 64 hex digits (a public test key).
    pub private_key: String,
}

impl std::fmt::Debug for DevAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevAccount({}, key: ..)", self.address)
    }
}

impl DevAccount {
    /// Writes the private key as `peaqos --private-key-file` reads it
    /// (`0x`-prefixed hex, one line) to `path`.
    pub fn write_key_file(&self, path: &Path) {
        std::fs::write(path, format!("{}\n", self.private_key)).expect("write the key file");
    }
}

/// A running anvil node.
pub struct Anvil {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The chain id it serves.
    pub chain_id: u64,
    accounts: Vec<DevAccount>,
    automine: Cell<bool>,
    child: Child,
    dir: tempfile::TempDir,
}

/// The anvil binary: `$SEALSTREAM_ANVIL`, else the one in `peers/`.
pub fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SEALSTREAM_ANVIL") {
        return PathBuf::from(path);
    }
    let path = repo_root().join("peers/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        path.is_file(),
        "anvil is not installed at {}: run scripts/setup-test-peers (or set SEALSTREAM_ANVIL)",
        path.display()
    );
    path
}

/// The creation bytecode of `peers/TestToken.sol`, as `0x` hex.
pub fn test_token_bytecode() -> String {
    let path = repo_root().join("peers/build/TestToken.bin");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/setup-test-peers to compile the test token",
            path.display()
        )
    });
    format!("0x{}", text.trim())
}

/// The creation bytecode of `contracts/SealstreamEscrow.sol`, as `0x`
/// hex (compiled to `peers/build/SealstreamEscrow.bin` by
/// `scripts/setup-test-peers`).
pub fn escrow_bytecode() -> String {
    let path = repo_root().join("peers/build/SealstreamEscrow.bin");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/setup-test-peers to compile the escrow contract",
            path.display()
        )
    });
    format!("0x{}", text.trim())
}

impl Anvil {
    /// A node on chain [`BASE_CHAIN_ID`] that mines each transaction as it
    /// arrives.
    pub fn start() -> Anvil {
        Self::start_on_chain(BASE_CHAIN_ID)
    }

    /// A node on chain `chain_id`.
    pub fn start_on_chain(chain_id: u64) -> Anvil {
        Self::start_with(chain_id, &[])
    }

    /// A node on chain [`BASE_CHAIN_ID`] whose genesis block is
    /// `seconds_ago` seconds in the past: its blocks keep that distance
    /// from the wall clock (anvil adds the time elapsed since it started)
    /// until [`set_next_block_timestamp`](Self::set_next_block_timestamp)
    /// moves them on.
    pub fn start_in_the_past(seconds_ago: u64) -> Anvil {
        let genesis = unix_now() - seconds_ago;
        Self::start_with(BASE_CHAIN_ID, &["--timestamp", &genesis.to_string()])
    }

    /// A node on chain `chain_id`, with `extra` anvil arguments.
    pub fn start_with(chain_id: u64, extra: &[&str]) -> Anvil {
        let binary = anvil_binary();
        // A port free when asked may be taken before anvil binds it: try
        // a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start(&binary, chain_id, extra) {
                Ok(anvil) => return anvil,
                Err(e) => last_error = e,
            }
        }
        panic!("anvil did not start: {last_error}");
    }

    fn try_start(binary: &Path, chain_id: u64, extra: &[&str]) -> Result<Anvil, String> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let config = dir.path().join("anvil.json");
        let log = std::fs::File::create(dir.path().join("anvil.log")).expect("anvil log file");
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &chain_id.to_string()])
            .args(extra)
            .arg("--config-out")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("anvil log file"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let mut anvil = Anvil {
            url: format!("http://127.0.0.1:{port}"),
            chain_id,
            accounts: Vec::new(),
            automine: Cell::new(true),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = anvil.child.try_wait().expect("anvil status") {
                return Err(format!("anvil exited ({status}): {}", anvil.log()));
            }
            if let Ok(Ok(id)) = anvil.try_rpc("eth_chainId", json!([])) {
                assert_eq!(id, json!(format!("{chain_id:#x}")), "anvil's chain id");
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "anvil did not answer on {}: {}",
                    anvil.url,
                    anvil.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anvil.accounts = read_accounts(&config);
        Ok(anvil)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("anvil.log")).unwrap_or_default()
    }

    /// The funded dev accounts (10 by default).
    pub fn accounts(&self) -> &[DevAccount] {
        &self.accounts
    }

    /// Dev account `i`.
    pub fn account(&self, i: usize) -> &DevAccount {
        &self.accounts[i]
    }

    /// A JSON-RPC call: `Ok(result)` or `Err(error object)`; `Err` from the
    /// outer result when the node could not be reached.
    pub fn try_rpc(&self, method: &str, params: Value) -> Result<Result<Value, Value>, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let request = crate::http::request("POST", &self.url)
            .timeout(Duration::from_secs(30))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let answer = crate::http::try_send(request).map_err(|e| e.to_string())?;
        if !answer.is_ok() {
            return Err(format!(
                "{}: status {}: {}",
                answer.request,
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        let reply: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
        match reply.get("error") {
            Some(error) if !error.is_null() => Ok(Err(error.clone())),
            _ => Ok(Ok(reply.get("result").cloned().unwrap_or(Value::Null))),
        }
    }

    /// A JSON-RPC call that must succeed; its result.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        match self.try_rpc(method, params.clone()) {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => panic!("{method} {params}: {error}"),
            Err(e) => panic!("{method}: {e}"),
        }
    }

    /// `eth_sendTransaction` of `tx` (a JSON transaction object with `from`
    /// an unlocked account); its hash. While automine is on (the default),
    /// returns once the transaction is mined (anvil may answer just
    /// before); while off, at once.
    pub fn send_raw(&self, tx: Value) -> TxHash {
        let hash = self.rpc("eth_sendTransaction", json!([tx]));
        let hash = TxHash::parse(hash.as_str().expect("a hash"), "eth_sendTransaction").unwrap();
        if self.automine.get() {
            self.wait_mined(&hash);
        }
        hash
    }

    /// Waits until `hash` has a receipt, the transaction its block number
    /// and the node's head reached that block (anvil can answer the receipt
    /// a moment before the others); returns the receipt.
    pub fn wait_mined(&self, hash: &TxHash) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(receipt) = self.receipt(hash) {
                let block = receipt["blockNumber"]
                    .as_str()
                    .and_then(|b| u64::from_str_radix(b.trim_start_matches("0x"), 16).ok())
                    .expect("a receipt's block number");
                let tx = self.rpc("eth_getTransactionByHash", json!([hash.to_string()]));
                if !tx["blockNumber"].is_null() && self.block_number() >= block {
                    return receipt;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{hash} was not mined: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `wei` of the native coin from `from` to `to`.
    pub fn send_native(&self, from: Address, to: Address, wei: u128) -> TxHash {
        self.send_raw(json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "value": format!("{wei:#x}"),
        }))
    }

    /// Deploys `peers/TestToken.sol` from `from` (who gets the whole
    /// supply, 10^15 units of 6 decimals); its address. Needs automine.
    pub fn deploy_token(&self, from: Address) -> Address {
        let hash = self.send_raw(json!({"from": from.to_string(), "data": test_token_bytecode()}));
        let receipt = self.wait_mined(&hash);
        assert_eq!(receipt["status"], "0x1", "token deployment: {receipt}");
        Address::parse(
            receipt["contractAddress"]
                .as_str()
                .expect("a contract address"),
            "contractAddress",
        )
        .unwrap()
    }

    /// Deploys `contracts/SealstreamEscrow.sol` from `from`, with
    /// `arbiter`, a dispute window and an arbitration period in seconds;
    /// its address. Needs automine.
    pub fn deploy_escrow(
        &self,
        from: Address,
        arbiter: Address,
        dispute_window: u64,
        arbitration_period: u64,
    ) -> Address {
        let mut data = escrow_bytecode();
        data.push_str(&format!("{:0>64}", hex::encode(arbiter.0)));
        data.push_str(&format!("{dispute_window:064x}"));
        data.push_str(&format!("{arbitration_period:064x}"));
        let hash = self.send_raw(json!({"from": from.to_string(), "data": data}));
        let receipt = self.wait_mined(&hash);
        assert_eq!(receipt["status"], "0x1", "escrow deployment: {receipt}");
        Address::parse(
            receipt["contractAddress"]
                .as_str()
                .expect("a contract address"),
            "contractAddress",
        )
        .unwrap()
    }

    /// Sends a call of `to` with `data` (and `value` wei) from the
    /// unlocked `from`: `Ok(hash)` once mined with success, `Err(the
    /// node's error)` when it would revert (simulated first with
    /// `eth_call`, whose error carries the contract's custom error data;
    /// anvil's `eth_sendTransaction` would mine the failing transaction).
    pub fn try_call(
        &self,
        from: Address,
        to: Address,
        data: &[u8],
        value: u128,
    ) -> Result<TxHash, Value> {
        let tx = json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "data": format!("0x{}", hex::encode(data)),
            "value": format!("{value:#x}"),
        });
        self.try_rpc("eth_call", json!([tx, "latest"]))
            .expect("the node answers")?;
        let hash = self
            .try_rpc("eth_sendTransaction", json!([tx]))
            .expect("the node answers")?;
        let hash = TxHash::parse(hash.as_str().expect("a hash"), "eth_sendTransaction").unwrap();
        let receipt = self.wait_mined(&hash);
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        Ok(hash)
    }

    /// `eth_call` of `to` with `data` at the latest block; the returned
    /// bytes.
    pub fn call(&self, to: Address, data: &[u8]) -> Vec<u8> {
        let result = self.rpc(
            "eth_call",
            json!([{"to": to.to_string(), "data": format!("0x{}", hex::encode(data))}, "latest"]),
        );
        hex::decode(
            result
                .as_str()
                .expect("eth_call result")
                .trim_start_matches("0x"),
        )
        .expect("hex")
    }

    /// Moves the chain's clock `seconds` forward and mines a block stamped
    /// with it (`evm_increaseTime`, `evm_mine`): no waiting on the wall
    /// clock.
    pub fn increase_time(&self, seconds: u64) {
        self.rpc("evm_increaseTime", json!([seconds]));
        self.rpc("evm_mine", json!([]));
    }

    /// The timestamp of the latest block.
    pub fn latest_timestamp(&self) -> u64 {
        let block = self.rpc("eth_getBlockByNumber", json!(["latest", false]));
        let ts = block["timestamp"].as_str().expect("a block timestamp");
        u64::from_str_radix(ts.trim_start_matches("0x"), 16).expect("a timestamp")
    }

    /// The call data of ERC-20 `transfer(to, amount)`.
    pub fn transfer_call(to: Address, amount: u128) -> String {
        let mut data = String::from("0xa9059cbb");
        data.push_str(&format!("{:0>64}", hex::encode(to.0)));
        data.push_str(&hex::encode(Amount::from(amount).to_be_bytes()));
        data
    }

    /// Sends `amount` units of `token` from `from` to `to` (the token's
    /// `transfer`, gas estimated: fails if it would revert).
    pub fn send_token(&self, token: Address, from: Address, to: Address, amount: u128) -> TxHash {
        self.send_raw(json!({
            "from": from.to_string(),
            "to": token.to_string(),
            "data": Self::transfer_call(to, amount),
        }))
    }

    /// `token`'s `balanceOf(owner)`.
    pub fn token_balance(&self, token: Address, owner: Address) -> Amount {
        let data = format!("0x70a08231{:0>64}", hex::encode(owner.0));
        let result = self.rpc(
            "eth_call",
            json!([{"to": token.to_string(), "data": data}, "latest"]),
        );
        let text = result.as_str().expect("eth_call result");
        let mut word = [0u8; 32];
        hex::decode_to_slice(&text[2..], &mut word).expect("one word");
        Amount::from_be_bytes(word)
    }

    /// The native balance of `owner`, in wei.
    pub fn balance(&self, owner: Address) -> Amount {
        let result = self.rpc("eth_getBalance", json!([owner.to_string(), "latest"]));
        Amount::parse_quantity(result.as_str().expect("a quantity"), "balance").unwrap()
    }

    /// The native balance of `owner` at block `block`, in wei.
    pub fn balance_at(&self, owner: Address, block: u64) -> Amount {
        let result = self.rpc(
            "eth_getBalance",
            json!([owner.to_string(), format!("{block:#x}")]),
        );
        Amount::parse_quantity(result.as_str().expect("a quantity"), "balance").unwrap()
    }

    /// The receipt of `hash`, or `None` while not mined.
    pub fn receipt(&self, hash: &TxHash) -> Option<Value> {
        let r = self.rpc("eth_getTransactionReceipt", json!([hash.to_string()]));
        (!r.is_null()).then_some(r)
    }

    /// Mines `n` blocks (`anvil_mine`).
    pub fn mine(&self, n: u64) {
        self.rpc("anvil_mine", json!([format!("{n:#x}")]));
    }

    /// Turns mining each transaction on arrival on or off
    /// (`evm_setAutomine`); while off, transactions wait in the pool until
    /// [`mine`](Self::mine).
    pub fn set_automine(&self, on: bool) {
        self.rpc("evm_setAutomine", json!([on]));
        self.automine.set(on);
    }

    /// The timestamp the next block will have (`evm_setNextBlockTimestamp`;
    /// later than the latest block's); later blocks follow on from it.
    pub fn set_next_block_timestamp(&self, unix: u64) {
        self.rpc("evm_setNextBlockTimestamp", json!([unix]));
    }

    /// The timestamp of the block `hash` was mined in.
    pub fn mined_at(&self, hash: &TxHash) -> u64 {
        let receipt = self.receipt(hash).expect("mined");
        let block = self.rpc(
            "eth_getBlockByHash",
            json!([receipt["blockHash"].clone(), false]),
        );
        let ts = block["timestamp"].as_str().expect("a block timestamp");
        u64::from_str_radix(ts.trim_start_matches("0x"), 16).expect("a timestamp")
    }

    /// The latest block number.
    pub fn block_number(&self) -> u64 {
        let n = self.rpc("eth_blockNumber", json!([]));
        u64::from_str_radix(n.as_str().expect("a quantity").trim_start_matches("0x"), 16)
            .expect("a block number")
    }
}

impl Anvil {
    /// Runs `peaqos stream pay --chain base --rpc-url <this node>
    /// --private-key-file <payer's key> --json` with `args` appended
    /// (`--seller-address`, `--amount`, `--order-id`, `--token-address`,
    /// `--token-decimals`, `--confirmation-url`…), in a clean temporary
    /// directory (the reference reads a `.env` from its working directory).
    /// Panics when the reference CLI is not installed. With `--json` it
    /// prints `{txHash, chain, status: "submitted", payerAddress,
    /// payeeAddress, amount, token, tokenAddress, proof}`; it returns once
    /// the transaction is submitted (use [`wait_mined`](Self::wait_mined)).
    pub fn peaqos_pay(&self, payer: &DevAccount, args: &[&str]) -> Output {
        let bin = peaqos_binary();
        let cwd = tempfile::tempdir().expect("temporary directory");
        let key_file = cwd.path().join("buyer.key");
        payer.write_key_file(&key_file);
        let output = Command::new(bin)
            .args([
                "stream",
                "pay",
                "--chain",
                "base",
                "--rpc-url",
                &self.url,
                "--json",
            ])
            .arg("--private-key-file")
            .arg(&key_file)
            .args(args)
            .current_dir(cwd.path())
            .env("PEAQOS_TELEMETRY", "0")
            .env("DO_NOT_TRACK", "1")
            .env_remove("PEAQOS_PRIVATE_KEY")
            .env_remove("PEAQOS_RPC_URL")
            .stdin(Stdio::null())
            .output()
            .expect("run peaqos stream pay");
        output
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev accounts from anvil's `--config-out` file.
fn read_accounts(config: &Path) -> Vec<DevAccount> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let json: Value = loop {
        let parsed = std::fs::read_to_string(config)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(json) => break json,
            Err(e) if Instant::now() > deadline => panic!("{}: {e}", config.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let addresses = json["available_accounts"]
        .as_array()
        .expect("available_accounts");
    let keys = json["private_keys"].as_array().expect("private_keys");
    assert_eq!(addresses.len(), keys.len(), "one key per account");
    addresses
        .iter()
        .zip(keys)
        .map(|(a, k)| DevAccount {
            address: Address::parse(a.as_str().expect("an address"), "available_accounts").unwrap(),
            private_key: k.as_str().expect("a key").to_string(),
        })
        .collect()
}
