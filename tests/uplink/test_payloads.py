"""The uplink builds what the platform receives without the REST API: the API package can go, the uplink stays.

Run in a fresh interpreter where importing `gateway.api` (or the dashboard) fails, so no earlier test
can have loaded it already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoApi(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[:2] in (["gateway", "api"], ["gateway", "dashboard"]):
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, NoApi())

    from gateway.config import Settings
    from gateway.core.metrics import Metrics
    from gateway.pipeline.queue import IngestQueue
    from gateway.store.db import make_engine, upgrade
    from gateway.store.models import AccessRecord, PunchRecord
    from gateway.uplink.outbox import Outbox
    from gateway.uplink.service import Uplink
    from gateway.uplink.worker import Entry
    from sqlmodel import Session

    engine = make_engine("sqlite:///" + sys.argv[1])
    upgrade(engine)
    with Session(engine) as session:
        session.add(PunchRecord(key=bytes.fromhex("11" * 16), device_id="att-01", user="E1001", time=1_795_827_543_000,
                                utc_offset_min=480, direction="in", verify="card", source="attlog", raw_ref="j:1", stored_at=1_795_827_545_000))
        session.add(AccessRecord(key=bytes.fromhex("22" * 16), device_id="door-ctl", door="door-main",
                                 time=1_795_827_544_000, utc_offset_min=480, credential_kind="card",
                                 credential_value="10:1093", credential_bits=26, credential_format="H10301",
                                 facility=10, number=1093, decision="granted", reason="granted", direction="in",
                                 source="mqtt-json", raw_ref="j:2",
                                 stored_at=1_795_827_545_000))
        session.commit()
    settings = Settings()
    uplink = Uplink(engine, settings, Metrics(), Outbox(engine, settings.uplink.routes()), IngestQueue(10, 10))
    entries = [Entry(1, "punch", "11" * 16, "att-01", None, "pending", 0),
               Entry(2, "access", "22" * 16, "door-ctl", None, "pending", 0)]
    out = uplink.resolve("webhook", entries)
    loaded = sorted(m for m in sys.modules if m.startswith(("gateway.api", "gateway.dashboard")))
    print(json.dumps({"records": [out[1], out[2]], "loaded": loaded}))
    """
)


def test_punch_and_door_event_payloads_are_built_without_the_api(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "gateway.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["loaded"] == []
    punch, access = answer["records"]
    assert punch["type"] == "punch" and punch["idempotency_key"] == "punch:" + "11" * 16
    assert punch["record"] | {"id": "?"} == {
        "id": "?",
        "device_id": "att-01",
        "user": "E1001",
        "person_id": None,
        "time": "2026-11-28T00:59:03Z",
        "local_time": "2026-11-28T08:59:03+08:00",
        "direction": "in",
        "verify": "card",
        "source": "attlog",
        "status_code": None,
        "verify_code": None,
        "workcode": None,
        "seq": None,
    }
    assert access["type"] == "access" and access["idempotency_key"] == "access:" + "22" * 16
    record = access["record"]
    assert record["door"] == "door-main" and record["decision"] == "granted" and record["reason"] == "granted"
    assert record["credential"] == {
        "kind": "card",
        "value": "10:1093",
        "bits": 26,
        "format": "H10301",
        "facility": 10,
        "number": 1093,
    }
    assert record["time"] == "2026-11-28T00:59:04Z" and record["local_time"] == "2026-11-28T08:59:04+08:00"
