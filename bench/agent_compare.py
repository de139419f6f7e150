#!/usr/bin/env python3
"""Whole-process benchmark of the edge agent (`sealstream agent run`) against the
reference's per-message work, measured in one run of this script. Usage:

    cargo build --release -p sealstream
    .venv/bin/python bench/agent_compare.py [--messages 200000] [--runs 3]
        [--big-messages 1000000] [--bag-messages 100000] [--ref-messages 3000] [--ref-seconds 10]

Needs the release binary (`target/release/sealstream`, or --binary PATH; the
script does not build it, so what is measured is what was built — it records
the repository's commit, whether its tree was dirty and the binary's mtime, or
the commit given with --commit for a binary built elsewhere) and the Python of
the venv that holds the reference (`scripts/setup-test-peers`): the reference
is measured in this process, and the MCAP bag is written with mcap-ros2-support
(`crates/sealstream/tests/support/big_bag.py`).

What it measures:

- JSON lines: --messages small messages
  `{"topic":"/gps","capturedAt":…,"fields":{"lat","lon","speed","note"}}` through
  `sealstream --quiet agent run --config MAP`, where the Data Event Map has three
  field rules on /gps (`lat` anonymize/generalize, `note` anonymize/hash, `speed`
  exclude), chunks of ≤ 1000 packages (`maxMessages: 1000`, `maxBytes: 1MiB`,
  `maxAge: 1h`), dataset manifests per 1 h window, the spool and one directory
  destination, the fixture keys. --runs runs, each with a fresh spool and
  destination; median wall time, messages/s, peak RSS (the largest of the runs)
  and CPU seconds (user + system) of the process.
- The same with --big-messages messages, once, to show that memory is bounded
  (the peak RSS should match the small input's). 0 skips it.
- An MCAP bag of --bag-messages `sensor_msgs/msg/NavSatFix` messages (big_bag.py),
  topic /gps/fix with rules on `latitude`, `longitude` (generalize) and
  `position_covariance` (exclude), --runs runs. 0 skips it.
- The reference (peaq-os-sdk 0.12.1), in this process, on one thread: for each of
  the first --ref-messages lines of the same JSON-lines input (or for about
  --ref-seconds, whichever ends first) json.loads + build_signed_data_package with
  the same three rules -> packages/s. That is only the per-message signing; the
  reference has no agent, and chunking, encryption, commits and delivery are not
  included on its side, so the ratio agent msgs/s ÷ reference packages/s is
  conservative.

After the first timed run of each input (outside the timing), the output is
checked: `sealstream verify` on the delivered chain, the number of chunks, and
for the JSON and bag inputs `grant` + `consume` + `package verify`, one package per
message, with the rules applied.

Wall time is taken around the process; peak RSS from `/usr/bin/time -v` if it
exists, else from crates/sealstream/tests/support/maxrss.py (ru_maxrss of the
child either way). The machine may be shared: every measurement records how many
cores other processes used meanwhile (from /proc/stat) and is retried, after
waiting for a quiet machine, while that exceeds 0.15 cores; `foreign_cores` in
the result says how disturbed the kept attempts were (the worst of them per
input). Work files go to $TMPDIR (default /tmp).

Prints a Markdown table and one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PEAQOS_TELEMETRY", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parent.parent
OURS = REPO / "target" / "release" / "sealstream"
BIG_BAG = REPO / "crates" / "sealstream" / "tests" / "support" / "big_bag.py"
MAXRSS = REPO / "crates" / "sealstream" / "tests" / "support" / "maxrss.py"
TIME = Path("/usr/bin/time")

# The test keys of crates/sealstream/tests/common/mod.rs and agent_run.rs.
MACHINE_SK = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761"
OWNER_PK = "aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946"
OPERATOR_PK = "36691395f47b6c441acedea1e0bd38a58c7e8119fdc59b39f4c3687fb880106f"
MACHINE_PK = "8c8bf93ac82af74d7526fd1473cc752f352fbb5f8e472bcba67ec7877e4c3f2b"
BUYER_PK = "ad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101"
DID = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1"
BUYER_ID = "did:peaq:0x000000000000000000000000000000000000b0b0"
CHUNK_MESSAGES = 1000

JSON_RULES = [
    {"fieldPath": "lat", "action": "anonymize", "anonymizeStrategy": "generalize"},
    {"fieldPath": "note", "action": "anonymize", "anonymizeStrategy": "hash"},
    {"fieldPath": "speed", "action": "exclude"},
]
BAG_RULES = [
    {"fieldPath": "latitude", "action": "anonymize", "anonymizeStrategy": "generalize"},
    {"fieldPath": "longitude", "action": "anonymize", "anonymizeStrategy": "generalize"},
    {"fieldPath": "position_covariance", "action": "exclude"},
]


from fixtures import fixtures_dir  # noqa: E402,F401  (bench/fixtures.py)


# ---------------------------------------------------------------- quiet machine

from quiet import measure, wait_for_quiet  # noqa: E402  (bench/quiet.py)


# ---------------------------------------------------------------- inputs


def captured_at(i: int) -> str:
    """2026-11-21T10:00:00.000Z plus i milliseconds."""
    s, ms = divmod(i, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"2026-11-21T{10 + h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"


def write_jsonl(path: Path, n: int) -> int:
    with open(path, "w") as f:
        for i in range(n):
            f.write(
                '{"topic":"/gps","capturedAt":"%s","fields":{"lat":%.6f,"lon":%.6f,"speed":%.1f,"note":"fix %d"}}\n'
                % (captured_at(i), 52.52 + (i % 10000) * 1e-6, 13.405 + (i % 7919) * 1e-6, (i % 300) / 10, i)
            )
    return path.stat().st_size


def rules_yaml(rules: list[dict]) -> str:
    return "".join(
        "      - {" + ", ".join(f"{k}: {v}" for k, v in r.items()) + "}\n" for r in rules
    )


def write_map(work: Path, fx: Path, source: str, topic: str, schema: str, rules: list[dict]) -> Path:
    (work / "keys").mkdir(parents=True, exist_ok=True)
    (work / "keys" / "machine.secp256k1.sk").write_text(MACHINE_SK)
    shutil.copy(fx / "keyfiles" / "chain.ed25519.sk", work / "keys" / "chain.ed25519.sk")
    text = (
        "machine:\n"
        f"  did: {DID}\n"
        "  signingKeyFile: keys/machine.secp256k1.sk\n"
        "  chainKeyFile: keys/chain.ed25519.sk\n"
        "recipients:\n"
        f"  owner: {OWNER_PK}\n"
        f"  operator: {OPERATOR_PK}\n"
        f"  machine: {MACHINE_PK}\n"
        "chunking:\n"
        "  maxBytes: 1MiB\n"
        f"  maxMessages: {CHUNK_MESSAGES}\n"
        "  maxAge: 1h\n"
        "datasets:\n"
        "  window: 1h\n"
        "spool:\n"
        "  dir: spool\n"
        "sources:\n"
        f"  src: {source}\n"
        "topics:\n"
        f"  - name: {topic}\n"
        "    source: src\n"
        f'    schemaVersion: "{schema}"\n'
        "    rules:\n" + rules_yaml(rules) + "destinations:\n"
        "  - {type: directory, path: out}\n"
    )
    path = work / "map.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- sealstream


def run_process(cmd: list[str]) -> dict:
    """Wall seconds, peak RSS (KiB) and CPU seconds of one process."""
    if TIME.exists():
        wrapped = [str(TIME), "-v"] + cmd
    else:
        wrapped = [sys.executable, str(MAXRSS), "--"] + cmd
    t0 = os.times()
    start = time.perf_counter()
    p = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    t1 = os.times()
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed ({p.returncode}):\n{err[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err) or re.search(r"maxrss_kib=(\d+)", err)
    if not m:
        sys.exit(f"no peak RSS in:\n{err[-2000:]}")
    cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    return {"wall_s": wall, "peak_rss_kib": int(m.group(1)), "cpu_s": cpu}


def ok(cmd: list, what: str) -> str:
    p = subprocess.run([str(c) for c in cmd], capture_output=True)
    if p.returncode != 0:
        sys.exit(f"{what} failed ({p.returncode}):\n{p.stdout.decode()[-2000:]}\n{p.stderr.decode()[-2000:]}")
    return p.stdout.decode()


def check_output(work: Path, fx: Path, n: int, deep: bool, expect) -> None:
    """The delivered chain verifies and holds n packages with the rules applied."""
    chains = sorted(p for p in (work / "out").iterdir() if p.is_dir())
    if len(chains) != 1:
        sys.exit(f"expected one chain at the destination, found {chains}")
    chain = chains[0]
    chunks = len(list(chain.glob("chunk-*.json")))
    want = -(-n // CHUNK_MESSAGES)
    if chunks != want:
        sys.exit(f"{chain}: {chunks} chunks, expected {want}")
    ok([OURS, "--quiet", "verify", "--chunk-dir", chain], "verify")
    if not deep:
        return
    access = work / "access"
    ok([OURS, "--quiet", "grant", "--chunk-dir", chain, "--output-dir", access, "--buyer-public-key", BUYER_PK,
        "--buyer-id", BUYER_ID, "--owner-private-key-file", fx / "keyfiles" / "owner.x25519.sk"], "grant")
    out = work / "packages.jsonl"
    ok([OURS, "--quiet", "consume", "--chunk-dir", chain, "--data-dir", chain, "--access-dir", access,
        "--buyer-id", BUYER_ID, "--buyer-private-key-file", fx / "keyfiles" / "buyer.x25519.sk",
        "--output", out], "consume")
    count = 0
    with open(out) as f:
        for i, line in enumerate(f):
            count += 1
            if i % 997 == 0:
                p = json.loads(line)
                if p["sequenceNumber"] != i:
                    sys.exit(f"package {i}: sequence number {p['sequenceNumber']}")
                expect(i, p["payload"])
    if count != n:
        sys.exit(f"{count} packages delivered, expected {n}")
    ok([OURS, "--quiet", "package", "verify", out], "package verify")
    out.unlink()


def expect_json(i: int, payload: dict) -> None:
    if "speed" in payload or payload["lat"].get("strategy") != "generalize" \
            or payload["note"].get("strategy") != "hash" or not isinstance(payload["lon"], float):
        sys.exit(f"package {i}: rules not applied: {payload}")


def expect_bag(i: int, payload: dict) -> None:
    if "position_covariance" in payload or payload["latitude"].get("strategy") != "generalize" \
            or payload["longitude"].get("strategy") != "generalize":
        sys.exit(f"package {i}: rules not applied: {payload}")


def bench_agent(label: str, base: Path, fx: Path, source: str, topic: str, schema: str, rules, n: int,
                runs: int, deep: bool, expect) -> dict:
    results = []
    worst = 0.0
    for r in range(runs):
        work = base / f"{label}-{r}"
        cfg = write_map(work, fx, source, topic, schema, rules)

        def once(work=work, cfg=cfg):
            for d in ("spool", "out"):
                shutil.rmtree(work / d, ignore_errors=True)
            subprocess.run(["sync"])
            return run_process([str(OURS), "--quiet", "agent", "run", "--config", str(cfg)])

        wait_for_quiet()
        res, foreign = measure(f"{label} run {r + 1}", once)
        worst = max(worst, foreign)
        results.append(res)
        print(
            f"  {label} run {r + 1}/{runs}: {res['wall_s']:.2f} s, {n / res['wall_s']:,.0f} msgs/s, "
            f"peak RSS {res['peak_rss_kib'] / 1024:.1f} MiB, CPU {res['cpu_s']:.2f} s, other processes {foreign:.2f} cores",
            file=sys.stderr,
        )
        if r == 0:
            check_output(work, fx, n, deep, expect)
        shutil.rmtree(work)
    wall = statistics.median(x["wall_s"] for x in results)
    return {
        "messages": n,
        "runs": runs,
        "wall_s": round(wall, 3),
        "walls_s": [round(x["wall_s"], 3) for x in results],
        "msgs_per_s": round(n / wall),
        "peak_rss_kib": max(x["peak_rss_kib"] for x in results),
        "cpu_s": round(statistics.median(x["cpu_s"] for x in results), 2),
        "foreign_cores": worst,
    }


# ---------------------------------------------------------------- reference


def bench_reference(fx: Path, inp: Path, max_messages: int, seconds: float) -> dict:
    from peaq_os_sdk import build_signed_data_package
    from peaq_os_sdk.stream.types.data_package import UnsignedDataPayload
    from peaq_os_sdk.stream.types.field_rule import FieldRule, TopicFieldRules
    from peaq_os_sdk.stream.types.signing_key import EncryptionContext, SigningContext

    keys = json.loads((fx / "keys.json").read_text())
    ms = keys["machineSigning"]
    signing = SigningContext(private_key=ms["privateKeyHex"], backend="software", did=ms["did"],
                             key_id=f"{ms['did']}#keys-1")
    enc = EncryptionContext(encryption_key=keys["fieldEncryptionKeyHex"], algorithm="AES-256-GCM")
    rules = TopicFieldRules(
        topic="/gps",
        rules=tuple(FieldRule(field_path=r["fieldPath"], action=r["action"],
                              anonymize_strategy=r.get("anonymizeStrategy")) for r in JSON_RULES),
        default_action=None,
    )
    with open(inp) as f:
        lines = [f.readline() for _ in range(max_messages)]

    def build(i: int):
        m = json.loads(lines[i])
        return build_signed_data_package(
            unsigned_payload=UnsignedDataPayload(topic=m["topic"], fields=m["fields"], captured_at=m["capturedAt"]),
            topic_rules=rules,
            signing_ctx=signing,
            encryption_ctx=enc,
            schema_version="1.0.0",
            sequence_number=i,
        )

    p = build(0)  # warm-up, and a check that the rules are the same
    if "speed" in p.payload or p.payload["lat"].get("strategy") != "generalize" \
            or p.payload["note"].get("strategy") != "hash":
        sys.exit(f"reference: unexpected payload {p.payload}")

    def run():
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while n < max_messages:
            build(n)
            n += 1
            if time.perf_counter() >= deadline:
                break
        return n, time.perf_counter() - start

    wait_for_quiet()
    (n, elapsed), foreign = measure("reference", run)
    return {"packages": n, "seconds": round(elapsed, 2), "packages_per_s": round(n / elapsed, 1),
            "threads": 1, "foreign_cores": foreign}


# ---------------------------------------------------------------- main


def git(*args: str) -> str:
    p = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return p.stdout.strip()


def main() -> None:
    global OURS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=OURS, help="the sealstream binary (default target/release/sealstream)")
    ap.add_argument("--commit", help="the commit --binary was built from, if not this repository's HEAD "
                    "(recorded instead of HEAD and its dirty flag)")
    ap.add_argument("--messages", type=int, default=200_000, help="JSON-lines messages (default 200000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per input (median; default 3)")
    ap.add_argument("--big-messages", type=int, default=1_000_000,
                    help="one run on this many JSON-lines messages for the memory bound (0: skip)")
    ap.add_argument("--bag-messages", type=int, default=100_000, help="MCAP bag messages (0: skip)")
    ap.add_argument("--ref-messages", type=int, default=3000, help="reference sample (messages)")
    ap.add_argument("--ref-seconds", type=float, default=10.0, help="reference time budget")
    a = ap.parse_args()
    OURS = a.binary.resolve()
    if not OURS.exists():
        sys.exit(f"missing {OURS}: cargo build --release -p sealstream")
    try:
        import peaq_os_sdk  # noqa: F401
    except ImportError:
        sys.exit("the reference is not importable: run with .venv/bin/python (scripts/setup-test-peers)")
    fx = fixtures_dir()
    base = Path(tempfile.mkdtemp(prefix="sealstream-agent-bench-"))
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "commit": a.commit or git("rev-parse", "--short", "HEAD"),
        "dirty": False if a.commit else bool(git("status", "--porcelain", "--untracked-files=no")),
        "binary": str(OURS),
        "binary_mtime": datetime.datetime.fromtimestamp(OURS.stat().st_mtime).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "peak_rss_from": "/usr/bin/time -v" if TIME.exists() else "maxrss.py",
        "tmpdir": str(base.parent),
        "chunk_messages": CHUNK_MESSAGES,
    }
    try:
        inp = base / "input.jsonl"
        size = write_jsonl(inp, a.messages)
        results["json_bytes_per_message"] = round(size / a.messages, 1)
        print(f"input: {a.messages} JSON lines, {size / a.messages:.0f} bytes each", file=sys.stderr)
        src = "{type: jsonl, path: " + str(inp) + "}"
        results["agent_json"] = bench_agent("json", base, fx, src, "/gps", "1.0.0", JSON_RULES, a.messages,
                                            a.runs, True, expect_json)

        results["reference"] = bench_reference(fx, inp, min(a.ref_messages, a.messages), a.ref_seconds)
        print(f"  reference: {results['reference']['packages_per_s']:,.1f} packages/s", file=sys.stderr)
        results["ratio"] = round(results["agent_json"]["msgs_per_s"] / results["reference"]["packages_per_s"], 1)

        if a.big_messages:
            big = base / "input-big.jsonl"
            write_jsonl(big, a.big_messages)
            inp.unlink()
            src = "{type: jsonl, path: " + str(big) + "}"
            results["agent_json_big"] = bench_agent("json-big", base, fx, src, "/gps", "1.0.0", JSON_RULES,
                                                    a.big_messages, 1, False, expect_json)
            big.unlink()

        if a.bag_messages:
            bag = base / "run.mcap"
            ok([sys.executable, BIG_BAG, bag, a.bag_messages], "big_bag.py")
            results["bag_bytes"] = bag.stat().st_size
            src = "{type: mcap, path: " + str(bag) + "}"
            results["agent_bag"] = bench_agent("bag", base, fx, src, "/gps/fix", "2.0.0", BAG_RULES,
                                               a.bag_messages, a.runs, True, expect_bag)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results["loadavg"] = os.getloadavg()[0]

    def row(label: str, r: dict) -> str:
        return (f"| {label} | {r['messages']:,} | {r['runs']} | {r['wall_s']:.2f} s | {r['msgs_per_s']:,} "
                f"| {r['peak_rss_kib'] / 1024:.1f} MiB | {r['cpu_s']:.2f} s | {r['foreign_cores']:.2f} |")

    print(f"sealstream {results['commit']}{' (dirty tree)' if results['dirty'] else ''}, nproc {results['nproc']}, "
          f"work files in {results['tmpdir']}, chunks of {CHUNK_MESSAGES} messages")
    print()
    print("| input | messages | runs | wall (median) | msgs/s | peak RSS | CPU (user+sys) | other processes (cores) |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("JSON lines, 3 rules", results["agent_json"]))
    if "agent_json_big" in results:
        print(row("JSON lines, 3 rules (memory bound)", results["agent_json_big"]))
    if "agent_bag" in results:
        print(row("MCAP bag (NavSatFix), 3 rules", results["agent_bag"]))
    ref = results["reference"]
    print()
    print(f"reference peaq-os-sdk 0.12.1, build_signed_data_package with the same 3 rules, one thread: "
          f"{ref['packages_per_s']:,.1f} packages/s ({ref['packages']} packages in {ref['seconds']} s, "
          f"other processes {ref['foreign_cores']:.2f} cores)")
    print(f"agent msgs/s ÷ reference packages/s = {results['ratio']}x (conservative: the reference side only signs)")
    print("RESULT " + json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
