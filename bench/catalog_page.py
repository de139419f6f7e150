#!/usr/bin/env python3
"""Server time of the market's catalog page (`GET /`, server-rendered HTML,
issue 20) over 1,000 published listings. Usage:

    cargo build --release -p sealstream      # or let the script build it
    .venv/bin/python bench/catalog_page.py [--listings 1000] [--requests 300]
        [--binary PATH] [--no-build] [--keep]

Needs the venv's eth_account (SIWE and registration signatures) and PyNaCl
(to unwrap sample chunk keys), as bench/market_load.py, whose setup and
catalog it reuses.

What it does, against one `sealstream market serve` (SQLite and local
objects in a temporary --data-dir, `--log-format json`) on a free port:

- Setup, through the API (bench/market_load.py's `seed_catalog`): an owner
  and the machine sign in with SIWE, the owner registers the machine, 8
  small machine-signed chains are uploaded with `sealstream market upload`
  and a signed dataset posted for each, then --listings listings are created
  and published over them (titles, tags, domains and prices drawn from
  market_load's vocabulary; a sample on one in ten).
- Then, for each page below, 20 untimed and --requests timed anonymous
  GETs one after the other on one kept-alive HTTP/1.1 connection
  (market_latency.py's `timed_gets`: each must answer 200 with a body).
  **Server time** is what the server's own request log says for each of
  them (`latency_ms` of its `request` line: from the request's arrival to
  the answer's head; a page is rendered whole before its head is sent);
  the client's time (request sent to the whole body read, on loopback) is
  reported beside it.

Pages: the newest listings (`/`), a one-word search, a two-word search, a
search with a domain filter sorted by price, and a price range (each 20
results a page, as the page asks the catalog).

Prints a Markdown table, the exact command and one line `RESULT {json}`.
The target is a server time under 100 ms (p99).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from market_latency import WARMUP, percentile, timed_gets  # noqa: E402
from market_load import (  # noqa: E402
    OURS,
    REPO,
    SILENT_EVM_RPC,
    did_of,
    free_port,
    register_machine,
    run,
    seed_catalog,
    sign_in,
    start_server,
)

from eth_account import Account  # noqa: E402

TARGET_MS = 100.0

PAGES = [
    ("newest listings", "/"),
    ("one word", "/?q=moisture"),
    ("two words", "/?q=soil+lyon"),
    ("word, domain, by price", "/?q=lyon&domain=energy&sort=price"),
    ("price range", f"/?minPrice={10**17}&maxPrice={3 * 10**18}"),
]


def request_lines(log: Path, start: int) -> tuple[list[dict], int]:
    """The server's request log lines (JSON) for `GET /` after byte `start`
    of `log`, and the offset where they end."""
    with open(log, "rb") as f:
        f.seek(start)
        raw = f.read()
    out = []
    for line in raw.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        fields = event.get("fields", event)
        if fields.get("message") == "request" and fields.get("route") == "/" and fields.get("method") == "GET":
            out.append(fields)
    return out, start + len(raw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listings", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=300, help="timed requests per page")
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

    work = Path(tempfile.mkdtemp(prefix="sealstream-catalog-page-"))
    server = None
    results = {}
    offset = 0
    try:
        keys = json.loads(run([binary, "keys", "generate", "--output-dir", str(work / "keys"), "--json"]).stdout)
        machine_key = (work / "keys" / "machine.secp256k1.sk").read_text().strip()
        machine = Account.from_key(machine_key if machine_key.startswith("0x") else "0x" + machine_key)
        owner = Account.create()
        owner_did = did_of(owner.address)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_cmd = [binary, "market", "serve", "--listen", f"127.0.0.1:{port}",
                     "--data-dir", str(work / "data"), "--log-format", "json", *SILENT_EVM_RPC]
        if "--write-rate" in run([binary, "market", "serve", "--help"]).stdout:
            # One owner seeds every listing, faster than the default write limit.
            serve_cmd += ["--write-rate", "1000000"]
        log = work / "server.log"
        server, api = start_server(serve_cmd, port, log)
        owner_token = sign_in(api, owner)
        register_machine(api, owner_token, owner_did, machine, keys, work / "keys")
        _, seed_seconds = seed_catalog(binary, base, api, work, keys, owner, owner_token, args.listings)

        for name, path in PAGES:
            with urllib.request.urlopen(f"{base}{path}", timeout=60) as answer:
                body = answer.read().decode()
            time.sleep(0.5)  # the server writes a request's line once it has answered
            _, offset = request_lines(log, offset)
            client = timed_gets(port, path, args.requests)
            lines = []
            for _ in range(50):
                time.sleep(0.1)
                more, offset = request_lines(log, offset)
                lines += more
                if len(lines) >= WARMUP + args.requests:
                    break
            if len(lines) != WARMUP + args.requests or any(line.get("status") != 200 for line in lines):
                sys.exit(f"{path}: {len(lines)} request lines, expected {WARMUP + args.requests} of status 200")
            server_ms = [float(line["latency_ms"]) for line in lines[WARMUP:]]
            results[name] = {
                "path": path, "bytes": client["bytes"], "results": body.count('<li class="result">'),
                "server_p50_ms": percentile(server_ms, 50), "server_p99_ms": percentile(server_ms, 99),
                "server_max_ms": max(server_ms),
                "client_p50_ms": client["p50_ms"], "client_p99_ms": client["p99_ms"],
            }
            print(f"  {path}: server p50 {results[name]['server_p50_ms']:.2f} ms, "
                  f"p99 {results[name]['server_p99_ms']:.2f} ms", file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}", file=sys.stderr)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    met = all(r["server_p99_ms"] < TARGET_MS for r in results.values())
    print()
    print(f"{args.listings} published listings; {args.requests} timed requests per page, one at a time on "
          f"one kept-alive connection; binary {binary} (tree at {commit}); {platform.machine()}, "
          f"{os.cpu_count()} CPUs. Seeding took {seed_seconds:.1f} s.")
    print()
    print("| page | path | results | HTML bytes | server p50 | server p99 | server max | client p50 | client p99 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | `{r['path']}` | {r['results']} | {r['bytes']} | {r['server_p50_ms']:.2f} ms | "
              f"**{r['server_p99_ms']:.2f} ms** | {r['server_max_ms']:.2f} ms | {r['client_p50_ms']:.2f} ms | "
              f"{r['client_p99_ms']:.2f} ms |")
    print()
    print(f"Target: server time < {TARGET_MS:.0f} ms (p99) on every page: {'met' if met else 'MISSED'}.")
    print(f"    .venv/bin/python bench/catalog_page.py --listings {args.listings} --requests {args.requests} "
          f"--binary {binary} --no-build")
    print("RESULT " + json.dumps({"date": datetime.date.today().isoformat(), "commit": commit,
                                  "listings": args.listings, "requests": args.requests,
                                  "pages": results, "target_met": met}))


if __name__ == "__main__":
    main()
