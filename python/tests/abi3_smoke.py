"""The one abi3 wheel on another CPython (3.9 and later), without the reference: sign and
verify a package, build, verify and decrypt a chain, write, grant, read and verify a chain
directory. Run by scripts/test-python with each other interpreter it finds (needs PyNaCl
for keys). Not collected by pytest (its name does not start with test_)."""

import os
import sys
import tempfile

from nacl.public import PrivateKey
from nacl.signing import SigningKey

import sealstream
from sealstream import _family as F

assert sealstream.REFERENCE is None, "run without peaq_os_sdk installed"
rules = F.TopicFieldRules(topic="/t", rules=(F.FieldRule("a", "anonymize", "redact"),))
ctx = F.SigningContext(private_key="0x" + "11" * 32, backend="software",
                       did="did:peaq:0x19e7e376e7c213b7e7e7e46cc70a5dd086daff2a", key_id="k")
assert "11" * 32 not in repr(ctx)
p = sealstream.build_signed_data_package(
    unsigned_payload=F.UnsignedDataPayload("/t", {"a": 1, "b": [1.5, 2**70]}, "t"),
    topic_rules=rules, signing_ctx=ctx, encryption_ctx=None, schema_version="v", sequence_number=1)
assert p.payload == {"a": {"__anonymized": True, "value": "[REDACTED]", "strategy": "redact"}, "b": [1.5, 2**70]}
assert sealstream.verify_data_package(p).valid
try:
    sealstream.build_signed_data_package(unsigned_payload=None, topic_rules=rules, signing_ctx=ctx,
                                         encryption_ctx=None, schema_version="v", sequence_number=1)
except sealstream.StreamValidationError as e:
    assert (e.field, e.constraint) == ("unsigned_payload", "required")
else:
    raise AssertionError("no error")

keys = [PrivateKey.generate() for _ in range(4)]
pub = [bytes(k.public_key).hex() for k in keys]
sk = SigningKey.generate()
data = os.urandom(100_000)
built = sealstream.build_chunk_chain(F.BuildChunkChainParams(
    input=data, owner_public_key_hex=pub[0], operator_public_key_hex=pub[1], machine_public_key_hex=pub[2],
    signing_private_key_hex=bytes(sk).hex(), signing_public_key_hex=bytes(sk.verify_key).hex(),
    machine_did="did:peaq:0x" + "11" * 20, machine_key_id="k", did="d",
    config=F.ChunkingConfig(chunk_size=10_000)))
assert sealstream.verify_chunk_chain(built.chain, built.encrypted_data).valid
plain = b"".join(
    sealstream.decrypt_chunk(chunk=c, recipient_private_key_hex=bytes(keys[0]).hex(),
                             recipient_entry=c.encryption.key_recipients[0],
                             encrypted_data=built.encrypted_data[c.index])
    for c in built.chain.chunks)
assert plain == data

with tempfile.TemporaryDirectory() as d:
    with sealstream.ChainWriter(d + "/c", owner_public_key_hex=pub[0], operator_public_key_hex=pub[1],
                                machine_public_key_hex=pub[2], signing_private_key_hex=bytes(sk).hex(),
                                machine_did="did:peaq:0x" + "11" * 20) as w:
        w.write(data)
    sealstream.grant_dir(d + "/c", d + "/a", owner_private_key_hex=bytes(keys[0]).hex(), buyer_recipient_id="b",
                         buyer_public_key_hex=pub[3])
    reader = sealstream.ChainReader(d + "/c", access_dir=d + "/a", buyer_id="b", private_key_hex=bytes(keys[3]).hex())
    assert b"".join(reader) == data and reader.summary["verified"]
    assert sealstream.verify_chain_dir(d + "/c", require_dataset=True)["valid"]
print(f"abi3 wheel on Python {sys.version.split()[0]}: ok")
