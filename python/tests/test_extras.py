"""sealstream's extras: streaming chain directories (written here, read by the reference's
own CLI and back), whole-directory verification that catches truncation and re-linking,
datasets and inclusion proofs, bounded memory."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import sealstream

MACHINE_KEY = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761"


def machine_did():
    from eth_account import Account

    return "did:peaq:" + Account.from_key(MACHINE_KEY).address


def writer(keys, out, **kw):
    return sealstream.ChainWriter(
        out,
        owner_public_key_hex=keys["owner"][1],
        operator_public_key_hex=keys["operator"][1],
        machine_public_key_hex=keys["machine"][1],
        signing_private_key_hex=keys["ed_private"],
        machine_did=machine_did(),
        machine_private_key_hex=MACHINE_KEY,
        **kw,
    )


def publish(keys, tmp_path, data: bytes, chunk_size=4096, pieces=7):
    out = tmp_path / "chain"
    with writer(keys, out, chunk_size=chunk_size) as w:
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            w.write(data[i : i + step])
    return out, w.finish()


def grant(keys, chain, tmp_path, name="access"):
    access = tmp_path / name
    sealstream.grant_dir(
        chain, access,
        owner_private_key_hex=keys["owner"][0],
        buyer_recipient_id="did:peaq:buyer",
        buyer_public_key_hex=keys["buyer"][1],
        max_file_size=20_000,
    )
    return access


def read_all(keys, chain, access, **kw):
    reader = sealstream.ChainReader(
        chain, access_dir=access, buyer_id="did:peaq:buyer", private_key_hex=keys["buyer"][0], **kw
    )
    data = b"".join(reader)
    return data, reader.summary


def test_writer_reader_round_trip_and_summary(keys, tmp_path):
    data = os.urandom(100_003)
    chain, summary = publish(keys, tmp_path, data)
    assert summary["bytes"] == len(data)
    assert summary["manifest"]["totalChunks"] == 25
    assert summary["dataset"]["chunkCount"] == 25
    assert (chain / "chunk-24.bin").exists() and not (chain / "chunk-25.json").exists()
    assert oct(os.stat(chain).st_mode & 0o777) in ("0o700", "0o755")
    check = sealstream.verify_chain_dir(chain, require_dataset=True)
    assert check == {"valid": True, "total_chunks": 25, "reason": None, "failed_at_index": None,
                     "dataset_checked": True}
    access = grant(keys, chain, tmp_path)
    out, summ = read_all(keys, chain, access)
    assert out == data
    assert summ["chunks"] == 25 and summ["bytes"] == len(data) and summ["verified"]
    assert summ["output_hash"] == summ["source_hash"] == summary["manifest"]["sourceHash"]


def test_reference_cli_reads_our_chain_and_we_read_its_grant(keys, tmp_path):
    peaqos = shutil.which("peaqos") or str(pathlib.Path(sys.executable).with_name("peaqos"))
    if not os.path.exists(peaqos):
        pytest.skip("the reference CLI (peaq-os-cli) is not installed in this venv")
    data = os.urandom(300_000)
    chain, _ = publish(keys, tmp_path, data, chunk_size=65_536)
    owner_file = tmp_path / "owner.sk"
    owner_file.write_text(keys["owner"][0])
    buyer_file = tmp_path / "buyer.sk"
    buyer_file.write_text(keys["buyer"][0])
    their_access = tmp_path / "their-access"
    subprocess.run(
        [peaqos, "stream", "grant", "--chunk-dir", chain, "--output-dir", their_access,
         "--buyer-public-key", keys["buyer"][1], "--buyer-id", "did:peaq:buyer",
         "--owner-private-key-file", owner_file],
        check=True, capture_output=True,
    )
    out = tmp_path / "out.bin"
    for access in (their_access, grant(keys, chain, tmp_path)):
        subprocess.run(
            [peaqos, "stream", "consume", "--chunk-dir", chain, "--data-dir", chain, "--access-dir",
             access, "--buyer-id", "did:peaq:buyer", "--buyer-private-key-file", buyer_file,
             "--output", out],
            check=True, capture_output=True,
        )
        assert out.read_bytes() == data
        assert read_all(keys, chain, access)[0] == data


def test_truncated_extended_and_relinked_chains_fail(keys, tmp_path):
    data = os.urandom(40_000)
    chain, _ = publish(keys, tmp_path, data)
    access = grant(keys, chain, tmp_path)
    last = 9
    # Cut short: the last chunk removed (each remaining chunk still verifies alone).
    cut = tmp_path / "cut"
    shutil.copytree(chain, cut)
    for ext in ("json", "bin"):
        (cut / f"chunk-{last}.{ext}").unlink()
    result = sealstream.verify_chain_dir(cut)
    assert not result["valid"] and "totalChunks" in result["reason"]
    # ... even with the manifest rewritten to match: the signed dataset says otherwise.
    manifest = json.loads((cut / "manifest.json").read_text())
    manifest["totalChunks"] = last
    (cut / "manifest.json").write_text(json.dumps(manifest))
    result = sealstream.verify_chain_dir(cut)
    assert not result["valid"] and result["reason"].startswith("dataset.json"), result
    with pytest.raises(sealstream.ChainError):
        read_all(keys, cut, access)
    # ... and without any dataset when one is required.
    (cut / "dataset.json").unlink()
    assert sealstream.verify_chain_dir(cut)["valid"]
    assert not sealstream.verify_chain_dir(cut, require_dataset=True)["valid"]
    # Re-linked: a chunk replaced by one of another chain fails at its index.
    other, _ = publish(keys, tmp_path / "o", os.urandom(40_000))
    relinked = tmp_path / "relinked"
    shutil.copytree(chain, relinked)
    for ext in ("json", "bin"):
        shutil.copy(other / f"chunk-4.{ext}", relinked / f"chunk-4.{ext}")
    result = sealstream.verify_chain_dir(relinked)
    assert not result["valid"] and result["failed_at_index"] == 4, result
    # A flipped ciphertext byte.
    flipped = tmp_path / "flipped"
    shutil.copytree(chain, flipped)
    b = bytearray((flipped / "chunk-2.bin").read_bytes())
    b[10] ^= 1
    (flipped / "chunk-2.bin").write_bytes(bytes(b))
    result = sealstream.verify_chain_dir(flipped)
    assert not result["valid"] and result["failed_at_index"] == 2
    with pytest.raises(sealstream.ChainError):
        read_all(keys, flipped, access)


def test_inclusion_proofs(keys, tmp_path):
    chain, summary = publish(keys, tmp_path, os.urandom(50_000))
    dataset = chain / "dataset.json"
    for index in (0, 5, 11):
        proof = sealstream.prove_inclusion(chain, index)
        assert proof["chunkIndex"] == index if "chunkIndex" in proof else True
        sealstream.verify_inclusion(dataset, proof, chain / f"chunk-{index}.json", chain / f"chunk-{index}.bin")
        with pytest.raises(sealstream.ChainError):
            sealstream.verify_inclusion(dataset, proof, chain / f"chunk-{index + 1}.json",
                                        chain / f"chunk-{index + 1}.bin")
        bad = bytearray((chain / f"chunk-{index}.bin").read_bytes())
        bad[0] ^= 1
        with pytest.raises(sealstream.ChainError):
            sealstream.verify_inclusion(dataset, proof, chain / f"chunk-{index}.json", bytes(bad))
    with pytest.raises(sealstream.ChainError):
        sealstream.prove_inclusion(chain, 99)


def test_unfinished_writer_leaves_nothing(keys, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(RuntimeError):
        with writer(keys, out) as w:
            w.write(b"x" * 100_000)
            raise RuntimeError("the producer failed")
    assert not out.exists() or list(out.iterdir()) == []
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "never"]
    assert leftovers == [], leftovers
    w = writer(keys, tmp_path / "w")
    w.finish()
    with pytest.raises(sealstream.ChainError):
        w.write(b"more")


MEMORY = r"""
import os, sys, sealstream
path, out = sys.argv[1], sys.argv[2]
k = "11" * 32
from nacl.public import PrivateKey
pub = bytes(PrivateKey(bytes.fromhex(k)).public_key).hex()
w = sealstream.ChainWriter(out, owner_public_key_hex=pub, operator_public_key_hex=pub,
    machine_public_key_hex=pub, signing_private_key_hex="22" * 32,
    machine_did="did:peaq:0x" + "33" * 20)
w.write_file(path)
w.finish()
# VmHWM: this process's own peak (ru_maxrss would include the parent's, from before exec).
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
"""


def test_writer_memory_is_bounded_whatever_the_input(tmp_path):
    peaks = []
    for mib in (8, 128):
        path = tmp_path / f"in-{mib}"
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        out = subprocess.run([sys.executable, "-c", MEMORY, path, tmp_path / f"out-{mib}"],
                             check=True, capture_output=True, text=True)
        peaks.append(int(out.stdout.strip()))
        shutil.rmtree(tmp_path / f"out-{mib}")
        path.unlink()
    # Input 16x larger, peak within a few MiB of the small run and far below the input.
    assert peaks[1] < peaks[0] + 16 and peaks[1] < 40, peaks


STANDALONE = r"""
import sealstream
from sealstream import _family
assert _family.REFERENCE is None and sealstream.REFERENCE is None
T = _family.types
rules = _family.TopicFieldRules(topic="/t", rules=(_family.FieldRule("a", "anonymize", "redact"),))
ctx = T.SigningContext(private_key="0x" + "11" * 32, backend="software", did="did:peaq:0x" + "19e7e376e7c213b7e7e7e46cc70a5dd086daff2a", key_id="k")
assert "11" * 32 not in repr(ctx)
p = sealstream.build_signed_data_package(unsigned_payload=_family.UnsignedDataPayload("/t", {"a": 1}, "t"),
    topic_rules=rules, signing_ctx=ctx, encryption_ctx=None, schema_version="v", sequence_number=1)
assert type(p) is _family.DataPackage and p.payload == {"a": {"__anonymized": True, "value": "[REDACTED]", "strategy": "redact"}} or p.payload["a"]
print(sealstream.verify_data_package(p))
try:
    sealstream.build_signed_data_package(unsigned_payload=None, topic_rules=rules, signing_ctx=ctx,
        encryption_ctx=None, schema_version="v", sequence_number=1)
except sealstream.StreamValidationError as e:
    assert e.field == "unsigned_payload" and e.constraint == "required" and e.code == ""
else:
    raise AssertionError
print("standalone ok")
"""


def test_standalone_types_without_the_reference():
    env = dict(os.environ, SEALSTREAM_STANDALONE="1")
    out = subprocess.run([sys.executable, "-c", STANDALONE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "standalone ok" in out.stdout
