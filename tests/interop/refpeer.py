"""A long-lived peer around the reference SDK (peaq-os-sdk 0.12.1) for interop tests.

Reads one JSON request per line on stdin, writes one JSON response per line on
stdout: {"op": NAME, ...} -> {"ok": true, ...} or {"ok": false, "error": TEXT}.
Payload documents travel as JSON *text* so that Python's own json.loads decides
what is an int and what is a float, exactly as a user of the SDK would see it.

Run it with the Python of a venv that has peaq-os-sdk and peaq-os-cli installed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("PEAQOS_TELEMETRY", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from peaq_os_sdk import (  # noqa: E402
    BuildChunkChainParams,
    ChunkingConfig,
    build_buyer_access_files,
    build_chunk_chain,
    build_signed_data_package,
    decrypt_chunk,
    verify_chunk_chain,
    verify_data_package,
)
from peaq_os_sdk.stream._internal.canonical_json import canonical_json_stringify  # noqa: E402
from peaq_os_sdk.stream.field_rules import apply_field_rules  # noqa: E402
from peaq_os_sdk.stream.types.chunk import ChunkChain  # noqa: E402
from peaq_os_sdk.stream.types.data_package import DataPackage, UnsignedDataPayload  # noqa: E402
from peaq_os_sdk.stream.types.field_rule import FieldRule, TopicFieldRules  # noqa: E402
from peaq_os_sdk.stream.types.signing_key import EncryptionContext, SigningContext  # noqa: E402
from peaq_os_cli.commands.stream.publish import _chunk_to_dict  # noqa: E402
from peaq_os_cli.commands.stream.reader import (  # noqa: E402
    read_buyer_access,
    read_chunk_chain,
    read_encrypted_data,
)
from peaq_os_cli.commands.stream.wire import buyer_access_file_to_wire, wire_to_json  # noqa: E402


def topic_rules(doc: dict) -> TopicFieldRules:
    return TopicFieldRules(
        topic=doc.get("topic") or "",
        rules=tuple(
            FieldRule(
                field_path=r["fieldPath"],
                action=r["action"],
                anonymize_strategy=r.get("anonymizeStrategy"),
            )
            for r in doc.get("rules") or []
        ),
        default_action=doc.get("defaultAction"),
    )


def op_canonical(req: dict) -> dict:
    return {"results": [canonical_json_stringify(json.loads(t)) for t in req["texts"]]}


def op_apply_rules(req: dict) -> dict:
    ctx = EncryptionContext(encryption_key=req["fieldKey"], algorithm="AES-256-GCM")
    out = []
    for case in req["cases"]:
        rules = topic_rules(case["rules"])
        try:
            result = apply_field_rules(json.loads(case["fields"]), rules, ctx)
        except Exception as exc:  # noqa: BLE001 - the test compares failures too
            out.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        out.append({"output": json.dumps(result, separators=(",", ":"))})
    return {"results": out}


def op_sign_packages(req: dict) -> dict:
    signing = SigningContext(private_key=req["key"], backend="software", did=req["did"], key_id=req["keyId"])
    enc = EncryptionContext(encryption_key=req["fieldKey"], algorithm="AES-256-GCM")
    out = []
    for case in req["cases"]:
        pkg = build_signed_data_package(
            unsigned_payload=UnsignedDataPayload(
                topic=case["topic"], fields=json.loads(case["fields"]), captured_at=case["capturedAt"]
            ),
            topic_rules=topic_rules(case["rules"]),
            signing_ctx=signing,
            encryption_ctx=enc,
            schema_version=case["schemaVersion"],
            sequence_number=case["sequenceNumber"],
        )
        wire = {
            "did": pkg.did,
            "timestamp": pkg.timestamp,
            "schemaVersion": pkg.schema_version,
            "sequenceNumber": pkg.sequence_number,
            "payload": pkg.payload,
            "signature": pkg.signature,
            "signingKeyId": pkg.signing_key_id,
        }
        out.append(json.dumps(wire, separators=(",", ":")))
    return {"results": out}


def op_verify_packages(req: dict) -> dict:
    out = []
    for text in req["packages"]:
        d = json.loads(text)
        pkg = DataPackage(
            did=d["did"],
            timestamp=d["timestamp"],
            schema_version=d["schemaVersion"],
            sequence_number=d["sequenceNumber"],
            payload=d["payload"],
            signature=d["signature"],
            signing_key_id=d["signingKeyId"],
        )
        r = verify_data_package(pkg)
        out.append({"valid": r.valid, "reason": r.reason})
    return {"results": out}


def op_publish(req: dict) -> dict:
    """What `peaqos stream publish` does, in process."""
    data = Path(req["input"]).read_bytes()
    sk_hex = req["signingKey"]
    pk_hex = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk_hex)).public_key().public_bytes_raw().hex()
    result = build_chunk_chain(
        BuildChunkChainParams(
            input=data,
            owner_public_key_hex=req["owner"],
            operator_public_key_hex=req["operator"],
            machine_public_key_hex=req["machine"],
            signing_private_key_hex=sk_hex,
            signing_public_key_hex=pk_hex,
            machine_did=req["machineDid"],
            machine_key_id=req["keyId"],
            did=req["machineDid"],
            config=ChunkingConfig(chunk_size=req["chunkSize"]),
        )
    )
    out = Path(req["outDir"])
    out.mkdir(parents=True, exist_ok=True)
    for chunk in result.chain.chunks:
        (out / f"chunk-{chunk.index}.json").write_text(json.dumps(_chunk_to_dict(chunk), indent=2) + "\n")
        (out / f"chunk-{chunk.index}.bin").write_bytes(result.encrypted_data[chunk.index])
    manifest = {
        "schemaVersion": "peaq.stream.chunks.v1",
        "sourceHash": result.chain.source_hash,
        "totalChunks": len(result.chain.chunks),
        "chunkSize": result.chain.chunk_size,
        "machineDid": result.chain.did,
        "createdAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {"chunks": len(result.chain.chunks), "sourceHash": result.chain.source_hash}


def op_verify_chain(req: dict) -> dict:
    chunks = read_chunk_chain(req["chunkDir"])
    data = read_encrypted_data(req.get("dataDir") or req["chunkDir"])
    chain = ChunkChain(source_hash="", chunks=tuple(chunks), did=chunks[0].signature.machine_did, chunk_size=0)
    r = verify_chunk_chain(chain, data)
    return {"valid": r.valid, "reason": r.reason, "failedAtIndex": r.failed_at_index}


def op_grant(req: dict) -> dict:
    """What `peaqos stream grant` does, in process."""
    chunks = read_chunk_chain(req["chunkDir"])
    files = build_buyer_access_files(
        chunks=chunks,
        owner_private_key_hex=req["ownerKey"],
        buyer_recipient_id=req["buyerId"],
        buyer_public_key_hex=req["buyerPublicKey"],
        max_file_size=req["maxFileSize"],
    )
    out = Path(req["outDir"])
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        (out / f.file_name).write_text(wire_to_json(buyer_access_file_to_wire(f)))
    return {"files": [f.file_name for f in files]}


def op_consume(req: dict) -> dict:
    """What `peaqos stream consume` does, in process."""
    chunks = read_chunk_chain(req["chunkDir"])
    data = read_encrypted_data(req["dataDir"])
    access = read_buyer_access(req["accessDir"], req["buyerId"])
    chain = ChunkChain(source_hash="", chunks=tuple(chunks), did=chunks[0].signature.machine_did, chunk_size=0)
    r = verify_chunk_chain(chain, data)
    if not r.valid:
        return {"verified": False, "reason": r.reason, "failedAtIndex": r.failed_at_index}
    parts = []
    for chunk in chunks:
        parts.append(
            decrypt_chunk(
                chunk=chunk,
                recipient_private_key_hex=req["buyerKey"],
                recipient_entry=access[chunk.chunk_id],
                encrypted_data=data[chunk.index],
            )
        )
    Path(req["output"]).write_bytes(b"".join(parts))
    return {"verified": True}


OPS = {
    "canonical": op_canonical,
    "apply_rules": op_apply_rules,
    "sign_packages": op_sign_packages,
    "verify_packages": op_verify_packages,
    "publish": op_publish,
    "verify_chain": op_verify_chain,
    "grant": op_grant,
    "consume": op_consume,
}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            resp = {"ok": True, **OPS[req["op"]](req)}
        except BaseException as exc:  # noqa: BLE001 - report every failure to the test
            resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
