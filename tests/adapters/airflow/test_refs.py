"""Refs: label sanitisation and OpenLineage ids recomputed as Airflow's providers do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from openlineage.client.uuid import generate_static_uuid as ol_generate_static_uuid

from adapters.airflow.refs import (
    conf_refs,
    generate_static_uuid,
    make_safe_label_value,
    openlineage_task_run_id,
    task_try_refs,
    ti_label_key,
)


def test_run_id_label_matches_the_value_kubernetes_pod_operator_writes() -> None:
    # The example the cncf.kubernetes provider's behaviour produces (airflow.md).
    assert make_safe_label_value("manual__2016-01-01T01:00:00+01:00") == (
        "manual__2016-01-01T0100000100-da4d1ce7b"
    )


def test_safe_values_pass_unchanged_and_long_ones_are_hashed_to_63() -> None:
    assert make_safe_label_value("orders_etl") == "orders_etl"
    long = "x" * 80
    assert len(make_safe_label_value(long)) == 63
    import hashlib

    assert (
        make_safe_label_value(long) == "x" * 53 + "-" + hashlib.md5(long.encode()).hexdigest()[:9]
    )


@given(st.text(min_size=1, max_size=120))
def test_every_label_is_a_valid_kubernetes_label_value(value: str) -> None:
    label = make_safe_label_value(value)
    assert len(label) <= 63
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in label)


def test_ti_label_joins_the_five_sanitised_parts() -> None:
    label = ti_label_key("etl", "manual__2016-01-01T01:00:00+01:00", "load", -1, 2)
    assert label == "etl/manual__2016-01-01T0100000100-da4d1ce7b/load/-1/2"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.binary(max_size=64),
)
def test_static_uuid_equals_the_openlineage_client(instant: datetime, data: bytes) -> None:
    assert generate_static_uuid(instant, data) == ol_generate_static_uuid(instant, data)


def test_task_run_id_uses_namespace_dag_task_try_and_map_index() -> None:
    when = datetime(2026, 11, 25, 23, 12, 6, 123456, tzinfo=timezone(timedelta(hours=1)))
    expected = ol_generate_static_uuid(when, b"default.etl.load.2.-1")
    assert openlineage_task_run_id("default", "etl", "load", 2, -1, when) == str(expected)


def test_task_try_refs_carry_raw_label_and_openlineage_keys() -> None:
    refs = task_try_refs(
        dag_id="etl",
        run_id="scheduled__2026-01-01T00:00:00+00:00",
        task_id="load",
        map_index=3,
        try_number=1,
        logical_date=datetime(2026, 1, 1, tzinfo=UTC),
        ol_namespace="prod",
    )
    by_ns = {r.namespace: r.value for r in refs}
    assert by_ns["airflow.ti"] == "etl/scheduled__2026-01-01T00:00:00+00:00/load/3/1"
    assert by_ns["airflow.ti_label"].startswith("etl/scheduled__2026-01-01T0000000000-")
    assert by_ns["openlineage.run"] == str(
        ol_generate_static_uuid(datetime(2026, 1, 1, tzinfo=UTC), b"prod.etl.load.1.3")
    )


def test_conf_refs_read_kestra_trigger_and_traceparent_carrier() -> None:
    refs = conf_refs(
        {
            "source": "kestra",
            "execution": "4VtC",
            "airflow/dagrun_parent_trace_context": {
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            },
        }
    )
    assert {(r.namespace, r.value) for r in refs} == {
        ("kestra.execution", "4VtC"),
        ("w3c.traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    }
    assert conf_refs({"traceparent": "garbage", "execution": "not-from-kestra"}) == []
