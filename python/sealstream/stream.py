"""Drop-in replacements for the functions of ``peaq_os_sdk.stream``.

Same names, same signatures (keyword-only where the reference's are), same dataclasses in
and out, same errors (class, message, ``field``, ``constraint``), same outputs — byte for
byte where the reference is deterministic. The work runs in Rust (``sealstream._native``)
without the GIL: sign, verify, chain build and verify, grant and decrypt use every core.

Functions: :func:`build_signed_data_package`, :func:`verify_data_package`,
:func:`build_chunk_chain`, :func:`verify_chunk_chain`, :func:`create_buyer_access_entry`,
:func:`build_buyer_access_files`, :func:`decrypt_chunk`, :func:`compute_chunk_id`; and two
batch functions the reference does not have, :func:`build_signed_data_packages` and
:func:`verify_data_packages`.
"""

from __future__ import annotations

from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._family import (
    BUYER_ACCESS_SCHEMA_VERSION,
    BuildChunkChainParams,
    BuildChunkChainResult,
    BuyerAccessEntry,
    BuyerAccessFile,
    Chunk,
    ChunkChain,
    ChunkChainVerificationResult,
    ChunkEncryption,
    ChunkSignature,
    ComputeChunkIdParams,
    DataPackage,
    DEFAULT_BUYER_ACCESS_FILE_SIZE,
    EncryptionContext,
    KeyRecipient,
    SigningContext,
    StreamSigningError,
    StreamValidationError,
    TopicFieldRules,
    UnsignedDataPayload,
    VerificationResult,
)

# The reference's eight functions that this module replaces (what `install()` patches).
REFERENCE_FUNCTIONS = (
    "build_signed_data_package",
    "verify_data_package",
    "build_chunk_chain",
    "verify_chunk_chain",
    "create_buyer_access_entry",
    "build_buyer_access_files",
    "decrypt_chunk",
    "compute_chunk_id",
)

__all__ = [
    "build_signed_data_package",
    "build_signed_data_packages",
    "verify_data_package",
    "verify_data_packages",
    "build_chunk_chain",
    "verify_chunk_chain",
    "create_buyer_access_entry",
    "build_buyer_access_files",
    "decrypt_chunk",
    "compute_chunk_id",
]

DEFAULT_CHUNK_SIZE = 262_144
DEFAULT_HASH_ALGORITHM = "sha-256"
_DEFAULT_OWNER_RECIPIENT_ID = "owner-1"
_DEFAULT_OPERATOR_RECIPIENT_ID = "operator-1"
_DEFAULT_MACHINE_RECIPIENT_ID = "machine-1"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _reraise(error: Exception) -> Exception:
    """The reference's exception for a native one (key material is never in the message)."""
    if isinstance(error, _native.NativeValidationError):
        message, field, constraint = error.args
        return StreamValidationError(message, field, constraint)
    if isinstance(error, _native.NativeSigningError):
        return StreamSigningError(error.args[0])
    return error


# --- packages ---------------------------------------------------------------------------


def build_signed_data_package(
    *,
    unsigned_payload: UnsignedDataPayload,
    topic_rules: TopicFieldRules,
    signing_ctx: SigningContext,
    encryption_ctx: EncryptionContext,
    schema_version: str,
    sequence_number: int,
) -> DataPackage:
    """Apply the field rules to the payload and sign it (EIP-191 over canonical JSON).

    Raises:
        StreamValidationError: When required parameters are missing.
        StreamSigningError: When the signing private key is invalid.
    """
    try:
        t = _native.sign_package(
            unsigned_payload, topic_rules, signing_ctx, encryption_ctx, schema_version,
            sequence_number,
        )
    except (_native.NativeValidationError, _native.NativeSigningError) as e:
        raise _reraise(e) from None
    return DataPackage(*t)


def build_signed_data_packages(
    *,
    unsigned_payloads: Sequence[UnsignedDataPayload],
    topic_rules: TopicFieldRules,
    signing_ctx: SigningContext,
    encryption_ctx: EncryptionContext,
    schema_version: str,
    first_sequence_number: int,
) -> List[DataPackage]:
    """Sign many payloads of one topic in one call, numbered from ``first_sequence_number``.

    Each package equals what :func:`build_signed_data_package` returns for the same
    payload and number; the batch is signed on every core. The first failure (in input
    order) is raised and nothing is returned.
    """
    try:
        ts = _native.sign_packages(
            unsigned_payloads, topic_rules, signing_ctx, encryption_ctx, schema_version,
            first_sequence_number,
        )
    except (_native.NativeValidationError, _native.NativeSigningError) as e:
        raise _reraise(e) from None
    return [DataPackage(*t) for t in ts]


def verify_data_package(data_package: DataPackage) -> VerificationResult:
    """Recover the EIP-191 signer and compare it with the package's DID."""
    try:
        valid, reason = _native.verify_package(data_package)
    except _native.NativeValidationError as e:
        raise _reraise(e) from None
    return VerificationResult(valid=valid, signer_did=data_package.did, reason=reason)


def verify_data_packages(data_packages: Sequence[DataPackage]) -> List[VerificationResult]:
    """:func:`verify_data_package` for each package, on every core, in input order."""
    try:
        results = _native.verify_packages(data_packages)
    except _native.NativeValidationError as e:
        raise _reraise(e) from None
    return [
        VerificationResult(valid=valid, signer_did=p.did, reason=reason)
        for p, (valid, reason) in zip(data_packages, results)
    ]


# --- argument checks, as the reference makes them ----------------------------------------


def _parse_hex(value: str, field: str) -> bytes:
    normalized = value[2:] if value.startswith("0x") else value
    if len(normalized) == 0 or len(normalized) % 2 != 0 or not _HEX_DIGITS.issuperset(normalized):
        raise StreamValidationError("Invalid hex encoding", field, "even-length hexadecimal string")
    return bytes.fromhex(normalized)


def _signing_hex(value: str, field: str) -> bytes:
    try:
        return _parse_hex(value, field)
    except StreamValidationError as error:
        raise StreamSigningError(f"Invalid {field} encoding", cause=error) from error


def _x25519_public(value: str) -> None:
    if len(_parse_hex(value, "public_key_hex")) != 32:
        raise StreamValidationError(
            "Invalid X25519 public key length", "public_key_hex", "32-byte X25519 public key"
        )


def _x25519_private(value: str) -> None:
    if len(_parse_hex(value, "recipient_private_key_hex")) != 32:
        raise StreamValidationError(
            "Invalid X25519 private key length",
            "recipient_private_key_hex",
            "32-byte X25519 private key",
        )


def _non_empty(value: str, field: str) -> None:
    if value.strip() == "":
        raise StreamValidationError(f"{field} must be a non-empty string", field, "non-empty string")


def _hash_algorithm(algorithm: str) -> None:
    if algorithm != "sha-256":
        raise StreamValidationError(
            f"Unsupported hash algorithm: {algorithm}", "hash_algorithm", "sha-256"
        )


def _input_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, str):
        return value.encode("utf-8")
    raise StreamValidationError(
        "Chunk input type is not supported", "input", "bytes, bytearray, memoryview, or str"
    )


# --- chains ------------------------------------------------------------------------------


def _recipient(t: tuple) -> KeyRecipient:
    return KeyRecipient(*t)


def _chunk(t: tuple) -> Chunk:
    (schema, chunk_id, prev, index, edh, ph, storage_ref, enc, sig) = t
    return Chunk(
        schema,
        chunk_id,
        prev,
        index,
        edh,
        ph,
        storage_ref,
        ChunkEncryption(enc[0], enc[1], enc[2], tuple(KeyRecipient(*r) for r in enc[3])),
        ChunkSignature(*sig),
    )


def build_chunk_chain(params: BuildChunkChainParams) -> BuildChunkChainResult:
    """Cut ``params.input`` into chunks, encrypt each under its own key (XChaCha20-Poly1305),
    wrap the key to the owner, operator and machine, sign (Ed25519) and link them.

    Chunks are sealed on every core; the ciphertexts are returned in ``encrypted_data``.
    """
    config = params.config
    chunk_size = DEFAULT_CHUNK_SIZE
    hash_algorithm = DEFAULT_HASH_ALGORITHM
    if config is not None:
        if config.chunk_size is not None:
            chunk_size = config.chunk_size
        if config.hash_algorithm is not None:
            hash_algorithm = config.hash_algorithm
    _non_empty(params.machine_did, "machine_did")
    _non_empty(params.machine_key_id, "machine_key_id")
    private = _signing_hex(params.signing_private_key_hex, "signing_private_key_hex")
    if len(private) != 32:
        raise StreamSigningError("Invalid signing private key length")
    public = _signing_hex(params.signing_public_key_hex, "signing_public_key_hex")
    if len(public) != 32:
        raise StreamSigningError("Invalid signing public key length")
    if _native.ed25519_public_key(private.hex()) != public.hex():
        raise StreamSigningError("signing_public_key_hex does not match signing_private_key_hex")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise StreamValidationError(
            "chunk_size must be a positive integer", "chunk_size", "positive integer"
        )
    data = _input_bytes(params.input)
    _hash_algorithm(hash_algorithm)
    recipients = [
        ("owner", params.owner_recipient_id or _DEFAULT_OWNER_RECIPIENT_ID, params.owner_public_key_hex),
        ("operator", params.operator_recipient_id or _DEFAULT_OPERATOR_RECIPIENT_ID, params.operator_public_key_hex),
        ("machine", params.machine_recipient_id or _DEFAULT_MACHINE_RECIPIENT_ID, params.machine_public_key_hex),
    ]
    for _, _, key in recipients:
        _x25519_public(key)
    try:
        source_hash, chunks, ciphertexts = _native.build_chain(
            data,
            chunk_size,
            [(rid, kind, key) for kind, rid, key in recipients],
            private.hex(),
            params.machine_did,
            params.machine_key_id,
        )
    except (_native.NativeValidationError, _native.NativeSigningError) as e:
        raise _reraise(e) from None
    return BuildChunkChainResult(
        chain=ChunkChain(
            source_hash=source_hash,
            chunks=tuple(_chunk(t) for t in chunks),
            did=params.did,
            chunk_size=chunk_size,
        ),
        encrypted_data=dict(enumerate(ciphertexts)),
    )


def verify_chunk_chain(
    chain: ChunkChain, encrypted_data: Mapping[int, bytes]
) -> ChunkChainVerificationResult:
    """Check every chunk's ciphertext hash, link, id and Ed25519 signature, in order.

    Returns the reference's result and reasons; never raises on a bad chain.
    """
    valid, total, reason, failed_at = _native.verify_chain(chain.chunks, encrypted_data)
    return ChunkChainVerificationResult(
        valid=valid, total_chunks=total, reason=reason, failed_at_index=failed_at
    )


def decrypt_chunk(
    *,
    chunk: Chunk,
    recipient_private_key_hex: str,
    recipient_entry: KeyRecipient,
    encrypted_data: bytes,
) -> bytes:
    """Unwrap the chunk key with the recipient's X25519 key, check its commitment, decrypt,
    check the plaintext hash."""
    _x25519_private(recipient_private_key_hex)
    _parse_hex(recipient_entry.wrapped_key_hex, "wrapped_key_hex")
    try:
        return _native.decrypt(
            chunk, _key_hex(recipient_private_key_hex), recipient_entry, encrypted_data
        )
    except (_native.NativeValidationError, _native.NativeSigningError) as e:
        raise _reraise(e) from None


def _key_hex(value: str) -> str:
    return value[2:] if value.startswith("0x") else value


def _owner_first(chunks: Iterable[Chunk]) -> None:
    for chunk in chunks:
        if not any(r.recipient_type == "owner" for r in chunk.encryption.key_recipients):
            raise StreamValidationError(
                "Owner key recipient not found on chunk", "key_recipients", "owner recipient entry"
            )


def _entry(t: tuple) -> BuyerAccessEntry:
    return BuyerAccessEntry(chunk_id=t[0], buyer=KeyRecipient(*t[1]))


def create_buyer_access_entry(
    *,
    chunk: Chunk,
    owner_private_key_hex: str,
    buyer_recipient_id: str,
    buyer_public_key_hex: str,
) -> BuyerAccessEntry:
    """Re-wrap one chunk's key from the owner to a buyer (the chunk is not changed)."""
    _owner_first((chunk,))
    _x25519_private(owner_private_key_hex)
    try:
        (t,) = _native.grant_entries(
            (chunk,), _key_hex(owner_private_key_hex), buyer_recipient_id, buyer_public_key_hex
        )
    except (_native.NativeValidationError, _native.NativeSigningError) as e:
        raise _reraise(e) from None
    return _entry(t)


def build_buyer_access_files(
    *,
    chunks: Union[Tuple[Chunk, ...], List[Chunk]],
    owner_private_key_hex: str,
    buyer_recipient_id: str,
    buyer_public_key_hex: str,
    max_file_size: Optional[int] = None,
) -> List[BuyerAccessFile]:
    """Re-wrap every chunk's key to a buyer and cut the entries into files of at most
    ``max_file_size`` bytes (as the reference measures them), named
    ``<buyer_public_key_hex>-<n>.json``. Keys are re-wrapped on every core."""
    if len(chunks) == 0:
        return []
    _owner_first(chunks)
    _x25519_private(owner_private_key_hex)
    limit = max_file_size if max_file_size is not None else DEFAULT_BUYER_ACCESS_FILE_SIZE
    try:
        files = _native.access_files(
            chunks,
            _key_hex(owner_private_key_hex),
            buyer_recipient_id,
            buyer_public_key_hex,
            max(int(limit), 0),
        )
    except (_native.NativeValidationError, _native.NativeSigningError) as e:
        raise _reraise(e) from None
    return [
        BuyerAccessFile(
            schema_version=BUYER_ACCESS_SCHEMA_VERSION,
            file_name=name,
            buyer_public_key_hex=key,
            entries=tuple(_entry(t) for t in entries),
        )
        for name, key, entries in files
    ]


def compute_chunk_id(params: ComputeChunkIdParams) -> str:
    """``"0x"`` + SHA-256 of ``f"{previous_chunk_id or ''}|{encrypted_data_hash}|{index}"``."""
    _hash_algorithm(params.hash_algorithm or DEFAULT_HASH_ALGORITHM)
    return _native.compute_chunk_id(
        params.previous_chunk_id or None, params.encrypted_data_hash, params.index
    )
