"""`bench/readyz.py --smoke` runs end to end, so the bench cannot rot unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readyz_bench_smoke_run_reports_both_endpoints_without_errors() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "readyz.py"), "--smoke", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["errors"] == 0
    assert figures["loaded_events"] > 0
    for key in ("healthz_median_ms", "readyz_median_ms", "loaded_readyz_p99_ms"):
        assert figures[key] > 0, key
    ratio = figures["readyz_median_ms"] / figures["healthz_median_ms"]
    assert figures["ratio"] == pytest.approx(ratio, abs=0.02)  # both printed rounded
