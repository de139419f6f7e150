#!/usr/bin/env python3
"""Order -> grant benchmark of the market server (`sealstream market serve`,
SQLite and local objects) on a 1,000-chunk dataset. Usage:

    cargo build --release -p sealstream      # or let the script build it
    .venv/bin/python bench/market_grants.py [--chunks 1000] [--orders 100]
        [--buyers 20] [--orders-per-buyer 10] [--daemon-orders 20]
        [--binary PATH] [--no-build]

Needs the venv's eth_account (SIWE and registration signatures) and PyNaCl
(buyer keys, and to check a granted key opens).

What it does, against one server started on a free port with a temporary
--data-dir:

- Setup: `sealstream keys generate`; an owner signs in with Sign-In with
  Ethereum and registers the machine (owner, operator and machine
  recipients, with the machine's signature); `sealstream publish` seals
  --chunks chunks of 1 KiB with a machine-signed dataset manifest,
  `sealstream market upload` uploads the chain as the machine, the owner
  posts the dataset and publishes a listing on the invoice rail. Buyers are
  fresh secp256k1 accounts, each signed in, each with an X25519 key.
- Server-side grants (operator key): the owner registers the operator
  recipient's secret (PUT /v1/machines/{did}/operator-key). Latency: one
  buyer, --orders orders one after the other, each timed from before
  POST /v1/orders, through the seller's POST …/mark-paid, until
  GET /v1/orders/{id} answers `granted` (polled every 2 ms); p50, p99 and
  max of the whole and of the grant alone (mark-paid answered -> granted).
  Throughput: --buyers threads, each with its own connection, each doing
  --orders-per-buyer such orders in a row (polling every 20 ms: twenty
  buyers polling every 2 ms cost the server more than the grants); grants/s
  = orders granted ÷ wall time, with the latencies under that load.
- Owner-side grants (`sealstream market grant-daemon`, the owner's X25519
  key, which never leaves the owner): the operator key is revoked;
  --daemon-orders orders are paid, then one `grant-daemon --once` grants
  them all (grants/s of one pass, process start and sign-in included);
  then 10 orders one at a time, each paid and granted by its own
  `grant-daemon --once` (latency from before POST /v1/orders to the
  process's exit).
- Every grant is checked: GET /v1/orders/{id}/grant answers --chunks
  entries, granted by `operator` or by the owner as expected; one access
  file per phase is downloaded and its first wrapped key opened with the
  buyer's X25519 key (PyNaCl's sealed box) and checked against the chunk's
  key commitment.

The server's CPU use per phase is reported (cores, from /proc/PID/stat).
Prints a Markdown table, the exact commands and one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from market_load import (  # noqa: E402
    OURS,
    REPO,
    Api,
    did_of,
    free_port,
    process_cpu,
    register_machine,
    run,
    sign_in,
    start_server,
)

from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402
from nacl.public import PrivateKey, SealedBox  # noqa: E402

INVOICE = {"kind": "invoice", "currency": "EUR", "decimals": 2, "payee": "Bench Robotics GmbH",
           "terms": "30 days net"}
POLL = 0.002  # one buyer
POLL_UNDER_LOAD = 0.020  # each of the concurrent buyers: 20 polling every 2 ms would load the server more than the grants


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms), "mean_ms": statistics.fmean(ms)}


class Buyer:
    def __init__(self, port: int) -> None:
        self.account = Account.create()
        self.api = Api(port)
        self.token = sign_in(self.api, self.account)
        self.x25519 = PrivateKey.generate()
        self.public_hex = bytes(self.x25519.public_key).hex()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=1000, help="chunks in the dataset sold")
    ap.add_argument("--orders", type=int, default=100, help="orders timed one after the other")
    ap.add_argument("--buyers", type=int, default=20, help="concurrent buyers")
    ap.add_argument("--orders-per-buyer", type=int, default=10)
    ap.add_argument("--daemon-orders", type=int, default=20, help="orders granted by one grant-daemon pass")
    ap.add_argument("--binary", type=Path, default=OURS)
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    if not args.no_build and args.binary == OURS:
        print("cargo build --release -p sealstream", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "sealstream"], cwd=REPO, check=True)
    binary = str(args.binary)
    if not Path(binary).exists():
        sys.exit(f"{binary} not found (cargo build --release -p sealstream)")

    work = Path(tempfile.mkdtemp(prefix="sealstream-market-grants-"))
    server = None
    try:
        keys_dir = work / "keys"
        keys = json.loads(run([binary, "keys", "generate", "--output-dir", str(keys_dir), "--json"]).stdout)
        machine_key = (keys_dir / "machine.secp256k1.sk").read_text().strip()
        machine = Account.from_key(machine_key if machine_key.startswith("0x") else "0x" + machine_key)
        owner = Account.create()
        owner_key_file = work / "owner.secp256k1.sk"
        owner_key_file.write_text(bytes(owner.key).hex())
        owner_key_file.chmod(0o600)
        owner_did, machine_did = did_of(owner.address), keys["machineDid"]

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_cmd = [binary, "market", "serve", "--listen", f"127.0.0.1:{port}",
                     "--data-dir", str(work / "data")]
        server, api = start_server(serve_cmd, port, work / "server.log")

        # ------------------------------------------------------ setup
        owner_token = sign_in(api, owner)
        register_machine(api, owner_token, owner_did, machine, keys, work / "keys")

        print(f"publishing {args.chunks} chunks", file=sys.stderr)
        source = work / "source.bin"
        source.write_bytes(os.urandom(1024 * args.chunks))
        chain = work / "chain"
        topic = "/bench/grants"
        run([binary, "--quiet", "publish", "--input", str(source), "--output-dir", str(chain),
             "--owner-public-key", keys["ownerPublicKeyHex"],
             "--operator-public-key", keys["operatorPublicKeyHex"],
             "--machine-public-key", keys["machinePublicKeyHex"],
             "--signing-key-file", str(keys_dir / "chain.ed25519.sk"),
             "--machine-did", machine_did, "--machine-key-id", keys["machineKeyId"],
             "--chunk-size", "1024", "--dataset-key-file", str(keys_dir / "machine.secp256k1.sk"),
             "--topic", topic])
        manifest = json.loads((chain / "dataset.json").read_text())
        (chain / "dataset.json").rename(work / "dataset.json")
        run([binary, "--quiet", "market", "upload", "--server", base, "--chunk-dir", str(chain),
             "--topic", topic, "--key-file", str(keys_dir / "machine.secp256k1.sk")])
        dataset = api.expect(201, "POST", "/v1/datasets", {"manifest": manifest}, owner_token)
        if dataset["chunkCount"] != args.chunks:
            sys.exit(f"dataset of {dataset['chunkCount']} chunks, expected {args.chunks}")
        listing = api.expect(201, "POST", "/v1/listings", {
            "datasetId": dataset["id"], "title": "Grant benchmark", "description": "1 KiB chunks",
            "tags": ["bench"], "license": {"spdx": "CC-BY-4.0"}, "price": "100", "rail": INVOICE,
            "delivery": ["api"],
        }, owner_token)
        api.expect(200, "POST", f"/v1/listings/{listing['id']}/publish", {}, owner_token)
        first_envelope = json.loads((chain / "chunk-0.json").read_text())

        def buy(buyer: Buyer, seller: Api, poll: float = POLL) -> tuple[str, float, float]:
            """Order, pay, wait for the grant: (id, order->granted, paid->granted)."""
            t0 = time.perf_counter()
            o = buyer.api.expect(201, "POST", "/v1/orders",
                                 {"listingId": listing["id"], "buyerPublicKeyHex": buyer.public_hex}, buyer.token)
            seller.expect(200, "POST", f"/v1/orders/{o['id']}/mark-paid", {"reference": o["id"]}, owner_token)
            t1 = time.perf_counter()
            while True:
                state = buyer.api.expect(200, "GET", f"/v1/orders/{o['id']}", None, buyer.token)["state"]
                if state == "granted":
                    t2 = time.perf_counter()
                    return o["id"], t2 - t0, t2 - t1
                if state != "paid":
                    sys.exit(f"order {o['id']} is {state}")
                time.sleep(poll)

        def check_grant(order_id: str, buyer: Buyer, granted_by: str, open_key: bool) -> None:
            g = api.expect(200, "GET", f"/v1/orders/{order_id}/grant", None, owner_token)
            if g["entries"] != args.chunks or g["grantedBy"] != granted_by:
                sys.exit(f"grant of {order_id}: {g}")
            if open_key:
                name = g["files"][0]
                access = buyer.api.expect(200, "GET", f"/v1/orders/{order_id}/release/{name}", None, buyer.token)
                entry = access["entries"][0]
                if entry["chunkId"] != first_envelope["chunkId"]:
                    sys.exit(f"first access entry of {order_id} is for {entry['chunkId']}")
                key = SealedBox(buyer.x25519).decrypt(bytes.fromhex(entry["buyer"]["wrappedKeyHex"]))
                commitment = "sha256:" + hashlib.sha256(key).hexdigest()
                expected = first_envelope["encryption"]["keyCommitment"]
                if commitment != expected:
                    sys.exit(f"the granted key of chunk 0 does not match its commitment ({commitment} != {expected})")

        results: dict = {"chunks": args.chunks}

        # ------------------------------------------------------ operator key
        operator_secret = (keys_dir / "operator.x25519.sk").read_text().strip()
        api.expect(200, "PUT", f"/v1/machines/{machine_did}/operator-key",
                   {"secretKeyHex": operator_secret}, owner_token)
        print(f"operator: {args.orders} orders one after the other", file=sys.stderr)
        alice = Buyer(port)
        buy(alice, api)  # warm-up
        cpu0, w0 = process_cpu(server.pid), time.perf_counter()
        total, grant = [], []
        for i in range(args.orders):
            order_id, t, g = buy(alice, api)
            total.append(t)
            grant.append(g)
            check_grant(order_id, alice, "operator", open_key=i == 0)
        results["operator_sequential"] = {
            "order_to_grant": summary(total), "paid_to_grant": summary(grant),
            "server_cores": (process_cpu(server.pid) - cpu0) / (time.perf_counter() - w0),
        }

        print(f"operator: {args.buyers} buyers x {args.orders_per_buyer} orders", file=sys.stderr)
        buyers = [Buyer(port) for _ in range(args.buyers)]
        done: list[tuple[str, Buyer, float, float]] = []
        lock = threading.Lock()
        failures: list[BaseException] = []

        def shop(b: Buyer) -> None:
            seller = Api(port)
            try:
                for _ in range(args.orders_per_buyer):
                    order_id, t, g = buy(b, seller, POLL_UNDER_LOAD)
                    with lock:
                        done.append((order_id, b, t, g))
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)

        threads = [threading.Thread(target=shop, args=(b,)) for b in buyers]
        cpu0, w0 = process_cpu(server.pid), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - w0
        cpu = process_cpu(server.pid) - cpu0
        if failures:
            sys.exit(f"a buyer failed: {failures[0]!r}")
        for n, (order_id, b, _, _) in enumerate(done):
            check_grant(order_id, b, "operator", open_key=n == 0)
        results["operator_concurrent"] = {
            "buyers": args.buyers, "orders": len(done), "seconds": wall,
            "grants_per_s": len(done) / wall, "server_cores": cpu / wall,
            "order_to_grant": summary([d[2] for d in done]), "paid_to_grant": summary([d[3] for d in done]),
        }

        # ------------------------------------------------------ grant daemon
        api.expect(204, "DELETE", f"/v1/machines/{machine_did}/operator-key", None, owner_token)
        daemon_cmd = [binary, "--quiet", "market", "grant-daemon", "--server", base, "--key-file",
                      str(owner_key_file), "--owner-private-key-file", str(keys_dir / "owner.x25519.sk"), "--once"]
        print(f"grant daemon: one pass over {args.daemon_orders} paid orders", file=sys.stderr)
        bob = Buyer(port)
        pending = []
        for _ in range(args.daemon_orders):
            o = bob.api.expect(201, "POST", "/v1/orders",
                               {"listingId": listing["id"], "buyerPublicKeyHex": bob.public_hex}, bob.token)
            api.expect(200, "POST", f"/v1/orders/{o['id']}/mark-paid", {"reference": o["id"]}, owner_token)
            pending.append(o["id"])
        cpu0, w0 = process_cpu(server.pid), time.perf_counter()
        run(daemon_cmd)
        wall = time.perf_counter() - w0
        cpu = process_cpu(server.pid) - cpu0
        for n, order_id in enumerate(pending):
            check_grant(order_id, bob, owner_did, open_key=n == 0)
        results["daemon_pass"] = {"orders": len(pending), "seconds": wall,
                                  "grants_per_s": len(pending) / wall, "server_cores": cpu / wall}

        print("grant daemon: 10 orders, one --once each", file=sys.stderr)
        single = []
        for _ in range(10):
            t0 = time.perf_counter()
            o = bob.api.expect(201, "POST", "/v1/orders",
                               {"listingId": listing["id"], "buyerPublicKeyHex": bob.public_hex}, bob.token)
            api.expect(200, "POST", f"/v1/orders/{o['id']}/mark-paid", {"reference": o["id"]}, owner_token)
            run(daemon_cmd)
            single.append(time.perf_counter() - t0)
            check_grant(o["id"], bob, owner_did, open_key=False)
        results["daemon_single"] = {"order_to_grant": summary(single)}

        # ------------------------------------------------------ report
        seq, conc = results["operator_sequential"], results["operator_concurrent"]
        dp, ds = results["daemon_pass"], results["daemon_single"]
        print(f"\n### Orders -> grants, {args.chunks}-chunk dataset, invoice rail "
              f"({platform.machine()}, {os.cpu_count()} CPUs)\n")
        print("| path | measure | p50 | p99 | max | throughput |")
        print("|---|---|---:|---:|---:|---:|")
        for label, s in (("operator key, 1 buyer", seq), ("operator key, %d buyers" % args.buyers, conc)):
            o, g = s["order_to_grant"], s["paid_to_grant"]
            thr = f"{conc['grants_per_s']:.1f} grants/s" if s is conc else \
                f"{1000 / o['mean_ms']:.1f} orders/s"
            print(f"| {label} | order -> granted (n={o['n']}) | {o['p50_ms']:.0f} ms | {o['p99_ms']:.0f} ms "
                  f"| {o['max_ms']:.0f} ms | {thr} |")
            print(f"| {label} | paid -> granted | {g['p50_ms']:.0f} ms | {g['p99_ms']:.0f} ms "
                  f"| {g['max_ms']:.0f} ms | server {s['server_cores']:.2f} cores |")
        o = ds["order_to_grant"]
        print(f"| grant-daemon --once per order | order -> granted (n={o['n']}) | {o['p50_ms']:.0f} ms "
              f"| {o['p99_ms']:.0f} ms | {o['max_ms']:.0f} ms | |")
        print(f"| grant-daemon --once, {dp['orders']} paid orders | one pass | | | {dp['seconds'] * 1000:.0f} ms "
              f"| {dp['grants_per_s']:.1f} grants/s |")
        print("\nCommands: " + " ".join(serve_cmd) + "; " + " ".join(daemon_cmd))
        print("RESULT " + json.dumps(results))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
