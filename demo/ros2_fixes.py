"""The demo robot's live GPS fixes as a ROS 2 node publishes them with the
Zenoh middleware (rmw_zenoh): sensor_msgs/msg/NavSatFix on /gps/live, the
fields of /gps/fix in demo/robot.mcap (demo/drive.py), serialised to CDR by
rosbags, put by eclipse-zenoh on rmw_zenoh's key with its attachment
(sequence number, source time, publisher id), the node and its publisher
announced by liveliness tokens. `scripts/demo --ros2` runs it with the test
peers' Python (scripts/setup-test-peers installs both packages).

Usage: .venv/bin/python demo/ros2_fixes.py PORT [COUNT] [RATE]
Listens on tcp/127.0.0.1:PORT (the agent connects, as it connects to a
robot's rmw_zenohd router), waits until a subscriber matches, then
publishes COUNT fixes (default 1200) at RATE a second (default 1200).
"""
import hashlib
import json
import struct
import sys
import time

import numpy as np
import zenoh
from rosbags.typesys import Stores, get_typestore

from drive import fix

TYPE = "sensor_msgs/msg/NavSatFix"


def message(store, fields):
    t = store.types
    h = fields["header"]
    return t[TYPE](
        header=t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](**h["stamp"]), frame_id=h["frame_id"]
        ),
        status=t["sensor_msgs/msg/NavSatStatus"](**fields["status"]),
        latitude=fields["latitude"],
        longitude=fields["longitude"],
        altitude=fields["altitude"],
        position_covariance=np.array(fields["position_covariance"], dtype=np.float64),
        position_covariance_type=fields["position_covariance_type"],
    )


def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1200
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 1200.0
    store = get_typestore(Stores.ROS2_JAZZY)
    type_hash = store.hash_rihs01(TYPE)
    dds = "sensor_msgs::msg::dds_::NavSatFix_"
    key = f"0/gps/live/{dds}/{type_hash}"
    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("scouting/multicast/enabled", "false")
    conf.insert_json5("listen/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
    conf.insert_json5("connect/endpoints", "[]")
    session = zenoh.open(conf)
    zid = str(session.zid())
    tokens = [
        session.liveliness().declare_token(f"@ros2_lv/0/{zid}/0/0/NN/%/%/gps_driver"),
        session.liveliness().declare_token(
            f"@ros2_lv/0/{zid}/0/1/MP/%/%/gps_driver/%gps%live/{dds}/{type_hash}/::,10:,:,:,,"
        ),
    ]
    gid = hashlib.sha256(f"{zid}/gps_driver/gps/live".encode()).digest()[:16]
    publisher = session.declare_publisher(
        key, congestion_control=zenoh.CongestionControl.BLOCK, reliability=zenoh.Reliability.RELIABLE
    )
    deadline = time.time() + 60
    while not publisher.matching_status.matching:
        if time.time() > deadline:
            sys.exit("demo/ros2_fixes.py: no subscriber within 60 s")
        time.sleep(0.02)
    started = time.monotonic()
    for tick in range(count):
        ahead = started + tick / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        ns = time.time_ns()
        fields = fix(tick, {"sec": ns // 10**9, "nanosec": ns % 10**9})
        payload = bytes(store.serialize_cdr(message(store, fields), TYPE))
        publisher.put(payload, attachment=struct.pack("<qqB", tick + 1, ns, 16) + gid)
    time.sleep(0.5)
    for token in tokens:
        token.undeclare()
    session.close()
    print(count)


if __name__ == "__main__":
    main()
