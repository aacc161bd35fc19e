"""The merge rules, proven as properties on SQLite and PostgreSQL.

Hypothesis draws small trees of spans (a run, two tasks, attempts), events
with clashing timestamps, states, tries, attributes, refs and traceparents,
then ingests them in two different orders and batchings. The stored rows must
be identical, and must obey every rule of `gateway.merge`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from gateway.contract import ErrorInfo, Ref, RunEvent, RunKind, State, span_id_for
from gateway.ingest import apply_batch
from gateway.merge import canonical_payload, event_digest

T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
SOURCES = ("airflow-prod", "k8s-prod")
# key -> (kind, parent key); "r" is the root of both sources' trees.
SPANS = {
    "r": (RunKind.run, None),
    "r/a": (RunKind.task, "r"),
    "r/b": (RunKind.task, "r"),
}
TRACES = ("4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c")
PROPS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


pytestmark = pytest.mark.slow  # ~30 s: hundreds of small commits on PostgreSQL


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


@st.composite
def events(draw: st.DrawFn) -> RunEvent:
    key = draw(st.sampled_from(sorted(SPANS)))
    kind, parent = SPANS[key]
    state = draw(st.sampled_from(list(State)))
    refs = draw(
        st.lists(
            st.sampled_from(
                [Ref(namespace="airflow.ti", value=v) for v in ("x/1", "x/2")]
                + [
                    Ref(namespace="w3c.traceparent", value=f"00-{t}-00f067aa0ba902b7-01")
                    for t in TRACES
                ]
            ),
            max_size=2,
            unique=True,
        )
    )
    return RunEvent(
        source=draw(st.sampled_from(SOURCES)),
        kind=kind,
        key=key,
        parent_key=parent,
        state=state,
        attempt=draw(st.integers(1, 3)),
        observed_at=at(draw(st.integers(0, 4))),
        started_at=draw(st.none() | st.integers(0, 4).map(at)),
        ended_at=draw(st.none() | st.integers(0, 4).map(at)),
        error=draw(
            st.none() | st.sampled_from([ErrorInfo(kind="OOMKilled"), ErrorInfo(kind="timeout")])
        ),
        attributes=draw(
            st.dictionaries(
                st.sampled_from(["k8s.pod.name", "x.custom"]), st.integers(0, 3), max_size=2
            )
        ),
        name=draw(st.none() | st.sampled_from(["extract", "load"])),
        refs=refs,
        pushed=draw(st.booleans()),
    )


def truncate_all(engine: Engine) -> None:
    """Empty the tables ingest writes (DELETE: much faster than TRUNCATE on tiny tables)."""
    with engine.begin() as conn:
        for name in ("run", "run_event", "run_ref", "link", "source_cursor", "job"):
            conn.execute(SQLModel.metadata.tables[name].delete())


def ingest(engine: Engine, batch: list[RunEvent], cuts: list[int]) -> None:
    """Apply `batch` per source, in order, split at `cuts` into several polls."""
    bounds = sorted({0, len(batch), *(c % (len(batch) + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        by_source: dict[str, list[RunEvent]] = defaultdict(list)
        for event in batch[lo:hi]:
            by_source[event.source].append(event)
        for source, part in by_source.items():
            apply_batch(engine, source, part, cursor=f"{source}@{hi}")


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row that ingest writes, minus bookkeeping timestamps and serials.

    Suggested links are left out on purpose: they are written when an incident
    opens, comparing the opener with other failures *as they stand then*, so
    they record what was seen on the way (as incidents do), not a function of
    the final rows. Exact and declared links must not depend on the order.
    """
    skip = {"created_at", "updated_at", "received_at", "seq", "id_link"}
    result: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in ("run", "run_event", "run_ref", "link"):
            table = SQLModel.metadata.tables[name]
            cols = [
                c
                for c in table.columns
                if c.name not in skip and not (name == "link" and c.name == "id")
            ]
            query = sa.select(*cols)
            if name == "link":
                query = query.where(table.c.strength != "suggested")
            rows = conn.execute(query).all()
            result[name] = sorted(tuple(repr(v) for v in r) for r in rows)
    return result


def runs(engine: Engine) -> dict[str, dict[str, Any]]:
    table = SQLModel.metadata.tables["run"]
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(table)).mappings()}


@PROPS
@given(
    batch=st.lists(events(), min_size=1, max_size=14),
    order=st.randoms(use_true_random=False),
    cuts_a=st.lists(st.integers(0, 20), max_size=3),
    cuts_b=st.lists(st.integers(0, 20), max_size=3),
)
def test_any_permutation_and_batching_gives_the_same_rows(
    engine: Engine, batch: list[RunEvent], order: Any, cuts_a: list[int], cuts_b: list[int]
) -> None:
    truncate_all(engine)
    ingest(engine, batch, cuts_a)
    first = snapshot(engine)

    truncate_all(engine)
    shuffled = list(batch)
    order.shuffle(shuffled)
    ingest(engine, shuffled, cuts_b)
    assert snapshot(engine) == first

    # The same events again, in one go: nothing changes.
    ingest(engine, batch, [])
    assert snapshot(engine) == first


@PROPS
@given(batch=st.lists(events(), min_size=1, max_size=14), order=st.randoms(use_true_random=False))
def test_rows_obey_the_merge_rules(engine: Engine, batch: list[RunEvent], order: Any) -> None:
    truncate_all(engine)
    shuffled = list(batch)
    order.shuffle(shuffled)
    ingest(engine, shuffled, [3, 7])
    stored = runs(engine)

    by_run: dict[str, list[RunEvent]] = defaultdict(list)
    for event in batch:
        by_run[span_id_for(event.source, event.key)].append(event)
    assert set(stored) == set(by_run)
    for run_id, evs in by_run.items():
        row = stored[run_id]
        top = max(e.attempt for e in evs)
        latest_try = [e for e in evs if e.attempt == top]
        # A newer try supersedes; within it, a terminal state never regresses,
        # and a terminal state the source's API reported is not replaced by a push.
        assert row["attempt"] == top
        assert State(row["state"]).terminal == any(e.state.terminal for e in latest_try)
        assert row["state"] in {e.state.value for e in latest_try}
        polled_ends = [e for e in latest_try if e.state.terminal and not e.pushed]
        if polled_ends:
            assert row["state"] in {e.state.value for e in polled_ends}
            assert not row["state_pushed"]
        # Timestamps only move forward.
        assert row["observed_at"] == max(e.observed_at for e in evs)
        starts = [e.started_at for e in latest_try if e.started_at]
        assert row["started_at"] == (min(starts) if starts else None)
        enders = polled_ends or [e for e in latest_try if e.state.terminal]
        ends = [e.ended_at for e in enders if e.ended_at]
        assert row["ended_at"] == (max(ends) if ends else None)
        # Unknown attributes are kept: per key, the latest event's value.
        ordered = sorted(evs, key=lambda e: (e.observed_at, event_digest(canonical_payload(e))))
        expected: dict[str, Any] = {}
        for e in ordered:
            expected.update(e.attributes)
        assert row["attributes"] == expected

    # Every span of a (source, root) tree shares one trace: its least W3C trace id.
    for source in SOURCES:
        tree = [r for r in stored.values() if r["source"] == source]
        carried = {e.traceparent[0] for e in batch if e.source == source and e.traceparent}
        if carried:
            assert {(r["trace_id"], r["trace_adopted"]) for r in tree} == {(min(carried), True)}
        else:
            assert not any(r["trace_adopted"] for r in tree)
            assert len({r["trace_id"] for r in tree}) <= 1


@PROPS
@given(batch=st.lists(events(), min_size=1, max_size=14), order=st.randoms(use_true_random=False))
def test_equal_refs_link_runs_whichever_arrives_first(
    engine: Engine, batch: list[RunEvent], order: Any
) -> None:
    truncate_all(engine)
    shuffled = list(batch)
    order.shuffle(shuffled)
    ingest(engine, shuffled, [1, 4])

    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in batch:
        for ref in e.refs:
            holders[(ref.namespace, ref.value)].add(span_id_for(e.source, e.key))
    expected = {
        (a, b, f"ref:{ns}") for (ns, _), ids in holders.items() for a in ids for b in ids if a < b
    }
    link = SQLModel.metadata.tables["link"]
    with engine.connect() as conn:
        query = sa.select(link.c.from_run_id, link.c.to_run_id, link.c.relation)
        # Suggested links (name and time, when an incident opens) are not ref links.
        rows = conn.execute(query.where(link.c.strength != "suggested")).all()
    assert sorted(rows) == sorted(expected)
