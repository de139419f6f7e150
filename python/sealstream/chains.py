"""Streaming chains on directories, whole-chain verification, datasets and proofs.

These go beyond the reference, whose ``build_chunk_chain`` holds the input, every
ciphertext and every envelope in memory at once:

- :class:`ChainWriter` publishes a stream into a chain directory (the reference's layout,
  readable by ``peaqos stream consume``) with memory bounded by ``2 × parallelism ×
  chunk_size`` whatever the input, and writes a signed ``dataset.json`` (chunk count,
  Merkle root, first and head chunk ids);
- :class:`ChainReader` iterates the plaintext chunks of a chain directory as a buyer,
  verifying while it decrypts;
- :func:`verify_chain_dir` checks a chain directory as a whole: a chain cut short, extended
  or re-linked fails even when every chunk verifies on its own;
- :func:`prove_inclusion` / :func:`verify_inclusion`: one chunk against a signed dataset.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from ._native import ChainReader, ChainWriter, NativeChainError
from . import _native

__all__ = [
    "ChainReader",
    "ChainWriter",
    "ChainError",
    "grant_dir",
    "prove_inclusion",
    "verify_chain_dir",
    "verify_inclusion",
]

ChainError = NativeChainError
"""A chain directory that could not be published, read or verified (a ``ValueError``)."""

PathLike = Union[str, "os.PathLike[str]"]
JsonDoc = Union[str, bytes, Mapping[str, Any], PathLike]


def verify_chain_dir(
    chunk_dir: PathLike,
    data_dir: Optional[PathLike] = None,
    *,
    require_dataset: bool = False,
    dataset_signers: Sequence[str] = (),
    parallelism: Optional[int] = None,
) -> Dict[str, Any]:
    """Verify every chunk, the manifest's chunk count and the signed dataset.

    Returns ``{"valid", "total_chunks", "reason", "failed_at_index", "dataset_checked"}``;
    raises :class:`ChainError` only when the directory cannot be read.
    """
    return _native.verify_dir(
        os.fspath(chunk_dir),
        None if data_dir is None else os.fspath(data_dir),
        require_dataset,
        list(dataset_signers),
        parallelism,
    )


def grant_dir(
    chunk_dir: PathLike,
    out_dir: PathLike,
    *,
    owner_private_key_hex: str,
    buyer_recipient_id: str,
    buyer_public_key_hex: str,
    max_file_size: int = 512_000,
    parallelism: Optional[int] = None,
) -> Dict[str, Any]:
    """Grant a buyer every chunk of a chain directory: access files
    ``<buyer_public_key_hex>-<n>.json`` in ``out_dir``, as ``peaqos stream grant`` writes
    them. Returns ``{"chunks": n, "files": [(name, size), …]}``."""
    return _native.grant_dir(
        os.fspath(chunk_dir),
        os.fspath(out_dir),
        owner_private_key_hex=owner_private_key_hex,
        buyer_recipient_id=buyer_recipient_id,
        buyer_public_key_hex=buyer_public_key_hex,
        max_file_size=max_file_size,
        parallelism=parallelism,
    )


def prove_inclusion(chunk_dir: PathLike, index: int) -> Dict[str, Any]:
    """The Merkle inclusion proof of chunk ``index`` in the chain's signed dataset."""
    return json.loads(_native.prove_inclusion(os.fspath(chunk_dir), index))


def _json_text(doc: JsonDoc) -> str:
    if isinstance(doc, Mapping):
        return json.dumps(doc)
    if isinstance(doc, bytes):
        return doc.decode("utf-8")
    if isinstance(doc, str) and doc.lstrip().startswith("{"):
        return doc
    with open(os.fspath(doc), encoding="utf-8") as f:  # a path
        return f.read()


def verify_inclusion(
    dataset: JsonDoc,
    proof: JsonDoc,
    envelope: JsonDoc,
    ciphertext: Union[bytes, PathLike],
    *,
    dataset_signers: Sequence[str] = (),
) -> None:
    """Check one chunk against a signed dataset with its inclusion proof; raises
    :class:`ChainError` naming what does not hold.

    Each document is a dict, JSON text, or a path to a JSON file; ``ciphertext`` is the
    chunk's bytes or the path of its ``chunk-N.bin``.
    """
    if not isinstance(ciphertext, (bytes, bytearray, memoryview)):
        with open(os.fspath(ciphertext), "rb") as f:
            ciphertext = f.read()
    _native.verify_inclusion(
        _json_text(dataset), _json_text(proof), _json_text(envelope), bytes(ciphertext),
        list(dataset_signers),
    )
