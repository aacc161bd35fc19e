"""The recorded Airflow 3 API payloads the replay server serves, moved in time.

`data/airflow-3.3.2.json` holds response bodies recorded from a real Airflow
3.3.2 (see `data/README.md` for where each came from). `Recording.load(anchor)`
reads them and shifts every ISO-8601 timestamp in them — in fields, in run ids
such as `manual__2026-11-26T00:27:06.077020+00:00`, and in log records — by
one offset, so the latest recorded instant lands on `anchor`. The shift keeps
each timestamp's own spelling (fraction digits, `Z` or `+00:00`), so the
payloads stay byte-for-byte what Airflow writes apart from the instants.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("data") / "airflow-3.3.2.json"

_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,6}))?(?P<zone>Z|[+-]\d{2}:?\d{2})?"
)


def _parse(m: re.Match[str]) -> datetime:
    frac = (m.group("frac") or "").ljust(6, "0")
    zone = m.group("zone")
    base = datetime.fromisoformat(f"{m.group('date')}T{m.group('time')}.{frac}")
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        base = base - sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return base.replace(tzinfo=UTC)


def _render(instant: datetime, m: re.Match[str]) -> str:
    zone = m.group("zone")
    out = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if m.group("frac") is not None:
        out += "." + f"{instant.microsecond:06d}"[: len(m.group("frac"))]
    if zone:
        out += "Z" if zone == "Z" else ("+00:00" if ":" in zone else "+0000")
    return out


def shift_text(text: str, offset: timedelta) -> str:
    """`text` with every ISO-8601 timestamp in it moved by `offset` (rendered in UTC)."""
    if not offset:
        return text
    return _ISO.sub(lambda m: _render(_parse(m) + offset, m), text)


def latest_instant(text: str) -> datetime:
    return max(_parse(m) for m in _ISO.finditer(text))


def parse_instant(value: str) -> datetime:
    """An `updated_at_gte`-style query value (`…+0000`, `…+00:00`, `…Z`) as UTC."""
    m = _ISO.fullmatch(value.strip().replace(" ", "+"))
    if m is None:
        raise ValueError(f"not an ISO-8601 date-time: {value!r}")
    return _parse(m)


def row_updated_at(row: dict[str, Any]) -> datetime:
    """The last instant a recorded row changed: its latest own timestamp."""
    stamps = [
        row.get(k)
        for k in ("end_date", "start_date", "queued_at", "queued_when", "last_scheduling_decision")
    ]
    found = [parse_instant(s) for s in stamps if isinstance(s, str)]
    return max(found) if found else datetime.min.replace(tzinfo=UTC)


@dataclass
class Recording:
    """The payloads, keyed the way the replay server looks them up."""

    dag_runs: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]
    tries: dict[str, list[dict[str, Any]]]  # "<dag>/<run>/<task>/<map_index>"
    logs: dict[str, str]  # "<dag>/<run>/<task>/<map_index>/<try>" -> NDJSON text
    dags: list[dict[str, Any]]
    details: dict[str, dict[str, Any]]
    tasks: dict[str, list[dict[str, Any]]]
    sources: dict[str, dict[str, Any]]
    offset: timedelta = field(default_factory=timedelta)

    @classmethod
    def load(cls, anchor: datetime | None = None, path: Path = DATA_FILE) -> Recording:
        """Read the recording; with `anchor`, move it so its latest instant is `anchor`."""
        text = path.read_text()
        offset = timedelta()
        if anchor is not None:
            offset = anchor.astimezone(UTC) - latest_instant(text)
        doc = json.loads(shift_text(text, offset))
        return cls(
            dag_runs=doc["dag_runs"],
            task_instances=doc["task_instances"],
            tries=doc["tries"],
            logs=doc["logs"],
            dags=doc["dags"],
            details=doc["details"],
            tasks=doc["tasks"],
            sources=doc["sources"],
            offset=offset,
        )

    def run_id(self, dag_id: str) -> str:
        """The (shifted) run id of `dag_id`'s recorded run."""
        for run in self.dag_runs:
            if run["dag_id"] == dag_id:
                return str(run["dag_run_id"])
        raise KeyError(f"no recorded run of DAG {dag_id!r}")


__all__ = ["DATA_FILE", "Recording", "parse_instant", "row_updated_at", "shift_text"]
