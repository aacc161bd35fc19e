"""The cron source as the registry builds it: options, errors, discovery, control state."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.contract import Adapter, SourceConfig, SourceError, create_adapter

CHECK = "5f0c8a4e-3f59-4a3a-9a38-2a9f0e6b8c11"


def make(tmp_path: Path, **options: object) -> Adapter:
    opts = {"control_file": str(tmp_path / "control.json"), **options}
    return create_adapter(SourceConfig(name="cron-hosts", kind="cron", options=opts))


def test_the_entry_point_builds_a_push_only_adapter(tmp_path: Path) -> None:
    adapter = make(tmp_path, checks={CHECK: {"name": "backup", "schedule": "@daily"}})
    assert isinstance(adapter, Adapter)
    assert adapter.poll("kept").cursor == "kept"
    assert adapter.poll("kept").events == []
    (job,) = adapter.discover()
    assert (job.key, job.schedule, job.schedule_native) == (f"ping/{CHECK}", "0 0 * * *", "@daily")


def test_unknown_options_and_bad_checks_name_the_source_and_field(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cron-hosts: unknown option\(s\): tokn"):
        make(tmp_path, tokn="x")
    with pytest.raises(SourceError, match=r"cron-hosts: options.checks"):
        make(tmp_path, checks={CHECK: {"grace": "5m"}})
    with pytest.raises(SourceError, match=r"checks.5f0c8a4e.*not a cron expression"):
        make(tmp_path, checks={CHECK: {"schedule": "every day"}})


def test_pause_and_resume_persist_the_desired_state(tmp_path: Path) -> None:
    adapter = make(tmp_path)
    adapter.pause("db1/postgres/0123456789ab")  # type: ignore[attr-defined]  # ControlAdapter
    again = make(tmp_path)
    assert again.control.instructions("db1") == {  # type: ignore[attr-defined]  # CronAdapter
        "pause": ["db1/postgres/0123456789ab"],
        "resume": [],
    }
    again.resume("db1/postgres/0123456789ab")  # type: ignore[attr-defined]  # ControlAdapter
    assert make(tmp_path).control.instructions("db1")["resume"] == [  # type: ignore[attr-defined]
        "db1/postgres/0123456789ab"
    ]
