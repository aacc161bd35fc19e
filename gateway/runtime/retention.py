"""Retention: forget finished runs nobody has observed for a long time.

`prune(engine, older_than_s)` deletes whole *trees*: every run of one source
run (`source`, `root_key`: the run, its tasks and their tries) together with
their `run_event`, `run_ref` and `link` rows. A tree is pruned when

1. its latest observation (the newest `observed_at` of any of its runs) is
   older than `now - older_than_s`, and
2. it is finished: its root run is in a terminal state — or, when the root
   was never observed, every run of the tree is terminal.

A tree whose root is still non-terminal (`running`, `queued`, `up_for_retry`,
…) is never pruned, however old: a run that its source stopped reporting is
exactly what a user needs to keep seeing as stuck, until something (the
source, or the expectations check) gives it a terminal state. Children of a
finished root go with it whatever their own state (an old try left at
`up_for_retry` belongs to a run that is over).

Work is done in bounded batches of at most `batch_trees` trees, each in its
own short transaction, so pruning a large backlog never holds one giant
transaction or lock. Each batch re-checks both conditions inside its
transaction before deleting. Candidates are walked by keyset over
`(observed_at, id)` (index `ix_run_observed`), so every old row is visited
once per call. A run observed again after it was pruned simply reappears.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.contract import TERMINAL_STATES
from gateway.store.models import Link, Run, RunEventRow, RunRef

log = logging.getLogger(__name__)

_RUN: sa.Table = Run.__table__  # type: ignore[attr-defined]  # set by SQLModel
_EVENT: sa.Table = RunEventRow.__table__  # type: ignore[attr-defined]
_REF: sa.Table = RunRef.__table__  # type: ignore[attr-defined]
_LINK: sa.Table = Link.__table__  # type: ignore[attr-defined]

_TERMINAL = sorted(s.value for s in TERMINAL_STATES)

Tree = tuple[str, str]  # (source, root_key)


def _finished_old_trees(conn: Connection, trees: Sequence[Tree], cutoff: datetime) -> list[Tree]:
    """The subset of `trees` that satisfy both pruning conditions now."""
    if not trees:
        return []
    is_root = _RUN.c.key == _RUN.c.root_key
    open_state = _RUN.c.state.not_in(_TERMINAL)
    one = sa.literal(1)
    zero = sa.literal(0)
    roots = sa.func.sum(sa.case((is_root, one), else_=zero))
    open_roots = sa.func.sum(sa.case((sa.and_(is_root, open_state), one), else_=zero))
    open_any = sa.func.sum(sa.case((open_state, one), else_=zero))
    seen = sa.func.max(sa.func.coalesce(_RUN.c.observed_at, _RUN.c.updated_at))
    stmt = (
        sa.select(_RUN.c.source, _RUN.c.root_key)
        .where(sa.tuple_(_RUN.c.source, _RUN.c.root_key).in_(list(trees)))
        .group_by(_RUN.c.source, _RUN.c.root_key)
        .having(
            sa.and_(
                seen < cutoff,
                sa.or_(
                    sa.and_(roots > 0, open_roots == 0),
                    sa.and_(roots == 0, open_any == 0),
                ),
            )
        )
    )
    return [(r.source, r.root_key) for r in conn.execute(stmt)]


def _delete_trees(conn: Connection, trees: Sequence[Tree]) -> int:
    ids = list(
        conn.execute(
            sa.select(_RUN.c.id).where(sa.tuple_(_RUN.c.source, _RUN.c.root_key).in_(list(trees)))
        ).scalars()
    )
    if not ids:
        return 0
    conn.execute(sa.delete(_EVENT).where(_EVENT.c.run_id.in_(ids)))
    conn.execute(sa.delete(_REF).where(_REF.c.run_id.in_(ids)))
    conn.execute(
        sa.delete(_LINK).where(sa.or_(_LINK.c.from_run_id.in_(ids), _LINK.c.to_run_id.in_(ids)))
    )
    return int(conn.execute(sa.delete(_RUN).where(_RUN.c.id.in_(ids))).rowcount)


def prune(
    engine: Engine,
    older_than_s: float,
    *,
    now: datetime | None = None,
    batch_trees: int = 200,
    scan_rows: int = 2000,
) -> int:
    """Delete finished run trees last observed before `now - older_than_s`.

    Returns the number of `run` rows deleted. See the module docstring for
    what is pruned and what never is.
    """
    if older_than_s < 0:
        raise ValueError(f"older_than_s must not be negative, got {older_than_s}")
    if batch_trees < 1 or scan_rows < 1:
        raise ValueError("batch_trees and scan_rows must be positive")
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
    deleted = 0
    after: tuple[datetime, str] | None = None
    pending: list[Tree] = []
    exhausted = False
    while True:
        # Collect candidate trees from old rows, by keyset, until a batch is full.
        while not exhausted and len(pending) < batch_trees:
            stmt = sa.select(_RUN.c.observed_at, _RUN.c.id, _RUN.c.source, _RUN.c.root_key).where(
                _RUN.c.observed_at < cutoff
            )
            if after is not None:
                seen_at, seen_id = after
                stmt = stmt.where(
                    sa.or_(
                        _RUN.c.observed_at > seen_at,
                        sa.and_(_RUN.c.observed_at == seen_at, _RUN.c.id > seen_id),
                    )
                )
            stmt = stmt.order_by(_RUN.c.observed_at, _RUN.c.id).limit(scan_rows)
            with engine.connect() as conn:
                rows = conn.execute(stmt).all()
            if len(rows) < scan_rows:
                exhausted = True
            if rows:
                after = (rows[-1].observed_at, rows[-1].id)
            known = set(pending)
            for r in rows:
                tree = (r.source, r.root_key)
                if tree not in known:
                    known.add(tree)
                    pending.append(tree)
        if not pending:
            return deleted
        batch, pending = pending[:batch_trees], pending[batch_trees:]
        with engine.begin() as conn:
            finished = _finished_old_trees(conn, batch, cutoff)
            if finished:
                n = _delete_trees(conn, finished)
                deleted += n
                log.info("retention: pruned %d runs in %d trees", n, len(finished))
