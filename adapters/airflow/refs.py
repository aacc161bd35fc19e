"""Correlation keys an Airflow task try shares with the systems it touches (pure).

Every task try carries these refs, so a run seen elsewhere links to it exactly:

- ``airflow.ti`` = ``<dag_id>/<run_id>/<task_id>/<map_index>/<try_number>`` with
  the **raw** values, ``map_index`` being ``-1`` for an unmapped task. This is
  what the Airflow adapter derives from the REST API and from OpenLineage
  facets, and what the Kubernetes adapter derives from the *annotations* the
  KubernetesExecutor puts on worker pods (``dag_id``, ``task_id``, ``run_id``,
  ``try_number`` hold unsanitised values; ``map_index`` from the label, ``-1``
  when absent).
- ``airflow.ti_label`` = the same five parts joined with ``/``, each passed
  through `make_safe_label_value` exactly as KubernetesPodOperator and the
  KubernetesExecutor sanitise their pod labels (``map_index`` and
  ``try_number`` are numbers and pass unchanged; a missing ``map_index`` label
  means ``-1``). The Kubernetes adapter builds it from pod *labels*
  ``dag_id/run_id/task_id/map_index/try_number`` as they stand, with no further
  processing. Run ids such as ``manual__2026-01-01T01:00:00+00:00`` contain
  ``:`` and ``+``, so their label is truncated and suffixed with an md5 hash:
  never compare raw values with labels.
- ``openlineage.run`` = the task's OpenLineage run id, recomputed the way
  ``apache-airflow-providers-openlineage`` derives it (``generate_static_uuid``
  over ``logical_date or run_after`` and
  ``"{namespace}.{dag_id}.{task_id}.{try_number}.{map_index}"``), and for a DAG
  run over ``"{namespace}.{dag_id}.{clear_number}"``. The REST API does not
  expose ``clear_number``; 0 is assumed (true until a run is cleared).
- From a DAG run's ``conf``: ``kestra.execution`` (Kestra's ``TriggerDagRun``
  sends ``{"source": "kestra", "execution": <id>, ...}``; ``kestra_execution_id``
  is also read) and ``w3c.traceparent`` (``traceparent`` or Airflow's reserved
  ``airflow/dagrun_parent_trace_context``, a header or a carrier map).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.contract import Ref, parse_traceparent

MAX_LABEL_LEN = 63
_UNSAFE = re.compile(r"^[^a-z0-9A-Z]*|[^a-zA-Z0-9_\-\.]|[^a-z0-9A-Z]*$")


def make_safe_label_value(value: str) -> str:
    """A Kubernetes label value as the cncf.kubernetes provider makes it.

    Invalid characters are dropped; if anything changed or the result is longer
    than 63 characters it is truncated and suffixed with ``-`` and the first 9
    hex digits of the md5 of the original.
    """
    safe = _UNSAFE.sub("", value)
    if len(safe) > MAX_LABEL_LEN or safe != value:
        digest = hashlib.md5(value.encode()).hexdigest()[:9]
        safe = safe[: MAX_LABEL_LEN - len(digest) - 1] + "-" + digest
    return safe


def ti_key(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    return f"{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}"


def ti_label_key(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    # Numbers stay as they are: a non-negative map_index and the try number are
    # already safe, and KPO omits the map_index label for -1 rather than sanitise it.
    names = "/".join(make_safe_label_value(p) for p in (dag_id, run_id, task_id))
    return f"{names}/{int(map_index)}/{int(try_number)}"


def generate_static_uuid(instant: datetime, data: bytes) -> uuid.UUID:
    """OpenLineage's deterministic UUIDv7: millisecond time, then sha1 bits.

    Same algorithm as ``openlineage.client.uuid.generate_static_uuid`` (a test
    holds the two equal); reimplemented so the runtime does not need the
    OpenLineage client installed.
    """
    instant_utc = instant.astimezone(UTC)
    timestamp_ms = int(instant_utc.timestamp() * 1000)
    digest = hashlib.sha1(instant_utc.isoformat().encode("utf-8") + data).digest()
    node = int(digest.hex(), 16) >> 84
    value = (timestamp_ms & 0xFFFFFFFFFFFF) << 80
    value |= node & 0xFFFFFFFFFFFFFFFFFFFF
    value &= ~(0xF000 << 64)
    value |= 7 << 76  # version 7
    value &= ~(0xC000 << 48)
    value |= 0x8000 << 48  # RFC 4122 variant
    return uuid.UUID(int=value)


def openlineage_task_run_id(
    namespace: str,
    dag_id: str,
    task_id: str,
    try_number: int,
    map_index: int,
    logical_date: datetime,
) -> str:
    data = f"{namespace}.{dag_id}.{task_id}.{try_number}.{map_index}".encode()
    return str(generate_static_uuid(logical_date, data))


def openlineage_dag_run_id(
    namespace: str, dag_id: str, logical_date: datetime, clear_number: int = 0
) -> str:
    return str(generate_static_uuid(logical_date, f"{namespace}.{dag_id}.{clear_number}".encode()))


def task_try_refs(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
    logical_date: datetime | None,
    ol_namespace: str,
) -> list[Ref]:
    refs = [
        Ref(namespace="airflow.ti", value=ti_key(dag_id, run_id, task_id, map_index, try_number)),
        Ref(
            namespace="airflow.ti_label",
            value=ti_label_key(dag_id, run_id, task_id, map_index, try_number),
        ),
    ]
    if logical_date is not None:
        ol_id = openlineage_task_run_id(
            ol_namespace, dag_id, task_id, try_number, map_index, logical_date
        )
        refs.append(Ref(namespace="openlineage.run", value=ol_id))
    return refs


def conf_refs(conf: Mapping[str, Any] | None) -> list[Ref]:
    """Refs a DAG run's conf carries: a Kestra execution and a W3C traceparent."""
    if not conf:
        return []
    refs: list[Ref] = []
    execution = conf.get("kestra_execution_id")
    if execution is None and conf.get("source") == "kestra":
        execution = conf.get("execution")
    if isinstance(execution, str | int) and str(execution).strip():
        refs.append(Ref(namespace="kestra.execution", value=str(execution).strip()[:512]))
    for candidate in (conf.get("traceparent"), conf.get("airflow/dagrun_parent_trace_context")):
        header = candidate.get("traceparent") if isinstance(candidate, Mapping) else candidate
        if isinstance(header, str) and parse_traceparent(header):
            refs.append(Ref(namespace="w3c.traceparent", value=header.strip().lower()))
            break
    return refs
