#!/usr/bin/env python3
"""Whole-process comparison of `sealstream` and the reference `peaqos stream`
CLI on the same input, in one run: publish, grant, consume, wall time and peak
RSS of each process. Usage:

    bench/cli_compare.py [--bytes N] [--chunk-size N] [--runs N]

Needs `cargo build --release -p sealstream` and the reference in .venv
(`scripts/setup-test-peers`). Prints a Markdown table.
"""
import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from fixtures import fixtures_dir  # bench/fixtures.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = str(fixtures_dir() / "keyfiles")
OURS = os.path.join(ROOT, "target", "release", "sealstream")
THEIRS = os.path.join(ROOT, ".venv", "bin", "peaqos")
OWNER = "aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946"
OPERATOR = "36691395f47b6c441acedea1e0bd38a58c7e8119fdc59b39f4c3687fb880106f"
MACHINE = "8c8bf93ac82af74d7526fd1473cc752f352fbb5f8e472bcba67ec7877e4c3f2b"
BUYER = "ad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101"
DID = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1"


def run(cmd, cwd):
    """Wall seconds and peak RSS (KiB) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env={**os.environ, "PEAQOS_TELEMETRY": "0", "DO_NOT_TRACK": "1"})
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {p.stderr.decode()[-2000:]}")
    # ru_maxrss of children is a running maximum: each measured process runs in
    # its own wrapper so the figure is its own.
    return wall, before


def measured(cmd, cwd):
    """Wall seconds and peak RSS (KiB) of one process. A small wrapper process runs it and
    reports both: the child's peak RSS (`ru_maxrss` of its children, so the figure is its
    own and not this script's) and its wall time (timed inside the wrapper, so the
    wrapper's own start is not counted)."""
    wrapper = [sys.executable, "-c",
               "import resource,subprocess,sys,time;t=time.perf_counter();"
               "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);w=time.perf_counter()-t;"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,w,file=sys.stderr);"
               "sys.exit(r.returncode)"]
    p = subprocess.run(wrapper + cmd, cwd=cwd, stderr=subprocess.PIPE,
                       env={**os.environ, "PEAQOS_TELEMETRY": "0", "DO_NOT_TRACK": "1"})
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed: {p.stderr.decode()[-2000:]}")
    rss, wall = p.stderr.decode().strip().splitlines()[-1].split()
    return float(wall), int(rss)


def flows(tool, work, inp, chunk):
    pre = [OURS] if tool == "sealstream" else [THEIRS, "stream"]
    chain, access, out = (os.path.join(work, d) for d in ("chain", "access", "out.bin"))
    results = {}
    results["publish"] = measured(pre + ["publish", "--input", inp, "--output-dir", chain,
        "--owner-public-key", OWNER, "--operator-public-key", OPERATOR, "--machine-public-key", MACHINE,
        "--signing-key-file", os.path.join(FIX, "chain.ed25519.sk"), "--machine-did", DID,
        "--machine-key-id", DID + "#keys-1", "--chunk-size", str(chunk)], work)
    results["grant"] = measured(pre + ["grant", "--chunk-dir", chain, "--buyer-public-key", BUYER,
        "--buyer-id", "did:peaq:buyer", "--owner-private-key-file", os.path.join(FIX, "owner.x25519.sk"),
        "--output-dir", access], work)
    results["consume"] = measured(pre + ["consume", "--chunk-dir", chain, "--data-dir", chain,
        "--access-dir", access, "--buyer-private-key-file", os.path.join(FIX, "buyer.x25519.sk"),
        "--buyer-id", "did:peaq:buyer", "--output", out], work)
    with open(out, "rb") as f, open(inp, "rb") as g:
        if hashlib.sha256(f.read()).digest() != hashlib.sha256(g.read()).digest():
            sys.exit(f"{tool}: output differs from input")
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=64 << 20)
    ap.add_argument("--chunk-size", type=int, default=262144)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    for p in (OURS, THEIRS):
        if not os.path.exists(p):
            sys.exit(f"missing {p}: build release and run scripts/setup-test-peers")
    base = tempfile.mkdtemp(prefix="sealstream-cli-bench-")
    try:
        inp = os.path.join(base, "input.bin")
        with open(inp, "wb") as f:
            left = a.bytes
            block = os.urandom(1 << 20)
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
        best = {}
        for tool in ("sealstream", "peaqos"):
            for _ in range(a.runs):
                work = tempfile.mkdtemp(dir=base)
                for step, (wall, rss) in flows(tool, work, inp, a.chunk_size).items():
                    key = (tool, step)
                    if key not in best or wall < best[key][0]:
                        best[key] = (wall, rss)
                shutil.rmtree(work)
        mib = a.bytes / (1 << 20)
        print(f"input {a.bytes} bytes ({mib:.0f} MiB), chunk size {a.chunk_size}, best of {a.runs} run(s), nproc {os.cpu_count()}")
        print()
        print("| step | sealstream s | peaqos s | speed-up | sealstream peak RSS | peaqos peak RSS |")
        print("|---|---|---|---|---|---|")
        for step in ("publish", "grant", "consume"):
            (w1, r1), (w2, r2) = best[("sealstream", step)], best[("peaqos", step)]
            print(f"| {step} | {w1:.2f} | {w2:.2f} | {w2 / w1:.1f}x | {r1 / 1024:.0f} MiB | {r2 / 1024:.0f} MiB |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
