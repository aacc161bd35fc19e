"""The `switchyard-cron` wrapper as hosts run it: real subprocesses, a real gateway.

Every wrapper here runs under `python -I -S` (no site-packages, no user path),
which is itself the proof that it needs nothing but the standard library.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.cron import crontab
from gateway.contract import State
from tests.adapters.cron.conftest import (
    TOKEN,
    WRAPPER,
    CronGateway,
    closed_port_url,
    run_wrapper,
)

HOST_MODULES = ["wrapper.py", "crontab.py", "control.py"]


def _run_key(gw: CronGateway, phase_index: int = -1) -> str:
    return gw.recorded[phase_index].key


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code_is_passed_through_and_reported(cron_gateway: CronGateway, code: int) -> None:
    gw = cron_gateway
    out = run_wrapper(
        ["--check", "nightly", "--", "sh", "-c", f"echo hello; exit {code}"],
        url=gw.url,
        spool=gw.spool,
    )
    assert out.returncode == code, out.stderr
    assert out.stdout == b"hello\n"
    run = gw.run(_run_key(gw))
    assert run["job"] == "nightly"
    assert run["state"] == (State.succeeded if code == 0 else State.failed)
    assert run["exit_code"] == (None if code == 0 else code)
    assert run["attributes"]["process.exit_code"] == code
    assert run["attributes"]["cron.output"] == "hello\n"
    assert run["attributes"]["host.name"] == "host-a"
    assert run["started_at"] is not None and run["ended_at"] is not None
    assert [e.state for e in gw.recorded] == [
        State.running,
        State.succeeded if code == 0 else State.failed,
    ]
    assert list(gw.spool.glob("*.json")) == []


def test_child_killed_by_sigkill_exits_137_and_is_reported_as_signal(
    cron_gateway: CronGateway,
) -> None:
    gw = cron_gateway
    out = run_wrapper(["--", "sh", "-c", "echo before; kill -KILL $$"], url=gw.url, spool=gw.spool)
    assert out.returncode == 128 + 9
    run = gw.run(_run_key(gw))
    assert run["state"] == State.failed
    assert run["error_kind"] == "signal"
    assert run["exit_code"] == 137
    assert run["attributes"]["cron.output"] == "before\n"


def test_megabytes_of_output_pass_through_and_only_the_tail_is_kept(
    cron_gateway: CronGateway,
) -> None:
    gw = cron_gateway
    # stderr first: the tail interleaves both pipes in arrival order, and the
    # 4 MB that follow on stdout keep "THE END" last
    script = (
        "import sys\n"
        "sys.stderr.write('E' * 2000); sys.stderr.flush()\n"
        "for i in range(40000):\n"
        "    sys.stdout.write('line %06d ' % i + 'x' * 90 + '\\n')\n"
        "sys.stdout.write('THE END\\n')\n"
    )
    out = run_wrapper(["--", sys.executable, "-c", script], url=gw.url, spool=gw.spool)
    assert out.returncode == 0
    assert len(out.stdout) == 40000 * 103 + len("THE END\n")
    assert out.stdout.endswith(b"THE END\n")
    assert out.stderr == b"E" * 2000
    attrs = gw.run(_run_key(gw))["attributes"]
    assert attrs["cron.output_bytes"] == len(out.stdout) + 2000
    assert len(attrs["cron.output"]) == 10 * 1024
    assert attrs["cron.output"] == out.stdout[-10 * 1024 :].decode()


def test_sigterm_to_the_wrapper_reaches_the_command(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    env = {
        "PATH": os.environ["PATH"],
        "SWITCHYARD_URL": gw.url,
        "SWITCHYARD_TOKEN": TOKEN,
        "SWITCHYARD_SPOOL": str(gw.spool),
        "SWITCHYARD_TIMEOUT": "15",
    }
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(WRAPPER), "--", "sh", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 42
    assert rest == b"got-term\n"
    assert gw.run(gw.recorded[-1].key)["exit_code"] == 42


def test_traceparent_and_run_id_are_exported_to_the_command(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    out = run_wrapper(
        ["--", "sh", "-c", 'echo "$TRACEPARENT $SWITCHYARD_RUN_ID"'],
        url=gw.url,
        spool=gw.spool,
        extra_env={"TRACEPARENT": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
    )
    traceparent, run_id = out.stdout.decode().split()
    assert traceparent.startswith("00-" + "ab" * 16 + "-")  # the caller's trace is continued
    finish = gw.recorded[-1]
    assert finish.key == run_id
    refs = {(r.namespace, r.value) for r in finish.refs}
    assert ("cron.rid", run_id) in refs
    assert ("w3c.traceparent", traceparent) in refs
    assert gw.run(run_id)["trace_id"] == "ab" * 16


def test_command_that_cannot_run_exits_127_and_is_reported(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    out = run_wrapper(["--", "/nonexistent/job"], url=gw.url, spool=gw.spool)
    assert out.returncode == 127
    run = gw.run(_run_key(gw))
    assert run["state"] == State.failed
    assert run["error_kind"] == "exec_failed"


def test_gateway_down_spools_runs_and_flush_replays_them_in_order(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw = cron_gateway
    marker = tmp_path / "ran"
    down = closed_port_url()
    codes = []
    for i, code in enumerate([0, 4]):
        out = run_wrapper(
            ["--check", f"job{i}", "--", "sh", "-c", f"echo {i} >> {marker}; exit {code}"],
            url=down,
            spool=gw.spool,
        )
        codes.append(out.returncode)
        assert b"gateway unreachable" in out.stderr
    assert codes == [0, 4]  # the exit code never depends on the gateway
    assert marker.read_text() == "0\n1\n"  # each command ran exactly once
    assert len(list(gw.spool.glob("*.json"))) == 4
    assert gw.runs() == []

    flushed = run_wrapper(["flush"], url=gw.url, spool=gw.spool)
    assert flushed.returncode == 0, flushed.stderr
    assert list(gw.spool.glob("*.json")) == []
    assert [(e.job, e.state) for e in gw.recorded] == [
        ("job0", State.running),
        ("job0", State.succeeded),
        ("job1", State.running),
        ("job1", State.failed),
    ]
    assert {r["job"]: r["state"] for r in gw.runs()} == {"job0": "succeeded", "job1": "failed"}


def test_next_run_replays_what_an_earlier_run_spooled_first(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    run_wrapper(["--check", "early", "--", "true"], url=closed_port_url(), spool=gw.spool)
    out = run_wrapper(["--check", "later", "--", "true"], url=gw.url, spool=gw.spool)
    assert out.returncode == 0
    jobs = [e.job for e in gw.recorded]
    assert jobs.index("early") < jobs.index("later")
    assert sorted(r["job"] for r in gw.runs()) == ["early", "later"]
    assert list(gw.spool.glob("*.json")) == []


def test_an_unusable_spool_never_changes_the_exit_code(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw = cron_gateway
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    out = run_wrapper(["--", "sh", "-c", "exit 6"], url=gw.url, spool=blocker / "spool")
    assert out.returncode == 6
    assert b"cannot spool" in out.stderr
    assert gw.run(gw.recorded[-1].key)["exit_code"] == 6  # sent directly instead


def test_a_damaged_spool_file_is_set_aside_and_the_rest_replayed(
    cron_gateway: CronGateway,
) -> None:
    gw = cron_gateway
    gw.spool.mkdir(parents=True)
    (gw.spool / "00000000000000000001-00000001-0001.json").write_text("{not json")
    out = run_wrapper(["--check", "ok", "--", "true"], url=gw.url, spool=gw.spool)
    assert out.returncode == 0
    assert [p.name for p in (gw.spool / "rejected").iterdir()] == [
        "00000000000000000001-00000001-0001.json"
    ]
    assert gw.runs()[0]["state"] == State.succeeded


def test_wrong_token_keeps_reports_spooled(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    out = run_wrapper(["--", "true"], url=gw.url, spool=gw.spool, token="wrong")
    assert out.returncode == 0
    assert len(list(gw.spool.glob("*.json"))) == 2
    again = run_wrapper(["flush"], url=gw.url, spool=gw.spool, token=TOKEN)
    assert again.returncode == 0
    assert len(gw.runs()) == 1


def test_job_key_without_check_matches_the_crontab_key() -> None:
    argv = ["/usr/local/bin/backup.sh", "--full"]
    line = "0 3 * * * switchyard-cron -- /usr/local/bin/backup.sh --full"
    (entry,) = crontab.parse_crontab(line, path="t", system=False, user="alice")
    assert crontab.entry_key(entry, "host-a") == crontab.job_key("host-a", "alice", " ".join(argv))
    plain = crontab.parse_crontab(
        "0 3 * * * /usr/local/bin/backup.sh --full", path="t", system=False, user="alice"
    )[0]
    assert crontab.entry_key(plain, "host-a") == crontab.entry_key(entry, "host-a")


def test_host_modules_use_only_the_standard_library_in_python_38_syntax() -> None:
    for name in HOST_MODULES:
        source = (WRAPPER.parent / name).read_text()
        tree = ast.parse(source, feature_version=(3, 8))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in sys.stdlib_module_names or root in (
                    "adapters",
                    "crontab",
                    "control",
                ), f"{name} imports {root}"


def test_wrapper_runs_from_loose_copies_without_the_package(tmp_path: Path) -> None:
    for name in HOST_MODULES:
        (tmp_path / name).write_text((WRAPPER.parent / name).read_text())
    spool = tmp_path / "spool"
    out = subprocess.run(
        [sys.executable, "-I", "-S", str(tmp_path / "wrapper.py"), "--", "sh", "-c", "exit 5"],
        env={
            "PATH": os.environ["PATH"],
            "SWITCHYARD_URL": closed_port_url(),
            "SWITCHYARD_SPOOL": str(spool),
        },
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 5
    assert len(list(spool.glob("*.json"))) == 2
