"""The API stands without the dashboard: the app mounts the pages, the API package never imports them."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_importing_the_api_loads_no_dashboard_module():
    probe = "import sys, gateway.api; print(sorted(m for m in sys.modules if m.startswith('gateway.dashboard')))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_dashboard_the_app_adds_stays_out_of_the_openapi_document():
    from gateway.api import create_app
    from gateway.app import build_app

    assert build_app(None).openapi()["paths"] == create_app(None).openapi()["paths"]
