"""The demo robot's drive: the sensor_msgs/NavSatFix fields of its GPS fix at
a tick (10 Hz), one definition for the bag (demo/make_bag.py) and the live
stream (demo/live_fixes.py)."""
import math


def fix(tick, stamp):
    """The NavSatFix fields at `tick`, with header stamp `stamp`
    ({"sec", "nanosec"})."""
    heading = tick / 600.0
    return {
        "header": {"stamp": stamp, "frame_id": "gps"},
        "status": {"status": 0, "service": 1},
        "latitude": 52.520008 + 0.0004 * math.sin(heading),
        "longitude": 13.404954 + 0.0006 * math.cos(heading),
        "altitude": 34.0 + (tick % 50) / 10,
        "position_covariance": [0.25, 0, 0, 0, 0.25, 0, 0, 0, 1.0],
        "position_covariance_type": 2,
    }
