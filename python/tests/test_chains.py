"""Chunk chains, buyer access and decryption: sealstream against the reference in one
process, in both directions (each side's chains verified, granted and decrypted by the
other), and the same results for the same tampering and the same bad input."""

from __future__ import annotations

import dataclasses
import os
import random

import pytest

import sealstream
from peaq_os_sdk.stream import (
    BuildChunkChainParams,
    BuildChunkChainResult,
    BuyerAccessFile,
    Chunk,
    ChunkChainVerificationResult,
    ChunkingConfig,
    StreamError,
)
from peaq_os_sdk.stream.types import ComputeChunkIdParams

MACHINE_DID = "did:peaq:0x" + "5a" * 20


def params(keys, data, **kw):
    base = dict(
        input=data,
        owner_public_key_hex=keys["owner"][1],
        operator_public_key_hex=keys["operator"][1],
        machine_public_key_hex=keys["machine"][1],
        signing_private_key_hex=keys["ed_private"],
        signing_public_key_hex=keys["ed_public"],
        machine_did=MACHINE_DID,
        machine_key_id=MACHINE_DID + "#keys-1",
        did=MACHINE_DID,
    )
    base.update(kw)
    return BuildChunkChainParams(**base)


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        return (type(e), str(e), getattr(e, "field", None), getattr(e, "constraint", None))


def decrypt_all(impl, result, recipient_type, private_key):
    out = b""
    for chunk in result.chain.chunks:
        entry = next(r for r in chunk.encryption.key_recipients if r.recipient_type == recipient_type)
        out += impl.decrypt_chunk(
            chunk=chunk,
            recipient_private_key_hex=private_key,
            recipient_entry=entry,
            encrypted_data=result.encrypted_data[chunk.index],
        )
    return out


def same_shape(a: Chunk, b: Chunk) -> None:
    """Equal apart from what is random (keys, nonces, ciphertexts and what hashes them)."""
    blank = dict(chunk_id="", previous_chunk_id=None, encrypted_data_hash="")
    ea = dataclasses.replace(a.encryption, nonce="", key_commitment="", key_recipients=tuple(
        dataclasses.replace(r, wrapped_key_hex="") for r in a.encryption.key_recipients))
    eb = dataclasses.replace(b.encryption, nonce="", key_commitment="", key_recipients=tuple(
        dataclasses.replace(r, wrapped_key_hex="") for r in b.encryption.key_recipients))
    sa = dataclasses.replace(a.signature, value="")
    sb = dataclasses.replace(b.signature, value="")
    assert dataclasses.replace(a, encryption=ea, signature=sa, **blank) == dataclasses.replace(
        b, encryption=eb, signature=sb, **blank)


INPUTS = [
    (b"", None),
    (b"x", None),
    (bytes(range(256)) * 10, 7),
    (os.urandom(3 * 1000 + 1), 1000),
    ("text input, üñí", 4),
    (bytearray(b"bytes" * 100), 64),
    (memoryview(b"view" * 100), 33),
    (os.urandom(600_000), None),
]


@pytest.mark.parametrize("data,size", INPUTS, ids=range(len(INPUTS)))
def test_chains_interoperate_both_ways(ref, keys, data, size):
    config = None if size is None else ChunkingConfig(chunk_size=size)
    p = params(keys, data, config=config)
    plain = data.encode() if isinstance(data, str) else bytes(data)
    ours = sealstream.build_chunk_chain(p)
    theirs = ref.build_chunk_chain(p)
    assert type(ours) is BuildChunkChainResult and type(ours.chain.chunks[0]) is Chunk
    assert ours.chain.source_hash == theirs.chain.source_hash
    assert ours.chain.chunk_size == theirs.chain.chunk_size and ours.chain.did == theirs.chain.did
    assert len(ours.chain.chunks) == len(theirs.chain.chunks)
    for a, b in zip(ours.chain.chunks, theirs.chain.chunks):
        same_shape(a, b)
        assert a.plaintext_hash == b.plaintext_hash
    assert sorted(ours.encrypted_data) == sorted(theirs.encrypted_data)
    for built in (ours, theirs):
        expected = ChunkChainVerificationResult(valid=True, total_chunks=len(built.chain.chunks))
        assert ref.verify_chunk_chain(built.chain, built.encrypted_data) == expected
        assert sealstream.verify_chunk_chain(built.chain, built.encrypted_data) == expected
        for impl in (ref, sealstream):
            for kind in ("owner", "operator", "machine"):
                assert decrypt_all(impl, built, kind, keys[kind][0]) == plain
        # Grants made by either side open with the buyer key on either side.
        for granter in (ref, sealstream):
            files = granter.build_buyer_access_files(
                chunks=built.chain.chunks,
                owner_private_key_hex=keys["owner"][0],
                buyer_recipient_id="did:peaq:buyer",
                buyer_public_key_hex=keys["buyer"][1],
            )
            entries = [e for f in files for e in f.entries]
            assert [e.chunk_id for e in entries] == [c.chunk_id for c in built.chain.chunks]
            for impl in (ref, sealstream):
                out = b"".join(
                    impl.decrypt_chunk(
                        chunk=c,
                        recipient_private_key_hex=keys["buyer"][0],
                        recipient_entry=e.buyer,
                        encrypted_data=built.encrypted_data[c.index],
                    )
                    for c, e in zip(built.chain.chunks, entries)
                )
                assert out == plain


def test_access_files_cut_like_the_reference(ref, keys):
    built = ref.build_chunk_chain(params(keys, os.urandom(100_000), config=ChunkingConfig(chunk_size=1000)))
    for max_size in (None, 1, 500, 2_000, 10_000, 60_000, 10**9):
        kwargs = dict(
            chunks=built.chain.chunks,
            owner_private_key_hex=keys["owner"][0],
            buyer_recipient_id="did:peaq:0xbuyer",
            buyer_public_key_hex=keys["buyer"][1],
        )
        if max_size is not None:
            kwargs["max_file_size"] = max_size
        theirs = ref.build_buyer_access_files(**kwargs)
        ours = sealstream.build_buyer_access_files(**kwargs)
        assert all(type(f) is BuyerAccessFile for f in ours)
        blank = lambda files: [  # noqa: E731
            dataclasses.replace(f, entries=tuple(
                dataclasses.replace(e, buyer=dataclasses.replace(e.buyer, wrapped_key_hex=""))
                for e in f.entries))
            for f in files
        ]
        assert blank(ours) == blank(theirs), max_size
    assert sealstream.build_buyer_access_files(
        chunks=(), owner_private_key_hex="", buyer_recipient_id="", buyer_public_key_hex=""
    ) == []


def tampered(result, how, rng):
    chunks = list(result.chain.chunks)
    data = dict(result.encrypted_data)
    i = rng.randrange(len(chunks))
    c = chunks[i]
    if how == "flip-ciphertext":
        b = bytearray(data[i]); b[rng.randrange(len(b))] ^= 1; data[i] = bytes(b)
    elif how == "drop-ciphertext":
        del data[i]
    elif how == "swap":
        j = (i + 1) % len(chunks); chunks[i], chunks[j] = chunks[j], chunks[i]
    elif how == "drop-chunk":
        del chunks[i]
    elif how == "reindex":
        chunks[i] = dataclasses.replace(c, index=c.index + 1)
    elif how == "relink":
        chunks[i] = dataclasses.replace(c, previous_chunk_id="0x" + "00" * 32)
    elif how == "chunk-id":
        chunks[i] = dataclasses.replace(c, chunk_id="0x" + "ab" * 32)
    elif how == "hash":
        chunks[i] = dataclasses.replace(c, encrypted_data_hash="0x" + "cd" * 32)
    elif how == "signature":
        v = c.signature.value
        chunks[i] = dataclasses.replace(c, signature=dataclasses.replace(c.signature, value=v[:-1] + ("0" if v[-1] != "0" else "1")))
    elif how == "signer":
        chunks[i] = dataclasses.replace(c, signature=dataclasses.replace(c.signature, machine_did="  "))
    elif how == "key-id":
        chunks[i] = dataclasses.replace(c, signature=dataclasses.replace(c.signature, key_id=""))
    elif how == "public-key":
        chunks[i] = dataclasses.replace(c, signature=dataclasses.replace(c.signature, public_key_hex="zz"))
    elif how == "empty":
        chunks = []
    return dataclasses.replace(result.chain, chunks=tuple(chunks)), data


HOW = ["flip-ciphertext", "drop-ciphertext", "swap", "drop-chunk", "reindex", "relink",
       "chunk-id", "hash", "signature", "signer", "key-id", "public-key", "empty"]


@pytest.mark.parametrize("how", HOW)
def test_tampered_chains_fail_alike(ref, keys, how):
    rng = random.Random(how)
    for builder in (ref, sealstream):
        built = builder.build_chunk_chain(params(keys, os.urandom(5_000), config=ChunkingConfig(chunk_size=500)))
        for _ in range(5):
            chain, data = tampered(built, how, rng)
            theirs = ref.verify_chunk_chain(chain, data)
            ours = sealstream.verify_chunk_chain(chain, data)
            assert ours == theirs, (how, theirs, ours)
            assert not ours.valid


def test_compute_chunk_id_matches(ref):
    rng = random.Random(5)
    for _ in range(500):
        p = ComputeChunkIdParams(
            previous_chunk_id=rng.choice([None, "", "0x" + os.urandom(32).hex()]),
            encrypted_data_hash="0x" + os.urandom(32).hex(),
            index=rng.choice([0, 1, rng.randrange(10**6), 2**64 + 5, -3]),
            hash_algorithm=rng.choice([None, "sha-256"]),
        )
        assert sealstream.compute_chunk_id(p) == ref.compute_chunk_id(p)
    bad = ComputeChunkIdParams(previous_chunk_id=None, encrypted_data_hash="x", index=0, hash_algorithm="md5")
    assert outcome(sealstream.compute_chunk_id, bad) == outcome(ref.compute_chunk_id, bad)


def bad_builds(keys):
    other = "00" * 32
    return [
        dict(machine_did=" "),
        dict(machine_key_id=""),
        dict(signing_private_key_hex="xyz"),
        dict(signing_private_key_hex="abc"),
        dict(signing_private_key_hex="00" * 31),
        dict(signing_public_key_hex="0x" + "11" * 33),
        dict(signing_public_key_hex="q" * 64),
        dict(signing_public_key_hex=other),
        dict(config=ChunkingConfig(chunk_size=0)),
        dict(config=ChunkingConfig(chunk_size=-5)),
        dict(config=ChunkingConfig(chunk_size=True)),
        dict(config=ChunkingConfig(chunk_size=2.5)),
        dict(config=ChunkingConfig(hash_algorithm="sha-512")),
        dict(input=12345),
        dict(input=[1, 2]),
        dict(owner_public_key_hex="00" * 31),
        dict(operator_public_key_hex="zz"),
        dict(machine_public_key_hex=""),
    ]


def test_bad_chain_input_fails_alike(ref, keys):
    for change in bad_builds(keys):
        p = params(keys, b"some data", **change)
        theirs = outcome(ref.build_chunk_chain, p)
        ours = outcome(sealstream.build_chunk_chain, p)
        assert isinstance(theirs, tuple) and issubclass(theirs[0], StreamError), (change, theirs)
        assert ours == theirs, change
        assert keys["ed_private"] not in ours[1]


def test_bad_decrypt_and_grant_input_fails_alike(ref, keys):
    built = ref.build_chunk_chain(params(keys, b"secret data " * 100, config=ChunkingConfig(chunk_size=100)))
    c = built.chain.chunks[1]
    owner = c.encryption.key_recipients[0]
    data = built.encrypted_data[1]
    flipped = bytes([data[0] ^ 1]) + data[1:]
    cases = [
        dict(recipient_private_key_hex=keys["operator"][0]),
        dict(recipient_private_key_hex="00" * 31),
        dict(recipient_private_key_hex="nothex"),
        dict(recipient_entry=dataclasses.replace(owner, wrapped_key_hex="zz")),
        dict(recipient_entry=dataclasses.replace(owner, wrapped_key_hex="00" * 72)),
        dict(encrypted_data=flipped),
        dict(encrypted_data=b""),
        dict(encrypted_data=data[:-1]),
        dict(chunk=dataclasses.replace(c, plaintext_hash="0x" + "00" * 32)),
        dict(chunk=dataclasses.replace(c, encryption=dataclasses.replace(c.encryption, key_commitment="sha256:00"))),
        dict(chunk=dataclasses.replace(c, encryption=dataclasses.replace(c.encryption, nonce="00" * 12))),
    ]
    for change in cases:
        kwargs = dict(chunk=c, recipient_private_key_hex=keys["owner"][0], recipient_entry=owner, encrypted_data=data)
        kwargs.update(change)
        theirs = outcome(ref.decrypt_chunk, **kwargs)
        ours = outcome(sealstream.decrypt_chunk, **kwargs)
        assert isinstance(theirs, tuple), change
        assert ours == theirs, (change, theirs, ours)
    no_owner = dataclasses.replace(c, encryption=dataclasses.replace(
        c.encryption, key_recipients=c.encryption.key_recipients[1:]))
    grants = [
        dict(chunk=no_owner),
        dict(owner_private_key_hex=keys["machine"][0]),
        dict(owner_private_key_hex="0x12"),
        dict(buyer_public_key_hex="00" * 31),
        dict(buyer_public_key_hex="xx"),
        dict(chunk=dataclasses.replace(c, encryption=dataclasses.replace(c.encryption, key_commitment="sha256:00"))),
    ]
    for change in grants:
        kwargs = dict(chunk=c, owner_private_key_hex=keys["owner"][0], buyer_recipient_id="b",
                      buyer_public_key_hex=keys["buyer"][1])
        kwargs.update(change)
        theirs = outcome(ref.create_buyer_access_entry, **kwargs)
        ours = outcome(sealstream.create_buyer_access_entry, **kwargs)
        assert isinstance(theirs, tuple), change
        assert ours == theirs, (change, theirs, ours)
