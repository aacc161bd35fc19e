"""The Grafana dashboards run against a real, migrated PostgreSQL as the read-only role.

Every panel's SQL (and every template variable's query) is expanded the way
Grafana expands it, then executed as `switchyard_grafana`, the role that
`dashboards/grafana/readonly_role.sql` creates, against a store seeded through
`gateway.ingest.apply_batch`. Each must run and return rows. The role is shown
unable to write. The dashboard JSON and the provisioning YAML are checked for
the structure Grafana needs (one fixed datasource uid everywhere, unique panel
ids, raw SQL targets).

Expansion implemented here (Grafana does it in two steps):

1. The frontend interpolates template variables: `$__interval` → the panel's
   interval as Grafana writes it (`5m`), `$__interval_ms` → milliseconds, and a
   multi-value/"All" variable such as `$source` → its values single-quoted and
   comma-joined (`'a','b'`), which is what the PostgreSQL datasource does for
   multi-value variables.
2. The backend expands macros matched by Grafana's own pattern
   `\\$(\\w+)\\(([^)]*)\\)` (arguments cannot contain ')' — which is why the
   panels compute expressions in a sub-select and pass plain columns):
   - `$__timeFilter(x)` → `x BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC)
   - `$__timeFrom()` / `$__timeTo()` → `'<from>'` / `'<to>'`
   - `$__timeGroup(x, 5m)` → `floor(extract(epoch from x)/300)*300`
   - `$__timeGroupAlias(x, 5m)` → the same followed by ` AS "time"`
   - `$__time(x)` → `x AS "time"`, `$__timeEpoch(x)` → `extract(epoch from x) as "time"`
   - `$__unixEpochFilter(x)` → `x >= <from s> AND x <= <to s>`
   An unknown macro is an error, as in Grafana.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine, make_url

from gateway.config import Config, parse_config
from gateway.contract import ErrorInfo, JobSpec, Ref, RunEvent, RunKind, State
from gateway.ingest import apply_batch
from gateway.runtime.status import record_failure, record_success
from tests.dbs import PG_SKIP_REASON, fresh_pg_database, migrated_engine, pg_admin_url

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
DATASOURCE_UID = "switchyard-pg"
ROLE = "switchyard_grafana"
INTERVAL = "5m"

_MACRO = re.compile(r"\$(\w+)\(([^)]*)\)")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside a collapsed row


def _interval_s(text: str) -> float:
    m = _DURATION.match(text.strip().strip("'"))
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def _seconds_text(seconds: float) -> str:
    # Go's %v of a float64: 300 for 300.0, 0.5 for 0.5.
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def _rfc3339(t: datetime) -> str:
    # Go's time.RFC3339Nano: fractional seconds only when non-zero, no trailing zeros.
    t = t.astimezone(UTC)
    fraction = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def expand(
    sql: str,
    *,
    start: datetime,
    end: datetime,
    interval: str,
    variables: dict[str, list[str]],
) -> str:
    """`sql` as Grafana would send it to PostgreSQL (see the module docstring)."""
    sql = sql.replace("$__interval_ms", str(int(_interval_s(interval) * 1000)))
    sql = sql.replace("$__interval", interval)
    for name, values in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        quoted = ",".join("'" + v.replace("'", "''") + "'" for v in values)
        sql = sql.replace("${" + name + "}", quoted).replace("$" + name, quoted)

    def macro(m: re.Match[str]) -> str:
        name, params = m.group(1), m.group(2)
        args = [a.strip() for a in params.split(",")] if params.strip() else []
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'"
        if name == "__timeFrom":
            return f"'{_rfc3339(start)}'"
        if name == "__timeTo":
            return f"'{_rfc3339(end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            step = _seconds_text(_interval_s(args[1]))
            group = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(start.timestamp())} AND {args[0]} <= {int(end.timestamp())}"
        raise ValueError(f"unknown macro ${name}")

    expanded = _MACRO.sub(macro, sql)
    if "$" in expanded.replace("$$", ""):
        raise ValueError(f"unexpanded variable left in: {expanded}")
    return expanded


# --- pure checks on the files -------------------------------------------------


def test_expansion_matches_grafana_for_each_macro() -> None:
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    end = datetime(2026, 11, 25, 11, 30, 15, 250000, tzinfo=UTC)
    sql = (
        "SELECT $__timeGroupAlias(t, $__interval), $__timeGroup(t, '1h') FROM x "
        "WHERE $__timeFilter(t) AND s IN ($source) AND $__timeFrom() < $__timeTo()"
    )
    got = expand(sql, start=start, end=end, interval="5m", variables={"source": ["a", "o'b"]})
    assert got == (
        'SELECT floor(extract(epoch from t)/300)*300 AS "time", '
        "floor(extract(epoch from t)/3600)*3600 FROM x "
        "WHERE t BETWEEN '2026-11-25T10:00:00Z' AND '2026-11-25T11:30:15.25Z' "
        "AND s IN ('a','o''b') AND '2026-11-25T10:00:00Z' < '2026-11-25T11:30:15.25Z'"
    )
    with pytest.raises(ValueError, match="unknown macro"):
        expand("SELECT $__nope(x)", start=start, end=end, interval="5m", variables={})


def test_datasource_provisioning_has_fixed_uid_and_readonly_user() -> None:
    data = yaml.safe_load((GRAFANA / "provisioning/datasources/switchyard.yaml").read_text())
    assert data["apiVersion"] == 1
    (ds,) = data["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["jsonData"]["database"]  # Grafana 12 reads it only from jsonData
    assert "password" in ds["secureJsonData"]
    assert ds["user"] == "${SWITCHYARD_GRAFANA_PG_USER}"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/switchyard.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_panel_uses_the_provisioned_datasource_with_raw_sql() -> None:
    boards = dashboards()
    assert boards, "no dashboard JSON found"
    uids = [b["uid"] for b in boards]
    assert len(uids) == len(set(uids))
    for board in boards:
        assert isinstance(board["schemaVersion"], int)
        panels = list(all_panels(board))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{board['uid']}: duplicate panel ids"
        for panel in panels:
            if panel["type"] == "row":
                continue
            where = f"{board['uid']} panel {panel['id']} ({panel['title']})"
            assert panel["datasource"]["uid"] == DATASOURCE_UID, where
            assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID
                assert target["rawSql"].strip(), where
                assert target["rawQuery"] is True, where
                assert target["format"] in ("time_series", "table"), where
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DATASOURCE_UID


def test_dashboard_covers_the_views_it_promises() -> None:
    sql = " ".join(
        t["rawSql"] for b in dashboards() for p in all_panels(b) for t in p.get("targets", [])
    )
    for needed in ("'missed'", "percentile_cont(0.95)", "percentile_cont(0.5)", "FROM source"):
        assert needed in sql
    assert "migration_state" in sql and "$__timeGroupAlias" in sql and "$__timeFilter" in sql


# --- against PostgreSQL ------------------------------------------------------

SOURCES = {
    "airflow-prod": "airflow",
    "k8s-prod": "kubernetes",
    "lambda-prod": "lambda",
    "cron-hosts": "cron",
    "kestra": "kestra",
}


def _config() -> Config:
    return parse_config(
        {"sources": [{"name": n, "kind": k} for n, k in SOURCES.items()]}, origin="<test>"
    )


def _event(
    source: str, key: str, state: State, start: datetime, seconds: float, **kw: Any
) -> RunEvent:
    terminal = state.terminal or state is State.up_for_retry
    return RunEvent(
        source=source,
        key=key,
        state=state,
        started_at=start,
        ended_at=start + timedelta(seconds=seconds) if terminal else None,
        observed_at=start + timedelta(seconds=seconds + 1),
        **kw,
    )


def seed(engine: Engine, now: datetime) -> None:
    """A day of realistic runs on five systems, their jobs and source health."""
    hour = timedelta(hours=1)
    airflow: list[RunEvent] = []
    k8s: list[RunEvent] = []
    for i in range(12):
        start = now - 20 * hour + i * hour
        run_key = f"orders_etl/scheduled__{start:%Y-%m-%dT%H:%M:%S}"
        failed = i % 5 == 0
        state = State.failed if failed else State.succeeded
        airflow.append(
            _event(
                "airflow-prod",
                run_key,
                state,
                start,
                600 + 30 * i,
                job="orders_etl",
                name="orders_etl",
                attributes={"cicd.pipeline.name": "orders_etl"},
            )
        )
        ti = f"orders_etl/{run_key.split('/')[1]}/transform/-1/1"
        airflow.append(
            _event(
                "airflow-prod",
                f"{run_key}/transform/1",
                state,
                start,
                500,
                kind=RunKind.attempt,
                parent_key=run_key,
                job="orders_etl",
                name="transform",
                refs=[Ref(namespace="airflow.ti", value=ti)],
            )
        )
        k8s.append(
            _event(
                "k8s-prod",
                f"jobs/etl/transform-{i}",
                state,
                start + timedelta(seconds=5),
                480,
                job="etl/transform",
                name=f"transform-{i}",
                attributes={"k8s.namespace.name": "etl", "k8s.job.name": f"transform-{i}"},
                error=ErrorInfo(kind="OOMKilled", exit_code=137) if failed else None,
                refs=[Ref(namespace="airflow.ti", value=ti)],
            )
        )
    lam = [
        _event(
            "lambda-prod",
            f"resize/req-{i}",
            State.failed if i == 3 else State.succeeded,
            now - 10 * hour + i * 7 * timedelta(minutes=10),
            2.5 + i,
            job="resize",
            name="resize",
            attributes={"faas.invocation_id": f"req-{i}"},
        )
        for i in range(8)
    ]
    cron = [
        _event(
            "cron-hosts",
            f"backup@db1/{i}",
            State.succeeded,
            now - 23 * hour + i * 4 * hour,
            120,
            job="backup@db1",
            name="backup",
        )
        for i in range(5)
    ]
    cron.append(
        RunEvent(
            source="cron-hosts",
            key="backup@db1/missed-1",
            state=State.missed,
            job="backup@db1",
            name="backup",
            nominal_time=now - 2 * hour,
            observed_at=now - 2 * hour + timedelta(minutes=10),
            error=ErrorInfo(kind="missed", message="no start within 10m"),
        )
    )
    kestra = [
        _event(
            "kestra",
            f"exec-{i}",
            State.succeeded if i else State.cancelled,
            now - 6 * hour + i * hour,
            90,
            job="company.team/orders_etl",
            name="orders_etl",
        )
        for i in range(4)
    ]
    jobs = {
        "airflow-prod": [
            JobSpec(source="airflow-prod", key=k, kind="dag", schedule="0 * * * *")
            for k in ("orders_etl", "billing_daily", "ml_train")
        ],
        "k8s-prod": [JobSpec(source="k8s-prod", key="etl/transform", kind="k8s_job")],
        "lambda-prod": [JobSpec(source="lambda-prod", key="resize", kind="lambda")],
        "cron-hosts": [
            JobSpec(source="cron-hosts", key="backup@db1", kind="crontab", schedule="0 */4 * * *")
        ],
        "kestra": [JobSpec(source="kestra", key="company.team/orders_etl", kind="kestra_flow")],
    }
    for source, events in (
        ("airflow-prod", airflow),
        ("k8s-prod", k8s),
        ("lambda-prod", lam),
        ("cron-hosts", cron),
        ("kestra", kestra),
    ):
        apply_batch(engine, source, events, cursor=f"{source}-cursor", jobs=jobs[source])
    with engine.begin() as conn:
        # The migration workflow moves jobs along (migration_tools.lifecycle
        # state names); here, by hand.
        for key, migration_state in (
            ("billing_daily", "translated"),
            ("ml_train", "shadow"),
            ("backup@db1", "cut_over"),
            ("resize", "wrapped"),
        ):
            conn.execute(
                sa.text("UPDATE job SET migration_state = :s WHERE key = :k"),
                {"s": migration_state, "k": key},
            )
    config = _config()
    for source, kind in SOURCES.items():
        if source == "lambda-prod":
            # It last succeeded 12 minutes ago and has been throttled since.
            record_success(
                engine,
                source=source,
                kind=kind,
                interval_s=60,
                holder="r1",
                now=now - timedelta(minutes=12),
            )
            record_failure(
                engine,
                config,
                source=source,
                kind=kind,
                interval_s=60,
                holder="r1",
                error="ThrottlingException: Rate exceeded",
                consecutive_failures=3,
                last_success_at=now - timedelta(minutes=12),
                now=now,
            )
        else:
            record_success(
                engine,
                source=source,
                kind=kind,
                interval_s=30,
                holder="r1",
                now=now - timedelta(seconds=20),
            )


@pytest.fixture(scope="module")
def grafana_db() -> Iterator[tuple[str, str]]:
    """(owner URL, read-only URL) of a private, migrated, seeded database."""
    if pg_admin_url() is None:
        pytest.skip(PG_SKIP_REASON)
    if shutil.which("psql") is None:
        pytest.skip("needs the psql client to run readonly_role.sql as a user would")
    with fresh_pg_database("switchyard_grafana_test") as url:
        engine = migrated_engine(url)
        try:
            seed(engine, datetime.now(UTC))
        finally:
            engine.dispose()
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(
            [
                "psql",
                libpq,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-f",
                str(GRAFANA / "readonly_role.sql"),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )
        readonly = make_url(libpq).set(username=ROLE, password=None)
        yield libpq, readonly.render_as_string(hide_password=False)


def _variables(conn: psycopg.Connection[Any], board: dict[str, Any]) -> dict[str, list[str]]:
    """Each query variable set to "All": every value its own query returns."""
    values: dict[str, list[str]] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            rows = conn.execute(variable["query"]).fetchall()
            assert rows, f"variable {variable['name']} has no values"
            values[variable["name"]] = [str(r[0]) for r in rows]
    return values


@pytest.mark.slow
def test_every_panel_returns_rows_as_the_readonly_role(grafana_db: tuple[str, str]) -> None:
    _, readonly_url = grafana_db
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=24, minutes=1)
    ran = 0
    with psycopg.connect(readonly_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLE,)
        for board in dashboards():
            variables = _variables(conn, board)
            assert set(variables["source"]) == set(SOURCES)
            for panel in all_panels(board):
                for target in panel.get("targets", []):
                    sql = expand(
                        target["rawSql"],
                        start=start,
                        end=end,
                        interval=INTERVAL,
                        variables=variables,
                    )
                    cur = conn.execute(sql)
                    rows = cur.fetchall()
                    columns = [c.name for c in cur.description or []]
                    where = f"panel {panel['id']} ({panel['title']})"
                    assert rows, f"{where} returned no rows:\n{sql}"
                    if target["format"] == "time_series":
                        assert "time" in columns, where
                        times = [r[columns.index("time")] for r in rows]
                        assert times == sorted(times), f"{where}: not ordered by time"
                    ran += 1
    assert ran >= 13


@pytest.mark.slow
def test_panels_show_the_seeded_facts(grafana_db: tuple[str, str]) -> None:
    _, readonly_url = grafana_db
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=24, minutes=1)
    by_title = {p["title"]: p for b in dashboards() for p in all_panels(b)}
    with psycopg.connect(readonly_url, connect_timeout=10) as conn:
        variables = _variables(conn, dashboards()[0])

        def run(title: str) -> list[tuple[Any, ...]]:
            sql = by_title[title]["targets"][0]["rawSql"]
            return conn.execute(
                expand(sql, start=start, end=end, interval=INTERVAL, variables=variables)
            ).fetchall()

        assert run("Missed runs") == [(1,)]
        assert run("Finished runs") == [(12 + 12 + 8 + 6 + 4,)]
        migration = dict(run("Migration progress"))
        assert migration == {
            "observed": 3,
            "translated": 1,
            "wrapped": 1,
            "shadow": 1,
            "cut_over": 1,
        }
        lag = {row[0]: row for row in run("Source lag")}
        assert lag["lambda-prod"][2] == "degraded" or lag["lambda-prod"][2] == "stale"
        assert 11 * 60 < float(lag["lambda-prod"][3]) < 60 * 60
        assert "ThrottlingException" in lag["lambda-prod"][8]
        durations = {(r[1], r[2]): r for r in run("Durations by job (p50 / p95)")}
        assert durations[("lambda-prod", "resize")][3] == 8
        p50, p95 = (
            float(durations[("lambda-prod", "resize")][4]),
            float(durations[("lambda-prod", "resize")][5]),
        )
        assert 2.5 <= p50 <= p95 <= 9.5


def test_readonly_role_cannot_write(grafana_db: tuple[str, str]) -> None:
    _, readonly_url = grafana_db
    statements = [
        "INSERT INTO source (name, kind, interval_s, status, consecutive_failures) "
        "VALUES ('evil', 'cron', 1, 'unknown', 0)",
        "UPDATE run SET state = 'succeeded'",
        "DELETE FROM job",
        "CREATE TABLE evil (id int)",
        "SELECT token_hash FROM api_token",
    ]
    for statement in statements:
        with psycopg.connect(readonly_url, connect_timeout=10) as conn:
            # Even with the role's read-only default switched off, privileges refuse.
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("SET transaction_read_only = off")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_readonly_role_script_is_idempotent_and_covers_later_tables(
    grafana_db: tuple[str, str],
) -> None:
    owner_url, readonly_url = grafana_db
    subprocess.run(
        [
            "psql",
            owner_url,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-f",
            str(GRAFANA / "readonly_role.sql"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    with psycopg.connect(owner_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS later_table (id int)")
        conn.execute("INSERT INTO later_table VALUES (1)")
    try:
        with psycopg.connect(readonly_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET default_transaction_read_only = off")
            assert conn.execute("SELECT id FROM later_table").fetchall() == [(1,)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO later_table VALUES (2)")
    finally:
        with psycopg.connect(owner_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("DROP TABLE later_table")
