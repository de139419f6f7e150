"""Write an MCAP file with good and bad messages, with mcap-ros2-support and mcap.

Usage: bad_bag.py OUT.mcap
- /gps/fix: 20 sensor_msgs/msg/NavSatFix messages in CDR; numbers 5 and 12 are
  truncated CDR that no decoder can read.
- /events: 10 JSON messages {"i": n, "v": float}; number 3 is not JSON, and
  number 7 has v = 5e-324 (a subnormal, which a `generalize` rule refuses).
"""
import json
import sys

from mcap_ros2.writer import Writer
from rosbags.typesys import Stores, get_typestore


def main():
    out = sys.argv[1]
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    text, _ = typestore.generate_msgdef("sensor_msgs/msg/NavSatFix", ros_version=2)
    base = 1_795_000_000 * 10**9
    with open(out, "wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef("sensor_msgs/msg/NavSatFix", text)
        raw = writer._writer  # the underlying mcap.writer.Writer
        events = raw.register_channel(topic="/events", message_encoding="json", schema_id=0)
        for i in range(20):
            t = base + i * 10_000_000
            if i in (5, 12):
                channel = writer._channel_ids["/gps/fix"]
                raw.add_message(channel_id=channel, log_time=t, publish_time=t,
                                sequence=i, data=b"\x00\x01\x00\x00\x07\x00")
            else:
                msg = {
                    "header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "gps"},
                    "status": {"status": 0, "service": 1},
                    "latitude": 52.52 + i * 1e-6,
                    "longitude": 13.405,
                    "altitude": 34.0,
                    "position_covariance": [0.0] * 9,
                    "position_covariance_type": 0,
                }
                writer.write_message("/gps/fix", schema, msg, log_time=t, publish_time=t, sequence=i)
            if i < 10:
                if i == 3:
                    data = b"{not json"
                else:
                    data = json.dumps({"i": i, "v": 5e-324 if i == 7 else 1.5 + i}).encode()
                raw.add_message(channel_id=events, log_time=t + 1, publish_time=t + 1,
                                sequence=i, data=data)
        writer.finish()


if __name__ == "__main__":
    main()
