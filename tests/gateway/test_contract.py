from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from gateway.contract import (
    RunEvent,
    State,
    UnknownAdapterKind,
    adapter_kinds,
    load_adapter_factory,
    parse_traceparent,
    span_id_for,
    trace_id_for,
)

NOW = datetime(2026, 11, 25, 23, 12, 6, tzinfo=UTC)


def test_naive_timestamp_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError) as exc:
        RunEvent(source="s", key="k", state=State.running, observed_at=datetime(2026, 1, 1))
    assert exc.value.errors()[0]["loc"] == ("observed_at",)


def test_oversized_attributes_are_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError) as exc:
        RunEvent(
            source="s",
            key="k",
            state="running",
            observed_at=NOW,
            attributes={"blob": "x" * 200_000},
        )
    assert exc.value.errors()[0]["loc"] == ("attributes",)


def test_unknown_state_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        RunEvent(source="s", key="k", state="exploded", observed_at=NOW)
    assert exc.value.errors()[0]["loc"] == ("state",)


def test_ids_are_deterministic_and_distinct_per_source() -> None:
    assert span_id_for("a", "k") == span_id_for("a", "k")
    assert span_id_for("a", "k") != span_id_for("b", "k")
    assert len(span_id_for("a", "k")) == 16
    assert len(trace_id_for("a", "k")) == 32


def test_trace_root_of_an_attempt_is_its_root_key() -> None:
    ev = RunEvent(
        source="s",
        kind="attempt",
        key="d/r/t/1",
        parent_key="d/r/t",
        root_key="d/r",
        state=State.failed,
        observed_at=NOW,
    )
    assert ev.trace_root == "d/r"


def test_traceparent_ref_is_parsed_and_invalid_ones_ignored() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_traceparent(tp) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert parse_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    ev = RunEvent(
        source="s",
        key="k",
        state="running",
        observed_at=NOW,
        refs=[{"namespace": "w3c.traceparent", "value": tp}],
    )
    assert ev.traceparent == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_registry_names_installed_kinds_and_rejects_unknown() -> None:
    assert "airflow" in adapter_kinds()
    with pytest.raises(UnknownAdapterKind, match="no adapter of kind 'nope'"):
        load_adapter_factory("nope")


def test_attributes_over_the_encoded_limit_are_refused_whatever_their_shape() -> None:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from gateway.contract import MAX_ATTRIBUTES_BYTES, RunEvent, State

    at = datetime(2026, 11, 26, tzinfo=UTC)
    flat_ok = {"a": "x" * (MAX_ATTRIBUTES_BYTES - 100)}
    assert RunEvent(source="s", key="k", state=State.running, observed_at=at, attributes=flat_ok)
    # Escapes count: 12,000 control characters encode to 72,000 bytes.
    escaped = {"a": "\x01" * 12_000}
    nested = {"a": ["y" * 40_000, "z" * 40_000]}
    for attributes in (escaped, nested, {"a": "x" * MAX_ATTRIBUTES_BYTES}):
        with pytest.raises(ValidationError, match="the limit is"):
            RunEvent(
                source="s", key="k", state=State.running, observed_at=at, attributes=attributes
            )
