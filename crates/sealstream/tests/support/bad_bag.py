"""Write an MCAP file with good and bad messages, with mcap-ros2-support and mcap.

Usage: bad_bag.py OUT.mcap
- /gps/fix: 20 sensor_msgs/msg/NavSatFix messages in CDR; numbers 5 and 12 are
  truncated CDR that no decoder can read.
- /events: 10 JSON messages {"i": n, "v": float}; number 3 is not JSON, and
  number 7 has v = 5e-324 (a subnormal, which a `generalize` rule refuses).
"""
import json
import sys

from navsatfix import log_time, navsatfix, navsatfix_writer


def main():
    out = sys.argv[1]
    with open(out, "wb") as f:
        writer, schema = navsatfix_writer(f)
        raw = writer._writer  # the underlying mcap.writer.Writer
        events = raw.register_channel(topic="/events", message_encoding="json", schema_id=0)
        for i in range(20):
            t = log_time(i)
            if i in (5, 12):
                channel = writer._channel_ids["/gps/fix"]
                raw.add_message(channel_id=channel, log_time=t, publish_time=t,
                                sequence=i, data=b"\x00\x01\x00\x00\x07\x00")
            else:
                msg = navsatfix(i, altitude=34.0)
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
