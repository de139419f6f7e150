"""A ROS 2 publisher on rmw_zenoh's wire, without ROS: eclipse-zenoh (the
Zenoh project's own Python binding) for the transport, rosbags (an
independent implementation of the ROS 2 type system and CDR) for the
payloads and type hashes.

usage: ros2_publish.py PLAN.json OUT.jsonl

PLAN.json:
  {"listen": "tcp/127.0.0.1:PORT",   # the agent connects here
   "domain": 0,
   "messages": [{"type": "pkg/msg/Name", "path": "file.msg"}, ...],  # custom types
   "topics": [{"topic": "/gps/fix", "type": "sensor_msgs/msg/NavSatFix"}, ...],
   "count": N,          # messages per topic, round-robin over the topics
   "rate": R,           # messages per second in all (0: as fast as possible)
   "wait_for_subscribers": true,   # before the first message, until every topic is matched
   "stop_file": "path", # optional: stop early when this file exists
   "liveliness_out": "path"}  # optional: once matched, the liveliness tokens
                              # a liveliness subscriber on @ros2_lv/** is told
                              # of (a JSON list of keys)

Each message is published on
  <domain>/<topic without '/'>/<pkg>::msg::dds_::<Name>_/<RIHS01 hash>
with rmw_zenoh's 33-byte attachment (sequence from 1 per publisher, source
time in ns, 16-byte global id), and appended to OUT.jsonl as
  {"topic", "type", "sequence", "gid", "timestamp_ns", "fields"}
where fields is the message as rosbags holds it (arrays as lists; float32
values as the float64 they widen to). The node and its publishers announce
liveliness tokens as rmw_zenoh does.
"""
import dataclasses
import hashlib
import json
import math
import os
import struct
import sys
import time

import numpy as np
import zenoh
from rosbags.typesys import Stores, get_typestore, get_types_from_msg


def plain(value):
    """A rosbags message value as JSON-ready Python data."""
    if dataclasses.is_dataclass(value):
        # The fields of the definition, not its constants.
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("__") and not f.name.isupper()
        }
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def make(store, typename, i, t_ns):
    """Message i of a type: every field set from i, deterministic."""
    ns = store.types
    sec, nsec = divmod(t_ns, 1_000_000_000)
    Time = store.types["builtin_interfaces/msg/Time"]
    Header = store.types["std_msgs/msg/Header"]
    header = Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=f"frame_{i % 3}")
    if typename == "sensor_msgs/msg/NavSatFix":
        Status = ns["sensor_msgs/msg/NavSatStatus"]
        return ns[typename](
            header=header,
            status=Status(status=i % 3 - 1, service=1 + i % 4),
            latitude=52.52 + i * 1e-5,
            longitude=13.405 - i * 1e-5,
            altitude=34.0 + (i % 10) / 4,
            position_covariance=np.array([0.1 * (k + 1) + i for k in range(9)], dtype=np.float64),
            position_covariance_type=i % 4,
        )
    if typename == "sensor_msgs/msg/Imu":
        Q = ns["geometry_msgs/msg/Quaternion"]
        V = ns["geometry_msgs/msg/Vector3"]
        cov = np.array([k * 0.01 for k in range(9)], dtype=np.float64)
        return ns[typename](
            header=header,
            orientation=Q(x=0.0, y=0.0, z=math.sin(i / 10), w=math.cos(i / 10)),
            orientation_covariance=cov,
            angular_velocity=V(x=0.01 * i, y=-0.02 * i, z=0.5),
            angular_velocity_covariance=cov,
            linear_acceleration=V(x=0.0, y=0.1, z=9.81),
            linear_acceleration_covariance=cov,
        )
    if typename == "geometry_msgs/msg/Twist":
        V = ns["geometry_msgs/msg/Vector3"]
        return ns[typename](linear=V(x=0.5 + i / 100, y=0.0, z=0.0), angular=V(x=0.0, y=0.0, z=-0.1 * (i % 5)))
    # A custom type: fill each field by its kind.
    return make_nested(store, typename, i)


def fill(store, typename, field, i):
    """A value for a field of a custom type, from its definition."""
    consts, fields = store.fielddefs[typename]
    for name, desc in fields:
        if name != field:
            continue
        return value_of(store, desc, i)
    raise KeyError(field)


def value_of(store, desc, i):
    kind, rest = desc
    if kind == 1:  # base
        base, bound = rest
        return scalar(base, i)
    if kind == 2:  # name (nested)
        return make_nested(store, rest, i)
    if kind in (3, 4):  # array / sequence
        (inner, size) = rest
        n = size if kind == 3 else (size if size else 3)
        n = n or 3
        items = [value_of(store, inner, i + k) for k in range(n)]
        ik, ir = inner
        if ik == 1 and ir[0] in NUMPY:
            return np.array(items, dtype=NUMPY[ir[0]])
        return items
    raise ValueError(desc)


NUMPY = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}


def scalar(base, i):
    if base == "string":
        return f"s{i}-é"
    if base == "bool":
        return i % 2 == 0
    if base in ("float32",):
        return float(np.float32(i / 8 + 0.1))
    if base == "float64":
        return i / 3
    if base.startswith("uint") or base in ("byte", "char"):
        return i % 200
    if base.startswith("int"):
        return (i % 200) - 100
    raise ValueError(base)


def make_nested(store, name, i):
    typename = name if "/msg/" in name else name.replace("/", "/msg/")
    cls = store.types[typename]
    _, fields = store.fielddefs[typename]
    return cls(**{name: fill(store, typename, name, i) for name, _ in fields})


def mangle(s):
    return s.replace("/", "%") if s else "%"


def main():
    plan = json.load(open(sys.argv[1]))
    out = open(sys.argv[2], "a")
    domain = plan.get("domain", 0)
    store = get_typestore(Stores.ROS2_JAZZY)
    for m in plan.get("messages", []):
        store.register(get_types_from_msg(open(m["path"]).read(), m["type"]))

    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("scouting/multicast/enabled", "false")
    conf.insert_json5("listen/endpoints", json.dumps([plan["listen"]]))
    conf.insert_json5("connect/endpoints", "[]")
    session = zenoh.open(conf)
    zid = str(session.zid())
    node = f"@ros2_lv/{domain}/{zid}/0/0/NN/%/%/test_publisher"
    tokens = [session.liveliness().declare_token(node)]
    pubs = []
    for n, t in enumerate(plan["topics"]):
        typename = t["type"]
        pkg, _, name = typename.split("/")
        dds = f"{pkg}::msg::dds_::{name}_"
        thash = store.hash_rihs01(typename)
        key = f"{domain}/{t['topic'].lstrip('/')}/{dds}/{thash}"
        token = (
            f"@ros2_lv/{domain}/{zid}/0/{n + 1}/MP/%/%/test_publisher/"
            f"{mangle(t['topic'])}/{dds}/{thash}/::,10:,:,:,,"
        )
        tokens.append(session.liveliness().declare_token(token))
        gid = hashlib.sha256(token.encode()).digest()[:16]
        pub = session.declare_publisher(
            key, congestion_control=zenoh.CongestionControl.BLOCK, reliability=zenoh.Reliability.RELIABLE
        )
        pubs.append((t["topic"], typename, pub, gid))
    if plan.get("wait_for_subscribers", True):
        deadline = time.time() + 60
        while not all(p.matching_status.matching for _, _, p, _ in pubs):
            if time.time() > deadline:
                sys.exit("no subscriber matched within 60 s")
            time.sleep(0.02)
    if plan.get("liveliness_out"):
        # A liveliness subscriber on @ros2_lv/**, with history: it is told of
        # every token alive (then of each one declared or undeclared).
        keys = set()
        watcher = session.liveliness().declare_subscriber(
            "@ros2_lv/**", lambda sample: keys.add(str(sample.key_expr)), history=True
        )
        time.sleep(1.0)
        watcher.undeclare()
        keys = list(keys)
        with open(plan["liveliness_out"] + ".tmp", "w") as f:
            json.dump(sorted(keys), f)
        os.rename(plan["liveliness_out"] + ".tmp", plan["liveliness_out"])
    count = plan["count"]
    rate = plan.get("rate", 0)
    stop_file = plan.get("stop_file")
    start = time.time()
    k = 0
    for i in range(1, count + 1):
        for topic, typename, pub, gid in pubs:
            if rate:
                due = start + k / rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
            k += 1
            t_ns = time.time_ns()
            msg = make(store, typename, i, t_ns)
            payload = store.serialize_cdr(msg, typename)
            attachment = struct.pack("<qqB", i, t_ns, 16) + gid
            pub.put(bytes(payload), attachment=attachment)
            out.write(json.dumps({
                "topic": topic, "type": typename, "sequence": i, "gid": gid.hex(),
                "timestamp_ns": t_ns, "fields": plain(msg),
            }) + "\n")
            out.flush()
        if stop_file and os.path.exists(stop_file):
            break
    # Let the last samples leave before the session closes.
    time.sleep(0.5)
    for tok in tokens:
        tok.undeclare()
    session.close()
    print(k)


if __name__ == "__main__":
    main()
