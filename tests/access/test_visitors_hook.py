"""The doors and the visitors know each other only through the app: access imports nothing of visitors,
visitors use the door rules (`access.decide`) but not the access service."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def _loaded_by(module: str, prefix: str) -> list[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefix!r}))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_access_service_imports_no_visitors_module() -> None:
    assert _loaded_by("gateway.access.service", "gateway.visitors") == []


def test_the_visitors_service_imports_no_access_service() -> None:
    assert _loaded_by("gateway.visitors.service", "gateway.access.service") == []
