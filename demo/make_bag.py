"""Write demo/robot.mcap: a small ROS 2 bag of a delivery robot's drive (written by
mcap-ros2-support with message definitions from rosbags' typestore, ROS 2 Humble,
so the bag is ROS tooling's, not ours).

Usage: python3 demo/make_bag.py [OUT.mcap] [SECONDS]
Topics: /gps/fix (sensor_msgs/msg/NavSatFix, 10 Hz) and /battery
(sensor_msgs/msg/BatteryState, 1 Hz). Deterministic: the same bytes every run.
"""
import sys

from mcap_ros2.writer import Writer
from rosbags.typesys import Stores, get_typestore

from drive import fix

START = 1_795_000_000 * 10**9  # 2026-11-18T09:46:40Z, in ns


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "demo/robot.mcap"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 1800
    store = get_typestore(Stores.ROS2_HUMBLE)
    with open(out, "wb") as f:
        writer = Writer(f)
        schemas = {}
        for name in ("sensor_msgs/msg/NavSatFix", "sensor_msgs/msg/BatteryState"):
            text, _ = store.generate_msgdef(name, ros_version=2)
            schemas[name] = writer.register_msgdef(name, text)
        seq = 0
        for tick in range(seconds * 10):
            t = START + tick * 100_000_000
            stamp = {"sec": t // 10**9, "nanosec": t % 10**9}
            writer.write_message("/gps/fix", schemas["sensor_msgs/msg/NavSatFix"], fix(tick, stamp),
                                 log_time=t, publish_time=t, sequence=seq)
            seq += 1
            if tick % 10 == 0:
                level = 1.0 - tick / (seconds * 10) * 0.35
                writer.write_message("/battery", schemas["sensor_msgs/msg/BatteryState"], {
                    "header": {"stamp": stamp, "frame_id": "battery"},
                    "voltage": 24.0 + 4.0 * level, "temperature": 31.5, "current": -3.2,
                    "charge": 40.0 * level, "capacity": 40.0, "design_capacity": 40.0,
                    "percentage": level, "power_supply_status": 2, "power_supply_health": 1,
                    "power_supply_technology": 3, "present": True,
                    "cell_voltage": [], "cell_temperature": [],
                    "location": "base", "serial_number": "BAT-0042",
                }, log_time=t, publish_time=t, sequence=seq)
                seq += 1
        writer.finish()


if __name__ == "__main__":
    main()
