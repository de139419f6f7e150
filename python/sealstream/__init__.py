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
  (:func:`verify_chain_dir`), grants of a whole directory (:func:`grant_dir`), signed datasets and inclusion proofs (:func:`prove_inclusion`,
  :func:`verify_inclusion`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _native
from .chains import (
    ChainError,
    ChainReader,
    ChainWriter,
    grant_dir,
    prove_inclusion,
    verify_chain_dir,
    verify_inclusion,
)

__version__ = _native.__version__

if TYPE_CHECKING:  # what the lazy attributes below are, for type checkers
    from ._family import REFERENCE, StreamError, StreamSigningError, StreamValidationError
    from ._install import install, uninstall
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

# The drop-in half is loaded on first use: it imports the reference (`peaq_os_sdk`, about
# 80 MiB of modules) when it is installed, which the streaming extras do not need.
_LAZY = {
    "REFERENCE": "._family",
    "StreamError": "._family",
    "StreamSigningError": "._family",
    "StreamValidationError": "._family",
    "install": "._install",
    "uninstall": "._install",
    **{
        name: ".stream"
        for name in (
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
        )
    },
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sealstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))


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
    "ChainError",
    "grant_dir",
    "prove_inclusion",
    "verify_chain_dir",
    "verify_inclusion",
]
