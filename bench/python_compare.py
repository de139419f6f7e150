"""The Python package against the reference, Python calls in one run.

    (cd python && maturin build --release -o ../target/wheels)    # or scripts/test-python
    python3 bench/python_compare.py [--mib 256] [--seconds 2]

Makes (once) a venv `target/py-bench-venv` with the reference (`peaq-os-sdk==0.12.1`),
`coincurve` (which the reference's `eth-keys` uses when present: the reference at its
best) and the newest sealstream wheel from `target/wheels`, then measures in separate
worker processes (so each peak memory is its own):

- package sign / verify, the `gps_basic` fixture: the reference with its pure-Python
  secp256k1 (what `pip install peaq-os-sdk` gives), the reference with coincurve,
  sealstream one call per package, and sealstream's batch calls (2,000 per call);
- chain build and chain decrypt of `--mib` MiB, default 256 KiB chunks: the reference
  in memory, sealstream's drop-in in memory (same API), and sealstream's streaming
  objects (`ChainWriter.write_file` from a file into a chain directory; `ChainReader`
  over it with a buyer grant, plaintext dropped as it comes) — time and peak memory
  (VmHWM) of each process;
- the floor of each from primitive speeds measured in the same run
  (`cargo run --release --example throughput -- --primitives`): one core for one call at
  a time, both cores for batches and streaming.

Prints a table and `RESULT {json}`; the JSON is kept in target/bench-python/.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from primitives import primitives  # noqa: E402  (bench/primitives.py)

CHUNK = 262_144
BUYER_ID = "did:peaq:0x000000000000000000000000000000000000b0b0"


def peak_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- workers (run inside the bench venv) --------------------------------------------------


def worker(mode: str, impl: str, args) -> dict:
    import quiet
    from fixtures import fixtures_dir

    fx = fixtures_dir()
    keys = json.loads((fx / "keys.json").read_text())
    if impl.startswith("ref"):
        import peaq_os_sdk.stream as api
    else:
        import sealstream as api
    did = keys["machineSigning"]["did"]
    out: dict = {"mode": mode, "impl": impl}
    if mode in ("sign", "verify"):
        from peaq_os_sdk.stream import EncryptionContext, SigningContext
        from peaq_os_sdk.stream.types import DataPackage, FieldRule, TopicFieldRules, UnsignedDataPayload

        if impl.startswith("ref"):
            from eth_keys import keys as ek

            out["backend"] = type(ek.PrivateKey(b"\x01" * 32).backend).__name__
        inp = json.loads((fx / "packages" / "gps_basic.input.json").read_text())
        rules_doc = json.loads((fx / "packages" / "gps_basic.rules.json").read_text())
        rules = TopicFieldRules(
            topic=rules_doc.get("topic") or "",
            rules=tuple(
                FieldRule(r["fieldPath"], r["action"], r.get("anonymizeStrategy"))
                for r in rules_doc.get("rules") or []
            ),
            default_action=rules_doc.get("defaultAction"),
        )
        payload = UnsignedDataPayload(topic=inp["topic"], fields=inp["fields"], captured_at=inp["capturedAt"])
        signing = SigningContext(private_key=keys["machineSigning"]["privateKeyHex"], backend="software",
                                 did=did, key_id=f"{did}#keys-1")
        enc = EncryptionContext(encryption_key=keys["fieldEncryptionKeyHex"], algorithm="AES-256-GCM")
        common = dict(topic_rules=rules, signing_ctx=signing, encryption_ctx=enc,
                      schema_version=inp["schemaVersion"])
        batch = 2000
        d = json.loads((fx / "packages" / "gps_basic.package.json").read_text())
        package = DataPackage(did=d["did"], timestamp=d["timestamp"], schema_version=d["schemaVersion"],
                              sequence_number=d["sequenceNumber"], payload=d["payload"],
                              signature=d["signature"], signing_key_id=d["signingKeyId"])
        if mode == "sign" and impl.endswith("batch"):
            payloads = [payload] * batch

            def one(i):
                api.build_signed_data_packages(unsigned_payloads=payloads, first_sequence_number=i * batch, **common)
            per = batch
        elif mode == "sign":
            def one(i):
                api.build_signed_data_package(unsigned_payload=payload, sequence_number=i, **common)
            per = 1
        elif impl.endswith("batch"):
            packages = [package] * batch

            def one(i):
                assert all(r.valid for r in api.verify_data_packages(packages))
            per = batch
        else:
            def one(i):
                assert api.verify_data_package(package).valid
            per = 1

        def rate():
            one(0)
            n, start = 0, time.perf_counter()
            while True:
                one(n)
                n += 1
                if n >= 3 and time.perf_counter() - start >= args.seconds:
                    return n * per / (time.perf_counter() - start)

        out["per_s"], out["foreign"] = quiet.measure(mode, rate)
        return out

    size = args.mib << 20
    sk_hex = keys["chainSigning"]["privateKeyHex"]
    owner_sk = keys["owner"]["privateKeyHex"]
    work = pathlib.Path(args.work)
    if impl == "stream":
        chain_dir = work / "chain"
        if mode == "build":
            shutil.rmtree(chain_dir, ignore_errors=True)

            def run():
                shutil.rmtree(chain_dir, ignore_errors=True)
                t0 = time.perf_counter()
                w = api.ChainWriter(
                    chain_dir,
                    owner_public_key_hex=keys["owner"]["publicKeyHex"],
                    operator_public_key_hex=keys["operator"]["publicKeyHex"],
                    machine_public_key_hex=keys["machine"]["publicKeyHex"],
                    signing_private_key_hex=sk_hex,
                    machine_did=did,
                )
                w.write_file(work / "input.bin")
                w.finish()
                return time.perf_counter() - t0
        else:
            access = work / "access"
            shutil.rmtree(access, ignore_errors=True)
            api.grant_dir(chain_dir, access, owner_private_key_hex=owner_sk, buyer_recipient_id=BUYER_ID,
                          buyer_public_key_hex=keys["buyer"]["publicKeyHex"])

            def run():
                t0 = time.perf_counter()
                n = 0
                for plain in api.ChainReader(chain_dir, access_dir=access, buyer_id=BUYER_ID,
                                             private_key_hex=keys["buyer"]["privateKeyHex"], verify=False):
                    n += len(plain)
                assert n == size
                return time.perf_counter() - t0
    else:
        from nacl.signing import SigningKey
        from peaq_os_sdk.stream import BuildChunkChainParams, ChunkingConfig

        pk_hex = bytes(SigningKey(bytes.fromhex(sk_hex)).verify_key).hex()
        block = os.urandom(1 << 20)
        data = block * args.mib
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
            config=ChunkingConfig(chunk_size=CHUNK),
        )
        if mode == "build":
            def run():
                t0 = time.perf_counter()
                api.build_chunk_chain(params)
                return time.perf_counter() - t0
        else:
            built = api.build_chunk_chain(params)
            del data, params
            chunks = built.chain.chunks
            entries = [next(k for k in c.encryption.key_recipients if k.recipient_type == "owner") for c in chunks]

            def run():
                t0 = time.perf_counter()
                n = 0
                for c, e in zip(chunks, entries):
                    n += len(api.decrypt_chunk(chunk=c, recipient_private_key_hex=owner_sk, recipient_entry=e,
                                               encrypted_data=built.encrypted_data[c.index]))
                assert n == size
                return time.perf_counter() - t0
    quiet.wait_for_quiet()
    out["seconds"], out["foreign"] = quiet.measure(mode, run)
    out["peak_mib"] = peak_mib()
    return out


# --- driver -------------------------------------------------------------------------------


def venv_python(venv: pathlib.Path) -> pathlib.Path:
    py = venv / "bin" / "python"
    wheels = sorted((REPO / "target" / "wheels").glob("sealstream-*-cp39-abi3-*.whl"), key=os.path.getmtime)
    if not wheels:
        sys.exit("no wheel in target/wheels: run (cd python && maturin build --release -o ../target/wheels)")
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "peaq-os-sdk==0.12.1", "coincurve==21.0.0"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall",
                    "--no-deps", str(wheels[-1])], check=True)
    return py


def print_table(results: dict) -> None:
    """The table of a run: each figure against its floor and against the reference."""
    prim = results["primitives"]
    s = CHUNK
    sha, aead = prim["sha256_256k_mbps"] * 1e6, prim["xchacha20poly1305_256k_mbps"] * 1e6
    wrap, unwrap = prim["sealed_box_wrap_us"] * 1e-6, prim["sealed_box_unwrap_us"] * 1e-6
    sign_us, rec_us = prim["secp256k1_eip191_sign_us"], prim["secp256k1_eip191_recover_us"]
    build_chunk = 3 * s / sha + s / aead + 3 * wrap  # 3 SHA-256 passes, the AEAD, 3 key wraps
    decrypt_chunk = s / aead + s / sha + unwrap  # the AEAD, the plaintext hash, one unwrap
    stream_decrypt_chunk = decrypt_chunk + s / sha  # + the reader's hash of the output
    mb = results["mib"] * (1 << 20) / 1e6
    floors = {
        ("sign", "ours"): 1e6 / sign_us,
        ("sign", "ours-batch"): 2e6 / sign_us,
        ("verify", "ours"): 1e6 / rec_us,
        ("verify", "ours-batch"): 2e6 / rec_us,
        ("build", "ours"): mb / (2 * s / build_chunk / 1e6),
        ("build", "stream"): mb / (2 * s / build_chunk / 1e6),
        ("decrypt", "ours"): mb / (s / decrypt_chunk / 1e6),
        ("decrypt", "stream"): mb / (2 * s / stream_decrypt_chunk / 1e6),
    }
    results["floors"] = {f"{a}/{b}": v for (a, b), v in floors.items()}
    rows = []
    for mode in ("sign", "verify"):
        r = results[mode]
        pure_rate, cc_rate = r["ref-pure"]["per_s"], r["ref-coincurve"]["per_s"]
        for impl in ("ours", "ours-batch"):
            v = r[impl]["per_s"]
            f = floors[(mode, impl)]
            rows.append((f"package {mode} ({'batch of 2,000' if 'batch' in impl else 'one per call'})",
                         f"{f:,.0f}/s", f"{v:,.0f}/s", f"{v / f:.0%}",
                         f"{pure_rate:,.0f}/s / {cc_rate:,.0f}/s",
                         f"{v / pure_rate:,.0f}x / {v / cc_rate:.1f}x"))
    for mode in ("build", "decrypt"):
        r = results[mode]
        ref_s, ref_peak = r["ref"]["seconds"], r["ref"]["peak_mib"]
        for impl, label in (("ours", "drop-in, in memory"), ("stream", "streaming objects")):
            v = r[impl]
            f = floors[(mode, impl)]
            rows.append((f"chain {mode} {results['mib']} MiB ({label})", f"{f:.3f} s", f"{v['seconds']:.3f} s, {v['peak_mib']:.0f} MiB",
                         f"{f / v['seconds']:.0%}", f"{ref_s:.3f} s, {ref_peak:.0f} MiB",
                         f"{ref_s / v['seconds']:.1f}x faster, {v['peak_mib'] / ref_peak:.2f} of its memory"))
    print("| operation | floor | sealstream | fraction of floor | reference (pure-Python secp256k1 / coincurve) | sealstream vs reference |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--venv", default=str(REPO / "target" / "py-bench-venv"))
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--table", metavar="JSON", help="print the table of a saved run (target/bench-python/*.json)")
    args = ap.parse_args()
    if args.table:
        print_table(json.loads(pathlib.Path(args.table).read_text()))
        return
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker[0], args.worker[1], args)))
        return

    py = venv_python(pathlib.Path(args.venv))
    prim = primitives()
    work = pathlib.Path(tempfile.mkdtemp(prefix="sealstream-pybench-"))
    try:
        with open(work / "input.bin", "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.mib):
                f.write(block)
        env = dict(os.environ, PEAQOS_TELEMETRY="0", DO_NOT_TRACK="1")

        def run(mode, impl, extra_env=None):
            cmd = [str(py), __file__, "--worker", mode, impl, "--mib", str(args.mib),
                   "--seconds", str(args.seconds), "--work", str(work)]
            res = subprocess.run(cmd, env={**env, **(extra_env or {})}, check=True, capture_output=True, text=True)
            line = next(l for l in res.stdout.splitlines() if l.startswith("RESULT "))
            r = json.loads(line[len("RESULT "):])
            print(f"  {mode:7} {impl:14} {json.dumps({k: v for k, v in r.items() if k not in ('mode', 'impl')})}",
                  file=sys.stderr)
            return r

        pure = {"ECC_BACKEND_CLASS": "eth_keys.backends.NativeECCBackend"}
        results = {"mib": args.mib, "primitives": prim}
        for mode in ("sign", "verify"):
            results[mode] = {
                "ref-pure": run(mode, "ref", pure),
                "ref-coincurve": run(mode, "ref"),
                "ours": run(mode, "ours"),
                "ours-batch": run(mode, "ours-batch"),
            }
        for mode in ("build", "decrypt"):
            results[mode] = {"ref": run(mode, "ref"), "ours": run(mode, "ours"), "stream": run(mode, "stream")}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print_table(results)
    out_dir = REPO / "target" / "bench-python"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
