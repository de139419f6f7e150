#!/usr/bin/env bash
# Side-by-side throughput of sealstream-core and the reference (peaq-os-sdk 0.12.1)
# on this machine, in one run: builds release, runs the Rust measurement
# (crates/sealstream-core/examples/throughput.rs) and the Python one
# (bench/reference_bench.py) back to back on the same inputs, prints a table.
#
#   bench/compare.sh                 # 64 MiB chains, 2 s per per-item operation
#   MIB=16 SECONDS_PER_OP=1 bench/compare.sh
#
# Environment: MIB (chain size, default 64), SECONDS_PER_OP (default 2),
# CHAIN_RUNS (median of N chain runs, default 3), SEALSTREAM_REF_PYTHON (the
# reference venv's Python, default .venv/bin/python), SEALSTREAM_FIXTURES,
# RESULTS_DIR (where the two JSON results are kept, default target/bench-compare).
# Measurements are only meaningful on an otherwise idle machine: the script
# prints the load average before and after.
set -euo pipefail

cd "$(dirname "$0")/.."
MIB="${MIB:-64}"
SECONDS_PER_OP="${SECONDS_PER_OP:-2}"
CHAIN_RUNS="${CHAIN_RUNS:-3}"
PY="${SEALSTREAM_REF_PYTHON:-.venv/bin/python}"
RESULTS_DIR="${RESULTS_DIR:-target/bench-compare}"
export PEAQOS_TELEMETRY=0 DO_NOT_TRACK=1

if [[ ! -x "$PY" ]]; then
    echo "reference Python not found at $PY (set SEALSTREAM_REF_PYTHON)" >&2
    exit 2
fi
mkdir -p "$RESULTS_DIR"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(uname -sr)"
echo "rustc:   $(rustc --version)"
echo "python:  $("$PY" --version 2>&1), peaq-os-sdk $("$PY" -c 'import importlib.metadata as m; print(m.version("peaq-os-sdk"))')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== building release" >&2
cargo build --release --quiet -p sealstream-core --example throughput
BIN="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/throughput"

echo "== sealstream (${MIB} MiB chains)" >&2
"$BIN" --mib "$MIB" --seconds "$SECONDS_PER_OP" --chain-runs "$CHAIN_RUNS" --primitives \
    | sed -n 's/^RESULT //p' >"$RESULTS_DIR/sealstream.json"

echo "== reference (${MIB} MiB chains)" >&2
"$PY" bench/reference_bench.py --mib "$MIB" --seconds "$SECONDS_PER_OP" --chain-runs "$CHAIN_RUNS" \
    | sed -n 's/^RESULT //p' >"$RESULTS_DIR/reference.json"

echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo

"$PY" - "$RESULTS_DIR/sealstream.json" "$RESULTS_DIR/reference.json" <<'EOF'
import json
import sys

rust = json.load(open(sys.argv[1]))
ref = json.load(open(sys.argv[2]))
# (label, rust 1-thread key, rust 2-thread key, reference key, unit, target for the 2-thread figure)
rows = [
    ("chain build", "chain_build_1t_mbps", "chain_build_mbps", "chain_build_mbps", "MB/s", 500),
    ("chain verify", "chain_verify_1t_mbps", "chain_verify_mbps", "chain_verify_mbps", "MB/s", None),
    ("chain decrypt", "chain_decrypt_1t_mbps", "chain_decrypt_mbps", "chain_decrypt_mbps", "MB/s", None),
    ("package sign, gps_basic", "package_sign_per_s", "package_sign_2t_per_s", "package_sign_per_s", "/s", 20000),
    ("package sign, nested_precedence", "package_sign_nested_per_s", "package_sign_nested_2t_per_s",
     "package_sign_nested_per_s", "/s", 20000),
    ("package verify", "package_verify_per_s", "package_verify_2t_per_s", "package_verify_per_s", "/s", 8000),
    ("re-wrap", "rewrap_per_s", "rewrap_2t_per_s", "rewrap_per_s", "/s", 20000),
]
head = (f"{'operation':<32} {'unit':>5} {'sealstream 1t':>14} {'sealstream 2t':>14} {'reference':>11} "
        f"{'2t/ref':>9} {'target':>8}  met  other-load")
print(f"chains: {rust['chain_mib']} MiB (sealstream) / {ref['chain_mib']} MiB (reference), 256 KiB chunks; "
      "reference is single-threaded")
print(head)
print("-" * len(head))
for label, one, two, rk, unit, target in rows:
    a, b, c = rust[one], rust[two], ref[rk]
    ratio = b / c if c else float("nan")
    met = "" if target is None else ("yes" if b >= target else "NO")
    tgt = "" if target is None else f"{target:,}"
    busy = max(rust.get("foreign_cores", {}).get(one, 0), rust.get("foreign_cores", {}).get(two, 0),
               ref.get("foreign_cores", {}).get(rk, 0))
    print(f"{label:<32} {unit:>5} {a:>14,.1f} {b:>14,.1f} {c:>11,.1f} {ratio:>8.1f}x {tgt:>8}  {met:<4} {busy:.2f}")
print()
print("other-load: the most cores other processes used during the three measurements of the row")
print("(each measurement is retried on a busy machine; above ~0.15 the figure is depressed).")
print("chain build 1t = one sealing worker plus the thread that reads, hashes the source and links;")
print("chain verify/decrypt 1t = one worker plus the ordering thread.")
prims = rust.get("primitives")
if prims:
    print()
    print(f"sealstream primitives, one thread (other load {rust.get('primitives_foreign_cores', 0):.2f} cores):")
    for k, v in prims.items():
        print(f"  {k:<32} {v:>10.2f}")
EOF
