#!/usr/bin/env python3
"""Issue 24's benchmark: catalog requests/s and ingest MB/s of the market with
1, 2 and 3 replicas on one PostgreSQL database (its default durability) and
one object directory, behind nginx with docs/deploy.md's proxy settings, and
what each answer costs in CPU. Usage:

    cargo build --release -p sealstream
    TMPDIR=/dev/shm .venv/bin/python bench/market_replicas.py --no-build
        [--replicas 1,2,3] [--listings 1000] [--duration 10] [--attempts 6]

Each configuration is one run of bench/market_load.py (a new cluster, a new
catalog seeded through the proxy, the same wrk loads); the first row is one
server with no proxy, the reference the others are read against. Needs what
market_load.py needs, --database postgres's PostgreSQL, and nginx (Debian's
`nginx-light`).

Cost per answer = (CPU of every replica + PostgreSQL's processes + nginx)
÷ answers per second: CPU milliseconds per catalog request, per MB ingested.
The load generator (wrk) and the kernel's loopback work are not in it; they
are in the columns beside.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", default="1,2,3", help="replica counts, comma-separated")
    ap.add_argument("--listings", default="1000")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--attempts", type=int, default=6)
    ap.add_argument("--ingest-mib", type=int, default=512)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--db-dir", type=Path)
    args = ap.parse_args()
    counts = [int(x) for x in args.replicas.split(",") if x.strip()]
    runs = [(1, "none")] + [(n, "nginx") for n in counts]
    results = []
    for replicas, proxy in runs:
        cmd = [sys.executable, str(HERE / "market_load.py"), "--database", "postgres",
               "--replicas", str(replicas), "--proxy", proxy, "--listings", args.listings,
               "--duration", str(args.duration), "--attempts", str(args.attempts),
               "--ingest-mib", str(args.ingest_mib), "--no-build"]
        if args.db_dir:
            cmd += ["--db-dir", str(args.db_dir)]
        print(f"== {replicas} replica(s), proxy {proxy}: {' '.join(cmd[1:])}", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            sys.exit(f"market_load.py exited {r.returncode}:\n{r.stdout}")
        line = next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT "):]))
        print(r.stdout.split("RESULT ")[0], file=sys.stderr)

    first = results[0]
    print(f"Commit {first['commit']}{' (dirty)' if first['dirty'] else ''}, {first['cores']} cores, "
          f"PostgreSQL (fsync on), {first['levels'][-1]['listings']:,} listings.")
    print()
    print("| replicas | proxy | ingest | servers + db | nginx | CPU per MB | catalog | p50 | p99 | servers + db "
          "| nginx | CPU per request | wrk (ingest / catalog) | other processes |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        row = res["levels"][-1]
        i, c = row["ingest"], row["catalog"]
        print(f"| {res['replicas']} | {res['proxy'] or 'none'} | **{i['mb_per_s']:.1f} MB/s** | "
              f"{i['server_cores']:.2f} | {i['proxy_cores']:.2f} | {i['cpu_ms_per_mb']:.2f} ms | "
              f"**{c['requests_per_s']:,}/s** | {c['p50_ms']:.1f} ms | {c['p99_ms']:.1f} ms | "
              f"{c['server_cores']:.2f} | {c['proxy_cores']:.2f} | {c['cpu_ms_per_request']:.3f} ms | "
              f"{i['wrk_cores']:.2f} / {c['wrk_cores']:.2f} | {i['foreign_cores']:.2f} / {c['foreign_cores']:.2f} |")
    print(f"RESULT {json.dumps(results)}")


if __name__ == "__main__":
    main()
