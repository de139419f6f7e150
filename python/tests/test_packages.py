"""Signed data packages: sealstream against the reference, in one process, on the Rust
interop tests' random documents and rules."""

from __future__ import annotations

import dataclasses

import pytest

import sealstream
from peaq_os_sdk.stream import EncryptionContext, SigningContext, StreamError
from peaq_os_sdk.stream.types import (
    DataPackage,
    FieldRule,
    TopicFieldRules,
    UnsignedDataPayload,
    VerificationResult,
)

from conftest import FIELD_KEY, SIGNING_KEY, corpus

DID = "did:peaq:0x" + "00" * 20  # replaced below by the key's own DID


def _did():
    from eth_account import Account

    return "did:peaq:" + Account.from_key(SIGNING_KEY).address


SIGNING = None


def signing_ctx():
    global SIGNING
    if SIGNING is None:
        did = _did()
        SIGNING = SigningContext(
            private_key=SIGNING_KEY, backend="software", did=did, key_id=did + "#keys-1"
        )
    return SIGNING


ENC = EncryptionContext(encryption_key=FIELD_KEY, algorithm="AES-256-GCM")


def rules_of(doc: dict) -> TopicFieldRules:
    return TopicFieldRules(
        topic=doc["topic"],
        rules=tuple(
            FieldRule(
                field_path=r["fieldPath"],
                action=r["action"],
                anonymize_strategy=r.get("anonymizeStrategy"),
            )
            for r in doc["rules"]
        ),
        default_action=doc.get("defaultAction"),
    )


def outcome(fn, **kwargs):
    """The package, or the error as (class, message, field, constraint)."""
    try:
        return fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return (type(e), str(e), getattr(e, "field", None), getattr(e, "constraint", None))


def has_encrypted(value) -> bool:
    if isinstance(value, dict):
        return value.get("__encrypted") is True or any(has_encrypted(v) for v in value.values())
    if isinstance(value, list):
        return any(has_encrypted(v) for v in value)
    return False


def strip_encrypted(value):
    if isinstance(value, dict):
        if value.get("__encrypted") is True:
            return {"__encrypted": True, "algorithm": value.get("algorithm")}
        return {k: strip_encrypted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_encrypted(v) for v in value]
    return value


def compare(ref, case_fields, rules, seq, captured_at):
    kwargs = dict(
        unsigned_payload=UnsignedDataPayload(topic="/t", fields=case_fields, captured_at=captured_at),
        topic_rules=rules,
        signing_ctx=signing_ctx(),
        encryption_ctx=ENC,
        schema_version="peaq.stream.package.v1",
        sequence_number=seq,
    )
    theirs = outcome(ref.build_signed_data_package, **kwargs)
    ours = outcome(sealstream.build_signed_data_package, **kwargs)
    if isinstance(theirs, tuple) or isinstance(ours, tuple):
        # A payload the reference refuses (a number too large to generalize) is refused alike.
        assert isinstance(ours, tuple) and isinstance(theirs, tuple), (theirs, ours)
        assert ours[:2] == theirs[:2], (theirs, ours)
        return None
    assert type(ours) is DataPackage
    if has_encrypted(theirs.payload):
        # Field encryption draws a random IV: equal apart from the ciphertexts, and each
        # side verifies the other's package.
        assert strip_encrypted(ours.payload) == strip_encrypted(theirs.payload)
        assert dataclasses.replace(ours, payload={}, signature="") == dataclasses.replace(
            theirs, payload={}, signature=""
        )
    else:
        assert ours == theirs
    for package in (ours, theirs):
        assert ref.verify_data_package(package) == sealstream.verify_data_package(package)
        assert sealstream.verify_data_package(package).valid
    return ours, theirs


def test_packages_corpus_signs_identically(ref):
    signed = 0
    deterministic = 0
    for case in corpus("packages"):
        got = compare(
            ref,
            case["fields"],
            rules_of(case["rules"]),
            case["sequenceNumber"],
            case["capturedAt"],
        )
        if got:
            signed += 1
            deterministic += got[0] == got[1]
    assert signed >= 200 and deterministic >= 100, (signed, deterministic)


def test_rules_corpus_signs_identically(ref):
    for i, case in enumerate(corpus("rules")):
        compare(ref, case["fields"], rules_of(case["rules"]), i, "2026-12-06T00:00:00Z")


def test_canonical_corpus_signs_identically(ref):
    include_all = TopicFieldRules(topic="/t", rules=())
    for i, doc in enumerate(corpus("canonical")):
        got = compare(ref, doc, include_all, i, "2026-12-06T00:00:00Z")
        assert got and got[0] == got[1]


def test_tampered_packages_fail_alike(ref):
    case = corpus("packages")[3]
    kwargs = dict(
        unsigned_payload=UnsignedDataPayload(topic="/t", fields={"a": 1, "b": [1.5, "x"]}, captured_at="t"),
        topic_rules=rules_of(case["rules"]),
        signing_ctx=signing_ctx(),
        encryption_ctx=ENC,
        schema_version="v1",
        sequence_number=7,
    )
    good = sealstream.build_signed_data_package(**kwargs)
    sig = good.signature
    variants = [
        dataclasses.replace(good, sequence_number=8),
        dataclasses.replace(good, payload={**good.payload, "a": 2}),
        dataclasses.replace(good, timestamp="u"),
        dataclasses.replace(good, did="did:peaq:0x" + "12" * 20),
        dataclasses.replace(good, did="did:peaq:0x12"),
        dataclasses.replace(good, did="did:key:z6Mk"),
        dataclasses.replace(good, signature=sig[:-2] + ("1c" if sig[-2:] == "1b" else "1b")),
        dataclasses.replace(good, signature=sig[:10]),
        dataclasses.replace(good, signature="0x" + "00" * 65),
        dataclasses.replace(good, signature="zz"),
    ]
    for bad in variants:
        theirs = ref.verify_data_package(bad)
        ours = sealstream.verify_data_package(bad)
        assert type(ours) is VerificationResult
        assert ours == theirs, (bad, theirs, ours)
        assert not ours.valid
    batch = sealstream.verify_data_packages([good, *variants] * 20)
    assert batch == [sealstream.verify_data_package(p) for p in [good, *variants] * 20]


def test_any_did_and_any_sequence_number_like_the_reference(ref):
    ctx = SigningContext(private_key=SIGNING_KEY[2:], backend="software", did="did:peaq:0x" + "ab" * 20, key_id="k")
    for seq in (0, -1, 2**70, 10**30):
        kwargs = dict(
            unsigned_payload=UnsignedDataPayload(topic="/t", fields={"x": 1}, captured_at="t"),
            topic_rules=TopicFieldRules(topic="/t", rules=()),
            signing_ctx=ctx,
            encryption_ctx=ENC,
            schema_version="v1",
            sequence_number=seq,
        )
        ours = sealstream.build_signed_data_package(**kwargs)
        assert ours == ref.build_signed_data_package(**kwargs)
        assert sealstream.verify_data_package(ours) == ref.verify_data_package(ours)


def test_batches_equal_single_calls():
    rules = TopicFieldRules(
        topic="/gps",
        rules=(FieldRule("lat", "anonymize", "generalize"), FieldRule("note", "exclude")),
    )
    payloads = [
        UnsignedDataPayload(topic="/gps", fields={"lat": 52.52 + i, "lon": 13.4, "note": "n"}, captured_at=f"t{i}")
        for i in range(300)
    ]
    batch = sealstream.build_signed_data_packages(
        unsigned_payloads=payloads,
        topic_rules=rules,
        signing_ctx=signing_ctx(),
        encryption_ctx=ENC,
        schema_version="v1",
        first_sequence_number=1000,
    )
    singles = [
        sealstream.build_signed_data_package(
            unsigned_payload=p,
            topic_rules=rules,
            signing_ctx=signing_ctx(),
            encryption_ctx=ENC,
            schema_version="v1",
            sequence_number=1000 + i,
        )
        for i, p in enumerate(payloads)
    ]
    assert batch == singles
    assert all(r.valid for r in sealstream.verify_data_packages(batch))


BAD_SIGNING = [
    dict(unsigned_payload=None),
    dict(schema_version=""),
    dict(schema_version="   "),
    dict(signing_ctx=SigningContext(private_key="0x12", backend="software", did="d", key_id="k")),
    dict(signing_ctx=SigningContext(private_key="0X" + "11" * 32, backend="software", did="d", key_id="k")),
    dict(signing_ctx=SigningContext(private_key="0x" + "00" * 32, backend="software", did="d", key_id="k")),
    dict(signing_ctx=SigningContext(private_key="0x" + "ff" * 32, backend="software", did="d", key_id="k")),
    dict(topic_rules=TopicFieldRules(topic="/t", rules=(FieldRule("a", "anonymize"),))),
    dict(topic_rules=TopicFieldRules(topic="/t", rules=(FieldRule("a", "encrypt"),)),
         encryption_ctx=EncryptionContext(encryption_key="0x1234", algorithm="AES-256-GCM")),
    dict(topic_rules=TopicFieldRules(topic="/t", rules=(FieldRule("a", "encrypt"),)),
         encryption_ctx=EncryptionContext(encryption_key=FIELD_KEY, algorithm="ROT13")),
    dict(unsigned_payload=UnsignedDataPayload(topic="/t", fields={"a": float("nan")}, captured_at="t")),
    dict(unsigned_payload=UnsignedDataPayload(topic="/t", fields={"a": {1, 2}}, captured_at="t")),
]


@pytest.mark.parametrize("change", BAD_SIGNING, ids=range(len(BAD_SIGNING)))
def test_bad_signing_input_fails_alike(ref, change):
    kwargs = dict(
        unsigned_payload=UnsignedDataPayload(topic="/t", fields={"a": 1}, captured_at="t"),
        topic_rules=TopicFieldRules(topic="/t", rules=()),
        signing_ctx=signing_ctx(),
        encryption_ctx=ENC,
        schema_version="v1",
        sequence_number=1,
    )
    kwargs.update(change)
    theirs = outcome(ref.build_signed_data_package, **kwargs)
    ours = outcome(sealstream.build_signed_data_package, **kwargs)
    assert isinstance(theirs, tuple), theirs
    assert issubclass(theirs[0], StreamError)
    assert ours == theirs
    # No key material in the message.
    assert "11" * 32 not in ours[1] and SIGNING_KEY[2:] not in ours[1]


def test_deep_nesting_is_an_error_not_a_crash(ref):
    """Up to 512 levels: the reference's result. Deeper: RecursionError (the reference goes
    on to about 50,000 levels; sealstream refuses rather than risk its native stack)."""

    def nested(depth):
        doc: dict = {}
        inner = doc
        for _ in range(depth):
            inner["a"] = {}
            inner = inner["a"]
        return dict(
            unsigned_payload=UnsignedDataPayload(topic="/t", fields=doc, captured_at="t"),
            topic_rules=TopicFieldRules(topic="/t", rules=()),
            signing_ctx=signing_ctx(),
            encryption_ctx=ENC,
            schema_version="v1",
            sequence_number=1,
        )

    shallow = nested(500)
    assert sealstream.build_signed_data_package(**shallow) == ref.build_signed_data_package(**shallow)
    for depth in (600, 5_000, 100_000):
        with pytest.raises(RecursionError):
            sealstream.build_signed_data_package(**nested(depth))
