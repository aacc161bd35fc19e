import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from gateway.store.migrate import at_head


def test_migrations_reach_head_and_create_every_model_table(engine: Engine) -> None:
    assert at_head(engine)
    names = set(sa.inspect(engine).get_table_names())
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= names
