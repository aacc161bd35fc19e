"""Source health: what the `source` table records and what readers are shown.

The replica holding a source's lease writes the source's row after every poll
(`record_success`, `record_failure`). Readers call `source_statuses`, which
recomputes the status from the row at read time, so a source that no replica
polls any more (every replica down, a lease nobody can take) turns `stale` on
the status page by itself instead of showing its last word forever.

Statuses, for a source with poll interval `i` at time `now`:

- `healthy`: the last poll succeeded and the last success is at most `2i` old.
- `degraded`: the last poll(s) failed, but a poll succeeded within `2i`.
- `stale`: no successful poll for more than `2i` (including a source that has
  been polled and has never succeeded).
- `unknown`: never polled yet.
- `disabled`: `enabled: false` in the configuration.

`lag_s` is `now - last_success_at`. `last_error` is always redacted with
`Config.redact` before it is written and again when it is read, so a secret
that reached an exception message never reaches the database or the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from gateway.config import Config
from gateway.store.models import Lease, SourceRow

_SOURCE: sa.Table = SourceRow.__table__  # type: ignore[attr-defined]  # set by SQLModel
_LEASE: sa.Table = Lease.__table__  # type: ignore[attr-defined]  # set by SQLModel

Status = Literal["healthy", "degraded", "stale", "unknown", "disabled"]

STALE_AFTER_INTERVALS = 2.0
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class SourceStatus:
    """One configured source's health as of `now`."""

    name: str
    kind: str
    enabled: bool
    interval_s: float
    status: Status
    lag_s: float | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    holder: str | None
    lease_expires_at: datetime | None


def classify(
    *,
    interval_s: float,
    last_poll_at: datetime | None,
    last_success_at: datetime | None,
    consecutive_failures: int,
    now: datetime,
) -> Status:
    """The status rule of the module docstring, as one pure function."""
    if last_poll_at is None and last_success_at is None:
        return "unknown"
    if last_success_at is None:
        return "stale"
    if (now - last_success_at).total_seconds() > STALE_AFTER_INTERVALS * interval_s:
        return "stale"
    return "degraded" if consecutive_failures > 0 else "healthy"


def _upsert(bind: Engine | Connection) -> Any:
    return (postgresql if bind.dialect.name == "postgresql" else sqlite).insert(_SOURCE)


def register_sources(engine: Engine, config: Config, *, now: datetime | None = None) -> None:
    """Make sure every configured source has a row; keep its health fields."""
    now = now or datetime.now(UTC)
    if not config.sources:
        return
    with engine.begin() as conn:
        for entry in config.sources:
            stmt = _upsert(conn).values(
                name=entry.name,
                kind=entry.kind,
                interval_s=entry.interval,
                status="unknown" if entry.enabled else "disabled",
                consecutive_failures=0,
                updated_at=now,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[_SOURCE.c.name],
                    set_={"kind": stmt.excluded.kind, "interval_s": stmt.excluded.interval_s},
                )
            )


def load_failures(engine: Engine, source: str) -> tuple[int, datetime | None]:
    """(consecutive failures, last success) as last recorded, for a new holder."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(_SOURCE.c.consecutive_failures, _SOURCE.c.last_success_at).where(
                _SOURCE.c.name == source
            )
        ).first()
    if row is None:
        return 0, None
    return int(row.consecutive_failures or 0), row.last_success_at


@cache
def _update_row(update: tuple[str, ...]) -> Any:
    return (
        _SOURCE.update()
        .where(_SOURCE.c.name == sa.bindparam("b_name"))
        .values({k: sa.bindparam(f"b_{k}") for k in update})
    )


@cache
def _upsert_row(dialect: str, update: tuple[str, ...]) -> Any:
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(_SOURCE)
    return stmt.on_conflict_do_update(
        index_elements=[_SOURCE.c.name], set_={k: stmt.excluded[k] for k in update}
    )


def _write(bind: Engine | Connection, values: dict[str, Any], update: list[str]) -> None:
    """Update the source's row, inserting it if it has none yet.

    `record_success` runs in every poll's transaction, under the write lock.
    SQLAlchemy cannot cache the compiled form of an upsert, so compiling one
    each time cost about a millisecond per cycle; the row almost always
    exists (`register_sources`), and a plain UPDATE, built once, is cached.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            _write(conn, values, update)
        return
    changed = bind.execute(
        _update_row(tuple(update)), {f"b_{k}": v for k, v in values.items()}
    ).rowcount
    if changed == 0:
        bind.execute(_upsert_row(bind.dialect.name, tuple(update)), values)


def record_success(
    bind: Engine | Connection,
    *,
    source: str,
    kind: str,
    interval_s: float,
    holder: str,
    now: datetime,
) -> None:
    """A poll succeeded: healthy, no lag, failures reset. Keeps `last_error`.

    The runtime calls this inside the ingest transaction, so the cursor and
    the status that reports it commit together.
    """
    _write(
        bind,
        {
            "name": source,
            "kind": kind,
            "interval_s": interval_s,
            "status": "healthy",
            "last_poll_at": now,
            "last_success_at": now,
            "consecutive_failures": 0,
            "lag_s": 0.0,
            "holder": holder,
            "updated_at": now,
        },
        [
            "kind",
            "interval_s",
            "status",
            "last_poll_at",
            "last_success_at",
            "consecutive_failures",
            "lag_s",
            "holder",
            "updated_at",
        ],
    )


def record_failure(
    engine: Engine,
    config: Config,
    *,
    source: str,
    kind: str,
    interval_s: float,
    holder: str,
    error: str,
    consecutive_failures: int,
    last_success_at: datetime | None,
    now: datetime,
) -> Status:
    """A poll failed: record the redacted error and the status it leaves."""
    status = classify(
        interval_s=interval_s,
        last_poll_at=now,
        last_success_at=last_success_at,
        consecutive_failures=consecutive_failures,
        now=now,
    )
    lag = (now - last_success_at).total_seconds() if last_success_at else None
    _write(
        engine,
        {
            "name": source,
            "kind": kind,
            "interval_s": interval_s,
            "status": status,
            "last_poll_at": now,
            "last_error": config.redact(error)[:MAX_ERROR_CHARS],
            "last_error_at": now,
            "consecutive_failures": consecutive_failures,
            "lag_s": lag,
            "holder": holder,
            "updated_at": now,
        },
        [
            "kind",
            "interval_s",
            "status",
            "last_poll_at",
            "last_error",
            "last_error_at",
            "consecutive_failures",
            "lag_s",
            "holder",
            "updated_at",
        ],
    )
    return status


def source_statuses(
    engine: Engine, config: Config, now: datetime | None = None
) -> list[SourceStatus]:
    """Every configured source's status, recomputed at `now` (read-side).

    `holder` is the replica holding the source's lease at `now`, or None when
    no replica does (the row's own `holder` column says who wrote it last).
    """
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(_SOURCE)).all()}
        leases = {
            r.name: r
            for r in conn.execute(
                sa.select(_LEASE.c.name, _LEASE.c.holder, _LEASE.c.expires_at).where(
                    _LEASE.c.name.in_([s.name for s in config.sources])
                )
            ).all()
        }
    out: list[SourceStatus] = []
    for entry in config.sources:
        row = rows.get(entry.name)
        lease = leases.get(entry.name)
        live = lease is not None and lease.expires_at >= now
        last_poll = row.last_poll_at if row is not None else None
        last_success = row.last_success_at if row is not None else None
        failures = int(row.consecutive_failures or 0) if row is not None else 0
        status: Status = (
            classify(
                interval_s=entry.interval,
                last_poll_at=last_poll,
                last_success_at=last_success,
                consecutive_failures=failures,
                now=now,
            )
            if entry.enabled
            else "disabled"
        )
        error = row.last_error if row is not None else None
        out.append(
            SourceStatus(
                name=entry.name,
                kind=entry.kind,
                enabled=entry.enabled,
                interval_s=entry.interval,
                status=status,
                lag_s=max(0.0, (now - last_success).total_seconds()) if last_success else None,
                last_poll_at=last_poll,
                last_success_at=last_success,
                last_error=config.redact(error) if error else None,
                last_error_at=row.last_error_at if row is not None else None,
                consecutive_failures=failures,
                holder=lease.holder if live and lease is not None else None,
                lease_expires_at=lease.expires_at if live and lease is not None else None,
            )
        )
    return out
