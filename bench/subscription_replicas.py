#!/usr/bin/env python3
"""Live feeds through several market replicas against one (issue 24): the
live-subscription latency benchmark (bench/subscription_latency.py) run
for SQLite with one server, PostgreSQL with one replica and PostgreSQL
with three, the configurations interleaved and repeated, medians compared.
Usage:

    cargo build --release -p sealstream      # or let the script build it
    .venv/bin/python bench/subscription_replicas.py [--subscribers 1,100,1000]
        [--repeat 5] [--chunks 60] [--rate 4] [--no-build]

Why repeated: on this shared two-core machine one run's p99 at 1,000
subscribers moves by a factor of two from run to run (the same binary,
minutes apart), more than any difference between the configurations. Each
round runs every (subscriber count, configuration) once, the
configurations in a rotated order (none always first after the setup of
another), and the table gives per pair the median of the rounds' p99s,
with their lowest and highest, and how many runs kept up.

A run's p99 over its pairs is close to its single slowest chunk (each
chunk gives N pairs), so the table also pools every round's pairs of a
configuration and takes the p50 and p99 of the pool: the p99 of 5 × 60
chunks' pairs.

The acceptance question ("p99 within 20 % of one replica") is answered on
the pooled p99 and the medians: three replicas on PostgreSQL against one replica on
PostgreSQL (the same deployment, one process), and also against SQLite
(the single-process default), whose commits cost no round trip.

Prints a Markdown table, the exact command and one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import subscription_latency as latency  # noqa: E402

CONFIGS = [("sqlite", 1), ("postgres", 1), ("postgres", 3)]


def name(config: tuple[str, int]) -> str:
    database, replicas = config
    return f"{'SQLite' if database == 'sqlite' else 'PostgreSQL'}, {replicas} replica{'s' if replicas > 1 else ''}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", default="1,100,1000", help="comma-separated subscriber counts")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (each runs every configuration once)")
    ap.add_argument("--chunks", type=int, default=60, help="chunks uploaded per run")
    ap.add_argument("--rate", type=float, default=4.0, help="chunks per second")
    ap.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the last keys")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    args = ap.parse_args()
    counts = [int(x) for x in args.subscribers.split(",")]

    if not args.no_build:
        print("cargo build --release -p sealstream", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "sealstream"], cwd=latency.REPO, check=True)
    latency.raise_open_files(max(counts))
    rate = latency.seal_rate()
    print(f"sealed boxes on one core: {rate:,.0f}/s", file=sys.stderr)

    runs: dict[tuple[int, str, int], list[dict]] = {}
    for round_ in range(args.repeat):
        for n in counts:
            shift = (round_ + counts.index(n)) % len(CONFIGS)
            for config in CONFIGS[shift:] + CONFIGS[:shift]:
                print(f"round {round_ + 1}/{args.repeat}: {n} subscribers, {name(config)}", file=sys.stderr)
                with tempfile.TemporaryDirectory(prefix="sealstream-sub-replicas-") as work:
                    r = latency.one_run(str(latency.OURS), n, args.chunks, args.rate, Path(work),
                                        args.drain, config[0], config[1])
                runs.setdefault((n, *config), []).append(r)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def pooled(n: int, config: tuple[str, int]) -> dict:
        pool = [x for r in runs[(n, *config)] for x in r["pairs_ms"]]
        return {"p50_ms": latency.percentile(pool, 50), "p99_ms": latency.percentile(pool, 99)}

    summary = []
    print("| subscribers | configuration | pair p99, pooled | pair p50, pooled "
          "| pair p99, median of runs (lowest–highest) | all N p99, median | kept up "
          "| pooled p99 against PostgreSQL, 1 replica | against SQLite |")
    print("|---:|---|---:|---:|---:|---:|:-:|---:|---:|")
    for n in counts:
        base_pg = pooled(n, ("postgres", 1))["p99_ms"]
        base_sqlite = pooled(n, ("sqlite", 1))["p99_ms"]
        for config in CONFIGS:
            rs = runs[(n, *config)]
            p99s = [r["pair"]["p99_ms"] for r in rs]
            pool = pooled(n, config)
            row = {
                "subscribers": n, "database": config[0], "replicas": config[1], "runs": len(rs),
                "pair_pooled": pool,
                "pair_p99_ms": p99s, "pair_p99_median_ms": med(p99s),
                "all_p99_median_ms": med([r["all"]["p99_ms"] for r in rs]),
                "pair_p50_median_ms": med([r["pair"]["p50_ms"] for r in rs]),
                "kept_up": sum(1 for r in rs if r["keeps_up"]),
                "missing_pairs": sum(r["missing_pairs"] for r in rs),
            }
            summary.append(row)
            print(f"| {n:,} | {name(config)} | {pool['p99_ms']:.1f} ms | {pool['p50_ms']:.1f} ms "
                  f"| {row['pair_p99_median_ms']:.1f} ms ({min(p99s):.1f}–{max(p99s):.1f}) "
                  f"| {row['all_p99_median_ms']:.1f} ms | {row['kept_up']}/{len(rs)} "
                  f"| {100 * pool['p99_ms'] / base_pg - 100:+.0f} % "
                  f"| {100 * pool['p99_ms'] / base_sqlite - 100:+.0f} % |")
    missing = sum(r["missing_pairs"] for r in summary)
    print()
    print(f"Every chunk reached every subscriber: {'yes' if missing == 0 else f'no, {missing} pairs missing'}.")
    print(f"Command: .venv/bin/python bench/subscription_replicas.py --subscribers {args.subscribers} "
          f"--repeat {args.repeat} --chunks {args.chunks} --rate {args.rate:g}")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
