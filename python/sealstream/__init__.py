"""sealstream: signed, encrypted, chunked data streams — a faster drop-in for
``peaq_os_sdk.stream``.

- The reference's functions, same signatures, dataclasses and errors:
  :func:`build_signed_data_package`, :func:`verify_data_package`, :func:`build_chunk_chain`,
  :func:`verify_chunk_chain`, :func:`create_buyer_access_entry`,
  :func:`build_buyer_access_files`, :func:`decrypt_chunk`, :func:`compute_chunk_id`.
- :func:`install` puts them into ``peaq_os_sdk.stream`` (and everywhere the reference
  imported them), so existing code runs unchanged, faster.
- Beyond the reference: batches (:func:`build_signed_data_packages`,
  :func:`verify_data_packages`), streaming chains on directories (:class:`ChainWriter`,
  :class:`ChainReader`), directory verification that catches truncation and re-linking
  (:func:`verify_chain_dir`), signed datasets and inclusion proofs (:func:`prove_inclusion`,
  :func:`verify_inclusion`).
"""

from __future__ import annotations

from . import _native
from ._family import REFERENCE, StreamError, StreamSigningError, StreamValidationError
from ._install import install, uninstall
from .chains import (
    ChainReader,
    ChainWriter,
    prove_inclusion,
    verify_chain_dir,
    verify_inclusion,
)
from .stream import (
    build_buyer_access_files,
    build_chunk_chain,
    build_signed_data_package,
    build_signed_data_packages,
    compute_chunk_id,
    create_buyer_access_entry,
    decrypt_chunk,
    verify_chunk_chain,
    verify_data_package,
    verify_data_packages,
)

__version__ = _native.__version__

__all__ = [
    "REFERENCE",
    "StreamError",
    "StreamSigningError",
    "StreamValidationError",
    "install",
    "uninstall",
    "build_buyer_access_files",
    "build_chunk_chain",
    "build_signed_data_package",
    "build_signed_data_packages",
    "compute_chunk_id",
    "create_buyer_access_entry",
    "decrypt_chunk",
    "verify_chunk_chain",
    "verify_data_package",
    "verify_data_packages",
    "ChainReader",
    "ChainWriter",
    "prove_inclusion",
    "verify_chain_dir",
    "verify_inclusion",
]
