"""The Kestra emulator on its own: one Kestra version per process, nothing of Switchyard inside."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration_tools.kestra_api import KestraApi, KestraApiError

ROOT = Path(__file__).resolve().parents[2]
EACH = """\
id: each
namespace: company.team
tasks:
- id: loop
  type: io.kestra.plugin.core.flow.{loop}
  values: [a, b]
  tasks:
  - {{id: say, type: io.kestra.plugin.core.log.Log, message: hi}}
"""


@pytest.fixture
def kestra2_process() -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.kestra", "--kestra-version", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Kestra 2.x emulator listening on http://127.0.0.1:"), line
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_standalone_emulator_plays_the_kestra_version_it_was_started_with(
    kestra2_process: str,
) -> None:
    api = KestraApi(kestra2_process, timeout=10)
    assert api.create_flow(EACH.format(loop="Loop"))["revision"] == 1
    with pytest.raises(KestraApiError) as err:
        api.put_flow("company.team", "each", EACH.format(loop="ForEach"))
    assert err.value.status == 422
    assert "tasks[0].type: Invalid type: io.kestra.plugin.core.flow.ForEach" in err.value.message


def test_the_emulator_imports_nothing_of_switchyard() -> None:
    # Independent of the translator's checks by construction, not by care.
    probe = (
        "import sys, emulators.kestra.server, emulators.kestra.__main__\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'migration_tools', 'gateway', 'adapters'}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
