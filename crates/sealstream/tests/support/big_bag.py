"""Write an MCAP file of N sensor_msgs/msg/NavSatFix messages with mcap-ros2-support.

Usage: big_bag.py OUT.mcap N
The message definition text comes from rosbags' typestore (ROS 2 Humble).
"""
import sys

from mcap_ros2.writer import Writer
from rosbags.typesys import Stores, get_typestore


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    text, _ = typestore.generate_msgdef("sensor_msgs/msg/NavSatFix", ros_version=2)
    base = 1_795_000_000 * 10**9
    with open(out, "wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef("sensor_msgs/msg/NavSatFix", text)
        for i in range(n):
            t = base + i * 10_000_000
            msg = {
                "header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "gps"},
                "status": {"status": 0, "service": 1},
                "latitude": 52.52 + i * 1e-6,
                "longitude": 13.405,
                "altitude": 34.0 + (i % 100) / 10,
                "position_covariance": [0.0] * 9,
                "position_covariance_type": 0,
            }
            writer.write_message("/gps/fix", schema, msg, log_time=t, publish_time=t, sequence=i)
        writer.finish()


if __name__ == "__main__":
    main()
