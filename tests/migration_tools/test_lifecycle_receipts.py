"""Rollback undoes exactly what Switchyard paused: an owner's disabled schedule stays disabled.

Legacy side: a function in moto (server mode) with an enabled EventBridge rule,
a rule its owner disabled before the migration, and an enabled Scheduler
schedule; the real `lambda` adapter pauses and resumes them. Kestra side: the
emulator. Every assertion about the legacy side reads moto back through boto3.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from adapters.aws_lambda import LambdaAdapter
from emulators.kestra import KestraEmulator
from migration_tools.lifecycle import SideEffectFailed
from tests.adapters.aws_lambda import conftest as moto_fixtures
from tests.adapters.aws_lambda.conftest import Estate, source_config
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.lifecycle_support import audit, last_detail, lose_trigger, to_shadow
from tests.migration_tools.test_lifecycle_lambda import (
    FUNCTION,
    SOURCE,
    discover_into,
    make_migrations,
)

moto_url = moto_fixtures.moto_url
aws_env = moto_fixtures.aws_env
estate = moto_fixtures.estate

ALL_ON = {"ours": "ENABLED", "owners": "DISABLED", "schedule": "ENABLED"}
ALL_OFF = {"ours": "DISABLED", "owners": "DISABLED", "schedule": "DISABLED"}
RECEIPT = {
    "rules": ["orders-nightly-rule"],
    "schedules": [{"group": "default", "name": "orders-nightly-schedule"}],
}


@pytest.fixture
def legacy(estate: Estate) -> Iterator[LambdaAdapter]:
    arn = estate.function(FUNCTION)
    estate.rule("orders-nightly-rule", "cron(0 2 * * ? *)", arn)
    estate.rule("orders-nightly-catchup", "cron(0 5 * * ? *)", arn, enabled=False)
    estate.schedule("orders-nightly-schedule", "cron(0 2 * * ? *)", arn)
    yield LambdaAdapter(source_config(estate.url, name=SOURCE))


def states(estate: Estate) -> dict[str, str]:
    events = estate.client("events")
    schedule = estate.client("scheduler").get_schedule(Name="orders-nightly-schedule")
    return {
        "ours": events.describe_rule(Name="orders-nightly-rule")["State"],
        "owners": events.describe_rule(Name="orders-nightly-catchup")["State"],
        "schedule": schedule["State"],
    }


def test_rollback_after_cutover_leaves_the_owners_disabled_rule_disabled(
    engine: Engine,
    estate: Estate,
    legacy: LambdaAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    discover_into(engine, legacy)
    m = make_migrations(engine, kestra, legacy, clock)
    to_shadow(m, SOURCE, FUNCTION)
    cut = m.cutover(SOURCE, FUNCTION, actor="bob", force=True)
    assert states(estate) == ALL_OFF
    assert cut.sides["legacy_receipt"] == RECEIPT
    assert last_detail(engine)["legacy_receipt"] == RECEIPT  # audited

    back = m.rollback(SOURCE, FUNCTION, actor="carol")
    assert back.state == "observed" and back.sides == {}
    assert states(estate) == ALL_ON
    assert last_detail(engine)["legacy_receipt"] == RECEIPT
    assert audit(engine, SOURCE)[-1] == ("rollback", "cut_over", "observed", "ok")


def test_rollback_after_wrap_then_cutover_resumes_with_the_wraps_receipt(
    engine: Engine,
    estate: Estate,
    legacy: LambdaAdapter,
    kestra: KestraEmulator,
    clock: ManualClock,
) -> None:
    discover_into(engine, legacy)
    m = make_migrations(engine, kestra, legacy, clock)
    m.translate(SOURCE, FUNCTION, actor="alice")
    assert m.wrap(SOURCE, FUNCTION, actor="alice").sides["legacy_receipt"] == RECEIPT
    m.shadow(SOURCE, FUNCTION, actor="alice", safe=True)
    # legacy is already paused: cutover pauses nothing and keeps the wrap's receipt
    assert m.cutover(SOURCE, FUNCTION, actor="bob", force=True).sides["legacy_receipt"] == RECEIPT
    assert states(estate) == ALL_OFF
    m.rollback(SOURCE, FUNCTION, actor="carol")
    assert states(estate) == ALL_ON


def test_a_failed_cutover_resumes_only_what_its_pause_disabled(
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
    assert states(estate) == ALL_ON
    assert "legacy_receipt" not in m.status(SOURCE, FUNCTION).sides
    assert last_detail(engine)["undone"] == ["pause legacy schedule"]
