"""Tokens and roles: hashing, ordering, revocation, last use."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.auth import Role, TokenError, authenticate, create_token, list_tokens, revoke_token
from gateway.store.models import ApiToken


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert Role.admin.allows(Role.operator) and Role.admin.allows(Role.viewer)
    assert Role.operator.allows(Role.viewer) and not Role.operator.allows(Role.admin)
    assert not Role.viewer.allows(Role.operator)


def test_tokens_are_distinct_and_authenticate_to_their_role(engine: Engine) -> None:
    a = create_token(engine, role="viewer", name="a")
    b = create_token(engine, role=Role.admin, name="b")
    assert a != b
    pa, pb = authenticate(engine, a), authenticate(engine, b)
    assert pa is not None and (pa.name, pa.role) == ("a", Role.viewer)
    assert pb is not None and (pb.name, pb.role) == ("b", Role.admin)
    assert authenticate(engine, a[:-1] + ("x" if a[-1] != "x" else "y")) is None
    assert authenticate(engine, "") is None


def test_first_use_is_recorded(engine: Engine) -> None:
    token = create_token(engine, role="viewer", name="used")
    assert list_tokens(engine)[0].last_used_at is None
    authenticate(engine, token)
    assert list_tokens(engine)[0].last_used_at is not None


def test_revoke_is_idempotent_and_unknown_ids_are_errors(engine: Engine) -> None:
    token = create_token(engine, role="operator", name="gone")
    with Session(engine) as s:
        token_id = s.exec(select(ApiToken.id)).one()
    assert token_id is not None
    first = revoke_token(engine, token_id)
    second = revoke_token(engine, token_id)
    assert first.revoked_at == second.revoked_at is not None
    assert authenticate(engine, token) is None
    assert list_tokens(engine) == [] and len(list_tokens(engine, include_revoked=True)) == 1
    with pytest.raises(TokenError, match="no token with id 4242"):
        revoke_token(engine, 4242)


def test_bad_role_or_name_is_refused(engine: Engine) -> None:
    with pytest.raises(TokenError, match="unknown role 'root'"):
        create_token(engine, role="root")
    with pytest.raises(TokenError, match="1 to 128"):
        create_token(engine, role="viewer", name="x" * 200)
