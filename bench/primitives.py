"""Per-call costs of the primitives on this machine, one core each: the RESULT line's
`primitives` of `cargo run --release -p sealstream-core --example throughput --
--primitives` (SHA-256 and XChaCha20-Poly1305 MB/s on 256 KiB, sealed-box wrap and unwrap,
Ed25519 verify, secp256k1 EIP-191 sign and recover, canonical JSON, … in µs). The floors
of bench/limits.py and bench/python_compare.py are built from them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def primitives() -> dict:
    out = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "-p", "sealstream-core", "--example", "throughput", "--",
         "--primitives", "--mib", "16", "--seconds", "1", "--chain-runs", "1"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])["primitives"]
