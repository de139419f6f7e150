"""Publish messages to an MQTT broker with paho-mqtt (a third-party client),
QoS 1, and wait until the broker has acknowledged every one.

usage: mqtt_publish.py HOST PORT MESSAGES.jsonl
Each line of MESSAGES.jsonl is {"topic": ..., "payload": <string>}.
"""
import json
import sys

import paho.mqtt.client as mqtt


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.max_inflight_messages_set(100)
    client.connect(host, port)
    client.loop_start()
    infos = []
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            infos.append(client.publish(m["topic"], m["payload"].encode("utf-8"), qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
        if not info.is_published():
            sys.exit("a message was not acknowledged by the broker")
    client.disconnect()
    client.loop_stop()
    print(len(infos))


if __name__ == "__main__":
    main()
