"""``install()``: sealstream's functions in place of the reference's, for zero-change adoption.

The reference binds these functions by name in several modules at import time
(``peaq_os_sdk`` re-exports them; ``chunking`` imports ``compute_chunk_id``; ``distribute``
imports ``build_buyer_access_files``; the P2P receiver imports ``decrypt_chunk`` and
``verify_chunk_chain``), so each binding is replaced, and :func:`uninstall` puts every one
back.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Tuple

from . import stream as _stream

_NAMES = _stream.REFERENCE_FUNCTIONS

# Modules that hold the reference's functions by name.
_MODULES = (
    "peaq_os_sdk",
    "peaq_os_sdk.stream",
    "peaq_os_sdk.stream.signing",
    "peaq_os_sdk.stream.verification",
    "peaq_os_sdk.stream.chunking",
    "peaq_os_sdk.stream.buyer_access",
    "peaq_os_sdk.stream.compute_chunk_id",
    "peaq_os_sdk.stream.distribute",
    "peaq_os_sdk.stream.p2p_delivery_receiver",
)

_saved: List[Tuple[object, str, object]] = []


def install() -> Dict[str, List[str]]:
    """Replace the reference's eight stream functions with sealstream's, wherever the
    reference holds them. Returns ``{function name: [module, …]}`` of what was replaced.
    Calling it twice changes nothing more. Raises ``ImportError`` without ``peaq_os_sdk``.
    """
    importlib.import_module("peaq_os_sdk.stream")
    replaced: Dict[str, List[str]] = {}
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001
            # An optional part of the reference whose extra is not installed (its P2P
            # delivery needs `peaq-os-sdk[p2p]`): nothing there to replace.
            continue
        for name in _NAMES:
            current = getattr(module, name, None)
            if current is None or not callable(current):
                continue  # e.g. the submodule `compute_chunk_id`, or not bound here
            ours = getattr(_stream, name)
            if current is ours:
                continue
            _saved.append((module, name, current))
            setattr(module, name, ours)
            replaced.setdefault(name, []).append(module_name)
    return replaced


def uninstall() -> None:
    """Put back every function :func:`install` replaced."""
    while _saved:
        module, name, original = _saved.pop()
        setattr(module, name, original)
