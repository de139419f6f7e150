#!/usr/bin/env python3
"""Live-subscription latency of the market server (`sealstream market serve`,
SQLite and local objects): from a chunk's upload to its key being in the
feed of each of 1, 100 and 1,000 subscribers of one topic, at 4 chunks/s.
Usage:

    cargo build --release -p sealstream      # or let the script build it
    .venv/bin/python bench/subscription_latency.py [--subscribers 1,100,1000]
        [--chunks 60] [--rate 4] [--binary PATH] [--no-build]

Needs the venv's eth_account (SIWE and registration signatures) and PyNaCl
(buyer keys, and to check a delivered key opens).

What it does, per subscriber count N, against one server started on a free
port with a temporary --data-dir (connection and sign-in limits raised for
N feeds from one address):

- Setup: `sealstream keys generate`; an owner signs in and registers the
  machine, and registers the operator recipient's secret
  (PUT /v1/machines/{did}/operator-key), so the server grants each chunk to
  the subscribers itself; a subscription listing of the topic (invoice
  rail, one hour per period, no history) is published. N buyers (fresh
  secp256k1 accounts) sign in, subscribe with their own X25519 key, and the
  seller marks each first period paid. `sealstream publish` seals the
  chunks (1 KiB each) beforehand.
- Each buyer opens its feed (GET /v1/subscriptions/{id}/feed, server-sent
  events): N connections, read by one selector loop that stamps each
  `chunk` event's arrival.
- The machine uploads the chunks one by one at --rate chunks/s
  (PUT /v1/machines/{did}/topics/{topic}/chunks/{index}, one connection).
  Latency of a (chunk, subscriber) pair = arrival of the chunk's event in
  that subscriber's feed − start of the chunk's upload; "all N" = the
  latest arrival among the N subscribers − start of the upload. p50, p99
  and max over the pairs and over the chunks; the upload's own time; the
  server's CPU (cores, from /proc/PID/stat) over the streaming. The server
  keeps up when the per-chunk latency does not grow over the run (the last
  tenth of the chunks against the first) and the last key is delivered
  soon after the last upload; pairs still missing after --drain seconds
  are counted (and timed at the drain's end, a lower bound).
- Every delivered event is checked to be for its subscriber's key, and one
  subscriber's first key is opened (PyNaCl's sealed box) and checked against
  the chunk's key commitment.

The floor: the one piece of work a chunk costs per subscriber that no
design avoids is sealing its key to that subscriber (an X25519 sealed box:
a key generation and a key agreement). The script measures this machine's
sealed-box rate on one core (libsodium through PyNaCl) before the runs;
per chunk, the floor is N seals of CPU, and the table gives the server's
CPU per chunk and the floor as a fraction of it. "Keeps up": nothing
missing, and the last tenth's all-N latency no more than one chunk
interval above the first tenth's.

Replicas (issue 24): `--database postgres --replicas R` starts R servers
on one throwaway PostgreSQL cluster (bench/pgcluster.py, its default
durability), sharing an object directory and the three key files
docs/deploy.md names. The machine uploads to the first replica and
subscriber i follows through replica i mod R, so most feeds hear of a
chunk through PostgreSQL's NOTIFY from another process. "Server" CPU is
then every replica's plus the database's processes'.

Prints a Markdown table, the exact commands and one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from market_grants import INVOICE, Buyer, percentile, summary  # noqa: E402
from market_load import (  # noqa: E402
    OURS,
    REPO,
    Api,
    did_of,
    free_port,
    pids_cpu,
    register_machine,
    replica_flags,
    run,
    sign_in,
    start_server,
    stop_servers,
)

import pgcluster  # noqa: E402
from eth_account import Account  # noqa: E402
from nacl.public import PrivateKey, SealedBox  # noqa: E402

TOPIC = "/bench/live"
BOUNDARY = "sealstream-bench-boundary-7f3a9c"


class Feeds:
    """N server-sent event streams read by one selector loop."""

    def __init__(self, ports: list[int], subs: list[tuple[str, str, str]]) -> None:
        # subs: (subscription id, token, buyer public key hex)
        self.sel = selectors.DefaultSelector()
        self.arrivals: dict[str, dict[int, float]] = {}
        self.keys: dict[str, str] = {}
        self.events: dict[str, dict[int, dict]] = {}
        for i, (sub, token, public_hex) in enumerate(subs):
            # Subscriber i follows through replica i mod R.
            s = socket.create_connection(("127.0.0.1", ports[i % len(ports)]))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(
                f"GET /v1/subscriptions/{sub}/feed HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            s.setblocking(False)
            # [subscription, raw bytes not yet decoded, headers read, SSE text]
            self.sel.register(s, selectors.EVENT_READ, [sub, b"", False, b""])
            self.arrivals[sub] = {}
            self.keys[sub] = public_hex
            self.events[sub] = {}

    def poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            now = time.perf_counter()
            state = key.data
            try:
                data = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                sys.exit(f"the feed of {state[0]} closed")
            raw = state[1] + data
            if not state[2]:
                head, sep, rest = raw.partition(b"\r\n\r\n")
                if not sep:
                    state[1] = raw
                    continue
                status = head.split(b"\r\n", 1)[0]
                if b" 200 " not in status + b" ":
                    sys.exit(f"feed of {state[0]}: {status.decode()}")
                if b"transfer-encoding: chunked" not in head.lower():
                    sys.exit(f"feed of {state[0]}: not chunked")
                state[2] = True
                raw = rest
            # Chunked transfer encoding: "<hex size>\r\n<data>\r\n" frames.
            text = state[3]
            while True:
                line, sep, rest = raw.partition(b"\r\n")
                if not sep:
                    break
                size = int(line.split(b";")[0], 16)
                if len(rest) < size + 2:
                    break
                text += rest[:size]
                raw = rest[size + 2:]
            state[1] = raw
            while b"\n\n" in text:
                event, text = text.split(b"\n\n", 1)
                self._event(state[0], event, now)
            state[3] = text

    def _event(self, sub: str, raw: bytes, now: float) -> None:
        name, data = None, []
        for line in raw.split(b"\n"):
            line = line.rstrip(b"\r")
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if name != b"chunk":
            return
        event = json.loads(b"".join(data))
        index = event["index"]
        if event["buyer"]["publicKeyHex"] != self.keys[sub]:
            sys.exit(f"chunk {index} of {sub} wrapped to another key")
        self.arrivals[sub].setdefault(index, now)
        if index == 0:
            # Only the first is kept (one key is opened at the end): holding
            # every event would make this process's garbage collection, and
            # so the measured latency, grow over a long run.
            self.events[sub].setdefault(index, event)

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def upload(conn_api: Api, token: str, machine_did: str, chain: Path, index: int) -> None:
    env = (chain / f"chunk-{index}.json").read_bytes()
    bin_ = (chain / f"chunk-{index}.bin").read_bytes()
    body = b"".join([
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"envelope\"\r\n"
        f"Content-Type: application/json\r\n\r\n".encode(), env,
        f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"ciphertext\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n".encode(), bin_,
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ])
    path = (f"/v1/machines/{urllib.parse.quote(machine_did, safe='')}/topics/"
            f"{urllib.parse.quote(TOPIC, safe='')}/chunks/{index}")
    conn = conn_api.conn
    conn.request("PUT", path, body=body, headers={
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    })
    r = conn.getresponse()
    answer = r.read()
    if r.status != 201:
        sys.exit(f"upload of chunk {index} answered {r.status}: {answer[:300]!r}")


def one_run(binary: str, n: int, chunks: int, rate: float, work: Path, args_drain: float,
            database: str = "sqlite", replicas: int = 1) -> dict:
    keys_dir = work / "keys"
    keys = json.loads(run([binary, "keys", "generate", "--output-dir", str(keys_dir), "--json"]).stdout)
    machine_key = (keys_dir / "machine.secp256k1.sk").read_text().strip()
    machine = Account.from_key(machine_key if machine_key.startswith("0x") else "0x" + machine_key)
    owner = Account.create()
    owner_did, machine_did = did_of(owner.address), keys["machineDid"]

    source = work / "source.bin"
    source.write_bytes(os.urandom(1024 * chunks))
    chain = work / "chain"
    run([binary, "--quiet", "publish", "--input", str(source), "--output-dir", str(chain),
         "--owner-public-key", keys["ownerPublicKeyHex"],
         "--operator-public-key", keys["operatorPublicKeyHex"],
         "--machine-public-key", keys["machinePublicKeyHex"],
         "--signing-key-file", str(keys_dir / "chain.ed25519.sk"),
         "--machine-did", machine_did, "--machine-key-id", keys["machineKeyId"],
         "--chunk-size", "1024"])

    ports = [free_port() for _ in range(replicas)]
    port = ports[0]
    serve_cmd = [binary, "market", "serve",
                 "--max-connections", str(n + 256), "--max-connections-per-client", str(n + 64),
                 "--anonymous-write-rate", "0"]
    cluster = None
    servers = []
    database_pids = lambda: []  # noqa: E731
    try:
        if database == "postgres":
            cluster = pgcluster.Cluster(max_connections=100 + 100 * replicas)
            serve_cmd += ["--database-url", cluster.url]
            database_pids = cluster.server_pids
        if replicas > 1:
            # One database, one object directory, three shared key files
            # (docs/deploy.md); everyone signs in for the first replica's
            # address (as behind a proxy). The machine uploads to the first
            # replica; subscriber i follows through replica i mod R.
            serve_cmd += replica_flags(work, f"http://127.0.0.1:{port}")
        for i, p in enumerate(ports):
            own = ["--listen", f"127.0.0.1:{p}", "--data-dir", str(work / f"data-{i}")]
            if replicas > 1:
                own += ["--replica-id", f"r{i}"]
            server, first_api = start_server(serve_cmd + own, p, work / f"server-{i}.log")
            servers.append(server)
            if i == 0:
                api = first_api
        owner_token = sign_in(api, owner)
        register_machine(api, owner_token, owner_did, machine, keys, keys_dir)
        operator_secret = (keys_dir / "operator.x25519.sk").read_text().strip()
        api.expect(200, "PUT", f"/v1/machines/{machine_did}/operator-key",
                   {"secretKeyHex": operator_secret}, owner_token)
        listing = api.expect(201, "POST", "/v1/listings", {
            "kind": "subscription", "title": "Latency benchmark", "description": "1 KiB chunks, live",
            "tags": ["bench"], "license": {"spdx": "CC-BY-4.0"}, "price": "100", "rail": INVOICE,
            "delivery": ["api"],
            "subscription": {"machineDid": machine_did, "topic": TOPIC, "periodSeconds": 3600,
                             "graceSeconds": 0, "history": "none"},
        }, owner_token)
        api.expect(200, "POST", f"/v1/listings/{listing['id']}/publish", {}, owner_token)

        print(f"N={n}: {n} buyers sign in, subscribe, are marked paid", file=sys.stderr)
        subs = []
        first = None
        for i in range(n):
            b = Buyer(port)
            s = b.api.expect(201, "POST", "/v1/subscriptions",
                             {"listingId": listing["id"], "buyerPublicKeyHex": b.public_hex}, b.token)
            order = next(p["orderId"] for p in s["periods"])
            api.expect(200, "POST", f"/v1/orders/{order}/mark-paid", {"reference": s["id"]}, owner_token)
            subs.append((s["id"], b.token, b.public_hex))
            b.api.conn.close()
            if first is None:
                first = (s["id"], b)
        feeds = Feeds(ports, subs)
        machine_token = sign_in(Api(port), machine)
        machine_api = Api(port)
        time.sleep(1.0)  # the chunks' times must be after every activation (whole seconds)
        feeds.poll(0.2)

        print(f"N={n}: {chunks} chunks at {rate}/s", file=sys.stderr)
        started: dict[int, float] = {}
        upload_ms: list[float] = []
        interval = 1.0 / rate
        def cpu_now() -> dict[int, float]:
            """CPU seconds of each replica and database process."""
            return pids_cpu([s.pid for s in servers] + database_pids())

        cpu0, w0 = cpu_now(), time.perf_counter()
        next_at = time.perf_counter()
        for i in range(chunks):
            while time.perf_counter() < next_at:
                feeds.poll(max(0.0, next_at - time.perf_counter()))
            started[i] = time.perf_counter()
            upload(machine_api, machine_token, machine_did, chain, i)
            upload_ms.append((time.perf_counter() - started[i]) * 1000)
            next_at += interval
        uploads_done = time.perf_counter()
        deadline = uploads_done + args_drain
        while any(len(a) < chunks for a in feeds.arrivals.values()):
            if time.perf_counter() > deadline:
                break
            feeds.poll(0.5)
        wall = time.perf_counter() - w0
        # Per process: one that started meanwhile (a pooled connection's
        # backend) counts whole, one that ended is lost (not its CPU before).
        cpu = sum(t - cpu0.get(p, 0.0) for p, t in cpu_now().items())
        missing = sum(chunks - len(a) for a in feeds.arrivals.values())
        drained_after = max(max(a.values(), default=uploads_done) for a in feeds.arrivals.values()) - uploads_done

        # One delivered key opened and checked against its commitment.
        sub_id, buyer = first
        event = feeds.events[sub_id][0]
        key = SealedBox(buyer.x25519).decrypt(bytes.fromhex(event["buyer"]["wrappedKeyHex"]))
        commitment = "sha256:" + hashlib.sha256(key).hexdigest()
        if commitment != event["envelope"]["encryption"]["keyCommitment"]:
            sys.exit("a delivered key does not match its commitment")
        feeds.close()

        # Pairs not delivered by the end of the drain count at the drain's
        # end (a lower bound of their latency); the run then did not keep up.
        end = time.perf_counter()
        pairs = [feeds.arrivals[s].get(i, end) - started[i] for s, _, _ in subs for i in range(chunks)]
        all_n = [max(feeds.arrivals[s].get(i, end) for s, _, _ in subs) - started[i] for i in range(chunks)]
        # Subscriber i follows through replica i mod R: the pairs of each.
        by_replica = [
            summary([feeds.arrivals[s].get(i, end) - started[i]
                     for k, (s, _, _) in enumerate(subs) if k % replicas == r for i in range(chunks)])
            for r in range(min(replicas, n))
        ]
        tenth = max(1, chunks // 10)
        first_tenth = 1000 * sum(all_n[:tenth]) / tenth
        last_tenth = 1000 * sum(all_n[-tenth:]) / tenth
        return {
            "subscribers": n,
            "database": database,
            "replicas": replicas,
            "chunks": chunks,
            "rate": rate,
            "pair": summary(pairs),
            # Every pair's latency (ms), for callers that pool runs; not printed.
            "pairs_ms": [1000 * x for x in pairs],
            "all": summary(all_n),
            "pair_by_replica": by_replica,
            "upload": {"p50_ms": sorted(upload_ms)[len(upload_ms) // 2], "max_ms": max(upload_ms)},
            "first_tenth_all_ms": first_tenth,
            "last_tenth_all_ms": last_tenth,
            "keeps_up": missing == 0 and last_tenth <= first_tenth + 1000 / rate,
            "server_cores": cpu / wall,
            "server_cpu_per_chunk_ms": 1000 * cpu / chunks,
            "missing_pairs": missing,
            "last_delivery_after_last_upload_s": drained_after,
        }
    finally:
        stop_servers(servers)
        if cluster is not None:
            cluster.stop()


def raise_open_files(subscribers: int) -> None:
    """Raises this process's open-file limit for `subscribers` feeds (two
    descriptors each, and room for the rest), up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, subscribers * 2 + 1024)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def seal_rate(seconds: float = 1.0) -> float:
    """Sealed boxes of a 32-byte key per second on one core (libsodium)."""
    pk = PrivateKey.generate().public_key
    box, key, n = SealedBox(pk), os.urandom(32), 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            box.encrypt(key)
        n += 100
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", default="1,100,1000", help="comma-separated subscriber counts")
    ap.add_argument("--chunks", type=int, default=60, help="chunks uploaded per run")
    ap.add_argument("--rate", type=float, default=4.0, help="chunks per second")
    ap.add_argument("--drain", type=float, default=120.0,
                    help="seconds to wait after the last upload for every key to be delivered")
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                    help="the server's database (PostgreSQL: a throwaway cluster, bench/pgcluster.py)")
    ap.add_argument("--replicas", type=int, default=1,
                    help="market serve processes on one PostgreSQL database; the machine uploads to the "
                         "first, subscriber i follows through replica i mod R")
    ap.add_argument("--binary", type=Path, default=OURS)
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release first")
    args = ap.parse_args()
    counts = [int(x) for x in args.subscribers.split(",")]
    if args.replicas > 1 and args.database != "postgres":
        sys.exit("--replicas above 1 needs --database postgres")

    if not args.no_build and args.binary == OURS:
        print("cargo build --release -p sealstream", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "sealstream"], cwd=REPO, check=True)
    binary = str(args.binary)
    raise_open_files(max(counts))

    rate = seal_rate()
    print(f"sealed boxes on one core: {rate:,.0f}/s", file=sys.stderr)
    results = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="sealstream-sub-latency-") as work:
            r = one_run(binary, n, args.chunks, args.rate, Path(work), args.drain, args.database,
                        args.replicas)
            r["seals_per_core_s"] = rate
            r["floor_cpu_per_chunk_ms"] = 1000 * n / rate
            results.append(r)

    print("| subscribers | pair p50 | pair p99 | all N p50 | all N p99 | all N max "
          "| upload p50 | first / last tenth (all N) | keeps up | server cores | server CPU per chunk "
          "| floor (N seals) | last key after last upload | missing |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['subscribers']:,} | {r['pair']['p50_ms']:.1f} ms | {r['pair']['p99_ms']:.1f} ms "
              f"| {r['all']['p50_ms']:.1f} ms | {r['all']['p99_ms']:.1f} ms | {r['all']['max_ms']:.1f} ms "
              f"| {r['upload']['p50_ms']:.1f} ms "
              f"| {r['first_tenth_all_ms']:.0f} / {r['last_tenth_all_ms']:.0f} ms "
              f"| {'yes' if r['keeps_up'] else 'no'} "
              f"| {r['server_cores']:.2f} | {r['server_cpu_per_chunk_ms']:.1f} ms "
              f"| {r['floor_cpu_per_chunk_ms']:.2f} ms "
              f"({100 * r['floor_cpu_per_chunk_ms'] / max(r['server_cpu_per_chunk_ms'], 1e-9):.0f} %) "
              f"| {r['last_delivery_after_last_upload_s']:.1f} s "
              f"| {r['missing_pairs']} |")
    print()
    for r in results:
        r.pop("pairs_ms", None)
    print(f"Command: .venv/bin/python bench/subscription_latency.py --subscribers {args.subscribers} "
          f"--chunks {args.chunks} --rate {args.rate:g} --database {args.database} --replicas {args.replicas}")
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
