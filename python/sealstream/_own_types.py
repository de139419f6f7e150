"""sealstream's own copies of the reference's stream dataclasses.

Used only when ``peaq_os_sdk`` is not importable: same names, fields, order, defaults,
frozen and (on Python 3.10+) slotted, and the same key-redacting ``repr`` for the two
context classes, so code written against ``peaq_os_sdk.stream.types`` works unchanged.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Tuple, Union

BUYER_ACCESS_SCHEMA_VERSION = "peaq.stream.buyer-access.v1"
CHUNK_SCHEMA_VERSION = "peaq.stream.chunks.v1"
DEFAULT_BUYER_ACCESS_FILE_SIZE = 512_000

_frozen = (
    dataclass(frozen=True, slots=True) if sys.version_info >= (3, 10) else dataclass(frozen=True)
)


def _redacting_repr(secret_field: str):
    def __repr__(self) -> str:  # noqa: N807 - dataclass method
        parts = []
        for f in fields(self):
            val = getattr(self, f.name)
            if f.name == secret_field:
                val = "[REDACTED]"
            parts.append(f"{f.name}={val!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    return __repr__


@_frozen
class UnsignedDataPayload:
    topic: str
    fields: Mapping[str, Any]
    captured_at: str


@_frozen
class DataPackage:
    did: str
    timestamp: str
    schema_version: str
    sequence_number: int
    payload: Mapping[str, Any]
    signature: str
    signing_key_id: str


@_frozen
class VerificationResult:
    valid: bool
    signer_did: str
    reason: Optional[str] = None


@_frozen
class FieldRule:
    field_path: str
    action: str
    anonymize_strategy: Optional[str] = None


@_frozen
class TopicFieldRules:
    topic: str
    rules: Tuple[FieldRule, ...]
    default_action: Optional[str] = None


@dataclass(frozen=True, repr=False, **({"slots": True} if sys.version_info >= (3, 10) else {}))
class SigningContext:
    private_key: str
    backend: str
    did: str
    key_id: str

    __repr__ = _redacting_repr("private_key")


@dataclass(frozen=True, repr=False, **({"slots": True} if sys.version_info >= (3, 10) else {}))
class EncryptionContext:
    encryption_key: str
    algorithm: str

    __repr__ = _redacting_repr("encryption_key")


@_frozen
class ChunkingConfig:
    chunk_size: Optional[int] = None
    hash_algorithm: Optional[str] = None


@_frozen
class KeyRecipient:
    recipient_id: str
    recipient_type: str
    algorithm: str
    public_key_hex: str
    wrapped_key_hex: str


@_frozen
class ChunkEncryption:
    algorithm: str
    nonce: str
    key_commitment: str
    key_recipients: Tuple[KeyRecipient, ...]


@_frozen
class ChunkSignature:
    algorithm: str
    machine_did: str
    key_id: str
    public_key_hex: str
    value: str


@_frozen
class Chunk:
    schema_version: str
    chunk_id: str
    previous_chunk_id: Optional[str]
    index: int
    encrypted_data_hash: str
    plaintext_hash: str
    storage_ref: Optional[str]
    encryption: ChunkEncryption
    signature: ChunkSignature


@_frozen
class ChunkChain:
    source_hash: str
    chunks: Tuple[Chunk, ...]
    did: str
    chunk_size: int


@_frozen
class BuildChunkChainParams:
    input: Union[bytes, bytearray, memoryview, str]
    owner_public_key_hex: str
    operator_public_key_hex: str
    machine_public_key_hex: str
    signing_private_key_hex: str
    signing_public_key_hex: str
    machine_did: str
    machine_key_id: str
    did: str
    config: Optional[ChunkingConfig] = None
    owner_recipient_id: Optional[str] = None
    operator_recipient_id: Optional[str] = None
    machine_recipient_id: Optional[str] = None


@_frozen
class BuildChunkChainResult:
    chain: ChunkChain
    encrypted_data: Mapping[int, bytes]


@_frozen
class ChunkChainVerificationResult:
    valid: bool
    total_chunks: Optional[int] = None
    reason: Optional[str] = None
    failed_at_index: Optional[int] = None


@_frozen
class BuyerAccessEntry:
    chunk_id: str
    buyer: KeyRecipient
    schema_version: str = BUYER_ACCESS_SCHEMA_VERSION


@_frozen
class BuyerAccessFile:
    schema_version: str
    file_name: str
    buyer_public_key_hex: str
    entries: Tuple[BuyerAccessEntry, ...]


@_frozen
class ComputeChunkIdParams:
    previous_chunk_id: Optional[str]
    encrypted_data_hash: str
    index: int
    hash_algorithm: Optional[str] = None
