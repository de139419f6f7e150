"""Which dataclasses and errors sealstream speaks: the reference's when it is importable.

When ``peaq_os_sdk`` (the reference SDK) can be imported, sealstream takes and returns its
own dataclasses and raises its own ``Stream*Error`` classes, so ``isinstance`` checks,
equality and ``except`` clauses written for the reference keep working. Without it,
sealstream uses copies with the same names and fields (``sealstream._own_types``).
``SEALSTREAM_STANDALONE=1`` in the environment forces the copies.
"""

from __future__ import annotations

import os

REFERENCE = None
if os.environ.get("SEALSTREAM_STANDALONE", "") not in ("1", "true", "yes"):
    try:
        from peaq_os_sdk.stream import errors as _ref_errors
        from peaq_os_sdk.stream import types as _ref_types

        REFERENCE = "peaq_os_sdk"
    except ImportError:  # pragma: no cover - depends on the environment
        REFERENCE = None

if REFERENCE is not None:
    types = _ref_types
    errors = _ref_errors
    from peaq_os_sdk.stream.types.data_package import (  # noqa: F401
        DataPackage,
        UnsignedDataPayload,
        VerificationResult,
    )
    from peaq_os_sdk.stream.types.field_rule import FieldRule, TopicFieldRules  # noqa: F401
    from peaq_os_sdk.stream.types.compute_chunk_id_params import (  # noqa: F401
        ComputeChunkIdParams,
    )
else:
    from . import _own_errors as errors  # noqa: F401
    from . import _own_types as types  # noqa: F401
    from ._own_types import (  # noqa: F401
        ComputeChunkIdParams,
        DataPackage,
        FieldRule,
        TopicFieldRules,
        UnsignedDataPayload,
        VerificationResult,
    )

BuildChunkChainParams = types.BuildChunkChainParams
BuildChunkChainResult = types.BuildChunkChainResult
BuyerAccessEntry = types.BuyerAccessEntry
BuyerAccessFile = types.BuyerAccessFile
Chunk = types.Chunk
ChunkChain = types.ChunkChain
ChunkChainVerificationResult = types.ChunkChainVerificationResult
ChunkEncryption = types.ChunkEncryption
ChunkSignature = types.ChunkSignature
ChunkingConfig = types.ChunkingConfig
EncryptionContext = types.EncryptionContext
KeyRecipient = types.KeyRecipient
SigningContext = types.SigningContext

StreamError = errors.StreamError
StreamValidationError = errors.StreamValidationError
StreamSigningError = errors.StreamSigningError

if REFERENCE is not None:
    from peaq_os_sdk.stream.types.buyer_access import (  # noqa: F401
        BUYER_ACCESS_SCHEMA_VERSION,
        DEFAULT_BUYER_ACCESS_FILE_SIZE,
    )
    from peaq_os_sdk.stream.types.chunk import CHUNK_SCHEMA_VERSION  # noqa: F401
else:
    from ._own_types import (  # noqa: F401
        BUYER_ACCESS_SCHEMA_VERSION,
        CHUNK_SCHEMA_VERSION,
        DEFAULT_BUYER_ACCESS_FILE_SIZE,
    )
