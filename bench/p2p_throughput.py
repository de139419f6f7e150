#!/usr/bin/env python3
"""Peer-to-peer delivery on loopback (issue 19): the live feed
(`p2p serve --feed` / `p2p subscribe`, /sealstream/feed/1) with one and
three buyers, the reference protocol (`p2p serve --chunk-dir` / `p2p
fetch`), and the market's HTTP release download of the same chain, plus
the feed's connection-to-first-chunk latency. Usage:

    cargo build --release -p sealstream      # or let the script build it
    .venv/bin/python bench/p2p_throughput.py [--mib 256] [--chunk-size 262144]
        [--buyers 3] [--runs 2] [--latency-runs 7] [--no-dht] [--perf]
        [--attempts N] [--binary PATH] [--no-build] [--keep]

Needs the venv's eth_account (SIWE and registration signatures) and PyNaCl
(buyer keys), and curl (the plain HTTP download).

What it does, against one market (`sealstream market serve`, SQLite and
local objects, a temporary --data-dir) started on a free port:

- Setup: `sealstream keys generate`; an owner signs in and registers the
  machine and its operator key (server-side grants); `sealstream publish`
  seals --mib MiB of random bytes (--chunk-size chunks, a machine-signed
  dataset manifest, topic /bench/p2p); `sealstream market upload` uploads
  the chain as the machine. Two listings on the invoice rail: the dataset,
  and a subscription to the topic with `"history": "all"` (so a subscriber
  gets the whole chain). --buyers buyers (fresh secp256k1 accounts, each
  with its own X25519 key) each subscribe (the owner marks the first
  period paid) and order the dataset (marked paid, granted by the server
  with the operator key; the buyer makes a release link).
- The seller: one `p2p serve --feed /bench/p2p=CHAIN` on a fixed port,
  checking subscriptions with the market, joined to a `p2p bootstrap` node
  (unless --no-dht). The chain's files are older than any run (the seller
  sends a chunk's key only after an entitlement check started after the
  chunk's file time: see `Entitlement::as_of` in live/entitlement.rs).
- Feed runs (1 buyer, then --buyers at once; each buyer its own `p2p
  subscribe --seller-addr` process, a fresh output file): wall time from
  starting the subscribers until each has written the last chunk (its
  stderr line `chunk N: …`, printed after the plaintext is appended and
  synced); MB/s of ciphertext (MB = 10^6 bytes) per buyer and in
  aggregate; also from each buyer's first chunk to its last (the
  steady-state rate, without process start, dial and session set-up); the
  seller's and the subscribers' CPU (/proc/PID/stat). Each output is
  checked byte for byte against the published plaintext. One more 1-buyer
  run finds the seller through the DHT (--bootstrap instead of
  --seller-addr). Best of --runs runs.
- Reference protocol: `p2p serve --chunk-dir CHAIN` (one delivery, then it
  exits) and `p2p fetch URL --output-dir D`: wall time of the fetch
  process; the fetched chunk-N.bin are checked against the chain's. This
  moves ciphertext only (no key, no decryption).
- HTTP release download: `sealstream consume --download-url LINK` (download
  of the release package, chain verification, decryption, the output
  checked against the plaintext), 1 and --buyers at once; and the plain
  download of the same package's files with curl (one keep-alive
  connection per buyer, every file of manifest.json in turn, to
  /dev/null), 1 and --buyers at once. The market's CPU over each.
- Latency (--latency-runs runs, 1 buyer, a fresh output each): from
  starting `p2p subscribe` to its stderr line of the session's state (the
  seller's `valid`: dial, Noise and yamux, hello, the seller's entitlement
  check with the market) and to its line for chunk 0 (written); median and
  range.
- The floor: this machine's loopback TCP throughput, a Python socket pair
  (two threads, 1 MiB sends and receives, about 2 s).
- With --perf, one more 1-buyer feed run under `perf record` (the seller
  and the subscriber): the symbols with the most self time of each, on
  stderr and in the RESULT.

The machine may be shared: every throughput measurement records how many
cores other processes used meanwhile (bench/quiet.py) and is retried while
that exceeds 0.15 cores.
Prints a Markdown table, the exact commands and one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from market_grants import INVOICE, Buyer  # noqa: E402
from market_load import (  # noqa: E402
    OURS,
    REPO,
    did_of,
    free_port,
    process_cpu,
    register_machine,
    run,
    sign_in,
    start_server,
)
import quiet  # noqa: E402
from quiet import MAX_FOREIGN_CORES, CpuSample, wait_for_quiet  # noqa: E402

from eth_account import Account  # noqa: E402

TOPIC = "/bench/p2p"
MB = 1e6


# ---------------------------------------------------------------- processes


class Procs:
    """Every process this script starts, ended (SIGTERM, then SIGKILL) at exit."""

    def __init__(self) -> None:
        self.all: list[subprocess.Popen] = []

    def running_cpu(self) -> float:
        """CPU seconds of the processes started and not waited for yet (the
        market, the seller): bench/quiet.py counts a child's CPU as this
        script's own only once it is waited for."""
        total = 0.0
        for p in self.all:
            if p.returncode is None:
                try:
                    total += process_cpu(p.pid)
                except OSError:
                    pass
        return total

    def measure(self, key: str, fn):
        """bench/quiet.py's measure(), with the CPU of our running servers
        counted as ours."""
        kept = None
        for attempt in range(1, quiet.ATTEMPTS + 1):
            s, ours = CpuSample(), self.running_cpu()
            value = fn()
            elapsed = time.perf_counter() - s.at
            foreign = max(0.0, s.foreign_cores() - (self.running_cpu() - ours) / elapsed)
            if kept is None or foreign < kept[1]:
                kept = (value, foreign)
            if foreign <= MAX_FOREIGN_CORES:
                break
            if attempt < quiet.ATTEMPTS:
                print(f"  {key}: other processes used {foreign:.2f} cores (attempt {attempt}/{quiet.ATTEMPTS}); "
                      "waiting for a quiet machine", file=sys.stderr)
                wait_for_quiet()
        return kept[0], round(kept[1], 2)

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, **kw)
        self.all.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 20) -> int:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def stop_all(self) -> None:
        for p in reversed(self.all):
            self.stop(p, timeout=10)


class Follower:
    """One `p2p subscribe` process, its stderr read by a thread that stamps
    the lines that matter (time.perf_counter())."""

    def __init__(self, procs: Procs, cmd: list[str], last_index: int, log: Path) -> None:
        self.last_index = last_index
        self.started = time.perf_counter()
        self.valid_at: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.done = threading.Event()
        self.log = log
        self.cpu: float | None = None
        self.proc = procs.start(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        last = f"chunk {self.last_index}:".encode()
        with open(self.log, "wb") as log:
            for line in self.proc.stderr:
                now = time.perf_counter()
                log.write(line)
                if line.startswith(b"chunk 0:") and self.first_at is None:
                    self.first_at = now
                if line.startswith(last):
                    self.last_at = now
                    # Its CPU, while the process is still there to ask.
                    try:
                        self.cpu = process_cpu(self.proc.pid)
                    except OSError:
                        pass
                    self.done.set()
                elif self.valid_at is None and line.startswith(b"sub_") and b": valid (" in line:
                    # The state line of the seller's `valid` (`sub_…: valid (active), …`).
                    self.valid_at = now
        self.done.set()

    def wait(self, timeout: float) -> None:
        if not self.done.wait(timeout) or self.last_at is None:
            raise SystemExit(f"a subscriber did not reach chunk {self.last_index}; log: "
                             f"{self.log.read_text()[-2000:]}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- the floor


def loopback_mb_s(seconds: float = 2.0) -> float:
    """TCP over 127.0.0.1, one connection, 1 MiB sends and receives."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def send() -> None:
        s = socket.create_connection(("127.0.0.1", port))
        block = os.urandom(1 << 20)
        try:
            while not stop.is_set():
                s.sendall(block)
        except OSError:
            pass
        finally:
            s.close()

    t = threading.Thread(target=send)
    t.start()
    conn, _ = server.accept()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        total += conn.recv_into(view)
    stop.set()
    conn.close()
    server.close()
    t.join()
    return total / elapsed / MB


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="size of the chain's plaintext, MiB")
    ap.add_argument("--chunk-size", type=int, default=262144)
    ap.add_argument("--buyers", type=int, default=3, help="concurrent buyers of the second runs")
    ap.add_argument("--runs", type=int, default=2, help="runs of each throughput case (the best is kept)")
    ap.add_argument("--latency-runs", type=int, default=7)
    ap.add_argument("--no-dht", action="store_true", help="skip the run through a DHT bootstrap node")
    ap.add_argument("--attempts", type=int, default=quiet.ATTEMPTS,
                    help="attempts of a measurement while other processes load the machine")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed for one transfer")
    ap.add_argument("--binary", type=Path, default=OURS)
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--perf", action="store_true",
                    help="also profile the seller and one subscriber of a 1-buyer run (perf record)")
    args = ap.parse_args()
    quiet.ATTEMPTS = max(1, args.attempts)

    if not args.no_build and args.binary == OURS:
        print("cargo build --release -p sealstream", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "sealstream"], cwd=REPO, check=True)
    binary = str(args.binary)
    if not Path(binary).exists():
        sys.exit(f"{binary} not found (cargo build --release -p sealstream)")
    if shutil.which("curl") is None:
        sys.exit("curl not found")

    work = Path(tempfile.mkdtemp(prefix="sealstream-p2p-bench-"))
    procs = Procs()
    results: dict = {"mib": args.mib, "chunk_size": args.chunk_size, "buyers": args.buyers,
                     "cpus": os.cpu_count(), "machine": platform.machine()}
    commands: list[str] = []
    try:
        print("loopback TCP floor", file=sys.stderr)
        floor, foreign = procs.measure("loopback", loopback_mb_s)
        results["loopback_tcp_mb_s"] = {"mb_s": floor, "foreign_cores": foreign}

        # ------------------------------------------------------ keys, chain
        keys_dir = work / "keys"
        keys = json.loads(run([binary, "keys", "generate", "--output-dir", str(keys_dir), "--json"]).stdout)
        machine_key = (keys_dir / "machine.secp256k1.sk").read_text().strip()
        machine = Account.from_key(machine_key if machine_key.startswith("0x") else "0x" + machine_key)
        owner = Account.create()
        owner_key_file = work / "owner.secp256k1.sk"
        owner_key_file.write_text(bytes(owner.key).hex())
        owner_key_file.chmod(0o600)
        owner_did, machine_did = did_of(owner.address), keys["machineDid"]

        print(f"publishing {args.mib} MiB in {args.chunk_size}-byte chunks", file=sys.stderr)
        source = work / "source.bin"
        with open(source, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        plain_sha = sha256_file(source)
        chain = work / "chain"
        publish_cmd = [binary, "--quiet", "publish", "--input", str(source), "--output-dir", str(chain),
                       "--owner-public-key", keys["ownerPublicKeyHex"],
                       "--operator-public-key", keys["operatorPublicKeyHex"],
                       "--machine-public-key", keys["machinePublicKeyHex"],
                       "--signing-key-file", str(keys_dir / "chain.ed25519.sk"),
                       "--machine-did", machine_did, "--machine-key-id", keys["machineKeyId"],
                       "--chunk-size", str(args.chunk_size),
                       "--dataset-key-file", str(keys_dir / "machine.secp256k1.sk"), "--topic", TOPIC]
        run(publish_cmd)
        commands.append(" ".join(publish_cmd))
        manifest = json.loads((chain / "dataset.json").read_text())
        (chain / "dataset.json").rename(work / "dataset.json")
        chunks = sum(1 for _ in chain.glob("chunk-*.bin"))
        last = chunks - 1
        ciphertext = sum(p.stat().st_size for p in chain.glob("chunk-*.bin"))
        results["chunks"] = chunks
        results["ciphertext_bytes"] = ciphertext
        bin_hashes = {p.name: sha256_file(p) for p in chain.glob("chunk-*.bin")}

        # ------------------------------------------------------ market
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_cmd = [binary, "market", "serve", "--listen", f"127.0.0.1:{port}",
                     "--data-dir", str(work / "data"), "--anonymous-write-rate", "0"]
        server, api = start_server(serve_cmd, port, work / "market.log")
        procs.all.append(server)
        commands.append(" ".join(serve_cmd))
        owner_token = sign_in(api, owner)
        register_machine(api, owner_token, owner_did, machine, keys, keys_dir)
        api.expect(200, "PUT", f"/v1/machines/{machine_did}/operator-key",
                   {"secretKeyHex": (keys_dir / "operator.x25519.sk").read_text().strip()}, owner_token)
        print("uploading the chain to the market", file=sys.stderr)
        run([binary, "--quiet", "market", "upload", "--server", base, "--chunk-dir", str(chain),
             "--topic", TOPIC, "--key-file", str(keys_dir / "machine.secp256k1.sk")])
        dataset = api.expect(201, "POST", "/v1/datasets", {"manifest": manifest}, owner_token)
        if dataset["chunkCount"] != chunks:
            sys.exit(f"dataset of {dataset['chunkCount']} chunks, expected {chunks}")
        ds_listing = api.expect(201, "POST", "/v1/listings", {
            "datasetId": dataset["id"], "title": "P2P benchmark dataset", "description": "the chain",
            "tags": ["bench"], "license": {"spdx": "CC-BY-4.0"}, "price": "100", "rail": INVOICE,
            "delivery": ["api"],
        }, owner_token)
        api.expect(200, "POST", f"/v1/listings/{ds_listing['id']}/publish", {}, owner_token)
        sub_listing = api.expect(201, "POST", "/v1/listings", {
            "kind": "subscription", "title": "P2P benchmark feed", "description": "the chain, live",
            "tags": ["bench"], "license": {"spdx": "CC-BY-4.0"}, "price": "100", "rail": INVOICE,
            "delivery": ["p2p"],
            "subscription": {"machineDid": machine_did, "topic": TOPIC, "periodSeconds": 3600,
                             "graceSeconds": 0, "history": "all"},
        }, owner_token)
        api.expect(200, "POST", f"/v1/listings/{sub_listing['id']}/publish", {}, owner_token)

        print(f"{args.buyers} buyers subscribe and order", file=sys.stderr)
        buyers = []
        for i in range(args.buyers):
            b = Buyer(port)
            key_file = work / f"buyer{i}.x25519.sk"
            key_file.write_text(bytes(b.x25519).hex())
            key_file.chmod(0o600)
            s = b.api.expect(201, "POST", "/v1/subscriptions",
                             {"listingId": sub_listing["id"], "buyerPublicKeyHex": b.public_hex}, b.token)
            order = next(p["orderId"] for p in s["periods"])
            api.expect(200, "POST", f"/v1/orders/{order}/mark-paid", {"reference": s["id"]}, owner_token)
            o = b.api.expect(201, "POST", "/v1/orders",
                             {"listingId": ds_listing["id"], "buyerPublicKeyHex": b.public_hex}, b.token)
            api.expect(200, "POST", f"/v1/orders/{o['id']}/mark-paid", {"reference": o["id"]}, owner_token)
            deadline = time.monotonic() + 120
            while (state := b.api.expect(200, "GET", f"/v1/orders/{o['id']}", None, b.token)["state"]) != "granted":
                if state != "paid" or time.monotonic() > deadline:
                    sys.exit(f"order {o['id']} is {state}")
                time.sleep(0.05)
            link = b.api.expect(201, "POST", f"/v1/orders/{o['id']}/links", {"purpose": "release"}, b.token)
            buyers.append({"sub": s["id"], "key": key_file, "order": o["id"], "buyer_id": o["buyerId"],
                           "link": link["url"]})
            b.api.conn.close()

        # ------------------------------------------------------ the seller
        boot = None
        if not args.no_dht:
            boot_addr = work / "boot.addr"
            procs.start([binary, "p2p", "bootstrap", "--addr-file", str(boot_addr)],
                        stdout=subprocess.DEVNULL, stderr=open(work / "boot.log", "wb"))
            boot = wait_line(boot_addr, work / "boot.log")
        seller_port = free_port()
        seller_addr_file = work / "seller.addr"
        seller_cmd = [binary, "p2p", "serve", "--feed", f"{TOPIC}={chain}", "--machine-did", machine_did,
                      "--owner-private-key-file", str(keys_dir / "owner.x25519.sk"),
                      "--server", base, "--key-file", str(owner_key_file),
                      "--listen", f"/ip4/127.0.0.1/tcp/{seller_port}", "--addr-file", str(seller_addr_file)]
        if boot:
            seller_cmd += ["--bootstrap", boot]
        seller = procs.start(seller_cmd, stdout=subprocess.DEVNULL, stderr=open(work / "seller.log", "wb"))
        commands.append(" ".join(seller_cmd))
        seller_addr = wait_line(seller_addr_file, work / "seller.log")
        seller_peer = seller_addr.rsplit("/", 1)[1]
        # Every chunk file older than the runs by more than a second.
        newest = max(p.stat().st_mtime for p in chain.iterdir())
        while time.time() < newest + 2.5:
            time.sleep(0.2)

        run_no = [0]

        def subscribe_cmd(b: dict, out: Path, dht: bool) -> list[str]:
            cmd = [binary, "p2p", "subscribe", "--seller", seller_peer, "--feed", TOPIC,
                   "--subscription", b["sub"], "--buyer-private-key-file", str(b["key"]),
                   "--output", str(out)]
            return cmd + (["--bootstrap", boot] if dht else ["--seller-addr", seller_addr])

        def feed_run(n: int, dht: bool = False) -> dict:
            run_no[0] += 1
            outs = [work / f"feed-{run_no[0]}-{i}.out" for i in range(n)]
            cpu0 = process_cpu(seller.pid)
            t0 = time.perf_counter()
            fs = [Follower(procs, subscribe_cmd(buyers[i], outs[i], dht), last,
                           work / f"feed-{run_no[0]}-{i}.log") for i in range(n)]
            for f in fs:
                f.wait(args.timeout)
            t1 = max(f.last_at for f in fs)
            seller_cpu = process_cpu(seller.pid) - cpu0
            for f in fs:
                code = procs.stop(f.proc)
                if code != 0:
                    sys.exit(f"p2p subscribe exited {code}: {f.log.read_text()[-2000:]}")
            for o in outs:
                if sha256_file(o) != plain_sha:
                    sys.exit(f"{o}: not the published plaintext")
                o.unlink()
            wall = t1 - t0
            return {
                "buyers": n, "dht": dht, "wall_s": wall,
                "per_buyer_mb_s": [ciphertext / (f.last_at - t0) / MB for f in fs],
                "per_buyer_steady_mb_s": [ciphertext / (f.last_at - f.first_at) / MB for f in fs],
                "first_chunk_s": [f.first_at - t0 for f in fs],
                "aggregate_mb_s": n * ciphertext / wall / MB,
                "seller_cpu_s": seller_cpu, "seller_cores": seller_cpu / wall,
                "subscriber_cpu_s": [f.cpu for f in fs],
            }

        def best(key: str, fn) -> dict:
            kept = None
            for _ in range(args.runs):
                r, foreign = procs.measure(key, fn)
                r["foreign_cores"] = foreign
                if kept is None or r["wall_s"] < kept["wall_s"]:
                    kept = r
            return kept

        print("feed: 1 buyer", file=sys.stderr)
        results["feed_1"] = best("feed, 1 buyer", lambda: feed_run(1))
        print(f"feed: {args.buyers} buyers", file=sys.stderr)
        results[f"feed_{args.buyers}"] = best(f"feed, {args.buyers} buyers", lambda: feed_run(args.buyers))
        if boot:
            print("feed: 1 buyer through the DHT", file=sys.stderr)
            results["feed_1_dht"] = best("feed, DHT", lambda: feed_run(1, dht=True))
        commands.append(" ".join(subscribe_cmd(buyers[0], Path("OUT"), False)))

        # ------------------------------------------------------ latency
        print(f"feed latency: {args.latency_runs} runs", file=sys.stderr)
        valid, first = [], []
        for i in range(args.latency_runs):
            out = work / f"latency-{i}.out"
            f = Follower(procs, subscribe_cmd(buyers[0], out, False), 0, work / f"latency-{i}.log")
            f.wait(60)
            procs.stop(f.proc)
            if f.valid_at is None:
                sys.exit(f"no state line in {f.log}: {f.log.read_text()[-1000:]}")
            valid.append(f.valid_at - f.started)
            first.append(f.first_at - f.started)
            out.unlink(missing_ok=True)
        results["latency"] = {
            "runs": args.latency_runs,
            "to_valid_ms": [v * 1000 for v in valid], "to_first_chunk_ms": [v * 1000 for v in first],
            "valid_to_first_ms": [(b - a) * 1000 for a, b in zip(valid, first)],
        }
        if args.perf:
            results["profile"] = profile_run(procs, work, seller, subscribe_cmd(buyers[0], work / "perf.out", False),
                                             last)
        procs.stop(seller)

        # ------------------------------------------------------ reference protocol
        def reference_run() -> dict:
            run_no[0] += 1
            url_file = work / f"ref-{run_no[0]}.url"
            out = work / f"ref-{run_no[0]}"
            serve = procs.start([binary, "p2p", "serve", "--chunk-dir", str(chain), "--purchase-id", "ord_bench",
                                 "--session-id", "ses_bench", "--buyer-id", "did:peaq:bench",
                                 "--url-file", str(url_file)],
                                stdout=subprocess.DEVNULL, stderr=open(work / f"ref-{run_no[0]}.log", "wb"))
            url = wait_line(url_file, work / f"ref-{run_no[0]}.log")
            cmd = [binary, "--quiet", "p2p", "fetch", url, "--session-id", "ses_bench",
                   "--buyer-id", "did:peaq:bench", "--output-dir", str(out)]
            cpu0 = process_cpu(serve.pid)
            t0 = time.perf_counter()
            fetch = procs.start(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, err = fetch.communicate(timeout=args.timeout)
            wall = time.perf_counter() - t0
            try:
                serve_cpu = process_cpu(serve.pid) - cpu0
            except OSError:
                serve_cpu = None  # it exited after the delivery
            if fetch.returncode != 0:
                sys.exit(f"p2p fetch exited {fetch.returncode}: {err.decode()[-2000:]}")
            try:
                serve.wait(timeout=30)  # it exits once the delivery is closed
            except subprocess.TimeoutExpired:
                pass
            if procs.stop(serve) != 0:
                sys.exit(f"p2p serve --chunk-dir failed: {(work / f'ref-{run_no[0]}.log').read_text()[-2000:]}")
            got = {p.name: sha256_file(p) for p in out.glob("chunk-*.bin")}
            if got != bin_hashes:
                sys.exit("p2p fetch: the fetched ciphertext is not the chain's")
            shutil.rmtree(out)
            commands.append(" ".join(cmd[:4] + ["URL"] + cmd[5:]).replace(str(out), "DIR"))
            return {"wall_s": wall, "mb_s": ciphertext / wall / MB, "server_cpu_s": serve_cpu}

        print("reference protocol: 1 buyer", file=sys.stderr)
        results["reference_1"] = best("reference protocol", reference_run)

        # ------------------------------------------------------ HTTP release download
        def consume_run(n: int) -> dict:
            run_no[0] += 1
            outs = [work / f"consume-{run_no[0]}-{i}.out" for i in range(n)]
            cmds = [[binary, "--quiet", "consume", "--download-url", buyers[i]["link"],
                     "--buyer-private-key-file", str(buyers[i]["key"]), "--buyer-id", buyers[i]["buyer_id"],
                     "--output", str(outs[i]), "--work-dir", str(work)] for i in range(n)]
            cpu0 = process_cpu(server.pid)
            t0 = time.perf_counter()
            ps = [procs.start(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
            ends = []
            for p in ps:
                _, err = p.communicate(timeout=args.timeout)
                ends.append(time.perf_counter())
                if p.returncode != 0:
                    sys.exit(f"consume exited {p.returncode}: {err.decode()[-2000:]}")
            wall = max(ends) - t0
            market_cpu = process_cpu(server.pid) - cpu0
            for o in outs:
                if sha256_file(o) != plain_sha:
                    sys.exit(f"{o}: not the published plaintext")
                o.unlink()
            commands.append(" ".join(cmds[0]).replace(buyers[0]["link"], "LINK").replace(str(outs[0]), "OUT"))
            return {"buyers": n, "wall_s": wall, "per_buyer_mb_s": [ciphertext / (e - t0) / MB for e in ends],
                    "aggregate_mb_s": n * ciphertext / wall / MB,
                    "market_cpu_s": market_cpu, "market_cores": market_cpu / wall}

        def curl_run(n: int) -> dict:
            configs = []
            for i in range(n):
                link = buyers[i]["link"]
                # The link is the package's base URL (…/release?link=TOKEN).
                prefix, _, query = link.partition("?")
                files = json.loads(urllib_get(f"{prefix}/manifest.json?{query}"))["files"]
                cfg = work / f"curl-{i}.cfg"
                cfg.write_text("".join(f'url = "{prefix}/{name}?{query}"\noutput = "/dev/null"\n'
                                       for name in files))
                configs.append(cfg)
            cpu0 = process_cpu(server.pid)
            t0 = time.perf_counter()
            ps = [procs.start(["curl", "--silent", "--show-error", "--fail", "--config", str(c)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in configs]
            ends = []
            for p in ps:
                _, err = p.communicate(timeout=args.timeout)
                ends.append(time.perf_counter())
                if p.returncode != 0:
                    sys.exit(f"curl exited {p.returncode}: {err.decode()[-2000:]}")
            wall = max(ends) - t0
            market_cpu = process_cpu(server.pid) - cpu0
            return {"buyers": n, "files": len(files), "wall_s": wall,
                    "per_buyer_mb_s": [ciphertext / (e - t0) / MB for e in ends],
                    "aggregate_mb_s": n * ciphertext / wall / MB,
                    "market_cpu_s": market_cpu, "market_cores": market_cpu / wall}

        print("HTTP: consume --download-url, 1 buyer", file=sys.stderr)
        results["consume_1"] = best("consume, 1 buyer", lambda: consume_run(1))
        print(f"HTTP: consume --download-url, {args.buyers} buyers", file=sys.stderr)
        results[f"consume_{args.buyers}"] = best(f"consume, {args.buyers} buyers", lambda: consume_run(args.buyers))
        print("HTTP: curl, 1 buyer", file=sys.stderr)
        results["curl_1"] = best("curl, 1 buyer", lambda: curl_run(1))
        print(f"HTTP: curl, {args.buyers} buyers", file=sys.stderr)
        results[f"curl_{args.buyers}"] = best(f"curl, {args.buyers} buyers", lambda: curl_run(args.buyers))

        report(results, args, commands)
    finally:
        procs.stop_all()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def profile_run(procs: Procs, work: Path, seller: subprocess.Popen, cmd: list[str], last: int) -> dict:
    """One more 1-buyer feed run with `perf record` on the seller and the
    subscriber; the symbols with the most samples of each."""
    print("profile: perf record of the seller and a subscriber", file=sys.stderr)
    on_seller = procs.start(["perf", "record", "-F", "999", "-g", "-o", str(work / "seller.perf"),
                             "-p", str(seller.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    f = Follower(procs, cmd, last, work / "perf.log")
    on_buyer = procs.start(["perf", "record", "-F", "999", "-g", "-o", str(work / "subscriber.perf"),
                            "-p", str(f.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    f.wait(600)
    for p in (on_buyer, on_seller):
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    procs.stop(f.proc)
    out = {}
    for name in ("seller", "subscriber"):
        report = subprocess.run(["perf", "report", "-i", str(work / f"{name}.perf"), "--no-children",
                                 "--sort", "symbol", "--stdio", "--percent-limit", "1.5", "-g", "none"],
                                capture_output=True, text=True).stdout
        # "12.34%  [.] symbol   -  -": the percentage, user or kernel, the symbol.
        lines = [" ".join(re.sub(r"(\s+-)+\s*$", "", line).split())
                 for line in report.splitlines() if line.strip() and not line.startswith("#")]
        out[name] = lines[:25]
        print(f"\n{name}, perf (self time, symbols >= 1.5 %):\n" + "\n".join("    " + x for x in out[name]),
              file=sys.stderr)
    return out


def urllib_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def wait_line(file: Path, log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = file.read_text()
            if text.endswith("\n"):
                return text.strip()
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{file} not written; log: {log.read_text()[-2000:]}")


def report(r: dict, args, commands: list[str]) -> None:
    n = args.buyers
    floor = r["loopback_tcp_mb_s"]["mb_s"]
    ct = r["ciphertext_bytes"]
    print(f"\n### P2P delivery, {r['mib']} MiB in {r['chunks']} chunks ({ct / MB:.1f} MB of ciphertext), "
          f"loopback ({r['machine']}, {r['cpus']} CPUs); loopback TCP {floor:,.0f} MB/s\n")
    print("| path | buyers | wall | MB/s per buyer | aggregate MB/s | of loopback | steady MB/s per buyer "
          "| server CPU | server cores |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(label, x, server_cpu, server_cores, steady="") -> None:
        per = " / ".join(f"{v:.0f}" for v in x.get("per_buyer_mb_s", [x.get("mb_s", 0)]))
        agg = x.get("aggregate_mb_s", x.get("mb_s", 0))
        cpu = "" if server_cpu is None else f"{server_cpu:.1f} s"
        cores = "" if server_cores is None else f"{server_cores:.2f}"
        print(f"| {label} | {x.get('buyers', 1)} | {x['wall_s']:.2f} s | {per} | {agg:.0f} "
              f"| {100 * agg / floor:.1f} % | {steady} | {cpu} | {cores} |")

    for key, label in (("feed_1", "feed (`p2p subscribe --seller-addr`)"),
                       (f"feed_{n}", "feed (`p2p subscribe --seller-addr`)"),
                       ("feed_1_dht", "feed (`p2p subscribe --bootstrap`, DHT)")):
        if key in r:
            x = r[key]
            steady = " / ".join(f"{v:.0f}" for v in x["per_buyer_steady_mb_s"])
            row(label, x, x["seller_cpu_s"], x["seller_cores"], steady)
    x = r["reference_1"]
    row("reference protocol (`p2p serve --chunk-dir` + `p2p fetch`)", x, x["server_cpu_s"],
        None if x["server_cpu_s"] is None else x["server_cpu_s"] / x["wall_s"])
    for key, label in (("consume_1", "HTTP release: `consume --download-url`"),
                       (f"consume_{n}", "HTTP release: `consume --download-url`"),
                       ("curl_1", "HTTP release: curl, files only"),
                       (f"curl_{n}", "HTTP release: curl, files only")):
        x = r[key]
        row(label, x, x["market_cpu_s"], x["market_cores"])
    lat = r["latency"]
    print(f"\nFeed latency, 1 buyer, {lat['runs']} runs (median, min–max): "
          f"start → valid {statistics.median(lat['to_valid_ms']):.0f} ms "
          f"({min(lat['to_valid_ms']):.0f}–{max(lat['to_valid_ms']):.0f}); "
          f"start → chunk 0 written {statistics.median(lat['to_first_chunk_ms']):.0f} ms "
          f"({min(lat['to_first_chunk_ms']):.0f}–{max(lat['to_first_chunk_ms']):.0f}); "
          f"valid → chunk 0 {statistics.median(lat['valid_to_first_ms']):.0f} ms "
          f"({min(lat['valid_to_first_ms']):.0f}–{max(lat['valid_to_first_ms']):.0f})")
    for key in ("feed_1", f"feed_{n}"):
        x = r[key]
        print(f"{key}: subscriber CPU " + " / ".join(f"{c:.1f} s" for c in x["subscriber_cpu_s"] if c is not None)
              + "; first chunk after " + " / ".join(f"{v * 1000:.0f} ms" for v in x["first_chunk_s"]))
    print("\nCommands:\n" + "\n".join(f"    {c}" for c in dict.fromkeys(commands)))
    print("\nRESULT " + json.dumps(r))


if __name__ == "__main__":
    main()
