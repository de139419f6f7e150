"""Stream the demo robot's live GPS fixes, topic /gps/live, as JSON lines for
its agent's standard input (`agent init --source jsonl:-@/gps/live`): the
sensor_msgs/NavSatFix fields of /gps/fix in demo/robot.mcap, stamped with the
time each line is written.

Usage: python3 demo/live_fixes.py [COUNT] [RATE]
COUNT fixes (default 1200: two minutes at 10 Hz), RATE lines a second
(default 1200: the two minutes in one second). Each line is flushed as it is
written, so the agent seals chunks while the stream runs.
"""
import datetime
import json
import math
import sys
import time


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1200
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 1200.0
    started = time.monotonic()
    for tick in range(count):
        # Paced against the start, so a slow write does not slow the stream.
        ahead = started + tick / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        ns = time.time_ns()
        now = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
        heading = tick / 600.0
        line = {
            "topic": "/gps/live",
            "capturedAt": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9 // 10**6:03d}Z",
            "fields": {
                "header": {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": "gps"},
                "status": {"status": 0, "service": 1},
                "latitude": 52.520008 + 0.0004 * math.sin(heading),
                "longitude": 13.404954 + 0.0006 * math.cos(heading),
                "altitude": 34.0 + (tick % 50) / 10,
                "position_covariance": [0.25, 0, 0, 0, 0.25, 0, 0, 0, 1.0],
                "position_covariance_type": 2,
            },
        }
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)
