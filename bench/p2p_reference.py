#!/usr/bin/env python3
"""The reference protocol (`/peaqos/stream/chunk/1.0.0`) side by side with the
reference itself, in one run: one chain of --mib MiB (256 KiB chunks, the
fixture keys, granted to the fixture buyer) delivered over loopback

  1. reference channel -> reference receiver (peaq-os-sdk 0.12.1 [p2p], with
     coincurve: the reference at its best; the receiver verifies and decrypts),
  2. `sealstream p2p serve --chunk-dir` -> reference receiver,
  3. reference channel -> `sealstream p2p fetch` (then `consume`),
  4. `sealstream p2p serve` -> `sealstream p2p fetch` (then `consume`),

each timed from starting the receiving process until it has the verified
plaintext; output checked byte for byte. The drivers are the interop tests'
(`crates/sealstream/tests/support/p2p_reference.py`). Usage:

    cargo build --release -p sealstream && scripts/setup-test-peers
    .venv/bin/python bench/p2p_reference.py [--mib 64] [--binary target/release/sealstream]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "peaq-stream-v1")
DRIVER = os.path.join(REPO, "crates", "sealstream", "tests", "support", "p2p_reference.py")
KEYS = os.path.join(FIXTURES, "keyfiles")
PY = os.path.join(REPO, ".venv", "bin", "python")
OWNER_PK = "aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946"
OPERATOR_PK = "36691395f47b6c441acedea1e0bd38a58c7e8119fdc59b39f4c3687fb880106f"
MACHINE_PK = "8c8bf93ac82af74d7526fd1473cc752f352fbb5f8e472bcba67ec7877e4c3f2b"
BUYER_PK = "ad047d9237812541968a9fbd5fc1621d4261352e99a27de75642a9a0bca3d101"
DID = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1"
BUYER_ID = "did:peaq:0x000000000000000000000000000000000000b0b0"


class Failed(Exception):
    """A process of a run failed (its output in the message)."""


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise Failed(f"{os.path.basename(cmd[1]) if len(cmd) > 1 else cmd[0]} {cmd[2] if len(cmd) > 2 else ''} "
                     f"failed ({done.returncode}): {done.stdout.strip()[-500:]}")
    return done


def wait_file(path, proc, what):
    for _ in range(2400):
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        if proc.poll() is not None:
            sys.exit(f"{what} ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    sys.exit(f"{what}: no {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "sealstream"))
    a = ap.parse_args()
    bin_ = a.binary
    tmp = tempfile.mkdtemp(prefix="sealstream-p2p-ref-")
    chain = os.path.join(tmp, "chain")
    os.makedirs(chain)
    data = os.urandom(a.mib << 20)
    with open(os.path.join(chain, "input.bin"), "wb") as f:
        f.write(data)
    run([bin_, "--quiet", "publish", "--input", os.path.join(chain, "input.bin"),
         "--output-dir", os.path.join(chain, "published"),
         "--owner-public-key", OWNER_PK, "--operator-public-key", OPERATOR_PK,
         "--machine-public-key", MACHINE_PK,
         "--signing-key-file", os.path.join(KEYS, "chain.ed25519.sk"),
         "--machine-did", DID, "--machine-key-id", DID + "#keys-1", "--chunk-size", "262144"])
    run([bin_, "--quiet", "grant", "--chunk-dir", os.path.join(chain, "published"),
         "--output-dir", os.path.join(chain, "access"), "--buyer-public-key", BUYER_PK,
         "--buyer-id", BUYER_ID, "--max-file-size", "33554432",
         "--owner-private-key-file", os.path.join(KEYS, "owner.x25519.sk")])
    ciphertext = sum(os.path.getsize(os.path.join(chain, "published", n))
                     for n in os.listdir(os.path.join(chain, "published")) if n.endswith(".bin"))
    rows = []

    def ours_serve(tag):
        url_file = os.path.join(tmp, f"{tag}.url")
        p = subprocess.Popen([bin_, "--quiet", "p2p", "serve", "--chunk-dir",
                              os.path.join(chain, "published"), "--purchase-id", "ord-1",
                              "--session-id", "sess-1", "--buyer-id", BUYER_ID,
                              "--url-file", url_file, "--timeout", "300"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return p, wait_file(url_file, p, "p2p serve")

    def ref_channel(tag):
        url_file = os.path.join(tmp, f"{tag}.url")
        p = subprocess.Popen([PY, DRIVER, "channel", FIXTURES, chain, "ord-1", "sess-1", url_file, "120"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p, wait_file(url_file, p, "reference channel")

    def ref_receive(url):
        t0 = time.monotonic()
        out = run([PY, DRIVER, "receive", FIXTURES, chain, url, "ord-1", "sess-1"])
        dt = time.monotonic() - t0
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got.get("ok") and got.get("identical"), got
        return dt

    def ours_fetch(url, tag):
        out_dir = os.path.join(tmp, f"{tag}-fetched")
        plain = os.path.join(tmp, f"{tag}.bin")
        t0 = time.monotonic()
        run([bin_, "--quiet", "p2p", "fetch", url, "--session-id", "sess-1", "--buyer-id", BUYER_ID,
             "--output-dir", out_dir])
        run([bin_, "--quiet", "consume", "--chunk-dir", out_dir, "--data-dir", out_dir,
             "--access-dir", os.path.join(chain, "access"),
             "--buyer-private-key-file", os.path.join(KEYS, "buyer.x25519.sk"),
             "--buyer-id", BUYER_ID, "--output", plain])
        dt = time.monotonic() - t0
        assert open(plain, "rb").read() == data, "output differs"
        return dt

    for tag, seller, receiver in [
        ("ref-ref", ref_channel, "ref"),
        ("ours-ref", ours_serve, "ref"),
        ("ref-ours", ref_channel, "ours"),
        ("ours-ours", ours_serve, "ours"),
    ]:
        proc, url = seller(tag)
        try:
            dt = ref_receive(url) if receiver == "ref" else ours_fetch(url, tag)
            rows.append((tag, dt, ciphertext / dt / 1e6, None))
        except Failed as e:
            rows.append((tag, None, None, str(e)))
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"\n### reference protocol, {a.mib} MiB ({ciphertext / 1e6:.1f} MB of ciphertext), loopback\n")
    print("| seller -> receiver | wall | MB/s |")
    print("|---|---:|---:|")
    names = {"ref-ref": "reference channel -> reference receiver",
             "ours-ref": "`p2p serve` -> reference receiver",
             "ref-ours": "reference channel -> `p2p fetch` + `consume`",
             "ours-ours": "`p2p serve` -> `p2p fetch` + `consume`"}
    for tag, dt, mbs, failed in rows:
        if failed:
            print(f"| {names[tag]} | failed: {failed} | |")
        else:
            print(f"| {names[tag]} | {dt:.2f} s | {mbs:.0f} |")
    print("\nRESULT " + json.dumps({t: {"wall_s": d, "mb_s": m, "failed": f} for t, d, m, f in rows}))


if __name__ == "__main__":
    main()
