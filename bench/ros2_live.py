#!/usr/bin/env python3
"""The live ROS 2 source (rmw_zenoh) under load: the highest NavSatFix rate
the agent sustains without a drop, and publish-to-chunk latency at 100 msgs/s.
Usage:

    cargo build --release -p sealstream && scripts/setup-test-peers
    .venv/bin/python bench/ros2_live.py [--rates 20000,30000,40000] [--seconds 10]
        [--latency-seconds 30] [--binary PATH]

A publisher process (eclipse-zenoh, payloads serialised by rosbags) listens on
loopback and publishes `sensor_msgs/msg/NavSatFix` on rmw_zenoh's key with its
attachment (sequence, source time, global id). 1,000 distinct messages are
serialised up front and cycled, so the publisher is not the limit (it
publishes several hundred thousand samples a second). The agent
(`sealstream --quiet agent run`) connects to it, with the bag benchmark's
Data Event Map (`bench/agent_compare.py`: fixture keys, chunks of ≤ 1000
packages and 1 MiB, rules latitude/longitude generalize and
position_covariance exclude, a directory destination), source `queue` 65536.

- Throughput: for each rate in --rates, --seconds of messages at that rate
  (fresh spool each time); then the agent is stopped (SIGTERM seals what it
  holds) and the gap records in its log are counted. A rate is sustained when
  no message is missing (no gap) and the agent's queue never overflowed.
  Reports the agent's CPU seconds (user + system) and peak RSS.
- Latency: --latency-seconds at 100 msgs/s with `maxAge: 1s`; each message's
  latency is from its source time (set by the publisher when it publishes) to
  the modification time of its chunk's envelope in the directory destination
  (sealed, committed and delivered). The chunks are opened with the owner's
  fixture key (PyNaCl) to find which messages each holds.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_compare import BAG_RULES, OURS, REPO, git, write_map  # noqa: E402
from fixtures import fixtures_dir  # noqa: E402
from quiet import wait_for_quiet  # noqa: E402

PUBLISHER = r'''
import json, struct, sys, time, hashlib
import numpy as np, zenoh
from rosbags.typesys import Stores, get_typestore
port, rate, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
store = get_typestore(Stores.ROS2_JAZZY)
T = store.types
payloads = []
for i in range(1000):
    msg = T["sensor_msgs/msg/NavSatFix"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1764900000 + i, nanosec=i), frame_id="gps"),
        status=T["sensor_msgs/msg/NavSatStatus"](status=0, service=1),
        latitude=52.52 + i * 1e-5, longitude=13.405 - i * 1e-5, altitude=34.0,
        position_covariance=np.array([0.1 * k for k in range(9)], dtype=np.float64), position_covariance_type=2)
    payloads.append(bytes(store.serialize_cdr(msg, "sensor_msgs/msg/NavSatFix")))
thash = store.hash_rihs01("sensor_msgs/msg/NavSatFix")
key = f"0/gps/fix/sensor_msgs::msg::dds_::NavSatFix_/{thash}"
conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("scouting/multicast/enabled", "false")
conf.insert_json5("listen/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
conf.insert_json5("connect/endpoints", "[]")
s = zenoh.open(conf)
gid = hashlib.sha256(key.encode()).digest()[:16]
pub = s.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK, reliability=zenoh.Reliability.RELIABLE)
while not pub.matching_status.matching:
    time.sleep(0.01)
time.sleep(0.5)
print("matched", flush=True)
start = time.time()
for i in range(1, count + 1):
    due = start + (i - 1) / rate
    d = due - time.time()
    if d > 0:
        time.sleep(d)
    t = time.time_ns()
    pub.put(payloads[i % 1000], attachment=struct.pack("<qqB", i, t, 16) + gid)
elapsed = time.time() - start
time.sleep(0.5)
s.close()
print(json.dumps({"sent": count, "seconds": elapsed}), flush=True)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_usage(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS (MiB) of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return round(cpu, 2), round(hwm, 1)


def make_map(work: Path, fx: Path, port: int, max_age: str) -> Path:
    source = f'{{type: ros2, connect: ["tcp/127.0.0.1:{port}"], listen: [], queue: 65536}}'
    path = write_map(work, fx, source, "/gps/fix", "1.0.0", BAG_RULES)
    text = path.read_text().replace("  maxAge: 1h\n", f"  maxAge: {max_age}\n")
    text = text.replace("    source: src\n", "    source: src\n    type: sensor_msgs/msg/NavSatFix\n")
    path.write_text(text)
    return path


def run(binary: Path, work: Path, fx: Path, rate: float, count: int, max_age: str) -> dict:
    work.mkdir(parents=True)
    port = free_port()
    config = make_map(work, fx, port, max_age)
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(port), str(rate), str(count)],
                           stdout=subprocess.PIPE, text=True)
    log = open(work / "agent.log", "w")
    agent = subprocess.Popen([str(binary), "agent", "run", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=log)
    assert pub.stdout.readline().strip() == "matched", "the publisher matched the agent"
    t0 = time.time()
    result = json.loads(pub.stdout.readline())
    pub.wait()
    time.sleep(1.0)
    agent_cpu, agent_hwm = proc_usage(agent.pid)
    agent.send_signal(signal.SIGTERM)
    if agent.wait(timeout=120) != 0:
        raise SystemExit(f"agent failed:\n{(work / 'agent.log').read_text()}")
    wall = time.time() - t0
    text = (work / "agent.log").read_text()
    missing = 0
    gaps = 0
    for line in text.splitlines():
        if "gap recorded: " in line:
            gaps += 1
            m = re.search(r": (\d+) messages? missing", line)
            missing += int(m.group(1)) if m else 0
    state = json.loads((work / "spool" / "state.json").read_text())
    packages = state["topics"]["/gps/fix"]["packages"]
    return {
        "rate": rate,
        "sent": result["sent"],
        "publish_seconds": round(result["seconds"], 3),
        "committed_packages": packages - gaps,
        "gap_records": gaps,
        "missing": missing,
        # The agent alone, read from /proc just before it is stopped.
        "agent_cpu_seconds": agent_cpu,
        "agent_cores": round(agent_cpu / result["seconds"], 2),
        "agent_peak_rss_mib": agent_hwm,
        "wall_seconds": round(wall, 2),
        "work": work,
    }


def latencies(work: Path, fx: Path) -> list[float]:
    """Seconds from each package's source time to its chunk's envelope mtime."""
    from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt, crypto_box_seal_open
    from nacl.public import PrivateKey

    keys = json.loads((fx / "keys.json").read_text())
    sk = PrivateKey(bytes.fromhex(keys["owner"]["privateKeyHex"]))
    chain = next((work / "out").iterdir())
    out = []
    for env_path in sorted(chain.glob("chunk-*.json")):
        env = json.loads(env_path.read_text())
        sealed = env_path.stat().st_mtime_ns
        entry = next(r for r in env["encryption"]["keyRecipients"] if r["recipientType"] == "owner")
        key = crypto_box_seal_open(bytes.fromhex(entry["wrappedKeyHex"]), bytes(sk.public_key), bytes(sk))
        ct = (chain / env_path.name.replace(".json", ".bin")).read_bytes()
        plain = crypto_aead_xchacha20poly1305_ietf_decrypt(ct, None, bytes.fromhex(env["encryption"]["nonce"]), key)
        for line in plain.decode().splitlines():
            p = json.loads(line)
            ts = p["timestamp"]  # YYYY-MM-DDTHH:MM:SS.fffffffffZ
            secs = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            ns = int(secs) * 1_000_000_000 + int(ts[20:29])
            out.append((sealed - ns) / 1e9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="20000,30000,40000,50000")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--latency-seconds", type=float, default=30)
    ap.add_argument("--binary", type=Path, default=OURS)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    fx = fixtures_dir()
    base = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"ros2-bench-{os.getpid()}"
    print(f"binary {args.binary} (commit {git('rev-parse', '--short', 'HEAD')}), work {base}")
    best = None
    for rate in [float(r) for r in args.rates.split(",")]:
        wait_for_quiet()
        r = run(args.binary, base / f"rate-{int(rate)}", fx, rate, int(rate * args.seconds), "1h")
        ok = r["missing"] == 0 and r["gap_records"] == 0 and r["committed_packages"] == r["sent"]
        print(json.dumps({k: v for k, v in r.items() if k != "work"}), "sustained" if ok else "DROPS")
        if ok:
            best = rate
    print(f"highest sustained rate: {best} msgs/s")
    wait_for_quiet()
    n = int(100 * args.latency_seconds)
    r = run(args.binary, base / "latency", fx, 100, n, "1s")
    lat = sorted(latencies(r["work"], fx))
    assert len(lat) == n, f"{len(lat)} of {n} messages in the chunks"
    q = statistics.quantiles(lat, n=100)
    print(json.dumps({
        "latency_messages": n, "rate": 100, "maxAge": "1s",
        "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1), "min_ms": round(lat[0] * 1000, 1),
    }))


if __name__ == "__main__":
    main()
