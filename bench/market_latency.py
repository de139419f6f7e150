#!/usr/bin/env python3
"""Per-request latency of small answers from the market server
(`sealstream market serve`, SQLite and local objects), one request at a time
on one kept-alive connection. Usage:

    cargo build --release -p sealstream      # or let the script build it
    .venv/bin/python bench/market_latency.py [--requests 500] [--binary PATH] [--no-build]

Needs the venv's eth_account (SIWE and registration signatures) and PyNaCl
(to unwrap the sample chunk's key).

What it does, against one server started on a free port with a temporary
--data-dir:

- Setup, through the API: an owner and the machine sign in with Sign-In with
  Ethereum, the owner registers the machine, `sealstream publish` seals
  4 chunks of 4 KiB (with a machine-signed dataset manifest),
  `sealstream market upload` uploads them as the machine, the owner posts the
  dataset and publishes a listing with chunk 0 as its sample (its key
  disclosed).
- Then, for each of three requests, --requests timed requests one after the
  other on one HTTP/1.1 keep-alive connection (Python's http.client, which
  sets TCP_NODELAY on its side), after 20 untimed ones:
  `GET /healthz` (a JSON answer written at once);
  `GET /v1/listings/{id}/samples/0/ciphertext` (anonymous; the answer head,
  then the ciphertext streamed from the object store);
  `GET /v1/machines/{did}/topics/{topic}/chunks/0/ciphertext` as the owner
  (what `market dataset create` reads for every chunk of a range).
  A streamed answer is written in more than one piece: without TCP_NODELAY
  on the server's socket the second piece waits for the client's delayed
  ACK (about 40 ms on Linux).
- End to end, the request pattern of the reviewer's report: a chain of
  --dataset-chunks chunks of 1 KiB uploaded with `sealstream market upload`,
  then `sealstream market dataset create` over all of it, timed (process
  start, sign-in, and one ciphertext read per chunk, by the CLI's own ureq
  client).

Prints p50, p99, max and mean per request and how many took over 20 ms, a
Markdown table, the exact command, and one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from market_load import (  # noqa: E402
    OURS,
    REPO,
    Api,
    did_of,
    free_port,
    register_machine,
    run,
    sign_in,
    start_server,
)

from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402
from nacl.public import PrivateKey, SealedBox  # noqa: E402

WARMUP = 20
TOPIC = "/bench/latency"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def timed_gets(port: int, path: str, n: int, token: str | None = None) -> dict:
    """`n` GETs of `path` one after the other on one kept-alive connection;
    each must answer 200 with a body. Latency: request sent to body read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    samples = []
    size = 0
    for i in range(WARMUP + n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        elapsed = time.perf_counter() - t0
        if r.status != 200 or not body:
            sys.exit(f"GET {path} answered {r.status}: {body[:200]!r}")
        if r.will_close:
            sys.exit(f"GET {path}: the server closed the kept-alive connection")
        size = len(body)
        if i >= WARMUP:
            samples.append(elapsed * 1000)
    conn.close()
    return {"n": n, "bytes": size, "p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99),
            "max_ms": max(samples), "mean_ms": statistics.fmean(samples),
            "over_20ms": sum(1 for v in samples if v > 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500, help="timed requests per route")
    ap.add_argument("--dataset-chunks", type=int, default=1000,
                    help="chunks of the range `market dataset create` reads (0: skip)")
    ap.add_argument("--binary", type=Path, default=OURS)
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--label", default=None, help="what the binary is (default: the tree's commit)")
    args = ap.parse_args()
    if not args.no_build and args.binary == OURS:
        print("cargo build --release -p sealstream", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "sealstream"], cwd=REPO, check=True)
    binary = str(args.binary)
    if not Path(binary).exists():
        sys.exit(f"{binary} not found (cargo build --release -p sealstream)")

    work = Path(tempfile.mkdtemp(prefix="sealstream-market-latency-"))
    server = None
    try:
        keys = json.loads(run([binary, "keys", "generate", "--output-dir", str(work / "keys"), "--json"]).stdout)
        machine_key = (work / "keys" / "machine.secp256k1.sk").read_text().strip()
        machine = Account.from_key(machine_key if machine_key.startswith("0x") else "0x" + machine_key)
        owner = Account.create()
        owner_did, machine_did = did_of(owner.address), keys["machineDid"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_cmd = [binary, "market", "serve", "--listen", f"127.0.0.1:{port}",
                     "--data-dir", str(work / "data")]
        server, api = start_server(serve_cmd, port, work / "server.log")

        owner_token = sign_in(api, owner)
        register_machine(api, owner_token, owner_did, machine, keys, work / "keys")

        data = work / "input.bin"
        data.write_bytes(os.urandom(4 * 4096))
        chain = work / "chain"
        run([binary, "--quiet", "publish", "--input", str(data), "--output-dir", str(chain),
             "--owner-public-key", keys["ownerPublicKeyHex"],
             "--operator-public-key", keys["operatorPublicKeyHex"],
             "--machine-public-key", keys["machinePublicKeyHex"],
             "--signing-key-file", str(work / "keys" / "chain.ed25519.sk"),
             "--machine-did", machine_did, "--machine-key-id", keys["machineKeyId"],
             "--chunk-size", "4096", "--dataset-key-file", str(work / "keys" / "machine.secp256k1.sk"),
             "--topic", TOPIC, "--sample-chunks", "0"])
        manifest = json.loads((chain / "dataset.json").read_text())
        (chain / "dataset.json").rename(work / "dataset.json")
        run([binary, "--quiet", "market", "upload", "--server", base, "--chunk-dir", str(chain),
             "--topic", TOPIC, "--key-file", str(work / "keys" / "machine.secp256k1.sk")])
        dataset = api.expect(201, "POST", "/v1/datasets", {"manifest": manifest}, owner_token)
        owner_x25519 = PrivateKey(bytes.fromhex(
            (work / "keys" / "owner.x25519.sk").read_text().strip().removeprefix("0x")))
        envelope = json.loads((chain / "chunk-0.json").read_text())
        wrapped = next(r for r in envelope["encryption"]["keyRecipients"] if r["recipientId"] == "owner-1")
        sample_key = SealedBox(owner_x25519).decrypt(bytes.fromhex(wrapped["wrappedKeyHex"])).hex()
        listing = api.expect(201, "POST", "/v1/listings", {
            "datasetId": dataset["id"], "title": "Latency probe", "description": "Four small chunks.",
            "tags": ["bench"], "price": "100", "delivery": ["api"], "sampleChunkIndexes": [0],
            "rail": {"kind": "invoice", "currency": "EUR", "decimals": 2},
        }, owner_token)
        api.expect(200, "POST", f"/v1/listings/{listing['id']}/samples",
                   {"keys": [{"index": 0, "chunkKeyHex": sample_key}]}, owner_token)
        api.expect(200, "POST", f"/v1/listings/{listing['id']}/publish", {}, owner_token)

        topic = TOPIC.replace("/", "%2F")
        routes = [
            ("GET /healthz", "/healthz", None),
            ("GET …/samples/0/ciphertext (anonymous)", f"/v1/listings/{listing['id']}/samples/0/ciphertext", None),
            ("GET …/chunks/0/ciphertext (owner)", f"/v1/machines/{machine_did}/topics/{topic}/chunks/0/ciphertext",
             owner_token),
        ]
        results = {}
        for name, path, token in routes:
            results[name] = timed_gets(port, path, args.requests, token)
            r = results[name]
            print(f"  {name}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms", file=sys.stderr)

        dataset_create = None
        if args.dataset_chunks:
            n = args.dataset_chunks
            data = work / "range.bin"
            data.write_bytes(os.urandom(n * 1024))
            range_chain = work / "range-chain"
            run([binary, "--quiet", "publish", "--input", str(data), "--output-dir", str(range_chain),
                 "--owner-public-key", keys["ownerPublicKeyHex"],
                 "--operator-public-key", keys["operatorPublicKeyHex"],
                 "--machine-public-key", keys["machinePublicKeyHex"],
                 "--signing-key-file", str(work / "keys" / "chain.ed25519.sk"),
                 "--machine-did", machine_did, "--machine-key-id", keys["machineKeyId"],
                 "--chunk-size", "1024"])
            range_topic = "/bench/range"
            run([binary, "--quiet", "market", "upload", "--server", base, "--chunk-dir", str(range_chain),
                 "--topic", range_topic, "--key-file", str(work / "keys" / "machine.secp256k1.sk")])
            owner_key_file = work / "owner.secp256k1.sk"
            owner_key_file.write_text(bytes(owner.key).hex())
            cmd = [binary, "--quiet", "market", "dataset", "create", "--server", base,
                   "--key-file", str(owner_key_file),
                   "--owner-private-key-file", str(work / "keys" / "owner.x25519.sk"),
                   "--machine", machine_did, "--topic", range_topic,
                   "--from-index", "0", "--to-index", str(n - 1), "--json"]
            t0 = time.perf_counter()
            created = json.loads(run(cmd).stdout)
            seconds = time.perf_counter() - t0
            if created.get("chunkCount") != n:
                sys.exit(f"dataset create answered {created}")
            dataset_create = {"chunks": n, "seconds": seconds, "ms_per_chunk": seconds * 1000 / n}
            print(f"  market dataset create over {n} chunks: {seconds:.2f} s", file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    label = args.label or "tree at " + subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    print()
    print(f"{args.requests} requests per route, one at a time on one kept-alive connection; "
          f"binary {binary} ({label}); {platform.machine()}, {os.cpu_count()} CPUs")
    print()
    print("| request | answer bytes | p50 | p99 | max | mean | over 20 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['bytes']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | "
              f"{r['max_ms']:.2f} ms | {r['mean_ms']:.2f} ms | {r['over_20ms']} |")
    if dataset_create:
        d = dataset_create
        print(f"| `market dataset create`, {d['chunks']} chunks of 1 KiB | | | | | "
              f"{d['seconds']:.2f} s in all ({d['ms_per_chunk']:.2f} ms a chunk) | |")
    print()
    print(f"    .venv/bin/python bench/market_latency.py --requests {args.requests} "
          f"--dataset-chunks {args.dataset_chunks} --binary {binary} --no-build")
    print("RESULT " + json.dumps({"requests": args.requests, "binary": binary, "label": label,
                                  "routes": results, "dataset_create": dataset_create}))


if __name__ == "__main__":
    main()
