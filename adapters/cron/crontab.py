# ruff: noqa: UP017, UP031  -- Python 3.8 hosts: no datetime.UTC, no PEP 604 at runtime
"""Crontab files and cron log lines, read on the host.

Standard library only, Python 3.8 syntax: `switchyard-cron sync` imports this
on old hosts. Everything here is a pure function of text, so the gateway's
tests and the host share one parser.

Guarantees:

- every schedule line of a user crontab (`min hour dom mon dow command`) or a
  system crontab (`... user command`) becomes one `CrontabEntry`, including
  lines paused by Switchyard (`# switchyard:paused <job key> <line>`);
- `@daily`-style macros become their five-field equivalent (`@reboot` has
  none); `CRON_TZ=`/`TZ=` lines set the zone of the entries after them;
- a job's key depends only on host, user and command text (or the wrapper's
  `--check NAME`), so the wrapper, the cron log and the crontab agree on it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

PAUSE_MARKER = "# switchyard:paused "
WRAPPER_NAMES = ("switchyard-cron",)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@reboot": "",
}

_ENV_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


class CrontabError(ValueError):
    """A crontab line could not be read; names the file and the line number."""


class CrontabEntry(NamedTuple):
    """One schedule line of a crontab."""

    path: str
    line_no: int
    line: str
    schedule: str | None  # five fields, None for @reboot
    schedule_native: str  # as written: "@daily" or the five fields
    timezone: str
    user: str
    command: str
    paused: bool
    check: str | None  # the wrapper's --check NAME, when the line runs it
    wrapped_command: str | None  # the command the wrapper runs, re-joined


def job_key(host: str, user: str, command: str, check: str | None = None) -> str:
    """The job's key: the wrapper's `--check NAME`, else host/user/<hash of command>."""
    if check:
        return check
    digest = hashlib.sha256(command.encode("utf-8")).hexdigest()[:12]
    return "%s/%s/%s" % (host, user, digest)


def entry_key(entry: CrontabEntry, host: str) -> str:
    command = entry.wrapped_command if entry.wrapped_command is not None else entry.command
    return job_key(host, entry.user, command, entry.check)


def wrapper_invocation(command: str) -> tuple[str | None, str] | None:
    """(check name, re-joined command) if `command` runs the wrapper, else None."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not argv or argv[0].rsplit("/", 1)[-1] not in WRAPPER_NAMES or "--" not in argv:
        return None
    sep = argv.index("--")
    options, wrapped = argv[1:sep], argv[sep + 1 :]
    if not wrapped:
        return None
    check = None
    for i, opt in enumerate(options):
        if opt == "--check" and i + 1 < len(options):
            check = options[i + 1]
        elif opt.startswith("--check="):
            check = opt[len("--check=") :]
    return check, shlex.join(wrapped)


def parse_crontab(
    text: str, *, path: str, system: bool, user: str | None = None, host_timezone: str = "UTC"
) -> list[CrontabEntry]:
    """Every schedule line of one crontab, active or paused by Switchyard.

    `system` crontabs (/etc/crontab, /etc/cron.d/*) carry a user column; a
    user crontab belongs to `user`. Raises `CrontabError` naming the line for
    a schedule line that cannot be read.
    """
    entries = []
    tz = host_timezone
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        paused = False
        if line.startswith(PAUSE_MARKER):
            rest = line[len(PAUSE_MARKER) :].split(None, 1)
            if len(rest) != 2:
                raise CrontabError("%s:%d: a paused line without its original text" % (path, no))
            line, paused = rest[1].strip(), True
        if not line or line.startswith("#"):
            continue
        env = _ENV_LINE.match(line)
        if env:
            if env.group(1) in ("CRON_TZ", "TZ"):
                tz = env.group(2).strip("'\"") or host_timezone
            continue
        entries.append(_parse_entry(line, path, no, raw, system, user, tz, paused))
    return entries


def _parse_entry(
    line: str,
    path: str,
    no: int,
    raw: str,
    system: bool,
    user: str | None,
    tz: str,
    paused: bool,
) -> CrontabEntry:
    where = "%s:%d" % (path, no)
    if line.startswith("@"):
        parts = line.split(None, 2 if system else 1)
        macro = parts[0].lower()
        if macro not in MACROS:
            raise CrontabError("%s: unknown schedule macro %r" % (where, parts[0]))
        schedule = MACROS[macro] or None
        native = parts[0]
        rest = parts[1:]
    else:
        parts = line.split(None, 6 if system else 5)
        fields = parts[:5]
        if len(fields) < 5 or not all(_FIELD.match(f) for f in fields):
            raise CrontabError("%s: expected five schedule fields, got %r" % (where, line))
        schedule = native = " ".join(fields)
        rest = parts[5:]
    if system:
        if len(rest) < 2:
            raise CrontabError("%s: a system crontab line needs a user and a command" % where)
        owner, command = rest[0], rest[1]
    else:
        if len(rest) < 1 or user is None:
            raise CrontabError("%s: a schedule line without a command" % where)
        owner, command = user, rest[0]
    wrapped = wrapper_invocation(command)
    return CrontabEntry(
        path=path,
        line_no=no,
        line=raw.rstrip("\n"),
        schedule=schedule,
        schedule_native=native,
        timezone=tz,
        user=owner,
        command=command.strip(),
        paused=paused,
        check=wrapped[0] if wrapped else None,
        wrapped_command=wrapped[1] if wrapped else None,
    )


def pause_line(line: str, key: str) -> str:
    """The commented-out form of an active crontab line."""
    return "%s%s %s" % (PAUSE_MARKER, key, line.strip())


def restore_line(line: str) -> str:
    """The original text of a line paused by `pause_line`."""
    rest = line.strip()[len(PAUSE_MARKER) :].split(None, 1)
    return rest[1] if len(rest) == 2 else line


def paused_key(line: str) -> str | None:
    """The job key in a paused line's marker, or None for any other line."""
    stripped = line.strip()
    if not stripped.startswith(PAUSE_MARKER):
        return None
    rest = stripped[len(PAUSE_MARKER) :].split(None, 1)
    return rest[0] if rest else None


# --- cron's own log lines (Debian Vixie cron, `-L` bits) ---------------------

_SYSLOG_PREFIX = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?)"
    r" (?P<host>\S+) (?P<ident>[A-Za-z]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$"
)
_MESSAGE = re.compile(r"^\((?P<user>[^)]*)\) (?P<event>[A-Za-z]+) \((?P<detail>.*)\)$")
_PID_PREFIX = re.compile(r"^\[(\d+)\] (.*)$", re.S)
_GRANDCHILD = re.compile(
    r"^grandchild #(?P<pid>\d+) (?:failed with exit status (?P<status>\d+)"
    r"|terminated by signal (?P<signal>\d+)(?P<core>, dumped core)?)$"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


class CronLogRecord(NamedTuple):
    """One CMD, END or exit-status line of cron's log, with the job's pid."""

    event: str  # "CMD", "END" or "EXIT"
    at: datetime
    host: str
    pid: int  # the job's pid (CMD/END logger, or the grandchild # of an error)
    user: str
    command: str | None
    exit_code: int | None
    signal: int | None


def parse_syslog_line(line: str, *, year: int, tz: timezone | None = None) -> CronLogRecord | None:
    """A cron record from one syslog line, or None if the line is not one.

    Classic syslog timestamps carry no year nor zone: the caller says which
    (`tz` defaults to UTC); RFC 3339 timestamps carry both.
    """
    m = _SYSLOG_PREFIX.match(line.rstrip("\n"))
    if not m or m.group("ident") != "CRON":
        return None
    ts = m.group("ts")
    if ts[0].isdigit():
        at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=tz or timezone.utc)
    else:
        mon, day, clock = ts.split()
        h, mi, s = (int(x) for x in clock.split(":"))
        at = datetime(year, _MONTHS[mon], int(day), h, mi, s, tzinfo=tz or timezone.utc)
    return parse_cron_message(m.group("msg"), pid=int(m.group("pid")), at=at, host=m.group("host"))


def parse_journal_line(line: str, *, host: str) -> CronLogRecord | None:
    """A cron record from one `journalctl -o json` line, or None."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("SYSLOG_IDENTIFIER") != "CRON":
        return None
    try:
        micros = int(doc["__REALTIME_TIMESTAMP"])
        pid = int(doc.get("SYSLOG_PID") or doc["_PID"])
    except (KeyError, ValueError, TypeError):
        return None
    at = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
    message = doc.get("MESSAGE")
    if not isinstance(message, str):
        return None
    return parse_cron_message(message, pid=pid, at=at, host=str(doc.get("_HOSTNAME") or host))


def parse_cron_message(message: str, *, pid: int, at: datetime, host: str) -> CronLogRecord | None:
    m = _MESSAGE.match(message.strip())
    if not m:
        return None
    user, event, detail = m.group("user"), m.group("event"), m.group("detail")
    if event in ("CMD", "END"):
        prefixed = _PID_PREFIX.match(detail)
        if prefixed:  # -L 8 puts the job's pid before the command
            pid, detail = int(prefixed.group(1)), prefixed.group(2)
        return CronLogRecord(event, at, host, pid, user, detail, None, None)
    if event == "error" and user == "CRON":
        g = _GRANDCHILD.match(detail)
        if g:
            status = g.group("status")
            sig = g.group("signal")
            return CronLogRecord(
                "EXIT",
                at,
                host,
                int(g.group("pid")),
                user,
                None,
                int(status) if status else 128 + int(sig),
                int(sig) if sig else None,
            )
    return None


def assign_keys(entries: list[CrontabEntry], host: str) -> list[tuple[str, CrontabEntry]]:
    """Each entry with its job key; a repeated command gets `#2`, `#3`…

    A paused line keeps the key written in its marker, so pausing and
    restoring never changes a job's identity.
    """
    seen: dict[str, int] = {}
    keyed = []
    for entry in entries:
        marked = paused_key(entry.line) if entry.paused else None
        base = marked or entry_key(entry, host)
        root = base.split("#", 1)[0] if marked else base
        seen[root] = seen.get(root, 0) + 1
        key = marked or (base if seen[root] == 1 else "%s#%d" % (base, seen[root]))
        keyed.append((key, entry))
    return keyed
