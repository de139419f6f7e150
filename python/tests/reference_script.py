"""A script written for the reference SDK's stream module, and nothing else.

It signs and verifies a package, builds and verifies a chain, grants a buyer access and
decrypts as the buyer. ``test_install.py`` runs it as it is, with and without
``sealstream.install()``: it must pass both ways.
"""

import os

import peaq_os_sdk
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from peaq_os_sdk.stream import (
    BuildChunkChainParams,
    ChunkingConfig,
    EncryptionContext,
    SigningContext,
    StreamValidationError,
    build_buyer_access_files,
    build_chunk_chain,
    build_signed_data_package,
    compute_chunk_id,
    create_buyer_access_entry,
    decrypt_chunk,
    verify_chunk_chain,
    verify_data_package,
)
from peaq_os_sdk.stream.types import ComputeChunkIdParams, FieldRule, TopicFieldRules, UnsignedDataPayload

KEY = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761"
DID = "did:peaq:0x5BA5f2D2e9ED1D9c7Ea8d3F5D4F9C83E6bB1C8D2"


def x25519():
    k = PrivateKey.generate()
    return bytes(k).hex(), bytes(k.public_key).hex()


def main():
    from eth_account import Account

    did = "did:peaq:" + Account.from_key(KEY).address
    package = build_signed_data_package(
        unsigned_payload=UnsignedDataPayload(
            topic="/gps", fields={"lat": 52.52, "lon": 13.405, "vin": "WVW123", "speed": 3},
            captured_at="2026-12-06T10:00:00Z",
        ),
        topic_rules=TopicFieldRules(
            topic="/gps",
            rules=(FieldRule("vin", "anonymize", "hash"), FieldRule("speed", "encrypt"),
                   FieldRule("lat", "anonymize", "generalize")),
        ),
        signing_ctx=SigningContext(private_key=KEY, backend="software", did=did, key_id=did + "#keys-1"),
        encryption_ctx=EncryptionContext(encryption_key="0x" + "22" * 32, algorithm="AES-256-GCM"),
        schema_version="gps.v1",
        sequence_number=1,
    )
    assert package.payload["lat"]["value"] == "50-60", package.payload
    assert package.payload["speed"]["__encrypted"] is True
    result = peaq_os_sdk.verify_data_package(package)
    assert result.valid and result.signer_did == did, result
    forged = type(package)(**{**{f: getattr(package, f) for f in package.__slots__}, "sequence_number": 2})
    assert not verify_data_package(forged).valid

    owner, operator, machine, buyer = x25519(), x25519(), x25519(), x25519()
    sk = SigningKey.generate()
    data = os.urandom(200_000)
    built = build_chunk_chain(
        BuildChunkChainParams(
            input=data,
            owner_public_key_hex=owner[1],
            operator_public_key_hex=operator[1],
            machine_public_key_hex=machine[1],
            signing_private_key_hex=bytes(sk).hex(),
            signing_public_key_hex=bytes(sk.verify_key).hex(),
            machine_did=did,
            machine_key_id=did + "#keys-1",
            did=did,
            config=ChunkingConfig(chunk_size=16_384),
        )
    )
    assert len(built.chain.chunks) == 13
    check = verify_chunk_chain(built.chain, built.encrypted_data)
    assert check.valid and check.total_chunks == 13, check
    first = built.chain.chunks[0]
    assert first.chunk_id == compute_chunk_id(
        ComputeChunkIdParams(previous_chunk_id=None, encrypted_data_hash=first.encrypted_data_hash, index=0)
    )
    files = build_buyer_access_files(
        chunks=built.chain.chunks, owner_private_key_hex=owner[0],
        buyer_recipient_id="did:peaq:buyer", buyer_public_key_hex=buyer[1], max_file_size=4_000,
    )
    assert len(files) > 1 and files[0].file_name == buyer[1] + "-1.json"
    entries = [e for f in files for e in f.entries]
    out = b"".join(
        decrypt_chunk(chunk=c, recipient_private_key_hex=buyer[0], recipient_entry=e.buyer,
                      encrypted_data=built.encrypted_data[c.index])
        for c, e in zip(built.chain.chunks, entries)
    )
    assert out == data
    one = create_buyer_access_entry(
        chunk=first, owner_private_key_hex=owner[0], buyer_recipient_id="b2", buyer_public_key_hex=buyer[1]
    )
    assert decrypt_chunk(chunk=first, recipient_private_key_hex=buyer[0], recipient_entry=one.buyer,
                         encrypted_data=built.encrypted_data[0]) == data[:16_384]
    try:
        decrypt_chunk(chunk=first, recipient_private_key_hex=operator[0], recipient_entry=one.buyer,
                      encrypted_data=built.encrypted_data[0])
    except StreamValidationError as e:
        assert e.field == "wrapped_key_hex"
    else:
        raise AssertionError("a wrong key decrypted")
    print("reference script passed")


if __name__ == "__main__":
    main()
