"""Throughput of the reference (peaq-os-sdk 0.12.1) for the operations sealstream benchmarks.

Run with the Python of the venv that holds the reference:

    PEAQOS_TELEMETRY=0 DO_NOT_TRACK=1 .venv/bin/python bench/reference_bench.py [--mib 64] [--seconds 2]

Measures, in this process (the reference is single-threaded: it has no parallel
API and the GIL would serialise one anyway):

- build_chunk_chain on --mib MiB of in-memory data, default 256 KiB chunks,
  owner/operator/machine recipients -> MB/s (MB = 10^6 bytes);
- verify_chunk_chain over that chain -> MB/s;
- decrypt_chunk over every chunk of that chain with the owner key -> MB/s;
- build_signed_data_package with the gps_basic and nested_precedence fixture
  rules -> packages/s;
- verify_data_package on the fixture packages -> packages/s;
- create_buyer_access_entry (owner unwrap, commitment check, wrap to buyer) -> entries/s.

Chain operations run --chain-runs times (default 3) and report the median;
per-item operations run for about --seconds each and report items / elapsed.
The machine may be shared: every measurement records how many cores other
processes used meanwhile (from /proc/stat) and is retried, after waiting for a
quiet machine, while that exceeds 0.15 cores; `foreign_cores` in the result
says how disturbed the kept attempt was.
Prints one line `RESULT {json}` (machine-readable, same keys as
`cargo run --release --example throughput`) and a readable table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("PEAQOS_TELEMETRY", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from peaq_os_sdk import (  # noqa: E402
    BuildChunkChainParams,
    ChunkingConfig,
    build_chunk_chain,
    build_signed_data_package,
    create_buyer_access_entry,
    decrypt_chunk,
    verify_chunk_chain,
    verify_data_package,
)
from peaq_os_sdk.stream.types.data_package import DataPackage, UnsignedDataPayload  # noqa: E402
from peaq_os_sdk.stream.types.field_rule import FieldRule, TopicFieldRules  # noqa: E402
from peaq_os_sdk.stream.types.signing_key import EncryptionContext, SigningContext  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUYER_ID = "did:peaq:0x000000000000000000000000000000000000b0b0"
CHUNK_SIZE = 262_144


from fixtures import fixtures_dir  # noqa: E402,F401  (bench/fixtures.py)


def topic_rules(doc: dict) -> TopicFieldRules:
    return TopicFieldRules(
        topic=doc.get("topic") or "",
        rules=tuple(
            FieldRule(
                field_path=r["fieldPath"],
                action=r["action"],
                anonymize_strategy=r.get("anonymizeStrategy"),
            )
            for r in doc.get("rules") or []
        ),
        default_action=doc.get("defaultAction"),
    )


def make_input(n: int) -> bytes:
    """Deterministic pseudo-random bytes (content does not matter to the ciphers)."""
    block = os.urandom(1 << 20)
    return (block * (n // len(block) + 1))[:n]


import quiet  # noqa: E402  (bench/quiet.py)

FOREIGN: dict[str, float] = {}


def measure(key: str, fn) -> float:
    """Run fn() until other processes leave the machine alone; keep the least disturbed attempt."""
    value, FOREIGN[key] = quiet.measure(key, fn)
    return value


def rate(fn, seconds: float, min_items: int = 5) -> float:
    """Call fn(i) repeatedly for about `seconds`; return calls per second."""
    fn(0)  # warm-up
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn(n)
        n += 1
        if n >= min_items and time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=64, help="chain input size in MiB (default 64)")
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per per-item operation")
    ap.add_argument("--chain-runs", type=int, default=3, help="runs of each chain operation (median)")
    args = ap.parse_args()

    fx = fixtures_dir()
    keys = json.loads((fx / "keys.json").read_text())
    sk_hex = keys["chainSigning"]["privateKeyHex"]
    pk_hex = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk_hex)).public_key().public_bytes_raw().hex()
    did = keys["machineSigning"]["did"]
    owner_sk = keys["owner"]["privateKeyHex"]
    size = args.mib << 20
    data = make_input(size)

    params = BuildChunkChainParams(
        input=data,
        owner_public_key_hex=keys["owner"]["publicKeyHex"],
        operator_public_key_hex=keys["operator"]["publicKeyHex"],
        machine_public_key_hex=keys["machine"]["publicKeyHex"],
        signing_private_key_hex=sk_hex,
        signing_public_key_hex=pk_hex,
        machine_did=did,
        machine_key_id=f"{did}#keys-1",
        did=did,
        config=ChunkingConfig(chunk_size=CHUNK_SIZE),
    )

    results: dict = {
        "impl": "reference",
        "version": "peaq-os-sdk 0.12.1",
        "python": platform.python_version(),
        "chain_mib": args.mib,
        "chunk_size": CHUNK_SIZE,
        "threads": 1,
    }

    built = {}

    def build() -> None:
        built["r"] = build_chunk_chain(params)

    quiet.wait_for_quiet()
    results["chain_build_mbps"] = measure("chain_build_mbps", lambda: size / median_time(build, args.chain_runs) / 1e6)
    chain = built["r"].chain
    enc = built["r"].encrypted_data

    def verify() -> None:
        r = verify_chunk_chain(chain, enc)
        assert r.valid, r.reason

    results["chain_verify_mbps"] = measure(
        "chain_verify_mbps", lambda: size / median_time(verify, args.chain_runs) / 1e6
    )

    owner_entries = [next(k for k in c.encryption.key_recipients if k.recipient_type == "owner") for c in chain.chunks]

    def decrypt() -> None:
        total = 0
        for c, entry in zip(chain.chunks, owner_entries):
            total += len(
                decrypt_chunk(
                    chunk=c,
                    recipient_private_key_hex=owner_sk,
                    recipient_entry=entry,
                    encrypted_data=enc[c.index],
                )
            )
        assert total == size

    results["chain_decrypt_mbps"] = measure(
        "chain_decrypt_mbps", lambda: size / median_time(decrypt, args.chain_runs) / 1e6
    )

    # Signed packages with field rules.
    signing = SigningContext(
        private_key=keys["machineSigning"]["privateKeyHex"],
        backend="software",
        did=did,
        key_id=f"{did}#keys-1",
    )
    enc_ctx = EncryptionContext(encryption_key=keys["fieldEncryptionKeyHex"], algorithm="AES-256-GCM")
    for name, key in (("gps_basic", "package_sign_per_s"), ("nested_precedence", "package_sign_nested_per_s")):
        inp = json.loads((fx / "packages" / f"{name}.input.json").read_text())
        rules = topic_rules(json.loads((fx / "packages" / f"{name}.rules.json").read_text()))
        payload = UnsignedDataPayload(topic=inp["topic"], fields=inp["fields"], captured_at=inp["capturedAt"])

        def sign(i: int, payload=payload, rules=rules, inp=inp) -> None:
            build_signed_data_package(
                unsigned_payload=payload,
                topic_rules=rules,
                signing_ctx=signing,
                encryption_ctx=enc_ctx,
                schema_version=inp["schemaVersion"],
                sequence_number=i,
            )

        results[key] = measure(key, lambda sign=sign: rate(sign, args.seconds))

    packages = []
    for p in sorted((fx / "packages").glob("*.package.json")):
        d = json.loads(p.read_text())
        packages.append(
            DataPackage(
                did=d["did"],
                timestamp=d["timestamp"],
                schema_version=d["schemaVersion"],
                sequence_number=d["sequenceNumber"],
                payload=d["payload"],
                signature=d["signature"],
                signing_key_id=d["signingKeyId"],
            )
        )

    def verify_pkg(i: int) -> None:
        assert verify_data_package(packages[i % len(packages)]).valid

    results["package_verify_per_s"] = measure("package_verify_per_s", lambda: rate(verify_pkg, args.seconds))

    buyer_pk = keys["buyer"]["publicKeyHex"]
    chunks = chain.chunks

    def rewrap(i: int) -> None:
        create_buyer_access_entry(
            chunk=chunks[i % len(chunks)],
            owner_private_key_hex=owner_sk,
            buyer_recipient_id=BUYER_ID,
            buyer_public_key_hex=buyer_pk,
        )

    results["rewrap_per_s"] = measure("rewrap_per_s", lambda: rate(rewrap, args.seconds))
    results["foreign_cores"] = FOREIGN

    print("RESULT " + json.dumps(results, sort_keys=True))
    rows = [
        (f"chain build ({args.mib} MiB)", results["chain_build_mbps"], "MB/s"),
        (f"chain verify ({args.mib} MiB)", results["chain_verify_mbps"], "MB/s"),
        (f"chain decrypt ({args.mib} MiB)", results["chain_decrypt_mbps"], "MB/s"),
        ("package sign (gps_basic)", results["package_sign_per_s"], "/s"),
        ("package sign (nested_precedence)", results["package_sign_nested_per_s"], "/s"),
        ("package verify (fixtures)", results["package_verify_per_s"], "/s"),
        ("re-wrap (create_buyer_access_entry)", results["rewrap_per_s"], "/s"),
    ]
    print("reference peaq-os-sdk 0.12.1, one thread", file=sys.stderr)
    for label, value, unit in rows:
        print(f"  {label:<38} {value:>12,.1f} {unit}", file=sys.stderr)


if __name__ == "__main__":
    main()
