"""What bad_bag.py and big_bag.py share: an MCAP writer with the
sensor_msgs/msg/NavSatFix schema (its definition text from rosbags' typestore,
ROS 2 Humble) and the messages they write on /gps/fix."""
from mcap_ros2.writer import Writer
from rosbags.typesys import Stores, get_typestore

# Log time of message 0, in nanoseconds; message i is 10 ms later per i.
BASE = 1_795_000_000 * 10**9


def navsatfix_writer(f):
    """An mcap_ros2 Writer on the open file f, and its NavSatFix schema."""
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    text, _ = typestore.generate_msgdef("sensor_msgs/msg/NavSatFix", ros_version=2)
    writer = Writer(f)
    return writer, writer.register_msgdef("sensor_msgs/msg/NavSatFix", text)


def log_time(i):
    """The log time of message i."""
    return BASE + i * 10_000_000


def navsatfix(i, altitude):
    """Fix number i (stamped at its log time) at the given altitude."""
    t = log_time(i)
    return {
        "header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "gps"},
        "status": {"status": 0, "service": 1},
        "latitude": 52.52 + i * 1e-6,
        "longitude": 13.405,
        "altitude": altitude,
        "position_covariance": [0.0] * 9,
        "position_covariance_type": 0,
    }
