"""Where the reference's fixtures are: fixtures/peaq-stream-v1 in the repository,
or $SEALSTREAM_FIXTURES. Used by the scripts of this directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path:
    env = os.environ.get("SEALSTREAM_FIXTURES")
    d = Path(env) if env else REPO / "fixtures" / "peaq-stream-v1"
    if not (d / "keys.json").is_file():
        sys.exit(f"fixtures not found at {d} (set SEALSTREAM_FIXTURES)")
    return d
