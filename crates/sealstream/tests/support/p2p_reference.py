"""The reference's P2P delivery (peaq-os-sdk 0.12.1 with its p2p extra) against
`sealstream p2p`, for tests/p2p_reference.rs. The market's orchestration calls are
stubbed in-process; everything on the wire is the reference's own code.

  p2p_reference.py receive FIXTURES CHAIN URL PURCHASE SESSION
      P2PDeliveryReceiver: dial URL, receive, verify, decrypt with the fixture buyer's
      key and the chain's access files. Prints {"ok": true, "chunks": N, "identical": bool}
      (identical: the data equals CHAIN/input.bin) or {"ok": false, "code", "reason"}.
  p2p_reference.py channel FIXTURES CHAIN PURCHASE SESSION URL_FILE CONNECT_TIMEOUT
      P2PDeliveryChannel: deliver CHAIN/published to the fixture buyer; the connect URL
      is written to URL_FILE (atomically) once access is "prepared". Prints
      {"ok": true, ...} once delivered, or {"ok": false, "error": message}.
"""
import datetime
import glob
import json
import logging
import os
import sys
import types

from peaq_os_sdk.stream._internal.frames import _chunk_from_camel, _key_recipient_from_camel
from peaq_os_sdk.stream.types.buyer_access import BuyerAccessEntry, BuyerAccessFile

PROTO = "/peaqos/stream/chunk/1.0.0"
BUYER_ID = "did:peaq:0x000000000000000000000000000000000000b0b0"

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def load_chunks(chain):
    d = os.path.join(chain, "published")
    n = json.load(open(os.path.join(d, "manifest.json")))["totalChunks"]
    out = []
    for i in range(n):
        env = _chunk_from_camel(json.load(open(os.path.join(d, f"chunk-{i}.json"))))
        with open(os.path.join(d, f"chunk-{i}.bin"), "rb") as f:
            out.append((env, f.read()))
    return out


def load_access(chain):
    files = []
    for p in sorted(glob.glob(os.path.join(chain, "access", "*.json"))):
        raw = json.load(open(p))
        entries = tuple(
            BuyerAccessEntry(chunk_id=e["chunkId"], buyer=_key_recipient_from_camel(e["buyer"]))
            for e in raw["entries"]
        )
        files.append(BuyerAccessFile(schema_version=raw["schemaVersion"], file_name=os.path.basename(p),
                                     buyer_public_key_hex=raw["buyerPublicKeyHex"], entries=entries))
    return files


class NoClient:
    """Stands in for PeaqosClient: the receiver's purchase events fail and are swallowed."""


def receive(fixtures, chain, url, purchase, session):
    from peaq_os_sdk.orchestration.types.purchases import (
        PeaqosP2pConnect, PurchaseDeliveryDetails, PurchaseDeliveryResponse, PurchaseDeliverySignaling)
    from peaq_os_sdk.stream.errors import StreamReceiveError
    from peaq_os_sdk.stream.p2p_delivery_receiver import P2PDeliveryReceiver

    buyer_key = json.load(open(os.path.join(fixtures, "keys.json")))["buyer"]["privateKeyHex"]
    access = tuple(e for f in load_access(chain) for e in f.entries)
    expires = (datetime.datetime.now(datetime.timezone.utc)
               + datetime.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    delivery = PurchaseDeliveryResponse(
        purchase_id=purchase,
        delivery=PurchaseDeliveryDetails(
            status="releasable", mode="p2p", transport_id="peaqos-p2p", session_id=session,
            signaling=PurchaseDeliverySignaling(type="peaqos-socket", channel_id="ch-1"),
            protocols=(PROTO,), encoding="peaqos-json-frame-v1",
            connect=PeaqosP2pConnect(type="peaqos-p2p-url", url=url, expires_at=expires)),
        access=access)
    r = P2PDeliveryReceiver(buyer_id=BUYER_ID, client=NoClient(), recipient_private_key_hex=buyer_key)
    try:
        res = r.receive(purchase_id=purchase, delivery=delivery)
    except StreamReceiveError as e:
        print(json.dumps({"ok": False, "code": e.code, "reason": e.reason}))
        return 3
    with open(os.path.join(chain, "input.bin"), "rb") as f:
        want = f.read()
    print(json.dumps({"ok": True, "chunks": res.chunks_received, "identical": res.data == want}))
    return 0


def channel(fixtures, chain, purchase, session, url_file, connect_timeout):
    import peaq_os_sdk.orchestration.purchases as purchases
    import peaq_os_sdk.orchestration.stream_delivery_setup as setup
    from peaq_os_sdk.orchestration.types.purchases import (
        DeliverySession, DeliverySessionDelivery, PrepareAccessOrder, PrepareAccessOrderPayment,
        PrepareAccessResponse, PurchaseDeliverySignaling)
    from peaq_os_sdk.orchestration.types.stream_purchase import P2PDeliveryTransport
    from peaq_os_sdk.stream.p2p_delivery_channel import P2PDeliveryChannel, ResolvedChunk
    from peaq_os_sdk.stream.types.delivery import DistributePackage

    # The market's side of the orchestration, stubbed: the channel imports these
    # lazily inside its methods, so patching the modules' attributes works.
    setup.list_delivery_transports = lambda client: [P2PDeliveryTransport(
        mode="p2p", transport_id="peaqos-p2p", version="v1", features=(), signaling="peaqos-socket",
        protocols=(PROTO,), encoding="peaqos-json-frame-v1", handoff="prepare-access",
        connect_schema={"type": "object", "properties": {"type": "peaqos-p2p-url"}})]
    setup.put_delivery_capabilities = lambda *a, **k: types.SimpleNamespace(expires_at=None)
    purchases.create_purchase_event = lambda *a, **k: None

    def prepare(client, purchase_id, *, agent_id, agent_token, request):
        conn = request.delivery.connect
        with open(url_file + ".tmp", "w") as f:
            f.write(conn.url)
        os.rename(url_file + ".tmp", url_file)
        ids = tuple(e.chunk_id for e in request.items)
        return PrepareAccessResponse(
            item=PrepareAccessOrder(id=purchase_id, listing_id="l-1", machine_id="m-1", buyer_id=BUYER_ID,
                                    chunk_ids=ids, amount=1.0, currency="USDC", status="paid",
                                    payment=PrepareAccessOrderPayment(status="verified"),
                                    access_grant_ids=(), delivery_session_id=session),
            access=request.items,
            delivery_session=DeliverySession(
                id=session, machine_id="m-1", order_id=purchase_id, buyer_id=BUYER_ID, chunk_ids=ids,
                delivery=DeliverySessionDelivery(
                    mode="p2p", transport_id="peaqos-p2p",
                    signaling=PurchaseDeliverySignaling(type="peaqos-socket", channel_id="ch-1"),
                    protocols=(PROTO,), encoding="peaqos-json-frame-v1", connect=conn),
                status="prepared", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z"))

    purchases.prepare_buyer_access = prepare

    chunks = load_chunks(chain)
    by_ref = {f"chunk-{i}": ResolvedChunk(envelope=e, ciphertext=c) for i, (e, c) in enumerate(chunks)}
    ch = P2PDeliveryChannel(machine_id="m-1", agent_id="a-1", agent_token="t", client=object(),
                            resolve_chunk_data=by_ref.__getitem__,
                            listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                            connection_timeout_s=connect_timeout)
    ch.start()
    try:
        res = ch.deliver(DistributePackage(buyer_access_files=tuple(load_access(chain)),
                                           encrypted_data_refs=tuple(by_ref), buyer_id=BUYER_ID,
                                           order_id=purchase))
        print(json.dumps({"ok": True, "result": str(res)}))
        return 0
    except Exception as e:  # the test reads the outcome, not a traceback
        print(json.dumps({"ok": False, "error": str(e)}))
        return 3
    finally:
        ch.stop()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "receive":
        sys.exit(receive(*args))
    if mode == "channel":
        sys.exit(channel(*args[:5], float(args[5])))
    sys.exit(f"unknown mode {mode}")
