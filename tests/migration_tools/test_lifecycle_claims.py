"""Migration actions on one job are atomic with respect to each other: the claim.

Two operators act on one CronJob at once, each with its own engine, its own
Kubernetes adapter (the real one, against the API server emulator) and the
Kestra emulator. The first to claim the job goes on; the other is refused
before touching either side, and both sides show exactly one pause, one
flow deployed, one trigger enabled. A claim left by a killed `switchyard
migrate` process blocks the job until it expires or is released; a commit
that fails after the schedulers were changed undoes the change and is audited.

The race is made certain, not left to timing: the legacy pause of whoever
gets there first waits until the other operator's action has ended (or has
reached the pause too, which is what happened before claims existed: then
both go through and the counts below show it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from kubernetes import client
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from adapters.cron.adapter import ControlState, CronAdapter
from adapters.kubernetes import KubernetesAdapter, create
from emulators.kestra import KestraEmulator
from emulators.kube_apiserver.server import KubeApiServer
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.cli import app as cli_app
from gateway.config import parse_config
from gateway.contract import ControlReceipt, SourceConfig, job_id_for
from gateway.ingest import apply_batch
from gateway.store.db import make_engine
from migration_tools.kestra_api import KestraApi
from migration_tools.lifecycle import (
    DEFAULT_CLAIM_TTL,
    ActionInProgress,
    Migrations,
    MigrationView,
    SideEffectFailed,
)
from tests.dbs import database_locked
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.lifecycle_support import NS, audit, last_detail, trigger_enabled
from tests.migration_tools.test_lifecycle_kubernetes import (
    KEY,
    SOURCE,
    apiserver,
    batch,
    clock,
    cluster,
    kubeconfig,
    legacy,
    make_migrations,
    suspended,
)
from tests.migration_tools.test_migrate_cli import KEY as CRON_KEY
from tests.migration_tools.test_migrate_cli import SOURCE as CRON_SOURCE
from tests.migration_tools.test_migrate_cli import sources as cron_and_kestra
from tests.migration_tools.test_migrate_cli import spec as cron_spec

__all__ = ["apiserver", "batch", "clock", "cluster", "kubeconfig", "legacy"]  # fixtures used here

ROOT = Path(__file__).resolve().parents[2]
JOB = f"{SOURCE}:{KEY}"


class PauseGate:
    """Holds the first legacy pause until the other operator's action is over (or pauses too)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.pauses = 0
        self.over = 0

    def at_pause(self) -> None:
        with self._cond:
            self.pauses += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.pauses >= 2 or self.over >= 1, timeout=60)

    def action_over(self) -> None:
        with self._cond:
            self.over += 1
            self._cond.notify_all()


class BeforePause:
    """A real legacy adapter whose `pause` first runs `hook` (where the test interleaves)."""

    def __init__(self, adapter: Any, hook: Callable[[], object]) -> None:
        self.adapter = adapter
        self.hook = hook

    def pause(self, job_key: str) -> ControlReceipt | None:
        self.hook()
        receipt: ControlReceipt | None = self.adapter.pause(job_key)
        return receipt

    def resume(self, job_key: str, receipt: ControlReceipt | None = None) -> None:
        self.adapter.resume(job_key, receipt)


def kube_adapter(kubeconfig: Path) -> KubernetesAdapter:
    options = {"kubeconfig": str(kubeconfig), "retry_backoff_s": 0.05}
    return create(SourceConfig(name=SOURCE, kind="kubernetes", options=options))


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def operator(
    engine: Engine, kestra: KestraEmulator, legacy: Any, clock: Callable[[], datetime]
) -> Migrations:
    return Migrations(engine, kestra=KestraApi(kestra.url), legacy={SOURCE: legacy}, clock=clock)


def kestra_writes(kestra: KestraEmulator, since: int) -> dict[str, int]:
    """Successful flow writes and trigger enables the emulator saw after exchange `since`."""
    flows = enables = 0
    for ex in kestra.exchanges[since:]:
        if ex.status >= 300 or ex.method == "GET":
            continue
        if "/triggers" in ex.path:
            enables += json.loads(ex.body or b"{}").get("disabled") is False
        elif "/flows" in ex.path and ex.method in ("POST", "PUT"):
            flows += 1
    return {"flow writes": flows, "trigger enables": enables}


def cronjob_patches(server: KubeApiServer, since: int) -> int:
    return sum(1 for r in server.requests[since:] if (r.verb, r.resource) == ("patch", "cronjobs"))


def race(actions: dict[str, Callable[[], Any]], gate: PauseGate) -> dict[str, Any]:
    """Run the actions at once, one thread each; what each returned or raised."""
    outcome: dict[str, Any] = {}
    start = threading.Barrier(len(actions))

    def run(name: str, action: Callable[[], Any]) -> None:
        start.wait()
        try:
            outcome[name] = action()
        except Exception as exc:
            outcome[name] = exc
        finally:
            gate.action_over()

    threads = [threading.Thread(target=run, args=item) for item in actions.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    return outcome


def test_two_operators_racing_a_wrap_pause_the_cronjob_once_and_the_loser_changes_nothing(
    engine: Engine,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    apiserver: KubeApiServer,
    kubeconfig: Path,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    make_migrations(engine, kestra, legacy, clock).translate(SOURCE, KEY, actor="alice")
    gate = PauseGate()
    engines = [make_engine(engine_url(engine)) for _ in range(2)]
    adapters = [kube_adapter(kubeconfig) for _ in range(2)]
    ops = {
        name: operator(e, kestra, BeforePause(a, gate.at_pause), clock)
        for name, e, a in zip(("alice", "bob"), engines, adapters, strict=True)
    }
    since_kestra, since_kube = len(kestra.exchanges), len(apiserver.requests)
    try:
        outcome = race(
            {n: lambda m=m, n=n: m.wrap(SOURCE, KEY, actor=n) for n, m in ops.items()}, gate
        )
    finally:
        for a in adapters:
            a.close()
        for e in engines:
            e.dispose()

    # Exactly one of each side effect, and the schedulers as one wrap leaves them.
    assert gate.pauses == 1
    assert cronjob_patches(apiserver, since_kube) == 1
    assert kestra_writes(kestra, since_kestra) == {"flow writes": 1, "trigger enables": 1}
    won = [n for n, r in outcome.items() if isinstance(r, MigrationView)]
    lost = [n for n, r in outcome.items() if isinstance(r, ActionInProgress)]
    assert len(won) == 1 and len(lost) == 1, outcome
    refusal = str(outcome[lost[0]])
    assert refusal.startswith(f"{JOB}: wrap refused: the job is in state translated")
    assert f"{won[0]} is running wrap on it" in refusal
    assert suspended(batch)
    view = make_migrations(engine, kestra, legacy, clock).status(SOURCE, KEY)
    assert (view.state, view.claim) == ("wrapped", None)
    assert trigger_enabled(kestra, str(view.wrap_flow_id)) == {"schedule": True}
    assert audit(engine, SOURCE) == [
        ("translate", "observed", "translated", "ok"),
        ("wrap", "translated", "translated", "refused"),
        ("wrap", "translated", "wrapped", "ok"),
    ]


def test_racing_cutovers_through_the_api_get_one_200_and_one_409_naming_job_and_state(
    sqlite_engine: Engine, tmp_path: Path, kestra: KestraEmulator
) -> None:
    apply_batch(sqlite_engine, CRON_SOURCE, [], jobs=[cron_spec()])
    sources = cron_and_kestra(tmp_path, kestra.url)
    cron = CronAdapter(SourceConfig(name=CRON_SOURCE, kind="cron", options=sources[0]["options"]))
    gate = PauseGate()
    config = parse_config({"sources": sources})
    app = create_app(
        config, sqlite_engine, adapters={CRON_SOURCE: BeforePause(cron, gate.at_pause)}
    )
    tokens = {n: create_token(sqlite_engine, role="operator", name=n) for n in ("alice", "bob")}
    base = f"/api/v1/migrations/{job_id_for(CRON_SOURCE, CRON_KEY)}/actions"
    with TestClient(app) as api:
        alice = {"Authorization": f"Bearer {tokens['alice']}"}
        for step, body in (("translate", {}), ("deploy", {}), ("shadow", {"safe": True})):
            assert api.post(f"{base}/{step}", headers=alice, json=body).status_code == 200
        outcome = race(
            {
                n: lambda t=t: api.post(
                    f"{base}/cutover",
                    headers={"Authorization": f"Bearer {t}"},
                    json={"force": True},
                )
                for n, t in tokens.items()
            },
            gate,
        )
    assert gate.pauses == 1
    statuses = sorted(r.status_code for r in outcome.values())
    assert statuses == [200, 409], [r.text for r in outcome.values()]
    (loser,) = [r for r in outcome.values() if r.status_code == 409]
    (winner,) = [n for n, r in outcome.items() if r.status_code == 200]
    problem = loser.json()
    assert loser.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith(":action-in-progress")
    assert (
        f"{CRON_SOURCE}:{CRON_KEY}: cutover refused: the job is in state shadow"
        in (problem["detail"])
    )
    assert f"token:{winner} is running cutover" in problem["detail"]
    assert ControlState(sources[0]["options"]["control_file"]).read().get(CRON_KEY) is True


# -- a claim left by a process that died ------------------------------------


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a Kestra gone silent)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def crashed_claim(
    engine: Engine,
    legacy: KubernetesAdapter,
    kubeconfig: Path,
    kestra: KestraEmulator,
    clock: ManualClock,
    blackhole: str,
    tmp_path: Path,
) -> Path:
    """`switchyard migrate wrap` killed mid-action: its claim stays behind. Returns its config."""
    make_migrations(engine, kestra, legacy, clock).translate(SOURCE, KEY, actor="alice")
    config = tmp_path / "crashing.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": engine_url(engine),
                "sources": [
                    {
                        "name": SOURCE,
                        "kind": "kubernetes",
                        "options": {"kubeconfig": str(kubeconfig)},
                    },
                    {"name": "kestra", "kind": "kestra", "options": {"url": blackhole}},
                ],
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SWITCHYARD_CONFIG", "SWITCHYARD_DATABASE_URL")
    }
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "gateway", "migrate", "wrap", JOB, "--yes", "--actor", "carol"]
    proc = subprocess.Popen([*argv, "-c", str(config)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while claim_holder(engine) is None:
            assert proc.poll() is None, "the CLI ended before it claimed the job"
            assert time.monotonic() < deadline, "the CLI never claimed the job"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return config


def claim_holder(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT claimed_by FROM migration WHERE job_id = :j"),
            {"j": job_id_for(SOURCE, KEY)},
        ).scalar()


def test_a_killed_clis_claim_refuses_others_until_released_and_is_audited(
    engine: Engine,
    crashed_claim: Path,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
) -> None:
    now = ManualClock(datetime.now(UTC))
    bob = operator(engine, kestra, legacy, now)
    with pytest.raises(ActionInProgress, match="carol is running wrap on it"):
        bob.wrap(SOURCE, KEY, actor="bob")
    assert not suspended(batch)  # refused before touching anything
    assert bob.status(SOURCE, KEY).claim is not None

    released = CliRunner().invoke(
        cli_app, ["migrate", "release", JOB, "--actor", "dave", "-c", str(crashed_claim)]
    )
    assert released.exit_code == 0, released.output
    assert f"{JOB}\ttranslated" in released.output
    assert bob.wrap(SOURCE, KEY, actor="bob").state == "wrapped"
    assert suspended(batch)
    assert audit(engine, SOURCE)[1:] == [
        ("wrap", "translated", "translated", "refused"),
        ("release", "translated", "translated", "ok"),
        ("wrap", "translated", "wrapped", "ok"),
    ]


def test_a_killed_clis_claim_expires_and_the_job_is_not_blocked_for_good(
    engine: Engine,
    crashed_claim: Path,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
) -> None:
    later = ManualClock(datetime.now(UTC) + DEFAULT_CLAIM_TTL + timedelta(minutes=1))
    view = operator(engine, kestra, legacy, later).wrap(SOURCE, KEY, actor="bob")
    assert (view.state, view.claim) == ("wrapped", None)
    assert suspended(batch)
    assert claim_holder(engine) is None


# -- a commit that fails after the schedulers were changed -------------------


def test_a_claim_released_under_a_running_wrap_makes_it_undo_its_side_effects_and_audit_it(
    engine: Engine,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    ops = make_migrations(engine, kestra, legacy, clock)
    ops.translate(SOURCE, KEY, actor="alice")
    release = lambda: ops.release(SOURCE, KEY, actor="dave")  # noqa: E731  (the interleaving)
    alice = operator(engine, kestra, BeforePause(legacy, release), clock)

    with pytest.raises(SideEffectFailed, match="wrap failed at 'commit'") as failed:
        alice.wrap(SOURCE, KEY, actor="alice")
    assert failed.value.compensated
    assert not suspended(batch)
    assert not [k for k in kestra.state.flows if k[1] == NS and "wrap" in k[2]]
    assert ops.status(SOURCE, KEY).state == "translated"
    assert audit(engine, SOURCE)[1:] == [
        ("release", "translated", "translated", "ok"),
        ("wrap", "translated", "translated", "compensated"),
    ]
    detail = last_detail(engine)
    assert detail["failed_step"] == "commit"
    assert "ClaimLost" in detail["error"]
    assert (
        detail["undone"][-1] == "deploy wrap flow" and "pause legacy schedule" in detail["undone"]
    )


def test_a_database_failing_the_commit_after_the_pause_undoes_it_and_audits_it(
    pg_engine: Engine,
    legacy: KubernetesAdapter,
    batch: client.BatchV1Api,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    # The commit writes `migration`, then `job`: another session locks `job` from the
    # pause on, so the commit waits out lock_timeout and fails; the audit and the
    # claim's release write other tables and go through.
    make_migrations(pg_engine, kestra, legacy, clock).translate(SOURCE, KEY, actor="alice")
    impatient = make_engine(engine_url(pg_engine), lock_timeout_s=1)
    with ExitStack() as locks:
        hook = lambda: locks.enter_context(database_locked(pg_engine, pg_tables=("job",)))  # noqa: E731
        alice = operator(impatient, kestra, BeforePause(legacy, hook), clock)
        with pytest.raises(SideEffectFailed, match="wrap failed at 'commit'") as failed:
            alice.wrap(SOURCE, KEY, actor="alice")
    impatient.dispose()
    assert failed.value.compensated
    assert not suspended(batch)
    view = alice.status(SOURCE, KEY)
    assert (view.state, view.claim) == ("translated", None)
    assert audit(pg_engine, SOURCE)[-1] == ("wrap", "translated", "translated", "compensated")
    detail = last_detail(pg_engine)
    assert detail["failed_step"] == "commit"
    assert detail["error"].startswith("LockNotAvailable")
    assert "pause legacy schedule" in detail["undone"]
