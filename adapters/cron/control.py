# ruff: noqa: UP004, UP006, UP031, UP035, UP045  -- Python 3.8 hosts: no datetime.UTC, no PEP 604 at runtime
"""`switchyard-cron sync` on the host: report crontabs and cron's log, apply pause/restore.

Standard library only, Python 3.8 syntax (it runs on old hosts beside the
wrapper).

One sync does, in order:

1. reads cron's log (a syslog file from the saved offset, or journald from
   the saved cursor) and spools a start/finish report per job run it finds,
   skipping lines of jobs that already run under the wrapper;
2. fetches `GET /api/v1/cron/instructions?host=<host>` (the desired state the
   gateway's `pause`/`resume` wrote) and comments out (`# switchyard:paused
   <job key> <line>`) or restores each named line. Every file change is
   atomic: a backup of the old text goes to the state directory, the new text
   is written to a temporary file and renamed over the old one (for the user
   crontab, installed with `crontab <file>`). Applying the same desired state
   twice changes nothing;
3. posts every crontab line as a job (`POST /api/v1/cron/jobs`), paused ones
   marked paused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

try:
    from adapters.cron import crontab as crontab_mod
except ImportError:  # loose copy beside wrapper.py
    import crontab as crontab_mod  # type: ignore[no-redef]  # same module, loose copy

JOBS_PATH = "/api/v1/cron/jobs"
INSTRUCTIONS_PATH = "/api/v1/cron/instructions"
CLOSED_RUNS_KEPT = 200


class SyncError(Exception):
    """A crontab could not be read or written; names the file or command."""


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    parser.add_argument(
        "--crontab-cmd",
        default="crontab",
        help="crontab(1) to read (-l) and install the user's crontab",
    )
    parser.add_argument(
        "--no-user-crontab", action="store_true", help="do not read the invoking user's crontab"
    )
    parser.add_argument("--system-crontab", default="/etc/crontab")
    parser.add_argument("--cron-d", default="/etc/cron.d")
    parser.add_argument("--timezone", default=None, help="host time zone (default: detected)")
    parser.add_argument(
        "--state-dir",
        default=os.path.join(state, "switchyard-cron"),
        help="log positions and crontab backups",
    )
    parser.add_argument("--syslog", default=None, help="syslog file with cron's CMD/END lines")
    parser.add_argument("--journal", action="store_true", help="read cron's lines from journald")
    parser.add_argument("--journalctl-cmd", default="journalctl")
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="report only; do not apply pause/restore instructions",
    )


def host_timezone() -> str:
    """The host's IANA zone: $TZ, /etc/timezone, or the /etc/localtime link."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if (tz and "/" in tz) or tz == "UTC":
        return tz
    try:
        with open("/etc/timezone", encoding="utf-8") as f:
            name = f.read().strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"


class Tab(object):
    """One crontab: where it lives, its text, and how to write it back."""

    def __init__(self, path: str, text: str, system: bool, user: Optional[str]) -> None:
        self.path = path
        self.text = text
        self.system = system
        self.user = user


def _user() -> str:
    import getpass

    return getpass.getuser()


def read_tabs(opts: Any) -> List[Tab]:
    tabs = []
    if not opts.no_user_crontab:
        try:
            out = subprocess.run([opts.crontab_cmd, "-l"], capture_output=True, timeout=30)
        except OSError as exc:
            raise SyncError("%s -l: %s" % (opts.crontab_cmd, exc)) from exc
        if out.returncode == 0:
            tabs.append(
                Tab("crontab:" + _user(), out.stdout.decode("utf-8", "replace"), False, _user())
            )
        elif b"no crontab" not in out.stderr.lower():
            raise SyncError(
                "%s -l failed: %s"
                % (opts.crontab_cmd, out.stderr.decode("utf-8", "replace").strip())
            )
    paths = [opts.system_crontab] if opts.system_crontab else []
    if opts.cron_d and os.path.isdir(opts.cron_d):
        # cron ignores names with dots (run-parts rules), and so do we
        paths += [
            os.path.join(opts.cron_d, n)
            for n in sorted(os.listdir(opts.cron_d))
            if "." not in n and not n.startswith("~")
        ]
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                tabs.append(Tab(path, f.read(), True, None))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SyncError("%s: %s" % (path, exc)) from exc
    return tabs


def tab_entries(tab: Tab, host: str, tz: str) -> List[Tuple[str, crontab_mod.CrontabEntry]]:
    entries = crontab_mod.parse_crontab(
        tab.text, path=tab.path, system=tab.system, user=tab.user, host_timezone=tz
    )
    return crontab_mod.assign_keys(entries, host)


def apply_instructions(
    text: str, keyed: List[Tuple[str, crontab_mod.CrontabEntry]], pause: set, resume: set
) -> Tuple[str, List[str], List[str]]:
    """The text with lines paused or restored, and the keys paused and restored."""
    by_line = {entry.line_no: (key, entry) for key, entry in keyed}
    lines = text.splitlines(True)
    paused, restored = [], []
    for i, raw in enumerate(lines):
        hit = by_line.get(i + 1)
        if hit is None:
            continue
        key, entry = hit
        ending = "\n" if raw.endswith("\n") else ""
        if not entry.paused and key in pause:
            lines[i] = crontab_mod.pause_line(raw, key) + ending
            paused.append(key)
        elif entry.paused and key in resume:
            lines[i] = crontab_mod.restore_line(raw) + ending
            restored.append(key)
    return "".join(lines), paused, restored


def _backup(tab: Tab, state_dir: str) -> str:
    backups = os.path.join(state_dir, "backups")
    os.makedirs(backups, mode=0o700, exist_ok=True)
    name = tab.path.strip("/").replace("/", "_").replace(":", "_")
    path = os.path.join(backups, "%s.%d" % (name, time.time_ns()))
    with open(path, "w", encoding="utf-8") as f:
        f.write(tab.text)
    return path


def write_tab(tab: Tab, new_text: str, opts: Any) -> str:
    """Replace the crontab atomically after backing it up; return the backup's path."""
    backup = _backup(tab, opts.state_dir)
    if not tab.system:
        fd, tmp = tempfile.mkstemp(prefix="switchyard-crontab-", dir=opts.state_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(new_text)
            out = subprocess.run([opts.crontab_cmd, tmp], capture_output=True, timeout=30)
        finally:
            os.unlink(tmp)
        if out.returncode != 0:
            raise SyncError(
                "%s %s failed: %s"
                % (opts.crontab_cmd, tab.path, out.stderr.decode("utf-8", "replace").strip())
            )
        return backup
    directory, base = os.path.split(tab.path)
    # a dotted name, so cron never reads the half-written file in /etc/cron.d
    tmp = os.path.join(directory, ".%s.switchyard-tmp" % base)
    st = os.stat(tab.path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, tab.path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise SyncError("%s: %s" % (tab.path, exc)) from exc
    return backup


def job_payload(key: str, entry: crontab_mod.CrontabEntry, host: str) -> Dict[str, Any]:
    return {
        "key": key,
        "host": host,
        "user": entry.user,
        "schedule": entry.schedule,
        "schedule_native": entry.schedule_native,
        "timezone": entry.timezone,
        "command": entry.command,
        "wrapped_command": entry.wrapped_command,
        "check": entry.check,
        "paused": entry.paused,
        "path": entry.path,
        "line_no": entry.line_no,
        "line": entry.line,
    }


# --- cron's log -------------------------------------------------------------


def _load_state(state_dir: str, name: str = "cronlog.json") -> Dict[str, Any]:
    try:
        with open(os.path.join(state_dir, name), encoding="utf-8") as f:
            state = json.load(f)
            return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(state_dir: str, state: Dict[str, Any], name: str = "cronlog.json") -> None:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)


def _read_syslog(path: str, state: Dict[str, Any]) -> List[crontab_mod.CronLogRecord]:
    st = os.stat(path)
    offset = state.get("offset", 0)
    if state.get("inode") != st.st_ino or st.st_size < offset:  # rotated or truncated
        offset = 0
    local = datetime.now().astimezone()
    records = []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    complete = data[: data.rfind(b"\n") + 1]  # a half-written last line waits
    for raw in complete.decode("utf-8", "replace").splitlines():
        rec = crontab_mod.parse_syslog_line(raw, year=local.year, tz=local.tzinfo)  # type: ignore[arg-type]  # astimezone() gives a fixed-offset timezone
        if rec is not None and rec.at > local + timedelta(days=1):  # December's lines in January
            rec = rec._replace(at=rec.at.replace(year=local.year - 1))
        if rec is not None:
            records.append(rec)
    state["inode"], state["offset"] = st.st_ino, offset + len(complete)
    return records


def _read_journal(opts: Any, state: Dict[str, Any], host: str) -> List[crontab_mod.CronLogRecord]:
    cmd = [opts.journalctl_cmd, "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=CRON"]
    if state.get("journal_cursor"):
        cmd += ["--after-cursor", state["journal_cursor"]]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=60)
    except OSError as exc:
        raise SyncError("%s: %s" % (opts.journalctl_cmd, exc)) from exc
    if out.returncode != 0:
        raise SyncError(
            "%s failed: %s" % (opts.journalctl_cmd, out.stderr.decode("utf-8", "replace").strip())
        )
    records = []
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        try:
            cursor = json.loads(line).get("__CURSOR")
        except (ValueError, AttributeError):
            continue
        rec = crontab_mod.parse_journal_line(line, host=host)
        if rec is not None:
            records.append(rec)
        if cursor:
            state["journal_cursor"] = cursor
    return records


def log_reports(
    records: List[crontab_mod.CronLogRecord], state: Dict[str, Any]
) -> List[Dict[str, Any]]:
    """Start/finish reports from cron log records; open runs carry over in `state`.

    A CMD line starts a run keyed by host, pid and start time; the END line
    with the same pid finishes it, with the exit status of the `grandchild
    #<pid>` error line when cron logged one (`-L 4`), else 0.
    """
    open_runs = state.setdefault("open", {})
    exits = {r.pid: r for r in records if r.event == "EXIT"}
    reports = []
    for rec in records:
        pid = str(rec.pid)
        if rec.event == "CMD" and rec.command is not None:
            if crontab_mod.wrapper_invocation(rec.command) is not None:
                continue  # the wrapper reports this run itself
            run = {
                "v": 1,
                "origin": "cronlog",
                "run_id": "cronlog/%s/%s/%s" % (rec.host, pid, rec.at.isoformat()),
                "job": crontab_mod.job_key(rec.host, rec.user, rec.command),
                "host": rec.host,
                "user": rec.user,
                "command": rec.command,
                "pid": rec.pid,
                "started_at": rec.at.isoformat(),
            }
            open_runs[pid] = run
            reports.append(dict(run, phase="start", sent_at=rec.at.isoformat()))
        elif rec.event == "END" and pid in open_runs:
            run = open_runs.pop(pid)
            ex = exits.get(rec.pid)
            reports.append(
                dict(
                    run,
                    phase="finish",
                    ended_at=rec.at.isoformat(),
                    sent_at=rec.at.isoformat(),
                    exit_code=ex.exit_code if ex else 0,
                    signal=ex.signal if ex else None,
                    duration_s=(rec.at - datetime.fromisoformat(run["started_at"])).total_seconds(),
                )
            )
    if len(open_runs) > CLOSED_RUNS_KEPT:  # pids whose END was never logged (no -L 2)
        for pid in sorted(open_runs, key=lambda p: open_runs[p]["started_at"])[:-CLOSED_RUNS_KEPT]:
            del open_runs[pid]
    return reports


def sync(opts: Any, gateway: Any, spool: Any) -> Dict[str, Any]:
    """One sync pass (see the module docstring); returns what it did."""
    host = opts.host
    tz = opts.timezone or host_timezone()
    summary: Dict[str, Any] = {"host": host, "timezone": tz, "runs_reported": 0}
    if opts.syslog or opts.journal:
        state = _load_state(opts.state_dir)
        records = (
            _read_journal(opts, state, host) if opts.journal else _read_syslog(opts.syslog, state)
        )
        reports = log_reports(records, state)
        for report in reports:
            spool.put(report)
        _save_state(opts.state_dir, state)  # the reports are spooled, so the position may move
        spool.flush(gateway, 10.0)
        summary["runs_reported"] = len(reports)

    tabs = read_tabs(opts)
    paused_now, restored_now = [], []
    if not opts.no_control:
        wanted = gateway.request("GET", INSTRUCTIONS_PATH + "?host=" + _quote(host)) or {}
        pause, resume = set(wanted.get("pause", [])), set(wanted.get("resume", []))
        for tab in tabs:
            keyed = tab_entries(tab, host, tz)
            new_text, paused, restored = apply_instructions(tab.text, keyed, pause, resume)
            if paused or restored:
                write_tab(tab, new_text, opts)
                tab.text = new_text
                paused_now += paused
                restored_now += restored
    jobs = [
        job_payload(key, entry, host) for tab in tabs for key, entry in tab_entries(tab, host, tz)
    ]
    # A line deleted since the last sync is reported once more as removed (and
    # paused), so the gateway stops expecting its runs.
    before = _load_state(opts.state_dir, "jobs.json").get("jobs", {})
    now_keys = {j["key"] for j in jobs}
    removed = [
        dict(before[k], paused=True, removed=True) for k in sorted(before) if k not in now_keys
    ]
    gateway.request("POST", JOBS_PATH, {"host": host, "jobs": jobs + removed})
    _save_state(opts.state_dir, {"jobs": {j["key"]: j for j in jobs}}, "jobs.json")
    summary.update(
        jobs=len(jobs),
        removed=[j["key"] for j in removed],
        paused=paused_now,
        restored=restored_now,
    )
    return summary


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
