from pathlib import Path

import pytest

from gateway.contract import State
from gateway.states import StateMap, StateMapError, default_state_map


def test_default_map_loads_and_covers_every_system() -> None:
    m = default_state_map()
    for system in [
        "airflow.dag_run",
        "airflow.task_instance",
        "kubernetes.job_condition",
        "kubernetes.pod_phase",
        "lambda.invocation",
        "cron.ping",
        "kestra.execution",
        "openlineage.event_type",
    ]:
        assert system in m.systems
    assert m.map("airflow.task_instance", "upstream_failed") is State.skipped
    assert m.map("airflow.task_instance", None) is State.scheduled
    assert m.map("airflow.task_instance", "brand_new_state") is State.unknown


def test_typo_names_file_line_and_value(tmp_path: Path) -> None:
    p = tmp_path / "states.yaml"
    p.write_text("airflow.dag_run:\n  queued: queued\n  success: succeded\n")
    with pytest.raises(StateMapError) as exc:
        StateMap.load(p)
    assert f"{p}:3" in str(exc.value)
    assert "'succeded'" in str(exc.value)
