"""A simulated attendance terminal on MQTT, as a real one behaves.

It logs in with its own client id and keeps its session (clean session off),
sets `offline` as its retained will, announces `online`, and publishes punches
at QoS 1, either as JSON events or as ZKTeco ATTLOG lines. Like a real
device it keeps every punch the broker has not acknowledged and sends it
again after a reconnect, so nothing is lost while the gateway restarts.
It executes the commands it receives (open_door, sync_time, reboot) and
answers each on `commands/result`; unknown commands are answered ok=false.

Run alone: python -m firmware_stubs.mqtt_terminal --port 1883 --device att-01 --count 1000
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.devices.attlog import encode_line

VERIFY = ("fingerprint", "card", "face", "password")
KNOWN_COMMANDS = ("open_door", "deny_access", "sync_time", "reboot")


class MqttTerminal:
    def __init__(
        self,
        device_id: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        mode: str = "json",
        username: str | None = None,
        password: str | None = None,
        users: list[str] | None = None,
        tz: tzinfo = ZoneInfo("Asia/Shanghai"),
        start: datetime | None = None,
        max_inflight: int = 100,
        answer_commands: bool = True,
    ) -> None:
        if mode not in ("json", "attlog"):
            raise ValueError("mode is json or attlog")
        self.device_id = device_id
        self.mode = mode
        self.users = users or [f"E{1000 + i}" for i in range(50)]
        self.tz = tz
        self.clock = start or datetime.now(UTC)
        self.seq = itertools.count(1)
        self.published = 0
        self.answer_commands = answer_commands
        self.commands: list[dict] = []  # every command received, answered or not
        self.refused = threading.Event()  # the broker turned the login down
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.will_set(self.topic("status"), b"offline", qos=1, retain=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)  # type: ignore[arg-type]  # paho annotates int; fractions work
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.on_message = self._on_command
        self._host, self._port = host, port

    def topic(self, channel: str) -> str:
        return f"devices/{self.device_id}/{channel}"

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if rc.is_failure:  # type: ignore[attr-defined]
            self.refused.set()
            return
        client.subscribe(self.topic("commands"), qos=1)
        self.connected.set()

    def _on_command(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            command = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            return
        self.commands.append(command)
        if not self.answer_commands or not isinstance(command, dict):
            return
        name = command.get("name")
        ok = name in KNOWN_COMMANDS
        detail = f"{name} done" if ok else f"unknown command {name!r}"
        result = {"id": command.get("id"), "ok": ok, "detail": detail}
        client.publish(self.topic("commands/result"), orjson.dumps(result), qos=1)

    def start(self, timeout: float = 10.0) -> MqttTerminal:
        self.client.connect_async(self._host, self._port, keepalive=15)
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while not self.connected.wait(0.05):
            if self.refused.is_set():
                self.client.loop_stop()
                raise PermissionError(f"{self.device_id}: the broker refused the login")
            if time.monotonic() > deadline:
                self.client.loop_stop()
                raise TimeoutError(f"{self.device_id}: no broker at {self._host}:{self._port}")
        self.client.publish(self.topic("status"), orjson.dumps({"online": True, "firmware": "sim-1.0"}), 1, True)
        return self

    def next_punch_payload(self) -> tuple[str, bytes]:
        """The next punch as this terminal's wire format: (channel, payload)."""
        self.clock += timedelta(seconds=random.randint(1, 30))
        user = random.choice(self.users)
        seq = next(self.seq)
        direction = random.choice(("in", "out"))
        local = self.clock.astimezone(self.tz)
        if self.mode == "attlog":
            status = 0 if direction == "in" else 1
            return "attlog", (encode_line(user, local.replace(tzinfo=None), status, 1) + "\n").encode()
        body = {
            "type": "punch",
            "user": user,
            "time": local.isoformat(timespec="seconds"),
            "verify": random.choice(VERIFY),
            "direction": direction,
            "seq": seq,
        }
        return "events", orjson.dumps(body)

    def punch(self) -> mqtt.MQTTMessageInfo:
        channel, payload = self.next_punch_payload()
        self.published += 1
        return self.client.publish(self.topic(channel), payload, qos=1)

    def publish_raw(self, channel: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topic(channel), payload, qos=qos)

    def unacked(self) -> int:
        """Messages the broker has not acknowledged yet (queued or in flight)."""
        return len(self.client._out_messages)

    def wait_all_acked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.unacked() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.unacked()

    def close(self) -> None:
        self.client.publish(self.topic("status"), b"offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--device", required=True)
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--mode", choices=("json", "attlog"), default="json")
    parser.add_argument("--count", type=int, default=100, help="punches to publish")
    parser.add_argument("--rate", type=float, default=0, help="punches per second; 0 = as fast as possible")
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for every PUBACK")
    args = parser.parse_args(argv)
    terminal = MqttTerminal(
        args.device, args.host, args.port, mode=args.mode, username=args.username, password=args.password
    ).start()
    for _ in range(args.count):
        terminal.punch()
        if args.rate:
            time.sleep(1 / args.rate)
    ok = terminal.wait_all_acked(args.wait)
    print(f"published {terminal.published} unacked {terminal.unacked()}", flush=True)
    terminal.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
