"""Leases: which replica holds a source's poller (or the housekeeping task).

Several gateway replicas share one database; each named piece of work is done
by the replica holding its `lease` row, until `expires_at`. Guarantees:

1. **Atomic.** Acquire, renew and take-over are one statement each::

       INSERT INTO lease (name, holder, acquired_at, expires_at)
       VALUES (:name, :me, :now, :now + ttl)
       ON CONFLICT (name) DO UPDATE SET holder = :me, expires_at = :now + ttl, ...
       WHERE lease.holder = :me OR lease.expires_at < :now
       RETURNING holder

   A row comes back only if this replica holds the lease afterwards. Two
   replicas racing for an expired lease serialise on the row: the second one's
   `WHERE` sees the first one's fresh expiry and returns nothing. There is no
   read-then-write anywhere; the same statement works on SQLite (≥ 3.35) and
   PostgreSQL.
2. **Expiry moves work.** A dead replica stops renewing; once `expires_at`
   passes, the next acquire from another replica takes the lease over.
3. **Release is conditional.** `release` deletes the row only while this
   replica is its holder, so a late release cannot drop someone else's lease.

Time is each replica's wall clock (UTC): replicas must keep their clocks in
step (NTP) to well within the lease TTL. `LeaseKeeper` also keeps a
*monotonic* deadline per lease, so a replica whose renewals fail stops
working on a lease before the row could expire by its own clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from gateway.store.models import Lease

log = logging.getLogger(__name__)

_LEASE: sa.Table = Lease.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation

# A replica treats its lease as lost this fraction of the TTL before the row
# expires, so its last write lands while it still certainly holds the lease.
SAFETY_FRACTION = 0.2


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _upsert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(_LEASE)
    if dialect == "sqlite":
        return sqlite.insert(_LEASE)
    raise NotImplementedError(f"leases need PostgreSQL or SQLite, not {dialect}")


def acquire(
    bind: Engine | Connection,
    name: str,
    holder: str,
    ttl_s: float,
    *,
    now: datetime | None = None,
) -> datetime | None:
    """Acquire, renew or take over lease `name` for `holder` in one statement.

    Returns the new expiry if `holder` holds the lease afterwards, else None
    (another holder's lease is still live).
    """
    now = _now(now)
    expires = now + timedelta(seconds=ttl_s)
    stmt = _upsert(bind.dialect.name).values(
        name=name, holder=holder, acquired_at=now, expires_at=expires
    )
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[_LEASE.c.name],
        set_={
            # Keep the original acquisition time across renewals.
            "acquired_at": sa.case(
                (_LEASE.c.holder == excluded.holder, _LEASE.c.acquired_at),
                else_=excluded.acquired_at,
            ),
            "holder": excluded.holder,
            "expires_at": excluded.expires_at,
        },
        where=sa.or_(
            _LEASE.c.holder == excluded.holder, _LEASE.c.expires_at < excluded.acquired_at
        ),
    ).returning(_LEASE.c.holder, _LEASE.c.expires_at)
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            row = conn.execute(stmt).first()
    else:
        row = bind.execute(stmt).first()
    if row is None or row.holder != holder:
        return None
    expires_at: datetime = row.expires_at
    return expires_at


def release(bind: Engine | Connection, name: str, holder: str) -> bool:
    """Drop lease `name` if `holder` still holds it; True if it did."""
    stmt = sa.delete(_LEASE).where(_LEASE.c.name == name, _LEASE.c.holder == holder)
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return conn.execute(stmt).rowcount > 0
    return bind.execute(stmt).rowcount > 0


def holds_lease(conn: Connection, name: str, holder: str, *, now: datetime | None = None) -> bool:
    """Inside the caller's transaction: does `holder` hold `name` at `now`?

    On PostgreSQL the lease row is locked `FOR UPDATE` until the caller
    commits, so a concurrent take-over waits for that commit; SQLite's
    `BEGIN IMMEDIATE` already serialises the two writers.
    """
    stmt = sa.select(_LEASE.c.name).where(
        _LEASE.c.name == name, _LEASE.c.holder == holder, _LEASE.c.expires_at > _now(now)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first() is not None


def live_holders(engine: Engine, *, now: datetime | None = None) -> dict[str, str]:
    """Lease name → holder, for leases that have not expired at `now`."""
    now = _now(now)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(_LEASE.c.name, _LEASE.c.holder).where(_LEASE.c.expires_at >= now)
        ).all()
    return {r.name: r.holder for r in rows}


class LeaseKeeper:
    """Acquires and renews a set of leases for one replica, from one thread.

    Every `ttl/3` it runs `acquire` for each wanted lease: that renews the
    ones it holds and takes over any that expired. After each successful
    statement the lease is trusted until `sent + ttl x (1 - SAFETY_FRACTION)`
    on the monotonic clock, measured from *before* the statement was sent, so
    a replica that cannot reach the database (or loses a race) stops trusting
    its lease before the row's own expiry. `holds(name)` is what workers check
    before every unit of work.
    """

    def __init__(
        self,
        engine: Engine,
        holder: str,
        ttl_s: float,
        names: Iterable[str],
        *,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease_ttl must be positive, got {ttl_s}")
        self.engine = engine
        self.holder = holder
        self.ttl_s = ttl_s
        self.names = list(dict.fromkeys(names))
        self._deadline: dict[str, float] = {}
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_change = on_change

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3

    def holds(self, name: str) -> bool:
        with self._lock:
            return self._deadline.get(name, 0.0) > time.monotonic()

    def distrust(self, name: str) -> None:
        """Stop trusting `name` now (a fenced write found it lost); the next
        round re-acquires it if it is in fact free."""
        with self._lock:
            self._deadline.pop(name, None)

    def held(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [n for n, d in self._deadline.items() if d > now]

    def renew_all(self) -> None:
        """One round: acquire or renew every wanted lease."""
        for name in self.names:
            if self._stop.is_set():
                return
            sent = time.monotonic()
            errored = False
            expires: datetime | None = None
            try:
                expires = acquire(self.engine, name, self.holder, self.ttl_s)
            except Exception as exc:  # a database hiccup must not kill the keeper
                log.warning("lease %s: renewal failed: %s", name, exc.__class__.__name__)
                errored = True
            with self._lock:
                now = time.monotonic()
                # "before" is what was last reported, so a lease whose trust ran
                # out between rounds is reported lost on this round.
                before = name in self._reported
                if expires is not None:
                    self._deadline[name] = sent + self.ttl_s * (1 - SAFETY_FRACTION)
                elif not errored:
                    # The statement ran and another replica holds the lease.
                    self._deadline.pop(name, None)
                # After an error the old deadline stands: the lease is trusted
                # until then, and not a moment longer.
                after = self._deadline.get(name, 0.0) > now
                if after:
                    self._reported.add(name)
                else:
                    self._reported.discard(name)
            if after and not before:
                log.info("lease %s: acquired by %s", name, self.holder)
            elif before and not after:
                log.warning("lease %s: lost by %s", name, self.holder)
            if before != after and self._on_change is not None:
                self._on_change(name, after)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.renew_all()
            self._stop.wait(self.renew_every_s)

    def start(self) -> None:
        self.renew_all()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-keeper-{self.holder}", daemon=True
        )
        self._thread.start()

    def stop(self, *, release_leases: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.ttl_s))
        with self._lock:
            names = list(self._deadline)
            self._deadline.clear()
            self._reported.clear()
        if release_leases:
            for name in names:
                try:
                    release(self.engine, name, self.holder)
                except Exception as exc:  # the lease then simply expires
                    log.warning("lease %s: release failed: %s", name, exc.__class__.__name__)
