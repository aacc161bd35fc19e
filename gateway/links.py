"""Exact links: two runs that carry an equal ref are linked, whichever came first.

When a batch gives runs refs they did not have, `write_refs_and_links` looks up
who else holds each (namespace, value) through the `run_ref` primary key (an
index lookup per ref, never a scan of history), inserts the new refs, and
writes one `link` row per pair of distinct runs sharing a ref: strength
`exact`, relation `ref:<namespace>`, evidence naming the ref and both sources.
The pair is ordered by run id, so the link is the same row whichever run
arrived first, and the unique constraint plus INSERT … ON CONFLICT DO NOTHING
keep it single on SQLite and PostgreSQL.

A ref shared by very many runs (a W3C trace id on every span of a big DAG) is
linked to at most `MAX_LINKS_PER_REF` earlier holders, so one hot value cannot
turn a batch quadratic; the refs themselves are all kept and stay queryable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from gateway.contract import LinkStrength

MAX_LINKS_PER_REF = 50
RELATION_CHARS = 64  # link.relation is VARCHAR(64)
IN_CHUNK = 500  # keeps every IN list far below SQLite's bound-variable limit


def table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def dialect_insert(conn: Connection, target: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


def chunks(items: list[Any], size: int = IN_CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# The sizes an IN list is rounded up to (see `padded`).
IN_SIZES = (16, 64, 256, IN_CHUNK)


def padded(values: list[Any]) -> list[Any]:
    """An IN list (one chunk) made up to the next of a few sizes by repeating its last value.

    An expanding IN renders one placeholder per value, so every batch size was a
    new statement text: PostgreSQL parses it afresh and psycopg splits it
    afresh (its query cache is keyed by text). Four sizes keep the texts few;
    a repeated value changes nothing an IN matches.
    """
    if not values:
        return values
    size = next((n for n in IN_SIZES if n >= len(values)), len(values))
    return values + [values[-1]] * (size - len(values))


def one_of(conn: Connection, column: Any, values: list[Any]) -> Any:
    """`column IN values` (one chunk), as a statement text that does not grow with the values.

    PostgreSQL gets `column = ANY(:array)`: one parameter, so one text for
    every batch size. A long IN list was re-parsed by PostgreSQL, and psycopg
    re-split every text longer than its 4 KB cache limit, per execution. Its
    custom plan still sees the values. SQLite gets an IN list `padded` to one
    of a few sizes.
    """
    if conn.dialect.name == "postgresql":
        return column == sa.any_(
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        )
    return column.in_(padded(values))


def one_of_parameter(dialect: str, column: Any, name: str) -> Any:
    """`one_of` for a statement built once: the values come as parameter `name`.

    Pass them through `in_parameter`.
    """
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def in_parameter(conn: Connection, values: list[Any]) -> list[Any]:
    """The value of a `one_of_parameter` parameter (one chunk)."""
    return values if conn.dialect.name == "postgresql" else padded(values)


def relation_for(namespace: str) -> str:
    return f"ref:{namespace}"[:RELATION_CHARS]


RefKey = tuple[str, str]


def write_refs_and_links(
    conn: Connection,
    refs: Mapping[RefKey, Mapping[str, str]],
    *,
    now: datetime,
) -> tuple[int, int]:
    """Store refs {(namespace, value): {run_id: source}}; link equal ones.

    Returns (refs inserted, links created).
    """
    if not refs:
        return 0, 0
    run_ref, run = table("run_ref"), table("run")
    holders: dict[RefKey, dict[str, str]] = defaultdict(dict)
    keys = list(refs)
    for part in chunks(keys):
        query = (
            sa.select(run_ref.c.namespace, run_ref.c.value, run_ref.c.run_id, run.c.source)
            .select_from(run_ref.outerjoin(run, run.c.id == run_ref.c.run_id))
            .where(sa.tuple_(run_ref.c.namespace, run_ref.c.value).in_(padded(part)))
        )
        for namespace, value, run_id, source in conn.execute(query):
            holders[(namespace, value)][run_id] = source or ""

    new_refs: list[dict[str, str]] = []
    links: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (namespace, value), runs in refs.items():
        known = holders.get((namespace, value), {})
        arriving = sorted(run_id for run_id in runs if run_id not in known)
        if not arriving:
            continue
        earlier = dict(sorted(known.items())[:MAX_LINKS_PER_REF])
        relation = relation_for(namespace)
        for run_id in arriving:
            new_refs.append({"namespace": namespace, "value": value, "run_id": run_id})
            source = runs[run_id]
            for other_id, other_source in earlier.items():
                first, second = sorted(((run_id, source), (other_id, other_source)))
                pair = (first[0], second[0], relation)
                if pair in links and _evidence_value(links[pair]["evidence"]) <= value:
                    continue  # the least shared value is the evidence, whatever the order
                links[pair] = {
                    "from_run_id": first[0],
                    "to_run_id": second[0],
                    "strength": LinkStrength.exact.value,
                    "relation": relation,
                    "confidence": 1.0,
                    "evidence": {
                        "ref": {"namespace": namespace, "value": value},
                        "from_source": first[1],
                        "to_source": second[1],
                    },
                    "created_at": now,
                }
            if len(earlier) < MAX_LINKS_PER_REF:
                earlier[run_id] = source

    if new_refs:
        # Filtered against the holders read under the ref-bucket lock above.
        conn.execute(run_ref.insert(), new_refs)
    created = 0
    if links:
        link = table("link")
        _keep_least_evidence(conn, links)
        stmt = dialect_insert(conn, link).on_conflict_do_nothing().returning(link.c.id)
        if links:
            created = len(conn.execute(stmt, list(links.values())).all())
    return len(new_refs), created


def _evidence_value(evidence: Mapping[str, Any]) -> str:
    return str(evidence["ref"]["value"])


def _keep_least_evidence(
    conn: Connection, links: dict[tuple[str, str, str], dict[str, Any]]
) -> None:
    """Settle links that already exist: the least shared ref value is their evidence.

    Two runs may share several values of one namespace; whichever arrives first,
    the stored evidence is the same. Drops settled pairs from `links`.
    """
    link = table("link")
    key = sa.tuple_(link.c.from_run_id, link.c.to_run_id, link.c.relation)
    existing: list[sa.Row[Any]] = []
    for part in chunks(list(links)):
        query = sa.select(
            link.c.id, link.c.from_run_id, link.c.to_run_id, link.c.relation, link.c.evidence
        ).where(key.in_(padded(part)), link.c.strength == LinkStrength.exact.value)
        existing.extend(conn.execute(query).all())
    for link_id, from_id, to_id, relation, evidence in existing:
        wanted = links.pop((from_id, to_id, relation))
        if _evidence_value(wanted["evidence"]) < _evidence_value(evidence):
            conn.execute(
                link.update().where(link.c.id == link_id).values(evidence=wanted["evidence"])
            )


__all__ = [
    "MAX_LINKS_PER_REF",
    "chunks",
    "dialect_insert",
    "in_parameter",
    "one_of",
    "one_of_parameter",
    "relation_for",
    "table",
    "write_refs_and_links",
]
