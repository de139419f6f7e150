"""Shared fixtures of the Python package's tests.

The oracle is the reference SDK itself (``peaq_os_sdk`` 0.12.1, imported in this same
process); the random documents are the Rust interop tests' own, drawn from the same seeds
by the ``interop-corpus`` binary of ``sealstream-testkit``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from functools import lru_cache

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

# The interop tests' machine key (crates/sealstream-core/tests/interop.rs) and fixed test keys.
SIGNING_KEY = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761"
FIELD_KEY = "0x" + "11" * 32


def _corpus_binary() -> pathlib.Path:
    explicit = os.environ.get("SEALSTREAM_INTEROP_CORPUS")
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "interop-corpus"
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "--quiet", "-p", "sealstream-testkit", "--bin", "interop-corpus"],
            cwd=REPO,
            check=True,
        )
    return path


@lru_cache(maxsize=None)
def corpus(kind: str) -> list:
    """The random cases the Rust interop test of that name uses (see interop-corpus)."""
    out = subprocess.run(
        [str(_corpus_binary()), kind], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="session")
def ref():
    """The reference's stream module (the original functions, whatever install() did)."""
    import peaq_os_sdk.stream.buyer_access as ba
    import peaq_os_sdk.stream.chunking as ch
    import sys

    import peaq_os_sdk.stream  # noqa: F401

    # `peaq_os_sdk.stream.compute_chunk_id` is the function; the module is in sys.modules.
    cid = sys.modules["peaq_os_sdk.stream.compute_chunk_id"]
    import peaq_os_sdk.stream.signing as sg
    import peaq_os_sdk.stream.verification as vf

    class Ref:
        build_signed_data_package = staticmethod(sg.build_signed_data_package)
        verify_data_package = staticmethod(vf.verify_data_package)
        build_chunk_chain = staticmethod(ch.build_chunk_chain)
        verify_chunk_chain = staticmethod(ch.verify_chunk_chain)
        decrypt_chunk = staticmethod(ch.decrypt_chunk)
        create_buyer_access_entry = staticmethod(ba.create_buyer_access_entry)
        build_buyer_access_files = staticmethod(ba.build_buyer_access_files)
        compute_chunk_id = staticmethod(cid.compute_chunk_id)

    return Ref


@pytest.fixture(scope="session")
def keys():
    """X25519 and Ed25519 test keys (PyNaCl, which the reference installs)."""
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey

    def x25519():
        k = PrivateKey.generate()
        return bytes(k).hex(), bytes(k.public_key).hex()

    sk = SigningKey.generate()
    owner, operator, machine, buyer = x25519(), x25519(), x25519(), x25519()
    return {
        "owner": owner,
        "operator": operator,
        "machine": machine,
        "buyer": buyer,
        "ed_private": bytes(sk).hex(),
        "ed_public": bytes(sk.verify_key).hex(),
    }
