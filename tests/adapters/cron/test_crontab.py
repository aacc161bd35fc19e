"""Crontab and cron-log parsing (pure text), as `switchyard-cron sync` does it on hosts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.cron import crontab
from adapters.cron.normalize import CronPayloadError, host_jobs

USER_TAB = """\
# m h dom mon dow command
MAILTO=ops@example.com
@daily /usr/bin/rotate-logs
CRON_TZ=America/New_York
30 1 * * 1-5 /opt/report.sh --weekday   # trailing text is part of the command
@reboot /usr/bin/warm-cache
"""

SYSTEM_TAB = """\
SHELL=/bin/sh
17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly
*/5 * * * * www-data switchyard-cron --check php-queue -- php /srv/app/queue.php --once
"""


def test_user_crontab_entries_with_macros_and_cron_tz() -> None:
    entries = crontab.parse_crontab(
        USER_TAB, path="crontab:alice", system=False, user="alice", host_timezone="Europe/London"
    )
    assert [(e.schedule, e.schedule_native, e.timezone) for e in entries] == [
        ("0 0 * * *", "@daily", "Europe/London"),
        ("30 1 * * 1-5", "30 1 * * 1-5", "America/New_York"),
        (None, "@reboot", "America/New_York"),
    ]
    assert entries[1].command == "/opt/report.sh --weekday   # trailing text is part of the command"
    assert {e.user for e in entries} == {"alice"}
    assert entries[0].line_no == 3


def test_system_crontab_has_a_user_column_and_wrapper_lines_carry_their_check() -> None:
    hourly, queue = crontab.parse_crontab(SYSTEM_TAB, path="/etc/crontab", system=True)
    assert (hourly.user, hourly.command) == ("root", "cd / && run-parts --report /etc/cron.hourly")
    assert (queue.user, queue.check) == ("www-data", "php-queue")
    assert queue.wrapped_command == "php /srv/app/queue.php --once"
    assert crontab.entry_key(queue, "web1") == "php-queue"
    assert crontab.entry_key(hourly, "web1").startswith("web1/root/")


def test_unreadable_lines_name_the_file_and_line() -> None:
    with pytest.raises(crontab.CrontabError, match=r"/etc/cron.d/x:2: expected five"):
        crontab.parse_crontab("# ok\n1 2 3 cmd\n", path="/etc/cron.d/x", system=True)
    with pytest.raises(crontab.CrontabError, match="unknown schedule macro '@fortnightly'"):
        crontab.parse_crontab("@fortnightly x\n", path="t", system=False, user="a")


def test_pause_and_restore_round_trip_keeps_key_and_text() -> None:
    line = "0 3 * * * /usr/local/bin/backup.sh --full"
    (entry,) = crontab.parse_crontab(line, path="t", system=False, user="bob")
    key = crontab.entry_key(entry, "db1")
    paused = crontab.pause_line(line, key)
    assert paused == f"# switchyard:paused {key} {line}"
    (again,) = crontab.parse_crontab(paused, path="t", system=False, user="bob")
    assert again.paused and crontab.assign_keys([again], "db1")[0][0] == key
    assert crontab.restore_line(paused) == line


def test_repeated_commands_get_distinct_keys() -> None:
    tab = "0 3 * * 1-5 /bin/job\n0 5 * * 0,6 /bin/job\n"
    keys = [
        k
        for k, _ in crontab.assign_keys(
            crontab.parse_crontab(tab, path="t", system=False, user="u"), "h"
        )
    ]
    assert keys[1] == keys[0] + "#2"


def test_syslog_lines_cmd_end_and_exit_status() -> None:
    lines = [
        "Nov 25 03:00:01 db1 CRON[4242]: (root) CMD (/usr/local/bin/backup.sh)",
        "Nov 25 03:00:09 db1 CRON[4240]: (CRON) error (grandchild #4242 failed with exit status 3)",
        "Nov 25 03:00:09 db1 CRON[4242]: (root) END (/usr/local/bin/backup.sh)",
        "2026-11-25T03:05:01.123456+00:00 db1 CRON[5000]: (alice) CMD ([5001] /bin/true)",
        "Nov 25 03:07:00 db1 CRON[6000]: (CRON) error (grandchild #6001 terminated by signal 9)",
        "Nov 25 03:00:01 db1 CRON[4241]: pam_unix(cron:session): session opened for user root",
        "Nov 25 03:00:01 db1 sshd[1]: (root) CMD (nope)",
    ]
    recs = [crontab.parse_syslog_line(line, year=2026) for line in lines]
    assert recs[0] is not None and (recs[0].event, recs[0].pid, recs[0].user) == (
        "CMD",
        4242,
        "root",
    )
    assert recs[0].at == datetime(2026, 11, 25, 3, 0, 1, tzinfo=UTC)
    assert recs[1] is not None and (recs[1].event, recs[1].pid, recs[1].exit_code) == (
        "EXIT",
        4242,
        3,
    )
    assert recs[2] is not None and recs[2].event == "END"
    assert recs[3] is not None and (recs[3].pid, recs[3].command) == (5001, "/bin/true")
    assert recs[4] is not None and (recs[4].exit_code, recs[4].signal) == (137, 9)
    assert recs[5] is None and recs[6] is None


def test_journal_json_lines() -> None:
    doc = {
        "SYSLOG_IDENTIFIER": "CRON",
        "_PID": "777",
        "MESSAGE": "(root) CMD (/bin/sync-things)",
        "__REALTIME_TIMESTAMP": "1795000000000000",
        "_HOSTNAME": "app2",
    }
    rec = crontab.parse_journal_line(json.dumps(doc), host="fallback")
    assert rec is not None
    assert (rec.event, rec.pid, rec.host, rec.command) == ("CMD", 777, "app2", "/bin/sync-things")
    assert rec.at == datetime.fromtimestamp(1795000000, UTC)
    assert crontab.parse_journal_line('{"SYSLOG_IDENTIFIER": "sshd"}', host="h") is None


def test_host_jobs_become_jobspecs_and_bad_ones_name_the_field() -> None:
    entries = crontab.parse_crontab(USER_TAB, path="crontab:alice", system=False, user="alice")
    payload = {
        "host": "h",
        "jobs": [
            {"key": k, "host": "h", **e._asdict()} for k, e in crontab.assign_keys(entries, "h")
        ],
    }
    specs = host_jobs("cron-hosts", payload)
    assert [s.schedule for s in specs] == ["0 0 * * *", "30 1 * * 1-5", None]
    assert specs[1].timezone == "America/New_York"
    assert specs[2].schedule_native == "@reboot"
    assert specs[0].owner == "alice" and specs[0].labels == {"host": "h", "user": "alice"}
    with pytest.raises(CronPayloadError, match=r"jobs\[0\]: key"):
        host_jobs("cron-hosts", {"jobs": [{"host": "h"}]})
