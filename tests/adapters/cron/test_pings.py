"""Healthchecks-compatible pings sent by real `curl` to the real app over loopback."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from adapters.cron.pings import PingBook, ProvisionLimit
from gateway.contract import PROVISIONAL, State
from gateway.expectations import check_expectations
from gateway.ingest import apply_batch
from tests.adapters.cron.conftest import CronGateway, running_gateway

CHECK = "5f0c8a4e-3f59-4a3a-9a38-2a9f0e6b8c11"


def curl(*args: str, data: bytes | None = None) -> tuple[int, bytes, str]:
    """(status, body, headers) of one curl request."""
    cmd = ["curl", "-sS", "--max-time", "20", "-D", "-", "-o", "/dev/stderr", *args]
    if data is not None:
        cmd += ["--data-binary", "@-"]
    out = subprocess.run(cmd, input=data, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    headers = out.stdout.decode()
    status = int(headers.split()[1])
    return status, out.stderr, headers


@pytest.fixture
def strict_gateway(sqlite_engine: Engine, tmp_path: Path) -> Iterator[CronGateway]:
    checks = {CHECK: {"name": "backup", "schedule": "0 3 * * *", "timezone": "Europe/London"}}
    with running_gateway(sqlite_engine, tmp_path, checks=checks) as gw:
        yield gw


def test_start_then_success_with_rid_makes_one_finished_run(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    rid = str(uuid.uuid4())
    status, body, headers = curl(f"{gw.url}/ping/{CHECK}/start?rid={rid}")
    assert (status, body) == (200, b"OK")
    assert "ping-body-limit: 100000" in headers.lower()
    assert gw.run(f"ping/{CHECK}/{rid}")["state"] == State.running
    status, body, _ = curl(f"{gw.url}/ping/{CHECK}?rid={rid}", data=b"all good\n")
    assert (status, body) == (200, b"OK")
    run = gw.run(f"ping/{CHECK}/{rid}")
    assert run["state"] == State.succeeded
    assert run["started_at"] < run["ended_at"]
    assert run["attributes"]["cron.output"] == "all good\n"
    assert run["job"] == f"ping/{CHECK}"
    assert f"ping/{CHECK}" in gw.jobs()  # auto-provisioned on the first ping


def test_rid_less_start_pairs_with_the_next_outcome_like_runitor(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    curl(f"{gw.url}/ping/{CHECK}/start")
    curl("-X", "POST", f"{gw.url}/ping/{CHECK}/3", data=b"boom")
    (run,) = gw.runs()
    assert run["state"] == State.failed
    assert run["exit_code"] == 3
    assert run["error_kind"] == "exit_code"
    assert run["started_at"] is not None


def test_fail_ping_and_head_request(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    status, _, headers = curl("-I", f"{gw.url}/ping/{CHECK}/fail/")  # trailing slash too
    assert status == 200
    assert "access-control-allow-origin: *" in headers.lower()
    (run,) = gw.runs()
    assert run["state"] == State.failed
    assert run["error_kind"] == "fail"


def test_exit_zero_is_success_and_above_255_is_rejected(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    assert curl(f"{gw.url}/ping/{CHECK}/0")[0] == 200
    assert gw.runs()[0]["state"] == State.succeeded
    status, _, _ = curl(f"{gw.url}/ping/{CHECK}/256")
    assert status == 400
    assert len(gw.runs()) == 1


def test_log_ping_keeps_the_body_without_finishing_the_run(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    rid = str(uuid.uuid4())
    curl(f"{gw.url}/ping/{CHECK}/start?rid={rid}")
    curl(f"{gw.url}/ping/{CHECK}/log?rid={rid}", data=b"halfway")
    run = gw.run(f"ping/{CHECK}/{rid}")
    assert run["state"] == State.running
    assert run["attributes"]["cron.ping.log"] == "halfway"


def test_body_is_cut_at_the_advertised_limit(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    status, _, _ = curl(f"{gw.url}/ping/{CHECK}", data=b"a" * 300_000)
    assert status == 200
    attrs = gw.runs()[0]["attributes"]
    assert attrs["cron.output_bytes"] == 300_000
    assert 0 < len(attrs["cron.output"]) <= 100_000


def test_bad_rid_and_non_uuid_paths_are_refused(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    assert curl(f"{gw.url}/ping/{CHECK}?rid=nope")[0] == 400
    assert curl(f"{gw.url}/ping/not-a-uuid")[:2] == (404, b"not found")
    assert curl(f"{gw.url}/ping/{CHECK}/bogus")[0] == 404
    assert gw.runs() == []


def test_registered_checks_make_unknown_uuids_404(strict_gateway: CronGateway) -> None:
    gw = strict_gateway
    other = str(uuid.uuid4())
    assert curl(f"{gw.url}/ping/{other}")[:2] == (404, b"not found")
    assert curl(f"{gw.url}/ping/{CHECK.upper()}")[:2] == (200, b"OK")
    (run,) = gw.runs()
    assert run["name"] == "backup"
    spec = gw.adapter.discover()[0]
    assert (spec.key, spec.schedule, spec.timezone) == (
        f"ping/{CHECK}",
        "0 3 * * *",
        "Europe/London",
    )


def test_host_api_needs_the_source_token(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    status, _, _ = curl("-X", "POST", f"{gw.url}/api/v1/cron/report", data=b"{}")
    assert status == 401
    status, _, _ = curl(
        "-H",
        "Authorization: Bearer cron-test-token",
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        f"{gw.url}/api/v1/cron/report",
        data=b'{"reports": [{"phase": "finish"}]}',
    )
    assert status == 422


def test_a_registered_check_is_expected_on_its_schedule_and_its_pings_satisfy_it(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    earlier = now - timedelta(hours=2)
    schedule = f"{now.minute} {earlier.hour},{now.hour} * * *"
    checks = {CHECK: {"schedule": schedule, "grace_s": 600}}
    with running_gateway(sqlite_engine, tmp_path, checks=checks) as gw:
        apply_batch(
            sqlite_engine, gw.adapter.name, [], jobs=gw.adapter.discover()
        )  # as the poller does
        with sqlite_engine.begin() as conn:
            conn.execute(text("UPDATE job SET discovered_at = :d"), {"d": now - timedelta(hours=3)})
        assert curl(f"{gw.url}/ping/{CHECK}")[0] == 200
        check_expectations(sqlite_engine, now + timedelta(minutes=11))
        missed = [r for r in gw.runs() if r["state"] == State.missed]
        assert [r["key"] for r in missed] == [
            f"expected/ping/{CHECK}/{earlier.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        ]


def test_slug_urls_with_the_ping_key_create_and_conflict_like_healthchecks(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    checks = {
        CHECK: {"slug": "backup"},
        str(uuid.uuid4()): {"slug": "dup"},
        str(uuid.uuid4()): {"slug": "dup"},
    }
    with running_gateway(sqlite_engine, tmp_path, checks=checks, ping_key="pk-123") as gw:
        rid = str(uuid.uuid4())
        assert curl(f"{gw.url}/ping/pk-123/backup/start?rid={rid}")[:2] == (200, b"OK")
        assert curl(f"{gw.url}/ping/pk-123/backup?rid={rid}")[:2] == (200, b"OK")
        run = gw.run(f"ping/{CHECK}/{rid}")
        assert (run["job"], run["state"]) == (f"ping/{CHECK}", State.succeeded)

        assert curl(f"{gw.url}/ping/wrong-key/backup")[:2] == (404, b"not found")
        assert curl(f"{gw.url}/ping/pk-123/dup")[:2] == (409, b"ambiguous slug")
        assert curl(f"{gw.url}/ping/pk-123/fresh")[:2] == (404, b"not found")
        assert curl(f"{gw.url}/ping/pk-123/fresh/start?create=1")[0] == 200
        assert curl(f"{gw.url}/ping/pk-123/fresh/fail")[0] == 200  # exists now
        assert "ping/slug/fresh" in gw.jobs()
        fresh = [r for r in gw.runs() if r["job"] == "ping/slug/fresh"]
        assert [(r["state"], r["error_kind"]) for r in fresh] == [(State.failed, "fail")]


# -- no anonymous check creation by default ------------------------------------


def incidents(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM incident")).mappings()]


def test_an_unknown_uuid_is_404_and_writes_nothing_without_auto_provision(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    with running_gateway(sqlite_engine, tmp_path) as gw:
        assert curl(f"{gw.url}/ping/{CHECK}/fail")[:2] == (404, b"not found")
        assert curl(f"{gw.url}/ping/{CHECK}/start?rid={uuid.uuid4()}")[:2] == (404, b"not found")
        assert (gw.runs(), gw.jobs()) == ([], {})


def test_a_slug_is_created_only_with_the_ping_key(sqlite_engine: Engine, tmp_path: Path) -> None:
    with running_gateway(sqlite_engine, tmp_path) as gw:  # no ping_key: no slug URLs at all
        assert curl(f"{gw.url}/ping/anything/fresh?create=1")[:2] == (404, b"not found")
        assert gw.jobs() == {}


def test_creating_checks_beyond_the_bucket_is_429_with_retry_after(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    options = {"auto_provision": True, "provision_per_minute": 1, "provision_burst": 2}
    with running_gateway(sqlite_engine, tmp_path, **options) as gw:
        first, second, third = (str(uuid.uuid4()) for _ in range(3))
        assert curl(f"{gw.url}/ping/{first}")[0] == 200
        assert curl(f"{gw.url}/ping/{second}")[0] == 200
        status, body, headers = curl(f"{gw.url}/ping/{third}")
        assert (status, body) == (429, b"rate limited: too many new checks")
        retry_after = next(
            line.split(":", 1)[1] for line in headers.lower().splitlines() if "retry-after" in line
        )
        assert 1 <= int(retry_after) <= 60
        # Checks that exist already are not held back.
        assert curl(f"{gw.url}/ping/{first}/fail")[0] == 200
        assert sorted(gw.jobs()) == sorted([f"ping/{first}", f"ping/{second}"])
        assert {r["job"] for r in gw.runs()} == {f"ping/{first}", f"ping/{second}"}


def test_an_auto_provisioned_check_opens_no_incident_until_it_is_adopted(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    with running_gateway(sqlite_engine, tmp_path, auto_provision=True) as gw:
        assert curl(f"{gw.url}/ping/{CHECK}/fail")[0] == 200
        (run,) = gw.runs()
        assert (run["state"], run["attributes"][PROVISIONAL]) == (State.failed, True)
        assert gw.jobs()[f"ping/{CHECK}"]["labels"][PROVISIONAL] == "true"
    assert incidents(sqlite_engine) == []

    # The operator adopts it: listed under `checks`, the next failure is an incident.
    adopted = {CHECK: {"name": "backup"}}
    with running_gateway(sqlite_engine, tmp_path, auto_provision=True, checks=adopted) as gw:
        apply_batch(sqlite_engine, gw.adapter.name, [], jobs=gw.adapter.discover())  # as polled
        assert PROVISIONAL not in gw.jobs()[f"ping/{CHECK}"]["labels"]
        assert curl(f"{gw.url}/ping/{CHECK}/fail")[0] == 200
    (incident,) = incidents(sqlite_engine)
    assert incident["status"] == "open"


def test_what_a_ping_process_remembers_is_bounded() -> None:
    book = PingBook(cap=3)
    for i in range(5):
        book.remember_sent(f"job-{i}")
        book.remember_start(f"check-{i}", f"run-{i}", datetime.now(UTC))
    book.remember_sent("job-2")  # used again: now the most recent
    book.remember_sent("job-5")
    assert list(book.jobs_sent) == ["job-4", "job-2", "job-5"]
    assert list(book.open_starts) == ["check-2", "check-3", "check-4"]


def test_the_provision_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = ProvisionLimit(per_minute=6, burst=2, clock=lambda: now[0])
    assert (bucket.take(), bucket.take()) == (0.0, 0.0)
    assert bucket.take() == pytest.approx(10.0)
    now[0] = 5.0
    assert bucket.take() == pytest.approx(5.0)  # nothing was taken by the refusal
    now[0] = 10.0
    assert bucket.take() == 0.0
