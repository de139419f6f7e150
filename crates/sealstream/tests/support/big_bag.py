"""Write an MCAP file of N sensor_msgs/msg/NavSatFix messages with mcap-ros2-support.

Usage: big_bag.py OUT.mcap N
The message definition text comes from rosbags' typestore (ROS 2 Humble).
"""
import sys

from navsatfix import log_time, navsatfix, navsatfix_writer


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    with open(out, "wb") as f:
        writer, schema = navsatfix_writer(f)
        for i in range(n):
            t = log_time(i)
            msg = navsatfix(i, altitude=34.0 + (i % 100) / 10)
            writer.write_message("/gps/fix", schema, msg, log_time=t, publish_time=t, sequence=i)
        writer.finish()


if __name__ == "__main__":
    main()
