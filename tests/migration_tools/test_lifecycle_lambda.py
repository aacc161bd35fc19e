"""The whole lifecycle of a Lambda function against moto and the Kestra emulator.

Legacy side: a function in moto (server mode) scheduled by an EventBridge rule
and an EventBridge Scheduler schedule, all made through boto3; the real
`lambda` adapter discovers it, reads its invocations from CloudWatch Logs and
pauses/resumes its schedules. Kestra side: the emulator through `KestraApi`;
native runs come from executions the emulator starts on the shadow trigger,
read by the real `kestra` adapter. Every assertion about the legacy side reads
moto back through boto3; every one about Kestra reads the emulator's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from adapters.aws_lambda import LambdaAdapter
from adapters.kestra import KestraAdapter
from emulators.kestra import KestraEmulator, Scenario
from emulators.lambda_estate import text_invocation
from gateway.contract import JobSpec, SourceConfig
from gateway.ingest import apply_batch
from migration_tools.lifecycle import Migrations, SideEffectFailed, TransitionRefused
from tests.adapters.aws_lambda import conftest as moto_fixtures
from tests.adapters.aws_lambda.conftest import Estate, source_config
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.lifecycle_support import (
    NS,
    audit,
    last_detail,
    lose_trigger,
    migrations_for,
    to_shadow,
    trigger_enabled,
)

# moto on loopback and a reset estate per test, as the Lambda adapter's own tests use them.
moto_url = moto_fixtures.moto_url
aws_env = moto_fixtures.aws_env
estate = moto_fixtures.estate

SOURCE = "lambda-prod"
FUNCTION = "orders-nightly"
TICKS = 5
TICK = timedelta(minutes=10)
# The shadow window starts 80 minutes before the wall clock, so every run is in the past.
SHADOW_AGO = timedelta(minutes=80)


@pytest.fixture
def clock() -> ManualClock:
    """Kestra's and the lifecycle's clock, 80 minutes behind the wall clock moto's logs use."""
    now = datetime.now(UTC).replace(microsecond=0)
    return ManualClock(now - SHADOW_AGO)


@pytest.fixture
def legacy(estate: Estate) -> Iterator[LambdaAdapter]:
    arn = estate.function(FUNCTION)
    estate.rule("orders-nightly-rule", "cron(0 2 * * ? *)", arn)
    estate.schedule("orders-nightly-schedule", "cron(0 2 * * ? *)", arn)
    # a look-back that reaches the start of the shadow window
    yield LambdaAdapter(source_config(estate.url, name=SOURCE, lookback_s=3 * 3600))


def schedule_states(estate: Estate) -> dict[str, str]:
    rule = estate.client("events").describe_rule(Name="orders-nightly-rule")
    schedule = estate.client("scheduler").get_schedule(Name="orders-nightly-schedule")
    return {"rule": rule["State"], "schedule": schedule["State"]}


def discover_into(engine: Engine, adapter: LambdaAdapter) -> None:
    apply_batch(engine, SOURCE, [], jobs=adapter.discover())


def seed_shadow_runs(
    engine: Engine,
    estate: Estate,
    legacy: LambdaAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
    native_flow: str,
) -> None:
    """TICKS scheduled ticks: the Lambda runs (its log lines in moto) and Kestra runs its flow.

    Both are read by the real adapters and ingested as the runtime would.
    """
    kestra.set_scenario(NS, native_flow, Scenario(outcome="SUCCESS", duration_s=45))
    lines: list[tuple[int, str]] = []
    for i in range(TICKS):
        at = clock()
        lines += text_invocation(f"5e1f{i:04d}-0000-4000-8000-00000000000{i}", _ms(at))
        clock.advance(20)  # Kestra's schedule fires 20 s after the EventBridge one
        kestra.fire_trigger(NS, native_flow, "schedule")
        clock.advance(TICK.total_seconds() - 20)
    estate.logs(f"/aws/lambda/{FUNCTION}", "2026/11/26/[$LATEST]abc", lines)
    clock.advance(60)  # every native execution has ended by now

    legacy_poll = legacy.poll(None)
    assert len(legacy_poll.events) == TICKS
    apply_batch(engine, SOURCE, legacy_poll.events, jobs=legacy_poll.jobs)
    native = KestraAdapter(
        SourceConfig(name="kestra", kind="kestra", options={"url": kestra.url, "namespace": NS}),
        clock=clock,
    )
    native_poll = native.poll(None)
    runs = [e for e in native_poll.events if e.kind == "run"]
    assert len(runs) == TICKS and {e.job for e in runs} == {f"{NS}/{native_flow}"}
    apply_batch(engine, "kestra", native_poll.events, jobs=native_poll.jobs)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def make_migrations(
    engine: Engine, kestra: KestraEmulator, legacy: LambdaAdapter, clock: ManualClock
) -> Migrations:
    return migrations_for(engine, kestra, SOURCE, legacy, clock, min_runs=TICKS)


def test_lambda_wrap_shadow_cutover_rollback_switch_eventbridge_and_kestra(
    engine: Engine,
    estate: Estate,
    legacy: LambdaAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    discover_into(engine, legacy)
    m = make_migrations(engine, kestra, legacy, clock)

    view = m.translate(SOURCE, FUNCTION, actor="alice")
    assert view.readiness == "full", view.reasons
    native_flow = str(view.flow_id)
    m.deploy(SOURCE, FUNCTION, actor="alice")
    assert ("main", NS, native_flow) in kestra.state.flows
    assert trigger_enabled(kestra, native_flow) == {"schedule": False}
    assert schedule_states(estate) == {"rule": "ENABLED", "schedule": "ENABLED"}

    wrapped = m.wrap(SOURCE, FUNCTION, actor="alice")
    wrap_flow = str(wrapped.wrap_flow_id)
    # Kestra owns the schedule now; EventBridge no longer fires the function.
    assert schedule_states(estate) == {"rule": "DISABLED", "schedule": "DISABLED"}
    assert trigger_enabled(kestra, wrap_flow) == {"schedule": True}
    wrap_task = kestra.state.flows[("main", NS, wrap_flow)].body["tasks"][-1]
    assert wrap_task["type"] == "io.kestra.plugin.aws.lambda.Invoke"
    assert wrap_task["functionArn"] == FUNCTION
    assert "traceparent" in wrap_task["functionPayload"]["headers"]

    m.shadow(SOURCE, FUNCTION, actor="alice", safe=True)
    assert trigger_enabled(kestra, native_flow) == {"schedule": True}
    seed_shadow_runs(engine, estate, legacy, kestra, clock, native_flow)
    report = m.parity_report(SOURCE, FUNCTION)
    assert (report.compared, report.parity) == (TICKS, 1.0)

    cut = m.cutover(SOURCE, FUNCTION, actor="bob")
    assert cut.state == "cut_over"
    assert schedule_states(estate) == {"rule": "DISABLED", "schedule": "DISABLED"}
    assert trigger_enabled(kestra, native_flow) == {"schedule": True}
    assert trigger_enabled(kestra, wrap_flow) == {"schedule": False}
    # The Lambda adapter sees the function as paused on its next discovery.
    assert [j.paused for j in legacy.discover() if j.key == FUNCTION] == [True]

    back = m.rollback(SOURCE, FUNCTION, actor="carol")
    assert back.state == "observed" and back.sides == {}
    assert schedule_states(estate) == {"rule": "ENABLED", "schedule": "ENABLED"}
    assert ("main", NS, native_flow) not in kestra.state.flows
    assert ("main", NS, wrap_flow) not in kestra.state.flows
    assert trigger_enabled(kestra, native_flow) == {} == trigger_enabled(kestra, wrap_flow)

    assert audit(engine, SOURCE) == [
        ("translate", "observed", "translated", "ok"),
        ("deploy", "translated", "translated", "ok"),
        ("wrap", "translated", "wrapped", "ok"),
        ("shadow", "wrapped", "shadow", "ok"),
        ("cutover", "shadow", "cut_over", "ok"),
        ("rollback", "cut_over", "observed", "ok"),
    ]


def test_lambda_cutover_whose_kestra_trigger_fails_re_enables_the_eventbridge_schedules(
    engine: Engine,
    estate: Estate,
    legacy: LambdaAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    discover_into(engine, legacy)
    m = make_migrations(engine, kestra, legacy, clock)
    lose_trigger(kestra, to_shadow(m, SOURCE, FUNCTION))

    with pytest.raises(SideEffectFailed) as failed:
        m.cutover(SOURCE, FUNCTION, actor="bob", force=True)
    assert failed.value.compensated
    assert schedule_states(estate) == {"rule": "ENABLED", "schedule": "ENABLED"}
    assert m.status(SOURCE, FUNCTION).state == "shadow"
    assert audit(engine, SOURCE)[-1] == ("cutover", "shadow", "shadow", "compensated")
    detail = last_detail(engine)
    assert detail["failed_step"] == "enable native trigger schedule"
    assert detail["undone"] == ["pause legacy schedule"]


def test_a_wrap_flow_kestra_would_refuse_is_refused_before_either_side_changes(
    engine: Engine,
    estate: Estate,
    legacy: LambdaAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    # The job as the translator's own format describes it (definition.function
    # and .rules): two EventBridge rules whose names make the same trigger id.
    discover_into(engine, legacy)
    rules = [
        {"Name": name, "ScheduleExpression": "cron(0 2 * * ? *)", "State": "ENABLED"}
        for name in ("orders.nightly", "orders_nightly")
    ]
    spec = JobSpec(
        source=SOURCE,
        key=FUNCTION,
        kind="lambda",
        name=FUNCTION,
        schedule="0 2 * * *",
        definition={"function": {"FunctionName": FUNCTION}, "rules": rules},
    )
    apply_batch(engine, SOURCE, [], jobs=[spec])
    m = make_migrations(engine, kestra, legacy, clock)
    m.translate(SOURCE, FUNCTION, actor="alice")
    writes_before = [x for x in kestra.exchanges if x.method != "GET"]

    with pytest.raises(TransitionRefused, match="trigger id 'schedule_orders_nightly' used twice"):
        m.wrap(SOURCE, FUNCTION, actor="alice")
    assert [x for x in kestra.exchanges if x.method != "GET"] == writes_before
    assert schedule_states(estate) == {"rule": "ENABLED", "schedule": "ENABLED"}
    assert m.status(SOURCE, FUNCTION).state == "translated"
    assert audit(engine, SOURCE)[-1] == ("wrap", "translated", "translated", "refused")
