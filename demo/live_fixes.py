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
import sys
import time

from drive import fix


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
        line = {
            "topic": "/gps/live",
            "capturedAt": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9 // 10**6:03d}Z",
            "fields": fix(tick, {"sec": ns // 10**9, "nanosec": ns % 10**9}),
        }
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)
