"""The lifecycle of a crontab line, end to end through the host's `switchyard-cron sync`.

The gateway (the real app on uvicorn, loopback) holds the cron source; the
host is a directory with real crontab files and a crontab(1) stand-in, and
`switchyard-cron sync` runs as a real subprocess. Discovery is what sync
reports; cutover's pause and rollback's resume reach the host only as the
instructions sync pulls, so the file on disk is the proof.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from emulators.kestra import KestraEmulator
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import Migrations, SideEffectFailed
from tests.adapters.cron.conftest import SOURCE, CronGateway, running_gateway
from tests.adapters.cron.test_sync import CRON_D, USER_TAB, Host
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.lifecycle_support import NS, lose_trigger, to_shadow


@pytest.fixture
def gateway(engine: Engine, tmp_path: Path) -> Iterator[CronGateway]:
    with running_gateway(engine, tmp_path / "gw") as gw:
        yield gw


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "host")


def key_for(gw: CronGateway, command_part: str) -> str:
    (key,) = [k for k, j in gw.jobs().items() if command_part in j["spec"]["definition"]["command"]]
    return key


def migrations(gw: CronGateway, kestra: KestraEmulator, clock: ManualClock) -> Migrations:
    return Migrations(
        gw.engine, kestra=KestraApi(kestra.url), legacy={SOURCE: gw.adapter}, clock=clock
    )


def audit(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action, after, outcome FROM migration_audit ORDER BY id")
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_cutover_comments_the_line_out_on_the_host_and_rollback_restores_it_byte_for_byte(
    gateway: CronGateway, host: Host, kestra: KestraEmulator, clock: ManualClock
) -> None:
    host.sync(gateway)  # discovery: sync reports every line as a job
    key = key_for(gateway, "backup.sh")
    m = migrations(gateway, kestra, clock)
    view = m.translate(SOURCE, key, actor="alice")
    assert view.readiness == "full", view.reasons
    m.deploy(SOURCE, key, actor="alice")
    m.shadow(SOURCE, key, actor="alice", safe=True)
    assert host.sync(gateway)["paused"] == []  # shadow: the line keeps running
    assert host.cron_d.read_text() == CRON_D

    m.cutover(SOURCE, key, actor="bob", force=True)
    summary = host.sync(gateway)
    assert summary["paused"] == [key]
    assert host.cron_d.read_text() == (
        "# nightly backup\n"
        f"# switchyard:paused {key} 0 3 * * * postgres /usr/local/bin/backup.sh --full\n"
    )
    assert gateway.jobs()[key]["paused"]
    assert host.user_store.read_text() == USER_TAB  # other lines untouched

    m.rollback(SOURCE, key, actor="carol")
    summary = host.sync(gateway)
    assert summary["restored"] == [key]
    assert host.cron_d.read_bytes() == CRON_D.encode()
    assert not gateway.jobs()[key]["paused"]
    assert ("main", NS, str(view.flow_id)) not in kestra.state.flows
    assert audit(gateway.engine) == [
        ("translate", "translated", "ok"),
        ("deploy", "translated", "ok"),
        ("shadow", "shadow", "ok"),
        ("cutover", "cut_over", "ok"),
        ("rollback", "observed", "ok"),
    ]


def test_a_failed_cutover_leaves_the_user_crontab_line_running(
    gateway: CronGateway, host: Host, kestra: KestraEmulator, clock: ManualClock
) -> None:
    host.sync(gateway)
    key = key_for(gateway, "report.sh")
    m = migrations(gateway, kestra, clock)
    lose_trigger(kestra, to_shadow(m, SOURCE, key))
    with pytest.raises(SideEffectFailed) as failed:
        m.cutover(SOURCE, key, actor="bob", force=True)
    assert failed.value.compensated
    assert host.sync(gateway)["paused"] == []  # the undo reached the desired state first
    assert host.user_store.read_text() == USER_TAB
    assert audit(gateway.engine)[-1] == ("cutover", "shadow", "compensated")


def test_wrap_pauses_a_user_crontab_line_through_crontab_and_rollback_reinstalls_it(
    gateway: CronGateway, host: Host, kestra: KestraEmulator, clock: ManualClock
) -> None:
    host.sync(gateway)
    key = key_for(gateway, "report.sh")
    m = migrations(gateway, kestra, clock)
    m.translate(SOURCE, key, actor="alice")
    wrap_id = str(m.wrap(SOURCE, key, actor="alice").wrap_flow_id)
    assert host.sync(gateway)["paused"] == [key]  # Kestra's wrap schedule runs it now
    assert f"# switchyard:paused {key} 30 1 * * * /home/alice/bin/report.sh\n" in (
        host.user_store.read_text()
    )
    wrap_task = kestra.state.flows[("main", NS, wrap_id)].body["tasks"][-1]
    assert "report.sh" in str(wrap_task["commands"])
    assert "TRACEPARENT" in wrap_task["env"]

    m.rollback(SOURCE, key, actor="alice")
    assert host.sync(gateway)["restored"] == [key]
    assert host.user_store.read_bytes() == USER_TAB.encode()
    assert ("main", NS, wrap_id) not in kestra.state.flows
