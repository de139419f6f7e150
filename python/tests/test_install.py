"""``sealstream.install()``: a script written for ``peaq_os_sdk.stream`` runs unchanged, and
it is sealstream's code that runs."""

from __future__ import annotations

import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).with_name("reference_script.py")

HARNESS = r"""
import collections, runpy, sys
import sealstream
replaced = sealstream.install()
calls = collections.Counter()
def profile(frame, event, arg):
    if event == "call" and frame.f_code.co_filename.endswith("sealstream/stream.py"):
        calls[frame.f_code.co_name] += 1
sys.setprofile(profile)
runpy.run_path(sys.argv[1], run_name="__main__")
sys.setprofile(None)
import peaq_os_sdk, peaq_os_sdk.stream
assert peaq_os_sdk.stream.build_chunk_chain is sealstream.build_chunk_chain
assert peaq_os_sdk.build_signed_data_package is sealstream.build_signed_data_package
print("replaced", sorted(replaced))
print("called", sorted(calls))
sealstream.uninstall()
import peaq_os_sdk.stream.chunking as ch
assert peaq_os_sdk.stream.build_chunk_chain is ch.build_chunk_chain
assert ch.build_chunk_chain.__module__ == "peaq_os_sdk.stream.chunking"
"""

EIGHT = [
    "build_buyer_access_files", "build_chunk_chain", "build_signed_data_package",
    "compute_chunk_id", "create_buyer_access_entry", "decrypt_chunk",
    "verify_chunk_chain", "verify_data_package",
]


def test_script_passes_on_the_reference_alone():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "reference script passed" in out.stdout


def test_script_passes_unchanged_after_install_and_runs_sealstream():
    out = subprocess.run([sys.executable, "-c", HARNESS, str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "reference script passed" in out.stdout
    replaced = out.stdout.split("replaced ")[1].splitlines()[0]
    called = out.stdout.split("called ")[1].splitlines()[0]
    for name in EIGHT:
        assert repr(name) in replaced, name
        assert repr(name) in called, name


def test_install_patches_the_reference_internal_bindings():
    code = r"""
import sealstream, sys
sealstream.install()
import peaq_os_sdk.stream.chunking as ch, peaq_os_sdk.stream.distribute as d
assert ch.compute_chunk_id is sealstream.compute_chunk_id
assert d.build_buyer_access_files is sealstream.build_buyer_access_files
again = sealstream.install()
assert again == {}, again
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
