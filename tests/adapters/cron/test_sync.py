"""`switchyard-cron sync` end to end: real crontab files, a crontab(1) stand-in, the real gateway.

The gateway's `pause`/`resume` write the desired state; `sync` on the host
pulls it, comments out or restores the line atomically with a backup, and
reports the jobs (paused ones as paused).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from gateway.contract import State
from tests.adapters.cron.conftest import CronGateway, run_wrapper

USER_TAB = """\
MAILTO=""
CRON_TZ=Europe/London
30 1 * * * /home/alice/bin/report.sh
@hourly switchyard-cron --check alice-sync -- /home/alice/bin/sync.sh
"""
SYSTEM_TAB = """\
SHELL=/bin/sh
17 * * * * root cd / && run-parts --report /etc/cron.hourly
"""
CRON_D = """\
# nightly backup
0 3 * * * postgres /usr/local/bin/backup.sh --full
"""

# crontab(1) as hosts have it: `-l` prints the user's table, `crontab FILE` installs one.
FAKE_CRONTAB = """\
#!/bin/sh
if [ "$1" = "-l" ]; then
  if [ -f "$FAKE_CRONTAB_STORE" ]; then cat "$FAKE_CRONTAB_STORE"; exit 0; fi
  echo "no crontab for $LOGNAME" >&2; exit 1
fi
cp "$1" "$FAKE_CRONTAB_STORE.new" && mv "$FAKE_CRONTAB_STORE.new" "$FAKE_CRONTAB_STORE"
"""


class Host:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        (self.etc / "cron.d").mkdir(parents=True)
        self.system = self.etc / "crontab"
        self.system.write_text(SYSTEM_TAB)
        self.cron_d = self.etc / "cron.d" / "backup"
        self.cron_d.write_text(CRON_D)
        (self.etc / "cron.d" / "backup.dpkg-old").write_text("* * * * * root /bin/ignored\n")
        self.user_store = root / "alice.crontab"
        self.user_store.write_text(USER_TAB)
        self.crontab_cmd = root / "crontab"
        self.crontab_cmd.write_text(FAKE_CRONTAB)
        self.crontab_cmd.chmod(self.crontab_cmd.stat().st_mode | stat.S_IEXEC)
        self.state = root / "state"
        self.syslog = root / "syslog"
        self.syslog.write_text("")

    def sync(self, gw: CronGateway) -> dict[str, object]:
        out = run_wrapper(
            [
                "sync",
                "--crontab-cmd",
                str(self.crontab_cmd),
                "--system-crontab",
                str(self.system),
                "--cron-d",
                str(self.etc / "cron.d"),
                "--state-dir",
                str(self.state),
                "--timezone",
                "Europe/Berlin",
                "--syslog",
                str(self.syslog),
            ],
            url=gw.url,
            spool=self.root / "spool",
            extra_env={"FAKE_CRONTAB_STORE": str(self.user_store), "LOGNAME": "alice", "TZ": "UTC"},
        )
        assert out.returncode == 0, out.stderr.decode()
        result: dict[str, object] = json.loads(out.stdout)
        return result


def _key_for(gw: CronGateway, command_part: str) -> str:
    (key,) = [k for k, j in gw.jobs().items() if command_part in j["spec"]["definition"]["command"]]
    return key


def test_sync_reports_every_crontab_line_as_a_job(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw, host = cron_gateway, Host(tmp_path / "host")
    summary = host.sync(gw)
    assert summary["jobs"] == 4
    jobs = gw.jobs()
    report = jobs[_key_for(gw, "report.sh")]
    assert (report["schedule"], report["timezone"], report["owner"]) == (
        "30 1 * * *",
        "Europe/London",
        "alice",
    )
    assert report["labels"] == {"host": "host-a", "user": "alice"}
    assert jobs["alice-sync"]["spec"]["schedule_native"] == "@hourly"
    hourly = jobs[_key_for(gw, "run-parts")]
    assert (hourly["owner"], hourly["timezone"]) == ("root", "Europe/Berlin")
    assert jobs[_key_for(gw, "backup.sh")]["owner"] == "postgres"
    assert not any("ignored" in j["spec"]["definition"]["command"] for j in jobs.values())


def test_pause_comments_the_line_out_and_resume_restores_it_exactly(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw, host = cron_gateway, Host(tmp_path / "host")
    host.sync(gw)
    backup_key, report_key = _key_for(gw, "backup.sh"), _key_for(gw, "report.sh")
    mode_before = os.stat(host.cron_d).st_mode

    gw.adapter.pause(backup_key)
    gw.adapter.pause(report_key)
    summary = host.sync(gw)
    assert sorted(summary["paused"]) == sorted([backup_key, report_key])  # type: ignore[arg-type]
    assert host.cron_d.read_text() == (
        "# nightly backup\n"
        f"# switchyard:paused {backup_key} 0 3 * * * postgres /usr/local/bin/backup.sh --full\n"
    )
    assert f"# switchyard:paused {report_key} 30 1 * * * /home/alice/bin/report.sh\n" in (
        host.user_store.read_text()
    )
    assert os.stat(host.cron_d).st_mode == mode_before
    assert sorted(p.name.rsplit(".", 1)[0] for p in (host.state / "backups").iterdir()) == sorted(
        [str(host.cron_d).strip("/").replace("/", "_"), "crontab_alice"]
    )
    assert [p.name for p in (host.etc / "cron.d").iterdir() if p.name.startswith(".")] == []
    jobs = gw.jobs()
    assert jobs[backup_key]["paused"] and jobs[report_key]["paused"]
    assert not jobs["alice-sync"]["paused"]

    assert host.sync(gw)["paused"] == []  # the desired state is already applied

    gw.adapter.resume(backup_key)
    gw.adapter.resume(report_key)
    summary = host.sync(gw)
    assert sorted(summary["restored"]) == sorted([backup_key, report_key])  # type: ignore[arg-type]
    assert host.cron_d.read_text() == CRON_D
    assert host.user_store.read_text() == USER_TAB
    assert not gw.jobs()[backup_key]["paused"]


def test_a_deleted_line_is_reported_once_as_removed_and_paused(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw, host = cron_gateway, Host(tmp_path / "host")
    host.sync(gw)
    backup_key = _key_for(gw, "backup.sh")
    host.cron_d.write_text("# nothing left\n")
    summary = host.sync(gw)
    assert summary["removed"] == [backup_key]
    job = gw.jobs()[backup_key]
    assert job["paused"] and job["labels"]["removed"] == "true"
    assert host.sync(gw)["removed"] == []


def test_instructions_for_another_host_are_not_sent(cron_gateway: CronGateway) -> None:
    gw = cron_gateway
    gw.adapter.pause("host-b/root/0123456789ab")
    gw.adapter.pause("host-a/root/0123456789ab")
    assert gw.adapter.control.instructions("host-a") == {
        "pause": ["host-a/root/0123456789ab"],
        "resume": [],
    }


def test_cron_log_lines_become_runs_without_a_wrapper(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw, host = cron_gateway, Host(tmp_path / "host")
    host.syslog.write_text(
        "Nov 25 03:00:01 host-a CRON[4242]: (postgres) CMD (/usr/local/bin/backup.sh --full)\n"
        "Nov 25 03:00:01 host-a CRON[4300]: (alice) CMD (switchyard-cron --check x -- /bin/true)\n"
        "Nov 25 03:00:09 host-a CRON[4240]: (CRON) error "
        "(grandchild #4242 failed with exit status 3)\n"
        "Nov 25 03:00:09 host-a CRON[4242]: (postgres) END (/usr/local/bin/backup.sh --full)\n"
        "Nov 25 03:17:01 host-a CRON[5000]: (root) CMD "
        "(cd / && run-parts --report /etc/cron.hourly)\n"
    )
    summary = host.sync(gw)
    assert summary["runs_reported"] == 3  # the wrapped line reports itself
    runs = {r["job"]: r for r in gw.runs()}
    backup = runs[_key_for(gw, "backup.sh")]
    assert (backup["state"], backup["exit_code"]) == (State.failed, 3)
    assert runs[_key_for(gw, "run-parts")]["state"] == State.running

    with host.syslog.open("a") as f:
        f.write(
            "Nov 25 03:17:40 host-a CRON[5000]: (root) END "
            "(cd / && run-parts --report /etc/cron.hourly)\n"
        )
    assert host.sync(gw)["runs_reported"] == 1  # only the new line, from the saved offset
    assert {r["job"]: r for r in gw.runs()}[_key_for(gw, "run-parts")]["state"] == State.succeeded


# journalctl(1) stand-in: prints cron's entries after the cursor it is given.
FAKE_JOURNALCTL = """\
#!/bin/sh
echo "$@" >> "$JOURNAL_ARGS"
case "$*" in
  *--after-cursor*c2*) ;;
  *) cat "$JOURNAL_FILE" ;;
esac
"""


def test_journald_lines_become_runs_and_the_cursor_is_resumed(
    cron_gateway: CronGateway, tmp_path: Path
) -> None:
    gw, host = cron_gateway, Host(tmp_path / "host")
    entries = [
        {
            "__CURSOR": "c1",
            "SYSLOG_IDENTIFIER": "CRON",
            "_PID": "900",
            "_HOSTNAME": "host-a",
            "__REALTIME_TIMESTAMP": "1795000000000000",
            "MESSAGE": "(root) CMD (/bin/nightly)",
        },
        {
            "__CURSOR": "c2",
            "SYSLOG_IDENTIFIER": "CRON",
            "_PID": "900",
            "_HOSTNAME": "host-a",
            "__REALTIME_TIMESTAMP": "1795000060000000",
            "MESSAGE": "(root) END (/bin/nightly)",
        },
    ]
    journal = tmp_path / "journal.json"
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries))
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(FAKE_JOURNALCTL)
    journalctl.chmod(0o755)
    args_log = tmp_path / "journal-args"
    common = [
        "sync",
        "--no-user-crontab",
        "--system-crontab",
        str(host.system),
        "--cron-d",
        str(host.etc / "cron.d"),
        "--state-dir",
        str(host.state),
        "--journal",
        "--journalctl-cmd",
        str(journalctl),
    ]
    env = {"JOURNAL_FILE": str(journal), "JOURNAL_ARGS": str(args_log)}
    first = run_wrapper(common, url=gw.url, spool=tmp_path / "spool", extra_env=env)
    assert first.returncode == 0, first.stderr.decode()
    assert json.loads(first.stdout)["runs_reported"] == 2
    (run,) = gw.runs()
    assert (run["state"], run["attributes"]["cron.origin"]) == (State.succeeded, "cronlog")
    second = run_wrapper(common, url=gw.url, spool=tmp_path / "spool", extra_env=env)
    assert json.loads(second.stdout)["runs_reported"] == 0
    assert "--after-cursor c2" in args_log.read_text().splitlines()[1]
