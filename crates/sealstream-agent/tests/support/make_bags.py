#!/usr/bin/env python3
"""Write ROS 2 bags with third-party tools, for sealstream-agent's decoder tests.

Usage: make_bags.py OUT_DIR

Writes into OUT_DIR (which must exist):
  rosbag2/         a rosbag2 directory written by `rosbags` (MCAP storage, version 9)
  ros2.mcap        a single MCAP file written by `mcap-ros2-support`, plus a `json` channel
  expected.json    {"rosbag2": [...], "mcap": [...]}: per file, every message in
                   log-time order as {"topic", "log_time_ns", "fields"}; NaN floats
                   appear as null (what the decoder maps them to)

Messages are written deliberately out of log-time order so the reader's ordering
is tested. Needs: pip install rosbags mcap-ros2-support (numpy comes with rosbags).
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
from mcap_ros2.writer import Writer as Ros2McapWriter
from rosbags.interfaces import Nodetype
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

BASE_NS = 1_795_282_537_000_000_000  # 2026-11-21T17:35:37Z
NAN = None  # stands for NaN in the value tables; written as NaN, expected as null

NUMPY_DTYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def stamp(offset_ns):
    t = BASE_NS + offset_ns
    return {"sec": t // 1_000_000_000, "nanosec": t % 1_000_000_000}


def header(offset_ns, frame):
    return {"stamp": stamp(offset_ns), "frame_id": frame}


def vec3(x, y, z):
    return {"x": x, "y": y, "z": z}


# (topic, type, log time offset in ns, fields), in the order they are written.
MESSAGES = [
    (
        "/gps",
        "sensor_msgs/msg/NavSatFix",
        2_000_000_500,
        {
            "header": header(2_000_000_000, "gps_link"),
            "status": {"status": 2, "service": 1},
            "latitude": 52.520008,
            "longitude": 13.404954,
            "altitude": 34.5,
            "position_covariance": [1.5, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 4.0],
            "position_covariance_type": 2,
        },
    ),
    (
        "/gps",
        "sensor_msgs/msg/NavSatFix",
        1_123_456_789,
        {
            "header": header(1_100_000_001, "gps_link"),
            "status": {"status": -1, "service": 15},
            "latitude": -33.8688,
            "longitude": 151.2093,
            "altitude": -0.25,
            "position_covariance": [0.1 * i for i in range(9)],
            "position_covariance_type": 0,
        },
    ),
    (
        "/cmd_vel",
        "geometry_msgs/msg/Twist",
        1_500_000_000,
        {"linear": vec3(0.5, 0.0, -0.0), "angular": vec3(0.0, 1e-310, -0.25)},
    ),
    (
        "/chatter",
        "std_msgs/msg/String",
        1_600_000_000,
        {"data": "Grüße, 世界 🚀 — naïve café"},
    ),
    ("/chatter", "std_msgs/msg/String", 1_600_000_001, {"data": ""}),
    (
        "/imu",
        "sensor_msgs/msg/Imu",
        1_700_000_000,
        {
            "header": header(1_699_999_000, "imu_link"),
            "orientation": {"x": 0.0, "y": 0.0, "z": 0.7071067811865476, "w": 0.7071067811865476},
            "orientation_covariance": [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "angular_velocity": vec3(0.01, -0.02, 3.5e-5),
            "angular_velocity_covariance": [0.001 * (i + 1) for i in range(9)],
            "linear_acceleration": vec3(0.1, 0.2, 9.80665),
            "linear_acceleration_covariance": [NAN, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1e300],
        },
    ),
    (
        "/joint_states",
        "sensor_msgs/msg/JointState",
        1_800_000_000,
        {
            "header": header(1_800_000_000, ""),
            "name": ["shoulder", "elbow", "Gelenk_ä"],
            "position": [0.1, -1.2, 3.141592653589793],
            "velocity": [],
            "effort": [1e-300, 5e300, -0.0],
        },
    ),
    (
        "/diagnostics",
        "diagnostic_msgs/msg/DiagnosticArray",
        1_900_000_000,
        {
            "header": header(1_900_000_000, "base"),
            "status": [
                {
                    "level": 2,
                    "name": "battery",
                    "message": "low voltage",
                    "hardware_id": "bms-01",
                    "values": [
                        {"key": "voltage", "value": "11.2"},
                        {"key": "temperature", "value": "41 °C"},
                    ],
                },
                {
                    "level": 0,
                    "name": "motors",
                    "message": "",
                    "hardware_id": "",
                    "values": [],
                },
            ],
        },
    ),
    ("/counter", "std_msgs/msg/UInt64", 2_100_000_000, {"data": 2**64 - 1}),
    ("/offset", "std_msgs/msg/Int64", 2_100_000_001, {"data": -(2**63)}),
    ("/ratio", "std_msgs/msg/Float32", 2_100_000_002, {"data": 0.15625}),
    ("/ratio", "std_msgs/msg/Float32", 2_100_000_003, {"data": 3.4028234663852886e38}),
    ("/empty", "std_msgs/msg/Empty", 2_200_000_000, {"structure_needs_at_least_one_member": 0}),
    (
        "/bytes",
        "std_msgs/msg/UInt8MultiArray",
        2_300_000_000,
        {
            "layout": {
                "dim": [{"label": "bytes", "size": 3, "stride": 3}],
                "data_offset": 0,
            },
            "data": [0, 7, 255],
        },
    ),
    ("/flag", "std_msgs/msg/Bool", 1_000_000_000, {"data": True}),
]

# Only in the mcap-ros2-support file: a channel with message encoding `json`.
JSON_MESSAGES = [
    (
        "/status_json",
        1_550_000_000,
        {"mode": "auto", "battery": 87.5, "ok": True, "n": 12345678901234567890, "tags": ["a", "ü"]},
    ),
    ("/status_json", 2_050_000_000, {"mode": "manual", "battery": 80, "ok": False, "n": -1, "tags": []}),
]


def nan_for_none(value):
    """Replace the NaN placeholder (None) by NaN, recursively."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: nan_for_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_for_none(v) for v in value]
    return value


def to_rosbags(typestore, msgtype, value):
    """Build a rosbags message object from a plain dict."""
    _, fields = typestore.fielddefs[msgtype]
    kwargs = {}
    for name, (nodetype, detail) in fields:
        kwargs[name] = convert_field(typestore, nodetype, detail, value[name])
    return typestore.types[msgtype](**kwargs)


def convert_field(typestore, nodetype, detail, value):
    if nodetype == Nodetype.BASE:
        return nan_for_none(value)
    if nodetype == Nodetype.NAME:
        return to_rosbags(typestore, detail, value)
    (elem_type, elem_detail), _ = detail
    if elem_type == Nodetype.BASE and elem_detail[0] not in ("string", "wstring"):
        return np.array(nan_for_none(value), dtype=NUMPY_DTYPES[elem_detail[0]])
    return [convert_field(typestore, elem_type, elem_detail, v) for v in value]


def write_rosbag2(out, typestore):
    connections = {}
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, msgtype, offset, value in MESSAGES:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            data = typestore.serialize_cdr(to_rosbags(typestore, msgtype, value), msgtype)
            writer.write(connections[topic], BASE_NS + offset, data)


def write_mcap(path, typestore):
    schemas = {}
    with open(path, "wb") as f:
        writer = Ros2McapWriter(f)
        # The json channel goes through the underlying `mcap` writer.
        raw = writer._writer
        json_schema = raw.register_schema(name="Status", encoding="jsonschema", data=b'{"type":"object"}')
        json_channel = raw.register_channel(topic="/status_json", message_encoding="json", schema_id=json_schema)
        json_queue = list(JSON_MESSAGES)
        for seq, (topic, msgtype, offset, value) in enumerate(MESSAGES):
            if msgtype not in schemas:
                text, _ = typestore.generate_msgdef(msgtype, ros_version=2)
                schemas[msgtype] = writer.register_msgdef(msgtype, text)
            msg = nan_for_none(value)
            if msgtype == "std_msgs/msg/UInt8MultiArray":
                msg["data"] = bytes(msg["data"])
            if msgtype == "std_msgs/msg/Empty":
                msg = {}
            writer.write_message(
                topic,
                schemas[msgtype],
                msg,
                log_time=BASE_NS + offset,
                publish_time=BASE_NS + offset,
                sequence=seq,
            )
            if json_queue and seq % 5 == 4:
                jtopic, joffset, jvalue = json_queue.pop(0)
                raw.add_message(
                    channel_id=json_channel,
                    log_time=BASE_NS + joffset,
                    publish_time=BASE_NS + joffset,
                    data=json.dumps(jvalue).encode(),
                    sequence=seq,
                )
        for jtopic, joffset, jvalue in json_queue:
            raw.add_message(
                channel_id=json_channel,
                log_time=BASE_NS + joffset,
                publish_time=BASE_NS + joffset,
                data=json.dumps(jvalue).encode(),
                sequence=0,
            )
        writer.finish()


def expected(entries):
    entries = sorted(entries, key=lambda e: e["log_time_ns"])
    return entries


def main():
    out = Path(sys.argv[1])
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    write_rosbag2(out / "rosbag2", typestore)
    write_mcap(out / "ros2.mcap", typestore)
    ros = [
        {"topic": topic, "log_time_ns": BASE_NS + offset, "fields": value}
        for topic, _, offset, value in MESSAGES
    ]
    js = [
        {"topic": topic, "log_time_ns": BASE_NS + offset, "fields": value}
        for topic, offset, value in JSON_MESSAGES
    ]
    doc = {"rosbag2": expected(ros), "mcap": expected(ros + js)}
    # Float32 values are widened exactly; the ones used are exact in float32.
    with open(out / "expected.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, allow_nan=False, indent=1)


if __name__ == "__main__":
    main()
