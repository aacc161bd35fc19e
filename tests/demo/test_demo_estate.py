"""`switchyard demo` as a subprocess: every source kind shows, the story holds, Ctrl-C cleans up.

One demo process per module (ephemeral port, temp data dir); the tests read it
through the REST API with the operator token its banner prints, and read the
incident tables from its SQLite file. The last test sends SIGINT and checks
that no process it started is left. Waits are bounded polls, never timings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow

SOURCES = {
    "airflow": "airflow-demo",
    "kubernetes": "k8s-demo",
    "lambda": "lambda-demo",
    "cron": "cron-demo",
    "kestra": "kestra-demo",
}
SWITCHYARD = Path(sys.executable).with_name("switchyard")


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    data_dir: Path
    url: str = ""
    token: str = ""
    output: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(
            f"{self.url}{path}{query}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def note_children(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen.update(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))


def wait_for(what: str, check: Callable[[], Any], demo: Demo, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        demo.note_children()
        try:
            result = check()
        except (OSError, KeyError, AssertionError) as exc:
            last, result = exc, None
        if result:
            return result
        assert demo.proc.poll() is None, "the demo exited:\n" + "".join(demo.output[-40:])
        time.sleep(0.5)
    raise AssertionError(f"{what} did not show within {timeout_s:g}s (last: {last!r})")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    proc = subprocess.Popen(
        [str(SWITCHYARD), "demo", "--port", "0", "--data-dir", str(data_dir), "--reset"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    demo = Demo(proc, data_dir)
    banner = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.output.append(line)
            if m := re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+)/", line):
                demo.url = m.group(1)
            if m := re.search(r"token\s+(\S+)", line):
                demo.token = m.group(1)
            if "Ctrl-C stops everything" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert banner.wait(90), "no banner:\n" + "".join(demo.output)
        yield demo
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_banner_names_url_token_and_what_is_emulated(demo: Demo) -> None:
    text = "".join(demo.output)
    assert demo.url and demo.token.startswith("swy_")
    for system in ("Airflow", "Kubernetes", "AWS Lambda", "Kestra", "cron"):
        assert system in text
    health = demo.get("/healthz")
    assert health["status"] == "ok"


def test_runs_from_every_source_kind_show_in_the_api(demo: Demo) -> None:
    def every_source() -> bool:
        return all(demo.get("/api/v1/runs", source=s, limit=1)["data"] for s in SOURCES.values())

    wait_for("runs from every source", every_source, demo)
    kinds = {s["name"]: s["kind"] for s in demo.get("/api/v1/sources")["data"]}
    assert {kinds[name] for name in SOURCES.values()} == set(SOURCES)


def _failed_kpo_pod(demo: Demo) -> dict[str, Any] | None:
    for run in demo.get("/api/v1/runs", source=SOURCES["kubernetes"], state="failed")["data"]:
        if run["error"] and run["error"]["kind"] == "OOMKilled":
            detail: dict[str, Any] = demo.get(f"/api/v1/runs/{run['id']}")
            if detail["links_in"] or detail["links_out"]:
                return detail
    return None


def test_oomkilled_kpo_pod_is_linked_exactly_to_the_failed_airflow_try(demo: Demo) -> None:
    pod = wait_for("a linked OOMKilled pod", lambda: _failed_kpo_pod(demo), demo)
    assert pod["error"]["exit_code"] == 137
    linked = [lk for lk in pod["links_in"] + pod["links_out"]]
    airflow = [lk for lk in linked if lk["run"]["source"] == SOURCES["airflow"]]
    assert len(airflow) == 1
    link, try_run = airflow[0]["link"], airflow[0]["run"]
    assert link["strength"] == "exact" and link["relation"] == "ref:airflow.ti_label"
    assert try_run["state"] == "failed" and try_run["kind"] == "attempt"
    assert re.fullmatch(r"sy_failure/manual__[^/]+/explode/-1/2", try_run["key"])


def test_incident_has_the_oomkilled_pod_as_root_cause_and_the_airflow_try_as_member(
    demo: Demo,
) -> None:
    engine = sa.create_engine(f"sqlite:///{demo.data_dir / 'switchyard.db'}")
    query = sa.text(
        "SELECT i.id, i.root_error_kind, r.source AS root_source FROM incident i "
        "JOIN run r ON r.id = i.root_run_id WHERE i.root_error_kind = 'OOMKilled'"
    )

    def incident() -> Any:
        with engine.connect() as conn:
            return conn.execute(query).first()

    found = wait_for("an OOMKilled incident", incident, demo)
    with engine.connect() as conn:
        members = conn.execute(
            sa.text(
                "SELECT m.role, r.source, r.key, r.state FROM incident_member m "
                "JOIN run r ON r.id = m.run_id WHERE m.incident_id = :id"
            ),
            {"id": found.id},
        ).all()
    engine.dispose()
    assert found.root_source == SOURCES["kubernetes"]
    roles = {(m.source, m.role) for m in members}
    assert (SOURCES["kubernetes"], "root_cause") in roles
    assert any(
        m.source == SOURCES["airflow"] and m.key.endswith("/explode/-1/2") and m.state == "failed"
        for m in members
    )


def test_a_job_is_part_way_through_migration_and_its_flow_is_in_kestra(demo: Demo) -> None:
    def migrating() -> list[dict[str, Any]]:
        jobs = demo.get("/api/v1/jobs", limit=200)["data"]
        return [j for j in jobs if j["migration_state"] != "observed"]

    moved = wait_for("a job past 'observed'", migrating, demo)
    assert [(j["source"], j["kind"], j["migration_state"]) for j in moved] == [
        (SOURCES["kubernetes"], "cronjob", "translated")
    ]

    def deployed() -> list[dict[str, Any]]:
        jobs = demo.get("/api/v1/jobs", source=SOURCES["kestra"], limit=200)["data"]
        return [j for j in jobs if j["key"].startswith("switchyard.migrated/")]

    flows = wait_for("the translated flow discovered in Kestra", deployed, demo)
    assert len(flows) == 1 and flows[0]["kind"] == "kestra_flow"
    engine = sa.create_engine(f"sqlite:///{demo.data_dir / 'switchyard.db'}")
    with engine.connect() as conn:
        audit = conn.execute(
            sa.text("SELECT actor, action, outcome FROM migration_audit ORDER BY id")
        ).all()
    engine.dispose()
    assert [(a.actor, a.action) for a in audit] == [
        ("switchyard-demo", "translate"),
        ("switchyard-demo", "deploy"),
    ]


def test_ctrl_c_stops_the_demo_and_leaves_no_process_behind(demo: Demo) -> None:
    wait_for("a cron round", lambda: demo.get("/api/v1/runs", source=SOURCES["cron"])["data"], demo)
    demo.note_children()
    demo.proc.send_signal(signal.SIGINT)
    code = demo.proc.wait(timeout=60)
    assert code in (0, 130), "".join(demo.output[-40:])  # 130: the re-raised SIGINT, like a shell
    alive = [pid for pid in demo.seen if psutil.pid_exists(pid)]
    alive = [p for p in alive if psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    strays = []
    for p in psutil.process_iter(["pid", "cwd", "cmdline"]):
        cwd = p.info.get("cwd") or ""
        cmd = " ".join(p.info.get("cmdline") or [])
        if cwd.startswith(str(demo.data_dir)) or str(demo.data_dir) in cmd:
            strays.append((p.info["pid"], cmd))
    assert strays == []
