"""The Kestra client against the emulator; each exchange checked against the OpenAPI document."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from emulators.kestra import KestraEmulator, Scenario
from emulators.kestra.server import Exchange
from gateway.contract import JobSpec
from migration_tools.kestra_api import KestraApi, KestraApiError
from migration_tools.translate import translate
from tests.migration_tools.conftest import ManualClock
from tests.migration_tools.corpus_loader import CORPUS, load_case
from tests.migration_tools.openapi_check import COMMITTED, check_exchange, load_spec, spec_path

NS = "switchyard.migrated"


def _crontab_flow(command: str = "echo hi") -> str:
    spec = JobSpec(
        source="cron",
        key="h1:1",
        kind="crontab",
        name="say_hi",
        schedule="5 * * * *",
        definition={"command": command, "host": "h1"},
    )
    return translate(spec).yaml_text


@pytest.fixture
def api(kestra: KestraEmulator) -> KestraApi:
    return KestraApi(kestra.url, timeout=10)


def test_created_flow_round_trips_its_yaml_source(api: KestraApi) -> None:
    text = _crontab_flow()
    created = api.create_flow(text)
    assert (created["id"], created["namespace"], created["revision"]) == ("say_hi", NS, 1)
    got = api.get_flow(NS, "say_hi")
    assert got["source"] == text
    assert got["labels"]["switchyard.job"] == "cron:h1:1"


def test_update_makes_a_new_revision_and_put_flow_upserts(api: KestraApi) -> None:
    api.put_flow(NS, "say_hi", _crontab_flow())
    updated = api.put_flow(NS, "say_hi", _crontab_flow("echo bye"))
    assert updated["revision"] == 2
    assert "echo bye" in api.get_flow(NS, "say_hi")["source"]


def test_update_of_a_missing_flow_is_a_404_naming_the_flow(api: KestraApi) -> None:
    with pytest.raises(KestraApiError) as err:
        api.update_flow(NS, "say_hi", _crontab_flow())
    assert err.value.status == 404
    assert err.value.target == f"{NS}.say_hi"
    assert "update flow switchyard.migrated.say_hi: HTTP 404" in str(err.value)


def test_creating_an_invalid_flow_is_a_422_naming_the_flow(api: KestraApi) -> None:
    bad = (
        "id: broken\nnamespace: switchyard.migrated\n"
        "tasks:\n- id: t\n  type: io.kestra.plugin.core.log.Log\n"
    )
    with pytest.raises(KestraApiError) as err:
        api.create_flow(bad)
    assert err.value.status == 422
    assert err.value.target == f"{NS}.broken"
    assert err.value.message == "Invalid entity: tasks[0].message: must not be null"


def test_validate_reports_each_document_of_a_multi_flow_body(api: KestraApi) -> None:
    good = _crontab_flow()
    dangling = good.replace("id: say_hi", "id: other").replace(
        "tasks:\n",
        "tasks:\n- id: d\n  type: io.kestra.plugin.core.flow.Dag\n  tasks:\n"
        "  - task: {id: x, type: io.kestra.plugin.core.log.Log, message: m}\n"
        "    dependsOn: [ghost]\n",
        1,
    )
    verdicts = api.validate(good + "---\n" + dangling)
    assert [(v.index, v.flow, v.valid) for v in verdicts] == [
        (0, "say_hi", True),
        (1, "other", False),
    ]
    assert verdicts[1].constraints == "tasks[0]: Not existing task id in dependency: ghost"


def test_trigger_enable_and_disable_are_visible_in_trigger_state(api: KestraApi) -> None:
    api.create_flow(_crontab_flow())
    assert [t["disabled"] for t in api.flow_triggers(NS, "say_hi")] == [True]
    api.enable_trigger(NS, "say_hi", "schedule")
    assert [t["disabled"] for t in api.flow_triggers(NS, "say_hi")] == [False]
    api.disable_trigger(NS, "say_hi", "schedule")
    assert [t["disabled"] for t in api.flow_triggers(NS, "say_hi")] == [True]


def test_enabling_an_unknown_trigger_is_a_404_naming_it(api: KestraApi) -> None:
    with pytest.raises(KestraApiError) as err:
        api.enable_trigger(NS, "nope", "schedule")
    assert (err.value.status, err.value.target) == (404, f"{NS}.nope.schedule")


def test_execution_runs_to_success_as_the_clock_advances(
    api: KestraApi, clock: ManualClock
) -> None:
    api.create_flow(_crontab_flow())
    started = api.trigger_execution(NS, "say_hi", labels={"switchyard.run": "r1"})
    assert started["state"]["current"] == "CREATED"
    labels = {x["key"]: x["value"] for x in started["labels"]}
    assert labels["switchyard.run"] == "r1"
    assert labels["system.correlationId"] == started["id"]
    assert labels["switchyard.job"] == "cron:h1:1"
    clock.advance(0.5)
    assert api.get_execution(started["id"])["state"]["current"] == "RUNNING"
    clock.advance(5)
    done = api.get_execution(started["id"])
    assert [h["state"] for h in done["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    assert [tr["taskId"] for tr in done["taskRunList"]] == ["command"]


def test_failed_scenario_fails_the_named_task_and_skips_the_rest(
    kestra: KestraEmulator, api: KestraApi, clock: ManualClock
) -> None:
    spec, _ = load_case(CORPUS / "dags" / "data_quality.yaml")
    api.create_flow(translate(spec).yaml_text)
    kestra.set_scenario(NS, "data_quality", Scenario("FAILED", 4, failing_task="check", attempts=2))
    ex = api.trigger_execution(NS, "data_quality")
    clock.advance(10)
    done = api.get_execution(ex["id"])
    assert done["state"]["current"] == "FAILED"
    runs = {tr["taskId"]: tr for tr in done["taskRunList"]}
    assert list(runs) == ["fetch", "digest", "check"]
    assert runs["check"]["state"]["current"] == "FAILED"
    assert [a["state"]["current"] for a in runs["check"]["attempts"]] == ["FAILED", "FAILED"]


def test_a_disabled_flow_refuses_executions_with_409(api: KestraApi) -> None:
    spec, _ = load_case(CORPUS / "dags" / "legacy_reports.yaml")
    api.create_flow(translate(spec).yaml_text)  # partial → disabled
    with pytest.raises(KestraApiError) as err:
        api.trigger_execution(NS, "legacy_reports")
    assert (err.value.status, err.value.target) == (409, f"{NS}.legacy_reports")


def test_search_filters_by_label_and_start_date(api: KestraApi, clock: ManualClock) -> None:
    api.create_flow(_crontab_flow())
    first = api.trigger_execution(NS, "say_hi", labels={"batch": "a"})
    clock.advance(60)
    cutoff = clock()
    second = api.trigger_execution(NS, "say_hi", labels={"batch": "b"})
    clock.advance(1)
    everything, total = api.search_executions(namespace=NS)
    assert total == 2 and [e["id"] for e in everything] == [first["id"], second["id"]]
    assert [e["id"] for e in api.search_executions(labels={"batch": "a"})[0]] == [first["id"]]
    assert [e["id"] for e in api.search_executions(since=cutoff)[0]] == [second["id"]]
    assert "taskRunList" not in everything[0]


def test_a_wrong_token_is_a_401() -> None:
    with KestraEmulator(token="s3cret") as emulator:
        with pytest.raises(KestraApiError) as err:
            KestraApi(emulator.url, token="wrong").get_flow(NS, "x")
        assert err.value.status == 401
        assert KestraApi(emulator.url, token="s3cret").search_flows()[1] == 0


def test_an_unreachable_server_is_a_retryable_error_without_status() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(KestraApiError) as err:
        KestraApi(f"http://127.0.0.1:{port}", timeout=2).get_execution("abc")
    assert err.value.status is None and err.value.retryable


def test_the_openapi_check_catches_a_response_missing_required_fields() -> None:
    broken = Exchange(
        "GET",
        "/api/v1/main/executions/abc",
        [],
        None,
        b"",
        200,
        "application/json",
        {"id": "abc", "namespace": "n"},
    )
    problems = check_exchange(broken)
    assert any("'flowId' is a required property" in p for p in problems)
    unknown_param = Exchange(
        "GET",
        "/api/v1/main/executions/search",
        [("flowId", "x")],
        None,
        b"",
        200,
        "application/json",
        {"results": [], "total": 0},
    )
    assert check_exchange(unknown_param) == [
        "GET /api/v1/{tenant}/executions/search: query parameter 'flowId' is not declared"
    ]


def test_check_flow_asks_the_server_only_after_the_structural_checks_pass(
    api: KestraApi, kestra: KestraEmulator
) -> None:
    from migration_tools.translate import check_flow

    assert check_flow(_crontab_flow(), server=api) == []
    asked = len(kestra.exchanges)
    broken = _crontab_flow().replace("cron: 5 * * * *", "cron: ''")
    problems = check_flow(broken, server=api)
    assert [str(p) for p in problems] == [
        "triggers[0].cron: required by io.kestra.plugin.core.trigger.Schedule"
    ]
    assert len(kestra.exchanges) == asked  # the server was not asked


def test_an_invalid_flow_is_answered_in_kestras_error_shape(kestra: KestraEmulator) -> None:
    bad = (
        "id: broken\nnamespace: switchyard.migrated\n"
        "tasks:\n- {id: t, type: io.kestra.plugin.core.log.Log, mesage: m}\n"
    )
    answer = httpx.post(
        f"{kestra.url}/api/v1/main/flows",
        content=bad,
        headers={"Content-Type": "application/x-yaml"},
        timeout=10,
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "message": "Invalid entity: "
        'tasks[0].mesage: Unrecognized field "mesage" (class io.kestra.plugin.core.log.Log), '
        "not marked as ignorable, tasks[0].message: must not be null",
        "_links": {"self": {"href": "/api/v1/main/flows", "templated": False}},
        "_embedded": {
            "errors": [
                {
                    "message": 'Unrecognized field "mesage" (class io.kestra.plugin.core.log.Log), '
                    "not marked as ignorable",
                    "path": "tasks[0].mesage",
                },
                {"message": "must not be null", "path": "tasks[0].message"},
            ]
        },
    }
    assert kestra.state.flows == {}  # nothing half-saved


def test_the_openapi_document_is_committed_test_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHYARD_KESTRA_OPENAPI", raising=False)
    assert spec_path() == COMMITTED
    assert load_spec()["info"]["title"] == "Kestra EE"


def test_a_missing_openapi_document_is_an_error_never_a_skip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SWITCHYARD_KESTRA_OPENAPI", str(tmp_path / "absent.yml"))
    with pytest.raises(FileNotFoundError, match=r"absent\.yml"):
        spec_path()
