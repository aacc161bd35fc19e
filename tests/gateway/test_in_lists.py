"""Key lists in store reads: the same rows as IN, from a few statement texts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.links import IN_SIZES, in_parameter, one_of, one_of_parameter, table
from tests.dbs import statements_during

KEYS = [f"{i:016x}" for i in range(300)]


def _texts_while(engine: Engine, work: Any) -> set[str]:
    return {t for t in statements_during(engine, work) if t.startswith("SELECT")}


def _store_refs(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            table("run_ref").insert(),
            [{"namespace": "n", "value": "v", "run_id": key} for key in KEYS[::2]],
        )


def test_one_of_finds_what_in_finds_for_every_size(engine: Engine) -> None:
    _store_refs(engine)
    run_ref = table("run_ref")
    with engine.connect() as conn:
        for size in (1, 2, 16, 17, 65, 256, 300):
            wanted = KEYS[:size]
            plain = conn.scalars(sa.select(run_ref.c.run_id).where(run_ref.c.run_id.in_(wanted)))
            found = conn.scalars(
                sa.select(run_ref.c.run_id).where(one_of(conn, run_ref.c.run_id, wanted))
            )
            assert sorted(found) == sorted(plain), size


def test_one_of_uses_one_text_on_postgresql_and_a_few_on_sqlite(engine: Engine) -> None:
    _store_refs(engine)
    run_ref = table("run_ref")

    def read_every_size() -> None:
        with engine.connect() as conn:
            for size in range(1, len(KEYS) + 1):
                query = sa.select(run_ref.c.run_id).where(
                    one_of(conn, run_ref.c.run_id, KEYS[:size])
                )
                conn.execute(query).all()

    texts = _texts_while(engine, read_every_size)
    if engine.dialect.name == "postgresql":
        assert len(texts) == 1
        assert "= ANY (" in texts.pop()
    else:
        assert len(texts) == len(IN_SIZES)  # padded to 16, 64, 256 or 500 keys


def test_a_prebuilt_statement_takes_its_keys_as_one_parameter(engine: Engine) -> None:
    _store_refs(engine)
    run_ref = table("run_ref")
    statement = sa.select(run_ref.c.run_id).where(
        one_of_parameter(engine.dialect.name, run_ref.c.run_id, "ids")
    )

    def read() -> None:
        with engine.connect() as conn:
            for size in (3, 40, 300):
                found = conn.scalars(statement, {"ids": in_parameter(conn, KEYS[:size])})
                assert sorted(found) == KEYS[:size:2]

    texts = _texts_while(engine, read)
    assert len(texts) == (1 if engine.dialect.name == "postgresql" else 3)
