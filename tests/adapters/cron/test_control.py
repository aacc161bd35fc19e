"""Pause/resume receipts for crontab lines: resume restores only what Switchyard paused.

End to end through the real `switchyard-cron sync` against the real gateway
(SQLite and PostgreSQL), plus the control file on its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.cron.adapter import CronAdapter
from gateway.contract import SourceConfig, SourceError
from tests.adapters.cron.conftest import CronGateway
from tests.adapters.cron.test_sync import CRON_D, USER_TAB, Host, _key_for

OWNER_COMMENTED = "# 0 4 * * * root /usr/local/bin/old-report.sh\n"


def test_a_line_already_paused_before_cutover_stays_paused_after_resume(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw, host = cron_gateway, Host(tmp_path / "host")
    host.cron_d.write_text(CRON_D + OWNER_COMMENTED)
    host.sync(gw)
    backup_key, report_key = _key_for(gw, "backup.sh"), _key_for(gw, "report.sh")
    # The line was paused before this cutover (a marker the host still carries,
    # with no desired state left in this gateway's control file).
    paused_line = (
        f"# switchyard:paused {backup_key} 0 3 * * * postgres /usr/local/bin/backup.sh --full\n"
    )
    before = f"# nightly backup\n{paused_line}{OWNER_COMMENTED}"
    host.cron_d.write_text(before)
    host.sync(gw)
    assert gw.jobs()[backup_key]["paused"]

    backup_receipt = gw.adapter.pause(backup_key)
    report_receipt = gw.adapter.pause(report_key)
    assert backup_receipt == {"was_paused": True}
    assert report_receipt == {"was_paused": False}
    assert host.sync(gw)["paused"] == [report_key]
    assert host.cron_d.read_text() == before

    gw.adapter.resume(backup_key, backup_receipt)
    gw.adapter.resume(report_key, report_receipt)
    summary = host.sync(gw)
    assert summary["restored"] == [report_key]
    assert host.cron_d.read_text() == before  # still paused, owner's comment untouched
    assert host.user_store.read_text() == USER_TAB
    jobs = gw.jobs()
    assert jobs[backup_key]["paused"] and not jobs[report_key]["paused"]
    assert not any("old-report" in j["spec"]["definition"]["command"] for j in jobs.values())


def make(tmp_path: Path) -> CronAdapter:
    options = {"control_file": str(tmp_path / "control.json")}
    return CronAdapter(SourceConfig(name="cron-hosts", kind="cron", options=options))


def test_a_line_paused_through_switchyard_earlier_is_not_restored_by_a_later_receipt(
    tmp_path: Path,
) -> None:
    key = "db1/postgres/0123456789ab"
    make(tmp_path).pause(key)  # an operator's pause, before the migration
    adapter = make(tmp_path)
    receipt = adapter.pause(key)
    assert receipt == {"was_paused": True}
    adapter.resume(key, receipt)
    assert make(tmp_path).control.instructions("db1") == {"pause": [key], "resume": []}
    adapter.resume(key)  # no receipt: restore, as before receipts
    assert make(tmp_path).control.instructions("db1") == {"pause": [], "resume": [key]}


def test_the_desired_state_outranks_an_older_host_report(tmp_path: Path) -> None:
    key = "db1/postgres/0123456789ab"
    adapter = make(tmp_path)
    adapter.control.observe({key: True})
    adapter.resume(key)  # restore requested; the host has not synced yet
    assert adapter.pause(key) == {"was_paused": False}


def test_a_malformed_receipt_is_an_error_naming_the_field_and_changes_nothing(
    tmp_path: Path,
) -> None:
    key = "db1/postgres/0123456789ab"
    adapter = make(tmp_path)
    adapter.pause(key)
    with pytest.raises(SourceError, match="'was_paused' must be true or false"):
        adapter.resume(key, {"rules": []})
    assert adapter.control.instructions("db1") == {"pause": [key], "resume": []}
